package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// A BF16 convolution's input gradient stored as bfloat16, for the batch
// norm's backward pass before it.
//
// At BF16 a convolution's backward-data pass (conv2d_bwd_data_v9_igemm_bf16)
// wrote dx as float32: written once, then read twice by the backward pass
// of the batch norm whose output the convolution read (its sums, then dx
// and the copy for the convolution before it). As PyTorch's bf16 autocast
// does (the gradient of a bfloat16 activation is bfloat16), the pass can
// store dx as bfloat16 instead, each float32 sum rounded once to nearest,
// ties to even: Conv2DBackwardData and Conv2DBackward write a BFloat16
// buffer dx where ConvInputGradBF16(g) (conv2d_bwd_data_v9_igemm_bf16dx),
// and the batch norm's backward operations take such a buffer as dy where
// x is bfloat16 too (the _bf16xdy kernels of kernels/norm.cu and
// norm_pack.cu, which widen dy exactly as they read it: the bits of the
// _bf16x forms on the rounded values, half the bytes), and so does
// ReLUBackward where the ReLU runs on its own (relu_bwd_bf16dy_v1).
// Nothing else takes a BFloat16 dx or dy (need refuses it).

// ConvInputGradBF16 reports whether the backward-data pass of g stores dx
// as bfloat16 when given a BFloat16 buffer dx (NewBFloat16): where the
// pass runs on BF16 tensor cores (ConvKernelFor(ConvBwdData, g) is
// conv2d_bwd_data_v9_igemm_bf16, at BF16 on compute capability 8.0 or
// newer). dx then holds each value rounded to bfloat16
// (cpuref.BF16Bits); elsewhere a BFloat16 dx is refused.
func (d *Device) ConvInputGradBF16(g geom.ConvGeom) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return g.Validate() == nil && d.kernelFor(d.convAlgoFor(ConvBwdData, g), ConvBwdData, g) == kConvBwdDataBF16 &&
		d.fns[kConvBwdDataBF16DX] != nil
}

// convDx is the kernel that runs backward-data kernel id writing dx, and
// dx's element type: conv2d_bwd_data_v9_igemm_bf16dx and BFloat16 for a
// BFloat16 dx of conv2d_bwd_data_v9_igemm_bf16, else id and Float32 (a
// BFloat16 dx of another kernel is refused by convDxCheck).
func convDx(id kernelID, dx *Buffer) (kernelID, DType) {
	if isBF16(dx) && id == kConvBwdDataBF16 {
		return kConvBwdDataBF16DX, BFloat16
	}
	return id, Float32
}

// convDxCheck refuses a BFloat16 dx for backward-data kernel id when id is
// not the BF16 kernel (ConvInputGradBF16 false).
func convDxCheck(id kernelID, g geom.ConvGeom, dx *Buffer) error {
	if isBF16(dx) && id != kConvBwdDataBF16 {
		return launchErr(id, g, fmt.Errorf("dx is a bfloat16 buffer, which only conv2d_bwd_data_v9_igemm_bf16 writes (ConvInputGradBF16 is false for this convolution): %w", geom.ErrGeometry))
	}
	return nil
}

// needConvDx is needConv for backward-data kernel id's dy, w and dx, dx of
// convDx's type.
func (d *Device) needConvDx(id kernelID, g geom.ConvGeom, dy, w, dx *Buffer) error {
	_, t := convDx(id, dx)
	return d.needConvT(g, "dy", dy, g.YLen(), "w", w, g.WLen(), "dx", dx, g.XLen(), t)
}
