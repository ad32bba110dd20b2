package onnx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// tinyModel is a valid model: x → Conv → Relu → GlobalAveragePool → Flatten
// → Gemm → y.
func tinyModel() Model {
	return Model{Doc: "doc", Graph: Graph{
		Name:    "tiny",
		Doc:     "spec: conv2x3x3,relu,gap,dense3",
		Inputs:  []ValueInfo{Batched("x", 1, 4, 4)},
		Outputs: []ValueInfo{Batched("y", 3)},
		Nodes: []Node{
			Conv("conv", "x", "conv.weight", "conv.bias", "c", NewWindow(3, 3, 1, 1, 0, 0)),
			Relu("relu", "c", "r"),
			GlobalAveragePool("gap", "r", "g"),
			Flatten("flatten", "g", "f"),
			Gemm("dense", "f", "dense.weight", "dense.bias", "y"),
		},
		Initializers: []Initializer{
			{Name: "conv.weight", Dims: []int64{2, 1, 3, 3}, Data: []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -2, -3, -4, -5, -6, -7, -8, -9}},
			{Name: "conv.bias", Dims: []int64{2}, Data: []float32{0.5, -0.5}},
			{Name: "dense.weight", Dims: []int64{3, 2}, Data: []float32{1, 0, 0, 1, 0.25, -0.25}},
			{Name: "dense.bias", Dims: []int64{3}, Data: []float32{float32(math.Inf(1)), float32(math.NaN()), float32(math.Copysign(0, -1))}},
		},
	}}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *Model)
		want string // in the error
	}{
		{"ok", func(m *Model) {}, ""},
		{"opset=16", func(m *Model) { m.Opset = 16 }, "opset 16 is not supported"},
		{"opset=23", func(m *Model) { m.Opset = 23 }, "opset 23 is not supported"},
		{"graph-name", func(m *Model) { m.Graph.Name = "" }, "graph has no name"},
		{"unknown-op", func(m *Model) { m.Graph.Nodes[1].Op = "Swish" }, `node 1 ("relu", Swish): unknown operator "Swish"`},
		{"gelu-opset17", func(m *Model) { m.Graph.Nodes[1] = Gelu("gelu", "c", "r", false, 20)[0] },
			`node 1 ("gelu", Gelu): Gelu needs opset 20 or later, the model imports opset 17`},
		{"empty-node-name", func(m *Model) { m.Graph.Nodes[2].Name = "" }, `node 2 ("", GlobalAveragePool): empty node name`},
		{"duplicate-node-name", func(m *Model) { m.Graph.Nodes[2].Name = "relu" }, `node 2 ("relu", GlobalAveragePool): node name already used by node 1`},
		{"empty-input", func(m *Model) { m.Graph.Nodes[1].Inputs[0] = "" }, `node 1 ("relu", Relu): empty input name`},
		{"empty-output", func(m *Model) { m.Graph.Nodes[1].Outputs[0] = "" }, `node 1 ("relu", Relu): empty value name`},
		{"dangling-input", func(m *Model) { m.Graph.Nodes[1].Inputs[0] = "z" }, `node 1 ("relu", Relu): input "z" is not a graph input, an initializer or an earlier node's output`},
		{"later-input", func(m *Model) { m.Graph.Nodes[1].Inputs[0] = "g" }, `node 1 ("relu", Relu): input "g" is not a graph input`},
		{"duplicate-output", func(m *Model) { m.Graph.Nodes[2].Outputs[0] = "c" }, `node 2 ("gap", GlobalAveragePool): value "c" is already defined by node 0 ("conv", Conv)`},
		{"output-shadows-initializer", func(m *Model) { m.Graph.Nodes[0].Outputs[0] = "conv.bias" }, `node 0 ("conv", Conv): value "conv.bias" is already defined by initializer 1`},
		{"duplicate-initializer", func(m *Model) { m.Graph.Initializers[1].Name = "conv.weight" }, `initializer 1 ("conv.weight"): value "conv.weight" is already defined by initializer 0`},
		{"empty-initializer-name", func(m *Model) { m.Graph.Initializers[1].Name = "" }, `initializer 1 (""): empty value name`},
		{"initializer-short", func(m *Model) { m.Graph.Initializers[0].Data = m.Graph.Initializers[0].Data[:17] }, `initializer 0 ("conv.weight"): 17 values for shape [2 1 3 3] (18 elements)`},
		{"initializer-negative-dim", func(m *Model) { m.Graph.Initializers[1].Dims = []int64{-2} }, `initializer 1 ("conv.bias"): dimension 0 is -2`},
		{"input-dim", func(m *Model) { m.Graph.Inputs[0].Dims[2].Value = 0 }, `graph input 0 ("x"): dimension 2 is 0`},
		{"input-dim-both", func(m *Model) { m.Graph.Inputs[0].Dims[0].Value = 3 }, `graph input 0 ("x"): dimension 0 has both a size (3) and a symbolic name ("N")`},
		{"undefined-graph-output", func(m *Model) { m.Graph.Outputs[0].Name = "q" }, `graph output 0 ("q"): not defined`},
		{"graph-output-twice", func(m *Model) { m.Graph.Outputs = append(m.Graph.Outputs, m.Graph.Outputs[0]) }, `graph output 1 ("y"): listed twice`},
		{"no-output", func(m *Model) { m.Graph.Outputs = nil }, `graph "tiny" has no output`},
		{"too-few-inputs", func(m *Model) { m.Graph.Nodes[4].Inputs = m.Graph.Nodes[4].Inputs[:1] }, `node 4 ("dense", Gemm): 1 inputs, Gemm takes 2 to 3`},
		{"too-many-outputs", func(m *Model) { m.Graph.Nodes[1].Outputs = append(m.Graph.Nodes[1].Outputs, "r2") }, `node 1 ("relu", Relu): 2 outputs, Relu gives 1`},
		{"unknown-attr", func(m *Model) { m.Graph.Nodes[1].Attrs = []Attr{FloatAttr("alpha", 1)} }, `node 1 ("relu", Relu): Relu has no attribute "alpha"`},
		{"attr-type", func(m *Model) { m.Graph.Nodes[3].Attrs = []Attr{FloatAttr("axis", 1)} }, `node 3 ("flatten", Flatten): attribute "axis" is FLOAT, Flatten wants INT`},
		{"attr-twice", func(m *Model) { m.Graph.Nodes[3].Attrs = []Attr{IntAttr("axis", 1), IntAttr("axis", 1)} }, `node 3 ("flatten", Flatten): attribute "axis" given twice`},
		{"attr-empty-name", func(m *Model) { m.Graph.Nodes[3].Attrs = []Attr{IntAttr("", 1)} }, `node 3 ("flatten", Flatten): attribute with an empty name`},
		{"concat-no-axis", func(m *Model) {
			m.Graph.Nodes[1] = Node{Op: "Concat", Name: "cat", Inputs: []string{"c"}, Outputs: []string{"r"}}
		}, `node 1 ("cat", Concat): Concat needs the attribute "axis"`},
		{"kernel-zero", func(m *Model) {
			m.Graph.Nodes[0] = Conv("conv", "x", "conv.weight", "", "c", NewWindow(0, 3, 1, 1, 0, 0))
		},
			`node 0 ("conv", Conv): attribute kernel_shape = [0 3]: values must be ≥ 1`},
		{"pads-negative", func(m *Model) {
			m.Graph.Nodes[0] = Conv("conv", "x", "conv.weight", "", "c", NewWindow(3, 3, 1, 1, -1, 0))
		},
			`node 0 ("conv", Conv): attribute pads = [-1 0 -1 0]: values must be ≥ 0`},
		{"strides-3d", func(m *Model) { m.Graph.Nodes[0].Attrs[1] = IntsAttr("strides", 1, 1, 1) },
			`node 0 ("conv", Conv): attribute strides = [1 1 1]: want 2 values for a 2-D window`},
		{"constant-two-values", func(m *Model) {
			m.Graph.Nodes[1] = Node{Op: "Constant", Name: "k", Outputs: []string{"r"}, Attrs: []Attr{FloatAttr("value_float", 1), IntAttr("value_int", 1)}}
		}, `node 1 ("k", Constant): Constant needs exactly one value attribute, has 2`},
	}
	for _, tt := range tests {
		t.Run("case="+tt.name, func(t *testing.T) {
			m := tinyModel()
			tt.edit(&m)
			err := m.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an ErrInvalid containing %q", err, tt.want)
			}
			var buf bytes.Buffer
			if werr := Write(&buf, m); werr == nil || buf.Len() != 0 {
				t.Errorf("Write() = %v after %d bytes, want the error and nothing written", werr, buf.Len())
			}
		})
	}
}

func TestIRVersion(t *testing.T) {
	for opset, want := range map[int64]int64{16: 0, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10, 22: 10, 23: 0} {
		if got := IRVersion(opset); got != want {
			t.Errorf("IRVersion(%d) = %d, want %d", opset, got, want)
		}
	}
}

// TestSize checks that Size is the number of bytes Write writes, over the
// models of the ONNX Runtime test (built here; no Python needed).
func TestSize(t *testing.T) {
	models := []Model{tinyModel()}
	for _, c := range ortCases(t) {
		models = append(models, c.model)
	}
	for _, m := range models {
		var buf bytes.Buffer
		if err := Write(&buf, m); err != nil {
			t.Fatalf("Write(%s) = %v", m.Graph.Name, err)
		}
		n, err := Size(m)
		if err != nil || n != int64(buf.Len()) {
			t.Errorf("Size(%s) = %d, %v; Write wrote %d bytes", m.Graph.Name, n, err, buf.Len())
		}
	}
}

// field is one decoded protobuf field: a varint, a fixed32, or bytes.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// decode splits a message into its fields, failing on malformed input or
// on fields out of number order.
func decode(t *testing.T, what string, b []byte) []field {
	t.Helper()
	var fs []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("%s: bad tag: %v", what, protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("%s: field %d has wire type %d", what, num, typ)
		}
		if n < 0 {
			t.Fatalf("%s: field %d: %v", what, num, protowire.ParseError(n))
		}
		b = b[n:]
		if len(fs) > 0 && fs[len(fs)-1].num > num {
			t.Fatalf("%s: field %d after field %d: not in number order", what, num, fs[len(fs)-1].num)
		}
		fs = append(fs, f)
	}
	return fs
}

func only(fs []field, num protowire.Number) []field {
	var out []field
	for _, f := range fs {
		if f.num == num {
			out = append(out, f)
		}
	}
	return out
}

// TestWireFormat decodes what Write wrote with protowire, field by field,
// against the field numbers of onnx.proto.
func TestWireFormat(t *testing.T) {
	m := tinyModel()
	var buf bytes.Buffer
	if err := Write(&buf, m); err != nil {
		t.Fatal(err)
	}
	model := decode(t, "ModelProto", buf.Bytes())
	var nums []protowire.Number
	for _, f := range model {
		nums = append(nums, f.num)
	}
	if got, want := fmt.Sprint(nums), "[1 2 6 7 8]"; got != want {
		t.Fatalf("ModelProto fields %s, want %s (ir_version, producer_name, doc_string, graph, opset_import)", got, want)
	}
	if model[0].v != 8 || string(model[1].b) != "convtrain" || string(model[2].b) != "doc" {
		t.Errorf("ir_version %d, producer %q, doc %q; want 8, convtrain, doc", model[0].v, model[1].b, model[2].b)
	}
	opset := decode(t, "OperatorSetIdProto", model[4].b)
	if len(opset) != 2 || opset[0].num != 1 || len(opset[0].b) != 0 || opset[1].num != 2 || opset[1].v != 17 {
		t.Errorf("opset_import = %+v, want domain \"\" and version 17", opset)
	}
	graph := decode(t, "GraphProto", model[3].b)
	if n := only(graph, 2); len(n) != 1 || string(n[0].b) != "tiny" {
		t.Errorf("graph name = %+v, want tiny", n)
	}
	if d := only(graph, 10); len(d) != 1 || string(d[0].b) != m.Graph.Doc {
		t.Errorf("graph doc_string = %+v, want %q", d, m.Graph.Doc)
	}
	nodes := only(graph, 1)
	if len(nodes) != len(m.Graph.Nodes) {
		t.Fatalf("%d nodes, want %d", len(nodes), len(m.Graph.Nodes))
	}
	conv := decode(t, "NodeProto", nodes[0].b)
	var ins []string
	for _, f := range only(conv, 1) {
		ins = append(ins, string(f.b))
	}
	if fmt.Sprint(ins) != "[x conv.weight conv.bias]" || string(only(conv, 4)[0].b) != "Conv" || string(only(conv, 3)[0].b) != "conv" {
		t.Errorf("conv node inputs %v op %q name %q", ins, only(conv, 4)[0].b, only(conv, 3)[0].b)
	}
	attrs := only(conv, 5)
	if len(attrs) != 5 {
		t.Fatalf("conv has %d attributes, want 5", len(attrs))
	}
	pads := decode(t, "AttributeProto", attrs[2].b)
	var pv []uint64
	for _, f := range only(pads, 8) {
		if f.typ != protowire.VarintType {
			t.Errorf("pads: ints as wire type %d, want unpacked varints as protobuf writes proto2", f.typ)
		}
		pv = append(pv, f.v)
	}
	if string(pads[0].b) != "pads" || fmt.Sprint(pv) != "[0 0 0 0]" || only(pads, 20)[0].v != uint64(AttrInts) {
		t.Errorf("attribute 2 = %q %v type %d, want pads [0 0 0 0] INTS", pads[0].b, pv, only(pads, 20)[0].v)
	}
	inits := only(graph, 5)
	if len(inits) != len(m.Graph.Initializers) {
		t.Fatalf("%d initializers, want %d", len(inits), len(m.Graph.Initializers))
	}
	for i, in := range m.Graph.Initializers {
		tf := decode(t, "TensorProto", inits[i].b)
		var dims []int64
		for _, f := range only(tf, 1) {
			dims = append(dims, int64(f.v))
		}
		raw := only(tf, 9)
		if fmt.Sprint(dims) != fmt.Sprint(in.Dims) || only(tf, 2)[0].v != 1 || string(only(tf, 8)[0].b) != in.Name || len(raw) != 1 {
			t.Errorf("initializer %d: dims %v, type %d, name %q; want %v, 1, %q", i, dims, only(tf, 2)[0].v, only(tf, 8)[0].b, in.Dims, in.Name)
			continue
		}
		if len(raw[0].b) != 4*len(in.Data) {
			t.Errorf("initializer %q: %d raw bytes, want %d", in.Name, len(raw[0].b), 4*len(in.Data))
			continue
		}
		for j, v := range in.Data {
			b := raw[0].b[4*j:]
			if got := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24; got != math.Float32bits(v) {
				t.Errorf("initializer %q [%d] = %#08x, want %#08x (little endian)", in.Name, j, got, math.Float32bits(v))
			}
		}
	}
	input := decode(t, "ValueInfoProto", only(graph, 11)[0].b)
	typ := decode(t, "TypeProto", input[1].b)
	tensor := decode(t, "TypeProto.Tensor", typ[0].b)
	shape := decode(t, "TensorShapeProto", tensor[1].b)
	var dims []string
	for _, d := range shape {
		dv := decode(t, "Dimension", d.b)
		if dv[0].num == 2 {
			dims = append(dims, string(dv[0].b))
		} else {
			dims = append(dims, fmt.Sprint(dv[0].v))
		}
	}
	if string(input[0].b) != "x" || tensor[0].v != 1 || fmt.Sprint(dims) != "[N 1 4 4]" {
		t.Errorf("graph input %q elem_type %d dims %v, want x 1 [N 1 4 4]", input[0].b, tensor[0].v, dims)
	}
}

// countingWriter counts bytes and remembers the largest single write;
// failAt > 0 makes the write that would pass failAt bytes fail.
type countingWriter struct {
	n, largest, failAt int64
}

var errDiskFull = errors.New("disk full")

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.failAt > 0 && w.n+int64(len(p)) > w.failAt {
		k := w.failAt - w.n
		w.n = w.failAt
		return int(k), errDiskFull
	}
	w.n += int64(len(p))
	w.largest = max(w.largest, int64(len(p)))
	return len(p), nil
}

// bigModel is a dense layer of 2048×2048 weights (16 MiB).
func bigModel() Model {
	big := make([]float32, 2048*2048)
	for i := range big {
		big[i] = float32(i)
	}
	return Model{Graph: Graph{
		Name:         "big",
		Inputs:       []ValueInfo{Batched("x", 2048)},
		Outputs:      []ValueInfo{Batched("y", 2048)},
		Nodes:        []Node{Gemm("dense", "x", "w", "", "y")},
		Initializers: []Initializer{{Name: "w", Dims: []int64{2048, 2048}, Data: big}},
	}}
}

// BenchmarkWrite measures Write's throughput on 16 MiB of weights.
func BenchmarkWrite(b *testing.B) {
	m := bigModel()
	size, err := Size(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(io.Discard, m); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWriteStreamsWeights shows the one-pass property on 16 MiB of
// weights: Write allocates far less than the weights (no second copy),
// hands the writer at most a buffer's worth at a time, and writes Size
// bytes.
func TestWriteStreamsWeights(t *testing.T) {
	m := bigModel()
	n := len(m.Graph.Initializers[0].Data)
	size, err := Size(m)
	if err != nil {
		t.Fatal(err)
	}
	w := &countingWriter{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := Write(w, m); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 1<<20 {
		t.Errorf("Write allocated %d bytes for %d bytes of weights, want under 1 MiB", alloc, 4*n)
	}
	if w.n != size || w.largest > bufSize+64 {
		t.Errorf("wrote %d bytes (Size %d), largest write %d; want Size bytes in writes of at most about %d", w.n, size, w.largest, bufSize)
	}
	t.Logf("%d bytes of weights: %d bytes written, %d bytes allocated, largest write %d", 4*n, w.n, alloc, w.largest)
}

func TestWriteError(t *testing.T) {
	m := tinyModel()
	big := make([]float32, 100000)
	m.Graph.Initializers = append(m.Graph.Initializers, Initializer{Name: "unused", Dims: []int64{100000}, Data: big})
	w := &countingWriter{failAt: 70000}
	err := Write(w, m)
	if !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), `model "tiny" at byte 70000 of`) {
		t.Errorf("Write() = %v, want the writer's error with the offset 70000", err)
	}
	if err := Write(io.Discard, Model{Graph: Graph{Name: "empty"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Write(no outputs) = %v, want ErrInvalid", err)
	}
}

// TestTooLarge lowers the 2 GiB limit to check the refusal without
// allocating 2 GiB.
func TestTooLarge(t *testing.T) {
	m := tinyModel()
	n, err := Size(m)
	if err != nil {
		t.Fatal(err)
	}
	defer func(old int64) { maxSize = old }(maxSize)
	for _, limit := range []int64{n, n - 1} {
		maxSize = limit
		_, err := Size(m)
		var buf bytes.Buffer
		werr := Write(&buf, m)
		if limit == n && (err != nil || werr != nil) {
			t.Errorf("limit=%d: Size() = %v, Write() = %v, want nil: a model of exactly the limit fits", limit, err, werr)
		}
		if limit < n && (!errors.Is(err, ErrTooLarge) || !errors.Is(werr, ErrTooLarge) || buf.Len() != 0) {
			t.Errorf("limit=%d: Size() = %v, Write() = %v after %d bytes, want ErrTooLarge and nothing written", limit, err, werr, buf.Len())
		}
	}
}

// TestGeluOpset checks that Gelu below opset 20 is built without the Gelu
// operator, and validates at opset 17.
func TestGeluOpset(t *testing.T) {
	for _, opset := range []int64{17, 19, 20, 22} {
		for _, approx := range []bool{false, true} {
			nodes := Gelu("gelu", "x", "y", approx, opset)
			native := len(nodes) == 1 && nodes[0].Op == "Gelu"
			if native != (opset >= 20) {
				t.Errorf("Gelu(opset=%d, tanh=%v) = %d nodes, native %v; want native from opset 20", opset, approx, len(nodes), native)
			}
			last := nodes[len(nodes)-1]
			if last.Name != "gelu" || last.Outputs[0] != "y" {
				t.Errorf("Gelu(opset=%d, tanh=%v): last node %q → %v, want gelu → [y]", opset, approx, last.Name, last.Outputs)
			}
			m := Model{Opset: opset, Graph: Graph{Name: "g", Inputs: []ValueInfo{Batched("x", 3)},
				Outputs: []ValueInfo{Batched("y", 3)}, Nodes: nodes}}
			if err := m.Validate(); err != nil {
				t.Errorf("Gelu(opset=%d, tanh=%v): %v", opset, approx, err)
			}
		}
	}
}
