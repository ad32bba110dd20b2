//go:build cuda

package gpu

import (
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// TestSanitizeCUDA is the reduced conformance run that scripts/gpu-check.sh
// runs under compute-sanitizer (memcheck, racecheck, synccheck, initcheck),
// where every launch costs tens to thousands of times its normal time: the
// kernel and optimiser conformance suites on CUDA device 0 with the conv
// sweep cut to one small shape (two M and N tiles, strides 2×3, padding
// 1×2, C·R·S a multiple of 4) and the pool sweep to one 2×2 stride-2
// shape, so every kernel version still runs, on both kinds of inputs.
// (The script also leaves out the "large" subtest.) TestConformanceCUDA
// runs the full sweeps.
func TestSanitizeCUDA(t *testing.T) {
	d := openCUDAT(t)
	conv, pool := convShapes, poolShapes
	t.Cleanup(func() { convShapes, poolShapes = conv, pool })
	convShapes = []geom.ConvGeom{cg(2, 20, 11, 13, 24, 3, 3, 2, 3, 1, 2)}
	poolShapes = []geom.PoolGeom{pg(2, 3, 6, 6, 2, 2, 2, 2)}
	runConformance(t, d)
	runOptimConformance(t, d)
}
