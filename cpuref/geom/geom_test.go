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
