// optim_v2.cu: more parameter updates, element-wise over n elements
// (optim.cu holds accumulate_v1 and sgd_momentum_v1).
//
// Versions:
//
//	sgd_nesterov_v1  one thread per element: SGD with Nesterov momentum and L2 weight decay.
//	adam_v1          one thread per element: Adam / AdamW (PyTorch's formulas), with the
//	                 step-dependent scalars (bias corrections) computed on the host.
//
// Numerics: every product, quotient and sum is rounded separately in the
// order written (mul.rn, add.rn, div.rn; -ffp-contract=off, no fma), and the
// square root is correctly rounded (sqrt.rn), the same operations as
// cpuref.SGDNesterovStep and cpuref.AdamStep in float32, so the simulator,
// the GPU and cpuref agree bit for bit. div.rn and sqrt.rn are asked for
// explicitly through the NVVM intrinsics, whatever the compiler's defaults.
//
// Launch: 1-D over n (grid.x = ceil(n/256), block.x = 256); every kernel
// guards its index and never writes out of range.

#include "common.cuh"

// sgd_nesterov_v1 updates p and its velocity v from the gradient g (PyTorch's
// SGD with nesterov=True, no dampening):
//
//	d ← g + weight_decay·p
//	v ← momentum·v + d
//	p ← p − lr·(d + momentum·v)
extern "C" __global__ void sgd_nesterov_v1(float* p, const float* g, float* v, int n, float lr,
                                           float momentum, float weight_decay) {
  // p is (n), g is (n), v is (n)
  int i = global_index();
  if (i >= n) return;
  float pi = p[i];
  float d = g[i] + weight_decay * pi;
  float vi = momentum * v[i] + d;
  v[i] = vi;
  p[i] = pi - lr * (d + momentum * vi);
}

// adam_v1 takes one Adam or AdamW step on p with the moments m and v:
//
//	p ← p·decay                        if decoupled (AdamW: decay = 1 − lr·λ)
//	g ← g + l2·p                       if !decoupled and l2 ≠ 0 (Adam's L2 decay λ)
//	m ← beta1·m + one_minus_beta1·g
//	v ← beta2·v + (one_minus_beta2·g)·g
//	p ← p − (step_size·m) / (√v / bc2_sqrt + eps)
//
// where the host computes, for step t from 1 (cpuref.AdamCoefficients),
// step_size = lr/(1 − beta1^t) and bc2_sqrt = √(1 − beta2^t): that is
// p ← p − lr·m̂/(√v̂ + eps) with the bias-corrected moments, eps inside the
// denominator as in PyTorch.
extern "C" __global__ void adam_v1(float* p, const float* g, float* m, float* v, int n, float beta1,
                                   float one_minus_beta1, float beta2, float one_minus_beta2,
                                   float step_size, float bc2_sqrt, float eps, float l2,
                                   float decay, int decoupled) {
  // p is (n), g is (n), m is (n), v is (n)
  int i = global_index();
  if (i >= n) return;
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
