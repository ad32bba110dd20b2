package gpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// AugmentBatch runs augment_batch_v1 (gpu.Device.AugmentBatch) after
// checking on the host, from rows' recorded range, that every index names
// an image of src: the same bits as the CPU backend (host/data's
// Augment.Draw and Apply).
func (be *gpuBackend) AugmentBatch(p backend.AugmentParams, n, c, h, w int, src, rows, dst backend.Tensor) error {
	if n < 1 || c < 1 || h < 1 || w < 1 || n > backend.MaxTensorElems/c/h/w || p.Pad < 0 || p.Pad > backend.MaxAugmentPad {
		return fmt.Errorf("host: augment batch: N=%d,C=%d,H=%d,W=%d, padding %d (want sizes ≥ 1, padding 0 to %d): %w", n, c, h, w, p.Pad, backend.MaxAugmentPad, geom.ErrGeometry)
	}
	size := c * h * w
	ix, err := be.i32("rows", rows, n)
	if err != nil {
		return gpuWrap("augment batch", err)
	}
	s, err := be.f32("src", src, -1)
	if err != nil {
		return gpuWrap("augment batch", err)
	}
	d, err := be.f32("dst", dst, n*size)
	if err != nil {
		return gpuWrap("augment batch", err)
	}
	if dst.(*gpuTensor).parent != nil || dst == src {
		return fmt.Errorf("host: augment batch: dst is a view or src: %w", backend.ErrTensor)
	}
	if s.Len()%size != 0 {
		return fmt.Errorf("host: augment batch: src has %d elements, not whole images of %d×%d×%d: %w", s.Len(), c, h, w, backend.ErrTensor)
	}
	m := s.Len() / size
	if lo, hi := ix.indexRange(); lo < 0 || int(hi) >= m {
		return fmt.Errorf("host: augment batch: rows lie in [%d, %d], outside [0, %d): %w", lo, hi, m, backend.ErrTensor)
	}
	return gpuWrap("augment batch", be.dev.AugmentBatch(p.Pad, p.Flip, p.Seed, p.Step, c, h, w, s, ix.buf, d))
}
