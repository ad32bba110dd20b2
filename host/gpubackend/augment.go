package gpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
)

// AugmentBatch runs augment_batch_v1 (gpu.Device.AugmentBatch): the same
// bits as the CPU backend (host/data's Augment.Draw and Apply). The
// launcher checks the padding, the sizes and the lengths; here what it
// cannot: that rows holds N indices, that dst is not a view, and, from
// rows' recorded range, that every index names an image of src.
func (be *gpuBackend) AugmentBatch(p backend.AugmentParams, n, c, h, w int, src, rows, dst backend.Tensor) error {
	const op = "augment batch"
	ix, err := be.i32("rows", rows, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	s, err := be.f32("src", src, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	d, err := be.f32("dst", dst, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	if err := checkRows(op, dst, ix, n, c, h, w, s.Len()); err != nil {
		return err
	}
	return gpuWrap(op, be.dev.AugmentBatch(p.Pad, p.Flip, p.Seed, p.Step, c, h, w, s, ix.buf, d))
}

// GatherImages runs augment_batch_v2 (gpu.Device.AugmentBatchU8): the
// batch is looked up, cropped and flipped on the device from the bytes,
// the same bits as the CPU backend. The launcher checks the padding, the
// sizes and the lengths; here what it cannot: that rows holds N indices,
// that dst is not a view, and, from rows' recorded range, that every
// index names an image of src.
func (be *gpuBackend) GatherImages(p backend.AugmentParams, n, c, h, w int, lut, src, rows, dst backend.Tensor) error {
	const op = "gather images"
	ix, err := be.i32("rows", rows, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	s, err := be.u8("src", src, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	tab, err := be.f32("lut", lut, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	d, err := be.f32("dst", dst, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	if err := checkRows(op, dst, ix, n, c, h, w, s.Len()); err != nil {
		return err
	}
	return gpuWrap(op, be.dev.AugmentBatchU8(p.Pad, p.Flip, p.Seed, p.Step, c, h, w, s, tab, ix.buf, d))
}

// GatherBatch runs augment_batch_at_v1: the images (augment_batch_v2's
// bits) and the labels in one launch, through a view (the offset fixed)
// or an IndexViewAt (the offset and the draw's step read from its per-step
// values when it runs).
func (be *gpuBackend) GatherBatch(p backend.AugmentParams, n, c, h, w int, lut, src, labels, rows, dst, dlabels backend.Tensor) error {
	const op = "gather batch"
	ix, err := be.tensor("rows", rows)
	if err != nil {
		return gpuWrap(op, err)
	}
	if !ix.index {
		return fmt.Errorf("host: %s: rows is not an index tensor: %w", op, backend.ErrTensor)
	}
	var at, astep gpu.Word
	if ix.at != nil {
		if _, err := be.valsTensor("rows' per-step values", ix.at); err != nil {
			return gpuWrap(op, err)
		}
		at, astep = gpu.Word{Buf: ix.at.buf, Index: valOffset}, gpu.Word{Buf: ix.at.buf, Index: valAugment}
	}
	s, err := be.u8("src", src, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	tab, err := be.f32("lut", lut, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	d, err := be.f32("dst", dst, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	lab, err := be.i32("labels", labels, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	dl, err := be.i32Out("dlabels", dlabels, -1)
	if err != nil {
		return gpuWrap(op, err)
	}
	if dst.(*gpuTensor).parent != nil {
		return fmt.Errorf("host: %s: dst is a view (read-only): %w", op, backend.ErrTensor)
	}
	if ix.n != n || dl.n != n {
		return fmt.Errorf("host: %s: N=%d, rows has %d elements, dlabels %d: %w", op, n, ix.n, dl.n, geom.ErrGeometry)
	}
	if lo, hi := ix.indexRange(); lo < 0 || int(hi) >= lab.n {
		return fmt.Errorf("host: %s: rows lie in [%d, %d], outside [0, %d): %w", op, lo, hi, lab.n, backend.ErrTensor)
	}
	if err := be.dev.AugmentBatchAt(p.Pad, p.Flip, p.Seed, p.Step, c, h, w, s, tab, lab.buf, ix.buf, at, astep, d, dl.buf); err != nil {
		return gpuWrap(op, err)
	}
	dl.lo, dl.hi = lab.indexRange()
	return nil
}

// checkRows checks what the gather launchers cannot: that dst is not a
// view, that rows holds n indices and, from their recorded range, that
// every index names an image of a source of srcLen values (when the sizes
// divide it; otherwise the launcher refuses the sizes or the source).
func checkRows(op string, dst backend.Tensor, ix *gpuTensor, n, c, h, w, srcLen int) error {
	if dst.(*gpuTensor).parent != nil {
		return fmt.Errorf("host: %s: dst is a view (read-only): %w", op, backend.ErrTensor)
	}
	if ix.n != n {
		return fmt.Errorf("host: %s: N=%d, rows has %d elements: %w", op, n, ix.n, geom.ErrGeometry)
	}
	if c >= 1 && h >= 1 && w >= 1 && geom.FitsProduct([]int{c, h, w}) && srcLen%(c*h*w) == 0 {
		m := srcLen / (c * h * w)
		if lo, hi := ix.indexRange(); lo < 0 || int(hi) >= m {
			return fmt.Errorf("host: %s: rows lie in [%d, %d], outside [0, %d): %w", op, lo, hi, m, backend.ErrTensor)
		}
	}
	return nil
}
