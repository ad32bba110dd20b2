// sm_80 test kernels for the ptxsim unit tests, compiled by gen.sh.
#include <__clang_cuda_builtin_vars.h>
#define __global__ __attribute__((global))
#define __shared__ __attribute__((shared))
#define SHARED(p) ((void __attribute__((address_space(3)))*)(p))
#define GLOBAL(p) ((const void __attribute__((address_space(1)))*)(p))

// y[t] = x[(5t) mod 256] through shared memory filled by cp.async (16 bytes
// per thread), 64 threads.
extern "C" __global__ void cp_async_gather(const float* x, float* y) {
  __shared__ float s[256];
  int t = threadIdx.x;
  __nvvm_cp_async_ca_shared_global_16(SHARED(s + 4 * t), GLOBAL(x + 4 * t));
  __nvvm_cp_async_commit_group();
  __nvvm_cp_async_wait_group(0);
  __syncthreads();
  y[t] = s[(t * 5) % 256];
}

// out[w] = Σ in over warp w with redux.sync.
extern "C" __global__ void redux_sum(const unsigned* in, unsigned* out) {
  unsigned s = __nvvm_redux_sync_add(in[threadIdx.x], 0xffffffffu);
  if ((threadIdx.x & 31) == 0) out[threadIdx.x >> 5] = s;
}
