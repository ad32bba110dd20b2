// pack.cu: coalesced packing of the tensor-core pipeline's operands
// through shared-memory tiles; sm_80 and newer (cvt.rn.bf16x2).
// gen-ptx: target sm_80
//
// The channels-last packing of x (N,C,H,W) → (N,H,W,Cp) and the flipped
// transpose of w (K,C,R,S) → (C,R,S,Kp) are one operation, a batched
// transpose that pads the new inner dimension with zeros and may reverse
// the columns within groups of rev:
//
//	dst[b, rv(j), i] = round(src[b, i, j])   for i < rows,   0 for rows ≤ i < rowsP
//	rv(j) = (j/rev)·rev + rev − 1 − j%rev
//
// src is (B, rows, cols) float32, dst (B, cols, rowsP) bfloat16 or TF32.
// x: B = N, rows = C, cols = H·W, rowsP = Cp, rev = 1; w: B = 1, rows = K,
// cols = C·R·S, rowsP = Kp, rev = R·S (the taps reversed).
//
// Versions:
//
//	pack_transpose_bf16_v2  the transpose to bfloat16 (cvt.rn.bf16x2: to nearest, ties to even)
//	pack_transpose_tf32_v2  the transpose to TF32 words (cvt.rna.tf32.f32)
//	pack_transpose_f32_v2   the transpose of float32 as it is (for the FP32 pipeline, v11)
//
// pack_nhwc_*_v1 and pack_crsk_flip_*_v1 write one output word per thread
// and read the channels of a pixel H·W floats apart: every read of a warp
// touches its own 32-byte sector. Here a block of 32×8 threads moves a
// 32×32 tile: each warp reads 32 consecutive floats of a src row (4
// sectors) into a shared tile padded to 33 columns, then writes whole
// 16-byte-aligned runs of dst rows (64 bytes of bfloat16 for each of two
// columns a warp, or 128 bytes of TF32); the shared reads of the second
// phase fall into distinct banks.
//
// Launch: grid = (⌈cols/32⌉, ⌈rowsP/32⌉, B), block = (32, 8); rowsP even
// for BF16.

#include "pack.cuh"

// load_tile reads the 32×32 tile at rows i0…, columns j0… of src's batch b
// into t (0 past rows or cols).
static __device__ __forceinline__ void load_tile(const float* src, float (*t)[kTile + 1], int rows,
                                                 int cols, int i0, int j0) {
  int b = (int)blockIdx.z, tx = (int)threadIdx.x, ty = (int)threadIdx.y;
  const float* s = src + b * rows * cols;
#pragma unroll
  for (int k = 0; k < kTile; k += 8) {
    int i = i0 + ty + k, j = j0 + tx;
    t[ty + k][tx] = i < rows && j < cols ? s[i * cols + j] : 0.0f;
  }
}

// pack_transpose_bf16_v2: dst[b, rv(j), i] = bf16(src[b, i, j]) (see the
// header). dst is (B, cols, rowsP) bfloat16 as B·cols·rowsP/2 words.
extern "C" __global__ void pack_transpose_bf16_v2(const float* src, unsigned* dst, int B, int rows,
                                                  int cols, int rowsP, int rev) {
  __shared__ float t[kTile][kTile + 1];
  const int j0 = (int)blockIdx.x * kTile, i0 = (int)blockIdx.y * kTile;
  load_tile(src, t, rows, cols, i0, j0);
  __syncthreads();
  store_tile_bf16(t, dst, cols, rowsP, rev, i0, j0);
}

// pack_transpose_tf32_v2: dst[b, rv(j), i] = tf32(src[b, i, j]) (see the
// header). dst is (B, cols, rowsP) TF32 words.
extern "C" __global__ void pack_transpose_tf32_v2(const float* src, unsigned* dst, int B, int rows,
                                                  int cols, int rowsP, int rev) {
  __shared__ float t[kTile][kTile + 1];
  const int j0 = (int)blockIdx.x * kTile, i0 = (int)blockIdx.y * kTile;
  load_tile(src, t, rows, cols, i0, j0);
  __syncthreads();
  store_tile_tf32(t, dst, cols, rowsP, rev, i0, j0);
}

// pack_transpose_f32_v2: dst[b, rv(j), i] = src[b, i, j] (see the header;
// no rounding). dst is (B, cols, rowsP) float32.
extern "C" __global__ void pack_transpose_f32_v2(const float* src, float* dst, int B, int rows,
                                                 int cols, int rowsP, int rev) {
  __shared__ float t[kTile][kTile + 1];
  const int j0 = (int)blockIdx.x * kTile, i0 = (int)blockIdx.y * kTile;
  load_tile(src, t, rows, cols, i0, j0);
  __syncthreads();
  int tx = (int)threadIdx.x, ty = (int)threadIdx.y;
  float* d = dst + (int)blockIdx.z * cols * rowsP;
#pragma unroll
  for (int k = 0; k < kTile; k += 8) {
    int jl = ty + k, j = j0 + jl, i = i0 + tx;
    if (j < cols && i < rowsP) d[rv(j, rev) * rowsP + i] = t[tx][jl];
  }
}
