package cpuref

import (
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// benchShapes are the named conv shapes of the benchmarks: the two conv
// layers of the default MNIST network at batch 64, two larger ones, and
// the 3×3 stride-1 convolutions of resnet8's three stages, its first
// stride-2 3×3 convolution and its first projection shortcut (1×1,
// stride 2) on 28×28 inputs at batch 64.
var benchShapes = []struct {
	name string
	g    geom.ConvGeom
}{
	{"mnist1", geom.ConvGeom{N: 64, C: 1, H: 28, W: 28, K: 8, R: 5, S: 5, StrideH: 1, StrideW: 1}},
	{"mnist2", geom.ConvGeom{N: 64, C: 8, H: 12, W: 12, K: 16, R: 5, S: 5, StrideH: 1, StrideW: 1}},
	{"3x3pad1", geom.ConvGeom{N: 16, C: 32, H: 28, W: 28, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}},
	{"3x3stride2", geom.ConvGeom{N: 16, C: 32, H: 28, W: 28, K: 64, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
	{"resnet8-16", geom.ConvGeom{N: 64, C: 16, H: 28, W: 28, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}},
	{"resnet8-32", geom.ConvGeom{N: 64, C: 32, H: 14, W: 14, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}},
	{"resnet8-64", geom.ConvGeom{N: 64, C: 64, H: 7, W: 7, K: 64, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}},
	{"resnet8-down", geom.ConvGeom{N: 64, C: 16, H: 28, W: 28, K: 32, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
	{"resnet8-proj", geom.ConvGeom{N: 64, C: 16, H: 28, W: 28, K: 32, R: 1, S: 1, StrideH: 2, StrideW: 2}},
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

func benchConv(b *testing.B, op, impl string, g geom.ConvGeom) {
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

// BenchmarkMNISTStep times one SGD step of the default network (conv 1→8
// 5×5, ReLU, max-pool 2, conv 8→16 5×5, ReLU, max-pool 2, dense 256→10,
// softmax-CE, momentum SGD) at batch 64, built from cpuref alone, and
// reports images/s. The first conv's backward-data pass is skipped, as a
// trainer does for the input layer.
//
//	go test -run '^$' -bench MNISTStep -benchtime 100x ./cpuref
func BenchmarkMNISTStep(b *testing.B) {
	const n = 64
	rng := newRand(7)
	g1 := geom.ConvGeom{N: n, C: 1, H: 28, W: 28, K: 8, R: 5, S: 5, StrideH: 1, StrideW: 1}
	p1 := geom.PoolGeom{N: n, C: 8, H: 24, W: 24, R: 2, S: 2, StrideH: 2, StrideW: 2}
	g2 := geom.ConvGeom{N: n, C: 8, H: 12, W: 12, K: 16, R: 5, S: 5, StrideH: 1, StrideW: 1}
	p2 := geom.PoolGeom{N: n, C: 16, H: 8, W: 8, R: 2, S: 2, StrideH: 2, StrideW: 2}
	c1, err := NewConv2D(g1)
	if err != nil {
		b.Fatal(err)
	}
	c2, err := NewConv2D(g2)
	if err != nil {
		b.Fatal(err)
	}
	f := func(k int) []float32 { return make([]float32, k) }
	x := randFloats[float32](rng, g1.XLen())
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(rng.IntN(10))
	}
	w1, b1, w2, b2 := randFloats[float32](rng, g1.WLen()), f(8), randFloats[float32](rng, g2.WLen()), f(16)
	fw, fb := randFloats[float32](rng, 2560), f(10)
	params := [][]float32{w1, b1, w2, b2, fw, fb}
	grads := [][]float32{f(len(w1)), f(8), f(len(w2)), f(16), f(2560), f(10)}
	var vels [][]float32
	for _, p := range params {
		vels = append(vels, f(len(p)))
	}
	y1, r1, q1, a1 := f(g1.YLen()), f(g1.YLen()), f(p1.YLen()), make([]int32, p1.YLen())
	y2, r2, q2, a2 := f(g2.YLen()), f(g2.YLen()), f(p2.YLen()), make([]int32, p2.YLen())
	logits, dl := f(n*10), f(n*10)
	dq2, dr2, dy2 := f(p2.YLen()), f(g2.YLen()), f(g2.YLen())
	dq1, dr1, dy1 := f(p1.YLen()), f(g1.YLen()), f(g1.YLen())
	step := func() error {
		for _, err := range []error{
			c1.Forward(x, w1, b1, y1), ReLUForward(y1, r1), MaxPoolForward(p1, r1, q1, a1),
			c2.Forward(q1, w2, b2, y2), ReLUForward(y2, r2), MaxPoolForward(p2, r2, q2, a2),
			DenseForward(n, 256, 10, q2, fw, fb, logits),
		} {
			if err != nil {
				return err
			}
		}
		if _, err := SoftmaxCrossEntropy(n, 10, logits, labels, dl); err != nil {
			return err
		}
		for _, err := range []error{
			DenseBackward(n, 256, 10, q2, fw, dl, dq2, grads[4], grads[5]),
			MaxPoolBackward(p2, dq2, a2, dr2), ReLUBackward(y2, dr2, dy2),
			c2.BackwardFilter(q1, dy2, grads[2], grads[3]), c2.BackwardData(dy2, w2, dq1),
			MaxPoolBackward(p1, dq1, a1, dr1), ReLUBackward(y1, dr1, dy1),
			c1.BackwardFilter(x, dy1, grads[0], grads[1]),
		} {
			if err != nil {
				return err
			}
		}
		for i, p := range params {
			if err := SGDStep(p, grads[i], vels[i], 0.01, 0.9, 0); err != nil {
				return err
			}
		}
		return nil
	}
	if err := step(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := step(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(n*float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkLayers times the float32 non-conv layers of the default network
// at batch 64 (first pool and ReLU: 64×8×24×24 inputs).
//
//	go test -run '^$' -bench Layers ./cpuref
func BenchmarkLayers(b *testing.B) {
	rng := newRand(8)
	g := geom.PoolGeom{N: 64, C: 8, H: 24, W: 24, R: 2, S: 2, StrideH: 2, StrideW: 2}
	x, dy := randFloats[float32](rng, g.XLen()), randFloats[float32](rng, g.XLen())
	y, dx := make([]float32, g.XLen()), make([]float32, g.XLen())
	py, arg := make([]float32, g.YLen()), make([]int32, g.YLen())
	for _, bc := range []struct {
		name string
		f    func() error
	}{
		{"op=reluFwd", func() error { return ReLUForward(x, y) }},
		{"op=reluBwd", func() error { return ReLUBackward(x, dy, dx) }},
		{"op=maxPoolFwd", func() error { return MaxPoolForward(g, x, py, arg) }},
		{"op=maxPoolBwd", func() error { return MaxPoolBackward(g, dy[:g.YLen()], arg, dx) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if err := bc.f(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := bc.f(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(g.XLen())*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
		})
	}
}
