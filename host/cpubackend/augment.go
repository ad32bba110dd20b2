package cpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/data"
)

// AugmentBatch runs host/data's reference (data.Augment.Draw and Apply)
// image by image.
func (be *cpuBackend) AugmentBatch(p backend.AugmentParams, n, c, h, w int, src, rows, dst backend.Tensor) error {
	if n < 1 || c < 1 || h < 1 || w < 1 || n > backend.MaxTensorElems/c/h/w || p.Pad < 0 || p.Pad > backend.MaxAugmentPad {
		return fmt.Errorf("host: augment batch: N=%d,C=%d,H=%d,W=%d, padding %d (want sizes ≥ 1, padding 0 to %d): %w", n, c, h, w, p.Pad, backend.MaxAugmentPad, geom.ErrGeometry)
	}
	size := c * h * w
	ix, err := be.i32("rows", rows, n)
	if err != nil {
		return wrap("augment batch", err)
	}
	s, err := be.f32("src", src, -1)
	if err != nil {
		return wrap("augment batch", err)
	}
	d, err := be.f32("dst", dst, n*size)
	if err != nil {
		return wrap("augment batch", err)
	}
	if dst.(*cpuTensor).parent != nil {
		return fmt.Errorf("host: augment batch: dst is a view (read-only): %w", backend.ErrTensor)
	}
	if dst == src {
		return fmt.Errorf("host: augment batch: dst is src: %w", geom.ErrGeometry)
	}
	if len(s)%size != 0 {
		return fmt.Errorf("host: augment batch: src has %d elements, not whole images of %d×%d×%d: %w", len(s), c, h, w, backend.ErrTensor)
	}
	m := len(s) / size
	for i, r := range ix {
		if r < 0 || int(r) >= m {
			return fmt.Errorf("host: augment batch: rows[%d] = %d is outside [0, %d): %w", i, r, m, backend.ErrTensor)
		}
	}
	a := data.Augment{Pad: p.Pad, Flip: p.Flip}
	for i, r := range ix {
		draw := a.Draw(p.Seed, p.Step, uint64(r))
		if err := a.Apply(d[i*size:(i+1)*size], s[int(r)*size:(int(r)+1)*size], c, h, w, draw); err != nil {
			return wrap("augment batch", err)
		}
	}
	return nil
}

// GatherImages looks image rows[i] of src up in lut and, unless p is the
// zero AugmentParams, augments it with host/data's reference
// (data.Augment.Draw and Apply) from a scratch image kept by the backend.
// It runs its own pass, so it checks the sizes and lengths itself.
// GatherBatch runs GatherImages, then Gather of the labels.
func (be *cpuBackend) GatherBatch(p backend.AugmentParams, n, c, h, w int, lut, src, labels, rows, dst, dlabels backend.Tensor) error {
	if err := be.GatherImages(p, n, c, h, w, lut, src, rows, dst); err != nil {
		return err
	}
	return be.Gather(1, labels, rows, dlabels)
}

func (be *cpuBackend) GatherImages(p backend.AugmentParams, n, c, h, w int, lut, src, rows, dst backend.Tensor) error {
	if n < 1 || c < 1 || h < 1 || w < 1 || n > backend.MaxTensorElems/c/h/w || p.Pad < 0 || p.Pad > backend.MaxAugmentPad {
		return fmt.Errorf("host: gather images: N=%d,C=%d,H=%d,W=%d, padding %d (want sizes ≥ 1, padding 0 to %d): %w", n, c, h, w, p.Pad, backend.MaxAugmentPad, geom.ErrGeometry)
	}
	size, plane := c*h*w, h*w
	ix, err := be.i32("rows", rows, n)
	if err != nil {
		return wrap("gather images", err)
	}
	s, err := be.u8("src", src, -1)
	if err != nil {
		return wrap("gather images", err)
	}
	tab, err := be.f32("lut", lut, c*256)
	if err != nil {
		return wrap("gather images", err)
	}
	d, err := be.f32("dst", dst, n*size)
	if err != nil {
		return wrap("gather images", err)
	}
	if dst.(*cpuTensor).parent != nil {
		return fmt.Errorf("host: gather images: dst is a view (read-only): %w", backend.ErrTensor)
	}
	if dst == lut {
		return fmt.Errorf("host: gather images: dst is lut: %w", geom.ErrGeometry)
	}
	if len(s)%size != 0 {
		return fmt.Errorf("host: gather images: src has %d elements, not whole images of %d×%d×%d: %w", len(s), c, h, w, geom.ErrGeometry)
	}
	m := len(s) / size
	for i, r := range ix {
		if r < 0 || int(r) >= m {
			return fmt.Errorf("host: gather images: rows[%d] = %d is outside [0, %d): %w", i, r, m, backend.ErrTensor)
		}
	}
	a := data.Augment{Pad: p.Pad, Flip: p.Flip}
	augment := a != (data.Augment{})
	if augment && len(be.img) < size {
		be.img = make([]float32, size)
	}
	for i, r := range ix {
		out := d[i*size : (i+1)*size]
		if augment {
			out = be.img[:size]
		}
		img := s[int(r)*size : (int(r)+1)*size]
		for ch := range c {
			t := tab[ch*256 : (ch+1)*256]
			for j, b := range img[ch*plane : (ch+1)*plane] {
				out[ch*plane+j] = t[b]
			}
		}
		if augment {
			if err := a.Apply(d[i*size:(i+1)*size], out, c, h, w, a.Draw(p.Seed, p.Step, uint64(r))); err != nil {
				return wrap("gather images", err)
			}
		}
	}
	return nil
}
