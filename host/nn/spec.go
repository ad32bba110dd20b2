package nn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// ErrSpec is wrapped by every error about a model specification.
var ErrSpec = errors.New("invalid model spec")

// LayerKind names the kind of a layer.
type LayerKind int

// The layer kinds of a sequential model.
const (
	Conv    LayerKind = iota + 1 // 2-D convolution with bias
	ReLU                         // y = max(x, 0)
	MaxPool                      // max over windows, no padding
	Flatten                      // (C,H,W) → (C·H·W); no data movement
	Dense                        // fully connected with bias
)

func (k LayerKind) String() string {
	switch k {
	case Conv:
		return "conv"
	case ReLU:
		return "relu"
	case MaxPool:
		return "maxpool"
	case Flatten:
		return "flatten"
	case Dense:
		return "dense"
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
// StrideH×StrideW; Dense uses Units; ReLU and Flatten use nothing.
// Zero strides mean 1 for Conv and the window size for MaxPool.
type LayerSpec struct {
	Kind             LayerKind
	Filters          int // Conv: K
	KernelH, KernelW int // Conv: R×S; MaxPool: window
	StrideH, StrideW int
	PadH, PadW       int
	Units            int // Dense: Out
}

// ConvLayer is a Conv of k filters of r×s with stride 1 and no padding.
func ConvLayer(k, r, s int) LayerSpec {
	return LayerSpec{Kind: Conv, Filters: k, KernelH: r, KernelW: s}
}

// PoolLayer is a MaxPool with an r×r window and stride r.
func PoolLayer(r int) LayerSpec { return LayerSpec{Kind: MaxPool, KernelH: r, KernelW: r} }

// DenseLayer is a Dense of the given width.
func DenseLayer(units int) LayerSpec { return LayerSpec{Kind: Dense, Units: units} }

// String is the compact form used in summaries, e.g. "conv 8 5×5 stride 1×1 pad 0×0".
func (l LayerSpec) String() string {
	switch l.Kind {
	case Conv:
		sh, sw := strideOr(l.StrideH, 1), strideOr(l.StrideW, 1)
		return fmt.Sprintf("conv %d %d×%d stride %d×%d pad %d×%d", l.Filters, l.KernelH, l.KernelW, sh, sw, l.PadH, l.PadW)
	case MaxPool:
		sh, sw := strideOr(l.StrideH, l.KernelH), strideOr(l.StrideW, l.KernelW)
		return fmt.Sprintf("maxpool %d×%d stride %d×%d", l.KernelH, l.KernelW, sh, sw)
	case Dense:
		return fmt.Sprintf("dense %d", l.Units)
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
	In     Shape
	Out    Shape
	Params int           // weights and biases
	Conv   geom.ConvGeom // Conv only, with N = 1
	Pool   geom.PoolGeom // MaxPool only, with N = 1
}

// maxLayerElems bounds the per-image size of any layer so that a batch of
// up to 4096 images stays below 2³¹ elements.
const maxLayerElems = (1<<31 - 1) / 4096

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
	in := Shape{C: s.C, H: s.H, W: s.W}
	infos := make([]LayerInfo, 0, len(s.Layers))
	for i, l := range s.Layers {
		info := LayerInfo{Spec: l, In: in}
		bad := func(format string, a ...any) error {
			return fmt.Errorf("host: layer %d (%v) on input %v: %s: %w", i+1, l, in, fmt.Sprintf(format, a...), ErrSpec)
		}
		switch l.Kind {
		case Conv:
			if in.Flat {
				return nil, bad("needs an image input, not a flat one")
			}
			g := geom.ConvGeom{N: 1, C: in.C, H: in.H, W: in.W, K: l.Filters, R: l.KernelH, S: l.KernelW,
				StrideH: strideOr(l.StrideH, 1), StrideW: strideOr(l.StrideW, 1), PadH: l.PadH, PadW: l.PadW}
			if l.KernelH > in.H+2*l.PadH || l.KernelW > in.W+2*l.PadW {
				return nil, bad("the %d×%d window is larger than its %d×%d input padded by %d×%d", l.KernelH, l.KernelW, in.H, in.W, l.PadH, l.PadW)
			}
			if err := g.Validate(); err != nil {
				return nil, bad("%v", err)
			}
			info.Conv = g
			info.Out = Shape{C: g.K, H: g.P(), W: g.Q()}
			info.Params = g.WLen() + g.K
		case MaxPool:
			if in.Flat {
				return nil, bad("needs an image input, not a flat one")
			}
			g := geom.PoolGeom{N: 1, C: in.C, H: in.H, W: in.W, R: l.KernelH, S: l.KernelW,
				StrideH: strideOr(l.StrideH, l.KernelH), StrideW: strideOr(l.StrideW, l.KernelW)}
			if l.KernelH > in.H || l.KernelW > in.W {
				return nil, bad("the %d×%d window is larger than its %d×%d input", l.KernelH, l.KernelW, in.H, in.W)
			}
			if err := g.Validate(); err != nil {
				return nil, bad("%v", err)
			}
			info.Pool = g
			info.Out = Shape{C: g.C, H: g.P(), W: g.Q()}
		case ReLU:
			info.Out = in
		case Flatten:
			info.Out = Shape{C: in.Len(), H: 1, W: 1, Flat: true}
		case Dense:
			if !in.Flat {
				return nil, bad("needs a flat input: put a flatten layer before it")
			}
			if l.Units < 1 || l.Units > maxLayerElems || in.C > maxLayerElems/l.Units {
				return nil, bad("units must be ≥ 1 and units×inputs below %d", maxLayerElems)
			}
			info.Out = Shape{C: l.Units, H: 1, W: 1, Flat: true}
			info.Params = l.Units*in.C + l.Units
		default:
			return nil, bad("unknown layer kind")
		}
		if info.Out.Len() > maxLayerElems {
			return nil, bad("output %v has more than %d elements per image", info.Out, maxLayerElems)
		}
		infos = append(infos, info)
		in = info.Out
	}
	if !in.Flat || s.Layers[len(s.Layers)-1].Kind != Dense {
		return nil, fmt.Errorf("host: layer %d (%v): the last layer must be dense, giving the class scores: %w",
			len(s.Layers), s.Layers[len(s.Layers)-1], ErrSpec)
	}
	if in.C < 2 {
		return nil, fmt.Errorf("host: layer %d (%v): the output needs at least 2 classes: %w",
			len(s.Layers), s.Layers[len(s.Layers)-1], ErrSpec)
	}
	return infos, nil
}

// Summary writes a table of the layers of s, one line each with the output
// shape and the number of parameters, and the total.
func (s Spec) Summary() (string, error) {
	infos, err := s.Check()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s %-34s %-14s %8s\n", "layer", "type", "output", "params")
	fmt.Fprintf(&b, "%-5s %-34s %-14s %8s\n", "0", "input", Shape{C: s.C, H: s.H, W: s.W}, "")
	total := 0
	for i, info := range infos {
		fmt.Fprintf(&b, "%-5d %-34s %-14s %8d\n", i+1, info.Spec, info.Out, info.Params)
		total += info.Params
	}
	fmt.Fprintf(&b, "loss  %-34s %-14s %8d total\n", s.Loss, "", total)
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
