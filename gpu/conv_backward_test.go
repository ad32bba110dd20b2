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
func TestConv2DBackward(t *testing.T) {
	d := openSim(t)
	type testCase struct {
		g          geom.ConvGeom
		prec       Precision
		bias, data bool
	}
	var cases []testCase
	for _, prec := range []Precision{FP32, TF32, BF16} {
		for _, g := range []geom.ConvGeom{
			cg(2, 16, 8, 8, 24, 3, 3, 1, 1, 1, 1),  // direct bwd-filter, packed bwd-data
			cg(8, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1),  // BF16: v10 and v9, one packing of dy
			cg(4, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0), // the MNIST net's conv2 at N = 4
			cg(2, 8, 9, 9, 16, 1, 1, 2, 2, 0, 0),   // stride 2: TF32's phase-decomposed v5 bwd-data
			cg(2, 3, 11, 11, 8, 3, 3, 2, 2, 1, 1),  // C = 3
			cg(2, 16, 6, 6, 128, 1, 1, 1, 1, 0, 0), // 1×1, K > C
			cg(2, 130, 4, 4, 12, 3, 3, 1, 1, 1, 1), // C not a multiple of the packing's chunk
		} {
			for _, c := range [][2]bool{{true, true}, {false, true}, {true, false}} {
				cases = append(cases, testCase{g, prec, c[0], c[1]})
			}
		}
	}
	// TF32 picks v10 only where its split-K model favours it: a larger
	// shape, at TF32 alone, with bias and dx.
	cases = append(cases, testCase{cg(16, 32, 12, 12, 128, 3, 3, 1, 1, 1, 1), TF32, true, true})
	shared := map[Precision]int{}
	for _, c := range cases {
		g := c.g
		name := c.prec.String() + "/" + g.String() + map[bool]string{true: "/bias"}[c.bias] + map[bool]string{true: "/dx"}[c.data]
		t.Run(name, func(t *testing.T) {
			if testing.Short() && !(c.bias && c.data) {
				t.Skip("-short: the cases with bias and dx only")
			}
			if err := d.SetPrecision(c.prec); err != nil {
				t.Fatal(err)
			}
			defer d.SetPrecision(FP32)
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
			d.ResetKernelStats()
			mustNil(t, d.Conv2DBackwardFilterBias(g, x, dy, dw1, db1))
			if c.data {
				mustNil(t, d.Conv2DBackwardData(g, dy, w, dx1))
			}
			two := launchCount(d)
			dw2, db2, dx2 := outs()
			d.ResetKernelStats()
			mustNil(t, d.Conv2DBackward(g, x, dy, w, dw2, db2, dx2))
			one := launchCount(d)
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
				if o.a == nil {
					continue
				}
				a, b := download(t, o.a), download(t, o.b)
				for i := range a {
					if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
						t.Errorf("%s[%d] = %g (%#x), want %g (%#x) as the two calls", o.name, i, b[i], math.Float32bits(b[i]), a[i], math.Float32bits(a[i]))
						break
					}
				}
			}
		})
	}
	if shared[TF32] == 0 || shared[BF16] == 0 || shared[FP32] != 0 {
		t.Errorf("dy packed once for both passes in %v cases by precision, want some at TF32 and BF16, none at FP32", shared)
	}
}

// launchCount is the simulator's launches since ResetKernelStats.
func launchCount(d *Device) int64 {
	var n int64
	for _, s := range d.KernelStats() {
		n += s.Launches
	}
	return n
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
