package cpubackend

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// cpuTensor is the CPU backend's Tensor: a host slice of float32 (f), of
// int32 (i) or of bytes (b); exactly one of them is non-nil while the
// tensor is live.
type cpuTensor struct {
	be     *cpuBackend
	f      []float32
	i      []int32
	b      []uint8
	n      int
	freed  bool
	parent *cpuTensor // the tensor this one views (IndexView); nil for storage of its own
	// bf16: f holds bfloat16 values (NewBF16Tensor), which only the
	// operations that say so take (f32x).
	bf16 bool
}

// Len is the number of elements.
func (t *cpuTensor) Len() int { return t.n }

// cpuBackend implements Backend over cpuref. Conv2D layers use
// cpuref.Conv2D; one (which owns its workspace) is kept
// per geometry, so after the first step of a given batch size nothing is
// allocated by this package.
type cpuBackend struct {
	threads int
	convs   map[geom.ConvGeom]*cpuref.Conv2D
	bn      cpuref.BatchNorm32 // batch norm, channels on up to GOMAXPROCS goroutines
	par     parallel           // ReLU, addition and max-pool passes on up to threads goroutines
	closed  bool
	// Reused by the operations of norm.go and elementwise.go, so that a
	// step allocates nothing: the storage of an operation's tensors and
	// a dropout mask.
	sl      [][]float32
	maskBuf []uint8
	img     []float32            // GatherImages: an image looked up, before its augmentation
	names   map[nameKey][]string // concatNames
	// round, where set, says how each convolution pass rounds its
	// operands (NewCPUBackendBF16, NewCPUBackendRounding), into rA and
	// rB; roundName is its part of Name.
	round     func(ConvPass, geom.ConvGeom) Rounding
	roundName string
	rA, rB    []float32
}

// NewCPUBackend returns a Backend that runs on the CPU through cpuref.
// The ReLU, addition and max-pool passes are split over up to threads
// goroutines (threads ≤ 0 means runtime.GOMAXPROCS(0)); cpuref's
// convolutions and batch norm use up to GOMAXPROCS goroutines, so callers
// set runtime.GOMAXPROCS(threads).
// Results are bit-identical whatever the thread count. After the first
// step of a given batch size, no method allocates. Like every Backend it
// is used from one goroutine at a time.
func NewCPUBackend(threads int) (backend.Backend, error) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	be := &cpuBackend{threads: threads, convs: make(map[geom.ConvGeom]*cpuref.Conv2D)}
	be.par.threads = threads
	return be, nil
}

// ConvPass names a convolution pass for a Rounding policy.
type ConvPass int

const (
	ConvForward ConvPass = iota
	ConvBackwardData
	ConvBackwardFilter
)

// Rounding is what a convolution pass does to its operands before its
// float32 products: the two operands of each product (x and w forward, dy
// and w backward-data, x and dy backward-filter) rounded as a GPU's tensor
// cores round them, into copies (the tensors themselves untouched), the
// products then summed in float32 as usual — each product of two rounded
// values is exact in float32. The bias and its gradient are not rounded.
type Rounding int

const (
	RoundNone Rounding = iota // float32
	RoundTF32                 // cpuref.RoundTF32: 10 mantissa bits, to nearest, ties away
	RoundBF16                 // cpuref.RoundBF16: 7 mantissa bits, to nearest, ties to even
)

// NewCPUBackendBF16 is NewCPUBackend emulating the GPU backend's
// -precision bf16 on every convolution: RoundBF16 in each pass (see
// Rounding); the bias gradient from dy unrounded (cpuref.Conv2DBackwardBias,
// as the GPU computes it); a conv output the model stores as bfloat16
// (NewBF16Tensor, ConvOutputBF16) rounded to it; every other operation,
// the weights, their gradients and the optimiser state float32. The GPU's BF16 kernels
// compute the same products and sum them in another order (within float32
// rounding of these results), and run TF32 or FP32 kernels on the passes
// no BF16 kernel serves (NewCPUBackendRounding follows a device's choice
// pass by pass). It previews bf16 training's accuracy on a machine without
// a GPU; the rounding passes make it slower than NewCPUBackend.
func NewCPUBackendBF16(threads int) (backend.Backend, error) {
	return NewCPUBackendRounding(threads, "bf16 convolutions emulated",
		func(ConvPass, geom.ConvGeom) Rounding { return RoundBF16 })
}

// NewCPUBackendRounding is NewCPUBackend rounding the operands of each
// convolution pass as round says for it (see Rounding): the reference of
// train compare for a GPU computing in TF32 or BF16, round following the
// device's choice of kernel pass by pass. what names the policy in Name.
func NewCPUBackendRounding(threads int, what string, round func(p ConvPass, g geom.ConvGeom) Rounding) (backend.Backend, error) {
	be, err := NewCPUBackend(threads)
	if err != nil {
		return nil, err
	}
	cb := be.(*cpuBackend)
	cb.round, cb.roundName = round, what
	return be, nil
}

func (be *cpuBackend) Name() string {
	if be.round != nil {
		return fmt.Sprintf("cpu (%d threads, %s)", be.threads, be.roundName)
	}
	return fmt.Sprintf("cpu (%d threads)", be.threads)
}

// rounding returns the rounding of pass p of g: RoundNone without a
// policy.
func (be *cpuBackend) rounding(p ConvPass, g geom.ConvGeom) Rounding {
	if be.round == nil {
		return RoundNone
	}
	return be.round(p, g)
}

// roundOperands returns a and b rounded as r says in the backend's
// scratch (grown as needed, so a step allocates nothing after the first),
// or a and b themselves for RoundNone.
func (be *cpuBackend) roundOperands(r Rounding, a, b []float32) ([]float32, []float32) {
	if r == RoundNone {
		return a, b
	}
	if len(be.rA) < len(a) {
		be.rA = make([]float32, len(a))
	}
	if len(be.rB) < len(b) {
		be.rB = make([]float32, len(b))
	}
	ra, rb := be.rA[:len(a)], be.rB[:len(b)]
	op := opRoundBF16
	if r == RoundTF32 {
		op = opRoundTF32
	}
	// No error: the lengths are equal.
	be.par.x, be.par.y = a, ra
	_ = be.par.run(op, len(a), len(a))
	be.par.x, be.par.y = b, rb
	_ = be.par.run(op, len(b), len(b))
	be.par.x, be.par.y = nil, nil
	return ra, rb
}

func (be *cpuBackend) NewTensor(n int) (backend.Tensor, error) {
	if err := be.checkNew(n); err != nil {
		return nil, err
	}
	return &cpuTensor{be: be, f: make([]float32, n), n: n}, nil
}

func (be *cpuBackend) NewIndexTensor(n int) (backend.Tensor, error) {
	if err := be.checkNew(n); err != nil {
		return nil, err
	}
	return &cpuTensor{be: be, i: make([]int32, n), n: n}, nil
}

func (be *cpuBackend) NewByteTensor(n int) (backend.Tensor, error) {
	if err := be.checkNew(n); err != nil {
		return nil, err
	}
	return &cpuTensor{be: be, b: make([]uint8, n), n: n}, nil
}

// NewBF16Tensor is a float32 tensor marked as holding bfloat16 values:
// the CPU stores them as float32 (the GPU backend in 2 bytes), so that
// the operations taking one (f32x) see the same values on both.
func (be *cpuBackend) NewBF16Tensor(n int) (backend.Tensor, error) {
	if err := be.checkNew(n); err != nil {
		return nil, err
	}
	return &cpuTensor{be: be, f: make([]float32, n), n: n, bf16: true}, nil
}

func (be *cpuBackend) checkNew(n int) error {
	if be.closed {
		return fmt.Errorf("host: cpu backend is closed: %w", backend.ErrTensor)
	}
	if n < 1 || n > backend.MaxTensorElems {
		return fmt.Errorf("host: tensor of %d elements (want 1 to %d): %w", n, backend.MaxTensorElems, backend.ErrTensor)
	}
	return nil
}

// f32 returns t's float32 storage, checking that it is a live float32
// tensor of this backend (ErrTensor) with want elements (want < 0: any
// length; another length is an error wrapping geom.ErrGeometry).
func (be *cpuBackend) f32(name string, t backend.Tensor, want int) ([]float32, error) {
	ct, err := be.tensor(name, t)
	if err != nil {
		return nil, err
	}
	if ct.f == nil || ct.bf16 {
		return nil, fmt.Errorf("host: %s is %s tensor, want float32: %w", name, ct.kind(), backend.ErrTensor)
	}
	if want >= 0 && ct.n != want {
		return nil, fmt.Errorf("host: %s has %d elements, want %d: %w", name, ct.n, want, geom.ErrGeometry)
	}
	return ct.f, nil
}

// f32x is f32 for an argument that may be a bfloat16 tensor as well (a
// batch norm's x, Download's src, a BF16 conv's y), and whether it is
// one.
func (be *cpuBackend) f32x(name string, t backend.Tensor, want int) ([]float32, bool, error) {
	if ct, ok := t.(*cpuTensor); ok && ct != nil && ct.bf16 {
		if _, err := be.tensor(name, t); err != nil {
			return nil, false, err
		}
		if want >= 0 && ct.n != want {
			return nil, false, fmt.Errorf("host: %s has %d elements, want %d: %w", name, ct.n, want, geom.ErrGeometry)
		}
		return ct.f, true, nil
	}
	f, err := be.f32(name, t, want)
	return f, false, err
}

// optF32 is f32 for an optional argument of any length: nil gives nil
// (cpuref's "absent").
func (be *cpuBackend) optF32(name string, t backend.Tensor) ([]float32, error) {
	if t == nil {
		return nil, nil
	}
	return be.f32(name, t, -1)
}

// i32 is f32 for index tensors.
func (be *cpuBackend) i32(name string, t backend.Tensor, want int) ([]int32, error) {
	ct, err := be.tensor(name, t)
	if err != nil {
		return nil, err
	}
	if ct.i == nil {
		return nil, fmt.Errorf("host: %s is %s tensor, want int32: %w", name, ct.kind(), backend.ErrTensor)
	}
	if want >= 0 && ct.n != want {
		return nil, fmt.Errorf("host: %s has %d elements, want %d: %w", name, ct.n, want, geom.ErrGeometry)
	}
	return ct.i, nil
}

// kind names t's element type with its article, for errors.
func (t *cpuTensor) kind() string {
	switch {
	case t.i != nil:
		return "an index"
	case t.b != nil:
		return "a byte"
	case t.bf16:
		return "a bfloat16"
	}
	return "a float32"
}

// u8 is f32 for byte tensors.
func (be *cpuBackend) u8(name string, t backend.Tensor, want int) ([]uint8, error) {
	ct, err := be.tensor(name, t)
	if err != nil {
		return nil, err
	}
	if ct.b == nil {
		return nil, fmt.Errorf("host: %s is %s tensor, want uint8: %w", name, ct.kind(), backend.ErrTensor)
	}
	if want >= 0 && ct.n != want {
		return nil, fmt.Errorf("host: %s has %d elements, want %d: %w", name, ct.n, want, geom.ErrGeometry)
	}
	return ct.b, nil
}

func (be *cpuBackend) tensor(name string, t backend.Tensor) (*cpuTensor, error) {
	ct, ok := t.(*cpuTensor)
	switch {
	case be.closed:
		return nil, fmt.Errorf("host: cpu backend is closed: %w", backend.ErrTensor)
	case t == nil || !ok || ct == nil:
		return nil, fmt.Errorf("host: %s is not a cpu tensor (%T): %w", name, t, backend.ErrTensor)
	case ct.be != be:
		return nil, fmt.Errorf("host: %s belongs to another backend: %w", name, backend.ErrTensor)
	case ct.freed:
		return nil, fmt.Errorf("host: %s was freed: %w", name, backend.ErrTensor)
	case ct.parent != nil && ct.parent.freed:
		return nil, fmt.Errorf("host: %s views a tensor that was freed: %w", name, backend.ErrTensor)
	}
	return ct, nil
}

// i32Out is i32 for an index tensor about to be written: not a view.
func (be *cpuBackend) i32Out(name string, t backend.Tensor, want int) ([]int32, error) {
	ix, err := be.i32(name, t, want)
	if err == nil && t.(*cpuTensor).parent != nil {
		return nil, fmt.Errorf("host: %s is a view (read-only): %w", name, backend.ErrTensor)
	}
	return ix, err
}

func (be *cpuBackend) IndexView(idx backend.Tensor, off, n int) (backend.Tensor, error) {
	ix, err := be.i32("idx", idx, -1)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 1 || off > len(ix)-n {
		return nil, fmt.Errorf("host: index view [%d, %d+%d) of %d elements: %w", off, off, n, len(ix), backend.ErrTensor)
	}
	root := idx.(*cpuTensor)
	if root.parent != nil {
		root = root.parent
	}
	return &cpuTensor{be: be, i: ix[off : off+n : off+n], n: n, parent: root}, nil
}

func (be *cpuBackend) Upload(dst backend.Tensor, src []float32) error {
	d, err := be.f32("dst", dst, -1)
	if err != nil {
		return err
	}
	if err := backend.CheckCopy("upload", len(d), len(src)); err != nil {
		return err
	}
	copy(d, src)
	return nil
}

func (be *cpuBackend) UploadIndex(dst backend.Tensor, src []int32) error {
	d, err := be.i32Out("dst", dst, -1)
	if err != nil {
		return err
	}
	if err := backend.CheckCopy("upload index", len(d), len(src)); err != nil {
		return err
	}
	copy(d, src)
	return nil
}

func (be *cpuBackend) UploadBytes(dst backend.Tensor, src []uint8) error {
	d, err := be.u8("dst", dst, -1)
	if err != nil {
		return err
	}
	if err := backend.CheckCopy("upload bytes", len(d), len(src)); err != nil {
		return err
	}
	copy(d, src)
	return nil
}

func (be *cpuBackend) Download(dst []float32, src backend.Tensor) error {
	s, _, err := be.f32x("src", src, -1)
	if err != nil {
		return err
	}
	if err := backend.CheckCopy("download", len(s), len(dst)); err != nil {
		return err
	}
	copy(dst, s)
	return nil
}

func (be *cpuBackend) Fill(t backend.Tensor, v float32) error {
	d, err := be.f32("t", t, -1)
	if err != nil {
		return err
	}
	for i := range d {
		d[i] = v
	}
	return nil
}

func (be *cpuBackend) Free(t backend.Tensor) error {
	ct, err := be.tensor("t", t)
	if err != nil {
		return err
	}
	if ct.parent != nil {
		return fmt.Errorf("host: free of a view (free the tensor it views): %w", backend.ErrTensor)
	}
	ct.f, ct.i, ct.b, ct.freed = nil, nil, nil, true
	return nil
}

// conv returns the cached cpuref.Conv2D of g, creating it on first use
// (cpuref.NewConv2D checks g).
func (be *cpuBackend) conv(op string, g geom.ConvGeom) (*cpuref.Conv2D, error) {
	if c, ok := be.convs[g]; ok {
		return c, nil
	}
	c, err := cpuref.NewConv2D(g)
	if err != nil {
		return nil, wrap(op, err)
	}
	be.convs[g] = c
	return c, nil
}

// Fusions: batch norm with its ReLU is one pass (cpuref.BatchNorm32
// applies the ReLU as it writes y), and so is its backward pass through
// that ReLU (BatchNorm32.BackwardReLU masks dy as it reads it); a
// residual add with the ReLU after it is one pass (AddReLUForward). A
// convolution's ReLU epilogue is a second pass over its output, so it is
// not advertised: the model gains more by pooling before the ReLU.
func (be *cpuBackend) Fusions() backend.Fusions {
	return backend.Fusions{BatchNormReLU: true, AddReLU: true, BatchNormBackwardReLU: true}
}

// The convolutions, dense layers, losses and optimiser steps hand their
// tensors' storage to cpuref, which checks every size and length before
// any work: here only the tensor handles are checked (live float32 tensors
// of this backend; nil where an argument is optional).

// Conv2DForward is cpuref's convolution, then, with EpilogueReLU, the ReLU
// pass in place on y.
func (be *cpuBackend) Conv2DForward(g geom.ConvGeom, x, w, b, y backend.Tensor, ep backend.Epilogue) error {
	op := "conv forward"
	switch ep {
	case backend.NoEpilogue:
	case backend.EpilogueReLU:
		op = "conv+relu forward"
	default:
		return fmt.Errorf("host: conv forward: unknown epilogue %v: %w", ep, geom.ErrGeometry)
	}
	xs, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	ws, err := be.f32("w", w, -1)
	if err != nil {
		return err
	}
	bs, err := be.optF32("b", b)
	if err != nil {
		return err
	}
	ys, bf16, err := be.f32x("y", y, -1)
	if err != nil {
		return err
	}
	if bf16 && !be.ConvOutputBF16(g) {
		return fmt.Errorf("host: %s: y is a bfloat16 tensor, which only a BF16 convolution writes (ConvOutputBF16 is false for %v): %w", op, g, backend.ErrTensor)
	}
	c, err := be.conv(op, g)
	if err != nil {
		return err
	}
	xs, ws = be.roundOperands(be.rounding(ConvForward, g), xs, ws)
	err = c.Forward(xs, ws, bs, ys)
	if err == nil && ep == backend.EpilogueReLU {
		err = be.relu(ys, ys)
	}
	if err == nil && bf16 {
		cpuref.RoundBF16Slice(ys, ys) // stored as bfloat16
	}
	return wrap(op, err)
}

// ConvOutputBF16 is true where the backend rounds g's forward pass to
// BF16 (NewCPUBackendBF16, or NewCPUBackendRounding following a device
// that runs the pass on BF16 tensor cores): Conv2DForward then stores a
// bfloat16 y's values rounded, as the GPU backend does.
func (be *cpuBackend) ConvOutputBF16(g geom.ConvGeom) bool {
	return g.Validate() == nil && be.rounding(ConvForward, g) == RoundBF16
}

// Conv2DBackward is Conv2DBackwardFilter then Conv2DBackwardData (when dx
// is not nil): nothing to share or keep on the CPU.
func (be *cpuBackend) Conv2DBackward(g geom.ConvGeom, x, dy, w, dw, db, dx, _ backend.Tensor) error {
	if err := be.Conv2DBackwardFilter(g, x, dy, dw, db); err != nil || dx == nil {
		return err
	}
	return be.Conv2DBackwardData(g, dy, w, dx)
}

// ConvKeepLen is 0: the CPU keeps nothing from the forward pass.
func (be *cpuBackend) ConvKeepLen(geom.ConvGeom) int { return 0 }

// ConvXCopyLen is 0: the CPU's convolutions read x as it is.
func (be *cpuBackend) ConvXCopyLen(geom.ConvGeom) int { return 0 }

// Conv2DForwardKeep is Conv2DForward.
func (be *cpuBackend) Conv2DForwardKeep(g geom.ConvGeom, x, w, b, y backend.Tensor, ep backend.Epilogue, _ backend.Tensor) error {
	return be.Conv2DForward(g, x, w, b, y, ep)
}

func (be *cpuBackend) Conv2DBackwardData(g geom.ConvGeom, dy, w, dx backend.Tensor) error {
	const op = "conv backward data"
	dys, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	ws, err := be.f32("w", w, -1)
	if err != nil {
		return err
	}
	dxs, bf16, err := be.f32x("dx", dx, -1)
	if err != nil {
		return err
	}
	if bf16 && !be.ConvInputGradBF16(g) {
		return fmt.Errorf("host: %s: dx is a bfloat16 tensor, which only a BF16 backward-data pass writes (ConvInputGradBF16 is false for %v): %w", op, g, backend.ErrTensor)
	}
	c, err := be.conv(op, g)
	if err != nil {
		return err
	}
	dys, ws = be.roundOperands(be.rounding(ConvBackwardData, g), dys, ws)
	err = c.BackwardData(dys, ws, dxs)
	if err == nil && bf16 {
		cpuref.RoundBF16Slice(dxs, dxs) // stored as bfloat16
	}
	return wrap(op, err)
}

// ConvInputGradBF16 is true where the backend rounds g's backward-data
// pass to BF16 (NewCPUBackendBF16, or NewCPUBackendRounding following a
// device that runs the pass on BF16 tensor cores): Conv2DBackwardData
// then stores a bfloat16 dx's values rounded, as the GPU backend does.
func (be *cpuBackend) ConvInputGradBF16(g geom.ConvGeom) bool {
	return g.Validate() == nil && be.rounding(ConvBackwardData, g) == RoundBF16
}

func (be *cpuBackend) Conv2DBackwardFilter(g geom.ConvGeom, x, dy, dw, db backend.Tensor) error {
	const op = "conv backward filter"
	xs, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	dys, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	dws, err := be.f32("dw", dw, -1)
	if err != nil {
		return err
	}
	dbs, err := be.optF32("db", db)
	if err != nil {
		return err
	}
	c, err := be.conv(op, g)
	if err != nil {
		return err
	}
	if r := be.rounding(ConvBackwardFilter, g); r != RoundNone {
		// The bias gradient from dy unrounded, as the GPU computes it.
		if dbs != nil {
			if err := cpuref.Conv2DBackwardBias(g, dys, dbs); err != nil {
				return wrap(op, err)
			}
		}
		xs, dys = be.roundOperands(r, xs, dys)
		return wrap(op, c.BackwardFilter(xs, dys, dws, nil))
	}
	return wrap(op, c.BackwardFilter(xs, dys, dws, dbs))
}

// The ReLU and max-pool passes are this package's own, split over
// goroutines (cpu_parallel.go): they check the lengths and the pooling
// geometry themselves, before cutting the tensors into chunks.

func (be *cpuBackend) ReLUForward(x, y backend.Tensor) error {
	xs, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	ys, err := be.f32("y", y, len(xs))
	if err != nil {
		return wrap("relu forward", err)
	}
	return wrap("relu forward", be.relu(xs, ys))
}

// relu runs the ReLU pass over x into y, of equal lengths.
func (be *cpuBackend) relu(xs, ys []float32) error {
	p := &be.par
	p.x, p.y = xs, ys
	err := p.run(opReLUForward, len(xs), len(xs))
	p.x, p.y = nil, nil
	return err
}

func (be *cpuBackend) ReLUBackward(x, dy, dx backend.Tensor) error {
	xs, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	dys, _, err := be.f32x("dy", dy, len(xs)) // a BF16 conv's input gradient may be bfloat16 (ConvInputGradBF16)
	if err != nil {
		return wrap("relu backward", err)
	}
	dxs, err := be.f32("dx", dx, len(xs))
	if err != nil {
		return wrap("relu backward", err)
	}
	p := &be.par
	p.x, p.dy, p.dx = xs, dys, dxs
	err = p.run(opReLUBackward, len(xs), len(xs))
	p.x, p.dy, p.dx = nil, nil, nil
	return wrap("relu backward", err)
}

func (be *cpuBackend) MaxPoolForward(g geom.PoolGeom, x, y, argmax backend.Tensor) error {
	if err := g.Validate(); err != nil {
		return wrap("max-pool forward", err)
	}
	xs, err := be.f32("x", x, g.XLen())
	if err != nil {
		return wrap("max-pool forward", err)
	}
	ys, err := be.f32("y", y, g.YLen())
	if err != nil {
		return wrap("max-pool forward", err)
	}
	am, err := be.i32Out("argmax", argmax, g.YLen())
	if err != nil {
		return wrap("max-pool forward", err)
	}
	p := &be.par
	p.pg, p.x, p.y, p.am = g, xs, ys, am
	err = p.run(opPoolForward, g.N, g.YLen())
	p.x, p.y, p.am = nil, nil, nil
	return wrap("max-pool forward", err)
}

// DenseBackwardPoolReLU runs DenseBackward into a temporary dx, then
// MaxPoolBackwardReLU (the model's plan asks it only where a conv runs the
// ReLU, which the CPU backend does not fuse).
func (be *cpuBackend) DenseBackwardPoolReLU(g geom.PoolGeom, out int, x, w, dy, dw, db, argmax, xr, dxr backend.Tensor) error {
	in := g.C * g.P() * g.Q()
	if dxr == nil {
		return be.DenseBackward(g.N, in, out, x, w, dy, nil, dw, db)
	}
	dx, err := be.NewTensor(g.N * in)
	if err != nil {
		return err
	}
	err = be.DenseBackward(g.N, in, out, x, w, dy, dx, dw, db)
	if err == nil {
		err = be.MaxPoolBackwardReLU(g, dx, argmax, xr, dxr)
	}
	return errors.Join(err, be.Free(dx))
}

// MaxPoolDenseSoftmax runs MaxPoolDenseForward, then
// SoftmaxCrossEntropyMetrics.
func (be *cpuBackend) MaxPoolDenseSoftmax(g geom.PoolGeom, x, y, argmax backend.Tensor, classes int, w, b, logits, labels, loss, dlogits, lossSum, correct backend.Tensor) error {
	if err := be.MaxPoolDenseForward(g, x, y, argmax, classes, w, b, logits); err != nil {
		return err
	}
	return be.SoftmaxCrossEntropyMetrics(g.N, classes, logits, labels, loss, dlogits, lossSum, correct)
}

// MaxPoolDenseForward runs MaxPoolForward, then DenseForward.
func (be *cpuBackend) MaxPoolDenseForward(g geom.PoolGeom, x, y, argmax backend.Tensor, out int, w, b, z backend.Tensor) error {
	if err := be.MaxPoolForward(g, x, y, argmax); err != nil {
		return err
	}
	return be.DenseForward(g.N, g.C*g.P()*g.Q(), out, y, w, b, z)
}

// MaxPoolBackwardReLU runs MaxPoolBackward, then ReLUBackward masking dx
// in place with x.
func (be *cpuBackend) MaxPoolBackwardReLU(g geom.PoolGeom, dy, argmax, x, dx backend.Tensor) error {
	if _, err := be.f32("x", x, g.XLen()); err != nil {
		return err
	}
	if err := be.MaxPoolBackward(g, dy, argmax, dx); err != nil {
		return err
	}
	return be.ReLUBackward(x, dx, dx)
}

func (be *cpuBackend) MaxPoolBackward(g geom.PoolGeom, dy, argmax, dx backend.Tensor) error {
	if err := g.Validate(); err != nil {
		return wrap("max-pool backward", err)
	}
	dys, err := be.f32("dy", dy, g.YLen())
	if err != nil {
		return wrap("max-pool backward", err)
	}
	am, err := be.i32("argmax", argmax, g.YLen())
	if err != nil {
		return wrap("max-pool backward", err)
	}
	dxs, err := be.f32("dx", dx, g.XLen())
	if err != nil {
		return wrap("max-pool backward", err)
	}
	p := &be.par
	p.pg, p.dy, p.am, p.dx = g, dys, am, dxs
	err = p.run(opPoolCheck, g.N, g.YLen())
	if err == nil {
		err = p.run(opPoolBackward, g.N, g.YLen())
	}
	p.dy, p.am, p.dx = nil, nil, nil
	return err
}

func (be *cpuBackend) DenseForward(n, in, out int, x, w, b, y backend.Tensor) error {
	xs, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	ws, err := be.f32("w", w, -1)
	if err != nil {
		return err
	}
	bs, err := be.optF32("b", b)
	if err != nil {
		return err
	}
	ys, err := be.f32("y", y, -1)
	if err != nil {
		return err
	}
	return wrap("dense forward", cpuref.DenseForward(n, in, out, xs, ws, bs, ys))
}

func (be *cpuBackend) DenseBackward(n, in, out int, x, w, dy, dx, dw, db backend.Tensor) error {
	xs, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	ws, err := be.f32("w", w, -1)
	if err != nil {
		return err
	}
	dys, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	dxs, err := be.optF32("dx", dx)
	if err != nil {
		return err
	}
	dws, err := be.f32("dw", dw, -1)
	if err != nil {
		return err
	}
	dbs, err := be.optF32("db", db)
	if err != nil {
		return err
	}
	return wrap("dense backward", cpuref.DenseBackward(n, in, out, xs, ws, dys, dxs, dws, dbs))
}

// SoftmaxCrossEntropy: loss is this method's own output (cpuref returns
// the value), so its length is checked here.
func (be *cpuBackend) SoftmaxCrossEntropy(n, classes int, logits, labels, loss, dlogits backend.Tensor) error {
	ls, err := be.f32("logits", logits, -1)
	if err != nil {
		return err
	}
	lab, err := be.i32("labels", labels, -1)
	if err != nil {
		return err
	}
	l, err := be.f32("loss", loss, 1)
	if err != nil {
		return wrap("softmax cross-entropy", err)
	}
	dl, err := be.f32("dlogits", dlogits, -1)
	if err != nil {
		return err
	}
	v, err := cpuref.SoftmaxCrossEntropy(n, classes, ls, lab, dl)
	if err != nil {
		return wrap("softmax cross-entropy", err)
	}
	l[0] = v
	return nil
}

// MSE: loss is checked here, as in SoftmaxCrossEntropy.
func (be *cpuBackend) MSE(n, dim int, y, t, loss, dy backend.Tensor) error {
	ys, err := be.f32("y", y, -1)
	if err != nil {
		return err
	}
	ts, err := be.f32("t", t, -1)
	if err != nil {
		return err
	}
	l, err := be.f32("loss", loss, 1)
	if err != nil {
		return wrap("mse", err)
	}
	dys, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	v, err := cpuref.MSE(n, dim, ys, ts, dys)
	if err != nil {
		return wrap("mse", err)
	}
	l[0] = v
	return nil
}

// SoftmaxCrossEntropyMetrics runs SoftmaxCrossEntropy, Accumulate and
// CountCorrect in turn.
func (be *cpuBackend) SoftmaxCrossEntropyMetrics(n, classes int, logits, labels, loss, dlogits, lossSum, correct backend.Tensor) error {
	if err := be.SoftmaxCrossEntropy(n, classes, logits, labels, loss, dlogits); err != nil {
		return err
	}
	if err := be.Accumulate(lossSum, loss); err != nil {
		return err
	}
	return be.CountCorrect(n, classes, logits, labels, correct)
}

// CountCorrect, Accumulate and Gather are this package's own loops, which
// check their sizes themselves.
func (be *cpuBackend) CountCorrect(n, classes int, logits, labels, acc backend.Tensor) error {
	if n < 1 || classes < 1 || n > backend.MaxTensorElems/classes {
		return fmt.Errorf("host: count correct: N=%d, classes=%d: %w", n, classes, geom.ErrGeometry)
	}
	ls, err := be.f32("logits", logits, n*classes)
	if err != nil {
		return wrap("count correct", err)
	}
	lab, err := be.i32("labels", labels, n)
	if err != nil {
		return wrap("count correct", err)
	}
	a, err := be.f32("acc", acc, 1)
	if err != nil {
		return wrap("count correct", err)
	}
	correct := 0
	for i := range n {
		row := ls[i*classes : (i+1)*classes]
		best := 0
		for j := 1; j < classes; j++ {
			if row[j] > row[best] {
				best = j
			}
		}
		if int32(best) == lab[i] {
			correct++
		}
	}
	a[0] += float32(correct)
	return nil
}

func (be *cpuBackend) Accumulate(dst, src backend.Tensor) error {
	d, err := be.f32("dst", dst, -1)
	if err != nil {
		return wrap("accumulate", err)
	}
	s, err := be.f32("src", src, len(d))
	if err != nil {
		return wrap("accumulate", err)
	}
	// d[i] = s[i] + d[i], the operands in the order Go compiles d[i] += s[i]
	// (which NaN is kept where both are NaN).
	return wrap("accumulate", be.add(s, d, d))
}

func (be *cpuBackend) SGDStep(p, grad, vel backend.Tensor, lr, momentum, weightDecay float32) error {
	ps, err := be.f32("p", p, -1)
	if err != nil {
		return err
	}
	gs, err := be.f32("grad", grad, -1)
	if err != nil {
		return err
	}
	vs, err := be.f32("vel", vel, -1)
	if err != nil {
		return err
	}
	return wrap("sgd step", cpuref.SGDStep(ps, gs, vs, lr, momentum, weightDecay))
}

func (be *cpuBackend) SGDNesterovStep(p, grad, vel backend.Tensor, lr, momentum, weightDecay float32) error {
	ps, err := be.f32("p", p, -1)
	if err != nil {
		return err
	}
	gs, err := be.f32("grad", grad, -1)
	if err != nil {
		return err
	}
	vs, err := be.f32("vel", vel, -1)
	if err != nil {
		return err
	}
	return wrap("sgd nesterov step", cpuref.SGDNesterovStep(ps, gs, vs, lr, momentum, weightDecay))
}

func (be *cpuBackend) AdamStep(p, grad, m, v backend.Tensor, lr, beta1, beta2, eps, weightDecay float32, step int, decoupled bool) error {
	ps, err := be.f32("p", p, -1)
	if err != nil {
		return err
	}
	gs, err := be.f32("grad", grad, -1)
	if err != nil {
		return err
	}
	ms, err := be.f32("m", m, -1)
	if err != nil {
		return err
	}
	vs, err := be.f32("v", v, -1)
	if err != nil {
		return err
	}
	return wrap("adam step", cpuref.AdamStep(ps, gs, ms, vs, lr, beta1, beta2, eps, weightDecay, step, decoupled))
}

func (be *cpuBackend) Gather(rowLen int, src, idx, dst backend.Tensor) error {
	ix, err := be.i32("idx", idx, -1)
	if err != nil {
		return err
	}
	if rowLen < 1 || len(ix) > backend.MaxTensorElems/rowLen {
		return fmt.Errorf("host: gather: row length %d for %d rows: %w", rowLen, len(ix), geom.ErrGeometry)
	}
	s, err := be.tensor("src", src)
	if err != nil {
		return err
	}
	d, err := be.tensor("dst", dst)
	if err != nil {
		return err
	}
	if s.b != nil || d.b != nil {
		return fmt.Errorf("host: gather: a byte tensor (GatherImages reads them): %w", backend.ErrTensor)
	}
	if (s.f == nil) != (d.f == nil) {
		return fmt.Errorf("host: gather: src and dst have different element types: %w", backend.ErrTensor)
	}
	if d.parent != nil {
		return fmt.Errorf("host: gather: dst is a view (read-only): %w", backend.ErrTensor)
	}
	if d.n != len(ix)*rowLen {
		return fmt.Errorf("host: gather: dst has %d elements, want %d rows of %d: %w", d.n, len(ix), rowLen, backend.ErrTensor)
	}
	if s.n%rowLen != 0 {
		return fmt.Errorf("host: gather: src has %d elements, not a multiple of the row length %d: %w", s.n, rowLen, backend.ErrTensor)
	}
	rows := s.n / rowLen
	for i, r := range ix {
		if r < 0 || int(r) >= rows {
			return fmt.Errorf("host: gather: idx[%d] = %d is outside [0, %d): %w", i, r, rows, backend.ErrTensor)
		}
	}
	for i, r := range ix {
		if s.f != nil {
			copy(d.f[i*rowLen:(i+1)*rowLen], s.f[int(r)*rowLen:])
		} else {
			copy(d.i[i*rowLen:(i+1)*rowLen], s.i[int(r)*rowLen:])
		}
	}
	return nil
}

// Sync returns nil: every CPU operation completes before it returns.
func (be *cpuBackend) Sync() error { return nil }

func (be *cpuBackend) Close() error {
	be.closed = true
	be.convs = nil
	return nil
}

// wrap prefixes a cpuref error with the operation's name.
func wrap(op string, err error) error {
	if err != nil {
		return fmt.Errorf("host: %s: %w", op, err)
	}
	return nil
}
