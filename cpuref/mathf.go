package cpuref

import "math"

// The float32 functions of this file are the Go twins of the kernels'
// deterministic single-precision math: expf32 is kernels/mathf.cuh's
// mathf_expf, operation for operation, and the others (expm1f32, tanhf32,
// sigmoidf32, siluf32, geluTanhf32, erff32, erfcf32, geluErff32 and the
// gradients) are written in the same way, from
// float32 additions, multiplications, divisions and fused multiply-adds,
// each one IEEE-754 operation rounded to nearest even, no libm, no table,
// no approximate instruction. A CUDA kernel that performs the same
// sequence (add.rn, mul.rn, div.rn, fma.rn, -ffp-contract=off) gets the
// same bits; cpuref/testdata/actf_check.cc is that sequence in C, which
// TestMathfTwinsAgainstC builds with mathf.cuh and compares bit for bit.
//
// Every product that feeds an addition is converted with float32(…)
// explicitly: Go may fuse x*y + z into one FMA on some architectures
// (arm64, ppc64le, s390x), and an explicit conversion forbids it.

// fma32 returns a·b + c rounded once to float32, as C's fmaf and PTX's
// fma.rn.f32. The product of two float32 is exact in float64; the sum is
// rounded to odd in float64 (53 ≥ 2·24 + 2 bits), after which rounding to
// float32 is correct (Boldo and Melquiond, "When double rounding is odd").
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact
	s := p + float64(c)
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return float32(s)
	}
	// The addition's rounding error, exactly (Knuth's TwoSum).
	bv := s - p
	e := (p - (s - bv)) + (float64(c) - bv)
	if e != 0 {
		bits := math.Float64bits(s)
		if bits&1 == 0 { // s even: step one ulp towards the exact sum, which is odd
			if (e > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}

// pow2f32 is 2^n for −126 ≤ n ≤ 127, exactly (mathf_pow2).
func pow2f32(n int32) float32 { return math.Float32frombits(uint32(n+127) << 23) }

// expf32 returns e^x; the twin of mathf_expf (kernels/mathf.cuh), whose
// comment gives the method and its accuracy (≤ 1 ulp).
func expf32(x float32) float32 {
	const (
		log2e = 0x1.715476p+0
		ln2Hi = 0x1.62e430p-1
		ln2Lo = -0x1.05c610p-29
		magic = 0x1.8p+23
		c2    = 0x1.000000p-1
		c3    = 0x1.555556p-3
		c4    = 0x1.555556p-5
		c5    = 0x1.111112p-7
		c6    = 0x1.6c16c2p-10
		c7    = 0x1.a01a02p-13
	)
	if x != x {
		return x
	}
	if x > 88.8 {
		return float32(math.Inf(1))
	}
	if x < -104 {
		return 0
	}
	t := fma32(x, log2e, magic)
	n := int32(math.Float32bits(t)) - int32(math.Float32bits(magic))
	nf := t - magic
	rhi := fma32(-nf, ln2Hi, x)
	c := float32(-nf * ln2Lo)
	r := rhi + c
	rlo := (rhi - r) + c
	p := fma32(c7, r, c6)
	p = fma32(p, r, c5)
	p = fma32(p, r, c4)
	p = fma32(p, r, c3)
	p = fma32(p, r, c2)
	r2 := float32(r * r)
	q := fma32(r2, p, rlo)
	hi := 1 + r
	lo := (1 - hi) + r
	y := hi + (lo + q)
	n1 := n >> 1
	n2 := n - n1
	return float32(y*pow2f32(n1)) * pow2f32(n2)
}

// expm1f32 returns e^v − 1. For |v| ≤ 0.5 it is the Taylor polynomial
//
//	v + v²·(1/2! + v·(1/3! + … + v·(1/9!)))
//
// (truncation v^10/10! ≤ 3·10^−10 relative) by Horner with fma, the last
// step fma(v·v, p, v); otherwise expf32(v) − 1, where e^v − 1 loses at most
// a factor e^0.5/(e^0.5 − 1) ≈ 2.5 of expf32's relative accuracy.
func expm1f32(v float32) float32 {
	const (
		c2 = 0x1.000000p-1  // 1/2!
		c3 = 0x1.555556p-3  // 1/3!
		c4 = 0x1.555556p-5  // 1/4!
		c5 = 0x1.111112p-7  // 1/5!
		c6 = 0x1.6c16c2p-10 // 1/6!
		c7 = 0x1.a01a02p-13 // 1/7!
		c8 = 0x1.a01a02p-16 // 1/8!
		c9 = 0x1.71de3ap-19 // 1/9!
	)
	if v != v {
		return v
	}
	if v < -0.5 || v > 0.5 {
		return expf32(v) - 1
	}
	p := fma32(c9, v, c8)
	p = fma32(p, v, c7)
	p = fma32(p, v, c6)
	p = fma32(p, v, c5)
	p = fma32(p, v, c4)
	p = fma32(p, v, c3)
	p = fma32(p, v, c2)
	return fma32(float32(v*v), p, v)
}

// tanhf32 returns tanh x as, with a = |x| and em = expm1f32(2a) (2a is
// exact),
//
//	tanh a = em / (em + 2)        for a ≤ 10,  1 above (tanh 10 rounds to 1)
//
// with the sign of x put back (tanh(−0) = −0, NaN stays NaN). Near 0 the
// quotient keeps full relative accuracy because expm1f32 does.
func tanhf32(x float32) float32 {
	if x != x {
		return x
	}
	a := float32(math.Abs(float64(x)))
	r := float32(1)
	if a <= 10 {
		em := expm1f32(2 * a)
		r = em / (em + 2)
	}
	return float32(math.Copysign(float64(r), float64(x)))
}

// sigmoidParts returns σ(z) = 1/(1 + e^−z) and σ'(z) = σ(z)·(1 − σ(z)) in
// the form that keeps both accurate in the tails: with e = expf32(−|z|),
// d = 1 + e and r = e/d,
//
//	σ(z)  = 1/d for z ≥ 0, r for z < 0 (or NaN),
//	σ'(z) = r/d  (e/d², no cancellation of 1 − σ),
//
// each operation rounded to float32.
func sigmoidParts(z float32) (s, sp, e, d float32) {
	e = expf32(-float32(math.Abs(float64(z))))
	d = 1 + e
	r := e / d
	if z >= 0 {
		s = 1 / d
	} else {
		s = r
	}
	return s, r / d, e, d
}

// sigmoidf32 returns σ(x) as sigmoidParts does: 1/(1 + e^−x) for x ≥ 0,
// e^x/(1 + e^x) below, so that the negative tail keeps its relative
// accuracy down to the subnormals.
func sigmoidf32(x float32) float32 {
	s, _, _, _ := sigmoidParts(x)
	return s
}

// timesSigmoidf32 returns x·σ(z) with one division: x/d for z ≥ 0,
// (x·e)/d below (e, d as in sigmoidParts).
func timesSigmoidf32(x, z float32) float32 {
	_, _, e, d := sigmoidParts(z)
	if z >= 0 {
		return x / d
	}
	return float32(x*e) / d
}

// siluf32 returns x·σ(x) = timesSigmoidf32(x, x).
func siluf32(x float32) float32 { return timesSigmoidf32(x, x) }

// siluGradf32 returns the derivative of SiLU, σ(x) + x·σ'(x) with σ and σ'
// from sigmoidParts, the product rounded, then added.
func siluGradf32(x float32) float32 {
	s, sp, _, _ := sigmoidParts(x)
	return s + float32(x*sp)
}

// GELU's tanh approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))),
// is written x·σ(z) with z = 2·√(2/π)·(x + 0.044715·x³), since
// 0.5·(1 + tanh(w)) = σ(2w) exactly: one exponential, and no cancellation
// of 1 + tanh(w) for negative x.
const (
	geluK  = 1.5957691216057308 // 2·√(2/π)
	geluC  = 0.044715
	gelu3C = 3 * 0.044715
)

// geluTanhZf32 returns z = K·(x + C·((x·x)·x)), every operation rounded to
// float32, with K = float32(2·√(2/π)) and C = float32(0.044715).
func geluTanhZf32(x float32) float32 {
	x3 := float32(float32(x*x) * x)
	return float32(geluK) * (x + float32(float32(geluC)*x3))
}

// geluTanhf32 returns timesSigmoidf32(x, geluTanhZf32(x)).
func geluTanhf32(x float32) float32 { return timesSigmoidf32(x, geluTanhZf32(x)) }

// geluTanhGradf32 returns the derivative of geluTanhf32,
//
//	g = σ(z) + (x·σ'(z))·z',   z' = K·(1 + 3C·(x·x))
//
// with σ and σ' from sigmoidParts, every operation rounded to float32 in
// that order, 3C = float32(3·0.044715). For |x| > 10, where z' could
// overflow, g is σ(z) alone, which is the exact gradient rounded for
// x > 10 (1) and within 10^−35 of it for x < −10 (+0).
func geluTanhGradf32(x float32) float32 {
	z := geluTanhZf32(x)
	s, sp, _, _ := sigmoidParts(z)
	if x > 10 || x < -10 {
		return s
	}
	dz := float32(geluK) * (1 + float32(float32(gelu3C)*float32(x*x)))
	return s + float32(float32(x*sp)*dz)
}

// The exact GELU, x·Φ(x) with Φ(x) = ½·erfc(−x/√2), from erff32 and
// erfcf32, whose coefficients cpuref/testdata/fit_erfc.py computes.
const (
	invSqrt2   = 0x1.6a09e6p-1 // 1/√2 rounded to float32
	invSqrt2Pi = 0x1.988454p-2 // 1/√(2π) rounded to float32
)

// erff32 returns erf(h) for |h| < 0.5 by its Taylor series,
//
//	erf(h) = h·(c0 + z·(c1 + … + z·c7)),  z = h·h,  c_n = 2/√π·(−1)^n/(n!·(2n+1))
//
// (truncation below 10^−10 relative), Horner with fma, then one product.
func erff32(h float32) float32 {
	const (
		c0 = 0x1.20dd76p+0
		c1 = -0x1.812746p-2
		c2 = 0x1.ce2f22p-4
		c3 = -0x1.b82ce4p-6
		c4 = 0x1.565bcep-8
		c5 = -0x1.c02db4p-11
		c6 = 0x1.f9a326p-14
		c7 = -0x1.f4d25cp-17
	)
	z := float32(h * h)
	p := fma32(c7, z, c6)
	p = fma32(p, z, c5)
	p = fma32(p, z, c4)
	p = fma32(p, z, c3)
	p = fma32(p, z, c2)
	p = fma32(p, z, c1)
	p = fma32(p, z, c0)
	return h * p
}

// erfcf32 returns erfc(a) for a ≥ 0.5 as
//
//	erfc(a) = e^(−a·a) · (t·Q(t)),  t = 1/(1 + a)
//
// with Q the degree-10 polynomial fitted to erfc(a)·e^(a²)/t on
// [0.5, 10.5] (relative error 6·10^−9, see fit_erfc.py), Horner with fma.
// The exponential's argument a·a is rounded, which costs up to a²·2^−24
// relative: the conditioning of erfc itself, not avoidable in float32.
func erfcf32(a float32) float32 {
	const (
		q10 = 0x1.ccda64p+0
		q9  = -0x1.119e9ep+3
		q8  = 0x1.17cbf4p+4
		q7  = -0x1.3916acp+4
		q6  = 0x1.84f620p+3
		q5  = -0x1.a4ea7ap+1
		q4  = -0x1.6f64f8p-4
		q3  = -0x1.71de44p-2
		q2  = 0x1.277176p-2
		q1  = 0x1.20b66ap-1
		q0  = 0x1.20de3ep-1
	)
	e := expf32(-float32(a * a))
	t := 1 / (1 + a)
	q := fma32(q10, t, q9)
	q = fma32(q, t, q8)
	q = fma32(q, t, q7)
	q = fma32(q, t, q6)
	q = fma32(q, t, q5)
	q = fma32(q, t, q4)
	q = fma32(q, t, q3)
	q = fma32(q, t, q2)
	q = fma32(q, t, q1)
	q = fma32(q, t, q0)
	return e * float32(t*q)
}

// phif32 returns Φ(x) = ½·erfc(−x/√2): with h = x·(1/√2) and a = |h|,
//
//	a < 0.5 (or NaN): Φ = 0.5 + 0.5·erff32(h)
//	h < 0:            Φ = 0.5·erfcf32(a)        (the tail keeps its relative accuracy)
//	otherwise:        Φ = 1 − 0.5·erfcf32(a)
func phif32(x float32) float32 {
	h := x * invSqrt2
	a := float32(math.Abs(float64(h)))
	if !(a >= 0.5) {
		return 0.5 + float32(0.5*erff32(h))
	}
	c := erfcf32(a)
	if h < 0 {
		return 0.5 * c
	}
	return 1 - float32(0.5*c)
}

// geluErff32 returns x·phif32(x).
func geluErff32(x float32) float32 { return x * phif32(x) }

// geluErfGradf32 returns the derivative of the exact GELU,
//
//	g = Φ(x) + x·φ(x),  φ(x) = expf32(−(x·x)·0.5)·(1/√(2π))
//
// every operation rounded to float32 in that order.
func geluErfGradf32(x float32) float32 {
	phi := expf32(-float32(float32(x*x)*0.5)) * invSqrt2Pi
	return phif32(x) + float32(x*phi)
}
