package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the channels-last tensor-core convolutions, which read
// packed copies of x and w: BF16 (kernels/conv_igemm_bf16.cu:
// pack_nhwc_bf16_v1, conv2d_fwd_v7_igemm_bf16) and TF32 on the same
// pipeline (kernels/conv_igemm_tf32_pipe.cu: pack_nhwc_tf32_v1,
// conv2d_fwd_v8_igemm_tf32), sm_80.

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

// packedConv describes a forward kernel over packed operands: its packing
// kernel, the channel padding (one 16-byte cp.async chunk) and the bytes
// per packed element.
type packedConv struct {
	pack      kernelID
	chanAlign int
	elemBytes int
}

// packedConvs lists the forward kernels that read packed copies.
var packedConvs = map[kernelID]packedConv{
	kConvFwdBF16:     {kPackNHWCBF16, 8, 2},
	kConvFwdTF32Pipe: {kPackNHWCTF32, 4, 4},
}

// variantThreads is block.x of conv variant v.
func variantThreads(v convVariant) int {
	if _, ok := packedConvs[v.id]; ok {
		return packedThreads
	}
	return igemmThreads
}

// packedChans is Cp, the channel count c rounded up to a multiple of align.
func packedChans(c, align int) int { return ceilDiv(c, align) * align }

// packShape names a packing launch in errors.
type packShape struct{ n, c, hw, cp int }

// packLocked packs src, (n,c,hw) float32, into dst as (n,hw,cp) with zero
// channels past c, with packing kernel id (pack_nhwc_bf16_v1: two
// channels per thread; pack_nhwc_tf32_v1: one).
func (d *Device) packLocked(id kernelID, src, dst DevicePtr, n, c, hw, cp int) error {
	total := n * hw * cp
	if id == kPackNHWCBF16 {
		total /= 2
	}
	grid, block := linear(total)
	if err := d.launch(id, grid, block, 0, argDev(src), argDev(dst), argI32(n), argI32(c), argI32(hw), argI32(cp)); err != nil {
		return launchErr(id, packShape{n, c, hw, cp}, err)
	}
	return nil
}

// convForwardPacked runs forward kernel id of packedConvs: x and w are
// rounded (BF16: to bfloat16, to nearest, ties to even, cpuref.RoundBF16;
// TF32: cvt.rna as the v3 kernels) into channels-last workspaces with the
// channels padded to the kernel's chunk, then the kernel multiplies them
// with float32 accumulation and adds the bias (and ReLU when relu) in
// float32. The workspaces come from the buffer cache and go back to it
// once the launches are queued.
func (d *Device) convForwardPacked(id kernelID, g geom.ConvGeom, x, w, b, y *Buffer, relu bool) error {
	pc := packedConvs[id]
	if err := d.needConv(g, "x", x, g.XLen(), "w", w, g.WLen(), "y", y, g.YLen()); err != nil {
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
	xh, xsize, err := d.scratchLocked(xn * cp * pc.elemBytes / 4)
	if err != nil {
		return launchErr(id, g, err)
	}
	defer d.releaseScratchLocked(xh, xsize)
	wh, wsize, err := d.scratchLocked(wn * cp * pc.elemBytes / 4)
	if err != nil {
		return launchErr(id, g, err)
	}
	defer d.releaseScratchLocked(wh, wsize)
	if err := d.packLocked(pc.pack, x.ptr, xh, g.N, g.C, g.H*g.W, cp); err != nil {
		return err
	}
	if err := d.packLocked(pc.pack, w.ptr, wh, g.K, g.C, g.R*g.S, cp); err != nil {
		return err
	}
	r := 0
	if relu {
		r = 1
	}
	grid := Dim3{ceilDiv(g.N*g.P()*g.Q(), packedBM), ceilDiv(g.K, packedBN), 1}
	if err := d.launchConv(id, grid, Dim3{packedThreads, 1, 1}, g, []arg{argDev(xh), argDev(wh), argPtr(b), argPtr(y)}, r, cp); err != nil {
		return launchErr(id, g, err)
	}
	return nil
}
