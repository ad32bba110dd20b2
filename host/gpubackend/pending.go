package gpubackend

import "fmt"

// ErrNoKernel is wrapped by the error of an operation that the GPU backend
// cannot run yet because its kernel is not written: the model it belongs
// to trains on the CPU backend (-device cpu) until then. Every operation
// of backend.Ops has a kernel at present; a new one without a kernel yet
// is a stub here that returns noKernel's error.
var ErrNoKernel = fmt.Errorf("no GPU kernel yet for this operation; train this model with -device cpu")

func noKernel(op string) error { return fmt.Errorf("host: gpu backend: %s: %w", op, ErrNoKernel) }
