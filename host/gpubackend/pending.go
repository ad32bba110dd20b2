package gpubackend

import "fmt"

// ErrNoKernel is wrapped by the error of an operation that the GPU backend
// cannot run yet because its kernel is not written: the model it belongs
// to trains on the CPU backend (-device cpu) until then. The operations
// still without a kernel are stubs here over noKernel; none at present.
var ErrNoKernel = fmt.Errorf("no GPU kernel yet for this operation; train this model with -device cpu")

func noKernel(op string) error { return fmt.Errorf("host: gpu backend: %s: %w", op, ErrNoKernel) }
