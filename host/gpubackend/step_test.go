package gpubackend_test

import (
	"testing"

	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/gpubackend"
	"github.com/convtrain/convtrain/host/nn"
)

// maxStepLaunches bounds the kernel launches of one training step of the
// default network at batch 64 on the GPU backend (gather of the batch,
// forward, loss, backward, one optimiser launch), counted on the
// simulator. Lower it when a fusion removes a launch; a change that adds
// launches must say why.
const maxStepLaunches = 12

// maxGraphStepOps bounds what the host issues for one step of the same
// network recorded once and replayed (nn.StepGraph): graph launches plus
// uploads (the step's values).
const maxGraphStepOps = 3

// TestStepLaunches counts the kernel launches and the device→host copies
// of training steps of the default network at batch 64 on the simulator:
// at most maxStepLaunches launches per step, of which one is the
// optimiser's for all parameters, and no copy to the host at all; then the
// same step recorded and replayed: one graph launch and one upload (the
// step's values) per step, at most maxGraphStepOps in all, the recording
// holding the launches of the eager step.
func TestStepLaunches(t *testing.T) {
	// No race or uninitialised-shared checks: the kernels' conformance
	// suites run them; this test counts.
	dev, err := gpu.OpenSim(gpu.SimOptions{})
	backendtest.MustNil(t, err)
	defer dev.Close()
	be, err := gpubackend.NewGPUBackend(dev)
	backendtest.MustNil(t, err)
	defer be.Close()
	m, err := nn.NewModel(be, nn.DefaultSpec(), 1)
	backendtest.MustNil(t, err)
	defer m.Close()
	ds, err := data.Synthetic(64, 28, 10, 1)
	backendtest.MustNil(t, err)
	set, err := m.Upload(ds, ds.Standardisation())
	backendtest.MustNil(t, err)
	defer set.Free(be)
	b, err := m.NewBatch(64)
	backendtest.MustNil(t, err)
	defer b.Free(be)
	order, err := be.NewIndexTensor(64)
	backendtest.MustNil(t, err)
	defer be.Free(order)
	rows := make([]int32, 64)
	for i := range rows {
		rows[i] = int32(63 - i)
	}
	backendtest.MustNil(t, be.UploadIndex(order, rows))
	step := func() {
		backendtest.MustNil(t, m.LoadIndexed(b, set, order))
		backendtest.MustNil(t, m.TrainStep(b, 0.01, 0.9, 1e-4))
	}
	// The first step builds what the steps reuse (the optimiser's device
	// table, the loss's scratch): take it before counting, so that the
	// step counted is a steady one.
	step()
	ps := make([]backend.ParamState, len(m.Params()))
	for i, p := range m.Params() {
		ps[i] = backend.ParamState{Value: p.Value, Grad: p.Grad, Vel: p.Vel}
	}
	const steps = 1
	launches, mem := dev.Launches(), dev.MemStats()
	for range steps {
		step()
	}
	per := (dev.Launches() - launches) / steps
	t.Logf("default network, batch 64: %d launches per step (simulator)", per)
	if per > maxStepLaunches {
		t.Errorf("%d launches per step, want at most %d", per, maxStepLaunches)
	}
	after := dev.MemStats()
	if down := after.DtoHBytes - mem.DtoHBytes; down != 0 {
		t.Errorf("%d bytes copied to the host in %d steps, want 0", down, steps)
	}
	if up := after.HtoDBytes - mem.HtoDBytes; up != 0 {
		t.Errorf("%d bytes copied to the device in %d steps, want 0", up, steps)
	}
	// The step recorded once and replayed.
	g, err := m.RecordStep(b, set, order, backend.AugmentParams{})
	backendtest.MustNil(t, err)
	defer g.Free()
	if g.Kernels() != int(per) {
		t.Errorf("the recorded step holds %d kernel launches, the eager step launched %d", g.Kernels(), per)
	}
	const replays = 1
	launches, mem = dev.Launches(), dev.MemStats()
	for range replays {
		backendtest.MustNil(t, g.Run(0, 0, 0.01, 0.9, 1e-4))
	}
	after = dev.MemStats()
	graphLaunches := (dev.Launches() - launches) / replays
	uploads := (after.HtoDCopies - mem.HtoDCopies) / replays
	t.Logf("recorded: %d graph launch(es) and %d upload(s) per step, replaying %d kernel launches", graphLaunches, uploads, g.Kernels())
	if graphLaunches != 1 || uploads != 1 || graphLaunches+uploads > maxGraphStepOps {
		t.Errorf("recorded step: %d launches and %d uploads per step, want 1 and 1 (at most %d in all)", graphLaunches, uploads, maxGraphStepOps)
	}
	if down := after.DtoHCopies - mem.DtoHCopies; down != 0 {
		t.Errorf("recorded step: %d downloads in %d steps, want 0", down, replays)
	}
	// Every parameter is updated by the one launch of UpdateParams.
	before := dev.Launches()
	backendtest.MustNil(t, be.UpdateParams(ps, backend.Update{Rule: backend.RuleSGD, LR: 0.01, Momentum: 0.9}))
	if n := dev.Launches() - before; n != 1 {
		t.Errorf("UpdateParams over the %d parameters: %d launches, want 1", len(ps), n)
	}
}
