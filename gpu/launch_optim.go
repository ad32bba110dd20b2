package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the optimiser kernels of kernels/optim_v2.cu:
// sgd_nesterov_v1 and adam_v1 (sgd_momentum_v1 is in launch.go).

// SGDNesterov updates p and v in place, elementwise (PyTorch's SGD with
// nesterov=True, no dampening):
//
//	d ← g + weightDecay·p;  v ← momentum·v + d;  p ← p − lr·(d + momentum·v)
//
// p, g, v are float32 of equal lengths. The result equals
// cpuref.SGDNesterovStep in float32 bit for bit. Kernel sgd_nesterov_v1,
// 1-D over the length.
func (d *Device) SGDNesterov(p, g, v *Buffer, lr, momentum, weightDecay float32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.sgdNesterov(p, g, v, lr, momentum, weightDecay); err != nil {
		return launchErr(kSGDNesterov, elemShape{lenOf(p)}, err)
	}
	return nil
}

func (d *Device) sgdNesterov(p, g, v *Buffer, lr, momentum, weightDecay float32) error {
	if p == nil {
		return fmt.Errorf("p is nil: %w", geom.ErrGeometry)
	}
	n := p.n
	if err := d.need("p", p, Float32, n); err != nil {
		return err
	}
	if err := d.need("g", g, Float32, n); err != nil {
		return err
	}
	if err := d.need("v", v, Float32, n); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kSGDNesterov, grid, block, 0, argPtr(p), argPtr(g), argPtr(v), argI32(n),
		argF32(lr), argF32(momentum), argF32(weightDecay))
}

// Adam takes one Adam or AdamW step on p with the first and second moments
// m and v, elementwise, with the scalars c of the step (from
// geom.AdamCoefficients, which holds the bias corrections of step t):
//
//	p ← p·c.Decay                        if c.Decoupled (AdamW)
//	g ← g + c.L2·p                       otherwise, when c.L2 ≠ 0 (Adam)
//	m ← β1·m + (1 − β1)·g
//	v ← β2·v + ((1 − β2)·g)·g
//	p ← p − (c.StepSize·m) / (√v / c.BC2Sqrt + ε)
//
// that is p ← p − η·m̂/(√v̂ + ε). p, g, m, v are float32 of equal lengths;
// the scalars are rounded to float32. The result equals cpuref.AdamStep in
// float32 bit for bit. Kernel adam_v1, 1-D over the length.
func (d *Device) Adam(p, g, m, v *Buffer, c geom.AdamCoef) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.adam(p, g, m, v, c); err != nil {
		return launchErr(kAdam, elemShape{lenOf(p)}, err)
	}
	return nil
}

func (d *Device) adam(p, g, m, v *Buffer, c geom.AdamCoef) error {
	if p == nil {
		return fmt.Errorf("p is nil: %w", geom.ErrGeometry)
	}
	n := p.n
	for _, b := range []struct {
		name string
		buf  *Buffer
	}{{"p", p}, {"g", g}, {"m", m}, {"v", v}} {
		if err := d.need(b.name, b.buf, Float32, n); err != nil {
			return err
		}
	}
	decoupled := 0
	if c.Decoupled {
		decoupled = 1
	}
	grid, block := linear(n)
	return d.launch(kAdam, grid, block, 0, argPtr(p), argPtr(g), argPtr(m), argPtr(v), argI32(n),
		argF32(float32(c.Beta1)), argF32(float32(c.OneMinusBeta1)), argF32(float32(c.Beta2)),
		argF32(float32(c.OneMinusBeta2)), argF32(float32(c.StepSize)), argF32(float32(c.BC2Sqrt)),
		argF32(float32(c.Eps)), argF32(float32(c.L2)), argF32(float32(c.Decay)), argI32(decoupled))
}
