package geom

import (
	"errors"
	"fmt"
	"math"
)

// ErrHyperparameter is wrapped by every error about an optimiser or layer
// hyperparameter out of its range (a negative learning rate, β outside
// [0, 1), a step count below 1, a NaN; a batch-norm momentum outside
// [0, 1] or ε ≤ 0, a dropout probability outside [0, 1), an unknown GELU
// form).
var ErrHyperparameter = errors.New("invalid optimiser hyperparameter")

// AdamCoef holds the scalars of one Adam or AdamW step, computed in float64
// from the hyperparameters and the step number t (from 1) as PyTorch's
// torch.optim.Adam and AdamW compute them in Python:
//
//	OneMinusBeta1 = 1 − β1,  OneMinusBeta2 = 1 − β2
//	StepSize      = η / (1 − β1^t)
//	BC2Sqrt       = √(1 − β2^t)
//	L2            = λ (Adam), 0 (AdamW)
//	Decay         = 1 (Adam), 1 − η·λ (AdamW)
//
// The elementwise update (AdamStep, kernel adam_v1) uses them rounded to
// the element type.
type AdamCoef struct {
	Beta1, Beta2                 float64
	OneMinusBeta1, OneMinusBeta2 float64
	StepSize, BC2Sqrt, Eps       float64
	L2, Decay                    float64
	Decoupled                    bool
}

// AdamCoefficients returns the scalars of step `step` (from 1) of Adam
// (decoupled false: the weight decay λ is added to the gradient) or AdamW
// (decoupled true: the parameters are multiplied by 1 − η·λ). An error
// wrapping ErrHyperparameter is returned when lr < 0, β1 or β2 is outside
// [0, 1), eps < 0, weightDecay < 0, any of them is NaN or infinite, or
// step < 1.
func AdamCoefficients(lr, beta1, beta2, eps, weightDecay float64, step int, decoupled bool) (AdamCoef, error) {
	bad := func(name string, v float64, want string) (AdamCoef, error) {
		return AdamCoef{}, fmt.Errorf("geom: Adam: %s = %g, want %s: %w", name, v, want, ErrHyperparameter)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !(lr >= 0) || !finite(lr):
		return bad("lr", lr, "≥ 0")
	case !(beta1 >= 0 && beta1 < 1):
		return bad("beta1", beta1, "in [0, 1)")
	case !(beta2 >= 0 && beta2 < 1):
		return bad("beta2", beta2, "in [0, 1)")
	case !(eps >= 0) || !finite(eps):
		return bad("eps", eps, "≥ 0")
	case !(weightDecay >= 0) || !finite(weightDecay):
		return bad("weight decay", weightDecay, "≥ 0")
	case step < 1:
		return AdamCoef{}, fmt.Errorf("geom: Adam: step %d, want ≥ 1: %w", step, ErrHyperparameter)
	}
	c := AdamCoef{
		Beta1: beta1, Beta2: beta2, OneMinusBeta1: 1 - beta1, OneMinusBeta2: 1 - beta2,
		StepSize: lr / (1 - math.Pow(beta1, float64(step))),
		BC2Sqrt:  math.Sqrt(1 - math.Pow(beta2, float64(step))),
		Eps:      eps, L2: weightDecay, Decay: 1, Decoupled: decoupled,
	}
	if decoupled {
		c.L2, c.Decay = 0, 1-lr*weightDecay
	}
	return c, nil
}
