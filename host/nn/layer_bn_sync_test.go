package nn

import (
	"fmt"
	"testing"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
)

// TestBatchNormSyncOneRank trains a network with two BatchNorm layers
// (the first the network's first layer, so without dx) three steps plainly
// and three steps synchronised over a world of one (the sum the identity),
// on the CPU and on the simulated GPU, and requires the same losses,
// parameters and running statistics bit for bit: the host-staged split
// form reproduces the backend's BatchNorm. It counts the sums, so the
// synchronised path is known to have run: per step, 2 in each forward
// pass and 1 in the backward pass of the layer that has a dx.
func TestBatchNormSyncOneRank(t *testing.T) {
	layers, err := ParseSpec("bn,conv3x3x4p1,bn,relu,gap,dense3")
	backendtest.MustNil(t, err)
	spec := Spec{C: 1, H: 6, W: 6, Loss: SoftmaxCE, Layers: layers}
	ds, err := data.Synthetic(24, 6, 3, 2)
	backendtest.MustNil(t, err)
	const steps = 3
	run := func(be backend.Backend, sync *BNSync) ([]float32, [][]float32) {
		m, err := NewModel(be, spec, 4)
		backendtest.MustNil(t, err)
		defer m.Close()
		backendtest.MustNil(t, m.SetBatchNormSync(sync))
		losses := trainSteps(t, m, ds, steps, 8, 1, 0.05)
		return losses, paramsAndBuffers(t, m, be)
	}
	backends := []string{"cpu", "sim"}
	if testing.Short() {
		backends = backends[:1] // the simulator's run is left to the full run
	}
	for _, name := range backends {
		t.Run("backend="+name, func(t *testing.T) {
			newBE := func() backend.Backend {
				if name == "sim" {
					be, _ := backendtest.Sim(t)
					return be
				}
				return backendtest.CPU(t)
			}
			wantLoss, want := run(newBE(), nil)
			calls := 0
			gotLoss, got := run(newBE(), &BNSync{World: 1, Sum: func([]float32) error { calls++; return nil }})
			backendtest.EqualBits(t, "losses", gotLoss, wantLoss)
			for i := range want {
				backendtest.EqualBits(t, fmt.Sprintf("tensor %d", i), got[i], want[i])
			}
			if calls != steps*(2+2+1) {
				t.Errorf("%d sums in %d steps, want %d", calls, steps, steps*5)
			}
		})
	}
	m, err := NewModel(backendtest.CPU(t), spec, 4)
	backendtest.MustNil(t, err)
	defer m.Close()
	if err := m.SetBatchNormSync(&BNSync{World: 0, Sum: func([]float32) error { return nil }}); err == nil {
		t.Errorf("a sync over 0 ranks: no error")
	}
}
