package cpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/host/backend"
)

// UpdateParams checks every parameter's tensors, then runs cpuref's
// SGDStep, SGDNesterovStep or AdamStep on each in ps's order: the same
// bits as the per-tensor operations.
func (be *cpuBackend) UpdateParams(ps []backend.ParamState, u backend.Update) error {
	if err := backend.CheckUpdate(ps, u); err != nil {
		return err
	}
	type slices struct{ p, g, m, v []float32 }
	all := make([]slices, len(ps))
	for i, p := range ps {
		var s slices
		var err error
		if s.p, err = be.f32("value", p.Value, -1); err != nil {
			return fmt.Errorf("host: update params: parameter %d: %w", i, err)
		}
		if s.g, err = be.f32("grad", p.Grad, len(s.p)); err != nil {
			return fmt.Errorf("host: update params: parameter %d: %w", i, err)
		}
		if s.m, err = be.f32("vel", p.Vel, len(s.p)); err != nil {
			return fmt.Errorf("host: update params: parameter %d: %w", i, err)
		}
		if u.IsAdam() {
			if s.v, err = be.f32("sq", p.Sq, len(s.p)); err != nil {
				return fmt.Errorf("host: update params: parameter %d: %w", i, err)
			}
		}
		all[i] = s
	}
	for i, s := range all {
		var err error
		switch u.Rule {
		case backend.RuleSGD:
			err = cpuref.SGDStep(s.p, s.g, s.m, u.LR, u.Momentum, u.WeightDecay)
		case backend.RuleNesterov:
			err = cpuref.SGDNesterovStep(s.p, s.g, s.m, u.LR, u.Momentum, u.WeightDecay)
		default:
			err = cpuref.AdamStep(s.p, s.g, s.m, s.v, u.LR, u.Beta1, u.Beta2, u.Eps, u.WeightDecay, u.Step,
				u.Rule == backend.RuleAdamW)
		}
		if err != nil {
			return fmt.Errorf("host: update params: parameter %d: %w", i, err)
		}
	}
	return nil
}
