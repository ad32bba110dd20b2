// actf.cuh: the float32 activation functions of the activation kernels
// (activation_v2.cu), libm-free, built only from IEEE-754 float32
// operations (+, −, ·, / rounded to nearest, __builtin_fmaf) on top of
// mathf.cuh, compiled with -ffp-contract=off, so that the GPU, the PTX
// simulator and cpuref agree bit for bit.
//
// They are the C twins of cpuref/mathf.go, operation for operation:
// cpuref/testdata/actf_check.cc includes this file and cpuref's
// TestMathfTwinsAgainstC compares its output bit for bit with the Go
// functions;
// the conformance suite of package gpu compares the kernels built on
// these with cpuref's float32 activations bit for bit (swept reals,
// both tails, ±0, ±∞, NaN, subnormals).
//
// Included after common.cuh and mathf.cuh.

#ifndef CONVTRAIN_KERNELS_ACTF_CUH
#define CONVTRAIN_KERNELS_ACTF_CUH

#include "mathf.cuh"

MATHF_FN float actf_fabsf(float x) { return __builtin_bit_cast(float, mathf_bits(x) & 0x7fffffff); }
MATHF_FN float actf_copysignf(float r, float x) {
  return __builtin_bit_cast(float, (mathf_bits(r) & 0x7fffffff) | (mathf_bits(x) & (int)0x80000000));
}

// actf_expm1f: e^v − 1; Taylor polynomial for |v| ≤ 0.5, else mathf_expf(v) − 1.
MATHF_FN float actf_expm1f(float v) {
  if (v != v) return v;
  if (v < -0.5f || v > 0.5f) return mathf_expf(v) - 1.0f;
  float p = __builtin_fmaf(0x1.71de3ap-19f, v, 0x1.a01a02p-16f);
  p = __builtin_fmaf(p, v, 0x1.a01a02p-13f);
  p = __builtin_fmaf(p, v, 0x1.6c16c2p-10f);
  p = __builtin_fmaf(p, v, 0x1.111112p-7f);
  p = __builtin_fmaf(p, v, 0x1.555556p-5f);
  p = __builtin_fmaf(p, v, 0x1.555556p-3f);
  p = __builtin_fmaf(p, v, 0x1.000000p-1f);
  return __builtin_fmaf(v * v, p, v);
}

// actf_tanhf: em/(em + 2) with em = expm1(2|x|) for |x| ≤ 10, else 1; sign of x.
MATHF_FN float actf_tanhf(float x) {
  if (x != x) return x;
  float a = actf_fabsf(x);
  float r = 1.0f;
  if (a <= 10.0f) {
    float em = actf_expm1f(2.0f * a);
    r = em / (em + 2.0f);
  }
  return actf_copysignf(r, x);
}

// actf_sigmoid_parts: e = exp(−|z|), d = 1 + e, r = e/d; σ = z ≥ 0 ? 1/d : r; σ' = r/d.
MATHF_FN float actf_sigmoid_parts(float z, float* sp, float* e, float* d) {
  *e = mathf_expf(-actf_fabsf(z));
  *d = 1.0f + *e;
  float r = *e / *d;
  *sp = r / *d;
  return z >= 0.0f ? 1.0f / *d : r;
}

MATHF_FN float actf_sigmoidf(float x) {
  float sp, e, d;
  return actf_sigmoid_parts(x, &sp, &e, &d);
}

// actf_times_sigmoidf: x·σ(z) as x/d (z ≥ 0) or (x·e)/d (z < 0).
MATHF_FN float actf_times_sigmoidf(float x, float z) {
  float sp, e, d;
  actf_sigmoid_parts(z, &sp, &e, &d);
  return z >= 0.0f ? x / d : (x * e) / d;
}

MATHF_FN float actf_siluf(float x) { return actf_times_sigmoidf(x, x); }

// actf_silu_gradf: σ(x) + x·σ'(x).
MATHF_FN float actf_silu_gradf(float x) {
  float sp, e, d;
  float s = actf_sigmoid_parts(x, &sp, &e, &d);
  return s + x * sp;
}

#define ACTF_GELU_K 0x1.988454p+0f   // 2·√(2/π)
#define ACTF_GELU_C 0x1.6e4e26p-5f   // 0.044715
#define ACTF_GELU_3C 0x1.12ba9ep-3f  // 3·0.044715

MATHF_FN float actf_gelu_tanh_z(float x) {
  float x3 = (x * x) * x;
  return ACTF_GELU_K * (x + ACTF_GELU_C * x3);
}

// actf_gelu_tanhf: x·σ(z) = 0.5·x·(1 + tanh(z/2)), z = 2·√(2/π)·(x + 0.044715·x³).
MATHF_FN float actf_gelu_tanhf(float x) { return actf_times_sigmoidf(x, actf_gelu_tanh_z(x)); }

// actf_gelu_tanh_gradf: σ(z) + (x·σ'(z))·z', z' = K·(1 + 3C·x²); σ(z) alone for |x| > 10.
MATHF_FN float actf_gelu_tanh_gradf(float x) {
  float sp, e, d;
  float s = actf_sigmoid_parts(actf_gelu_tanh_z(x), &sp, &e, &d);
  if (x > 10.0f || x < -10.0f) return s;
  float dz = ACTF_GELU_K * (1.0f + ACTF_GELU_3C * (x * x));
  return s + (x * sp) * dz;
}

// actf_erff: erf(h) for |h| < 0.5, Taylor series in h² (Horner with fma), times h.
MATHF_FN float actf_erff(float h) {
  float z = h * h;
  float p = __builtin_fmaf(-0x1.f4d25cp-17f, z, 0x1.f9a326p-14f);
  p = __builtin_fmaf(p, z, -0x1.c02db4p-11f);
  p = __builtin_fmaf(p, z, 0x1.565bcep-8f);
  p = __builtin_fmaf(p, z, -0x1.b82ce4p-6f);
  p = __builtin_fmaf(p, z, 0x1.ce2f22p-4f);
  p = __builtin_fmaf(p, z, -0x1.812746p-2f);
  p = __builtin_fmaf(p, z, 0x1.20dd76p+0f);
  return h * p;
}

// actf_erfcf: erfc(a) for a ≥ 0.5 as e^(−a·a)·(t·Q(t)), t = 1/(1 + a) (fit_erfc.py).
MATHF_FN float actf_erfcf(float a) {
  float e = mathf_expf(-(a * a));
  float t = 1.0f / (1.0f + a);
  float q = __builtin_fmaf(0x1.ccda64p+0f, t, -0x1.119e9ep+3f);
  q = __builtin_fmaf(q, t, 0x1.17cbf4p+4f);
  q = __builtin_fmaf(q, t, -0x1.3916acp+4f);
  q = __builtin_fmaf(q, t, 0x1.84f620p+3f);
  q = __builtin_fmaf(q, t, -0x1.a4ea7ap+1f);
  q = __builtin_fmaf(q, t, -0x1.6f64f8p-4f);
  q = __builtin_fmaf(q, t, -0x1.71de44p-2f);
  q = __builtin_fmaf(q, t, 0x1.277176p-2f);
  q = __builtin_fmaf(q, t, 0x1.20b66ap-1f);
  q = __builtin_fmaf(q, t, 0x1.20de3ep-1f);
  return e * (t * q);
}

// actf_phif: Φ(x) = ½·erfc(−x/√2).
MATHF_FN float actf_phif(float x) {
  float h = x * 0x1.6a09e6p-1f;
  float a = actf_fabsf(h);
  if (!(a >= 0.5f)) return 0.5f + 0.5f * actf_erff(h);
  float c = actf_erfcf(a);
  if (h < 0.0f) return 0.5f * c;
  return 1.0f - 0.5f * c;
}

// actf_gelu_erff: x·Φ(x), GELU(approximate='none').
MATHF_FN float actf_gelu_erff(float x) { return x * actf_phif(x); }

// actf_gelu_erf_gradf: Φ(x) + x·φ(x), φ(x) = e^(−(x·x)·0.5)/√(2π).
MATHF_FN float actf_gelu_erf_gradf(float x) {
  float phi = mathf_expf(-((x * x) * 0.5f)) * 0x1.988454p-2f;
  return actf_phif(x) + x * phi;
}

#endif  // CONVTRAIN_KERNELS_ACTF_CUH
