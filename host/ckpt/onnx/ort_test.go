package onnx

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

// The ONNX Runtime test writes small models with known weights, checks them
// with the onnx package (check_model with full_check, which runs strict
// shape inference too; the file equals the onnx package's own
// serialization of what it parsed; every field as built here) and runs them
// in ONNX Runtime on the CPU, comparing the outputs with float64 references
// computed here: cpuref (generic over float64) where it has the op, a few
// lines of plain Go for the ops it lacks yet (BatchNorm inference, average
// pooling, the activations, softmax).
//
// Python: Debian's /usr/bin/python3, the interpreter of the PyTorch interop
// tests in host and cmd/train, with onnx, onnxruntime and numpy at the
// versions pinned in scripts/python-pins.txt. .ci/run installs them with
// pip --target into $HOME/.cache/convtrain-py; the test puts the folder
// $CONVTRAIN_PYTHONPATH (default $HOME/.cache/convtrain-py) first on the
// child's PYTHONPATH, and only there: exported globally, its numpy 2 would
// shadow the Debian numpy that Debian's torch is built against. Without
// the packages the test skips, saying what to install; under CI=true it
// fails instead, as CI installs them.

// ortPython is the interpreter the ONNX Runtime test runs, and ortScript
// the script it runs: it checks and runs the models listed in a manifest
// (see its doc string).
const (
	ortPython = "/usr/bin/python3"
	ortScript = "../../../scripts/onnx-check.py"
)

// ortAtol and ortRtol bound |got − want| ≤ ortAtol + ortRtol·|want|: ONNX
// Runtime computes in float32 (its own summation order and FMA, its own
// exp/erf/tanh), the references in float64 from the same float32 inputs;
// the values are O(1) and the longest sum has 48 terms, so float32 rounding
// stays near 1e-6, well inside 1e-5.
const ortAtol, ortRtol = 1e-5, 1e-5

// ortPythonPath is the folder of the pinned Python packages.
func ortPythonPath() string {
	if dir := os.Getenv("CONVTRAIN_PYTHONPATH"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "convtrain-py")
}

// ortCommand returns the python command with the pinned packages first on
// its PYTHONPATH.
func ortCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(ortPython, args...)
	pp := ortPythonPath()
	if old := os.Getenv("PYTHONPATH"); old != "" {
		pp += string(os.PathListSeparator) + old
	}
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pp)
	return cmd
}

// requireORT skips the test (fails it under CI=true) when the interpreter
// or its packages are missing.
func requireORT(t *testing.T) {
	t.Helper()
	out, err := ortCommand("-c", "import onnx, onnxruntime, numpy").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("needs %s with onnx, onnxruntime and numpy: %s -m pip install --no-deps --only-binary=:all: --target %s -r scripts/python-pins.txt (as .ci/run does; or set CONVTRAIN_PYTHONPATH): %v: %s",
		ortPython, ortPython, ortPythonPath(), err, strings.TrimSpace(lastLine(string(out))))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

type ortInput struct {
	name  string
	shape []int
	data  []float32
}

type ortOutput struct {
	name  string
	shape []int
	data  []float64
}

type ortCase struct {
	name   string
	model  Model
	inputs []ortInput
	want   []ortOutput
}

// What the python side sends back.
type ortResult struct {
	Versions map[string]string `json:"versions"`
	Cases    map[string]struct {
		Error             string    `json:"error"`
		ReserializedEqual bool      `json:"reserialized_equal"`
		Model             modelDump `json:"model"`
		Outputs           []struct {
			Name  string     `json:"name"`
			Shape []int      `json:"shape"`
			Data  jsonFloats `json:"data"`
		} `json:"outputs"`
	} `json:"cases"`
}

type modelDump struct {
	IRVersion       int64  `json:"ir_version"`
	ProducerName    string `json:"producer_name"`
	ProducerVersion string `json:"producer_version"`
	DocString       string `json:"doc_string"`
	OpsetImport     []struct {
		Domain  string `json:"domain"`
		Version int64  `json:"version"`
	} `json:"opset_import"`
	Graph struct {
		Name      string `json:"name"`
		DocString string `json:"doc_string"`
		Nodes     []struct {
			Name      string   `json:"name"`
			OpType    string   `json:"op_type"`
			Domain    string   `json:"domain"`
			Input     []string `json:"input"`
			Output    []string `json:"output"`
			DocString string   `json:"doc_string"`
			Attribute []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Value json.RawMessage `json:"value"`
			} `json:"attribute"`
		} `json:"nodes"`
		Initializer []struct {
			Name       string     `json:"name"`
			Dims       []int64    `json:"dims"`
			DataType   int        `json:"data_type"`
			RawDataLen int        `json:"raw_data_len"`
			Data       jsonFloats `json:"data"`
		} `json:"initializer"`
		Input  []valueDump `json:"input"`
		Output []valueDump `json:"output"`
	} `json:"graph"`
}

// jsonFloats reads a list of numbers in which NaN and the infinities are
// the strings "nan", "inf" and "-inf".
type jsonFloats []float64

func (f *jsonFloats) UnmarshalJSON(b []byte) error {
	var raw []any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*f = make([]float64, len(raw))
	for i, v := range raw {
		switch v := v.(type) {
		case float64:
			(*f)[i] = v
		case string:
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
			(*f)[i] = x
		default:
			return fmt.Errorf("element %d is %T, want a number", i, v)
		}
	}
	return nil
}

type valueDump struct {
	Name     string            `json:"name"`
	ElemType int               `json:"elem_type"`
	Dims     []json.RawMessage `json:"dims"`
}

func TestONNXRuntime(t *testing.T) {
	requireORT(t)
	cases := ortCases(t)
	dir := t.TempDir()
	type manifestInput struct {
		Name  string `json:"name"`
		Shape []int  `json:"shape"`
		File  string `json:"file"`
	}
	type manifestCase struct {
		Name   string          `json:"name"`
		Model  string          `json:"model"`
		Inputs []manifestInput `json:"inputs"`
	}
	var manifest struct {
		Cases []manifestCase `json:"cases"`
	}
	for i, c := range cases {
		var buf bytes.Buffer
		if err := Write(&buf, c.model); err != nil {
			t.Fatalf("%s: Write: %v", c.name, err)
		}
		mc := manifestCase{Name: c.name, Model: filepath.Join(dir, fmt.Sprintf("case%d.onnx", i))}
		if err := os.WriteFile(mc.Model, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		for j, in := range c.inputs {
			raw := make([]byte, 0, 4*len(in.data))
			for _, v := range in.data {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
			}
			f := filepath.Join(dir, fmt.Sprintf("case%d-in%d.f32", i, j))
			if err := os.WriteFile(f, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			mc.Inputs = append(mc.Inputs, manifestInput{Name: in.name, Shape: in.shape, File: f})
		}
		manifest.Cases = append(manifest.Cases, mc)
	}
	mj, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	mf := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(mf, mj, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := ortCommand(ortScript, mf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/onnx-check.py: %v\n%s", err, stderr.String())
	}
	var res ortResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("scripts/onnx-check.py printed no JSON: %v\n%.2000s\n%s", err, out, stderr.String())
	}
	t.Logf("onnx %s, onnxruntime %s, numpy %s", res.Versions["onnx"], res.Versions["onnxruntime"], res.Versions["numpy"])
	for _, c := range cases {
		t.Run("model="+c.name, func(t *testing.T) {
			r, ok := res.Cases[c.name]
			if !ok {
				t.Fatalf("no result from scripts/onnx-check.py")
			}
			if r.Error != "" {
				t.Fatalf("onnx/onnxruntime failed:\n%s", r.Error)
			}
			if !r.ReserializedEqual {
				t.Errorf("the file differs from the onnx package's serialization of the model it parsed")
			}
			checkDump(t, c.model, r.Model)
			if len(r.Outputs) != len(c.want) {
				t.Fatalf("%d outputs, want %d", len(r.Outputs), len(c.want))
			}
			for i, w := range c.want {
				g := r.Outputs[i]
				if g.Name != w.name {
					t.Errorf("output %d is %q, want %q", i, g.Name, w.name)
					continue
				}
				if fmt.Sprint(g.Shape) != fmt.Sprint(w.shape) {
					t.Errorf("output %q has shape %v, want %v", w.name, g.Shape, w.shape)
					continue
				}
				compareClose(t, w.name, w.shape, g.Data, w.data)
			}
		})
	}
}

// compareClose reports the first few elements out of tolerance and the
// largest error.
func compareClose(t *testing.T, name string, shape []int, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return
	}
	bad, maxErr := 0, 0.0
	for i := range want {
		d := math.Abs(got[i] - want[i])
		if d > maxErr || math.IsNaN(d) {
			maxErr = d
		}
		if !(d <= ortAtol+ortRtol*math.Abs(want[i])) {
			if bad < 5 {
				t.Errorf("%s (shape %v) [%d] = %.9g, want %.9g (|diff| %.3g)", name, shape, i, got[i], want[i], d)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance, max |diff| %.3g", name, bad, len(want), maxErr)
	}
}

// checkDump compares the fields the onnx package parsed with the model as
// built.
func checkDump(t *testing.T, m Model, d modelDump) {
	t.Helper()
	if d.IRVersion != IRVersion(m.opset()) {
		t.Errorf("ir_version = %d, want %d", d.IRVersion, IRVersion(m.opset()))
	}
	if len(d.OpsetImport) != 1 || d.OpsetImport[0].Domain != "" || d.OpsetImport[0].Version != m.opset() {
		t.Errorf("opset_import = %+v, want one entry {domain: \"\", version: %d}", d.OpsetImport, m.opset())
	}
	if d.ProducerName != m.producer() || d.ProducerVersion != m.ProducerVersion || d.DocString != m.Doc {
		t.Errorf("producer %q %q, doc %q; want %q %q, %q", d.ProducerName, d.ProducerVersion, d.DocString,
			m.producer(), m.ProducerVersion, m.Doc)
	}
	g := &m.Graph
	if d.Graph.Name != g.Name || d.Graph.DocString != g.Doc {
		t.Errorf("graph name %q, doc %q; want %q, %q", d.Graph.Name, d.Graph.DocString, g.Name, g.Doc)
	}
	if len(d.Graph.Nodes) != len(g.Nodes) {
		t.Fatalf("%d nodes, want %d", len(d.Graph.Nodes), len(g.Nodes))
	}
	for i, n := range g.Nodes {
		dn := d.Graph.Nodes[i]
		if dn.Name != n.Name || dn.OpType != n.Op || dn.Domain != "" || dn.DocString != n.Doc ||
			fmt.Sprint(dn.Input) != fmt.Sprint(n.Inputs) || fmt.Sprint(dn.Output) != fmt.Sprint(n.Outputs) {
			t.Errorf("node %d = %s %q %v→%v doc %q domain %q, want %s %q %v→%v doc %q", i, dn.OpType, dn.Name,
				dn.Input, dn.Output, dn.DocString, dn.Domain, n.Op, n.Name, n.Inputs, n.Outputs, n.Doc)
		}
		if len(dn.Attribute) != len(n.Attrs) {
			t.Errorf("node %q: %d attributes, want %d", n.Name, len(dn.Attribute), len(n.Attrs))
			continue
		}
		for j, a := range n.Attrs {
			da := dn.Attribute[j]
			var want any
			switch a.Type {
			case AttrFloat:
				want = float64(a.F)
			case AttrInt:
				want = a.I
			case AttrString:
				want = a.S
			case AttrInts:
				want = a.Ints
			}
			wj, _ := json.Marshal(want)
			if da.Name != a.Name || da.Type != a.Type.String() || !jsonEqual(da.Value, wj) {
				t.Errorf("node %q attribute %d = %s %s %s, want %s %s %s", n.Name, j, da.Name, da.Type, da.Value,
					a.Name, a.Type, wj)
			}
		}
	}
	if len(d.Graph.Initializer) != len(g.Initializers) {
		t.Fatalf("%d initializers, want %d", len(d.Graph.Initializer), len(g.Initializers))
	}
	for i, in := range g.Initializers {
		di := d.Graph.Initializer[i]
		if di.Name != in.Name || fmt.Sprint(di.Dims) != fmt.Sprint(in.Dims) || di.DataType != 1 || di.RawDataLen != 4*len(in.Data) {
			t.Errorf("initializer %d = %q %v type %d, %d raw bytes; want %q %v type 1, %d", i, di.Name, di.Dims,
				di.DataType, di.RawDataLen, in.Name, in.Dims, 4*len(in.Data))
			continue
		}
		for j, v := range in.Data {
			if math.Float32bits(float32(di.Data[j])) != math.Float32bits(v) {
				t.Errorf("initializer %q [%d] = %g, want %g", in.Name, j, di.Data[j], v)
				break
			}
		}
	}
	checkValues := func(kind string, got []valueDump, want []ValueInfo) {
		if len(got) != len(want) {
			t.Errorf("%d graph %ss, want %d", len(got), kind, len(want))
			return
		}
		for i, v := range want {
			var dims []string
			for _, d := range v.Dims {
				if d.Param != "" {
					dims = append(dims, fmt.Sprintf("%q", d.Param))
				} else {
					dims = append(dims, fmt.Sprint(d.Value))
				}
			}
			var gotDims []string
			for _, d := range got[i].Dims {
				gotDims = append(gotDims, string(d))
			}
			if got[i].Name != v.Name || got[i].ElemType != 1 || fmt.Sprint(gotDims) != fmt.Sprint(dims) {
				t.Errorf("graph %s %d = %q type %d dims %v, want %q type 1 dims %v", kind, i, got[i].Name,
					got[i].ElemType, gotDims, v.Name, dims)
			}
		}
	}
	checkValues("input", d.Graph.Input, g.Inputs)
	checkValues("output", d.Graph.Output, g.Outputs)
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// The cases: small graphs with known weights, one per group of operators.

func randFloat32(r *rand.Rand, n int, lo, hi float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = lo + (hi-lo)*r.Float32()
	}
	return v
}

func f64(v []float32) []float64 {
	w := make([]float64, len(v))
	for i, x := range v {
		w[i] = float64(x)
	}
	return w
}

func mapF(x []float64, f func(float64) float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = f(v)
	}
	return y
}

// refSoftmax is the softmax over the last axis of (n, k).
func refSoftmax(x []float64, n, k int) []float64 {
	y := make([]float64, len(x))
	for i := 0; i < n; i++ {
		row, m := x[i*k:(i+1)*k], math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		var s float64
		for j, v := range row {
			y[i*k+j] = math.Exp(v - m)
			s += y[i*k+j]
		}
		for j := range row {
			y[i*k+j] /= s
		}
	}
	return y
}

// refBatchNorm is BatchNorm in evaluation mode over (n, c, hw).
func refBatchNorm(x []float64, n, c, hw int, gamma, beta, mean, variance []float32, eps float64) []float64 {
	y := make([]float64, len(x))
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			inv := 1 / math.Sqrt(float64(variance[ch])+eps)
			for j := 0; j < hw; j++ {
				k := (i*c+ch)*hw + j
				y[k] = float64(gamma[ch])*(x[k]-float64(mean[ch]))*inv + float64(beta[ch])
			}
		}
	}
	return y
}

// refAvgPool is the average over r×s windows with stride st and zero
// padding pad, the padding counted in the divisor r·s (count_include_pad).
func refAvgPool(x []float64, n, c, h, w, r, s, st, pad int) ([]float64, int, int) {
	p, q := (h+2*pad-r)/st+1, (w+2*pad-s)/st+1
	y := make([]float64, n*c*p*q)
	for nc := 0; nc < n*c; nc++ {
		for i := 0; i < p; i++ {
			for j := 0; j < q; j++ {
				var sum float64
				for a := 0; a < r; a++ {
					for b := 0; b < s; b++ {
						hh, ww := i*st-pad+a, j*st-pad+b
						if hh >= 0 && hh < h && ww >= 0 && ww < w {
							sum += x[(nc*h+hh)*w+ww]
						}
					}
				}
				y[(nc*p+i)*q+j] = sum / float64(r*s)
			}
		}
	}
	return y, p, q
}

// refMaxPoolPadded is the maximum over k×k windows with stride st and
// padding pad that never wins (PyTorch's MaxPool2d, ONNX's MaxPool).
func refMaxPoolPadded(x []float64, n, c, h, w, k, st, pad int) ([]float64, int, int) {
	p, q := (h+2*pad-k)/st+1, (w+2*pad-k)/st+1
	y := make([]float64, n*c*p*q)
	for nc := 0; nc < n*c; nc++ {
		for i := 0; i < p; i++ {
			for j := 0; j < q; j++ {
				m := math.Inf(-1)
				for a := 0; a < k; a++ {
					for b := 0; b < k; b++ {
						hh, ww := i*st-pad+a, j*st-pad+b
						if hh >= 0 && hh < h && ww >= 0 && ww < w {
							m = math.Max(m, x[(nc*h+hh)*w+ww])
						}
					}
				}
				y[(nc*p+i)*q+j] = m
			}
		}
	}
	return y, p, q
}

func sigmoid(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

func geluExact(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }

func geluTanh(v float64) float64 {
	return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ortCases(t *testing.T) []ortCase {
	r := rand.New(rand.NewPCG(18, 2026))
	var cases []ortCase

	{ // the default network's layers: conv (pad 1), ReLU, max-pool, flatten, dense, softmax
		g := geom.ConvGeom{N: 2, C: 2, H: 9, W: 8, K: 3, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
		x := randFloat32(r, g.XLen(), -1, 1)
		w := randFloat32(r, g.WLen(), -0.5, 0.5)
		b := randFloat32(r, g.K, -0.1, 0.1)
		conv := make([]float64, g.YLen())
		must(t, cpuref.Conv2DForwardDirect(g, f64(x), f64(w), f64(b), conv))
		relu := make([]float64, len(conv))
		must(t, cpuref.ReLUForward(conv, relu))
		pg := geom.PoolGeom{N: 2, C: g.K, H: g.P(), W: g.Q(), R: 2, S: 2, StrideH: 2, StrideW: 2}
		pool := make([]float64, pg.YLen())
		must(t, cpuref.MaxPoolForward(pg, relu, pool, make([]int32, pg.YLen())))
		in, out := g.K*pg.P()*pg.Q(), 5
		dw := randFloat32(r, out*in, -0.3, 0.3)
		db := randFloat32(r, out, -0.1, 0.1)
		logits := make([]float64, 2*out)
		must(t, cpuref.DenseForward(2, in, out, pool, f64(dw), f64(db), logits))
		cases = append(cases, ortCase{
			name: "conv-relu-maxpool-flatten-gemm-softmax",
			model: Model{Doc: "model doc: conv8x3x3p1 × relu", ProducerVersion: "test", Graph: Graph{
				Name: "net", Doc: "spec: conv3x3x3p1,relu,maxpool2,dense5\nconfig: lr 0.05",
				Inputs:  []ValueInfo{Batched("input", 2, 9, 8)},
				Outputs: []ValueInfo{Batched("logits", 5), Batched("probs", 5)},
				Nodes: []Node{
					Conv("layer0", "input", "layer0.weight", "layer0.bias", "conv0", NewWindow(3, 3, 1, 1, 1, 1)),
					Relu("layer1", "conv0", "relu1"),
					MaxPool("layer2", "relu1", "pool2", NewWindow(2, 2, 2, 2, 0, 0)),
					Flatten("layer3", "pool2", "flat3"),
					{Op: "Gemm", Name: "layer4", Inputs: []string{"flat3", "layer4.weight", "layer4.bias"},
						Outputs: []string{"logits"}, Attrs: []Attr{IntAttr("transB", 1)}, Doc: "dense5"},
					Softmax("softmax", "logits", "probs"),
				},
				Initializers: []Initializer{
					{Name: "layer0.weight", Dims: []int64{3, 2, 3, 3}, Data: w},
					{Name: "layer0.bias", Dims: []int64{3}, Data: b},
					{Name: "layer4.weight", Dims: []int64{5, int64(in)}, Data: dw},
					{Name: "layer4.bias", Dims: []int64{5}, Data: db},
				},
			}},
			inputs: []ortInput{{"input", []int{2, 2, 9, 8}, x}},
			want: []ortOutput{
				{"logits", []int{2, out}, logits},
				{"probs", []int{2, out}, refSoftmax(logits, 2, out)},
			},
		})
	}

	{ // a non-square kernel, stride and padding that differ by axis, no bias: the order of H and W
		g := geom.ConvGeom{N: 1, C: 2, H: 7, W: 6, K: 2, R: 3, S: 2, StrideH: 2, StrideW: 1, PadH: 1, PadW: 0}
		x := randFloat32(r, g.XLen(), -1, 1)
		w := randFloat32(r, g.WLen(), -1, 1)
		y := make([]float64, g.YLen())
		must(t, cpuref.Conv2DForwardDirect(g, f64(x), f64(w), nil, y))
		cases = append(cases, ortCase{
			name: "conv-asymmetric-nobias",
			model: Model{Graph: Graph{
				Name:         "conv",
				Inputs:       []ValueInfo{Batched("x", 2, 7, 6)},
				Outputs:      []ValueInfo{Batched("y", 2, int64(g.P()), int64(g.Q()))},
				Nodes:        []Node{Conv("conv", "x", "w", "", "y", NewWindow(3, 2, 2, 1, 1, 0))},
				Initializers: []Initializer{{Name: "w", Dims: []int64{2, 2, 3, 2}, Data: w}},
			}},
			inputs: []ortInput{{"x", []int{1, 2, 7, 6}, x}},
			want:   []ortOutput{{"y", []int{1, 2, g.P(), g.Q()}, y}},
		})
	}

	{ // a residual block: conv (no bias), BatchNorm (running statistics), ReLU, Add of the input, ReLU
		g := geom.ConvGeom{N: 2, C: 3, H: 5, W: 5, K: 3, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
		x := randFloat32(r, g.XLen(), -1, 1)
		w := randFloat32(r, g.WLen(), -0.5, 0.5)
		gamma := randFloat32(r, 3, 0.5, 1.5)
		beta := randFloat32(r, 3, -0.2, 0.2)
		mean := randFloat32(r, 3, -0.3, 0.3)
		variance := randFloat32(r, 3, 0.2, 2)
		conv := make([]float64, g.YLen())
		must(t, cpuref.Conv2DForwardDirect(g, f64(x), f64(w), nil, conv))
		bn := refBatchNorm(conv, 2, 3, 25, gamma, beta, mean, variance, float64(float32(1e-5)))
		relu := mapF(bn, func(v float64) float64 { return math.Max(v, 0) })
		sum := make([]float64, len(relu))
		for i := range sum {
			sum[i] = math.Max(relu[i]+float64(x[i]), 0)
		}
		cases = append(cases, ortCase{
			name: "residual-batchnorm-add",
			model: Model{Graph: Graph{
				Name:    "residual",
				Inputs:  []ValueInfo{Batched("x", 3, 5, 5)},
				Outputs: []ValueInfo{Batched("y", 3, 5, 5)},
				Nodes: []Node{
					Conv("conv", "x", "conv.weight", "", "c", NewWindow(3, 3, 1, 1, 1, 1)),
					BatchNormalization("bn", "c", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "b", 1e-5, 0.1),
					Relu("relu1", "b", "r"),
					Add("add", "r", "x", "s"),
					Relu("relu2", "s", "y"),
				},
				Initializers: []Initializer{
					{Name: "conv.weight", Dims: []int64{3, 3, 3, 3}, Data: w},
					{Name: "bn.weight", Dims: []int64{3}, Data: gamma},
					{Name: "bn.bias", Dims: []int64{3}, Data: beta},
					{Name: "bn.running_mean", Dims: []int64{3}, Data: mean},
					{Name: "bn.running_var", Dims: []int64{3}, Data: variance},
				},
			}},
			inputs: []ortInput{{"x", []int{2, 3, 5, 5}, x}},
			want:   []ortOutput{{"y", []int{2, 3, 5, 5}, sum}},
		})
	}

	{ // average pooling with padding counted in the divisor, and without padding; max-pooling
		// with padding over negative values, where the padding must never win
		x := randFloat32(r, 2*2*7*6, -1, 1)
		xn := randFloat32(r, 1*2*5*5, -2, -1)
		a3, p3, q3 := refAvgPool(f64(x), 2, 2, 7, 6, 3, 3, 2, 1)
		a2, p2, q2 := refAvgPool(f64(x), 2, 2, 7, 6, 2, 2, 2, 0)
		m3, pm, qm := refMaxPoolPadded(f64(xn), 1, 2, 5, 5, 3, 2, 1)
		cases = append(cases, ortCase{
			name: "pools-padded",
			model: Model{Graph: Graph{
				Name:   "pools",
				Inputs: []ValueInfo{Batched("x", 2, 7, 6), Batched("xn", 2, 5, 5)},
				Outputs: []ValueInfo{Batched("avg3", 2, int64(p3), int64(q3)), Batched("avg2", 2, int64(p2), int64(q2)),
					Batched("max3", 2, int64(pm), int64(qm))},
				Nodes: []Node{
					AveragePool("pool3", "x", "avg3", NewWindow(3, 3, 2, 2, 1, 1)),
					AveragePool("pool2", "x", "avg2", NewWindow(2, 2, 2, 2, 0, 0)),
					MaxPool("max3", "xn", "max3", NewWindow(3, 3, 2, 2, 1, 1)),
				},
			}},
			inputs: []ortInput{{"x", []int{2, 2, 7, 6}, x}, {"xn", []int{1, 2, 5, 5}, xn}},
			want: []ortOutput{{"avg3", []int{2, 2, p3, q3}, a3}, {"avg2", []int{2, 2, p2, q2}, a2},
				{"max3", []int{1, 2, pm, qm}, m3}},
		})
	}

	{ // global average pooling; concatenation along the channels
		n, c, h, w := 2, 3, 4, 5
		x := randFloat32(r, n*c*h*w, -1, 1)
		xf := f64(x)
		gap := make([]float64, n*c)
		for i := range gap {
			for _, v := range xf[i*h*w : (i+1)*h*w] {
				gap[i] += v
			}
			gap[i] /= float64(h * w)
		}
		var cat []float64
		for i := 0; i < n; i++ {
			img := xf[i*c*h*w : (i+1)*c*h*w]
			cat = append(cat, img...)
			cat = append(cat, mapF(img, func(v float64) float64 { return math.Max(v, 0) })...)
		}
		cases = append(cases, ortCase{
			name: "globalavgpool-concat",
			model: Model{Graph: Graph{
				Name:    "gapcat",
				Inputs:  []ValueInfo{Batched("x", 3, 4, 5)},
				Outputs: []ValueInfo{Batched("gap", 3, 1, 1), Batched("cat", 6, 4, 5)},
				Nodes: []Node{
					GlobalAveragePool("gap", "x", "gap"),
					Relu("relu", "x", "r"),
					Concat("cat", []string{"x", "r"}, "cat", 1),
				},
			}},
			inputs: []ortInput{{"x", []int{n, c, h, w}, x}},
			want:   []ortOutput{{"gap", []int{n, c, 1, 1}, gap}, {"cat", []int{n, 2 * c, h, w}, cat}},
		})
	}

	// every activation, from one input spanning [−4, 4] with 0 in it
	act := randFloat32(r, 2*3*4*4, -4, 4)
	act[0], act[1], act[2] = 0, -4, 4
	actIn := []ortInput{{"x", []int{2, 3, 4, 4}, act}}
	actShape := []int{2, 3, 4, 4}
	xa := f64(act)
	for _, opset := range []int64{17, 20} {
		var nodes []Node
		nodes = append(nodes, Relu("relu", "x", "relu"), LeakyRelu("leaky", "x", "leaky", 0.1),
			Sigmoid("sigmoid", "x", "sigmoid"), Tanh("tanh", "x", "tanh"), Erf("erf", "x", "erf"),
			Identity("identity", "x", "identity"))
		nodes = append(nodes, Gelu("gelu", "x", "gelu", false, opset)...)
		nodes = append(nodes, Gelu("gelu_tanh", "x", "gelu_tanh", true, opset)...)
		nodes = append(nodes, SiLU("silu", "x", "silu")...)
		want := []ortOutput{
			{"relu", actShape, mapF(xa, func(v float64) float64 { return math.Max(v, 0) })},
			{"leaky", actShape, mapF(xa, func(v float64) float64 {
				if v < 0 {
					return float64(float32(0.1)) * v
				}
				return v
			})},
			{"sigmoid", actShape, mapF(xa, sigmoid)},
			{"tanh", actShape, mapF(xa, math.Tanh)},
			{"erf", actShape, mapF(xa, math.Erf)},
			{"identity", actShape, xa},
			{"gelu", actShape, mapF(xa, geluExact)},
			{"gelu_tanh", actShape, mapF(xa, geluTanh)},
			{"silu", actShape, mapF(xa, func(v float64) float64 { return v * sigmoid(v) })},
		}
		var outs []ValueInfo
		for _, w := range want {
			outs = append(outs, Batched(w.name, 3, 4, 4))
		}
		cases = append(cases, ortCase{
			name:   fmt.Sprintf("activations-opset%d", opset),
			model:  Model{Opset: opset, Graph: Graph{Name: "act", Inputs: []ValueInfo{Batched("x", 3, 4, 4)}, Outputs: outs, Nodes: nodes}},
			inputs: actIn,
			want:   want,
		})
	}

	{ // the input standardisation (Sub, Div per channel), then flatten and a dense layer without bias
		n, c, h, w := 2, 3, 4, 4
		x := randFloat32(r, n*c*h*w, 0, 1)
		mean := []float32{0.485, 0.456, 0.406}
		std := []float32{0.229, 0.224, 0.225}
		st := make([]float64, len(x))
		for i, v := range x {
			ch := (i / (h * w)) % c
			st[i] = (float64(v) - float64(mean[ch])) / float64(std[ch])
		}
		in, out := c*h*w, 4
		dw := randFloat32(r, out*in, -0.2, 0.2)
		y := make([]float64, n*out)
		must(t, cpuref.DenseForward(n, in, out, st, f64(dw), nil, y))
		nodes := Standardize("standardize", "image", "input.mean", "input.std", "x")
		nodes = append(nodes, Flatten("flatten", "x", "flat"), Gemm("dense", "flat", "dense.weight", "", "y"))
		cases = append(cases, ortCase{
			name: "standardize-gemm-nobias",
			model: Model{Graph: Graph{
				Name:    "standardize",
				Inputs:  []ValueInfo{Batched("image", 3, 4, 4)},
				Outputs: []ValueInfo{Batched("x", 3, 4, 4), Batched("y", 4)},
				Nodes:   nodes,
				Initializers: []Initializer{
					{Name: "input.mean", Dims: []int64{3, 1, 1}, Data: mean},
					{Name: "input.std", Dims: []int64{3, 1, 1}, Data: std},
					{Name: "dense.weight", Dims: []int64{4, int64(in)}, Data: dw},
				},
			}},
			inputs: []ortInput{{"image", []int{n, c, h, w}, x}},
			want:   []ortOutput{{"x", []int{n, c, h, w}, st}, {"y", []int{n, out}, y}},
		})
	}
	return cases
}
