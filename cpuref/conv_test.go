package cpuref

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// The golden vector of DESIGN.md §1: one 5×5 input o, one 4×4 output
// error δ, a 2×2 kernel, stride 1, no padding.
var (
	goldenO = []float64{
		0.51, 0.9, 0.88, 0.84, 0.05,
		0.4, 0.62, 0.22, 0.59, 0.1,
		0.11, 0.2, 0.74, 0.33, 0.14,
		0.47, 0.01, 0.85, 0.7, 0.09,
		0.76, 0.19, 0.72, 0.17, 0.57,
	}
	goldenDelta = []float64{
		0, 0, 0.0686, 0,
		0, 0.0364, 0, 0,
		0, 0.0467, 0, 0,
		0, 0, 0, -0.0681,
	}
	goldenDW   = []float64{0.044606, 0.094061, 0.011262, 0.068288}
	goldenGeom = geom.ConvGeom{N: 1, C: 1, H: 5, W: 5, K: 1, R: 2, S: 2, StrideH: 1, StrideW: 1}
)

func TestConvGoldenVector(t *testing.T) {
	// DESIGN.md gives ∂E/∂w to 6 decimals: the rounding is at most 5e-7,
	// and float32 adds a few 1e-8.
	const atol = 1e-6
	g := goldenGeom
	t.Run("impl=direct/type=float64", func(t *testing.T) {
		dw := newGuarded[float64](g.WLen())
		if err := Conv2DBackwardFilterDirect(g, goldenO, goldenDelta, dw.Out); err != nil {
			t.Fatal(err)
		}
		checkClose(t, "dw", dw.Out, goldenDW, atol, 0)
		dw.checkGuards(t, "dw")
	})
	t.Run("impl=direct/type=float32", func(t *testing.T) {
		dw := newGuarded[float32](g.WLen())
		if err := Conv2DBackwardFilterDirect(g, to32(goldenO), to32(goldenDelta), dw.Out); err != nil {
			t.Fatal(err)
		}
		checkClose(t, "dw", dw.Out, goldenDW, atol, 0)
		dw.checkGuards(t, "dw")
	})
	// The im2col form on both of its GEMMs: gonum's Sgemm, and the FMA
	// kernels where the CPU has them.
	for _, fma := range []bool{false, true} {
		if fma && !useFMAGEMM {
			continue
		}
		t.Run(fmt.Sprintf("impl=im2col/type=float32/fma=%v", fma), func(t *testing.T) { goldenIm2col(t, fma) })
	}
}

// goldenIm2col runs the golden vector through Conv2D.BackwardFilter with
// the FMA GEMM on or off.
func goldenIm2col(t *testing.T, fma bool) {
	const atol = 1e-6
	g := goldenGeom
	defer func(was bool) { useFMAGEMM = was }(useFMAGEMM)
	useFMAGEMM = fma // read by NewConv2D
	{
		c, err := NewConv2D(g)
		if err != nil {
			t.Fatal(err)
		}
		dw, db := newGuarded[float32](g.WLen()), newGuarded[float32](g.K)
		if err := c.BackwardFilter(to32(goldenO), to32(goldenDelta), dw.Out, db.Out); err != nil {
			t.Fatal(err)
		}
		checkClose(t, "dw", dw.Out, goldenDW, atol, 0)
		// ∂E/∂b = Σ δ = 0.0686 + 0.0364 + 0.0467 − 0.0681.
		checkClose(t, "db", db.Out, []float64{0.0836}, atol, 0)
		dw.checkGuards(t, "dw")
		db.checkGuards(t, "db")
	}
}

// TestConvHandChecked checks the forward and backward-data passes on a case
// small enough to verify by hand.
func TestConvHandChecked(t *testing.T) {
	// x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,0],[0,−1]], b = 10:
	// y[p,q] = x[p,q] − x[p+1,q+1] + 10 = −4 + 10 everywhere.
	g := geom.ConvGeom{N: 1, C: 1, H: 3, W: 3, K: 1, R: 2, S: 2, StrideH: 1, StrideW: 1}
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}
	w := []float64{1, 0, 0, -1}
	y := make([]float64, 4)
	if err := Conv2DForwardDirect(g, x, w, []float64{10}, y); err != nil {
		t.Fatal(err)
	}
	checkClose(t, "y", y, []float64{6, 6, 6, 6}, 0, 0)
	// dy = [[1,2],[3,4]]: dx = full correlation with w rotated,
	// dx[h,v] = dy[h,v]·w[0,0] + dy[h−1,v−1]·w[1,1].
	dy := []float64{1, 2, 3, 4}
	dx := make([]float64, 9)
	if err := Conv2DBackwardDataDirect(g, dy, w, dx); err != nil {
		t.Fatal(err)
	}
	checkClose(t, "dx", dx, []float64{1, 2, 0, 3, 4 - 1, -2, 0, -3, -4}, 0, 0)
	// Stride 2 and padding 1 on a 3×3 input with a 3×3 kernel: P = Q = 2,
	// y[0,0] sees x[0:2,0:2] under w[1:3,1:3].
	g = geom.ConvGeom{N: 1, C: 1, H: 3, W: 3, K: 1, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	w = []float64{1, 1, 1, 1, 1, 1, 1, 1, 1}
	if err := Conv2DForwardDirect(g, x, w, nil, y); err != nil {
		t.Fatal(err)
	}
	checkClose(t, "y(stride=2,pad=1)", y, []float64{1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9}, 0, 0)
}

// sweptConvShapes covers size-1 dimensions, odd sizes, strides 1–3,
// padding 0–2, kernels larger than the input (with padding), batches > 1,
// and C, K that are not multiples of anything; both one-image and
// several-image GEMM groups, with a ragged last group.
func sweptConvShapes() []geom.ConvGeom {
	gs := []geom.ConvGeom{
		{N: 1, C: 1, H: 1, W: 1, K: 1, R: 1, S: 1, StrideH: 1, StrideW: 1},
		{N: 1, C: 1, H: 1, W: 7, K: 1, R: 1, S: 3, StrideH: 1, StrideW: 2},
		{N: 5, C: 2, H: 6, W: 1, K: 3, R: 3, S: 1, StrideH: 3, StrideW: 1},
		{N: 3, C: 2, H: 4, W: 4, K: 2, R: 4, S: 4, StrideH: 3, StrideW: 3, PadH: 2, PadW: 2},
		{N: 2, C: 3, H: 2, W: 3, K: 2, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 2},
		{N: 2, C: 3, H: 3, W: 8, K: 1, R: 1, S: 3, StrideH: 1, StrideW: 2, PadH: 0, PadW: 2},
		{N: 3, C: 1, H: 28, W: 28, K: 8, R: 5, S: 5, StrideH: 1, StrideW: 1},  // mnist1, one image per GEMM
		{N: 9, C: 8, H: 12, W: 12, K: 16, R: 5, S: 5, StrideH: 1, StrideW: 1}, // mnist2, groups of 8 and 1
		{N: 2, C: 7, H: 13, W: 11, K: 3, R: 5, S: 5, StrideH: 2, StrideW: 2, PadH: 2, PadW: 2},
		{N: 2, C: 5, H: 23, W: 21, K: 70, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, // K > 64: GEMM row pieces
		{N: 3, C: 9, H: 10, W: 9, K: 5, R: 4, S: 4, StrideH: 3, StrideW: 2, PadH: 2, PadW: 1},   // C·R·S ≥ 128: transposed col
		{N: 19, C: 2, H: 24, W: 24, K: 3, R: 1, S: 1, StrideH: 1, StrideW: 1},                   // 19 groups in 16 reduction slots
		{N: 2, C: 16, H: 5, W: 7, K: 67, R: 3, S: 3, StrideH: 1, StrideW: 2, PadH: 2, PadW: 0},  // both, and a padding taller than stride
	}
	for sh := 1; sh <= 3; sh++ {
		for pad := 0; pad <= 2; pad++ {
			gs = append(gs,
				geom.ConvGeom{N: 2, C: 3, H: 7, W: 6, K: 5, R: 3, S: 2, StrideH: sh, StrideW: 4 - sh, PadH: pad, PadW: 2 - pad},
				geom.ConvGeom{N: 3, C: 5, H: 9, W: 11, K: 7, R: 3, S: 5, StrideH: sh, StrideW: sh, PadH: pad, PadW: pad})
		}
	}
	return gs
}

// convOutputs holds the outputs of the four conv passes.
type convOutputs[T Float] struct{ y, dx, dw, db []T }

// runConvDirect runs the direct passes and checks NaN poisoning and guards.
func runConvDirect[T Float](t *testing.T, g geom.ConvGeom, x, w, b, dy []T) convOutputs[T] {
	t.Helper()
	y, dx := newGuarded[T](g.YLen()), newGuarded[T](g.XLen())
	dw, db := newGuarded[T](g.WLen()), newGuarded[T](g.K)
	for _, err := range []error{
		Conv2DForwardDirect(g, x, w, b, y.Out),
		Conv2DBackwardDataDirect(g, dy, w, dx.Out),
		Conv2DBackwardFilterDirect(g, x, dy, dw.Out),
		Conv2DBackwardBias(g, dy, db.Out),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []struct {
		name string
		g    guarded[T]
	}{{"direct y", y}, {"direct dx", dx}, {"direct dw", dw}, {"direct db", db}} {
		b.g.checkGuards(t, b.name)
	}
	return convOutputs[T]{y.Out, dx.Out, dw.Out, db.Out}
}

// runConv2D runs the im2col passes and checks NaN poisoning and guards.
func runConv2D(t *testing.T, c *Conv2D, x, w, b, dy []float32) convOutputs[float32] {
	t.Helper()
	g := c.Geom()
	y, dx := newGuarded[float32](g.YLen()), newGuarded[float32](g.XLen())
	dw, db := newGuarded[float32](g.WLen()), newGuarded[float32](g.K)
	for _, err := range []error{
		c.Forward(x, w, b, y.Out),
		c.BackwardData(dy, w, dx.Out),
		c.BackwardFilter(x, dy, dw.Out, db.Out),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []struct {
		name string
		g    guarded[float32]
	}{{"im2col y", y}, {"im2col dx", dx}, {"im2col dw", dw}, {"im2col db", db}} {
		b.g.checkGuards(t, b.name)
	}
	return convOutputs[float32]{y.Out, dx.Out, dw.Out, db.Out}
}

// TestConvDirectVsIm2col checks that the im2col + Sgemm passes compute the
// same functions as the direct loops.
func TestConvDirectVsIm2col(t *testing.T) {
	rng := newRand(1)
	for _, g := range sweptConvShapes() {
		t.Run(g.String(), func(t *testing.T) {
			c, err := NewConv2D(g)
			if err != nil {
				t.Fatal(err)
			}
			// Small integers: every partial sum is an integer below 2²⁴,
			// exact in float32 in any order, so the forms must agree bit
			// for bit.
			t.Run("inputs=int", func(t *testing.T) {
				x, w := randInts[float32](rng, g.XLen(), -3, 3), randInts[float32](rng, g.WLen(), -3, 3)
				b, dy := randInts[float32](rng, g.K, -3, 3), randInts[float32](rng, g.YLen(), -3, 3)
				x0, w0, b0, dy0 := slices.Clone(x), slices.Clone(w), slices.Clone(b), slices.Clone(dy)
				want := runConvDirect(t, g, x, w, b, dy)
				got := runConv2D(t, c, x, w, b, dy)
				checkClose(t, "y", got.y, want.y, 0, 0)
				checkClose(t, "dx", got.dx, want.dx, 0, 0)
				checkClose(t, "dw", got.dw, want.dw, 0, 0)
				checkClose(t, "db", got.db, want.db, 0, 0)
				checkUnchanged(t, "x", x, x0)
				checkUnchanged(t, "w", w, w0)
				checkUnchanged(t, "b", b, b0)
				checkUnchanged(t, "dy", dy, dy0)
			})
			// Uniform [−1,1): compare with the direct form in float64. A
			// float32 sum of L terms of size ≤ 1 in any order is off by
			// about u·L^1.5 at worst for random signs (u = 2⁻²⁴), below
			// 1e-6·L for L ≤ 280; the largest L here is N·P·Q of dw.
			t.Run("inputs=uniform", func(t *testing.T) {
				x, w := randFloats[float64](rng, g.XLen()), randFloats[float64](rng, g.WLen())
				b, dy := randFloats[float64](rng, g.K), randFloats[float64](rng, g.YLen())
				want := runConvDirect(t, g, x, w, b, dy)
				got := runConv2D(t, c, to32(x), to32(w), to32(b), to32(dy))
				tol := func(l int) float64 { return 1e-6 * float64(l) * max(1, math.Sqrt(float64(l)/280)) }
				checkClose(t, "y", got.y, want.y, tol(g.C*g.R*g.S+1), 0)
				checkClose(t, "dx", got.dx, want.dx, tol(g.K*g.R*g.S), 0)
				checkClose(t, "dw", got.dw, want.dw, tol(g.N*g.P()*g.Q()), 0)
				checkClose(t, "db", got.db, want.db, tol(g.N*g.P()*g.Q()), 0)
			})
		})
	}
}

// TestConv2DNoBias checks that a nil bias means no bias, in both forms.
func TestConv2DNoBias(t *testing.T) {
	rng := newRand(2)
	g := geom.ConvGeom{N: 2, C: 3, H: 6, W: 5, K: 4, R: 3, S: 3, StrideH: 1, StrideW: 2, PadH: 1, PadW: 0}
	x, w := randInts[float32](rng, g.XLen(), -3, 3), randInts[float32](rng, g.WLen(), -3, 3)
	zero := make([]float32, g.K)
	want := make([]float32, g.YLen())
	if err := Conv2DForwardDirect(g, x, w, zero, want); err != nil {
		t.Fatal(err)
	}
	direct := newGuarded[float32](g.YLen())
	if err := Conv2DForwardDirect(g, x, w, nil, direct.Out); err != nil {
		t.Fatal(err)
	}
	checkClose(t, "direct y", direct.Out, want, 0, 0)
	c, err := NewConv2D(g)
	if err != nil {
		t.Fatal(err)
	}
	y := newGuarded[float32](g.YLen())
	dw := newGuarded[float32](g.WLen())
	if err := c.Forward(x, w, nil, y.Out); err != nil {
		t.Fatal(err)
	}
	if err := c.BackwardFilter(x, randInts[float32](rng, g.YLen(), -2, 2), dw.Out, nil); err != nil {
		t.Fatal(err)
	}
	checkClose(t, "im2col y", y.Out, want, 0, 0)
	for i, v := range dw.Out {
		if v != v {
			t.Fatalf("dw[%d] = NaN with db nil, want a number", i)
		}
	}
}

// TestConv2DDeterministic checks that the results do not depend on the
// number of threads nor on earlier calls: the same inputs give the same bits.
func TestConv2DDeterministic(t *testing.T) {
	rng := newRand(3)
	for _, g := range []geom.ConvGeom{
		{N: 37, C: 1, H: 28, W: 28, K: 8, R: 5, S: 5, StrideH: 1, StrideW: 1}, // 37 groups in 16 slots
		{N: 13, C: 8, H: 12, W: 12, K: 16, R: 5, S: 5, StrideH: 1, StrideW: 1},
	} {
		t.Run(g.String(), func(t *testing.T) {
			x, w := randFloats[float32](rng, g.XLen()), randFloats[float32](rng, g.WLen())
			b, dy := randFloats[float32](rng, g.K), randFloats[float32](rng, g.YLen())
			var first convOutputs[float32]
			for i, procs := range []int{1, 2, 3, 1} {
				t.Run(fmt.Sprintf("run=%d/threads=%d", i, procs), func(t *testing.T) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
					c, err := NewConv2D(g)
					if err != nil {
						t.Fatal(err)
					}
					got := runConv2D(t, c, x, w, b, dy)
					again := runConv2D(t, c, x, w, b, dy)
					if i == 0 {
						first = got
					}
					for _, o := range []struct {
						name           string
						got, again, at []float32
					}{{"y", got.y, again.y, first.y}, {"dx", got.dx, again.dx, first.dx},
						{"dw", got.dw, again.dw, first.dw}, {"db", got.db, again.db, first.db}} {
						checkClose(t, o.name+" (second call)", o.again, o.got, 0, 0)
						checkClose(t, o.name+" (vs threads=1)", o.got, o.at, 0, 0)
					}
				})
			}
		})
	}
}

// TestConv2DAllocs checks that a Conv2D allocates nothing after its first
// call: exactly nothing on one thread; on two threads, where each pass
// starts a goroutine and the runtime now and then allocates a goroutine
// descriptor, far less than any workspace (the smallest here is 100 KiB);
// on the implicit, frame and phase paths.
func TestConv2DAllocs(t *testing.T) {
	for _, g := range []geom.ConvGeom{
		{N: 16, C: 8, H: 12, W: 12, K: 16, R: 5, S: 5, StrideH: 1, StrideW: 1},
		{N: 16, C: 8, H: 12, W: 12, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, // frame path
		{N: 16, C: 8, H: 12, W: 12, K: 16, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, // phases
	} {
		t.Run(g.String(), func(t *testing.T) { checkConv2DAllocs(t, g) })
	}
}

func checkConv2DAllocs(t *testing.T, g geom.ConvGeom) {
	c, err := NewConv2D(g)
	if err != nil {
		t.Fatal(err)
	}
	rng := newRand(4)
	x, w := randFloats[float32](rng, g.XLen()), randFloats[float32](rng, g.WLen())
	b, dy := randFloats[float32](rng, g.K), randFloats[float32](rng, g.YLen())
	y, dx := make([]float32, g.YLen()), make([]float32, g.XLen())
	dw, db := make([]float32, g.WLen()), make([]float32, g.K)
	step := func() {
		_ = c.Forward(x, w, b, y)
		_ = c.BackwardData(dy, w, dx)
		_ = c.BackwardFilter(x, dy, dw, db)
	}
	// AllocsPerRun runs with GOMAXPROCS 1.
	if n := testing.AllocsPerRun(10, step); n != 0 {
		t.Errorf("threads=1: Forward+BackwardData+BackwardFilter made %g allocations per call, want 0", n)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	step()
	const runs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		step()
	}
	runtime.ReadMemStats(&after)
	if perCall := (after.TotalAlloc - before.TotalAlloc) / runs; perCall > 1024 {
		t.Errorf("threads=2: Forward+BackwardData+BackwardFilter allocated %d bytes per call, want < 1024", perCall)
	}
}
