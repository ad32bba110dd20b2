package cpuref

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// newRand returns the test's random source; every test uses a fixed seed.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// randFloats returns n values uniform in [−1, 1).
func randFloats[T Float](rng *rand.Rand, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = T(2*rng.Float64() - 1)
	}
	return s
}

// randInts returns n integer values uniform in [lo, hi]. Sums and products
// of such values are exact in float32 while they stay below 2²⁴.
func randInts[T Float](rng *rand.Rand, n, lo, hi int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = T(lo + rng.IntN(hi-lo+1))
	}
	return s
}

// to64 converts a slice to float64.
func to64[T Float](s []T) []float64 {
	d := make([]float64, len(s))
	for i, v := range s {
		d[i] = float64(v)
	}
	return d
}

// to32 converts a slice to float32.
func to32[T Float](s []T) []float32 {
	d := make([]float32, len(s))
	for i, v := range s {
		d[i] = float32(v)
	}
	return d
}

// guard is the number of NaN elements on each side of a guarded buffer.
const guard = 16

// guarded is an output buffer poisoned with NaN, with NaN guard bands on
// both sides: Out is the n elements in the middle, its capacity reaching
// into the upper band, so a write past its end through a reslice is seen.
type guarded[T Float] struct {
	buf []T
	Out []T
}

func newGuarded[T Float](n int) guarded[T] {
	buf := make([]T, n+2*guard)
	for i := range buf {
		buf[i] = T(math.NaN())
	}
	return guarded[T]{buf: buf, Out: buf[guard : guard+n]}
}

// checkGuards fails the test if a guard element was written.
func (g guarded[T]) checkGuards(t *testing.T, name string) {
	t.Helper()
	n := len(g.buf) - 2*guard
	for i := 0; i < guard; i++ {
		if v := g.buf[i]; v == v {
			t.Errorf("%s: guard element %d before the buffer = %g, want NaN (out-of-range write)", name, guard-i, float64(v))
			return
		}
		if v := g.buf[guard+n+i]; v == v {
			t.Errorf("%s: guard element %d after the buffer = %g, want NaN (out-of-range write)", name, i, float64(v))
			return
		}
	}
}

// equalWithin reports |got − want| ≤ atol + rtol·|want|; NaN never matches.
func equalWithin(got, want, atol, rtol float64) bool {
	return math.Abs(got-want) <= atol+rtol*math.Abs(want)
}

// checkClose fails the test when got and want differ by more than
// atol + rtol·|want| anywhere; it names the first bad indices (at most
// five), got before want, and the largest error. atol = rtol = 0 asks for
// bit equality.
func checkClose[T, U Float](t *testing.T, name string, got []T, want []U, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: len = %d, want %d", name, len(got), len(want))
		return
	}
	bad, maxErr := 0, 0.0
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if d := math.Abs(g - w); d > maxErr || d != d {
			maxErr = d
		}
		ok := equalWithin(g, w, atol, rtol)
		if atol == 0 && rtol == 0 {
			ok = g == w
		}
		if !ok {
			if bad < 5 {
				t.Errorf("%s[%d] = %.9g, want %.9g (atol %g, rtol %g)", name, i, g, w, atol, rtol)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements differ, max |error| %g", name, bad, len(got), maxErr)
	}
}

// checkUnchanged fails the test when an input was modified.
func checkUnchanged[T Float](t *testing.T, name string, got, orig []T) {
	t.Helper()
	if !slices.Equal(got, orig) {
		t.Errorf("%s was modified", name)
	}
}
