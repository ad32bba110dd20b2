package cpuref

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// TestPhiloxKnownAnswers checks Philox4x32 against the three
// "philox4x32 10" lines of Random123's tests/kat_vectors (columns: counter
// c0..c3, key k0 k1, expected output), read with the search tool from the
// Random123 distribution and as quoted in several independent projects.
func TestPhiloxKnownAnswers(t *testing.T) {
	for _, c := range []struct {
		ctr  [4]uint32
		key  [2]uint32
		want [4]uint32
	}{
		{[4]uint32{0, 0, 0, 0}, [2]uint32{0, 0}, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{[4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff},
			[4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0},
			[4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	} {
		if got := Philox4x32(c.ctr, c.key); got != c.want {
			t.Errorf("Philox4x32(%08x, %08x) = %08x, want %08x", c.ctr, c.key, got, c.want)
		}
	}
}

// TestDropoutMaskLayout checks that every mask element is the documented
// function of its own index (the layout a GPU thread computes alone), for
// lengths that are not multiples of 4, and the u ≥ p threshold exactly at
// the edges: p = 0 keeps everything.
func TestDropoutMaskLayout(t *testing.T) {
	k := DropoutKey{Seed: 0x0123456789abcdef, Stream: 3, Step: 1<<32 + 42}
	for _, n := range []int{1, 3, 4, 5, 1001} {
		for _, p := range []float32{0, 0.1, 0.5, 0.9} {
			t.Run(fmt.Sprintf("L=%d,p=%g", n, p), func(t *testing.T) {
				mask := make([]uint8, n)
				must(t, DropoutMask(k, p, mask))
				for i, m := range mask {
					r := Philox4x32([4]uint32{uint32(i / 4), 3, 42, 1}, [2]uint32{0x89abcdef, 0x01234567})[i%4]
					want := uint8(0)
					if float64(r>>8)/(1<<24) >= float64(p) {
						want = 1
					}
					if m != want {
						t.Fatalf("mask[%d] = %d, want %d (word %#08x)", i, m, want, r)
					}
					if p == 0 && m != 1 {
						t.Fatalf("p = 0: mask[%d] = 0", i)
					}
				}
			})
		}
	}
}

// TestDropoutMaskStatistics: over L = 10^6 elements the kept fraction is
// 1 − p within 6 standard deviations √(p(1−p)/L) (≤ 0.003; a false alarm
// has probability ~10^−9), and masks of different steps, streams or seeds
// agree on a fraction p² + (1−p)² within the same bound, as independent
// masks do; the same key gives the same mask.
func TestDropoutMaskStatistics(t *testing.T) {
	const L = 1000000
	base := DropoutKey{Seed: 20261207, Stream: 0, Step: 1}
	for _, p := range []float32{0.1, 0.5, 0.8} {
		t.Run(fmt.Sprintf("p=%g", p), func(t *testing.T) {
			bound := 6 * math.Sqrt(float64(p)*(1-float64(p))/L)
			mask := make([]uint8, L)
			must(t, DropoutMask(base, p, mask))
			kept := 0
			for _, m := range mask {
				kept += int(m)
			}
			if f := float64(kept) / L; math.Abs(f-(1-float64(p))) > bound {
				t.Errorf("kept fraction = %.5f, want %.5f ± %.5f", f, 1-p, bound)
			}
			again := make([]uint8, L)
			must(t, DropoutMask(base, p, again))
			for i := range mask {
				if again[i] != mask[i] {
					t.Fatalf("second mask differs at %d: not deterministic", i)
				}
			}
			for _, other := range []DropoutKey{{base.Seed, 0, 2}, {base.Seed, 1, 1}, {base.Seed + 1, 0, 1}, {base.Seed, 0, 1 + 1<<32}} {
				must(t, DropoutMask(other, p, again))
				same := 0
				for i := range mask {
					if again[i] == mask[i] {
						same++
					}
				}
				want := float64(p*p) + float64((1-p)*(1-p))
				if f := float64(same) / L; math.Abs(f-want) > 6*math.Sqrt(want*(1-want)/L) {
					t.Errorf("key %+v: agreement with %+v = %.5f, want %.5f (independent masks)", other, base, f, want)
				}
			}
		})
	}
}

// TestDropoutApply checks y = x·mask/(1−p) exactly (float64 and float32:
// one product by s, the mask product being exact), the gradient by
// central differences (linear for a fixed mask), and NaN propagation.
func TestDropoutApply(t *testing.T) {
	rng := newRand(70)
	const n, p = 101, float32(0.3)
	mask := make([]uint8, n)
	must(t, DropoutMask(DropoutKey{Seed: 9}, p, mask))
	x, c := randFloats[float64](rng, n), randFloats[float64](rng, n)
	y := newGuarded[float64](n)
	must(t, DropoutForward(p, mask, x, y.Out))
	s := 1 / (1 - float64(p))
	for i := range x {
		if want := x[i] * float64(mask[i]) * s; y.Out[i] != want {
			t.Fatalf("y[%d] = %g, want %g", i, y.Out[i], want)
		}
	}
	loss := func() float64 {
		must(t, DropoutForward(p, mask, x, y.Out))
		return dot(c, y.Out)
	}
	dx := newGuarded[float64](n)
	must(t, DropoutBackward(p, mask, c, dx.Out))
	checkClose(t, "dx", dx.Out, numGrad(loss, x), fdAtol, fdRtol)
	y.checkGuards(t, "y")
	dx.checkGuards(t, "dx")

	x32 := to32(x)
	x32[0] = float32(math.NaN())
	y32 := nans32(n)
	must(t, DropoutForward(p, mask, x32, y32))
	s32 := float32(1) / (1 - p)
	if y32[0] == y32[0] {
		t.Errorf("y[0] = %g from NaN, want NaN", y32[0])
	}
	for i := 1; i < n; i++ {
		if want := x32[i] * float32(mask[i]) * s32; y32[i] != want {
			t.Fatalf("float32 y[%d] = %g, want %g", i, y32[i], want)
		}
	}
}

func TestDropoutErrors(t *testing.T) {
	m := []uint8{1, 0, 1}
	for _, tc := range []struct {
		name string
		err  error
		kind error
	}{
		{"mask/p=1", DropoutMask(DropoutKey{}, 1, make([]uint8, 3)), geom.ErrHyperparameter},
		{"mask/p=NaN", DropoutMask(DropoutKey{}, float32(math.NaN()), make([]uint8, 3)), geom.ErrHyperparameter},
		{"mask/p=-0.1", DropoutMask(DropoutKey{}, -0.1, make([]uint8, 3)), geom.ErrHyperparameter},
		{"mask/empty", DropoutMask(DropoutKey{}, 0.5, nil), geom.ErrGeometry},
		{"forward/len(mask)", DropoutForward(0.5, m[:2], nans64(3), nans64(3)), geom.ErrGeometry},
		{"forward/len(y)", DropoutForward(0.5, m, nans64(3), nans64(4)), geom.ErrGeometry},
		{"forward/mask=2", DropoutForward(0.5, []uint8{1, 2, 0}, nans64(3), nans64(3)), geom.ErrGeometry},
		{"backward/p=1.5", DropoutBackward(1.5, m, nans32(3), nans32(3)), geom.ErrHyperparameter},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.kind) {
				t.Errorf("error = %v, want one wrapping %v", tc.err, tc.kind)
			}
		})
	}
}
