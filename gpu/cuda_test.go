//go:build cuda

package gpu

import "testing"

// openCUDAT opens CUDA device 0, skipping the test, with the reason, only
// when no device can be opened.
func openCUDAT(t *testing.T) *Device {
	t.Helper()
	d, err := Open(0)
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	t.Logf("device: %v", d)
	return d
}

// TestConformanceCUDA runs the kernel conformance suite on CUDA device 0.
func TestConformanceCUDA(t *testing.T) {
	runConformance(t, openCUDAT(t))
}

// TestSimMatchesCUDA runs the same launches on the simulator and on the
// GPU: the same PTX must give the same bits (the kernels use only correctly
// rounded operations, their own exp and log, and no atomics).
func TestSimMatchesCUDA(t *testing.T) {
	gpu := openCUDAT(t)
	sim := openSim(t)
	for _, c := range bitCases() {
		t.Run("kernel="+c.name, func(t *testing.T) {
			sameBits(t, "gpu vs simulator", runBits(t, gpu, c), runBits(t, sim, c))
		})
	}
}
