package backend

import (
	"errors"
	"fmt"
)

// ErrTensor is wrapped by every error about a tensor handle: nil, freed,
// created by another backend, of the wrong element type, a view written
// to, an index value outside what it indexes, or a copy whose host slice
// differs in length from the tensor. A tensor whose length does not fit
// an operation's sizes is a geometry error (geom.ErrGeometry), as every
// other wrong size.
var ErrTensor = errors.New("bad tensor")

// MaxTensorElems is the largest tensor, matching the int32-indexable bound
// of cpuref and of the GPU kernels.
const MaxTensorElems = 1<<31 - 1

// CheckCopy checks a copy (Upload, UploadIndex, Download) between a tensor
// of n elements and a host slice of m values: they must be equal.
func CheckCopy(op string, n, m int) error {
	if n != m {
		return fmt.Errorf("host: %s: %d host values for a tensor of %d elements: %w", op, m, n, ErrTensor)
	}
	return nil
}
