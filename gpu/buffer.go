package gpu

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

// DType is the element type of a Buffer.
type DType int

const (
	Float32 DType = iota // float32 elements
	Int32                // int32 elements (labels, indices, argmax)
	Uint8                // uint8 elements (a data set's pixel bytes)
	// BFloat16 elements are bfloat16 values (2 bytes each): a BF16
	// convolution's output stored as the batch norm after it reads it
	// (NewBFloat16, ConvOutputBF16).
	BFloat16
)

func (t DType) String() string {
	switch t {
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case Uint8:
		return "uint8"
	case BFloat16:
		return "bfloat16"
	}
	return fmt.Sprintf("DType(%d)", int(t))
}

// Size is the bytes of one element: 4, 2 for BFloat16, 1 for Uint8.
func (t DType) Size() int {
	switch t {
	case Uint8:
		return 1
	case BFloat16:
		return 2
	}
	return 4
}

// allocAlign is the granularity of the caching allocator; cuMemAlloc
// returns 256-byte aligned memory and so does every cached block.
const allocAlign = 256

// Buffer is a range of device memory holding Len() float32, int32 or
// uint8 elements. A Buffer is either an allocation (from NewFloat32/NewInt32) or
// a view into one (from Slice); views share the allocation's memory and are
// not freed on their own.
type Buffer struct {
	d     *Device
	ptr   DevicePtr
	n     int
	dtype DType
	size  int64   // allocated bytes (rounded), 0 for a view
	root  *Buffer // the allocation a view belongs to; nil for an allocation
	freed bool
}

// NewFloat32 allocates n ≥ 1 float32 elements set to zero. Memory of freed
// buffers of the same rounded size is reused before the driver is asked.
func (d *Device) NewFloat32(n int) (*Buffer, error) { return d.newBuffer(n, Float32) }

// NewInt32 allocates n ≥ 1 int32 elements set to zero.
func (d *Device) NewInt32(n int) (*Buffer, error) { return d.newBuffer(n, Int32) }

// NewUint8 allocates n ≥ 1 bytes set to zero: n bytes of device memory
// (rounded up to the allocator's 256), a quarter of NewFloat32(n)'s.
func (d *Device) NewUint8(n int) (*Buffer, error) { return d.newBuffer(n, Uint8) }

// NewBFloat16 allocates n ≥ 1 bfloat16 elements set to zero: half of
// NewFloat32(n)'s memory. Only the operations that say so take one: a
// convolution's forward pass writes its output there where
// ConvOutputBF16 allows it, and the batch norm after it reads it as x.
func (d *Device) NewBFloat16(n int) (*Buffer, error) { return d.newBuffer(n, BFloat16) }

func (d *Device) newBuffer(n int, t DType) (*Buffer, error) {
	if n < 1 || n > maxElems {
		return nil, fmt.Errorf("gpu: new %s buffer of %d elements: length must be in [1, 2³¹): %w", t, n, geom.ErrGeometry)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("gpu: new %s buffer: device %w", t, ErrClosed)
	}
	// A new buffer is zeroed by a launch, which a recording would replay.
	if err := d.notCapturing(fmt.Sprintf("new %s buffer of %d elements", t, n)); err != nil {
		return nil, err
	}
	size := (int64(n)*int64(t.Size()) + allocAlign - 1) / allocAlign * allocAlign
	var p DevicePtr
	if free := d.pool[size]; len(free) > 0 {
		p = free[len(free)-1]
		d.pool[size] = free[:len(free)-1]
		d.stats.Reuses++
		d.stats.BytesCached -= size
	} else {
		var err error
		p, err = d.drv.MemAlloc(size)
		if err != nil {
			return nil, fmt.Errorf("gpu: new %s buffer of %d elements (%d bytes): %w", t, n, size, err)
		}
		d.stats.Allocs++
	}
	d.stats.BytesInUse += size
	b := &Buffer{d: d, ptr: p, n: n, dtype: t, size: size}
	// Zero the whole rounded block: the bit pattern 0 is 0.0 and int32 0.
	if err := d.fillLocked(p, int(size/4), 0); err != nil {
		d.freeLocked(b)
		return nil, fmt.Errorf("gpu: zero new buffer: %w", err)
	}
	return b, nil
}

// Len is the number of elements.
func (b *Buffer) Len() int { return b.n }

// DType is the element type.
func (b *Buffer) DType() DType { return b.dtype }

// Ptr is the device address of element 0.
func (b *Buffer) Ptr() DevicePtr { return b.ptr }

// Device is the device holding the buffer.
func (b *Buffer) Device() *Device { return b.d }

func (b *Buffer) String() string {
	return fmt.Sprintf("%s[%d]@%#x", b.dtype, b.n, uint64(b.ptr))
}

// live reports an error when b (or the allocation it views) was freed or
// its device closed. The caller holds b.d.mu.
func (b *Buffer) live() error {
	if b == nil {
		return fmt.Errorf("nil buffer")
	}
	if b.freed || (b.root != nil && b.root.freed) {
		return fmt.Errorf("buffer %v %w", b, ErrClosed)
	}
	if b.d.closed {
		return fmt.Errorf("device %w", ErrClosed)
	}
	return nil
}

// Slice returns a view of n elements starting at element off; it shares
// memory with b and must not be used after b is freed.
func (b *Buffer) Slice(off, n int) (*Buffer, error) {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if err := b.live(); err != nil {
		return nil, fmt.Errorf("gpu: slice: %w", err)
	}
	if off < 0 || n < 1 || off > b.n-n {
		return nil, fmt.Errorf("gpu: slice [%d:%d] of %v: out of range: %w", off, off+n, b, geom.ErrGeometry)
	}
	root := b
	if b.root != nil {
		root = b.root
	}
	return &Buffer{d: b.d, ptr: b.ptr + DevicePtr(b.dtype.Size()*off), n: n, dtype: b.dtype, root: root}, nil
}

// Free returns the memory to the device's cache for reuse; using b, or any
// view of it, afterwards is an error. Freeing a view is an error; freeing
// twice is an error.
func (b *Buffer) Free() error {
	if b == nil {
		return fmt.Errorf("gpu: free: nil buffer")
	}
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if b.root != nil {
		return fmt.Errorf("gpu: free %v: a view is freed with the buffer it views", b)
	}
	if err := b.live(); err != nil {
		return fmt.Errorf("gpu: free: %w", err)
	}
	d := b.d
	d.freeLocked(b)
	return nil
}

func (d *Device) freeLocked(b *Buffer) {
	b.freed = true
	delete(d.kept, b.ptr)
	d.pool[b.size] = append(d.pool[b.size], b.ptr)
	d.stats.BytesInUse -= b.size
	d.stats.BytesCached += b.size
}

func (b *Buffer) checkCopy(op string, t DType, n int) error {
	if err := b.live(); err != nil {
		return fmt.Errorf("gpu: %s: %w", op, err)
	}
	if b.dtype != t {
		return fmt.Errorf("gpu: %s: buffer %v holds %s, not %s: %w", op, b, b.dtype, t, geom.ErrGeometry)
	}
	if n != b.n {
		return fmt.Errorf("gpu: %s: %d host elements for %v: %w", op, n, b, geom.ErrGeometry)
	}
	return nil
}

// Upload copies len(src) == b.Len() float32 values to the device.
func (b *Buffer) Upload(src []float32) error {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if err := b.checkCopy("upload", Float32, len(src)); err != nil {
		return err
	}
	if err := b.d.notCapturing("upload"); err != nil {
		return err
	}
	if err := b.d.drv.MemcpyHtoD(b.ptr, f32Bytes(src)); err != nil {
		return fmt.Errorf("gpu: upload %d float32 to %v: %w", len(src), b, err)
	}
	b.d.stats.HtoDBytes += 4 * int64(len(src))
	b.d.stats.HtoDCopies++
	return nil
}

// UploadInt32 copies len(src) == b.Len() int32 values to the device.
func (b *Buffer) UploadInt32(src []int32) error {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if err := b.checkCopy("upload", Int32, len(src)); err != nil {
		return err
	}
	if err := b.d.notCapturing("upload"); err != nil {
		return err
	}
	if err := b.d.drv.MemcpyHtoD(b.ptr, i32Bytes(src)); err != nil {
		return fmt.Errorf("gpu: upload %d int32 to %v: %w", len(src), b, err)
	}
	b.d.stats.HtoDBytes += 4 * int64(len(src))
	b.d.stats.HtoDCopies++
	return nil
}

// UploadUint8 copies len(src) == b.Len() bytes to the device.
func (b *Buffer) UploadUint8(src []uint8) error {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if err := b.checkCopy("upload", Uint8, len(src)); err != nil {
		return err
	}
	if err := b.d.notCapturing("upload"); err != nil {
		return err
	}
	if err := b.d.drv.MemcpyHtoD(b.ptr, src); err != nil {
		return fmt.Errorf("gpu: upload %d uint8 to %v: %w", len(src), b, err)
	}
	b.d.stats.HtoDBytes += int64(len(src))
	b.d.stats.HtoDCopies++
	return nil
}

// Download copies the b.Len() == len(dst) float32 values to the host; on a
// real GPU it waits for the work queued before it.
func (b *Buffer) Download(dst []float32) error {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if err := b.checkCopy("download", Float32, len(dst)); err != nil {
		return err
	}
	if err := b.d.notCapturing("download"); err != nil {
		return err
	}
	if err := b.d.drv.MemcpyDtoH(f32Bytes(dst), b.ptr); err != nil {
		return fmt.Errorf("gpu: download %d float32 from %v: %w", len(dst), b, err)
	}
	b.d.stats.DtoHBytes += 4 * int64(len(dst))
	b.d.stats.DtoHCopies++
	return nil
}

// DownloadInt32 copies the b.Len() == len(dst) int32 values to the host.
func (b *Buffer) DownloadInt32(dst []int32) error {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if err := b.checkCopy("download", Int32, len(dst)); err != nil {
		return err
	}
	if err := b.d.notCapturing("download"); err != nil {
		return err
	}
	if err := b.d.drv.MemcpyDtoH(i32Bytes(dst), b.ptr); err != nil {
		return fmt.Errorf("gpu: download %d int32 from %v: %w", len(dst), b, err)
	}
	b.d.stats.DtoHBytes += 4 * int64(len(dst))
	b.d.stats.DtoHCopies++
	return nil
}

// DownloadUint8 copies the b.Len() == len(dst) bytes to the host.
func (b *Buffer) DownloadUint8(dst []uint8) error {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if err := b.checkCopy("download", Uint8, len(dst)); err != nil {
		return err
	}
	if err := b.d.notCapturing("download"); err != nil {
		return err
	}
	if err := b.d.drv.MemcpyDtoH(dst, b.ptr); err != nil {
		return fmt.Errorf("gpu: download %d uint8 from %v: %w", len(dst), b, err)
	}
	b.d.stats.DtoHBytes += int64(len(dst))
	b.d.stats.DtoHCopies++
	return nil
}

// UploadBF16 copies len(src) == b.Len() values to the bfloat16 buffer b,
// each rounded to the nearest bfloat16 (cpuref.BF16Bits: ties to even).
func (b *Buffer) UploadBF16(src []float32) error {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if err := b.checkCopy("upload", BFloat16, len(src)); err != nil {
		return err
	}
	if err := b.d.notCapturing("upload"); err != nil {
		return err
	}
	h := make([]byte, 2*len(src))
	for i, v := range src {
		binary.LittleEndian.PutUint16(h[2*i:], cpuref.BF16Bits(v))
	}
	if err := b.d.drv.MemcpyHtoD(b.ptr, h); err != nil {
		return fmt.Errorf("gpu: upload %d bfloat16 to %v: %w", len(src), b, err)
	}
	b.d.stats.HtoDBytes += int64(len(h))
	b.d.stats.HtoDCopies++
	return nil
}

// DownloadBF16 copies the b.Len() == len(dst) bfloat16 values of b to
// the host as float32 (exact: cpuref.BF16ToFloat32).
func (b *Buffer) DownloadBF16(dst []float32) error {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if err := b.checkCopy("download", BFloat16, len(dst)); err != nil {
		return err
	}
	if err := b.d.notCapturing("download"); err != nil {
		return err
	}
	// The 2-byte values land in dst's first half and are widened in place
	// from the last: dst[i] covers bytes 4i…4i+3, past the value 2i…2i+1
	// it reads and those of every element still to widen (none allocated).
	h := f32Bytes(dst)[:2*len(dst)]
	if err := b.d.drv.MemcpyDtoH(h, b.ptr); err != nil {
		return fmt.Errorf("gpu: download %d bfloat16 from %v: %w", len(dst), b, err)
	}
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = cpuref.BF16ToFloat32(binary.LittleEndian.Uint16(h[2*i:]))
	}
	b.d.stats.DtoHBytes += int64(len(h))
	b.d.stats.DtoHCopies++
	return nil
}

// CopyFrom copies src into b on the device; both must have the same type
// and length.
func (b *Buffer) CopyFrom(src *Buffer) error {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if src == nil || src.d != b.d {
		return fmt.Errorf("gpu: copy: source buffer is nil or on another device")
	}
	if err := src.live(); err != nil {
		return fmt.Errorf("gpu: copy: %w", err)
	}
	if err := b.checkCopy("copy", src.dtype, src.n); err != nil {
		return err
	}
	bytes := int64(b.n) * int64(b.dtype.Size())
	if err := b.d.drv.MemcpyDtoD(b.ptr, src.ptr, bytes); err != nil {
		return fmt.Errorf("gpu: copy %v to %v: %w", src, b, err)
	}
	b.d.stats.DtoDBytes += bytes
	return nil
}

// f32Bytes views a float32 slice as its little-endian bytes without copying
// (every platform Go and CUDA share is little-endian).
func f32Bytes(s []float32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
}

func i32Bytes(s []int32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
}
