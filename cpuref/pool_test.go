package cpuref

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// sweptAvgPoolShapes covers 1×1 windows, windows larger than the input
// made valid by padding, overlapping and strided windows, odd sizes and
// size-1 dimensions, and the 2×2 stride-2 shape of the fast forms.
var sweptAvgPoolShapes = []geom.AvgPoolGeom{
	{N: 1, C: 1, H: 1, W: 1, R: 1, S: 1, StrideH: 1, StrideW: 1},
	{N: 1, C: 1, H: 1, W: 1, R: 3, S: 2, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	{N: 2, C: 3, H: 4, W: 4, R: 2, S: 2, StrideH: 2, StrideW: 2},
	{N: 2, C: 3, H: 5, W: 7, R: 2, S: 2, StrideH: 2, StrideW: 2},
	{N: 1, C: 2, H: 6, W: 5, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	{N: 3, C: 1, H: 7, W: 9, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
	{N: 2, C: 2, H: 1, W: 8, R: 1, S: 3, StrideH: 1, StrideW: 3, PadW: 1},
	{N: 2, C: 5, H: 9, W: 9, R: 4, S: 2, StrideH: 3, StrideW: 2, PadH: 2, PadW: 1},
	{N: 1, C: 1, H: 3, W: 3, R: 2, S: 2, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
}

func TestGradCheckAvgPool(t *testing.T) {
	rng := newRand(40)
	for _, g := range sweptAvgPoolShapes {
		t.Run(g.String(), func(t *testing.T) {
			x, c := randFloats[float64](rng, g.XLen()), randFloats[float64](rng, g.YLen())
			y := newGuarded[float64](g.YLen())
			loss := func() float64 {
				must(t, AvgPoolForward(g, x, y.Out))
				return dot(c, y.Out)
			}
			dx := newGuarded[float64](g.XLen())
			must(t, AvgPoolBackward(g, c, dx.Out))
			checkClose(t, "dx", dx.Out, numGrad(loss, x), fdAtol, fdRtol)
			y.checkGuards(t, "y")
			dx.checkGuards(t, "dx")
		})
	}
}

// TestAvgPoolHandChecked: a 3×3 input, 2×2 windows, stride 2, padding 1,
// so the corner window holds one value and three padded zeros, all four
// counting in the divisor.
func TestAvgPoolHandChecked(t *testing.T) {
	g := geom.AvgPoolGeom{N: 1, C: 1, H: 3, W: 3, R: 2, S: 2, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}
	y := make([]float64, 4)
	must(t, AvgPoolForward(g, x, y))
	checkClose(t, "y", y, []float64{1.0 / 4, 5.0 / 4, 11.0 / 4, 28.0 / 4}, 0, 0)
	dx := make([]float64, 9)
	must(t, AvgPoolBackward(g, []float64{4, 8, 12, 16}, dx))
	checkClose(t, "dx", dx, []float64{1, 2, 2, 3, 4, 4, 3, 4, 4}, 0, 0)
}

// TestAvgPool2x2FastForm checks the float32 2×2 stride-2 forms against the
// readable forms bit for bit (same operations in the same order), with
// signed zeros among the inputs, on odd and size-2 shapes.
func TestAvgPool2x2FastForm(t *testing.T) {
	rng := newRand(41)
	for _, s := range []struct{ n, c, h, w int }{{1, 1, 2, 2}, {1, 1, 3, 2}, {2, 3, 5, 7}, {3, 1, 8, 9}, {1, 4, 28, 28}} {
		g := geom.AvgPoolGeom{N: s.n, C: s.c, H: s.h, W: s.w, R: 2, S: 2, StrideH: 2, StrideW: 2}
		t.Run(g.String(), func(t *testing.T) {
			x, dy := randFloats[float32](rng, g.XLen()), randFloats[float32](rng, g.YLen())
			negZero := float32(-1) * 0
			x[0], x[1], dy[0] = negZero, negZero, negZero
			fast, ref := newGuarded[float32](g.YLen()), newGuarded[float32](g.YLen())
			must(t, AvgPoolForward(g, x, fast.Out))
			avgPoolForward(g, x, ref.Out)
			checkBits(t, "y", fast.Out, ref.Out)
			fdx, rdx := newGuarded[float32](g.XLen()), newGuarded[float32](g.XLen())
			must(t, AvgPoolBackward(g, dy, fdx.Out))
			avgPoolBackward(g, dy, rdx.Out)
			checkBits(t, "dx", fdx.Out, rdx.Out)
			fast.checkGuards(t, "y")
			fdx.checkGuards(t, "dx")
		})
	}
}

// checkBits fails the test unless got and want have the same bits
// (distinguishing −0 from +0).
func checkBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("%s[%d] = %g (bits %#08x), want %g (bits %#08x)", name, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			return
		}
	}
}

func TestGradCheckGlobalAvgPool(t *testing.T) {
	rng := newRand(42)
	for _, s := range []bnShape{{1, 1, 1}, {2, 3, 1}, {1, 2, 5}, {3, 4, 49}} {
		t.Run(s.String(), func(t *testing.T) {
			x, c := randFloats[float64](rng, s.n*s.c*s.hw), randFloats[float64](rng, s.n*s.c)
			y := newGuarded[float64](s.n * s.c)
			loss := func() float64 {
				must(t, GlobalAvgPoolForward(s.n, s.c, s.hw, x, y.Out))
				return dot(c, y.Out)
			}
			dx := newGuarded[float64](s.n * s.c * s.hw)
			must(t, GlobalAvgPoolBackward(s.n, s.c, s.hw, c, dx.Out))
			checkClose(t, "dx", dx.Out, numGrad(loss, x), fdAtol, fdRtol)
			// Global average pooling is the average pool with an H×W window.
			must(t, GlobalAvgPoolForward(s.n, s.c, s.hw, x, y.Out))
			for _, hw := range [][2]int{{1, s.hw}, {s.hw, 1}} {
				g := geom.AvgPoolGeom{N: s.n, C: s.c, H: hw[0], W: hw[1], R: hw[0], S: hw[1], StrideH: 1, StrideW: 1}
				want := make([]float64, s.n*s.c)
				must(t, AvgPoolForward(g, x, want))
				checkClose(t, "y vs AvgPoolForward", y.Out, want, 0, 0)
			}
			y.checkGuards(t, "y")
			dx.checkGuards(t, "dx")
		})
	}
}

func TestGradCheckAddConcat(t *testing.T) {
	rng := newRand(43)
	for _, s := range []struct {
		n, hw int
		cs    []int
	}{{1, 1, []int{1}}, {1, 1, []int{1, 1}}, {2, 5, []int{3, 1, 2}}, {3, 4, []int{2, 5}}} {
		t.Run(fmt.Sprintf("N=%d,HW=%d,C=%v", s.n, s.hw, s.cs), func(t *testing.T) {
			total := 0
			var xs [][]float64
			for _, c := range s.cs {
				total += c
				xs = append(xs, randFloats[float64](rng, s.n*c*s.hw))
			}
			c := randFloats[float64](rng, s.n*total*s.hw)
			y := newGuarded[float64](s.n * total * s.hw)
			var dxs [][]float64
			for i := range xs {
				d := newGuarded[float64](len(xs[i]))
				dxs = append(dxs, d.Out)
			}
			must(t, ConcatBackward(s.n, s.hw, s.cs, c, dxs))
			for i, x := range xs {
				loss := func() float64 {
					must(t, ConcatForward(s.n, s.hw, s.cs, xs, y.Out))
					return dot(c, y.Out)
				}
				checkClose(t, fmt.Sprintf("dx%d", i), dxs[i], numGrad(loss, x), fdAtol, fdRtol)
			}
			y.checkGuards(t, "y")
			// The residual add: L = Σ c·(a + b) on the first input twice.
			a, b := xs[0], randFloats[float64](rng, len(xs[0]))
			ya := make([]float64, len(a))
			loss := func() float64 {
				must(t, AddForward(a, b, ya))
				return dot(c[:len(a)], ya)
			}
			da, db := newGuarded[float64](len(a)), newGuarded[float64](len(a))
			must(t, AddBackward(c[:len(a)], da.Out, db.Out))
			checkClose(t, "da", da.Out, numGrad(loss, a), fdAtol, fdRtol)
			checkClose(t, "db", db.Out, numGrad(loss, b), fdAtol, fdRtol)
			must(t, AddBackward(c[:len(a)], nil, db.Out))
		})
	}
}

// TestConcatLayout checks the channel layout on a hand-written case and
// that a nil gradient is skipped.
func TestConcatLayout(t *testing.T) {
	a := []float32{1, 2, 3, 4}                // N=2, C=1, HW=2
	b := []float32{5, 6, 7, 8, 9, 10, 11, 12} // N=2, C=2, HW=2
	y := nans32(12)
	must(t, ConcatForward(2, 2, []int{1, 2}, [][]float32{a, b}, y))
	checkClose(t, "y", y, []float32{1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12}, 0, 0)
	db := nans32(8)
	must(t, ConcatBackward(2, 2, []int{1, 2}, y, [][]float32{nil, db}))
	checkClose(t, "db", db, b, 0, 0)
}

func TestPoolMergeErrors(t *testing.T) {
	g := geom.AvgPoolGeom{N: 1, C: 2, H: 4, W: 4, R: 2, S: 2, StrideH: 2, StrideW: 2}
	bad := g
	bad.PadH = 2
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"avgpool/pad>R/2", func() error { return AvgPoolForward(bad, nans64(32), nans64(8)) }},
		{"avgpool/len(y)", func() error { return AvgPoolForward(g, nans64(32), nans64(9)) }},
		{"avgpool-backward/len(dx)", func() error { return AvgPoolBackward(g, nans32(8), nans32(31)) }},
		{"global/HW=0", func() error { return GlobalAvgPoolForward(1, 2, 0, nans64(0), nans64(2)) }},
		{"global-backward/len(dy)", func() error { return GlobalAvgPoolBackward(1, 2, 3, nans64(3), nans64(6)) }},
		{"add/len(b)", func() error { return AddForward(nans64(3), nans64(2), nans64(3)) }},
		{"add/empty", func() error { return AddForward(nans64(0), nans64(0), nans64(0)) }},
		{"add-backward/len(db)", func() error { return AddBackward(nans64(3), nil, nans64(4)) }},
		{"concat/no-input", func() error { return ConcatForward(1, 1, nil, [][]float64{}, nans64(0)) }},
		{"concat/C=0", func() error { return ConcatForward(1, 1, []int{0, 1}, [][]float64{nil, nans64(1)}, nans64(1)) }},
		{"concat/count-mismatch", func() error { return ConcatForward(1, 1, []int{1, 1}, [][]float64{nans64(1)}, nans64(2)) }},
		{"concat/len(x1)", func() error { return ConcatForward(1, 2, []int{1, 1}, [][]float64{nans64(2), nans64(3)}, nans64(4)) }},
		{"concat/nil-input", func() error { return ConcatForward(1, 2, []int{1, 1}, [][]float64{nans64(2), nil}, nans64(4)) }},
		{"concat-backward/len(dy)", func() error { return ConcatBackward(1, 2, []int{1, 1}, nans64(5), [][]float64{nil, nil}) }},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, geom.ErrGeometry) {
				t.Errorf("error = %v, want one wrapping geom.ErrGeometry", err)
			}
		})
	}
}
