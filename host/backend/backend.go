package backend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Tensor is a handle to storage owned by a Backend: float32 elements,
// int32 for index tensors (labels, argmax, batch indices), or uint8 for
// byte tensors (a data set's pixel bytes, read by GatherImages only). On the GPU backend
// the storage lives on the device for the tensor's whole life; nothing is
// copied to the host unless Download is called.
type Tensor interface {
	// Len is the number of elements.
	Len() int
}

// Backend runs the operations of a training step. Every method checks its
// sizes and returns an error before doing any work; none panics. Tensors
// passed to a method must have been created by the same Backend.
//
// It is two interfaces: Memory (tensors, copies, synchronisation: passed
// through as they are by a wrapper such as a timing one) and Ops (the
// operations of a step: a wrapper must implement each of them, or it does
// not compile as a Backend).
//
// Shape letters: N batch, C channels, H×W size, K filters, R×S kernel,
// P×Q output size; In/Out the widths of a dense layer.
type Backend interface {
	Memory
	Ops
}

// Epilogue is what a convolution or a batch normalisation applies to its
// output before storing it, in the same pass.
type Epilogue int

// The epilogues.
const (
	// NoEpilogue stores y = conv(x, w) + b (or the normalised value).
	NoEpilogue Epilogue = iota
	// EpilogueReLU stores y = max(0, conv(x, w) + b) (or of the normalised
	// value) with ReLUForward's rules (NaN propagates, −0 becomes +0).
	EpilogueReLU
)

func (e Epilogue) String() string {
	switch e {
	case NoEpilogue:
		return "none"
	case EpilogueReLU:
		return "relu"
	}
	return fmt.Sprintf("Epilogue(%d)", int(e))
}

// Activation names an elementwise activation other than ReLU (which has
// its own operations), with PyTorch's definitions; cpuref's float32 forms
// define the bits.
type Activation int

// The activations.
const (
	LeakyReLU Activation = iota + 1 // x if x > 0, else slope·x (the parameter)
	Sigmoid                         // 1/(1 + e^−x)
	Tanh                            // tanh x
	SiLU                            // x·sigmoid(x)
	GELUErf                         // x·Φ(x), PyTorch's GELU(approximate='none')
	GELUTanh                        // PyTorch's GELU(approximate='tanh')
)

func (a Activation) String() string {
	switch a {
	case LeakyReLU:
		return "leaky relu"
	case Sigmoid:
		return "sigmoid"
	case Tanh:
		return "tanh"
	case SiLU:
		return "silu"
	case GELUErf:
		return "gelu"
	case GELUTanh:
		return "gelu (tanh)"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// DropoutKey selects one dropout mask: the run's seed, the layer (stream)
// and the training step, as cpuref.DropoutKey, whose counter-based
// generator every backend reproduces bit for bit.
type DropoutKey struct {
	Seed   uint64
	Stream uint32
	Step   uint64
	// At, when not nil, is a per-step values tensor (Graphs) that Step is
	// read from when the operation runs (StepVals.DropoutStep); Step is
	// then ignored.
	At Tensor
}

// AugmentParams select the training augmentation of a batch (AugmentBatch),
// as host/data's Augment and its counter-based draw, which every backend
// reproduces bit for bit: a random crop of the image zero-padded by Pad
// pixels on every side (0: no crop) and, when Flip, a random horizontal
// flip; the draw of an image is data.Augment.Draw(Seed, Step, row), row
// being the image's index in the training set.
type AugmentParams struct {
	Pad        int
	Flip       bool
	Seed, Step uint64
}

// MaxAugmentPad bounds AugmentParams.Pad.
const MaxAugmentPad = 64

// Fusions says which fused forms of operations a backend runs as one
// pass, cheaper than the operations one after the other. Every backend
// computes every form; the model chooses by this (nn.NewModel).
type Fusions struct {
	// ConvReLU: Conv2DForward with EpilogueReLU is one pass (the GPU
	// backend: bias and ReLU in the implicit-GEMM kernels' epilogue).
	ConvReLU bool
	// BatchNormReLU: BatchNormForward with EpilogueReLU is one pass, in
	// training and in evaluation (the GPU backend: bn_train_fwd_v2,
	// bn_eval_fwd_v2; the CPU backend: cpuref.BatchNorm32).
	BatchNormReLU bool
	// AddReLU: AddReLU is one pass (the CPU backend:
	// cpuref.AddReLUForward; the GPU backend: add_relu_v1), cheaper than
	// Add and then ReLUForward.
	AddReLU bool
	// BatchNormBackwardReLU: BatchNormBackwardReLU is one pass (the CPU
	// backend: cpuref.BatchNorm32.BackwardReLU; the GPU backend:
	// bn_bwd_relu_v1, the mask recomputed from x), cheaper than
	// ReLUBackward and then BatchNormBackward; and BatchNormBackwardKeep
	// takes the ReLU (BNReLU) as well.
	BatchNormBackwardReLU bool
	// ConvBackward: Conv2DBackward is cheaper than its two passes apart
	// (the GPU backend: one channels-last copy of dy for both packed
	// kernels at TF32 and BF16), and the layers run it, with a
	// Conv2DForwardKeep tensor where ConvKeepLen is not 0.
	ConvBackward bool
	// BatchNormKeep: BatchNormForwardKeep makes what the convolution after
	// it keeps (ConvKeepLen not 0) in the batch norm's own pass, cheaper
	// than the convolution making it (the GPU backend: y's bfloat16
	// copy), and a batch norm read only by such a convolution runs it;
	// likewise BatchNormBackwardKeep for the convolution before it
	// (ConvDyCopyLen not 0), whose output only the batch norm reads.
	BatchNormKeep bool
	// AddReLUKeep: AddReLUKeep makes what the convolutions reading its
	// output keep in the add's own pass, cheaper than each convolution
	// making it (the GPU backend: y's bfloat16 copy), and a residual add
	// with its ReLU read by such convolutions runs it.
	AddReLUKeep bool
}

// BNReLU is the ReLU after a batch norm whose backward pass runs in the
// batch norm's (BatchNormBackwardReLU, BatchNormBackwardKeep): Y its
// output and Beta the batch norm's shift. The zero BNReLU is no ReLU.
type BNReLU struct{ Beta, Y Tensor }

// On reports whether r is a ReLU (either tensor given; a backend needs
// both, and refuses a nil one).
func (r BNReLU) On() bool { return r.Beta != nil || r.Y != nil }

// ConvKeep is a convolution g reading a layer's output and its
// Conv2DForwardKeep tensor XK (AddReLUKeep).
type ConvKeep struct {
	G  geom.ConvGeom
	XK Tensor
}

// Memory allocates, copies and frees a backend's tensors.
type Memory interface {
	// Name says which backend and device this is, e.g. "cpu (2 threads)".
	Name() string
	// Fusions says which fused operations run as one pass.
	Fusions() Fusions

	// NewTensor allocates n float32 elements set to zero.
	NewTensor(n int) (Tensor, error)
	// NewIndexTensor allocates n int32 elements set to zero.
	NewIndexTensor(n int) (Tensor, error)
	// Upload copies len(src) == dst.Len() float32 values into dst.
	Upload(dst Tensor, src []float32) error
	// UploadIndex copies len(src) == dst.Len() int32 values into dst.
	UploadIndex(dst Tensor, src []int32) error
	// NewByteTensor allocates n uint8 elements set to zero: n bytes, a
	// quarter of a float32 tensor's. Only UploadBytes, GatherImages (as
	// its source) and Free take a byte tensor.
	NewByteTensor(n int) (Tensor, error)
	// UploadBytes copies len(src) == dst.Len() bytes into the byte tensor dst.
	UploadBytes(dst Tensor, src []uint8) error
	// NewBF16Tensor allocates n elements set to zero whose values are
	// bfloat16: a BF16 convolution's output for the batch norm after it
	// (ConvOutputBF16), or its input gradient for that batch norm's
	// backward pass (ConvInputGradBF16), or that batch norm's output for
	// a residual add, half a float32 tensor's memory on the GPU (the CPU
	// backend holds float32 values that are bfloat16). Only Conv2DForward
	// and Conv2DForwardKeep (as y, where ConvOutputBF16),
	// Conv2DBackwardData and Conv2DBackward (as dx, where
	// ConvInputGradBF16), the batch-norm operations (as x; their backward
	// passes as dy too, BatchNormForward as y, where x is one; not
	// BatchNormForwardKeep's y where it makes a copy), ReLUBackward (as
	// dy), Add, AddReLU and AddReLUKeep (as a or b, one of them),
	// Download and Free take one.
	NewBF16Tensor(n int) (Tensor, error)
	// Download copies src (float32, or a NewBF16Tensor's values) into
	// len(dst) == src.Len() host values.
	Download(dst []float32, src Tensor) error
	// Fill sets every element of the float32 tensor t to v.
	Fill(t Tensor, v float32) error
	// Free releases t; using it afterwards is an error.
	Free(t Tensor) error

	// IndexView returns elements [off, off+n) of the index tensor idx as an
	// index tensor that shares idx's storage: it reads what idx holds when
	// it is used. A view is read-only (UploadIndex into it, or an argmax or
	// gather output written to it, is an error), is not freed (Free on it
	// is an error) and is invalid once idx is freed. Views let a whole
	// epoch's batch order be uploaded once and gathered from step by step.
	IndexView(idx Tensor, off, n int) (Tensor, error)

	// Sync waits for all queued work and returns its first error.
	Sync() error
	// Close releases everything the backend holds.
	Close() error
}

// Ops are the operations of a training step.
type Ops interface {
	// Conv2DForward: x is (N,C,H,W), w is (K,C,R,S), b is (K), y is
	// (N,K,P,Q), y = ep(conv(x, w) + b).
	Conv2DForward(g geom.ConvGeom, x, w, b, y Tensor, ep Epilogue) error
	// Conv2DBackwardData: dy is (N,K,P,Q), w is (K,C,R,S), dx is (N,C,H,W),
	// overwritten with ∂E/∂x.
	Conv2DBackwardData(g geom.ConvGeom, dy, w, dx Tensor) error
	// Conv2DBackwardFilter: x is (N,C,H,W), dy is (N,K,P,Q); dw (K,C,R,S) and
	// db (K) are overwritten with ∂E/∂w and ∂E/∂b. Deterministic.
	Conv2DBackwardFilter(g geom.ConvGeom, x, dy, dw, db Tensor) error
	// Conv2DBackward is Conv2DBackwardFilter then, when dx is not nil,
	// Conv2DBackwardData (dx from dy and w), with their bits; a backend
	// whose Fusions has ConvBackward shares work between the two. xk, when
	// not nil, is a tensor of Conv2DForwardKeep's for g and x.
	Conv2DBackward(g geom.ConvGeom, x, dy, w, dw, db, dx, xk Tensor) error
	// ConvKeepLen is the length of the tensor in which Conv2DForwardKeep
	// keeps, for Conv2DBackward, what its forward pass made of x (the GPU
	// backend at BF16: x's bfloat16 channels-last copy); 0 when the
	// backend keeps nothing for g.
	ConvKeepLen(g geom.ConvGeom) int
	// Conv2DForwardKeep is Conv2DForward, keeping in xk (ConvKeepLen(g)
	// elements) what Conv2DBackward with xk reads instead of x, which must
	// not be written in between. The same bits as Conv2DForward.
	Conv2DForwardKeep(g geom.ConvGeom, x, w, b, y Tensor, ep Epilogue, xk Tensor) error
	// ConvXCopyLen is the length of the tensor in which the layer that
	// writes a convolution's x can make what g's forward pass (and only
	// that one) reads of x, where the backend keeps nothing for g
	// (ConvKeepLen 0): BatchNormForwardKeep or AddReLUKeep given such a
	// tensor (one a batch may share: each copy is read by the next
	// forward pass, Conv2DForward or Conv2DForwardKeep on g and x) makes
	// it, and that pass reads it instead of making it (the GPU backend at
	// TF32: x's TF32 channels-last copy); 0 when the backend makes nothing
	// for g.
	ConvXCopyLen(g geom.ConvGeom) int
	// ConvOutputBF16 reports whether Conv2DForward and Conv2DForwardKeep
	// on g take a NewBF16Tensor as y, storing each output value (after the
	// bias and the epilogue) rounded to bfloat16 (cpuref.RoundBF16), as
	// PyTorch's bf16 autocast stores a convolution's output: where g's
	// forward pass runs in BF16 (the GPU backend at BF16 on BF16 tensor
	// cores; NewCPUBackendRounding where it rounds that pass with
	// RoundBF16). The batch-norm operations read such a tensor as their x
	// (its values, the bits of a float32 x holding them). Elsewhere a
	// bfloat16 y is refused.
	ConvOutputBF16(g geom.ConvGeom) bool
	// ConvInputGradBF16 reports whether Conv2DBackwardData and
	// Conv2DBackward on g take a NewBF16Tensor as dx, storing each value
	// rounded to bfloat16 (cpuref.RoundBF16), as PyTorch's bf16 autocast
	// stores the gradient of a bfloat16 activation: where g's
	// backward-data pass runs in BF16 (the GPU backend at BF16 on BF16
	// tensor cores; NewCPUBackendRounding where it rounds that pass with
	// RoundBF16). The batch norms' backward passes read such a tensor as
	// their dy where their x is a bfloat16 tensor too. Elsewhere a
	// bfloat16 dx is refused.
	ConvInputGradBF16(g geom.ConvGeom) bool

	// ReLUForward: y = max(x, 0), elementwise, equal lengths.
	ReLUForward(x, y Tensor) error
	// ReLUBackward: dx = dy where x > 0, else 0.
	ReLUBackward(x, dy, dx Tensor) error

	// MaxPoolForward: x is (N,C,H,W), y and argmax (int32) are (N,C,P,Q);
	// argmax holds the flat index into x of the first maximum of each window.
	MaxPoolForward(g geom.PoolGeom, x, y, argmax Tensor) error
	// MaxPoolDenseForward is MaxPoolForward(g, x, y, argmax) and then
	// DenseForward(g.N, C·P·Q, out, y, w, b, z) on the pooled images
	// flattened: the same results (the GPU backend in one launch).
	MaxPoolDenseForward(g geom.PoolGeom, x, y, argmax Tensor, out int, w, b, z Tensor) error
	// MaxPoolDenseSoftmax is MaxPoolDenseForward(g, x, y, argmax, classes,
	// w, b, logits) and then SoftmaxCrossEntropyMetrics(g.N, classes,
	// logits, labels, loss, dlogits, lossSum, correct): a network's last
	// max-pool, its dense output layer and the loss with the step's
	// metrics, the same results (the GPU backend in one launch).
	MaxPoolDenseSoftmax(g geom.PoolGeom, x, y, argmax Tensor, classes int, w, b, logits, labels, loss, dlogits, lossSum, correct Tensor) error
	// MaxPoolBackward: dx (N,C,H,W) is overwritten with dy routed to argmax.
	MaxPoolBackward(g geom.PoolGeom, dy, argmax, dx Tensor) error
	// MaxPoolBackwardReLU is MaxPoolBackward and then ReLUBackward(x, dx,
	// dx) with x the pool's input (N,C,H,W), the output of a ReLU: dx is
	// overwritten with the gradient at the ReLU's input (the GPU backend
	// in one launch).
	MaxPoolBackwardReLU(g geom.PoolGeom, dy, argmax, x, dx Tensor) error

	// BatchNormForward normalises x (N,C,H·W) per channel into y, with
	// γ = gamma and β = beta (C), as PyTorch's BatchNorm2d and bit for bit
	// as cpuref: in training (train) with the batch's statistics
	// (cpuref.BatchNormTrainForward32), writing μ and 1/√(σ²+ε) to saveMean
	// and saveInvStd (C) for the backward pass and updating runMean and
	// runVar (C) with momentum; in evaluation with runMean and runVar
	// (cpuref.BatchNormEvalForward; saveMean and saveInvStd unused). With
	// EpilogueReLU, y = max(0, ·) as ReLUForward, the same bits as the two
	// operations one after the other.
	BatchNormForward(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y Tensor, ep Epilogue, momentum, eps float64) error
	// BatchNormForwardKeep is BatchNormForward, making in xk
	// (ConvKeepLen(g) elements) too what Conv2DForwardKeep(g, y, …, xk)
	// keeps of its input, g being the convolution that reads y next (g.N,
	// g.C and g.H·g.W are n, c and hw): that call, the next on xk, reads
	// it instead of making it, while y is not written in between (the GPU
	// backend at BF16: y's bfloat16 channels-last copy, written as y is).
	// Where ConvKeepLen(g) is 0 and ConvXCopyLen(g) is not, xk (at least
	// that long) gets that copy instead, for g's forward pass, next. The
	// same bits as BatchNormForward; nil xk: BatchNormForward. With
	// copyOnly, y is wanted only through the copy g keeps (its
	// Conv2DForwardKeep and Conv2DBackward with xk, nothing else reading
	// y): where that copy is made, y's values may be left unwritten (the
	// GPU backend at BF16; until a batch norm writes y again it refuses a
	// conv pass that would read them); the CPU backend writes y.
	BatchNormForwardKeep(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y Tensor, ep Epilogue, momentum, eps float64, g geom.ConvGeom, xk Tensor, copyOnly bool) error
	// BatchNormBackward: the training-mode gradients dx (N,C,H·W; nil: not
	// wanted), dgamma and dbeta (C) from x, gamma and the saved statistics,
	// as cpuref.BatchNormBackward32. Overwrites; deterministic.
	BatchNormBackward(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta Tensor) error
	// BatchNormBackwardKeep is BatchNormBackward, making too in dyk (at
	// least ConvDyCopyLen(g) elements) what Conv2DBackward(g, …, dy = dx,
	// …) with dx wanted reads of its dy, g being the convolution whose
	// output the batch norm normalised (g.N, g.K and g.P·g.Q are n, c and
	// hw): that call, the next backward pass of a convolution, reads it
	// instead of making it, while neither dx nor dyk is written in
	// between (the GPU backend at TF32 and BF16: dx's channels-last copy,
	// written as dx is). The same bits as BatchNormBackward; nil dyk:
	// BatchNormBackward. With copyOnly, dx is wanted only as that call's
	// dy, the call without a bias gradient (db nil): where the backend
	// makes the copy it may leave dx's values unwritten (the GPU backend:
	// both backward kernels read only the copy), and refuse a pass that
	// would read them. With relu (not the zero BNReLU), dy is the
	// gradient at that ReLU's output: BatchNormBackwardReLU(n, c, hw, x,
	// gamma, relu.Beta, saveMean, saveInvStd, relu.Y, dy, …) in place of
	// BatchNormBackward, the same bits.
	BatchNormBackwardKeep(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta Tensor, g geom.ConvGeom, dyk Tensor, copyOnly bool, relu BNReLU) error
	// ConvDyCopyLen is the length of the tensor in which
	// BatchNormBackwardKeep makes what Conv2DBackward on g reads of its dy
	// (the GPU backend at TF32 and BF16: dy's channels-last copy, where
	// the two backward kernels share one); 0 when the backend makes
	// nothing for g.
	ConvDyCopyLen(g geom.ConvGeom) int

	// BatchNormBackwardReLU is, for a batch normalisation followed by a
	// ReLU whose output is y (N,C,H·W) and whose output gradient is dy,
	// ReLUBackward(y, dy, m) (y masks as the ReLU's input would: y > 0
	// exactly where it is > 0) and then BatchNormBackward with dy = m,
	// the same bits, m not kept and dy not changed. dx may be nil, or dy
	// (not y). gamma and beta are the batch norm's (C), and with the saved
	// statistics those of the training forward pass that made y: y > 0
	// exactly where γ·x̂ + β > 0 as that pass computed it, so a backend may
	// mask with either (the GPU backend recomputes the sign from x and
	// reads neither y nor a masked copy).
	BatchNormBackwardReLU(n, c, hw int, x, gamma, beta, saveMean, saveInvStd, y, dy, dx, dgamma, dbeta Tensor) error

	// AvgPoolForward: x is (N,C,H,W), y (N,C,P,Q) the mean over each window,
	// padded zeros counted (PyTorch's count_include_pad).
	AvgPoolForward(g geom.AvgPoolGeom, x, y Tensor) error
	// AvgPoolBackward: dx (N,C,H,W) is overwritten with each window's dy
	// shared over its elements.
	AvgPoolBackward(g geom.AvgPoolGeom, dy, dx Tensor) error
	// GlobalAvgPoolForward: x is (N,C,H·W), y (N,C) its mean per channel.
	GlobalAvgPoolForward(n, c, hw int, x, y Tensor) error
	// GlobalAvgPoolBackward: dx (N,C,H·W) = dy[n,c]/(H·W).
	GlobalAvgPoolBackward(n, c, hw int, dy, dx Tensor) error

	// ActivationForward: y = act(x) elementwise, equal lengths; param is
	// LeakyReLU's slope (unused by the others).
	ActivationForward(act Activation, param float32, x, y Tensor) error
	// ActivationBackward: dx = dy·act'(·) from the forward input x
	// (LeakyReLU, SiLU, GELU) or output y (Sigmoid, Tanh), as cpuref.
	ActivationBackward(act Activation, param float32, x, y, dy, dx Tensor) error
	// DropoutForward: y = x·mask/(1−p) with the keep-mask of key and drop
	// probability p (cpuref.DropoutMask); p = 0 copies x.
	DropoutForward(key DropoutKey, p float32, x, y Tensor) error
	// DropoutBackward: dx = dy·mask/(1−p) with the same mask, drawn again
	// from key (nothing is stored between the passes).
	DropoutBackward(key DropoutKey, p float32, dy, dx Tensor) error
	// Add: y = a + b elementwise, equal lengths (a residual merge).
	Add(a, b, y Tensor) error
	// AddReLU: y = max(a + b, 0) elementwise, equal lengths, the bits of
	// Add and then ReLUForward (a residual merge and the ReLU after it).
	AddReLU(a, b, y Tensor) error
	// AddReLUKeep is AddReLU, making too, for each of keeps (at most two:
	// convolutions that read y, each with its Conv2DForwardKeep tensor of
	// ConvKeepLen(k.G) elements), what Conv2DForwardKeep(k.G, y, …, k.XK)
	// keeps of its input: that call, the next on k.XK, reads it instead of
	// making it, while y is not written in between (the GPU backend at
	// BF16: y's bfloat16 channels-last copy, written as y is). Where
	// ConvKeepLen(keeps[0].G) is 0 and ConvXCopyLen is not, keeps[0].XK
	// (at least that long) gets that copy instead, for the forward pass
	// of keeps[0].G, the next on y. The same bits as AddReLU; no keeps:
	// AddReLU.
	AddReLUKeep(a, b, y Tensor, keeps []ConvKeep) error
	// ConcatForward: xs[i] is (N,cs[i],HW), y (N,Σcs,HW) their channels in
	// order.
	ConcatForward(n, hw int, cs []int, xs []Tensor, y Tensor) error
	// ConcatBackward: dxs[i] (N,cs[i],HW) is overwritten with its channels
	// of dy; a nil dxs[i] is skipped.
	ConcatBackward(n, hw int, cs []int, dy Tensor, dxs []Tensor) error

	// DenseForward: x is (N,In), w is (Out,In), b is (Out) or nil (no
	// bias), y = x·wᵀ + b is (N,Out).
	DenseForward(n, in, out int, x, w, b, y Tensor) error
	// DenseBackwardPoolReLU is, for a dense layer of out outputs whose
	// input x is the max-pool g's output flattened (In = C·P·Q, N = g.N),
	// DenseBackward(g.N, In, out, x, w, dy, dx, dw, db) and, when dxr is
	// not nil, MaxPoolBackwardReLU(g, dx, argmax, xr, dxr) of that dx, dx
	// itself not kept: the same results (the GPU backend in one launch).
	DenseBackwardPoolReLU(g geom.PoolGeom, out int, x, w, dy, dw, db, argmax, xr, dxr Tensor) error
	// DenseBackward: dw = dyᵀ·x (Out,In), db = Σ_n dy (Out) when db is not
	// nil, and, when dx is not nil, dx = dy·w (N,In). Overwrites;
	// deterministic.
	DenseBackward(n, in, out int, x, w, dy, dx, dw, db Tensor) error

	// SoftmaxCrossEntropy: logits (N,Classes), labels int32 (N). Writes the
	// mean loss over the batch into loss[0] and its gradient into dlogits.
	SoftmaxCrossEntropy(n, classes int, logits, labels, loss, dlogits Tensor) error
	// MSE: y and t are (N,Dim). loss[0] = (1/N)·Σ ½(t−y)², dy = (y−t)/N.
	MSE(n, dim int, y, t, loss, dy Tensor) error
	// CountCorrect adds to acc[0] the number of rows whose largest logit
	// (first on ties) is at the label.
	CountCorrect(n, classes int, logits, labels, acc Tensor) error
	// SoftmaxCrossEntropyMetrics is SoftmaxCrossEntropy, then
	// Accumulate(lossSum, loss) and CountCorrect(n, classes, logits,
	// labels, correct), with the same results: a training step's loss, its
	// gradient and its metrics (the GPU backend in one launch).
	SoftmaxCrossEntropyMetrics(n, classes int, logits, labels, loss, dlogits, lossSum, correct Tensor) error
	// Accumulate adds src elementwise to dst (equal lengths).
	Accumulate(dst, src Tensor) error

	// SGDStep, elementwise over p, grad, vel of equal length (PyTorch's form):
	//	v ← momentum·v + (grad + weightDecay·p);  p ← p − lr·v
	SGDStep(p, grad, vel Tensor, lr, momentum, weightDecay float32) error
	// SGDNesterovStep is SGDStep with Nesterov momentum (PyTorch's nesterov=True):
	//	d ← grad + weightDecay·p;  v ← momentum·v + d;  p ← p − lr·(d + momentum·v)
	SGDNesterovStep(p, grad, vel Tensor, lr, momentum, weightDecay float32) error
	// AdamStep takes step `step` (from 1) of Adam, or of AdamW when
	// decoupled, elementwise over p, grad and the moments m and v (equal
	// lengths), as cpuref.AdamStep (PyTorch's formulas): m ← β1·m + (1−β1)·g,
	// v ← β2·v + (1−β2)·g², p ← p − lr·m̂/(√v̂ + eps) with the bias-corrected
	// m̂ = m/(1−β1^step), v̂ = v/(1−β2^step); weightDecay is added to the
	// gradient (Adam) or multiplies p by 1 − lr·weightDecay first (AdamW).
	// Both backends give the same bits.
	AdamStep(p, grad, m, v Tensor, lr, beta1, beta2, eps, weightDecay float32, step int, decoupled bool) error
	// UpdateParams applies one step of u to every parameter of ps, with
	// the same bits as SGDStep, SGDNesterovStep or AdamStep (u.Rule) on
	// each in turn; the GPU backend in one launch for all of them. Every
	// tensor is checked before any is updated (CheckUpdate, then lengths).
	UpdateParams(ps []ParamState, u Update) error

	// FirstNonFinite sets out[0] (float32) to the index in ts of the first
	// float32 tensor holding a NaN or an infinity, or to len(ts) when all
	// are finite; fewer than 2²⁴ tensors. Nothing is read back to the
	// host: the caller downloads out when it wants the answer (the GPU
	// backend checks on the device, in two launches).
	FirstNonFinite(ts []Tensor, out Tensor) error

	// AugmentBatch gathers and augments a batch of training images: src is
	// the training set (M,C,H,W), rows int32 (N) the images' indices in it
	// (each in [0, M)), dst (N,C,H,W), not src, is overwritten with
	//	dst[i] = augment(src[rows[i]], draw(p.Seed, p.Step, rows[i]))
	// as data.Augment.Apply defines it: the crop window (DY, DX) of the
	// image zero-padded by p.Pad, then the flip; padding reads 0 (in the
	// model's standardised input, the channel's mean).
	AugmentBatch(p AugmentParams, n, c, h, w int, src, rows, dst Tensor) error

	// Gather copies rows: dst[i,:] = src[idx[i],:] for i < idx.Len(), rows of
	// rowLen elements; src and dst float32, or both int32; idx int32.
	Gather(rowLen int, src, idx, dst Tensor) error

	// GatherImages assembles a batch of model inputs from a data set kept as
	// bytes: src is a byte tensor (M,C,H,W), lut float32 (C,256) holds
	// channel c's input value of every byte, rows int32 (N) the images'
	// indices in src (each in [0, M)), and dst (N,C,H,W) float32 is
	// overwritten with
	//	dst[i] = augment(lut(src[rows[i]]), draw(p.Seed, p.Step, rows[i]))
	// lut(image)[c,y,x] = lut[c, image[c,y,x]], and augment as AugmentBatch
	// (padding reads 0); the zero AugmentParams (no crop, no flip) is the
	// plain gather, looked up. The result is a copy of table entries and
	// zeros: every backend gives the same bits, those of Gather from the
	// looked-up set followed by AugmentBatch.
	GatherImages(p AugmentParams, n, c, h, w int, lut, src, rows, dst Tensor) error
	// GatherBatch is GatherImages(p, n, c, h, w, lut, src, rows, dst) and
	// Gather(1, labels, rows, dlabels): a batch's inputs and their labels
	// (int32, one per image of src), the same results (the GPU backend in
	// one launch). With rows an IndexViewAt (Graphs), the draw's step is
	// read from its per-step values (StepVals.AugmentStep), not p.Step.
	GatherBatch(p AugmentParams, n, c, h, w int, lut, src, labels, rows, dst, dlabels Tensor) error
}
