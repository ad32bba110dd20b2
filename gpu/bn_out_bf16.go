package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// A batch norm's output stored as bfloat16, for the residual add that
// alone reads it.
//
// In a residual block the last batch norm (and a projection's) reads a
// BF16 convolution's bfloat16 output (y_bf16.go) and writes y in float32,
// which only the residual add reads, once. As PyTorch's bf16 autocast
// does (a batch norm on a bfloat16 input returns bfloat16), the batch
// norm can store y as bfloat16 instead, each value rounded once after
// the epilogue: BatchNormTrainForward and BatchNormEvalForward write a
// BFloat16 y where x is BFloat16 too (bn_train_fwd_bf16xy_v1,
// bn_eval_fwd_bf16xy_v1), and Add, AddReLU and AddReLUKeep take such a
// buffer as one of their inputs (add_bf16b_v1, add_relu_bf16b_v1,
// add_relu_pack_bf16_bf16b_v1, which widen it exactly as they read it: the
// bits of the float32 forms on the rounded values; a + b is b + a, so the
// bfloat16 input is passed as b). Half the bytes written and read; the
// batch norm's backward pass does not read y. BatchNormForwardKeep and
// BatchNormForwardCopy, which write a conv's copy beside y, refuse a
// bfloat16 y.

// bnOutType is the element type a batch norm's forward pass accepts for
// y: BFloat16 for a BFloat16 y where x is BFloat16 too, else Float32.
func bnOutType(x, y *Buffer) DType {
	if isBF16(x) && isBF16(y) {
		return BFloat16
	}
	return Float32
}

// bnFwdKernel is the batch norm's forward kernel k (a float32 form:
// bn_train_fwd_v1/v2, bn_eval_fwd_v1/v2) for x and y: bf16xKernel's, and
// where y is bfloat16 too (bnOutType) the _bf16xy twin.
func bnFwdKernel(k kernelID, x, y *Buffer) kernelID {
	k = bf16xKernel(k, x)
	if bnOutType(x, y) != BFloat16 {
		return k
	}
	switch k {
	case kBNTrainFwdBF16X:
		return kBNTrainFwdBF16XY
	case kBNEvalFwdBF16X:
		return kBNEvalFwdBF16XY
	}
	return k
}

// addOperands orders a residual add's inputs so that a bfloat16 one (a
// batch norm's output, bnOutType) is b: a + b is b + a, bit for bit.
func addOperands(a, b *Buffer) (*Buffer, *Buffer) {
	if isBF16(a) && !isBF16(b) {
		return b, a
	}
	return a, b
}

// addKernelFor is add kernel k (add_v1, add_relu_v1,
// add_relu_pack_bf16_v1) for a bfloat16 b: its _bf16b twin; else k.
func addKernelFor(k kernelID, b *Buffer) kernelID {
	if !isBF16(b) {
		return k
	}
	switch k {
	case kAdd:
		return kAddBF16B
	case kAddReLU:
		return kAddReLUBF16B
	case kAddReLUPackBF16:
		return kAddReLUPackBF16B
	}
	return k
}

// bTypeFor is the element type add kernel k accepts for b.
func bTypeFor(k kernelID) DType {
	switch k {
	case kAddBF16B, kAddReLUBF16B, kAddReLUPackBF16B:
		return BFloat16
	}
	return Float32
}

// errBF16YCopy refuses a bfloat16 y where a batch norm would write a
// conv's copy beside it.
var errBF16YCopy = fmt.Errorf("y is a bfloat16 buffer: a batch norm writing a convolution's copy writes a float32 y: %w", geom.ErrGeometry)
