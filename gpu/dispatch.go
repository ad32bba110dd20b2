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
	// and v11 (bwd-data), v12 (forward) and v13 (bwd-filter) on the packed
	// cp.async pipeline (sm_80), which the dispatcher does not run (their
	// sum orders, hence their bits, differ from v2/v4/v6's, and the FP32
	// default's bits are pinned).
	ConvIGemm
	// ConvIGemmTF32 is the v3 and v5 kernels: the same implicit GEMM on
	// tensor cores (TF32; sm_80 and newer), and beside them v8, v9 and v10,
	// TF32 on the packed channels-last cp.async pipeline, which the
	// dispatcher runs where their modelled cost is less (cost.go).
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

// ConvAlgoFor returns the algorithm that Conv2DForward,
// Conv2DForwardReLU, Conv2DBackwardData and Conv2DBackwardFilter use for
// pass p of geometry g on this device at its current precision.
//
// The rule: of the candidate kernels of pass p, the one of least modelled
// cost (cost.go: waves · issue slots of a block, plus the split-K second
// pass and any other launch the kernel needs) on the nominal device (an H100 SXM, 132 SMs), the first in the
// variant table on a tie. The candidates are the direct kernel (v1) and
// the eligible kernels (loaded, packed copies that fit, the phase
// decomposition for a bwd-data stride > 1) of the precision's algorithm:
//
//	FP32   ConvIGemm: 128×64 tiles (v2, v4) and 128×128 tiles (v6), same bits
//	TF32   ConvIGemmTF32: v3/v5 and the packed pipeline v8/v9/v10
//	BF16   ConvIGemmBF16 (v7/v9/v10); where none is eligible, TF32's
//
// Within the chosen algorithm ConvKernelFor names the kernel: the same
// choice, except that the FP32 implicit GEMM chooses between its 128×64
// and 128×128 tiles (the same bits) on the device's own SM count where a
// GPU reports one. Every other choice, and the split counts of the split-K
// bwd-filter (wgradSplits, pipeWgradSplits), use the nominal device, so
// the bits of a result depend on the shape, the precision and (through
// SetPrecision) the compute capability only, never on timing or on the
// SM count: runs are reproducible. A pass with an empty GEMM (M or N < 1)
// runs the direct kernel.
//
// Small shapes are where SM fill decides (TestDispatchShapes works these
// by hand; BENCHMARKS.md, "Dispatcher", lists every choice with its
// modelled cost before and after this rule). At batch 64, MNIST conv2's
// forward keeps the implicit GEMM, 32 blocks on 132 SMs, by a narrow
// margin: the direct kernel's 256 blocks fill every SM but it pays the
// ReLU launch of Conv2DForwardReLU (80384 slots against 70400 + 14336);
// conv1's backward passes stay direct (C = 1: 2 % of a 128×64 tile used). The ResNet stem's
// backward-filter (C·R·S = 27) runs the split-K implicit GEMM, 128 splits
// on 128 blocks, rather than 432 direct blocks of 131072 terms; ResNet-50's
// stage 4 at batch 8 runs the 128×64 tiles on 32 blocks where the 128×128
// ones would fill 16 SMs. The model is an estimate from instruction counts
// (see cost.go for its sources and what it leaves out), not a timing.
func (d *Device) ConvAlgoFor(p ConvPass, g geom.ConvGeom) ConvAlgo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.convAlgoFor(p, g)
}

// passGEMM is the m×n output of pass p's implicit GEMM on g.
func passGEMM(p ConvPass, g geom.ConvGeom) (m, n int) {
	switch p {
	case ConvFwd:
		return g.N * g.P() * g.Q(), g.K
	case ConvBwdData:
		return g.N * g.H * g.W, g.C
	}
	return g.C * g.R * g.S, g.K
}

// candidateAlgos lists the algorithms ConvAlgoFor weighs for pass p of g
// at the device's precision, the precision's first, the direct kernels
// last (an array, so that a launch does not allocate).
func (d *Device) candidateAlgos(p ConvPass, g geom.ConvGeom) [2]ConvAlgo {
	if m, n := passGEMM(p, g); m < 1 || n < 1 {
		return [2]ConvAlgo{ConvDirect, ConvDirect}
	}
	a := ConvIGemm
	switch d.precision {
	case TF32:
		a = ConvIGemmTF32
	case BF16:
		a = ConvIGemmTF32
		if id, _ := d.bestKernel(ConvIGemmBF16, p, g, nominalSMs); id >= 0 {
			a = ConvIGemmBF16
		}
	}
	return [2]ConvAlgo{a, ConvDirect}
}

func (d *Device) convAlgoFor(p ConvPass, g geom.ConvGeom) ConvAlgo {
	best, bestCost := ConvDirect, 0.0
	found := false
	for _, a := range d.candidateAlgos(p, g) {
		id, c := d.bestKernel(a, p, g, nominalSMs)
		if id >= 0 && (!found || c < bestCost) {
			best, bestCost, found = a, c, true
		}
	}
	return best
}

// The packed-pipeline kernels beside the TF32 v3/v5 kernels. TF32 has two
// kernels for each pass: v3 (bwd-data with a stride > 1: v5), which reads
// the caller's NCHW/KCRS float32 buffers, and v8 (forward), v9 (bwd-data)
// or v10 (bwd-filter), which first packs its operands channels-last
// (packing kernels, about one read and one write of each operand) and
// then runs the cp.async/ldmatrix pipeline on 128×128 tiles with k padded
// to the 16-byte chunk (C or K rounded up to a multiple of 4). The
// dispatcher weighs them with the cost model (cost.go): issue slots of a
// block, HMMAs · (1 + mmaOther[kernel]), the main loop's other SASS
// instructions per HMMA (RESOURCES.md), times the waves of its blocks. v5
// counts one GEMM per stride phase over ⌈R/sh⌉·⌈S/sw⌉ taps; v9 counts
// every tap (it multiplies the zeros a stride leaves). The packing
// launches are left out.

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
	kConvBwdFilterBF16:      2.33,
	kConvBwdDataTF32Pipe:    3.48,
	kConvBwdFilterTF32Pipe:  3.03,
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
