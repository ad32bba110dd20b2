package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launcher of the finiteness check (kernels/check.cu): nonfinite_first_v1
// over a CheckTable.

// checkTableWords is the number of 64-bit words per tensor in the device
// table of nonfinite_first_v1 (kCheckWords): x, n, first block.
const checkTableWords = 3

// checkChunk is the number of elements one block of nonfinite_first_v1
// checks (kCheckChunk).
const checkChunk = 8 * blockSize

// CheckTable is the device-side table of the tensors a finiteness check
// reads, built once (NewCheckTable) and launched whenever the check is
// wanted. Its buffers must stay allocated while it is used; each launch
// checks that they are.
type CheckTable struct {
	d      *Device
	buf    *Buffer // int32, 2·checkTableWords per tensor
	ts     []*Buffer
	blocks int // grid.x: Σ ⌈n/checkChunk⌉
	elems  int
}

// NewCheckTable uploads the table of ts (at least one; float32 buffers of
// this device): for each its address, length and first block.
func (d *Device) NewCheckTable(ts []*Buffer) (*CheckTable, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("gpu: check table: no tensors: %w", geom.ErrGeometry)
	}
	t := &CheckTable{d: d, ts: append([]*Buffer(nil), ts...)}
	words := make([]int32, 0, 2*checkTableWords*len(ts))
	put := func(v uint64) { words = append(words, int32(uint32(v)), int32(uint32(v>>32))) }
	d.mu.Lock()
	for i, b := range ts {
		if b == nil {
			d.mu.Unlock()
			return nil, fmt.Errorf("gpu: check table: tensor %d is nil: %w", i, geom.ErrGeometry)
		}
		if err := d.need("x", b, Float32, b.n); err != nil {
			d.mu.Unlock()
			return nil, fmt.Errorf("gpu: check table: tensor %d: %w", i, err)
		}
		put(uint64(b.ptr))
		put(uint64(b.n))
		put(uint64(t.blocks))
		t.blocks += ceilDiv(b.n, checkChunk)
		t.elems += b.n
	}
	d.mu.Unlock()
	buf, err := d.NewInt32(len(words))
	if err != nil {
		return nil, fmt.Errorf("gpu: check table: %w", err)
	}
	if err := buf.UploadInt32(words); err != nil {
		buf.Free()
		return nil, fmt.Errorf("gpu: check table: %w", err)
	}
	t.buf = buf
	return t, nil
}

// Len is the number of tensors in the table.
func (t *CheckTable) Len() int { return len(t.ts) }

// Free releases the table's device memory (not the tensors it names).
func (t *CheckTable) Free() error { return t.buf.Free() }

// FirstNonFinite sets out[0] to the index in t of the first tensor that
// holds a NaN or an infinity, or to t.Len() when every element is finite
// (as a float32: exact for fewer than 2²⁴ tensors). Two launches:
// fill_f32_v1 sets out[0] to t.Len(), then nonfinite_first_v1 lowers it.
// Nothing is copied to the host: read out[0] when the answer is wanted.
func (d *Device) FirstNonFinite(t *CheckTable, out *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.firstNonFinite(t, out); err != nil {
		shape := multiShape{}
		if t != nil {
			shape = multiShape{len(t.ts), t.elems}
		}
		return launchErr(kNonFiniteFirst, shape, err)
	}
	return nil
}

func (d *Device) firstNonFinite(t *CheckTable, out *Buffer) error {
	if t == nil {
		return fmt.Errorf("check table is nil: %w", geom.ErrGeometry)
	}
	if t.d != d {
		return fmt.Errorf("check table of another device")
	}
	if err := t.buf.live(); err != nil {
		return fmt.Errorf("check table: %w", err)
	}
	if len(t.ts) >= 1<<24 {
		return fmt.Errorf("%d tensors, an index a float32 cannot hold exactly: %w", len(t.ts), geom.ErrGeometry)
	}
	for i, b := range t.ts {
		if err := d.need("x", b, Float32, b.n); err != nil {
			return fmt.Errorf("tensor %d: %w", i, err)
		}
	}
	if err := d.needAtLeast("out", out, Float32, 1); err != nil {
		return err
	}
	if err := d.fillLocked(out.ptr, 1, float32(len(t.ts))); err != nil {
		return err
	}
	return d.launch(kNonFiniteFirst, Dim3{t.blocks, 1, 1}, Dim3{blockSize, 1, 1}, 0, argPtr(t.buf), argI32(len(t.ts)),
		argPtr(out))
}
