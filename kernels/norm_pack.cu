// norm_pack.cu: batch normalisation that also writes the bfloat16
// channels-last copy of its output that the next convolution reads;
// sm_80 and newer (cvt.rn.bf16x2).
// gen-ptx: target sm_80
//
// At BF16 a convolution's forward and bwd-filter kernels read x as a
// bfloat16 channels-last copy (N,H,W,Cp) that pack_transpose_bf16_v2
// makes from x: one more pass over x after the layer that wrote it. When
// that layer is a batch norm (with its ReLU), these kernels write the copy
// while they write y: y's values are in registers anyway, so the
// convolution's packing pass, and its read of y, go away. y and the copy
// are the bits of bn_train_fwd_v2 (or bn_eval_fwd_v2) followed by
// pack_transpose_bf16_v2 on y (rows = C, cols = HW, rowsP = Cp, rev = 1).
//
// The backward pass mirrors it: a batch norm's input gradient dx is the
// gradient dy of the convolution before it, whose bwd-data and
// bwd-filter kernels at TF32 and BF16 read one channels-last copy of it
// (pack_transpose_{tf32,bf16}_v2 of dx); bn_bwd_apply_pack_v1 writes that
// copy as it writes dx.
//
// Versions:
//
//	bn_train_stats_v1      bn_train_fwd_v1 without y: μ, invStd and the running statistics only.
//	bn_apply_pack_bf16_v1  y = epilogue(γ·((x − μ)·invStd) + β) and y's bfloat16 channels-last copy,
//	                       a 32×32 tile (32 channels × 32 values of a plane) a block.
//	bn_apply_pack_tf32_v1  bn_apply_pack_bf16_v1 with the copy in TF32 words (a TF32 forward pass's).
//	bn_bwd_apply_pack_v1   bn_bwd_v1's dx from its dgamma and dbeta, and dx's TF32 or bfloat16
//	                       channels-last copy, a 32×32 tile a block.
//	bn_bwd_pack_v1         bn_bwd_apply_pack_v1 writing the copy only, not dx.
//	bn_bwd_relu_apply_pack_v1  bn_bwd_apply_pack_v1 for a batch norm with a ReLU after it (dy masked as
//	                           bn_bwd_relu_v1 reads it).
//	bn_bwd_relu_pack_v1    bn_bwd_pack_v1 likewise.
//	bn_train_stats_bf16x_v1      bn_train_stats_v1 reading x as bfloat16 (a BF16 convolution's output).
//	bn_apply_pack_bf16_bf16x_v1  bn_apply_pack_bf16_v1 reading x as bfloat16.
//	bn_pack_bf16_v1              bn_apply_pack_bf16_v1 writing the copy only, not y.
//	bn_pack_bf16_bf16x_v1        bn_pack_bf16_v1 reading x as bfloat16.
//	bn_bwd_apply_pack_bf16x_v1   bn_bwd_apply_pack_v1 reading x as bfloat16.
//	bn_bwd_pack_bf16x_v1         bn_bwd_pack_v1 reading x as bfloat16.
//	bn_bwd_relu_apply_pack_bf16x_v1  bn_bwd_relu_apply_pack_v1 reading x as bfloat16.
//	bn_bwd_relu_pack_bf16x_v1    bn_bwd_relu_pack_v1 reading x as bfloat16.
//	bn_bwd_apply_pack_bf16xdy_v1       bn_bwd_apply_pack_bf16x_v1 reading dy as bfloat16 too.
//	bn_bwd_pack_bf16xdy_v1             bn_bwd_pack_bf16x_v1 reading dy as bfloat16 too.
//	bn_bwd_relu_apply_pack_bf16xdy_v1  bn_bwd_relu_apply_pack_bf16x_v1 reading dy as bfloat16 too.
//	bn_bwd_relu_pack_bf16xdy_v1        bn_bwd_relu_pack_bf16x_v1 reading dy as bfloat16 too.
//	bn_train_fwd_bf16xy_v1 bn_train_fwd_bf16x_v1 storing y as bfloat16 (for a residual add its only reader).
//	bn_eval_fwd_bf16xy_v1  bn_eval_fwd_bf16x_v1 storing y as bfloat16.
//
// Training runs bn_train_stats_v1, then bn_apply_pack_bf16_v1 with its
// save_mean and save_inv_std; evaluation runs bn_apply_pack_bf16_v1 with
// the running mean and variance (eval ≠ 0: invStd = 1/√(run_var + eps) as
// bn_eval_fwd_v1 computes it). The backward pass runs bn_bwd_v1 with dx
// null (the sums: dgamma and dbeta), then bn_bwd_apply_pack_v1; with a
// ReLU after the batch norm, bn_bwd_relu_v1 then bn_bwd_relu_apply_pack_v1.
// The _bf16x kernels read x as bfloat16 (norm.cu's header), with the bits
// of their float32 forms on x widened; the _bf16xdy kernels read dy so too
// (a BF16 convolution's dx, conv2d_bwd_data_v9_igemm_bf16dx).

#include "norm.cuh"
#include "pack.cuh"

// bn_train_stats_v1 is bn_train_fwd_v1 without y (not read, not
// written): save_mean, save_inv_std and, when run_mean is not null, the
// running statistics, the same bits. Launch: grid.x = C, block.x = 256.
extern "C" __global__ void bn_train_stats_v1(const float* x, float* save_mean, float* save_inv_std,
                                             float* run_mean, float* run_var, int N, int C, int HW,
                                             float m, float one_minus_m, float eps) {
  bn_train_fwd<0>(x, nullptr, nullptr, nullptr, save_mean, save_inv_std, run_mean, run_var, N, C, HW, m,
                  one_minus_m, eps, 0);
}

// bn_train_stats_bf16x_v1 is bn_train_stats_v1 with x (N,C,HW) bfloat16
// (its bits on x widened). Launch: as bn_train_stats_v1.
extern "C" __global__ void bn_train_stats_bf16x_v1(const unsigned short* x, float* save_mean, float* save_inv_std,
                                                   float* run_mean, float* run_var, int N, int C, int HW,
                                                   float m, float one_minus_m, float eps) {
  bn_train_fwd<0>(x, nullptr, nullptr, nullptr, save_mean, save_inv_std, run_mean, run_var, N, C, HW, m,
                  one_minus_m, eps, 0);
}

// bn_apply_pack<kTF32> is bn_apply_pack_bf16_v1 (kTF32 = 0) and
// bn_apply_pack_tf32_v1 (kTF32 = 1: the copy in TF32 words); TX is x's
// element type (bn_load); kWriteY = 0 is bn_pack_bf16_v1 (the copy
// alone, y not written).
template <int kTF32, typename TX, int kWriteY = 1>
static __device__ __forceinline__ void bn_apply_pack(const TX* x, const float* gamma, const float* beta,
                                                     const float* mean, const float* stat, float* y, unsigned* dst,
                                                     int N, int C, int HW, int Cp, float eps, int eval, int relu) {
  __shared__ float t[kTile][kTile + 1];
  const int j0 = (int)blockIdx.x * kTile, i0 = (int)blockIdx.y * kTile;
  const int b = (int)blockIdx.z, tx = (int)threadIdx.x, ty = (int)threadIdx.y;
  const TX* s = x + b * C * HW;
  float* o = kWriteY ? y + b * C * HW : nullptr;
#pragma unroll
  for (int k = 0; k < kTile; k += 8) {
    int i = i0 + ty + k, j = j0 + tx;
    float v = 0.0f;
    if (i < C && j < HW) {
      float inv_std = eval ? __nvvm_div_rn_f(1.0f, __nvvm_sqrt_rn_f(stat[i] + eps)) : stat[i];
      float xh = (bn_load(s, i * HW + j) - mean[i]) * inv_std;
      v = bn_epilogue(gamma[i] * xh + beta[i], relu);
      if (kWriteY) o[i * HW + j] = v;
    }
    t[ty + k][tx] = v;
  }
  __syncthreads();
  store_tile(t, dst, HW, Cp, 1, i0, j0, kTF32);
}

// bn_apply_pack_bf16_v1 computes, for x and y (N,C,HW) and channel c,
//
//	invStd = stat[c]                          (eval = 0: bn_train_stats_v1's save_inv_std)
//	invStd = 1/sqrt(stat[c] + eps)            (eval ≠ 0: stat is the running variance)
//	y = bn_epilogue(gamma[c]·((x − mean[c])·invStd) + beta[c], relu)
//	dst[n, j, c] = bf16(y[n, c, j]) for c < C, 0 for C ≤ c < Cp
//
// dst is (N, HW, Cp) bfloat16 as N·HW·Cp/2 words, Cp even. A block of
// 32×8 threads reads a 32×32 tile of x (channels i0…, values j0… of
// image blockIdx.z) along the planes, writes y there and keeps it in
// shared memory, then writes the tile's copy as pack_transpose_bf16_v2
// does (store_tile_bf16). y may be x (each element is read by the thread
// that writes it).
//
// Launch: grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).
extern "C" __global__ void bn_apply_pack_bf16_v1(const float* x, const float* gamma, const float* beta,
                                                 const float* mean, const float* stat, float* y, unsigned* dst,
                                                 int N, int C, int HW, int Cp, float eps, int eval, int relu) {
  bn_apply_pack<0>(x, gamma, beta, mean, stat, y, dst, N, C, HW, Cp, eps, eval, relu);
}

// bn_apply_pack_tf32_v1 is bn_apply_pack_bf16_v1 writing the copy in TF32
// words (cvt.rna.tf32.f32, store_tile_tf32): dst is (N, HW, Cp) words,
// pack_transpose_tf32_v2's bits on y. At TF32 a convolution's forward
// kernel reads that copy, which nothing keeps for the backward pass (it
// would be as large as y): the caller's one buffer serves each batch norm
// and the convolution after it in turn. Launch: as bn_apply_pack_bf16_v1.
extern "C" __global__ void bn_apply_pack_tf32_v1(const float* x, const float* gamma, const float* beta,
                                                 const float* mean, const float* stat, float* y, unsigned* dst,
                                                 int N, int C, int HW, int Cp, float eps, int eval, int relu) {
  bn_apply_pack<1>(x, gamma, beta, mean, stat, y, dst, N, C, HW, Cp, eps, eval, relu);
}

// bn_apply_pack_bf16_bf16x_v1 is bn_apply_pack_bf16_v1 with x (N,C,HW)
// bfloat16: its bits on x widened. Launch: as bn_apply_pack_bf16_v1.
extern "C" __global__ void bn_apply_pack_bf16_bf16x_v1(const unsigned short* x, const float* gamma,
                                                       const float* beta, const float* mean, const float* stat,
                                                       float* y, unsigned* dst, int N, int C, int HW, int Cp,
                                                       float eps, int eval, int relu) {
  bn_apply_pack<0>(x, gamma, beta, mean, stat, y, dst, N, C, HW, Cp, eps, eval, relu);
}

// bn_pack_bf16_v1 is bn_apply_pack_bf16_v1 writing the copy only, not y:
// the same words in dst. For a batch norm whose output only the
// convolution after it reads, through that copy, which it keeps for its
// backward pass too (BatchNormForwardCopy): y's float32 values, which
// nothing would read, are not written. Launch: as bn_apply_pack_bf16_v1.
extern "C" __global__ void bn_pack_bf16_v1(const float* x, const float* gamma, const float* beta, const float* mean,
                                           const float* stat, unsigned* dst, int N, int C, int HW, int Cp, float eps,
                                           int eval, int relu) {
  bn_apply_pack<0, float, 0>(x, gamma, beta, mean, stat, nullptr, dst, N, C, HW, Cp, eps, eval, relu);
}

// bn_pack_bf16_bf16x_v1 is bn_pack_bf16_v1 with x (N,C,HW) bfloat16: its
// bits on x widened. Launch: as bn_apply_pack_bf16_v1.
extern "C" __global__ void bn_pack_bf16_bf16x_v1(const unsigned short* x, const float* gamma, const float* beta,
                                                 const float* mean, const float* stat, unsigned* dst, int N, int C,
                                                 int HW, int Cp, float eps, int eval, int relu) {
  bn_apply_pack<0, unsigned short, 0>(x, gamma, beta, mean, stat, nullptr, dst, N, C, HW, Cp, eps, eval, relu);
}

// bn_bwd_apply_pack<kWriteDx, kReLU> is bn_bwd_apply_pack_v1 (kWriteDx =
// 1) and bn_bwd_pack_v1 (kWriteDx = 0: dx not written), and with kReLU = 1
// their bn_bwd_relu_ forms (dy read as bn_relu_grad(dy, γ·x̂ + β)); TX is
// x's element type (bn_load), TDY dy's.
template <int kWriteDx, int kReLU, typename TX, typename TDY = float>
static __device__ __forceinline__ void bn_bwd_apply_pack(const TX* x, const float* gamma, const float* beta,
                                                         const float* save_mean,
                                                         const float* save_inv_std, const TDY* dy,
                                                         const float* dgamma, const float* dbeta, float* dx,
                                                         unsigned* dst, int N, int C, int HW, int Cp, int tf32) {
  __shared__ float t[kTile][kTile + 1];
  const int j0 = (int)blockIdx.x * kTile, i0 = (int)blockIdx.y * kTile;
  const int b = (int)blockIdx.z, tx = (int)threadIdx.x, ty = (int)threadIdx.y;
  const float fM = (float)(N * HW);
  const int base = b * C * HW;
#pragma unroll
  for (int k = 0; k < kTile; k += 8) {
    int i = i0 + ty + k, j = j0 + tx;
    float v = 0.0f;
    if (i < C && j < HW) {
      float inv_std = save_inv_std[i];
      float kk = gamma[i] * inv_std, mdy = __nvvm_div_rn_f(dbeta[i], fM), mdyx = __nvvm_div_rn_f(dgamma[i], fM);
      int e = base + i * HW + j;
      float xh = (bn_load(x, e) - save_mean[i]) * inv_std;
      float d = bn_load(dy, e);
      if (kReLU) d = bn_relu_grad(d, gamma[i] * xh + beta[i]);
      v = kk * ((d - mdy) - xh * mdyx);
      if (kWriteDx) {
        dx[e] = v;
      }
    }
    t[ty + k][tx] = v;
  }
  __syncthreads();
  store_tile(t, dst, HW, Cp, 1, i0, j0, tf32);
}

// bn_bwd_apply_pack_v1 computes, for x, dy and dx (N,C,HW) and channel c,
// from bn_bwd_v1's sums dbeta[c] = lanesum(dy) and dgamma[c] =
// lanesum(dy·x̂) (its launch with dx null),
//
//	x̂ = (x − save_mean[c])·save_inv_std[c]
//	k = gamma[c]·save_inv_std[c];  mdy = dbeta[c]/float(M);  mdyx = dgamma[c]/float(M)
//	dx = k·((dy − mdy) − x̂·mdyx)                       (bn_bwd_v1's bits)
//	dst[n, j, c] = round(dx[n, c, j]) for c < C, 0 for C ≤ c < Cp
//
// with M = N·HW and round bfloat16 (tf32 = 0: cvt.rn.bf16x2, dst (N,HW,Cp)
// bfloat16 as words, Cp even) or TF32 (tf32 ≠ 0: cvt.rna.tf32.f32, dst
// (N,HW,Cp) words): pack_transpose_bf16_v2's or pack_transpose_tf32_v2's
// bits on dx (rows = C, cols = HW, rowsP = Cp, rev = 1). dx may be dy.
//
// Launch: grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).
extern "C" __global__ void bn_bwd_apply_pack_v1(const float* x, const float* gamma, const float* save_mean,
                                                const float* save_inv_std, const float* dy, const float* dgamma,
                                                const float* dbeta, float* dx, unsigned* dst, int N, int C, int HW,
                                                int Cp, int tf32) {
  bn_bwd_apply_pack<1, 0>(x, gamma, nullptr, save_mean, save_inv_std, dy, dgamma, dbeta, dx, dst, N, C, HW, Cp, tf32);
}

// bn_bwd_pack_v1 is bn_bwd_apply_pack_v1 without dx: only dx's copy in dst
// is written, the same words. For a convolution whose backward kernels
// read only that copy of their dy (no bias gradient): the float32 dx,
// which nothing would read, is not written.
//
// Launch: as bn_bwd_apply_pack_v1.
extern "C" __global__ void bn_bwd_pack_v1(const float* x, const float* gamma, const float* save_mean,
                                          const float* save_inv_std, const float* dy, const float* dgamma,
                                          const float* dbeta, unsigned* dst, int N, int C, int HW, int Cp, int tf32) {
  bn_bwd_apply_pack<0, 0>(x, gamma, nullptr, save_mean, save_inv_std, dy, dgamma, dbeta, nullptr, dst, N, C, HW, Cp, tf32);
}

// bn_bwd_relu_apply_pack_v1 is bn_bwd_apply_pack_v1 after bn_bwd_relu_v1
// (its sums in dgamma and dbeta): dy is the gradient at the output of the
// ReLU after the batch norm, read as bn_relu_grad(dy, gamma[c]·x̂ +
// beta[c]). dx and its copy are the bits of relu_bwd_v1, then bn_bwd_v1
// and pack_transpose_{tf32,bf16}_v2. Launch: as bn_bwd_apply_pack_v1.
extern "C" __global__ void bn_bwd_relu_apply_pack_v1(const float* x, const float* gamma, const float* beta,
                                                     const float* save_mean, const float* save_inv_std,
                                                     const float* dy, const float* dgamma, const float* dbeta,
                                                     float* dx, unsigned* dst, int N, int C, int HW, int Cp, int tf32) {
  bn_bwd_apply_pack<1, 1>(x, gamma, beta, save_mean, save_inv_std, dy, dgamma, dbeta, dx, dst, N, C, HW, Cp, tf32);
}

// bn_bwd_relu_pack_v1 is bn_bwd_relu_apply_pack_v1 writing the copy only,
// not dx (as bn_bwd_pack_v1). Launch: as bn_bwd_apply_pack_v1.
extern "C" __global__ void bn_bwd_relu_pack_v1(const float* x, const float* gamma, const float* beta,
                                               const float* save_mean, const float* save_inv_std, const float* dy,
                                               const float* dgamma, const float* dbeta, unsigned* dst, int N, int C,
                                               int HW, int Cp, int tf32) {
  bn_bwd_apply_pack<0, 1>(x, gamma, beta, save_mean, save_inv_std, dy, dgamma, dbeta, nullptr, dst, N, C, HW, Cp, tf32);
}

// bn_bwd_apply_pack_bf16x_v1, bn_bwd_pack_bf16x_v1,
// bn_bwd_relu_apply_pack_bf16x_v1 and bn_bwd_relu_pack_bf16x_v1 are
// bn_bwd_apply_pack_v1, bn_bwd_pack_v1, bn_bwd_relu_apply_pack_v1 and
// bn_bwd_relu_pack_v1 with x (N,C,HW) bfloat16: their bits on x widened.
// Launch: as bn_bwd_apply_pack_v1.
extern "C" __global__ void bn_bwd_apply_pack_bf16x_v1(const unsigned short* x, const float* gamma,
                                                      const float* save_mean, const float* save_inv_std,
                                                      const float* dy, const float* dgamma, const float* dbeta,
                                                      float* dx, unsigned* dst, int N, int C, int HW, int Cp,
                                                      int tf32) {
  bn_bwd_apply_pack<1, 0>(x, gamma, nullptr, save_mean, save_inv_std, dy, dgamma, dbeta, dx, dst, N, C, HW, Cp, tf32);
}

extern "C" __global__ void bn_bwd_pack_bf16x_v1(const unsigned short* x, const float* gamma, const float* save_mean,
                                                const float* save_inv_std, const float* dy, const float* dgamma,
                                                const float* dbeta, unsigned* dst, int N, int C, int HW, int Cp,
                                                int tf32) {
  bn_bwd_apply_pack<0, 0>(x, gamma, nullptr, save_mean, save_inv_std, dy, dgamma, dbeta, nullptr, dst, N, C, HW, Cp,
                          tf32);
}

extern "C" __global__ void bn_bwd_relu_apply_pack_bf16x_v1(const unsigned short* x, const float* gamma,
                                                           const float* beta, const float* save_mean,
                                                           const float* save_inv_std, const float* dy,
                                                           const float* dgamma, const float* dbeta, float* dx,
                                                           unsigned* dst, int N, int C, int HW, int Cp, int tf32) {
  bn_bwd_apply_pack<1, 1>(x, gamma, beta, save_mean, save_inv_std, dy, dgamma, dbeta, dx, dst, N, C, HW, Cp, tf32);
}

extern "C" __global__ void bn_bwd_relu_pack_bf16x_v1(const unsigned short* x, const float* gamma, const float* beta,
                                                     const float* save_mean, const float* save_inv_std,
                                                     const float* dy, const float* dgamma, const float* dbeta,
                                                     unsigned* dst, int N, int C, int HW, int Cp, int tf32) {
  bn_bwd_apply_pack<0, 1>(x, gamma, beta, save_mean, save_inv_std, dy, dgamma, dbeta, nullptr, dst, N, C, HW, Cp,
                          tf32);
}

// bn_bwd_apply_pack_bf16xdy_v1, bn_bwd_pack_bf16xdy_v1,
// bn_bwd_relu_apply_pack_bf16xdy_v1 and bn_bwd_relu_pack_bf16xdy_v1 are
// the _bf16x kernels above with dy (N,C,HW) bfloat16 as well: their bits
// on x and dy widened (dx float32, so dx is never dy here). Launch: as
// bn_bwd_apply_pack_v1.
extern "C" __global__ void bn_bwd_apply_pack_bf16xdy_v1(const unsigned short* x, const float* gamma,
                                                        const float* save_mean, const float* save_inv_std,
                                                        const unsigned short* dy, const float* dgamma,
                                                        const float* dbeta, float* dx, unsigned* dst, int N, int C,
                                                        int HW, int Cp, int tf32) {
  bn_bwd_apply_pack<1, 0>(x, gamma, nullptr, save_mean, save_inv_std, dy, dgamma, dbeta, dx, dst, N, C, HW, Cp, tf32);
}

extern "C" __global__ void bn_bwd_pack_bf16xdy_v1(const unsigned short* x, const float* gamma, const float* save_mean,
                                                  const float* save_inv_std, const unsigned short* dy,
                                                  const float* dgamma, const float* dbeta, unsigned* dst, int N, int C,
                                                  int HW, int Cp, int tf32) {
  bn_bwd_apply_pack<0, 0>(x, gamma, nullptr, save_mean, save_inv_std, dy, dgamma, dbeta, nullptr, dst, N, C, HW, Cp,
                          tf32);
}

extern "C" __global__ void bn_bwd_relu_apply_pack_bf16xdy_v1(const unsigned short* x, const float* gamma,
                                                             const float* beta, const float* save_mean,
                                                             const float* save_inv_std, const unsigned short* dy,
                                                             const float* dgamma, const float* dbeta, float* dx,
                                                             unsigned* dst, int N, int C, int HW, int Cp, int tf32) {
  bn_bwd_apply_pack<1, 1>(x, gamma, beta, save_mean, save_inv_std, dy, dgamma, dbeta, dx, dst, N, C, HW, Cp, tf32);
}

extern "C" __global__ void bn_bwd_relu_pack_bf16xdy_v1(const unsigned short* x, const float* gamma, const float* beta,
                                                       const float* save_mean, const float* save_inv_std,
                                                       const unsigned short* dy, const float* dgamma,
                                                       const float* dbeta, unsigned* dst, int N, int C, int HW, int Cp,
                                                       int tf32) {
  bn_bwd_apply_pack<0, 1>(x, gamma, beta, save_mean, save_inv_std, dy, dgamma, dbeta, nullptr, dst, N, C, HW, Cp,
                          tf32);
}

// bn_train_fwd_bf16xy_v1 and bn_eval_fwd_bf16xy_v1 are
// bn_train_fwd_bf16x_v1 and bn_eval_fwd_bf16x_v1 storing y (N,C,HW) as
// bfloat16, each value rounded once after the epilogue (bn_store: to
// nearest, ties to even; cpuref.RoundBF16): the output of a batch norm
// whose input is a BF16 convolution's bfloat16 output and whose only
// reader is a residual add (add_bf16b_v1, add_relu_bf16b_v1,
// add_relu_pack_bf16_bf16b_v1), as bf16 autocast stores it: half the bytes
// written and read. Launch: as bn_train_fwd_v1 and bn_eval_fwd_v1.
extern "C" __global__ void bn_train_fwd_bf16xy_v1(const unsigned short* x, const float* gamma, const float* beta,
                                                  unsigned short* y, float* save_mean, float* save_inv_std,
                                                  float* run_mean, float* run_var, int N, int C, int HW, float m,
                                                  float one_minus_m, float eps, int relu) {
  bn_train_fwd<1, unsigned short, unsigned short>(x, gamma, beta, y, save_mean, save_inv_std, run_mean, run_var, N,
                                                  C, HW, m, one_minus_m, eps, relu);
}

extern "C" __global__ void bn_eval_fwd_bf16xy_v1(const unsigned short* x, const float* gamma, const float* beta,
                                                 const float* run_mean, const float* run_var, unsigned short* y,
                                                 int N, int C, int HW, float eps, int relu) {
  bn_eval_fwd<unsigned short, unsigned short>(x, gamma, beta, run_mean, run_var, y, N, C, HW, eps, relu);
}
