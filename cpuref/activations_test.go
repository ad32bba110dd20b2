package cpuref

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// activation is one activation's forward and backward pass behind a common
// signature: backward receives both the forward input and output and
// passes the one the operation takes.
type activation[T Float] struct {
	name string
	fwd  func(x, y []T) error
	bwd  func(x, y, dy, dx []T) error
}

func activations[T Float]() []activation[T] {
	return []activation[T]{
		{"leaky-relu/slope=0.01", func(x, y []T) error { return LeakyReLUForward(x, y, 0.01) },
			func(x, _, dy, dx []T) error { return LeakyReLUBackward(x, dy, dx, 0.01) }},
		{"leaky-relu/slope=0.2", func(x, y []T) error { return LeakyReLUForward(x, y, 0.2) },
			func(x, _, dy, dx []T) error { return LeakyReLUBackward(x, dy, dx, 0.2) }},
		{"sigmoid", SigmoidForward[T], func(_, y, dy, dx []T) error { return SigmoidBackward(y, dy, dx) }},
		{"tanh", TanhForward[T], func(_, y, dy, dx []T) error { return TanhBackward(y, dy, dx) }},
		{"silu", SiLUForward[T], func(x, _, dy, dx []T) error { return SiLUBackward(x, dy, dx) }},
		{"gelu/approximate=none", func(x, y []T) error { return GELUForward(x, y, GELUErf) },
			func(x, _, dy, dx []T) error { return GELUBackward(x, dy, dx, GELUErf) }},
		{"gelu/approximate=tanh", func(x, y []T) error { return GELUForward(x, y, GELUTanh) },
			func(x, _, dy, dx []T) error { return GELUBackward(x, dy, dx, GELUTanh) }},
	}
}

// TestGradCheckActivations: central differences in float64 on inputs
// spread over [−6, 6], away from leaky ReLU's kink (awayFromZero). The
// smooth functions' third derivatives are ≲ 1, so the h² truncation is
// ≲ 1e-8 per element.
func TestGradCheckActivations(t *testing.T) {
	rng := newRand(60)
	for _, a := range activations[float64]() {
		for _, n := range []int{1, 7, 100} {
			t.Run(fmt.Sprintf("op=%s/L=%d", a.name, n), func(t *testing.T) {
				x, c := awayFromZero(rng, n), randFloats[float64](rng, n)
				for i := range x {
					x[i] *= 6
				}
				y := make([]float64, n)
				loss := func() float64 {
					must(t, a.fwd(x, y))
					return dot(c, y)
				}
				loss()
				dx := newGuarded[float64](n)
				must(t, a.bwd(x, y, c, dx.Out))
				checkClose(t, "dx", dx.Out, numGrad(loss, x), fdAtol, fdRtol)
				dx.checkGuards(t, "dx")
			})
		}
	}
}

// TestActivationsFloat32 compares the float32 forms with the float64 ones
// on inputs in [−12, 12] and the special values: a few ulp (the bounds of
// TestMathfAccuracy) plus the float32 rounding of the backward's product,
// i.e. 1e-6 relative, and 1e-7 absolute where the functions cross zero or
// underflow; sigmoid's and tanh's backward passes start from the rounded
// float32 y, so 1 − y has an absolute error up to ulp(1) = 1.2e-7 (as in
// PyTorch's float32), hence 3e-7 for dx. NaN in, NaN out, except the
// leaky ReLU's backward, whose NaN input takes the slope (x > 0 is false)
// as PyTorch's does.
func TestActivationsFloat32(t *testing.T) {
	rng := newRand(61)
	x := randFloats[float32](rng, 5000)
	for i := range x {
		x[i] *= 12
	}
	x = append(x, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 88, -88, 100, -100, float32(math.NaN()))
	dy := randFloats[float32](rng, len(x))
	for _, a := range activations[float32]() {
		t.Run("op="+a.name, func(t *testing.T) {
			a64 := findActivation(t, a.name)
			y32, dx32 := newGuarded[float32](len(x)), newGuarded[float32](len(x))
			must(t, a.fwd(x, y32.Out))
			must(t, a.bwd(x, y32.Out, dy, dx32.Out))
			x64, y64, dx64 := to64(x), make([]float64, len(x)), make([]float64, len(x))
			must(t, a64.fwd(x64, y64))
			must(t, a64.bwd(x64, y64, to64(dy), dx64))
			last := len(x) - 1
			leaky := strings.HasPrefix(a.name, "leaky")
			if y32.Out[last] == y32.Out[last] || (dx32.Out[last] == dx32.Out[last]) != leaky {
				t.Errorf("NaN input: y = %g, dx = %g, want NaN and (leaky ReLU: slope·dy, others: NaN)", y32.Out[last], dx32.Out[last])
			}
			checkClose(t, "y", y32.Out[:last], y64[:last], 1e-7, 1e-6)
			checkClose(t, "dx", dx32.Out[:last], dx64[:last], 3e-7, 2e-6)
			y32.checkGuards(t, "y")
			dx32.checkGuards(t, "dx")
		})
	}
}

func findActivation(t *testing.T, name string) activation[float64] {
	for _, a := range activations[float64]() {
		if a.name == name {
			return a
		}
	}
	t.Fatalf("no float64 activation %q", name)
	return activation[float64]{}
}

// TestActivationValues pins hand-computed values: PyTorch's leaky ReLU
// at 0 and its derivative there (slope), GELU(1) of both forms, σ(0),
// tanh(−0) = −0.
func TestActivationValues(t *testing.T) {
	y := make([]float64, 3)
	must(t, LeakyReLUForward([]float64{-2, 0, 3}, y, 0.01))
	checkClose(t, "leaky y", y, []float64{-0.02, 0, 3}, 0, 0)
	must(t, LeakyReLUBackward([]float64{-2, 0, 3}, []float64{1, 1, 1}, y, 0.01))
	checkClose(t, "leaky dx", y, []float64{0.01, 0.01, 1}, 0, 0)
	// GELU(1) = Φ(1) = 0.8413447460685429; tanh form 0.8411919906082768.
	must(t, GELUForward([]float64{1, 1, 1}, y, GELUErf))
	checkClose(t, "gelu erf(1)", y[:1], []float64{0.8413447460685429}, 1e-16, 0)
	must(t, GELUForward([]float64{1, 1, 1}, y, GELUTanh))
	checkClose(t, "gelu tanh(1)", y[:1], []float64{0.8411919906082768}, 1e-16, 0)
	y32 := make([]float32, 2)
	must(t, SigmoidForward([]float32{0, 0}, y32))
	checkClose(t, "sigmoid(0)", y32, []float32{0.5, 0.5}, 0, 0)
	negZero := float32(math.Copysign(0, -1))
	must(t, TanhForward([]float32{negZero, 0}, y32))
	if math.Float32bits(y32[0]) != 0x80000000 {
		t.Errorf("tanh(−0) = %g (bits %#08x), want −0", y32[0], math.Float32bits(y32[0]))
	}
}

func TestActivationErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		kind error
	}{
		{"leaky/len(y)", LeakyReLUForward(nans64(3), nans64(2), 0.01), geom.ErrGeometry},
		{"leaky-backward/empty", LeakyReLUBackward(nans64(0), nans64(0), nans64(0), 0.01), geom.ErrGeometry},
		{"sigmoid-backward/len(dx)", SigmoidBackward(nans32(3), nans32(3), nans32(4)), geom.ErrGeometry},
		{"tanh/len(y)", TanhForward(nans32(3), nans32(4)), geom.ErrGeometry},
		{"silu-backward/len(dy)", SiLUBackward(nans64(3), nans64(2), nans64(3)), geom.ErrGeometry},
		{"gelu/approx=7", GELUForward(nans64(3), nans64(3), GELUApprox(7)), geom.ErrHyperparameter},
		{"gelu-backward/approx=-1", GELUBackward(nans64(3), nans64(3), nans64(3), GELUApprox(-1)), geom.ErrHyperparameter},
		{"gelu/len(y)", GELUForward(nans64(3), nans64(2), GELUTanh), geom.ErrGeometry},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.kind) {
				t.Errorf("error = %v, want one wrapping %v", tc.err, tc.kind)
			}
		})
	}
}
