package gpubackend_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/gpubackend"
	"github.com/convtrain/convtrain/host/nn"
	"github.com/convtrain/convtrain/host/train"
)

// stepRig is a model on its own simulated device, its training set, one
// batch and an order tensor of two batches' worth of rows.
type stepRig struct {
	dev   *gpu.Device
	be    backend.Backend
	m     *nn.Model
	set   *nn.DeviceSet
	b     *nn.Batch
	order backend.Tensor
}

func newStepRig(t *testing.T, spec nn.Spec, opt nn.Optimizer, ds *data.Dataset, batch, orderLen int) *stepRig {
	t.Helper()
	dev, err := gpu.OpenSim(gpu.SimOptions{})
	backendtest.MustNil(t, err)
	t.Cleanup(func() { dev.Close() })
	be, err := gpubackend.NewGPUBackend(dev)
	backendtest.MustNil(t, err)
	t.Cleanup(func() { be.Close() })
	m, err := nn.NewModel(be, spec, 7)
	backendtest.MustNil(t, err)
	backendtest.MustNil(t, m.SetOptimizer(opt))
	set, err := m.Upload(ds, ds.Standardisation())
	backendtest.MustNil(t, err)
	b, err := m.NewBatch(batch)
	backendtest.MustNil(t, err)
	order, err := be.NewIndexTensor(orderLen)
	backendtest.MustNil(t, err)
	return &stepRig{dev: dev, be: be, m: m, set: set, b: b, order: order}
}

// state downloads every parameter, the loss sum and the correct count.
func (r *stepRig) state(t *testing.T) [][]float32 {
	t.Helper()
	out, err := r.m.ParamValues()
	backendtest.MustNil(t, err)
	for _, x := range []backend.Tensor{r.b.LossSum, r.b.Correct, r.b.Loss} {
		v := make([]float32, 1)
		backendtest.MustNil(t, r.be.Download(v, x))
		out = append(out, v)
	}
	return out
}

// TestRecordedStepMatchesEager is the recorded step's main correctness
// test: on the simulator, a step recorded once and replayed, with the
// learning rate changed every step, the batch's offset moving through the
// order, a new order uploaded half-way (a new epoch) and the step count
// driving the dropout masks and Adam's bias corrections, gives every
// parameter, the loss and the metrics bit for bit as the same steps taken
// eagerly (LoadIndexed and TrainStep) on a second device; a replay is one
// launch and one upload, and copies nothing to the host.
func TestRecordedStepMatchesEager(t *testing.T) {
	const batch, steps = 8, 6
	ds, err := data.Synthetic(24, 12, 10, 3)
	backendtest.MustNil(t, err)
	dropSpec, err := nn.ParseSpec("conv4x3x3,relu,maxpool2,dropout30,dense10")
	backendtest.MustNil(t, err)
	lenet := nn.DefaultSpec()
	lenet.H, lenet.W = 12, 12
	lenet.Layers, err = nn.ParseSpec("conv4x3x3,relu,maxpool2,conv6x3x3,relu,dense10")
	backendtest.MustNil(t, err)
	for _, c := range []struct {
		name   string
		layers []nn.LayerSpec
		opt    nn.Optimizer
	}{
		{"sgd", lenet.Layers, nn.Optimizer{Kind: nn.SGD}},
		{"nesterov,dropout", dropSpec, nn.Optimizer{Kind: nn.SGD, Nesterov: true}},
		{"adam,dropout", dropSpec, nn.DefaultAdam(nn.Adam)},
		{"adamw", lenet.Layers, nn.DefaultAdam(nn.AdamW)},
	} {
		t.Run("case="+c.name, func(t *testing.T) {
			spec := nn.Spec{C: 1, H: 12, W: 12, Loss: nn.SoftmaxCE, Layers: c.layers}
			eager := newStepRig(t, spec, c.opt, ds, batch, 2*batch)
			rec := newStepRig(t, spec, c.opt, ds, batch, 2*batch)
			orders := [2][]int32{make([]int32, 2*batch), make([]int32, 2*batch)}
			for i := range 2 * batch {
				orders[0][i] = int32((5*i + 3) % 24)
				orders[1][i] = int32(23 - (7*i)%24)
			}
			const momentum, wd = 0.9, 1e-3
			lrOf := func(s int) float32 { return 0.05 / float32(s+1) }
			step := func(r *stepRig, s int, graph *nn.StepGraph) {
				off := (s % 2) * batch
				if graph != nil {
					backendtest.MustNil(t, graph.Run(off, 0, lrOf(s), momentum, wd))
					return
				}
				view, err := r.be.IndexView(r.order, off, batch)
				backendtest.MustNil(t, err)
				backendtest.MustNil(t, r.m.LoadIndexed(r.b, r.set, view))
				backendtest.MustNil(t, r.m.TrainStep(r.b, lrOf(s), momentum, wd))
			}
			for _, r := range []*stepRig{eager, rec} {
				backendtest.MustNil(t, r.be.UploadIndex(r.order, orders[0]))
				backendtest.MustNil(t, r.m.ResetMetrics(r.b))
				step(r, 0, nil) // the first step eagerly on both: it builds the tables
			}
			graph, err := rec.m.RecordStep(rec.b, rec.set, rec.order, backend.AugmentParams{})
			backendtest.MustNil(t, err)
			defer graph.Free()
			if graph.Kernels() < 5 {
				t.Errorf("the recorded step holds %d kernels", graph.Kernels())
			}
			checkSame(t, "after the eager first step", eager.state(t), rec.state(t))
			for s := 1; s <= steps; s++ {
				if s == steps/2 {
					for _, r := range []*stepRig{eager, rec} {
						backendtest.MustNil(t, r.be.UploadIndex(r.order, orders[1]))
					}
				}
				step(eager, s, nil)
				launches, mem := rec.dev.Launches(), rec.dev.MemStats()
				step(rec, s, graph)
				after := rec.dev.MemStats()
				if l := rec.dev.Launches() - launches; l != 1 {
					t.Errorf("step %d: the replay took %d launches, want 1", s, l)
				}
				if n := after.HtoDCopies - mem.HtoDCopies; n != 1 {
					t.Errorf("step %d: %d uploads, want 1 (the step's values)", s, n)
				}
				if n := after.DtoHCopies - mem.DtoHCopies; n != 0 {
					t.Errorf("step %d: %d downloads, want 0", s, n)
				}
				checkSame(t, fmt.Sprintf("step %d", s), eager.state(t), rec.state(t))
				if t.Failed() {
					return
				}
			}
			if eager.m.Steps() != rec.m.Steps() || rec.m.Steps() != steps+1 {
				t.Errorf("Steps: eager %d, recorded %d, want %d", eager.m.Steps(), rec.m.Steps(), steps+1)
			}
		})
	}
}

// checkSame compares the parameters and metrics of two rigs bit for bit.
func checkSame(t *testing.T, when string, want, got [][]float32) {
	t.Helper()
	for i := range want {
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				t.Errorf("%s: tensor %d element %d: recorded %g, eager %g (first difference)", when, i, j, got[i][j], want[i][j])
				break
			}
		}
	}
}

// TestTrainerGraph trains two epochs with Config.Graph on and off on the
// simulator (a cosine schedule: a new learning rate every step; progress
// reports and checkpoints reading the metrics between steps; with and
// without augmentation, whose draws change with the epoch) and requires
// the same epoch metrics and parameters, bit for bit, with the steps after
// the first replayed.
func TestTrainerGraph(t *testing.T) {
	trainSet, err := data.Synthetic(96, 12, 10, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(20, 12, 10, 2)
	backendtest.MustNil(t, err)
	layers, err := nn.ParseSpec("conv4x3x3,relu,maxpool2,dropout20,dense10")
	backendtest.MustNil(t, err)
	spec := nn.Spec{C: 1, H: 12, W: 12, Loss: nn.SoftmaxCE, Layers: layers}
	for _, aug := range []data.Augment{{}, {Pad: 2, Flip: true}} {
		t.Run("augment="+aug.String(), func(t *testing.T) { testTrainerGraph(t, trainSet, test, spec, aug, gpu.FP32, 2) })
	}
}

// TestTrainerGraphBF16 is TestTrainerGraph at BF16 for one epoch, on a
// network whose second conv keeps x's bfloat16 copy from its forward
// pass and packs dy once for its two backward passes (Conv2DForwardKeep,
// Conv2DBackward), both copies made by the batch norms beside it
// (BatchNormForwardKeep, BatchNormBackwardKeep), and on one where a
// residual add+ReLU makes that conv's copy of x (AddReLUKeep), and at
// TF32 on a 64-channel residual network whose batch norms and add make
// the TF32 copies the convs' forward passes alone read (ConvXCopyLen):
// replaying the recorded step gives the eager bits.
func TestTrainerGraphBF16(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: gpu.TestConvKeep and nn.TestConvBackwardShared check the calls; the recorded epoch is left to the full run")
	}
	trainSet, err := data.Synthetic(48, 12, 10, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(16, 12, 10, 2)
	backendtest.MustNil(t, err)
	layers, err := nn.ParseSpec("conv16x3x3p1,bn,relu,conv32x3x3p1nobias,bn,relu,maxpool2,dense10")
	backendtest.MustNil(t, err)
	spec := nn.Spec{C: 1, H: 12, W: 12, Loss: nn.SoftmaxCE, Layers: layers}
	dev, err := gpu.OpenSim(gpu.SimOptions{})
	backendtest.MustNil(t, err)
	defer dev.Close()
	backendtest.MustNil(t, dev.SetPrecision(gpu.BF16))
	g := geom.ConvGeom{N: 16, C: 16, H: 12, W: 12, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	if dev.ConvKeepLen(g) == 0 || dev.ConvDyCopyLen(g) == 0 || dev.ConvKernelFor(gpu.ConvBwdData, g) != "conv2d_bwd_data_v9_igemm_bf16" {
		t.Fatalf("the second conv keeps nothing (%d), shares no dy copy (%d) or runs %s: the test would not cover them",
			dev.ConvKeepLen(g), dev.ConvDyCopyLen(g), dev.ConvKernelFor(gpu.ConvBwdData, g))
	}
	t.Run("bn", func(t *testing.T) { testTrainerGraph(t, trainSet, test, spec, data.Augment{}, gpu.BF16, 1) })
	layers, err = nn.ParseSpec("conv16x3x3p1,bn,relu,res(conv16x3x3p1nobias,bn),relu,conv32x3x3p1nobias,bn,relu,maxpool2,dense10")
	backendtest.MustNil(t, err)
	spec.Layers = layers
	t.Run("add", func(t *testing.T) { testTrainerGraph(t, trainSet, test, spec, data.Augment{}, gpu.BF16, 1) })
	// TF32: the batch norms and the add write the TF32 copy the next
	// conv's forward pass alone reads (ConvXCopyLen), in the batch's one
	// tensor; the device remembers the last one made while recording.
	small, err := data.Synthetic(48, 8, 10, 1)
	backendtest.MustNil(t, err)
	smallTest, err := data.Synthetic(16, 8, 10, 2)
	backendtest.MustNil(t, err)
	layers, err = nn.ParseSpec("conv64x3x3p1nobias,bn,relu,res(conv64x3x3p1nobias,bn,relu,conv64x3x3p1nobias,bn),relu," +
		"conv64x3x3p1nobias,bn,relu,maxpool2,dense10")
	backendtest.MustNil(t, err)
	tfSpec := nn.Spec{C: 1, H: 8, W: 8, Loss: nn.SoftmaxCE, Layers: layers}
	backendtest.MustNil(t, dev.SetPrecision(gpu.TF32))
	if g := (geom.ConvGeom{N: 16, C: 64, H: 8, W: 8, K: 64, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}); dev.ConvXCopyLen(g) == 0 {
		t.Fatalf("no TF32 forward copy for %v: the test would not cover it", g)
	}
	t.Run("tf32", func(t *testing.T) { testTrainerGraph(t, small, smallTest, tfSpec, data.Augment{}, gpu.TF32, 1) })
}

func testTrainerGraph(t *testing.T, trainSet, test *data.Dataset, spec nn.Spec, aug data.Augment, prec gpu.Precision, epochs int) {
	run := func(graph bool) ([]train.EpochMetrics, [][]float32, bool) {
		dev, err := gpu.OpenSim(gpu.SimOptions{})
		backendtest.MustNil(t, err)
		defer dev.Close()
		backendtest.MustNil(t, dev.SetPrecision(prec))
		be, err := gpubackend.NewGPUBackend(dev)
		backendtest.MustNil(t, err)
		defer be.Close()
		m, err := nn.NewModel(be, spec, 1)
		backendtest.MustNil(t, err)
		defer m.Close()
		saves := 0
		cfg := train.Config{Epochs: epochs, Batch: 16, LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4,
			Schedule: train.Schedule{Kind: train.CosineLR}, Seed: 3, Graph: graph,
			Optimizer: nn.Optimizer{Kind: nn.SGD, Nesterov: true}, ProgressEvery: 2, OnProgress: func(train.Progress) {}, Augment: aug,
			CheckpointEvery: 3, OnCheckpoint: func() error { saves++; return nil }}
		tr, err := train.NewTrainer(m, trainSet, test, cfg)
		backendtest.MustNil(t, err)
		defer tr.Close()
		ems, err := tr.Run(context.Background())
		backendtest.MustNil(t, err)
		graphed, _ := tr.Graphed()
		vals, err := m.ParamValues()
		backendtest.MustNil(t, err)
		if saves == 0 {
			t.Errorf("graph=%v: no checkpoint callback", graph)
		}
		return ems, vals, graphed
	}
	emsE, valsE, graphedE := run(false)
	emsG, valsG, graphedG := run(true)
	if graphedE || !graphedG {
		t.Errorf("Graphed: %v without Graph, %v with, want false and true", graphedE, graphedG)
	}
	for i := range emsE {
		e, g := emsE[i], emsG[i]
		for _, q := range [][3]any{{"loss", e.Loss, g.Loss}, {"train accuracy", e.TrainAcc, g.TrainAcc},
			{"test loss", e.TestLoss, g.TestLoss}, {"test accuracy", e.TestAcc, g.TestAcc}} {
			if math.Float64bits(q[1].(float64)) != math.Float64bits(q[2].(float64)) {
				t.Errorf("epoch %d: %s %v with Graph, %v without", i+1, q[0], q[2], q[1])
			}
		}
	}
	checkSame(t, "after two epochs", valsE, valsG)
}

// TestDenseBackwardPoolReLUBackends checks the CPU backend's
// DenseBackwardPoolReLU (DenseBackward into a temporary, then
// MaxPoolBackwardReLU) against the GPU backend's one launch, on small
// integers (exact in any summation order), with and without the input
// gradient.
func TestDenseBackwardPoolReLUBackends(t *testing.T) {
	dev, err := gpu.OpenSim(gpu.SimOptions{})
	backendtest.MustNil(t, err)
	defer dev.Close()
	gbe, err := gpubackend.NewGPUBackend(dev)
	backendtest.MustNil(t, err)
	defer gbe.Close()
	cbe := backendtest.CPU(t)
	g := geom.PoolGeom{N: 3, C: 2, H: 6, W: 6, R: 2, S: 2, StrideH: 2, StrideW: 2}
	const out = 4
	in := g.C * g.P() * g.Q()
	ints := func(n, seed int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((i*seed+3)%7 - 3)
		}
		return v
	}
	xr, w, dy := ints(g.XLen(), 5), ints(out*in, 3), ints(g.N*out, 11)
	run := func(be backend.Backend, withDX bool) [][]float32 {
		up := func(v []float32) backend.Tensor {
			tt, err := be.NewTensor(len(v))
			backendtest.MustNil(t, err)
			backendtest.MustNil(t, be.Upload(tt, v))
			return tt
		}
		txr, tw, tdy := up(xr), up(w), up(dy)
		y, dw, db, dxr := up(make([]float32, g.YLen())), up(make([]float32, out*in)), up(make([]float32, out)), up(make([]float32, g.XLen()))
		am, err := be.NewIndexTensor(g.YLen())
		backendtest.MustNil(t, err)
		backendtest.MustNil(t, be.MaxPoolForward(g, txr, y, am))
		var dst backend.Tensor
		if withDX {
			dst = dxr
		}
		backendtest.MustNil(t, be.DenseBackwardPoolReLU(g, out, y, tw, tdy, dw, db, am, txr, dst))
		var res [][]float32
		for _, tt := range []backend.Tensor{dw, db, dxr} {
			v := make([]float32, tt.Len())
			backendtest.MustNil(t, be.Download(v, tt))
			res = append(res, v)
		}
		return res
	}
	for _, withDX := range []bool{true, false} {
		checkSame(t, fmt.Sprintf("dx=%v", withDX), run(cbe, withDX), run(gbe, withDX))
	}
}
