package gpu

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/kernels"
)

// blockSize is the block of every 1-D and block-reduction launch; the
// block reductions require exactly this many threads.
const blockSize = kernels.BlockSize

// maxElems bounds element counts so that the kernels' int32 index math
// cannot overflow.
const maxElems = math.MaxInt32

// ceilDiv is ⌈a/b⌉ for a ≥ 0, b > 0.
func ceilDiv(a, b int) int { return (a + b - 1) / b }

// linear is the launch shape of a 1-D kernel over total elements:
// grid.x = ⌈total/256⌉, block.x = 256.
func linear(total int) (grid, block Dim3) {
	return Dim3{ceilDiv(total, blockSize), 1, 1}, Dim3{blockSize, 1, 1}
}

// perBlock is the launch shape of a kernel with one 256-thread block per
// output element (the block reductions).
func perBlock(blocks int) (grid, block Dim3) {
	return Dim3{blocks, 1, 1}, Dim3{blockSize, 1, 1}
}

// Argument packing: every kernel argument travels as one 8-byte value; the
// driver reads as many low-order bytes as the PTX parameter has. Each
// argument also carries its kind, which launch checks against the kind of
// the parameter the generated kernel table declares at that position: a
// launcher cannot pass an int where the kernel takes a pointer, nor one
// argument too many or too few.
type arg struct {
	v    uint64
	kind argKind
}

// argKind is the kind of an argument: kernels.TypePtr, TypeI32 or TypeF32
// as a small integer, cheap to compare on every launch.
type argKind uint8

const (
	kindUnknown argKind = iota
	kindPtr
	kindI32
	kindF32
)

// kindOf is the argKind of a kernels.Param.Type.
func kindOf(t string) argKind {
	switch t {
	case kernels.TypePtr:
		return kindPtr
	case kernels.TypeI32:
		return kindI32
	case kernels.TypeF32:
		return kindF32
	}
	return kindUnknown
}

func (k argKind) String() string {
	switch k {
	case kindPtr:
		return kernels.TypePtr
	case kindI32:
		return kernels.TypeI32
	case kindF32:
		return kernels.TypeF32
	}
	return "unknown"
}

// argPtr is b's device address, or 0 (a null pointer) for a nil b where a
// kernel accepts one.
func argPtr(b *Buffer) arg {
	if b == nil {
		return arg{0, kindPtr}
	}
	return arg{uint64(b.ptr), kindPtr}
}

// argDev is the device address p (a workspace that is not a Buffer).
func argDev(p DevicePtr) arg { return arg{uint64(p), kindPtr} }

// argI32 sign-extends v to 64 bits; v has been checked to fit in int32.
func argI32(v int) arg { return arg{uint64(int64(int32(v))), kindI32} }

// argFlag is an int flag argument: 1 for true, 0 for false.
func argFlag(v bool) arg {
	if v {
		return argI32(1)
	}
	return argI32(0)
}

func argF32(v float32) arg { return arg{uint64(math.Float32bits(v)), kindF32} }

// maxArgs bounds the parameter count of every kernel (resolveKernels
// checks it).
const maxArgs = 24

// launch stages args and launches kernel id; the caller holds d.mu and has
// validated every size. The arguments must match the kernel's parameters
// in the generated table in number and kind.
func (d *Device) launch(id kernelID, grid, block Dim3, shared int, args ...arg) error {
	if d.closed {
		return fmt.Errorf("device %w", ErrClosed)
	}
	if d.fns[id] == nil {
		return fmt.Errorf("kernel needs a newer GPU than %s (sm_%d%d)", d.info.Name, d.info.ComputeMajor, d.info.ComputeMinor)
	}
	e := &kernelTable[id]
	if len(args) != len(e.kinds) {
		return fmt.Errorf("launcher passes %d arguments, kernel has %d parameters", len(args), len(e.kinds))
	}
	for i, a := range args {
		if a.kind != e.kinds[i] {
			return fmt.Errorf("launcher passes %v for parameter %d (%s %s)", a.kind, i, e.params[i].CType, e.params[i].Name)
		}
		d.args[i] = a.v
	}
	if err := d.drv.Launch(d.fns[id], grid, block, shared, d.args[:len(args)]); err != nil {
		return err
	}
	if d.capturing {
		d.captured++
	} else {
		d.launches++
	}
	return nil
}

// launchErr wraps err with the kernel's name and the launch's shape.
func launchErr(id kernelID, shape any, err error) error {
	return fmt.Errorf("gpu: launch %s (%v): %w", kernelTable[id].name, shape, err)
}

// Shapes named in launch errors.
type (
	elemShape  struct{ n int }
	denseShape struct{ n, in, out int }
	rowShape   struct{ rows, cols int }
)

func (s elemShape) String() string  { return fmt.Sprintf("n=%d", s.n) }
func (s denseShape) String() string { return fmt.Sprintf("N=%d,In=%d,Out=%d", s.n, s.in, s.out) }
func (s rowShape) String() string   { return fmt.Sprintf("rows=%d,cols=%d", s.rows, s.cols) }

// need checks that b is a live buffer of this device with type t and
// exactly n elements.
func (d *Device) need(name string, b *Buffer, t DType, n int) error {
	if b == nil {
		return fmt.Errorf("%s is nil: %w", name, geom.ErrGeometry)
	}
	if b.d != d {
		return fmt.Errorf("%s is a buffer of another device", name)
	}
	if err := b.live(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if b.dtype != t {
		return fmt.Errorf("%s holds %s, want %s: %w", name, b.dtype, t, geom.ErrGeometry)
	}
	if b.n != n {
		return fmt.Errorf("%s has %d elements, want %d: %w", name, b.n, n, geom.ErrGeometry)
	}
	return nil
}

// needOpt is need for optional buffers: nil is allowed.
func (d *Device) needOpt(name string, b *Buffer, t DType, n int) error {
	if b == nil {
		return nil
	}
	return d.need(name, b, t, n)
}

// needAtLeast is need for scalar outputs: b must hold at least n elements.
func (d *Device) needAtLeast(name string, b *Buffer, t DType, n int) error {
	if b != nil && b.n > n {
		return d.need(name, b, t, b.n)
	}
	return d.need(name, b, t, n)
}

// dims checks that every size is ≥ 1 and that the products of the given
// groups stay below 2³¹.
func dims(sizes []int, groups ...[]int) error {
	for _, s := range sizes {
		if s < 1 {
			return fmt.Errorf("sizes must be ≥ 1: %w", geom.ErrGeometry)
		}
	}
	for _, g := range groups {
		p := 1
		for _, s := range g {
			if s < 1 || p > maxElems/s {
				return fmt.Errorf("a tensor has 2³¹ elements or more: %w", geom.ErrGeometry)
			}
			p *= s
		}
	}
	return nil
}

func lenOf(b *Buffer) int {
	if b == nil {
		return 0
	}
	return b.n
}
