package nn

import (
	"fmt"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/ckpt/onnx"
)

// The step plan. NewModel compiles the spec's layers once into a graph of
// nodes over numbered tensors (tensor 0 is the input), in an order where
// every node follows the nodes it reads: the forward pass runs the nodes
// in that order and the backward pass in reverse. plan decides, in one
// place, which neighbours run fused and where each gradient goes; NewBatch
// then allocates every tensor of one batch size, so a step allocates
// nothing.

// node is one layer of the graph, or the add or concatenation that closes
// a block.
type node struct {
	id     int        // index in graph.nodes
	layer  int        // the layer's number (1-based, as Check numbers it); 0 for a block's add or concatenation
	info   *LayerInfo // nil for a block's add or concatenation
	mod    *kindModule
	in     int // the input tensor
	in2    int // the second input of an add (the shortcut); −1 otherwise
	out    int // the output tensor
	params []*Param
	// needDX: some node before this one has parameters, so the gradient
	// must reach the input (for an add: needDX for in, needDX2 for in2).
	needDX, needDX2 bool

	// Set by plan.
	y        int              // the tensor the forward pass writes: out, or the fused ReLU's output
	epilogue backend.Epilogue // a conv, batch norm or add running the ReLU after it
	fused    bool             // a ReLU run by its neighbour (its conv's epilogue or the max-pool after it)
	maskOut  bool             // a ReLU whose conv computed it: its backward masks with its output
	relu     *node            // a max-pool running the ReLU before it after itself (pre, dpre)
	// maskReLU, on a max-pool whose input is the output of a ReLU that a
	// conv ran (maskOut), is that ReLU: the pool's backward pass masks
	// with its input and writes the ReLU's input gradient itself
	// (MaxPoolBackwardReLU), and the ReLU's backward pass (byPool) is not
	// run.
	maskReLU *node
	byPool   bool
	// denseFwd, on a max-pool read only by a flatten read only by a dense
	// layer, is that dense layer: the pool's forward pass runs it too
	// (MaxPoolDenseForward), and its own (fwdByPool) is not run.
	denseFwd  *node
	fwdByPool bool
	lossFwd   bool // a max-pool whose denseFwd is the last node runs the softmax loss too (graph.lossFused)
	// bwdPool, on a dense layer whose forward pass its max-pool runs
	// (fwdByPool) when that pool masks for a conv's ReLU (maskReLU), is
	// the pool: the dense layer's backward pass carries the gradient on
	// through the pool and the ReLU (DenseBackwardPoolReLU), and the
	// pool's own (bwdByDense) is not run.
	bwdPool    *node
	bwdByDense bool
	// reluBwd, on a BatchNorm read only by a ReLU, is that ReLU: the
	// batch norm's backward pass reads the ReLU's output gradient masked
	// by its output (BatchNormBackwardReLU), and the ReLU's own backward
	// pass (bwdByBN) is not run.
	reluBwd *node
	bwdByBN bool
	// bwdBoth, on a conv whose backend shares work between its two
	// backward passes (Fusions.ConvBackward), runs them as one
	// Conv2DBackward.
	bwdBoth bool
	// keepFor, on a BatchNorm whose output (its ReLU's, when fused) the
	// conv right after it reads (others may read it too: a residual
	// block's skip), that conv running Conv2DBackward, on a backend whose
	// Fusions say BatchNormKeep, is that conv: the batch norm's forward
	// pass makes what the conv keeps of its input (BatchNormForwardKeep
	// into the conv's keep tensor), or what its forward pass alone reads
	// (into the batch's xck: ConvXCopyLen), and the conv reads it instead
	// of making it.
	keepFor *node
	// copyOnly, on a BatchNorm with keepFor whose output only that conv
	// reads and whose backward pass does not read it either (no ReLU after
	// it, or one whose backward it runs: reluBwd), says that where the
	// conv keeps the copy (BF16) the batch norm writes the copy alone
	// (BatchNormForwardKeep with copyOnly): its output's values, which
	// nothing reads, are not written.
	copyOnly bool
	// dyFor, on a BatchNorm that alone reads the output of a conv running
	// Conv2DBackward with dx wanted, on a backend whose Fusions say
	// BatchNormKeep, is that conv: the batch norm's backward pass makes
	// what the conv's backward kernels read of its dy
	// (BatchNormBackwardKeep into the batch's dyk), and the conv reads it
	// instead of making it.
	dyFor *node
	// keepsFor, on a residual add with its ReLU fused (AddReLU) on a
	// backend whose Fusions say AddReLUKeep, is the convolutions running
	// Conv2DBackward that read its output (at most two: the next block's
	// first conv and its projection): the add's pass makes what each
	// keeps of its input (AddReLUKeep into their keep tensors), and they
	// read it instead of making it.
	keepsFor []*node
	// Where the input's gradient goes: the input's gradient itself, or,
	// when another consumer of the input writes it first in the backward
	// pass, the input's scratch, added to it after the node (dxAcc).
	dxAcc, dx2Acc bool

	// A concatenation's inputs (in is ins[0]), their channels and the
	// image's size H·W; whether each input's gradient is needed and goes to
	// its scratch (as dxAcc).
	ins             []int
	cs              []int
	hw              int
	needIns, insAcc []bool
}

// tensorInfo is what the plan knows of one tensor of the graph.
type tensorInfo struct {
	len       int // elements per image
	producer  int // the node writing it; −1 for the input
	consumers int
	actOf     int  // ≥ 0: the activation is that tensor's (a flatten); −1: its own
	gradOf    int  // ≥ 0: the gradient is that tensor's (a flatten, or an add's only input); −1: its own
	noAct     bool // never stored (a conv output whose ReLU ran in its epilogue; a ReLU run after its pool)
	noGrad    bool // never needed
	// bnIn: a conv's output (no epilogue) that only a batch norm reads,
	// which NewBatch stores as bfloat16 where the backend runs the conv's
	// forward pass in BF16 (ConvOutputBF16), as bf16 autocast does.
	bnIn bool
	// bnDy: the gradient of a tensor whose only reader is conv node
	// bnDyConv (that conv's input gradient), read only by the backward
	// pass of the batch norm before it (through a ReLU, if one is between
	// them), the batch norm's input bnDyX being bnIn: NewBatch stores it as bfloat16 where the backend
	// runs that conv's backward-data pass in BF16 (ConvInputGradBF16) and
	// the batch norm's input is bfloat16, as bf16 autocast does.
	bnDy            bool
	bnDyConv, bnDyX int
	// bnAdd: a batch norm's output (no epilogue) that only a residual add
	// reads, the batch norm's input being bnIn: NewBatch stores it as
	// bfloat16 where that input is bfloat16 (and the batch norms are not
	// synchronised over ranks, whose host pass uploads y), as bf16
	// autocast does, unless the add's other input, bnAddOther, is an
	// earlier tensor stored so (the add reads one bfloat16 input).
	bnAdd      bool
	bnAddOther int
	scratch    bool // needs a scratch gradient (several consumers)
	zeroFirst  bool // an add writes the gradient first: it is zeroed, then summed into
}

// graph is the compiled model: nodes in forward order and their tensors.
type graph struct {
	nodes   []*node
	tensors []tensorInfo
	// lossFused: the last node is a dense layer that a max-pool runs
	// (fwdByPool), and that pool runs the softmax cross-entropy after it
	// too (lossFwd, MaxPoolDenseSoftmax); Forward then has no loss of its
	// own to run.
	lossFused bool
}

// buildGraph lays out layers (checked, infos in Check's order) as nodes.
func buildGraph(layers []LayerSpec, infos []LayerInfo, c, h, w int) *graph {
	g := &graph{tensors: []tensorInfo{{len: c * h * w, producer: -1, actOf: -1, gradOf: -1}}}
	pos := 0
	g.seq(layers, infos, &pos, 0)
	return g
}

func (g *graph) newTensor(n int, producer int) int {
	g.tensors = append(g.tensors, tensorInfo{len: n, producer: producer, actOf: -1, gradOf: -1})
	return len(g.tensors) - 1
}

func (g *graph) add(n *node) *node {
	n.id = len(g.nodes)
	g.nodes = append(g.nodes, n)
	if n.ins != nil {
		for _, t := range n.ins {
			g.tensors[t].consumers++
		}
		return n
	}
	g.tensors[n.in].consumers++
	if n.in2 >= 0 {
		g.tensors[n.in2].consumers++
	}
	return n
}

// seq adds the nodes of layers, reading tensor in, and returns the output.
func (g *graph) seq(layers []LayerSpec, infos []LayerInfo, pos *int, in int) int {
	for _, l := range layers {
		info := &infos[*pos]
		*pos++
		if l.Kind == Residual {
			main := g.seq(l.Branches[0], infos, pos, in)
			short := in
			if len(l.Branches) > 1 {
				short = g.seq(l.Branches[1], infos, pos, in)
			}
			n := g.add(&node{layer: 0, mod: addModule, in: main, in2: short})
			n.out = g.newTensor(info.Out.Len(), n.id)
			in = n.out
			continue
		}
		if l.Kind == Concat {
			hw := info.Out.H * info.Out.W
			n := &node{layer: 0, mod: catModule, in2: -1, hw: hw}
			for _, br := range l.Branches {
				t := in
				if len(br) > 0 {
					t = g.seq(br, infos, pos, in)
				}
				n.ins = append(n.ins, t)
				n.cs = append(n.cs, g.tensors[t].len/hw)
			}
			n.in = n.ins[0]
			g.add(n)
			n.out = g.newTensor(info.Out.Len(), n.id)
			in = n.out
			continue
		}
		n := g.add(&node{layer: *pos, info: info, mod: kindModules[l.Kind], in: in, in2: -1})
		n.out = g.newTensor(info.Out.Len(), n.id)
		if l.Kind == Flatten {
			g.tensors[n.out].actOf, g.tensors[n.out].gradOf = in, in
		}
		in = n.out
	}
	return in
}

// plan makes the fusion decisions (fuse false: every layer runs as
// written) and routes the gradients. Two rewrites cut the work and the
// launches of a step; both give the same values and gradients as the
// layers run as written, bit for bit.
//
// On a backend whose Fusions say that a convolution with a ReLU epilogue is
// one pass (the GPU backend: the bias and the ReLU in the implicit-GEMM
// kernels' epilogue), a Conv whose only reader is a ReLU runs as one
// Conv2DForward with EpilogueReLU, y = max(0, conv(x)), and the conv's own
// output is never stored. The ReLU's backward pass then masks with y
// instead of the conv output z: y = max(z, 0) > 0 exactly when z > 0 (and
// both comparisons are false for NaN), so
//
//	∂E/∂z = ∂E/∂y where y > 0, else 0
//
// is the same. Such a ReLU is not moved past a MaxPool that follows it
// (conv+ReLU fused, then the pool): the reordering below would need the
// conv output to be stored and the ReLU launched on its own again.
//
// Likewise a BatchNorm whose only reader is a ReLU, on a backend whose
// Fusions say BatchNormReLU (the GPU and CPU backends), runs as one
// BatchNormForward with EpilogueReLU, in training and in evaluation:
// BatchNorm's backward pass reads its input and the saved statistics,
// never its output, so the output need not be stored, and the ReLU masks
// with y as above. In a ResNet's basic block that is the first BatchNorm
// of the main branch and the stem's; the ReLU after the residual add
// stays a launch.
//
// Otherwise (a ReLU after a Conv on the CPU backend, or after neither), a
// ReLU whose only reader is a MaxPool runs as the max-pool and then the
// ReLU on the pooled tensor, a quarter of the size for 2×2 windows. ReLU is monotonic, so
// max(relu(x)) = relu(max(x)), and the first maximum of a window is the
// same element in x and in relu(x) unless the maximum is ≤ 0, where the
// gradient is 0 in both orders.
func (g *graph) plan(f backend.Fusions, fuse bool) {
	for _, n := range g.nodes {
		n.y = n.out
	}
	next := func(n *node) *node { // the only reader of n's output, or nil
		t := g.tensors[n.out]
		if t.consumers != 1 || n.id+1 >= len(g.nodes) || g.nodes[n.id+1].in != n.out || g.nodes[n.id+1].in2 >= 0 || g.nodes[n.id+1].ins != nil {
			return nil
		}
		return g.nodes[n.id+1]
	}
	for _, n := range g.nodes {
		if !fuse || n.mod == catModule {
			continue
		}
		if n.mod != addModule && n.mod.kind == Conv {
			n.bwdBoth = f.ConvBackward
		}
		r := next(n)
		if n.mod == addModule {
			if f.AddReLU && r != nil && r.mod.kind == ReLU {
				n.epilogue, n.y = backend.EpilogueReLU, r.out
				r.fused, r.maskOut = true, true
				g.tensors[n.out].noAct = true
			}
			continue
		}
		switch {
		case r == nil:
		case f.ConvReLU && n.mod.kind == Conv && r.mod.kind == ReLU,
			f.BatchNormReLU && n.mod.kind == BatchNorm && r.mod.kind == ReLU:
			n.epilogue, n.y = backend.EpilogueReLU, r.out
			r.fused, r.maskOut = true, true
			g.tensors[n.out].noAct = true
		case n.mod.kind == ReLU && !n.fused && r.mod.kind == MaxPool:
			r.relu = n
			n.fused = true
			g.tensors[n.out].noAct, g.tensors[n.out].noGrad = true, true
		}
	}
	// A batch norm feeding a conv that keeps its input makes the conv's
	// copy of it; one reading only a conv's output makes, in the backward
	// pass, the conv's copy of its dy.
	for _, n := range g.nodes {
		if !fuse || !f.BatchNormKeep || n.mod == addModule || n.mod == catModule || n.mod.kind != BatchNorm {
			continue
		}
		last := n // the node whose output is n.y
		if n.y != n.out {
			last = next(n)
		}
		// the conv right after it, reading its output (which others may
		// read too: a residual block's skip, from the float32 output)
		if last.id+1 < len(g.nodes) {
			if c := g.nodes[last.id+1]; c.mod != addModule && c.mod != catModule && c.mod.kind == Conv && c.bwdBoth && c.in == n.y {
				n.keepFor = c
			}
		}
		if p := g.tensors[n.in].producer; p >= 0 && g.tensors[n.in].consumers == 1 {
			if c := g.nodes[p]; c.mod != addModule && c.mod.kind == Conv && c.bwdBoth && c.y == c.out {
				n.dyFor = c // needDX is set below: the batch norm's backward pass checks it
			}
		}
	}
	// A conv's output read only by a batch norm (a precision's choice, not
	// a fusion: planned with or without fuse).
	for _, n := range g.nodes {
		if n.mod == addModule || n.mod == catModule || n.mod.kind != BatchNorm {
			continue
		}
		t := &g.tensors[n.in]
		if p := t.producer; p >= 0 && t.consumers == 1 && t.actOf < 0 {
			if c := g.nodes[p]; c.mod != addModule && c.mod != catModule && c.mod.kind == Conv && c.y == c.out {
				t.bnIn = true
			}
		}
	}
	// A residual add+ReLU makes the copies of the convs reading its output.
	for _, n := range g.nodes {
		if !fuse || !f.AddReLUKeep || n.mod != addModule || n.epilogue != backend.EpilogueReLU {
			continue
		}
		for _, c := range g.nodes[n.id+1:] {
			if c.mod != addModule && c.mod != catModule && c.mod.kind == Conv && c.bwdBoth && c.in == n.y && len(n.keepsFor) < 2 {
				n.keepsFor = append(n.keepsFor, c)
			}
		}
	}
	// needDX: whether anything upstream of a tensor has parameters.
	upstream := make([]bool, len(g.tensors))
	for _, n := range g.nodes {
		if n.ins != nil {
			n.needIns = make([]bool, len(n.ins))
			for i, t := range n.ins {
				n.needIns[i] = upstream[t]
				upstream[n.out] = upstream[n.out] || upstream[t]
			}
			continue
		}
		n.needDX = upstream[n.in]
		upstream[n.out] = upstream[n.in] || len(n.mod.paramsOf(n)) > 0
		if n.in2 >= 0 {
			n.needDX2 = upstream[n.in2]
			upstream[n.out] = upstream[n.out] || upstream[n.in2]
		}
	}
	// An add's input read by nothing else shares the add's gradient.
	for _, n := range g.nodes {
		if n.mod != addModule {
			continue
		}
		for _, t := range []int{n.in, n.in2} {
			if t > 0 && g.tensors[t].consumers == 1 && g.tensors[t].gradOf < 0 {
				g.tensors[t].gradOf = n.out
			}
		}
	}
	// Gradients of tensors with several readers: the first writer in the
	// backward pass writes, the later ones write their scratch and add it.
	written := make([]bool, len(g.tensors))
	route := func(t int, need bool, isAdd bool) (acc bool) {
		if !need || t == 0 || g.tensors[t].consumers < 2 {
			return false
		}
		if !written[t] {
			written[t] = true
			if isAdd {
				g.tensors[t].zeroFirst = true
			}
			return false
		}
		if !isAdd {
			g.tensors[t].scratch = true
		}
		return true
	}
	for i := len(g.nodes) - 1; i >= 0; i-- {
		n := g.nodes[i]
		switch {
		case n.ins != nil:
			n.insAcc = make([]bool, len(n.ins))
			for i, t := range n.ins {
				n.insAcc[i] = route(t, n.needIns[i], false)
			}
		case n.mod == addModule:
			n.dxAcc = route(n.in, n.needDX, true)
			n.dx2Acc = route(n.in2, n.needDX2, true)
		case n.fused && !n.maskOut:
			// a ReLU run by the max-pool after it: routed here, run there
			n.dxAcc = route(n.in, n.needDX, false)
		case n.relu != nil:
		default:
			n.dxAcc = route(n.in, n.needDX, false)
		}
	}
	// A max-pool, a flatten and a dense layer: one forward operation.
	for _, p := range g.nodes {
		if !fuse || p.mod.kind != MaxPool || p.mod == addModule || p.relu != nil {
			continue
		}
		if f := next(p); f != nil && f.mod.kind == Flatten {
			if d := next(f); d != nil && d.mod.kind == Dense {
				p.denseFwd, d.fwdByPool = d, true
			}
		}
	}
	// A max-pool after a ReLU that its conv ran masks in its own backward
	// pass: one operation instead of the routing and then the masking,
	// the same values (ReLUBackward masks elementwise).
	for _, p := range g.nodes {
		if p.mod.kind != MaxPool || p.mod == addModule || p.relu != nil || p.dxAcc {
			continue
		}
		pr := g.tensors[p.in].producer
		if pr < 0 {
			continue
		}
		if r := g.nodes[pr]; r.mod.kind == ReLU && r.maskOut && next(r) == p {
			p.maskReLU, r.byPool = r, true
			if d := p.denseFwd; d != nil && !d.dxAcc {
				d.bwdPool, p.bwdByDense = p, true
			}
		}
	}
	// A BatchNorm read only by a ReLU, on a backend whose Fusions say
	// BatchNormBackwardReLU (both: the CPU backend masks with the ReLU's
	// output, the GPU backend with γ·x̂ + β recomputed from the batch
	// norm's input, the same sign), runs the ReLU's backward
	// pass in its own: it reads the ReLU's output gradient where the
	// ReLU's output is > 0, else 0, which is what ReLUBackward writes
	// (the output masks as the input would, see above), so the masked
	// gradient is never stored. Not where a max-pool masks for the ReLU
	// (byPool) or the ReLU runs after its pool (its output is not kept).
	for _, n := range g.nodes {
		if !fuse || !f.BatchNormBackwardReLU || n.mod.kind != BatchNorm {
			continue
		}
		if r := next(n); r != nil && r.mod.kind == ReLU && (!r.fused || r.maskOut) && !r.byPool && r.needDX && !r.dxAcc {
			n.reluBwd, r.bwdByBN = r, true
		}
	}
	for _, n := range g.nodes {
		if n.keepFor != nil && g.tensors[n.y].consumers == 1 && (n.epilogue == backend.NoEpilogue || n.reluBwd != nil) {
			n.copyOnly = true
		}
	}
	// A conv's input gradient that only the backward pass of the batch
	// norm before it reads (through the ReLU between them, if any: the
	// batch norm's when fused, its own otherwise), where that batch norm
	// reads a conv's output (bnIn): a precision's semantics, as bnIn,
	// planned with or without fuse.
	for _, n := range g.nodes {
		if n.mod == addModule || n.mod == catModule || n.mod.kind != BatchNorm || !g.tensors[n.in].bnIn {
			continue
		}
		out := n.out
		if r := next(n); r != nil && r.mod != addModule && r.mod != catModule && r.mod.kind == ReLU {
			out = r.out
		}
		t := &g.tensors[out]
		if t.consumers != 1 || t.gradOf >= 0 || t.scratch || t.zeroFirst || t.noGrad || t.actOf >= 0 {
			continue
		}
		for _, c := range g.nodes[n.id+1:] {
			if c.ins == nil && c.in == out && c.mod != addModule && c.mod.kind == Conv && c.needDX && !c.dxAcc {
				t.bnDy, t.bnDyConv, t.bnDyX = true, c.id, n.in
			}
		}
	}
	// A batch norm's output that only a residual add reads, where the
	// batch norm reads a conv's output (bnIn): the same with or without
	// fuse (no epilogue either way: an add, not a ReLU, reads it).
	for _, n := range g.nodes {
		if n.mod == addModule || n.mod == catModule || n.mod.kind != BatchNorm || !g.tensors[n.in].bnIn ||
			n.epilogue != backend.NoEpilogue || n.y != n.out {
			continue
		}
		t := &g.tensors[n.out]
		if t.consumers != 1 || t.actOf >= 0 || t.noAct {
			continue
		}
		for _, c := range g.nodes[n.id+1:] {
			if c.mod == addModule && (c.in == n.out || c.in2 == n.out) {
				t.bnAdd, t.bnAddOther = true, c.in+c.in2-n.out
			}
		}
	}
}

// fuseLoss lets the max-pool that runs the last dense layer run the
// softmax cross-entropy after it as well (graph.lossFused), where there is
// one.
func (g *graph) fuseLoss() {
	last := g.nodes[len(g.nodes)-1]
	if !last.fwdByPool {
		return
	}
	for _, p := range g.nodes {
		if p.denseFwd == last {
			p.lossFwd, g.lossFused = true, true
		}
	}
}

// bias is a conv's or dense layer's bias, nil without one (nobias).
func (n *node) bias() backend.Tensor {
	if len(n.params) < 2 {
		return nil
	}
	return n.params[1].Value
}

// biasGrad is the bias's gradient, nil without a bias.
func (n *node) biasGrad() backend.Tensor {
	if len(n.params) < 2 {
		return nil
	}
	return n.params[1].Grad
}

// paramsOf is the parameters a node's layer has (none for an add).
func (m *kindModule) paramsOf(n *node) []paramSpec {
	if m.params == nil || n.info == nil {
		return nil
	}
	return m.params(*n.info)
}

// addModule is the add that closes a residual block: y = a + b; the
// backward pass sends ∂E/∂y to both inputs.
var addModule = &kindModule{
	name: "add",
	export: func(e *exporter, n *node) error {
		e.node(onnx.Add(e.out(n), e.names[n.in], e.names[n.in2], e.out(n)))
		return nil
	},
	forward: func(b *Batch, n *node) error {
		if n.epilogue == backend.EpilogueReLU { // the ReLU after it, fused (plan): its output
			if k := b.addKeeps[n.id]; k != nil { // and the copies of the convs reading it (keepsFor)
				return b.be.AddReLUKeep(b.acts[n.in], b.acts[n.in2], b.acts[n.y], k)
			}
			return b.be.AddReLU(b.acts[n.in], b.acts[n.in2], b.acts[n.y])
		}
		return b.be.Add(b.acts[n.in], b.acts[n.in2], b.acts[n.out])
	},
	backward: func(b *Batch, n *node) error {
		dy := b.grads[n.out]
		for _, in := range []struct {
			t         int
			need, acc bool
		}{{n.in, n.needDX, n.dxAcc}, {n.in2, n.needDX2, n.dx2Acc}} {
			if !in.need || b.grads[in.t] == dy {
				continue // not needed, or the input's gradient is dy itself
			}
			if b.g.tensors[in.t].zeroFirst && !in.acc {
				if err := b.be.Fill(b.grads[in.t], 0); err != nil {
					return err
				}
			}
			if err := b.be.Accumulate(b.grads[in.t], dy); err != nil {
				return err
			}
		}
		return nil
	},
}

// dx is where node n's backward pass writes its input's gradient (for a
// ReLU run by the max-pool after it, the max-pool writes it): the input's
// gradient, or its scratch when another reader wrote the gradient first;
// nil when not needed.
func (b *Batch) dx(n *node) backend.Tensor {
	if !n.needDX {
		return nil
	}
	if n.dxAcc {
		return b.scratch[n.in]
	}
	return b.grads[n.in]
}

// finishDX adds node n's scratch gradient to its input's, where dx gave
// the scratch.
func (b *Batch) finishDX(n *node) error {
	if !n.needDX || !n.dxAcc {
		return nil
	}
	if err := b.be.Accumulate(b.grads[n.in], b.scratch[n.in]); err != nil {
		return fmt.Errorf("host: gradient sum: %w", err)
	}
	return nil
}
