package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the augmentation kernels of kernels/augment.cu.

// MaxAugmentPad bounds the padding of AugmentBatch (host/data's bound).
const MaxAugmentPad = 64

// augShape names an augmentation launch in errors.
type augShape struct{ n, c, h, w, pad int }

func (s augShape) String() string {
	return fmt.Sprintf("N=%d,C=%d,H=%d,W=%d,pad=%d", s.n, s.c, s.h, s.w, s.pad)
}

// AugmentBatch gathers and augments a batch of training images: dst
// (N,C,H,W) image i is image rows[i] of src (?,C,H,W), cropped from the
// image zero-padded by pad pixels at the offset (dy, dx) and, when flip,
// mirrored left to right when its flip bit is set; the draw (dy, dx, flip
// bit) is host/data's Augment.Draw(seed, step, rows[i]), recomputed by
// every thread from the counters with 64-bit integer arithmetic. The
// result is a copy of source values and zeros: the same bits as
// data.Augment.Apply. N is rows.Len(); rows is int32, src and dst float32
// and distinct. The kernel cannot check rows: the caller guarantees
// 0 ≤ rows[i] < src.Len()/(C·H·W) (an index out of range reads out of
// bounds). Kernel augment_batch_v1, 1-D over N·C·H·W. An error wrapping
// geom.ErrGeometry is returned for a nil, mistyped or wrong-length buffer,
// a size < 1 or a padding outside [0, MaxAugmentPad].
func (d *Device) AugmentBatch(pad int, flip bool, seed, step uint64, c, h, w int, src, rows, dst *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.augmentBatch(pad, flip, seed, step, c, h, w, src, rows, dst); err != nil {
		return launchErr(kAugment, augShape{lenOf(rows), c, h, w, pad}, err)
	}
	return nil
}

func (d *Device) augmentBatch(pad int, flip bool, seed, step uint64, c, h, w int, src, rows, dst *Buffer) error {
	if src == nil || rows == nil {
		return fmt.Errorf("src or rows is nil: %w", geom.ErrGeometry)
	}
	if pad < 0 || pad > MaxAugmentPad {
		return fmt.Errorf("padding %d outside [0, %d]: %w", pad, MaxAugmentPad, geom.ErrGeometry)
	}
	n := rows.n
	if err := dims([]int{n, c, h, w}, []int{n, c, h, w}, []int{c, h, w}); err != nil {
		return err
	}
	size := c * h * w
	if src.n%size != 0 {
		return fmt.Errorf("src of %d elements is not whole images of %d×%d×%d: %w", src.n, c, h, w, geom.ErrGeometry)
	}
	if src == dst {
		return fmt.Errorf("dst is src: %w", geom.ErrGeometry)
	}
	if err := d.need("src", src, Float32, src.n); err != nil {
		return err
	}
	if err := d.need("rows", rows, Int32, n); err != nil {
		return err
	}
	if err := d.need("dst", dst, Float32, n*size); err != nil {
		return err
	}
	f := 0
	if flip {
		f = 1
	}
	grid, block := linear(n * size)
	return d.launch(kAugment, grid, block, 0, argPtr(src), argPtr(rows), argPtr(dst),
		argI32(n), argI32(c), argI32(h), argI32(w), argI32(pad), argI32(f),
		argU32(uint32(seed)), argU32(uint32(seed>>32)), argU32(uint32(step)), argU32(uint32(step>>32)))
}

// AugmentBatchU8 is AugmentBatch from a data set of bytes, standardised
// on the way: dst (N,C,H,W) float32 element [i,c,y,x] is lut[c·256 + b],
// b the byte of image rows[i] of src (?,C,H,W) at the position
// AugmentBatch reads, and 0 where that position is in the padding. lut
// (C·256 float32) holds channel c's input value of every byte (the
// caller computes it, e.g. (b − mean)/std rounded as the CPU rounds it),
// so the result is a copy of table entries and zeros: the bits of the
// table lookup followed by data.Augment.Apply. pad = 0 and no flip is the
// plain gather of rows, standardised. src is uint8, rows int32; the kernel
// cannot check rows: the caller guarantees 0 ≤ rows[i] < src.Len()/(C·H·W).
// Kernel augment_batch_v2, 1-D over N·C·H·W. An error wrapping
// geom.ErrGeometry is returned for a nil, mistyped or wrong-length buffer,
// a size < 1 or a padding outside [0, MaxAugmentPad].
func (d *Device) AugmentBatchU8(pad int, flip bool, seed, step uint64, c, h, w int, src, lut, rows, dst *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.augmentBatchU8(pad, flip, seed, step, c, h, w, src, lut, rows, dst); err != nil {
		return launchErr(kAugmentU8, augShape{lenOf(rows), c, h, w, pad}, err)
	}
	return nil
}

func (d *Device) augmentBatchU8(pad int, flip bool, seed, step uint64, c, h, w int, src, lut, rows, dst *Buffer) error {
	if src == nil || rows == nil {
		return fmt.Errorf("src or rows is nil: %w", geom.ErrGeometry)
	}
	if pad < 0 || pad > MaxAugmentPad {
		return fmt.Errorf("padding %d outside [0, %d]: %w", pad, MaxAugmentPad, geom.ErrGeometry)
	}
	n := rows.n
	if err := dims([]int{n, c, h, w}, []int{n, c, h, w}, []int{c, h, w}, []int{c, 256}); err != nil {
		return err
	}
	size := c * h * w
	if src.n%size != 0 {
		return fmt.Errorf("src of %d elements is not whole images of %d×%d×%d: %w", src.n, c, h, w, geom.ErrGeometry)
	}
	if err := d.need("src", src, Uint8, src.n); err != nil {
		return err
	}
	if err := d.need("lut", lut, Float32, c*256); err != nil {
		return err
	}
	if err := d.need("rows", rows, Int32, n); err != nil {
		return err
	}
	if err := d.need("dst", dst, Float32, n*size); err != nil {
		return err
	}
	if dst == lut {
		return fmt.Errorf("dst is lut: %w", geom.ErrGeometry)
	}
	f := 0
	if flip {
		f = 1
	}
	grid, block := linear(n * size)
	return d.launch(kAugmentU8, grid, block, 0, argPtr(src), argPtr(lut), argPtr(rows), argPtr(dst),
		argI32(n), argI32(c), argI32(h), argI32(w), argI32(pad), argI32(f),
		argU32(uint32(seed)), argU32(uint32(seed>>32)), argU32(uint32(step)), argU32(uint32(step>>32)))
}
