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

// Model is a network whose parameters live on a Backend: a graph of
// layers (a sequence, with residual blocks as branches that merge),
// compiled once into a step plan (plan.go). Per batch size a Batch holds
// every activation and gradient, so a training step allocates nothing.
type Model struct {
	be     backend.Backend
	spec   Spec
	infos  []LayerInfo
	params []*Param
	// buffers are the running statistics (BatchNorm's running mean and
	// variance): Value only, updated by the forward pass in training.
	buffers []*Param
	g       *graph
	// dropoutSeed keys the dropout masks (with the layer and the step):
	// the initialisation seed, or the trainer's (SetDropoutSeed).
	dropoutSeed uint64
	opt         Optimizer            // the update rule (optimizer.go)
	steps       int                  // updates applied
	update      []backend.ParamState // Update's argument, reused every step
	bnSync      *BNSync              // BatchNorm synchronised over ranks (SetBatchNormSync); nil: per batch
	bf16BNOuts  bool                 // a batch stores a batch norm's output as bfloat16 (tensorInfo.bnAdd): no bnSync after
	// at is the per-step values tensor of the step being recorded
	// (RecordStep): the dropout keys and the update read their changing
	// values from it; nil otherwise.
	at backend.Tensor
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
//	HeInit, Conv and Dense read only by a ReLU: w ~ N(0, 2/fan_in)
//	HeInit, other layers (the output):         Glorot as above
//	biases and velocities:                     0
//
// with each kind's fan_in and fan_out (conv: C·R·S and K·R·S; dense: In
// and Out), the layers taken in the order Check numbers them.
//
// The step plan (plan.go) decides which neighbours run fused on be, with
// the same values and gradients, bit for bit, as the layers run as written.
func NewModel(be backend.Backend, spec Spec, seed uint64) (*Model, error) {
	return newModel(be, spec, seed, true)
}

// newModel is NewModel, with fuse false running every layer as written.
func newModel(be backend.Backend, spec Spec, seed uint64, fuse bool) (*Model, error) {
	infos, err := spec.Check()
	if err != nil {
		return nil, err
	}
	m := &Model{be: be, spec: spec, infos: infos, dropoutSeed: seed}
	m.spec.Layers = append([]LayerSpec(nil), spec.Layers...)
	m.g = buildGraph(m.spec.Layers, infos, spec.C, spec.H, spec.W)
	rng := rand.New(rand.NewPCG(seed, initStream))
	for _, n := range m.g.nodes {
		specs := n.mod.paramsOf(n)
		if len(specs) == 0 {
			continue
		}
		// He's scale where the layer's only reader is a ReLU.
		r := m.g.tensors[n.out]
		he := spec.Init == HeInit && r.consumers == 1 && n.id+1 < len(m.g.nodes) &&
			m.g.nodes[n.id+1].in == n.out && m.g.nodes[n.id+1].mod.kind == ReLU
		for _, ps := range specs {
			var init []float32
			switch {
			case ps.fanIn == 0 && ps.fill != 0:
				init = make([]float32, product(ps.shape))
				for j := range init {
					init[j] = ps.fill
				}
			case ps.fanIn > 0:
				init = make([]float32, product(ps.shape))
				for j := range init {
					if he {
						init[j] = float32(rng.NormFloat64() * math.Sqrt(2/float64(ps.fanIn)))
					} else {
						a := math.Sqrt(6 / float64(ps.fanIn+ps.fanOut))
						init[j] = float32((2*rng.Float64() - 1) * a)
					}
				}
			}
			p, err := m.newParam(fmt.Sprintf("layer%d.%s", n.layer, ps.suffix), ps.shape, init, ps.buffer)
			if err != nil {
				return nil, errors.Join(err, m.Close())
			}
			if ps.buffer {
				m.buffers = append(m.buffers, p)
			} else {
				m.params = append(m.params, p)
			}
			n.params = append(n.params, p)
		}
	}
	m.g.plan(be.Fusions(), fuse)
	if fuse && spec.Loss != MSELoss {
		m.g.fuseLoss()
	}
	return m, nil
}

// newParam allocates a parameter with value init (zero when nil).
func (m *Model) newParam(name string, shape []int, init []float32, buffer bool) (*Param, error) {
	n := product(shape)
	p := &Param{Name: name, Shape: shape}
	var err error
	if p.Value, err = m.be.NewTensor(n); err != nil {
		return nil, fmt.Errorf("host: %s: %w", name, err)
	}
	if buffer {
		if init != nil {
			if err := m.be.Upload(p.Value, init); err != nil {
				return nil, fmt.Errorf("host: %s: %w", name, errors.Join(err, m.be.Free(p.Value)))
			}
		}
		return p, nil
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
	for _, p := range m.buffers {
		errs = append(errs, m.be.Free(p.Value))
	}
	m.params, m.buffers = nil, nil
	return errors.Join(errs...)
}

// SetDropoutSeed keys the dropout masks with seed (with the layer's
// number and the step count, Steps): a run that resumes from a checkpoint
// sets the same seed and step and draws the same masks.
func (m *Model) SetDropoutSeed(seed uint64) { m.dropoutSeed = seed }

// Buffers lists the running statistics (Value only), in layer order.
func (m *Model) Buffers() []*Param { return m.buffers }

// Batch holds every tensor of one batch size for a Model: the input, the
// labels, each tensor of the graph and its gradient, pooling indices, the
// loss and the metric accumulators. A flatten's output and gradient alias
// its input's. All of it lives on the model's backend.
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
	// Eval selects evaluation mode for the layers that have one:
	// BatchNorm normalises with its running statistics (and leaves them
	// as they are), Dropout passes its input through. Training mode (false)
	// is the default.
	Eval bool

	be backend.Backend
	m  *Model
	g  *graph
	// Per tensor of the graph: its activation (nil where never stored),
	// its gradient (nil where never needed) and its scratch gradient
	// (tensors with several readers).
	acts, grads, scratch []backend.Tensor
	// Per node: argmax (int32) of a MaxPool; pre and dpre, the pooled
	// input before the ReLU run after it and its gradient.
	argmax, pre, dpre []backend.Tensor
	// keep, per conv run with Conv2DBackward (bwdBoth), is what its
	// forward pass keeps for its weight gradient (Conv2DForwardKeep); nil
	// where the backend keeps nothing (ConvKeepLen 0).
	keep []backend.Tensor
	// xIn, per conv, is the tensor in which the layer before it, where a
	// batch norm's keepFor or an add's first keepsFor names the conv,
	// makes what the conv's forward pass reads of x: its keep tensor, or,
	// where the backend keeps nothing but makes that copy (ConvXCopyLen),
	// xck; nil where there is neither.
	xIn []backend.Tensor
	// xck is the one tensor, of the largest ConvXCopyLen, in which the
	// layers of xIn make a conv's x copy for its forward pass alone (each
	// read by the next forward pass); nil where the backend makes none.
	xck backend.Tensor
	// addKeeps, per residual add with keepsFor, is those convs' keep
	// tensors (nil where none keeps anything; xck for the first where it
	// makes the forward pass's copy) for AddReLUKeep.
	addKeeps [][]backend.ConvKeep
	// dyk is where a batch norm's backward pass makes the conv's copy of
	// its dy (BatchNormBackwardKeep, dyFor), one tensor for the batch
	// (each copy is read by the next node's backward pass) of the largest
	// ConvDyCopyLen; nil where the backend makes none.
	dyk         backend.Tensor
	tmp         [][]backend.Tensor // a module's scratch (kindModule.scratch)
	catX, catDX [][]backend.Tensor // a concatenation's inputs and their gradients' destinations
	owned       []backend.Tensor
	bnHost      map[int]*bnHost // synchronised BatchNorm's host memory, by node (layer_bn_sync.go)
}

// convOf is conv node c's geometry at batch size n.
func convOf(c *node, n int) geom.ConvGeom {
	g := c.info.Conv
	g.N = n
	return g
}

// bf16Out reports whether NewBatch stores tensor i, a conv's output that
// only a batch norm reads (bnIn), as bfloat16 at batch size n: where the
// backend runs the conv's forward pass in BF16 (ConvOutputBF16).
func (m *Model) bf16Out(i, n int) bool {
	t := m.g.tensors[i]
	return t.bnIn && m.be.ConvOutputBF16(convOf(m.g.nodes[t.producer], n))
}

// bf16Grad reports whether NewBatch stores the gradient of tensor i, a
// conv's input gradient that only the batch norm before it reads (bnDy),
// as bfloat16 at batch size n: where the batch norm's input is bfloat16
// (bf16Out) and the backend runs the conv's backward-data pass in BF16
// (ConvInputGradBF16).
func (m *Model) bf16Grad(i, n int) bool {
	t := m.g.tensors[i]
	return t.bnDy && m.bf16Out(t.bnDyX, n) && m.be.ConvInputGradBF16(convOf(m.g.nodes[t.bnDyConv], n))
}

// bf16BNOut reports, per tensor, whether NewBatch stores it, a batch
// norm's output that only a residual add reads (bnAdd), as bfloat16 at
// batch size n: where the batch norm's input is bfloat16 (bf16Out) and
// the batch norms are not synchronised, and the add's other input is not
// an earlier tensor stored so.
func (m *Model) bf16BNOut(n int) []bool {
	out := make([]bool, len(m.g.tensors))
	for i, t := range m.g.tensors {
		out[i] = t.bnAdd && m.bnSync == nil && m.bf16Out(m.g.nodes[t.producer].in, n) &&
			!(t.bnAddOther < i && out[t.bnAddOther])
	}
	return out
}

// NewBatch allocates the tensors of a batch of n images.
func (m *Model) NewBatch(n int) (*Batch, error) {
	if n < 1 || n > 4096 {
		return nil, fmt.Errorf("host: batch size %d outside 1 to 4096: %w", n, ErrSpec)
	}
	b := &Batch{N: n, be: m.be, m: m, g: m.g}
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
	newBF16 := func(elems int) (backend.Tensor, error) {
		t, err := m.be.NewBF16Tensor(elems)
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
	ts := m.g.tensors
	bnOut := m.bf16BNOut(n)
	b.acts, b.grads, b.scratch = make([]backend.Tensor, len(ts)), make([]backend.Tensor, len(ts)), make([]backend.Tensor, len(ts))
	b.acts[0] = b.X
	for i := 1; i < len(ts); i++ {
		t := ts[i]
		switch {
		case t.actOf >= 0:
			b.acts[i] = b.acts[t.actOf]
		case !t.noAct:
			alloc := newF
			switch {
			case m.bf16Out(i, n):
				alloc = newBF16 // the conv's output, stored as bfloat16 (plan.go)
			case bnOut[i]:
				alloc = newBF16 // the batch norm's output, stored as bfloat16 (plan.go)
				m.bf16BNOuts = true
			}
			if b.acts[i], err = alloc(n * t.len); err != nil {
				return fail(err)
			}
		}
	}
	// Gradients from the last tensor down, so that an add's input finds
	// the add's gradient (a later tensor's) allocated; then a flatten's,
	// which is its input's (an earlier tensor's).
	for i := len(ts) - 1; i >= 1; i-- {
		t := ts[i]
		switch {
		case t.noGrad:
		case t.gradOf > i:
			b.grads[i] = b.grads[t.gradOf]
		case t.gradOf < 0:
			alloc := newF
			if m.bf16Grad(i, n) {
				alloc = newBF16 // the conv's input gradient, stored as bfloat16 (plan.go)
			}
			if b.grads[i], err = alloc(n * t.len); err != nil {
				return fail(err)
			}
		}
		if t.scratch {
			if b.scratch[i], err = newF(n * t.len); err != nil {
				return fail(err)
			}
		}
	}
	for i := 1; i < len(ts); i++ {
		if t := ts[i]; t.gradOf >= 0 && t.gradOf < i {
			b.grads[i] = b.grads[t.gradOf]
		}
	}
	b.argmax, b.pre, b.dpre = make([]backend.Tensor, len(m.g.nodes)), make([]backend.Tensor, len(m.g.nodes)), make([]backend.Tensor, len(m.g.nodes))
	b.tmp = make([][]backend.Tensor, len(m.g.nodes))
	b.keep = make([]backend.Tensor, len(m.g.nodes))
	b.catX, b.catDX = make([][]backend.Tensor, len(m.g.nodes)), make([][]backend.Tensor, len(m.g.nodes))
	dykLen := 0
	for _, nd := range m.g.nodes {
		if c := nd.dyFor; c != nil && c.needDX {
			dykLen = max(dykLen, m.be.ConvDyCopyLen(convOf(c, n)))
		}
	}
	if dykLen > 0 {
		if b.dyk, err = newF(dykLen); err != nil {
			return fail(err)
		}
	}
	for _, nd := range m.g.nodes {
		if nd.ins != nil {
			b.catTensors(nd)
		}
		if nd.bwdBoth {
			if size := m.be.ConvKeepLen(convOf(nd, n)); size > 0 {
				if b.keep[nd.id], err = newF(size); err != nil {
					return fail(err)
				}
			}
		}
		if nd.mod.scratch == nil {
			continue
		}
		for _, size := range nd.mod.scratch(nd.info, n) {
			t, err := newF(size)
			if err != nil {
				return fail(err)
			}
			b.tmp[nd.id] = append(b.tmp[nd.id], t)
		}
	}
	// The convs whose x the layer before makes: their keep tensors, or
	// the batch's one forward copy (xck).
	b.xIn = make([]backend.Tensor, len(m.g.nodes))
	xckLen, xckFor := 0, make([]bool, len(m.g.nodes))
	for _, nd := range m.g.nodes {
		c := nd.keepFor
		if len(nd.keepsFor) > 0 {
			c = nd.keepsFor[0] // the conv reading the add's output next
		}
		if c == nil || b.keep[c.id] != nil {
			continue
		}
		if l := m.be.ConvXCopyLen(convOf(c, n)); l > 0 {
			xckLen, xckFor[c.id] = max(xckLen, l), true
		}
	}
	if xckLen > 0 {
		if b.xck, err = newF(xckLen); err != nil {
			return fail(err)
		}
	}
	for id := range b.xIn {
		b.xIn[id] = b.keep[id]
		if xckFor[id] {
			b.xIn[id] = b.xck
		}
	}
	b.addKeeps = make([][]backend.ConvKeep, len(m.g.nodes))
	for _, nd := range m.g.nodes {
		for i, c := range nd.keepsFor {
			xk := b.keep[c.id]
			if i == 0 {
				xk = b.xIn[c.id]
			}
			if xk != nil {
				b.addKeeps[nd.id] = append(b.addKeeps[nd.id], backend.ConvKeep{G: convOf(c, n), XK: xk})
			}
		}
	}
	for _, nd := range m.g.nodes {
		if nd.mod.kind != MaxPool || nd.mod == addModule {
			continue
		}
		size := n * ts[nd.out].len
		if b.argmax[nd.id], err = newI(size); err != nil {
			return fail(err)
		}
		if nd.relu != nil {
			if b.pre[nd.id], err = newF(size); err != nil {
				return fail(err)
			}
			if b.dpre[nd.id], err = newF(size); err != nil {
				return fail(err)
			}
		}
	}
	return b, nil
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
	for _, n := range m.g.nodes {
		if n.fused || n.fwdByPool {
			continue // runs in its neighbour
		}
		if err := n.mod.forward(b, n); err != nil {
			return fmt.Errorf("host: forward %s: %w", m.nodeName(n), err)
		}
	}
	out, dout := b.Output(), b.grads[len(b.grads)-1]
	if m.g.lossFused {
		return nil // the loss and the metrics ran with the last layer
	}
	if m.spec.Loss != MSELoss {
		// The loss, its gradient and both metrics in one operation.
		if err := be.SoftmaxCrossEntropyMetrics(b.N, m.Classes(), out, b.Labels, b.Loss, dout, b.LossSum, b.Correct); err != nil {
			return fmt.Errorf("host: loss: %w", err)
		}
		return nil
	}
	if err := be.MSE(b.N, m.Classes(), out, b.Targets, b.Loss, dout); err != nil {
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

// nodeName names a node in errors: "layer 3 (maxpool 2×2 stride 2×2)",
// with the ReLU it runs fused, or the add of a residual block.
func (m *Model) nodeName(n *node) string {
	switch {
	case n.mod == addModule && n.epilogue == backend.EpilogueReLU:
		return fmt.Sprintf("the add closing the residual block before layer %d, and that relu", m.nextLayer(n))
	case n.mod == addModule:
		return fmt.Sprintf("the add closing the residual block before layer %d", m.nextLayer(n))
	case n.mod == catModule:
		return fmt.Sprintf("the concatenation closing the cat block before layer %d", m.nextLayer(n))
	case n.relu != nil:
		return fmt.Sprintf("layers %d and %d (relu, %v)", n.relu.layer, n.layer, n.info.Spec)
	case n.epilogue == backend.EpilogueReLU:
		return fmt.Sprintf("layers %d and %d (%v, relu)", n.layer, n.layer+1, n.info.Spec)
	}
	return fmt.Sprintf("layer %d (%v)", n.layer, n.info.Spec)
}

// nextLayer is the number of the first layer after node n.
func (m *Model) nextLayer(n *node) int {
	for _, o := range m.g.nodes[n.id:] {
		if o.layer > 0 {
			return o.layer
		}
	}
	return len(m.infos) + 1
}

// Backward propagates the loss gradient left by Forward through the layers,
// overwriting every parameter's Grad.
func (m *Model) Backward(b *Batch) error {
	for i := len(m.g.nodes) - 1; i >= 0; i-- {
		n := m.g.nodes[i]
		if (n.fused && !n.maskOut) || n.byPool || n.bwdByDense || n.bwdByBN {
			continue // done with the max-pool after it, the dense layer after it, or the batch norm before it
		}
		err := n.mod.backward(b, n)
		if err == nil {
			err = b.finishDX(n)
		}
		if err == nil && n.relu != nil {
			err = b.finishDX(n.relu)
		}
		if err == nil && n.maskReLU != nil {
			err = b.finishDX(n.maskReLU)
		}
		if err == nil && n.bwdPool != nil {
			err = b.finishDX(n.bwdPool.maskReLU)
		}
		if err != nil {
			return fmt.Errorf("host: backward %s: %w", m.nodeName(n), err)
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
//	Adam, AdamW:    Backend.AdamStep's formulas with step t = Steps()+1 (momentum unused)
//
// All parameters are updated by one Backend.UpdateParams (one launch on
// the GPU). It counts the step (Steps) when every parameter has been updated.
func (m *Model) Update(lr, momentum, weightDecay float32) error {
	u := m.updateOf(lr, momentum, weightDecay)
	u.At = m.at
	if len(m.update) != len(m.params) {
		m.update = make([]backend.ParamState, len(m.params))
	}
	ps := m.update
	for i, p := range m.params {
		ps[i] = backend.ParamState{Value: p.Value, Grad: p.Grad, Vel: p.Vel}
		if u.IsAdam() {
			ps[i].Sq = p.Sq
		}
	}
	if err := m.be.UpdateParams(ps, u); err != nil {
		return fmt.Errorf("host: update %d parameters (numbered as in Params): %w", len(ps), err)
	}
	m.steps++
	return nil
}

// updateOf is the Update of the next step with these hyperparameters.
func (m *Model) updateOf(lr, momentum, weightDecay float32) backend.Update {
	o := m.opt
	u := backend.Update{Rule: backend.RuleSGD, LR: lr, Momentum: momentum, WeightDecay: weightDecay,
		Beta1: float32(o.Beta1), Beta2: float32(o.Beta2), Eps: float32(o.Eps), Step: m.steps + 1}
	switch {
	case o.Kind == AdamW:
		u.Rule = backend.RuleAdamW
	case o.Kind == Adam:
		u.Rule = backend.RuleAdam
	case o.Nesterov:
		u.Rule = backend.RuleNesterov
	}
	return u
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
