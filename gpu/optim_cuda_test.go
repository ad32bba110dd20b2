//go:build cuda

package gpu

import "testing"

// TestOptimCUDA runs the optimiser conformance suite on CUDA device 0: the
// same bit-for-bit comparison with cpuref as TestOptimSim, so a pass on
// both means the simulator and the GPU agree bit for bit.
func TestOptimCUDA(t *testing.T) {
	runOptimConformance(t, openCUDAT(t))
}
