package nn

import (
	"fmt"
	"sort"
	"strings"
)

// A layer kind is a module: one file (layer_<name>.go) holds its spec
// syntax, its shape rule, its parameters with their checkpoint names and
// initialisation, and its forward and backward passes, and registers them
// here. Nothing else in the package lists the kinds; the step plan
// (plan.go) only decides which neighbours run fused.

// inputForm is what a layer needs as its input.
type inputForm int

const (
	anyInput   inputForm = iota
	imageInput           // (C,H,W): a conv or a pool
	flatInput            // (C): a dense layer
)

// paramSpec is one parameter tensor of a layer: its name after
// "layer<i>." in checkpoints, its shape and how it is initialised.
type paramSpec struct {
	suffix string // "weight", "bias"
	shape  []int
	// fanIn and fanOut select Glorot's (or He's) scale; both 0: zeros.
	fanIn, fanOut int
}

// kindModule is the module of one layer kind.
type kindModule struct {
	kind LayerKind
	name string // the spec keyword: "conv"
	form string // the text form, for errors: "conv<K>x<R>x<S>…"
	in   inputForm
	// flattens: the output is flat (Flatten, Dense).
	flattens bool
	// parse reads the layer's arguments after its keyword.
	parse func(p *specParser, l *LayerSpec) error
	// format writes the layer's canonical text (FormatSpec).
	format func(l LayerSpec) string
	// describe is the layer's summary text (LayerSpec.String); nil: the name.
	describe func(l LayerSpec) string
	// infer derives the output shape, the geometry and the parameter count
	// on input in. Its error gives the reason only; Check names the layer.
	infer func(l LayerSpec, in Shape) (LayerInfo, error)
	// params lists the parameter tensors; nil: none.
	params func(info LayerInfo) []paramSpec
	// export appends the layer's ONNX nodes (export.go); nil: it has none.
	export func(e *exporter, n *node) error
	// forward and backward run the layer on a batch (see node).
	forward  func(b *Batch, n *node) error
	backward func(b *Batch, n *node) error
}

var kindModules = map[LayerKind]*kindModule{}

// register adds a layer kind's module; every kind file calls it from init.
func register(m *kindModule) {
	if kindModules[m.kind] != nil {
		panic(fmt.Sprintf("nn: layer kind %d registered twice (%s, %s)", m.kind, kindModules[m.kind].name, m.name))
	}
	for _, o := range kindModules {
		if o.name == m.name {
			panic(fmt.Sprintf("nn: layer name %q registered twice", m.name))
		}
	}
	kindModules[m.kind] = m
}

// moduleNamed is the module whose spec keyword is name, or nil.
func moduleNamed(name string) *kindModule {
	for _, m := range kindModules {
		if m.name == name {
			return m
		}
	}
	return nil
}

// kindNames lists the spec keywords, sorted, for error messages.
func kindNames() string {
	var names []string
	for _, m := range kindModules {
		names = append(names, m.name)
	}
	sort.Strings(names)
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// product is the product of dims.
func product(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}
