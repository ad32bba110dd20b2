package backend

import (
	"errors"
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// ErrTensor is wrapped by every error about a tensor handle: nil, freed,
// created by another backend, of the wrong element type or length.
var ErrTensor = errors.New("bad tensor")

// MaxTensorElems is the largest tensor, matching the int32-indexable bound
// of cpuref and of the GPU kernels.
const MaxTensorElems = 1<<31 - 1

// CheckDense checks the sizes of a dense layer's operation op: n, in,
// out ≥ 1 and every product below MaxTensorElems.
func CheckDense(op string, n, in, out int) error {
	if n < 1 || in < 1 || out < 1 || n > MaxTensorElems/in || n > MaxTensorElems/out || out > MaxTensorElems/in {
		return fmt.Errorf("host: %s: n=%d in=%d out=%d: %w", op, n, in, out, geom.ErrGeometry)
	}
	return nil
}
