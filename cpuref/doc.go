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
package cpuref
