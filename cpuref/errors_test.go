package cpuref

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

func nans64(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

func nans32(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	return s
}

// allNaN reports whether every element is still the NaN poison.
func allNaN[T Float](s []T) bool {
	for _, v := range s {
		if v == v {
			return false
		}
	}
	return true
}

// TestErrors checks that bad geometry and bad lengths give an error wrapping
// geom.ErrGeometry, without a panic and before any work: the outputs, poisoned
// with NaN, are left untouched.
func TestErrors(t *testing.T) {
	ok := geom.ConvGeom{N: 2, C: 3, H: 5, W: 6, K: 4, R: 3, S: 2, StrideH: 1, StrideW: 2, PadH: 1, PadW: 0}
	f64 := func(n int) []float64 { return make([]float64, n) }
	f32 := func(n int) []float32 { return make([]float32, n) }
	badGeoms := map[string]geom.ConvGeom{}
	for name, mod := range map[string]func(g *geom.ConvGeom){
		"N=0": func(g *geom.ConvGeom) { g.N = 0 }, "C=-1": func(g *geom.ConvGeom) { g.C = -1 },
		"H=0": func(g *geom.ConvGeom) { g.H = 0 }, "W=-3": func(g *geom.ConvGeom) { g.W = -3 },
		"K=0": func(g *geom.ConvGeom) { g.K = 0 }, "R=0": func(g *geom.ConvGeom) { g.R = 0 },
		"S=-1": func(g *geom.ConvGeom) { g.S = -1 }, "strideH=0": func(g *geom.ConvGeom) { g.StrideH = 0 },
		"strideW=-1": func(g *geom.ConvGeom) { g.StrideW = -1 }, "padH=-1": func(g *geom.ConvGeom) { g.PadH = -1 },
		"P=0":          func(g *geom.ConvGeom) { g.R = 8 },
		"Q=0":          func(g *geom.ConvGeom) { g.S = 7 },
		"x overflows":  func(g *geom.ConvGeom) { g.N, g.C, g.H, g.W = 1<<16, 1<<8, 1<<5, 1<<5 },
		"y overflows":  func(g *geom.ConvGeom) { g.K = 1 << 28 },
		"huge dim":     func(g *geom.ConvGeom) { g.H = 1 << 40 },
		"huge padding": func(g *geom.ConvGeom) { g.PadW = math.MaxInt / 2 },
	} {
		g := ok
		mod(&g)
		badGeoms[name] = g
	}

	type tc struct {
		name string
		call func() error
		outs [][]float64 // float64 outputs that must stay NaN
		o32  [][]float32 // float32 outputs that must stay NaN
	}
	var cases []tc
	for name, g := range badGeoms {
		y, dx, dw, db := nans64(64), nans64(64), nans64(64), nans64(64)
		in := f64(64)
		cases = append(cases,
			tc{"Conv2DForwardDirect/" + name, func() error { return Conv2DForwardDirect(g, in, in, nil, y) }, [][]float64{y}, nil},
			tc{"Conv2DBackwardDataDirect/" + name, func() error { return Conv2DBackwardDataDirect(g, in, in, dx) }, [][]float64{dx}, nil},
			tc{"Conv2DBackwardFilterDirect/" + name, func() error { return Conv2DBackwardFilterDirect(g, in, in, dw) }, [][]float64{dw}, nil},
			tc{"Conv2DBackwardBias/" + name, func() error { return Conv2DBackwardBias(g, in, db) }, [][]float64{db}, nil},
			tc{"NewConv2D/" + name, func() error {
				c, err := NewConv2D(g)
				if c != nil {
					return errors.New("NewConv2D returned a Conv2D with its error")
				}
				return err
			}, nil, nil},
		)
	}
	// Lengths one short or one long, or a non-nil empty bias.
	g := ok
	X, Wl, Y, K := g.XLen(), g.WLen(), g.YLen(), g.K
	for _, d := range []int{-1, 1} {
		y, dx, dw, db := nans64(Y+d), nans64(X+d), nans64(Wl+d), nans64(K+d)
		yOK, dxOK, dwOK, dbOK := nans64(Y), nans64(X), nans64(Wl), nans64(K)
		cases = append(cases,
			tc{"Conv2DForwardDirect/len(x)", func() error { return Conv2DForwardDirect(g, f64(X+d), f64(Wl), nil, yOK) }, [][]float64{yOK}, nil},
			tc{"Conv2DForwardDirect/len(w)", func() error { return Conv2DForwardDirect(g, f64(X), f64(Wl+d), nil, yOK) }, [][]float64{yOK}, nil},
			tc{"Conv2DForwardDirect/len(b)", func() error { return Conv2DForwardDirect(g, f64(X), f64(Wl), f64(K+d), yOK) }, [][]float64{yOK}, nil},
			tc{"Conv2DForwardDirect/len(y)", func() error { return Conv2DForwardDirect(g, f64(X), f64(Wl), nil, y) }, [][]float64{y}, nil},
			tc{"Conv2DBackwardDataDirect/len(dy)", func() error { return Conv2DBackwardDataDirect(g, f64(Y+d), f64(Wl), dxOK) }, [][]float64{dxOK}, nil},
			tc{"Conv2DBackwardDataDirect/len(w)", func() error { return Conv2DBackwardDataDirect(g, f64(Y), f64(Wl+d), dxOK) }, [][]float64{dxOK}, nil},
			tc{"Conv2DBackwardDataDirect/len(dx)", func() error { return Conv2DBackwardDataDirect(g, f64(Y), f64(Wl), dx) }, [][]float64{dx}, nil},
			tc{"Conv2DBackwardFilterDirect/len(x)", func() error { return Conv2DBackwardFilterDirect(g, f64(X+d), f64(Y), dwOK) }, [][]float64{dwOK}, nil},
			tc{"Conv2DBackwardFilterDirect/len(dy)", func() error { return Conv2DBackwardFilterDirect(g, f64(X), f64(Y+d), dwOK) }, [][]float64{dwOK}, nil},
			tc{"Conv2DBackwardFilterDirect/len(dw)", func() error { return Conv2DBackwardFilterDirect(g, f64(X), f64(Y), dw) }, [][]float64{dw}, nil},
			tc{"Conv2DBackwardBias/len(dy)", func() error { return Conv2DBackwardBias(g, f64(Y+d), dbOK) }, [][]float64{dbOK}, nil},
			tc{"Conv2DBackwardBias/len(db)", func() error { return Conv2DBackwardBias(g, f64(Y), db) }, [][]float64{db}, nil},
		)
		c, err := NewConv2D(g)
		if err != nil {
			t.Fatal(err)
		}
		y32, dx32, dw32, db32 := nans32(Y+d), nans32(X+d), nans32(Wl+d), nans32(K+d)
		yOK32, dxOK32, dwOK32, dbOK32 := nans32(Y), nans32(X), nans32(Wl), nans32(K)
		cases = append(cases,
			tc{"Conv2D.Forward/len(x)", func() error { return c.Forward(f32(X+d), f32(Wl), nil, yOK32) }, nil, [][]float32{yOK32}},
			tc{"Conv2D.Forward/len(w)", func() error { return c.Forward(f32(X), f32(Wl+d), nil, yOK32) }, nil, [][]float32{yOK32}},
			tc{"Conv2D.Forward/len(b)", func() error { return c.Forward(f32(X), f32(Wl), f32(K+d), yOK32) }, nil, [][]float32{yOK32}},
			tc{"Conv2D.Forward/len(y)", func() error { return c.Forward(f32(X), f32(Wl), nil, y32) }, nil, [][]float32{y32}},
			tc{"Conv2D.BackwardData/len(dy)", func() error { return c.BackwardData(f32(Y+d), f32(Wl), dxOK32) }, nil, [][]float32{dxOK32}},
			tc{"Conv2D.BackwardData/len(w)", func() error { return c.BackwardData(f32(Y), f32(Wl+d), dxOK32) }, nil, [][]float32{dxOK32}},
			tc{"Conv2D.BackwardData/len(dx)", func() error { return c.BackwardData(f32(Y), f32(Wl), dx32) }, nil, [][]float32{dx32}},
			tc{"Conv2D.BackwardFilter/len(x)", func() error { return c.BackwardFilter(f32(X+d), f32(Y), dwOK32, dbOK32) }, nil, [][]float32{dwOK32, dbOK32}},
			tc{"Conv2D.BackwardFilter/len(dy)", func() error { return c.BackwardFilter(f32(X), f32(Y+d), dwOK32, dbOK32) }, nil, [][]float32{dwOK32, dbOK32}},
			tc{"Conv2D.BackwardFilter/len(dw)", func() error { return c.BackwardFilter(f32(X), f32(Y), dw32, dbOK32) }, nil, [][]float32{dw32, dbOK32}},
			tc{"Conv2D.BackwardFilter/len(db)", func() error { return c.BackwardFilter(f32(X), f32(Y), dwOK32, db32) }, nil, [][]float32{dwOK32, db32}},
		)
	}
	{
		y := nans64(Y)
		cases = append(cases, tc{"Conv2DForwardDirect/b empty not nil", func() error { return Conv2DForwardDirect(g, f64(X), f64(Wl), []float64{}, y) }, [][]float64{y}, nil})
	}

	// Max-pool.
	pg := geom.PoolGeom{N: 2, C: 3, H: 5, W: 4, R: 2, S: 2, StrideH: 2, StrideW: 2}
	for name, bad := range map[string]geom.PoolGeom{
		"N=0":         {N: 0, C: 1, H: 2, W: 2, R: 1, S: 1, StrideH: 1, StrideW: 1},
		"R=0":         {N: 1, C: 1, H: 2, W: 2, R: 0, S: 1, StrideH: 1, StrideW: 1},
		"strideW=0":   {N: 1, C: 1, H: 2, W: 2, R: 1, S: 1, StrideH: 1, StrideW: 0},
		"R>H":         {N: 1, C: 1, H: 2, W: 2, R: 3, S: 1, StrideH: 1, StrideW: 1},
		"x overflows": {N: 1 << 16, C: 1 << 16, H: 2, W: 2, R: 1, S: 1, StrideH: 1, StrideW: 1},
		"huge dim":    {N: 1, C: 1, H: 1 << 40, W: 1, R: 1, S: 1, StrideH: 1, StrideW: 1},
	} {
		y, dx := nans64(16), nans64(16)
		cases = append(cases,
			tc{"MaxPoolForward/" + name, func() error { return MaxPoolForward(bad, f64(16), y, make([]int32, 16)) }, [][]float64{y}, nil},
			tc{"MaxPoolBackward/" + name, func() error { return MaxPoolBackward(bad, f64(16), make([]int32, 16), dx) }, [][]float64{dx}, nil})
	}
	PX, PY := pg.XLen(), pg.YLen()
	for _, d := range []int{-1, 1} {
		y, dx := nans64(PY), nans64(PX)
		yBad, dxBad := nans64(PY+d), nans64(PX+d)
		cases = append(cases,
			tc{"MaxPoolForward/len(x)", func() error { return MaxPoolForward(pg, f64(PX+d), y, make([]int32, PY)) }, [][]float64{y}, nil},
			tc{"MaxPoolForward/len(y)", func() error { return MaxPoolForward(pg, f64(PX), yBad, make([]int32, PY)) }, [][]float64{yBad}, nil},
			tc{"MaxPoolForward/len(argmax)", func() error { return MaxPoolForward(pg, f64(PX), y, make([]int32, PY+d)) }, [][]float64{y}, nil},
			tc{"MaxPoolBackward/len(dy)", func() error { return MaxPoolBackward(pg, f64(PY+d), make([]int32, PY), dx) }, [][]float64{dx}, nil},
			tc{"MaxPoolBackward/len(argmax)", func() error { return MaxPoolBackward(pg, f64(PY), make([]int32, PY+d), dx) }, [][]float64{dx}, nil},
			tc{"MaxPoolBackward/len(dx)", func() error { return MaxPoolBackward(pg, f64(PY), make([]int32, PY), dxBad) }, [][]float64{dxBad}, nil},
		)
	}
	for name, a := range map[string]int32{"negative": -1, "past the end": int32(PX), "other plane": 20} {
		dx := nans64(PX)
		arg := make([]int32, PY) // zeros are valid for output 0 only
		for i := range arg {
			arg[i] = int32(i / (PY / (pg.N * pg.C)) * pg.H * pg.W)
		}
		arg[PY-1] = a
		if name == "other plane" {
			arg[0] = a
		}
		cases = append(cases, tc{"MaxPoolBackward/argmax " + name, func() error { return MaxPoolBackward(pg, f64(PY), arg, dx) }, [][]float64{dx}, nil})
	}

	// ReLU and SGD.
	for _, c := range []struct {
		name   string
		x, out []float64
	}{{"empty", nil, nil}, {"len(y) short", f64(3), nans64(2)}, {"len(y) long", f64(3), nans64(4)}} {
		cases = append(cases,
			tc{"ReLUForward/" + c.name, func() error { return ReLUForward(c.x, c.out) }, [][]float64{c.out}, nil},
			tc{"ReLUBackward/" + c.name + " dx", func() error { return ReLUBackward(c.x, f64(len(c.x)), c.out) }, [][]float64{c.out}, nil},
			tc{"ReLUBackward/" + c.name + " dy", func() error { return ReLUBackward(c.x, f64(len(c.out)), c.out) }, [][]float64{c.out}, nil},
		)
	}
	{
		p, v := nans64(3), nans64(3)
		cases = append(cases,
			tc{"SGDStep/empty", func() error { return SGDStep(nil, nil, nil, 0.1, 0.9, 0) }, nil, nil},
			tc{"SGDStep/len(grad)", func() error { return SGDStep(p, f64(2), v, 0.1, 0.9, 0) }, [][]float64{p, v}, nil},
			tc{"SGDStep/len(vel)", func() error { return SGDStep(p, f64(3), v[:2], 0.1, 0.9, 0) }, [][]float64{p, v}, nil},
			tc{"SGDStep/vel nil with momentum", func() error { return SGDStep(p, f64(3), nil, 0.1, 0.9, 0) }, [][]float64{p}, nil},
		)
	}

	// Dense.
	for _, s := range []struct {
		name        string
		n, in, out  int
		lx, lw, ly  int
		lb, ldx, ld int
	}{
		{"N=0", 0, 2, 3, 0, 6, 0, 3, 0, 0},
		{"In=-1", 2, -1, 3, 2, 3, 6, 3, 2, 0},
		{"Out=0", 2, 2, 0, 4, 0, 0, 0, 4, 0},
		{"overflow", 1 << 20, 1 << 12, 1, 1, 1, 1, 1, 1, 0},
		{"len(x)", 2, 2, 3, 5, 6, 6, 3, 4, 0},
		{"len(w)", 2, 2, 3, 4, 5, 6, 3, 4, 0},
		{"len(y)", 2, 2, 3, 4, 6, 7, 3, 4, 0},
		{"len(b)", 2, 2, 3, 4, 6, 6, 2, 4, 0},
		{"len(dx)", 2, 2, 3, 4, 6, 6, 3, 3, 0},
	} {
		y, dx, dw, db := nans64(max(s.ly, 0)), nans64(max(s.ldx, 0)), nans64(max(s.lw, 0)), nans64(max(s.lb, 0))
		if s.name != "len(dx)" { // the forward pass has no dx
			cases = append(cases, tc{"DenseForward/" + s.name, func() error { return DenseForward(s.n, s.in, s.out, f64(s.lx), f64(s.lw), f64(s.lb), y) }, [][]float64{y}, nil})
		}
		cases = append(cases,
			tc{"DenseBackward/" + s.name, func() error {
				return DenseBackward(s.n, s.in, s.out, f64(s.lx), f64(max(s.out*s.in, 0)), f64(s.ly), dx, dw, db)
			}, [][]float64{dx, dw, db}, nil},
		)
		if s.name == "len(w)" || s.name == "len(b)" {
			// Wrong dw or db in the backward pass.
			dw, db := nans64(s.lw), nans64(s.lb)
			cases = append(cases, tc{"DenseBackward/dw,db " + s.name, func() error {
				return DenseBackward(2, 2, 3, f64(4), f64(6), f64(6), nil, dw, db)
			}, [][]float64{dw, db}, nil})
		}
	}

	// Losses.
	for _, s := range []struct {
		name       string
		n, classes int
		lz, ld     int
		labels     []int32
	}{
		{"N=0", 0, 3, 0, 0, nil},
		{"Classes=0", 2, 0, 0, 0, []int32{0, 0}},
		{"len(logits)", 2, 3, 5, 6, []int32{0, 1}},
		{"len(dlogits)", 2, 3, 6, 5, []int32{0, 1}},
		{"len(labels)", 2, 3, 6, 6, []int32{0}},
		{"label -1", 2, 3, 6, 6, []int32{0, -1}},
		{"label = classes", 2, 3, 6, 6, []int32{3, 0}},
		{"overflow", 1 << 20, 1 << 12, 1, 1, []int32{0}},
	} {
		d := nans64(s.ld)
		cases = append(cases, tc{"SoftmaxCrossEntropy/" + s.name, func() error {
			loss, err := SoftmaxCrossEntropy(s.n, s.classes, f64(s.lz), s.labels, d)
			if loss != 0 {
				return errors.New("nonzero loss with an error")
			}
			return err
		}, [][]float64{d}, nil})
	}
	for _, s := range []struct {
		name           string
		n, dim, ly, lt int
		ld             int
	}{
		{"N=0", 0, 3, 0, 0, 0}, {"Dim=-2", 2, -2, 4, 4, 4}, {"len(y)", 2, 3, 5, 6, 6},
		{"len(t)", 2, 3, 6, 7, 6}, {"len(dy)", 2, 3, 6, 6, 5},
	} {
		d := nans64(max(s.ld, 0))
		cases = append(cases, tc{"MSE/" + s.name, func() error {
			_, err := MSE(s.n, s.dim, f64(s.ly), f64(s.lt), d)
			return err
		}, [][]float64{d}, nil})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic: %v", r)
					}
				}()
				err = c.call()
			}()
			if !errors.Is(err, geom.ErrGeometry) {
				t.Fatalf("error = %v, want one wrapping geom.ErrGeometry", err)
			}
			for i, o := range c.outs {
				if !allNaN(o) {
					t.Errorf("output %d was written before the error", i)
				}
			}
			for i, o := range c.o32 {
				if !allNaN(o) {
					t.Errorf("float32 output %d was written before the error", i)
				}
			}
		})
	}
}

// TestErrorsKeepState checks that a Conv2D still works after an error.
func TestErrorsKeepState(t *testing.T) {
	g := geom.ConvGeom{N: 2, C: 2, H: 4, W: 4, K: 3, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	c, err := NewConv2D(g)
	must(t, err)
	rng := newRand(20)
	x, w := randInts[float32](rng, g.XLen(), -2, 2), randInts[float32](rng, g.WLen(), -2, 2)
	want := make([]float32, g.YLen())
	must(t, Conv2DForwardDirect(g, x, w, nil, want))
	if err := c.Forward(x[1:], w, nil, make([]float32, g.YLen())); !errors.Is(err, geom.ErrGeometry) {
		t.Fatalf("Forward(short x) error = %v, want geom.ErrGeometry", err)
	}
	y := make([]float32, g.YLen())
	must(t, c.Forward(x, w, nil, y))
	if !slices.Equal(y, want) {
		t.Errorf("Forward after an error = %v, want %v", y, want)
	}
}
