package nn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// Param is one parameter tensor of a model with its gradient and its
// optimiser state, all of Len() == product of Shape and owned by the
// model's backend. Grad is overwritten by every Backward. Vel is SGD's
// velocity, or Adam's first moment m; Sq is Adam's second moment v, nil
// until Model.SetOptimizer chooses Adam or AdamW (see Param.OptimState).
type Param struct {
	Name  string // "layer1.weight", "layer1.bias", …
	Shape []int  // (K,C,R,S) or (K) for conv, (Out,In) or (Out) for dense
	Value backend.Tensor
	Grad  backend.Tensor
	Vel   backend.Tensor
	Sq    backend.Tensor
}

// Model is a sequential network whose parameters live on a Backend. It is
// built once; per batch size a Batch holds every activation and gradient,
// so a training step allocates nothing.
type Model struct {
	be     backend.Backend
	spec   Spec
	infos  []LayerInfo
	params []*Param
	// w and b index params for layer i; -1 for layers without parameters.
	w, b []int
	// needDX[i]: some layer before i has parameters, so layer i must
	// propagate the gradient to its input.
	needDX []bool
	// fused[i]: layer i is a ReLU followed by a MaxPool, and the pair runs
	// as max-pool then ReLU (see NewModel).
	fused []bool
	// convReLU[i]: layer i is a Conv followed by a ReLU, and the pair runs
	// as one Conv2DForward with EpilogueReLU writing the ReLU's output (see NewModel).
	convReLU []bool
	opt      Optimizer // the update rule (optimizer.go)
	steps    int       // updates applied
}

// initStream and ShuffleStream select independent PCG streams of the seed
// for parameter initialisation and for shuffling, so changing the model
// does not change the order of the batches.
const (
	initStream    = 0x9e3779b97f4a7c15
	ShuffleStream = 0xbf58476d1ce4e5b9
)

// NewModel checks spec, allocates the parameters, their gradients and
// velocities on be and initialises them from seed (a PCG stream), by
// spec.Init:
//
//	GlorotInit, every weight:                  w ~ U(±√(6/(fan_in+fan_out)))
//	HeInit, Conv and Dense followed by ReLU:   w ~ N(0, 2/fan_in)
//	HeInit, other layers (the output):         Glorot as above
//	biases and velocities:                     0
//
// with fan_in = C·R·S and fan_out = K·R·S (conv), or In and Out (dense).
//
// Two rewrites cut the work and the launches of a step; both give the same
// values and gradients as the layers run as written, bit for bit.
//
// On a backend whose Fusions say that a convolution with a ReLU epilogue is
// one pass (the GPU backend: the bias and the ReLU in the implicit-GEMM
// kernels' epilogue), a Conv directly followed by a ReLU runs as one
// Conv2DForward with EpilogueReLU, y = max(0, conv(x)),
// and the conv's own output is never stored. The ReLU's backward pass then
// masks with y instead of the conv output z: y = max(z, 0) > 0 exactly when
// z > 0 (and both comparisons are false for NaN), so
//
//	∂E/∂z = ∂E/∂y where y > 0, else 0
//
// is the same. Such a ReLU is not moved past a MaxPool that follows it
// (conv+ReLU fused, then the pool): the reordering below would need the
// conv output to be stored and the ReLU launched on its own again.
//
// Otherwise (the CPU backend, or a ReLU not after a Conv), a ReLU directly
// followed by a MaxPool runs as the max-pool and then the ReLU on the
// pooled tensor, a quarter of the size for 2×2 windows. ReLU is monotonic,
// so max(relu(x)) = relu(max(x)), and the first maximum of a window is the
// same element in x and in relu(x) unless the maximum is ≤ 0, where the
// gradient is 0 in both orders.
func NewModel(be backend.Backend, spec Spec, seed uint64) (*Model, error) {
	return newModel(be, spec, seed, true)
}

// newModel is NewModel, with fuse false running every layer as written.
func newModel(be backend.Backend, spec Spec, seed uint64, fuse bool) (*Model, error) {
	infos, err := spec.Check()
	if err != nil {
		return nil, err
	}
	m := &Model{be: be, spec: spec, infos: infos}
	m.fused = make([]bool, len(infos))
	m.convReLU = make([]bool, len(infos))
	fwd := be.Fusions().ConvReLU
	for i := range infos {
		next := LayerKind(0)
		if i+1 < len(infos) {
			next = infos[i+1].Spec.Kind
		}
		m.convReLU[i] = fuse && fwd && infos[i].Spec.Kind == Conv && next == ReLU
		m.fused[i] = fuse && infos[i].Spec.Kind == ReLU && next == MaxPool && !(i > 0 && m.convReLU[i-1])
	}
	m.spec.Layers = append([]LayerSpec(nil), spec.Layers...)
	rng := rand.New(rand.NewPCG(seed, initStream))
	seen := false
	for i, info := range infos {
		m.needDX = append(m.needDX, seen)
		m.w = append(m.w, -1)
		m.b = append(m.b, -1)
		var wShape []int
		var fanIn, fanOut int
		switch info.Spec.Kind {
		case Conv:
			g := info.Conv
			wShape, fanIn, fanOut = []int{g.K, g.C, g.R, g.S}, g.C*g.R*g.S, g.K*g.R*g.S
		case Dense:
			wShape, fanIn, fanOut = []int{info.Out.C, info.In.C}, info.In.C, info.Out.C
		default:
			continue
		}
		seen = true
		he := spec.Init == HeInit && i+1 < len(infos) && infos[i+1].Spec.Kind == ReLU
		w := make([]float32, product(wShape))
		for j := range w {
			if he {
				w[j] = float32(rng.NormFloat64() * math.Sqrt(2/float64(fanIn)))
			} else {
				a := math.Sqrt(6 / float64(fanIn+fanOut))
				w[j] = float32((2*rng.Float64() - 1) * a)
			}
		}
		name := fmt.Sprintf("layer%d.", i+1)
		pw, err := m.newParam(name+"weight", wShape, w)
		if err != nil {
			return nil, errors.Join(err, m.Close())
		}
		m.w[i] = len(m.params)
		m.params = append(m.params, pw)
		pb, err := m.newParam(name+"bias", wShape[:1], nil)
		if err != nil {
			return nil, errors.Join(err, m.Close())
		}
		m.b[i] = len(m.params)
		m.params = append(m.params, pb)
	}
	return m, nil
}

func product(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}

// newParam allocates a parameter with value init (zero when nil).
func (m *Model) newParam(name string, shape []int, init []float32) (*Param, error) {
	n := product(shape)
	p := &Param{Name: name, Shape: shape}
	var err error
	if p.Value, err = m.be.NewTensor(n); err != nil {
		return nil, fmt.Errorf("host: %s: %w", name, err)
	}
	if p.Grad, err = m.be.NewTensor(n); err != nil {
		return nil, fmt.Errorf("host: %s: %w", name, errors.Join(err, m.be.Free(p.Value)))
	}
	if p.Vel, err = m.be.NewTensor(n); err != nil {
		return nil, fmt.Errorf("host: %s: %w", name, errors.Join(err, m.be.Free(p.Value), m.be.Free(p.Grad)))
	}
	if init != nil {
		if err := m.be.Upload(p.Value, init); err != nil {
			return nil, fmt.Errorf("host: %s: %w", name, err)
		}
	}
	return p, nil
}

// Backend is the backend the model lives on.
func (m *Model) Backend() backend.Backend { return m.be }

// Spec is the model's specification.
func (m *Model) Spec() Spec { return m.spec }

// Layers is the checked layer list with shapes.
func (m *Model) Layers() []LayerInfo { return m.infos }

// Params lists the parameters in layer order, weight before bias.
func (m *Model) Params() []*Param { return m.params }

// Classes is the width of the model's output.
func (m *Model) Classes() int { return m.infos[len(m.infos)-1].Out.C }

// InputLen is the per-image input size C·H·W.
func (m *Model) InputLen() int { return m.spec.C * m.spec.H * m.spec.W }

// Close frees the parameters.
func (m *Model) Close() error {
	var errs []error
	for _, p := range m.params {
		errs = append(errs, m.be.Free(p.Value), m.be.Free(p.Grad), m.be.Free(p.Vel))
		if p.Sq != nil {
			errs = append(errs, m.be.Free(p.Sq))
		}
	}
	m.params = nil
	return errors.Join(errs...)
}

// Batch holds every tensor of one batch size for a Model: the input, the
// labels, each layer's output and its gradient, pooling indices, the loss
// and the metric accumulators. Flatten's output and gradient alias its
// input's. All of it lives on the model's backend.
type Batch struct {
	N       int
	Idx     backend.Tensor // int32 (N): the rows of the data set in this batch (see Load)
	X       backend.Tensor // (N,C,H,W) the input
	Labels  backend.Tensor // int32 (N) class labels
	Targets backend.Tensor // (N,Classes) one-hot targets; MSE only, else nil
	Loss    backend.Tensor // (1) the mean loss of the last Forward
	// LossSum and Correct accumulate, over the steps since ResetMetrics,
	// the mean loss of each batch and the count of correct predictions.
	LossSum, Correct backend.Tensor

	acts   []backend.Tensor // acts[i] is the output of layer i, (N, Out_i); nil for a fused ReLU and a Conv fused with its ReLU
	grads  []backend.Tensor // grads[i] is ∂E/∂acts[i]; nil for a fused ReLU
	argmax []backend.Tensor // argmax[i], int32 (N, Out_i), for MaxPool layers
	// For a MaxPool i after a fused ReLU: pre[i] is the pooled input before
	// the ReLU and dpre[i] its gradient, both (N, Out_i).
	pre, dpre []backend.Tensor
	conv      []geom.ConvGeom
	pool      []geom.PoolGeom
	owned     []backend.Tensor
}

// NewBatch allocates the tensors of a batch of n images.
func (m *Model) NewBatch(n int) (*Batch, error) {
	if n < 1 || n > 4096 {
		return nil, fmt.Errorf("host: batch size %d outside 1 to 4096: %w", n, ErrSpec)
	}
	b := &Batch{N: n}
	fail := func(err error) (*Batch, error) {
		return nil, errors.Join(fmt.Errorf("host: batch of %d: %w", n, err), b.Free(m.be))
	}
	newF := func(elems int) (backend.Tensor, error) {
		t, err := m.be.NewTensor(elems)
		if err == nil {
			b.owned = append(b.owned, t)
		}
		return t, err
	}
	newI := func(elems int) (backend.Tensor, error) {
		t, err := m.be.NewIndexTensor(elems)
		if err == nil {
			b.owned = append(b.owned, t)
		}
		return t, err
	}
	var err error
	if b.Idx, err = newI(n); err != nil {
		return fail(err)
	}
	if b.X, err = newF(n * m.InputLen()); err != nil {
		return fail(err)
	}
	if b.Labels, err = newI(n); err != nil {
		return fail(err)
	}
	if m.spec.Loss == MSELoss {
		if b.Targets, err = newF(n * m.Classes()); err != nil {
			return fail(err)
		}
	}
	for _, t := range []*backend.Tensor{&b.Loss, &b.LossSum, &b.Correct} {
		if *t, err = newF(1); err != nil {
			return fail(err)
		}
	}
	L := len(m.infos)
	b.acts, b.grads = make([]backend.Tensor, L), make([]backend.Tensor, L)
	b.argmax = make([]backend.Tensor, L)
	b.pre, b.dpre = make([]backend.Tensor, L), make([]backend.Tensor, L)
	b.conv, b.pool = make([]geom.ConvGeom, L), make([]geom.PoolGeom, L)
	for i, info := range m.infos {
		if info.Spec.Kind == Flatten {
			b.acts[i], b.grads[i] = b.input(i), b.inputGrad(i)
			continue
		}
		if m.fused[i] {
			continue
		}
		if !m.convReLU[i] {
			if b.acts[i], err = newF(n * info.Out.Len()); err != nil {
				return fail(err)
			}
		}
		if b.grads[i], err = newF(n * info.Out.Len()); err != nil {
			return fail(err)
		}
		switch info.Spec.Kind {
		case Conv:
			b.conv[i] = info.Conv
			b.conv[i].N = n
		case MaxPool:
			b.pool[i] = info.Pool
			b.pool[i].N = n
			if b.argmax[i], err = newI(n * info.Out.Len()); err != nil {
				return fail(err)
			}
			if i > 0 && m.fused[i-1] {
				if b.pre[i], err = newF(n * info.Out.Len()); err != nil {
					return fail(err)
				}
				if b.dpre[i], err = newF(n * info.Out.Len()); err != nil {
					return fail(err)
				}
			}
		}
	}
	return b, nil
}

// input is the input of layer i: X or the previous layer's output.
func (b *Batch) input(i int) backend.Tensor {
	if i == 0 {
		return b.X
	}
	return b.acts[i-1]
}

// inputGrad is the gradient of layer i's input; nil for layer 0.
func (b *Batch) inputGrad(i int) backend.Tensor {
	if i == 0 {
		return nil
	}
	return b.grads[i-1]
}

// Output is the last layer's output, the logits (N,Classes).
func (b *Batch) Output() backend.Tensor { return b.acts[len(b.acts)-1] }

// Free releases the batch's tensors on be.
func (b *Batch) Free(be backend.Backend) error {
	var errs []error
	for _, t := range b.owned {
		errs = append(errs, be.Free(t))
	}
	b.owned = nil
	return errors.Join(errs...)
}

// ResetMetrics zeroes LossSum and Correct.
func (m *Model) ResetMetrics(b *Batch) error {
	return errors.Join(m.be.Fill(b.LossSum, 0), m.be.Fill(b.Correct, 0))
}

// Forward runs the layers on b.X, then the loss on b.Labels (or
// b.Targets), writing b.Loss and the gradient of the loss at the output,
// and adds the loss to b.LossSum and the correct predictions to b.Correct.
func (m *Model) Forward(b *Batch) error {
	be := m.be
	for i, info := range m.infos {
		x, y := b.input(i), b.acts[i]
		var err error
		switch {
		case m.fused[i]:
			continue // runs after the max-pool that follows
		case i > 0 && m.convReLU[i-1]:
			continue // ran with the conv before
		case m.convReLU[i]:
			err = be.Conv2DForward(b.conv[i], x, m.params[m.w[i]].Value, m.params[m.b[i]].Value, b.acts[i+1], backend.EpilogueReLU)
			if err != nil {
				return fmt.Errorf("host: forward layers %d and %d (%v, relu): %w", i+1, i+2, info.Spec, err)
			}
			continue
		case info.Spec.Kind == MaxPool && i > 0 && m.fused[i-1]:
			err = be.MaxPoolForward(b.pool[i], b.input(i-1), b.pre[i], b.argmax[i])
			if err == nil {
				err = be.ReLUForward(b.pre[i], y)
			}
			if err != nil {
				return fmt.Errorf("host: forward layers %d and %d (relu, %v): %w", i, i+1, info.Spec, err)
			}
			continue
		}
		switch info.Spec.Kind {
		case Conv:
			err = be.Conv2DForward(b.conv[i], x, m.params[m.w[i]].Value, m.params[m.b[i]].Value, y, backend.NoEpilogue)
		case ReLU:
			err = be.ReLUForward(x, y)
		case MaxPool:
			err = be.MaxPoolForward(b.pool[i], x, y, b.argmax[i])
		case Dense:
			err = be.DenseForward(b.N, info.In.C, info.Out.C, x, m.params[m.w[i]].Value, m.params[m.b[i]].Value, y)
		}
		if err != nil {
			return fmt.Errorf("host: forward layer %d (%v): %w", i+1, info.Spec, err)
		}
	}
	out, dout := b.Output(), b.grads[len(b.grads)-1]
	var err error
	if m.spec.Loss == MSELoss {
		err = be.MSE(b.N, m.Classes(), out, b.Targets, b.Loss, dout)
	} else {
		err = be.SoftmaxCrossEntropy(b.N, m.Classes(), out, b.Labels, b.Loss, dout)
	}
	if err != nil {
		return fmt.Errorf("host: loss: %w", err)
	}
	if err := be.Accumulate(b.LossSum, b.Loss); err != nil {
		return fmt.Errorf("host: loss sum: %w", err)
	}
	if err := be.CountCorrect(b.N, m.Classes(), out, b.Labels, b.Correct); err != nil {
		return fmt.Errorf("host: accuracy: %w", err)
	}
	return nil
}

// Backward propagates the loss gradient left by Forward through the layers,
// overwriting every parameter's Grad.
func (m *Model) Backward(b *Batch) error {
	be := m.be
	for i := len(m.infos) - 1; i >= 0; i-- {
		info := m.infos[i]
		x, dy, dx := b.input(i), b.grads[i], b.inputGrad(i)
		var err error
		switch {
		case m.fused[i]:
			continue // done with the max-pool that follows
		case info.Spec.Kind == MaxPool && i > 0 && m.fused[i-1]:
			if m.needDX[i-1] {
				err = be.ReLUBackward(b.pre[i], dy, b.dpre[i])
				if err == nil {
					err = be.MaxPoolBackward(b.pool[i], b.dpre[i], b.argmax[i], b.inputGrad(i-1))
				}
			}
			if err != nil {
				return fmt.Errorf("host: backward layers %d and %d (relu, %v): %w", i, i+1, info.Spec, err)
			}
			continue
		}
		switch info.Spec.Kind {
		case Conv:
			w := m.params[m.w[i]]
			err = be.Conv2DBackwardFilter(b.conv[i], x, dy, w.Grad, m.params[m.b[i]].Grad)
			if err == nil && m.needDX[i] {
				err = be.Conv2DBackwardData(b.conv[i], dy, w.Value, dx)
			}
		case ReLU:
			if i > 0 && m.convReLU[i-1] {
				x = b.acts[i] // the output masks as the input would: y > 0 ⇔ x > 0
			}
			if m.needDX[i] {
				err = be.ReLUBackward(x, dy, dx)
			}
		case MaxPool:
			if m.needDX[i] {
				err = be.MaxPoolBackward(b.pool[i], dy, b.argmax[i], dx)
			}
		case Dense:
			if !m.needDX[i] {
				dx = nil
			}
			w := m.params[m.w[i]]
			err = be.DenseBackward(b.N, info.In.C, info.Out.C, x, w.Value, dy, dx, w.Grad, m.params[m.b[i]].Grad)
		}
		if err != nil {
			return fmt.Errorf("host: backward layer %d (%v): %w", i+1, info.Spec, err)
		}
	}
	return nil
}

// Update applies one step of the model's optimiser (SetOptimizer; SGD
// unless set) to every parameter, with PyTorch's formulas, weight decay on
// biases too. With g = ∂E/∂p:
//
//	SGD:            v ← momentum·v + (g + weightDecay·p);  p ← p − lr·v
//	SGD, Nesterov:  d = g + weightDecay·p;  v ← momentum·v + d;  p ← p − lr·(d + momentum·v)
//	Adam, AdamW:    Backend.AdamStep with step t = Steps()+1 (momentum unused)
//
// It counts the step (Steps) when every parameter has been updated.
func (m *Model) Update(lr, momentum, weightDecay float32) error {
	o := m.opt
	for _, p := range m.params {
		var err error
		switch {
		case o.Kind == Adam || o.Kind == AdamW:
			err = m.be.AdamStep(p.Value, p.Grad, p.Vel, p.Sq, lr, float32(o.Beta1), float32(o.Beta2), float32(o.Eps),
				weightDecay, m.steps+1, o.Kind == AdamW)
		case o.Nesterov:
			err = m.be.SGDNesterovStep(p.Value, p.Grad, p.Vel, lr, momentum, weightDecay)
		default:
			err = m.be.SGDStep(p.Value, p.Grad, p.Vel, lr, momentum, weightDecay)
		}
		if err != nil {
			return fmt.Errorf("host: update %s: %w", p.Name, err)
		}
	}
	m.steps++
	return nil
}

// TrainStep is Forward, Backward and Update on the batch already in b.
func (m *Model) TrainStep(b *Batch, lr, momentum, weightDecay float32) error {
	if err := m.Forward(b); err != nil {
		return err
	}
	if err := m.Backward(b); err != nil {
		return err
	}
	return m.Update(lr, momentum, weightDecay)
}

// ParamValues downloads every parameter's value, in Params order.
func (m *Model) ParamValues() ([][]float32, error) {
	out := make([][]float32, len(m.params))
	for i, p := range m.params {
		out[i] = make([]float32, p.Value.Len())
		if err := m.be.Download(out[i], p.Value); err != nil {
			return nil, fmt.Errorf("host: download %s: %w", p.Name, err)
		}
	}
	return out, nil
}
