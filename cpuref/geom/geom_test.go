package geom

import (
	"errors"
	"testing"
)

func TestConvGeomSizes(t *testing.T) {
	for _, c := range []struct {
		g             ConvGeom
		p, q, x, w, y int
		flops         float64
	}{
		// mnist1: P = Q = 28 − 5 + 1.
		{ConvGeom{N: 64, C: 1, H: 28, W: 28, K: 8, R: 5, S: 5, StrideH: 1, StrideW: 1}, 24, 24, 64 * 784, 200, 64 * 8 * 576, 2 * 64 * 8 * 576 * 25},
		// P = (7 + 2·1 − 3)/2 + 1 = 4, Q = (6 + 0 − 2)/3 + 1 = 2 (floor).
		{ConvGeom{N: 2, C: 3, H: 7, W: 6, K: 5, R: 3, S: 2, StrideH: 2, StrideW: 3, PadH: 1, PadW: 0}, 4, 2, 252, 90, 80, 2 * 2 * 5 * 8 * 3 * 3 * 2},
		// A kernel larger than the input, made valid by padding.
		{ConvGeom{N: 1, C: 1, H: 2, W: 2, K: 1, R: 4, S: 4, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, 1, 1, 4, 16, 1, 2 * 16},
	} {
		g := c.g
		if err := g.Validate(); err != nil {
			t.Errorf("%v: Validate() = %v, want nil", g, err)
		}
		if g.P() != c.p || g.Q() != c.q || g.XLen() != c.x || g.WLen() != c.w || g.YLen() != c.y || g.FLOPs() != c.flops {
			t.Errorf("%v: P,Q,XLen,WLen,YLen,FLOPs = %d,%d,%d,%d,%d,%g, want %d,%d,%d,%d,%d,%g",
				g, g.P(), g.Q(), g.XLen(), g.WLen(), g.YLen(), g.FLOPs(), c.p, c.q, c.x, c.w, c.y, c.flops)
		}
	}
}

func TestConvGeomString(t *testing.T) {
	g := ConvGeom{N: 2, C: 3, H: 7, W: 6, K: 5, R: 3, S: 2, StrideH: 2, StrideW: 3, PadH: 1, PadW: 0}
	if got, want := g.String(), "N=2,C=3,H=7,W=6,K=5,R=3,S=2,stride=2x3,pad=1x0"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestPoolGeom(t *testing.T) {
	g := PoolGeom{N: 2, C: 3, H: 5, W: 7, R: 2, S: 3, StrideH: 2, StrideW: 2}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	// P = (5 − 2)/2 + 1 = 2, Q = (7 − 3)/2 + 1 = 3.
	if g.P() != 2 || g.Q() != 3 || g.XLen() != 210 || g.YLen() != 36 {
		t.Errorf("%v: P,Q,XLen,YLen = %d,%d,%d,%d, want 2,3,210,36", g, g.P(), g.Q(), g.XLen(), g.YLen())
	}
	for _, bad := range []PoolGeom{
		{N: 1, C: 1, H: 2, W: 2, R: 3, S: 1, StrideH: 1, StrideW: 1},
		{N: 1, C: 1, H: 2, W: 2, R: 1, S: 1, StrideH: 0, StrideW: 1},
		{N: -1, C: 1, H: 2, W: 2, R: 1, S: 1, StrideH: 1, StrideW: 1},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrGeometry) {
			t.Errorf("%v: Validate() = %v, want ErrGeometry", bad, err)
		}
	}
}

func TestAvgPoolGeom(t *testing.T) {
	for _, c := range []struct {
		g       AvgPoolGeom
		p, q, y int
	}{
		// P = (5 + 2 − 3)/2 + 1 = 3, Q = (7 + 0 − 2)/2 + 1 = 3.
		{AvgPoolGeom{N: 2, C: 3, H: 5, W: 7, R: 3, S: 2, StrideH: 2, StrideW: 2, PadH: 1}, 3, 3, 54},
		// A window larger than the input, made valid by padding: P = Q = 1.
		{AvgPoolGeom{N: 1, C: 1, H: 1, W: 1, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, 1, 1, 1},
	} {
		if err := c.g.Validate(); err != nil {
			t.Errorf("%v: Validate() = %v, want nil", c.g, err)
		}
		if c.g.P() != c.p || c.g.Q() != c.q || c.g.YLen() != c.y {
			t.Errorf("%v: P,Q,YLen = %d,%d,%d, want %d,%d,%d", c.g, c.g.P(), c.g.Q(), c.g.YLen(), c.p, c.q, c.y)
		}
	}
	ok := AvgPoolGeom{N: 1, C: 1, H: 4, W: 4, R: 2, S: 2, StrideH: 2, StrideW: 2}
	for name, mod := range map[string]func(g *AvgPoolGeom){
		"R>H":      func(g *AvgPoolGeom) { g.R = 5 },
		"stride=0": func(g *AvgPoolGeom) { g.StrideW = 0 },
		"N=-1":     func(g *AvgPoolGeom) { g.N = -1 },
		"pad>R/2":  func(g *AvgPoolGeom) { g.PadH = 2 },
		"pad<0":    func(g *AvgPoolGeom) { g.PadW = -1 },
		"huge":     func(g *AvgPoolGeom) { g.N, g.C = 1<<20, 1<<20 },
		"huge-dim": func(g *AvgPoolGeom) { g.H = 1 << 40 },
	} {
		g := ok
		mod(&g)
		if err := g.Validate(); !errors.Is(err, ErrGeometry) {
			t.Errorf("%s: %v: Validate() = %v, want ErrGeometry", name, g, err)
		}
	}
}
