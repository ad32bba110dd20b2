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
// "The batch norm writes the next convolution's bfloat16 copy").

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
		err = d.needConv(g, "x", x, g.XLen(), "w", w, g.WLen(), "y", y, g.YLen())
	}
	if err == nil && (xk.ptr == x.ptr || xk.ptr == y.ptr || xk.ptr == w.ptr) {
		err = fmt.Errorf("xk is x, w or y: it must be a buffer of its own")
	}
	if err != nil {
		delete(d.kept, xk.ptr)
		return launchErr(id, g, err)
	}
	made := d.kept[xk.ptr] == keptPack{x.ptr, g, pc, true} && !xk.freed
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

// BatchNormForwardKeep is BatchNormTrainForward(n, c, hw, x, gamma, beta,
// y, saveMean, saveInvStd, runMean, runVar, momentum, eps, relu) when
// train, else BatchNormEvalForward(n, c, hw, x, gamma, beta, runMean,
// runVar, y, eps, relu) (saveMean, saveInvStd and momentum unused), and,
// where ConvKeepLen(g) > 0 for g, the convolution that reads y next
// (g.N = n, g.C = c, g.H·g.W = hw), and xk (that length) is given, writes
// y's bfloat16 copy in xk as it writes y (bn_train_stats_v1 then
// bn_apply_pack_bf16_v1, or bn_apply_pack_bf16_v1 alone in evaluation):
// Conv2DForwardKeep(g, y, …, xk), the next call on xk, reads it instead of
// packing y, while y is not written in between (the caller's promise).
// The same bits as the plain forms and Conv2DForwardKeep's own packing;
// y read once fewer a step and one packing launch fewer. Training needs
// saveMean and saveInvStd for it. Elsewhere the plain kernels run and xk
// is marked as holding nothing. Errors as the plain forms, and for xk of
// another length or shared with x or y.
func (d *Device) BatchNormForwardKeep(train bool, n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar *Buffer,
	momentum, eps float64, relu bool, g geom.ConvGeom, xk *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := kBNApplyPackBF16
	pc, ok := d.bnKeepPacking(train, n, c, hw, saveMean, saveInvStd, g, xk)
	if !ok {
		if xk != nil {
			delete(d.kept, xk.ptr)
		}
		k = bnForwardKernel(train, relu)
	}
	err := d.bnForwardKeep(train, n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps, relu, pc, ok, g, xk)
	if err != nil {
		if xk != nil {
			delete(d.kept, xk.ptr)
		}
		return launchErr(k, bnShape{n, c, hw}, err)
	}
	if ok {
		d.keep(xk, keptPack{y.ptr, g, pc, true})
	}
	return nil
}

// bnKeepPacking is the packing Conv2DForwardKeep(g, …, xk) keeps, and
// whether BatchNormForwardKeep makes it: BF16 kernels that share the
// copy, packed by pack_transpose_bf16_v2 (whose bits and grid
// bn_apply_pack_bf16_v1 has), g reading the batch norm's output, and in
// training the batch's statistics saved. Callers hold d.mu.
func (d *Device) bnKeepPacking(train bool, n, c, hw int, saveMean, saveInvStd *Buffer, g geom.ConvGeom, xk *Buffer) (packedConv, bool) {
	if xk == nil || g.Validate() != nil || g.N != n || g.C != c || g.H*g.W != hw || (train && (saveMean == nil || saveInvStd == nil)) {
		return packedConv{}, false
	}
	pc, ok := d.keepPacking(g, d.kernelFor(d.convAlgoFor(ConvFwd, g), ConvFwd, g))
	if !ok || pc.transpose != kPackTransposeBF16 || d.fns[kPackTransposeBF16] == nil || d.fns[kBNApplyPackBF16] == nil ||
		d.fns[kBNTrainStats] == nil || !transposeFits(n, packedChans(c, pc.chanAlign)) {
		return packedConv{}, false
	}
	return pc, true
}

// bnForwardKeep runs BatchNormForwardKeep's kernels: with pack, the
// statistics (training) and bn_apply_pack_bf16_v1 into xk; else the plain
// forms. Callers hold d.mu.
func (d *Device) bnForwardKeep(train bool, n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar *Buffer,
	momentum, eps float64, relu bool, pc packedConv, pack bool, g geom.ConvGeom, xk *Buffer) error {
	if !pack {
		if train {
			return d.bnTrainForward(bnForwardKernel(true, relu), n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps)
		}
		return d.bnEvalForward(bnForwardKernel(false, relu), n, c, hw, x, gamma, beta, runMean, runVar, y, eps)
	}
	mean, stat, eval := runMean, runVar, 1
	if train {
		if err := d.bnTrainCheck(n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps); err != nil {
			return err
		}
		mean, stat, eval = saveMean, saveInvStd, 0
	} else if err := d.bnEvalCheck(n, c, hw, x, gamma, beta, runMean, runVar, y, eps); err != nil {
		return err
	}
	if err := d.need("xk", xk, Float32, keepLen(pc, g)); err != nil {
		return err
	}
	if xk.ptr == x.ptr || xk.ptr == y.ptr {
		return fmt.Errorf("xk is x or y: it must be a buffer of its own")
	}
	if train {
		if err := d.bnTrainStats(n, c, hw, x, saveMean, saveInvStd, runMean, runVar, momentum, eps); err != nil {
			return err
		}
	}
	r := 0
	if relu {
		r = 1
	}
	cp := packedChans(c, pc.chanAlign)
	return d.launch(kBNApplyPackBF16, Dim3{ceilDiv(hw, transposeTile), ceilDiv(cp, transposeTile), n}, Dim3{transposeTile, 8, 1}, 0,
		argPtr(x), argPtr(gamma), argPtr(beta), argPtr(mean), argPtr(stat), argPtr(y), argPtr(xk),
		argI32(n), argI32(c), argI32(hw), argI32(cp), argF32(float32(eps)), argI32(eval), argI32(r))
}

// bnTrainStats launches bn_train_stats_v1 (checked buffers).
func (d *Device) bnTrainStats(n, c, hw int, x, saveMean, saveInvStd, runMean, runVar *Buffer, momentum, eps float64) error {
	grid, block := perBlock(c)
	return d.launch(kBNTrainStats, grid, block, 0, argPtr(x), argPtr(saveMean), argPtr(saveInvStd), argPtr(runMean),
		argPtr(runVar), argI32(n), argI32(c), argI32(hw), argF32(float32(momentum)), argF32(float32(1-momentum)),
		argF32(float32(eps)))
}
