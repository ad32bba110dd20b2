package gpu

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

// runOptimConformance checks the optimiser kernels of optim_v2.cu on d
// against cpuref in float32. The kernels perform exactly cpuref's
// operations (each product, quotient and sum rounded on its own, sqrt
// correctly rounded), so the comparison is bit for bit, on random reals as
// well as on integers, over several steps in a row (the state m, v carried
// on the device), with every guard band checked after each launch.
func runOptimConformance(t *testing.T, d *Device) {
	t.Run("kernel=sgd_nesterov_v1", func(t *testing.T) { testSGDNesterov(t, d) })
	t.Run("kernel=adam_v1", func(t *testing.T) { testAdam(t, d) })
	t.Run("errors", func(t *testing.T) { testOptimValidation(t, d) })
}

// TestOptimSim runs the optimiser conformance suite on the simulator.
func TestOptimSim(t *testing.T) {
	runOptimConformance(t, openSim(t))
}

// optimSteps is the number of consecutive steps each case runs.
const optimSteps = 4

func testSGDNesterov(t *testing.T, d *Device) {
	type hyper struct{ lr, momentum, wd float32 }
	for _, n := range elemSizes {
		for _, hp := range []hyper{{0.1, 0.9, 0}, {0.01, 0.99, 5e-4}, {0.125, 0, 0.25}} {
			t.Run(kv("n", n, "lr", hp.lr, "momentum", hp.momentum, "wd", hp.wd), func(t *testing.T) {
				rng := newRand(t.Name())
				p, v := uniform(rng, n), make([]float32, n)
				h := newHarness(t, d)
				bp, bv := h.inout("p", p), h.inout("v", v)
				for step := 1; step <= optimSteps; step++ {
					g := uniform(rng, n)
					if err := cpuref.SGDNesterovStep(p, g, v, hp.lr, hp.momentum, hp.wd); err != nil {
						t.Fatal(err)
					}
					if err := d.SGDNesterov(bp, h.in(fmt.Sprintf("g%d", step), g), bv, hp.lr, hp.momentum, hp.wd); err != nil {
						t.Fatal(err)
					}
					checkExact32(t, fmt.Sprintf("step %d: p", step), h.read(bp), p)
					checkExact32(t, fmt.Sprintf("step %d: v", step), h.read(bv), v)
					h.check()
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}

func testAdam(t *testing.T, d *Device) {
	type hyper struct {
		name                      string
		lr, beta1, beta2, eps, wd float32
		decoupled                 bool
		firstStep                 int
	}
	hypers := []hyper{
		{"adam", 1e-3, 0.9, 0.999, 1e-8, 0, false, 1},
		{"adam-l2", 0.01, 0.8, 0.99, 1e-6, 0.1, false, 1},
		{"adam-late", 3e-4, 0.9, 0.999, 1e-8, 0, false, 1000}, // bias corrections near 1
		{"adamw", 1e-3, 0.9, 0.999, 1e-8, 0.01, true, 1},
		{"adamw-eps", 0.1, 0.5, 0.75, 0.25, 0.5, true, 3},
	}
	for _, n := range elemSizes {
		for _, hp := range hypers {
			t.Run(kv("n", n, "case", hp.name), func(t *testing.T) {
				rng := newRand(t.Name())
				p, m, v := uniform(rng, n), make([]float32, n), make([]float32, n)
				if hp.firstStep > 1 { // a state built up by earlier steps
					m = uniform(rng, n)
					for i := range v {
						v[i] = float32(math.Abs(float64(uniform(rng, 1)[0])))
					}
				}
				if n > 3 { // zero, tiny and huge gradients on the first elements
					v[0], v[1] = 0, 0
					m[0], m[1] = 0, 0
				}
				h := newHarness(t, d)
				bp, bm, bv := h.inout("p", p), h.inout("m", m), h.inout("v", v)
				for step := hp.firstStep; step < hp.firstStep+optimSteps; step++ {
					g := uniform(rng, n)
					if n > 3 {
						g[0], g[1], g[2] = 0, g[1]*1e-30, g[2]*1e10
					}
					if err := cpuref.AdamStep(p, g, m, v, hp.lr, hp.beta1, hp.beta2, hp.eps, hp.wd, step, hp.decoupled); err != nil {
						t.Fatal(err)
					}
					c, err := geom.AdamCoefficients(float64(hp.lr), float64(hp.beta1), float64(hp.beta2),
						float64(hp.eps), float64(hp.wd), step, hp.decoupled)
					if err != nil {
						t.Fatal(err)
					}
					if err := d.Adam(bp, h.in(fmt.Sprintf("g%d", step), g), bm, bv, c); err != nil {
						t.Fatal(err)
					}
					checkExact32(t, fmt.Sprintf("step %d: p", step), h.read(bp), p)
					checkExact32(t, fmt.Sprintf("step %d: m", step), h.read(bm), m)
					checkExact32(t, fmt.Sprintf("step %d: v", step), h.read(bv), v)
					h.check()
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}

// testOptimValidation checks that mismatched or missing buffers are refused
// before any launch with an error that wraps geom.ErrGeometry and names
// the kernel, and that the buffers are left untouched.
func testOptimValidation(t *testing.T, d *Device) {
	h := newHarness(t, d)
	p, g, m := h.in("p", []float32{1, 2, 3}), h.in("g", []float32{4, 5, 6}), h.in("m", []float32{7, 8, 9})
	short := h.in("short", []float32{1, 2})
	ints := h.inI32("ints", []int32{1, 2, 3})
	c, err := geom.AdamCoefficients(1e-3, 0.9, 0.999, 1e-8, 0, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, kernel string
		err          error
	}{
		{"nesterov short g", "sgd_nesterov_v1", d.SGDNesterov(p, short, m, 0.1, 0.9, 0)},
		{"nesterov nil v", "sgd_nesterov_v1", d.SGDNesterov(p, g, nil, 0.1, 0.9, 0)},
		{"nesterov nil p", "sgd_nesterov_v1", d.SGDNesterov(nil, g, m, 0.1, 0.9, 0)},
		{"adam short v", "adam_v1", d.Adam(p, g, m, short, c)},
		{"adam int32 m", "adam_v1", d.Adam(p, g, ints, m, c)},
		{"adam nil g", "adam_v1", d.Adam(p, nil, m, m, c)},
	}
	for _, tc := range cases {
		if !errors.Is(tc.err, geom.ErrGeometry) || !strings.Contains(fmt.Sprint(tc.err), tc.kernel) {
			t.Errorf("%s: error %v, want one wrapping geom.ErrGeometry that names %s", tc.name, tc.err, tc.kernel)
		}
	}
	h.check() // every buffer above is an input: none may have changed
}
