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

// addOperands orders a residual add's inputs so that a bfloat16 one (a
// batch norm's output, pairedType) is b: a + b is b + a, bit for bit.
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
