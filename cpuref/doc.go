// Package cpuref is the CPU reference of convtrain: it defines the math that
// every other implementation (the PTX simulator, the GPU) must reproduce, and
// it is the CPU training path.
//
// Shape letters, used in every doc comment of this package:
//
//	N batch, C input channels, H×W input size, K filters (output channels),
//	R×S kernel size, P×Q output size.
//
// Tensors are row-major NCHW, weights KCRS. Convolution is cross-correlation
// over a window with stride and zero padding per axis:
//
//	y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[n,c, p·sh − ph + r, q·sw − pw + s]
//	P = (H + 2ph − R)/sh + 1,  Q = (W + 2pw − S)/sw + 1
//
// Invalid geometry is an error returned before any work.
//
// Operations: convolution (direct and im2col forms), dense, max and average
// pooling (AvgPoolForward, with zero padding counted as PyTorch's
// count_include_pad), global average pooling, batch norm (training with
// running statistics, evaluation, backward), the residual add and channel
// concatenation, activations (ReLU, leaky ReLU, sigmoid, tanh, SiLU, GELU
// in both forms), dropout (DropoutMask from Philox4x32-10), the losses and
// the optimisers.
//
// Where a GPU kernel must give the same float32 bits, the float32 form is
// written as the kernel computes it and its doc gives the order of every
// operation: the lane sums of BatchNormTrainForward32 and
// BatchNormBackward32 (the kernels' 256-thread block reduction), the
// libm-free float32 functions of the activations (mathf.go, with their C
// twins in testdata/actf_check.cc over kernels/mathf.cuh), the window sums
// of the pooling operations, and the Philox counter layout of DropoutMask.
package cpuref
