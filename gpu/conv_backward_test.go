package gpu

import (
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// TestConv2DBackward checks Conv2DBackward against
// Conv2DBackwardFilterBias then Conv2DBackwardData on the simulator, at
// every precision, with and without db and dx: the same bits of dw, db
// and dx, and the same launches but for one packing launch fewer where
// the two passes' kernels read one channels-last copy of dy (TF32's and
// BF16's packed v9 and v10), which the sweep must reach at TF32 and BF16.
func TestConv2DBackward(t *testing.T) { testConv2DBackward(t, openSim(t)) }

// testConv2DBackward is TestConv2DBackward on d (the simulator, or a GPU:
// TestConv2DBackwardCUDA); a precision d cannot run is skipped.
func testConv2DBackward(t *testing.T, d *Device) {
	type testCase struct {
		g          geom.ConvGeom
		prec       Precision
		bias, data bool
		short      bool // run under -short too
	}
	var cases []testCase
	for _, prec := range []Precision{FP32, TF32, BF16} {
		for i, g := range []geom.ConvGeom{
			cg(2, 16, 8, 8, 24, 3, 3, 1, 1, 1, 1),  // direct bwd-filter, packed bwd-data
			cg(8, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1),  // BF16: v10 and v9, one packing of dy
			cg(4, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0), // the MNIST net's conv2 at N = 4
			cg(2, 8, 9, 9, 16, 1, 1, 2, 2, 0, 0),   // stride 2: TF32's phase-decomposed v5 bwd-data
			cg(2, 3, 11, 11, 8, 3, 3, 2, 2, 1, 1),  // C = 3
			cg(2, 16, 6, 6, 128, 1, 1, 1, 1, 0, 0), // 1×1, K > C
			cg(2, 130, 4, 4, 12, 3, 3, 1, 1, 1, 1), // C not a multiple of the packing's chunk
		} {
			for j, c := range [][2]bool{{true, true}, {false, true}, {true, false}} {
				// -short: BF16's shared packing with dx, with and without
				// db, and the two passes apart at FP32 once.
				short := prec == BF16 && i == 1 && j < 2 || prec == FP32 && i == 0 && j == 0
				cases = append(cases, testCase{g, prec, c[0], c[1], short})
			}
		}
	}
	// TF32 picks v10 only where its split-K model favours it: a larger
	// shape, at TF32 alone, with bias and dx.
	cases = append(cases, testCase{cg(16, 32, 12, 12, 128, 3, 3, 1, 1, 1, 1), TF32, true, true, true})
	shared, ran := map[Precision]int{}, map[Precision]bool{}
	for _, c := range cases {
		g := c.g
		name := c.prec.String() + "/" + g.String() + map[bool]string{true: "/bias"}[c.bias] + map[bool]string{true: "/dx"}[c.data]
		t.Run(name, func(t *testing.T) {
			if testing.Short() && !c.short {
				t.Skip("-short: one case a kind; the sweep is left to the full run")
			}
			if err := d.SetPrecision(c.prec); err != nil {
				t.Skip(err)
			}
			defer d.SetPrecision(FP32)
			ran[c.prec] = true
			rng := newRand("conv-backward/" + g.String())
			x, dy, w := randomBufT(t, d, g.XLen(), rng), randomBufT(t, d, g.YLen(), rng), randomBufT(t, d, g.WLen(), rng)
			outs := func() (dw, db, dx *Buffer) {
				dw = mustF32(t, d, g.WLen())
				if c.bias {
					db = mustF32(t, d, g.K)
				}
				if c.data {
					dx = mustF32(t, d, g.XLen())
				}
				return
			}
			dw1, db1, dx1 := outs()
			l0 := d.Launches()
			mustNil(t, d.Conv2DBackwardFilterBias(g, x, dy, dw1, db1))
			if c.data {
				mustNil(t, d.Conv2DBackwardData(g, dy, w, dx1))
			}
			two := d.Launches() - l0
			dw2, db2, dx2 := outs()
			l0 = d.Launches()
			mustNil(t, d.Conv2DBackward(g, x, dy, w, dw2, db2, dx2, nil))
			one := d.Launches() - l0
			want := two
			fid, did := d.peerKernel(ConvBwdFilter, g), d.peerKernel(ConvBwdData, g)
			fpc, fok := packedConvs[fid]
			dpc, dok := packedConvs[did]
			if c.data && fok && dok && fpc == dpc {
				want = two - 1
				shared[c.prec]++
			}
			if one != want {
				t.Errorf("%d launches (%s, %s), want %d: %d for the two calls", one, kernelTable[fid].name, kernelTable[did].name, want, two)
			}
			for _, o := range []struct {
				name string
				a, b *Buffer
			}{{"dw", dw1, dw2}, {"db", db1, db2}, {"dx", dx1, dx2}} {
				if o.a != nil {
					equalBitsT(t, o.name+" (want the two calls')", download(t, o.b), download(t, o.a))
				}
			}
		})
	}
	if ran[TF32] && shared[TF32] == 0 || ran[BF16] && shared[BF16] == 0 || shared[FP32] != 0 {
		t.Errorf("dy packed once for both passes in %v cases by precision, want some at TF32 and BF16, none at FP32", shared)
	}
}

func randomBufT(t *testing.T, d *Device, n int, rng interface{ Float32() float32 }) *Buffer {
	t.Helper()
	b := mustF32(t, d, n)
	v := make([]float32, n)
	for i := range v {
		v[i] = 2*rng.Float32() - 1
	}
	mustNil(t, b.Upload(v))
	return b
}

func download(t *testing.T, b *Buffer) []float32 {
	t.Helper()
	v := make([]float32, b.Len())
	mustNil(t, b.Download(v))
	return v
}

// TestConvKeep checks Conv2DForwardKeep and Conv2DBackward with xk on the
// simulator against Conv2DForwardReLU and Conv2DBackward without: the
// same y, dw, db and dx bits; at BF16, where the forward and bwd-filter
// kernels share x's copy, ConvKeepLen is its length and the backward
// launches one packing fewer; elsewhere (FP32, TF32, kernels that do not
// share it) ConvKeepLen is 0 and nothing changes. An xk whose copy is of
// another x or of another geometry is not read.
func TestConvKeep(t *testing.T) { testConvKeep(t, openSim(t)) }

// testConvKeep is TestConvKeep on d (the simulator, or a GPU:
// TestConvKeepCUDA); a precision d cannot run is skipped.
func testConvKeep(t *testing.T, d *Device) {
	kept, bf16 := 0, false
	for _, prec := range []Precision{FP32, TF32, BF16} {
		for i, g := range []geom.ConvGeom{
			cg(8, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1),  // BF16: v7, v10, v9
			cg(8, 32, 8, 8, 32, 3, 3, 1, 1, 1, 1),  // and on 16 images of 16 channels
			cg(2, 16, 8, 8, 24, 3, 3, 1, 1, 1, 1),  // a direct bwd-filter
			cg(8, 3, 9, 9, 16, 3, 3, 2, 2, 1, 1),   // C = 3, stride 2
			cg(2, 130, 4, 4, 12, 3, 3, 1, 1, 1, 1), // C past a multiple of 8
			cg(8, 16, 8, 8, 32, 1, 1, 1, 1, 0, 0),  // 1×1
		} {
			t.Run(prec.String()+"/"+g.String(), func(t *testing.T) {
				if testing.Short() && (prec != BF16 || i > 1) {
					t.Skip("-short: BF16's two keeping shapes; the sweep is left to the full run")
				}
				if err := d.SetPrecision(prec); err != nil {
					t.Skip(err)
				}
				defer d.SetPrecision(FP32)
				bf16 = bf16 || prec == BF16
				rng := newRand("conv-keep/" + g.String())
				x, w, bias := randomBufT(t, d, g.XLen(), rng), randomBufT(t, d, g.WLen(), rng), randomBufT(t, d, g.K, rng)
				x2, dy := randomBufT(t, d, g.XLen(), rng), randomBufT(t, d, g.YLen(), rng)
				n := d.ConvKeepLen(g)
				fwd, wgrad := d.peerKernel(ConvFwd, g), d.peerKernel(ConvBwdFilter, g)
				share := prec == BF16 && fwd == kConvFwdBF16 && wgrad == kConvBwdFilterBF16
				if want := map[bool]int{true: keepLen(packedBF16, g)}[share]; n != want {
					t.Fatalf("ConvKeepLen = %d, want %d (%s, %s)", n, want, kernelTable[fwd].name, kernelTable[wgrad].name)
				}
				xk := mustF32(t, d, max(n, 1))
				run := func(xk, xb *Buffer) (y, dw, db, dx []float32, launches int64) {
					yb, dwb, dbb, dxb := mustF32(t, d, g.YLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.K), mustF32(t, d, g.XLen())
					if xk != nil {
						mustNil(t, d.Conv2DForwardKeep(g, x, w, bias, yb, true, xk))
					} else {
						mustNil(t, d.Conv2DForwardReLU(g, x, w, bias, yb))
					}
					l0 := d.Launches()
					mustNil(t, d.Conv2DBackward(g, xb, dy, w, dwb, dbb, dxb, xk))
					return download(t, yb), download(t, dwb), download(t, dbb), download(t, dxb), d.Launches() - l0
				}
				y0, dw0, db0, dx0, l0 := run(nil, x)
				y1, dw1, db1, dx1, l1 := run(xk, x)
				if want := l0 - map[bool]int64{true: 1}[share]; l1 != want {
					t.Errorf("backward with xk: %d launches, want %d (%d without)", l1, want, l0)
				}
				if share {
					kept++
				}
				for _, o := range []struct {
					name string
					a, b []float32
				}{{"y", y0, y1}, {"dw", dw0, dw1}, {"db", db0, db1}, {"dx", dx0, dx1}} {
					equalBitsT(t, o.name, o.b, o.a)
				}
				// xk holds x's copy: a backward of another x packs x2.
				_, dw2, _, _, _ := run(nil, x2)
				mustNil(t, d.Conv2DForwardKeep(g, x, w, bias, mustF32(t, d, g.YLen()), false, xk))
				dwb := mustF32(t, d, g.WLen())
				mustNil(t, d.Conv2DBackward(g, x2, dy, w, dwb, nil, nil, xk))
				equalBitsT(t, "dw of x2 after keeping x", download(t, dwb), dw2)
				if !share || g.C%2 != 0 {
					return
				}
				// xk holds x's copy for g: a backward on another geometry
				// over the same memory (twice the images of half the
				// channels) packs x.
				g2 := g
				g2.N, g2.C = 2*g.N, g.C/2
				dy2, w2 := randomBufT(t, d, g2.YLen(), rng), randomBufT(t, d, g2.WLen(), rng)
				mustNil(t, d.Conv2DForwardKeep(g, x, w, bias, mustF32(t, d, g.YLen()), false, xk))
				dwa, dwb2 := mustF32(t, d, g2.WLen()), mustF32(t, d, g2.WLen())
				mustNil(t, d.Conv2DBackward(g2, x, dy2, w2, dwa, nil, nil, nil))
				mustNil(t, d.Conv2DBackward(g2, x, dy2, w2, dwb2, nil, nil, xk))
				equalBitsT(t, "dw on 2N images of C/2 channels after keeping x for g", download(t, dwb2), download(t, dwa))
			})
		}
	}
	if bf16 && kept == 0 {
		t.Error("no case kept x's copy at BF16")
	}
}

// equalBitsT fails t at the first element of got whose bits differ from
// want's.
func equalBitsT(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("%s[%d] = %g (%#x), want %g (%#x)", name, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			return
		}
	}
}
