package nn

import (
	"strconv"
	"testing"

	"github.com/convtrain/convtrain/host/cpubackend"
	"github.com/convtrain/convtrain/host/data"
)

// BenchmarkTrainStep times one SGD step (load, forward, loss, backward,
// update) of the default network and of resnet8 on the CPU backend at
// batch 64, on synthetic 1×28×28 images, and reports images/s.
func BenchmarkTrainStep(b *testing.B) {
	resnet8, err := ParseSpec(Presets["resnet8"])
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"default", DefaultSpec()},
		{"resnet8", Spec{C: 1, H: 28, W: 28, Loss: SoftmaxCE, Layers: resnet8}},
	} {
		batch := 64
		b.Run("backend=cpu/model="+tc.name+"/batch="+strconv.Itoa(batch), func(b *testing.B) {
			be, err := cpubackend.NewCPUBackend(0)
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			m, err := NewModel(be, tc.spec, 1)
			if err != nil {
				b.Fatal(err)
			}
			ds, err := data.Synthetic(1024, 28, 10, 1)
			if err != nil {
				b.Fatal(err)
			}
			set, err := m.Upload(ds, ds.Standardisation())
			if err != nil {
				b.Fatal(err)
			}
			bt, err := m.NewBatch(batch)
			if err != nil {
				b.Fatal(err)
			}
			rows := make([]int32, batch)
			for i := range rows {
				rows[i] = int32(i)
			}
			step := func() {
				if err := m.Load(bt, set, rows); err != nil {
					b.Fatal(err)
				}
				if err := m.TrainStep(bt, 0.01, 0.9, 0); err != nil {
					b.Fatal(err)
				}
			}
			for range 3 { // warm-up: workspaces
				step()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				step()
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
