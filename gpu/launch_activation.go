package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the activation kernels of kernels/activation.cu.

// ReLUForward computes y = x > 0 ? x : 0 elementwise (NaN propagates); x
// and y have equal lengths and may be the same buffer. Kernel relu_fwd_v1.
func (d *Device) ReLUForward(x, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reluForward(x, y); err != nil {
		return launchErr(kReLUFwd, elemShape{lenOf(x)}, err)
	}
	return nil
}

func (d *Device) reluForward(x, y *Buffer) error {
	if x == nil {
		return fmt.Errorf("x is nil: %w", geom.ErrGeometry)
	}
	n := x.n
	if err := d.need("x", x, Float32, n); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, n); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kReLUFwd, grid, block, 0, argPtr(x), argPtr(y), argI32(n))
}

// ReLUBackward computes dx = x > 0 ? dy : 0 elementwise; x, dy, dx have
// equal lengths. Kernel relu_bwd_v1; with dy a BFloat16 buffer (a BF16
// convolution's input gradient, ConvInputGradBF16) relu_bwd_bf16dy_v1,
// which widens it as it reads it (dx float32).
func (d *Device) ReLUBackward(x, dy, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reluBackward(x, dy, dx); err != nil {
		return launchErr(reluBwdKernel(dy), elemShape{lenOf(x)}, err)
	}
	return nil
}

func (d *Device) reluBackward(x, dy, dx *Buffer) error {
	if x == nil {
		return fmt.Errorf("x is nil: %w", geom.ErrGeometry)
	}
	n := x.n
	if err := d.need("x", x, Float32, n); err != nil {
		return err
	}
	k, t := reluBwdKernel(dy), Float32
	if k == kReLUBwdBF16DY {
		t = BFloat16
	}
	if err := d.need("dy", dy, t, n); err != nil {
		return err
	}
	if err := d.need("dx", dx, Float32, n); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(k, grid, block, 0, argPtr(x), argPtr(dy), argPtr(dx), argI32(n))
}

// reluBwdKernel is relu_bwd_v1, or for a bfloat16 dy (a BF16
// convolution's input gradient, dx_bf16.go) relu_bwd_bf16dy_v1.
func reluBwdKernel(dy *Buffer) kernelID {
	if isBF16(dy) {
		return kReLUBwdBF16DY
	}
	return kReLUBwd
}
