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

// Tensor-core tests, one warp: D = A·B + C with A (16,K), B (K,8) row-major
// and C, D (16,8) row-major, through the mma.sync fragment layouts of the
// PTX ISA.
#define __device__ __attribute__((device))
__device__ unsigned pack2(float lo, float hi, int bf) {
  unsigned r;
  if (bf)
    asm("{ .reg .b16 %%l, %%h; cvt.rn.bf16.f32 %%l, %1; cvt.rn.bf16.f32 %%h, %2; mov.b32 %0, {%%l, %%h}; }" : "=r"(r) : "f"(lo), "f"(hi));
  else
    asm("{ .reg .b16 %%l, %%h; cvt.rn.f16.f32 %%l, %1; cvt.rn.f16.f32 %%h, %2; mov.b32 %0, {%%l, %%h}; }" : "=r"(r) : "f"(lo), "f"(hi));
  return r;
}

extern "C" __global__ void mma_tf32(const float* A, const float* B, float* C) {
  int l = threadIdx.x, g = l >> 2, tg = l & 3;
  unsigned a0, a1, a2, a3, b0, b1;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(a0) : "f"(A[g * 8 + tg]));
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(a1) : "f"(A[(g + 8) * 8 + tg]));
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(a2) : "f"(A[g * 8 + tg + 4]));
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(a3) : "f"(A[(g + 8) * 8 + tg + 4]));
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(b0) : "f"(B[tg * 8 + g]));
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(b1) : "f"(B[(tg + 4) * 8 + g]));
  float* c = C + g * 8 + tg * 2;
  float c0 = c[0], c1 = c[1], c2 = c[64], c3 = c[65];
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c0), "+f"(c1), "+f"(c2), "+f"(c3) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  c[0] = c0, c[1] = c1, c[64] = c2, c[65] = c3;
}

extern "C" __global__ void mma_16bit(const float* A, const float* B, float* C, int bf) {
  int l = threadIdx.x, g = l >> 2, tg = l & 3;
  unsigned a[4], b[2];
  for (int j = 0; j < 4; j++) {
    int row = g + 8 * (j & 1), col = 2 * tg + 8 * (j >> 1);
    a[j] = pack2(A[row * 16 + col], A[row * 16 + col + 1], bf);
  }
  for (int j = 0; j < 2; j++) {
    int k = 2 * tg + 8 * j;
    b[j] = pack2(B[k * 8 + g], B[(k + 1) * 8 + g], bf);
  }
  float* c = C + g * 8 + tg * 2;
  float c0 = c[0], c1 = c[1], c2 = c[64], c3 = c[65];
  if (bf)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c0), "+f"(c1), "+f"(c2), "+f"(c3) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c0), "+f"(c1), "+f"(c2), "+f"(c3) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  c[0] = c0, c[1] = c1, c[64] = c2, c[65] = c3;
}

// The same f16 product with the fragments loaded by ldmatrix from shared
// memory: A with .x4, B (stored (K,N) row-major) with .x2.trans.
extern "C" __global__ void mma_ldmatrix(const float* A, const float* B, float* C) {
  __shared__ __attribute__((aligned(16))) unsigned short sa[16 * 16], sb[16 * 8];
  int l = threadIdx.x, g = l >> 2, tg = l & 3;
  for (int i = l; i < 16 * 16; i += 32) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(A[i]));
    sa[i] = h;
  }
  for (int i = l; i < 16 * 8; i += 32) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(B[i]));
    sb[i] = h;
  }
  __syncthreads();
  unsigned a0, a1, a2, a3, b0, b1;
  unsigned long long rowa, rowb;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(rowa) : "l"(sa + (l % 16) * 16 + (l / 16) * 8));
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(rowb) : "l"(sb + (l % 16) * 8));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(a0), "=r"(a1), "=r"(a2), "=r"(a3) : "l"(rowa));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];"
               : "=r"(b0), "=r"(b1) : "l"(rowb));
  float* c = C + g * 8 + tg * 2;
  float c0 = c[0], c1 = c[1], c2 = c[64], c3 = c[65];
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c0), "+f"(c1), "+f"(c2), "+f"(c3) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  c[0] = c0, c[1] = c1, c[64] = c2, c[65] = c3;
}
