package main

import (
	"flag"
	"fmt"
	"math"

	"github.com/convtrain/convtrain/host/nn"
)

// optimOptions are the optimiser flags: -optimizer, -nesterov, -beta1,
// -beta2, -eps (the learning rate, momentum and weight decay are options'
// own).
type optimOptions struct {
	optName           string
	nesterov          bool
	beta1, beta2, eps float64
	optKind           nn.OptimizerKind
}

func (c *optimOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&c.optName, "optimizer", "sgd", "optimizer: sgd, adam or adamw")
	fs.BoolVar(&c.nesterov, "nesterov", false, "sgd: Nesterov momentum")
	fs.Float64Var(&c.beta1, "beta1", 0.9, "adam, adamw: decay rate of the first moment, in [0, 1)")
	fs.Float64Var(&c.beta2, "beta2", 0.999, "adam, adamw: decay rate of the second moment, in [0, 1)")
	fs.Float64Var(&c.eps, "eps", 1e-8, "adam, adamw: ε added to √v̂ in the denominator")
}

// check validates the flags after parsing; momentum is -momentum.
func (c *optimOptions) check(momentum float64) error {
	k, err := nn.ParseOptimizerKind(c.optName)
	if err != nil {
		return usagef("-optimizer %q: want sgd, adam or adamw", c.optName)
	}
	c.optKind = k
	switch {
	case c.nesterov && k != nn.SGD:
		return usagef("-nesterov is an option of -optimizer sgd, not %s", k)
	case c.nesterov && momentum == 0:
		return usagef("-nesterov needs -momentum > 0")
	case !(c.beta1 >= 0 && c.beta1 < 1):
		return usagef("-beta1 %g: want in [0, 1)", c.beta1)
	case !(c.beta2 >= 0 && c.beta2 < 1):
		return usagef("-beta2 %g: want in [0, 1)", c.beta2)
	case !(c.eps >= 0) || math.IsInf(c.eps, 0):
		return usagef("-eps %g: want ≥ 0", c.eps)
	}
	return nil
}

// optimizer is the nn.Optimizer the flags select.
func (c *optimOptions) optimizer() nn.Optimizer {
	if c.optKind == nn.SGD {
		return nn.Optimizer{Kind: nn.SGD, Nesterov: c.nesterov}
	}
	return nn.Optimizer{Kind: c.optKind, Beta1: c.beta1, Beta2: c.beta2, Eps: c.eps}
}

// setOptimizer takes the flags' values from o (a resumed checkpoint's).
func (c *optimOptions) setOptimizer(o nn.Optimizer) {
	c.optKind, c.optName, c.nesterov = o.Kind, o.Kind.String(), o.Nesterov
	if o.Kind != nn.SGD {
		c.beta1, c.beta2, c.eps = o.Beta1, o.Beta2, o.Eps
	}
}

// describe is the optimiser part of the "train" line printed before
// training, e.g. "SGD lr 0.05 (cosine) momentum 0.9 weight decay 0" or
// "AdamW lr 0.001 (cosine) β1 0.9 β2 0.999 ε 1e-08 weight decay 0.01".
func (c *optimOptions) describe(lr float64, schedule string, momentum, wd float64) string {
	switch c.optKind {
	case nn.Adam, nn.AdamW:
		name := map[nn.OptimizerKind]string{nn.Adam: "Adam", nn.AdamW: "AdamW"}[c.optKind]
		return fmt.Sprintf("%s lr %g (%s) β1 %g β2 %g ε %g weight decay %g", name, lr, schedule, c.beta1, c.beta2, c.eps, wd)
	}
	name := "SGD"
	if c.nesterov {
		name = "SGD (Nesterov)"
	}
	return fmt.Sprintf("%s lr %g (%s) momentum %g weight decay %g", name, lr, schedule, momentum, wd)
}
