package gpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/host/backend"
)

// ErrNoKernel is wrapped by the error of an operation that the GPU backend
// cannot run yet because its kernel is not written: the model it belongs
// to trains on the CPU backend (-device cpu) until then.
var ErrNoKernel = fmt.Errorf("no GPU kernel yet for this operation; train this model with -device cpu")

func noKernel(op string) error { return fmt.Errorf("host: gpu backend: %s: %w", op, ErrNoKernel) }

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
