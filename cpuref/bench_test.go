package cpuref

import (
	"testing"
)

// benchShapes are the named conv shapes of the benchmarks: the two conv
// layers of the default MNIST network at batch 64, and two larger ones.
var benchShapes = []struct {
	name string
	g    ConvGeom
}{
	{"mnist1", ConvGeom{N: 64, C: 1, H: 28, W: 28, K: 8, R: 5, S: 5, StrideH: 1, StrideW: 1}},
	{"mnist2", ConvGeom{N: 64, C: 8, H: 12, W: 12, K: 16, R: 5, S: 5, StrideH: 1, StrideW: 1}},
	{"3x3pad1", ConvGeom{N: 16, C: 32, H: 28, W: 28, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}},
	{"3x3stride2", ConvGeom{N: 16, C: 32, H: 28, W: 28, K: 64, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
}

// BenchmarkConv2D times each conv pass of each form on each shape and
// reports GFLOP/s, counting 2·N·K·P·Q·C·R·S per pass.
//
//	go test -run '^$' -bench Conv2D -benchtime 20x ./cpuref
func BenchmarkConv2D(b *testing.B) {
	for _, op := range []string{"fwd", "bwdData", "bwdFilter"} {
		for _, impl := range []string{"direct", "im2col"} {
			for _, s := range benchShapes {
				b.Run("op="+op+"/impl="+impl+"/shape="+s.name, func(b *testing.B) {
					benchConv(b, op, impl, s.g)
				})
			}
		}
	}
}

func benchConv(b *testing.B, op, impl string, g ConvGeom) {
	rng := newRand(1)
	x, w := randFloats[float32](rng, g.XLen()), randFloats[float32](rng, g.WLen())
	bias, dy := randFloats[float32](rng, g.K), randFloats[float32](rng, g.YLen())
	y, dx := make([]float32, g.YLen()), make([]float32, g.XLen())
	dw, db := make([]float32, g.WLen()), make([]float32, g.K)
	c, err := NewConv2D(g)
	if err != nil {
		b.Fatal(err)
	}
	var pass func() error
	switch op + "/" + impl {
	case "fwd/direct":
		pass = func() error { return Conv2DForwardDirect(g, x, w, bias, y) }
	case "bwdData/direct":
		pass = func() error { return Conv2DBackwardDataDirect(g, dy, w, dx) }
	case "bwdFilter/direct":
		pass = func() error {
			if err := Conv2DBackwardFilterDirect(g, x, dy, dw); err != nil {
				return err
			}
			return Conv2DBackwardBias(g, dy, db)
		}
	case "fwd/im2col":
		pass = func() error { return c.Forward(x, w, bias, y) }
	case "bwdData/im2col":
		pass = func() error { return c.BackwardData(dy, w, dx) }
	case "bwdFilter/im2col":
		pass = func() error { return c.BackwardFilter(x, dy, dw, db) }
	}
	if err := pass(); err != nil { // warm-up: workspace, caches
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := pass(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(g.FLOPs()*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
