// Package backendtest gives tests the backends of package host's
// subpackages, opened and closed with the test, and the assertions they
// share: net/http/httptest's role for the training stack.
package backendtest

import (
	"math"
	"testing"

	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/cpubackend"
	"github.com/convtrain/convtrain/host/gpubackend"
)

// CPU returns a CPU backend on every core, closed when t ends.
func CPU(t testing.TB) backend.Backend {
	t.Helper()
	be, err := cpubackend.NewCPUBackend(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// Sim returns the GPU backend on the PTX simulator with its race and
// uninitialised-shared-memory checks on, and the simulated device; both
// are closed when t ends.
func Sim(t testing.TB) (backend.Backend, *gpu.Device) {
	t.Helper()
	dev, err := gpu.OpenSim(gpu.SimOptions{CheckRaces: true, CheckUninitShared: true})
	if err != nil {
		t.Fatal(err)
	}
	be, err := gpubackend.NewGPUBackend(dev)
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := be.Close(); err != nil {
			t.Errorf("backend close: %v", err)
		}
		if err := dev.Close(); err != nil {
			t.Errorf("device close: %v", err)
		}
	})
	return be, dev
}

// MustNil fails t at once when err is not nil.
func MustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// EqualBits fails t at the first element of got whose bits differ from
// want's.
func EqualBits(t testing.TB, name string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d = %g, want %g", name, i, got[i], want[i])
		}
	}
}
