package host

import (
	"math/rand/v2"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/data"
)

// BenchmarkTrainStep times one SGD step (load, forward, loss, backward,
// update) of the default network on the CPU backend at batch 64, on
// synthetic 28×28 images, and reports images/s.
func BenchmarkTrainStep(b *testing.B) {
	for _, batch := range []int{64} {
		b.Run("backend=cpu/model=default/batch="+itoa(batch), func(b *testing.B) {
			be, err := NewCPUBackend(0)
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			m, err := NewModel(be, DefaultSpec(), 1)
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

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

// BenchmarkMaxPoolForward compares the CPU backend's 2×2 stride-2 max-pool
// with cpuref's general one on the first pool of the default network.
func BenchmarkMaxPoolForward(b *testing.B) {
	g := geom.PoolGeom{N: 64, C: 8, H: 24, W: 24, R: 2, S: 2, StrideH: 2, StrideW: 2}
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, g.XLen())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y, am := make([]float32, g.YLen()), make([]int32, g.YLen())
	b.Run("impl=cpuref", func(b *testing.B) {
		for b.Loop() {
			if err := cpuref.MaxPoolForward(g, x, y, am); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(g.XLen())*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
	})
	b.Run("impl=host2x2", func(b *testing.B) {
		for b.Loop() {
			maxPool2x2(g, x, y, am, 0)
		}
		b.ReportMetric(float64(g.XLen())*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
	})
}
