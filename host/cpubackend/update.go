package cpubackend

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/host/backend"
)

// UpdateParams checks every parameter's tensors, then runs cpuref's
// SGDStep, SGDNesterovStep or AdamStep on each in ps's order: the same
// bits as the per-tensor operations.
func (be *cpuBackend) UpdateParams(ps []backend.ParamState, u backend.Update) error {
	if u.At != nil {
		return fmt.Errorf("host: update params: a per-step values tensor: %w", backend.ErrNoGraphs)
	}
	if err := backend.CheckUpdate(ps, u); err != nil {
		return err
	}
	// Two passes, so that nothing is updated unless every tensor is right
	// (and nothing is allocated): check, then look the slices up again;
	// cpuref checks each parameter's lengths again as it updates it.
	for pass := range 2 {
		if pass == 1 {
			if err := backend.CheckParamLengths(ps, u); err != nil {
				return err
			}
		}
		for i, p := range ps {
			var err error
			var pv, g, m, v []float32
			if pv, err = be.f32("value", p.Value, -1); err != nil {
				return fmt.Errorf("host: update params: parameter %d: %w", i, err)
			}
			if g, err = be.f32("grad", p.Grad, -1); err != nil {
				return fmt.Errorf("host: update params: parameter %d: %w", i, err)
			}
			if m, err = be.f32("vel", p.Vel, -1); err != nil {
				return fmt.Errorf("host: update params: parameter %d: %w", i, err)
			}
			if u.IsAdam() {
				if v, err = be.f32("sq", p.Sq, -1); err != nil {
					return fmt.Errorf("host: update params: parameter %d: %w", i, err)
				}
			}
			if pass == 0 {
				continue
			}
			switch u.Rule {
			case backend.RuleSGD:
				err = cpuref.SGDStep(pv, g, m, u.LR, u.Momentum, u.WeightDecay)
			case backend.RuleNesterov:
				err = cpuref.SGDNesterovStep(pv, g, m, u.LR, u.Momentum, u.WeightDecay)
			default:
				err = cpuref.AdamStep(pv, g, m, v, u.LR, u.Beta1, u.Beta2, u.Eps, u.WeightDecay, u.Step,
					u.Rule == backend.RuleAdamW)
			}
			if err != nil {
				return fmt.Errorf("host: update params: parameter %d: %w", i, err)
			}
		}
	}
	return nil
}

// FirstNonFinite scans the tensors in order.
func (be *cpuBackend) FirstNonFinite(ts []backend.Tensor, out backend.Tensor) error {
	if err := backend.CheckFinite(ts); err != nil {
		return err
	}
	o, err := be.f32("out", out, -1)
	if err != nil {
		return fmt.Errorf("host: first non-finite: %w", err)
	}
	if len(o) < 1 {
		return fmt.Errorf("host: first non-finite: out is empty: %w", backend.ErrTensor)
	}
	for i, t := range ts {
		if _, err := be.f32("tensor", t, -1); err != nil {
			return fmt.Errorf("host: first non-finite: tensor %d: %w", i, err)
		}
	}
	first := len(ts)
	for i, t := range ts {
		if x, _ := be.f32("tensor", t, -1); !finite(x) {
			first = i
			break
		}
	}
	o[0] = float32(first)
	return nil
}

// finite reports whether every element of x is finite.
func finite(x []float32) bool {
	for _, v := range x {
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			return false
		}
	}
	return true
}
