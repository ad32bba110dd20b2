package cpubackend

import (
	"math/rand/v2"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

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
