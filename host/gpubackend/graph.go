package gpubackend

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
)

// The GPU backend records steps (backend.Graphs) through gpu.Graph: a
// CUDA graph on a GPU, the recorded launches replayed on the simulator.
//
// A per-step values tensor is float32 words, each read by the kernels of
// the recorded step as gpu.Word:
//
//	[valOffset]          the batch's offset into the order (int32 bits): gather_batch_at_v1, augment_batch_at_v1
//	[valAugment, +2)     the augmentation draw's step, low then high 32 bits: augment_batch_at_v1
//	[valDropout, +2)     the dropout keys' step, low then high 32 bits: dropout_at_v1
//	[valUpdate, +10)     the optimiser's scalars: gpu.SGDWords (lr, momentum,
//	                     weight decay) or gpu.AdamWords (gpu.AdamScalars)
const (
	valOffset  = 0
	valAugment = 1
	valDropout = 3
	valUpdate  = 5
	valWords   = valUpdate + gpu.AdamWords
)

var _ backend.Graphs = (*gpuBackend)(nil)

// NewStepVals allocates a per-step values tensor of valWords words.
func (be *gpuBackend) NewStepVals() (backend.Tensor, error) {
	t, err := be.NewTensor(valWords)
	if err != nil {
		return nil, err
	}
	gt := t.(*gpuTensor)
	gt.vals, gt.maxOff = true, -1
	return gt, nil
}

// vals checks that t is a live per-step values tensor of this backend.
func (be *gpuBackend) valsTensor(name string, t backend.Tensor) (*gpuTensor, error) {
	gt, err := be.tensor(name, t)
	if err != nil {
		return nil, err
	}
	if !gt.vals {
		return nil, fmt.Errorf("host: %s is not a per-step values tensor (NewStepVals): %w", name, backend.ErrTensor)
	}
	return gt, nil
}

// SetStepVals writes the words of v into vals with one upload.
func (be *gpuBackend) SetStepVals(vals backend.Tensor, v backend.StepVals) error {
	vt, err := be.valsTensor("vals", vals)
	if err != nil {
		return fmt.Errorf("host: set step values: %w", err)
	}
	if v.Offset < 0 || (vt.maxOff >= 0 && v.Offset > vt.maxOff) || v.Offset > math.MaxInt32 {
		return fmt.Errorf("host: set step values: offset %d outside [0, %d]: %w", v.Offset, vt.maxOff, backend.ErrTensor)
	}
	var w [valWords]float32
	w[valOffset] = math.Float32frombits(uint32(int32(v.Offset)))
	gpu.StepWords(w[valAugment:], v.AugmentStep)
	gpu.StepWords(w[valDropout:], v.DropoutStep)
	u := v.Update
	switch u.Rule {
	case backend.RuleSGD, backend.RuleNesterov:
		w[valUpdate], w[valUpdate+1], w[valUpdate+2] = u.LR, u.Momentum, u.WeightDecay
	case backend.RuleAdam, backend.RuleAdamW:
		c, err := geom.AdamCoefficients(float64(u.LR), float64(u.Beta1), float64(u.Beta2), float64(u.Eps),
			float64(u.WeightDecay), u.Step, u.Rule == backend.RuleAdamW)
		if err != nil {
			return fmt.Errorf("host: set step values: %w", err)
		}
		gpu.AdamScalars(w[valUpdate:], c)
	default:
		return fmt.Errorf("host: set step values: unknown rule %v: %w", u.Rule, geom.ErrGeometry)
	}
	return gpuWrap("set step values", vt.buf.Upload(w[:]))
}

// IndexViewAt returns a view of n elements of idx at the offset that vals
// holds when an operation reads it; only Gather does.
func (be *gpuBackend) IndexViewAt(idx, vals backend.Tensor, n int) (backend.Tensor, error) {
	ix, err := be.i32("idx", idx, -1)
	if err != nil {
		return nil, err
	}
	vt, err := be.valsTensor("vals", vals)
	if err != nil {
		return nil, err
	}
	if n < 1 || n > ix.n {
		return nil, fmt.Errorf("host: index view at a per-step offset: %d of %d elements: %w", n, ix.n, backend.ErrTensor)
	}
	root := ix
	if root.parent != nil {
		return nil, fmt.Errorf("host: index view at a per-step offset: idx is a view: %w", backend.ErrTensor)
	}
	if vt.maxOff < 0 || ix.n-n < vt.maxOff {
		vt.maxOff = ix.n - n
	}
	return &gpuTensor{be: be, buf: root.buf, n: n, index: true, parent: root, at: vt}, nil
}

// gatherAt is Gather through an IndexViewAt: gather_batch_at_v1, the
// offset read from the view's per-step values.
func (be *gpuBackend) gatherAt(rowLen int, src backend.Tensor, ix *gpuTensor, dst backend.Tensor) error {
	if _, err := be.tensor("idx", ix); err != nil {
		return err
	}
	if _, err := be.valsTensor("idx's per-step values", ix.at); err != nil {
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
	switch {
	case s.index != d.index:
		return fmt.Errorf("host: gather: src and dst have different element types: %w", backend.ErrTensor)
	case d.parent != nil:
		return fmt.Errorf("host: gather: dst is a view (read-only): %w", backend.ErrTensor)
	case d.n != ix.n*rowLen:
		return fmt.Errorf("host: gather: dst has %d elements, want %d rows of %d: %w", d.n, ix.n, rowLen, backend.ErrTensor)
	case s.n%rowLen != 0:
		return fmt.Errorf("host: gather: src has %d elements, not a multiple of the row length %d: %w", s.n, rowLen, backend.ErrTensor)
	}
	if lo, hi := ix.indexRange(); lo < 0 || int(hi) >= s.n/rowLen {
		return fmt.Errorf("host: gather: indices lie in [%d, %d], outside [0, %d): %w", lo, hi, s.n/rowLen, backend.ErrTensor)
	}
	at := gpu.Word{Buf: ix.at.buf, Index: valOffset}
	if err := be.dev.GatherBatchAt(rowLen, s.buf, nil, ix.buf, at, d.buf, nil); err != nil {
		return gpuWrap("gather", err)
	}
	if d.index {
		d.lo, d.hi = s.indexRange()
	}
	return nil
}

// BeginCapture starts recording on the device.
func (be *gpuBackend) BeginCapture() error {
	if be.closed {
		return fmt.Errorf("host: gpu backend is closed: %w", backend.ErrTensor)
	}
	return gpuWrap("begin capture", be.dev.BeginCapture())
}

// EndCapture ends the recording and returns it as a gpu.Graph.
func (be *gpuBackend) EndCapture() (backend.Replay, error) {
	g, err := be.dev.EndCapture()
	if err != nil {
		return nil, gpuWrap("end capture", err)
	}
	return &gpuReplay{g: g}, nil
}

// gpuReplay is a recorded step: a gpu.Graph.
type gpuReplay struct{ g *gpu.Graph }

func (r *gpuReplay) Launch() error { return gpuWrap("replay", r.g.Launch()) }
func (r *gpuReplay) Kernels() int  { return r.g.Launches() }
func (r *gpuReplay) Free() error   { return gpuWrap("free replay", r.g.Destroy()) }

// atWord returns the word i of the per-step values tensor t (DropoutKey.At,
// Update.At).
func (be *gpuBackend) atWord(t backend.Tensor, i int) (gpu.Word, error) {
	vt, err := be.valsTensor("per-step values", t)
	if err != nil {
		return gpu.Word{}, err
	}
	return gpu.Word{Buf: vt.buf, Index: i}, nil
}
