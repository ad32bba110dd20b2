package nn

import (
	"errors"
	"fmt"
	"math"

	"github.com/convtrain/convtrain/host/backend"
)

// OptimizerKind names a parameter update rule.
type OptimizerKind int

// The optimisers, with PyTorch's update formulas (see Model.Update).
const (
	SGD   OptimizerKind = iota // SGD with momentum (Config.Momentum), optionally Nesterov
	Adam                       // Adam; Config.WeightDecay is an L2 term added to the gradient
	AdamW                      // AdamW: decoupled weight decay, p ← p·(1 − lr·WeightDecay)
)

func (k OptimizerKind) String() string {
	switch k {
	case SGD:
		return "sgd"
	case Adam:
		return "adam"
	case AdamW:
		return "adamw"
	}
	return fmt.Sprintf("OptimizerKind(%d)", int(k))
}

// ParseOptimizerKind returns the kind named s: "sgd", "adam" or "adamw".
func ParseOptimizerKind(s string) (OptimizerKind, error) {
	for _, k := range []OptimizerKind{SGD, Adam, AdamW} {
		if s == k.String() {
			return k, nil
		}
	}
	return 0, fmt.Errorf("host: unknown optimizer %q (want sgd, adam or adamw)", s)
}

// Optimizer selects the update rule and its own hyperparameters; the
// learning rate, its schedule, SGD's momentum and the weight decay are in
// Config. The zero value is plain SGD with (heavy-ball) momentum.
type Optimizer struct {
	Kind     OptimizerKind
	Nesterov bool // SGD: Nesterov momentum (needs Config.Momentum > 0)
	// Adam and AdamW: the moments' decay rates, in [0, 1), and the ε added
	// to √v̂ in the denominator (PyTorch's defaults: 0.9, 0.999, 1e−8; see
	// DefaultAdam).
	Beta1, Beta2, Eps float64
}

// DefaultAdam returns Adam or AdamW (kind) with PyTorch's default β1 =
// 0.9, β2 = 0.999 and ε = 1e−8.
func DefaultAdam(kind OptimizerKind) Optimizer {
	return Optimizer{Kind: kind, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// String describes o, e.g. "sgd", "sgd (nesterov)", "adamw (β1 0.9, β2 0.999, ε 1e-08)".
func (o Optimizer) String() string {
	switch {
	case o.Kind == SGD && o.Nesterov:
		return "sgd (nesterov)"
	case o.Kind == Adam || o.Kind == AdamW:
		return fmt.Sprintf("%v (β1 %g, β2 %g, ε %g)", o.Kind, o.Beta1, o.Beta2, o.Eps)
	}
	return o.Kind.String()
}

// Check validates o: a known kind; for Adam and AdamW, β1 and β2 in
// [0, 1) and ε ≥ 0 and finite; Nesterov only with SGD.
func (o Optimizer) Check() error {
	switch o.Kind {
	case SGD:
		return nil
	case Adam, AdamW:
		if o.Nesterov {
			return fmt.Errorf("host: optimizer %v: Nesterov momentum is an SGD option", o.Kind)
		}
		if !(o.Beta1 >= 0 && o.Beta1 < 1) || !(o.Beta2 >= 0 && o.Beta2 < 1) {
			return fmt.Errorf("host: optimizer %v: beta1 %g and beta2 %g, want both in [0, 1)", o.Kind, o.Beta1, o.Beta2)
		}
		if !(o.Eps >= 0) || math.IsInf(o.Eps, 0) {
			return fmt.Errorf("host: optimizer %v: eps %g, want ≥ 0", o.Kind, o.Eps)
		}
		return nil
	}
	return fmt.Errorf("host: unknown optimizer %v", o.Kind)
}

// OptimState is one optimiser state tensor of a parameter, named as in
// PyTorch's optimiser state: "velocity" (SGD's momentum buffer),
// "exp_avg" (Adam's first moment m) and "exp_avg_sq" (its second moment v).
type OptimState struct {
	Name string
	T    backend.Tensor
}

// OptimState lists p's optimiser state for the optimiser o: SGD
// [velocity = p.Vel]; Adam and AdamW [exp_avg = p.Vel, exp_avg_sq = p.Sq].
// Checkpoints save and restore exactly these tensors (and Model.Steps, for
// Adam's bias corrections) to resume bit-identically.
func (p *Param) OptimState(o Optimizer) []OptimState {
	if o.Kind == Adam || o.Kind == AdamW {
		return []OptimState{{"exp_avg", p.Vel}, {"exp_avg_sq", p.Sq}}
	}
	return []OptimState{{"velocity", p.Vel}}
}

// SetOptimizer makes Update use o from now on, allocating the second
// moments (Param.Sq, zero) the first time Adam or AdamW is chosen. The
// state already in Vel (and Sq) is kept: switching optimisers mid-run
// reinterprets it, so set the optimiser before the first step.
func (m *Model) SetOptimizer(o Optimizer) error {
	if err := o.Check(); err != nil {
		return err
	}
	if o.Kind == Adam || o.Kind == AdamW {
		for _, p := range m.params {
			if p.Sq != nil {
				continue
			}
			sq, err := m.be.NewTensor(p.Value.Len())
			if err != nil {
				return fmt.Errorf("host: %s: second moment: %w", p.Name, err)
			}
			p.Sq = sq
		}
	}
	m.opt = o
	return nil
}

// Optimizer is the update rule Update applies.
func (m *Model) Optimizer() Optimizer { return m.opt }

// Steps is the number of updates applied (Update calls that succeeded),
// from which Adam's bias corrections are computed: the next Update is
// step Steps()+1.
func (m *Model) Steps() int { return m.steps }

// SetSteps sets the update count, as when resuming from a checkpoint
// written after n steps.
func (m *Model) SetSteps(n int) error {
	if n < 0 {
		return errors.New("host: negative step count")
	}
	m.steps = n
	return nil
}
