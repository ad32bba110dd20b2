package cpuref

import "math"

// TF32: the tensor cores' TF32 operands keep float32's sign and 8-bit
// exponent and the top 10 of its 23 mantissa bits. The TF32 kernels round
// each operand of a product with cvt.rna.tf32.f32 (to nearest, ties away
// from zero; infinities and NaNs unchanged) and accumulate the exact
// products in float32.

// RoundTF32 returns x rounded to TF32 as cvt.rna.tf32.f32 does, as a
// float32 whose low 13 mantissa bits are zero: a finite x to nearest,
// ties away from zero (a carry out of the mantissa moves into the
// exponent, up to ±Inf), ±Inf and NaN (its payload too) unchanged.
func RoundTF32(x float32) float32 {
	b := math.Float32bits(x)
	if b&0x7f800000 == 0x7f800000 {
		return x
	}
	return math.Float32frombits((b + 0x1000) &^ 0x1fff)
}

// RoundTF32Slice sets dst[i] = RoundTF32(src[i]) for every i of src; dst
// must be at least as long as src and may be src itself. With AVX2 it runs
// eight at a time (roundTF32AVX, the same bits: TestRoundSlicesVec).
func RoundTF32Slice(dst, src []float32) { roundSlice(dst, src, roundTF32AVX, RoundTF32) }
