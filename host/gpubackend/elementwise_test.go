package gpubackend

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// testElementwiseOps is TestGPUBackendOps' part for the activations,
// dropout, add and concatenation. The GPU kernels reproduce cpuref's
// float32 forms operation for operation, so both backends must agree
// exactly, on reals over both tails of the activations.
func testElementwiseOps(t *testing.T, w *twin, rng *rand.Rand) {
	t.Run("op=activations", func(t *testing.T) {
		w.t = t
		const n = 700
		xs := reals(rng, n)
		for i := range xs {
			xs[i] *= 12
		}
		x, dy := w.f32(xs), w.f32(reals(rng, n))
		for _, act := range []backend.Activation{backend.LeakyReLU, backend.Sigmoid, backend.Tanh, backend.SiLU,
			backend.GELUErf, backend.GELUTanh} {
			y, dx := w.out(n), w.out(n)
			w.run(func(be backend.Backend, i int) error { return be.ActivationForward(act, 0.125, x[i], y[i]) })
			w.run(func(be backend.Backend, i int) error {
				return be.ActivationBackward(act, 0.125, x[i], y[i], dy[i], dx[i])
			})
			w.same(act.String()+" y", y, 0, 0)
			w.same(act.String()+" dx", dx, 0, 0)
		}
	})

	t.Run("op=dropout", func(t *testing.T) {
		w.t = t
		const n = 1001
		x, dy := w.f32(reals(rng, n)), w.f32(reals(rng, n))
		for _, key := range []backend.DropoutKey{{Seed: 42, Stream: 1, Step: 3}, {Seed: 1 << 40, Stream: 9, Step: 1<<33 + 5}} {
			y, dx := w.out(n), w.out(n)
			w.run(func(be backend.Backend, i int) error { return be.DropoutForward(key, 0.3, x[i], y[i]) })
			w.run(func(be backend.Backend, i int) error { return be.DropoutBackward(key, 0.3, dy[i], dx[i]) })
			name := fmt.Sprintf("seed=%d,stream=%d,step=%d", key.Seed, key.Stream, key.Step)
			w.same(name+" y", y, 0, 0)
			w.same(name+" dx", dx, 0, 0)
			c, _ := w.get(y)
			zeros := 0
			for _, v := range c {
				if v == 0 {
					zeros++
				}
			}
			if zeros < n/5 || zeros > n*2/5 { // p = 0.3: about 300 of 1001 dropped
				t.Errorf("%s: %d of %d dropped, want about 30 %%", name, zeros, n)
			}
		}
	})

	t.Run("op=add", func(t *testing.T) {
		w.t = t
		const n = 300
		a, b, y := w.f32(reals(rng, n)), w.f32(reals(rng, n)), w.out(n)
		w.run(func(be backend.Backend, i int) error { return be.Add(a[i], b[i], y[i]) })
		w.same("y", y, 0, 0)
	})

	// AddReLU: cpuref.AddReLUForward on the CPU, add_relu_v1 here; a
	// quarter of the sums exactly ±0.
	t.Run("op=add+relu", func(t *testing.T) {
		w.t = t
		const n = 301
		av, bv := reals(rng, n), reals(rng, n)
		for i := 0; i < n; i += 4 {
			bv[i] = -av[i]
		}
		a, b, y := w.f32(av), w.f32(bv), w.out(n)
		w.run(func(be backend.Backend, i int) error { return be.AddReLU(a[i], b[i], y[i]) })
		w.same("y", y, 0, 0)
		w.run(func(be backend.Backend, i int) error { return be.AddReLU(a[i], b[i], a[i]) }) // in place
		w.same("y in place", a, 0, 0)
	})

	t.Run("op=concat", func(t *testing.T) {
		w.t = t
		const n, hw = 3, 10
		cs := []int{2, 5, 1}
		total := 8
		x0, x1, x2 := w.f32(reals(rng, n*2*hw)), w.f32(reals(rng, n*5*hw)), w.f32(reals(rng, n*1*hw))
		dy, y := w.f32(reals(rng, n*total*hw)), w.out(n*total*hw)
		d0, d2 := w.out(n*2*hw), w.out(n*1*hw)
		w.run(func(be backend.Backend, i int) error {
			return be.ConcatForward(n, hw, cs, []backend.Tensor{x0[i], x1[i], x2[i]}, y[i])
		})
		w.run(func(be backend.Backend, i int) error {
			return be.ConcatBackward(n, hw, cs, dy[i], []backend.Tensor{d0[i], nil, d2[i]})
		})
		w.same("y", y, 0, 0)
		w.same("dx[0]", d0, 0, 0)
		w.same("dx[2]", d2, 0, 0)
	})

	t.Run("op=elementwise-checks", func(t *testing.T) {
		w.t = t
		g := w.be[1]
		x, short, y := w.f32(make([]float32, 12)), w.f32(make([]float32, 11)), w.out(12)
		before, _ := w.get(y)
		for _, c := range []struct {
			name string
			err  error
			is   error
		}{
			{"unknown activation", g.ActivationForward(backend.Activation(99), 0, x[1], y[1]), geom.ErrGeometry},
			{"activation y too short", g.ActivationForward(backend.Tanh, 0, x[1], short[1]), geom.ErrGeometry},
			{"dropout p = 1", g.DropoutForward(backend.DropoutKey{}, 1, x[1], y[1]), geom.ErrHyperparameter},
			{"add lengths differ", g.Add(x[1], short[1], y[1]), geom.ErrGeometry},
			{"add+relu y too short", g.AddReLU(x[1], x[1], short[1]), geom.ErrGeometry},
			{"concat counts differ", g.ConcatForward(1, 4, []int{1, 2}, []backend.Tensor{x[1]}, y[1]), geom.ErrGeometry},
			// The second input is refused before the first is copied.
			{"concat second input short", g.ConcatForward(1, 4, []int{2, 1}, []backend.Tensor{w.f32(make([]float32, 8))[1], short[1]}, y[1]), geom.ErrGeometry},
		} {
			if !errors.Is(c.err, c.is) {
				t.Errorf("%s: error %v, want one wrapping %v", c.name, c.err, c.is)
			}
		}
		_, after := w.get(y)
		for i := range after {
			if !math.IsNaN(float64(after[i])) || !math.IsNaN(float64(before[i])) {
				t.Fatalf("y[%d] = %g after refused calls, want the NaN it held", i, after[i])
			}
		}
	})
}
