package gpu

import (
	"math"
	"testing"
)

// An analytic time model for the simulated convolution suite
// (BenchmarkConvSuite/impl=sim reports it as est-us-h100): a pass takes at
// least as long as each of
//
//	issue    warp instructions / (SMs · 4 schedulers · clock): one warp
//	         instruction per scheduler per cycle
//	math     FLOPs / the peak of its arithmetic (FFMA, or the dense TF32 or
//	         BF16 tensor rate when the pass ran mma.sync)
//	memory   32-byte sectors the SMs requested / DRAM bandwidth (every
//	         sector a miss: an upper bound on traffic, L2 hits ignored)
//
// and the estimate is their maximum: a roofline over the simulator's
// counters, whose instructions are the PTX's (ptxas issues fewer: the SASS
// mix in kernels/RESOURCES.md), in which latency,
// occupancy, tail effects and launch overhead are ignored, so it is a
// lower bound that ranks kernels, not a prediction. The constants are the
// H100 SXM5's published figures.
const (
	h100SMs      = 132
	h100Clock    = 1.98e9   // boost, Hz
	h100FP32     = 67e12    // FFMA FLOP/s
	h100TF32     = 494.7e12 // dense tensor FLOP/s
	h100BF16     = 989.4e12 // dense tensor FLOP/s
	h100DRAMBW   = 3.35e12  // bytes/s
	warpSize     = 32
	schedulersSM = 4
)

// estimateH100 returns the model's time in seconds of a pass of flops
// FLOPs that executed threadInstr thread instructions (lanes of full
// warps), touched sectors global sectors and ran on tensor cores of
// precision p when tensor is true.
func estimateH100(flops float64, threadInstr, sectors int64, tensor bool, p Precision) float64 {
	issue := float64(threadInstr) / warpSize / (h100SMs * schedulersSM * h100Clock)
	peak := h100FP32
	if tensor {
		peak = h100TF32
		if p == BF16 {
			peak = h100BF16
		}
	}
	return max(issue, flops/peak, float64(sectors)*32/h100DRAMBW)
}

func TestEstimateH100(t *testing.T) {
	const flops = 2e12 // 1e12 FMA
	for _, c := range []struct {
		name          string
		instr, sector int64
		tensor        bool
		p             Precision
		want          float64
	}{
		// 1 instruction per FMA: issue-bound, 1e12/32 warp instructions at 1.045e12/s.
		{"ffma-issue", 1e12, 0, false, FP32, 1e12 / 32 / (132 * 4 * 1.98e9)},
		// Few instructions: the FP32 rate bounds it.
		{"ffma-math", 1e9, 0, false, FP32, flops / 67e12},
		{"bf16-math", 1e9, 0, true, BF16, flops / 989.4e12},
		{"tf32-math", 1e9, 0, true, TF32, flops / 494.7e12},
		// 1e10 sectors = 320 GB: memory-bound.
		{"memory", 1e9, 1e10, true, BF16, 320e9 / 3.35e12},
	} {
		t.Run("case="+c.name, func(t *testing.T) {
			got := estimateH100(flops, c.instr, c.sector, c.tensor, c.p)
			if math.Abs(got-c.want) > 1e-12*c.want {
				t.Errorf("estimateH100 = %g s, want %g s", got, c.want)
			}
		})
	}
}
