package cpuref

import (
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// The optimisers below round every product, quotient and sum to T on its
// own, in the order written (the explicit conversions T(·) forbid the
// compiler to fuse a multiply and an add), and take square roots correctly
// rounded: for float32 that is exactly what the GPU kernels sgd_nesterov_v1
// and adam_v1 do (mul.rn, add.rn, div.rn, sqrt.rn), so the two agree bit
// for bit.

// SGDNesterovStep takes one step of stochastic gradient descent with
// Nesterov momentum and L2 weight decay (PyTorch's torch.optim.SGD with
// nesterov=True and no dampening), elementwise:
//
//	d ← g + λ·p
//	v ← μ·v + d
//	p ← p − η·(d + μ·v)
//
// with η = lr, μ = momentum and λ = weightDecay. With v = 0 initially the
// first step is PyTorch's (whose buffer starts as a copy of d). p and vel
// are updated in place. An error wrapping geom.ErrGeometry is returned, before
// any work, when p is empty or the lengths differ.
func SGDNesterovStep[T Float](p, grad, vel []T, lr, momentum, weightDecay T) error {
	// p, grad and vel are (L)
	if err := checkElementwise("SGDNesterovStep", len(p), lenCheck{"grad", len(grad), len(p)},
		lenCheck{"vel", len(vel), len(p)}); err != nil {
		return err
	}
	for i, g := range grad {
		pi := p[i]
		d := g + T(weightDecay*pi)
		v := T(momentum*vel[i]) + d
		vel[i] = v
		p[i] = pi - T(lr*(d+T(momentum*v)))
	}
	return nil
}

// AdamStep takes step `step` (from 1) of Adam, or AdamW when decoupled is
// true, with PyTorch's formulas (torch.optim.Adam and AdamW, amsgrad off),
// elementwise:
//
//	p ← p·(1 − η·λ)                      AdamW only (decoupled weight decay)
//	g ← g + λ·p                          Adam only (L2 weight decay; skipped when λ = 0)
//	m ← β1·m + (1 − β1)·g
//	v ← β2·v + (1 − β2)·g·g
//	p ← p − (η/(1 − β1^t))·m / (√v/√(1 − β2^t) + ε)
//
// that is p ← p − η·m̂/(√v̂ + ε) with the bias-corrected moments
// m̂ = m/(1 − β1^t) and v̂ = v/(1 − β2^t), ε inside the denominator as in
// PyTorch. The scalars are those of geom.AdamCoefficients rounded to T; each
// operation is rounded to T in the order written and the square root is
// correctly rounded. p, m (the first moment) and v (the second) are updated
// in place; m and v start at zero. An error wrapping geom.ErrGeometry is
// returned, before any work, when p is empty or the lengths differ, and one
// wrapping geom.ErrHyperparameter as geom.AdamCoefficients says.
func AdamStep[T Float](p, grad, m, v []T, lr, beta1, beta2, eps, weightDecay T, step int, decoupled bool) error {
	// p, grad, m and v are (L)
	if err := checkElementwise("AdamStep", len(p), lenCheck{"grad", len(grad), len(p)},
		lenCheck{"m", len(m), len(p)}, lenCheck{"v", len(v), len(p)}); err != nil {
		return err
	}
	c, err := geom.AdamCoefficients(float64(lr), float64(beta1), float64(beta2), float64(eps), float64(weightDecay), step, decoupled)
	if err != nil {
		return err
	}
	b1, c1, b2, c2 := T(c.Beta1), T(c.OneMinusBeta1), T(c.Beta2), T(c.OneMinusBeta2)
	alpha, bc2, e, l2, decay := T(c.StepSize), T(c.BC2Sqrt), T(c.Eps), T(c.L2), T(c.Decay)
	for i, g := range grad {
		pi := p[i]
		if decoupled {
			pi = T(pi * decay)
		} else if l2 != 0 {
			g = g + T(l2*pi)
		}
		mi := T(b1*m[i]) + T(c1*g)
		vi := T(b2*v[i]) + T(T(c2*g)*g)
		m[i], v[i] = mi, vi
		den := T(T(math.Sqrt(float64(vi)))/bc2) + e
		p[i] = pi - T(T(alpha*mi)/den)
	}
	return nil
}
