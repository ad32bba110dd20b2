package backend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// ParamState is one parameter and its optimiser state, as UpdateParams
// takes it: Value and its gradient Grad, Vel (SGD's velocity, Adam's first
// moment m) and Sq (Adam's second moment v; nil for SGD). All are float32
// tensors of Value's length.
type ParamState struct {
	Value, Grad, Vel, Sq Tensor
}

// UpdateRule names the optimiser of an Update.
type UpdateRule int

// The rules, each the same bits as its per-tensor operation.
const (
	RuleSGD      UpdateRule = iota // SGDStep
	RuleNesterov                   // SGDNesterovStep
	RuleAdam                       // AdamStep, decoupled false
	RuleAdamW                      // AdamStep, decoupled true
)

func (r UpdateRule) String() string {
	switch r {
	case RuleSGD:
		return "sgd"
	case RuleNesterov:
		return "sgd-nesterov"
	case RuleAdam:
		return "adam"
	case RuleAdamW:
		return "adamw"
	}
	return fmt.Sprintf("UpdateRule(%d)", int(r))
}

// Update is one optimiser step: the rule and its hyperparameters.
// Momentum is SGD's; Beta1, Beta2, Eps and Step (from 1, for the bias
// corrections) are Adam's; LR and WeightDecay are both's.
type Update struct {
	Rule                      UpdateRule
	LR, Momentum, WeightDecay float32
	Beta1, Beta2, Eps         float32
	Step                      int
	// At, when not nil, is a per-step values tensor (Graphs) that the
	// hyperparameters and Step are read from when the update runs
	// (StepVals.Update); only Rule is taken from here.
	At Tensor
}

// IsAdam reports whether u's rule is Adam or AdamW, which need Sq.
func (u Update) IsAdam() bool { return u.Rule == RuleAdam || u.Rule == RuleAdamW }

// CheckUpdate checks what UpdateParams can check without the tensors: a
// known rule, at least one parameter, Step ≥ 1 for Adam, and Sq present
// exactly when the rule is Adam's. The backend then checks the tensor
// handles, and CheckParamLengths their lengths.
func CheckUpdate(ps []ParamState, u Update) error {
	if u.Rule < RuleSGD || u.Rule > RuleAdamW {
		return fmt.Errorf("host: update params: unknown rule %v: %w", u.Rule, geom.ErrGeometry)
	}
	if len(ps) == 0 {
		return fmt.Errorf("host: update params: no parameters: %w", geom.ErrGeometry)
	}
	if u.IsAdam() && u.Step < 1 {
		return fmt.Errorf("host: update params: %v step %d, want ≥ 1: %w", u.Rule, u.Step, geom.ErrGeometry)
	}
	for i, p := range ps {
		switch {
		case u.IsAdam() && p.Sq == nil:
			return fmt.Errorf("host: update params: parameter %d: %v needs a second moment (Sq): %w", i, u.Rule, ErrTensor)
		case !u.IsAdam() && p.Sq != nil:
			return fmt.Errorf("host: update params: parameter %d: %v takes no second moment (Sq): %w", i, u.Rule, ErrTensor)
		}
	}
	return nil
}

// CheckParamLengths checks that every parameter's Grad, Vel and (for
// Adam) Sq have Value's length: the check of UpdateParams' lengths, made
// here once for both backends, before any parameter is updated. The
// tensors must have passed the backend's handle checks (CheckUpdate, then
// each tensor's).
func CheckParamLengths(ps []ParamState, u Update) error {
	for i, p := range ps {
		n := p.Value.Len()
		for _, t := range [...]struct {
			name string
			t    Tensor
		}{{"grad", p.Grad}, {"vel", p.Vel}, {"sq", p.Sq}} {
			if t.t != nil && t.t.Len() != n {
				return fmt.Errorf("host: update params: parameter %d: %s has %d elements, want %d (the value's): %w",
					i, t.name, t.t.Len(), n, geom.ErrGeometry)
			}
		}
	}
	return nil
}

// MaxCheckTensors bounds FirstNonFinite's tensors: the index must be exact
// in a float32.
const MaxCheckTensors = 1<<24 - 1

// CheckFinite checks FirstNonFinite's arguments that need no backend: at
// least one tensor, fewer than MaxCheckTensors.
func CheckFinite(ts []Tensor) error {
	if len(ts) == 0 || len(ts) > MaxCheckTensors {
		return fmt.Errorf("host: first non-finite: %d tensors, want 1 to %d: %w", len(ts), MaxCheckTensors, geom.ErrGeometry)
	}
	return nil
}
