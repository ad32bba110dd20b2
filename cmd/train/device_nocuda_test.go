//go:build !cuda

package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDeviceGPUWithoutCUDA: in a binary built without the cuda tag,
// -device gpu fails (exit 1) with the gpu package's message, which gives
// the build line.
func TestDeviceGPUWithoutCUDA(t *testing.T) {
	dir := smallDir(t, 8, 4)
	for _, args := range [][]string{
		{"-device", "gpu", "-data", dir, "-batch", "4"},
		{"compare", "-data", dir, "-batch", "4", "-steps", "1"},
		{"bench", "-batch", "2"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(args, &stdout, &stderr)
		if got := exitCode(err); got != 1 {
			t.Errorf("run(%q): exit code %d (error %v), want 1", args, got, err)
		}
		for _, want := range []string{"built without CUDA support", "go build -tags cuda ./cmd/train"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("run(%q) = %v, want an error with %q", args, err, want)
			}
		}
	}
}
