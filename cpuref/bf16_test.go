package cpuref

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestBF16Bits(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want uint16
	}{
		{0x00000000, 0x0000}, // +0
		{0x80000000, 0x8000}, // −0
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even below: down
		{0x3f818000, 0x3f82}, // tie, odd below: up
		{0x3f808001, 0x3f81}, // above the tie
		{0x3f807fff, 0x3f80}, // below the tie
		{0xbf818000, 0xbf82}, // negative tie: magnitude rounds the same way
		{0x3fffffff, 0x4000}, // carry into the exponent
		{0x7f7f7fff, 0x7f7f}, // largest bfloat16, just below its tie
		{0x7f7f8000, 0x7f80}, // tie above the largest bfloat16 (odd): +Inf
		{0x7f7fffff, 0x7f80}, // largest float32: +Inf
		{0xff7fffff, 0xff80}, // −Inf
		{0x7f800000, 0x7f80}, // +Inf
		{0xff800000, 0xff80}, // −Inf
		{0x7fc00000, 0x7fff}, // quiet NaN: canonical
		{0xffc00001, 0x7fff}, // negative NaN: canonical
		{0x7f800001, 0x7fff}, // signalling NaN whose payload is all in the low bits: still NaN
		{0x00008000, 0x0000}, // subnormal tie, even below: +0
		{0x00018000, 0x0002}, // subnormal tie, odd below: up
		{0x00010001, 0x0001}, // subnormal above the tie
		{0x007fffff, 0x0080}, // largest subnormal: smallest normal
		{0x80008001, 0x8001}, // negative subnormal above the tie
	} {
		x := math.Float32frombits(c.in)
		t.Run(fmt.Sprintf("x=%#08x", c.in), func(t *testing.T) {
			if got := BF16Bits(x); got != c.want {
				t.Errorf("BF16Bits(%#08x) = %#04x, want %#04x", c.in, got, c.want)
			}
			got := RoundBF16(x)
			if want := math.Float32frombits(uint32(c.want) << 16); math.Float32bits(got) != math.Float32bits(want) {
				t.Errorf("RoundBF16(%#08x) = %#08x, want %#08x", c.in, math.Float32bits(got), math.Float32bits(want))
			}
		})
	}
}

// TestBF16BitsNearest checks BF16Bits on random float32 bit patterns
// against math/big's round-to-nearest-even with 8 significant bits and
// float32's exponent range (denormals included).
func TestBF16BitsNearest(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for i := 0; i < 100000; i++ {
		b := rng.Uint32()
		if i%4 == 0 {
			b &= 0x807fffff // a quarter subnormal
		}
		x := math.Float32frombits(b)
		if x != x || math.IsInf(float64(x), 0) {
			continue
		}
		got := BF16ToFloat32(BF16Bits(x))
		if w, ok := nearestBF16(x); !ok {
			if !math.IsInf(float64(got), int(1-2*(b>>31))) {
				t.Fatalf("BF16Bits(%#08x) = %g, want %s", b, got, "±Inf (overflow)")
			}
		} else if math.Float32bits(got) != math.Float32bits(w) {
			t.Fatalf("BF16Bits(%#08x) = %#08x, want %#08x", b, math.Float32bits(got), math.Float32bits(w))
		}
	}
}

// nearestBF16 rounds finite x to bfloat16 with math/big; ok is false on
// overflow.
func nearestBF16(x float32) (float32, bool) {
	if x == 0 {
		return x, true
	}
	f := new(big.Float).SetFloat64(float64(x))
	// Below 2^-126 bfloat16 is fixed-point with a unit of 2^-133: round the
	// integer multiple of that unit.
	if math.Abs(float64(x)) < math.Ldexp(1, -126) {
		f.SetMantExp(f, 133)
		q, _ := new(big.Float).SetMode(big.ToNearestEven).SetPrec(64).Set(f).Int(nil)
		// Int truncates: do the nearest-even by hand.
		r := new(big.Float).Sub(f, new(big.Float).SetInt(q))
		half := big.NewFloat(0.5)
		ar := new(big.Float).Abs(r)
		switch c := ar.Cmp(half); {
		case c > 0 || c == 0 && q.Bit(0) == 1:
			if r.Sign() > 0 {
				q.Add(q, big.NewInt(1))
			} else {
				q.Sub(q, big.NewInt(1))
			}
		}
		v, _ := new(big.Float).SetInt(q).Float64()
		return float32(math.Copysign(math.Ldexp(v, -133), float64(x))), true
	}
	f.SetMode(big.ToNearestEven).SetPrec(8)
	v, _ := f.Float64()
	if math.Abs(v) > math.MaxFloat32 {
		return 0, false
	}
	return float32(v), true
}

func TestRoundBF16Slice(t *testing.T) {
	src := []float32{1, 1.00390625, 3.14159265, -2.71828, float32(math.Inf(-1))}
	dst := make([]float32, len(src))
	RoundBF16Slice(dst, src)
	for i, v := range src {
		if want := RoundBF16(v); math.Float32bits(dst[i]) != math.Float32bits(want) {
			t.Errorf("RoundBF16Slice[%d] = %g, want %g", i, dst[i], want)
		}
	}
	RoundBF16Slice(src, src) // in place
	for i := range src {
		if math.Float32bits(src[i]) != math.Float32bits(dst[i]) {
			t.Errorf("in place [%d] = %g, want %g", i, src[i], dst[i])
		}
	}
	if got, want := dst[2], float32(3.140625); got != want {
		t.Errorf("RoundBF16(3.14159265) = %g, want %g", got, want)
	}
}
