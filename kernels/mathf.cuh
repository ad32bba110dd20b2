// mathf.cuh: deterministic single-precision exp and log for the kernels.
//
// The GPU's fast intrinsics (ex2.approx, lg2.approx) and libdevice differ
// between implementations and cannot be reproduced bit for bit by the PTX
// simulator, so the kernels use these instead. They are built only from
// IEEE-754 operations that PTX defines exactly: add.rn, mul.rn, fma.rn,
// div.rn, comparisons, integer arithmetic and bit moves (no approximate
// instruction, no table, no flush-to-zero). Any correct implementation of
// those operations (GPU, simulator, or the host, which kernels/mathf_test.go
// uses) gives the same bits.
//
// Accuracy against double-precision libm, over all 2^32 float32 inputs
// (kernels/testdata/mathf_check.cc, run by TestMathf; -mathf.step=1 for the
// exhaustive run):
//
//	mathf_expf: max 0.78 ulp (subnormal results included; 0.76 ulp seen at
//	            the default test step)
//	mathf_logf: max 0.92 ulp
//
// The documented bound, which the test enforces, is 1 ulp.
//
// Special values follow C99 Annex F except that no NaN is ever generated
// from a non-NaN input by arithmetic: NaN in gives the same NaN back
// (payload kept), and log of a negative number returns MATHF_NAN.
//
// The file compiles both as CUDA device code (included after common.cuh)
// and as plain C++ on the host (for the accuracy test).

#ifndef CONVTRAIN_KERNELS_MATHF_CUH
#define CONVTRAIN_KERNELS_MATHF_CUH

#if defined(__CUDA__)
#define MATHF_FN static __device__ __forceinline__
#else
#define MATHF_FN static inline
#endif

// MATHF_NAN is the quiet NaN the kernels write on purpose (0x7fffffff, the
// canonical NaN that GPU arithmetic produces).
#define MATHF_NAN (__builtin_bit_cast(float, 0x7fffffff))
#define MATHF_INF (__builtin_bit_cast(float, 0x7f800000))

MATHF_FN int mathf_bits(float x) { return __builtin_bit_cast(int, x); }
MATHF_FN float mathf_from_bits(int i) { return __builtin_bit_cast(float, i); }

// mathf_pow2 is 2^n for −126 ≤ n ≤ 127, exactly.
MATHF_FN float mathf_pow2(int n) { return mathf_from_bits((n + 127) << 23); }

// mathf_expf returns e^x.
//
// Reduction: n = round(x·log2 e), r = x − n·ln2 with |r| ≤ ln2/2 (plus a hair),
// so e^x = 2^n · e^r. ln2 is split as LN2_HI + LN2_LO with LN2_HI the float
// nearest ln2; fma(−n, LN2_HI, x) is exact (x and n·LN2_HI are multiples of
// 2^−25 whenever n ≠ 0 and the difference is below 0.36), so only the small
// correction −n·LN2_LO is rounded.
//
// Polynomial: e^r − 1 = r + r²·(1/2! + r/3! + … + r^5/7!), the Taylor series,
// whose truncation error (r^8/8! ≤ 5·10^−9 relative) is far below float
// precision; Horner with fma. Then y = 1 + (e^r − 1).
//
// Scaling: y·2^n is computed as (y·2^⌊n/2⌋)·2^(n−⌊n/2⌋); the first product
// is exact, the second rounds once, also when the result is subnormal.
// For x > 88.8 the result is +Inf, for x < −104 it is +0 (e^−104 is below
// half the smallest subnormal); between those bounds overflow to +Inf and
// underflow happen in the final product, correctly rounded.
MATHF_FN float mathf_expf(float x) {
  const float LOG2E = 0x1.715476p+0f;    // log2(e) rounded
  const float LN2_HI = 0x1.62e430p-1f;   // ln 2 rounded to float
  const float LN2_LO = -0x1.05c610p-29f; // ln 2 − LN2_HI rounded
  const float MAGIC = 0x1.8p+23f;        // 1.5·2^23: adding it rounds to an integer
  const float C2 = 0x1.000000p-1f;       // 1/2!
  const float C3 = 0x1.555556p-3f;       // 1/3!
  const float C4 = 0x1.555556p-5f;       // 1/4!
  const float C5 = 0x1.111112p-7f;       // 1/5!
  const float C6 = 0x1.6c16c2p-10f;      // 1/6!
  const float C7 = 0x1.a01a02p-13f;      // 1/7!
  if (x != x) return x;
  if (x > 88.8f) return MATHF_INF;
  if (x < -104.0f) return 0.0f;
  float t = __builtin_fmaf(x, LOG2E, MAGIC);  // MAGIC + round(x·log2 e)
  int n = mathf_bits(t) - mathf_bits(MAGIC);  // −150 ≤ n ≤ 128
  float nf = t - MAGIC;                        // exact
  float rhi = __builtin_fmaf(-nf, LN2_HI, x);  // exact
  float c = -nf * LN2_LO;                       // |c| ≤ 2^−21
  float r = rhi + c;
  float rlo = (rhi - r) + c;                    // r + rlo = rhi + c (Fast2Sum)
  float p = __builtin_fmaf(C7, r, C6);
  p = __builtin_fmaf(p, r, C5);
  p = __builtin_fmaf(p, r, C4);
  p = __builtin_fmaf(p, r, C3);
  p = __builtin_fmaf(p, r, C2);
  float r2 = r * r;
  float q = __builtin_fmaf(r2, p, rlo);  // e^(r+rlo) − 1 − r, to first order in rlo
  float hi = 1.0f + r;
  float lo = (1.0f - hi) + r;  // hi + lo = 1 + r exactly (Fast2Sum, |r| < 1)
  float y = hi + (lo + q);     // e^r: one significant rounding, the last
  int n1 = n >> 1;  // floor(n/2), −75 … 64
  int n2 = n - n1;  // −75 … 64
  return (y * mathf_pow2(n1)) * mathf_pow2(n2);
}

// mathf_logf returns ln x.
//
// Reduction: x = 2^k·m with √2/2 < m ≤ √2 (subnormal x are first scaled by
// 2^25, exactly), f = m − 1 (exact), and
//
//	ln(1+f) = 2·atanh(s) = 2s + s·R(s²),   s = f/(2+f),  |s| ≤ 0.1716,
//	R(z) = z·(2/3 + z·(2/5 + z·(2/7 + z·2/9))),
//
// the Taylor series of atanh truncated after s^9 (next term 2s^11/11 is
// below 2·10^−9 relative). As in fdlibm, 2s is rewritten as f − s·f, so
//
//	ln(1+f) = f − (hfsq − s·(hfsq + R)),  hfsq = f²/2,
//
// which keeps the rounding errors on the small terms. Finally
// ln x = k·LN2_HI + (k·LN2_LO + ln(1+f)) with both products fused.
//
// log(±0) = −Inf, log(+Inf) = +Inf, log(x<0) = MATHF_NAN, log(NaN) = NaN.
MATHF_FN float mathf_logf(float x) {
  const float LN2_HI = 0x1.62e430p-1f;
  const float LN2_LO = -0x1.05c610p-29f;
  const float L1 = 0x1.555556p-1f;  // 2/3
  const float L2 = 0x1.99999ap-2f;  // 2/5
  const float L3 = 0x1.24924ap-2f;  // 2/7
  const float L4 = 0x1.c71c72p-3f;  // 2/9
  if (x != x) return x;
  if (x == 0.0f) return -MATHF_INF;
  if (x < 0.0f) return MATHF_NAN;
  if (x == MATHF_INF) return x;
  int k = 0;
  if (x < 0x1p-126f) {  // subnormal
    x = x * 0x1p25f;
    k = -25;
  }
  int ix = mathf_bits(x);
  k += (ix >> 23) - 127;
  int mb = (ix & 0x007fffff) | 0x3f800000;  // m in [1, 2)
  if (mb > 0x3fb504f3) {                    // m > √2: use m/2, k+1
    mb -= 0x00800000;
    k += 1;
  }
  float f = mathf_from_bits(mb) - 1.0f;
  float s = f / (2.0f + f);
  float z = s * s;
  float R = __builtin_fmaf(L4, z, L3);
  R = __builtin_fmaf(R, z, L2);
  R = __builtin_fmaf(R, z, L1);
  R = R * z;
  float hfsq = 0.5f * (f * f);
  float lg = f - (hfsq - s * (hfsq + R));
  float kf = (float)k;
  return __builtin_fmaf(kf, LN2_HI, __builtin_fmaf(kf, LN2_LO, lg));
}

#endif  // CONVTRAIN_KERNELS_MATHF_CUH
