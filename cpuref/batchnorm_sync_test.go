package cpuref

import (
	"errors"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// TestBatchNormSplitForm runs the split form with one rank (the sums not
// reduced, m = N·H·W) and requires BatchNormTrainForward32's and
// BatchNormBackward32's bits for y, μ, invStd, the running statistics,
// dγ, dβ and dx; then splits the images between two ranks and requires
// each rank's lane sums to be the lane sums of its own images alone.
func TestBatchNormSplitForm(t *testing.T) {
	rng := newRand(33)
	for _, s := range sweptBNShapes {
		t.Run(s.String(), func(t *testing.T) {
			L := s.n * s.c * s.hw
			x, dy := randFloats[float32](rng, L), randFloats[float32](rng, L)
			for i := range x {
				x[i] = 2*x[i] + 0.5
			}
			gamma, beta := randFloats[float32](rng, s.c), randFloats[float32](rng, s.c)
			type outs struct{ y, mean, inv, rm, rv, dx, dg, db []float32 }
			newOuts := func() outs {
				o := outs{nans32(L), nans32(s.c), nans32(s.c), make([]float32, s.c), make([]float32, s.c), nans32(L), nans32(s.c), nans32(s.c)}
				for i := range o.rv {
					o.rv[i], o.rm[i] = 1, 0.25
				}
				return o
			}
			want := newOuts()
			must(t, BatchNormTrainForward32(s.n, s.c, s.hw, x, gamma, beta, want.y, want.mean, want.inv, want.rm, want.rv, 0.1, 1e-5))
			must(t, BatchNormBackward32(s.n, s.c, s.hw, x, gamma, want.mean, want.inv, dy, want.dx, want.dg, want.db))

			got := newOuts()
			m := s.n * s.hw
			sums, mean, sq := nans32(s.c), nans32(s.c), nans32(s.c)
			must(t, BatchNormSums32(s.n, s.c, s.hw, x, nil, sums))
			must(t, BatchNormMean32(m, sums, mean))
			must(t, BatchNormSums32(s.n, s.c, s.hw, x, mean, sq))
			must(t, BatchNormFinish32(s.n, s.c, s.hw, m, x, gamma, beta, got.y, mean, sq, got.mean, got.inv, got.rm, got.rv, 0.1, 1e-5))
			must(t, BatchNormBackwardSums32(s.n, s.c, s.hw, x, got.mean, got.inv, dy, got.db, got.dg))
			must(t, BatchNormBackwardFinish32(s.n, s.c, s.hw, m, x, gamma, got.mean, got.inv, dy, got.db, got.dg, got.dx))
			for _, f := range []struct {
				name      string
				got, want []float32
			}{{"y", got.y, want.y}, {"mean", got.mean, want.mean}, {"invStd", got.inv, want.inv}, {"runMean", got.rm, want.rm},
				{"runVar", got.rv, want.rv}, {"dbeta", got.db, want.db}, {"dgamma", got.dg, want.dg}, {"dx", got.dx, want.dx}} {
				checkBits(t, f.name, f.got, f.want)
			}
			if s.n < 2 {
				return
			}
			// Two ranks: images [0, h) and [h, n); each rank's Σx is the
			// lane sum of its images only.
			h := s.n / 2
			for r, part := range [][]float32{x[:h*s.c*s.hw], x[h*s.c*s.hw:]} {
				k := len(part) / (s.c * s.hw)
				got := nans32(s.c)
				must(t, BatchNormSums32(k, s.c, s.hw, part, nil, got))
				want := nans32(s.c)
				for ch := range want {
					var lanes [bnLanes]float32
					want[ch] = laneSum32(k*s.hw, func(i int) float32 { return part[(i/s.hw*s.c+ch)*s.hw+i%s.hw] }, &lanes)
				}
				checkBits(t, map[int]string{0: "rank 0 Σx", 1: "rank 1 Σx"}[r], got, want)
			}
		})
	}
	// Wrong lengths and counts are errors before any work.
	x := make([]float32, 12)
	c3 := make([]float32, 3)
	for name, err := range map[string]error{
		"sums":           BatchNormSums32(2, 3, 2, x, nil, make([]float32, 2)),
		"mean":           BatchNormMean32(0, c3, c3),
		"finish m < NHW": BatchNormFinish32(2, 3, 2, 3, x, c3, c3, make([]float32, 12), c3, c3, nil, nil, nil, nil, 0.1, 1e-5),
		"backward dx":    BatchNormBackwardFinish32(2, 3, 2, 4, x, c3, c3, c3, x, c3, c3, make([]float32, 11)),
	} {
		if !errors.Is(err, geom.ErrGeometry) {
			t.Errorf("%s: error %v, want one wrapping ErrGeometry", name, err)
		}
	}
}
