// activation.cu: ReLU, forward and backward, element-wise over n elements.
//
// Versions:
//
//	relu_fwd_v1  one thread per element.
//	relu_bwd_v1  one thread per element.
//	relu_bwd_bf16dy_v1  relu_bwd_v1 reading dy as bfloat16 (a BF16 convolution's input gradient).
//
// Launch: 1-D over n (grid.x = ceil(n/256), block.x = 256); every kernel
// guards its index and never writes out of range. In-place use (y == x,
// dx == dy) is allowed: each thread reads its element before writing it.

#include "common.cuh"

// relu_fwd_v1 computes y[i] = x[i] > 0 ? x[i] : 0, with NaN propagating
// (y = x when x is NaN) and −0 mapped to +0.
extern "C" __global__ void relu_fwd_v1(const float* x, float* y, int n) {
  // x is (n), y is (n)
  int i = global_index();
  if (i >= n) return;
  float v = x[i];
  y[i] = (v > 0.0f || v != v) ? v : 0.0f;
}

// relu_bwd_v1 computes dx[i] = x[i] > 0 ? dy[i] : 0, where x is the forward
// input (0 also when x is NaN).
extern "C" __global__ void relu_bwd_v1(const float* x, const float* dy, float* dx, int n) {
  // x is (n), dy is (n), dx is (n)
  int i = global_index();
  if (i >= n) return;
  dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

// relu_bwd_bf16dy_v1 is relu_bwd_v1 with dy (n) bfloat16, widened exactly
// as it is read: the input gradient of the BF16 convolution after the
// ReLU, stored so (conv2d_bwd_data_v9_igemm_bf16dx) where the ReLU, and
// the batch norm before it, are its only readers. dx stays float32 (so it
// is never dy).
extern "C" __global__ void relu_bwd_bf16dy_v1(const float* x, const unsigned short* dy, float* dx, int n) {
  // x is (n), dy is (n), dx is (n)
  int i = global_index();
  if (i >= n) return;
  dx[i] = x[i] > 0.0f ? __builtin_bit_cast(float, (unsigned)dy[i] << 16) : 0.0f;
}
