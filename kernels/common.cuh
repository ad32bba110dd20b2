// common.cuh: what every kernel source needs, without the CUDA SDK.
//
// The kernels are compiled by scripts/gen-ptx.sh with clang's CUDA front end
// and -nocudainc -nocudalib, so neither cuda_runtime.h nor the device
// libraries are available. The thread-index variables come from clang's own
// <__clang_cuda_builtin_vars.h>; the function and variable qualifiers are
// spelled out here as the attributes clang understands; __syncthreads() is a
// clang builtin (bar.sync 0). Nothing here depends on the host.

#ifndef CONVTRAIN_KERNELS_COMMON_CUH
#define CONVTRAIN_KERNELS_COMMON_CUH

#include <__clang_cuda_builtin_vars.h>  // threadIdx, blockIdx, blockDim, gridDim

#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __forceinline__ __inline__ __attribute__((always_inline))

// kBlock is block.x of every v1 kernel: the 1-D element-wise kernels
// (grid.x = ceil(total/kBlock)) and the block reductions, whose shared-memory
// tree below is written for exactly this many threads.
#define kBlock 256

// global_index is the 1-D thread index blockIdx.x·blockDim.x + threadIdx.x.
// The host guarantees every tensor has fewer than 2^31 elements, so 32-bit
// int index math cannot overflow.
static __device__ __forceinline__ int global_index() {
  return (int)(blockIdx.x * blockDim.x + threadIdx.x);
}

// block_sum_f32 adds v over the kBlock threads of a block in a fixed order
// and returns the total in thread 0 (other threads get an unspecified
// value; only thread 0 reads buf[0], so buf is free again after the
// caller's next barrier). buf is a __shared__ float[kBlock]. The order is a binary tree over
// thread indices: at stride 128, 64, …, 1, thread t < stride sets
// buf[t] = buf[t] + buf[t+stride]. Every thread of the block must call it
// (it contains barriers); the same inputs give the same bits every run.
static __device__ __forceinline__ float block_sum_f32(float v, float* buf) {
  unsigned t = threadIdx.x;
  buf[t] = v;
  __syncthreads();
#pragma unroll
  for (unsigned stride = kBlock / 2; stride > 0; stride >>= 1) {
    if (t < stride) buf[t] = buf[t] + buf[t + stride];
    __syncthreads();
  }
  return t == 0 ? buf[0] : 0;
}

// block_sum_i32 is block_sum_f32 for integers (exact, so the order only
// matters for overflow, which the callers rule out).
static __device__ __forceinline__ int block_sum_i32(int v, int* buf) {
  unsigned t = threadIdx.x;
  buf[t] = v;
  __syncthreads();
#pragma unroll
  for (unsigned stride = kBlock / 2; stride > 0; stride >>= 1) {
    if (t < stride) buf[t] = buf[t] + buf[t + stride];
    __syncthreads();
  }
  return t == 0 ? buf[0] : 0;
}

#endif  // CONVTRAIN_KERNELS_COMMON_CUH
