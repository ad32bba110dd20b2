package train

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// smallSpec is a quick model for the 12×12 synthetic images.
func smallSpec(loss nn.LossKind, classes int) nn.Spec {
	return nn.Spec{C: 1, H: 12, W: 12, Loss: loss, Layers: []nn.LayerSpec{
		nn.ConvLayer(4, 3, 3), {Kind: nn.ReLU}, nn.PoolLayer(2), {Kind: nn.Flatten}, nn.DenseLayer(classes),
	}}
}

// trainSynthetic trains smallSpec on 500 synthetic images (so the last
// 500 mod 16 = 4 of each epoch are dropped) for 10 epochs of 31 steps and
// returns the trainer (not closed), the test loss before training and the
// metrics of each epoch.
func trainSynthetic(t *testing.T, loss nn.LossKind, seed uint64) (*nn.Model, float64, []EpochMetrics) {
	t.Helper()
	const classes = 4
	train, err := data.Synthetic(500, 12, classes, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(100, 12, classes, 2)
	backendtest.MustNil(t, err)
	be := backendtest.CPU(t)
	m, err := nn.NewModel(be, smallSpec(loss, classes), seed)
	backendtest.MustNil(t, err)
	cfg := Config{Epochs: 10, Batch: 16, LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4,
		Schedule: Schedule{Kind: CosineLR}, Seed: seed}
	tr, err := NewTrainer(m, train, test, cfg)
	backendtest.MustNil(t, err)
	t.Cleanup(func() { tr.Close() })
	if got := tr.StepsPerEpoch(); got != 31 {
		t.Fatalf("StepsPerEpoch = %d, want 31", got)
	}
	before, _, err := tr.Evaluate(context.Background())
	backendtest.MustNil(t, err)
	ms, err := tr.Run(context.Background())
	backendtest.MustNil(t, err)
	return m, before, ms
}

// TestTrainSynthetic trains 310 SGD steps on the synthetic problem and
// requires the test loss to fall by a factor of 10 or more and the test
// accuracy to reach 95 % (4 classes; chance is 25 %), for both losses.
// (Measured: softmax-CE 1.45 → 9e-5, accuracy 100 %; MSE 2.71 → 0.053,
// accuracy 99 %.)
func TestTrainSynthetic(t *testing.T) {
	for _, loss := range []nn.LossKind{nn.SoftmaxCE, nn.MSELoss} {
		t.Run("loss="+loss.String(), func(t *testing.T) {
			_, before, ms := trainSynthetic(t, loss, 1)
			if len(ms) != 10 {
				t.Fatalf("Run gave %d epochs of metrics, want 10", len(ms))
			}
			last := ms[len(ms)-1]
			t.Logf("test loss %.4g → %.4g, test accuracy %.3f, train loss %.4g", before, last.TestLoss, last.TestAcc, last.Loss)
			if !(last.TestLoss*10 <= before) {
				t.Errorf("test loss %g after 310 steps, want ≤ %g (a tenth of the initial %g)", last.TestLoss, before/10, before)
			}
			if last.TestAcc < 0.95 {
				t.Errorf("test accuracy %g after 310 steps, want ≥ 0.95", last.TestAcc)
			}
			if last.Images != 31*16 || last.Epoch != 10 || last.Epochs != 10 || !(last.ImagesPerSec > 0) {
				t.Errorf("last epoch metrics %+v: want epoch 10/10, 496 images, images/s > 0", last)
			}
			if !(last.LR < 0.05*0.03) {
				t.Errorf("last learning rate %g, want the cosine schedule near its end (< %g)", last.LR, 0.05*0.03)
			}
		})
	}
}

// TestTrainDeterministic checks that two runs with the same seed give
// bit-identical weights, also with 1 or 3 threads, and that another seed
// gives other weights.
func TestTrainDeterministic(t *testing.T) {
	weights := func(seed uint64) [][]float32 {
		m, _, _ := trainSynthetic(t, nn.SoftmaxCE, seed)
		v, err := m.ParamValues()
		backendtest.MustNil(t, err)
		return v
	}
	procs := runtime.GOMAXPROCS(0)
	a, b, c := weights(7), weights(7), weights(8)
	// One thread for cpuref's convolutions and the backend's passes.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	d := weights(7)
	runtime.GOMAXPROCS(3)
	e := weights(7)
	same := func(x, y [][]float32) (bool, int, int) {
		for i := range x {
			for j := range x[i] {
				if math.Float32bits(x[i][j]) != math.Float32bits(y[i][j]) {
					return false, i, j
				}
			}
		}
		return true, 0, 0
	}
	if ok, i, j := same(a, b); !ok {
		t.Errorf("seed 7 twice: param %d element %d = %g then %g, want bit-identical runs", i, j, a[i][j], b[i][j])
	}
	for _, x := range []struct {
		name string
		w    [][]float32
	}{{"GOMAXPROCS=1", d}, {"GOMAXPROCS=3", e}} {
		if ok, i, j := same(a, x.w); !ok {
			t.Errorf("seed 7 with %s: param %d element %d = %g, want %g as with GOMAXPROCS=%d", x.name, i, j, x.w[i][j], a[i][j], procs)
		}
	}
	if ok, _, _ := same(a, c); ok {
		t.Errorf("seeds 7 and 8 gave identical weights, want different runs")
	}
}

// TestTrainStepAllocs checks that a training step of the default network
// at batch 64 (load by index, forward, loss, backward, SGD) allocates
// nothing once its workspaces exist, and so does a whole epoch of the
// trainer (shuffle, steps, evaluation with a partial last batch).
func TestTrainStepAllocs(t *testing.T) {
	be := backendtest.CPU(t)
	m, err := nn.NewModel(be, nn.DefaultSpec(), 1)
	backendtest.MustNil(t, err)
	ds, err := data.Synthetic(64, 28, 10, 1)
	backendtest.MustNil(t, err)
	set, err := m.Upload(ds, ds.Standardisation())
	backendtest.MustNil(t, err)
	b, err := m.NewBatch(64)
	backendtest.MustNil(t, err)
	rows := make([]int32, 64)
	for i := range rows {
		rows[i] = int32(63 - i)
	}
	step := func() {
		backendtest.MustNil(t, m.Load(b, set, rows))
		backendtest.MustNil(t, m.TrainStep(b, 0.01, 0.9, 1e-4))
	}
	step()
	if got := testing.AllocsPerRun(5, step); got != 0 {
		t.Errorf("default network, batch 64: %g allocations per step, want 0", got)
	}

	train, err := data.Synthetic(100, 12, 4, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(37, 12, 4, 2)
	backendtest.MustNil(t, err)
	sm, err := nn.NewModel(be, smallSpec(nn.SoftmaxCE, 4), 1)
	backendtest.MustNil(t, err)
	tr, err := NewTrainer(sm, train, test, Config{Epochs: 100, Batch: 16, LR: 0.01, Schedule: Schedule{Kind: CosineLR}})
	backendtest.MustNil(t, err)
	defer tr.Close()
	ctx := context.Background()
	epoch := func() {
		if _, err := tr.RunEpoch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	epoch()
	if got := testing.AllocsPerRun(3, epoch); got != 0 {
		t.Errorf("small network: %g allocations per epoch, want 0", got)
	}
}

func TestTrainCancel(t *testing.T) {
	train, err := data.Synthetic(64, 12, 4, 1)
	backendtest.MustNil(t, err)
	m, err := nn.NewModel(backendtest.CPU(t), smallSpec(nn.SoftmaxCE, 4), 1)
	backendtest.MustNil(t, err)
	calls := 0
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{Epochs: 3, Batch: 8, LR: 0.01, ProgressEvery: 2, OnProgress: func(p Progress) {
		calls++
		if p.Epoch == 2 && p.Step == 4 {
			cancel()
		}
	}}
	tr, err := NewTrainer(m, train, train, cfg)
	backendtest.MustNil(t, err)
	defer tr.Close()
	ms, err := tr.Run(ctx)
	if !errors.Is(err, context.Canceled) || len(ms) != 1 || tr.Epoch() != 1 {
		t.Errorf("Run cancelled in epoch 2 = %d epochs, %v; want 1 epoch and context.Canceled", len(ms), err)
	}
	if calls != 4+2 {
		t.Errorf("OnProgress called %d times, want 4 in epoch 1 (steps 2,4,6,8) and 2 in epoch 2", calls)
	}
}

func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		name        string
		s           Schedule
		epoch, step int
		want        float64
	}{
		{"kind=constant", Schedule{Kind: ConstantLR}, 5, 500, 0.1},
		{"kind=step,epoch=0", Schedule{Kind: StepLR, Every: 2, Gamma: 0.5}, 0, 0, 0.1},
		{"kind=step,epoch=1", Schedule{Kind: StepLR, Every: 2, Gamma: 0.5}, 1, 150, 0.1},
		{"kind=step,epoch=2", Schedule{Kind: StepLR, Every: 2, Gamma: 0.5}, 2, 250, 0.05},
		{"kind=step,epoch=5", Schedule{Kind: StepLR, Every: 2, Gamma: 0.5}, 5, 550, 0.025},
		{"kind=cosine,step=0", Schedule{Kind: CosineLR}, 0, 0, 0.1},
		{"kind=cosine,step=half", Schedule{Kind: CosineLR}, 5, 500, 0.05},
		{"kind=cosine,step=quarter", Schedule{Kind: CosineLR}, 2, 250, 0.05 * (1 + math.Sqrt(0.5))},
		{"kind=constant,warmup=10,step=0", Schedule{Kind: ConstantLR, Warmup: 10}, 0, 0, 0.01},
		{"kind=constant,warmup=10,step=4", Schedule{Kind: ConstantLR, Warmup: 10}, 0, 4, 0.05},
		{"kind=constant,warmup=10,step=9", Schedule{Kind: ConstantLR, Warmup: 10}, 0, 9, 0.1},
		{"kind=constant,warmup=10,step=10", Schedule{Kind: ConstantLR, Warmup: 10}, 0, 10, 0.1},
		{"kind=cosine,warmup=500,step=half", Schedule{Kind: CosineLR, Warmup: 500}, 5, 499, 0.1 * 0.5 * (1 + math.Cos(math.Pi*0.499))},
		{"kind=step,warmup=200,epoch=1", Schedule{Kind: StepLR, Every: 1, Gamma: 0.5, Warmup: 200}, 1, 149, 0.1 * 0.75 * 0.5},
	} {
		if got := tc.s.LR(0.1, tc.epoch, tc.step, 1000); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("%s: LR(0.1, epoch %d, step %d of 1000) = %g, want %g", tc.name, tc.epoch, tc.step, got, tc.want)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	good := Config{Epochs: 1, Batch: 8, LR: 0.1}
	if err := good.Check(); err != nil {
		t.Fatalf("Check(%+v) = %v", good, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"epochs=0", func(c *Config) { c.Epochs = 0 }},
		{"batch=0", func(c *Config) { c.Batch = 0 }},
		{"batch=5000", func(c *Config) { c.Batch = 5000 }},
		{"lr=0", func(c *Config) { c.LR = 0 }},
		{"lr=NaN", func(c *Config) { c.LR = math.NaN() }},
		{"momentum=1", func(c *Config) { c.Momentum = 1 }},
		{"wd=-1", func(c *Config) { c.WeightDecay = -1 }},
		{"step-gamma=0", func(c *Config) { c.Schedule = Schedule{Kind: StepLR, Every: 1} }},
		{"schedule=9", func(c *Config) { c.Schedule = Schedule{Kind: 9} }},
	} {
		c := good
		tc.edit(&c)
		if err := c.Check(); err == nil {
			t.Errorf("Check(%s) = nil, want an error", tc.name)
		}
	}
}

// TestTrainResume stops a run in the middle of its second epoch, moves the
// parameters, velocities and TrainState into a fresh model and trainer,
// and finishes there, and also lets the stopped trainer finish: the
// weights must be bit-identical to a run straight through.
func TestTrainResume(t *testing.T) {
	train, err := data.Synthetic(200, 12, 4, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(30, 12, 4, 2)
	backendtest.MustNil(t, err)
	be := backendtest.CPU(t)
	cfg := Config{Epochs: 3, Batch: 16, LR: 0.05, Momentum: 0.9, WeightDecay: 1e-3, Schedule: Schedule{Kind: CosineLR}, Seed: 5}
	newTrainer := func(cfg Config) (*nn.Model, *Trainer) {
		m, err := nn.NewModel(be, smallSpec(nn.SoftmaxCE, 4), 9)
		backendtest.MustNil(t, err)
		tr, err := NewTrainer(m, train, test, cfg)
		backendtest.MustNil(t, err)
		t.Cleanup(func() { tr.Close(); m.Close() })
		return m, tr
	}
	straight, tr := newTrainer(cfg)
	wantMs, err := tr.Run(context.Background())
	backendtest.MustNil(t, err)
	want, err := straight.ParamValues()
	backendtest.MustNil(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	stopped := cfg
	stopped.ProgressEvery = 1
	stopped.OnProgress = func(p Progress) {
		if p.Epoch == 2 && p.Step == 5 {
			cancel()
		}
	}
	first, tr1 := newTrainer(stopped)
	if _, err := tr1.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	st, err := tr1.State()
	backendtest.MustNil(t, err)
	if st.Epoch != 1 || st.StepEpoch != 5 || st.Step != 12+5 {
		t.Fatalf("State = %+v, want epoch 1, step 5 of epoch 2, step 17", st)
	}
	second, tr2 := newTrainer(cfg)
	for i, p := range first.Params() {
		q := second.Params()[i]
		for _, pair := range [][2]backend.Tensor{{p.Value, q.Value}, {p.Vel, q.Vel}} {
			v := make([]float32, pair[0].Len())
			backendtest.MustNil(t, be.Download(v, pair[0]))
			backendtest.MustNil(t, be.Upload(pair[1], v))
		}
	}
	backendtest.MustNil(t, tr2.Restore(st))
	ms, err := tr2.Run(context.Background())
	backendtest.MustNil(t, err)
	if len(ms) != 2 || ms[0].Epoch != 2 || ms[0].Images != (12-5)*16 {
		t.Errorf("resumed Run: %d epochs, first %d with %d images; want epochs 2 and 3, %d images in epoch 2", len(ms), ms[0].Epoch, ms[0].Images, 7*16)
	}
	// The resumed epoch reports the whole epoch's loss and accuracy, as
	// the straight run does, bit for bit (the sums of its first 5 steps
	// come with the state), and the elapsed time continues.
	sameMetrics := func(name string, got, want []EpochMetrics) {
		t.Helper()
		for i := range got {
			g, w := got[i], want[len(want)-len(got)+i]
			if g.Epoch != w.Epoch || g.Loss != w.Loss || g.TrainAcc != w.TrainAcc || g.Averaged != 12 ||
				g.TestLoss != w.TestLoss || g.TestAcc != w.TestAcc || g.Best != w.Best {
				t.Errorf("%s epoch %d: loss %v, train %v over %d steps, test %v %v; straight: loss %v, train %v over %d steps, test %v %v",
					name, g.Epoch, g.Loss, g.TrainAcc, g.Averaged, g.TestLoss, g.TestAcc, w.Loss, w.TrainAcc, w.Averaged, w.TestLoss, w.TestAcc)
			}
		}
	}
	sameMetrics("resumed", ms, wantMs)
	// Best marks the epochs whose test accuracy beats all before, across
	// the resume (the state carries the best so far).
	bestAcc := -1.0
	for _, m := range wantMs {
		if m.Best != (m.TestAcc > bestAcc) {
			t.Errorf("straight run epoch %d: Best %v with test accuracy %v after a best of %v", m.Epoch, m.Best, m.TestAcc, bestAcc)
		}
		bestAcc = max(bestAcc, m.TestAcc)
	}
	if st.BestEpoch != 1 || st.BestTestAcc != wantMs[0].TestAcc {
		t.Errorf("State in epoch 2: best epoch %d at %v, want 1 at %v", st.BestEpoch, st.BestTestAcc, wantMs[0].TestAcc)
	}
	// A restored best of 100 % is never beaten.
	_, tr3 := newTrainer(cfg)
	perfect := st
	perfect.BestTestAcc = 1
	backendtest.MustNil(t, tr3.Restore(perfect))
	ms3, err := tr3.Run(context.Background())
	backendtest.MustNil(t, err)
	for _, m := range ms3 {
		if m.Best {
			t.Errorf("epoch %d after restoring a best of 100%%: Best with test accuracy %v", m.Epoch, m.TestAcc)
		}
	}
	if !st.HasEpochSums || st.ElapsedSeconds <= 0 {
		t.Errorf("State = %+v, want the epoch's sums and the time elapsed", st)
	}
	if ms[0].Elapsed.Seconds() < st.ElapsedSeconds {
		t.Errorf("resumed epoch: elapsed %v, less than the %g s of the state", ms[0].Elapsed, st.ElapsedSeconds)
	}
	if _, err := tr2.RunEpoch(context.Background()); err == nil || !strings.Contains(err.Error(), "all 3 epochs are done") {
		t.Errorf("RunEpoch after the last epoch = %v, want an error", err)
	}
	got, err := second.ParamValues()
	backendtest.MustNil(t, err)
	for i := range want {
		backendtest.EqualBits(t, second.Params()[i].Name, got[i], want[i])
	}
	// The stopped trainer itself continues where it stopped, too.
	ms1, err := tr1.Run(context.Background())
	backendtest.MustNil(t, err)
	sameMetrics("continued", ms1, wantMs)
	got, err = first.ParamValues()
	backendtest.MustNil(t, err)
	for i := range want {
		backendtest.EqualBits(t, "continued "+first.Params()[i].Name, got[i], want[i])
	}
	if err := tr2.Restore(TrainState{Epoch: 1, StepEpoch: 3, Step: 3, Shuffle: st.Shuffle}); err == nil {
		t.Errorf("Restore(inconsistent step) = nil, want an error")
	}
	for _, bad := range []TrainState{
		{Epoch: 1, StepEpoch: 5, Step: 17, EpochCorrect: 5*16 + 1, HasEpochSums: true}, // more correct than images
		{Epoch: 1, StepEpoch: 0, Step: 12, EpochLossSum: 1, HasEpochSums: true},        // sums at an epoch boundary
		{Epoch: 1, StepEpoch: 5, Step: 17, EpochLossSum: 1},                            // sums without the flag
		{Epoch: 1, StepEpoch: 5, Step: 17, ElapsedSeconds: -1},
	} {
		bad.Shuffle = st.Shuffle
		if err := tr2.Restore(bad); err == nil {
			t.Errorf("Restore(%+v) = nil, want an error", bad)
		}
	}
}

// TestTrainerEpochCopies trains epochs on the GPU backend (simulator) and
// counts the bytes copied between host and device: an epoch uploads its
// order of the training images once (4 bytes per image) and no step
// uploads anything, so a GPU runs the queued steps without the host
// waiting on a copy. What comes down is read only to report: every
// ProgressEvery steps and at the end of the epoch the loss sum, the count
// of correct predictions and the answer of the divergence check (run on
// the device: no parameter or gradient comes down); then two sums per
// evaluation batch. With augmentation too: the crops and flips are drawn
// on the device.
func TestTrainerEpochCopies(t *testing.T) {
	train, err := data.Synthetic(100, 12, 4, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(37, 12, 4, 2)
	backendtest.MustNil(t, err)
	for _, aug := range []data.Augment{{}, {Pad: 2, Flip: true}} {
		t.Run("augment="+aug.String(), func(t *testing.T) {
			be, dev := backendtest.Sim(t)
			m, err := nn.NewModel(be, smallSpec(nn.SoftmaxCE, 4), 1)
			backendtest.MustNil(t, err)
			defer m.Close()
			reports := 0
			tr, err := NewTrainer(m, train, test, Config{Epochs: 2, Batch: 16, LR: 0.01, Seed: 3, Augment: aug,
				ProgressEvery: 3, OnProgress: func(Progress) { reports++ }})
			backendtest.MustNil(t, err)
			defer tr.Close()
			for epoch := range 2 {
				before := dev.MemStats()
				reports = 0
				_, err := tr.RunEpoch(context.Background())
				backendtest.MustNil(t, err)
				s := dev.MemStats()
				// The first epoch also uploads, once per trainer, the device
				// tables of the optimiser (6 words of 8 bytes per parameter) and
				// of the divergence check (3 words per value and per gradient).
				want := int64(4 * 100)
				if epoch == 0 {
					want += int64(len(m.Params())) * (6*8 + 2*3*8)
				}
				if up := s.HtoDBytes - before.HtoDBytes; up != want {
					t.Errorf("epoch %d: %d bytes uploaded, want %d (the order of the 100 images, the tables)", epoch+1, up, want)
				}
				// 6 steps, reports after steps 3 and 6, then the end of the epoch:
				// three checks, two sums and the check's answer each; two evaluation
				// batches (16 and 21).
				if reports != 2 {
					t.Errorf("epoch %d: %d progress reports, want 2", epoch+1, reports)
				}
				if down, want := s.DtoHBytes-before.DtoHBytes, int64(3*4*3+4*2*2); down != want {
					t.Errorf("epoch %d: %d bytes downloaded, want %d", epoch+1, down, want)
				}
			}
		})
	}
}
