package gpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/host/backend"
)

// ErrNoKernel is wrapped by the error of an operation that the GPU backend
// cannot run yet because its kernel is not written: the model it belongs
// to trains on the CPU backend (-device cpu) until then. Every operation
// of backend.Ops but AugmentBatch has a kernel at present; a new one
// without a kernel yet is a stub here that returns noKernel's error.
var ErrNoKernel = fmt.Errorf("no GPU kernel yet for this operation; train this model with -device cpu")

func noKernel(op string) error { return fmt.Errorf("host: gpu backend: %s: %w", op, ErrNoKernel) }

// AugmentBatch has no kernel yet: the kernel to add is "augment_batch"
// (one thread per output element: Hash3 of (seed, step, rows[i]) as
// data.Hash3, the crop offset and flip as data.Augment.Draw, the source
// element or 0), checked against the CPU backend bit for bit.
func (be *gpuBackend) AugmentBatch(p backend.AugmentParams, n, c, h, w int, src, rows, dst backend.Tensor) error {
	return noKernel("augment batch")
}
