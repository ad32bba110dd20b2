// mathf_check measures the accuracy of kernels/mathf.cuh on the host.
//
// It is built and run by TestMathf (kernels/mathf_test.go) as C++ (-x c++
// with a C compiler driver; no C++ runtime is needed) with -ffp-contract=off, so the host evaluates exactly the IEEE
// operations the PTX does (fma through __builtin_fmaf, which is correctly
// rounded in hardware or in libm). The reference is double-precision libm,
// whose error (< 1 ulp of double) is negligible at float precision.
//
// Usage: mathf_check STEP
//
// Every STEP-th float32 bit pattern is tested (STEP=1 is exhaustive), plus
// every pattern in windows of 2^16 around the points where the functions
// change regime. Output, one line each, read by the Go test:
//
//	max func=F checked=N ulp=E x=0xXXXXXXXX got=G want=W
//	special func=F x=0xXXXXXXXX got=0xGGGGGGGG want=0xWWWWWWWW
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../mathf.cuh"

static uint32_t bits_of(float x) { return __builtin_bit_cast(uint32_t, x); }
static float float_of(uint32_t u) { return __builtin_bit_cast(float, u); }

// ulp_error is |got − want| in units of the float32 ulp at want (the
// subnormal ulp 2^−149 below 2^−126, the ulp of [2^127, 2^128) above).
// An infinite got is exact only when want rounds to that infinity.
static double ulp_error(float got, double want) {
  if (isnan(want)) return isnan(got) ? 0 : INFINITY;
  if (isnan(got)) return INFINITY;
  float wf = (float)want;
  if (isinf(got) || isinf(wf)) return got == wf ? 0 : INFINITY;
  if (isinf(want)) return INFINITY;
  int e;
  frexp(want, &e);  // |want| in [2^(e−1), 2^e)
  int ue = e - 1 - 23;
  if (ue < -149) ue = -149;
  return fabs((double)got - want) / ldexp(1.0, ue);
}

struct worst {
  const char *name;
  long long checked;
  double ulp;
  uint32_t x;
  float got;
  double want;
};

static void check(struct worst *w, uint32_t u, float (*f)(float), double (*ref)(double)) {
  float x = float_of(u);
  float got = f(x);
  double want = ref((double)x);
  double e = ulp_error(got, want);
  w->checked++;
  if (e > w->ulp || (w->checked == 1)) {
    w->ulp = e;
    w->x = u;
    w->got = got;
    w->want = want;
  }
}

static float expf_dev(float x) { return mathf_expf(x); }
static float logf_dev(float x) { return mathf_logf(x); }

static void run(const char *name, float (*f)(float), double (*ref)(double), uint64_t step,
                const float *centres, int ncentres) {
  struct worst w = {name, 0, 0, 0, 0, 0};
  for (uint64_t u = 0; u <= 0xffffffffull; u += step) check(&w, (uint32_t)u, f, ref);
  for (int i = 0; i < ncentres; i++) {
    int64_t c = bits_of(centres[i]);
    for (int64_t d = -32768; d < 32768; d++) {
      int64_t u = c + d;
      if (u >= 0 && u <= 0xffffffffll) check(&w, (uint32_t)u, f, ref);
    }
  }
  printf("max func=%s checked=%lld ulp=%.4f x=0x%08x got=%.9g want=%.17g\n", w.name, w.checked,
         w.ulp, w.x, w.got, w.want);
}

static void special(const char *name, float (*f)(float), uint32_t x, uint32_t want) {
  printf("special func=%s x=0x%08x got=0x%08x want=0x%08x\n", name, x, bits_of(f(float_of(x))),
         want);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: mathf_check STEP\n");
    return 2;
  }
  uint64_t step = strtoull(argv[1], 0, 10);
  if (step == 0) {
    fprintf(stderr, "mathf_check: STEP must be positive\n");
    return 2;
  }
  // Regime changes: 0 (both signs), the overflow and underflow thresholds,
  // the start of subnormal results, ±ln2/2 (n changes), and for log the
  // subnormal/normal boundary, 1, √2/2 and √2 (k changes).
  const float exp_centres[] = {0.0f, -0.0f, 88.7228394f, -87.3365479f, -103.972076f,
                               0.34657359f, -0.34657359f, 1.0f, -1.0f};
  const float log_centres[] = {0x1p-126f, 1.0f, 0.70710677f, 1.41421354f, 0x1p-149f,
                               3.40282347e38f};
  run("expf", expf_dev, exp, step, exp_centres, sizeof exp_centres / sizeof exp_centres[0]);
  run("logf", logf_dev, log, step, log_centres, sizeof log_centres / sizeof log_centres[0]);

  special("expf", expf_dev, 0x00000000, 0x3f800000);  // e^+0 = 1
  special("expf", expf_dev, 0x80000000, 0x3f800000);  // e^−0 = 1
  special("expf", expf_dev, 0x7f800000, 0x7f800000);  // e^+Inf = +Inf
  special("expf", expf_dev, 0xff800000, 0x00000000);  // e^−Inf = +0
  special("expf", expf_dev, 0x7fc00000, 0x7fc00000);  // NaN kept
  special("expf", expf_dev, 0xffc12345, 0xffc12345);  // NaN payload kept
  special("expf", expf_dev, 0x42b20000, 0x7f800000);  // e^89 overflows
  special("expf", expf_dev, 0xc2d00000, 0x00000000);  // e^−104 underflows to +0
  special("logf", logf_dev, 0x3f800000, 0x00000000);  // ln 1 = +0
  special("logf", logf_dev, 0x00000000, 0xff800000);  // ln +0 = −Inf
  special("logf", logf_dev, 0x80000000, 0xff800000);  // ln −0 = −Inf
  special("logf", logf_dev, 0x7f800000, 0x7f800000);  // ln +Inf = +Inf
  special("logf", logf_dev, 0xff800000, 0x7fffffff);  // ln −Inf = NaN
  special("logf", logf_dev, 0xbf800000, 0x7fffffff);  // ln −1 = NaN
  special("logf", logf_dev, 0x80000001, 0x7fffffff);  // ln of the smallest negative subnormal = NaN
  special("logf", logf_dev, 0x7fc00000, 0x7fc00000);  // NaN kept
  special("logf", logf_dev, 0xffc12345, 0xffc12345);  // NaN payload kept
  return 0;
}
