package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the data-movement kernels of kernels/data.cu.

// GatherRows copies rows: dst[r,:] = src[idx[r],:] for r < idx.Len(), rows
// of rowLen elements. src and dst are both float32 or both int32, idx is
// int32 and dst has idx.Len()·rowLen elements. The kernel cannot check idx:
// the caller guarantees 0 ≤ idx[r] < src.Len()/rowLen (an index out of
// range reads out of bounds). Kernels gather_rows_f32_v1, gather_rows_i32_v1,
// 1-D over rows·rowLen.
func (d *Device) GatherRows(rowLen int, src, idx, dst *Buffer) error {
	id := kGatherF32
	if src != nil && src.dtype == Int32 {
		id = kGatherI32
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.gatherRows(id, rowLen, src, idx, dst); err != nil {
		return launchErr(id, rowShape{lenOf(idx), rowLen}, err)
	}
	return nil
}

func (d *Device) gatherRows(id kernelID, rowLen int, src, idx, dst *Buffer) error {
	if src == nil || idx == nil {
		return fmt.Errorf("src or idx is nil: %w", geom.ErrGeometry)
	}
	if src.dtype == Uint8 {
		return fmt.Errorf("src holds uint8 (AugmentBatchU8 gathers bytes): %w", geom.ErrGeometry)
	}
	rows := idx.n
	if rowLen < 1 || src.n%rowLen != 0 {
		return fmt.Errorf("src of %d elements is not whole rows of %d: %w", src.n, rowLen, geom.ErrGeometry)
	}
	if err := dims([]int{rows, rowLen}, []int{rows, rowLen}); err != nil {
		return err
	}
	if err := d.need("src", src, src.dtype, src.n); err != nil {
		return err
	}
	if err := d.need("idx", idx, Int32, rows); err != nil {
		return err
	}
	if err := d.need("dst", dst, src.dtype, rows*rowLen); err != nil {
		return err
	}
	grid, block := linear(rows * rowLen)
	return d.launch(id, grid, block, 0, argPtr(src), argPtr(idx), argPtr(dst), argI32(rows), argI32(rowLen))
}

// Fill sets every element of the float32 buffer p to v. Kernel fill_f32_v1.
func (d *Device) Fill(p *Buffer, v float32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fill(p, v); err != nil {
		return launchErr(kFill, elemShape{lenOf(p)}, err)
	}
	return nil
}

func (d *Device) fill(p *Buffer, v float32) error {
	if p == nil {
		return fmt.Errorf("p is nil: %w", geom.ErrGeometry)
	}
	if err := d.need("p", p, Float32, p.n); err != nil {
		return err
	}
	return d.fillLocked(p.ptr, p.n, v)
}

// fillLocked writes v to n float32 words at ptr; the caller holds d.mu.
func (d *Device) fillLocked(ptr DevicePtr, n int, v float32) error {
	grid, block := linear(n)
	return d.launch(kFill, grid, block, 0, argDev(ptr), argI32(n), argF32(v))
}
