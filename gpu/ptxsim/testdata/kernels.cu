// Test kernels for the ptxsim unit tests, compiled to PTX by gen.sh with
// Debian's clang-19 (no CUDA headers: the few declarations we need are below).
#include <__clang_cuda_builtin_vars.h>
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define FULL 0xffffffffu

// y[i] = a·x[i] + y[i] for i < n.
extern "C" __global__ void saxpy(int n, float a, const float* __restrict__ x, float* y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

// out[blockIdx.x] = Σ x over a grid-stride loop: warp shuffles, then one
// partial per warp in dynamic shared memory, then thread 0 sums the partials.
extern "C" __global__ void reduce_sum(const float* x, float* out, int n) {
  extern __shared__ float partial[];
  int t = threadIdx.x;
  float s = 0;
  for (int i = blockIdx.x * blockDim.x + t; i < n; i += blockDim.x * gridDim.x) s += x[i];
  for (int o = 16; o > 0; o >>= 1) s += __nvvm_shfl_sync_down_f32(FULL, s, o, 31);
  if ((t & 31) == 0) partial[t >> 5] = s;
  __syncthreads();
  if (t == 0) {
    float acc = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) acc += partial[w];
    out[blockIdx.x] = acc;
  }
}

// Direct convolution, one thread per output: x is (N,C,H,W), w is (K,C,R,S),
// y is (N,K,P,Q).
extern "C" __global__ void conv_direct(const float* x, const float* w, float* y, int N, int C, int H, int W,
                                       int K, int R, int S, int sh, int sw, int ph, int pw, int P, int Q) {
  int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= N * K * P * Q) return;
  int q = idx % Q, p = idx / Q % P, k = idx / (Q * P) % K, n = idx / (Q * P * K);
  float acc = 0.f;
  for (int c = 0; c < C; c++)
    for (int r = 0; r < R; r++)
      for (int s = 0; s < S; s++) {
        int h = p * sh - ph + r, ww = q * sw - pw + s;
        if (h >= 0 && h < H && ww >= 0 && ww < W)
          acc += w[((k * C + c) * R + r) * S + s] * x[((n * C + c) * H + h) * W + ww];
      }
  y[idx] = acc;
}

// Transpose of a (rows,cols) matrix through a padded 32×33 shared tile.
__shared__ float tile[32][33];
extern "C" __global__ void transpose(const float* in, float* out, int rows, int cols) {
  int x = blockIdx.x * 32 + threadIdx.x, y = blockIdx.y * 32 + threadIdx.y;
  if (x < cols && y < rows) tile[threadIdx.y][threadIdx.x] = in[y * cols + x];
  __syncthreads();
  int tx = blockIdx.y * 32 + threadIdx.x, ty = blockIdx.x * 32 + threadIdx.y;
  if (tx < rows && ty < cols) out[ty * rows + tx] = tile[threadIdx.x][threadIdx.y];
}

// Divergence: thread i loops i%7 times and takes one of two branches.
extern "C" __global__ void diverge(int* out) {
  int i = threadIdx.x + blockIdx.x * blockDim.x;
  int acc = 0;
  for (int j = 0; j < i % 7; j++) acc += j * i;
  if (i & 1) acc = -acc; else acc += 1000;
  out[i] = acc;
}

// Every shuffle mode and vote over a warp.
extern "C" __global__ void warp_ops(const int* in, int* out) {
  int t = threadIdx.x;
  int v = in[t];
  int* o = out + 8 * t;
  o[0] = __nvvm_shfl_sync_idx_i32(FULL, v, 5, 31);
  o[1] = __nvvm_shfl_sync_up_i32(FULL, v, 3, 0);
  o[2] = __nvvm_shfl_sync_down_i32(FULL, v, 3, 31);
  o[3] = __nvvm_shfl_sync_bfly_i32(FULL, v, 6, 31);
  o[4] = __nvvm_vote_ballot_sync(FULL, v > 10);
  o[5] = __nvvm_vote_any_sync(FULL, v == 7);
  o[6] = __nvvm_vote_all_sync(FULL, v >= 0);
  int s = v;
  for (int d = 1; d < 32; d <<= 1) s += __nvvm_shfl_sync_bfly_i32(FULL, s, d, 31);
  o[7] = s;
}

// Atomics on global and shared memory.
extern "C" __global__ void atomics(int* g, unsigned* u, float* f) {
  __shared__ int s[2];
  int t = threadIdx.x;
  if (t == 0) { s[0] = 0; s[1] = -1; }
  __syncthreads();
  __nvvm_atom_add_gen_i(&g[0], t);
  __nvvm_atom_max_gen_i(&g[1], t * 3 - 40);
  __nvvm_atom_min_gen_i(&g[2], 100 - t);
  __nvvm_atom_cas_gen_i(&g[3], 0, t + 1);
  __nvvm_atom_xchg_gen_i(&g[4], 9);
  __nvvm_atom_add_gen_i(&s[0], 2);
  __nvvm_atom_max_gen_i(&s[1], t);
  __nvvm_atom_inc_gen_ui(&u[0], 10u);
  __nvvm_atom_add_gen_f(&f[0], 0.5f);
  __syncthreads();
  if (t == 0 && blockIdx.x == 0) { g[5] = s[0]; g[6] = s[1]; }  // one block: no inter-block race
}

// Math builtins and conversions, one result per slot.
extern "C" __global__ void mathops(const float* x, const double* d, float* yf, int* yi, double* yd, unsigned* yu) {
  int t = threadIdx.x;
  float v = x[t];
  yf[8 * t + 0] = __builtin_sqrtf(v);
  yf[8 * t + 1] = __nvvm_ex2_approx_f(v);
  yf[8 * t + 2] = 1.0f / v;
  yf[8 * t + 3] = __builtin_fmaxf(v, 0.5f);
  yf[8 * t + 4] = __builtin_rintf(v);
  yf[8 * t + 5] = __builtin_floorf(v);
  yf[8 * t + 6] = (float)d[t];
  yf[8 * t + 7] = __nvvm_lg2_approx_f(v);
  yi[4 * t + 0] = (int)v;
  yi[4 * t + 1] = __nvvm_f2i_rn(v);
  yi[4 * t + 2] = (int)(long long)d[t];
  yi[4 * t + 3] = (int)((unsigned)t * 2654435761u >> 7) / (t - 3 ? t - 3 : 1);
  yd[2 * t + 0] = d[t] * 2.5 + __builtin_sqrt(d[t]);
  yd[2 * t + 1] = (double)t / 3.0;
  unsigned u = (unsigned)t * 2654435761u;
  yu[4 * t + 0] = __builtin_popcount(u);
  yu[4 * t + 1] = __builtin_clz(u | 1);
  yu[4 * t + 2] = __builtin_bitreverse32(u);
  yu[4 * t + 3] = (unsigned)(((unsigned long long)u * 0x9E3779B97F4A7C15ull) >> 40);
}

// A call to a non-inlined device function and a local array.
__device__ __attribute__((noinline)) float axpb(float a, float x, float b) { return a * x + b; }
extern "C" __global__ void call_local(float* y, int k) {
  float loc[8];
  int t = threadIdx.x;
  for (int i = 0; i < 8; i++) loc[i] = y[t * 8 + i];
  y[t * 8] = axpb(loc[k & 7], 2.0f, 1.0f);
}

// Warp-synchronous tree reduction in shared memory ordered by __syncwarp
// (bar.warp.sync): race-free. out[w] = Σ in over warp w.
extern "C" __global__ void warp_shared_reduce(const int* in, int* out) {
  __shared__ int s[64];
  int t = threadIdx.x, l = t & 31;
  s[t] = in[t];
  __nvvm_bar_warp_sync(FULL);
  for (int off = 16; off > 0; off >>= 1) {
    int v = 0;
    if (l < off) v = s[t + off];
    __nvvm_bar_warp_sync(FULL);
    if (l < off) s[t] += v;
    __nvvm_bar_warp_sync(FULL);
  }
  if (l == 0) out[t >> 5] = s[t];
}

// A warp-wide inclusive scan (Hillis-Steele) that reads s[t-off] and writes
// s[t] without a __syncwarp in between: lane l reads the cell that lane
// l-off writes in the same step. The race check must report it.
extern "C" __global__ void warp_shared_racy(const int* in, int* out) {
  __shared__ int s[64];
  int t = threadIdx.x, l = t & 31;
  s[t] = in[t];
  __nvvm_bar_warp_sync(FULL);
  for (int off = 1; off < 32; off <<= 1) {
    if (l >= off) s[t] += s[t - off];
    __nvvm_bar_warp_sync(FULL);
  }
  if (l == 31) out[t >> 5] = s[t];
}

// __constant__ tables (.const with initialisers) and __syncthreads_count/
// _and/_or (bar.red, inside clang's scoped register blocks).
__attribute__((constant)) float ctab[5] = {1.0f, 2.5f, -3.0f, 0.125f, 7.0f};
__attribute__((constant)) int cint[3] = {7, -8, 9};
extern "C" __global__ void consts_barred(float* y, int* z) {
  int t = threadIdx.x;
  y[t] = ctab[t % 5] * (float)cint[t % 3];
  int c = __nvvm_bar0_popc(t & 1);
  int a = __nvvm_bar0_and(t < 1000);
  int o = __nvvm_bar0_or(t == 3);
  int o2 = __nvvm_bar0_or(t == 1000);
  z[t] = c * 1000 + a * 100 + o * 10 + o2;
}

// __device__ variables (.global): the "last block" reduction. Each block
// stores a partial sum; the block that finishes last (atomic ticket) adds
// the partials in block order and resets the ticket for the next launch.
__attribute__((device)) unsigned ticket;
__attribute__((device)) float partials[64];
__attribute__((device)) int launches = 100;
extern "C" __global__ void last_block_sum(const float* x, float* out, int n) {
  if (threadIdx.x != 0) return;
  float s = 0;
  int chunk = (n + gridDim.x - 1) / gridDim.x;
  for (int i = blockIdx.x * chunk; i < n && i < (int)(blockIdx.x + 1) * chunk; i++) s += x[i];
  partials[blockIdx.x] = s;
  __nvvm_membar_gl();
  if (__nvvm_atom_inc_gen_ui(&ticket, gridDim.x - 1) == gridDim.x - 1) {
    float t = 0;
    for (unsigned b = 0; b < gridDim.x; b++) t += ((volatile float*)partials)[b];
    out[0] = t;
    out[1] = (float)launches++;
  }
}
