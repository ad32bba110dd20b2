package cpuref

import (
	"math"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

func TestReLU(t *testing.T) {
	nan := math.NaN()
	x := []float64{-2, -0.0, 0, 1e-30, 3, math.Inf(-1), math.Inf(1), nan}
	y := newGuarded[float64](len(x))
	must(t, ReLUForward(x, y.Out))
	want := []float64{0, 0, 0, 1e-30, 3, 0, math.Inf(1)}
	checkClose(t, "y", y.Out[:7], want, 0, 0)
	if v := y.Out[7]; v == v {
		t.Errorf("ReLUForward(NaN) = %g, want NaN", v)
	}
	y.checkGuards(t, "y")
	dy := []float64{1, 2, 3, 4, 5, 6, 7, 8}
	dx := newGuarded[float64](len(x))
	must(t, ReLUBackward(x, dy, dx.Out))
	checkClose(t, "dx", dx.Out, []float64{0, 0, 0, 4, 5, 0, 7, 0}, 0, 0)
	dx.checkGuards(t, "dx")
	// In place.
	z := slices.Clone(x[:7])
	must(t, ReLUForward(z, z))
	checkClose(t, "in-place y", z, want, 0, 0)
}

func TestMaxPoolForward(t *testing.T) {
	// One 3×4 plane, 2×2 windows, stride 2×2: P = 1 (row 2 is left out),
	// Q = 2. The second window has a tie (7 twice): the first wins.
	g := geom.PoolGeom{N: 1, C: 1, H: 3, W: 4, R: 2, S: 2, StrideH: 2, StrideW: 2}
	x := []float32{
		1, 5, 7, 2,
		4, 3, 6, 7,
		9, 9, 9, 9,
	}
	y, arg := newGuarded[float32](g.YLen()), make([]int32, g.YLen())
	must(t, MaxPoolForward(g, x, y.Out, arg))
	checkClose(t, "y", y.Out, []float32{5, 7}, 0, 0)
	if want := []int32{1, 2}; !slices.Equal(arg, want) {
		t.Errorf("argmax = %v, want %v", arg, want)
	}
	y.checkGuards(t, "y")
	// A NaN in a window wins, as in PyTorch; −Inf is a number.
	nan := float32(math.NaN())
	x = []float32{
		1, nan, float32(math.Inf(-1)), float32(math.Inf(-1)),
		nan, 3, float32(math.Inf(-1)), float32(math.Inf(-1)),
		0, 0, 0, 0,
	}
	must(t, MaxPoolForward(g, x, y.Out, arg))
	if v := y.Out[0]; v == v || arg[0] != 1 {
		t.Errorf("window with NaN: y = %g at %d, want NaN at 1", v, arg[0])
	}
	if v := y.Out[1]; v != float32(math.Inf(-1)) || arg[1] != 2 {
		t.Errorf("window of −Inf: y = %g at %d, want -Inf at 2", v, arg[1])
	}
	// argmax is a flat index into the whole batch.
	g = geom.PoolGeom{N: 2, C: 2, H: 2, W: 2, R: 2, S: 2, StrideH: 2, StrideW: 2}
	x = []float32{0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0}
	arg = make([]int32, 4)
	must(t, MaxPoolForward(g, x, make([]float32, 4), arg))
	if want := []int32{3, 6, 9, 12}; !slices.Equal(arg, want) {
		t.Errorf("argmax = %v, want %v", arg, want)
	}
}

func TestMaxPoolBackwardOverlap(t *testing.T) {
	// 1×3 input, windows of 2 with stride 1: the middle element is the
	// maximum of both windows and receives both gradients.
	g := geom.PoolGeom{N: 1, C: 1, H: 1, W: 3, R: 1, S: 2, StrideH: 1, StrideW: 1}
	x := []float64{1, 5, 2}
	y, arg := make([]float64, 2), make([]int32, 2)
	must(t, MaxPoolForward(g, x, y, arg))
	dx := newGuarded[float64](3)
	must(t, MaxPoolBackward(g, []float64{0.25, 0.5}, arg, dx.Out))
	checkClose(t, "dx", dx.Out, []float64{0, 0.75, 0}, 0, 0)
	dx.checkGuards(t, "dx")
}

func TestDenseHandChecked(t *testing.T) {
	// x = [[1,2],[3,4]], w = [[1,0],[0,1],[1,1]], b = [0.5,0,−1].
	x := []float64{1, 2, 3, 4}
	w := []float64{1, 0, 0, 1, 1, 1}
	y := newGuarded[float64](6)
	must(t, DenseForward(2, 2, 3, x, w, []float64{0.5, 0, -1}, y.Out))
	checkClose(t, "y", y.Out, []float64{1.5, 2, 2, 3.5, 4, 6}, 0, 0)
	y.checkGuards(t, "y")
	must(t, DenseForward(2, 2, 3, x, w, nil, y.Out))
	checkClose(t, "y (no bias)", y.Out, []float64{1, 2, 3, 3, 4, 7}, 0, 0)
	dy := []float64{1, 0, 2, 0, 1, -1}
	dx, dw, db := newGuarded[float64](4), newGuarded[float64](6), newGuarded[float64](3)
	must(t, DenseBackward(2, 2, 3, x, w, dy, dx.Out, dw.Out, db.Out))
	// dx = dy·w, dw = dyᵀ·x, db = Σ_n dy.
	checkClose(t, "dx", dx.Out, []float64{3, 2, -1, 0}, 0, 0)
	checkClose(t, "dw", dw.Out, []float64{1, 2, 3, 4, -1, 0}, 0, 0)
	checkClose(t, "db", db.Out, []float64{1, 1, 1}, 0, 0)
	for _, b := range []struct {
		name string
		g    guarded[float64]
	}{{"dx", dx}, {"dw", dw}, {"db", db}} {
		b.g.checkGuards(t, b.name)
	}
	// dx and db may be nil.
	must(t, DenseBackward(2, 2, 3, x, w, dy, nil, dw.Out, nil))
	checkClose(t, "dw (dx nil)", dw.Out, []float64{1, 2, 3, 4, -1, 0}, 0, 0)
}

func TestSoftmaxCrossEntropyValues(t *testing.T) {
	// Two equal logits: loss log 2, gradient (½ − 1, ½)/N per row.
	loss, err := SoftmaxCrossEntropy(1, 2, []float64{3, 3}, []int32{0}, nil)
	must(t, err)
	checkClose(t, "loss", []float64{loss}, []float64{math.Ln2}, 1e-15, 0)
	// Large logits must neither overflow nor lose the answer: shifting every
	// logit of a row by a constant changes nothing.
	base := []float64{0.5, -1, 2, 0}
	shifted := make([]float64, 4)
	for i, v := range base {
		shifted[i] = v + 1000
	}
	d0, d1 := make([]float64, 4), make([]float64, 4)
	l0, err := SoftmaxCrossEntropy(1, 4, base, []int32{2}, d0)
	must(t, err)
	l1, err := SoftmaxCrossEntropy(1, 4, shifted, []int32{2}, d1)
	must(t, err)
	// log Σ exp(z) − z_2 with the sum written out.
	want := math.Log(math.Exp(0.5)+math.Exp(-1)+math.Exp(2)+math.Exp(0)) - 2
	checkClose(t, "loss", []float64{l0, l1}, []float64{want, want}, 1e-12, 0)
	checkClose(t, "dlogits (shifted)", d1, d0, 1e-12, 0)
	// float32 with logits of 1e4 stays finite.
	l32, err := SoftmaxCrossEntropy(2, 3, []float32{1e4, 0, -1e4, -1e4, 0, 1e4}, []int32{0, 0}, make([]float32, 6))
	must(t, err)
	// Row 0 is right with certainty (loss 0), row 1 wrong by 2e4: mean 1e4.
	checkClose(t, "loss (float32, large logits)", []float32{l32}, []float64{1e4}, 0, 1e-6)
}

func TestMSEValues(t *testing.T) {
	// loss = (1/2)·(½·(1² + 2²) + ½·(0² + 3²)) = 3.5, dy = (y − t)/2.
	dy := newGuarded[float64](4)
	loss, err := MSE(2, 2, []float64{1, 0, 5, 2}, []float64{0, 2, 5, -1}, dy.Out)
	must(t, err)
	checkClose(t, "loss", []float64{loss}, []float64{3.5}, 1e-15, 0)
	checkClose(t, "dy", dy.Out, []float64{0.5, -1, 0, 1.5}, 0, 0)
	dy.checkGuards(t, "dy")
}

func TestSGDStep(t *testing.T) {
	// v = 0.9·0.2 + (0.5 + 0.01·1) = 0.69, p = 1 − 0.1·0.69 = 0.931.
	p, g, v := []float64{1, -2}, []float64{0.5, 0}, []float64{0.2, 1}
	must(t, SGDStep(p, g, v, 0.1, 0.9, 0.01))
	// Second element: v = 0.9 + (0 − 0.02) = 0.88, p = −2 − 0.088.
	checkClose(t, "vel", v, []float64{0.69, 0.88}, 1e-15, 0)
	checkClose(t, "p", p, []float64{0.931, -2.088}, 1e-15, 0)
	// Without momentum vel may be nil: p ← p − lr·(g + wd·p).
	p = []float64{1}
	must(t, SGDStep(p, []float64{0.5}, nil, 0.1, 0, 0.01))
	checkClose(t, "p (no momentum)", p, []float64{1 - 0.1*0.51}, 1e-15, 0)
	// A velocity started at zero matches the first step of plain SGD.
	p1, p2 := []float32{0.3, -0.7}, []float32{0.3, -0.7}
	must(t, SGDStep(p1, []float32{1, 2}, make([]float32, 2), 0.05, 0.9, 0))
	must(t, SGDStep(p2, []float32{1, 2}, nil, 0.05, 0, 0))
	checkClose(t, "p (first momentum step)", p1, p2, 0, 0)
}

// TestReLUBackwardFloat32Edges checks the branch-free float32 path against
// the float64 one on every kind of value.
func TestReLUBackwardFloat32Edges(t *testing.T) {
	nan := math.NaN()
	x64 := []float64{0, math.Copysign(0, -1), 1e-45, -1e-45, 1.17549435e-38, 1, -1, math.MaxFloat32,
		-math.MaxFloat32, math.Inf(1), math.Inf(-1), nan, -nan}
	x32 := to32(x64)
	x32[len(x32)-1] = -x32[len(x32)-2] // a NaN with the sign bit set
	dy64 := make([]float64, len(x64))
	for i := range dy64 {
		dy64[i] = float64(i + 1)
	}
	want := make([]float64, len(x64))
	must(t, ReLUBackward(x64, dy64, want))
	got := newGuarded[float32](len(x32))
	must(t, ReLUBackward(x32, to32(dy64), got.Out))
	checkClose(t, "dx", got.Out, want, 0, 0)
	got.checkGuards(t, "dx")
	if want[2] != 3 || want[9] != 10 || want[0] != 0 || want[11] != 0 {
		t.Errorf("float64 dx = %v: want dy at 1e-45 and +Inf, 0 at 0 and NaN", want)
	}
}

// TestMaxPool2x2Float32 checks the float32 2×2 path against the general
// one (run in float64) on values with ties, signed zeros, infinities and
// NaNs of both signs: the same maxima, bit for bit, at the same indices.
func TestMaxPool2x2Float32(t *testing.T) {
	rng := newRand(16)
	nan := float32(math.NaN())
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 2, 2, -2, float32(math.Inf(1)),
		float32(math.Inf(-1)), nan, -nan, 1e-45, -1e-45, math.MaxFloat32, -math.MaxFloat32}
	for _, g := range []geom.PoolGeom{
		{N: 2, C: 3, H: 4, W: 6, R: 2, S: 2, StrideH: 2, StrideW: 2},
		{N: 1, C: 2, H: 5, W: 7, R: 2, S: 2, StrideH: 2, StrideW: 2},
		{N: 2, C: 2, H: 5, W: 6, R: 2, S: 2, StrideH: 1, StrideW: 1},
		{N: 1, C: 3, H: 7, W: 8, R: 2, S: 2, StrideH: 3, StrideW: 1},
		{N: 3, C: 1, H: 2, W: 2, R: 2, S: 2, StrideH: 1, StrideW: 1},
	} {
		for _, mix := range []string{"special", "ints", "uniform"} {
			t.Run(g.String()+"/values="+mix, func(t *testing.T) {
				x := make([]float32, g.XLen())
				for i := range x {
					switch mix {
					case "special":
						x[i] = special[rng.IntN(len(special))]
					case "ints": // many ties
						x[i] = float32(rng.IntN(3) - 1)
					default:
						x[i] = float32(2*rng.Float64() - 1)
					}
				}
				x64 := to64(x)
				want, wantArg := make([]float64, g.YLen()), make([]int32, g.YLen())
				must(t, MaxPoolForward(g, x64, want, wantArg))
				got, gotArg := newGuarded[float32](g.YLen()), make([]int32, g.YLen())
				must(t, MaxPoolForward(g, x, got.Out, gotArg))
				got.checkGuards(t, "y")
				for o := range want {
					w, gv := want[o], got.Out[o]
					same := math.Float64bits(float64(gv)) == math.Float64bits(w) || (w != w && gv != gv)
					if !same || gotArg[o] != wantArg[o] {
						t.Errorf("y[%d], argmax[%d] = %g, %d, want %g, %d", o, o, gv, gotArg[o], w, wantArg[o])
					}
				}
			})
		}
	}
}
