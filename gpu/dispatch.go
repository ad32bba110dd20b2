package gpu

import (
	"fmt"
	"strings"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Precision is the arithmetic of the convolution kernels of a Device.
type Precision int

const (
	// FP32 is exact float32 arithmetic (FFMA): the default, equal to cpuref
	// within float32 rounding, and exactly equal on integer-valued inputs.
	FP32 Precision = iota
	// TF32 runs the implicit-GEMM convolutions on tensor cores (mma.sync
	// m16n8k8 .tf32, compute capability 8.0 and newer): each input of a
	// product is rounded to TF32 (10 explicit mantissa bits, round to
	// nearest, ties away from zero), products and sums are float32. The
	// error of a result is then at most about 2⁻¹⁰·Σ|terms| more than
	// FP32's. Opt-in.
	TF32
	// BF16 runs the convolutions on BF16 tensor cores (mma.sync m16n8k16
	// .bf16, compute capability 8.0 and newer; the v7, v9 and v10
	// kernels): the operands of each pass (x and w forward, dy and w
	// backward-data, x and dy backward-filter) are rounded to bfloat16 (8
	// significant bits, to nearest, ties to even: cpuref.RoundBF16), the
	// products are exact and summed in float32, the bias is added in
	// float32; weights, gradients and optimiser state stay float32 (the
	// mixed-precision recipe of PyTorch's bf16 autocast, without loss
	// scaling). The error of a result is then at most about 2⁻⁸·Σ|terms|
	// more than FP32's. Opt-in.
	BF16
)

func (p Precision) String() string {
	switch p {
	case FP32:
		return "fp32"
	case TF32:
		return "tf32"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// ParsePrecision parses "fp32", "tf32" or "bf16" (case-insensitive), the
// values of a -precision flag.
func ParsePrecision(s string) (Precision, error) {
	switch strings.ToLower(s) {
	case "fp32":
		return FP32, nil
	case "tf32":
		return TF32, nil
	case "bf16":
		return BF16, nil
	}
	return FP32, fmt.Errorf("gpu: precision %q: want fp32, tf32 or bf16", s)
}

// SetPrecision selects the arithmetic of the convolution passes launched
// from now on (see ConvAlgoFor). TF32 and BF16 need compute capability 8.0
// or newer (the simulator reports 9.0); on an older GPU SetPrecision
// returns an error and leaves the precision unchanged.
func (d *Device) SetPrecision(p Precision) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch p {
	case FP32:
	case TF32, BF16:
		if !d.hasTarget(precisionMinCC(p)) {
			return fmt.Errorf("gpu: precision %v needs compute capability 8.0 or newer, device %s is sm_%d%d",
				p, d.info.Name, d.info.ComputeMajor, d.info.ComputeMinor)
		}
	default:
		return fmt.Errorf("gpu: unknown precision %d", int(p))
	}
	d.precision = p
	return nil
}

// Precision returns the precision set with SetPrecision (FP32 by default).
func (d *Device) Precision() Precision {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.precision
}

// hasTarget reports whether the device runs PTX built for sm_NN, nn = 10·major + minor.
func (d *Device) hasTarget(nn int) bool {
	return 10*d.info.ComputeMajor+d.info.ComputeMinor >= nn
}

// targetOK reports whether the device runs a kernel of kernels.Kernel.Target t
// ("sm_70", "sm_80", …). A driver that reports no compute capability
// (major 0: the test doubles) is assumed to run every target.
func (d *Device) targetOK(t string) bool {
	if d.info.ComputeMajor == 0 {
		return true
	}
	var nn int
	if _, err := fmt.Sscanf(t, "sm_%d", &nn); err != nil {
		return false
	}
	return d.hasTarget(nn)
}

// ConvPass is one of the three passes of a convolution.
type ConvPass int

const (
	ConvFwd       ConvPass = iota // y from x and w
	ConvBwdData                   // dx from dy and w
	ConvBwdFilter                 // dw from x and dy
	numConvPasses
)

func (p ConvPass) String() string {
	switch p {
	case ConvFwd:
		return "fwd"
	case ConvBwdData:
		return "bwd_data"
	case ConvBwdFilter:
		return "bwd_filter"
	}
	return fmt.Sprintf("ConvPass(%d)", int(p))
}

// ConvAlgo is a family of convolution kernels: one kernel version per
// pass.
type ConvAlgo int

const (
	// ConvDirect is the v1 kernels: one thread per output element, FP32.
	ConvDirect ConvAlgo = iota
	// ConvIGemm is the FP32 implicit GEMM: the v2 kernels (128×64×8
	// shared-memory tiles, 8×4 outputs per thread, split-K bwd-filter), v4
	// (phase-decomposed bwd-data for strides > 1) and v6 (128×128 tiles);
	// and v11, bwd-data on the packed cp.async pipeline (sm_80), which the
	// dispatcher does not run (its sum order, hence its bits, differ from
	// v2/v4/v6's, and the FP32 default's bits are pinned).
	ConvIGemm
	// ConvIGemmTF32 is the v3 and v5 kernels: the same implicit GEMM on
	// tensor cores (TF32; sm_80 and newer), and beside them v8, v9 and v10,
	// TF32 on the packed channels-last cp.async pipeline, which the
	// dispatcher runs where pipeWins.
	ConvIGemmTF32
	// ConvIGemmBF16 is the v7 (forward), v9 (backward-data) and v10
	// (backward-filter) kernels: implicit GEMMs on BF16 tensor cores over
	// channels-last bfloat16 copies of their operands (sm_80 and newer).
	ConvIGemmBF16
	numConvAlgos
)

func (a ConvAlgo) String() string {
	switch a {
	case ConvDirect:
		return "direct"
	case ConvIGemm:
		return "igemm"
	case ConvIGemmTF32:
		return "igemm_tf32"
	case ConvIGemmBF16:
		return "igemm_bf16"
	}
	return fmt.Sprintf("ConvAlgo(%d)", int(a))
}

// KernelName is the name of the basic kernel of pass p of algorithm a
// (v1, v2, v3; BF16: v7, v9, v10), "" where a has no kernel for p; ConvKernelFor names
// the one a shape actually runs.
func (a ConvAlgo) KernelName(p ConvPass) string {
	if !a.HasPass(p) {
		return ""
	}
	return kernelTable[basicKernel(a, p)].name
}

// HasPass reports whether algorithm a has a kernel for pass p (every
// algorithm has all three).
func (a ConvAlgo) HasPass(p ConvPass) bool {
	return a >= 0 && a < numConvAlgos && p >= 0 && p < numConvPasses && basicKernel(a, p) >= 0
}

// convAlgoAvailable reports whether the device has loaded the kernels of a.
func (d *Device) convAlgoAvailable(a ConvAlgo) bool {
	for p := ConvPass(0); p < numConvPasses; p++ {
		if a.HasPass(p) && d.fns[basicKernel(a, p)] == nil {
			return false
		}
	}
	return true
}

// ConvAlgos lists the algorithms this device can run (ConvIGemmTF32 only
// on compute capability 8.0 and newer), whatever the precision setting:
// the candidates a conformance suite must run.
func (d *Device) ConvAlgos() []ConvAlgo {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []ConvAlgo
	for a := ConvAlgo(0); a < numConvAlgos; a++ {
		if d.convAlgoAvailable(a) {
			out = append(out, a)
		}
	}
	return out
}

// igemmMinUtil and igemmMinK are the dispatcher's thresholds: the useful
// fraction of the implicit GEMM's 128×64 block tiles and the reduction
// length below which the direct kernels run.
const (
	igemmMinUtil = 1.0 / 8
	igemmMinK    = 16
)

// ConvAlgoFor returns the algorithm that Conv2DForward,
// Conv2DForwardReLU, Conv2DBackwardData and Conv2DBackwardFilter use for
// pass p of geometry g on this device at its current precision. With the
// GEMM view of each pass
//
//	pass              M (128-row tile side)   N (64-column side)   reduction length L
//	forward           N·P·Q                    K                    C·R·S
//	backward-data     N·H·W                    C                    K·R·S
//	backward-filter   C·R·S                    K                    N·P·Q
//
// and the tile utilisation u = M/(128·⌈M/128⌉) · N/(64·⌈N/64⌉), the rule is
//
//	if u < 1/8 or L < 16:                                            ConvDirect
//	else if the precision is BF16 and the packed copies fit:         ConvIGemmBF16
//	else if the precision is TF32 or BF16 (sm_80+):                   ConvIGemmTF32
//	else:                                                            ConvIGemm
//
// where the packed copies fit when each channels-last copy of the pass
// (packedFits) has fewer than 2³¹ elements. Within an algorithm the kernel
// follows the shape (ConvKernelFor): the FP32 implicit GEMM runs 128×128
// tiles (v6, the same bits) when its N side is ≥ 128 and at most 1/8
// padding, bwd-data with a stride > 1 runs the phase-decomposed kernels
// (v4, v5, v6 strided), and TF32 runs its packed-pipeline kernel of the
// pass (v8, v9, v10) in place of v3/v5 where pipeWins.
//
// The thresholds come from the simulator's instructions per useful FMA
// (BENCHMARKS.md, "Kernels"): at u = 1/8 the FP32 implicit GEMM executes
// about as many instructions per useful FMA as the direct kernels (MNIST
// conv2 backward-data: 34.6 against 34.9; conv1 forward: 18 against 22)
// and far fewer global sectors per FLOP; below it, the direct kernels
// execute fewer (conv1 backward-data, u = 1/64: 161 against 29). The
// choice depends on the shape, the precision and (through SetPrecision)
// the compute capability only, never on timing, so runs are reproducible.
func (d *Device) ConvAlgoFor(p ConvPass, g geom.ConvGeom) ConvAlgo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.convAlgoFor(p, g)
}

// tileUtil is the useful fraction of the ⌈m/128⌉·⌈n/64⌉ block tiles of an
// m×n implicit GEMM.
func tileUtil(m, n int) float64 {
	return float64(m) / float64(igemmBM*ceilDiv(m, igemmBM)) * float64(n) / float64(igemmBN*ceilDiv(n, igemmBN))
}

func (d *Device) convAlgoFor(p ConvPass, g geom.ConvGeom) ConvAlgo {
	var m, n, k int
	switch p {
	case ConvFwd:
		m, n, k = g.N*g.P()*g.Q(), g.K, g.C*g.R*g.S
	case ConvBwdData:
		m, n, k = g.N*g.H*g.W, g.C, g.K*g.R*g.S
	default:
		m, n, k = g.C*g.R*g.S, g.K, g.N*g.P()*g.Q()
	}
	switch {
	case m < 1 || n < 1 || tileUtil(m, n) < igemmMinUtil || k < igemmMinK:
		return ConvDirect
	case d.precision == BF16 && ConvIGemmBF16.HasPass(p) && d.convAlgoAvailable(ConvIGemmBF16) && packedFits(p, g, packedBF16.chanAlign):
		return ConvIGemmBF16
	case (d.precision == TF32 || d.precision == BF16) && d.convAlgoAvailable(ConvIGemmTF32):
		return ConvIGemmTF32
	case d.convAlgoAvailable(ConvIGemm):
		return ConvIGemm
	}
	return ConvDirect
}

// The packed-pipeline kernels beside the TF32 v3/v5 kernels. TF32 has two
// kernels for each pass: v3 (bwd-data with a stride > 1: v5), which reads
// the caller's NCHW/KCRS float32 buffers, and v8 (forward), v9 (bwd-data)
// or v10 (bwd-filter), which first packs its operands channels-last
// (packing kernels, about one read and one write of each operand) and
// then runs the cp.async/ldmatrix pipeline on 128×128 tiles with k padded
// to the 16-byte chunk (C or K rounded up to a multiple of 4). The
// dispatcher takes the packed kernel (pipeWins) when
//
//	the device has loaded it (its minimum compute capability, convVariants),
//	its packed copies fit (packedFits), and
//	issue(packed) ≤ issue(v3 or v5),
//
// with issue(kernel) = HMMAs · (1 + mmaOther[kernel]) the issue slots of
// its main loops: the HMMA count of its padded tiles (tensorMMAs: every
// block tile's M×N×K over the MACs of one mma) times one plus its main
// loop's other SASS instructions per HMMA (RESOURCES.md). v5 counts one
// GEMM per stride phase over ⌈R/sh⌉·⌈S/sw⌉ taps; v9 counts every tap (it
// multiplies the zeros a stride leaves). The packing launches and the SM
// fill are left out. A function of the shape only, so the bits of a
// result do not depend on the device beyond its compute capability.

// pipeKernel is the packed-pipeline kernel of pass p of algorithm a (−1
// for none): every kernel of ConvIGemmBF16, v8/v9/v10 of ConvIGemmTF32.
func pipeKernel(a ConvAlgo, p ConvPass) kernelID {
	for _, v := range convVariants {
		if _, packed := packedConvs[v.id]; packed && v.algo == a && v.pass == p {
			return v.id
		}
	}
	return -1
}

// pipeWins reports whether packed kernel pk runs pass g in place of
// kernel id (the rule above).
func pipeWins(pk, id kernelID, g geom.ConvGeom) bool {
	v, _ := variantOf(pk)
	if !packedFits(v.pass, g, packedConvs[pk].chanAlign) {
		return false
	}
	return tensorIssue(pk, g) <= tensorIssue(id, g)
}

// mmaOther is the main loop's other SASS instructions per HMMA of each
// tensor-core kernel on sm_80 (ptxas 13.0; kernels/RESOURCES.md, "SASS
// mix", column other; TestMMAOther checks them).
var mmaOther = map[kernelID]float64{
	kConvFwdTF32:            13.00,
	kConvBwdDataTF32:        29.38,
	kConvBwdFilterTF32:      24.38,
	kConvBwdDataStridedTF32: 21.00,
	kConvFwdBF16:            2.75,
	kConvFwdTF32Pipe:        2.75,
	kConvBwdDataBF16:        3.48,
	kConvBwdFilterBF16:      3.56,
	kConvBwdDataTF32Pipe:    3.48,
	kConvBwdFilterTF32Pipe:  4.50,
}

// tensorIssue is the issue-slot estimate HMMAs·(1 + mmaOther) of tensor
// kernel id on g.
func tensorIssue(id kernelID, g geom.ConvGeom) float64 {
	return float64(tensorMMAs(id, g)) * (1 + mmaOther[id])
}

// tensorMMAs is the mma.sync count of tensor kernel id on g over its
// padded block tiles: ⌈M/BM⌉·⌈N/BN⌉·⌈L/BK⌉·BM·BN·BK multiply-adds (per
// stride phase for v5) over the 1024 of an m16n8k8 tf32 mma or the 2048
// of an m16n8k16 bf16 one.
func tensorMMAs(id kernelID, g geom.ConvGeom) int {
	v, _ := variantOf(id)
	var m, n, l int
	phases := 1
	pc, packed := packedConvs[id]
	cp, kp := g.C, g.K
	if packed {
		cp, kp = packedChans(g.C, pc.chanAlign), packedChans(g.K, pc.chanAlign)
	}
	switch v.pass {
	case ConvFwd:
		m, n, l = g.N*g.P()*g.Q(), g.K, g.R*g.S*cp
	case ConvBwdData:
		m, n, l = g.N*g.H*g.W, g.C, g.R*g.S*kp
		if v.strided {
			phases = g.StrideH * g.StrideW
			m = g.N * ceilDiv(g.H, g.StrideH) * ceilDiv(g.W, g.StrideW)
			l = g.K * ceilDiv(g.R, g.StrideH) * ceilDiv(g.S, g.StrideW)
		}
	default:
		m, n, l = g.C*g.R*g.S, g.K, g.N*g.P()*g.Q()
		if packed {
			m, n = g.K, g.R*g.S*cp
		}
	}
	t := v.tile
	macs := 1024
	if v.precision == BF16 {
		macs = 2048
	}
	return ceilDiv(m, t.M) * ceilDiv(n, t.N) * ceilDiv(l, t.K) * phases * (t.M * t.N * t.K / macs)
}

// The SM-fill model. A launch of B blocks, of which each SM runs o at a
// time (the kernel's occupancy), on a device of S SMs runs in ⌈B/(o·S)⌉
// waves; a wave takes as long as its slowest block, so a launch of one
// block per SM of a 2-per-SM kernel takes as long as a full wave: its fill
// is B/(⌈B/(o·S)⌉·o·S). The dispatcher's choices depend on the shape
// only (so the bits of a result do not depend on the device), so they use
// a nominal device, not the one they run on.
const (
	// nominalSMs is the SM count of the nominal device: an H100 SXM.
	nominalSMs = 132
	// sm90RegsPerSM and sm90ThreadsPerSM bound the occupancy on it.
	sm90RegsPerSM    = 65536
	sm90ThreadsPerSM = 2048
)

// pipeBlocksPerSM is the occupancy of the packed-pipeline kernels
// (v7–v10: __launch_bounds__(128, 2), 48 KiB of shared memory a block) on
// the nominal device.
const pipeBlocksPerSM = 2

// igemmBlocksPerSM is the occupancy of the FP32 implicit-GEMM kernels on
// the nominal device, from their registers per thread in
// kernels/RESOURCES.md (sm_90, ptxas 13.0; TestIGemmOccupancy checks it):
// the 128×64 tiles (v2, ≤ 128 registers) run 2 blocks of 256 threads per
// SM, the 128×128 tiles (v6, > 128 registers) 1. Shared memory (≤ 17 KB
// a block) does not bound them.
func igemmBlocksPerSM(wide bool) int {
	if wide {
		return 1
	}
	return 2
}

// waveSteps is the time of a launch of blocks blocks, wave to a wave, each
// taking steps steps: ⌈blocks/wave⌉·steps.
func waveSteps(blocks, wave, steps int) int {
	return ceilDiv(blocks, wave) * steps
}
