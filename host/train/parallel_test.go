package train

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// world is an in-process Comm of n ranks for tests: every collective waits
// for all ranks, then each computes the result from all the ranks' inputs
// in rank order, as dist.MPI's OrderedSum does.
type world struct {
	n     int
	mu    sync.Mutex
	cond  *sync.Cond
	slots [][]float64
	round int
	count int
}

func newWorld(n int) *world {
	w := &world{n: n, slots: make([][]float64, n)}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// gather returns every rank's in, in rank order, once all have given theirs.
func (w *world) gather(rank int, in []float64) [][]float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.count >= w.n { // the previous round is still being read
		w.cond.Wait()
	}
	w.slots[rank] = append([]float64(nil), in...)
	w.count++
	round := w.round
	if w.count == w.n {
		w.cond.Broadcast()
	}
	for w.count < w.n && w.round == round {
		w.cond.Wait()
	}
	out := make([][]float64, w.n)
	copy(out, w.slots)
	// The last reader of this round opens the next one.
	w.count++
	if w.count == 2*w.n {
		w.count, w.round = 0, w.round+1
		w.cond.Broadcast()
	}
	return out
}

type rankComm struct {
	w    *world
	rank int
}

func (c rankComm) Rank() int { return c.rank }
func (c rankComm) Size() int { return c.w.n }
func (c rankComm) OrderedSum(buf []float32) error {
	in := make([]float64, len(buf))
	for i, v := range buf {
		in[i] = float64(v)
	}
	all := c.w.gather(c.rank, in)
	for i := range buf {
		s := float32(all[0][i])
		for r := 1; r < c.w.n; r++ {
			s += float32(all[r][i])
		}
		buf[i] = s
	}
	return nil
}
func (c rankComm) AllreduceSum(buf []float32) error { return c.OrderedSum(buf) }
func (c rankComm) Allgather(dst, src []float32) error {
	if len(dst) != c.w.n*len(src) {
		return fmt.Errorf("Allgather: %d values for %d ranks of %d", len(dst), c.w.n, len(src))
	}
	in := make([]float64, len(src))
	for i, v := range src {
		in[i] = float64(v)
	}
	for r, a := range c.w.gather(c.rank, in) {
		for i, v := range a {
			dst[r*len(src)+i] = float32(v)
		}
	}
	return nil
}
func (c rankComm) AllreduceSumF64(buf []float64) error {
	all := c.w.gather(c.rank, buf)
	for i := range buf {
		buf[i] = 0
		for r := range c.w.n {
			buf[i] += all[r][i]
		}
	}
	return nil
}
func (c rankComm) AnyTrue(flag bool) (bool, error) {
	v := []float64{0}
	if flag {
		v[0] = 1
	}
	if err := c.AllreduceSumF64(v); err != nil {
		return false, err
	}
	return v[0] > 0, nil
}
func (c rankComm) Same(v uint64) (bool, error) {
	all := c.w.gather(c.rank, []float64{float64(v >> 32), float64(v & 0xffffffff)})
	for _, a := range all {
		if a[0] != all[0][0] || a[1] != all[0][1] {
			return false, nil
		}
	}
	return true, nil
}

// TestDataParallelEqualsAccumulation trains the same network for two epochs
// (a) in one process accumulating P micro-batches per step and (b) on P
// ranks of an in-process world with the ordered reduction, for P = 2 and 3,
// and requires the same weights bit for bit, the same accuracies and the
// same losses within float32 rounding; then (c) without accumulation, the loss must be
// near (a)'s: the same mean gradient summed in another order.
func TestDataParallelEqualsAccumulation(t *testing.T) {
	trainSet, err := data.Synthetic(96, 12, 4, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(20, 12, 4, 2)
	backendtest.MustNil(t, err)
	spec := nn.Spec{C: 1, H: 12, W: 12, Loss: nn.SoftmaxCE, Layers: []nn.LayerSpec{
		nn.ConvLayer(4, 3, 3), {Kind: nn.ReLU}, nn.PoolLayer(2), {Kind: nn.Flatten}, nn.DenseLayer(4)}}
	cfg := Config{Epochs: 2, Batch: 12, LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4, Schedule: Schedule{Kind: CosineLR}, Seed: 3}
	run := func(cfg Config) ([][]float32, []EpochMetrics) {
		m, err := nn.NewModel(backendtest.CPU(t), spec, 5)
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
	for _, p := range []int{2, 3} {
		t.Run(fmt.Sprintf("ranks=%d", p), func(t *testing.T) {
			acc := cfg
			acc.Accum = p
			wantW, wantEM := run(acc)
			w := newWorld(p)
			gotW := make([][][]float32, p)
			gotEM := make([][]EpochMetrics, p)
			var wg sync.WaitGroup
			for r := range p {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := cfg
					c.Comm = rankComm{w, r}
					gotW[r], gotEM[r] = run(c)
				}()
			}
			wg.Wait()
			for r := range p {
				for i := range wantW {
					backendtest.EqualBits(t, fmt.Sprintf("rank %d, param %d", r, i), gotW[r][i], wantW[i])
				}
				for e := range wantEM {
					g, x := gotEM[r][e], wantEM[e]
					// Accuracies are counts: exact. The loss is a sum of the
					// micro-batches' mean losses, each rank's in float32 on its
					// backend, then over the ranks in float64, where one
					// process sums them all in float32: a few float32 ulp.
					if math.Abs(g.Loss-x.Loss) > 1e-6*x.Loss || g.TrainAcc != x.TrainAcc || g.TestAcc != x.TestAcc {
						t.Errorf("rank %d epoch %d: loss %v train %v test %v, want %v %v %v", r, e+1, g.Loss, g.TrainAcc, g.TestAcc, x.Loss, x.TrainAcc, x.TestAcc)
					}
				}
			}
			_, plain := run(cfg)
			for e := range plain {
				if d := math.Abs(plain[e].Loss - wantEM[e].Loss); d > 1e-4 {
					t.Errorf("epoch %d: loss %v with %d micro-batches, %v without", e+1, wantEM[e].Loss, p, plain[e].Loss)
				}
			}
		})
	}
	bad := cfg
	bad.Accum = 5
	m, err := nn.NewModel(backendtest.CPU(t), spec, 5)
	backendtest.MustNil(t, err)
	defer m.Close()
	if _, err := NewTrainer(m, trainSet, test, bad); err == nil {
		t.Errorf("a batch of 12 in 5 micro-batches: no error")
	}
}

// TestResumeOtherWorld stops a run after its first epoch on 2 ranks and
// resumes it in one process with -accum 2, and stops a one-process run
// with -accum 2 and resumes it on 2 ranks: both finish with the weights of
// the straight one-process run, bit for bit (the state records the world
// it was written by; the weights and velocities move as a checkpoint moves
// them).
func TestResumeOtherWorld(t *testing.T) {
	trainSet, err := data.Synthetic(48, 12, 4, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(8, 12, 4, 2)
	backendtest.MustNil(t, err)
	spec := nn.Spec{C: 1, H: 12, W: 12, Loss: nn.SoftmaxCE, Layers: []nn.LayerSpec{
		nn.ConvLayer(3, 3, 3), {Kind: nn.ReLU}, nn.PoolLayer(2), {Kind: nn.Flatten}, nn.DenseLayer(4)}}
	base := Config{Epochs: 2, Batch: 8, LR: 0.05, Momentum: 0.9, Schedule: Schedule{Kind: CosineLR}, Seed: 3}
	type snapshot struct {
		st    TrainState
		value [][]float32
		vel   [][]float32
	}
	newRun := func(cfg Config) (*nn.Model, *Trainer) {
		m, err := nn.NewModel(backendtest.CPU(t), spec, 5)
		backendtest.MustNil(t, err)
		tr, err := NewTrainer(m, trainSet, test, cfg)
		backendtest.MustNil(t, err)
		t.Cleanup(func() { tr.Close(); m.Close() })
		return m, tr
	}
	save := func(m *nn.Model, tr *Trainer) snapshot {
		st, err := tr.State()
		backendtest.MustNil(t, err)
		s := snapshot{st: st}
		for _, p := range m.Params() {
			v, vel := make([]float32, p.Value.Len()), make([]float32, p.Vel.Len())
			backendtest.MustNil(t, m.Backend().Download(v, p.Value))
			backendtest.MustNil(t, m.Backend().Download(vel, p.Vel))
			s.value, s.vel = append(s.value, v), append(s.vel, vel)
		}
		return s
	}
	load := func(m *nn.Model, tr *Trainer, s snapshot) {
		for i, p := range m.Params() {
			backendtest.MustNil(t, m.Backend().Upload(p.Value, s.value[i]))
			backendtest.MustNil(t, m.Backend().Upload(p.Vel, s.vel[i]))
		}
		backendtest.MustNil(t, tr.Restore(s.st))
	}
	accum := base
	accum.Accum = 2
	m, tr := newRun(accum)
	_, err = tr.Run(context.Background())
	backendtest.MustNil(t, err)
	want, err := m.ParamValues()
	backendtest.MustNil(t, err)

	// Two ranks for one epoch, then one process.
	w := newWorld(2)
	var snaps [2]snapshot
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := base
			c.Comm = rankComm{w, r}
			m, tr := newRun(c)
			_, err := tr.RunEpoch(context.Background())
			backendtest.MustNil(t, err)
			snaps[r] = save(m, tr)
		}()
	}
	wg.Wait()
	if snaps[0].st.World != 2 {
		t.Errorf("the 2-rank state records world %d", snaps[0].st.World)
	}
	m1, tr1 := newRun(accum)
	load(m1, tr1, snaps[0])
	_, err = tr1.Run(context.Background())
	backendtest.MustNil(t, err)
	got, err := m1.ParamValues()
	backendtest.MustNil(t, err)
	for i := range want {
		backendtest.EqualBits(t, fmt.Sprintf("2 ranks then 1, param %d", i), got[i], want[i])
	}

	// One process for one epoch, then two ranks.
	m2, tr2 := newRun(accum)
	_, err = tr2.RunEpoch(context.Background())
	backendtest.MustNil(t, err)
	snap := save(m2, tr2)
	w = newWorld(2)
	var gotRanks [2][][]float32
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := base
			c.Comm = rankComm{w, r}
			m, tr := newRun(c)
			load(m, tr, snap)
			_, err := tr.Run(context.Background())
			backendtest.MustNil(t, err)
			gotRanks[r], err = m.ParamValues()
			backendtest.MustNil(t, err)
		}()
	}
	wg.Wait()
	for r := range 2 {
		for i := range want {
			backendtest.EqualBits(t, fmt.Sprintf("1 process then rank %d, param %d", r, i), gotRanks[r][i], want[i])
		}
	}
}

// TestShardedEvaluation evaluates a trained network's test set in one
// process and on P in-process ranks, each evaluating its share of the
// batches, and requires every rank to return the one process's loss and
// accuracy bit for bit: sets with and without a tail batch, fewer batches
// than ranks, and a batch count that P does not divide.
func TestShardedEvaluation(t *testing.T) {
	trainSet, err := data.Synthetic(48, 12, 4, 1)
	backendtest.MustNil(t, err)
	spec := nn.Spec{C: 1, H: 12, W: 12, Loss: nn.SoftmaxCE, Layers: []nn.LayerSpec{
		nn.ConvLayer(4, 3, 3), {Kind: nn.BatchNorm}, {Kind: nn.ReLU}, nn.PoolLayer(2), {Kind: nn.Flatten}, nn.DenseLayer(4)}}
	cfg := Config{Epochs: 1, Batch: 8, LR: 0.05, Momentum: 0.9, Seed: 3}
	// eval trains one epoch in one process (every rank then holds the same
	// weights), then evaluates the test set in the world c.
	eval := func(test *data.Dataset, c Comm) (float64, float64) {
		m, err := nn.NewModel(backendtest.CPU(t), spec, 5)
		backendtest.MustNil(t, err)
		defer m.Close()
		tr, err := NewTrainer(m, trainSet, test, cfg)
		backendtest.MustNil(t, err)
		defer tr.Close()
		_, err = tr.RunEpoch(context.Background())
		backendtest.MustNil(t, err)
		tr.cfg.Comm = c
		loss, acc, err := tr.Evaluate(context.Background())
		backendtest.MustNil(t, err)
		return loss, acc
	}
	for _, n := range []int{8, 13, 40, 45, 61} {
		test, err := data.Synthetic(n, 12, 4, 2)
		backendtest.MustNil(t, err)
		wantLoss, wantAcc := eval(test, nil)
		for _, p := range []int{2, 3, 4} {
			w := newWorld(p)
			loss, acc := make([]float64, p), make([]float64, p)
			var wg sync.WaitGroup
			for r := range p {
				wg.Add(1)
				go func() {
					defer wg.Done()
					loss[r], acc[r] = eval(test, rankComm{w, r})
				}()
			}
			wg.Wait()
			for r := range p {
				if math.Float64bits(loss[r]) != math.Float64bits(wantLoss) || acc[r] != wantAcc {
					t.Errorf("test=%d,ranks=%d: rank %d: loss %v accuracy %v, want %v %v (one process)", n, p, r, loss[r], acc[r], wantLoss, wantAcc)
				}
			}
		}
	}
}

// TestSyncBatchNorm trains a network with BatchNorm for two epochs on P
// in-process ranks with Config.SyncBN and the ordered reduction, and in
// one process on the whole global batch without accumulation, and
// requires the ranks' weights and running statistics to be near the one
// process's, and the ranks to agree with each other bit for bit. Not bit
// for bit with the one process: its BatchNorm sums run over the whole
// batch in one lane sum, and its weight gradients over the whole batch in
// one reduction, where the ranks add their own sums in rank order (a few
// float32 ulps per step, grown over 16 steps of momentum SGD): the
// distance, |got − want|/(1e-3 + |want|) over every value, measured
// 8.6e-6 at P = 2 and 2.5e-5 at P = 3; the tolerance is 2e-4. Per-rank
// BatchNorm (SyncBN off) lands at about 15, and the test requires it to
// be at least 100 times the tolerance, so that it cannot pass without the
// synchronisation.
func TestSyncBatchNorm(t *testing.T) {
	trainSet, err := data.Synthetic(96, 12, 4, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(20, 12, 4, 2)
	backendtest.MustNil(t, err)
	layers, err := nn.ParseSpec("conv3x3x4,bn,relu,maxpool2,conv3x3x6p1,bn,relu,gap,dense4")
	backendtest.MustNil(t, err)
	spec := nn.Spec{C: 1, H: 12, W: 12, Loss: nn.SoftmaxCE, Layers: layers}
	cfg := Config{Epochs: 2, Batch: 12, LR: 0.05, Momentum: 0.9, Seed: 3}
	run := func(cfg Config) [][]float32 {
		m, err := nn.NewModel(backendtest.CPU(t), spec, 5)
		backendtest.MustNil(t, err)
		defer m.Close()
		tr, err := NewTrainer(m, trainSet, test, cfg)
		backendtest.MustNil(t, err)
		defer tr.Close()
		_, err = tr.Run(context.Background())
		backendtest.MustNil(t, err)
		w, err := m.ParamValues()
		backendtest.MustNil(t, err)
		for _, p := range m.Buffers() {
			v := make([]float32, p.Value.Len())
			backendtest.MustNil(t, m.Backend().Download(v, p.Value))
			w = append(w, v)
		}
		return w
	}
	ranks := func(p int, syncBN bool) [][][]float32 {
		w := newWorld(p)
		got := make([][][]float32, p)
		var wg sync.WaitGroup
		for r := range p {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := cfg
				c.Comm, c.SyncBN = rankComm{w, r}, syncBN
				got[r] = run(c)
			}()
		}
		wg.Wait()
		return got
	}
	// maxDiff is the largest |got − want| / (1e-3 + |want|) over every tensor.
	maxDiff := func(got, want [][]float32) float64 {
		var d float64
		for i := range want {
			for j := range want[i] {
				d = max(d, math.Abs(float64(got[i][j]-want[i][j]))/(1e-3+math.Abs(float64(want[i][j]))))
			}
		}
		return d
	}
	want := run(cfg)
	for _, p := range []int{2, 3} {
		t.Run(fmt.Sprintf("ranks=%d", p), func(t *testing.T) {
			synced, perRank := ranks(p, true), ranks(p, false)
			for r := 1; r < p; r++ {
				for i := range synced[0] {
					backendtest.EqualBits(t, fmt.Sprintf("rank %d against rank 0, tensor %d", r, i), synced[r][i], synced[0][i])
				}
			}
			dSync, dPer := maxDiff(synced[0], want), maxDiff(perRank[0], want)
			t.Logf("largest relative distance from one process: %.3g synchronised, %.3g per rank", dSync, dPer)
			const tol = 2e-4
			if dSync > tol {
				t.Errorf("synchronised BatchNorm: distance %.3g from one process on the global batch, want ≤ %g", dSync, tol)
			}
			if dPer < 100*tol {
				t.Errorf("per-rank BatchNorm: distance %.3g from one process, want ≥ %g (else the test cannot tell the two apart)", dPer, 100*tol)
			}
		})
	}
}

// hostDeviceComm is a DeviceComm for tests over an in-process world: each
// collective downloads the tensor, runs the world's collective on the host
// and uploads the result; calls counts them.
type hostDeviceComm struct {
	c     rankComm
	be    backend.Backend
	calls *int
}

func (d hostDeviceComm) AllreduceSum(ts []backend.Tensor) error {
	*d.calls++
	for _, t := range ts {
		v := make([]float32, t.Len())
		if err := d.be.Download(v, t); err != nil {
			return err
		}
		if err := d.c.AllreduceSum(v); err != nil {
			return err
		}
		if err := d.be.Upload(t, v); err != nil {
			return err
		}
	}
	return nil
}

func (d hostDeviceComm) Allgather(dst, src []backend.Tensor) error {
	*d.calls++
	if len(dst) != len(src) {
		return fmt.Errorf("Allgather of %d tensors into %d", len(src), len(dst))
	}
	for i := range src {
		v, all := make([]float32, src[i].Len()), make([]float32, dst[i].Len())
		if err := d.be.Download(v, src[i]); err != nil {
			return err
		}
		if err := d.c.Allgather(all, v); err != nil {
			return err
		}
		if err := d.be.Upload(dst[i], all); err != nil {
			return err
		}
	}
	return nil
}

// TestDeviceReduceEqualsHost trains on P in-process ranks with the
// gradients reduced on the backend (Config.DeviceComm: accumulation,
// gather, ordered sum and division by backend operations) and with the
// host path, for both reductions, with and without accumulation, on the
// CPU backend and (not in -short) the simulated GPU, and requires the
// same weights bit for bit; the device collectives must have run, one
// call per step (all the parameters at once: one NCCL group on a GPU).
func TestDeviceReduceEqualsHost(t *testing.T) {
	trainSet, err := data.Synthetic(48, 12, 4, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(10, 12, 4, 2)
	backendtest.MustNil(t, err)
	spec := nn.Spec{C: 1, H: 12, W: 12, Loss: nn.SoftmaxCE, Layers: []nn.LayerSpec{
		nn.ConvLayer(3, 3, 3), {Kind: nn.ReLU}, nn.PoolLayer(2), {Kind: nn.Flatten}, nn.DenseLayer(4)}}
	type tc struct {
		be           string
		ranks, accum int
		reduce       ReduceKind
	}
	cases := []tc{{"cpu", 2, 1, OrderedReduce}, {"cpu", 2, 1, SumReduce}, {"cpu", 3, 1, OrderedReduce}, {"cpu", 2, 2, OrderedReduce},
		{"cpu", 3, 2, SumReduce}}
	if !testing.Short() {
		cases = append(cases, tc{"sim", 2, 2, OrderedReduce})
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("backend=%s,ranks=%d,accum=%d,reduce=%v", c.be, c.ranks, c.accum, c.reduce), func(t *testing.T) {
			cfg := Config{Epochs: 1, Batch: 12, LR: 0.05, Momentum: 0.9, Seed: 3, Accum: c.accum, Reduce: c.reduce}
			if c.be == "sim" {
				cfg.Batch = 4 * c.ranks * c.accum / 2
			}
			run := func(device bool) [][][]float32 {
				w := newWorld(c.ranks)
				got := make([][][]float32, c.ranks)
				calls := make([]int, c.ranks)
				steps := 0
				var wg sync.WaitGroup
				for r := range c.ranks {
					wg.Add(1)
					go func() {
						defer wg.Done()
						be := backendtest.CPU(t)
						if c.be == "sim" {
							be, _ = backendtest.Sim(t)
						}
						m, err := nn.NewModel(be, spec, 5)
						backendtest.MustNil(t, err)
						defer m.Close()
						cf := cfg
						cf.Comm = rankComm{w, r}
						if device {
							cf.DeviceComm = hostDeviceComm{rankComm{w, r}, be, &calls[r]}
						}
						tr, err := NewTrainer(m, trainSet, test, cf)
						backendtest.MustNil(t, err)
						defer tr.Close()
						if r == 0 {
							steps = cfg.Epochs * tr.StepsPerEpoch()
						}
						_, err = tr.Run(context.Background())
						backendtest.MustNil(t, err)
						got[r], err = m.ParamValues()
						backendtest.MustNil(t, err)
					}()
				}
				wg.Wait()
				for r := range c.ranks {
					if device && (calls[r] == 0 || calls[r] != steps) {
						t.Errorf("rank %d: %d calls of the device collectives in %d steps, want one per step", r, calls[r], steps)
					}
					if got[r] == nil {
						t.Fatalf("rank %d failed", r)
					}
				}
				return got
			}
			host, device := run(false), run(true)
			for r := range c.ranks {
				for i := range host[0] {
					backendtest.EqualBits(t, fmt.Sprintf("rank %d, param %d", r, i), device[r][i], host[r][i])
				}
			}
		})
	}
}
