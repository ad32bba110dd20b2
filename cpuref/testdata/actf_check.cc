// actf_check prints the bits of the float32 activation functions that the
// GPU kernels compute, written as the kernels will write them: built only
// from IEEE-754 float32 operations (+, −, ·, /, __builtin_fmaf) on top of
// kernels/mathf.cuh, compiled with -ffp-contract=off. They are the C twins
// of cpuref/mathf.go, operation for operation; TestMathfTwinsAgainstC
// builds this file as C++ (-x c++, no C++ runtime needed) and compares its
// output with the Go functions bit for bit. The functions are the kernels'
// own, kernels/actf.cuh, included here: one source for the GPU and for
// this check.
//
// Usage: actf_check STEP COUNT
//
// Inputs: every STEP-th float32 bit pattern, then COUNT values evenly
// spaced in [−12, 12] (k·24/COUNT − 12), then a few special values. Output,
// one line per function and input:
//
//	F 0xXXXXXXXX 0xYYYYYYYY      (function name, input bits, output bits)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../kernels/mathf.cuh"

#include "../../kernels/actf.cuh"

static uint32_t bits_of(float x) { return __builtin_bit_cast(uint32_t, x); }

static void emit(float x) {
  uint32_t b = bits_of(x);
  printf("expf 0x%08x 0x%08x\n", b, bits_of(mathf_expf(x)));
  printf("expm1f 0x%08x 0x%08x\n", b, bits_of(actf_expm1f(x)));
  printf("tanhf 0x%08x 0x%08x\n", b, bits_of(actf_tanhf(x)));
  printf("sigmoidf 0x%08x 0x%08x\n", b, bits_of(actf_sigmoidf(x)));
  printf("siluf 0x%08x 0x%08x\n", b, bits_of(actf_siluf(x)));
  printf("silu_gradf 0x%08x 0x%08x\n", b, bits_of(actf_silu_gradf(x)));
  printf("gelu_tanhf 0x%08x 0x%08x\n", b, bits_of(actf_gelu_tanhf(x)));
  printf("gelu_tanh_gradf 0x%08x 0x%08x\n", b, bits_of(actf_gelu_tanh_gradf(x)));
  printf("gelu_erff 0x%08x 0x%08x\n", b, bits_of(actf_gelu_erff(x)));
  printf("gelu_erf_gradf 0x%08x 0x%08x\n", b, bits_of(actf_gelu_erf_gradf(x)));
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: actf_check STEP COUNT\n");
    return 2;
  }
  uint64_t step = strtoull(argv[1], 0, 10);
  long count = strtol(argv[2], 0, 10);
  if (step == 0 || count < 1) {
    fprintf(stderr, "actf_check: STEP and COUNT must be ≥ 1\n");
    return 2;
  }
  for (uint64_t u = 0; u < (1ull << 32); u += step) emit(__builtin_bit_cast(float, (uint32_t)u));
  for (long k = 0; k <= count; k++) emit((float)((double)k * 24.0 / (double)count - 12.0));
  const float specials[] = {0.0f, -0.0f, 0.5f, -0.5f, 10.0f, -10.0f, 88.8f, -88.8f, 104.0f, -104.0f,
                            MATHF_INF, -MATHF_INF, MATHF_NAN, 0x1p-149f, -0x1p-149f, 0x1p-126f};
  for (unsigned i = 0; i < sizeof specials / sizeof specials[0]; i++) emit(specials[i]);
  return 0;
}
