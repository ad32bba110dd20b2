package gpubackend

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/cpubackend"
)

// TestUpdateParams runs three steps of UpdateParams for every rule over
// tensors of several sizes on both backends, and on the CPU backend the
// per-tensor operations (SGDStep, SGDNesterovStep, AdamStep) on copies:
// all three must agree bit for bit. On the simulator each step is one
// launch, and after the first step it allocates and uploads nothing (the
// device table is reused).
func TestUpdateParams(t *testing.T) {
	cpu, err := cpubackend.NewCPUBackend(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cpu.Close() })
	sim, dev := openSimBackend(t)
	w := &twin{t: t, be: [2]backend.Backend{cpu, sim}}
	sizes := []int{301, 1, 256, 17}
	for _, rule := range []backend.UpdateRule{backend.RuleSGD, backend.RuleNesterov, backend.RuleAdam, backend.RuleAdamW} {
		t.Run("rule="+rule.String(), func(t *testing.T) {
			w.t = t
			rng := rand.New(rand.NewPCG(21, uint64(rule)))
			adam := rule == backend.RuleAdam || rule == backend.RuleAdamW
			type param struct {
				p, g, m, v     pair
				rp, rg, rm, rv backend.Tensor // the per-tensor reference, on the CPU
			}
			cpuTensor := func(x []float32) backend.Tensor {
				tn, err := cpu.NewTensor(len(x))
				mustNil(t, err)
				mustNil(t, cpu.Upload(tn, x))
				return tn
			}
			params := make([]param, len(sizes))
			for i, n := range sizes {
				x, zero := reals(rng, n), make([]float32, n)
				pr := param{p: w.f32(x), g: w.f32(zero), m: w.f32(zero), rp: cpuTensor(x), rg: cpuTensor(zero), rm: cpuTensor(zero)}
				if adam {
					pr.v, pr.rv = w.f32(zero), cpuTensor(zero)
				}
				params[i] = pr
			}
			states := func(i int) []backend.ParamState {
				ps := make([]backend.ParamState, len(params))
				for j, pr := range params {
					ps[j] = backend.ParamState{Value: pr.p[i], Grad: pr.g[i], Vel: pr.m[i]}
					if adam {
						ps[j].Sq = pr.v[i]
					}
				}
				return ps
			}
			for step := 1; step <= 3; step++ {
				for _, pr := range params {
					g := reals(rng, pr.p[0].Len())
					for i, be := range w.be {
						mustNil(t, be.Upload(pr.g[i], g))
					}
					mustNil(t, cpu.Upload(pr.rg, g))
				}
				u := backend.Update{Rule: rule, LR: 0.05, Momentum: 0.9, WeightDecay: 1e-3, Beta1: 0.9, Beta2: 0.999,
					Eps: 1e-8, Step: step}
				if adam {
					u.LR = 1e-3
				}
				launches, mem := dev.Launches(), dev.MemStats()
				w.run(func(be backend.Backend, i int) error { return be.UpdateParams(states(i), u) })
				want := int64(1)
				if step == 1 {
					want = 2 // and fill_f32_v1 zeroing the new table's buffer
				}
				if got := dev.Launches() - launches; got != want {
					t.Errorf("step %d: %d launches, want %d", step, got, want)
				}
				if after := dev.MemStats(); step > 1 && (after.Allocs != mem.Allocs || after.HtoDBytes != mem.HtoDBytes) {
					t.Errorf("step %d: %d allocations and %d bytes uploaded, want 0 (the table is reused)", step,
						after.Allocs-mem.Allocs, after.HtoDBytes-mem.HtoDBytes)
				}
				for _, pr := range params {
					var err error
					switch rule {
					case backend.RuleSGD:
						err = cpu.SGDStep(pr.rp, pr.rg, pr.rm, u.LR, u.Momentum, u.WeightDecay)
					case backend.RuleNesterov:
						err = cpu.SGDNesterovStep(pr.rp, pr.rg, pr.rm, u.LR, u.Momentum, u.WeightDecay)
					default:
						err = cpu.AdamStep(pr.rp, pr.rg, pr.rm, pr.rv, u.LR, u.Beta1, u.Beta2, u.Eps, u.WeightDecay, step,
							rule == backend.RuleAdamW)
					}
					mustNil(t, err)
				}
			}
			for j, pr := range params {
				name := fmt.Sprintf("param %d", j)
				w.same(name+" p", pr.p, 0, 0)
				w.same(name+" m", pr.m, 0, 0)
				got, _ := w.get(pr.p)
				want := make([]float32, len(got))
				mustNil(t, cpu.Download(want, pr.rp))
				equalBits(t, name+" p (UpdateParams against the per-tensor op)", got, want)
				if adam {
					w.same(name+" v", pr.v, 0, 0)
				}
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		w.t = t
		a, b, c := w.f32([]float32{1, 2, 3}), w.f32([]float32{4, 5, 6}), w.f32([]float32{7, 8, 9})
		short := w.f32([]float32{1, 2})
		sgd := backend.Update{Rule: backend.RuleSGD, LR: 0.1}
		adam := backend.Update{Rule: backend.RuleAdam, LR: 0.1, Beta1: 0.9, Beta2: 0.999, Step: 1}
		for i, be := range w.be {
			ok := backend.ParamState{Value: a[i], Grad: b[i], Vel: c[i]}
			for _, tc := range []struct {
				name string
				ps   []backend.ParamState
				u    backend.Update
				want error
			}{
				{"no parameters", nil, sgd, geom.ErrGeometry},
				{"short grad in the second", []backend.ParamState{ok, {Value: a[i], Grad: short[i], Vel: c[i]}}, sgd, geom.ErrGeometry},
				{"nil vel", []backend.ParamState{ok, {Value: a[i], Grad: b[i]}}, sgd, backend.ErrTensor},
				{"adam without sq", []backend.ParamState{ok}, adam, backend.ErrTensor},
				{"sgd with sq", []backend.ParamState{{Value: a[i], Grad: b[i], Vel: c[i], Sq: b[i]}}, sgd, backend.ErrTensor},
				{"adam step 0", []backend.ParamState{{Value: a[i], Grad: b[i], Vel: c[i], Sq: c[i]}},
					backend.Update{Rule: backend.RuleAdam, Step: 0}, geom.ErrGeometry},
				{"unknown rule", []backend.ParamState{ok}, backend.Update{Rule: 9}, geom.ErrGeometry},
			} {
				if err := be.UpdateParams(tc.ps, tc.u); !errors.Is(err, tc.want) {
					t.Errorf("%s: UpdateParams(%s): %v, want an error wrapping %v", be.Name(), tc.name, err, tc.want)
				}
			}
		}
		// Nothing was updated: the first parameter of a refused call is
		// checked with the rest before any update.
		for j, p := range []pair{a, b, c} {
			cg, gg := w.get(p)
			want := []float32{float32(3*j + 1), float32(3*j + 2), float32(3*j + 3)}
			equalBits(t, fmt.Sprintf("cpu tensor %d", j), cg, want)
			equalBits(t, fmt.Sprintf("gpu tensor %d", j), gg, want)
		}
	})
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// equalBits checks got against want bit for bit.
func equalBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", name, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("%s[%d] = %g, want %g (bit for bit)", name, i, got[i], want[i])
			return
		}
	}
}

// TestFirstNonFinite checks FirstNonFinite on both backends: the index of
// the first tensor holding a NaN or an infinity, len(ts) when all are
// finite (the largest float32 and −0 are finite), the same answer twice
// from the cached table, and refused arguments.
func TestFirstNonFinite(t *testing.T) {
	w := newTwin(t)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	a, b := w.f32([]float32{1, math.MaxFloat32, float32(math.Copysign(0, -1))}), w.f32(make([]float32, 3000))
	c, d := w.f32([]float32{2, nan}), w.f32([]float32{-inf})
	out := w.out(1)
	idx := w.i32([]int32{1})
	for _, tc := range []struct {
		name string
		ts   []pair
		want float32
	}{
		{"finite", []pair{a, b}, 2},
		{"nan-third", []pair{a, b, c, d}, 2},
		{"inf-first", []pair{d, a, c}, 0},
		{"nan-first-again", []pair{c, d}, 0},
	} {
		for i, be := range w.be {
			ts := make([]backend.Tensor, len(tc.ts))
			for j, p := range tc.ts {
				ts[j] = p[i]
			}
			for range 2 {
				mustNil(t, be.FirstNonFinite(ts, out[i]))
				got := make([]float32, 1)
				mustNil(t, be.Download(got, out[i]))
				if got[0] != tc.want {
					t.Errorf("%s: FirstNonFinite(%s) = %g, want %g", be.Name(), tc.name, got[0], tc.want)
				}
			}
		}
	}
	for i, be := range w.be {
		if err := be.FirstNonFinite(nil, out[i]); !errors.Is(err, geom.ErrGeometry) {
			t.Errorf("%s: FirstNonFinite(no tensors): %v, want ErrGeometry", be.Name(), err)
		}
		if err := be.FirstNonFinite([]backend.Tensor{a[i], idx[i]}, out[i]); !errors.Is(err, backend.ErrTensor) {
			t.Errorf("%s: FirstNonFinite with an index tensor: %v, want ErrTensor", be.Name(), err)
		}
		if err := be.FirstNonFinite([]backend.Tensor{a[i]}, nil); !errors.Is(err, backend.ErrTensor) {
			t.Errorf("%s: FirstNonFinite into nil: %v, want ErrTensor", be.Name(), err)
		}
	}
}
