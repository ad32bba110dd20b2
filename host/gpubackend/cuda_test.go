//go:build cuda

package gpubackend

import (
	"errors"
	"testing"

	"github.com/convtrain/convtrain/gpu"
)

// TestGPUBackendCUDA runs the GPU backend's tests against the CPU backend
// (every operation and optimiser step on small shapes, the refused calls, a
// few training steps with no allocation after the first) with the GPU
// backend on CUDA device 0 instead of the simulator; scripts/gpu-check.sh
// runs it with the other cuda-tagged tests. It skips without a CUDA device.
func TestGPUBackendCUDA(t *testing.T) {
	d, err := gpu.Open(0)
	if errors.Is(err, gpu.ErrNoDevice) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("gpu.Open(0): %v", err)
	}
	t.Logf("device: %v", d)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	sim := openDevice
	openDevice = func() (*gpu.Device, error) { return gpu.Open(0) }
	t.Cleanup(func() { openDevice = sim })
	t.Run("ops", TestGPUBackendOps)
	t.Run("optimizer", TestOptimizerBackendOps)
	t.Run("checks", TestGPUBackendChecks)
	t.Run("wrong sizes", TestWrongSizeErrors)
	t.Run("training", TestGPUBackendTraining)
}
