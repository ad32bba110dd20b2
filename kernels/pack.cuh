// pack.cuh: the channels-last packing's tile, shared by pack.cu (the
// packing kernels), norm_pack.cu (batch norm writing the next
// convolution's copy as it writes y) and add_pack.cu (the residual
// add+ReLU writing the copies of the convolutions reading it). See
// pack.cu's header for the layout.

#ifndef CONVTRAIN_KERNELS_PACK_CUH
#define CONVTRAIN_KERNELS_PACK_CUH

#include "common.cuh"

#define kTile 32

// rv is the column j reversed within its group of rev.
static __device__ __forceinline__ int rv(int j, int rev) {
  int g = j / rev;
  return g * rev + rev - 1 - (j - g * rev);
}

// store_tile_bf16 writes the 32×32 tile t (rows i0…, columns j0… of the
// source, already in shared memory and followed by a barrier) to dst,
// batch blockIdx.z of (B, cols, rowsP) bfloat16 as words: dst[b, rv(j),
// i] = bf16(t[i − i0][j − j0]) (cvt.rn.bf16x2: to nearest, ties to even)
// for j < cols and i < rowsP. Thread l = 32·ty + tx of the 32×8 block
// writes word w = l%16 (rows 2w, 2w+1) of columns l/16 and l/16 + 16 of
// the tile: 64 bytes of a dst row for each 16 threads.
static __device__ __forceinline__ void store_tile_bf16(float (*t)[kTile + 1], unsigned* dst, int cols, int rowsP,
                                                       int rev, int i0, int j0) {
  int l = 32 * (int)threadIdx.y + (int)threadIdx.x, w = l & 15;
  unsigned* d = dst + (int)blockIdx.z * cols * (rowsP >> 1);
#pragma unroll
  for (int k = 0; k < kTile; k += 16) {
    int jl = (l >> 4) + k, j = j0 + jl, i = i0 + 2 * w;
    if (j < cols && i < rowsP) {
      unsigned r;
      asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(t[2 * w + 1][jl]), "f"(t[2 * w][jl]));
      d[rv(j, rev) * (rowsP >> 1) + (i >> 1)] = r;
    }
  }
}

// store_tile_tf32 is store_tile_bf16 to TF32 words (cvt.rna.tf32.f32):
// dst is (B, cols, rowsP) words; thread (tx, ty) writes row i0 + tx of
// columns j0 + ty, j0 + ty + 8, …: 128 bytes of a dst row a warp.
static __device__ __forceinline__ void store_tile_tf32(float (*t)[kTile + 1], unsigned* dst, int cols, int rowsP,
                                                       int rev, int i0, int j0) {
  int tx = (int)threadIdx.x, ty = (int)threadIdx.y;
  unsigned* d = dst + (int)blockIdx.z * cols * rowsP;
#pragma unroll
  for (int k = 0; k < kTile; k += 8) {
    int jl = ty + k, j = j0 + jl, i = i0 + tx;
    if (j < cols && i < rowsP) {
      unsigned r;
      asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(t[tx][jl]));
      d[rv(j, rev) * rowsP + i] = r;
    }
  }
}

// store_tile is store_tile_tf32 when tf32 ≠ 0, else store_tile_bf16: the
// copy of a layer that writes a convolution's TF32 or BF16 operand as it
// writes its output (norm_pack.cu, add_pack.cu).
static __device__ __forceinline__ void store_tile(float (*t)[kTile + 1], unsigned* dst, int cols, int rowsP, int rev,
                                                  int i0, int j0, int tf32) {
  if (tf32) {
    store_tile_tf32(t, dst, cols, rowsP, rev, i0, j0);
  } else {
    store_tile_bf16(t, dst, cols, rowsP, rev, i0, j0);
  }
}

#endif  // CONVTRAIN_KERNELS_PACK_CUH
