package dist

import "fmt"

// Local is a world of one process: rank 0 of 1. Every collective is the
// identity (or a copy), so code written for MPI runs unchanged without it.
// Its methods are those of MPI; the zero value is ready to use.
type Local struct{}

// Rank returns 0.
func (Local) Rank() int { return 0 }

// Size returns 1.
func (Local) Size() int { return 1 }

// AllreduceSum leaves buf as it is: the sum over one rank.
func (Local) AllreduceSum(buf []float32) error { return nil }

// AllreduceSumF64 leaves buf as it is: the sum over one rank.
func (Local) AllreduceSumF64(buf []float64) error { return nil }

// AllreduceMaxInt64 returns v: the maximum over one rank.
func (Local) AllreduceMaxInt64(v int64) (int64, error) { return v, nil }

// AnyTrue returns flag: the logical or over one rank.
func (Local) AnyTrue(flag bool) (bool, error) { return flag, nil }

// Same returns true: one rank always agrees with itself.
func (Local) Same(v uint64) (bool, error) { return true, nil }

// Allgather copies src into dst; len(dst) must equal len(src) (Size × len(src)).
func (Local) Allgather(dst, src []float32) error {
	if len(dst) != len(src) {
		return fmt.Errorf("dist: Allgather: destination has %d values, want %d (Size 1 × %d)", len(dst), len(src), len(src))
	}
	copy(dst, src)
	return nil
}

// OrderedSum leaves buf as it is: the ordered sum over one rank.
func (Local) OrderedSum(buf []float32) error { return nil }

// Bcast leaves buf as it is; root must be 0.
func (Local) Bcast(buf []byte, root int) error {
	if root != 0 {
		return fmt.Errorf("dist: Bcast: root %d out of range [0, 1)", root)
	}
	return nil
}

// Barrier returns at once.
func (Local) Barrier() error { return nil }

// Abort does nothing and returns nil: with one process there is no peer to
// stop; the caller exits with its error as usual.
func (Local) Abort(code int) error { return nil }

// Close does nothing and returns nil.
func (Local) Close() error { return nil }
