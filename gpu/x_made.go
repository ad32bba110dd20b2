package gpu

import (
	"github.com/convtrain/convtrain/cpuref/geom"
)

// A convolution's TF32 copy of x made by the layer that writes x.
//
// At TF32 the packed forward kernel (conv2d_fwd_v8_igemm_tf32_pipe) reads
// x as a TF32 channels-last copy (N,H,W,Cp) that pack_transpose_tf32_v2
// makes from x before each forward pass: one more pass over x after the
// layer that wrote it. BF16 keeps its copy for the weight gradient
// (conv_keep.go), so that a batch norm or residual add writes it into the
// conv's keep buffer; at TF32 a kept copy would be as large as x, so
// nothing is kept, and the forward copy lives in a buffer of the caller's
// that one batch shares between its convs, as dy's copy does
// (BatchNormBackwardKeep): BatchNormForwardKeep and AddReLUKeep, given
// that buffer for a conv whose forward kernel reads such a copy
// (ConvXCopyLen > 0), write it as they write x (bn_apply_pack_tf32_v1,
// add_relu_pack_tf32_v1), and the device remembers the last one made. The
// next conv forward pass reads it instead of packing x when it is for x,
// that conv and that packing (madeCopy.take), and forgets it either way:
// a copy is read once, by the pass right after the layer that made it
// (the caller's promise: x not written in between). The same bits as the conv packing x
// itself; x read once fewer and one packing launch fewer.

// fwdCopyPacking is the packing of x that the forward kernel for g reads
// at TF32, and whether kernel k (bn_apply_pack_tf32_v1 or
// add_relu_pack_tf32_v1, pack_transpose_tf32_v2's bits and grid) can make
// it: the packed TF32 forward kernel, the transpose's grid fitting.
// Callers hold d.mu.
func (d *Device) fwdCopyPacking(g geom.ConvGeom, k kernelID) (packedConv, bool) {
	if d.precision != TF32 || g.Validate() != nil {
		return packedConv{}, false
	}
	pc, ok := packedConvs[d.kernelFor(d.convAlgoFor(ConvFwd, g), ConvFwd, g)]
	if !ok || pc != packedTF32 || d.fns[pc.transpose] == nil || d.fns[k] == nil || !transposeFits(g.N, packedChans(g.C, pc.chanAlign)) {
		return packedConv{}, false
	}
	return pc, true
}

// ConvXCopyLen is the length (float32 elements) of the TF32 channels-last
// copy of x that the forward kernel for g reads at the device's
// precision, where BatchNormForwardKeep can make it for that pass alone
// (TF32's packed forward kernel; a copy kept for the weight gradient,
// ConvKeepLen at BF16, is not this one); 0 elsewhere.
func (d *Device) ConvXCopyLen(g geom.ConvGeom) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	pc, ok := d.fwdCopyPacking(g, kBNApplyPackTF32)
	if !ok {
		return 0
	}
	return keepLen(pc, g)
}
