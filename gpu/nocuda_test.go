//go:build !cuda

package gpu

import (
	"strings"
	"testing"
)

// TestOpenWithoutCUDA checks that Open in a binary built without the cuda
// tag fails with an error that says so.
func TestOpenWithoutCUDA(t *testing.T) {
	d, err := Open(0)
	if err == nil {
		d.Close()
		t.Fatalf("Open(0) without the cuda build tag: no error")
	}
	if !strings.Contains(err.Error(), "without CUDA support") {
		t.Errorf("Open(0) = %q, want an error saying the binary was built without CUDA support", err)
	}
}
