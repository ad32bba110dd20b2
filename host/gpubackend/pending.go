package gpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// ErrNoKernel is wrapped by the error of an operation that the GPU backend
// cannot run yet because its kernel is not written: the model it belongs
// to trains on the CPU backend (-device cpu) until then.
var ErrNoKernel = fmt.Errorf("no GPU kernel yet for this operation; train this model with -device cpu")

func noKernel(op string) error { return fmt.Errorf("host: gpu backend: %s: %w", op, ErrNoKernel) }

func (be *gpuBackend) BatchNormForward(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y backend.Tensor, momentum, eps float64) error {
	return noKernel("batch norm forward")
}

func (be *gpuBackend) BatchNormBackward(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta backend.Tensor) error {
	return noKernel("batch norm backward")
}

func (be *gpuBackend) AvgPoolForward(g geom.AvgPoolGeom, x, y backend.Tensor) error {
	return noKernel("average pool forward")
}

func (be *gpuBackend) AvgPoolBackward(g geom.AvgPoolGeom, dy, dx backend.Tensor) error {
	return noKernel("average pool backward")
}

func (be *gpuBackend) GlobalAvgPoolForward(n, c, hw int, x, y backend.Tensor) error {
	return noKernel("global average pool forward")
}

func (be *gpuBackend) GlobalAvgPoolBackward(n, c, hw int, dy, dx backend.Tensor) error {
	return noKernel("global average pool backward")
}

func (be *gpuBackend) ActivationForward(act backend.Activation, param float32, x, y backend.Tensor) error {
	return noKernel(act.String() + " forward")
}

func (be *gpuBackend) ActivationBackward(act backend.Activation, param float32, x, y, dy, dx backend.Tensor) error {
	return noKernel(act.String() + " backward")
}

func (be *gpuBackend) DropoutForward(key backend.DropoutKey, p float32, x, y backend.Tensor) error {
	return noKernel("dropout forward")
}

func (be *gpuBackend) DropoutBackward(key backend.DropoutKey, p float32, dy, dx backend.Tensor) error {
	return noKernel("dropout backward")
}

func (be *gpuBackend) Add(a, b, y backend.Tensor) error { return noKernel("add") }

func (be *gpuBackend) ConcatForward(n, hw int, cs []int, xs []backend.Tensor, y backend.Tensor) error {
	return noKernel("concat forward")
}

func (be *gpuBackend) ConcatBackward(n, hw int, cs []int, dy backend.Tensor, dxs []backend.Tensor) error {
	return noKernel("concat backward")
}

// AugmentBatch has no kernel yet: the kernel to add is "augment_batch"
// (one thread per output element: Hash3 of (seed, step, rows[i]) as
// data.Hash3, the crop offset and flip as data.Augment.Draw, the source
// element or 0), checked against the CPU backend bit for bit.
func (be *gpuBackend) AugmentBatch(p backend.AugmentParams, n, c, h, w int, src, rows, dst backend.Tensor) error {
	return noKernel("augment batch")
}
