package nn

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
)

// resSpecText has an identity block and a projection block (the shape
// changes: 4 channels of 8×8 become 6 of 4×4).
const resSpecText = "conv4x3x3p1,relu,res(conv4x3x3p1,relu,conv4x3x3p1),relu,res(conv6x3x3s2p1,relu,conv6x3x3p1|conv6x1x1s2),relu,dense3"

func TestParseSpecResidual(t *testing.T) {
	layers, err := ParseSpec(resSpecText)
	backendtest.MustNil(t, err)
	conv := func(k, r, s, st, p int) LayerSpec {
		return LayerSpec{Kind: Conv, Filters: k, KernelH: r, KernelW: s, StrideH: st, StrideW: st, PadH: p, PadW: p}
	}
	relu := LayerSpec{Kind: ReLU}
	want := []LayerSpec{
		conv(4, 3, 3, 0, 1), relu,
		{Kind: Residual, Branches: [][]LayerSpec{{conv(4, 3, 3, 0, 1), relu, conv(4, 3, 3, 0, 1)}}}, relu,
		{Kind: Residual, Branches: [][]LayerSpec{{conv(6, 3, 3, 2, 1), relu, conv(6, 3, 3, 0, 1)}, {conv(6, 1, 1, 2, 0)}}}, relu,
		{Kind: Flatten}, DenseLayer(3),
	}
	if !reflect.DeepEqual(layers, want) {
		t.Errorf("ParseSpec(%q) = %+v, want %+v", resSpecText, layers, want)
	}
	canonical := strings.Replace(resSpecText, "dense3", "flatten,dense3", 1)
	if got := FormatSpec(layers); got != canonical {
		t.Errorf("FormatSpec = %q, want %q", got, canonical)
	}
	for _, text := range []string{"res( conv4x3x3p1 , relu,conv4x3x3p1 | ),dense3", "res(conv4x3x3p1,\n relu, # a comment\n conv4x3x3p1),dense3"} {
		got, err := ParseSpec(text)
		backendtest.MustNil(t, err)
		if f := FormatSpec(got); f != "res(conv4x3x3p1,relu,conv4x3x3p1),flatten,dense3" {
			t.Errorf("FormatSpec(ParseSpec(%q)) = %q", text, f)
		}
	}
	infos, err := Spec{C: 1, H: 8, W: 8, Layers: layers, Loss: SoftmaxCE}.Check()
	backendtest.MustNil(t, err)
	if len(infos) != 15 || infos[2].Depth != 0 || infos[3].Depth != 1 || infos[7].Out != (Shape{C: 6, H: 4, W: 4}) {
		t.Errorf("Check: %d infos, depths %d,%d, block 2 out %v; want 15, 0,1, (6,4,4)", len(infos), infos[2].Depth, infos[3].Depth, infos[7].Out)
	}
	ps, err := Spec{C: 1, H: 8, W: 8, Layers: layers, Loss: SoftmaxCE}.ParamShapes()
	backendtest.MustNil(t, err)
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if got, want := strings.Join(names, " "), "layer1.weight layer1.bias layer4.weight layer4.bias layer6.weight layer6.bias "+
		"layer9.weight layer9.bias layer11.weight layer11.bias layer12.weight layer12.bias layer15.weight layer15.bias"; got != want {
		t.Errorf("parameters %s, want %s", got, want)
	}
}

func TestParseSpecResidualErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"res(conv4x3x3p1,dense3", `"(" without its ")"`},
		{"res(conv4x3x3p1)),dense3", `")" without its "("`},
		{"res(),dense3", "empty main branch"},
		{"res(|conv4x1x1),dense3", "empty main branch"},
		{"res(relu|relu|relu),dense3", "3 branches"},
		{"relu(conv4x3x3),dense3", `"relu" does not take branches`},
		{"res(relu)x,dense3", "text after the closing parenthesis"},
		{"res,dense3", "its branches go in parentheses"},
		{"res(conv4x3x3 relu),dense3", `layer 2 "conv4x3x3 relu"`},
		{"res(dense4,conv4x3x3),dense3", "flattened before it"},
	} {
		t.Run("spec="+tc.text, func(t *testing.T) {
			_, err := ParseSpec(tc.text)
			if err == nil || !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseSpec error %v, want one wrapping ErrSpec containing %q", err, tc.want)
			}
		})
	}
	layers, err := ParseSpec("res(conv4x3x3s2p1),dense3")
	backendtest.MustNil(t, err)
	_, err = Spec{C: 2, H: 8, W: 8, Layers: layers, Loss: SoftmaxCE}.Check()
	if err == nil || !strings.Contains(err.Error(), "layer 1 (res (identity shortcut)) on input (2,8,8): the main branch gives (4,4,4) but the shortcut (the identity) (2,8,8)") {
		t.Errorf("Check of a mismatched block: %v", err)
	}
}

// TestResidualGradients checks every parameter's gradient of networks
// with both kinds of residual block against central differences of the
// loss, on the CPU backend in float32. The branches are linear (no ReLU):
// the loss is then smooth, where ReLU kinks make float32 differences
// useless; the blocks' routing of gradients (a tensor read twice, the add,
// the shortcut) is what is checked, ReLU has its own tests. With h = 1e-2,
// |numeric − analytic| ≤ 2e-3 + 2e-2·|analytic|: float32 rounding of a loss
// near 1 over 2h gives about 1e-5 and the curvature term stays below 1e-4
// here; a gradient that misses a branch is off by that branch's share, far
// beyond.
func TestResidualGradients(t *testing.T) {
	for _, text := range []string{
		"conv4x3x3p1,res(conv4x3x3p1,conv4x3x3p1),res(conv6x3x3s2p1,conv6x3x3p1|conv6x1x1s2),dense3",
		"conv4x3x3p1,res(conv4x3x3p1),res(res(conv4x3x3p1)|conv4x1x1),dense3", // nested, a conv shortcut of the same shape
		"conv4x3x3p1,conv4x3x3p1,conv6x3x3s2p1,dense3",                        // the same check without blocks
	} {
		t.Run("spec="+text, func(t *testing.T) { testGradients(t, text) })
	}
}

func testGradients(t *testing.T, text string) {
	layers, err := ParseSpec(text)
	backendtest.MustNil(t, err)
	spec := Spec{C: 1, H: 8, W: 8, Layers: layers, Loss: SoftmaxCE}
	be := backendtest.CPU(t)
	m, err := NewModel(be, spec, 5)
	backendtest.MustNil(t, err)
	defer m.Close()
	ds, err := data.Synthetic(4, 8, 3, 1)
	backendtest.MustNil(t, err)
	set, err := m.Upload(ds, ds.Standardisation())
	backendtest.MustNil(t, err)
	b, err := m.NewBatch(4)
	backendtest.MustNil(t, err)
	backendtest.MustNil(t, m.Load(b, set, []int32{0, 1, 2, 3}))
	loss := func() float64 {
		backendtest.MustNil(t, m.Forward(b))
		l := make([]float32, 1)
		backendtest.MustNil(t, be.Download(l, b.Loss))
		return float64(l[0])
	}
	loss()
	backendtest.MustNil(t, m.Backward(b))
	first, err := m.gradValues()
	backendtest.MustNil(t, err)
	// A second pass overwrites every gradient with the same bits: nothing
	// is summed into what the first pass left.
	loss()
	backendtest.MustNil(t, m.Backward(b))
	second, err := m.gradValues()
	backendtest.MustNil(t, err)
	for i := range first {
		backendtest.EqualBits(t, "second pass, gradient of "+m.Params()[i].Name, second[i], first[i])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const h = 1e-2
	for _, p := range m.Params() {
		grad := make([]float32, p.Grad.Len())
		val := make([]float32, p.Value.Len())
		backendtest.MustNil(t, be.Download(grad, p.Grad))
		backendtest.MustNil(t, be.Download(val, p.Value))
		for range 4 {
			j := rng.IntN(len(val))
			orig := val[j]
			plus, minus := orig+float32(h), orig-float32(h)
			val[j] = plus
			backendtest.MustNil(t, be.Upload(p.Value, val))
			up := loss()
			val[j] = minus
			backendtest.MustNil(t, be.Upload(p.Value, val))
			down := loss()
			val[j] = orig
			backendtest.MustNil(t, be.Upload(p.Value, val))
			num, got := (up-down)/float64(plus-minus), float64(grad[j])
			if math.Abs(num-got) > 2e-3+2e-2*math.Abs(got) {
				t.Errorf("%s[%d]: gradient %g, central difference %g", p.Name, j, got, num)
			}
		}
	}
}

// TestResidualFusedCPUvsSim trains the residual network a few steps with
// the fusions and with every layer as written, on the CPU and on the
// simulator (where the conv+ReLU epilogue fuses), and requires the same
// bits within a backend, and the two backends within float32 rounding.
func TestResidualFusedCPUvsSim(t *testing.T) {
	layers, err := ParseSpec("conv4x3x3p1,relu,maxpool2,res(conv4x3x3p1,relu,conv4x3x3p1),relu,res(conv6x3x3s2p1,relu,conv6x3x3p1|conv6x1x1s2),relu,dense4")
	backendtest.MustNil(t, err)
	spec := Spec{C: 1, H: 14, W: 14, Loss: SoftmaxCE, Layers: layers}
	t.Run("backend=cpu", func(t *testing.T) { testFused(t, spec, false, false) })
	t.Run("backend=sim", func(t *testing.T) { testFused(t, spec, true, false) })
	ds, err := data.Synthetic(32, 14, 4, 3)
	backendtest.MustNil(t, err)
	run := func(be backend.Backend) []float32 {
		m, err := NewModel(be, spec, 2)
		backendtest.MustNil(t, err)
		set, err := m.Upload(ds, ds.Standardisation())
		backendtest.MustNil(t, err)
		b, err := m.NewBatch(8)
		backendtest.MustNil(t, err)
		var losses []float32
		for step := range 4 {
			rows := make([]int32, 8)
			for i := range rows {
				rows[i] = int32((step*8 + i*3) % 32)
			}
			backendtest.MustNil(t, m.Load(b, set, rows))
			backendtest.MustNil(t, m.TrainStep(b, 0.05, 0.9, 0))
			l := make([]float32, 1)
			backendtest.MustNil(t, be.Download(l, b.Loss))
			losses = append(losses, l[0])
		}
		return losses
	}
	sim, _ := backendtest.Sim(t)
	cpu, gpu := run(backendtest.CPU(t)), run(sim)
	for i := range cpu {
		if math.Abs(float64(cpu[i]-gpu[i])) > 1e-5+1e-4*math.Abs(float64(cpu[i])) {
			t.Errorf("step %d: loss %g on the simulator, %g on the CPU", i+1, gpu[i], cpu[i])
		}
	}
}

// gradValues downloads every parameter's gradient, in Params order.
func (m *Model) gradValues() ([][]float32, error) {
	out := make([][]float32, len(m.params))
	for i, p := range m.params {
		out[i] = make([]float32, p.Grad.Len())
		if err := m.be.Download(out[i], p.Grad); err != nil {
			return nil, err
		}
	}
	return out, nil
}
