package gpubackend

import (
	"errors"
	"fmt"
	"math"
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

// testGatherImagesOps is TestGPUBackendOps' part for GatherImages: on
// each backend the batch gathered from bytes through a table must have
// the bits of the route it replaced in the trainer, the looked-up set as
// float32 gathered (Gather) and then augmented (AugmentBatch), and the
// two backends must agree bit for bit; over paddings (0 too), flips, no
// augmentation, repeated rows, index views, one and three channels.
func testGatherImagesOps(t *testing.T, w *twin, rng *rand.Rand) {
	t.Run("op=gather images", func(t *testing.T) {
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
			{11, 1, 28, 28, 10, backend.AugmentParams{}},
		} {
			size, plane := s.c*s.h*s.w, s.h*s.w
			bytes := make([]uint8, s.m*size)
			for i := range bytes {
				bytes[i] = uint8(rng.IntN(256))
			}
			lut := reals(rng, s.c*256)
			looked := make([]float32, len(bytes))
			for i, b := range bytes {
				looked[i] = lut[i/plane%s.c*256+int(b)]
			}
			src, tab, flt := w.u8(bytes), w.f32(lut), w.f32(looked)
			idx := make([]int32, s.n+3)
			for i := range idx {
				idx[i] = int32(rng.IntN(s.m))
			}
			ix := w.i32(idx)
			name := fmt.Sprintf("M=%d,C=%d,H=%d,W=%d,N=%d,pad=%d,flip=%v,seed=%#x,step=%#x", s.m, s.c, s.h, s.w, s.n, s.p.Pad, s.p.Flip, s.p.Seed, s.p.Step)
			for _, off := range []int{0, 3} {
				dst, old := w.out(s.n*size), w.out(s.n*size)
				w.run(func(be backend.Backend, i int) error {
					rows, err := be.IndexView(ix[i], off, s.n)
					if err != nil {
						return err
					}
					if err := be.GatherImages(s.p, s.n, s.c, s.h, s.w, tab[i], src[i], rows, dst[i]); err != nil {
						return err
					}
					// The route before: the float32 set, gathered, or
					// gathered and augmented (AugmentBatch gathers too).
					if s.p == (backend.AugmentParams{}) {
						return be.Gather(size, flt[i], rows, old[i])
					}
					return be.AugmentBatch(s.p, s.n, s.c, s.h, s.w, flt[i], rows, old[i])
				})
				w.same(fmt.Sprintf("%s (view at %d) dst", name, off), dst, 0, 0)
				for i := range w.be {
					got, want := download(t, w.be[i], dst[i]), download(t, w.be[i], old[i])
					for j := range got {
						if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
							t.Fatalf("%s: %s (view at %d): GatherImages[%d] = %g (%#08x), Gather+AugmentBatch %g (%#08x)",
								w.be[i].Name(), name, off, j, got[j], math.Float32bits(got[j]), want[j], math.Float32bits(want[j]))
						}
					}
				}
			}
		}
	})
}

// download returns t's values from be.
func download(t *testing.T, be backend.Backend, x backend.Tensor) []float32 {
	t.Helper()
	v := make([]float32, x.Len())
	if err := be.Download(v, x); err != nil {
		t.Fatal(err)
	}
	return v
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

// TestGatherImagesChecks checks GatherImages' refusals on both backends,
// the same kind of error on each (a bad handle or index wraps ErrTensor,
// a wrong size or length geom.ErrGeometry; the GPU backend's row range
// among them: the kernel cannot check it), and that a byte tensor is
// refused where float32 or int32 is due.
func TestGatherImagesChecks(t *testing.T) {
	w := newTwin(t)
	for _, be := range w.be {
		t.Run("backend="+be.Name(), func(t *testing.T) {
			newF := func(n int) backend.Tensor {
				tn, err := be.NewTensor(n)
				if err != nil {
					t.Fatal(err)
				}
				return tn
			}
			newB := func(n int) backend.Tensor {
				tn, err := be.NewByteTensor(n)
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
			src, lut, dst, rows := newB(4*c*h*w), newF(c*256), newF(2*c*h*w), newI(0, 3)
			p := backend.AugmentParams{Pad: 1, Flip: true}
			for _, tc := range []struct {
				name string
				err  error
				is   error
			}{
				{"row = images", be.GatherImages(p, 2, c, h, w, lut, src, newI(0, 4), dst), backend.ErrTensor},
				{"row < 0", be.GatherImages(p, 2, c, h, w, lut, src, newI(-1, 0), dst), backend.ErrTensor},
				{"padding 65", be.GatherImages(backend.AugmentParams{Pad: backend.MaxAugmentPad + 1}, 2, c, h, w, lut, src, rows, dst), geom.ErrGeometry},
				{"N = 0", be.GatherImages(p, 0, c, h, w, lut, src, rows, dst), geom.ErrGeometry},
				{"rows length", be.GatherImages(p, 2, c, h, w, lut, src, newI(0, 1, 2), dst), geom.ErrGeometry},
				{"dst length", be.GatherImages(p, 2, c, h, w, lut, src, rows, newF(c*h*w)), geom.ErrGeometry},
				{"lut of one channel", be.GatherImages(p, 2, c, h, w, newF(256), src, rows, dst), geom.ErrGeometry},
				{"float32 src", be.GatherImages(p, 2, c, h, w, lut, newF(4*c*h*w), rows, dst), backend.ErrTensor},
				{"byte dst", be.GatherImages(p, 2, c, h, w, lut, src, rows, newB(2*c*h*w)), backend.ErrTensor},
				{"byte lut", be.GatherImages(p, 2, c, h, w, newB(c*256), src, rows, dst), backend.ErrTensor},
				{"src not whole images", be.GatherImages(p, 2, c, h, w, lut, newB(c*h*w+1), rows, dst), geom.ErrGeometry},
				{"float32 rows", be.GatherImages(p, 2, c, h, w, lut, src, newF(2), dst), backend.ErrTensor},
				{"dst a view", be.GatherImages(p, 2, c, h, w, lut, src, rows, mustView(t, be, 2*c*h*w)), backend.ErrTensor},
				{"dst is lut", be.GatherImages(p, 2, 2, 16, 8, lut, newB(2*2*16*8), newI(0, 1), lut), geom.ErrGeometry},
				{"gather of bytes", be.Gather(c*h*w, src, rows, dst), backend.ErrTensor},
				{"gather into bytes", be.Gather(c*h*w, newF(4*c*h*w), rows, newB(2*c*h*w)), backend.ErrTensor},
				{"download of bytes", be.Download(make([]float32, 4*c*h*w), src), backend.ErrTensor},
				{"upload bytes into float32", be.UploadBytes(dst, make([]uint8, 2*c*h*w)), backend.ErrTensor},
				{"upload bytes of another length", be.UploadBytes(src, make([]uint8, 5)), backend.ErrTensor},
			} {
				t.Run("case="+tc.name, func(t *testing.T) {
					if !errors.Is(tc.err, tc.is) {
						t.Errorf("error %v, want one wrapping %v", tc.err, tc.is)
					}
				})
			}
		})
	}
}

// mustView returns an index view: a read-only tensor that no operation may
// write (here, where a float32 output is due, refused as a view or as an
// index tensor: ErrTensor either way).
func mustView(t *testing.T, be backend.Backend, n int) backend.Tensor {
	t.Helper()
	ix, err := be.NewIndexTensor(n)
	if err != nil {
		t.Fatal(err)
	}
	v, err := be.IndexView(ix, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
