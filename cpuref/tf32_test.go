package cpuref

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestRoundTF32(t *testing.T) {
	for _, c := range []struct{ in, want uint32 }{
		{0x00000000, 0x00000000}, // +0
		{0x80000000, 0x80000000}, // −0
		{0x3f800000, 0x3f800000}, // 1
		{0x3f801000, 0x3f802000}, // tie, even below: away (up), unlike bfloat16's even
		{0x3f803000, 0x3f804000}, // tie, odd below: away (up)
		{0x3f800fff, 0x3f800000}, // below the tie
		{0x3f801001, 0x3f802000}, // above the tie
		{0xbf801000, 0xbf802000}, // negative tie: away from zero
		{0x3fffffff, 0x40000000}, // carry into the exponent
		{0x7f7fefff, 0x7f7fe000}, // largest TF32, just below its tie
		{0x7f7ff000, 0x7f800000}, // tie above the largest TF32: +Inf
		{0xff7fffff, 0xff800000}, // −Inf
		{0x7f800000, 0x7f800000}, // +Inf
		{0x7fc00001, 0x7fc00001}, // NaN: unchanged, payload too
		{0x7f800001, 0x7f800001}, // NaN whose payload is all in the low bits
		{0x00001000, 0x00002000}, // subnormal tie: away
		{0x00000fff, 0x00000000}, // subnormal below the tie: +0
		{0x807ff000, 0x80800000}, // negative subnormal tie into the smallest normal
	} {
		t.Run(fmt.Sprintf("x=%#08x", c.in), func(t *testing.T) {
			if got := math.Float32bits(RoundTF32(math.Float32frombits(c.in))); got != c.want {
				t.Errorf("RoundTF32(%#08x) = %#08x, want %#08x", c.in, got, c.want)
			}
		})
	}
}

// TestRoundTF32Nearest checks RoundTF32 on random finite float32 bit
// patterns against math/big's round-to-nearest-away with 11 significant
// bits (MinExp and the subnormals' fixed exponent as float32's, so that
// subnormals keep 10 − their leading zeros bits), and RoundTF32Slice
// against RoundTF32, in place too.
func TestRoundTF32Nearest(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	src := make([]float32, 0, 100000)
	for len(src) < cap(src) {
		b := rng.Uint32()
		if len(src)%4 == 0 {
			b = b&^0x1fff | 0x1000 // ties
		}
		x := math.Float32frombits(b)
		if math.IsInf(float64(x), 0) || x != x {
			continue
		}
		src = append(src, x)
		got := RoundTF32(x)
		// The value's exponent decides the unit in the last place: 2^(e−10)
		// for a normal of exponent e, 2^(−126−10) for a subnormal.
		e := max(math.Ilogb(float64(x)), -126)
		if x == 0 {
			e = -126
		}
		ulp := new(big.Float).SetMantExp(big.NewFloat(1), e-10)
		q := new(big.Float).Quo(new(big.Float).SetFloat64(math.Abs(float64(x))), ulp)
		n, _ := new(big.Float).Add(q, big.NewFloat(0.5)).Int(nil) // ⌊|x|/ulp + ½⌋: ties away
		wantAbs, _ := new(big.Float).Mul(new(big.Float).SetInt(n), ulp).Float64()
		want := float32(math.Copysign(wantAbs, float64(x)))
		if wantAbs > math.MaxFloat32 {
			want = float32(math.Copysign(math.Inf(1), float64(x)))
		}
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("RoundTF32(%#08x) = %#08x, want %#08x", b, math.Float32bits(got), math.Float32bits(want))
		}
	}
	orig := slices.Clone(src)
	dst := make([]float32, len(src))
	RoundTF32Slice(dst, src)
	RoundTF32Slice(src, src)
	for i, x := range orig {
		want := math.Float32bits(RoundTF32(x))
		if math.Float32bits(dst[i]) != want || math.Float32bits(src[i]) != want {
			t.Fatalf("RoundTF32Slice: element %d (%#08x): %#08x, in place %#08x, want %#08x",
				i, math.Float32bits(x), math.Float32bits(dst[i]), math.Float32bits(src[i]), want)
		}
	}
}

// TestRoundSlicesVec checks RoundBF16Slice and RoundTF32Slice, with the
// AVX2 kernels where the CPU has them and without, against RoundBF16 and
// RoundTF32 element by element: random bit patterns with ties of both
// roundings, ±0, ±Inf, NaNs of several payloads and signs, subnormals and
// values that round up to ±Inf; lengths around multiples of 8, into
// another slice and in place.
func TestRoundSlicesVec(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	special := []uint32{0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x7fbfffff,
		0x00000001, 0x807fffff, 0x7f7fffff, 0xff7ff000, 0x3f808000, 0x3f818000, 0x3f801000, 0xbf803000}
	saved := useVec
	defer func() { useVec = saved }()
	for _, vec := range []bool{false, saved} {
		useVec = vec
		for _, n := range []int{0, 1, 7, 8, 9, 16, 31, 1000, 4099} {
			src := make([]float32, n)
			for i := range src {
				b := rng.Uint32()
				switch i % 5 {
				case 0:
					b = special[rng.IntN(len(special))]
				case 1:
					b = b&^0xffff | 0x8000 // a bfloat16 tie
				case 2:
					b = b&^0x1fff | 0x1000 // a TF32 tie
				}
				src[i] = math.Float32frombits(b)
			}
			for _, f := range []struct {
				name  string
				slice func(dst, src []float32)
				one   func(float32) float32
			}{{"RoundBF16Slice", RoundBF16Slice, RoundBF16}, {"RoundTF32Slice", RoundTF32Slice, RoundTF32}} {
				dst := make([]float32, n+1)
				dst[n] = 42 // past src: untouched
				f.slice(dst, src)
				in := slices.Clone(src)
				f.slice(in, in)
				for i, x := range src {
					want := math.Float32bits(f.one(x))
					if got := math.Float32bits(dst[i]); got != want {
						t.Fatalf("useVec %v, n %d: %s element %d (%#08x) = %#08x, want %#08x", vec, n, f.name, i, math.Float32bits(x), got, want)
					}
					if got := math.Float32bits(in[i]); got != want {
						t.Fatalf("useVec %v, n %d: %s in place, element %d (%#08x) = %#08x, want %#08x", vec, n, f.name, i, math.Float32bits(x), got, want)
					}
				}
				if dst[n] != 42 {
					t.Fatalf("useVec %v, n %d: %s wrote past len(src)", vec, n, f.name)
				}
			}
		}
	}
}
