package ckpt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/nn"
	"github.com/convtrain/convtrain/host/train"
)

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
	trainSet, test := ckptData(t)
	for _, oc := range optimizerCases {
		t.Run("optimizer="+oc.name, func(t *testing.T) {
			run := func(be backend.Backend) (losses []float64, params [][]float32) {
				m, err := nn.NewModel(be, ckptSpec(), 3)
				backendtest.MustNil(t, err)
				defer m.Close()
				cfg := ckptConfig()
				cfg.LR, cfg.Optimizer = oc.lr, oc.opt
				cfg.ProgressEvery = 1
				cfg.OnProgress = func(p train.Progress) { losses = append(losses, p.Loss) }
				tr, err := train.NewTrainer(m, trainSet, test, cfg)
				backendtest.MustNil(t, err)
				defer tr.Close()
				_, err = tr.Run(context.Background())
				backendtest.MustNil(t, err)
				if m.Steps() != 10 {
					t.Errorf("%s: model counts %d steps, want 10", be.Name(), m.Steps())
				}
				params, err = m.ParamValues()
				backendtest.MustNil(t, err)
				return losses, params
			}
			sim, _ := backendtest.Sim(t)
			wantL, wantP := run(backendtest.CPU(t))
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
	trainSet, test := ckptData(t)
	be := backendtest.CPU(t)
	for _, oc := range optimizerCases[1:] {
		t.Run("optimizer="+oc.name, func(t *testing.T) {
			cfg := ckptConfig()
			cfg.LR, cfg.Optimizer = oc.lr, oc.opt
			state := func(m *nn.Model) [][]float32 {
				var out [][]float32
				for _, p := range m.Params() {
					xs := []backend.Tensor{p.Value}
					for _, s := range p.OptimState(m.Optimizer()) {
						xs = append(xs, s.T)
					}
					for _, x := range xs {
						v := make([]float32, x.Len())
						backendtest.MustNil(t, be.Download(v, x))
						out = append(out, v)
					}
				}
				return out
			}
			m, err := nn.NewModel(be, ckptSpec(), 3)
			backendtest.MustNil(t, err)
			defer m.Close()
			tr, err := train.NewTrainer(m, trainSet, test, cfg)
			backendtest.MustNil(t, err)
			defer tr.Close()
			_, err = tr.Run(context.Background())
			backendtest.MustNil(t, err)
			want := state(m)

			path := filepath.Join(t.TempDir(), "ckpt.safetensors")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m1, err := nn.NewModel(be, ckptSpec(), 3)
			backendtest.MustNil(t, err)
			defer m1.Close()
			cfg1 := cfg
			var tr1 *train.Trainer
			cfg1.CheckpointEvery = 1
			cfg1.OnCheckpoint = func() error {
				if st, err := tr1.State(); err != nil || st.Step != 3 {
					return err
				}
				cancel()
				return SaveCheckpoint(path, tr1)
			}
			tr1, err = train.NewTrainer(m1, trainSet, test, cfg1)
			backendtest.MustNil(t, err)
			defer tr1.Close()
			if _, err := tr1.Run(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
			c, err := LoadCheckpoint(path)
			backendtest.MustNil(t, err)
			if c.Config.Optimizer != oc.opt {
				t.Errorf("checkpoint optimizer %v, want %v", c.Config.Optimizer, oc.opt)
			}
			for _, nt := range c.Optim {
				if oc.opt.Kind != nn.SGD && !strings.HasPrefix(nt.Name, "optim.exp_avg") {
					t.Errorf("checkpoint tensor %q, want optim.exp_avg… for %v", nt.Name, oc.opt)
				}
			}
			m2, err := c.NewModel(be)
			backendtest.MustNil(t, err)
			defer m2.Close()
			tr2, err := train.NewTrainer(m2, trainSet, test, c.Config)
			backendtest.MustNil(t, err)
			defer tr2.Close()
			backendtest.MustNil(t, c.Restore(tr2))
			if m2.Steps() != 3 {
				t.Errorf("restored model counts %d steps, want 3", m2.Steps())
			}
			_, err = tr2.Run(context.Background())
			backendtest.MustNil(t, err)
			got := state(m2)
			if len(got) != len(want) {
				t.Fatalf("%d state tensors after resuming, want %d", len(got), len(want))
			}
			for i := range want {
				backendtest.EqualBits(t, fmt.Sprintf("tensor %d", i), got[i], want[i])
			}
		})
	}
}

func TestOptimizerConfig(t *testing.T) {
	base := ckptConfig()
	bad := []struct {
		name string
		opt  nn.Optimizer
		mom  float64
		want string
	}{
		{"nesterov without momentum", nn.Optimizer{Nesterov: true}, 0, "momentum"},
		{"adam beta1 = 1", nn.Optimizer{Kind: nn.Adam, Beta1: 1, Beta2: 0.999, Eps: 1e-8}, 0.9, "beta1"},
		{"adamw beta2 < 0", nn.Optimizer{Kind: nn.AdamW, Beta1: 0.9, Beta2: -0.1, Eps: 1e-8}, 0.9, "beta2"},
		{"adam eps NaN", nn.Optimizer{Kind: nn.Adam, Beta1: 0.9, Beta2: 0.999, Eps: math.NaN()}, 0.9, "eps"},
		{"adam nesterov", nn.Optimizer{Kind: nn.Adam, Nesterov: true, Beta1: 0.9, Beta2: 0.999}, 0.9, "Nesterov"},
		{"unknown kind", nn.Optimizer{Kind: 7}, 0.9, "unknown optimizer"},
	}
	for _, c := range bad {
		cfg := base
		cfg.Optimizer, cfg.Momentum = c.opt, c.mom
		if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Check() = %v, want an error about %s", c.name, err, c.want)
		}
	}
	for _, s := range []string{"sgd", "adam", "adamw"} {
		k, err := nn.ParseOptimizerKind(s)
		if err != nil || k.String() != s {
			t.Errorf("ParseOptimizerKind(%q) = %v, %v; want the kind named %q", s, k, err, s)
		}
	}
	if _, err := nn.ParseOptimizerKind("rmsprop"); err == nil {
		t.Error("ParseOptimizerKind(rmsprop) accepted an unknown optimizer")
	}
	if got := nn.DefaultAdam(nn.AdamW).String(); got != "adamw (β1 0.9, β2 0.999, ε 1e-08)" {
		t.Errorf("DefaultAdam(AdamW).String() = %q", got)
	}
}

// optimizerCases are the optimisers the training tests run.
var optimizerCases = []struct {
	name string
	opt  nn.Optimizer
	lr   float64
}{
	{"sgd", nn.Optimizer{}, 0.05},
	{"sgd-nesterov", nn.Optimizer{Nesterov: true}, 0.05},
	{"adam", nn.DefaultAdam(nn.Adam), 2e-3},
	{"adamw", nn.DefaultAdam(nn.AdamW), 2e-3},
}
