package cpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// The operations of this file hand their tensors' storage to cpuref,
// which checks every size and length before any work: the backend checks
// only that each tensor is a live float32 tensor of its own.

// slices returns the storage of float32 tensors named by names (a nil
// tensor gives a nil slice: an argument cpuref takes as absent); a
// bfloat16 tensor is refused.
func (be *cpuBackend) slices(names []string, ts ...backend.Tensor) ([][]float32, error) {
	out, _, err := be.slicesBF16(names, 0, ts...)
	return out, err
}

// slicesBF16 is slices where the tensors at the positions i with bit 1<<i
// set in may can be bfloat16 tensors too (a batch norm's x, a BF16
// convolution's output; its backward pass's dy, a BF16 convolution's
// input gradient): their float32 values. is has the bits of those that
// are.
func (be *cpuBackend) slicesBF16(names []string, may uint, ts ...backend.Tensor) (out [][]float32, is uint, err error) {
	if cap(be.sl) < len(ts) {
		be.sl = make([][]float32, len(ts))
	}
	out = be.sl[:len(ts)]
	for i, t := range ts {
		out[i] = nil
		if t == nil {
			continue
		}
		if may&(1<<i) != 0 {
			var bf16 bool
			out[i], bf16, err = be.f32x(names[i], t, -1)
			if bf16 {
				is |= 1 << i
			}
		} else {
			out[i], err = be.f32(names[i], t, -1)
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return out, is, nil
}

// bnBackwardSlices is slicesBF16 for a batch norm's backward pass, x at
// 0 and dy at dyAt: a bfloat16 dy (ConvInputGradBF16) only with a
// bfloat16 x, as the GPU reads one.
func (be *cpuBackend) bnBackwardSlices(names []string, dyAt int, ts ...backend.Tensor) ([][]float32, error) {
	s, is, err := be.slicesBF16(names, 1|1<<dyAt, ts...)
	if err == nil && is&(1<<dyAt) != 0 && is&1 == 0 {
		err = fmt.Errorf("host: dy is a bfloat16 tensor, which a batch norm reads only with a bfloat16 x: %w", backend.ErrTensor)
	}
	return s, err
}

var bnForwardNames = []string{"x", "gamma", "beta", "running mean", "running var", "saved mean", "saved inverse std", "y"}

// BatchNormForward is cpuref's float32 batch normalisation
// (cpuref.BatchNorm32: BatchNormTrainForward32's or BatchNormEvalForward's
// bits), with EpilogueReLU applying ReLUForward to y in the same pass.
func (be *cpuBackend) BatchNormForward(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y backend.Tensor, ep backend.Epilogue, momentum, eps float64) error {
	if ep != backend.NoEpilogue && ep != backend.EpilogueReLU {
		return fmt.Errorf("host: batch norm forward: unknown epilogue %v: %w", ep, geom.ErrGeometry)
	}
	// x may be bfloat16 (a BF16 conv's output), and y too where x is (a
	// batch norm's output that only a residual add reads), as on the GPU
	s, is, err := be.slicesBF16(bnForwardNames, 1|1<<7, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y)
	if err != nil {
		return err
	}
	if is == 1<<7 {
		return fmt.Errorf("host: batch norm forward: y is a bfloat16 tensor, which a batch norm writes only from a bfloat16 x: %w", backend.ErrTensor)
	}
	relu := ep == backend.EpilogueReLU
	if train {
		err = wrap("batch norm forward", be.bn.TrainForward(n, c, hw, s[0], s[1], s[2], s[7], s[5], s[6], s[3], s[4], momentum, eps, relu))
	} else {
		err = wrap("batch norm forward (evaluation)", be.bn.EvalForward(n, c, hw, s[0], s[1], s[2], s[3], s[4], s[7], eps, relu))
	}
	if err == nil && is&(1<<7) != 0 {
		cpuref.RoundBF16Slice(s[7], s[7]) // stored as bfloat16
	}
	return err
}

// BatchNormForwardKeep is BatchNormForward: the CPU keeps nothing for the
// convolution after it (ConvKeepLen is 0), and writes y with copyOnly too.
func (be *cpuBackend) BatchNormForwardKeep(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y backend.Tensor, ep backend.Epilogue, momentum, eps float64, _ geom.ConvGeom, _ backend.Tensor, _ bool) error {
	return be.BatchNormForward(train, n, c, hw, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y, ep, momentum, eps)
}

// BatchNormBackwardKeep is BatchNormBackward, or with relu
// BatchNormBackwardReLU: the CPU makes nothing for the convolution before
// it (ConvDyCopyLen is 0).
func (be *cpuBackend) BatchNormBackwardKeep(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta backend.Tensor, _ geom.ConvGeom, _ backend.Tensor, _ bool, relu backend.BNReLU) error {
	if relu.On() {
		return be.BatchNormBackwardReLU(n, c, hw, x, gamma, relu.Beta, saveMean, saveInvStd, relu.Y, dy, dx, dgamma, dbeta)
	}
	return be.BatchNormBackward(n, c, hw, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta)
}

// ConvDyCopyLen is 0: the CPU's convolutions read dy as it is.
func (be *cpuBackend) ConvDyCopyLen(geom.ConvGeom) int { return 0 }

var bnBackwardNames = []string{"x", "gamma", "saved mean", "saved inverse std", "dy", "dx", "dgamma", "dbeta"}

// BatchNormBackward is cpuref.BatchNorm32's backward pass
// (BatchNormBackward32's bits).
func (be *cpuBackend) BatchNormBackward(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta backend.Tensor) error {
	s, err := be.bnBackwardSlices(bnBackwardNames, 4, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta)
	if err != nil {
		return err
	}
	return wrap("batch norm backward", be.bn.Backward(n, c, hw, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]))
}

var bnBackwardReLUNames = []string{"x", "gamma", "saved mean", "saved inverse std", "y", "dy", "dx", "dgamma", "dbeta"}

// BatchNormBackwardReLU is cpuref.BatchNorm32.BackwardReLU: the backward
// pass reads dy masked by the ReLU's output y as it goes (ReLUBackward's
// bits), with no masked copy written. beta is checked (a float32 tensor
// of C elements, as the GPU backend needs it) but not read: y masks.
func (be *cpuBackend) BatchNormBackwardReLU(n, c, hw int, x, gamma, beta, saveMean, saveInvStd, y, dy, dx, dgamma, dbeta backend.Tensor) error {
	if _, err := be.f32("beta", beta, c); err != nil {
		return err
	}
	s, err := be.bnBackwardSlices(bnBackwardReLUNames, 5, x, gamma, saveMean, saveInvStd, y, dy, dx, dgamma, dbeta)
	if err != nil {
		return err
	}
	return wrap("batch norm+relu backward", be.bn.BackwardReLU(n, c, hw, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8]))
}

func (be *cpuBackend) AvgPoolForward(g geom.AvgPoolGeom, x, y backend.Tensor) error {
	s, err := be.slices([]string{"x", "y"}, x, y)
	if err != nil {
		return err
	}
	return wrap("average pool forward", cpuref.AvgPoolForward(g, s[0], s[1]))
}

func (be *cpuBackend) AvgPoolBackward(g geom.AvgPoolGeom, dy, dx backend.Tensor) error {
	s, err := be.slices([]string{"dy", "dx"}, dy, dx)
	if err != nil {
		return err
	}
	return wrap("average pool backward", cpuref.AvgPoolBackward(g, s[0], s[1]))
}

func (be *cpuBackend) GlobalAvgPoolForward(n, c, hw int, x, y backend.Tensor) error {
	s, err := be.slices([]string{"x", "y"}, x, y)
	if err != nil {
		return err
	}
	return wrap("global average pool forward", cpuref.GlobalAvgPoolForward(n, c, hw, s[0], s[1]))
}

func (be *cpuBackend) GlobalAvgPoolBackward(n, c, hw int, dy, dx backend.Tensor) error {
	s, err := be.slices([]string{"dy", "dx"}, dy, dx)
	if err != nil {
		return err
	}
	return wrap("global average pool backward", cpuref.GlobalAvgPoolBackward(n, c, hw, s[0], s[1]))
}
