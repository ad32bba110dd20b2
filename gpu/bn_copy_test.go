package gpu

import (
	"errors"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// TestBatchNormForwardCopy checks BatchNormForwardCopy on the simulator at
// BF16: a batch norm (training, and evaluation) and the conv after it
// reading and keeping its bfloat16 copy give the bits of
// BatchNormForwardKeep's run, with the same launches, while y keeps what
// it held (its values not written: bn_pack_bf16_v1); until a batch norm
// writes y, a conv pass that would read y's values is refused with
// nothing launched; at TF32, whose copy the weight gradient does not
// read, y is written.
func TestBatchNormForwardCopy(t *testing.T) { testBatchNormForwardCopy(t, openSim(t)) }

// testBatchNormForwardCopy is TestBatchNormForwardCopy on d
// (TestBatchNormForwardCopyCUDA on a GPU); skipped where d cannot run
// BF16.
func testBatchNormForwardCopy(t *testing.T, d *Device) {
	if err := d.SetPrecision(BF16); err != nil {
		t.Skip(err)
	}
	defer d.SetPrecision(FP32)
	const momentum, eps, held = 0.1, 1e-5, 7
	g := cg(8, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1)
	n, c, hw := g.N, g.C, g.H*g.W
	kl := d.ConvKeepLen(g)
	if kl == 0 {
		t.Fatalf("ConvKeepLen(%v) = 0 at BF16", g)
	}
	rng := newRand(t.Name())
	x, gamma, beta := randomBufT(t, d, n*c*hw, rng), randomBufT(t, d, c, rng), randomBufT(t, d, c, rng)
	w, dy := randomBufT(t, d, g.WLen(), rng), randomBufT(t, d, g.YLen(), rng)
	y, xk := mustF32(t, d, n*c*hw), mustF32(t, d, kl)
	sm, si, rm, rv := mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c)
	out, dw, dx := mustF32(t, d, g.YLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.XLen())
	bn := d.BatchNormForwardKeep
	type result struct {
		out      [][]float32
		launches int64
	}
	run := func(copyOnly, train bool) result {
		if copyOnly {
			bn = d.BatchNormForwardCopy
		} else {
			bn = d.BatchNormForwardKeep
		}
		mustNil(t, d.Fill(y, held))
		mustNil(t, d.Fill(rm, 0))
		mustNil(t, d.Fill(rv, 1))
		var r result
		l0 := d.Launches()
		mustNil(t, bn(train, n, c, hw, x, gamma, beta, y, sm, si, rm, rv, momentum, eps, true, g, xk))
		mustNil(t, d.Conv2DForwardKeep(g, y, w, nil, out, false, xk))
		if train {
			mustNil(t, d.Conv2DBackward(g, y, dy, w, dw, nil, dx, xk))
		}
		r.launches = d.Launches() - l0
		for _, b := range []*Buffer{sm, si, rm, rv, out, dw, dx} {
			r.out = append(r.out, download(t, b))
		}
		return r
	}
	for _, train := range []bool{true, false} {
		want := run(false, train)
		wantY := download(t, y)
		got := run(true, train)
		for i, name := range []string{"saveMean", "saveInvStd", "runMean", "runVar", "conv y", "dw", "dx"} {
			equalBitsT(t, name, got.out[i], want.out[i])
		}
		if got.launches != want.launches {
			t.Errorf("train %v: %d launches with the copy alone, want %d", train, got.launches, want.launches)
		}
		for i, v := range download(t, y) {
			if v != held {
				t.Fatalf("train %v: y[%d] = %g after BatchNormForwardCopy, want %d (not written; BatchNormForwardKeep wrote %g)",
					train, i, v, held, wantY[i])
			}
		}
		// y's values were never written: a pass reading them is refused.
		xk2 := mustF32(t, d, kl)
		l := d.Launches()
		for name, err := range map[string]error{
			"Conv2DForward":                   d.Conv2DForward(g, y, w, nil, out),
			"Conv2DForwardKeep, another xk":   d.Conv2DForwardKeep(g, y, w, nil, out, false, xk2),
			"Conv2DBackward without the copy": d.Conv2DBackward(g, y, dy, w, dw, nil, dx, nil),
		} {
			if !errors.Is(err, geom.ErrGeometry) {
				t.Errorf("train %v: %s on y: %v, want an error wrapping geom.ErrGeometry", train, name, err)
			}
		}
		if n := d.Launches() - l; n != 0 {
			t.Errorf("train %v: the refused passes launched %d kernels", train, n)
		}
		mustNil(t, xk2.Free())
		// Written again by a batch norm: read as any x.
		mustNil(t, d.BatchNormTrainForward(n, c, hw, x, gamma, beta, y, sm, si, nil, nil, momentum, eps, true))
		mustNil(t, d.Conv2DForward(g, y, w, nil, out))
	}
	// TF32: the weight gradient reads y, so y is written.
	mustNil(t, d.SetPrecision(TF32))
	xt := mustF32(t, d, max(d.ConvXCopyLen(g), 1))
	mustNil(t, d.Fill(y, held))
	mustNil(t, d.BatchNormForwardCopy(true, n, c, hw, x, gamma, beta, y, sm, si, nil, nil, momentum, eps, true, g, xt))
	got := download(t, y)
	mustNil(t, d.BatchNormTrainForward(n, c, hw, x, gamma, beta, y, sm, si, nil, nil, momentum, eps, true))
	equalBitsT(t, "y at TF32", got, download(t, y))
	if math.IsNaN(float64(got[0])) || got[0] == held {
		t.Errorf("y[0] = %g at TF32: not written", got[0])
	}
	mustNil(t, d.Conv2DForward(g, y, w, nil, out))
}
