// norm.cu: batch normalisation (PyTorch's BatchNorm2d), training forward,
// evaluation forward and backward, bit for bit the float32 forms of
// cpuref/batchnorm.go.
//
// Shape letters: N batch, C channels, HW = H·W values per channel plane;
// M = N·HW values per channel; tensors are row-major
//
//	x, y, dy and dx are (N,C,HW); gamma, beta, save_mean, save_inv_std,
//	run_mean, run_var, dgamma and dbeta are (C).
//
// The value of channel c with index i = n·HW + j (0 ≤ i < M) is
// x[(n·C + c)·HW + j].
//
// Versions:
//
//	bn_train_fwd_v1  one block per channel: lane sums of x, then of (x − μ)², then the normalisation.
//	bn_eval_fwd_v1   one thread per element, with the running statistics.
//	bn_train_fwd_v2  bn_train_fwd_v1 with an optional ReLU epilogue (relu ≠ 0).
//	bn_eval_fwd_v2   bn_eval_fwd_v1 with an optional ReLU epilogue (relu ≠ 0).
//	bn_bwd_v1        one block per channel: lane sums of dy and dy·x̂, then dx.
//	bn_bwd_relu_v1   bn_bwd_v1 of the gradient of a ReLU after the batch norm: dy masked as it is
//	                 read, the mask recomputed from x (no ReLU output read, no masked copy).
//	bn_train_fwd_bf16x_v1  bn_train_fwd_v2 reading x as bfloat16 (a BF16 convolution's output).
//	bn_eval_fwd_bf16x_v1   bn_eval_fwd_v2 reading x as bfloat16.
//	bn_bwd_bf16x_v1        bn_bwd_v1 reading x as bfloat16.
//	bn_bwd_relu_bf16x_v1   bn_bwd_relu_v1 reading x as bfloat16.
//	bn_bwd_bf16xdy_v1      bn_bwd_v1 reading x and dy as bfloat16 (dy a BF16 convolution's dx).
//	bn_bwd_relu_bf16xdy_v1 bn_bwd_relu_v1 reading x and dy as bfloat16.
//
// A lane sum (cpuref.BatchNormTrainForward32's lanesum) is the block's 256
// threads each adding the values i = t, t+256, … of the channel in
// ascending order to a float32 from +0, then block_sum_f32's tree. Every
// other operation is one IEEE operation rounded to float32 in the order the
// comments write: mul.rn/add.rn/sub.rn (-ffp-contract=off: no fusion), and
// div.rn and sqrt.rn asked for explicitly, so the GPU, the simulator and
// cpuref agree bit for bit.
//
// Launch shapes (kBlock = 256 threads per block) are stated at each kernel;
// every kernel guards its index and never writes out of range. In-place use
// (y == x, dx == dy) is allowed: each element is read by the thread that
// writes it, after every sum that needs it.
//
// The _bf16x kernels read x as bfloat16, (N,C,HW) 16-bit values: a BF16
// convolution stores its output so (conv2d_fwd_v7_igemm_bf16y) where the
// batch norm after it is its only reader: half the bytes written, and read
// three times forward and twice backward. Each widens x exactly (bn_load) and computes its
// float32 form's bits on the widened values; y, dy and dx stay float32.
// The _bf16xdy kernels read dy as bfloat16 too: the input gradient of the
// BF16 convolution after the batch norm, stored so
// (conv2d_bwd_data_v9_igemm_bf16dx) where the batch norm's backward pass is
// its only reader (twice: the sums, then dx), widened the same way.

#include "norm.cuh"


extern "C" __global__ void bn_train_fwd_v1(const float* x, const float* gamma, const float* beta,
                                           float* y, float* save_mean, float* save_inv_std,
                                           float* run_mean, float* run_var, int N, int C, int HW,
                                           float m, float one_minus_m, float eps) {
  bn_train_fwd<1>(x, gamma, beta, y, save_mean, save_inv_std, run_mean, run_var, N, C, HW, m, one_minus_m, eps, 0);
}

// bn_train_fwd_v2 is bn_train_fwd_v1, then, when relu ≠ 0, ReLU on each
// output before it is stored: y = bn_epilogue(γ·x̂ + β, relu), the bits of
// bn_train_fwd_v1 followed by relu_fwd_v1. Launch: as bn_train_fwd_v1.
extern "C" __global__ void bn_train_fwd_v2(const float* x, const float* gamma, const float* beta,
                                           float* y, float* save_mean, float* save_inv_std,
                                           float* run_mean, float* run_var, int N, int C, int HW,
                                           float m, float one_minus_m, float eps, int relu) {
  bn_train_fwd<1>(x, gamma, beta, y, save_mean, save_inv_std, run_mean, run_var, N, C, HW, m, one_minus_m, eps, relu);
}

// bn_train_fwd_bf16x_v1 is bn_train_fwd_v2 with x (N,C,HW) bfloat16: the
// bits of bn_train_fwd_v2 on x widened to float32. Launch: as
// bn_train_fwd_v1.
extern "C" __global__ void bn_train_fwd_bf16x_v1(const unsigned short* x, const float* gamma, const float* beta,
                                                 float* y, float* save_mean, float* save_inv_std,
                                                 float* run_mean, float* run_var, int N, int C, int HW,
                                                 float m, float one_minus_m, float eps, int relu) {
  bn_train_fwd<1>(x, gamma, beta, y, save_mean, save_inv_std, run_mean, run_var, N, C, HW, m, one_minus_m, eps, relu);
}

// bn_eval_fwd_v1 is norm.cuh's bn_eval_fwd without the ReLU: y =
// gamma[c]·((x − run_mean[c])·(1/sqrt(run_var[c] + eps))) + beta[c].
//
// Launch: 1-D over N·C·HW (grid.x = ceil(N·C·HW/256), block.x = 256).
extern "C" __global__ void bn_eval_fwd_v1(const float* x, const float* gamma, const float* beta,
                                          const float* run_mean, const float* run_var, float* y,
                                          int N, int C, int HW, float eps) {
  bn_eval_fwd(x, gamma, beta, run_mean, run_var, y, N, C, HW, eps, 0);
}

// bn_eval_fwd_v2 is bn_eval_fwd_v1, then, when relu ≠ 0, ReLU on each
// output before it is stored (the bits of bn_eval_fwd_v1 followed by
// relu_fwd_v1). Launch: as bn_eval_fwd_v1.
extern "C" __global__ void bn_eval_fwd_v2(const float* x, const float* gamma, const float* beta,
                                          const float* run_mean, const float* run_var, float* y,
                                          int N, int C, int HW, float eps, int relu) {
  bn_eval_fwd(x, gamma, beta, run_mean, run_var, y, N, C, HW, eps, relu);
}

// bn_eval_fwd_bf16x_v1 is bn_eval_fwd_v2 with x (N,C,HW) bfloat16 (its
// bits on x widened). Launch: as bn_eval_fwd_v1.
extern "C" __global__ void bn_eval_fwd_bf16x_v1(const unsigned short* x, const float* gamma, const float* beta,
                                                const float* run_mean, const float* run_var, float* y,
                                                int N, int C, int HW, float eps, int relu) {
  bn_eval_fwd(x, gamma, beta, run_mean, run_var, y, N, C, HW, eps, relu);
}

// bn_bwd<kReLU> is bn_bwd_v1 (kReLU = 0) and bn_bwd_relu_v1 (kReLU = 1:
// every dy read is bn_relu_grad(dy, γ·x̂ + β), beta read); TX is x's
// element type (bn_load), TDY dy's.
template <int kReLU, typename TX, typename TDY = float>
static __device__ __forceinline__ void bn_bwd(const TX* x, const float* gamma, const float* beta,
                                              const float* save_mean, const float* save_inv_std, const TDY* dy,
                                              float* dx, float* dgamma, float* dbeta, int N, int C, int HW) {
  // x, dy and dx are (N,C,HW); gamma, beta, save_mean, save_inv_std, dgamma, dbeta are (C)
  __shared__ float buf[kBlock];
  __shared__ float buf2[kBlock];
  __shared__ float bcast[3];
  int c = blockIdx.x;
  if (c >= C) return;
  int t = threadIdx.x;
  int M = N * HW;
  float fM = (float)M;
  float mean = save_mean[c], inv_std = save_inv_std[c];
  float g = kReLU ? gamma[c] : 0.0f, b = kReLU ? beta[c] : 0.0f;

  float a1 = 0.0f, a2 = 0.0f;
  for (int i = t; i < M; i += kBlock) {
    int j = bn_value_index(i, c, C, HW);
    float xh = (bn_load(x, j) - mean) * inv_std;
    float d = bn_load(dy, j);
    if (kReLU) d = bn_relu_grad(d, g * xh + b);
    a1 = a1 + d;
    a2 = a2 + d * xh;
  }
  float sdy = block_sum_f32(a1, buf);
  float sdyx = block_sum_f32(a2, buf2);
  if (t == 0) {
    dbeta[c] = sdy;
    dgamma[c] = sdyx;
    bcast[0] = gamma[c] * inv_std;
    bcast[1] = __nvvm_div_rn_f(sdy, fM);
    bcast[2] = __nvvm_div_rn_f(sdyx, fM);
  }
  if (!dx) return;  // the same for every thread of the block
  __syncthreads();
  float k = bcast[0], mdy = bcast[1], mdyx = bcast[2];
  for (int i = t; i < M; i += kBlock) {
    int j = bn_value_index(i, c, C, HW);
    float xh = (bn_load(x, j) - mean) * inv_std;
    float d = bn_load(dy, j);
    if (kReLU) d = bn_relu_grad(d, g * xh + b);
    dx[j] = k * ((d - mdy) - xh * mdyx);
  }
}

// bn_bwd_v1 computes, for channel c = blockIdx.x, with μ = save_mean[c] and
// invStd = save_inv_std[c] from bn_train_fwd_v1,
//
//	x̂ = (x − μ)·invStd
//	dbeta[c] = lanesum(dy);  dgamma[c] = lanesum(dy·x̂)
//	k = gamma[c]·invStd;  mdy = dbeta[c]/float(M);  mdyx = dgamma[c]/float(M)
//	dx = k·((dy − mdy) − x̂·mdyx)            (skipped when dx is null)
//
// Launch: grid.x = C, block.x = 256.
extern "C" __global__ void bn_bwd_v1(const float* x, const float* gamma, const float* save_mean,
                                     const float* save_inv_std, const float* dy, float* dx,
                                     float* dgamma, float* dbeta, int N, int C, int HW) {
  bn_bwd<0>(x, gamma, nullptr, save_mean, save_inv_std, dy, dx, dgamma, dbeta, N, C, HW);
}

// bn_bwd_relu_v1 is bn_bwd_v1 for a batch norm whose output went through a
// ReLU (its epilogue, or relu_fwd_v1 after it) and dy the gradient at the
// ReLU's output: wherever bn_bwd_v1 reads dy it reads
//
//	bn_relu_grad(dy, gamma[c]·x̂ + beta[c])   (dy where that is > 0, else 0)
//
// the value relu_bwd_v1 writes from the ReLU's output, whose sign the
// forward pass computed from the same x, γ, β, μ and invStd with the same
// operations. So the same bits as relu_bwd_v1 (on the ReLU's output) and
// then bn_bwd_v1 on its result, with neither the ReLU's output read nor
// the masked gradient stored. Launch: as bn_bwd_v1.
extern "C" __global__ void bn_bwd_relu_v1(const float* x, const float* gamma, const float* beta,
                                          const float* save_mean, const float* save_inv_std, const float* dy,
                                          float* dx, float* dgamma, float* dbeta, int N, int C, int HW) {
  bn_bwd<1>(x, gamma, beta, save_mean, save_inv_std, dy, dx, dgamma, dbeta, N, C, HW);
}

// bn_bwd_bf16x_v1 and bn_bwd_relu_bf16x_v1 are bn_bwd_v1 and
// bn_bwd_relu_v1 with x (N,C,HW) bfloat16: their bits on x widened.
// Launch: as bn_bwd_v1.
extern "C" __global__ void bn_bwd_bf16x_v1(const unsigned short* x, const float* gamma, const float* save_mean,
                                           const float* save_inv_std, const float* dy, float* dx,
                                           float* dgamma, float* dbeta, int N, int C, int HW) {
  bn_bwd<0>(x, gamma, nullptr, save_mean, save_inv_std, dy, dx, dgamma, dbeta, N, C, HW);
}

extern "C" __global__ void bn_bwd_relu_bf16x_v1(const unsigned short* x, const float* gamma, const float* beta,
                                                const float* save_mean, const float* save_inv_std, const float* dy,
                                                float* dx, float* dgamma, float* dbeta, int N, int C, int HW) {
  bn_bwd<1>(x, gamma, beta, save_mean, save_inv_std, dy, dx, dgamma, dbeta, N, C, HW);
}

// bn_bwd_bf16xdy_v1 and bn_bwd_relu_bf16xdy_v1 are bn_bwd_bf16x_v1 and
// bn_bwd_relu_bf16x_v1 with dy (N,C,HW) bfloat16 as well: their bits on x
// and dy widened. dx stays float32. Launch: as bn_bwd_v1.
extern "C" __global__ void bn_bwd_bf16xdy_v1(const unsigned short* x, const float* gamma, const float* save_mean,
                                             const float* save_inv_std, const unsigned short* dy, float* dx,
                                             float* dgamma, float* dbeta, int N, int C, int HW) {
  bn_bwd<0>(x, gamma, nullptr, save_mean, save_inv_std, dy, dx, dgamma, dbeta, N, C, HW);
}

extern "C" __global__ void bn_bwd_relu_bf16xdy_v1(const unsigned short* x, const float* gamma, const float* beta,
                                                  const float* save_mean, const float* save_inv_std,
                                                  const unsigned short* dy, float* dx, float* dgamma, float* dbeta,
                                                  int N, int C, int HW) {
  bn_bwd<1>(x, gamma, beta, save_mean, save_inv_std, dy, dx, dgamma, dbeta, N, C, HW);
}
