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

// AugmentBatchAt gathers, in one launch of augment_batch_at_v1, the images
// that AugmentBatchU8 gathers (the same bits) and, when labels is not nil,
// their labels (int32, one per image of src), for the rows order[off + i],
// i < dst's images: off is the int32 word at when at.Buf is not nil (read
// when the kernel runs), else 0 (order is then the batch's own rows); the
// draw's step is the two words astep (low, high) when astep.Buf is not
// nil, else step. The kernel writes nothing for an offset outside [0,
// order.Len() − N] and skips a row outside the images of src: the caller
// keeps both in range.
func (d *Device) AugmentBatchAt(pad int, flip bool, seed, step uint64, c, h, w int, src, lut, labels, order *Buffer, at, astep Word, dst, dlabels *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	if c > 0 && h > 0 && w > 0 && dst != nil {
		n = dst.n / max(1, c*h*w)
	}
	if err := d.augmentBatchAt(pad, flip, seed, step, c, h, w, src, lut, labels, order, at, astep, dst, dlabels); err != nil {
		return launchErr(kAugmentAt, augShape{n, c, h, w, pad}, err)
	}
	return nil
}

func (d *Device) augmentBatchAt(pad int, flip bool, seed, step uint64, c, h, w int, src, lut, labels, order *Buffer, at, astep Word, dst, dlabels *Buffer) error {
	if src == nil || order == nil || dst == nil {
		return fmt.Errorf("src, order or dst is nil: %w", geom.ErrGeometry)
	}
	if pad < 0 || pad > MaxAugmentPad {
		return fmt.Errorf("padding %d outside [0, %d]: %w", pad, MaxAugmentPad, geom.ErrGeometry)
	}
	if err := dims([]int{c, h, w}, []int{c, h, w}, []int{c, 256}); err != nil {
		return err
	}
	size := c * h * w
	if src.n%size != 0 || dst.n%size != 0 {
		return fmt.Errorf("src (%d) or dst (%d) is not whole images of %d×%d×%d: %w", src.n, dst.n, c, h, w, geom.ErrGeometry)
	}
	n, srcRows := dst.n/size, src.n/size
	if err := dims([]int{n}, []int{n, size + 1}); err != nil {
		return err
	}
	if err := d.need("src", src, Uint8, src.n); err != nil {
		return err
	}
	if err := d.need("lut", lut, Float32, c*256); err != nil {
		return err
	}
	if err := d.needAtLeast("order", order, Int32, n); err != nil {
		return err
	}
	if err := d.need("dst", dst, Float32, n*size); err != nil {
		return err
	}
	if dst == lut {
		return fmt.Errorf("dst is lut: %w", geom.ErrGeometry)
	}
	if (labels == nil) != (dlabels == nil) {
		return fmt.Errorf("labels and dlabels: both or neither: %w", geom.ErrGeometry)
	}
	total := n * size
	if labels != nil {
		if err := d.need("labels", labels, Int32, srcRows); err != nil {
			return err
		}
		if err := d.need("dlabels", dlabels, Int32, n); err != nil {
			return err
		}
		total += n
	}
	off, as := argPtr(nil), argPtr(nil)
	var err error
	if at.Buf != nil {
		if off, err = d.wordPtr("at", at, 1); err != nil {
			return err
		}
	} else if order.n != n {
		return fmt.Errorf("order has %d elements for %d images and no offset word: %w", order.n, n, geom.ErrGeometry)
	}
	if astep.Buf != nil {
		if as, err = d.wordPtr("astep", astep, 2); err != nil {
			return err
		}
	}
	f := 0
	if flip {
		f = 1
	}
	grid, block := linear(total)
	return d.launch(kAugmentAt, grid, block, 0, argPtr(src), argPtr(lut), argPtr(labels), argPtr(order), off, as,
		argPtr(dst), argPtr(dlabels), argI32(n), argI32(c), argI32(h), argI32(w), argI32(pad), argI32(f),
		argU32(uint32(seed)), argU32(uint32(seed>>32)), argU32(uint32(step)), argU32(uint32(step>>32)),
		argI32(order.n), argI32(srcRows))
}
