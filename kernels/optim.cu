// optim.cu: parameter updates, element-wise over n elements.
//
// Versions:
//
//	accumulate_v1    one thread per element: dst += src (gradient accumulation).
//	sgd_momentum_v1  one thread per element: SGD with momentum and L2 weight decay.
//
// Numerics: every product and sum is rounded separately (mul.rn, add.rn) in
// the order written, the same as cpuref.SGDStep's expression.
//
// Launch: 1-D over n (grid.x = ceil(n/256), block.x = 256); every kernel
// guards its index and never writes out of range.

#include "common.cuh"

// accumulate_v1 computes dst[i] = dst[i] + src[i].
extern "C" __global__ void accumulate_v1(float* dst, const float* src, int n) {
  // dst is (n), src is (n)
  int i = global_index();
  if (i >= n) return;
  dst[i] = dst[i] + src[i];
}

// sgd_momentum_v1 updates p and its velocity v from the gradient g:
//
//	v ← momentum·v + (g + weight_decay·p)
//	p ← p − lr·v
//
// (with momentum = 0 and v initially 0 this is plain SGD).
extern "C" __global__ void sgd_momentum_v1(float* p, const float* g, float* v, int n, float lr,
                                           float momentum, float weight_decay) {
  // p is (n), g is (n), v is (n)
  int i = global_index();
  if (i >= n) return;
  float pi = p[i];
  float vi = momentum * v[i] + (g[i] + weight_decay * pi);
  v[i] = vi;
  p[i] = pi - lr * vi;
}
