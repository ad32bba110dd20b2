package train

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// TestAugmentedBatch checks what a training step with augmentation feeds
// the model: each image of the batch is the standardised training image
// of its row of the epoch's order, cropped and flipped by that row's
// draw of the run's seed and the epoch, and its one-hot target is that
// image's label (labels follow their images), on the CPU backend and on
// the GPU backend on the simulator (which gathers, standardises and
// augments from the bytes in one kernel). The same seed gives the same
// crops; another seed or epoch gives others.
func TestAugmentedBatch(t *testing.T) {
	const classes, batch = 4, 16
	trainSet, err := data.Synthetic(64, 12, classes, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(20, 12, classes, 2)
	backendtest.MustNil(t, err)
	aug := data.Augment{Pad: 3, Flip: true}
	// inputs returns the batch and targets of the given step (from 1) of
	// the given epoch (from 1), and the order of that epoch.
	inputs := func(sim bool, seed uint64, epoch, step int) (x, targets []float32, order []int32) {
		be := backendtest.CPU(t)
		if sim {
			be, _ = backendtest.Sim(t)
		}
		m, err := nn.NewModel(be, smallSpec(nn.MSELoss, classes), 1)
		backendtest.MustNil(t, err)
		defer m.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cfg := Config{Epochs: 3, Batch: batch, LR: 0.01, Seed: seed, Augment: aug, ProgressEvery: 1}
		var tr *Trainer
		cfg.OnProgress = func(p Progress) {
			if p.Epoch != epoch || p.Step != step {
				return
			}
			x, targets = make([]float32, tr.batch.X.Len()), make([]float32, tr.batch.Targets.Len())
			backendtest.MustNil(t, m.Backend().Download(x, tr.batch.X))
			backendtest.MustNil(t, m.Backend().Download(targets, tr.batch.Targets))
			order = slices.Clone(tr.perm)
			cancel()
		}
		tr, err = NewTrainer(m, trainSet, test, cfg)
		backendtest.MustNil(t, err)
		defer tr.Close()
		if _, err := tr.Run(ctx); err != context.Canceled {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		return x, targets, order
	}
	norm := trainSet.Standardisation()
	size := trainSet.H * trainSet.W
	for _, tc := range []struct {
		sim         bool
		seed        uint64
		epoch, step int
	}{{false, 5, 1, 1}, {false, 5, 2, 3}, {false, 9, 1, 1}, {true, 5, 1, 1}, {true, 9, 2, 2}} {
		t.Run(fmt.Sprintf("sim=%v,seed=%d,epoch=%d,step=%d", tc.sim, tc.seed, tc.epoch, tc.step), func(t *testing.T) {
			x, targets, order := inputs(tc.sim, tc.seed, tc.epoch, tc.step)
			src := make([]float32, size)
			want := make([]float32, size)
			for i := range batch {
				row := int(order[(tc.step-1)*batch+i])
				for j, p := range trainSet.Images[row*size : (row+1)*size] {
					src[j] = float32((float64(p) - norm.Mean) / norm.Std) // as nn.Model.Upload
				}
				backendtest.MustNil(t, aug.Apply(want, src, 1, 12, 12, aug.Draw(tc.seed, uint64(tc.epoch-1), uint64(row))))
				backendtest.EqualBits(t, fmt.Sprintf("image %d (training row %d)", i, row), x[i*size:(i+1)*size], want)
				for c := range classes {
					if w := float32(0); (c == int(trainSet.Labels[row]) && targets[i*classes+c] != 1) || (c != int(trainSet.Labels[row]) && targets[i*classes+c] != w) {
						t.Fatalf("image %d (training row %d, label %d): target row %v, want one-hot at its label", i, row, trainSet.Labels[row], targets[i*classes:(i+1)*classes])
					}
				}
			}
		})
	}
	// The same seed gives the same crops; another seed other ones.
	a, _, _ := inputs(false, 5, 1, 2)
	b, _, _ := inputs(false, 5, 1, 2)
	c, _, _ := inputs(false, 6, 1, 2)
	if !slices.Equal(a, b) {
		t.Errorf("seed 5 twice gave different augmented batches")
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 5 and 6 gave the same batch")
	}
}

// TestValidationAndEarlyStop trains with a validation split: every
// epoch is validated, the test set is evaluated after the last epoch only
// (or every epoch with TestEveryEpoch), the best epoch is chosen on the
// validation accuracy, and with a learning rate too small to change the
// accuracy training stops Patience epochs after the first.
func TestValidationAndEarlyStop(t *testing.T) {
	const classes = 4
	all, err := data.Synthetic(200, 12, classes, 1)
	backendtest.MustNil(t, err)
	trainSet, val, err := all.Split(40, 3)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(30, 12, classes, 2)
	backendtest.MustNil(t, err)
	run := func(cfg Config) []EpochMetrics {
		m, err := nn.NewModel(backendtest.CPU(t), smallSpec(nn.SoftmaxCE, classes), 1)
		backendtest.MustNil(t, err)
		defer m.Close()
		tr, err := NewTrainer(m, trainSet, test, cfg)
		backendtest.MustNil(t, err)
		defer tr.Close()
		backendtest.MustNil(t, tr.SetValidation(val))
		if err := tr.SetValidation(val); err == nil {
			t.Errorf("a second SetValidation succeeded, want an error")
		}
		ems, err := tr.Run(context.Background())
		backendtest.MustNil(t, err)
		vl, va, err := tr.EvaluateValidation(context.Background())
		backendtest.MustNil(t, err)
		if last := ems[len(ems)-1]; vl != last.ValLoss || va != last.ValAcc {
			t.Errorf("EvaluateValidation after the run = %v, %v, want the last epoch's %v, %v", vl, va, last.ValLoss, last.ValAcc)
		}
		return ems
	}
	t.Run("test=end", func(t *testing.T) {
		ems := run(Config{Epochs: 3, Batch: 16, LR: 0.05, Momentum: 0.9, Seed: 1})
		if len(ems) != 3 {
			t.Fatalf("%d epochs, want 3", len(ems))
		}
		for i, em := range ems {
			if !em.Validated || em.Tested != (i == 2) || em.Stop {
				t.Errorf("epoch %d: validated %v, tested %v, stop %v; want validated, tested only after the last, no stop", i+1, em.Validated, em.Tested, em.Stop)
			}
		}
		if last := ems[2]; !(last.ValAcc > 0.5) || !(last.TestAcc > 0.5) {
			t.Errorf("after 3 epochs: validation accuracy %v, test %v; want both above 0.5 (chance 0.25)", last.ValAcc, last.TestAcc)
		}
		if !ems[0].Best {
			t.Errorf("the first epoch is not the best so far")
		}
	})
	t.Run("test=every", func(t *testing.T) {
		for i, em := range run(Config{Epochs: 2, Batch: 16, LR: 0.05, Seed: 1, TestEveryEpoch: true}) {
			if !em.Validated || !em.Tested {
				t.Errorf("epoch %d: validated %v, tested %v; want both", i+1, em.Validated, em.Tested)
			}
		}
	})
	t.Run("patience=2", func(t *testing.T) {
		ems := run(Config{Epochs: 10, Batch: 16, LR: 1e-12, Seed: 1, Patience: 2, MinDelta: 0.01})
		if len(ems) != 3 {
			t.Fatalf("%d epochs, want 3: the first and two without improvement", len(ems))
		}
		for i, em := range ems {
			if em.Best != (i == 0) || em.Stop != (i == 2) || em.Tested != (i == 2) {
				t.Errorf("epoch %d: best %v, stop %v, tested %v; want the first best and a stop and test after the third", i+1, em.Best, em.Stop, em.Tested)
			}
		}
	})
}

// TestRestoreSelection refuses a state whose best epoch was selected on
// the validation set in a trainer without one, and the reverse.
func TestRestoreSelection(t *testing.T) {
	trainSet, err := data.Synthetic(64, 12, 4, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(20, 12, 4, 2)
	backendtest.MustNil(t, err)
	for _, val := range []bool{false, true} {
		m, err := nn.NewModel(backendtest.CPU(t), smallSpec(nn.SoftmaxCE, 4), 1)
		backendtest.MustNil(t, err)
		defer m.Close()
		tr, err := NewTrainer(m, trainSet, test, Config{Epochs: 2, Batch: 16, LR: 0.01, Seed: 1})
		backendtest.MustNil(t, err)
		defer tr.Close()
		if val {
			backendtest.MustNil(t, tr.SetValidation(test))
		}
		st, err := tr.State()
		backendtest.MustNil(t, err)
		want := "selected on the validation set, this trainer selects on the test set"
		if val {
			st.BestTestAcc, want = 0.5, "selected on the test set, this trainer selects on the validation set"
		} else {
			st.BestValAcc = 0.5
		}
		if err := tr.Restore(st); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation set %v: Restore = %v, want an error containing %q", val, err, want)
		}
	}
}

// TestAugmentMicroBatches trains with augmentation (crop2,flip) in steps
// of 2 accumulated micro-batches and on 2 ranks of an in-process world:
// both must give the same weights bit for bit (each image is augmented by
// its own row's draw, whoever loads it), the loss near the one of whole
// batches (the same images, the gradient summed in another order), and
// other weights than without augmentation.
func TestAugmentMicroBatches(t *testing.T) {
	trainSet, err := data.Synthetic(96, 12, 4, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(20, 12, 4, 2)
	backendtest.MustNil(t, err)
	cfg := Config{Epochs: 2, Batch: 12, LR: 0.05, Momentum: 0.9, Schedule: Schedule{Kind: CosineLR}, Seed: 3, Augment: data.Augment{Pad: 2, Flip: true}}
	run := func(cfg Config) ([][]float32, []EpochMetrics) {
		m, err := nn.NewModel(backendtest.CPU(t), smallSpec(nn.SoftmaxCE, 4), 5)
		backendtest.MustNil(t, err)
		defer m.Close()
		tr, err := NewTrainer(m, trainSet, test, cfg)
		backendtest.MustNil(t, err)
		defer tr.Close()
		ems, err := tr.Run(context.Background())
		backendtest.MustNil(t, err)
		w, err := m.ParamValues()
		backendtest.MustNil(t, err)
		return w, ems
	}
	acc := cfg
	acc.Accum = 2
	wantW, wantEM := run(acc)
	w := newWorld(2)
	gotW := make([][][]float32, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cfg
			c.Comm = rankComm{w, r}
			gotW[r], _ = run(c)
		}()
	}
	wg.Wait()
	for r := range 2 {
		for i := range wantW {
			backendtest.EqualBits(t, fmt.Sprintf("rank %d, param %d", r, i), gotW[r][i], wantW[i])
		}
	}
	_, whole := run(cfg)
	for e := range whole {
		if d := math.Abs(whole[e].Loss - wantEM[e].Loss); d > 1e-4 {
			t.Errorf("epoch %d: loss %v with 2 micro-batches, %v in whole batches", e+1, wantEM[e].Loss, whole[e].Loss)
		}
	}
	plain := acc
	plain.Augment = data.Augment{}
	if plainW, _ := run(plain); slices.EqualFunc(plainW, wantW, slices.Equal) {
		t.Errorf("the same weights with and without augmentation")
	}
}
