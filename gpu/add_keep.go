package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// The residual add with its ReLU writing the channels-last copies the
// convolutions reading its output keep (kernels/add_pack.cu), as a batch
// norm does for the convolution after it (bn_keep.go).
//
// In a residual network a block's output y = max(a + b, 0) is read by the
// next block's first convolution and, at a stage's first block, by its
// projection shortcut too; at BF16 each keeps y's bfloat16 channels-last
// copy (Conv2DForwardKeep), packed from y after the add wrote it.
// AddReLUKeep makes those copies, one or two, in the pass that writes y:
// y read once fewer and one packing launch fewer for each.

// ConvKeep names a convolution g reading a layer's output and the buffer
// XK in which it keeps that input's copy (Conv2DForwardKeep's xk, of
// ConvKeepLen(G) elements).
type ConvKeep struct {
	G  geom.ConvGeom
	XK *Buffer
}

// AddReLUKeep is AddReLU(a, b, y) and, for each of keeps (at most two)
// whose convolution keeps its input's bfloat16 copy (ConvKeepLen(k.G) >
// 0) and reads y (k.G.N·C·H·W = len(y)), with k.XK given, writes y's copy
// in k.XK as it writes y (add_relu_pack_bf16_v1): Conv2DForwardKeep(k.G,
// y, …, k.XK), the next call on k.XK, reads it instead of packing y,
// while y is not written in between (the caller's promise). The same bits
// as AddReLU and Conv2DForwardKeep's own packing. Two keeps are made
// together where their convolutions read the same packing of the same
// shape (the first alone otherwise); a keep not made is marked as holding
// nothing. At TF32 a keep whose convolution's forward pass reads y's TF32
// copy (ConvXCopyLen(k.G) > 0), with k.XK at least that long (a buffer
// the batch shares), gets that copy (add_relu_pack_tf32_v1), which the
// next conv forward pass on y reads in place of packing y (x_made.go):
// keeps[0] only, the conv that reads y next. Errors as AddReLU's, and for
// more than two keeps, or an XK of another length (shorter, at TF32) or
// shared with a, b, y or the other XK.
func (d *Device) AddReLUKeep(a, b, y *Buffer, keeps ...ConvKeep) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.xMade = madeCopy{} // y is written now
	var made [2]ConvKeep
	var pc packedConv
	m := 0
	if len(keeps) > len(made) {
		return launchErr(kAddReLUPackBF16, elemShape{lenOf(a)},
			fmt.Errorf("%d convolutions keep the output: at most %d: %w", len(keeps), len(made), geom.ErrGeometry))
	}
	for i, k := range keeps {
		p, ok := d.addKeepPacking(k, lenOf(y))
		if ok && p == packedTF32 && i > 0 { // the first conv's alone: the next forward pass reads it
			ok = false
		}
		if ok && m > 0 && (p != pc || k.G.N != made[0].G.N || k.G.C != made[0].G.C || k.G.H != made[0].G.H ||
			k.G.W != made[0].G.W || k.XK.ptr == made[0].XK.ptr) {
			ok = false
		}
		if !ok {
			if k.XK != nil {
				delete(d.kept, k.XK.ptr)
			}
			continue
		}
		made[m], pc = k, p
		m++
	}
	if m == 0 {
		if err := d.addKernel(kAddReLU, a, b, y); err != nil {
			return launchErr(kAddReLU, elemShape{lenOf(a)}, err)
		}
		return nil
	}
	if err := d.addReLUPack(a, b, y, made[:m], pc); err != nil {
		for _, k := range made[:m] {
			delete(d.kept, k.XK.ptr)
		}
		return launchErr(byPacking(pc, kAddReLUPackBF16, kAddReLUPackTF32), elemShape{lenOf(a)}, err)
	}
	if pc == packedTF32 { // for the forward pass alone (x_made.go)
		d.xMade = madeCopy{y.ptr, made[0].G, pc, made[0].XK}
		return nil
	}
	for _, k := range made[:m] {
		d.keep(k.XK, keptPack{y.ptr, k.G, pc, true})
	}
	return nil
}

// addKeepPacking is the packing Conv2DForwardKeep(k.G, …, k.XK) keeps, and
// whether add_relu_pack_bf16_v1 makes it for an output of n elements:
// BF16 kernels that share the copy, packed by pack_transpose_bf16_v2
// (whose bits and grid the kernel has), and k.G reading all of y; or at
// TF32 the copy k.G's forward pass alone reads (fwdCopyPacking,
// add_relu_pack_tf32_v1). Callers hold d.mu.
func (d *Device) addKeepPacking(k ConvKeep, n int) (packedConv, bool) {
	g := k.G
	if k.XK == nil || g.Validate() != nil || g.N*g.C*g.H*g.W != n {
		return packedConv{}, false
	}
	if pc, ok := d.fwdCopyPacking(g, kAddReLUPackTF32); ok {
		return pc, true
	}
	pc, ok := d.keepPacking(g, d.kernelFor(d.convAlgoFor(ConvFwd, g), ConvFwd, g))
	if !ok || pc.transpose != kPackTransposeBF16 || d.fns[kPackTransposeBF16] == nil || d.fns[kAddReLUPackBF16] == nil ||
		!transposeFits(g.N, packedChans(g.C, pc.chanAlign)) {
		return packedConv{}, false
	}
	return pc, true
}

// addReLUPack checks a, b, y and the keeps' buffers and launches
// add_relu_pack_bf16_v1 (add_relu_pack_tf32_v1 for a TF32 pc) with one or
// two destinations. Callers hold d.mu.
func (d *Device) addReLUPack(a, b, y *Buffer, keeps []ConvKeep, pc packedConv) error {
	g := keeps[0].G
	a, b = addOperands(a, b) // a bfloat16 input as b (bn_out_bf16.go)
	k := addKernelFor(byPacking(pc, kAddReLUPackBF16, kAddReLUPackTF32), b)
	if err := d.needABY(a, b, y, g.N*g.C*g.H*g.W, bTypeFor(k)); err != nil {
		return err
	}
	dst := [2]*Buffer{}
	for i, k := range keeps {
		if err := d.needCopy(k.XK, pc, k.G); err != nil {
			return err
		}
		if p := k.XK.ptr; p == a.ptr || p == b.ptr || p == y.ptr {
			return fmt.Errorf("xk is a, b or y: it must be a buffer of its own")
		}
		dst[i] = k.XK
	}
	hw, cp := g.H*g.W, packedChans(g.C, pc.chanAlign)
	return d.launch(k,
		Dim3{ceilDiv(hw, transposeTile), ceilDiv(cp, transposeTile), g.N}, Dim3{transposeTile, 8, 1}, 0,
		argPtr(a), argPtr(b), argPtr(y), argPtr(dst[0]), argPtr(dst[1]), argI32(g.N), argI32(g.C), argI32(hw), argI32(cp))
}
