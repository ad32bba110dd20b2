package gpubackend

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// testAugmentOps is TestGPUBackendOps' part for AugmentBatch: both
// backends draw each image's crop and flip from (seed, step, row) and copy
// source values or zeros, so the batches must be equal bit for bit, over
// paddings (0 too), flips, repeated rows, an index view and 64-bit seeds
// and steps.
func testAugmentOps(t *testing.T, w *twin, rng *rand.Rand) {
	t.Run("op=augment", func(t *testing.T) {
		w.t = t
		for _, s := range []struct {
			m, c, h, w, n int
			p             backend.AugmentParams
		}{
			{5, 1, 1, 1, 2, backend.AugmentParams{Pad: 1, Flip: true, Seed: 11}},
			{9, 3, 8, 8, 12, backend.AugmentParams{Pad: 4, Flip: true, Seed: 0x89ABCDEF_01234567, Step: 3}},
			{7, 2, 5, 6, 7, backend.AugmentParams{Pad: 2, Seed: 5, Step: 0x5_00000009}},
			{7, 2, 5, 6, 9, backend.AugmentParams{Flip: true, Seed: 1, Step: 2}},
			{4, 3, 4, 3, 4, backend.AugmentParams{Seed: 1, Step: 2}},
		} {
			size := s.c * s.h * s.w
			src := w.f32(reals(rng, s.m*size))
			idx := make([]int32, s.n+3)
			for i := range idx {
				idx[i] = int32(rng.IntN(s.m))
			}
			ix := w.i32(idx)
			dst, dstv := w.out(s.n*size), w.out(s.n*size)
			w.run(func(be backend.Backend, i int) error {
				rows, err := be.IndexView(ix[i], 0, s.n)
				if err != nil {
					return err
				}
				return be.AugmentBatch(s.p, s.n, s.c, s.h, s.w, src[i], rows, dst[i])
			})
			// The same rows through a view at an offset: image i is then
			// that of idx[i+3].
			w.run(func(be backend.Backend, i int) error {
				rows, err := be.IndexView(ix[i], 3, s.n)
				if err != nil {
					return err
				}
				return be.AugmentBatch(s.p, s.n, s.c, s.h, s.w, src[i], rows, dstv[i])
			})
			name := fmt.Sprintf("M=%d,C=%d,H=%d,W=%d,N=%d,pad=%d,flip=%v,seed=%#x,step=%#x", s.m, s.c, s.h, s.w, s.n, s.p.Pad, s.p.Flip, s.p.Seed, s.p.Step)
			w.same(name+" dst", dst, 0, 0)
			w.same(name+" dst (view at 3)", dstv, 0, 0)
		}
	})
}

// TestGPUBackendAugmentChecks checks AugmentBatch's refusals on the GPU
// backend, the row range among them (the kernel cannot check it).
func TestGPUBackendAugmentChecks(t *testing.T) {
	be, _ := openSimBackend(t)
	newF := func(n int) backend.Tensor {
		tn, err := be.NewTensor(n)
		if err != nil {
			t.Fatal(err)
		}
		return tn
	}
	newI := func(vals ...int32) backend.Tensor {
		tn, err := be.NewIndexTensor(len(vals))
		if err != nil {
			t.Fatal(err)
		}
		if err := be.UploadIndex(tn, vals); err != nil {
			t.Fatal(err)
		}
		return tn
	}
	const c, h, w = 2, 3, 3
	src, dst := newF(4*c*h*w), newF(2*c*h*w)
	p := backend.AugmentParams{Pad: 1, Flip: true}
	for _, tc := range []struct {
		name string
		err  error
		is   error
	}{
		{"row = images", be.AugmentBatch(p, 2, c, h, w, src, newI(0, 4), dst), backend.ErrTensor},
		{"row < 0", be.AugmentBatch(p, 2, c, h, w, src, newI(-1, 0), dst), backend.ErrTensor},
		{"padding 65", be.AugmentBatch(backend.AugmentParams{Pad: backend.MaxAugmentPad + 1}, 2, c, h, w, src, newI(0, 1), dst), geom.ErrGeometry},
		{"padding < 0", be.AugmentBatch(backend.AugmentParams{Pad: -1}, 2, c, h, w, src, newI(0, 1), dst), geom.ErrGeometry},
		{"N = 0", be.AugmentBatch(p, 0, c, h, w, src, newI(0, 1), dst), geom.ErrGeometry},
		{"rows length", be.AugmentBatch(p, 2, c, h, w, src, newI(0, 1, 2), dst), geom.ErrGeometry},
		{"dst length", be.AugmentBatch(p, 2, c, h, w, src, newI(0, 1), newF(c*h*w)), geom.ErrGeometry},
		{"dst is src", be.AugmentBatch(p, 2, c, h, w, dst, newI(0, 1), dst), geom.ErrGeometry},
		{"src not whole images", be.AugmentBatch(p, 2, c, h, w, newF(c*h*w+1), newI(0, 1), dst), geom.ErrGeometry},
		{"float32 rows", be.AugmentBatch(p, 2, c, h, w, src, newF(2), dst), backend.ErrTensor},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.is) {
				t.Errorf("error %v, want one wrapping %v", tc.err, tc.is)
			}
		})
	}
}
