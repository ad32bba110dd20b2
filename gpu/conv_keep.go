package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// x's bfloat16 copy, kept from a convolution's forward pass to its
// weight gradient.
//
// At BF16 the forward kernel (conv2d_fwd_v7_igemm_bf16) and the
// bwd-filter kernel (conv2d_bwd_filter_v10_igemm_bf16) read the same
// copy of x, bfloat16 and channels-last (N,H,W,Cp), which each used to
// make for itself. Conv2DForwardKeep makes it in a buffer of the
// caller's, xk, and Conv2DBackward with xk reads it from there: one
// packing launch fewer a convolution and step, and x read and its copy
// written once fewer (in the analytic model 15 % of the ResNet-50 suite's
// forward and backward time at BF16; BENCHMARKS.md, "x's bfloat16 copy
// kept"), for xk's memory from the forward pass to the backward one:
// ConvKeepLen, half of x's bytes with the channels padded to 8. The
// activations stay float32 too, as the layers around read them (a ReLU's
// mask, a residual add), so nothing else changes: the same kernels and
// bits as without xk. Only BF16: TF32's copy would be as large as x.
//
// Where x is a batch norm's output, BatchNormForwardKeep makes the copy
// in xk as the batch norm writes x (kernels/norm_pack.cu), and
// Conv2DForwardKeep, the next call on xk, reads it instead of packing:
// x read once fewer again, and one packing launch fewer (BENCHMARKS.md,
// "The batch norm writes the convolutions' channels-last copies").

// keptPack is what a Conv2DForwardKeep buffer holds: the copy of x
// (its address) for g, packed as pc packs.
type keptPack struct {
	x  DevicePtr
	g  geom.ConvGeom
	pc packedConv
	// made: the layer that wrote x made the copy too
	// (BatchNormForwardKeep), for the forward pass that reads x next.
	made bool
}

// keepPacking is the packing that fwd, the dispatcher's forward kernel
// for g, and its bwd-filter kernel both read at BF16, and whether there is
// one; callers hold d.mu.
func (d *Device) keepPacking(g geom.ConvGeom, fwd kernelID) (packedConv, bool) {
	if d.precision != BF16 {
		return packedConv{}, false
	}
	wgrad := d.kernelFor(d.convAlgoFor(ConvBwdFilter, g), ConvBwdFilter, g)
	pc, ok := packedConvs[fwd]
	wpc, wok := packedConvs[wgrad]
	return pc, ok && wok && pc == wpc && pc == packedBF16
}

// keepLen is the float32 elements of x's copy for g packed as pc.
func keepLen(pc packedConv, g geom.ConvGeom) int {
	return ceilDiv(g.N*g.H*g.W*packedChans(g.C, pc.chanAlign)*pc.elemBytes, 4)
}

// ConvKeepLen is the length (float32 elements) of the buffer in which
// Conv2DForwardKeep keeps x's bfloat16 copy for g at the device's
// precision, 0 where it keeps nothing (a precision other than BF16, or
// kernels that do not share the copy).
func (d *Device) ConvKeepLen(g geom.ConvGeom) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if g.Validate() != nil {
		return 0
	}
	pc, ok := d.keepPacking(g, d.kernelFor(d.convAlgoFor(ConvFwd, g), ConvFwd, g))
	if !ok {
		return 0
	}
	return keepLen(pc, g)
}

// Conv2DForwardKeep is Conv2DForward (Conv2DForwardReLU when relu) and,
// where ConvKeepLen(g) > 0 and xk (a float32 buffer of that length, or
// nil) is given, makes x's bfloat16 copy in xk for Conv2DBackward with
// xk, which reads it instead of packing x again while x is not written in
// between (the caller's promise; a training step keeps it). Where the
// layer that wrote x made that copy in xk already (BatchNormForwardKeep
// for g and x, the last call on xk), it reads it and packs nothing.
// Elsewhere xk is left alone and marked as holding nothing.
func (d *Device) Conv2DForwardKeep(g geom.ConvGeom, x, w, b, y *Buffer, relu bool, xk *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := d.kernelFor(d.convAlgoFor(ConvFwd, g), ConvFwd, g)
	if xk == nil {
		return d.convForwardKernel(id, g, x, w, b, y, relu)
	}
	pc, ok := d.keepPacking(g, id)
	if !ok || g.Validate() != nil {
		delete(d.kept, xk.ptr)
		return d.convForwardKernel(id, g, x, w, b, y, relu)
	}
	err := d.need("xk", xk, Float32, keepLen(pc, g))
	if err == nil {
		err = d.needConvY(id, g, x, w, y)
	}
	if err == nil && (xk.ptr == x.ptr || xk.ptr == y.ptr || xk.ptr == w.ptr) {
		err = fmt.Errorf("xk is x, w or y: it must be a buffer of its own")
	}
	if err != nil {
		delete(d.kept, xk.ptr)
		return launchErr(id, g, err)
	}
	d.xMade = madeCopy{} // a TF32 copy made for a forward pass: this one reads its own
	made := d.kept[xk.ptr] == keptPack{x.ptr, g, pc, true} && !xk.freed
	if !made && d.xValuesUnwritten(x) {
		delete(d.kept, xk.ptr)
		return launchErr(id, g, errXCopyOnly)
	}
	if err := d.convForwardPackedX(id, g, x, w, b, y, relu, xk.ptr, !made); err != nil {
		delete(d.kept, xk.ptr)
		return err
	}
	d.keep(xk, keptPack{x.ptr, g, pc, false})
	return nil
}

// keep records what xk holds; callers hold d.mu.
func (d *Device) keep(xk *Buffer, k keptPack) {
	if d.kept == nil {
		d.kept = make(map[DevicePtr]keptPack)
	}
	d.kept[xk.ptr] = k // a step overwrites its entry: no allocation
}

// keptFor is xk's copy of x for bwd-filter kernel id on g, 0 when xk is
// nil or holds no copy of x for g that id reads; callers hold d.mu.
func (d *Device) keptFor(xk, x *Buffer, g geom.ConvGeom, id kernelID) DevicePtr {
	if xk == nil || x == nil {
		return 0
	}
	k, ok := d.kept[xk.ptr]
	if pc, packed := packedConvs[id]; !ok || !packed || k.x != x.ptr || k.g != g || k.pc != pc || xk.freed {
		return 0
	}
	return xk.ptr
}
