// optim_multi.cu: multi-tensor parameter updates, one launch for every
// parameter of a model (optim.cu and optim_v2.cu hold the per-tensor
// versions, one launch per parameter).
//
// Versions:
//
//	sgd_momentum_multi_v1  sgd_momentum_v1 over a table of tensors.
//	sgd_nesterov_multi_v1  sgd_nesterov_v1 over a table of tensors.
//	adam_multi_v1          adam_v1 over a table of tensors.
//	sgd_momentum_multi_at_v1  sgd_momentum_multi_v1 with lr, momentum and weight decay
//	                       read from device memory (s[0..2]) when it runs, so
//	                       that a recorded step (a CUDA graph) takes a new
//	                       learning rate each time it is replayed.
//	sgd_nesterov_multi_at_v1  sgd_nesterov_multi_v1, the scalars read likewise.
//	adam_multi_at_v1       adam_multi_v1 with its ten scalars (the bias
//	                       corrections of the step) read likewise (s[0..9]).
//
// The table (device memory, built once by the host) holds, for each tensor
// e < count, kTableWords 64-bit words:
//
//	table[6e+0] p      parameter (float*)
//	table[6e+1] g      gradient (const float*)
//	table[6e+2] m      velocity (SGD) or first moment (Adam) (float*)
//	table[6e+3] v      second moment (Adam; 0 for SGD) (float*)
//	table[6e+4] n      elements, 1 ≤ n < 2^31
//	table[6e+5] first  the first block of the tensor: first(0) = 0,
//	                   first(e+1) = first(e) + ceil(n(e)/256)
//
// Block b updates elements [(b − first(e))·256, …+256) of the tensor e with
// first(e) ≤ b < first(e+1), found by binary search over the table. Every
// element is updated by exactly one thread with exactly the per-tensor
// kernel's operations, so the result is the same bits as one per-tensor
// launch per parameter (and as cpuref).
//
// Numerics: as optim.cu and optim_v2.cu: every product, quotient and sum
// rounded separately in the order written (mul.rn, add.rn, div.rn;
// -ffp-contract=off, no fma), the square root correctly rounded (sqrt.rn).
//
// Launch: grid.x = first(count−1) + ceil(n(count−1)/256), block.x = 256.

#include "common.cuh"

#define kTableWords 6

// table_entry returns the tensor e of the table whose blocks hold block b:
// the last e with first(e) ≤ b (first(0) = 0 ≤ b always).
static __device__ __forceinline__ int table_entry(const long long* table, int count, long long b) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (table[kTableWords * mid + 5] <= b) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// sgd_momentum_multi_v1 is sgd_momentum_v1 on every tensor of the table:
//
//	v ← momentum·v + (g + weight_decay·p);  p ← p − lr·v
extern "C" __global__ void sgd_momentum_multi_v1(const long long* table, int count, float lr, float momentum,
                                                 float weight_decay) {
  // table is (count, 6)
  long long b = blockIdx.x;
  int e = table_entry(table, count, b);
  const long long* t = table + kTableWords * e;
  int i = (int)((b - t[5]) * kBlock) + (int)threadIdx.x;
  if (i >= (int)t[4]) return;
  float* p = (float*)t[0];
  const float* g = (const float*)t[1];
  float* v = (float*)t[2];
  float pi = p[i];
  float vi = momentum * v[i] + (g[i] + weight_decay * pi);
  v[i] = vi;
  p[i] = pi - lr * vi;
}

// sgd_nesterov_multi_v1 is sgd_nesterov_v1 on every tensor of the table:
//
//	d ← g + weight_decay·p;  v ← momentum·v + d;  p ← p − lr·(d + momentum·v)
extern "C" __global__ void sgd_nesterov_multi_v1(const long long* table, int count, float lr, float momentum,
                                                 float weight_decay) {
  // table is (count, 6)
  long long b = blockIdx.x;
  int e = table_entry(table, count, b);
  const long long* t = table + kTableWords * e;
  int i = (int)((b - t[5]) * kBlock) + (int)threadIdx.x;
  if (i >= (int)t[4]) return;
  float* p = (float*)t[0];
  const float* g = (const float*)t[1];
  float* v = (float*)t[2];
  float pi = p[i];
  float d = g[i] + weight_decay * pi;
  float vi = momentum * v[i] + d;
  v[i] = vi;
  p[i] = pi - lr * (d + momentum * vi);
}

// adam_multi_v1 is adam_v1 on every tensor of the table (m the first
// moment, v the second), with the same scalars for every tensor:
//
//	p ← p·decay                        if decoupled
//	g ← g + l2·p                       if !decoupled and l2 ≠ 0
//	m ← beta1·m + one_minus_beta1·g
//	v ← beta2·v + (one_minus_beta2·g)·g
//	p ← p − (step_size·m) / (√v / bc2_sqrt + eps)
extern "C" __global__ void adam_multi_v1(const long long* table, int count, float beta1, float one_minus_beta1,
                                         float beta2, float one_minus_beta2, float step_size, float bc2_sqrt,
                                         float eps, float l2, float decay, int decoupled) {
  // table is (count, 6)
  long long b = blockIdx.x;
  int e = table_entry(table, count, b);
  const long long* t = table + kTableWords * e;
  int i = (int)((b - t[5]) * kBlock) + (int)threadIdx.x;
  if (i >= (int)t[4]) return;
  float* p = (float*)t[0];
  const float* g = (const float*)t[1];
  float* m = (float*)t[2];
  float* v = (float*)t[3];
  float pi = p[i];
  float gi = g[i];
  if (decoupled) {
    pi = pi * decay;
  } else if (l2 != 0.0f) {
    gi = gi + l2 * pi;
  }
  float mi = beta1 * m[i] + one_minus_beta1 * gi;
  float vi = beta2 * v[i] + (one_minus_beta2 * gi) * gi;
  m[i] = mi;
  v[i] = vi;
  float den = __nvvm_div_rn_f(__nvvm_sqrt_rn_f(vi), bc2_sqrt) + eps;
  p[i] = pi - __nvvm_div_rn_f(step_size * mi, den);
}

// sgd_momentum_multi_at_v1 is sgd_momentum_multi_v1 with lr = s[0],
// momentum = s[1] and weight_decay = s[2] read from device memory.
extern "C" __global__ void sgd_momentum_multi_at_v1(const long long* table, int count, const float* s) {
  // table is (count, 6), s is (3)
  long long b = blockIdx.x;
  int e = table_entry(table, count, b);
  const long long* t = table + kTableWords * e;
  int i = (int)((b - t[5]) * kBlock) + (int)threadIdx.x;
  if (i >= (int)t[4]) return;
  float lr = s[0], momentum = s[1], weight_decay = s[2];
  float* p = (float*)t[0];
  const float* g = (const float*)t[1];
  float* v = (float*)t[2];
  float pi = p[i];
  float vi = momentum * v[i] + (g[i] + weight_decay * pi);
  v[i] = vi;
  p[i] = pi - lr * vi;
}

// sgd_nesterov_multi_at_v1 is sgd_nesterov_multi_v1 with lr = s[0],
// momentum = s[1] and weight_decay = s[2] read from device memory.
extern "C" __global__ void sgd_nesterov_multi_at_v1(const long long* table, int count, const float* s) {
  // table is (count, 6), s is (3)
  long long b = blockIdx.x;
  int e = table_entry(table, count, b);
  const long long* t = table + kTableWords * e;
  int i = (int)((b - t[5]) * kBlock) + (int)threadIdx.x;
  if (i >= (int)t[4]) return;
  float lr = s[0], momentum = s[1], weight_decay = s[2];
  float* p = (float*)t[0];
  const float* g = (const float*)t[1];
  float* v = (float*)t[2];
  float pi = p[i];
  float d = g[i] + weight_decay * pi;
  float vi = momentum * v[i] + d;
  v[i] = vi;
  p[i] = pi - lr * (d + momentum * vi);
}

// adam_multi_at_v1 is adam_multi_v1 with its scalars read from device
// memory: beta1 = s[0], one_minus_beta1 = s[1], beta2 = s[2],
// one_minus_beta2 = s[3], step_size = s[4], bc2_sqrt = s[5], eps = s[6],
// l2 = s[7], decay = s[8], and decoupled the int32 word s[9] (nonzero:
// AdamW).
extern "C" __global__ void adam_multi_at_v1(const long long* table, int count, const float* s) {
  // table is (count, 6), s is (10)
  long long b = blockIdx.x;
  int e = table_entry(table, count, b);
  const long long* t = table + kTableWords * e;
  int i = (int)((b - t[5]) * kBlock) + (int)threadIdx.x;
  if (i >= (int)t[4]) return;
  float beta1 = s[0], one_minus_beta1 = s[1], beta2 = s[2], one_minus_beta2 = s[3];
  float step_size = s[4], bc2_sqrt = s[5], eps = s[6], l2 = s[7], decay = s[8];
  int decoupled = ((const int*)s)[9];
  float* p = (float*)t[0];
  const float* g = (const float*)t[1];
  float* m = (float*)t[2];
  float* v = (float*)t[3];
  float pi = p[i];
  float gi = g[i];
  if (decoupled) {
    pi = pi * decay;
  } else if (l2 != 0.0f) {
    gi = gi + l2 * pi;
  }
  float mi = beta1 * m[i] + one_minus_beta1 * gi;
  float vi = beta2 * v[i] + (one_minus_beta2 * gi) * gi;
  m[i] = mi;
  v[i] = vi;
  float den = __nvvm_div_rn_f(__nvvm_sqrt_rn_f(vi), bc2_sqrt) + eps;
  p[i] = pi - __nvvm_div_rn_f(step_size * mi, den);
}
