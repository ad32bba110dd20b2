package host

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
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
			w.run(func(be Backend, i int) error { return be.SGDNesterovStep(p[i], g[i], v[i], 0.05, 0.9, 1e-3) })
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
				w.run(func(be Backend, i int) error {
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
			if err := be.AdamStep(a[i], a[i], a[i], b[i], 1e-3, 0.9, 0.999, 1e-8, 0, 1, false); !errors.Is(err, ErrTensor) {
				t.Errorf("%s: AdamStep with a short v: %v, want ErrTensor", be.Name(), err)
			}
			if err := be.AdamStep(a[i], a[i], a[i], a[i], 1e-3, 0.9, 0.999, 1e-8, 0, 0, false); err == nil || !strings.Contains(err.Error(), "step 0") {
				t.Errorf("%s: AdamStep at step 0: %v, want an error naming the step", be.Name(), err)
			}
			if err := be.SGDNesterovStep(a[i], b[i], a[i], 0.1, 0.9, 0); !errors.Is(err, ErrTensor) {
				t.Errorf("%s: SGDNesterovStep with a long grad: %v, want ErrTensor", be.Name(), err)
			}
		}
	})
}

// optimizerCases are the optimisers the training tests run.
var optimizerCases = []struct {
	name string
	opt  Optimizer
	lr   float64
}{
	{"sgd", Optimizer{}, 0.05},
	{"sgd-nesterov", Optimizer{Nesterov: true}, 0.05},
	{"adam", DefaultAdam(Adam), 2e-3},
	{"adamw", DefaultAdam(AdamW), 2e-3},
}

// TestOptimizerTrainingCPUvsSim trains the checkpoint tests' small network
// for 2 epochs of 5 steps with each optimiser through the Trainer, on the
// CPU backend and on the GPU backend (simulator), and compares the loss
// after every step and the final parameters. The optimiser kernels equal
// cpuref bit for bit; what differs is the summation order of the
// convolution and dense passes (im2col + SGEMM vs direct kernels) and
// exp/log, a few float32 ulps (≈ 1e−7 relative) per op. Ten steps amplify
// that by little: SGD's by momentum (≤ 10×), Adam's by its normalisation
// m/√v, which turns a gradient's relative error into the same relative
// error of the step. Losses (≈ 1) must agree within 1e−5 relative and the
// parameters within 1e−5 absolute (lr·steps ≈ 0.02 is the most Adam can
// move one); a sign flip of a gradient at noise level would move a
// parameter by up to 2·lr and fail it.
func TestOptimizerTrainingCPUvsSim(t *testing.T) {
	train, test := ckptData(t)
	for _, oc := range optimizerCases {
		t.Run("optimizer="+oc.name, func(t *testing.T) {
			run := func(be Backend) (losses []float64, params [][]float32) {
				m, err := NewModel(be, ckptSpec(), 3)
				mustNil(t, err)
				defer m.Close()
				cfg := ckptConfig()
				cfg.LR, cfg.Optimizer = oc.lr, oc.opt
				cfg.ProgressEvery = 1
				cfg.OnProgress = func(p Progress) { losses = append(losses, p.Loss) }
				tr, err := NewTrainer(m, train, test, cfg)
				mustNil(t, err)
				defer tr.Close()
				_, err = tr.Run(context.Background())
				mustNil(t, err)
				if m.Steps() != 10 {
					t.Errorf("%s: model counts %d steps, want 10", be.Name(), m.Steps())
				}
				params, err = m.ParamValues()
				mustNil(t, err)
				return losses, params
			}
			sim, _ := openSimBackend(t)
			wantL, wantP := run(newCPU(t))
			gotL, gotP := run(sim)
			if len(gotL) != 10 || len(wantL) != 10 {
				t.Fatalf("%d and %d progress reports, want 10", len(gotL), len(wantL))
			}
			for i := range wantL {
				if d := math.Abs(gotL[i] - wantL[i]); !(d <= 1e-5*math.Abs(wantL[i])) {
					t.Errorf("step %d: mean loss %.9g on the simulator, %.9g on the CPU", i+1, gotL[i], wantL[i])
				}
			}
			if !(wantL[9] < wantL[4]) {
				t.Errorf("the second epoch's mean loss %g is not below the first's %g: nothing was learnt", wantL[9], wantL[4])
			}
			worst := 0.0
			for i := range wantP {
				for j := range wantP[i] {
					worst = math.Max(worst, math.Abs(float64(gotP[i][j])-float64(wantP[i][j])))
				}
			}
			if !(worst <= 1e-5) {
				t.Errorf("parameters: max |sim − cpu| = %g, want ≤ 1e-5", worst)
			}
			t.Logf("losses cpu %.6g; largest parameter difference %.3g", wantL, worst)
		})
	}
}

// TestOptimizerResume checks that Adam's and Nesterov's state goes through
// a checkpoint: 3 steps, save, load into a new model and trainer, 7 more
// steps gives the same parameters and state, bit for bit, as 10 steps
// straight (Adam also needs the step count for its bias corrections).
func TestOptimizerResume(t *testing.T) {
	train, test := ckptData(t)
	be := newCPU(t)
	for _, oc := range optimizerCases[1:] {
		t.Run("optimizer="+oc.name, func(t *testing.T) {
			cfg := ckptConfig()
			cfg.LR, cfg.Optimizer = oc.lr, oc.opt
			state := func(m *Model) [][]float32 {
				var out [][]float32
				for _, p := range m.Params() {
					xs := []Tensor{p.Value}
					for _, s := range p.OptimState(m.Optimizer()) {
						xs = append(xs, s.T)
					}
					for _, x := range xs {
						v := make([]float32, x.Len())
						mustNil(t, be.Download(v, x))
						out = append(out, v)
					}
				}
				return out
			}
			m, err := NewModel(be, ckptSpec(), 3)
			mustNil(t, err)
			defer m.Close()
			tr, err := NewTrainer(m, train, test, cfg)
			mustNil(t, err)
			defer tr.Close()
			_, err = tr.Run(context.Background())
			mustNil(t, err)
			want := state(m)

			path := filepath.Join(t.TempDir(), "ckpt.safetensors")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m1, err := NewModel(be, ckptSpec(), 3)
			mustNil(t, err)
			defer m1.Close()
			cfg1 := cfg
			var tr1 *Trainer
			cfg1.CheckpointEvery = 1
			cfg1.OnCheckpoint = func() error {
				if st, err := tr1.State(); err != nil || st.Step != 3 {
					return err
				}
				cancel()
				return SaveCheckpoint(path, tr1)
			}
			tr1, err = NewTrainer(m1, train, test, cfg1)
			mustNil(t, err)
			defer tr1.Close()
			if _, err := tr1.Run(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
			c, err := LoadCheckpoint(path)
			mustNil(t, err)
			if c.Config.Optimizer != oc.opt {
				t.Errorf("checkpoint optimizer %v, want %v", c.Config.Optimizer, oc.opt)
			}
			for _, nt := range c.Optim {
				if oc.opt.Kind != SGD && !strings.HasPrefix(nt.Name, "optim.exp_avg") {
					t.Errorf("checkpoint tensor %q, want optim.exp_avg… for %v", nt.Name, oc.opt)
				}
			}
			m2, err := c.NewModel(be)
			mustNil(t, err)
			defer m2.Close()
			tr2, err := NewTrainer(m2, train, test, c.Config)
			mustNil(t, err)
			defer tr2.Close()
			mustNil(t, c.Restore(tr2))
			if m2.Steps() != 3 {
				t.Errorf("restored model counts %d steps, want 3", m2.Steps())
			}
			_, err = tr2.Run(context.Background())
			mustNil(t, err)
			got := state(m2)
			if len(got) != len(want) {
				t.Fatalf("%d state tensors after resuming, want %d", len(got), len(want))
			}
			for i := range want {
				equalBits(t, fmt.Sprintf("tensor %d", i), got[i], want[i])
			}
		})
	}
}

func TestOptimizerConfig(t *testing.T) {
	base := ckptConfig()
	bad := []struct {
		name string
		opt  Optimizer
		mom  float64
		want string
	}{
		{"nesterov without momentum", Optimizer{Nesterov: true}, 0, "momentum"},
		{"adam beta1 = 1", Optimizer{Kind: Adam, Beta1: 1, Beta2: 0.999, Eps: 1e-8}, 0.9, "beta1"},
		{"adamw beta2 < 0", Optimizer{Kind: AdamW, Beta1: 0.9, Beta2: -0.1, Eps: 1e-8}, 0.9, "beta2"},
		{"adam eps NaN", Optimizer{Kind: Adam, Beta1: 0.9, Beta2: 0.999, Eps: math.NaN()}, 0.9, "eps"},
		{"adam nesterov", Optimizer{Kind: Adam, Nesterov: true, Beta1: 0.9, Beta2: 0.999}, 0.9, "Nesterov"},
		{"unknown kind", Optimizer{Kind: 7}, 0.9, "unknown optimizer"},
	}
	for _, c := range bad {
		cfg := base
		cfg.Optimizer, cfg.Momentum = c.opt, c.mom
		if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Check() = %v, want an error about %s", c.name, err, c.want)
		}
	}
	for _, s := range []string{"sgd", "adam", "adamw"} {
		k, err := ParseOptimizerKind(s)
		if err != nil || k.String() != s {
			t.Errorf("ParseOptimizerKind(%q) = %v, %v; want the kind named %q", s, k, err, s)
		}
	}
	if _, err := ParseOptimizerKind("rmsprop"); err == nil {
		t.Error("ParseOptimizerKind(rmsprop) accepted an unknown optimizer")
	}
	if got := DefaultAdam(AdamW).String(); got != "adamw (β1 0.9, β2 0.999, ε 1e-08)" {
		t.Errorf("DefaultAdam(AdamW).String() = %q", got)
	}
}
