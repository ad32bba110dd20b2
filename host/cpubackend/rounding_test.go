package cpubackend

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// TestRoundedConvolutions checks the CPU backend's operand rounding
// (NewCPUBackendBF16, NewCPUBackendRounding): each convolution pass must
// give the bits of the float32 backend run on its operands rounded as the
// policy says for that pass (x and w forward, dy and w backward-data, x and
// dy backward-filter), the bias gradient of a rounded backward-filter
// pass the bits of cpuref.Conv2DBackwardBias on dy unrounded, leave its
// input tensors unchanged, and, where it rounds, differ from the float32
// backend on the unrounded inputs (so the rounding is known to happen).
// Policies: BF16 everywhere, and one pass each of BF16, TF32 and none in
// the three orders. The shapes take the implicit, the frame and the phase
// paths of cpuref.Conv2D, with and without a bias, and are large enough
// for the rounding passes to split over threads.
func TestRoundedConvolutions(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	roundFn := map[Rounding]func(dst, src []float32){
		RoundNone: func(dst, src []float32) { copy(dst, src) },
		RoundTF32: cpuref.RoundTF32Slice,
		RoundBF16: cpuref.RoundBF16Slice,
	}
	round := func(r Rounding, v []float32) []float32 {
		d := make([]float32, len(v))
		roundFn[r](d, v)
		return d
	}
	type policy struct {
		name string
		new  func(threads int) (backend.Backend, error)
		r    [3]Rounding // forward, backward-data, backward-filter
	}
	policies := []policy{{"bf16", NewCPUBackendBF16, [3]Rounding{RoundBF16, RoundBF16, RoundBF16}}}
	for _, r := range [][3]Rounding{
		{RoundBF16, RoundTF32, RoundNone},
		{RoundTF32, RoundNone, RoundBF16},
		{RoundNone, RoundBF16, RoundTF32},
	} {
		policies = append(policies, policy{"mixed", func(threads int) (backend.Backend, error) {
			return NewCPUBackendRounding(threads, "mixed", func(p ConvPass, g geom.ConvGeom) Rounding { return r[p] })
		}, r})
	}
	for _, tc := range []struct {
		g    geom.ConvGeom
		bias bool
	}{
		{geom.ConvGeom{N: 8, C: 8, H: 12, W: 16, K: 16, R: 5, S: 5, StrideH: 1, StrideW: 1}, true},                      // implicit
		{geom.ConvGeom{N: 16, C: 16, H: 14, W: 14, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, false}, // frame
		{geom.ConvGeom{N: 16, C: 8, H: 14, W: 14, K: 16, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, true},   // phases
	} {
		g := tc.g
		randv := func(n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			return v
		}
		x, w, dy := randv(g.XLen()), randv(g.WLen()), randv(g.YLen())
		var b []float32
		if tc.bias {
			b = randv(g.K)
		}
		type out struct{ y, dx, dw, db []float32 }
		// The operands of each pass: x and w forward, dy and w backward-data, x
		// and dy backward-filter.
		passes := func(t *testing.T, be backend.Backend, fx, fw, ddy, dw, wx, wdy []float32) out {
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
			tx, tw, tb := up(fx), up(fw), up(b)
			tdy, tw2 := up(ddy), up(dw)
			tx3, tdy3 := up(wx), up(wdy)
			ty, tdx, tdw := up(make([]float32, g.YLen())), up(make([]float32, g.XLen())), up(make([]float32, g.WLen()))
			var tdb backend.Tensor
			if tc.bias {
				tdb = up(make([]float32, g.K))
			}
			mustNil(t, be.Conv2DForward(g, tx, tw, tb, ty, backend.NoEpilogue))
			mustNil(t, be.Conv2DBackwardData(g, tdy, tw2, tdx))
			mustNil(t, be.Conv2DBackwardFilter(g, tx3, tdy3, tdw, tdb))
			for _, in := range []struct {
				name string
				t    backend.Tensor
				want []float32
			}{{"x", tx, fx}, {"w", tw, fw}, {"dy", tdy, ddy}, {"w (backward-data)", tw2, dw}, {"x (backward-filter)", tx3, wx}, {"dy (backward-filter)", tdy3, wdy}} {
				if !slices.Equal(down(in.t), in.want) {
					t.Errorf("the passes changed %s", in.name)
				}
			}
			return out{down(ty), down(tdx), down(tdw), down(tdb)}
		}
		fp32BE := func(t *testing.T) backend.Backend {
			be, err := NewCPUBackend(1)
			mustNil(t, err)
			return be
		}
		for _, pol := range policies {
			t.Run(pol.name+"/"+g.String(), func(t *testing.T) {
				rf, rd, rw := pol.r[ConvForward], pol.r[ConvBackwardData], pol.r[ConvBackwardFilter]
				// The float32 backend on each pass's rounded operands.
				want := passes(t, fp32BE(t), round(rf, x), round(rf, w), round(rd, dy), round(rd, w), round(rw, x), round(rw, dy))
				if tc.bias && rw != RoundNone {
					want.db = make([]float32, g.K)
					mustNil(t, cpuref.Conv2DBackwardBias(g, dy, want.db))
				}
				fp32 := passes(t, fp32BE(t), x, w, dy, w, x, dy)
				for _, threads := range []int{1, 3} {
					be, err := pol.new(threads)
					mustNil(t, err)
					got := passes(t, be, x, w, dy, w, x, dy)
					for _, c := range []struct {
						name            string
						r               Rounding
						got, want, fp32 []float32
					}{
						{"y", rf, got.y, want.y, fp32.y},
						{"dx", rd, got.dx, want.dx, fp32.dx},
						{"dw", rw, got.dw, want.dw, fp32.dw},
						{"db", rw, got.db, want.db, fp32.db},
					} {
						if len(c.got) != len(c.want) {
							t.Fatalf("threads %d: %s has %d elements, want %d", threads, c.name, len(c.got), len(c.want))
						}
						equalBits(t, fmt.Sprintf("threads %d: %s (float32 on operands rounded by %d)", threads, c.name, c.r), c.got, c.want)
						if c.r != RoundNone && c.name != "db" && slices.Equal(c.got, c.fp32) {
							t.Errorf("threads %d: %s equals float32's on unrounded operands: no rounding", threads, c.name)
						}
					}
				}
			})
		}
	}
}
