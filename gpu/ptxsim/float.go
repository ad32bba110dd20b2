package ptxsim

import (
	"math"
	"math/big"
)

func f64bits(f float64) uint64 { return math.Float64bits(f) }

func f32(v uint64) float32 { return math.Float32frombits(uint32(v)) }
func f64(v uint64) float64 { return math.Float64frombits(v) }
func b32(f float32) uint64 { return uint64(math.Float32bits(f)) }
func b64(f float64) uint64 { return math.Float64bits(f) }

// ftz32 flushes a subnormal float32 to sign-preserving zero.
func ftz32(v uint64) uint64 {
	if v&0x7f800000 == 0 {
		return v & 0x80000000
	}
	return v & 0xffffffff
}

func ftz64(v uint64) uint64 {
	if v&0x7ff0000000000000 == 0 {
		return v & (1 << 63)
	}
	return v
}

const canonicalNaN32 = 0x7fffffff
const canonicalNaN64 = 0x7fffffffffffffff

// fma32 returns a·b+c rounded once to the nearest float32, ties to even.
//
// math.FMA rounds the exact value to float64 first; converting that to
// float32 rounds a second time, which is wrong exactly when the float64
// result lies on a float32 midpoint (or overflows float32's range) while the
// exact value does not. Those cases are recomputed exactly.
func fma32(a, b, c float32) float32 {
	r := math.FMA(float64(a), float64(b), float64(c))
	f := float32(r)
	if float64(f) == r || r != r {
		return f
	}
	if math.IsInf(float64(f), 0) {
		if math.IsInf(r, 0) {
			return f
		}
		return fma32Exact(a, b, c)
	}
	var g float32
	if r > float64(f) {
		g = math.Nextafter32(f, float32(math.Inf(1)))
	} else {
		g = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	if r-float64(f) == float64(g)-r { // r is a float32 midpoint: possibly double-rounded
		return fma32Exact(a, b, c)
	}
	return f
}

func fma32Exact(a, b, c float32) float32 {
	x := exactFMA(float64(a), float64(b), float64(c), 600)
	if x == nil {
		return float32(math.FMA(float64(a), float64(b), float64(c)))
	}
	f, _ := x.Float32()
	return f
}

// exactFMA returns a·b+c computed exactly (nil when an input is not finite).
func exactFMA(a, b, c float64, prec uint) *big.Float {
	if math.IsInf(a, 0) || math.IsInf(b, 0) || math.IsInf(c, 0) || a != a || b != b || c != c {
		return nil
	}
	x := new(big.Float).SetPrec(prec).SetFloat64(a)
	y := new(big.Float).SetPrec(prec).SetFloat64(b)
	z := new(big.Float).SetPrec(prec).SetFloat64(c)
	x.Mul(x, y)
	return x.Add(x, z)
}

// directed32 moves the round-to-nearest result f of an exact value x one ulp
// as rounding mode rnd requires, given cmp = sign(x − f).
func directed32(f float32, cmp int, rnd uint8) float32 {
	if cmp == 0 || f != f {
		return f
	}
	switch rnd {
	case rnRZ:
		if cmp < 0 && f > 0 || cmp > 0 && f < 0 {
			return math.Nextafter32(f, 0)
		}
		if math.IsInf(float64(f), 0) {
			return math.Nextafter32(f, 0)
		}
	case rnRM:
		if cmp < 0 {
			return math.Nextafter32(f, float32(math.Inf(-1)))
		}
	case rnRP:
		if cmp > 0 {
			return math.Nextafter32(f, float32(math.Inf(1)))
		}
	}
	return f
}

func directed64(f float64, cmp int, rnd uint8) float64 {
	if cmp == 0 || f != f {
		return f
	}
	switch rnd {
	case rnRZ:
		if cmp < 0 && f > 0 || cmp > 0 && f < 0 || math.IsInf(f, 0) {
			return math.Nextafter(f, 0)
		}
	case rnRM:
		if cmp < 0 {
			return math.Nextafter(f, math.Inf(-1))
		}
	case rnRP:
		if cmp > 0 {
			return math.Nextafter(f, math.Inf(1))
		}
	}
	return f
}

// cmpAcc converts a big.Accuracy of f relative to x into sign(x − f).
func cmpAcc(acc big.Accuracy) int {
	switch acc {
	case big.Below: // f < x
		return 1
	case big.Above:
		return -1
	}
	return 0
}

// f32Slow evaluates add/sub/mul/fma/div/sqrt/rcp in float32 with any rounding
// mode, .ftz and .sat.
func f32Slow(fop, rnd, flags uint8, av, bv, cv uint64) uint64 {
	if flags&fFtz != 0 {
		av, bv, cv = ftz32(av), ftz32(bv), ftz32(cv)
	}
	a, b, c := f32(av), f32(bv), f32(cv)
	var f float32
	cmp := 0
	exact := func(x *big.Float) {
		if x == nil {
			return
		}
		var acc big.Accuracy
		f, acc = x.Float32()
		cmp = cmpAcc(acc)
	}
	switch fop {
	case fopAdd:
		f = a + b
		exact(exactFMA(float64(a), 1, float64(b), 600))
	case fopSub:
		f = a - b
		exact(exactFMA(float64(a), 1, -float64(b), 600))
	case fopMul:
		f = a * b
		exact(exactFMA(float64(a), float64(b), 0, 600))
	case fopFma:
		f = fma32(a, b, c)
		exact(exactFMA(float64(a), float64(b), float64(c), 600))
	case fopDiv, fopRcp:
		if fop == fopRcp {
			a, b = 1, a
		}
		f = a / b
		if isFinite32(f) && f != 0 && isFinite32(a) && isFinite32(b) && b != 0 {
			// sign(a/b − f) = sign(a − f·b)·sign(b)
			r := exactFMA(-float64(f), float64(b), float64(a), 600)
			cmp = r.Sign()
			if b < 0 {
				cmp = -cmp
			}
		} else if f == 0 && a != 0 && isFinite32(b) {
			// underflow to zero: the exact quotient has the sign of a/b
			if (a < 0) != (b < 0) {
				cmp = -1
			} else {
				cmp = 1
			}
		} else if math.IsInf(float64(f), 0) && isFinite32(a) && b != 0 {
			if f > 0 {
				cmp = -1
			} else {
				cmp = 1
			}
		}
	case fopSqrt:
		f = float32(math.Sqrt(float64(a)))
		if isFinite32(f) && f > 0 {
			r := exactFMA(-float64(f), float64(f), float64(a), 600)
			cmp = r.Sign()
		}
	}
	if rnd == rnRZ || rnd == rnRM || rnd == rnRP {
		f = directed32(f, cmp, rnd)
	}
	v := b32(f)
	if flags&fSat != 0 {
		v = sat32(v)
	}
	if flags&fFtz != 0 {
		v = ftz32(v)
	}
	return v
}

func isFinite32(f float32) bool { return !math.IsInf(float64(f), 0) && f == f }

func sat32(v uint64) uint64 {
	f := f32(v)
	switch {
	case f != f || f <= 0:
		return 0 // NaN → +0, negatives (and −0) → +0
	case f > 1:
		return b32(1)
	}
	return v
}

func sat64(v uint64) uint64 {
	f := f64(v)
	switch {
	case f != f || f <= 0:
		return 0
	case f > 1:
		return b64(1)
	}
	return v
}

func f64Slow(fop, rnd, flags uint8, av, bv, cv uint64) uint64 {
	if flags&fFtz != 0 {
		av, bv, cv = ftz64(av), ftz64(bv), ftz64(cv)
	}
	a, b, c := f64(av), f64(bv), f64(cv)
	var f float64
	cmp := 0
	exact := func(x *big.Float) {
		if x == nil {
			return
		}
		var acc big.Accuracy
		f, acc = x.Float64()
		cmp = cmpAcc(acc)
	}
	const prec = 2400
	switch fop {
	case fopAdd:
		f = a + b
		exact(exactFMA(a, 1, b, prec))
	case fopSub:
		f = a - b
		exact(exactFMA(a, 1, -b, prec))
	case fopMul:
		f = a * b
		exact(exactFMA(a, b, 0, prec))
	case fopFma:
		f = math.FMA(a, b, c)
		exact(exactFMA(a, b, c, prec))
	case fopDiv, fopRcp:
		if fop == fopRcp {
			a, b = 1, a
		}
		f = a / b
		if !math.IsInf(f, 0) && f == f && f != 0 && !math.IsInf(a, 0) && !math.IsInf(b, 0) && b != 0 {
			r := exactFMA(-f, b, a, prec)
			cmp = r.Sign()
			if b < 0 {
				cmp = -cmp
			}
		}
	case fopSqrt:
		f = math.Sqrt(a)
		if !math.IsInf(f, 0) && f > 0 {
			cmp = exactFMA(-f, f, a, prec).Sign()
		}
	}
	if rnd == rnRZ || rnd == rnRM || rnd == rnRP {
		f = directed64(f, cmp, rnd)
	}
	v := b64(f)
	if flags&fSat != 0 {
		v = sat64(v)
	}
	return v
}

// min32 and max32 follow PTX: a NaN operand yields the other operand, two
// NaNs (or any NaN with .NaN) the canonical NaN; −0 < +0.
func min32(a, b uint64, nanProp bool) uint64 {
	fa, fb := f32(a), f32(b)
	if fa != fa || fb != fb {
		if nanProp || fa != fa && fb != fb {
			return canonicalNaN32
		}
		if fa != fa {
			return b
		}
		return a
	}
	if fa < fb {
		return a
	}
	if fb < fa {
		return b
	}
	return a | b
}

func max32(a, b uint64, nanProp bool) uint64 {
	fa, fb := f32(a), f32(b)
	if fa != fa || fb != fb {
		if nanProp || fa != fa && fb != fb {
			return canonicalNaN32
		}
		if fa != fa {
			return b
		}
		return a
	}
	if fa > fb {
		return a
	}
	if fb > fa {
		return b
	}
	return a & b
}

func min64(a, b uint64, nanProp bool) uint64 {
	fa, fb := f64(a), f64(b)
	if fa != fa || fb != fb {
		if nanProp || fa != fa && fb != fb {
			return canonicalNaN64
		}
		if fa != fa {
			return b
		}
		return a
	}
	if fa < fb {
		return a
	}
	if fb < fa {
		return b
	}
	return a | b
}

func max64(a, b uint64, nanProp bool) uint64 {
	fa, fb := f64(a), f64(b)
	if fa != fa || fb != fb {
		if nanProp || fa != fa && fb != fb {
			return canonicalNaN64
		}
		if fa != fa {
			return b
		}
		return a
	}
	if fa > fb {
		return a
	}
	if fb > fa {
		return b
	}
	return a & b
}

// cmpFloat evaluates a PTX comparison on float64 values.
func cmpFloat(cmp uint8, a, b float64) bool {
	nan := a != a || b != b
	switch cmp {
	case cmpEq:
		return !nan && a == b
	case cmpNe:
		return !nan && a != b
	case cmpLt:
		return !nan && a < b
	case cmpLe:
		return !nan && a <= b
	case cmpGt:
		return !nan && a > b
	case cmpGe:
		return !nan && a >= b
	case cmpEqu:
		return nan || a == b
	case cmpNeu:
		return nan || a != b
	case cmpLtu:
		return nan || a < b
	case cmpLeu:
		return nan || a <= b
	case cmpGtu:
		return nan || a > b
	case cmpGeu:
		return nan || a >= b
	case cmpNum:
		return !nan
	case cmpNan:
		return nan
	}
	return false
}

func cmpSigned(cmp uint8, a, b int64) bool {
	switch cmp {
	case cmpEq:
		return a == b
	case cmpNe:
		return a != b
	case cmpLt:
		return a < b
	case cmpLe:
		return a <= b
	case cmpGt:
		return a > b
	case cmpGe:
		return a >= b
	}
	return false
}

func cmpUnsigned(cmp uint8, a, b uint64) bool {
	switch cmp {
	case cmpEq:
		return a == b
	case cmpNe:
		return a != b
	case cmpLt:
		return a < b
	case cmpLe:
		return a <= b
	case cmpGt:
		return a > b
	case cmpGe:
		return a >= b
	}
	return false
}

// roundFormat rounds x to a binary floating-point format with p significand
// bits (implicit bit included), minimum normal exponent emin and maximum
// exponent emax, in rounding mode rnd, and returns the rounded value as a
// float64 (exact, since every such format is a subset of float64).
func roundFormat(x float64, p, emin, emax int, rnd uint8) float64 {
	if x == 0 || x != x || math.IsInf(x, 0) {
		return x
	}
	neg := x < 0
	ax := math.Abs(x)
	_, e := math.Frexp(ax) // ax = m·2^e, m in [0.5,1): exponent of leading bit is e-1
	e--
	if e < emin {
		e = emin
	}
	q := math.Ldexp(1, e-(p-1)) // quantum
	n := ax / q                 // exact: division by a power of two
	var r float64
	switch rnd {
	case rnRZ:
		r = math.Trunc(n)
	case rnRM:
		if neg {
			r = math.Ceil(n)
		} else {
			r = math.Floor(n)
		}
	case rnRP:
		if neg {
			r = math.Floor(n)
		} else {
			r = math.Ceil(n)
		}
	default:
		r = math.RoundToEven(n)
	}
	y := r * q
	maxv := math.Ldexp(2-math.Ldexp(1, 1-p), emax)
	if y > maxv {
		switch {
		case rnd == rnRZ, rnd == rnRM && !neg, rnd == rnRP && neg:
			y = maxv
		default:
			y = math.Inf(1)
		}
	}
	if neg {
		y = -y
	}
	return y
}

func f16ToF64(h uint64) float64 {
	h &= 0xffff
	sign := h >> 15
	exp := int(h>>10) & 0x1f
	man := float64(h & 0x3ff)
	var v float64
	switch exp {
	case 0:
		v = math.Ldexp(man, -24)
	case 31:
		if man == 0 {
			v = math.Inf(1)
		} else {
			v = math.NaN()
		}
	default:
		v = math.Ldexp(1024+man, exp-25)
	}
	if sign != 0 {
		v = -v
	}
	return v
}

// f64ToF16 rounds x to binary16 in mode rnd.
func f64ToF16(x float64, rnd uint8) uint64 {
	if x != x {
		return 0x7fff
	}
	y := roundFormat(x, 11, -14, 15, rnd)
	var sign uint64
	if math.Signbit(y) {
		sign = 0x8000
		y = -y
	}
	if math.IsInf(y, 0) {
		return sign | 0x7c00
	}
	if y == 0 {
		return sign
	}
	_, e := math.Frexp(y)
	e--
	if e < -14 { // subnormal
		return sign | uint64(y*math.Ldexp(1, 24))
	}
	man := uint64(math.Ldexp(y, 10-e)) - 1024
	return sign | uint64(e+15)<<10 | man
}

func f64ToBF16(x float64, rnd uint8) uint64 {
	if x != x {
		return 0x7fff
	}
	y := roundFormat(x, 8, -126, 127, rnd)
	return uint64(math.Float32bits(float32(y)) >> 16)
}

// fval reads a float of type code tc as float64.
func fval(tc uint8, v uint64, ftz bool) float64 {
	switch tc {
	case kF<<4 | 2:
		if ftz {
			v = ftz32(v)
		}
		return float64(f32(v))
	case kF<<4 | 3:
		return f64(v)
	case kF<<4 | 1:
		return f16ToF64(v)
	case kBF<<4 | 1:
		return float64(f32(v << 16 & 0xffff0000))
	}
	return 0
}

func roundIntegral(x float64, rnd uint8) float64 {
	switch rnd {
	case rnRNI:
		return math.RoundToEven(x)
	case rnRZI:
		return math.Trunc(x)
	case rnRMI:
		return math.Floor(x)
	case rnRPI:
		return math.Ceil(x)
	}
	return x
}

// cvtGeneric implements cvt for every pair of types other than plain
// integer extension/truncation.
func cvtGeneric(in *inst, v uint64) uint64 {
	dk, sk := in.td>>4, in.ta>>4
	dbits := 8 << (in.td & 15)
	sbits := 8 << (in.ta & 15)
	ftz := in.flags&fFtz != 0
	sat := in.flags&fSat != 0
	intlike := func(k uint8) bool { return k == kU || k == kS || k == kB }
	switch {
	case intlike(dk) && intlike(sk): // saturating integer conversion
		var lo, hi big.Int
		var x big.Int
		if sk == kS {
			x.SetInt64(int64(v<<(64-sbits)) >> (64 - sbits))
		} else {
			x.SetUint64(v & bitsMask(sbits))
		}
		if dk == kS {
			lo.Lsh(big.NewInt(-1), uint(dbits-1))
			hi.Lsh(big.NewInt(1), uint(dbits-1))
			hi.Sub(&hi, big.NewInt(1))
		} else {
			hi.Lsh(big.NewInt(1), uint(dbits))
			hi.Sub(&hi, big.NewInt(1))
		}
		if x.Cmp(&lo) < 0 {
			x.Set(&lo)
		}
		if x.Cmp(&hi) > 0 {
			x.Set(&hi)
		}
		if x.Sign() < 0 {
			return uint64(x.Int64()) & in.mask
		}
		return x.Uint64() & in.mask
	case intlike(dk): // float → integer
		x := fval(in.ta, v, ftz)
		if x != x {
			return 0
		}
		x = roundIntegral(x, in.rnd)
		if dk == kS {
			lo := -math.Ldexp(1, dbits-1)
			hi := math.Ldexp(1, dbits-1)
			switch {
			case x < lo:
				return uint64(int64(-1)<<(dbits-1)) & in.mask
			case x >= hi:
				return uint64(1)<<(dbits-1) - 1
			}
			return uint64(int64(x)) & in.mask
		}
		switch {
		case x <= 0:
			return 0
		case x >= math.Ldexp(1, dbits):
			return bitsMask(dbits)
		}
		if x >= math.Ldexp(1, 63) {
			return uint64(x-math.Ldexp(1, 63)) + 1<<63
		}
		return uint64(x) & in.mask
	case intlike(sk): // integer → float
		var x *big.Float
		var approx float64
		if sk == kS {
			i := int64(v<<(64-sbits)) >> (64 - sbits)
			x = new(big.Float).SetInt64(i)
			approx = float64(i)
		} else {
			u := v & bitsMask(sbits)
			x = new(big.Float).SetUint64(u)
			approx = float64(u)
		}
		var r uint64
		switch in.td {
		case kF<<4 | 2:
			f, acc := x.Float32()
			f = directed32(f, cmpAcc(acc), in.rnd)
			r = b32(f)
			if ftz {
				r = ftz32(r)
			}
			if sat {
				r = sat32(r)
			}
		case kF<<4 | 3:
			f, acc := x.Float64()
			r = b64(directed64(f, cmpAcc(acc), in.rnd))
			if sat {
				r = sat64(r)
			}
		case kF<<4 | 1:
			r = f64ToF16(approx, in.rnd)
		case kBF<<4 | 1:
			r = f64ToBF16(approx, in.rnd)
		}
		return r
	}
	// float → float
	x := fval(in.ta, v, ftz)
	if in.rnd >= rnRNI {
		x = roundIntegral(x, in.rnd)
	}
	rnd := in.rnd
	if rnd >= rnRNI || rnd == rnNone {
		rnd = rnRN
	}
	var r uint64
	switch in.td {
	case kF<<4 | 2:
		if x != x {
			r = canonicalNaN32
			if in.ta == kF<<4|2 {
				r = v & 0xffffffff
			}
		} else {
			r = b32(float32(roundFormat(x, 24, -126, 127, rnd)))
		}
		if sat {
			r = sat32(r)
		}
		if ftz {
			r = ftz32(r)
		}
	case kF<<4 | 3:
		if x != x && in.ta == kF<<4|3 {
			r = v
		} else {
			r = b64(x)
		}
		if sat {
			r = sat64(r)
		}
	case kF<<4 | 1:
		r = f64ToF16(x, rnd)
		if sat {
			r = f64ToF16(f64(sat64(b64(f16ToF64(r)))), rnRN)
		}
	case kBF<<4 | 1:
		r = f64ToBF16(x, rnd)
	}
	return r
}

// f32Unary evaluates the approximate unary operations in float64 and rounds
// to float32: well within PTX's documented error bounds.
func f32Unary(sub uint8, ftz bool, v uint64) uint64 {
	if ftz {
		v = ftz32(v)
	}
	x := float64(f32(v))
	var y float64
	switch sub {
	case uEx2:
		y = math.Exp2(x)
	case uLg2:
		y = math.Log2(x)
	case uRsqrt:
		y = 1 / math.Sqrt(x)
	case uSin:
		y = math.Sin(x)
	case uCos:
		y = math.Cos(x)
	case uTanh:
		y = math.Tanh(x)
	case uSqrtApprox:
		y = math.Sqrt(x)
	case uRcpApprox:
		y = 1 / x
	}
	r := b32(float32(y))
	if ftz {
		r = ftz32(r)
	}
	return r
}

func f64Unary(sub uint8, v uint64) uint64 {
	x := f64(v)
	switch sub {
	case uRsqrt:
		return b64(1 / math.Sqrt(x))
	case uSqrtApprox:
		return b64(math.Sqrt(x))
	case uRcpApprox:
		return b64(1 / x)
	}
	return b64(math.NaN())
}

func testp(sub uint8, x float64, subnormal bool) bool {
	switch sub {
	case 0:
		return !math.IsInf(x, 0) && x == x
	case 1:
		return math.IsInf(x, 0)
	case 2:
		return x == x
	case 3:
		return x != x
	case 4:
		return !math.IsInf(x, 0) && x == x && x != 0 && !subnormal
	case 5:
		return subnormal
	}
	return false
}

// cvtPack implements cvt.rn{.relu}.{bf16x2,f16x2}.f32 d, a, b: a and b
// rounded to nearest even (a NaN to the canonical NaN 0x7fff), a in the
// upper 16 bits of d and b in the lower; .relu (fSat here) turns negative
// results into +0.
func cvtPack(in *inst, a, b uint64) uint64 {
	half := func(v uint64) uint64 {
		x := float64(f32(v & 0xffffffff))
		if in.flags&fSat != 0 && x < 0 {
			x = 0
		}
		if in.td == kBF<<4|1 {
			return f64ToBF16(x, rnRN)
		}
		return f64ToF16(x, rnRN)
	}
	return half(a)<<16 | half(b)
}
