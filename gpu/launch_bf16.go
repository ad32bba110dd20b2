package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the BF16 tensor-core convolution (kernels/conv_igemm_bf16.cu,
// sm_80): the channels-last bfloat16 packing (pack_nhwc_bf16_v1) and the
// forward pass conv2d_fwd_v7_igemm_bf16, which reads the packed copies.

// Tile and block of conv2d_fwd_v7_igemm_bf16 (kBM, kBN, kBK, kThreads in
// conv_igemm_bf16.cu; TestConvVariantTable checks them).
const (
	bf16BM      = 128
	bf16BN      = 128
	bf16BK      = 32
	bf16Threads = 128
	// bf16ChanAlign is the channel padding of the packed operands: one
	// 16-byte cp.async chunk of bfloat16.
	bf16ChanAlign = 8
)

var tile128x128x32 = tileShape{bf16BM, bf16BN, bf16BK}

// variantThreads is block.x of conv variant v.
func variantThreads(v convVariant) int {
	if v.algo == ConvIGemmBF16 {
		return bf16Threads
	}
	return igemmThreads
}

// bf16Chans is Cp, the channel count c rounded up to a multiple of 8.
func bf16Chans(c int) int { return ceilDiv(c, bf16ChanAlign) * bf16ChanAlign }

// packShape names the packing launch in errors.
type packShape struct{ n, c, hw, cp int }

// packBF16Locked packs src, (n,c,hw) float32, into dst as (n,hw,cp)
// bfloat16 with zero channels past c (pack_nhwc_bf16_v1).
func (d *Device) packBF16Locked(src DevicePtr, dst DevicePtr, n, c, hw, cp int) error {
	grid, block := linear(n * hw * cp / 2)
	if err := d.launch(kPackNHWCBF16, grid, block, 0, argDev(src), argDev(dst), argI32(n), argI32(c), argI32(hw), argI32(cp)); err != nil {
		return launchErr(kPackNHWCBF16, packShape{n, c, hw, cp}, err)
	}
	return nil
}

// convForwardBF16 runs the forward pass on BF16 tensor cores: x and w are
// rounded to bfloat16 (to nearest, ties to even: cpuref.RoundBF16) into
// channels-last workspaces with the channels padded to a multiple of 8,
// then conv2d_fwd_v7_igemm_bf16 multiplies them with float32 accumulation
// and adds the bias (and ReLU when relu) in float32. The workspaces come
// from the buffer cache and go back to it once the launches are queued.
func (d *Device) convForwardBF16(g geom.ConvGeom, x, w, b, y *Buffer, relu bool) error {
	id := kConvFwdBF16
	if err := d.needConv(g, "x", x, g.XLen(), "w", w, g.WLen(), "y", y, g.YLen()); err != nil {
		return launchErr(id, g, err)
	}
	if err := d.needOpt("b", b, Float32, g.K); err != nil {
		return launchErr(id, g, err)
	}
	cp := bf16Chans(g.C)
	xn, wn := g.N*g.H*g.W, g.K*g.R*g.S
	if xn > maxElems/cp || wn > maxElems/cp {
		return launchErr(id, g, fmt.Errorf("%w: the channels-last bfloat16 copies of x and w (%d channels padded to %d) need fewer than 2^31 elements each", geom.ErrGeometry, g.C, cp))
	}
	xh, xsize, err := d.scratchLocked(xn * cp / 2)
	if err != nil {
		return launchErr(id, g, err)
	}
	defer d.releaseScratchLocked(xh, xsize)
	wh, wsize, err := d.scratchLocked(wn * cp / 2)
	if err != nil {
		return launchErr(id, g, err)
	}
	defer d.releaseScratchLocked(wh, wsize)
	if err := d.packBF16Locked(x.ptr, xh, g.N, g.C, g.H*g.W, cp); err != nil {
		return err
	}
	if err := d.packBF16Locked(w.ptr, wh, g.K, g.C, g.R*g.S, cp); err != nil {
		return err
	}
	r := 0
	if relu {
		r = 1
	}
	grid := Dim3{ceilDiv(g.N*g.P()*g.Q(), bf16BM), ceilDiv(g.K, bf16BN), 1}
	if err := d.launchConv(id, grid, Dim3{bf16Threads, 1, 1}, g, []arg{argDev(xh), argDev(wh), argPtr(b), argPtr(y)}, r, cp); err != nil {
		return launchErr(id, g, err)
	}
	return nil
}
