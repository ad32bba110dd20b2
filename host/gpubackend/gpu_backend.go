package gpubackend

import (
	"errors"
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
)

// gpuTensor is the GPU backend's Tensor: a device buffer of float32 or
// int32. For an index tensor the backend also records the range [lo, hi]
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
	lo, hi int32
	freed  bool
	parent *gpuTensor // the tensor this one views (IndexView); nil for storage of its own
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
	dev    *gpu.Device
	live   map[*gpuTensor]struct{}
	rows   map[int]*gpu.Buffer // per-row loss scratch, by batch size
	params paramTableCache     // UpdateParams' device table (update.go)
	checks checkTableCache     // FirstNonFinite's device table (update.go)
	closed bool
}

// NewGPUBackend returns a Backend that runs every operation on dev (a real
// GPU from gpu.Open or the simulator from gpu.OpenSim). The backend does
// not own dev: Close frees the backend's tensors, the caller closes dev.
//
// Kernels cannot return errors, so the backend checks on the host what it
// cheaply can: sizes and tensor handles before every launch, and gather
// indices and class labels against the value range recorded for each index
// tensor. A label outside [0, classes) that got past the checks would make
// that row's loss and gradient NaN (softmax_ce_v1), hence a NaN mean loss.
// Launches are asynchronous on a real GPU: a fault inside a kernel is
// reported by the next Sync or Download.
func NewGPUBackend(dev *gpu.Device) (backend.Backend, error) {
	if dev == nil {
		return nil, errors.New("host: gpu backend: nil device")
	}
	return &gpuBackend{dev: dev, live: make(map[*gpuTensor]struct{}), rows: make(map[int]*gpu.Buffer)}, nil
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

// IndexView returns a view through gpu.Buffer.Slice; it is not in
// be.live, which holds the tensors that own their storage.
func (be *gpuBackend) IndexView(idx backend.Tensor, off, n int) (backend.Tensor, error) {
	ix, err := be.i32("idx", idx, -1)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 1 || off > ix.n-n {
		return nil, fmt.Errorf("host: index view [%d, %d+%d) of %d elements: %w", off, off, n, ix.n, backend.ErrTensor)
	}
	root := ix
	if root.parent != nil {
		root = root.parent
	}
	b, err := ix.buf.Slice(off, n)
	if err != nil {
		return nil, fmt.Errorf("host: index view: %w", err)
	}
	return &gpuTensor{be: be, buf: b, n: n, index: true, parent: root}, nil
}

// f32 returns t's buffer, checking that it is a live float32 tensor of this
// backend with want elements (want < 0: any length).
func (be *gpuBackend) f32(name string, t backend.Tensor, want int) (*gpu.Buffer, error) {
	gt, err := be.tensor(name, t)
	if err != nil {
		return nil, err
	}
	if gt.index {
		return nil, fmt.Errorf("host: %s is an index tensor, want float32: %w", name, backend.ErrTensor)
	}
	if want >= 0 && gt.n != want {
		return nil, fmt.Errorf("host: %s has %d elements, want %d: %w", name, gt.n, want, backend.ErrTensor)
	}
	return gt.buf, nil
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
		return nil, fmt.Errorf("host: %s is a float32 tensor, want int32: %w", name, backend.ErrTensor)
	}
	if want >= 0 && gt.n != want {
		return nil, fmt.Errorf("host: %s has %d elements, want %d: %w", name, gt.n, want, backend.ErrTensor)
	}
	return gt, nil
}

func (be *gpuBackend) Upload(dst backend.Tensor, src []float32) error {
	d, err := be.f32("dst", dst, len(src))
	if err != nil {
		return err
	}
	return gpuWrap("upload", d.Upload(src))
}

func (be *gpuBackend) UploadIndex(dst backend.Tensor, src []int32) error {
	d, err := be.i32Out("dst", dst, len(src))
	if err != nil {
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

func (be *gpuBackend) Download(dst []float32, src backend.Tensor) error {
	s, err := be.f32("src", src, len(dst))
	if err != nil {
		return err
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
// launch.
func (be *gpuBackend) Fusions() backend.Fusions {
	return backend.Fusions{ConvReLU: true, BatchNormReLU: true}
}

// convForward checks the tensors of a forward convolution against g and
// runs launch (a gpu.Device forward pass) on their buffers.
func (be *gpuBackend) convForward(op string, launch func(g geom.ConvGeom, x, w, b, y *gpu.Buffer) error,
	g geom.ConvGeom, x, w, b, y backend.Tensor) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("host: %s: %w", op, err)
	}
	xb, err := be.f32("x", x, g.XLen())
	if err != nil {
		return err
	}
	wb, err := be.f32("w", w, g.WLen())
	if err != nil {
		return err
	}
	bb, err := be.optF32("b", b, g.K)
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, g.YLen())
	if err != nil {
		return err
	}
	return gpuWrap(op, launch(g, xb, wb, bb, yb))
}

func (be *gpuBackend) Conv2DBackwardData(g geom.ConvGeom, dy, w, dx backend.Tensor) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("host: conv backward data: %w", err)
	}
	dyb, err := be.f32("dy", dy, g.YLen())
	if err != nil {
		return err
	}
	wb, err := be.f32("w", w, g.WLen())
	if err != nil {
		return err
	}
	dxb, err := be.f32("dx", dx, g.XLen())
	if err != nil {
		return err
	}
	return gpuWrap("conv backward data", be.dev.Conv2DBackwardData(g, dyb, wb, dxb))
}

// Conv2DBackwardFilter runs conv2d_bwd_filter_v1_direct for dw and, when db
// is not nil, conv2d_bwd_bias_v1 for db.
func (be *gpuBackend) Conv2DBackwardFilter(g geom.ConvGeom, x, dy, dw, db backend.Tensor) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("host: conv backward filter: %w", err)
	}
	xb, err := be.f32("x", x, g.XLen())
	if err != nil {
		return err
	}
	dyb, err := be.f32("dy", dy, g.YLen())
	if err != nil {
		return err
	}
	dwb, err := be.f32("dw", dw, g.WLen())
	if err != nil {
		return err
	}
	dbb, err := be.optF32("db", db, g.K)
	if err != nil {
		return err
	}
	if err := be.dev.Conv2DBackwardFilter(g, xb, dyb, dwb); err != nil {
		return gpuWrap("conv backward filter", err)
	}
	if dbb != nil {
		return gpuWrap("conv backward bias", be.dev.Conv2DBackwardBias(g, dyb, dbb))
	}
	return nil
}

func (be *gpuBackend) ReLUForward(x, y backend.Tensor) error {
	xb, err := be.f32("x", x, -1)
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, xb.Len())
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
	dyb, err := be.f32("dy", dy, xb.Len())
	if err != nil {
		return err
	}
	dxb, err := be.f32("dx", dx, xb.Len())
	if err != nil {
		return err
	}
	return gpuWrap("relu backward", be.dev.ReLUBackward(xb, dyb, dxb))
}

func (be *gpuBackend) MaxPoolForward(g geom.PoolGeom, x, y, argmax backend.Tensor) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("host: max-pool forward: %w", err)
	}
	xb, err := be.f32("x", x, g.XLen())
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, g.YLen())
	if err != nil {
		return err
	}
	am, err := be.i32Out("argmax", argmax, g.YLen())
	if err != nil {
		return err
	}
	if err := be.dev.MaxPoolForward(g, xb, yb, am.buf); err != nil {
		return gpuWrap("max-pool forward", err)
	}
	am.lo, am.hi = 0, int32(g.XLen()-1) // flat indices into x
	return nil
}

func (be *gpuBackend) MaxPoolBackward(g geom.PoolGeom, dy, argmax, dx backend.Tensor) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("host: max-pool backward: %w", err)
	}
	dyb, err := be.f32("dy", dy, g.YLen())
	if err != nil {
		return err
	}
	am, err := be.i32("argmax", argmax, g.YLen())
	if err != nil {
		return err
	}
	dxb, err := be.f32("dx", dx, g.XLen())
	if err != nil {
		return err
	}
	// maxpool_bwd_v1 gathers: each dx[i] reads only the dy and argmax of the
	// windows containing i, so no argmax value can make it access memory
	// out of range; no range check is needed.
	return gpuWrap("max-pool backward", be.dev.MaxPoolBackward(g, dyb, am.buf, dxb))
}

func (be *gpuBackend) DenseForward(n, in, out int, x, w, b, y backend.Tensor) error {
	if err := backend.CheckDense("dense forward", n, in, out); err != nil {
		return err
	}
	xb, err := be.f32("x", x, n*in)
	if err != nil {
		return err
	}
	wb, err := be.f32("w", w, out*in)
	if err != nil {
		return err
	}
	bb, err := be.optF32("b", b, out)
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, n*out)
	if err != nil {
		return err
	}
	return gpuWrap("dense forward", be.dev.DenseForward(n, in, out, xb, wb, bb, yb))
}

// DenseBackward runs dense_bwd_weight_v1 (dw), reduce_cols_v1 (db) and, when
// dx is not nil, dense_bwd_data_v1 (dx).
func (be *gpuBackend) DenseBackward(n, in, out int, x, w, dy, dx, dw, db backend.Tensor) error {
	if err := backend.CheckDense("dense backward", n, in, out); err != nil {
		return err
	}
	xb, err := be.f32("x", x, n*in)
	if err != nil {
		return err
	}
	wb, err := be.f32("w", w, out*in)
	if err != nil {
		return err
	}
	dyb, err := be.f32("dy", dy, n*out)
	if err != nil {
		return err
	}
	dxb, err := be.optF32("dx", dx, n*in)
	if err != nil {
		return err
	}
	dwb, err := be.f32("dw", dw, out*in)
	if err != nil {
		return err
	}
	dbb, err := be.optF32("db", db, out)
	if err != nil {
		return err
	}
	if err := be.dev.DenseBackwardWeight(n, in, out, xb, dyb, dwb); err != nil {
		return gpuWrap("dense backward", err)
	}
	if dbb != nil {
		if err := be.dev.ReduceCols(n, out, dyb, dbb); err != nil {
			return gpuWrap("dense backward", err)
		}
	}
	if dxb != nil {
		return gpuWrap("dense backward", be.dev.DenseBackwardData(n, in, out, dyb, wb, dxb))
	}
	return nil
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
// with scale 1/N into loss[0]: the same bits either way. The labels are checked against [0, classes) on the host
// from their recorded range.
func (be *gpuBackend) SoftmaxCrossEntropy(n, classes int, logits, labels, loss, dlogits backend.Tensor) error {
	if err := backend.CheckDense("softmax cross-entropy", n, classes, 1); err != nil {
		return err
	}
	lb, err := be.f32("logits", logits, n*classes)
	if err != nil {
		return err
	}
	lab, err := be.i32("labels", labels, n)
	if err != nil {
		return err
	}
	if lo, hi := lab.indexRange(); lo < 0 || int(hi) >= classes {
		return fmt.Errorf("host: softmax cross-entropy: labels lie in [%d, %d], outside [0, %d): %w",
			lo, hi, classes, geom.ErrGeometry)
	}
	l, err := be.f32("loss", loss, 1)
	if err != nil {
		return err
	}
	dl, err := be.f32("dlogits", dlogits, n*classes)
	if err != nil {
		return err
	}
	if n <= gpu.SoftmaxCEMeanMaxRows { // one launch, the same bits as the two below
		return gpuWrap("softmax cross-entropy", be.dev.SoftmaxCrossEntropyMean(n, classes, lb, lab.buf, l, dl))
	}
	rows, err := be.lossRows(n)
	if err != nil {
		return err
	}
	if err := be.dev.SoftmaxCrossEntropy(n, classes, lb, lab.buf, rows, dl); err != nil {
		return gpuWrap("softmax cross-entropy", err)
	}
	return gpuWrap("softmax cross-entropy", be.dev.ReduceSum(rows, l, float32(1/float64(n))))
}

// MSE runs mse_v1 (per-row ½Σ(t−y)², dy = (y−t)/N) and reduce_sum_v1 with
// scale 1/N into loss[0].
func (be *gpuBackend) MSE(n, dim int, y, t, loss, dy backend.Tensor) error {
	if err := backend.CheckDense("mse", n, dim, 1); err != nil {
		return err
	}
	yb, err := be.f32("y", y, n*dim)
	if err != nil {
		return err
	}
	tb, err := be.f32("t", t, n*dim)
	if err != nil {
		return err
	}
	l, err := be.f32("loss", loss, 1)
	if err != nil {
		return err
	}
	dyb, err := be.f32("dy", dy, n*dim)
	if err != nil {
		return err
	}
	rows, err := be.lossRows(n)
	if err != nil {
		return err
	}
	if err := be.dev.MSE(n, dim, yb, tb, rows, dyb); err != nil {
		return gpuWrap("mse", err)
	}
	return gpuWrap("mse", be.dev.ReduceSum(rows, l, float32(1/float64(n))))
}

func (be *gpuBackend) CountCorrect(n, classes int, logits, labels, acc backend.Tensor) error {
	if err := backend.CheckDense("count correct", n, classes, 1); err != nil {
		return err
	}
	lb, err := be.f32("logits", logits, n*classes)
	if err != nil {
		return err
	}
	lab, err := be.i32("labels", labels, n)
	if err != nil {
		return err
	}
	a, err := be.f32("acc", acc, 1)
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
	s, err := be.f32("src", src, d.Len())
	if err != nil {
		return err
	}
	return gpuWrap("accumulate", be.dev.Accumulate(d, s))
}

func (be *gpuBackend) SGDStep(p, grad, vel backend.Tensor, lr, momentum, weightDecay float32) error {
	pb, err := be.f32("p", p, -1)
	if err != nil {
		return err
	}
	gb, err := be.f32("grad", grad, pb.Len())
	if err != nil {
		return err
	}
	vb, err := be.f32("vel", vel, pb.Len())
	if err != nil {
		return err
	}
	return gpuWrap("sgd step", be.dev.SGDMomentum(pb, gb, vb, lr, momentum, weightDecay))
}

func (be *gpuBackend) SGDNesterovStep(p, grad, vel backend.Tensor, lr, momentum, weightDecay float32) error {
	pb, err := be.f32("p", p, -1)
	if err != nil {
		return err
	}
	gb, err := be.f32("grad", grad, pb.Len())
	if err != nil {
		return err
	}
	vb, err := be.f32("vel", vel, pb.Len())
	if err != nil {
		return err
	}
	return gpuWrap("sgd nesterov step", be.dev.SGDNesterov(pb, gb, vb, lr, momentum, weightDecay))
}

// AdamStep computes the step's scalars (bias corrections) on the host with
// geom.AdamCoefficients, as cpuref.AdamStep does, and runs adam_v1.
func (be *gpuBackend) AdamStep(p, grad, m, v backend.Tensor, lr, beta1, beta2, eps, weightDecay float32, step int, decoupled bool) error {
	pb, err := be.f32("p", p, -1)
	if err != nil {
		return err
	}
	gb, err := be.f32("grad", grad, pb.Len())
	if err != nil {
		return err
	}
	mb, err := be.f32("m", m, pb.Len())
	if err != nil {
		return err
	}
	vb, err := be.f32("v", v, pb.Len())
	if err != nil {
		return err
	}
	c, err := geom.AdamCoefficients(float64(lr), float64(beta1), float64(beta2), float64(eps), float64(weightDecay), step, decoupled)
	if err != nil {
		return fmt.Errorf("host: adam step: %w", err)
	}
	return gpuWrap("adam step", be.dev.Adam(pb, gb, mb, vb, c))
}

// Gather runs gather_rows_f32_v1 or gather_rows_i32_v1 after checking on the
// host, from idx's recorded range, that every index names a row of src.
func (be *gpuBackend) Gather(rowLen int, src, idx, dst backend.Tensor) error {
	ix, err := be.i32("idx", idx, -1)
	if err != nil {
		return err
	}
	if rowLen < 1 || ix.n > backend.MaxTensorElems/rowLen {
		return fmt.Errorf("host: gather: row length %d for %d rows: %w", rowLen, ix.n, geom.ErrGeometry)
	}
	s, err := be.tensor("src", src)
	if err != nil {
		return err
	}
	d, err := be.tensor("dst", dst)
	if err != nil {
		return err
	}
	if s.index != d.index {
		return fmt.Errorf("host: gather: src and dst have different element types: %w", backend.ErrTensor)
	}
	if d.parent != nil {
		return fmt.Errorf("host: gather: dst is a view (read-only): %w", backend.ErrTensor)
	}
	if d.n != ix.n*rowLen {
		return fmt.Errorf("host: gather: dst has %d elements, want %d rows of %d: %w", d.n, ix.n, rowLen, backend.ErrTensor)
	}
	if s.n%rowLen != 0 {
		return fmt.Errorf("host: gather: src has %d elements, not a multiple of the row length %d: %w", s.n, rowLen, backend.ErrTensor)
	}
	rows := s.n / rowLen
	if lo, hi := ix.indexRange(); lo < 0 || int(hi) >= rows {
		return fmt.Errorf("host: gather: indices lie in [%d, %d], outside [0, %d): %w", lo, hi, rows, backend.ErrTensor)
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
