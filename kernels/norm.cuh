// norm.cuh: batch normalisation's per-channel pieces, shared by norm.cu
// (the kernels of every precision) and norm_pack.cu (the BF16 forms that
// also write the next convolution's channels-last copy). See norm.cu's
// header for the shapes and the rounding rules.

#ifndef CONVTRAIN_KERNELS_NORM_CUH
#define CONVTRAIN_KERNELS_NORM_CUH

#include "common.cuh"

// bn_value_index is the flat index of the channel's value i.
static __device__ __forceinline__ int bn_value_index(int i, int c, int C, int HW) {
  int n = i / HW;
  return (n * C + c) * HW + (i - n * HW);
}

// bn_load is x[j] as a float: a float32 x as it is, a bfloat16 x (its 16
// bits, the output of a BF16 convolution stored as bfloat16) widened,
// which is exact, so a kernel reading bfloat16 x computes the bits of its
// float32 form on the widened values.
static __device__ __forceinline__ float bn_load(const float* x, int j) { return x[j]; }
static __device__ __forceinline__ float bn_load(const unsigned short* x, int j) {
  return __builtin_bit_cast(float, (unsigned)x[j] << 16);
}

// bn_store stores v as y[j]: to a float32 y as it is, to a bfloat16 y
// rounded to nearest, ties to even (cvt.rn.bf16x2.f32's low half; sm_80:
// only norm_pack.cu instantiates it), the output of a batch norm that
// only a residual add reads, stored as bfloat16 as bf16 autocast stores it.
static __device__ __forceinline__ void bn_store(float* y, int j, float v) { y[j] = v; }
static __device__ __forceinline__ void bn_store(unsigned short* y, int j, float v) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(0.0f), "f"(v));
  y[j] = (unsigned short)r;
}

// bn_same is T itself: a parameter of type bn_same<T>::type is not
// deduced (the caller names T, or its default holds, nullptr included).
template <typename T>
struct bn_same {
  typedef T type;
};

// bn_epilogue is v, or with relu ≠ 0 relu_fwd_v1's max(v, 0): NaN stays
// NaN, −0 becomes +0.
static __device__ __forceinline__ float bn_epilogue(float v, int relu) {
  return (!relu || v > 0.0f || v != v) ? v : 0.0f;
}

// bn_relu_grad is the gradient at the input of a ReLU whose input was v,
// from dy at its output: dy where v > 0, else 0 (0 for a NaN or −0 v),
// relu_bwd_v1's value read from the ReLU's output bn_epilogue(v, 1), whose
// sign is v's.
static __device__ __forceinline__ float bn_relu_grad(float dy, float v) { return v > 0.0f ? dy : 0.0f; }

// bn_train_fwd<1> (bn_train_fwd_v1, v2) computes, for channel c = blockIdx.x,
//
//	μ = lanesum(x)/float(M);  S = lanesum((x − μ)·(x − μ))
//	invStd = 1/sqrt(S/float(M) + eps)
//	y = gamma[c]·((x − μ)·invStd) + beta[c]
//	save_mean[c] = μ, save_inv_std[c] = invStd   (each skipped when null)
//	run_mean[c] = one_minus_m·run_mean[c] + m·μ
//	run_var[c]  = one_minus_m·run_var[c]  + m·(S/float(M − 1))   (both skipped when run_mean is null)
//
// m and one_minus_m are the momentum and 1 − momentum rounded to float
// by the host; M = N·HW ≥ 2. bn_train_fwd<0> (bn_train_stats_v1) stops
// before y: the statistics alone, the same bits. TX is x's element type:
// float, or unsigned short for bfloat16 (bn_load); TY y's (bn_store).
//
// Launch: grid.x = C, block.x = 256.
template <int kWriteY, typename TX, typename TY = float>
static __device__ __forceinline__ void bn_train_fwd(const TX* x, const float* gamma, const float* beta,
                                                   typename bn_same<TY>::type* y, float* save_mean, float* save_inv_std,
                                                   float* run_mean, float* run_var, int N, int C, int HW,
                                                   float m, float one_minus_m, float eps, int relu) {
  // x is (N,C,HW), y is (N,C,HW); gamma, beta, save_mean, save_inv_std, run_mean, run_var are (C)
  __shared__ float buf[kBlock];
  __shared__ float bcast[2];
  int c = blockIdx.x;
  if (c >= C) return;
  int t = threadIdx.x;
  int M = N * HW;
  float fM = (float)M;

  float acc = 0.0f;
  for (int i = t; i < M; i += kBlock) acc = acc + bn_load(x, bn_value_index(i, c, C, HW));
  float s = block_sum_f32(acc, buf);
  if (t == 0) bcast[0] = __nvvm_div_rn_f(s, fM);
  __syncthreads();
  float mean = bcast[0];

  acc = 0.0f;
  for (int i = t; i < M; i += kBlock) {
    float d = bn_load(x, bn_value_index(i, c, C, HW)) - mean;
    acc = acc + d * d;
  }
  float S = block_sum_f32(acc, buf);
  if (t == 0) {
    float inv_std = __nvvm_div_rn_f(1.0f, __nvvm_sqrt_rn_f(__nvvm_div_rn_f(S, fM) + eps));
    bcast[1] = inv_std;
    if (save_mean) save_mean[c] = mean;
    if (save_inv_std) save_inv_std[c] = inv_std;
    if (run_mean) {
      float unbiased = __nvvm_div_rn_f(S, (float)(M - 1));
      run_mean[c] = one_minus_m * run_mean[c] + m * mean;
      run_var[c] = one_minus_m * run_var[c] + m * unbiased;
    }
  }
  if (!kWriteY) return;  // the statistics only (bn_train_stats_v1)
  __syncthreads();
  float inv_std = bcast[1];
  float g = gamma[c], b = beta[c];
  for (int i = t; i < M; i += kBlock) {
    int j = bn_value_index(i, c, C, HW);
    float xh = (bn_load(x, j) - mean) * inv_std;
    bn_store(y, j, bn_epilogue(g * xh + b, relu));
  }
}

// bn_eval_fwd computes, for every element of channel c,
//
//	invStd = 1/sqrt(run_var[c] + eps)
//	y = gamma[c]·((x − run_mean[c])·invStd) + beta[c]
//
// (cpuref.BatchNormEvalForward's float32 sequence; bn_eval_fwd_v1, with
// relu ≠ 0 then ReLU: v2). A NaN stays NaN. TX is x's element type
// (bn_load), TY y's (bn_store).
//
// Launch: 1-D over N·C·HW (grid.x = ceil(N·C·HW/256), block.x = 256).
template <typename TX, typename TY = float>
static __device__ __forceinline__ void bn_eval_fwd(const TX* x, const float* gamma, const float* beta,
                                                  const float* run_mean, const float* run_var,
                                                  typename bn_same<TY>::type* y, int N, int C, int HW, float eps,
                                                  int relu) {
  // x is (N,C,HW), y is (N,C,HW); gamma, beta, run_mean, run_var are (C)
  int i = global_index();
  if (i >= N * C * HW) return;
  int c = (i / HW) % C;
  float inv_std = __nvvm_div_rn_f(1.0f, __nvvm_sqrt_rn_f(run_var[c] + eps));
  float xh = (bn_load(x, i) - run_mean[c]) * inv_std;
  bn_store(y, i, bn_epilogue(gamma[c] * xh + beta[c], relu));
}

#endif  // CONVTRAIN_KERNELS_NORM_CUH
