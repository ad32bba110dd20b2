package onnx

import (
	"math"
	"sort"
	"strings"
)

// opSpec is what Validate knows of an operator of the default domain, from
// the ONNX operator schemas of opsets 17 to 22 (onnx.defs.get_schema).
type opSpec struct {
	since        int64 // first opset that has the operator
	minIn, maxIn int   // number of inputs; maxIn < 0: no limit
	maxOut       int   // outputs 1..maxOut
	attrs        map[string]AttrType
	required     []string
}

var (
	convAttrs = map[string]AttrType{"auto_pad": AttrString, "dilations": AttrInts, "group": AttrInt,
		"kernel_shape": AttrInts, "pads": AttrInts, "strides": AttrInts}
	maxPoolAttrs = map[string]AttrType{"auto_pad": AttrString, "ceil_mode": AttrInt, "dilations": AttrInts,
		"kernel_shape": AttrInts, "pads": AttrInts, "storage_order": AttrInt, "strides": AttrInts}
	avgPoolAttrs = map[string]AttrType{"auto_pad": AttrString, "ceil_mode": AttrInt, "count_include_pad": AttrInt,
		"kernel_shape": AttrInts, "pads": AttrInts, "strides": AttrInts}
	noAttrs = map[string]AttrType{}
)

// ops lists the operators that Validate accepts: those the exporter of a
// convtrain network needs, for inference and on float32 tensors only (so
// no MaxPool Indices output, no BatchNormalization training_mode).
var ops = map[string]opSpec{
	"Conv":               {since: 11, minIn: 2, maxIn: 3, maxOut: 1, attrs: convAttrs},
	"MaxPool":            {since: 12, minIn: 1, maxIn: 1, maxOut: 1, attrs: maxPoolAttrs, required: []string{"kernel_shape"}},
	"AveragePool":        {since: 11, minIn: 1, maxIn: 1, maxOut: 1, attrs: avgPoolAttrs, required: []string{"kernel_shape"}},
	"GlobalAveragePool":  {since: 1, minIn: 1, maxIn: 1, maxOut: 1, attrs: noAttrs},
	"BatchNormalization": {since: 15, minIn: 5, maxIn: 5, maxOut: 1, attrs: map[string]AttrType{"epsilon": AttrFloat, "momentum": AttrFloat}},
	"Relu":               {since: 14, minIn: 1, maxIn: 1, maxOut: 1, attrs: noAttrs},
	"LeakyRelu":          {since: 16, minIn: 1, maxIn: 1, maxOut: 1, attrs: map[string]AttrType{"alpha": AttrFloat}},
	"Gelu":               {since: 20, minIn: 1, maxIn: 1, maxOut: 1, attrs: map[string]AttrType{"approximate": AttrString}},
	"Sigmoid":            {since: 13, minIn: 1, maxIn: 1, maxOut: 1, attrs: noAttrs},
	"Tanh":               {since: 13, minIn: 1, maxIn: 1, maxOut: 1, attrs: noAttrs},
	"Erf":                {since: 13, minIn: 1, maxIn: 1, maxOut: 1, attrs: noAttrs},
	"Add":                {since: 14, minIn: 2, maxIn: 2, maxOut: 1, attrs: noAttrs},
	"Sub":                {since: 14, minIn: 2, maxIn: 2, maxOut: 1, attrs: noAttrs},
	"Mul":                {since: 14, minIn: 2, maxIn: 2, maxOut: 1, attrs: noAttrs},
	"Div":                {since: 14, minIn: 2, maxIn: 2, maxOut: 1, attrs: noAttrs},
	"Concat":             {since: 13, minIn: 1, maxIn: -1, maxOut: 1, attrs: map[string]AttrType{"axis": AttrInt}, required: []string{"axis"}},
	"Flatten":            {since: 13, minIn: 1, maxIn: 1, maxOut: 1, attrs: map[string]AttrType{"axis": AttrInt}},
	"Gemm":               {since: 13, minIn: 2, maxIn: 3, maxOut: 1, attrs: map[string]AttrType{"alpha": AttrFloat, "beta": AttrFloat, "transA": AttrInt, "transB": AttrInt}},
	"Softmax":            {since: 13, minIn: 1, maxIn: 1, maxOut: 1, attrs: map[string]AttrType{"axis": AttrInt}},
	"Identity":           {since: 16, minIn: 1, maxIn: 1, maxOut: 1, attrs: noAttrs},
	"Constant":           {since: 13, minIn: 0, maxIn: 0, maxOut: 1, attrs: map[string]AttrType{"value_float": AttrFloat, "value_int": AttrInt}},
}

func opNames() string {
	names := make([]string, 0, len(ops))
	for k := range ops {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Window is the geometry of a 2-D convolution or pooling window, in ONNX's
// order of axes and pads.
type Window struct {
	Kernel  [2]int64 // kernel_shape: height, width
	Strides [2]int64 // strides: height, width
	Pads    [4]int64 // pads: top, left, bottom, right (x1_begin, x2_begin, x1_end, x2_end)
}

// NewWindow returns the window r×s with strides (strideH, strideW) and the
// zero padding padH rows above and below, padW columns left and right: the
// geometry of geom.ConvGeom (cpuref/geom) and of PyTorch's Conv2d and
// pooling layers.
func NewWindow(r, s, strideH, strideW, padH, padW int) Window {
	return Window{
		Kernel:  [2]int64{int64(r), int64(s)},
		Strides: [2]int64{int64(strideH), int64(strideW)},
		Pads:    [4]int64{int64(padH), int64(padW), int64(padH), int64(padW)},
	}
}

func (w Window) attrs() []Attr {
	return []Attr{
		IntsAttr("kernel_shape", w.Kernel[:]...),
		IntsAttr("strides", w.Strides[:]...),
		IntsAttr("pads", w.Pads[:]...),
	}
}

// Conv returns the node y = Conv(x, w, b) of a 2-D convolution over the
// window win, with dilations 1 and group 1:
//
//	x is (N,C,H,W), w is (K,C,R,S), b is (K), y is (N,K,P,Q)
//	y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[n,c, p·sh − pt + r, q·sw − pl + s]
//
// b may be "" (no bias).
func Conv(name, x, w, b, y string, win Window) Node {
	in := []string{x, w}
	if b != "" {
		in = append(in, b)
	}
	return Node{Op: "Conv", Name: name, Inputs: in, Outputs: []string{y},
		Attrs: append(win.attrs(), IntsAttr("dilations", 1, 1), IntAttr("group", 1))}
}

// MaxPool returns the node y = MaxPool(x) over the window win (padding, if
// any, never wins the maximum), with ceil_mode 0.
func MaxPool(name, x, y string, win Window) Node {
	return Node{Op: "MaxPool", Name: name, Inputs: []string{x}, Outputs: []string{y}, Attrs: win.attrs()}
}

// AveragePool returns the node y = AveragePool(x) over the window win with
// count_include_pad 1: the zero padding counts in the divisor, which is
// always R·S, as in PyTorch's AvgPool2d by default.
func AveragePool(name, x, y string, win Window) Node {
	return Node{Op: "AveragePool", Name: name, Inputs: []string{x}, Outputs: []string{y},
		Attrs: append(win.attrs(), IntAttr("count_include_pad", 1))}
}

// GlobalAveragePool returns the node y = GlobalAveragePool(x): x is
// (N,C,H,W), y is (N,C,1,1), the mean of each plane.
func GlobalAveragePool(name, x, y string) Node {
	return unaryOp("GlobalAveragePool", name, x, y)
}

// BatchNormalization returns the inference-mode node
//
//	y[n,c,h,w] = scale[c] · (x[n,c,h,w] − mean[c]) / √(variance[c] + epsilon) + bias[c]
//
// with the running statistics mean and variance as inputs (initializers of
// shape (C)). momentum is recorded as the attribute; inference ignores it.
func BatchNormalization(name, x, scale, bias, mean, variance, y string, epsilon, momentum float32) Node {
	return Node{Op: "BatchNormalization", Name: name, Inputs: []string{x, scale, bias, mean, variance},
		Outputs: []string{y}, Attrs: []Attr{FloatAttr("epsilon", epsilon), FloatAttr("momentum", momentum)}}
}

// Relu returns the node y = max(x, 0).
func Relu(name, x, y string) Node { return unaryOp("Relu", name, x, y) }

// LeakyRelu returns the node y = x for x ≥ 0, alpha·x otherwise.
func LeakyRelu(name, x, y string, alpha float32) Node {
	n := unaryOp("LeakyRelu", name, x, y)
	n.Attrs = []Attr{FloatAttr("alpha", alpha)}
	return n
}

// Sigmoid returns the node y = 1/(1 + e^−x).
func Sigmoid(name, x, y string) Node { return unaryOp("Sigmoid", name, x, y) }

// Tanh returns the node y = tanh(x).
func Tanh(name, x, y string) Node { return unaryOp("Tanh", name, x, y) }

// Erf returns the node y = erf(x).
func Erf(name, x, y string) Node { return unaryOp("Erf", name, x, y) }

// Identity returns the node y = x.
func Identity(name, x, y string) Node { return unaryOp("Identity", name, x, y) }

// Add returns the node y = a + b (numpy broadcasting).
func Add(name, a, b, y string) Node { return binOp("Add", name, a, b, y) }

// Sub returns the node y = a − b (numpy broadcasting).
func Sub(name, a, b, y string) Node { return binOp("Sub", name, a, b, y) }

// Mul returns the node y = a · b (numpy broadcasting).
func Mul(name, a, b, y string) Node { return binOp("Mul", name, a, b, y) }

// Div returns the node y = a / b (numpy broadcasting).
func Div(name, a, b, y string) Node { return binOp("Div", name, a, b, y) }

// Concat returns the node y = the concatenation of inputs along axis (1 for
// the channels of NCHW tensors).
func Concat(name string, inputs []string, y string, axis int64) Node {
	return Node{Op: "Concat", Name: name, Inputs: append([]string(nil), inputs...), Outputs: []string{y},
		Attrs: []Attr{IntAttr("axis", axis)}}
}

// Flatten returns the node y = x reshaped to (N, C·H·W) (axis 1).
func Flatten(name, x, y string) Node {
	n := unaryOp("Flatten", name, x, y)
	n.Attrs = []Attr{IntAttr("axis", 1)}
	return n
}

// Gemm returns the node of a fully connected layer, transB 1:
//
//	x is (N,In), w is (Out,In), b is (Out), y is (N,Out)
//	y[n,o] = b[o] + Σ_i x[n,i] · w[o,i]      (y = x·wᵀ + b)
//
// b may be "" (no bias).
func Gemm(name, x, w, b, y string) Node {
	in := []string{x, w}
	if b != "" {
		in = append(in, b)
	}
	return Node{Op: "Gemm", Name: name, Inputs: in, Outputs: []string{y}, Attrs: []Attr{IntAttr("transB", 1)}}
}

// Softmax returns the node y = softmax of x over axis 1 (the classes of an
// (N, classes) tensor).
func Softmax(name, x, y string) Node {
	n := unaryOp("Softmax", name, x, y)
	n.Attrs = []Attr{IntAttr("axis", 1)}
	return n
}

// Constant returns the node y = v, a float32 scalar.
func Constant(name, y string, v float32) Node {
	return Node{Op: "Constant", Name: name, Outputs: []string{y}, Attrs: []Attr{FloatAttr("value_float", v)}}
}

// Gelu returns the nodes of y = GELU(x) for a model importing opset: the
// one Gelu operator from opset 20 on (approximate "tanh" or "none"), and
// below it the same function built from Constant, Mul, Add, Erf and Tanh:
//
//	exact:        y = x · ½ · (1 + erf(x · 1/√2))
//	tanh (approx): y = x · ½ · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
//
// as PyTorch's GELU(approximate='none'|'tanh'). The nodes and the values
// between them are named name + "/…".
func Gelu(name, x, y string, approxTanh bool, opset int64) []Node {
	if opset >= 20 {
		approx := "none"
		if approxTanh {
			approx = "tanh"
		}
		n := unaryOp("Gelu", name, x, y)
		n.Attrs = []Attr{StringAttr("approximate", approx)}
		return []Node{n}
	}
	v := func(s string) string { return name + "/" + s }
	var nodes []Node
	if approxTanh {
		nodes = []Node{
			Mul(v("x2"), x, x, v("x2")),
			Mul(v("x3"), v("x2"), x, v("x3")),
			Constant(v("k"), v("k"), 0.044715),
			Mul(v("kx3"), v("x3"), v("k"), v("kx3")),
			Add(v("inner"), x, v("kx3"), v("inner")),
			Constant(v("c"), v("c"), float32(math.Sqrt(2/math.Pi))),
			Mul(v("arg"), v("inner"), v("c"), v("arg")),
			Tanh(v("tanh"), v("arg"), v("phi")),
		}
	} else {
		nodes = []Node{
			Constant(v("c"), v("c"), float32(1/math.Sqrt2)),
			Mul(v("arg"), x, v("c"), v("arg")),
			Erf(v("erf"), v("arg"), v("phi")),
		}
	}
	return append(nodes,
		Constant(v("one"), v("one"), 1),
		Add(v("phi1"), v("phi"), v("one"), v("phi1")),
		Mul(v("xphi1"), x, v("phi1"), v("xphi1")),
		Constant(v("half"), v("half"), 0.5),
		Mul(name, v("xphi1"), v("half"), y),
	)
}

// SiLU returns the nodes of y = x · sigmoid(x) (PyTorch's SiLU); the value
// between them is named name + "/sigmoid".
func SiLU(name, x, y string) []Node {
	s := name + "/sigmoid"
	return []Node{Sigmoid(s, x, s), Mul(name, x, s, y)}
}

// Standardize returns the nodes of the input standardisation
//
//	y[n,c,h,w] = (x[n,c,h,w] − mean[c]) / std[c]
//
// as a Sub and a Div; mean and std name initializers of shape (C,1,1), so
// that they broadcast over (N,C,H,W). The value between them is named
// name + "/centered".
func Standardize(name, x, mean, std, y string) []Node {
	c := name + "/centered"
	return []Node{Sub(c, x, mean, c), Div(name, c, std, y)}
}

func unaryOp(op, name, x, y string) Node {
	return Node{Op: op, Name: name, Inputs: []string{x}, Outputs: []string{y}}
}

func binOp(op, name, a, b, y string) Node {
	return Node{Op: op, Name: name, Inputs: []string{a, b}, Outputs: []string{y}}
}
