package onnx

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalid is wrapped by every error about a model that cannot be written
// as a valid ONNX model: an unknown operator, an empty or duplicate name, a
// dangling input, a wrong attribute, an initializer whose data does not
// match its shape, an unsupported opset.
var ErrInvalid = errors.New("invalid ONNX model")

// ErrTooLarge is wrapped by the error of Write and Size when the model does
// not fit the 2 GiB that a protobuf message may hold.
var ErrTooLarge = errors.New("ONNX model over 2 GiB")

// BatchDim is the name of the symbolic batch dimension of graph inputs and
// outputs.
const BatchDim = "N"

// Dim is one dimension of a graph input or output: a fixed size (Value ≥ 1,
// Param empty) or a symbolic one (Param, e.g. BatchDim, and Value 0).
type Dim struct {
	Value int64
	Param string
}

// ValueInfo is a graph input or output: a float32 tensor of shape Dims.
type ValueInfo struct {
	Name string
	Dims []Dim
}

// Batched returns the ValueInfo of a float32 tensor of shape (N, dims...),
// N being the symbolic batch dimension BatchDim.
func Batched(name string, dims ...int64) ValueInfo {
	d := make([]Dim, 0, len(dims)+1)
	d = append(d, Dim{Param: BatchDim})
	for _, v := range dims {
		d = append(d, Dim{Value: v})
	}
	return ValueInfo{Name: name, Dims: d}
}

// Initializer is a constant float32 tensor of the graph, e.g. a layer's
// weights. Data is only referenced: Write streams it out as the tensor's
// raw_data (IEEE 754, little endian) without copying it, so it may be the
// caller's own slice. len(Data) must equal the product of Dims (1 for a
// scalar, Dims empty).
type Initializer struct {
	Name string
	Dims []int64
	Data []float32
}

// AttrType is the type of a node attribute, with ONNX's
// AttributeProto.AttributeType numbers.
type AttrType int32

// The attribute types that the operators of this package use.
const (
	AttrFloat  AttrType = 1
	AttrInt    AttrType = 2
	AttrString AttrType = 3
	AttrInts   AttrType = 7
)

func (t AttrType) String() string {
	switch t {
	case AttrFloat:
		return "FLOAT"
	case AttrInt:
		return "INT"
	case AttrString:
		return "STRING"
	case AttrInts:
		return "INTS"
	}
	return fmt.Sprintf("AttrType(%d)", int32(t))
}

// Attr is one attribute of a node; only the field of its Type is used.
type Attr struct {
	Name string
	Type AttrType
	F    float32 // AttrFloat
	I    int64   // AttrInt
	S    string  // AttrString
	Ints []int64 // AttrInts
}

// FloatAttr returns the attribute name = v of type FLOAT.
func FloatAttr(name string, v float32) Attr { return Attr{Name: name, Type: AttrFloat, F: v} }

// IntAttr returns the attribute name = v of type INT.
func IntAttr(name string, v int64) Attr { return Attr{Name: name, Type: AttrInt, I: v} }

// IntsAttr returns the attribute name = [v...] of type INTS.
func IntsAttr(name string, v ...int64) Attr { return Attr{Name: name, Type: AttrInts, Ints: v} }

// StringAttr returns the attribute name = v of type STRING.
func StringAttr(name, v string) Attr { return Attr{Name: name, Type: AttrString, S: v} }

// Node is one operator application of the graph: Op (an operator of the
// default domain, see the table in ops.go) reads the values named Inputs
// and defines the values named Outputs. Doc is an optional comment, e.g.
// the layer's spec.
type Node struct {
	Op, Name        string
	Inputs, Outputs []string
	Attrs           []Attr
	Doc             string
}

// Graph is an ONNX graph: Nodes in topological order (every input defined
// by a graph input, an initializer or an earlier node), float32 inputs and
// outputs, and the constant Initializers.
type Graph struct {
	Name, Doc    string
	Inputs       []ValueInfo
	Outputs      []ValueInfo
	Nodes        []Node
	Initializers []Initializer
}

// DefaultOpset is the opset of the default domain that a Model with Opset 0
// imports.
const DefaultOpset = 17

// MaxOpset is the newest opset that Write accepts: the operators of this
// package keep their opset-17 meaning and attributes up to it.
const MaxOpset = 22

// DefaultProducer is the producer name written when Model.ProducerName is
// empty.
const DefaultProducer = "convtrain"

// Model is an ONNX model: one graph importing one version of the default
// operator set.
type Model struct {
	Opset           int64  // DefaultOpset when 0; DefaultOpset..MaxOpset
	ProducerName    string // DefaultProducer when empty
	ProducerVersion string // optional
	Doc             string // optional
	Graph           Graph
}

func (m Model) opset() int64 {
	if m.Opset == 0 {
		return DefaultOpset
	}
	return m.Opset
}

// IRVersion is the ONNX IR version that goes with an opset of the default
// domain (the onnx package's VERSION_TABLE): 8 for opsets 17 and 18, 9 for
// 19 and 20, 10 for 21 and 22. It returns 0 for an opset outside
// DefaultOpset..MaxOpset.
func IRVersion(opset int64) int64 {
	switch {
	case opset < DefaultOpset || opset > MaxOpset:
		return 0
	case opset <= 18:
		return 8
	case opset <= 20:
		return 9
	}
	return 10
}

// Validate reports whether m can be written as a valid ONNX model: a
// supported opset; a graph name; every graph input, output, initializer,
// node and attribute named; no value defined twice (graph inputs,
// initializers and node outputs share one namespace) and no node name used
// twice; every node input defined before the node; every graph output
// defined; known operators (available in the model's opset) with their
// number of inputs and outputs and their attributes' names and types;
// initializers whose Data length is the product of their Dims; input and
// output dimensions either ≥ 1 or symbolic. The error wraps ErrInvalid and
// names the node, initializer or value at fault.
func (m Model) Validate() error {
	opset := m.opset()
	if IRVersion(opset) == 0 {
		return fmt.Errorf("onnx: opset %d is not supported, use %d to %d: %w", opset, DefaultOpset, MaxOpset, ErrInvalid)
	}
	g := &m.Graph
	if g.Name == "" {
		return fmt.Errorf("onnx: the graph has no name: %w", ErrInvalid)
	}
	defined := make(map[string]string) // value name → what defines it
	define := func(name, by string) error {
		if name == "" {
			return fmt.Errorf("onnx: %s: empty value name: %w", by, ErrInvalid)
		}
		if prev, ok := defined[name]; ok {
			return fmt.Errorf("onnx: %s: value %q is already defined by %s: %w", by, name, prev, ErrInvalid)
		}
		defined[name] = by
		return nil
	}
	for i, v := range g.Inputs {
		by := fmt.Sprintf("graph input %d (%q)", i, v.Name)
		if err := define(v.Name, by); err != nil {
			return err
		}
		if err := checkDims(v, by); err != nil {
			return err
		}
	}
	for i, t := range g.Initializers {
		by := fmt.Sprintf("initializer %d (%q)", i, t.Name)
		if err := define(t.Name, by); err != nil {
			return err
		}
		if err := checkInitializer(t, by); err != nil {
			return err
		}
	}
	nodeNames := make(map[string]int)
	for i, n := range g.Nodes {
		by := fmt.Sprintf("node %d (%q, %s)", i, n.Name, n.Op)
		if n.Name == "" {
			return fmt.Errorf("onnx: %s: empty node name: %w", by, ErrInvalid)
		}
		if j, ok := nodeNames[n.Name]; ok {
			return fmt.Errorf("onnx: %s: node name already used by node %d: %w", by, j, ErrInvalid)
		}
		nodeNames[n.Name] = i
		if err := checkOp(n, opset, by); err != nil {
			return err
		}
		for _, in := range n.Inputs {
			if in == "" {
				return fmt.Errorf("onnx: %s: empty input name: %w", by, ErrInvalid)
			}
			if _, ok := defined[in]; !ok {
				return fmt.Errorf("onnx: %s: input %q is not a graph input, an initializer or an earlier node's output: %w", by, in, ErrInvalid)
			}
		}
		for _, out := range n.Outputs {
			if err := define(out, by); err != nil {
				return err
			}
		}
	}
	outNames := make(map[string]bool)
	for i, v := range g.Outputs {
		by := fmt.Sprintf("graph output %d (%q)", i, v.Name)
		if v.Name == "" {
			return fmt.Errorf("onnx: %s: empty value name: %w", by, ErrInvalid)
		}
		if outNames[v.Name] {
			return fmt.Errorf("onnx: %s: listed twice as a graph output: %w", by, ErrInvalid)
		}
		outNames[v.Name] = true
		if _, ok := defined[v.Name]; !ok {
			return fmt.Errorf("onnx: %s: not defined by any graph input, initializer or node: %w", by, ErrInvalid)
		}
		if err := checkDims(v, by); err != nil {
			return err
		}
	}
	if len(g.Outputs) == 0 {
		return fmt.Errorf("onnx: graph %q has no output: %w", g.Name, ErrInvalid)
	}
	return nil
}

func checkDims(v ValueInfo, by string) error {
	for j, d := range v.Dims {
		switch {
		case d.Param == "" && d.Value < 1:
			return fmt.Errorf("onnx: %s: dimension %d is %d, want ≥ 1 or a symbolic name: %w", by, j, d.Value, ErrInvalid)
		case d.Param != "" && d.Value != 0:
			return fmt.Errorf("onnx: %s: dimension %d has both a size (%d) and a symbolic name (%q): %w", by, j, d.Value, d.Param, ErrInvalid)
		}
	}
	return nil
}

func checkInitializer(t Initializer, by string) error {
	n := int64(1)
	for j, d := range t.Dims {
		if d < 0 {
			return fmt.Errorf("onnx: %s: dimension %d is %d, want ≥ 0: %w", by, j, d, ErrInvalid)
		}
		if d > 0 && n > math.MaxInt64/d {
			return fmt.Errorf("onnx: %s: shape %v overflows: %w", by, t.Dims, ErrInvalid)
		}
		n *= d
	}
	if int64(len(t.Data)) != n {
		return fmt.Errorf("onnx: %s: %d values for shape %v (%d elements): %w", by, len(t.Data), t.Dims, n, ErrInvalid)
	}
	return nil
}

func checkOp(n Node, opset int64, by string) error {
	spec, ok := ops[n.Op]
	if !ok {
		return fmt.Errorf("onnx: %s: unknown operator %q (this package writes %s): %w", by, n.Op, opNames(), ErrInvalid)
	}
	if opset < spec.since {
		return fmt.Errorf("onnx: %s: %s needs opset %d or later, the model imports opset %d: %w", by, n.Op, spec.since, opset, ErrInvalid)
	}
	if len(n.Inputs) < spec.minIn || (spec.maxIn >= 0 && len(n.Inputs) > spec.maxIn) {
		return fmt.Errorf("onnx: %s: %d inputs, %s takes %s: %w", by, len(n.Inputs), n.Op, countRange(spec.minIn, spec.maxIn), ErrInvalid)
	}
	if len(n.Outputs) < 1 || len(n.Outputs) > spec.maxOut {
		return fmt.Errorf("onnx: %s: %d outputs, %s gives %s: %w", by, len(n.Outputs), n.Op, countRange(1, spec.maxOut), ErrInvalid)
	}
	seen := make(map[string]bool, len(n.Attrs))
	for _, a := range n.Attrs {
		want, ok := spec.attrs[a.Name]
		switch {
		case a.Name == "":
			return fmt.Errorf("onnx: %s: attribute with an empty name: %w", by, ErrInvalid)
		case !ok:
			return fmt.Errorf("onnx: %s: %s has no attribute %q: %w", by, n.Op, a.Name, ErrInvalid)
		case a.Type != want:
			return fmt.Errorf("onnx: %s: attribute %q is %v, %s wants %v: %w", by, a.Name, a.Type, n.Op, want, ErrInvalid)
		case seen[a.Name]:
			return fmt.Errorf("onnx: %s: attribute %q given twice: %w", by, a.Name, ErrInvalid)
		}
		seen[a.Name] = true
		if err := checkWindowAttr(a); err != nil {
			return fmt.Errorf("onnx: %s: %w", by, err)
		}
	}
	for _, r := range spec.required {
		if !seen[r] {
			return fmt.Errorf("onnx: %s: %s needs the attribute %q: %w", by, n.Op, r, ErrInvalid)
		}
	}
	if n.Op == "Constant" && len(n.Attrs) != 1 {
		return fmt.Errorf("onnx: %s: Constant needs exactly one value attribute, has %d: %w", by, len(n.Attrs), ErrInvalid)
	}
	return nil
}

// checkWindowAttr checks the values of the 2-D window attributes of Conv
// and the pools: two kernel sizes, strides and dilations ≥ 1, four pads ≥ 0.
func checkWindowAttr(a Attr) error {
	want, least := 2, int64(1)
	switch a.Name {
	case "kernel_shape", "strides", "dilations":
	case "pads":
		want, least = 4, 0
	default:
		return nil
	}
	if len(a.Ints) != want {
		return fmt.Errorf("attribute %s = %v: want %d values for a 2-D window: %w", a.Name, a.Ints, want, ErrInvalid)
	}
	for _, v := range a.Ints {
		if v < least {
			return fmt.Errorf("attribute %s = %v: values must be ≥ %d: %w", a.Name, a.Ints, least, ErrInvalid)
		}
	}
	return nil
}

func countRange(lo, hi int) string {
	switch {
	case hi < 0:
		return fmt.Sprintf("%d or more", lo)
	case lo == hi:
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}
