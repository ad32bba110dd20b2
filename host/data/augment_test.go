package data

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestHash3Golden pins the draw that a GPU kernel must reproduce. Mix64
// against SplitMix64's published sequence for seed 0 (its outputs are
// Mix64(k·γ)); Hash3 and Draw against values computed by an independent
// Python transcription of the doc comments' formulas.
func TestHash3Golden(t *testing.T) {
	for _, tc := range []struct{ in, want uint64 }{
		{golden, 0xe220a8397b1dcdaf},
		{golden * 2 & math.MaxUint64, 0x6e789e6aa1b965f4},
		{0, 0},
		{1, 0x5692161d100b05e5},
	} {
		if got := Mix64(tc.in); got != tc.want {
			t.Errorf("Mix64(%#x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	a := Augment{Pad: 4, Flip: true}
	for _, tc := range []struct {
		seed, step, index uint64
		want              uint64
		draw              Draw
	}{
		{0, 0, 0, 0x238275bc38fcbe91, Draw{2, 2, false}},
		{1, 2, 3, 0x6ae515c1c0ac7e37, Draw{6, 7, false}},
		{42, 7, 49999, 0xc4633a0a0ad5bd64, Draw{0, 4, true}},
		{math.MaxUint64, math.MaxUint64, math.MaxUint64, 0x40aa389ba7cc36a4, Draw{5, 4, false}},
	} {
		if got := Hash3(tc.seed, tc.step, tc.index); got != tc.want {
			t.Errorf("Hash3(%d, %d, %d) = %#x, want %#x", tc.seed, tc.step, tc.index, got, tc.want)
		}
		if got := a.Draw(tc.seed, tc.step, tc.index); got != tc.draw {
			t.Errorf("Augment%+v.Draw(%d, %d, %d) = %+v, want %+v", a, tc.seed, tc.step, tc.index, got, tc.draw)
		}
	}
}

// TestAugmentDraw checks the draws over many images: every offset in
// range, each offset value about equally often, flips about half the time
// (only when asked for), the same draws for the same arguments and
// different ones for another step or seed.
func TestAugmentDraw(t *testing.T) {
	const n = 20000
	for _, a := range []Augment{{}, {Pad: 1}, {Pad: 4, Flip: true}, {Flip: true}, {Pad: 7}} {
		t.Run("augment="+a.String(), func(t *testing.T) {
			s := 2*a.Pad + 1
			ys, xs := make([]int, s), make([]int, s)
			flips, sameStep, sameSeed := 0, 0, 0
			for i := range uint64(n) {
				d := a.Draw(3, 100, i)
				if d.DY < 0 || d.DY >= s || d.DX < 0 || d.DX >= s {
					t.Fatalf("Draw(3, 100, %d) = %+v, want offsets in [0, %d]", i, d, s-1)
				}
				if again := a.Draw(3, 100, i); again != d {
					t.Fatalf("Draw(3, 100, %d) = %+v then %+v", i, d, again)
				}
				ys[d.DY]++
				xs[d.DX]++
				if d.Flip {
					flips++
				}
				if a.Draw(3, 101, i) == d {
					sameStep++
				}
				if a.Draw(4, 100, i) == d {
					sameSeed++
				}
			}
			// Each count is binomial(n, 1/s): within 6 standard deviations.
			mean := float64(n) / float64(s)
			sd := math.Sqrt(mean * (1 - 1/float64(s)))
			for v := range s {
				if math.Abs(float64(ys[v])-mean) > 6*sd || math.Abs(float64(xs[v])-mean) > 6*sd {
					t.Errorf("offset %d drawn %d (y) and %d (x) times of %d, want about %.0f", v, ys[v], xs[v], n, mean)
				}
			}
			wantFlips := 0.0
			if a.Flip {
				wantFlips = 0.5
			}
			if got := float64(flips) / n; math.Abs(got-wantFlips) > 6*0.5/math.Sqrt(n) {
				t.Errorf("flipped %d of %d images, want a fraction of %.1f", flips, n, wantFlips)
			}
			// Two independent draws agree with probability 1/(s²·(1+Flip)).
			outcomes := float64(s * s)
			if a.Flip {
				outcomes *= 2
			}
			if outcomes > 1 {
				limit := n/outcomes + 6*math.Sqrt(n/outcomes) + 1
				if float64(sameStep) > limit || float64(sameSeed) > limit {
					t.Errorf("%d (next step) and %d (next seed) of %d draws equal, want about %.0f", sameStep, sameSeed, n, n/outcomes)
				}
			}
		})
	}
}

// refAugment is the augmentation written the long way: pad with zeros,
// cut the window, mirror it.
func refAugment(src []float32, c, h, w, pad int, d Draw) []float32 {
	ph, pw := h+2*pad, w+2*pad
	padded := make([]float32, c*ph*pw)
	for ch := range c {
		for y := range h {
			for x := range w {
				padded[(ch*ph+y+pad)*pw+x+pad] = src[(ch*h+y)*w+x]
			}
		}
	}
	out := make([]float32, c*h*w)
	for ch := range c {
		for y := range h {
			for x := range w {
				out[(ch*h+y)*w+x] = padded[(ch*ph+y+d.DY)*pw+x+d.DX]
			}
		}
		if d.Flip {
			for y := range h {
				row := out[(ch*h+y)*w : (ch*h+y+1)*w]
				for i, j := 0, w-1; i < j; i, j = i+1, j-1 {
					row[i], row[j] = row[j], row[i]
				}
			}
		}
	}
	return out
}

func TestAugmentApply(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		name       string
		c, h, w, p int
	}{
		{"C=2,H=5,W=7,pad=2", 2, 5, 7, 2},
		{"C=3,H=4,W=4,pad=4", 3, 4, 4, 4},
		{"C=1,H=1,W=3,pad=1", 1, 1, 3, 1},
		{"C=1,H=3,W=2,pad=0", 1, 3, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := make([]float32, tc.c*tc.h*tc.w)
			for i := range src {
				src[i] = float32(rng.NormFloat64())
			}
			orig := append([]float32(nil), src...)
			a := Augment{Pad: tc.p, Flip: true}
			for dy := 0; dy <= 2*tc.p; dy++ {
				for dx := 0; dx <= 2*tc.p; dx++ {
					for _, flip := range []bool{false, true} {
						d := Draw{dy, dx, flip}
						dst := make([]float32, len(src))
						for i := range dst {
							dst[i] = float32(math.NaN())
						}
						if err := a.Apply(dst, src, tc.c, tc.h, tc.w, d); err != nil {
							t.Fatal(err)
						}
						want := refAugment(src, tc.c, tc.h, tc.w, tc.p, d)
						for i := range dst {
							if math.Float32bits(dst[i]) != math.Float32bits(want[i]) {
								t.Fatalf("Apply(%+v)[%d] = %g, want %g", d, i, dst[i], want[i])
							}
						}
						if dy == tc.p && dx == tc.p && !flip {
							for i := range dst {
								if dst[i] != src[i] {
									t.Fatalf("Apply(centre, no flip)[%d] = %g, want the source %g", i, dst[i], src[i])
								}
							}
						}
					}
				}
			}
			for i := range src {
				if src[i] != orig[i] {
					t.Fatalf("Apply changed the source at %d", i)
				}
			}
		})
	}
	if err := (Augment{Pad: 2}).Apply(make([]float32, 4), make([]float32, 4), 1, 2, 2, Draw{5, 0, false}); err == nil || !strings.Contains(err.Error(), "offset (5, 0)") {
		t.Errorf("Apply(offset 5 with pad 2) = %v, want an error about the offset", err)
	}
}

// TestAugmentBatch: image i of the batch gets the draw of its index, and
// the batch's bits do not depend on where an image sits in the batch.
func TestAugmentBatch(t *testing.T) {
	const n, c, h, w = 5, 3, 6, 6
	rng := rand.New(rand.NewPCG(2, 2))
	src := make([]float32, n*c*h*w)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	a := Augment{Pad: 2, Flip: true}
	index := []int{40, 3, 17, 0, 99}
	dst := make([]float32, len(src))
	if err := a.Batch(dst, src, n, c, h, w, 9, 12, index); err != nil {
		t.Fatal(err)
	}
	size := c * h * w
	for i, k := range index {
		want := refAugment(src[i*size:(i+1)*size], c, h, w, a.Pad, a.Draw(9, 12, uint64(k)))
		for j := range want {
			if dst[i*size+j] != want[j] {
				t.Fatalf("Batch image %d (index %d) value %d = %g, want %g", i, k, j, dst[i*size+j], want[j])
			}
		}
	}
	if err := a.Batch(dst, src, n, c, h, w, 9, 12, index[:4]); err == nil {
		t.Error("Batch(4 indices for 5 images) = nil, want an error")
	}
}

func TestParseAugment(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Augment
		err  string
	}{
		{"", Augment{}, ""},
		{"none", Augment{}, ""},
		{"crop4,flip", Augment{Pad: 4, Flip: true}, ""},
		{"flip,crop2", Augment{Pad: 2, Flip: true}, ""},
		{"flip", Augment{Flip: true}, ""},
		{"crop0", Augment{}, `"crop0" is not crop1 to crop64`},
		{"crop65", Augment{}, `"crop65" is not crop1 to crop64`},
		{"cropx", Augment{}, `"cropx"`},
		{"flip,flip", Augment{}, "flip twice"},
		{"crop1,crop2", Augment{}, "crop twice"},
		{"rotate", Augment{}, `unknown item "rotate"`},
		{"crop4,", Augment{}, `unknown item ""`},
	} {
		t.Run("in="+tc.in, func(t *testing.T) {
			got, err := ParseAugment(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), `"`+tc.in+`"`) {
					t.Errorf("ParseAugment(%q) = %v, want an error naming the value and saying %s", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseAugment(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if again, err := ParseAugment(got.String()); err != nil || again != got {
				t.Errorf("ParseAugment(%q) = %+v, %v; want %+v", got.String(), again, err, got)
			}
		})
	}
}
