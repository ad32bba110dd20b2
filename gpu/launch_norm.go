package gpu

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the batch-normalisation kernels of kernels/norm.cu. Each
// computes cpuref's float32 form bit for bit (cpuref.BatchNormTrainForward32,
// BatchNormEvalForward, BatchNormBackward32): x, y, dy and dx are (N,C,HW),
// the per-channel tensors (C); every buffer is float32.

// bnShape names a batch-norm launch in errors.
type bnShape struct{ n, c, hw int }

func (s bnShape) String() string { return fmt.Sprintf("N=%d,C=%d,HW=%d", s.n, s.c, s.hw) }

// BatchNormTrainForward normalises each channel of x with its batch
// statistics and writes y (which may be x):
//
//	μ = Σx/M,  σ² = Σ(x−μ)²/M,  invStd = 1/√(σ²+ε),  y = γ·(x−μ)·invStd + β
//
// with M = N·HW and the sums in cpuref.BatchNormTrainForward32's lane
// order. saveMean and saveInvStd (C), when not nil, receive μ and invStd
// for BatchNormBackward; runMean and runVar (C), when not nil (both or
// neither), are updated in place with momentum:
// r ← (1−m)·r + m·μ and (1−m)·r + m·Σ(x−μ)²/(M−1). Kernel
// bn_train_fwd_v1, one 256-thread block per channel; with relu, y =
// max(y, 0) as ReLUForward before the store (bn_train_fwd_v2: the same
// bits as the two operations, one pass). x may be a BFloat16 buffer (a
// BF16 conv's output: bn_train_fwd_bf16x_v1), and y too where x is one
// (each value rounded once: bn_train_fwd_bf16xy_v1, bn_out_bf16.go).
//
// An error wrapping geom.ErrGeometry is returned when a size is < 1,
// N·HW < 2, a tensor has 2³¹ elements or more or a buffer has the wrong
// length; one wrapping geom.ErrHyperparameter when momentum is outside
// [0, 1] or eps is not finite and > 0.
func (d *Device) BatchNormTrainForward(n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar *Buffer, momentum, eps float64, relu bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.yWritten(y)
	k := bnForwardKernel(true, relu)
	if err := d.bnTrainForward(k, n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps); err != nil {
		return launchErr(k, bnShape{n, c, hw}, err)
	}
	return nil
}

func (d *Device) bnTrainForward(k kernelID, n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar *Buffer, momentum, eps float64) error {
	if err := d.bnTrainCheck(n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps); err != nil {
		return err
	}
	grid, block := perBlock(c)
	// v2, bf16x and bf16xy take relu after v1's parameters
	args := [...]arg{argPtr(x), argPtr(gamma), argPtr(beta), argPtr(y),
		argPtr(saveMean), argPtr(saveInvStd), argPtr(runMean), argPtr(runVar),
		argI32(n), argI32(c), argI32(hw), argF32(float32(momentum)), argF32(float32(1 - momentum)), argF32(float32(eps)), argFlag(k == kBNTrainReLUFwd)}
	if k = bnKernel(k, x, y); k == kBNTrainFwd {
		return d.launch(k, grid, block, 0, args[:len(args)-1]...)
	}
	return d.launch(k, grid, block, 0, args[:]...)
}

// bnTrainCheck is BatchNormTrainForward's checks of its sizes,
// hyperparameters and buffers.
func (d *Device) bnTrainCheck(n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar *Buffer, momentum, eps float64) error {
	if err := dims([]int{n, c, hw}, []int{n, c, hw}); err != nil {
		return err
	}
	if n*hw < 2 {
		return fmt.Errorf("training needs more than one value per channel (N·HW = %d): %w", n*hw, geom.ErrGeometry)
	}
	if !(momentum >= 0 && momentum <= 1) {
		return fmt.Errorf("momentum %g must be in [0, 1]: %w", momentum, geom.ErrHyperparameter)
	}
	if err := checkEps(eps); err != nil {
		return err
	}
	L := n * c * hw
	if err := d.need("x", x, xType(x), L); err != nil {
		return err
	}
	for _, b := range []struct {
		name string
		b    *Buffer
		n    int
		opt  bool
	}{{"gamma", gamma, c, false}, {"beta", beta, c, false},
		{"saveMean", saveMean, c, true}, {"saveInvStd", saveInvStd, c, true},
		{"runMean", runMean, c, true}, {"runVar", runVar, c, true}} {
		var err error
		if b.opt {
			err = d.needOpt(b.name, b.b, Float32, b.n)
		} else {
			err = d.need(b.name, b.b, Float32, b.n)
		}
		if err != nil {
			return err
		}
	}
	if (runMean == nil) != (runVar == nil) {
		return fmt.Errorf("runMean and runVar must be both given or both nil: %w", geom.ErrGeometry)
	}
	return d.need("y", y, pairedType(x, y), L) // bfloat16 where x is (bn_out_bf16.go)
}

// bnForwardKernel is the batch-norm forward kernel for training or
// evaluation, with a ReLU epilogue or without.
func bnForwardKernel(train, relu bool) kernelID {
	switch {
	case train && relu:
		return kBNTrainReLUFwd
	case train:
		return kBNTrainFwd
	case relu:
		return kBNEvalReLUFwd
	}
	return kBNEvalFwd
}

// checkEps reports an eps that is not finite and > 0.
func checkEps(eps float64) error {
	if !(eps > 0) || math.IsInf(eps, 0) {
		return fmt.Errorf("eps %g must be finite and > 0: %w", eps, geom.ErrHyperparameter)
	}
	return nil
}

// BatchNormEvalForward normalises x with the running statistics runMean
// and runVar (C) and writes y (which may be x):
//
//	y = γ·((x − runMean)·(1/√(runVar + ε))) + β
//
// every operation rounded to float32 (cpuref.BatchNormEvalForward).
// Kernel bn_eval_fwd_v1, 1-D over N·C·HW; with relu, y = max(y, 0) as
// ReLUForward before the store (bn_eval_fwd_v2). Errors as
// BatchNormTrainForward (N·HW = 1 is allowed).
func (d *Device) BatchNormEvalForward(n, c, hw int, x, gamma, beta, runMean, runVar, y *Buffer, eps float64, relu bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.yWritten(y)
	k := bnForwardKernel(false, relu)
	if err := d.bnEvalForward(k, n, c, hw, x, gamma, beta, runMean, runVar, y, eps); err != nil {
		return launchErr(k, bnShape{n, c, hw}, err)
	}
	return nil
}

func (d *Device) bnEvalForward(k kernelID, n, c, hw int, x, gamma, beta, runMean, runVar, y *Buffer, eps float64) error {
	if err := d.bnEvalCheck(n, c, hw, x, gamma, beta, runMean, runVar, y, eps); err != nil {
		return err
	}
	L := n * c * hw
	grid, block := linear(L)
	// v2, bf16x and bf16xy take relu after v1's parameters
	args := [...]arg{argPtr(x), argPtr(gamma), argPtr(beta), argPtr(runMean), argPtr(runVar),
		argPtr(y), argI32(n), argI32(c), argI32(hw), argF32(float32(eps)), argFlag(k == kBNEvalReLUFwd)}
	if k = bnKernel(k, x, y); k == kBNEvalFwd {
		return d.launch(k, grid, block, 0, args[:len(args)-1]...)
	}
	return d.launch(k, grid, block, 0, args[:]...)
}

// bnEvalCheck is BatchNormEvalForward's checks of its sizes, eps and
// buffers.
func (d *Device) bnEvalCheck(n, c, hw int, x, gamma, beta, runMean, runVar, y *Buffer, eps float64) error {
	if err := dims([]int{n, c, hw}, []int{n, c, hw}); err != nil {
		return err
	}
	if err := checkEps(eps); err != nil {
		return err
	}
	L := n * c * hw
	if err := d.need("x", x, xType(x), L); err != nil {
		return err
	}
	for _, b := range []struct {
		name string
		b    *Buffer
		n    int
	}{{"gamma", gamma, c}, {"beta", beta, c}, {"runMean", runMean, c}, {"runVar", runVar, c}} {
		if err := d.need(b.name, b.b, Float32, b.n); err != nil {
			return err
		}
	}
	return d.need("y", y, pairedType(x, y), L) // bfloat16 where x is (bn_out_bf16.go)
}

// BatchNormBackward computes the training-mode gradients of
// BatchNormTrainForward, given its input x, γ, and the saveMean and
// saveInvStd it wrote:
//
//	dβ = Σ dy,  dγ = Σ dy·x̂,  dx = (γ·invStd)·((dy − dβ/M) − x̂·(dγ/M))
//
// with x̂ = (x − μ)·invStd and the sums in lane order
// (cpuref.BatchNormBackward32). dgamma and dbeta (C) are overwritten; dx
// too unless it is nil; dx may be dy. Kernel bn_bwd_v1, one 256-thread
// block per channel. An error wrapping geom.ErrGeometry is returned when a
// size is < 1, a tensor has 2³¹ elements or more or a buffer has the wrong
// length.
func (d *Device) BatchNormBackward(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta *Buffer) error {
	return d.batchNormBackward(n, c, hw, x, gamma, nil, saveMean, saveInvStd, dy, dx, dgamma, dbeta)
}

// BatchNormBackwardReLU is BatchNormBackward for a batch norm (with γ and
// β, and the statistics BatchNormTrainForward saved) whose output went
// through a ReLU (its relu epilogue, or ReLUForward after it), dy being
// the gradient at the ReLU's output: it reads dy where γ·x̂ + β > 0, else
// 0, which is what ReLUBackward on the ReLU's output writes (the sign
// recomputed from x with the forward pass's operations), so the same bits
// as ReLUBackward and then BatchNormBackward on its result, in one launch
// (bn_bwd_relu_v1), with neither the ReLU's output read nor the masked
// gradient stored. dx may be nil or dy. Errors as BatchNormBackward, and
// for a beta of another length than C.
func (d *Device) BatchNormBackwardReLU(n, c, hw int, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta *Buffer) error {
	if beta == nil {
		return launchErr(kBNBwdReLU, bnShape{n, c, hw}, fmt.Errorf("beta is nil: %w", geom.ErrGeometry))
	}
	return d.batchNormBackward(n, c, hw, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta)
}

// batchNormBackward is BatchNormBackward, or with beta
// BatchNormBackwardReLU.
func (d *Device) batchNormBackward(n, c, hw int, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dx != nil {
		delete(d.dyOnly, dx.ptr) // its values written now (BatchNormBackwardCopy)
	}
	if err := d.bnBackward(n, c, hw, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta); err != nil {
		return launchErr(bnBackwardKernel(x, dy, beta), bnShape{n, c, hw}, err)
	}
	return nil
}

// bnBackwardKernel is bn_bwd_v1, or with the ReLU's mask (beta given)
// bn_bwd_relu_v1; with x bfloat16 their _bf16x twins, with dy bfloat16 too
// their _bf16xdy twins (bnKernel).
func bnBackwardKernel(x, dy, beta *Buffer) kernelID {
	if beta != nil {
		return bnKernel(kBNBwdReLU, x, dy)
	}
	return bnKernel(kBNBwd, x, dy)
}

// bnBackward launches bnBackwardKernel(x, dy, beta) (buffers checked; beta nil:
// no ReLU). Callers hold d.mu.
func (d *Device) bnBackward(n, c, hw int, x, gamma, beta, saveMean, saveInvStd, dy, dx, dgamma, dbeta *Buffer) error {
	if err := dims([]int{n, c, hw}, []int{n, c, hw}); err != nil {
		return err
	}
	L := n * c * hw
	if err := d.need("x", x, xType(x), L); err != nil {
		return err
	}
	for _, b := range []struct {
		name string
		b    *Buffer
		n    int
	}{{"gamma", gamma, c}, {"saveMean", saveMean, c}, {"saveInvStd", saveInvStd, c},
		{"dgamma", dgamma, c}, {"dbeta", dbeta, c}} {
		if err := d.need(b.name, b.b, Float32, b.n); err != nil {
			return err
		}
	}
	if err := d.need("dy", dy, pairedType(x, dy), L); err != nil {
		return err
	}
	if err := d.needOpt("dx", dx, Float32, L); err != nil {
		return err
	}
	grid, block := perBlock(c)
	if beta != nil {
		if err := d.need("beta", beta, Float32, c); err != nil {
			return err
		}
		return d.launch(bnBackwardKernel(x, dy, beta), grid, block, 0, argPtr(x), argPtr(gamma), argPtr(beta), argPtr(saveMean),
			argPtr(saveInvStd), argPtr(dy), argPtr(dx), argPtr(dgamma), argPtr(dbeta), argI32(n), argI32(c), argI32(hw))
	}
	return d.launch(bnBackwardKernel(x, dy, nil), grid, block, 0, argPtr(x), argPtr(gamma), argPtr(saveMean), argPtr(saveInvStd),
		argPtr(dy), argPtr(dx), argPtr(dgamma), argPtr(dbeta), argI32(n), argI32(c), argI32(hw))
}
