package nn

import (
	"fmt"

	"github.com/convtrain/convtrain/host/ckpt/onnx"
)

// ExportOptions are what ExportONNX needs besides the spec and weights.
type ExportOptions struct {
	// Mean and Std standardise the input: the model takes pixel values p
	// (0 to 255, as float32) and computes (p − Mean)/Std first. One value
	// for every channel, or one per channel.
	Mean, Std []float32
	// Softmax appends a Softmax, so that the output is probabilities
	// rather than class scores.
	Softmax bool
	// Doc is the graph's doc string (the architecture and the training
	// configuration, for people reading the file).
	Doc string
	// Opset is the ONNX opset (0: onnx.DefaultOpset).
	Opset int64
}

// exporter builds the ONNX graph of a model, node by node.
type exporter struct {
	g       *onnx.Graph
	m       *graph
	weights func(name string) ([]float32, bool)
	opset   int64
	names   []string // per tensor of the graph, its name in the ONNX graph
}

// ExportONNX returns the ONNX model of the network spec with the parameter
// values weights gives by checkpoint name (layer<i>.weight, …; the slices
// are referenced by the model, not copied, so onnx.Write streams them from
// where they are). Initializers carry the checkpoint's names; the input is
// "input" (N,C,H,W) in pixel values, the output "scores" (N,Classes), or
// "probabilities" with Softmax. Every layer kind exports itself (its
// module's export); a kind that cannot is an error naming the layer.
func ExportONNX(spec Spec, weights func(name string) ([]float32, bool), o ExportOptions) (onnx.Model, error) {
	infos, err := spec.Check()
	if err != nil {
		return onnx.Model{}, err
	}
	c := spec.C
	if (len(o.Mean) != 1 && len(o.Mean) != c) || len(o.Std) != len(o.Mean) {
		return onnx.Model{}, fmt.Errorf("host: export: %d means and %d standard deviations for %d channels: want 1 or %d of each", len(o.Mean), len(o.Std), c, c)
	}
	g := buildGraph(spec.Layers, infos, spec.C, spec.H, spec.W)
	e := &exporter{g: &onnx.Graph{Name: "convtrain", Doc: o.Doc}, m: g, weights: weights, opset: o.Opset}
	if e.opset == 0 {
		e.opset = onnx.DefaultOpset
	}
	e.g.Inputs = []onnx.ValueInfo{onnx.Batched("input", int64(spec.C), int64(spec.H), int64(spec.W))}
	dims := []int64{1, int64(len(o.Mean)), 1, 1}
	if len(o.Mean) == 1 {
		dims = []int64{1}
	}
	e.g.Initializers = append(e.g.Initializers,
		onnx.Initializer{Name: "input.mean", Dims: dims, Data: o.Mean},
		onnx.Initializer{Name: "input.std", Dims: dims, Data: o.Std})
	e.g.Nodes = append(e.g.Nodes, onnx.Standardize("input.standardize", "input", "input.mean", "input.std", "input.standardized")...)
	e.names = make([]string, len(g.tensors))
	e.names[0] = "input.standardized"
	for _, n := range g.nodes {
		name := fmt.Sprintf("layer%d", n.layer)
		if n.layer == 0 { // the add or concatenation closing a block
			name = fmt.Sprintf("%s%d", n.mod.name, n.out)
		}
		e.names[n.out] = name
		if n.mod.export == nil {
			return onnx.Model{}, fmt.Errorf("host: export: layer %d (%v): no ONNX form for this layer kind", n.layer, n.info.Spec)
		}
		if err := n.mod.export(e, n); err != nil {
			return onnx.Model{}, fmt.Errorf("host: export: layer %d: %w", n.layer, err)
		}
	}
	out := e.names[len(g.tensors)-1]
	final, k := "scores", int64(infos[len(infos)-1].Out.C)
	if o.Softmax {
		final = "probabilities"
		e.g.Nodes = append(e.g.Nodes, onnx.Softmax("softmax", out, final))
	} else {
		e.g.Nodes = append(e.g.Nodes, onnx.Identity("output", out, final))
	}
	e.g.Outputs = []onnx.ValueInfo{onnx.Batched(final, k)}
	m := onnx.Model{Opset: e.opset, Doc: o.Doc, Graph: *e.g}
	if err := m.Validate(); err != nil {
		return onnx.Model{}, fmt.Errorf("host: export: %w", err)
	}
	return m, nil
}

// in is the name of node n's input in the ONNX graph.
func (e *exporter) in(n *node) string { return e.names[n.in] }

// out is the name of node n's output.
func (e *exporter) out(n *node) string { return e.names[n.out] }

// param adds the initializer of n's parameter i and returns its name.
func (e *exporter) param(n *node, i int) (string, error) {
	ps := n.mod.paramsOf(n)[i]
	name := fmt.Sprintf("layer%d.%s", n.layer, ps.suffix)
	v, ok := e.weights(name)
	if !ok || len(v) != product(ps.shape) {
		return "", fmt.Errorf("tensor %s: %d values, want %d (shape %v)", name, len(v), product(ps.shape), ps.shape)
	}
	dims := make([]int64, len(ps.shape))
	for i, d := range ps.shape {
		dims[i] = int64(d)
	}
	e.g.Initializers = append(e.g.Initializers, onnx.Initializer{Name: name, Dims: dims, Data: v})
	return name, nil
}

// weightBias adds the initializers of n's weight and bias (parameters 0
// and 1; "" for a layer without bias) and returns their names.
func (e *exporter) weightBias(n *node) (w, b string, err error) {
	if w, err = e.param(n, 0); err == nil && len(n.mod.paramsOf(n)) > 1 {
		b, err = e.param(n, 1)
	}
	return w, b, err
}

// node appends ONNX nodes.
func (e *exporter) node(ns ...onnx.Node) { e.g.Nodes = append(e.g.Nodes, ns...) }
