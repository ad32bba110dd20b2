package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Batch norms that write the channels-last copy a convolution next to
// them reads (kernels/norm_pack.cu), so that the convolution does not
// read their output again to make it.
//
// Forward: where a conv's input x is a batch norm's output and the conv
// keeps x's bfloat16 copy (BF16, ConvKeepLen > 0), BatchNormForwardKeep
// makes the copy in the conv's keep buffer as it writes x;
// Conv2DForwardKeep, the next call on that buffer, reads it instead of
// packing (conv_keep.go).
//
// Backward: where a conv's output y is a batch norm's input, the batch
// norm's input gradient is the conv's dy, of which TF32's and BF16's v9
// and v10 read one channels-last copy (Conv2DBackward);
// BatchNormBackwardKeep makes that copy as it writes dx, and
// Conv2DBackward on that dy, next, reads it instead of packing. The copy
// lives in a buffer of the caller's, which one batch can share between
// its convs (each copy is read right after it is made): the device
// remembers the last one made (dyMade).
//
// Either way the same bits as the batch norm and the conv's own packing,
// the batch norm's output read once fewer and one packing launch fewer.

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
// saveMean and saveInvStd for it. At TF32, where ConvXCopyLen(g) > 0 and
// xk has at least that length (a buffer the batch shares), it writes the
// TF32 copy g's forward pass reads (bn_apply_pack_tf32_v1) instead, which
// the next conv forward pass on y reads in place of packing y (x_made.go).
// Elsewhere the plain kernels run and xk is marked as holding nothing.
// Errors as the plain forms, and for xk of another length (shorter, at
// TF32) or shared with x or y.
func (d *Device) BatchNormForwardKeep(train bool, n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar *Buffer,
	momentum, eps float64, relu bool, g geom.ConvGeom, xk *Buffer) error {
	return d.batchNormForwardKeep(false, train, n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps, relu, g, xk)
}

// BatchNormForwardCopy is BatchNormForwardKeep for a y read only by g,
// through the bfloat16 copy g keeps (Conv2DForwardKeep on y and xk, then
// Conv2DBackward with xk): where that copy is made, y's float32 values
// are not written at all (bn_pack_bf16_v1 instead of
// bn_apply_pack_bf16_v1; y's bytes written once fewer), and until a batch
// norm writes y again the device refuses a conv pass that would read y's
// values instead of the copy (Conv2DForward, Conv2DForwardKeep without
// the copy, Conv2DBackward without it kept); another reader of y would
// read what y held before (the caller's promise: none). Elsewhere
// (TF32's copy, which the weight gradient does not read; no copy made) y
// is written as by BatchNormForwardKeep.
func (d *Device) BatchNormForwardCopy(train bool, n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar *Buffer,
	momentum, eps float64, relu bool, g geom.ConvGeom, xk *Buffer) error {
	return d.batchNormForwardKeep(true, train, n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps, relu, g, xk)
}

// batchNormForwardKeep is BatchNormForwardKeep, or with copyOnly
// BatchNormForwardCopy.
func (d *Device) batchNormForwardKeep(copyOnly, train bool, n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar *Buffer,
	momentum, eps float64, relu bool, g geom.ConvGeom, xk *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.xMade = madeCopy{} // y is written now
	d.yWritten(y)
	pc, ok := d.bnKeepPacking(train, n, c, hw, saveMean, saveInvStd, g, xk)
	if ok && pc == packedTF32 && isBF16(x) {
		ok = false // no TF32 copy from a bfloat16 x (bf16xKernel): never at BF16, where x is one
	}
	copyOnly = copyOnly && ok && pc == packedBF16
	k := byPacking(pc, kBNApplyPackBF16, kBNApplyPackTF32)
	switch {
	case !ok:
		if xk != nil {
			delete(d.kept, xk.ptr)
		}
		k = bnForwardKernel(train, relu)
	case copyOnly:
		k = kBNPackBF16
	}
	k = bf16xKernel(k, x)
	err := d.bnForwardKeepY(!copyOnly, train, n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps, relu, pc, ok, g, xk)
	if err != nil {
		if xk != nil {
			delete(d.kept, xk.ptr)
		}
		return launchErr(k, bnShape{n, c, hw}, err)
	}
	switch {
	case ok && pc == packedTF32: // for the forward pass alone (x_made.go)
		d.xMade = madeCopy{y.ptr, g, pc, xk}
	case ok:
		d.keep(xk, keptPack{y.ptr, g, pc, true})
	}
	if copyOnly {
		if d.xOnly == nil {
			d.xOnly = make(map[DevicePtr]*Buffer)
		}
		d.xOnly[y.ptr] = y
	}
	return nil
}

// byPacking is bf16, or tf32 for a TF32 copy (pc): the kernel of a layer
// that writes a conv's copy as it writes its output.
func byPacking(pc packedConv, bf16, tf32 kernelID) kernelID {
	if pc == packedTF32 {
		return tf32
	}
	return bf16
}

// needCopy checks xk, the buffer of x's copy for g packed as pc: of
// keepLen's length where a conv keeps it (BF16: Conv2DForwardKeep's
// buffer), at least that where it serves one forward pass (TF32: the
// batch's one buffer, of its largest copy).
func (d *Device) needCopy(xk *Buffer, pc packedConv, g geom.ConvGeom) error {
	if pc == packedTF32 {
		return d.needAtLeast("xk", xk, Float32, keepLen(pc, g))
	}
	return d.need("xk", xk, Float32, keepLen(pc, g))
}

// bnKeepPacking is the packing Conv2DForwardKeep(g, …, xk) keeps, and
// whether BatchNormForwardKeep makes it: BF16 kernels that share the
// copy, packed by pack_transpose_bf16_v2 (whose bits and grid
// bn_apply_pack_bf16_v1 has), g reading the batch norm's output, and in
// training the batch's statistics saved; or at TF32 the copy g's forward
// pass alone reads (fwdCopyPacking, bn_apply_pack_tf32_v1). Callers hold
// d.mu.
func (d *Device) bnKeepPacking(train bool, n, c, hw int, saveMean, saveInvStd *Buffer, g geom.ConvGeom, xk *Buffer) (packedConv, bool) {
	if xk == nil || g.Validate() != nil || g.N != n || g.C != c || g.H*g.W != hw || (train && (saveMean == nil || saveInvStd == nil)) {
		return packedConv{}, false
	}
	if pc, ok := d.fwdCopyPacking(g, kBNApplyPackTF32); ok {
		return pc, true
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
	return d.bnForwardKeepY(true, train, n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps, relu, pc, pack, g, xk)
}

// bnForwardKeepY is bnForwardKeep, writing y's values only where writeY
// (else, with pack and pc packedBF16, bn_pack_bf16_v1: the copy alone).
func (d *Device) bnForwardKeepY(writeY, train bool, n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar *Buffer,
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
	if err := d.needCopy(xk, pc, g); err != nil {
		return err
	}
	if isBF16(y) {
		return errBF16YCopy
	}
	if pc == packedTF32 && isBF16(x) {
		return fmt.Errorf("x is bfloat16: no TF32 copy is made of it: %w", geom.ErrGeometry)
	}
	if xk.ptr == x.ptr || xk.ptr == y.ptr {
		return fmt.Errorf("xk is x or y: it must be a buffer of its own")
	}
	if train {
		if err := d.bnTrainStats(n, c, hw, x, saveMean, saveInvStd, runMean, runVar, momentum, eps); err != nil {
			return err
		}
	}
	cp := packedChans(c, pc.chanAlign)
	grid, block := Dim3{ceilDiv(hw, transposeTile), ceilDiv(cp, transposeTile), n}, Dim3{transposeTile, 8, 1}
	if !writeY && pc == packedBF16 { // the copy alone: y's parameter left out
		return d.launch(bf16xKernel(kBNPackBF16, x), grid, block, 0, argPtr(x), argPtr(gamma), argPtr(beta), argPtr(mean),
			argPtr(stat), argPtr(xk), argI32(n), argI32(c), argI32(hw), argI32(cp), argF32(float32(eps)), argI32(eval), argFlag(relu))
	}
	return d.launch(bf16xKernel(byPacking(pc, kBNApplyPackBF16, kBNApplyPackTF32), x), grid, block, 0,
		argPtr(x), argPtr(gamma), argPtr(beta), argPtr(mean), argPtr(stat), argPtr(y), argPtr(xk),
		argI32(n), argI32(c), argI32(hw), argI32(cp), argF32(float32(eps)), argI32(eval), argFlag(relu))
}

// bnTrainStats launches bn_train_stats_v1 (checked buffers).
func (d *Device) bnTrainStats(n, c, hw int, x, saveMean, saveInvStd, runMean, runVar *Buffer, momentum, eps float64) error {
	grid, block := perBlock(c)
	return d.launch(bf16xKernel(kBNTrainStats, x), grid, block, 0, argPtr(x), argPtr(saveMean), argPtr(saveInvStd), argPtr(runMean),
		argPtr(runVar), argI32(n), argI32(c), argI32(hw), argF32(float32(momentum)), argF32(float32(1-momentum)),
		argF32(float32(eps)))
}

// madeCopy is a copy of a conv's operand that the layer writing the
// operand made last, for the conv's next pass to read once (dy's by
// BatchNormBackwardKeep, dyMade; x's at TF32 by BatchNormForwardKeep or
// AddReLUKeep, xMade): the operand's address, the conv's geometry, the
// packing and the buffer holding it.
type madeCopy struct {
	src DevicePtr
	g   geom.ConvGeom
	pc  packedConv
	buf *Buffer
}

// take is the copy of src for g packed as pc, 0 if m holds none; it
// forgets it either way (a copy is read once).
func (m *madeCopy) take(src *Buffer, g geom.ConvGeom, pc packedConv) DevicePtr {
	c := *m
	*m = madeCopy{}
	if c.buf == nil || src == nil || c.src != src.ptr || c.g != g || c.pc != pc || c.buf.freed {
		return 0
	}
	return c.buf.ptr
}

// dyPacking is the packing of dy that g's two backward kernels share at
// the device's precision (TF32's or BF16's v9 and v10), and whether there
// is one; callers hold d.mu.
func (d *Device) dyPacking(g geom.ConvGeom) (packedConv, bool) {
	fid := d.kernelFor(d.convAlgoFor(ConvBwdFilter, g), ConvBwdFilter, g)
	did := d.kernelFor(d.convAlgoFor(ConvBwdData, g), ConvBwdData, g)
	pc, fok := packedConvs[fid]
	dpc, dok := packedConvs[did]
	return pc, fok && dok && pc == dpc
}

// ConvDyCopyLen is the length (float32 elements) of the channels-last
// copy of dy that Conv2DBackward's two kernels share for g at the
// device's precision (with dx wanted), 0 where they share none (FP32,
// kernels of other packings) or BatchNormBackwardKeep cannot make it.
func (d *Device) ConvDyCopyLen(g geom.ConvGeom) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	pc, ok := d.dyPackingMade(g)
	if !ok {
		return 0
	}
	return ceilDiv(g.N*g.P()*g.Q()*packedChans(g.K, pc.chanAlign)*pc.elemBytes, 4)
}

// dyPackingMade is dyPacking where bn_bwd_apply_pack_v1 makes that
// packing (TF32 or BF16 by pack_transpose_*_v2, in its grid); callers
// hold d.mu.
func (d *Device) dyPackingMade(g geom.ConvGeom) (packedConv, bool) {
	if g.Validate() != nil {
		return packedConv{}, false
	}
	pc, ok := d.dyPacking(g)
	if !ok || (pc != packedBF16 && pc != packedTF32) || d.fns[pc.transpose] == nil || d.fns[kBNBwdApplyPack] == nil ||
		!transposeFits(g.N, packedChans(g.K, pc.chanAlign)) {
		return packedConv{}, false
	}
	return pc, true
}

// BatchNormBackwardKeep is BatchNormBackward(n, c, hw, x, gamma,
// saveMean, saveInvStd, dy, dx, dgamma, dbeta), or with beta given
// BatchNormBackwardReLU(n, c, hw, x, gamma, beta, …) (dy the gradient at
// the output of the ReLU after the batch norm), and, where
// ConvDyCopyLen(g) > 0 for g, the convolution whose output the batch
// norm normalised (g.N = n, g.K = c, g.P·g.Q = hw), and dx and dyk (a
// float32 buffer of at least that length) are given, writes dx's
// channels-last copy, as g's backward kernels read it, into dyk as it
// writes dx (bn_bwd_v1 for the sums, then bn_bwd_apply_pack_v1; with
// beta bn_bwd_relu_v1 and bn_bwd_relu_apply_pack_v1):
// Conv2DBackward(g, …, dy = dx, …) with dx wanted, the next backward pass
// of a conv on the device, reads it instead of packing dy, while neither
// dx nor dyk is written in between (the caller's promise). The same bits
// as BatchNormBackward (BatchNormBackwardReLU) and the conv's own
// packing. Elsewhere BatchNormBackward (BatchNormBackwardReLU) runs and
// nothing is remembered. Errors as those, and for a dyk too short or
// shared with x, dy or dx.
func (d *Device) BatchNormBackwardKeep(n, c, hw int, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta *Buffer, g geom.ConvGeom, dyk *Buffer) error {
	return d.bnBackwardKeep(false, n, c, hw, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta, g, dyk)
}

// BatchNormBackwardCopy is BatchNormBackwardKeep for a dx wanted only as
// the dy of g's Conv2DBackward without a bias gradient (db nil), whose
// two kernels then read only dy's copy: where the copy is made, dx's
// float32 values are not written at all (bn_bwd_pack_v1 instead of
// bn_bwd_apply_pack_v1, bn_bwd_relu_pack_v1 instead of
// bn_bwd_relu_apply_pack_v1; dx's bytes written once fewer), and until a
// Conv2DBackward on dx reads the copy the device refuses one that would
// read dx's values instead (another geometry, a bias gradient, the copy
// dropped); another reader of dx would read what dx held before (the
// caller's promise: none). Where no copy is made, BatchNormBackward (with
// beta BatchNormBackwardReLU) runs, dx written.
func (d *Device) BatchNormBackwardCopy(n, c, hw int, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta *Buffer, g geom.ConvGeom, dyk *Buffer) error {
	return d.bnBackwardKeep(true, n, c, hw, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta, g, dyk)
}

// bnBackwardKeep is BatchNormBackwardKeep, or BatchNormBackwardCopy with
// copyOnly; beta nil: no ReLU after the batch norm.
func (d *Device) bnBackwardKeep(copyOnly bool, n, c, hw int, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta *Buffer, g geom.ConvGeom, dyk *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dyMade = madeCopy{}
	if dx != nil {
		delete(d.dyOnly, dx.ptr) // written now, one way or the other
	}
	pc, ok := d.dyPackingMade(g)
	if !ok || dyk == nil || dx == nil || g.N != n || g.K != c || g.P()*g.Q() != hw || d.fns[bnApplyPackKernel(x, dy, beta, dx)] == nil {
		if err := d.bnBackward(n, c, hw, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta); err != nil {
			return launchErr(bnBackwardKernel(x, dy, beta), bnShape{n, c, hw}, err)
		}
		return nil
	}
	kp := packedChans(c, pc.chanAlign)
	L := n * c * hw
	err := d.need("dx", dx, Float32, L)
	if err == nil {
		err = d.needAtLeast("dyk", dyk, Float32, ceilDiv(n*hw*kp*pc.elemBytes, 4))
	}
	if err == nil && (dyk.ptr == x.ptr || dyk.ptr == dy.ptr || dyk.ptr == dx.ptr) {
		err = fmt.Errorf("dyk is x, dy or dx: it must be a buffer of its own")
	}
	if err == nil {
		// the sums (every other buffer checked), then dx and its copy
		err = d.bnBackward(n, c, hw, x, gamma, beta, saveMean, saveInvStd, dy, nil, dgamma, dbeta)
	}
	if err != nil {
		return launchErr(bnBackwardKernel(x, dy, beta), bnShape{n, c, hw}, err)
	}
	out := dx
	if copyOnly {
		out = nil
	}
	if err := d.bnBwdApplyPack(n, c, hw, x, gamma, beta, saveMean, saveInvStd, dy, dgamma, dbeta, out, dyk, kp, pc == packedTF32); err != nil {
		return launchErr(bnApplyPackKernel(x, dy, beta, out), bnShape{n, c, hw}, err)
	}
	d.dyMade = madeCopy{dx.ptr, g, pc, dyk}
	if copyOnly {
		if d.dyOnly == nil {
			d.dyOnly = make(map[DevicePtr]*Buffer)
		}
		d.dyOnly[dx.ptr] = dx
	}
	return nil
}

// valuesUnwritten reports whether dy's float32 values were left unwritten
// by BatchNormBackwardCopy (and dy is not freed since); callers hold d.mu.
func (d *Device) valuesUnwritten(dy *Buffer) bool { return copyOnlyIn(d.dyOnly, dy) }

// errXCopyOnly refuses a conv pass that would read the values of an x
// that BatchNormForwardCopy left unwritten.
var errXCopyOnly = fmt.Errorf("x holds only the bfloat16 channels-last copy its batch norm made for a conv to keep "+
	"(BatchNormForwardCopy), which this pass does not read (another conv, or the copy not made, read or kept for it): "+
	"x's values were never written: %w", geom.ErrGeometry)

// yWritten forgets that y's values were unwritten (xOnly): a batch norm
// writes y now, one way or the other; callers hold d.mu.
func (d *Device) yWritten(y *Buffer) {
	if y != nil {
		delete(d.xOnly, y.ptr)
	}
}

// xValuesUnwritten is valuesUnwritten for an x whose float32 values
// BatchNormForwardCopy left unwritten; callers hold d.mu.
func (d *Device) xValuesUnwritten(x *Buffer) bool { return copyOnlyIn(d.xOnly, x) }

// copyOnlyIn reports whether b is in m (dyOnly, xOnly) and not freed since
// (a freed one's entry is dropped).
func copyOnlyIn(m map[DevicePtr]*Buffer, b *Buffer) bool {
	if b == nil {
		return false
	}
	e, ok := m[b.ptr]
	if ok && e.freed {
		delete(m, b.ptr)
		return false
	}
	return ok
}

// bnApplyPackKernel is the kernel bnBwdApplyPack launches:
// bn_bwd_apply_pack_v1, with dx nil bn_bwd_pack_v1, and with beta (the
// ReLU's mask) their bn_bwd_relu_ forms; with x bfloat16 their _bf16x
// twins, with dy bfloat16 too their _bf16xdy twins (bnKernel).
func bnApplyPackKernel(x, dy, beta, dx *Buffer) kernelID {
	switch {
	case beta != nil && dx != nil:
		return bnKernel(kBNBwdReLUApplyPack, x, dy)
	case beta != nil:
		return bnKernel(kBNBwdReLUPack, x, dy)
	case dx != nil:
		return bnKernel(kBNBwdApplyPack, x, dy)
	}
	return bnKernel(kBNBwdPack, x, dy)
}

// bnBwdApplyPack launches bnApplyPackKernel(x, dy, beta, dx) (checked buffers;
// beta's length is checked by the sums' launch before it): dx and its copy
// in dyk, kp channels, TF32 or bfloat16; with dx nil the copy only.
func (d *Device) bnBwdApplyPack(n, c, hw int, x, gamma, beta, saveMean, saveInvStd, dy, dgamma, dbeta, dx, dyk *Buffer, kp int, tf32 bool) error {
	var a [15]arg
	args := append(a[:0], argPtr(x), argPtr(gamma))
	if beta != nil {
		args = append(args, argPtr(beta))
	}
	args = append(args, argPtr(saveMean), argPtr(saveInvStd), argPtr(dy), argPtr(dgamma), argPtr(dbeta))
	if dx != nil {
		args = append(args, argPtr(dx))
	}
	args = append(args, argPtr(dyk), argI32(n), argI32(c), argI32(hw), argI32(kp), argFlag(tf32))
	return d.launch(bnApplyPackKernel(x, dy, beta, dx), Dim3{ceilDiv(hw, transposeTile), ceilDiv(kp, transposeTile), n},
		Dim3{transposeTile, 8, 1}, 0, args...)
}
