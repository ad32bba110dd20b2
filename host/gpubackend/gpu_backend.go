package gpubackend

import (
	"errors"
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
)

// gpuTensor is the GPU backend's Tensor: a device buffer of float32,
// int32 (index) or uint8 (bytes). For an index tensor the backend also records the range [lo, hi]
// that every value lies in, known on the host from how the tensor was
// filled (UploadIndex scans the values it copies; a max-pool argmax indexes
// its input; a gather copies values of its source); Gather and
// SoftmaxCrossEntropy check indices and labels against it before any
// launch, since a kernel cannot return an error.
type gpuTensor struct {
	be     *gpuBackend
	buf    *gpu.Buffer
	n      int
	index  bool
	bytes  bool
	bf16   bool // bfloat16 values (NewBF16Tensor): only f32x takes it
	lo, hi int32
	freed  bool
	parent *gpuTensor // the tensor this one views (IndexView); nil for storage of its own
	// at is the per-step values tensor an IndexViewAt reads its offset
	// from (buf is then the whole of parent's); nil for other tensors.
	at *gpuTensor
	// maxOff, on a per-step values tensor, is the largest offset its
	// IndexViewAt views allow (SetStepVals checks it); -1 before any.
	maxOff int
	vals   bool // a per-step values tensor (NewStepVals)
}

// indexRange is the range [lo, hi] that every value of the index tensor t
// lies in: a view's are those of the tensor it views, whatever that holds
// now (a subset's values lie in the whole's range).
func (t *gpuTensor) indexRange() (lo, hi int32) {
	if t.parent != nil {
		return t.parent.lo, t.parent.hi
	}
	return t.lo, t.hi
}

// Len is the number of elements.
func (t *gpuTensor) Len() int { return t.n }

// gpuBackend implements Backend on a gpu.Device: every tensor is a device
// buffer for its whole life and nothing crosses to the host except through
// Upload, UploadIndex and Download. Its per-row loss scratch buffers are
// kept per batch size, so a training step allocates nothing in steady
// state.
type gpuBackend struct {
	dev  *gpu.Device
	live map[*gpuTensor]struct{}
	rows map[int]*gpu.Buffer // per-row loss scratch, by batch size
	// tickets are maxpool_dense_softmax_v1's scratch by batch size: 2N
	// words, then its blocks' ticket (0 between launches).
	tickets map[int]*gpu.Buffer
	params  paramTableCache // UpdateParams' device table (update.go)
	checks  checkTableCache // FirstNonFinite's device table (update.go)
	bl      []*gpu.Buffer   // bufs' result, reused so that a step allocates nothing
	closed  bool
}

// NewGPUBackend returns a Backend that runs every operation on dev (a real
// GPU from gpu.Open or the simulator from gpu.OpenSim). The backend does
// not own dev: Close frees the backend's tensors, the caller closes dev.
//
// Kernels cannot return errors, so everything is checked on the host
// before a launch: the sizes and lengths by package gpu's launchers, the
// tensor handles by the backend, and gather indices, augmentation rows and
// class labels against the value range the backend recorded for each index
// tensor (see package backend's doc: who checks what). A label outside
// [0, classes) that got past the checks would make that row's loss and
// gradient NaN (softmax_ce_v1), hence a NaN mean loss.
// Launches are asynchronous on a real GPU: a fault inside a kernel is
// reported by the next Sync or Download.
func NewGPUBackend(dev *gpu.Device) (backend.Backend, error) {
	if dev == nil {
		return nil, errors.New("host: gpu backend: nil device")
	}
	return &gpuBackend{dev: dev, live: make(map[*gpuTensor]struct{}), rows: make(map[int]*gpu.Buffer),
		tickets: make(map[int]*gpu.Buffer)}, nil
}

func (be *gpuBackend) Name() string {
	if be.dev.IsSim() {
		return fmt.Sprintf("sim (ptxsim, %d workers)", be.dev.Info().SMs)
	}
	return fmt.Sprintf("gpu (%v)", be.dev)
}

func (be *gpuBackend) NewTensor(n int) (backend.Tensor, error) {
	if err := be.checkNew(n); err != nil {
		return nil, err
	}
	b, err := be.dev.NewFloat32(n)
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	t := &gpuTensor{be: be, buf: b, n: n}
	be.live[t] = struct{}{}
	return t, nil
}

func (be *gpuBackend) NewIndexTensor(n int) (backend.Tensor, error) {
	if err := be.checkNew(n); err != nil {
		return nil, err
	}
	b, err := be.dev.NewInt32(n)
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	t := &gpuTensor{be: be, buf: b, n: n, index: true} // zeros: lo = hi = 0
	be.live[t] = struct{}{}
	return t, nil
}

// NewByteTensor allocates a uint8 device buffer: n bytes (rounded up to
// the allocator's 256), a quarter of a float32 tensor's.
func (be *gpuBackend) NewByteTensor(n int) (backend.Tensor, error) {
	if err := be.checkNew(n); err != nil {
		return nil, err
	}
	b, err := be.dev.NewUint8(n)
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	t := &gpuTensor{be: be, buf: b, n: n, bytes: true}
	be.live[t] = struct{}{}
	return t, nil
}

// NewBF16Tensor allocates a bfloat16 device buffer (gpu.NewBFloat16):
// 2 bytes an element, half a float32 tensor's memory.
func (be *gpuBackend) NewBF16Tensor(n int) (backend.Tensor, error) {
	if err := be.checkNew(n); err != nil {
		return nil, err
	}
	b, err := be.dev.NewBFloat16(n)
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	t := &gpuTensor{be: be, buf: b, n: n, bf16: true}
	be.live[t] = struct{}{}
	return t, nil
}

// kind names t's element type with its article, for errors.
func (t *gpuTensor) kind() string {
	switch {
	case t.bf16:
		return "a bfloat16"
	case t.index:
		return "an index"
	case t.bytes:
		return "a byte"
	}
	return "a float32"
}

// u8 is f32 for byte tensors.
func (be *gpuBackend) u8(name string, t backend.Tensor, want int) (*gpu.Buffer, error) {
	gt, err := be.tensor(name, t)
	if err != nil {
		return nil, err
	}
	if !gt.bytes {
		return nil, fmt.Errorf("host: %s is %s tensor, want uint8: %w", name, gt.kind(), backend.ErrTensor)
	}
	if want >= 0 && gt.n != want {
		return nil, fmt.Errorf("host: %s has %d elements, want %d: %w", name, gt.n, want, geom.ErrGeometry)
	}
	return gt.buf, nil
}

func (be *gpuBackend) checkNew(n int) error {
	if be.closed {
		return fmt.Errorf("host: gpu backend is closed: %w", backend.ErrTensor)
	}
	if n < 1 || n > backend.MaxTensorElems {
		return fmt.Errorf("host: tensor of %d elements (want 1 to %d): %w", n, backend.MaxTensorElems, backend.ErrTensor)
	}
	return nil
}

func (be *gpuBackend) tensor(name string, t backend.Tensor) (*gpuTensor, error) {
	gt, ok := t.(*gpuTensor)
	switch {
	case be.closed:
		return nil, fmt.Errorf("host: gpu backend is closed: %w", backend.ErrTensor)
	case t == nil || !ok || gt == nil:
		return nil, fmt.Errorf("host: %s is not a gpu tensor (%T): %w", name, t, backend.ErrTensor)
	case gt.be != be:
		return nil, fmt.Errorf("host: %s belongs to another backend: %w", name, backend.ErrTensor)
	case gt.freed:
		return nil, fmt.Errorf("host: %s was freed: %w", name, backend.ErrTensor)
	case gt.parent != nil && gt.parent.freed:
		return nil, fmt.Errorf("host: %s views a tensor that was freed: %w", name, backend.ErrTensor)
	}
	return gt, nil
}

// i32Out is i32 for an index tensor about to be written, whose recorded
// range the write sets: not a view.
func (be *gpuBackend) i32Out(name string, t backend.Tensor, want int) (*gpuTensor, error) {
	gt, err := be.i32(name, t, want)
	if err == nil && gt.parent != nil {
		return nil, fmt.Errorf("host: %s is a view (read-only): %w", name, backend.ErrTensor)
	}
	return gt, err
}

// IndexView returns a view through gpu.Buffer.Slice, which checks the
// range; it is not in be.live, which holds the tensors that own their
// storage.
func (be *gpuBackend) IndexView(idx backend.Tensor, off, n int) (backend.Tensor, error) {
	ix, err := be.i32("idx", idx, -1)
	if err != nil {
		return nil, err
	}
	root := ix
	if root.parent != nil {
		root = root.parent
	}
	b, err := ix.buf.Slice(off, n)
	if err != nil {
		return nil, fmt.Errorf("host: index view: %w: %w", backend.ErrTensor, err)
	}
	return &gpuTensor{be: be, buf: b, n: n, index: true, parent: root}, nil
}

// f32 returns t's buffer, checking that it is a live float32 tensor of this
// backend (ErrTensor) with want elements (want < 0: any length; another
// length is an error wrapping geom.ErrGeometry).
func (be *gpuBackend) f32(name string, t backend.Tensor, want int) (*gpu.Buffer, error) {
	gt, err := be.tensor(name, t)
	if err != nil {
		return nil, err
	}
	if gt.index || gt.bytes || gt.bf16 {
		return nil, fmt.Errorf("host: %s is %s tensor, want float32: %w", name, gt.kind(), backend.ErrTensor)
	}
	if want >= 0 && gt.n != want {
		return nil, fmt.Errorf("host: %s has %d elements, want %d: %w", name, gt.n, want, geom.ErrGeometry)
	}
	return gt.buf, nil
}

// f32x is f32 for an argument that may be a bfloat16 tensor as well (a
// batch norm's x, Download's src, a BF16 conv's y): a gpu.BFloat16
// buffer then.
func (be *gpuBackend) f32x(name string, t backend.Tensor, want int) (*gpu.Buffer, error) {
	if gt, ok := t.(*gpuTensor); ok && gt != nil && gt.bf16 {
		if _, err := be.tensor(name, t); err != nil {
			return nil, err
		}
		if want >= 0 && gt.n != want {
			return nil, fmt.Errorf("host: %s has %d elements, want %d: %w", name, gt.n, want, geom.ErrGeometry)
		}
		return gt.buf, nil
	}
	return be.f32(name, t, want)
}

// optF32 is f32 for optional tensors: nil gives a nil buffer.
func (be *gpuBackend) optF32(name string, t backend.Tensor, want int) (*gpu.Buffer, error) {
	if t == nil {
		return nil, nil
	}
	return be.f32(name, t, want)
}

// i32 is f32 for index tensors.
func (be *gpuBackend) i32(name string, t backend.Tensor, want int) (*gpuTensor, error) {
	gt, err := be.tensor(name, t)
	if err != nil {
		return nil, err
	}
	if !gt.index {
		return nil, fmt.Errorf("host: %s is %s tensor, want int32: %w", name, gt.kind(), backend.ErrTensor)
	}
	if gt.at != nil {
		return nil, fmt.Errorf("host: %s is a view at a per-step offset (IndexViewAt), which only Gather reads: %w", name, backend.ErrTensor)
	}
	if want >= 0 && gt.n != want {
		return nil, fmt.Errorf("host: %s has %d elements, want %d: %w", name, gt.n, want, geom.ErrGeometry)
	}
	return gt, nil
}

func (be *gpuBackend) Upload(dst backend.Tensor, src []float32) error {
	d, err := be.f32("dst", dst, -1)
	if err != nil {
		return err
	}
	if err := backend.CheckCopy("upload", d.Len(), len(src)); err != nil {
		return err
	}
	return gpuWrap("upload", d.Upload(src))
}

func (be *gpuBackend) UploadIndex(dst backend.Tensor, src []int32) error {
	d, err := be.i32Out("dst", dst, -1)
	if err != nil {
		return err
	}
	if err := backend.CheckCopy("upload index", d.n, len(src)); err != nil {
		return err
	}
	lo, hi := src[0], src[0]
	for _, v := range src[1:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	if err := d.buf.UploadInt32(src); err != nil {
		return gpuWrap("upload index", err)
	}
	d.lo, d.hi = lo, hi
	return nil
}

func (be *gpuBackend) UploadBytes(dst backend.Tensor, src []uint8) error {
	d, err := be.u8("dst", dst, -1)
	if err != nil {
		return err
	}
	if err := backend.CheckCopy("upload bytes", d.Len(), len(src)); err != nil {
		return err
	}
	return gpuWrap("upload bytes", d.UploadUint8(src))
}

func (be *gpuBackend) Download(dst []float32, src backend.Tensor) error {
	s, err := be.f32x("src", src, -1)
	if err != nil {
		return err
	}
	if err := backend.CheckCopy("download", s.Len(), len(dst)); err != nil {
		return err
	}
	if s.DType() == gpu.BFloat16 {
		return gpuWrap("download", s.DownloadBF16(dst))
	}
	return gpuWrap("download", s.Download(dst))
}

func (be *gpuBackend) Fill(t backend.Tensor, v float32) error {
	d, err := be.f32("t", t, -1)
	if err != nil {
		return err
	}
	return gpuWrap("fill", be.dev.Fill(d, v))
}

func (be *gpuBackend) Free(t backend.Tensor) error {
	gt, err := be.tensor("t", t)
	if err != nil {
		return err
	}
	if gt.parent != nil {
		return fmt.Errorf("host: free of a view (free the tensor it views): %w", backend.ErrTensor)
	}
	gt.freed = true
	delete(be.live, gt)
	return gpuWrap("free", gt.buf.Free())
}

// The operations hand their tensors' buffers to package gpu, whose
// launchers check every size, geometry and buffer length before a launch
// (they must: nothing else keeps a kernel of package gpu's public API in
// bounds). Here only what gpu cannot know is checked: that each tensor is
// a live tensor of this backend of the right element type, that an index
// tensor written is not a view, the values of index tensors against their
// recorded range, and, where one operation is several launches, the
// arguments that only a later launch reads, before the first (so that a
// refused call does no work).

// Conv2DForward runs (*gpu.Device).Conv2DForward, or with EpilogueReLU
// (*gpu.Device).Conv2DForwardReLU: one launch, the bias and the ReLU in the
// epilogue of the implicit-GEMM kernel that the dispatcher picks; where it
// picks the direct kernel, conv2d_fwd_v1_direct then relu_fwd_v1 in place
// (two launches, the same values).
func (be *gpuBackend) Conv2DForward(g geom.ConvGeom, x, w, b, y backend.Tensor, ep backend.Epilogue) error {
	switch ep {
	case backend.NoEpilogue:
		return be.convForward("conv forward", be.dev.Conv2DForward, g, x, w, b, y)
	case backend.EpilogueReLU:
		return be.convForward("conv+relu forward", be.dev.Conv2DForwardReLU, g, x, w, b, y)
	}
	return fmt.Errorf("host: conv forward: unknown epilogue %v: %w", ep, geom.ErrGeometry)
}

// Fusions: a convolution or a batch normalisation with its ReLU is one
// launch; a convolution's two backward passes share one channels-last
// copy of dy where both kernels read it (Conv2DBackward), and at BF16 read
// the copy of x its forward pass kept (ConvKeepLen), made by the batch
// norm or the residual add+ReLU before it where there is one
// (BatchNormKeep, AddReLUKeep); a residual add and the ReLU after it are
// one launch (add_relu_v1); a batch norm's backward pass masks the
// gradient of the ReLU after it as it reads it (bn_bwd_relu_v1 and its
// packing forms: BatchNormBackwardReLU).
func (be *gpuBackend) Fusions() backend.Fusions {
	return backend.Fusions{ConvReLU: true, BatchNormReLU: true, ConvBackward: true, BatchNormKeep: true, AddReLU: true,
		AddReLUKeep: true, BatchNormBackwardReLU: true}
}

// convForward runs launch (a gpu.Device forward pass) on the buffers of
// the tensors.
func (be *gpuBackend) convForward(op string, launch func(g geom.ConvGeom, x, w, b, y *gpu.Buffer) error,
	g geom.ConvGeom, x, w, b, y backend.Tensor) error {
	xb, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	wb, err := be.f32("w", w, -1)
	if err != nil {
		return err
	}
	bb, err := be.optF32("b", b, -1)
	if err != nil {
		return err
	}
	yb, err := be.f32x("y", y, -1)
	if err != nil {
		return err
	}
	if yb.DType() == gpu.BFloat16 && !be.dev.ConvOutputBF16(g) {
		return fmt.Errorf("host: %s: y is a bfloat16 tensor, which only a BF16 convolution writes (ConvOutputBF16 is false for %v): %w", op, g, backend.ErrTensor)
	}
	return gpuWrap(op, launch(g, xb, wb, bb, yb))
}

// ConvOutputBF16 is gpu.Device.ConvOutputBF16: at BF16 where g's forward
// pass runs conv2d_fwd_v7_igemm_bf16, whose bfloat16 form
// (conv2d_fwd_v7_igemm_bf16y) then writes a bfloat16 y.
func (be *gpuBackend) ConvOutputBF16(g geom.ConvGeom) bool { return be.dev.ConvOutputBF16(g) }

func (be *gpuBackend) Conv2DBackwardData(g geom.ConvGeom, dy, w, dx backend.Tensor) error {
	dyb, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	wb, err := be.f32("w", w, -1)
	if err != nil {
		return err
	}
	dxb, err := be.f32x("dx", dx, -1)
	if err != nil {
		return err
	}
	if err := be.convDx("conv backward data", g, dxb); err != nil {
		return err
	}
	return gpuWrap("conv backward data", be.dev.Conv2DBackwardData(g, dyb, wb, dxb))
}

// convDx refuses a bfloat16 dx where g's backward-data pass does not
// store one (ConvInputGradBF16).
func (be *gpuBackend) convDx(op string, g geom.ConvGeom, dx *gpu.Buffer) error {
	if dx != nil && dx.DType() == gpu.BFloat16 && !be.dev.ConvInputGradBF16(g) {
		return fmt.Errorf("host: %s: dx is a bfloat16 tensor, which only a BF16 backward-data pass writes (ConvInputGradBF16 is false for %v): %w", op, g, backend.ErrTensor)
	}
	return nil
}

// ConvInputGradBF16 is gpu.Device.ConvInputGradBF16: at BF16 where g's
// backward-data pass runs conv2d_bwd_data_v9_igemm_bf16, whose bfloat16
// form (conv2d_bwd_data_v9_igemm_bf16dx) then writes a bfloat16 dx.
func (be *gpuBackend) ConvInputGradBF16(g geom.ConvGeom) bool { return be.dev.ConvInputGradBF16(g) }

// Conv2DBackwardFilter runs the dispatcher's weight-gradient kernel for dw
// and, when db is not nil, the bias gradient in the same launch where one
// ends the weight gradient (gpu.Device.Conv2DBackwardFilterBias): the bits
// of conv2d_bwd_bias_v1 either way.
func (be *gpuBackend) Conv2DBackwardFilter(g geom.ConvGeom, x, dy, dw, db backend.Tensor) error {
	const op = "conv backward filter"
	xb, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	dyb, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	dwb, err := be.f32("dw", dw, -1)
	if err != nil {
		return err
	}
	dbb, err := be.optF32("db", db, -1)
	if err != nil {
		return err
	}
	return gpuWrap("conv backward filter", be.dev.Conv2DBackwardFilterBias(g, xb, dyb, dwb, dbb))
}

// Conv2DBackward runs both backward passes with gpu.Device.Conv2DBackward:
// the kernels and bits of Conv2DBackwardFilter and Conv2DBackwardData,
// and one channels-last copy of dy for both where their kernels read the
// same one (TF32 and BF16 v9/v10).
func (be *gpuBackend) Conv2DBackward(g geom.ConvGeom, x, dy, w, dw, db, dx, xk backend.Tensor) error {
	b, _, err := be.bufsBF16(convBackwardArgs, 1<<5, x, dy, w, dw, db, dx, xk) // dx may be bfloat16
	if err != nil {
		return err
	}
	if b[5] != nil && b[2] == nil {
		return fmt.Errorf("host: conv backward: dx without w: %w", geom.ErrGeometry)
	}
	if err := be.convDx("conv backward", g, b[5]); err != nil {
		return err
	}
	return gpuWrap("conv backward", be.dev.Conv2DBackward(g, b[0], b[1], b[2], b[3], b[4], b[5], b[6]))
}

// convBackwardArgs are Conv2DBackward's tensors: w only with dx, db, dx
// and xk optional.
var convBackwardArgs = []arg{{"x", false}, {"dy", false}, {"w", true}, {"dw", false}, {"db", true}, {"dx", true}, {"xk", true}}

// ConvKeepLen is gpu.Device.ConvKeepLen: x's bfloat16 copy at BF16 where
// the forward and bwd-filter kernels share it, else 0.
func (be *gpuBackend) ConvKeepLen(g geom.ConvGeom) int { return be.dev.ConvKeepLen(g) }

// ConvXCopyLen is gpu.Device.ConvXCopyLen: x's TF32 copy that the packed
// TF32 forward kernel reads, made by the batch norm or residual add
// before it in a buffer the batch shares; else 0.
func (be *gpuBackend) ConvXCopyLen(g geom.ConvGeom) int { return be.dev.ConvXCopyLen(g) }

// Conv2DForwardKeep runs gpu.Device.Conv2DForwardKeep: Conv2DForward's
// kernel and bits, x's copy made in xk (when not nil) for Conv2DBackward.
func (be *gpuBackend) Conv2DForwardKeep(g geom.ConvGeom, x, w, b, y backend.Tensor, ep backend.Epilogue, xk backend.Tensor) error {
	if ep != backend.NoEpilogue && ep != backend.EpilogueReLU {
		return fmt.Errorf("host: conv forward: unknown epilogue %v: %w", ep, geom.ErrGeometry)
	}
	xkb, err := be.optF32("xk", xk, -1)
	if err != nil {
		return err
	}
	return be.convForward("conv forward", func(g geom.ConvGeom, x, w, b, y *gpu.Buffer) error {
		return be.dev.Conv2DForwardKeep(g, x, w, b, y, ep == backend.EpilogueReLU, xkb)
	}, g, x, w, b, y)
}

// laterLen checks the length of b (nil: absent, no check), an argument
// that only a later launch of operation op reads, before the first launch
// of op, so that a refused call does no work: with concatenation's inputs
// and the two-launch losses' batch, the only lengths that this package
// checks and a gpu launcher checks again.
func laterLen(op, name string, b *gpu.Buffer, want int) error {
	if b != nil && b.Len() != want {
		return fmt.Errorf("host: %s: %s has %d elements, want %d: %w", op, name, b.Len(), want, geom.ErrGeometry)
	}
	return nil
}

func (be *gpuBackend) ReLUForward(x, y backend.Tensor) error {
	xb, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, -1)
	if err != nil {
		return err
	}
	return gpuWrap("relu forward", be.dev.ReLUForward(xb, yb))
}

func (be *gpuBackend) ReLUBackward(x, dy, dx backend.Tensor) error {
	xb, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	dyb, err := be.f32x("dy", dy, -1) // a BF16 conv's input gradient may be bfloat16 (ConvInputGradBF16)
	if err != nil {
		return err
	}
	dxb, err := be.f32("dx", dx, -1)
	if err != nil {
		return err
	}
	return gpuWrap("relu backward", be.dev.ReLUBackward(xb, dyb, dxb))
}

// MaxPoolForward runs maxpool_fwd_v1 and records argmax's range: flat
// indices into x.
func (be *gpuBackend) MaxPoolForward(g geom.PoolGeom, x, y, argmax backend.Tensor) error {
	xb, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, -1)
	if err != nil {
		return err
	}
	am, err := be.i32Out("argmax", argmax, -1)
	if err != nil {
		return err
	}
	if err := be.dev.MaxPoolForward(g, xb, yb, am.buf); err != nil {
		return gpuWrap("max-pool forward", err)
	}
	am.lo, am.hi = 0, int32(g.XLen()-1) // flat indices into x
	return nil
}

// DenseBackwardPoolReLU runs dense_bwd_pool_relu_v1: the bits of
// dense_bwd_v2 and maxpool_bwd_relu_v1, in one launch, the dense dx never
// stored. Sizes and lengths are the launcher's to check.
func (be *gpuBackend) DenseBackwardPoolReLU(g geom.PoolGeom, out int, x, w, dy, dw, db, argmax, xr, dxr backend.Tensor) error {
	b, err := be.bufs(denseBwdPoolArgs, x, w, dy, dw, db)
	if err != nil {
		return err
	}
	var amb, xrb, dxrb *gpu.Buffer
	if dxr != nil {
		am, err := be.i32("argmax", argmax, -1)
		if err != nil {
			return err
		}
		amb = am.buf
		if xrb, err = be.f32("xr", xr, -1); err != nil {
			return err
		}
		if dxrb, err = be.f32("dxr", dxr, -1); err != nil {
			return err
		}
	}
	return gpuWrap("dense backward", be.dev.DenseBackwardPoolReLU(g, out, b[0], b[1], b[2], b[3], b[4], amb, xrb, dxrb))
}

var denseBwdPoolArgs = []arg{{"x", false}, {"w", false}, {"dy", false}, {"dw", false}, {"db", true}}

// MaxPoolDenseSoftmax runs maxpool_dense_softmax_v1 (one launch, the bits
// of maxpool_dense_fwd_v1 and softmax_ce_metrics_v1) for up to
// gpu.SoftmaxCEMeanMaxRows images; for more, MaxPoolDenseForward and
// SoftmaxCrossEntropyMetrics. Its scratch is kept per batch size. Sizes
// and lengths are the launcher's to check; the labels' range is checked
// here.
func (be *gpuBackend) MaxPoolDenseSoftmax(g geom.PoolGeom, x, y, argmax backend.Tensor, classes int, w, b, logits, labels, loss, dlogits, lossSum, correct backend.Tensor) error {
	if g.N > gpu.SoftmaxCEMeanMaxRows {
		if err := be.MaxPoolDenseForward(g, x, y, argmax, classes, w, b, logits); err != nil {
			return err
		}
		return be.SoftmaxCrossEntropyMetrics(g.N, classes, logits, labels, loss, dlogits, lossSum, correct)
	}
	am, err := be.i32Out("argmax", argmax, -1)
	if err != nil {
		return err
	}
	lab, err := be.labels(labels, classes)
	if err != nil {
		return err
	}
	bf, err := be.bufs(poolDenseSoftmaxArgs, x, y, w, b, logits, loss, dlogits, lossSum, correct)
	if err != nil {
		return err
	}
	rows, ok := be.tickets[g.N]
	if !ok {
		if rows, err = be.dev.NewFloat32(2*g.N + 1); err != nil { // zero: the ticket too
			return fmt.Errorf("host: loss scratch: %w", err)
		}
		be.tickets[g.N] = rows
	}
	if err := be.dev.MaxPoolDenseSoftmax(g, bf[0], bf[1], am.buf, classes, bf[2], bf[3], bf[4], lab, bf[5], bf[6], bf[7], bf[8], rows); err != nil {
		return gpuWrap("max-pool, dense and softmax cross-entropy", err)
	}
	am.lo, am.hi = 0, int32(g.XLen()-1) // flat indices into x
	return nil
}

var poolDenseSoftmaxArgs = []arg{{"x", false}, {"y", false}, {"w", false}, {"b", true}, {"logits", false},
	{"loss", false}, {"dlogits", false}, {"loss sum", false}, {"correct", false}}

// labels resolves a labels tensor and checks that its values, recorded
// when it was filled, are classes.
func (be *gpuBackend) labels(labels backend.Tensor, classes int) (*gpu.Buffer, error) {
	lab, err := be.i32("labels", labels, -1)
	if err != nil {
		return nil, err
	}
	if lo, hi := lab.indexRange(); lo < 0 || int(hi) >= classes {
		return nil, fmt.Errorf("host: softmax cross-entropy: labels lie in [%d, %d], outside [0, %d): %w",
			lo, hi, classes, geom.ErrGeometry)
	}
	return lab.buf, nil
}

// MaxPoolDenseForward runs maxpool_dense_fwd_v1: the bits of
// maxpool_fwd_v1 and dense_fwd_v1, in one launch. Sizes and lengths are
// the launcher's to check.
func (be *gpuBackend) MaxPoolDenseForward(g geom.PoolGeom, x, y, argmax backend.Tensor, out int, w, b, z backend.Tensor) error {
	am, err := be.i32Out("argmax", argmax, -1)
	if err != nil {
		return err
	}
	bf, err := be.bufs(poolDenseArgs, x, y, w, b, z)
	if err != nil {
		return err
	}
	if err := be.dev.MaxPoolDenseForward(g, bf[0], bf[1], am.buf, out, bf[2], bf[3], bf[4]); err != nil {
		return gpuWrap("max-pool and dense forward", err)
	}
	am.lo, am.hi = 0, int32(g.XLen()-1) // flat indices into x
	return nil
}

var poolDenseArgs = []arg{{"x", false}, {"y", false}, {"w", false}, {"b", true}, {"z", false}}

// MaxPoolBackwardReLU runs maxpool_bwd_relu_v1: the bits of
// maxpool_bwd_v1 and relu_bwd_v1, in one launch. Sizes and lengths are the
// launcher's to check.
func (be *gpuBackend) MaxPoolBackwardReLU(g geom.PoolGeom, dy, argmax, x, dx backend.Tensor) error {
	am, err := be.i32("argmax", argmax, -1)
	if err != nil {
		return err
	}
	bf, err := be.bufs(poolBwdReLUArgs, dy, x, dx)
	if err != nil {
		return err
	}
	return gpuWrap("max-pool backward", be.dev.MaxPoolBackwardReLU(g, bf[0], am.buf, bf[1], bf[2]))
}

var poolBwdReLUArgs = []arg{{"dy", false}, {"x", false}, {"dx", false}}

func (be *gpuBackend) MaxPoolBackward(g geom.PoolGeom, dy, argmax, dx backend.Tensor) error {
	dyb, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	am, err := be.i32("argmax", argmax, -1)
	if err != nil {
		return err
	}
	dxb, err := be.f32("dx", dx, -1)
	if err != nil {
		return err
	}
	// maxpool_bwd_v1 gathers: each dx[i] reads only the dy and argmax of the
	// windows containing i, so no argmax value can make it access memory
	// out of range; no range check is needed.
	return gpuWrap("max-pool backward", be.dev.MaxPoolBackward(g, dyb, am.buf, dxb))
}

func (be *gpuBackend) DenseForward(n, in, out int, x, w, b, y backend.Tensor) error {
	xb, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	wb, err := be.f32("w", w, -1)
	if err != nil {
		return err
	}
	bb, err := be.optF32("b", b, -1)
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, -1)
	if err != nil {
		return err
	}
	return gpuWrap("dense forward", be.dev.DenseForward(n, in, out, xb, wb, bb, yb))
}

// DenseBackward runs dense_bwd_v2: dw, db (when not nil) and dx (when not
// nil) in one launch, the bits of dense_bwd_weight_v1, reduce_cols_v1 and
// dense_bwd_data_v1.
func (be *gpuBackend) DenseBackward(n, in, out int, x, w, dy, dx, dw, db backend.Tensor) error {
	const op = "dense backward"
	xb, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	wb, err := be.f32("w", w, -1)
	if err != nil {
		return err
	}
	dyb, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	dxb, err := be.optF32("dx", dx, -1)
	if err != nil {
		return err
	}
	dwb, err := be.f32("dw", dw, -1)
	if err != nil {
		return err
	}
	dbb, err := be.optF32("db", db, -1)
	if err != nil {
		return err
	}
	return gpuWrap("dense backward", be.dev.DenseBackward(n, in, out, xb, wb, dyb, dxb, dwb, dbb))
}

// lossRows returns the per-row loss scratch buffer for a batch of n,
// allocating it on first use.
func (be *gpuBackend) lossRows(n int) (*gpu.Buffer, error) {
	if b, ok := be.rows[n]; ok {
		return b, nil
	}
	b, err := be.dev.NewFloat32(n)
	if err != nil {
		return nil, fmt.Errorf("host: loss scratch: %w", err)
	}
	be.rows[n] = b
	return b, nil
}

// SoftmaxCrossEntropy runs softmax_ce_mean_v1 (one launch) for up to
// gpu.SoftmaxCEMeanMaxRows rows; for more, softmax_ce_v1 (per-row losses
// into a scratch buffer, dlogits = (softmax − onehot)/N) and reduce_sum_v1
// with scale 1/N into loss[0]: the same bits either way. The labels are
// checked against [0, classes) on the host from their recorded range.
func (be *gpuBackend) SoftmaxCrossEntropy(n, classes int, logits, labels, loss, dlogits backend.Tensor) error {
	const op = "softmax cross-entropy"
	lb, err := be.f32("logits", logits, -1)
	if err != nil {
		return err
	}
	lab, err := be.i32("labels", labels, -1)
	if err != nil {
		return err
	}
	if lo, hi := lab.indexRange(); lo < 0 || int(hi) >= classes {
		return fmt.Errorf("host: %s: labels lie in [%d, %d], outside [0, %d): %w",
			op, lo, hi, classes, geom.ErrGeometry)
	}
	l, err := be.f32("loss", loss, -1)
	if err != nil {
		return err
	}
	dl, err := be.f32("dlogits", dlogits, -1)
	if err != nil {
		return err
	}
	if n <= gpu.SoftmaxCEMeanMaxRows { // one launch, the same bits as the two below
		return gpuWrap(op, be.dev.SoftmaxCrossEntropyMean(n, classes, lb, lab.buf, l, dl))
	}
	rows, err := be.lossScratch(op, n, lab.buf, n, l)
	if err != nil {
		return err
	}
	if err := be.dev.SoftmaxCrossEntropy(n, classes, lb, lab.buf, rows, dl); err != nil {
		return gpuWrap(op, err)
	}
	return gpuWrap(op, be.dev.ReduceSum(rows, l, float32(1/float64(n))))
}

// lossScratch returns the per-row loss buffer of a batch of n rows for the
// two-launch losses. Before the buffer is allocated and the first launch,
// it checks what the launches cannot check in time: that n is the batch's
// row count (sized, the labels or y, has want elements) and that loss,
// which only the second launch reads, has one element.
func (be *gpuBackend) lossScratch(op string, n int, sized *gpu.Buffer, want int, loss *gpu.Buffer) (*gpu.Buffer, error) {
	if err := laterLen(op, "loss", loss, 1); err != nil {
		return nil, err
	}
	if n < 1 || sized.Len() != want {
		return nil, fmt.Errorf("host: %s: N=%d: a batch of %d elements, want %d: %w", op, n, sized.Len(), want, geom.ErrGeometry)
	}
	return be.lossRows(n)
}

// MSE runs mse_v1 (per-row ½Σ(t−y)², dy = (y−t)/N) and reduce_sum_v1 with
// scale 1/N into loss[0].
func (be *gpuBackend) MSE(n, dim int, y, t, loss, dy backend.Tensor) error {
	const op = "mse"
	yb, err := be.f32("y", y, -1)
	if err != nil {
		return err
	}
	tb, err := be.f32("t", t, -1)
	if err != nil {
		return err
	}
	l, err := be.f32("loss", loss, -1)
	if err != nil {
		return err
	}
	dyb, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	rows, err := be.lossScratch(op, n, yb, n*dim, l)
	if err != nil {
		return err
	}
	if err := be.dev.MSE(n, dim, yb, tb, rows, dyb); err != nil {
		return gpuWrap(op, err)
	}
	return gpuWrap(op, be.dev.ReduceSum(rows, l, float32(1/float64(n))))
}

// SoftmaxCrossEntropyMetrics runs softmax_ce_metrics_v1 (one launch, the
// bits of SoftmaxCrossEntropy, Accumulate and CountCorrect) for up to
// gpu.SoftmaxCEMeanMaxRows rows; for more, those three operations.
func (be *gpuBackend) SoftmaxCrossEntropyMetrics(n, classes int, logits, labels, loss, dlogits, lossSum, correct backend.Tensor) error {
	if n > gpu.SoftmaxCEMeanMaxRows {
		if err := be.SoftmaxCrossEntropy(n, classes, logits, labels, loss, dlogits); err != nil {
			return err
		}
		if err := be.Accumulate(lossSum, loss); err != nil {
			return err
		}
		return be.CountCorrect(n, classes, logits, labels, correct)
	}
	lab, err := be.labels(labels, classes)
	if err != nil {
		return err
	}
	bf, err := be.bufs(softmaxMetricsArgs, logits, loss, dlogits, lossSum, correct)
	if err != nil {
		return err
	}
	return gpuWrap("softmax cross-entropy", be.dev.SoftmaxCrossEntropyMetrics(n, classes, bf[0], lab, bf[1], bf[2], bf[3], bf[4]))
}

var softmaxMetricsArgs = []arg{{"logits", false}, {"loss", false}, {"dlogits", false}, {"loss sum", false}, {"correct", false}}

func (be *gpuBackend) CountCorrect(n, classes int, logits, labels, acc backend.Tensor) error {
	lb, err := be.f32("logits", logits, -1)
	if err != nil {
		return err
	}
	lab, err := be.i32("labels", labels, -1)
	if err != nil {
		return err
	}
	a, err := be.f32("acc", acc, -1)
	if err != nil {
		return err
	}
	// A label out of range never equals an argmax: it counts as wrong, as
	// on the CPU; nothing is read through it.
	return gpuWrap("count correct", be.dev.CountCorrect(n, classes, lb, lab.buf, a))
}

func (be *gpuBackend) Accumulate(dst, src backend.Tensor) error {
	d, err := be.f32("dst", dst, -1)
	if err != nil {
		return err
	}
	s, err := be.f32("src", src, -1)
	if err != nil {
		return err
	}
	return gpuWrap("accumulate", be.dev.Accumulate(d, s))
}

// optimArgs returns the buffers of an optimiser step's tensors, named by
// names (gpu's launcher checks their lengths).
func (be *gpuBackend) optimArgs(names []string, ts ...backend.Tensor) ([4]*gpu.Buffer, error) {
	var bs [4]*gpu.Buffer
	for i, t := range ts {
		b, err := be.f32(names[i], t, -1)
		if err != nil {
			return bs, err
		}
		bs[i] = b
	}
	return bs, nil
}

var sgdNames, adamNames = []string{"p", "grad", "vel"}, []string{"p", "grad", "m", "v"}

func (be *gpuBackend) SGDStep(p, grad, vel backend.Tensor, lr, momentum, weightDecay float32) error {
	b, err := be.optimArgs(sgdNames, p, grad, vel)
	if err != nil {
		return err
	}
	return gpuWrap("sgd step", be.dev.SGDMomentum(b[0], b[1], b[2], lr, momentum, weightDecay))
}

func (be *gpuBackend) SGDNesterovStep(p, grad, vel backend.Tensor, lr, momentum, weightDecay float32) error {
	b, err := be.optimArgs(sgdNames, p, grad, vel)
	if err != nil {
		return err
	}
	return gpuWrap("sgd nesterov step", be.dev.SGDNesterov(b[0], b[1], b[2], lr, momentum, weightDecay))
}

// AdamStep computes the step's scalars (bias corrections) on the host with
// geom.AdamCoefficients, as cpuref.AdamStep does, and runs adam_v1.
func (be *gpuBackend) AdamStep(p, grad, m, v backend.Tensor, lr, beta1, beta2, eps, weightDecay float32, step int, decoupled bool) error {
	b, err := be.optimArgs(adamNames, p, grad, m, v)
	if err != nil {
		return err
	}
	c, err := geom.AdamCoefficients(float64(lr), float64(beta1), float64(beta2), float64(eps), float64(weightDecay), step, decoupled)
	if err != nil {
		return fmt.Errorf("host: adam step: %w", err)
	}
	return gpuWrap("adam step", be.dev.Adam(b[0], b[1], b[2], b[3], c))
}

// Gather runs gather_rows_f32_v1 or gather_rows_i32_v1 after checking on the
// host, from idx's recorded range, that every index names a row of src
// (the kernel cannot); the launcher checks the row length, the element
// types and the lengths.
func (be *gpuBackend) Gather(rowLen int, src, idx, dst backend.Tensor) error {
	if gt, ok := idx.(*gpuTensor); ok && gt != nil && gt.at != nil {
		return be.gatherAt(rowLen, src, gt, dst)
	}
	ix, err := be.i32("idx", idx, -1)
	if err != nil {
		return err
	}
	s, err := be.tensor("src", src)
	if err != nil {
		return err
	}
	d, err := be.tensor("dst", dst)
	if err != nil {
		return err
	}
	if s.bytes || d.bytes {
		return fmt.Errorf("host: gather: a byte tensor (GatherImages reads them): %w", backend.ErrTensor)
	}
	if d.parent != nil {
		return fmt.Errorf("host: gather: dst is a view (read-only): %w", backend.ErrTensor)
	}
	if rowLen >= 1 { // else the launcher refuses the row length
		if lo, hi := ix.indexRange(); lo < 0 || int(hi) >= s.n/rowLen {
			return fmt.Errorf("host: gather: indices lie in [%d, %d], outside [0, %d): %w", lo, hi, s.n/rowLen, backend.ErrTensor)
		}
	}
	if err := be.dev.GatherRows(rowLen, s.buf, ix.buf, d.buf); err != nil {
		return gpuWrap("gather", err)
	}
	if d.index {
		d.lo, d.hi = s.indexRange() // every value of dst is a value of src
	}
	return nil
}

// Sync waits for the device and returns the first error of the queued work.
func (be *gpuBackend) Sync() error {
	if be.closed {
		return fmt.Errorf("host: gpu backend is closed: %w", backend.ErrTensor)
	}
	return gpuWrap("sync", be.dev.Synchronize())
}

// Close frees every tensor still live and the scratch buffers; the device
// stays open.
func (be *gpuBackend) Close() error {
	if be.closed {
		return nil
	}
	var errs []error
	for t := range be.live {
		t.freed = true
		errs = append(errs, t.buf.Free())
	}
	for _, b := range be.rows {
		errs = append(errs, b.Free())
	}
	for _, b := range be.tickets {
		errs = append(errs, b.Free())
	}
	errs = append(errs, be.params.free(), be.checks.free())
	be.live, be.rows, be.closed = nil, nil, true
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("host: gpu backend close: %w", err)
	}
	return nil
}

// gpuWrap prefixes a gpu error with the operation's name.
func gpuWrap(op string, err error) error {
	if err != nil {
		return fmt.Errorf("host: %s: %w", op, err)
	}
	return nil
}

// Float32Buffer returns the device buffer of t, a live float32 tensor of a
// backend that NewGPUBackend made: for a library that works on device
// memory itself (NCCL's collectives on the gradients). Anything else is an
// error wrapping backend.ErrTensor.
func Float32Buffer(t backend.Tensor) (*gpu.Buffer, error) {
	gt, ok := t.(*gpuTensor)
	if !ok || gt == nil {
		return nil, fmt.Errorf("host: %T is not a gpu tensor: %w", t, backend.ErrTensor)
	}
	return gt.be.f32("tensor", t, -1)
}
