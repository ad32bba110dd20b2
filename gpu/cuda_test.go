//go:build cuda

package gpu

import "testing"

// TestConformanceCUDA runs the kernel conformance suite on CUDA device 0.
// It skips, saying why, only when no device can be opened.
func TestConformanceCUDA(t *testing.T) {
	d, err := Open(0)
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	defer d.Close()
	t.Logf("device: %v", d)
	runConformance(t, d)
}
