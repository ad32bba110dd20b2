package nn

import (
	"errors"
	"fmt"

	"github.com/convtrain/convtrain/host/backend"
)

// StepGraph is a training step recorded once on a backend that records
// (backend.Graphs: the GPU backend) and replayed for every step after:
// the gather of the batch from the epoch's order, Forward (with the loss
// and the metrics), Backward and Update, issued by the host as one replay
// and one upload of the step's values. Each Run gives the same bits as
// LoadIndexed of the batch's view and TrainStep with the same values.
//
// The recorded step reads what changes from step to step from a per-step
// values tensor that Run rewrites before each replay: the batch's offset
// into the order, the augmentation's step (the epoch), the step of the
// dropout keys (Steps), and the
// optimiser's learning rate, momentum, weight decay and (Adam) the bias
// corrections of its step. Everything else is fixed when recording: the
// batch, the set, the order tensor (its contents may change: a new
// epoch's order is uploaded into the same tensor), the optimiser's rule
// and the model's parameters.
type StepGraph struct {
	m      *Model
	b      *Batch
	g      backend.Graphs
	vals   backend.Tensor
	view   backend.Tensor
	replay backend.Replay
	rule   backend.UpdateRule // the optimiser's rule when recorded
}

// ErrNoGraphs is returned by RecordStep on a backend that does not record
// steps (the CPU backend).
var ErrNoGraphs = errors.New("host: the backend does not record steps")

// RecordStep records one training step of b, its batch gathered from the
// rows order[off .. off+b.N) of s and augmented by aug (its Step ignored:
// each Run gives the step of the draws), off given to each Run. Nothing
// runs while recording. Record after one step taken with TrainStep on the same
// batch and optimiser (it builds the backend's tables a step reuses: a
// recording allocates nothing and copies nothing to or from the host).
func (m *Model) RecordStep(b *Batch, s *DeviceSet, order backend.Tensor, aug backend.AugmentParams) (*StepGraph, error) {
	g, ok := m.be.(backend.Graphs)
	if !ok {
		return nil, ErrNoGraphs
	}
	if b.m != m {
		return nil, fmt.Errorf("host: record step: the batch belongs to another model")
	}
	if b.Eval {
		return nil, fmt.Errorf("host: record step: the batch is in evaluation mode")
	}
	sg := &StepGraph{m: m, b: b, g: g, rule: m.updateOf(0, 0, 0).Rule}
	var err error
	if sg.vals, err = g.NewStepVals(); err != nil {
		return nil, fmt.Errorf("host: record step: %w", err)
	}
	if sg.view, err = g.IndexViewAt(order, sg.vals, b.N); err != nil {
		return nil, errors.Join(fmt.Errorf("host: record step: %w", err), sg.Free())
	}
	if err := g.BeginCapture(); err != nil {
		return nil, errors.Join(fmt.Errorf("host: record step: %w", err), sg.Free())
	}
	steps := m.steps
	m.at = sg.vals
	err = m.LoadAugmented(b, s, sg.view, aug)
	if err == nil {
		// The hyperparameters recorded here are never used: the update
		// reads this step's from the per-step values.
		err = m.TrainStep(b, 0, 0, 0)
	}
	m.at, m.steps = nil, steps
	replay, endErr := g.EndCapture()
	if err != nil || endErr != nil {
		if replay != nil {
			err = errors.Join(err, replay.Free())
		}
		return nil, errors.Join(fmt.Errorf("host: record step: %w", errors.Join(err, endErr)), sg.Free())
	}
	sg.replay = replay
	return sg, nil
}

// Kernels is the number of kernel launches the recorded step holds.
func (sg *StepGraph) Kernels() int { return sg.replay.Kernels() }

// Run queues one step: the step's values (the batch at off in the order,
// the augmentation's step augStep, the model's step count, the update of
// lr, momentum and weightDecay) in one upload, then the replay; it counts
// the step (Steps) as Update does.
func (sg *StepGraph) Run(off int, augStep uint64, lr, momentum, weightDecay float32) error {
	m := sg.m
	if sg.replay == nil {
		return fmt.Errorf("host: recorded step: freed")
	}
	v := backend.StepVals{Offset: off, AugmentStep: augStep, DropoutStep: uint64(m.steps), Update: m.updateOf(lr, momentum, weightDecay)}
	if v.Update.Rule != sg.rule {
		return fmt.Errorf("host: recorded step: recorded with the %v update, the model now has %v: record again", sg.rule, v.Update.Rule)
	}
	if err := sg.g.SetStepVals(sg.vals, v); err != nil {
		return fmt.Errorf("host: recorded step: %w", err)
	}
	if err := sg.replay.Launch(); err != nil {
		return fmt.Errorf("host: recorded step: %w", err)
	}
	m.steps++
	return nil
}

// Free releases the recording and its per-step values.
func (sg *StepGraph) Free() error {
	var errs []error
	if sg.replay != nil {
		errs = append(errs, sg.replay.Free())
		sg.replay = nil
	}
	if sg.vals != nil {
		errs = append(errs, sg.m.be.Free(sg.vals))
		sg.vals = nil
	}
	return errors.Join(errs...)
}
