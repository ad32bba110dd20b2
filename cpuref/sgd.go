package cpuref

// SGDStep takes one step of stochastic gradient descent with momentum and
// weight decay (PyTorch's form, no dampening, no Nesterov), elementwise:
//
//	v ← μ·v + (g + λ·p)
//	p ← p − η·v
//
// with η = lr, μ = momentum and λ = weightDecay. p and vel are updated in
// place; vel may be nil only when momentum is 0 (plain SGD). An error
// wrapping geom.ErrGeometry is returned, before any work, when p is empty or the
// lengths differ.
func SGDStep[T Float](p, grad, vel []T, lr, momentum, weightDecay T) error {
	// p, grad and vel are (L)
	velLen := len(p)
	if vel == nil && momentum == 0 {
		velLen = 0
	}
	if err := checkElementwise("SGDStep", len(p), lenCheck{"grad", len(grad), len(p)},
		lenCheck{"vel", len(vel), velLen}); err != nil {
		return err
	}
	if vel == nil {
		for i, g := range grad {
			p[i] -= lr * (g + weightDecay*p[i])
		}
		return nil
	}
	for i, g := range grad {
		v := momentum*vel[i] + (g + weightDecay*p[i])
		vel[i] = v
		p[i] -= lr * v
	}
	return nil
}
