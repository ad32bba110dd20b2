package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// A BF16 convolution's output stored as bfloat16, for the batch norm
// after it.
//
// At BF16 a convolution's tensor cores take bfloat16 operands, but its
// output y was float32: written once, then read by the batch norm after
// it three times (the mean, the variance, the normalisation) and again by
// its backward pass, at 4 bytes a value. As PyTorch's bf16 autocast does,
// the convolution can store y as bfloat16 instead (rounded to nearest,
// ties to even, after the bias and the ReLU): Conv2DForward and
// Conv2DForwardKeep write a BFloat16 buffer y where ConvOutputBF16(g)
// (conv2d_fwd_v7_igemm_bf16y), and every batch-norm operation takes such a
// buffer as x (the _bf16x kernels of kernels/norm.cu and norm_pack.cu),
// widening each value exactly as it reads it: the bits of the float32
// forms on the rounded values, half the bytes. Nothing else takes a
// BFloat16 buffer (need refuses it) but where dx_bf16.go (a conv's input
// gradient, the batch norm's and ReLU's dy) and bn_out_bf16.go (a batch
// norm's output, an add's input) say so.

// ConvOutputBF16 reports whether the forward pass of g stores its output
// as bfloat16 when given a BFloat16 buffer y (NewBFloat16): where the pass
// runs on BF16 tensor cores (ConvKernelFor(ConvFwd, g) is
// conv2d_fwd_v7_igemm_bf16, at BF16 on compute capability 8.0 or newer).
// y then holds each output value rounded to bfloat16 (cpuref.BF16Bits);
// elsewhere a BFloat16 y is refused.
func (d *Device) ConvOutputBF16(g geom.ConvGeom) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return g.Validate() == nil && d.kernelFor(d.convAlgoFor(ConvFwd, g), ConvFwd, g) == kConvFwdBF16 &&
		d.fns[kConvFwdBF16Y] != nil
}

// isBF16 reports whether b is a BFloat16 buffer.
func isBF16(b *Buffer) bool { return b != nil && b.dtype == BFloat16 }

// xType is the element type a batch norm accepts for x: BFloat16 for a
// BFloat16 buffer (the _bf16x kernels), else Float32.
func xType(x *Buffer) DType {
	if isBF16(x) {
		return BFloat16
	}
	return Float32
}

// bf16xKernel is the batch-norm kernel k, or where x is bfloat16 its
// _bf16x twin: the same parameters (bn_train_fwd_v1's and bn_eval_fwd_v1's
// twins are those of their v2, with relu). bn_apply_pack_tf32_v1 has none:
// a bfloat16 x is a BF16 conv's output, read at BF16, where the copies
// are bfloat16 (BatchNormForwardKeep makes no TF32 copy of one).
func bf16xKernel(k kernelID, x *Buffer) kernelID {
	if !isBF16(x) {
		return k
	}
	switch k {
	case kBNTrainFwd, kBNTrainReLUFwd:
		return kBNTrainFwdBF16X
	case kBNEvalFwd, kBNEvalReLUFwd:
		return kBNEvalFwdBF16X
	case kBNBwd:
		return kBNBwdBF16X
	case kBNBwdReLU:
		return kBNBwdReLUBF16X
	case kBNTrainStats:
		return kBNTrainStatsBF16X
	case kBNApplyPackBF16:
		return kBNApplyPackBF16X
	case kBNPackBF16:
		return kBNPackBF16X
	case kBNBwdApplyPack:
		return kBNBwdApplyPackBF16X
	case kBNBwdPack:
		return kBNBwdPackBF16X
	case kBNBwdReLUApplyPack:
		return kBNBwdReLUApplyPackBF16X
	case kBNBwdReLUPack:
		return kBNBwdReLUPackBF16X
	}
	return k
}

// pairedType is the element type a batch norm accepts for b, its output y
// (forward: bn_out_bf16.go) or its gradient dy (backward: dx_bf16.go):
// BFloat16 where b and x are both BFloat16 buffers (the _bf16xy and
// _bf16xdy kernels), else Float32.
func pairedType(x, b *Buffer) DType {
	if isBF16(x) && isBF16(b) {
		return BFloat16
	}
	return Float32
}

// bnKernel is batch-norm kernel k (a float32 form) for x and b (y
// forward, dy backward): bf16xKernel's, and where b is bfloat16 too
// (pairedType) that kernel's twin reading or writing b so: _bf16xy
// (bn_train_fwd, bn_eval_fwd) or _bf16xdy (the backward kernels). A
// bfloat16 b with a float32 x keeps the float32 kernel, which need then
// refuses (pairedType).
func bnKernel(k kernelID, x, b *Buffer) kernelID {
	k = bf16xKernel(k, x)
	if pairedType(x, b) != BFloat16 {
		return k
	}
	switch k {
	case kBNTrainFwdBF16X:
		return kBNTrainFwdBF16XY
	case kBNEvalFwdBF16X:
		return kBNEvalFwdBF16XY
	case kBNBwdBF16X:
		return kBNBwdBF16XDY
	case kBNBwdReLUBF16X:
		return kBNBwdReLUBF16XDY
	case kBNBwdApplyPackBF16X:
		return kBNBwdApplyPackBF16XDY
	case kBNBwdPackBF16X:
		return kBNBwdPackBF16XDY
	case kBNBwdReLUApplyPackBF16X:
		return kBNBwdReLUApplyPackBF16XDY
	case kBNBwdReLUPackBF16X:
		return kBNBwdReLUPackBF16XDY
	}
	return k
}

// convY is the kernel that runs forward kernel id writing y, and y's
// element type: conv2d_fwd_v7_igemm_bf16y and BFloat16 for a BFloat16 y
// of conv2d_fwd_v7_igemm_bf16, else id and Float32 (a BFloat16 y of
// another kernel is refused by convYCheck).
func convY(id kernelID, y *Buffer) (kernelID, DType) {
	if isBF16(y) && id == kConvFwdBF16 {
		return kConvFwdBF16Y, BFloat16
	}
	return id, Float32
}

// convYCheck refuses a BFloat16 y for forward kernel id when id is not
// the BF16 kernel (ConvOutputBF16 false).
func convYCheck(id kernelID, g geom.ConvGeom, y *Buffer) error {
	if isBF16(y) && id != kConvFwdBF16 {
		return launchErr(id, g, fmt.Errorf("y is a bfloat16 buffer, which only conv2d_fwd_v7_igemm_bf16 writes (ConvOutputBF16 is false for this convolution): %w", geom.ErrGeometry))
	}
	return nil
}

// needConvY is needConv for forward kernel id's x, w and y, y of convY's
// type.
func (d *Device) needConvY(id kernelID, g geom.ConvGeom, x, w, y *Buffer) error {
	_, t := convY(id, y)
	return d.needConvT(g, "x", x, g.XLen(), "w", w, g.WLen(), "y", y, g.YLen(), t)
}
