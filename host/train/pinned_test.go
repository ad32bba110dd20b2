package train

import (
	"context"
	"math"
	"testing"

	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// TestPinnedRun trains the default network for two epochs on synthetic
// digits and requires each epoch's loss and accuracies to be the exact
// float64 values that the code before the package split (5749d81)
// reported, so that a refactor cannot change the numbers unnoticed.
func TestPinnedRun(t *testing.T) {
	trainSet, err := data.Synthetic(600, 28, 10, 1)
	backendtest.MustNil(t, err)
	test, err := data.Synthetic(200, 28, 10, 2)
	backendtest.MustNil(t, err)
	m, err := nn.NewModel(backendtest.CPU(t), nn.DefaultSpec(), 1)
	backendtest.MustNil(t, err)
	defer m.Close()
	tr, err := NewTrainer(m, trainSet, test, Config{Epochs: 2, Batch: 32, LR: 0.05, Momentum: 0.9, Schedule: Schedule{Kind: CosineLR}, Seed: 1})
	backendtest.MustNil(t, err)
	defer tr.Close()
	ems, err := tr.Run(context.Background())
	backendtest.MustNil(t, err)
	want := [][4]uint64{ // loss, train accuracy, test loss, test accuracy
		{0x3ff9df6055555555, 0x3fdd71c71c71c71c, 0x3fea76db33333333, 0x3fe999999999999a},
		{0x3fd462c38e38e38e, 0x3fecf1c71c71c71c, 0x3fd26a291999999a, 0x3fee8f5c28f5c28f},
	}
	for i, e := range ems {
		got := [4]float64{e.Loss, e.TrainAcc, e.TestLoss, e.TestAcc}
		for j, name := range []string{"loss", "train accuracy", "test loss", "test accuracy"} {
			if math.Float64bits(got[j]) != want[i][j] {
				t.Errorf("epoch %d: %s = %v, want %v", i+1, name, got[j], math.Float64frombits(want[i][j]))
			}
		}
	}
}
