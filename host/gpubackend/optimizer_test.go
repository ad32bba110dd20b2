package gpubackend

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// TestOptimizerBackendOps runs three steps of SGDNesterovStep and AdamStep
// (Adam and AdamW) on both backends with the same real-valued inputs: the
// kernels perform cpuref's float32 operations exactly (each rounded on its
// own, sqrt and division correctly rounded), so p and the state must agree
// bit for bit.
func TestOptimizerBackendOps(t *testing.T) {
	w := newTwin(t)
	rng := rand.New(rand.NewPCG(11, 12))
	const n = 301
	t.Run("op=sgd_nesterov", func(t *testing.T) {
		w.t = t
		p, v := w.f32(reals(rng, n)), w.f32(make([]float32, n))
		for range 3 {
			g := w.f32(reals(rng, n))
			w.run(func(be backend.Backend, i int) error { return be.SGDNesterovStep(p[i], g[i], v[i], 0.05, 0.9, 1e-3) })
		}
		w.same("p", p, 0, 0)
		w.same("v", v, 0, 0)
	})
	for _, decoupled := range []bool{false, true} {
		t.Run(fmt.Sprintf("op=adam,decoupled=%v", decoupled), func(t *testing.T) {
			w.t = t
			p, m, v := w.f32(reals(rng, n)), w.f32(make([]float32, n)), w.f32(make([]float32, n))
			for step := 1; step <= 3; step++ {
				g := w.f32(reals(rng, n))
				w.run(func(be backend.Backend, i int) error {
					return be.AdamStep(p[i], g[i], m[i], v[i], 1e-3, 0.9, 0.999, 1e-8, 0.01, step, decoupled)
				})
			}
			w.same("p", p, 0, 0)
			w.same("m", m, 0, 0)
			w.same("v", v, 0, 0)
		})
	}
	t.Run("errors", func(t *testing.T) {
		w.t = t
		a, b := w.f32(make([]float32, 3)), w.f32(make([]float32, 4))
		for i, be := range w.be {
			if err := be.AdamStep(a[i], a[i], a[i], b[i], 1e-3, 0.9, 0.999, 1e-8, 0, 1, false); !errors.Is(err, geom.ErrGeometry) {
				t.Errorf("%s: AdamStep with a long v: %v, want ErrGeometry", be.Name(), err)
			}
			if err := be.AdamStep(a[i], a[i], a[i], a[i], 1e-3, 0.9, 0.999, 1e-8, 0, 0, false); err == nil || !strings.Contains(err.Error(), "step 0") {
				t.Errorf("%s: AdamStep at step 0: %v, want an error naming the step", be.Name(), err)
			}
			if err := be.SGDNesterovStep(a[i], b[i], a[i], 0.1, 0.9, 0); !errors.Is(err, geom.ErrGeometry) {
				t.Errorf("%s: SGDNesterovStep with a long grad: %v, want ErrGeometry", be.Name(), err)
			}
		}
	})
}
