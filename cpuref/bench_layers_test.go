package cpuref

import "testing"

// BenchmarkBatchNorm times a training-mode forward and backward pass of
// batch norm in float32, readable form (float64 sequential sums) against
// the lane form (the GPU's order) and BatchNorm32 (the lane form's bits,
// channels on up to GOMAXPROCS goroutines, vector kernels), on a
// ResNet-like activation (N=16, C=32, 28×28) and on resnet8's last stage
// at batch 64 (N=64, C=64, 7×7: short segments), reporting GB/s of x read
// (one forward: 3 reads of x and a write of y; the number is x's bytes
// over the time, a comparison figure, not a bandwidth measurement).
//
//	go test -run '^$' -bench BatchNorm -benchtime 20x ./cpuref
func BenchmarkBatchNorm(b *testing.B) {
	for _, s := range []bnShape{{16, 32, 28 * 28}, {64, 64, 7 * 7}} {
		n, c, hw := s.n, s.c, s.hw
		rng := newRand(1)
		x, dy := randFloats[float32](rng, n*c*hw), randFloats[float32](rng, n*c*hw)
		gamma, beta := randFloats[float32](rng, c), randFloats[float32](rng, c)
		y, dx := make([]float32, n*c*hw), make([]float32, n*c*hw)
		mean, inv, rm, rv, dg, db := make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c)
		var bn BatchNorm32
		for _, form := range []struct {
			name string
			fwd  func(n, c, hw int, x, gamma, beta, y, sm, si, rm, rv []float32, m, e float64) error
			bwd  func(n, c, hw int, x, gamma, sm, si, dy, dx, dg, db []float32) error
		}{
			{"readable", BatchNormTrainForward[float32], BatchNormBackward[float32]},
			{"lanes", BatchNormTrainForward32, BatchNormBackward32},
			{"fast", func(n, c, hw int, x, gamma, beta, y, sm, si, rm, rv []float32, m, e float64) error {
				return bn.TrainForward(n, c, hw, x, gamma, beta, y, sm, si, rm, rv, m, e, false)
			}, bn.Backward},
		} {
			b.Run("shape="+s.String()+"/form="+form.name+"/op=fwd", func(b *testing.B) {
				b.SetBytes(int64(4 * len(x)))
				for i := 0; i < b.N; i++ {
					if err := form.fwd(n, c, hw, x, gamma, beta, y, mean, inv, rm, rv, 0.1, 1e-5); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("shape="+s.String()+"/form="+form.name+"/op=bwd", func(b *testing.B) {
				b.SetBytes(int64(4 * len(x)))
				for i := 0; i < b.N; i++ {
					if err := form.bwd(n, c, hw, x, gamma, mean, inv, dy, dx, dg, db); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
