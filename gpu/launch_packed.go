package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the channels-last tensor-core convolutions, which read
// packed copies of their operands: BF16 (kernels/conv_igemm_bf16.cu:
// pack_nhwc_bf16_v1, conv2d_fwd_v7_igemm_bf16; kernels/conv_igemm_bf16_bwd.cu:
// pack_crsk_flip_bf16_v1, conv2d_bwd_data_v9_igemm_bf16,
// conv2d_bwd_filter_v10_igemm_bf16) and TF32 on the same pipeline
// (kernels/conv_igemm_tf32_pipe.cu, conv_igemm_tf32_bwd.cu: the _tf32
// kernels of the same names), sm_80; their operands packed by the
// coalesced pack_transpose_{bf16,tf32}_v2 (kernels/pack.cu) where its grid
// fits, else by the v1 packing kernels; and FP32 on the same pipeline
// (kernels/conv_igemm_fp32_pipe.cu: conv2d_bwd_data_v11_igemm_pipe,
// conv2d_fwd_v12_igemm_pipe, conv2d_bwd_filter_v13_igemm_pipe; 256
// threads), its operands packed by pack_transpose_f32_v2 only.

// Tiles and block of the packed kernels (kBM, kBN, kBK, kThreads in their
// sources; TestConvVariantTable checks them).
const (
	packedBM      = 128
	packedBN      = 128
	packedThreads = 128
	bf16BK        = 32
	tf32PipeBK    = 16
)

var (
	tile128x128x32 = tileShape{packedBM, packedBN, bf16BK}
	tile128x128x16 = tileShape{packedBM, packedBN, tf32PipeBK}
)

// packedConv describes a kernel over packed operands: its channels-last
// packing kernel (x, dy; and w for the forward pass), the packing kernel
// of bwd-data's flipped, transposed filters, the channel padding (one
// 16-byte cp.async chunk; for FP32's v11 one k-tile, 16 floats, so that
// a k-tile lies in one tap) and the bytes per packed element.
type packedConv struct {
	pack      kernelID
	flip      kernelID
	chanAlign int
	elemBytes int
	// transpose is the coalesced packing kernel (pack_transpose_*_v2)
	// that does the work of pack and flip where its grid fits
	// (transposeFits); FP32 has no v1 packing (pack, flip −1).
	transpose kernelID
	threads   int // block.x of the conv kernels
}

var (
	packedBF16 = packedConv{kPackNHWCBF16, kPackCRSKFlipBF16, 8, 2, kPackTransposeBF16, packedThreads}
	packedTF32 = packedConv{kPackNHWCTF32, kPackCRSKFlipTF32, 4, 4, kPackTransposeTF32, packedThreads}
	packedF32  = packedConv{-1, -2, 16, 4, kPackTransposeF32, 256}
)

// packedConvs lists the kernels that read packed copies.
var packedConvs = map[kernelID]packedConv{
	kConvFwdBF16:           packedBF16,
	kConvBwdDataBF16:       packedBF16,
	kConvBwdFilterBF16:     packedBF16,
	kConvFwdTF32Pipe:       packedTF32,
	kConvBwdDataTF32Pipe:   packedTF32,
	kConvBwdFilterTF32Pipe: packedTF32,
	kConvBwdDataPipe:       packedF32,
	kConvFwdPipe:           packedF32,
	kConvBwdFilterPipe:     packedF32,
}

// packedFits reports whether the packed copies that pass p of g needs
// (channels padded to align) have fewer than 2³¹ elements each, as the
// packed kernels' 32-bit index arithmetic requires, and bwd-filter's
// split-K workspace (one split at least) fewer than 2³¹ floats.
func packedFits(p ConvPass, g geom.ConvGeom, align int) bool {
	xs, ws, ys := g.N*g.H*g.W, g.K*g.R*g.S, g.N*g.P()*g.Q()
	cp, kp := packedChans(g.C, align), packedChans(g.K, align)
	switch p {
	case ConvFwd:
		return xs <= maxElems/cp && ws <= maxElems/cp
	case ConvBwdData:
		return ys <= maxElems/kp && g.C*g.R*g.S <= maxElems/kp
	}
	return ys <= maxElems/kp && xs <= maxElems/cp && g.R*g.S*cp <= maxElems/g.K
}

// variantThreads is block.x of conv variant v.
func variantThreads(v convVariant) int {
	if pc, ok := packedConvs[v.id]; ok {
		return pc.threads
	}
	return igemmThreads
}

// packedChans is Cp, the channel count c rounded up to a multiple of align.
func packedChans(c, align int) int { return ceilDiv(c, align) * align }

// packedLen is the element count of packing kernel id's output: n·hw·cp,
// or c·hw·cp for a flip kernel (the filters transposed to (c,hw,cp)).
func packedLen(id kernelID, n, c, hw, cp int) int {
	if id == kPackCRSKFlipBF16 || id == kPackCRSKFlipTF32 {
		return c * hw * cp
	}
	return n * hw * cp
}

// packShape names a packing launch in errors.
type packShape struct{ n, c, hw, cp int }

// packLocked packs src, (n,c,hw) float32, into dst as (n,hw,cp) with zero
// channels past c, with packing kernel id (pack_nhwc_bf16_v1: two
// channels per thread; pack_nhwc_tf32_v1: one); with a flip kernel
// (pack_crsk_flip_*_v1) it packs w, (n=K, c=C, hw=R·S), into dst as
// (C,R·S,cp) with the taps reversed and zero filters past K.
func (d *Device) packLocked(id kernelID, src, dst DevicePtr, n, c, hw, cp int) error {
	total := packedLen(id, n, c, hw, cp)
	if id == kPackNHWCBF16 || id == kPackCRSKFlipBF16 {
		total /= 2
	}
	grid, block := linear(total)
	if err := d.launch(id, grid, block, 0, argDev(src), argDev(dst), argI32(n), argI32(c), argI32(hw), argI32(cp)); err != nil {
		return launchErr(id, packShape{n, c, hw, cp}, err)
	}
	return nil
}

// convForwardPacked runs forward kernel id of packedConvs (v7, v8, v12):
// x and w are rounded (BF16: to bfloat16, to nearest, ties to even,
// cpuref.RoundBF16; TF32: cvt.rna as the v3 kernels; FP32: copied as they
// are) into channels-last workspaces with the
// channels padded to the kernel's chunk, then the kernel multiplies them
// with float32 accumulation and adds the bias (and ReLU when relu) in
// float32. The workspaces come from the buffer cache and go back to it
// once the launches are queued.
func (d *Device) convForwardPacked(id kernelID, g geom.ConvGeom, x, w, b, y *Buffer, relu bool) error {
	return d.convForwardPackedX(id, g, x, w, b, y, relu, 0, true)
}

// convForwardPackedX is convForwardPacked, packing x into xh (which holds
// its packed elements: keepLen) where it is not 0 instead of a workspace,
// or, unless packX, reading the copy xh holds.
func (d *Device) convForwardPackedX(id kernelID, g geom.ConvGeom, x, w, b, y *Buffer, relu bool, xh DevicePtr, packX bool) error {
	pc := packedConvs[id]
	if err := d.needConvY(id, g, x, w, y); err != nil {
		return launchErr(id, g, err)
	}
	if err := d.needOpt("b", b, Float32, g.K); err != nil {
		return launchErr(id, g, err)
	}
	cp := packedChans(g.C, pc.chanAlign)
	xn, wn := g.N*g.H*g.W, g.K*g.R*g.S
	if xn > maxElems/cp || wn > maxElems/cp {
		return launchErr(id, g, fmt.Errorf("%w: the channels-last copies of x and w (%d channels padded to %d) need fewer than 2^31 elements each", geom.ErrGeometry, g.C, cp))
	}
	switch {
	case xh != 0 && packX:
		if err := d.packInto(pc, pc.pack, x.ptr, xh, g.N, g.C, g.H*g.W, cp); err != nil {
			return launchErr(id, g, err)
		}
	case xh == 0:
		h, xsize, err := d.packedScratch(pc, pc.pack, x.ptr, g.N, g.C, g.H*g.W, cp)
		if err != nil {
			return launchErr(id, g, err)
		}
		defer d.releaseScratchLocked(h, xsize)
		xh = h
	}
	wh, wsize, err := d.packedScratch(pc, pc.pack, w.ptr, g.K, g.C, g.R*g.S, cp)
	if err != nil {
		return launchErr(id, g, err)
	}
	defer d.releaseScratchLocked(wh, wsize)
	r := 0
	if relu {
		r = 1
	}
	grid := Dim3{ceilDiv(g.N*g.P()*g.Q(), packedBM), ceilDiv(g.K, packedBN), 1}
	k, _ := convY(id, y) // y as bfloat16 (y_bf16.go)
	if err := d.launchConv(k, grid, Dim3{pc.threads, 1, 1}, g, []arg{argDev(xh), argDev(wh), argPtr(b), argPtr(y)}, r, cp); err != nil {
		return launchErr(id, g, err)
	}
	return nil
}

// packedScratch packs src, (n,c,hw) float32, with kernel id (pc.pack or
// pc.flip) into a workspace of packed elements from the buffer cache; the
// caller releases it with releaseScratchLocked once the launches that
// read it are queued. Where its grid fits, the coalesced pc.transpose
// kernel does the work of id (the same bits; TestPackTransposeSameBits).
func (d *Device) packedScratch(pc packedConv, id kernelID, src DevicePtr, n, c, hw, cp int) (DevicePtr, int64, error) {
	elems := n * hw * cp
	if id == pc.flip {
		elems = c * hw * cp
	}
	p, size, err := d.scratchLocked(elems * pc.elemBytes / 4)
	if err != nil {
		return 0, 0, err
	}
	if err := d.packInto(pc, id, src, p, n, c, hw, cp); err != nil {
		d.releaseScratchLocked(p, size)
		return 0, 0, err
	}
	return p, size, nil
}

// packInto is packedScratch's packing into dst, which holds the packed
// elements.
func (d *Device) packInto(pc packedConv, id kernelID, src, dst DevicePtr, n, c, hw, cp int) error {
	// As a transpose: x is (n, rows = c, cols = hw); w is one matrix of
	// rows = K = n, cols = C·R·S = c·hw with the taps reversed.
	b, rows, cols, rev := n, c, hw, 1
	if id == pc.flip {
		b, rows, cols, rev = 1, n, c*hw, hw
	}
	switch {
	case d.fns[pc.transpose] != nil && transposeFits(b, cp):
		return d.transposeLocked(pc.transpose, src, dst, b, rows, cols, cp, rev)
	case id < 0:
		return fmt.Errorf("%w: %d batches of %d rows exceed %s's grid", geom.ErrGeometry, b, cp, kernelTable[pc.transpose].name)
	}
	return d.packLocked(id, src, dst, n, c, hw, cp)
}

// packDy packs dy, (N,K,P·Q) float32, into its channels-last copy
// (N,P·Q,Kp) for the backward kernels of pc: the one layout both the
// bwd-data and the bwd-filter kernel of pc read, so that Conv2DBackward
// packs it once for the two.
func (d *Device) packDy(pc packedConv, g geom.ConvGeom, dy *Buffer) (DevicePtr, int64, error) {
	return d.packedScratch(pc, pc.pack, dy.ptr, g.N, g.K, g.P()*g.Q(), packedChans(g.K, pc.chanAlign))
}

// packDyUnless is dyh where it is not 0 (a copy of dy the caller made),
// else dy's copy from packDy, with its size for releaseScratchLocked once
// the launches that read it are queued (0: nothing to release).
func (d *Device) packDyUnless(dyh DevicePtr, pc packedConv, g geom.ConvGeom, dy *Buffer) (DevicePtr, int64, error) {
	if dyh != 0 {
		return dyh, 0, nil
	}
	return d.packDy(pc, g, dy)
}

// transposeTile is the tile side of pack_transpose_*_v2 (kTile in
// kernels/pack.cu).
const transposeTile = 32

// transposeFits reports whether a transpose of b batches to rowsP rows
// fits pack_transpose_*_v2's grid (y and z at most 65535).
func transposeFits(b, rowsP int) bool {
	return b <= 65535 && ceilDiv(rowsP, transposeTile) <= 65535
}

// transposeShape names a transpose launch in errors.
type transposeShape struct{ b, rows, cols, rowsP, rev int }

// transposeLocked launches pack_transpose kernel id: dst[b, rv(j), i] =
// round(src[b, i, j]) for i < rows, 0 up to rowsP (kernels/pack.cu).
func (d *Device) transposeLocked(id kernelID, src, dst DevicePtr, b, rows, cols, rowsP, rev int) error {
	grid := Dim3{ceilDiv(cols, transposeTile), ceilDiv(rowsP, transposeTile), b}
	if err := d.launch(id, grid, Dim3{transposeTile, 8, 1}, 0, argDev(src), argDev(dst), argI32(b), argI32(rows),
		argI32(cols), argI32(rowsP), argI32(rev)); err != nil {
		return launchErr(id, transposeShape{b, rows, cols, rowsP, rev}, err)
	}
	return nil
}

// convBackwardDataPacked runs bwd-data kernel id of packedConvs (v9,
// v11): dy
// is packed channels-last (N,P,Q,Kp) and w transposed with flipped taps
// (C,R,S,Kp), both rounded to the kernel's precision, then the kernel
// overwrites dx, summing in float32.
func (d *Device) convBackwardDataPacked(id kernelID, g geom.ConvGeom, dy, w, dx *Buffer) error {
	return d.convBackwardDataPackedDy(id, g, dy, 0, w, dx)
}

// convBackwardDataPackedDy is convBackwardDataPacked, reading dyh, dy's
// channels-last copy (packDy's), where it is not 0 instead of packing dy.
func (d *Device) convBackwardDataPackedDy(id kernelID, g geom.ConvGeom, dy *Buffer, dyh DevicePtr, w, dx *Buffer) error {
	pc := packedConvs[id]
	if err := d.needConvDx(id, g, dy, w, dx); err != nil {
		return launchErr(id, g, err)
	}
	if !packedFits(ConvBwdData, g, pc.chanAlign) {
		return launchErr(id, g, fmt.Errorf("%w: the channels-last copies of dy and w need fewer than 2^31 elements each", geom.ErrGeometry))
	}
	kp := packedChans(g.K, pc.chanAlign)
	dyh, dysize, err := d.packDyUnless(dyh, pc, g, dy)
	if err != nil {
		return launchErr(id, g, err)
	}
	if dysize > 0 {
		defer d.releaseScratchLocked(dyh, dysize)
	}
	wt, wsize, err := d.packedScratch(pc, pc.flip, w.ptr, g.K, g.C, g.R*g.S, kp)
	if err != nil {
		return launchErr(id, g, err)
	}
	defer d.releaseScratchLocked(wt, wsize)
	grid := Dim3{ceilDiv(g.N*g.H*g.W, packedBM), ceilDiv(g.C, packedBN), 1}
	k, _ := convDx(id, dx) // dx as bfloat16 (dx_bf16.go)
	if err := d.launchConv(k, grid, Dim3{pc.threads, 1, 1}, g, []arg{argDev(dyh), argDev(wt), argPtr(dx)}, kp); err != nil {
		return launchErr(id, g, err)
	}
	return nil
}

// convBackwardFilterPackedDy runs bwd-filter kernel id of packedConvs
// (v10, v13): dy and x are packed channels-last, (N,P,Q,Kp) and (N,H,W,Cp)
// (or read from dyh, packDy's copy of dy, and xh, Conv2DForwardKeep's of
// x, where they are not 0), then the kernel sums each split's range of
// N·P·Q (packedWgradSplits) into its slice of a workspace, which
// conv2d_bwd_filter_v2_reduce (v10: K·C·R·S floats a split) or
// conv2d_bwd_filter_v13_reduce (v13: K·R·S·Cp a split, channels-last)
// adds into dw in a fixed order (one split: straight into dw). No atomics.
func (d *Device) convBackwardFilterPackedDy(id kernelID, g geom.ConvGeom, x, dy *Buffer, dyh, xh DevicePtr, dw *Buffer) error {
	pc := packedConvs[id]
	if err := d.needConv(g, "x", x, g.XLen(), "dy", dy, g.YLen(), "dw", dw, g.WLen()); err != nil {
		return launchErr(id, g, err)
	}
	if !packedFits(ConvBwdFilter, g, pc.chanAlign) {
		return launchErr(id, g, fmt.Errorf("%w: the channels-last copies of x and dy need fewer than 2^31 elements each", geom.ErrGeometry))
	}
	kp, cp := packedChans(g.K, pc.chanAlign), packedChans(g.C, pc.chanAlign)
	dyh, dysize, err := d.packDyUnless(dyh, pc, g, dy)
	if err != nil {
		return launchErr(id, g, err)
	}
	if dysize > 0 {
		defer d.releaseScratchLocked(dyh, dysize)
	}
	if xh == 0 {
		h, xsize, err := d.packedScratch(pc, pc.pack, x.ptr, g.N, g.C, g.H*g.W, cp)
		if err != nil {
			return launchErr(id, g, err)
		}
		defer d.releaseScratchLocked(h, xsize)
		xh = h
	}
	v, _ := variantOf(id)
	splits, tps := packedWgradSplits(id, g, v.tile.K, cp)
	grid := Dim3{ceilDiv(g.K, packedBM), ceilDiv(g.R*g.S*cp, packedBN), splits}
	out := dw.ptr
	n := g.K * g.C * g.R * g.S
	if id == kConvBwdFilterPipe {
		n = g.K * g.R * g.S * cp
	}
	if splits > 1 {
		ws, size, err := d.scratchLocked(splits * n)
		if err != nil {
			return launchErr(id, g, err)
		}
		defer d.releaseScratchLocked(ws, size)
		out = ws
	}
	if err := d.launchConv(id, grid, Dim3{pc.threads, 1, 1}, g, []arg{argDev(dyh), argDev(xh), argDev(out)}, kp, cp, tps); err != nil {
		return launchErr(id, g, err)
	}
	if splits > 1 && id == kConvBwdFilterPipe {
		rg, rb := linear(g.WLen())
		if err := d.launch(kConvBwdFilterReducePipe, rg, rb, 0, argDev(out), argPtr(dw), argI32(splits), argI32(g.K), argI32(g.C),
			argI32(g.R*g.S), argI32(cp)); err != nil {
			return launchErr(kConvBwdFilterReducePipe, g, err)
		}
		return nil
	}
	if splits > 1 {
		rg, rb := linear(n)
		if err := d.launch(kConvBwdFilterReduce, rg, rb, 0, argDev(out), argPtr(dw), argI32(splits), argI32(n)); err != nil {
			return launchErr(kConvBwdFilterReduce, g, err)
		}
	}
	return nil
}
