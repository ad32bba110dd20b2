//go:build !mpi

package dist

import (
	"strings"
	"testing"
)

func TestInitMPIWithoutTag(t *testing.T) {
	m, err := InitMPI()
	if m != nil || err == nil {
		t.Fatalf("InitMPI() = %v, %v, want nil and the build error", m, err)
	}
	for _, want := range []string{"without MPI support", "-tags mpi", "mpirun"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("InitMPI error %q does not contain %q", err, want)
		}
	}
	var nilMPI *MPI
	if err := nilMPI.AllreduceSum([]float32{1}); err != errNoMPIBuild {
		t.Errorf("AllreduceSum = %v, want the build error", err)
	}
}
