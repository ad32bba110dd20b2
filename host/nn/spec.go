package nn

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// ErrSpec is wrapped by every error about a model specification.
var ErrSpec = errors.New("invalid model spec")

// LayerKind names the kind of a layer. Each kind is a module in its own
// file (layer_<name>.go), which declares its constant and registers itself.
type LayerKind int

func (k LayerKind) String() string {
	if m := kindModules[k]; m != nil {
		return m.name
	}
	return fmt.Sprintf("LayerKind(%d)", int(k))
}

// LossKind names the loss at the end of the model.
type LossKind int

// The losses. Both take the model's output as (N, Classes).
const (
	// SoftmaxCE is the softmax cross-entropy with integer labels, mean over the batch.
	SoftmaxCE LossKind = iota + 1
	// MSELoss is (1/N)·Σ ½(t−y)² with one-hot targets.
	MSELoss
)

func (k LossKind) String() string {
	switch k {
	case SoftmaxCE:
		return "softmax-ce"
	case MSELoss:
		return "mse"
	}
	return fmt.Sprintf("LossKind(%d)", int(k))
}

// LayerSpec describes one layer. Conv uses Filters, KernelH×KernelW,
// StrideH×StrideW and PadH×PadW; MaxPool uses KernelH×KernelW and
// StrideH×StrideW; Dense uses Units; Residual uses Branches; ReLU and
// Flatten use nothing. Zero strides mean 1 for Conv and the window size
// for MaxPool.
type LayerSpec struct {
	Kind             LayerKind
	Filters          int // Conv: K
	KernelH, KernelW int // Conv: R×S; MaxPool: window
	StrideH, StrideW int
	PadH, PadW       int
	Units            int     // Dense: Out
	NoBias           bool    // Conv, Dense: no bias (before a BatchNorm, which has its own)
	Slope            float32 // LeakyReLU: the negative slope (0: PyTorch's 0.01)
	Drop             float32 // Dropout: the probability of dropping an element
	// Branches are a Residual's main branch and its shortcut (absent or
	// empty: the identity), each a sequence of layers from the block's
	// input.
	Branches [][]LayerSpec
}

// String is the compact form used in summaries, e.g. "conv 8 5×5 stride 1×1 pad 0×0".
func (l LayerSpec) String() string {
	if m := kindModules[l.Kind]; m != nil && m.describe != nil {
		return m.describe(l)
	}
	return l.Kind.String()
}

func strideOr(s, def int) int {
	if s == 0 {
		return def
	}
	return s
}

// InitKind names a weight initialisation (see NewModel).
type InitKind int

// The initialisations.
const (
	// GlorotInit (the default): uniform with variance 2/(fan_in+fan_out).
	// With SGD lr 0.05 and momentum 0.9 it trains the default network
	// from the first step; HeInit's larger weights make the first
	// hundred steps erratic at that learning rate.
	GlorotInit InitKind = iota
	// HeInit: normal with variance 2/fan_in before a ReLU, Glorot elsewhere.
	HeInit
)

func (k InitKind) String() string {
	switch k {
	case GlorotInit:
		return "glorot"
	case HeInit:
		return "he"
	}
	return fmt.Sprintf("InitKind(%d)", int(k))
}

// Spec is a sequential model: an input of C×H×W, layers in order, and a
// loss over the last layer's output, which must be (Classes) wide.
type Spec struct {
	C, H, W int
	Layers  []LayerSpec
	Loss    LossKind
	Init    InitKind
}

// DefaultSpec is the default network on 1×28×28 inputs with 10 classes:
//
//	conv 1→8 5×5, ReLU, max-pool 2, conv 8→16 5×5, ReLU, max-pool 2, dense 256→10, softmax-CE
func DefaultSpec() Spec {
	return Spec{C: 1, H: 28, W: 28, Loss: SoftmaxCE, Layers: []LayerSpec{
		ConvLayer(8, 5, 5), {Kind: ReLU}, PoolLayer(2),
		ConvLayer(16, 5, 5), {Kind: ReLU}, PoolLayer(2),
		{Kind: Flatten}, DenseLayer(10),
	}}
}

// Shape is the per-image shape of a layer's output: (C,H,W) for image
// tensors, (C) with H = W = 1 after Flatten or Dense.
type Shape struct {
	C, H, W int
	Flat    bool // true after Flatten or Dense
}

// Len is C·H·W.
func (s Shape) Len() int { return s.C * s.H * s.W }

func (s Shape) String() string {
	if s.Flat {
		return fmt.Sprintf("(%d)", s.C)
	}
	return fmt.Sprintf("(%d,%d,%d)", s.C, s.H, s.W)
}

// LayerInfo is what Check derives for one layer.
type LayerInfo struct {
	Spec   LayerSpec
	Depth  int // nesting: 0 at the top, 1 inside a residual block, …
	In     Shape
	Out    Shape
	Params int           // weights and biases
	Conv   geom.ConvGeom // Conv only, with N = 1
	Pool   geom.PoolGeom // MaxPool only, with N = 1
}

// maxLayerElems bounds the per-image size of any layer's output so that a
// batch of up to 4096 images stays below 2³¹ elements; maxTensorElems
// bounds any one tensor (a layer's weights).
const (
	maxLayerElems  = (1<<31 - 1) / 4096
	maxTensorElems = 1<<31 - 1
)

// Check validates s and returns every layer's input and output shape and
// parameter count. A wrong spec is an error wrapping ErrSpec that names the
// layer (1-based) and the reason. The last layer's output is the class
// count and must be flat (a Dense last).
func (s Spec) Check() ([]LayerInfo, error) {
	if s.C < 1 || s.H < 1 || s.W < 1 || s.C > maxLayerElems/s.H || s.C*s.H > maxLayerElems/s.W {
		return nil, fmt.Errorf("host: input %d×%d×%d: sizes must be ≥ 1 and the image below %d elements: %w", s.C, s.H, s.W, maxLayerElems, ErrSpec)
	}
	if s.Loss != SoftmaxCE && s.Loss != MSELoss {
		return nil, fmt.Errorf("host: unknown loss %v: %w", s.Loss, ErrSpec)
	}
	if s.Init != GlorotInit && s.Init != HeInit {
		return nil, fmt.Errorf("host: unknown initialisation %v: %w", s.Init, ErrSpec)
	}
	if len(s.Layers) == 0 {
		return nil, fmt.Errorf("host: no layers: %w", ErrSpec)
	}
	var infos []LayerInfo
	out, err := checkLayers(s.Layers, Shape{C: s.C, H: s.H, W: s.W}, 0, &infos)
	if err != nil {
		return nil, err
	}
	last := s.Layers[len(s.Layers)-1]
	if !out.Flat || last.Kind != Dense {
		return nil, fmt.Errorf("host: layer %d (%v): the last layer must be dense, giving the class scores: %w",
			len(infos), last, ErrSpec)
	}
	if out.C < 2 {
		return nil, fmt.Errorf("host: layer %d (%v): the output needs at least 2 classes: %w",
			len(infos), last, ErrSpec)
	}
	return infos, nil
}

// checkLayers appends the infos of layers, run in order on input in at
// nesting depth, to *infos (numbering each layer by its position there,
// from 1) and returns the last output's shape.
func checkLayers(layers []LayerSpec, in Shape, depth int, infos *[]LayerInfo) (Shape, error) {
	for _, l := range layers {
		n := len(*infos) + 1
		bad := func(format string, a ...any) error {
			return fmt.Errorf("host: layer %d (%v) on input %v: %s: %w", n, l, in, fmt.Sprintf(format, a...), ErrSpec)
		}
		m := kindModules[l.Kind]
		if m == nil {
			return in, bad("unknown layer kind")
		}
		switch {
		case m.in == imageInput && in.Flat:
			return in, bad("needs an image input, not a flat one")
		case m.in == flatInput && !in.Flat:
			return in, bad("needs a flat input: put a flatten layer before it")
		}
		info, err := m.infer(l, in)
		if err != nil {
			return in, bad("%v", err)
		}
		info.Spec, info.In, info.Depth = l, in, depth
		if info.Out.Len() > maxLayerElems {
			return in, bad("output %v has more than %d elements per image", info.Out, maxLayerElems)
		}
		*infos = append(*infos, info)
		switch l.Kind {
		case Residual:
			if info.Out, err = checkResidual(l, in, depth, infos); err != nil {
				return in, err
			}
			(*infos)[n-1].Out = info.Out
		case Concat:
			if info.Out, err = checkConcat(l, in, depth, infos); err != nil {
				return in, err
			}
			(*infos)[n-1].Out = info.Out
		}
		in = info.Out
	}
	return in, nil
}

// Summary writes a table of the layers of s, one line each with the output
// shape and the number of parameters, and the total.
func (s Spec) Summary() (string, error) {
	infos, err := s.Check()
	if err != nil {
		return "", err
	}
	names := make([]string, len(infos))
	width := 34 // the type column: wider where a nested layer's text needs it
	for i, info := range infos {
		names[i] = strings.Repeat("  ", info.Depth) + info.Spec.String()
		width = max(width, utf8.RuneCountInString(names[i]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s %-*s %-14s %8s\n", "layer", width, "type", "output", "params")
	fmt.Fprintf(&b, "%-5s %-*s %-14s %8s\n", "0", width, "input", Shape{C: s.C, H: s.H, W: s.W}, "")
	total := 0
	for i, info := range infos {
		fmt.Fprintf(&b, "%-5d %-*s %-14s %8d\n", i+1, width, names[i], info.Out, info.Params)
		total += info.Params
	}
	fmt.Fprintf(&b, "loss  %-*s %-14s %8d total\n", width, s.Loss, "", total)
	return b.String(), nil
}

// Classes is the width of the last layer's output; 0 when s is invalid.
func (s Spec) Classes() int {
	infos, err := s.Check()
	if err != nil {
		return 0
	}
	return infos[len(infos)-1].Out.C
}

// ParamShapes lists the parameters a model of s has, in Model.Params
// order, and its running statistics, in Model.Buffers order, with their
// names and shapes (Value and the other tensors nil): what a checkpoint of
// s must hold.
func (s Spec) ParamShapes() (params, buffers []Param, err error) {
	infos, err := s.Check()
	if err != nil {
		return nil, nil, err
	}
	for _, n := range buildGraph(s.Layers, infos, s.C, s.H, s.W).nodes {
		for _, p := range n.mod.paramsOf(n) {
			q := Param{Name: fmt.Sprintf("layer%d.%s", n.layer, p.suffix), Shape: p.shape}
			if p.buffer {
				buffers = append(buffers, q)
			} else {
				params = append(params, q)
			}
		}
	}
	return params, buffers, nil
}
