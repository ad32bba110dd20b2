package gpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
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
	if dst.(*gpuTensor).parent != nil {
		return fmt.Errorf("host: %s: dst is a view (read-only): %w", op, backend.ErrTensor)
	}
	if ix.n != n {
		return fmt.Errorf("host: %s: N=%d, rows has %d elements: %w", op, n, ix.n, geom.ErrGeometry)
	}
	// Otherwise the launcher refuses the sizes or src.
	if c >= 1 && h >= 1 && w >= 1 && geom.FitsProduct([]int{c, h, w}) && s.Len()%(c*h*w) == 0 {
		m := s.Len() / (c * h * w)
		if lo, hi := ix.indexRange(); lo < 0 || int(hi) >= m {
			return fmt.Errorf("host: %s: rows lie in [%d, %d], outside [0, %d): %w", op, lo, hi, m, backend.ErrTensor)
		}
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
	if dst.(*gpuTensor).parent != nil {
		return fmt.Errorf("host: %s: dst is a view (read-only): %w", op, backend.ErrTensor)
	}
	if ix.n != n {
		return fmt.Errorf("host: %s: N=%d, rows has %d elements: %w", op, n, ix.n, geom.ErrGeometry)
	}
	// Otherwise the launcher refuses the sizes or src.
	if c >= 1 && h >= 1 && w >= 1 && geom.FitsProduct([]int{c, h, w}) && s.Len()%(c*h*w) == 0 {
		m := s.Len() / (c * h * w)
		if lo, hi := ix.indexRange(); lo < 0 || int(hi) >= m {
			return fmt.Errorf("host: %s: rows lie in [%d, %d], outside [0, %d): %w", op, lo, hi, m, backend.ErrTensor)
		}
	}
	return gpuWrap(op, be.dev.AugmentBatchU8(p.Pad, p.Flip, p.Seed, p.Step, c, h, w, s, tab, ix.buf, d))
}
