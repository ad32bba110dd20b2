package cpuref

import "math"

// BF16 mixed precision: bfloat16 keeps float32's sign and 8-bit exponent
// and the top 7 of its 23 mantissa bits, so a float32 becomes a bfloat16 by
// rounding away its low 16 bits. The tensor-core kernels round each
// operand of a product this way (cvt.rn.bf16x2.f32: to nearest, ties to
// even, subnormals kept, no flush to zero) and accumulate the exact
// products in float32; the reference rounds its inputs with RoundBF16 and
// then computes in float32 or float64 as usual.

// BF16Bits returns the bfloat16 nearest to x, ties to even, as its 16 bits:
// finite values beyond the largest bfloat16 (and its half unit in the last
// place) become ±Inf, ±Inf stays ±Inf, subnormals round like normals, and
// a NaN becomes the canonical NaN 0x7fff, as cvt.rn.bf16x2.f32 does on the
// simulator (the sign and payload of a NaN are not specified by PTX).
func BF16Bits(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return 0x7fff
	}
	// Adding 0x7fff plus the lowest kept bit rounds to nearest with ties to
	// even; a carry out of the mantissa moves into the exponent, up to Inf.
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// BF16ToFloat32 returns the float32 of bfloat16 bits h (exact).
func BF16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// RoundBF16 returns x rounded to bfloat16 (BF16Bits) as a float32.
func RoundBF16(x float32) float32 {
	return BF16ToFloat32(BF16Bits(x))
}

// RoundBF16Slice sets dst[i] = RoundBF16(src[i]) for every i of src; dst
// must be at least as long as src and may be src itself. With AVX2 it runs
// eight at a time (roundBF16AVX, the same bits: TestRoundSlicesVec).
func RoundBF16Slice(dst, src []float32) { roundSlice(dst, src, roundBF16AVX, RoundBF16) }

// roundSlice sets dst[i] = round(src[i]) for every i of src: the largest
// multiple of 8 elements by avx where useVec (which gives round's bits),
// the rest one at a time.
func roundSlice(dst, src []float32, avx func(dst, src *float32, n int), round func(float32) float32) {
	dst = dst[:len(src)]
	if m := len(src) &^ 7; useVec && m > 0 {
		avx(&dst[0], &src[0], m)
		dst, src = dst[m:], src[m:]
	}
	for i, v := range src {
		dst[i] = round(v)
	}
}
