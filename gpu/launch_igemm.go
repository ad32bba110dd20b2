package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the implicit-GEMM convolution kernels (kernels/igemm.cuh):
// FP32 conv2d_*_v2_igemm (128×64 tiles), conv2d_bwd_data_v4_igemm_strided
// (phase-decomposed), conv2d_*_v6_igemm_wide (128×128 tiles); TF32 (sm_80)
// conv2d_*_v3_igemm_tf32 and conv2d_bwd_data_v5_igemm_strided_tf32; and
// the convolution entry points that dispatch between them and the direct
// v1 kernels (ConvAlgoFor, ConvKernelFor).

// igemmGrid is the launch shape of implicit-GEMM kernel id with m rows, n
// columns and z phases or splits, in the variant's tiles.
func igemmGrid(id kernelID, m, n, z int) (grid, block Dim3) {
	v, _ := variantOf(id)
	return Dim3{ceilDiv(m, v.tile.M), ceilDiv(n, v.tile.N), z}, Dim3{igemmThreads, 1, 1}
}

// useWide reports whether an FP32 implicit GEMM with n columns suits the
// 128×128 tiles (v6): n ≥ 128 and at most 1/8 of the 128-wide tiles
// padding. They do the same arithmetic in the same order as the 128×64
// tiles (the same bits) with half the shared-memory and loader
// instructions per FMA. The dispatcher chooses between them with the cost
// model (cost.go); useWide fixes the blocks wgradSplits counts (so that
// the split count, hence dw's bits, depends on the shape only) and the
// shape's variant where an algorithm has no eligible kernel (passKernel).
func useWide(n int) bool {
	return n >= igemmBNWide && 8*n >= 7*igemmBNWide*ceilDiv(n, igemmBNWide)
}

// fwdKernel, dgradKernel and wgradKernel are the shape's variants of
// algorithm a for pass ConvFwd, ConvBwdData and ConvBwdFilter of g
// (convVariantFor): the wide tiles when the pass's N side suits them
// (useWide), for bwd-data with a stride > 1 the phase-decomposed kernel,
// where a has them. The dispatcher runs them only where a has no
// eligible kernel (kernelFor).
func fwdKernel(a ConvAlgo, g geom.ConvGeom) kernelID {
	return convVariantFor(a, ConvFwd, useWide(g.K), false)
}

func wgradKernel(a ConvAlgo, g geom.ConvGeom) kernelID {
	return convVariantFor(a, ConvBwdFilter, useWide(g.K), false)
}

// kernelFor is the kernel that pass p of algorithm a runs for g on this
// device: the eligible kernel of a of least modelled cost (bestKernel) on
// the nominal device, or for the FP32 implicit GEMM, whose 128×64 and
// 128×128 tiles give the same bits, on the device's SM count (fillSMs);
// the shape's variant (passKernel) where a has no eligible kernel. Never
// FP32's packed-pipeline kernels v11, v12 and v13, whose sum orders differ
// from v2/v4/v6's (the FP32 default's bits are pinned; fp32PipeKernel).
func (d *Device) kernelFor(a ConvAlgo, p ConvPass, g geom.ConvGeom) kernelID {
	sms := nominalSMs
	if a == ConvIGemm {
		sms = d.fillSMs()
	}
	if id, _ := d.bestKernel(a, p, g, sms); id >= 0 {
		return id
	}
	return passKernel(a, p, g)
}

// ConvKernelFor names the kernel that the dispatching entry point of pass
// p runs for g (ConvAlgoFor's algorithm, then its kernel of least modelled
// cost: the tile width, the packed pipeline and, for bwd-data, the phase
// decomposition of a stride > 1); with the split-K
// bwd-filter, conv2d_bwd_filter_v2_reduce follows it.
func (d *Device) ConvKernelFor(p ConvPass, g geom.ConvGeom) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return kernelTable[d.kernelFor(d.convAlgoFor(p, g), p, g)].name
}

// passKernel is the kernel of pass p of algorithm a for g: fwdKernel,
// dgradKernel or wgradKernel.
func passKernel(a ConvAlgo, p ConvPass, g geom.ConvGeom) kernelID {
	switch p {
	case ConvFwd:
		return fwdKernel(a, g)
	case ConvBwdData:
		return dgradKernel(a, g)
	}
	return wgradKernel(a, g)
}

// Split-K of the implicit-GEMM backward-filter pass.
const (
	// wgradMinTiles is the fewest 8-wide k-tiles (64 reduction terms) a
	// split gets: below that a block spends more on its prologue and its
	// epilogue (the partial sums' stores) than on the sum.
	wgradMinTiles = 8
	// wgradMaxSplits bounds the split count, hence the workspace
	// (splits·K·C·R·S floats) and the reduce pass's adds per weight.
	wgradMaxSplits = 128
	// wgradReduceLaunchSteps is the fixed cost of the second pass (a
	// dependent launch on the stream and its tail), in k-tile steps
	// (waveSteps): about 2 µs.
	wgradReduceLaunchSteps = 4
	// wgradReducePerStep is how many partial sums the second pass reads in
	// one k-tile step on the nominal device: about 0.55 µs of 2 TB/s.
	wgradReducePerStep = 1 << 18
)

// wgradSplits returns the split count and the k-tiles per split of the
// backward-filter implicit GEMM of g: a function of the shape only, so
// that the sum order, and with it every bit of dw, is the same on every
// device and every run. No split is empty.
//
// The rule is the SM-fill model of waveSteps on the FP32 kernel of g's
// shape (128×128 tiles when useWide(K), else 128×64, whichever the
// dispatcher then runs with these splits; the TF32 kernels use the same
// splits). It is the earlier, simpler form of the dispatcher's cost model
// (cost.go), which then weighs the split launch with the kernel's own
// occupancy and instructions: with T = ⌈N·P·Q/8⌉ k-tiles, B =
// ⌈C·R·S/128⌉·⌈K/BN⌉ blocks per split and W the blocks of a wave
// (igemmBlocksPerSM · nominalSMs), s splits cost
//
//	steps(s) = ⌈B·s/W⌉ · ⌈T/s⌉                                  the first pass, in waves of k-tile steps
//	         + [s > 1] · (4 + ⌈s·K·C·R·S / 2¹⁸⌉)                 the second pass: launch, partial sums read
//
// and the split count is the s in [1, min(T/wgradMinTiles, wgradMaxSplits,
// 2³¹/(K·C·R·S))] of least steps(s), the smallest on a tie: small layers
// split until a wave is full or the splits reach wgradMinTiles (MNIST
// conv2 at batch 64: 2 blocks of 512 k-tiles go to 64 splits of 8 tiles,
// 128 blocks, 13 steps, where the earlier rule's 16 splits on 32 blocks
// took 37), large ones only to round out their last wave (TestWgradSplitsShapes).
func wgradSplits(g geom.ConvGeom) (splits, tilesPerSplit int) {
	crs := g.C * g.R * g.S
	wide := useWide(g.K)
	bn := igemmBN
	if wide {
		bn = igemmBNWide
	}
	blocks := ceilDiv(crs, igemmBM) * ceilDiv(g.K, bn)
	return splitK(ceilDiv(g.N*g.P()*g.Q(), igemmBK), wgradMinTiles, blocks, igemmBlocksPerSM(wide)*nominalSMs, g.K*crs)
}

// pipeWgradSplits is wgradSplits for the packed bwd-filter kernels (v10):
// the same model on their k-tiles of bk reduction rows (at least 64 rows
// a split, as wgradMinTiles 8-row tiles), their ⌈K/128⌉·⌈R·S·Cp/128⌉
// blocks and pipeBlocksPerSM blocks per SM.
func pipeWgradSplits(g geom.ConvGeom, bk, cp int) (splits, tilesPerSplit int) {
	blocks := ceilDiv(g.K, packedBM) * ceilDiv(g.R*g.S*cp, packedBN)
	minTiles := max(wgradMinTiles*igemmBK/bk, 1)
	return splitK(ceilDiv(g.N*g.P()*g.Q(), bk), minTiles, blocks, pipeBlocksPerSM*nominalSMs, g.K*g.C*g.R*g.S)
}

// fp32PipeWgradSplits is pipeWgradSplits for FP32's
// conv2d_bwd_filter_v13_igemm_pipe: its occupancy, fp32PipeBlocksPerSM,
// and its splits' channels-last partial sums of K·R·S·Cp floats each (the
// workspace bound and the reduce's reads count them), cp = Cp.
func fp32PipeWgradSplits(g geom.ConvGeom, bk, cp int) (splits, tilesPerSplit int) {
	blocks := ceilDiv(g.K, packedBM) * ceilDiv(g.R*g.S*cp, packedBN)
	minTiles := max(wgradMinTiles*igemmBK/bk, 1)
	return splitK(ceilDiv(g.N*g.P()*g.Q(), bk), minTiles, blocks, fp32PipeBlocksPerSM*nominalSMs, g.K*g.R*g.S*cp)
}

// fp32PipeBlocksPerSM is the occupancy of FP32's packed kernels (v11, v12,
// v13: 256 threads, more than 128 registers; TestIGemmOccupancy checks
// it) on the nominal device.
const fp32PipeBlocksPerSM = 1

// packedWgradSplits is the split rule of packed bwd-filter kernel id:
// fp32PipeWgradSplits for v13, else pipeWgradSplits.
func packedWgradSplits(id kernelID, g geom.ConvGeom, bk, cp int) (splits, tilesPerSplit int) {
	if id == kConvBwdFilterPipe {
		return fp32PipeWgradSplits(g, bk, cp)
	}
	return pipeWgradSplits(g, bk, cp)
}

// splitK is the split rule of wgradSplits: tiles k-tiles, at least
// minTiles a split, blocks blocks per split, wave blocks a wave, weights
// partial sums per split.
func splitK(tiles, minTiles, blocks, wave, weights int) (splits, tilesPerSplit int) {
	limit := max(min(tiles/minTiles, wgradMaxSplits, maxElems/weights), 1)
	best, bestSteps := 1, waveSteps(blocks, wave, tiles)
	for s := 2; s <= limit; s++ {
		tps := ceilDiv(tiles, s)
		n := ceilDiv(tiles, tps) // the splits that are not empty
		steps := waveSteps(blocks*n, wave, tps) + wgradReduceLaunchSteps + ceilDiv(n*weights, wgradReducePerStep)
		if steps < bestSteps {
			best, bestSteps = n, steps
		}
	}
	tilesPerSplit = ceilDiv(tiles, best)
	return ceilDiv(tiles, tilesPerSplit), tilesPerSplit
}

// launchConv launches a conv kernel with pointer arguments ptrs, the
// geometry and the trailing int32 arguments more, without allocating.
func (d *Device) launchConv(id kernelID, grid, block Dim3, g geom.ConvGeom, ptrs []arg, more ...int) error {
	var a [maxArgs]arg
	n := copy(a[:], ptrs)
	// The 13 geometry arguments N,C,H,W,K,R,S,P,Q,sh,sw,ph,pw.
	for _, v := range [...]int{g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.P(), g.Q(), g.StrideH, g.StrideW, g.PadH, g.PadW} {
		a[n] = argI32(v)
		n++
	}
	for _, v := range more {
		a[n] = argI32(v)
		n++
	}
	return d.launch(id, grid, block, 0, a[:n]...)
}

// Conv2DForward computes the convolution with stride and zero padding
//
//	y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[n,c, p·sh − ph + r, q·sw − pw + s]
//
// x is (N,C,H,W), w is (K,C,R,S), b is (K) or nil (no bias), y is
// (N,K,P,Q), all float32. The algorithm is ConvAlgoFor(ConvFwd, g) and
// the kernel ConvKernelFor(ConvFwd, g), the one of least modelled cost
// (ConvAlgoFor): conv2d_fwd_v1_direct, conv2d_fwd_v2_igemm or
// conv2d_fwd_v6_igemm_wide (same bits), conv2d_fwd_v3_igemm_tf32 or
// conv2d_fwd_v8_igemm_tf32 (TF32), or (BF16) two packing launches then
// conv2d_fwd_v7_igemm_bf16.
func (d *Device) Conv2DForward(g geom.ConvGeom, x, w, b, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.convForwardAlgo(d.convAlgoFor(ConvFwd, g), g, x, w, b, y, false)
}

// Conv2DForwardReLU is Conv2DForward followed by ReLU, fused into the
// kernel's epilogue for the implicit-GEMM kernels:
//
//	y[n,k,p,q] = max(0, b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[…])
//
// with relu_fwd_v1's rules (NaN propagates, −0 becomes +0). With the
// direct algorithm it is conv2d_fwd_v1_direct then relu_fwd_v1 in place.
// The algorithm and the kernel are Conv2DForward's (ConvAlgoFor, whose
// model charges the direct kernel that second launch).
func (d *Device) Conv2DForwardReLU(g geom.ConvGeom, x, w, b, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.convForwardAlgo(d.convAlgoFor(ConvFwd, g), g, x, w, b, y, true)
}

// convForwardAlgo runs the forward pass with algorithm a; errors are
// wrapped with the kernel's name and g.
func (d *Device) convForwardAlgo(a ConvAlgo, g geom.ConvGeom, x, w, b, y *Buffer, relu bool) error {
	return d.convForwardKernel(d.kernelFor(a, ConvFwd, g), g, x, w, b, y, relu)
}

// convForwardKernel runs forward kernel id on g.
func (d *Device) convForwardKernel(id kernelID, g geom.ConvGeom, x, w, b, y *Buffer, relu bool) error {
	if err := convYCheck(id, g, y); err != nil {
		return err
	}
	if d.xValuesUnwritten(x) {
		return launchErr(id, g, errXCopyOnly)
	}
	pc, packed := packedConvs[id]
	if xh := d.xMade.take(x, g, pc); packed && xh != 0 { // x's copy made by the layer before (x_made.go)
		return d.convForwardPackedX(id, g, x, w, b, y, relu, xh, false)
	}
	if id == kConvFwd {
		if err := d.conv2DForward(g, x, w, b, y); err != nil {
			return launchErr(id, g, err)
		}
		if relu {
			if err := d.reluForward(y, y); err != nil {
				return launchErr(kReLUFwd, elemShape{g.YLen()}, err)
			}
		}
		return nil
	}
	if packed {
		return d.convForwardPacked(id, g, x, w, b, y, relu)
	}
	if err := d.needConv(g, "x", x, g.XLen(), "w", w, g.WLen(), "y", y, g.YLen()); err != nil {
		return launchErr(id, g, err)
	}
	if err := d.needOpt("b", b, Float32, g.K); err != nil {
		return launchErr(id, g, err)
	}
	r := 0
	if relu {
		r = 1
	}
	grid, block := igemmGrid(id, g.N*g.P()*g.Q(), g.K, 1)
	if err := d.launchConv(id, grid, block, g, []arg{argPtr(x), argPtr(w), argPtr(b), argPtr(y)}, r); err != nil {
		return launchErr(id, g, err)
	}
	return nil
}

// needConv validates g and three float32 buffers of the given lengths.
func (d *Device) needConv(g geom.ConvGeom, n1 string, b1 *Buffer, l1 int, n2 string, b2 *Buffer, l2 int,
	n3 string, b3 *Buffer, l3 int) error {
	return d.needConvT(g, n1, b1, l1, n2, b2, l2, n3, b3, l3, Float32)
}

// needConvT is needConv with the third buffer of type t3.
func (d *Device) needConvT(g geom.ConvGeom, n1 string, b1 *Buffer, l1 int, n2 string, b2 *Buffer, l2 int,
	n3 string, b3 *Buffer, l3 int, t3 DType) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need(n1, b1, Float32, l1); err != nil {
		return err
	}
	if err := d.need(n2, b2, Float32, l2); err != nil {
		return err
	}
	return d.need(n3, b3, t3, l3)
}

// Conv2DBackwardData overwrites dx with ∂E/∂x, the full correlation of dy
// with the rotated filters:
//
//	dx[n,c,h,w] = Σ_k Σ_r Σ_s dy[n,k,p,q] · w[k,c,r,s],
//	p = (h + ph − r)/sh, q = (w + pw − s)/sw when divisible and in range.
//
// dy is (N,K,P,Q), w is (K,C,R,S), dx is (N,C,H,W). The algorithm is
// chosen by ConvAlgoFor(ConvBwdData, g), the kernel by ConvKernelFor: with
// an implicit-GEMM algorithm and a stride > 1 the kernel is the
// phase-decomposed one (conv2d_bwd_data_v4_igemm_strided,
// _v5_igemm_strided_tf32, _v6_igemm_wide_strided), which skips the zero
// terms that the plain kernel multiplies (3/4 of them at stride 2); FP32
// with C ≥ 128 runs the 128×128 tiles (v6, the same bits as v2/v4).
func (d *Device) Conv2DBackwardData(g geom.ConvGeom, dy, w, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.dyWritten(ConvBwdData, g, dy); err != nil {
		return err
	}
	return d.convBackwardDataAlgo(d.convAlgoFor(ConvBwdData, g), g, dy, w, dx)
}

// dgradKernel is the backward-data kernel of algorithm a for g.
func dgradKernel(a ConvAlgo, g geom.ConvGeom) kernelID {
	return convVariantFor(a, ConvBwdData, useWide(g.C), g.StrideH > 1 || g.StrideW > 1)
}

// convBackwardDataAlgo runs the backward-data pass with algorithm a and
// its kernel for g.
func (d *Device) convBackwardDataAlgo(a ConvAlgo, g geom.ConvGeom, dy, w, dx *Buffer) error {
	return d.convBackwardDataKernel(d.kernelFor(a, ConvBwdData, g), g, dy, w, dx)
}

// convBackwardDataKernel runs backward-data kernel id on g.
func (d *Device) convBackwardDataKernel(id kernelID, g geom.ConvGeom, dy, w, dx *Buffer) error {
	if err := convDxCheck(id, g, dx); err != nil {
		return err
	}
	if id == kConvBwdData {
		if err := d.conv2DBackwardData(g, dy, w, dx); err != nil {
			return launchErr(id, g, err)
		}
		return nil
	}
	if _, ok := packedConvs[id]; ok {
		return d.convBackwardDataPacked(id, g, dy, w, dx)
	}
	if err := d.needConv(g, "dy", dy, g.YLen(), "w", w, g.WLen(), "dx", dx, g.XLen()); err != nil {
		return launchErr(id, g, err)
	}
	grid, block := igemmGrid(id, g.N*g.H*g.W, g.C, 1)
	if v, _ := variantOf(id); v.strided {
		grid, block = igemmGrid(id, g.N*ceilDiv(g.H, g.StrideH)*ceilDiv(g.W, g.StrideW), g.C, g.StrideH*g.StrideW)
	}
	if err := d.launchConv(id, grid, block, g, []arg{argPtr(dy), argPtr(w), argPtr(dx)}); err != nil {
		return launchErr(id, g, err)
	}
	return nil
}

// Conv2DBackwardFilter overwrites dw with ∂E/∂w:
//
//	dw[k,c,r,s] = Σ_n Σ_p Σ_q dy[n,k,p,q] · x[n,c, p·sh − ph + r, q·sw − pw + s]
//
// x is (N,C,H,W), dy is (N,K,P,Q), dw is (K,C,R,S). The algorithm is
// chosen by ConvAlgoFor(ConvBwdFilter, g), the kernel by ConvKernelFor
// (FP32 with K ≥ 128: the 128×128 tiles of v6, the same splits and bits as
// v2). Deterministic with every algorithm:
// the implicit-GEMM kernels split the N·P·Q sum into a number of ranges
// that depends on g only (wgradSplits), write each range's partial sums to
// a workspace from the device's buffer cache and add them in a fixed order
// (conv2d_bwd_filter_v2_reduce); no atomics.
func (d *Device) Conv2DBackwardFilter(g geom.ConvGeom, x, dy, dw *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.dyWritten(ConvBwdFilter, g, dy); err != nil {
		return err
	}
	return d.convBackwardFilterAlgo(d.convAlgoFor(ConvBwdFilter, g), g, x, dy, dw)
}

func (d *Device) convBackwardFilterAlgo(a ConvAlgo, g geom.ConvGeom, x, dy, dw *Buffer) error {
	return d.convBackwardFilterKernel(d.kernelFor(a, ConvBwdFilter, g), g, x, dy, dw)
}

// Conv2DBackwardFilterBias is Conv2DBackwardFilter and, when db is not
// nil, Conv2DBackwardBias (db (K) = Σ_n Σ_p Σ_q dy[n,k,p,q]), the same
// bits, the bias in the launch that ends the weight gradient where there
// is one to share: with the direct kernel, conv2d_bwd_filter_bias_v1 (one
// launch for both); with a split implicit GEMM, its second pass
// conv2d_bwd_filter_reduce_bias_v1; otherwise a launch of
// conv2d_bwd_bias_v1 of its own. The weight-gradient kernel is
// Conv2DBackwardFilter's (ConvKernelFor), so dw has its bits.
func (d *Device) Conv2DBackwardFilterBias(g geom.ConvGeom, x, dy, dw, db *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.dyWritten(ConvBwdFilter, g, dy); err != nil {
		return err
	}
	return d.convBackwardFilterKernelBias(d.kernelFor(d.convAlgoFor(ConvBwdFilter, g), ConvBwdFilter, g), g, x, dy, dw, db)
}

// dyWritten refuses a single backward pass p on a dy whose values
// BatchNormBackwardCopy left unwritten (only Conv2DBackward reads its
// copy); callers hold d.mu.
func (d *Device) dyWritten(p ConvPass, g geom.ConvGeom, dy *Buffer) error {
	if !d.valuesUnwritten(dy) {
		return nil
	}
	return launchErr(d.kernelFor(d.convAlgoFor(p, g), p, g), g,
		fmt.Errorf("dy holds only its channels-last copy (BatchNormBackwardCopy), which Conv2DBackward alone reads: %w", geom.ErrGeometry))
}

// Conv2DBackward runs both backward passes of a convolution:
// Conv2DBackwardFilterBias (dw, and db when it is not nil), then, when dx
// is not nil, Conv2DBackwardData: the same kernels, launched in the same
// order, and the same bits as the two calls. Where the dispatcher's
// kernels for the two passes read the same channels-last copy of dy (the
// packed kernels of one precision: TF32's v9 and v10, BF16's v9 and v10),
// dy is packed once for both: one packing launch fewer, and dy read and
// its copy written once fewer (in the analytic model, modelPeer, 30 % of
// the two passes' time on ResNet-50's 1×1 64→256 layer at N = 64 and 13 %
// over its suite at BF16; BENCHMARKS.md, "Conv2DBackward"). Where xk is
// not nil and holds the copy of x that Conv2DForwardKeep made for g, the
// weight gradient reads it instead of packing x (conv_keep.go). Where
// BatchNormBackwardKeep made dy's shared copy as it wrote dy, both read
// that copy instead of packing dy (bn_keep.go).
func (d *Device) Conv2DBackward(g geom.ConvGeom, x, dy, w, dw, db, dx, xk *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fid := d.kernelFor(d.convAlgoFor(ConvBwdFilter, g), ConvBwdFilter, g)
	did := kernelID(-1)
	if dx != nil {
		did = d.kernelFor(d.convAlgoFor(ConvBwdData, g), ConvBwdData, g)
		if err := convDxCheck(did, g, dx); err != nil { // before the weight gradient's launches
			return err
		}
	}
	pc, fpacked := packedConvs[fid]
	dpc, dpacked := packedConvs[did]
	shareDy := fpacked && dpacked && dpc == pc
	// dy's values unwritten (BatchNormBackwardCopy): only its copy may be
	// read, by both kernels, and no bias gradient.
	only := d.valuesUnwritten(dy)
	if only && (!shareDy || db != nil) {
		return launchErr(fid, g, fmt.Errorf("dy holds only its channels-last copy (BatchNormBackwardCopy), "+
			"which this pass cannot read alone (shared by both kernels: %v, bias gradient: %v): %w", shareDy, db != nil, geom.ErrGeometry))
	}
	// x's values unwritten (BatchNormForwardCopy): only its kept copy may
	// be read.
	xh := d.keptFor(xk, x, g, fid)
	if xh == 0 && d.xValuesUnwritten(x) {
		return launchErr(fid, g, errXCopyOnly)
	}
	var dyh DevicePtr
	if shareDy {
		// Every argument checked before the packing launch.
		if err := d.needConv(g, "x", x, g.XLen(), "dy", dy, g.YLen(), "dw", dw, g.WLen()); err != nil {
			return launchErr(fid, g, err)
		}
		if err := d.needOpt("db", db, Float32, g.K); err != nil {
			return launchErr(fid, g, err)
		}
		if err := d.needConvDx(did, g, dy, w, dx); err != nil {
			return launchErr(did, g, err)
		}
		if dyh = d.dyMade.take(dy, g, pc); dyh == 0 {
			if only {
				return launchErr(fid, g, fmt.Errorf("dy holds only a channels-last copy (BatchNormBackwardCopy) made for another "+
					"geometry or dropped since: its values were never written: %w", geom.ErrGeometry))
			}
			h, size, err := d.packDy(pc, g, dy)
			if err != nil {
				return launchErr(fid, g, err)
			}
			defer d.releaseScratchLocked(h, size)
			dyh = h
		}
	}
	d.dyMade = madeCopy{} // a copy made for this pass or another: read once at most
	if only {
		delete(d.dyOnly, dy.ptr) // read here
	}
	if err := d.convBackwardFilterKernelBiasFrom(fid, g, x, dy, dw, db, dyh, xh); err != nil || dx == nil {
		return err
	}
	if shareDy {
		return d.convBackwardDataPackedDy(did, g, dy, dyh, w, dx)
	}
	return d.convBackwardDataKernel(did, g, dy, w, dx)
}

// convBackwardFilterKernel runs bwd-filter kernel id on g (and the split-K
// second pass when g is split).
func (d *Device) convBackwardFilterKernel(id kernelID, g geom.ConvGeom, x, dy, dw *Buffer) error {
	return d.convBackwardFilterKernelBias(id, g, x, dy, dw, nil)
}

// convBackwardFilterKernelBias is convBackwardFilterKernel and, when db is
// not nil, the bias gradient (Conv2DBackwardFilterBias).
func (d *Device) convBackwardFilterKernelBias(id kernelID, g geom.ConvGeom, x, dy, dw, db *Buffer) error {
	return d.convBackwardFilterKernelBiasFrom(id, g, x, dy, dw, db, 0, 0)
}

// convBackwardFilterKernelBiasFrom is convBackwardFilterKernelBias; a
// packed kernel reads dyh and xh, the channels-last copies of dy and x,
// where they are not 0 instead of making them (Conv2DBackward).
func (d *Device) convBackwardFilterKernelBiasFrom(id kernelID, g geom.ConvGeom, x, dy, dw, db *Buffer, dyh, xh DevicePtr) error {
	if db != nil {
		if err := g.Validate(); err != nil {
			return launchErr(id, g, err)
		}
		if err := d.need("db", db, Float32, g.K); err != nil {
			return launchErr(id, g, err)
		}
	}
	if id == kConvBwdFilter {
		if db != nil {
			if err := d.conv2DBackwardFilterBias(g, x, dy, dw, db); err != nil {
				return launchErr(kConvBwdFilterBias, g, err)
			}
			return nil
		}
		if err := d.conv2DBackwardFilter(g, x, dy, dw); err != nil {
			return launchErr(id, g, err)
		}
		return nil
	}
	if _, ok := packedConvs[id]; ok {
		if err := d.convBackwardFilterPackedDy(id, g, x, dy, dyh, xh, dw); err != nil || db == nil {
			return err
		}
		if err := d.conv2DBackwardBias(g, dy, db); err != nil {
			return launchErr(kConvBwdBias, g, err)
		}
		return nil
	}
	if err := d.needConv(g, "x", x, g.XLen(), "dy", dy, g.YLen(), "dw", dw, g.WLen()); err != nil {
		return launchErr(id, g, err)
	}
	splits, tps := wgradSplits(g)
	crs := g.C * g.R * g.S
	grid, block := igemmGrid(id, crs, g.K, splits)
	if splits == 1 {
		if err := d.launchConv(id, grid, block, g, []arg{argPtr(x), argPtr(dy), argPtr(dw)}, tps); err != nil {
			return launchErr(id, g, err)
		}
		if db != nil {
			if err := d.conv2DBackwardBias(g, dy, db); err != nil {
				return launchErr(kConvBwdBias, g, err)
			}
		}
		return nil
	}
	ws, size, err := d.scratchLocked(splits * g.K * crs)
	if err != nil {
		return launchErr(id, g, err)
	}
	// Launches are stream-ordered: the workspace may go back to the cache
	// as soon as the second pass is queued.
	defer d.releaseScratchLocked(ws, size)
	if err := d.launchConv(id, grid, block, g, []arg{argPtr(x), argPtr(dy), argDev(ws)}, tps); err != nil {
		return launchErr(id, g, err)
	}
	n := g.K * crs
	rg, rb := linear(n)
	if db != nil {
		rg.X += g.K
		if err := d.launch(kConvBwdFilterReduceBias, rg, rb, 0, argDev(ws), argPtr(dw), argPtr(dy), argPtr(db),
			argI32(splits), argI32(n), argI32(g.N), argI32(g.K), argI32(g.P()*g.Q())); err != nil {
			return launchErr(kConvBwdFilterReduceBias, g, err)
		}
		return nil
	}
	if err := d.launch(kConvBwdFilterReduce, rg, rb, 0, argDev(ws), argPtr(dw), argI32(splits), argI32(n)); err != nil {
		return launchErr(kConvBwdFilterReduce, g, err)
	}
	return nil
}

// scratchLocked returns the address and rounded size of n uninitialised
// float32 elements from the device's buffer cache (or the driver); the
// caller holds d.mu and gives them back with releaseScratchLocked. In a
// steady state (the same shapes every step) this allocates nothing on the
// host or the device.
func (d *Device) scratchLocked(n int) (DevicePtr, int64, error) {
	if d.closed {
		return 0, 0, fmt.Errorf("device %w", ErrClosed)
	}
	size := (int64(n)*4 + allocAlign - 1) / allocAlign * allocAlign
	if free := d.pool[size]; len(free) > 0 {
		p := free[len(free)-1]
		d.pool[size] = free[:len(free)-1]
		d.stats.Reuses++
		d.stats.BytesCached -= size
		d.stats.BytesInUse += size
		return p, size, nil
	}
	p, err := d.drv.MemAlloc(size)
	if err != nil {
		return 0, 0, fmt.Errorf("workspace of %d floats: %w", n, err)
	}
	d.stats.Allocs++
	d.stats.BytesInUse += size
	return p, size, nil
}

// releaseScratchLocked returns a workspace from scratchLocked to the cache;
// while a graph is being recorded it is kept for the graph instead (its
// replays write it), and goes back to the cache when the graph is
// destroyed.
func (d *Device) releaseScratchLocked(p DevicePtr, size int64) {
	if d.capturing {
		d.held = append(d.held, heldScratch{p, size})
		return
	}
	d.pool[size] = append(d.pool[size], p)
	d.stats.BytesInUse -= size
	d.stats.BytesCached += size
}
