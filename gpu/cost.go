package gpu

import "github.com/convtrain/convtrain/cpuref/geom"

// The dispatcher's cost model: one estimate, in issue slots, of every
// convolution kernel on every shape, which ConvAlgoFor and ConvKernelFor
// minimise. It is a model, not a measurement: it counts instructions and
// waves and charges each extra launch a fixed time, and leaves out memory
// bandwidth, latency and the packing kernels' own work. No GPU has timed it (BENCHMARKS.md, "Dispatcher").
//
// A launch of B blocks of a kernel that runs o blocks per SM (its
// occupancy), on a device of S SMs, costs
//
//	cost = ⌈B/(o·S)⌉ · min(o, ⌈B/S⌉) · slots(block)  +  reduce  +  launches · 14336
//
// issue slots on its busiest SM: ⌈B/(o·S)⌉ waves, in each of which an SM
// issues the instructions of the min(o, ⌈B/S⌉) blocks it holds (a launch
// of fewer than o·S blocks spreads them one an SM first), so a launch that
// fills few SMs costs as much as its slowest SM. slots(block) is the warp
// instructions of one block:
//
//	direct fwd         8 warps · C·R·S taps · 22 thread instructions a tap
//	direct bwd-data    8 warps · K·R·S taps · 29
//	direct bwd-filter  8 warps · (⌈N·P·Q/256⌉ · 38 + 82)   (one block per weight)
//	FP32 implicit GEMM BM·BN·BK · k-tiles · ipf / 32       (fp32InstrPerFMA)
//	tensor cores       BM·BN·BK · k-tiles / MACs an mma · (1 + mmaOther)
//
// with k-tiles = ⌈L/BK⌉ (L the pass's reduction length; for the
// phase-decomposed kernels the mean over the phases of each phase's
// k-tiles, phaseKTiles), or the k-tiles of one split for the
// split-K bwd-filter (wgradSplits, pipeWgradSplits), which adds the second
// pass: reduce = (4 + ⌈splits·K·C·R·S/2¹⁸⌉) · 3584 slots (the reduce
// constants of wgradSplits in k-tile steps of the 128×64 FP32 kernel: a
// dependent launch and the partial sums' reads). launches counts the other
// launches beside the kernel's own, each as the reduce's launch, 4 steps
// (14336 slots, about 2 µs): the two packing launches of a packed kernel
// (its operands' channels-last copies; their traffic is left out) and the
// separate ReLU launch of the direct forward under Conv2DForwardReLU (the
// implicit GEMMs fuse the ReLU into their epilogue). The direct forward
// pays it under Conv2DForward too: both entry points must run the same
// kernel, so that fusing a ReLU into its convolution (the step plan of
// host/nn) never changes a result's bits.
// The per-instruction figures are the simulator's thread instructions
// per FMA (PTX; BENCHMARKS.md, "Kernels") for the FP32 kernels and
// ptxas's SASS instructions per HMMA (kernels/RESOURCES.md) for the tensor
// kernels: the two are not the same unit, so the model compares FP32
// kernels with FP32 kernels and tensor kernels with tensor kernels, and
// both with the direct kernels only as an estimate.

// directBlocksPerSM is the occupancy of the direct kernels (v1: 29–32
// registers, 256 threads) on the nominal device: 8 blocks, the thread
// limit.
const directBlocksPerSM = 8

// tf32BlocksPerSM is the occupancy of the TF32 v3/v5 kernels (112–124
// registers, 256 threads; RESOURCES.md sm_90): 2 blocks.
const tf32BlocksPerSM = 2

// The direct kernels' thread instructions, from the simulator (BENCHMARKS.md,
// "Kernels", MNIST at N = 4): per tap for forward (22.5 on conv1) and
// backward-data (28.8 on conv1); backward-filter, whose 256 threads sum a
// weight's N·P·Q terms then reduce in shared memory, 120 on conv2 (one term
// a thread) and 47.1 on conv1 (9 terms a thread: 424 a thread), solved for
// 38 a term and 82 fixed.
const (
	directFwdInstrPerTap    = 22
	directDgradInstrPerTap  = 29
	directWgradInstrPerTerm = 38
	directWgradInstrFixed   = 82
)

// fp32InstrPerFMA is the FP32 implicit GEMMs' thread instructions per
// multiply-add of their padded tiles: the simulator's instructions per
// useful FMA on the ResNet-50 3×3 128-channel shape at N = 1 (BENCHMARKS.md,
// "Kernels": M = 784 of 896 tile rows, so fwd and bwd-data ×7/8; bwd-filter
// fills its tiles) — v2 1.79, 2.14, 1.75; v6 1.51, 1.72, 1.48. The
// phase-decomposed kernels take their unphased kernel's figure.
var fp32InstrPerFMA = map[kernelID]float64{
	kConvFwdIGemm:           1.57,
	kConvBwdDataIGemm:       1.87,
	kConvBwdDataStrided:     1.87,
	kConvBwdFilterIGemm:     1.75,
	kConvFwdWide:            1.32,
	kConvBwdDataWide:        1.51,
	kConvBwdDataWideStrided: 1.51,
	kConvBwdFilterWide:      1.48,
	// FP32's packed pipeline, on the same shape (v11 1.43, v12 1.51, v13
	// 1.45 per useful FMA; BENCHMARKS.md, "FP32 bwd-data on the packed
	// pipeline" and "FP32 forward and bwd-filter on the packed pipeline"),
	// ×7/8 for fwd and bwd-data. The dispatcher never runs them
	// (fp32PipeKernel); the figures serve the model's estimates
	// (BenchmarkConvPeer's model-us).
	kConvBwdDataPipe:   1.25,
	kConvFwdPipe:       1.32,
	kConvBwdFilterPipe: 1.45,
}

// launchSlots is the model's cost of one more launch on the stream:
// wgradReduceLaunchSteps k-tile steps.
var launchSlots = wgradReduceLaunchSteps * reduceStepSlots

// reduceStepSlots is the issue slots of one k-tile step of the 128×64
// FP32 bwd-filter kernel, the unit of wgradSplits' reduce constants.
var reduceStepSlots = float64(igemmBM*igemmBN*igemmBK) * fp32InstrPerFMA[kConvBwdFilterIGemm] / 32

// launchCost is the model's view of one kernel on one shape.
type launchCost struct {
	blocks     int     // blocks of the (first) launch, splits included
	perSM      int     // occupancy o
	splits     int     // split-K splits (1: none)
	kTiles     int     // k-tiles a block sums
	blockSlots float64 // warp instructions of one block
	reduce     float64 // the split-K second pass, in slots
	launches   int     // other launches: packing, the direct forward's ReLU
}

// waves is ⌈B/(o·S)⌉ on sms SMs.
func (c launchCost) waves(sms int) int { return ceilDiv(c.blocks, c.perSM*sms) }

// cost is the model's estimate in issue slots on sms SMs (the formula
// above).
func (c launchCost) cost(sms int) float64 {
	if c.blocks < 1 {
		return 0
	}
	return float64(c.waves(sms)*min(c.perSM, ceilDiv(c.blocks, sms)))*c.blockSlots + c.reduce + float64(c.launches)*launchSlots
}

// packLaunches is the packing launches of a packed kernel: one for each
// operand it reads channels-last.
const packLaunches = 2

// gemmDims is the implicit GEMM of variant v on g: m rows, n columns
// (the tile's M and N sides), reduction length l, stride phases.
func gemmDims(v convVariant, g geom.ConvGeom) (m, n, l, phases int) {
	phases = 1
	pc, packed := packedConvs[v.id]
	cp, kp := g.C, g.K
	if packed {
		cp, kp = packedChans(g.C, pc.chanAlign), packedChans(g.K, pc.chanAlign)
	}
	switch v.pass {
	case ConvFwd:
		return g.N * g.P() * g.Q(), g.K, g.R * g.S * cp, 1
	case ConvBwdData:
		if v.strided {
			phases = g.StrideH * g.StrideW
			return g.N * ceilDiv(g.H, g.StrideH) * ceilDiv(g.W, g.StrideW), g.C, g.K * ceilDiv(g.R, g.StrideH) * ceilDiv(g.S, g.StrideW), phases
		}
		return g.N * g.H * g.W, g.C, g.R * g.S * kp, 1
	}
	if packed {
		return g.K, g.R * g.S * cp, g.N * g.P() * g.Q(), 1
	}
	return g.C * g.R * g.S, g.K, g.N * g.P() * g.Q(), 1
}

// phaseKTiles is the mean k-tiles of a block of a phase-decomposed
// bwd-data kernel on g (tiles bk deep): phase (a, b) sums K·Ru·Sv terms,
// Ru = ⌈(R−r0)/sh⌉ with r0 = (a + ph) mod sh (0 when r0 ≥ R), Sv likewise
// (kernels/igemm.cuh, Phase), and a phase without taps writes zeros
// without a k-tile; so a 1×1 kernel of stride 2 costs one phase's
// reduction, not four.
func phaseKTiles(g geom.ConvGeom, bk int) int {
	taps := func(a, stride, pad, r int) int {
		if r0 := (a + pad) % stride; r0 < r {
			return ceilDiv(r-r0, stride)
		}
		return 0
	}
	total := 0
	for a := range g.StrideH {
		for b := range g.StrideW {
			total += ceilDiv(g.K*taps(a, g.StrideH, g.PadH, g.R)*taps(b, g.StrideW, g.PadW, g.S), bk)
		}
	}
	return ceilDiv(total, g.StrideH*g.StrideW)
}

// convCost is the model's view of kernel id on g.
func convCost(id kernelID, g geom.ConvGeom) launchCost {
	v, _ := variantOf(id)
	c := launchCost{splits: 1}
	if v.algo == ConvDirect {
		c.perSM = directBlocksPerSM
		warps := float64(blockSize / 32)
		switch v.pass {
		case ConvFwd:
			c.blocks, c.kTiles = ceilDiv(g.YLen(), blockSize), g.C*g.R*g.S
			c.blockSlots = warps * float64(c.kTiles) * directFwdInstrPerTap
			c.launches = 1 // relu_fwd_v1 under Conv2DForwardReLU
		case ConvBwdData:
			c.blocks, c.kTiles = ceilDiv(g.XLen(), blockSize), g.K*g.R*g.S
			c.blockSlots = warps * float64(c.kTiles) * directDgradInstrPerTap
		default:
			c.blocks, c.kTiles = g.WLen(), ceilDiv(g.N*g.P()*g.Q(), blockSize)
			c.blockSlots = warps * float64(c.kTiles*directWgradInstrPerTerm+directWgradInstrFixed)
		}
		return c
	}
	m, n, l, phases := gemmDims(v, g)
	t := v.tile
	c.kTiles = ceilDiv(l, t.K)
	if phases > 1 {
		c.kTiles = phaseKTiles(g, t.K)
	}
	pc, packed := packedConvs[id]
	if packed {
		c.launches = packLaunches
	}
	if v.pass == ConvBwdFilter {
		if packed {
			c.splits, c.kTiles = packedWgradSplits(id, g, t.K, packedChans(g.C, pc.chanAlign))
		} else {
			c.splits, c.kTiles = wgradSplits(g)
		}
	}
	c.blocks = ceilDiv(m, t.M) * ceilDiv(n, t.N) * phases * c.splits
	fmas := float64(t.M * t.N * t.K * c.kTiles)
	switch {
	case v.precision == FP32 && packed:
		c.perSM = fp32PipeBlocksPerSM
		c.blockSlots = fmas * fp32InstrPerFMA[id] / 32
	case v.precision == FP32:
		c.perSM = igemmBlocksPerSM(v.wide)
		c.blockSlots = fmas * fp32InstrPerFMA[id] / 32
	default:
		c.perSM = tf32BlocksPerSM
		if packed {
			c.perSM = pipeBlocksPerSM
		}
		macs := 1024.0
		if v.precision == BF16 {
			macs = 2048
		}
		c.blockSlots = fmas / macs * (1 + mmaOther[id])
	}
	if c.splits > 1 {
		c.reduce = float64(wgradReduceLaunchSteps+ceilDiv(c.splits*g.K*g.C*g.R*g.S, wgradReducePerStep)) * reduceStepSlots
	}
	return c
}

// eligible reports whether kernel id may run pass p of g on this device:
// it is loaded, it is of pass p, it is not one of FP32's packed kernels
// v11, v12, v13 (other sum orders than v2/v4/v6's, and the FP32 default's
// bits are pinned: fp32PipeKernel), its packed
// copies fit (packedFits), and a bwd-data kernel that is not packed is
// phase-decomposed exactly when a stride is > 1.
func (d *Device) eligible(id kernelID, p ConvPass, g geom.ConvGeom) bool {
	v, ok := variantOf(id)
	if !ok || v.pass != p || d.fns[id] == nil || fp32PipeKernel(id) {
		return false
	}
	if pc, packed := packedConvs[id]; packed {
		return packedFits(p, g, pc.chanAlign)
	}
	if p == ConvBwdData && v.algo != ConvDirect {
		return v.strided == (g.StrideH > 1 || g.StrideW > 1)
	}
	return true
}

// fp32PipeKernel reports whether id is one of FP32's kernels on the packed
// cp.async pipeline (conv2d_bwd_data_v11_igemm_pipe,
// conv2d_fwd_v12_igemm_pipe, conv2d_bwd_filter_v13_igemm_pipe), which
// sum in channels-last order, k = (r, s, c), where v2/v4/v6 sum over (c,
// r, s): the dispatcher never runs them, so that FP32's default bits stay
// those of v2/v4/v6 (host/train's pinned results).
func fp32PipeKernel(id kernelID) bool {
	v, ok := variantOf(id)
	_, packed := packedConvs[id]
	return ok && packed && v.precision == FP32
}

// bestKernel is the eligible kernel of algorithm a for pass p of g of
// least modelled cost on sms SMs (the first in convVariants on a tie), and
// that cost; −1 when a has none.
// The answers are cached on the device (a dispatch costs about 1 µs of
// model arithmetic, a cache hit a map lookup); callers hold d.mu.
func (d *Device) bestKernel(a ConvAlgo, p ConvPass, g geom.ConvGeom, sms int) (kernelID, float64) {
	key := dispatchKey{a, p, g, sms}
	if c, ok := d.dispatchCache[key]; ok {
		return c.id, c.cost
	}
	id, cost := d.bestKernelUncached(a, p, g, sms)
	if d.dispatchCache == nil || len(d.dispatchCache) >= maxDispatchCache {
		d.dispatchCache = make(map[dispatchKey]dispatchChoice)
	}
	d.dispatchCache[key] = dispatchChoice{id, cost}
	return id, cost
}

// dispatchKey and dispatchChoice are an entry of the device's cache of
// bestKernel's answers, which depend on nothing else (the loaded kernels
// are fixed when the device opens).
type dispatchKey struct {
	a   ConvAlgo
	p   ConvPass
	g   geom.ConvGeom
	sms int
}

type dispatchChoice struct {
	id   kernelID
	cost float64
}

// maxDispatchCache bounds the cache: past it, it starts again empty.
const maxDispatchCache = 4096

func (d *Device) bestKernelUncached(a ConvAlgo, p ConvPass, g geom.ConvGeom, sms int) (kernelID, float64) {
	best, bestCost := kernelID(-1), 0.0
	for _, v := range convVariants {
		if v.algo != a || !d.eligible(v.id, p, g) {
			continue
		}
		if c := convCost(v.id, g).cost(sms); best < 0 || c < bestCost {
			best, bestCost = v.id, c
		}
	}
	return best, bestCost
}

// fillSMs is the SM count the dispatcher models for the choices that do
// not change a result's bits (the FP32 implicit GEMM's tile width): the
// device's own on a GPU that reports it, the nominal device's on the
// simulator (whose "SMs" are its workers).
func (d *Device) fillSMs() int {
	if d.sim == nil && d.info.SMs > 0 {
		return d.info.SMs
	}
	return nominalSMs
}
