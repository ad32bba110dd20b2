// activation_v2.cu: the activations other than ReLU (PyTorch's LeakyReLU,
// Sigmoid, Tanh, SiLU, GELU in both forms), forward and backward,
// element-wise over n elements, bit for bit cpuref's float32 forms
// (cpuref/activations.go over the functions of actf.cuh).
//
// Versions:
//
//	act_fwd_v1  one thread per element; the activation is the argument act (kAct* below).
//	act_bwd_v1  one thread per element, from the forward input x or output y.
//
// Launch: 1-D over n (grid.x = ceil(n/256), block.x = 256); every kernel
// guards its index and never writes out of range. In-place use (y == x,
// dx == dy) is allowed: each thread reads its element before writing it.
// act is the same for every thread, so the switch does not diverge; an
// unknown act writes NaN (the host refuses it before the launch).

#include "common.cuh"
#include "actf.cuh"

// The activation codes of act (host/backend.Activation's values).
#define kActLeakyReLU 1
#define kActSigmoid 2
#define kActTanh 3
#define kActSiLU 4
#define kActGELUErf 5
#define kActGELUTanh 6

// act_fwd_v1 computes y[i] = act(x[i]):
//
//	kActLeakyReLU  x > 0 ? x : param·x        (param the negative slope)
//	kActSigmoid    actf_sigmoidf(x)
//	kActTanh       actf_tanhf(x)
//	kActSiLU       actf_siluf(x)
//	kActGELUErf    actf_gelu_erff(x)
//	kActGELUTanh   actf_gelu_tanhf(x)
//
// A NaN stays NaN.
extern "C" __global__ void act_fwd_v1(const float* x, float* y, int n, int act, float param) {
  // x is (n), y is (n)
  int i = global_index();
  if (i >= n) return;
  float v = x[i];
  float r;
  switch (act) {
    case kActLeakyReLU: r = v > 0.0f ? v : param * v; break;
    case kActSigmoid: r = actf_sigmoidf(v); break;
    case kActTanh: r = actf_tanhf(v); break;
    case kActSiLU: r = actf_siluf(v); break;
    case kActGELUErf: r = actf_gelu_erff(v); break;
    case kActGELUTanh: r = actf_gelu_tanhf(v); break;
    default: r = MATHF_NAN;
  }
  y[i] = r;
}

// act_bwd_v1 computes dx[i] from dy[i] and the forward input x (leaky ReLU,
// SiLU, GELU) or output y (sigmoid, tanh); the pointer not read may be
// null:
//
//	kActLeakyReLU  x > 0 ? dy : param·dy
//	kActSigmoid    (dy·(1 − y))·y
//	kActTanh       dy·(1 − y·y)
//	kActSiLU       dy·actf_silu_gradf(x)
//	kActGELUErf    dy·actf_gelu_erf_gradf(x)
//	kActGELUTanh   dy·actf_gelu_tanh_gradf(x)
extern "C" __global__ void act_bwd_v1(const float* x, const float* y, const float* dy, float* dx,
                                      int n, int act, float param) {
  // x, y, dy and dx are (n)
  int i = global_index();
  if (i >= n) return;
  float d = dy[i];
  float r;
  switch (act) {
    case kActLeakyReLU: r = x[i] > 0.0f ? d : param * d; break;
    case kActSigmoid: {
      float v = y[i];
      r = (d * (1.0f - v)) * v;
      break;
    }
    case kActTanh: {
      float v = y[i];
      r = d * (1.0f - v * v);
      break;
    }
    case kActSiLU: r = d * actf_silu_gradf(x[i]); break;
    case kActGELUErf: r = d * actf_gelu_erf_gradf(x[i]); break;
    case kActGELUTanh: r = d * actf_gelu_tanh_gradf(x[i]); break;
    default: r = MATHF_NAN;
  }
  dx[i] = r;
}
