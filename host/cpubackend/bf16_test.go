package cpubackend

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// TestBF16Convolutions checks the bf16-emulating CPU backend: each
// convolution pass must give the bits of the float32 backend run on its
// operands rounded to bfloat16 (x and w forward, dy and w backward-data, x
// and dy backward-filter), the bias gradient the bits of
// cpuref.Conv2DBackwardBias on dy unrounded, leave its input tensors
// unchanged, and differ from the float32 backend on the unrounded inputs
// (so the rounding is known to happen). The shapes take the implicit, the
// frame and the phase paths of cpuref.Conv2D, with and without a bias, and
// are large enough for the rounding passes to split over threads.
func TestBF16Convolutions(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		g    geom.ConvGeom
		bias bool
	}{
		{geom.ConvGeom{N: 8, C: 8, H: 12, W: 16, K: 16, R: 5, S: 5, StrideH: 1, StrideW: 1}, true},                      // implicit
		{geom.ConvGeom{N: 16, C: 16, H: 14, W: 14, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, false}, // frame
		{geom.ConvGeom{N: 16, C: 8, H: 14, W: 14, K: 16, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, true},   // phases
	} {
		t.Run(tc.g.String(), func(t *testing.T) {
			g := tc.g
			rand := func(n int) []float32 {
				v := make([]float32, n)
				for i := range v {
					v[i] = float32(rng.NormFloat64())
				}
				return v
			}
			round := func(v []float32) []float32 {
				r := make([]float32, len(v))
				cpuref.RoundBF16Slice(r, v)
				return r
			}
			x, w, dy := rand(g.XLen()), rand(g.WLen()), rand(g.YLen())
			var b []float32
			if tc.bias {
				b = rand(g.K)
			}
			type out struct{ y, dx, dw, db []float32 }
			passes := func(threads int, bf16 bool, x, w, dy []float32) out {
				newBE := NewCPUBackend
				if bf16 {
					newBE = NewCPUBackendBF16
				}
				be, err := newBE(threads)
				mustNil(t, err)
				defer be.Close()
				up := func(v []float32) backend.Tensor {
					if v == nil {
						return nil
					}
					tv, err := be.NewTensor(len(v))
					mustNil(t, err)
					mustNil(t, be.Upload(tv, v))
					return tv
				}
				down := func(tv backend.Tensor) []float32 {
					if tv == nil {
						return nil
					}
					v := make([]float32, tv.Len())
					mustNil(t, be.Download(v, tv))
					return v
				}
				tx, tw, tdy, tb := up(x), up(w), up(dy), up(b)
				ty, tdx, tdw := up(make([]float32, g.YLen())), up(make([]float32, g.XLen())), up(make([]float32, g.WLen()))
				var tdb backend.Tensor
				if tc.bias {
					tdb = up(make([]float32, g.K))
				}
				mustNil(t, be.Conv2DForward(g, tx, tw, tb, ty, backend.NoEpilogue))
				mustNil(t, be.Conv2DBackwardData(g, tdy, tw, tdx))
				mustNil(t, be.Conv2DBackwardFilter(g, tx, tdy, tdw, tdb))
				for _, in := range []struct {
					name string
					t    backend.Tensor
					want []float32
				}{{"x", tx, x}, {"w", tw, w}, {"dy", tdy, dy}} {
					if !slices.Equal(down(in.t), in.want) {
						t.Errorf("threads %d, bf16 %v: the passes changed %s", threads, bf16, in.name)
					}
				}
				return out{down(ty), down(tdx), down(tdw), down(tdb)}
			}
			// The float32 backend on the rounded operands (y: x and w;
			// dx: dy and w; dw: x and dy: all rounded).
			want := passes(1, false, round(x), round(w), round(dy))
			if tc.bias {
				want.db = make([]float32, g.K)
				mustNil(t, cpuref.Conv2DBackwardBias(g, dy, want.db))
			}
			fp32 := passes(1, false, x, w, dy)
			for _, threads := range []int{1, 3} {
				got := passes(threads, true, x, w, dy)
				for _, c := range []struct {
					name            string
					got, want, fp32 []float32
				}{
					{"y", got.y, want.y, fp32.y},
					{"dx", got.dx, want.dx, fp32.dx},
					{"dw", got.dw, want.dw, fp32.dw},
				} {
					if i := firstBitDiff(c.got, c.want); i >= 0 {
						t.Errorf("threads %d: %s[%d] = %v, want %v (float32 on bf16-rounded operands)", threads, c.name, i, c.got[i], c.want[i])
					}
					if firstBitDiff(c.got, c.fp32) < 0 {
						t.Errorf("threads %d: %s equals float32's on unrounded operands: no rounding", threads, c.name)
					}
				}
				if i := firstBitDiff(got.db, want.db); i >= 0 {
					t.Errorf("threads %d: db[%d] = %v, want %v (from dy unrounded)", threads, i, got.db[i], want.db[i])
				}
			}
		})
	}
}

// firstBitDiff returns the first index where a and b differ in bits, or −1
// (also when both are nil); a length difference counts at the shorter
// length.
func firstBitDiff(a, b []float32) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
