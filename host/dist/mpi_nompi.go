//go:build !mpi

package dist

import "errors"

// errNoMPIBuild is the error of InitMPI, and of every method of MPI, in a
// binary built without the mpi tag.
var errNoMPIBuild = errors.New(`dist: this binary was built without MPI support (no "mpi" build tag); ` +
	`run it as a single process, or rebuild on a machine with an MPI library and its pkg-config file ` +
	`(Debian: apt-get install openmpi-bin libopenmpi-dev, or mpich libmpich-dev), from the repository root:
  go build -tags mpi ./cmd/train
then launch it with mpirun -np 4 ./train ... or srun`)

// MPI is the world of an MPI job; in a binary built without the mpi tag
// InitMPI cannot make one, and every method returns the build error.
type MPI struct{}

// InitMPI fails: MPI is compiled only with -tags mpi.
func InitMPI() (*MPI, error) { return nil, errNoMPIBuild }

// Rank returns 0.
func (*MPI) Rank() int { return 0 }

// Size returns 1.
func (*MPI) Size() int { return 1 }

// AllreduceSum returns the build error.
func (*MPI) AllreduceSum(buf []float32) error { return errNoMPIBuild }

// AllreduceSumF64 returns the build error.
func (*MPI) AllreduceSumF64(buf []float64) error { return errNoMPIBuild }

// AllreduceMaxInt64 returns the build error.
func (*MPI) AllreduceMaxInt64(v int64) (int64, error) { return 0, errNoMPIBuild }

// AnyTrue returns the build error.
func (*MPI) AnyTrue(flag bool) (bool, error) { return false, errNoMPIBuild }

// Same returns the build error.
func (*MPI) Same(v uint64) (bool, error) { return false, errNoMPIBuild }

// Allgather returns the build error.
func (*MPI) Allgather(dst, src []float32) error { return errNoMPIBuild }

// OrderedSum returns the build error.
func (*MPI) OrderedSum(buf []float32) error { return errNoMPIBuild }

// Bcast returns the build error.
func (*MPI) Bcast(buf []byte, root int) error { return errNoMPIBuild }

// Barrier returns the build error.
func (*MPI) Barrier() error { return errNoMPIBuild }

// Abort returns the build error.
func (*MPI) Abort(code int) error { return errNoMPIBuild }

// Close returns nil: there is nothing to finalise.
func (*MPI) Close() error { return nil }
