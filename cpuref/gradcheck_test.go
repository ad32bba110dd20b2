package cpuref

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Finite-difference gradient checks in float64. Each layer's output is
// reduced to a scalar L = Σ_j c_j · out_j with random weights c, so that
// ∂L/∂out = c is the dy fed to the backward pass; the losses are scalars
// already. The central difference (L(v+h) − L(v−h)) / 2h is exact for the
// linear and piecewise-linear layers (conv, dense, ReLU, max-pool away from
// kinks and ties), up to rounding of about 1e-16·|L|/h; for softmax-CE and
// MSE its truncation error is about h²·|L'''| ≲ 1e-9.

const (
	fdStep = 1e-4
	// fdAtol and fdRtol bound the difference between the analytic and the
	// numerical gradient: rounding 1e-16·|L|/h ≈ 1e-11 for |L| ≲ 10, plus
	// the h² truncation of the smooth losses.
	fdAtol = 1e-7
	fdRtol = 1e-6
)

// numGrad returns ∂f/∂v[i] for every i by central differences.
func numGrad(f func() float64, v []float64) []float64 {
	g := make([]float64, len(v))
	for i := range v {
		orig := v[i]
		v[i] = orig + fdStep
		fp := f()
		v[i] = orig - fdStep
		fm := f()
		v[i] = orig
		g[i] = (fp - fm) / (2 * fdStep)
	}
	return g
}

// dot is Σ a_i·b_i.
func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// must fails the test on a non-nil error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestGradCheckConv(t *testing.T) {
	rng := newRand(10)
	shapes := []geom.ConvGeom{
		{N: 1, C: 1, H: 1, W: 1, K: 1, R: 1, S: 1, StrideH: 1, StrideW: 1},
		{N: 3, C: 2, H: 4, W: 4, K: 2, R: 4, S: 4, StrideH: 3, StrideW: 3, PadH: 2, PadW: 2},
		{N: 2, C: 3, H: 2, W: 3, K: 2, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 2},
		{N: 1, C: 2, H: 6, W: 1, K: 3, R: 3, S: 1, StrideH: 3, StrideW: 1},
	}
	for sh := 1; sh <= 3; sh++ {
		for pad := 0; pad <= 2; pad++ {
			shapes = append(shapes, geom.ConvGeom{N: 2, C: 3, H: 7, W: 6, K: 5, R: 3, S: 2,
				StrideH: sh, StrideW: 4 - sh, PadH: pad, PadW: 2 - pad})
		}
	}
	for _, g := range shapes {
		t.Run(g.String(), func(t *testing.T) {
			x, w := randFloats[float64](rng, g.XLen()), randFloats[float64](rng, g.WLen())
			b, c := randFloats[float64](rng, g.K), randFloats[float64](rng, g.YLen())
			y := make([]float64, g.YLen())
			loss := func() float64 {
				must(t, Conv2DForwardDirect(g, x, w, b, y))
				return dot(c, y)
			}
			dx, dw, db := make([]float64, g.XLen()), make([]float64, g.WLen()), make([]float64, g.K)
			must(t, Conv2DBackwardDataDirect(g, c, w, dx))
			must(t, Conv2DBackwardFilterDirect(g, x, c, dw))
			must(t, Conv2DBackwardBias(g, c, db))
			checkClose(t, "dx", dx, numGrad(loss, x), fdAtol, fdRtol)
			checkClose(t, "dw", dw, numGrad(loss, w), fdAtol, fdRtol)
			checkClose(t, "db", db, numGrad(loss, b), fdAtol, fdRtol)
		})
	}
}

// awayFromZero returns n values with 0.01 ≤ |v| < 1, so that a step of h
// never crosses the kink of ReLU.
func awayFromZero(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		v := 0.01 + 0.99*rng.Float64()
		if rng.IntN(2) == 0 {
			v = -v
		}
		s[i] = v
	}
	return s
}

func TestGradCheckReLU(t *testing.T) {
	rng := newRand(11)
	for _, n := range []int{1, 2, 17, 100} {
		t.Run(fmt.Sprintf("L=%d", n), func(t *testing.T) {
			x, c := awayFromZero(rng, n), randFloats[float64](rng, n)
			y := make([]float64, n)
			loss := func() float64 {
				must(t, ReLUForward(x, y))
				return dot(c, y)
			}
			dx := make([]float64, n)
			must(t, ReLUBackward(x, c, dx))
			checkClose(t, "dx", dx, numGrad(loss, x), fdAtol, fdRtol)
		})
	}
}

// distinctValues returns a random permutation of {0, 1, …, n−1}/n, so that
// no two values of a window are within 2h of each other and the argmax
// does not move under a step of h.
func distinctValues(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i, p := range rng.Perm(n) {
		s[i] = float64(p)/float64(n) - 0.5
	}
	return s
}

// sweptPoolShapes covers non-overlapping, overlapping and 1×1 windows,
// sizes not divisible by the stride, and size-1 dimensions.
var sweptPoolShapes = []geom.PoolGeom{
	{N: 1, C: 1, H: 1, W: 1, R: 1, S: 1, StrideH: 1, StrideW: 1},
	{N: 2, C: 3, H: 4, W: 4, R: 2, S: 2, StrideH: 2, StrideW: 2},
	{N: 2, C: 3, H: 5, W: 7, R: 2, S: 2, StrideH: 2, StrideW: 2},
	{N: 1, C: 2, H: 6, W: 5, R: 3, S: 3, StrideH: 1, StrideW: 1},
	{N: 3, C: 1, H: 7, W: 9, R: 2, S: 3, StrideH: 1, StrideW: 2},
	{N: 2, C: 2, H: 1, W: 8, R: 1, S: 3, StrideH: 1, StrideW: 3},
	{N: 2, C: 5, H: 9, W: 9, R: 3, S: 3, StrideH: 3, StrideW: 2},
}

func TestGradCheckMaxPool(t *testing.T) {
	rng := newRand(12)
	for _, g := range sweptPoolShapes {
		t.Run(g.String(), func(t *testing.T) {
			x, c := distinctValues(rng, g.XLen()), randFloats[float64](rng, g.YLen())
			y, arg := make([]float64, g.YLen()), make([]int32, g.YLen())
			loss := func() float64 {
				must(t, MaxPoolForward(g, x, y, arg))
				return dot(c, y)
			}
			loss()
			dx := make([]float64, g.XLen())
			must(t, MaxPoolBackward(g, c, arg, dx))
			checkClose(t, "dx", dx, numGrad(loss, x), fdAtol, fdRtol)
		})
	}
}

var sweptDenseShapes = []struct{ n, in, out int }{
	{1, 1, 1}, {1, 5, 3}, {3, 5, 4}, {7, 13, 10}, {4, 1, 6}, {2, 9, 1},
}

func TestGradCheckDense(t *testing.T) {
	rng := newRand(13)
	for _, s := range sweptDenseShapes {
		t.Run(fmt.Sprintf("N=%d,In=%d,Out=%d", s.n, s.in, s.out), func(t *testing.T) {
			x, w := randFloats[float64](rng, s.n*s.in), randFloats[float64](rng, s.out*s.in)
			b, c := randFloats[float64](rng, s.out), randFloats[float64](rng, s.n*s.out)
			y := make([]float64, s.n*s.out)
			loss := func() float64 {
				must(t, DenseForward(s.n, s.in, s.out, x, w, b, y))
				return dot(c, y)
			}
			dx, dw, db := make([]float64, s.n*s.in), make([]float64, s.out*s.in), make([]float64, s.out)
			must(t, DenseBackward(s.n, s.in, s.out, x, w, c, dx, dw, db))
			checkClose(t, "dx", dx, numGrad(loss, x), fdAtol, fdRtol)
			checkClose(t, "dw", dw, numGrad(loss, w), fdAtol, fdRtol)
			checkClose(t, "db", db, numGrad(loss, b), fdAtol, fdRtol)
		})
	}
}

func TestGradCheckSoftmaxCrossEntropy(t *testing.T) {
	rng := newRand(14)
	for _, s := range []struct {
		n, classes int
		scale      float64 // logits uniform in [−scale, scale) + offset
		offset     float64
	}{
		{1, 1, 1, 0}, {1, 2, 1, 0}, {4, 10, 3, 0}, {3, 7, 5, 40}, {5, 3, 2, -30},
	} {
		t.Run(fmt.Sprintf("N=%d,Classes=%d,scale=%g,offset=%g", s.n, s.classes, s.scale, s.offset), func(t *testing.T) {
			z := randFloats[float64](rng, s.n*s.classes)
			for i := range z {
				z[i] = s.scale*z[i] + s.offset
			}
			labels := make([]int32, s.n)
			for i := range labels {
				labels[i] = int32(rng.IntN(s.classes))
			}
			loss := func() float64 {
				l, err := SoftmaxCrossEntropy(s.n, s.classes, z, labels, nil)
				must(t, err)
				return l
			}
			dz := newGuarded[float64](s.n * s.classes)
			_, err := SoftmaxCrossEntropy(s.n, s.classes, z, labels, dz.Out)
			must(t, err)
			checkClose(t, "dlogits", dz.Out, numGrad(loss, z), fdAtol, fdRtol)
			dz.checkGuards(t, "dlogits")
		})
	}
}

func TestGradCheckMSE(t *testing.T) {
	rng := newRand(15)
	for _, s := range []struct{ n, dim int }{{1, 1}, {4, 3}, {5, 10}} {
		t.Run(fmt.Sprintf("N=%d,Dim=%d", s.n, s.dim), func(t *testing.T) {
			y, tg := randFloats[float64](rng, s.n*s.dim), randFloats[float64](rng, s.n*s.dim)
			loss := func() float64 {
				l, err := MSE(s.n, s.dim, y, tg, nil)
				must(t, err)
				return l
			}
			dy := newGuarded[float64](s.n * s.dim)
			_, err := MSE(s.n, s.dim, y, tg, dy.Out)
			must(t, err)
			checkClose(t, "dy", dy.Out, numGrad(loss, y), fdAtol, fdRtol)
			dy.checkGuards(t, "dy")
		})
	}
}
