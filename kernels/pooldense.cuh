// pooldense.cuh: the body of the fused max-pool + dense forward for one
// image, shared by pool.cu's maxpool_dense_fwd_v1 and loss_v2.cu's
// maxpool_dense_softmax_v1.
#pragma once

#include "common.cuh"

// maxpool_dense_image runs, for image n with the block's kBlock threads,
// maxpool_fwd_v1 (threads t, t+256, … of the image; the first maximum of a
// window, NaN winning) and then dense_fwd_v1 on its output flattened
// (In = C·P·Q: z[n,o] = (Σ_i y[n,i]·w[o,i]) + b[o], the sum from 0 over i
// ascending, + b[o] when b is not null), each value by the operations of
// those kernels in their order, so the bits are theirs. The block's writes
// to y are made visible to it (__syncthreads) before the dense part reads
// them; every thread of the block must call it.
static __device__ __forceinline__ void maxpool_dense_image(const float* x, float* y, int* argmax, const float* w,
                                                           const float* b, float* z, int n, int C, int H, int W,
                                                           int R, int S, int P, int Q, int sh, int sw, int Out) {
  // x is (N,C,H,W), y and argmax are (N,C,P,Q), w is (Out,C·P·Q), b is (Out) or null, z is (N,Out)
  int In = C * P * Q;
  for (int j = (int)threadIdx.x; j < In; j += kBlock) {
    int i = n * In + j;
    int q = i % Q;
    int t = i / Q;
    int p = t % P;
    int nc = t / P;  // n·C + c
    int base = nc * H * W;
    int h0 = p * sh;
    int w0 = q * sw;
    int best_i = h0 * W + w0;
    float best = x[base + best_i];
    for (int r = 0; r < R; r++) {
      for (int s = 0; s < S; s++) {
        int jj = (h0 + r) * W + (w0 + s);
        float v = x[base + jj];
        if (v > best || (v != v && best == best)) {
          best = v;
          best_i = jj;
        }
      }
    }
    y[i] = best;
    argmax[i] = base + best_i;
  }
  __syncthreads();
  const float* xrow = y + n * In;
  for (int o = (int)threadIdx.x; o < Out; o += kBlock) {
    const float* wrow = w + o * In;
    float acc = 0.0f;
    for (int i = 0; i < In; i++) acc = acc + xrow[i] * wrow[i];
    if (b != 0) acc = acc + b[o];
    z[n * Out + o] = acc;
  }
}
