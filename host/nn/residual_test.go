package nn

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
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
	ps, _, err := Spec{C: 1, H: 8, W: 8, Layers: layers, Loss: SoftmaxCE}.ParamShapes()
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

// TestModelGradients checks every parameter's gradient of networks with
// both kinds of residual block, BatchNorm (training mode: the gradient
// through the batch's statistics) and the average pools against central
// differences of the loss, on the CPU backend in float32. The networks are
// linear but for BatchNorm (no ReLU): the loss is then smooth, where ReLU
// kinks make float32 differences useless; the blocks' routing of
// gradients (a tensor read twice, the add, the shortcut) is what is
// checked, ReLU has its own tests. With h = 1e-2,
// |numeric − analytic| ≤ 2e-3 + 2e-2·|analytic|: float32 rounding of a loss
// near 1 over 2h gives about 1e-5 and the curvature term stays below 1e-4
// here; a gradient that misses a branch is off by that branch's share, far
// beyond.
func TestModelGradients(t *testing.T) {
	for _, text := range []string{
		"conv4x3x3p1,res(conv4x3x3p1,conv4x3x3p1),res(conv6x3x3s2p1,conv6x3x3p1|conv6x1x1s2),dense3",
		"conv4x3x3p1,res(conv4x3x3p1),res(res(conv4x3x3p1)|conv4x1x1),dense3", // nested, a conv shortcut of the same shape
		"conv4x3x3p1,conv4x3x3p1,conv6x3x3s2p1,dense3",                        // the same check without blocks
		// BatchNorm in training mode (the gradient through the batch's
		// statistics), average pools with padding, global average pooling.
		"conv4x3x3p1,bn,avgpool2,conv6x3x3p1,bn,gap,dense3",
		"conv4x3x3p1,bn,res(conv4x3x3p1,bn,conv4x3x3p1,bn|conv4x1x1,bn),avgpool3s1p1,gap,dense3",
		// Concatenations: branches of convolutions, an identity branch
		// twice (one tensor read three times), a block inside a residual.
		"conv4x3x3p1,cat(conv4x1x1|conv2x3x3p1,bn||),avgpool2,dense3",
		"conv3x3x3p1,res(cat(conv2x1x1|),conv3x1x1),cat(conv2x3x3p1|avgpool3s1p1),dense3",
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
	if testing.Short() {
		t.Skip("-short: the simulator's runs are left to the full run")
	}
	t.Run("backend=sim", func(t *testing.T) { testFused(t, spec, true, false) })
	ds, err := data.Synthetic(32, 14, 4, 3)
	backendtest.MustNil(t, err)
	run := func(be backend.Backend) []float32 {
		m, err := NewModel(be, spec, 2)
		backendtest.MustNil(t, err)
		return trainSteps(t, m, ds, 4, 8, 3, 0.05)
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

// TestBatchNormModes checks BatchNorm's two modes in a model against
// cpuref on the layer's own input: a training Forward normalises with the
// batch's statistics and moves the running ones (momentum 0.1, from 0 and
// 1); an evaluation Forward (Batch.Eval) normalises with the running
// statistics and leaves them as they are. Bit for bit: the backend runs
// the same cpuref functions.
func TestBatchNormModes(t *testing.T) {
	layers, err := ParseSpec("conv3x3x3p1,bn,gap,dense3")
	backendtest.MustNil(t, err)
	be := backendtest.CPU(t)
	m, err := NewModel(be, Spec{C: 1, H: 6, W: 6, Loss: SoftmaxCE, Layers: layers}, 4)
	backendtest.MustNil(t, err)
	defer m.Close()
	ds, err := data.Synthetic(5, 6, 3, 2)
	backendtest.MustNil(t, err)
	set, err := m.Upload(ds, ds.Standardisation())
	backendtest.MustNil(t, err)
	b, err := m.NewBatch(5)
	backendtest.MustNil(t, err)
	backendtest.MustNil(t, m.Load(b, set, []int32{0, 1, 2, 3, 4}))
	bn := m.g.nodes[1]
	download := func(x backend.Tensor) []float32 {
		v := make([]float32, x.Len())
		backendtest.MustNil(t, be.Download(v, x))
		return v
	}
	const n, c, hw = 5, 3, 36
	for step, eval := range []bool{false, true, false, true} {
		b.Eval = eval
		before := [2][]float32{download(m.buffers[0].Value), download(m.buffers[1].Value)}
		backendtest.MustNil(t, m.Forward(b))
		x, gamma, beta := download(b.acts[bn.in]), download(bn.params[0].Value), download(bn.params[1].Value)
		wantY := make([]float32, n*c*hw)
		rm, rv := slices.Clone(before[0]), slices.Clone(before[1]) // cpuref updates them in training
		if eval {
			backendtest.MustNil(t, cpuref.BatchNormEvalForward(n, c, hw, x, gamma, beta, rm, rv, wantY, bnEps))
		} else {
			backendtest.MustNil(t, cpuref.BatchNormTrainForward32(n, c, hw, x, gamma, beta, wantY, make([]float32, c), make([]float32, c), rm, rv, bnMomentum, bnEps))
		}
		name := fmt.Sprintf("step %d (eval %v)", step, eval)
		backendtest.EqualBits(t, name+": y", download(b.acts[bn.out]), wantY)
		backendtest.EqualBits(t, name+": running mean", download(m.buffers[0].Value), rm)
		backendtest.EqualBits(t, name+": running var", download(m.buffers[1].Value), rv)
		if changed := !slices.Equal(before[0], rm); changed == eval {
			t.Errorf("%s: running mean changed %v", name, changed)
		}
	}
}

// TestActivationsDropoutLayers parses, shapes and trains the activation
// and dropout layers on the CPU: their gradients against central
// differences (dropout's mask fixed by its key: the same step draws the
// same mask in every Forward), evaluation-mode dropout as the identity,
// and the masks changing with the step.
func TestActivationsDropoutLayers(t *testing.T) {
	text := "conv4x3x3p1,leakyrelu20,conv4x3x3p1,sigmoid,conv4x3x3p1,tanh,conv4x3x3p1,silu,conv4x3x3p1,gelu,conv4x3x3p1,gelutanh,dropout30,dense3"
	layers, err := ParseSpec(text)
	backendtest.MustNil(t, err)
	if got := FormatSpec(layers); got != strings.Replace(text, "dense3", "flatten,dense3", 1) {
		t.Errorf("FormatSpec = %q", got)
	}
	for _, bad := range []string{"dropout100,dense3", "dropout,dense3", "leakyrelu-1,dense3", "sigmoid2,dense3"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) succeeded", bad)
		}
	}
	testGradients(t, text)

	be := backendtest.CPU(t)
	dl, err := ParseSpec("dropout50,dense3")
	backendtest.MustNil(t, err)
	m, err := NewModel(be, Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: dl}, 1)
	backendtest.MustNil(t, err)
	ds, err := data.Synthetic(4, 8, 3, 1)
	backendtest.MustNil(t, err)
	set, err := m.Upload(ds, ds.Standardisation())
	backendtest.MustNil(t, err)
	b, err := m.NewBatch(4)
	backendtest.MustNil(t, err)
	backendtest.MustNil(t, m.Load(b, set, []int32{0, 1, 2, 3}))
	out := func() []float32 {
		backendtest.MustNil(t, m.Forward(b))
		v := make([]float32, b.acts[1].Len())
		backendtest.MustNil(t, be.Download(v, b.acts[1]))
		return v
	}
	x := make([]float32, b.X.Len())
	backendtest.MustNil(t, be.Download(x, b.X))
	b.Eval = true
	backendtest.EqualBits(t, "evaluation-mode dropout", out(), x)
	b.Eval = false
	first := out()
	kept := 0
	for i, v := range first {
		switch v {
		case 0:
		case x[i] * 2: // 1/(1−0.5)
			kept++
		default:
			t.Fatalf("dropout50: element %d = %g from %g, want 0 or %g", i, v, x[i], 2*x[i])
		}
	}
	if n := len(first); kept < n/4 || kept > 3*n/4 {
		t.Errorf("dropout50 kept %d of %d elements", kept, n)
	}
	backendtest.EqualBits(t, "the same step's mask", out(), first)
	backendtest.MustNil(t, m.SetSteps(1))
	if slices.Equal(out(), first) {
		t.Errorf("step 1 drew the mask of step 0")
	}
}

func TestParseSpecConcat(t *testing.T) {
	layers, err := ParseSpec("conv4x3x3p1,cat(conv4x1x1|conv2x3x3p1,relu|),dense3")
	backendtest.MustNil(t, err)
	if got := FormatSpec(layers); got != "conv4x3x3p1,cat(conv4x1x1|conv2x3x3p1,relu|),flatten,dense3" {
		t.Errorf("FormatSpec = %q", got)
	}
	infos, err := Spec{C: 1, H: 6, W: 6, Loss: SoftmaxCE, Layers: layers}.Check()
	backendtest.MustNil(t, err)
	if got := infos[1].Out; got != (Shape{C: 10, H: 6, W: 6}) {
		t.Errorf("cat output %v, want (10,6,6): 4 + 2 + the input's 4", got)
	}
	for _, tc := range []struct{ text, want string }{
		{"cat(conv4x3x3|conv4x3x3p1),dense3", "branch 1 gives (4,4,4): every branch must keep the 6×6 image"},
		{"cat(dense4|),dense3", "flattens the image"},
		{"dense4,cat(relu|relu),dense3", "flattened before it"},
		{"cat,dense3", "its branches go in parentheses"},
	} {
		layers, err := ParseSpec(tc.text)
		if err == nil {
			_, err = Spec{C: 1, H: 6, W: 6, Loss: SoftmaxCE, Layers: layers}.Check()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error containing %q", tc.text, err, tc.want)
		}
	}
}

// TestFusedBatchNormReLU trains a network with BatchNorm+ReLU pairs on the
// simulator with the step plan's fusions and with every layer as written,
// then runs an evaluation Forward, and requires the same bits: losses,
// weights, running statistics and the evaluation outputs. Fused, each
// BatchNorm followed by a ReLU is one bn_*_fwd_v2 launch forward and one
// bn_bwd_relu_v1 launch backward (the ReLU's mask recomputed there), its
// ReLU never launched, and the residual add with the ReLU after it is one
// add_relu_v1 launch.
func TestFusedBatchNormReLU(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the simulator's runs are left to the full run")
	}
	t.Parallel()
	layers, err := ParseSpec("conv4x3x3p1nobias,bn,relu,res(conv4x3x3p1nobias,bn,relu,conv4x3x3p1nobias,bn),relu,gap,dense3")
	backendtest.MustNil(t, err)
	spec := Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: layers}
	ds, err := data.Synthetic(48, 8, 3, 5)
	backendtest.MustNil(t, err)
	const steps = 4
	type result struct {
		losses, out []float32
		params      [][]float32
		stats       map[string]int64
	}
	run := func(fuse bool) result {
		be, dev := backendtest.Sim(t)
		m, err := newModel(be, spec, 3, fuse)
		backendtest.MustNil(t, err)
		defer m.Close()
		r := result{losses: trainSteps(t, m, ds, steps, 8, 5, 0.05)}
		r.out, r.params = evalState(t, m, be, ds, 8, 40)
		r.stats = map[string]int64{}
		for name, k := range dev.KernelStats() {
			r.stats[floatForm(name)] += k.Launches
		}
		return r
	}
	f, u := run(true), run(false)
	backendtest.EqualBits(t, "losses", f.losses, u.losses)
	backendtest.EqualBits(t, "evaluation outputs", f.out, u.out)
	for i := range u.params {
		backendtest.EqualBits(t, "parameter or buffer "+strconv.Itoa(i), f.params[i], u.params[i])
	}
	// Two BatchNorm+ReLU pairs and one add+ReLU per Forward: steps
	// training Forwards and one in evaluation; steps backward passes.
	for _, c := range []struct {
		kernel        string
		fused, unfusd int64
	}{
		{"bn_train_fwd_v2", 2 * steps, 0},
		{"bn_train_fwd_v1", steps, 3 * steps},
		{"bn_eval_fwd_v2", 2, 0},
		{"bn_eval_fwd_v1", 1, 3},
		{"relu_fwd_v1", 0, 3 * (steps + 1)},
		{"add_v1", 0, steps + 1},
		{"add_relu_v1", steps + 1, 0},
		{"bn_bwd_relu_v1", 2 * steps, 0},
		{"bn_bwd_v1", steps, 3 * steps},
		{"relu_bwd_v1", steps, 3 * steps}, // the add's ReLU
	} {
		if f.stats[c.kernel] != c.fused || u.stats[c.kernel] != c.unfusd {
			t.Errorf("%s launches: %d fused, %d as written; want %d and %d", c.kernel, f.stats[c.kernel], u.stats[c.kernel], c.fused, c.unfusd)
		}
	}
}

// TestFusedBatchNormReLUCPU is TestFusedBatchNormReLU on the CPU backend,
// which advertises the fusion too (cpuref.BatchNorm32 applies the ReLU as
// it writes y): trained with the step plan's fusions and with every layer
// as written, then evaluated, the network must give the same bits, with
// the stem's and the block's BatchNorm+ReLU pairs fused (the stem's then
// max-pooled, where as written its ReLU moves after the pool) and the
// ReLU after the residual add on its own. The activations are large
// enough for BatchNorm32 to split the channels over two goroutines.
func TestFusedBatchNormReLUCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the training runs are left to the full run")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	layers, err := ParseSpec("conv8x3x3p1nobias,bn,relu,maxpool2,res(conv8x3x3p1nobias,bn,relu,conv8x3x3p1nobias,bn),relu,gap,dense3")
	backendtest.MustNil(t, err)
	spec := Spec{C: 1, H: 32, W: 32, Loss: SoftmaxCE, Layers: layers}
	ds, err := data.Synthetic(96, 32, 3, 5)
	backendtest.MustNil(t, err)
	const steps, batch = 3, 32
	type result struct {
		losses, out []float32
		params      [][]float32
		fusedBN     int
	}
	run := func(fuse bool) result {
		be := backendtest.CPU(t)
		m, err := newModel(be, spec, 3, fuse)
		backendtest.MustNil(t, err)
		defer m.Close()
		var r result
		for _, n := range m.g.nodes {
			if n.mod.kind == BatchNorm && n.epilogue == backend.EpilogueReLU {
				r.fusedBN++
			}
		}
		r.losses = trainSteps(t, m, ds, steps, batch, 5, 0.05)
		r.out, r.params = evalState(t, m, be, ds, batch, 64)
		return r
	}
	f, u := run(true), run(false)
	if f.fusedBN != 2 || u.fusedBN != 0 {
		t.Errorf("BatchNorm+ReLU pairs fused: %d with fusions, %d as written; want 2 and 0", f.fusedBN, u.fusedBN)
	}
	backendtest.EqualBits(t, "losses", f.losses, u.losses)
	backendtest.EqualBits(t, "evaluation outputs", f.out, u.out)
	for i := range u.params {
		backendtest.EqualBits(t, "parameter or buffer "+strconv.Itoa(i), f.params[i], u.params[i])
	}
}

// countingBackend counts the calls of the operations that the step plan's
// ReLU fusions replace and use.
type countingBackend struct {
	backend.Backend
	calls map[string]int
}

func (c *countingBackend) ReLUForward(x, y backend.Tensor) error {
	c.calls["relu fwd"]++
	return c.Backend.ReLUForward(x, y)
}

func (c *countingBackend) ReLUBackward(x, dy, dx backend.Tensor) error {
	c.calls["relu bwd"]++
	return c.Backend.ReLUBackward(x, dy, dx)
}

func (c *countingBackend) Add(a, b, y backend.Tensor) error {
	c.calls["add"]++
	return c.Backend.Add(a, b, y)
}

func (c *countingBackend) AddReLU(a, b, y backend.Tensor) error {
	c.calls["add+relu"]++
	return c.Backend.AddReLU(a, b, y)
}

func (c *countingBackend) BatchNormBackward(n, ch, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta backend.Tensor) error {
	c.calls["bn bwd"]++
	return c.Backend.BatchNormBackward(n, ch, hw, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta)
}

func (c *countingBackend) BatchNormBackwardReLU(n, ch, hw int, x, gamma, beta, saveMean, saveInvStd, y, dy, dx, dgamma, dbeta backend.Tensor) error {
	c.calls["bn+relu bwd"]++
	return c.Backend.BatchNormBackwardReLU(n, ch, hw, x, gamma, beta, saveMean, saveInvStd, y, dy, dx, dgamma, dbeta)
}

// TestFusedResNetCPU trains resnet8 (the preset) on the CPU backend with
// the step plan's fusions and with every layer as written, then evaluates
// it, and requires the same bits: losses, weights, running statistics and
// evaluation outputs. Fused, each residual add and the ReLU after it are
// one AddReLU, and each BatchNorm+ReLU pair's backward pass is one
// BatchNormBackwardReLU (the stem's and each block's first); the calls are
// counted, so both fusions are known to have run, and as written neither
// runs. The activations are large enough for the passes to split over two
// goroutines.
func TestFusedResNetCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the training runs are left to the full run")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	layers, err := ParseSpec(Presets["resnet8"])
	backendtest.MustNil(t, err)
	spec := Spec{C: 1, H: 16, W: 16, Loss: SoftmaxCE, Layers: layers}
	ds, err := data.Synthetic(80, 16, 10, 7)
	backendtest.MustNil(t, err)
	const steps, batch = 3, 24
	type result struct {
		losses, out []float32
		params      [][]float32
		calls       map[string]int
	}
	run := func(fuse bool) result {
		be := &countingBackend{Backend: backendtest.CPU(t), calls: map[string]int{}}
		m, err := newModel(be, spec, 3, fuse)
		backendtest.MustNil(t, err)
		defer m.Close()
		var r result
		r.losses = trainSteps(t, m, ds, steps, batch, 3, 0.05)
		r.calls = maps.Clone(be.calls)
		r.out, r.params = evalState(t, m, be, ds, batch, 50)
		return r
	}
	f, u := run(true), run(false)
	backendtest.EqualBits(t, "losses", f.losses, u.losses)
	backendtest.EqualBits(t, "evaluation outputs", f.out, u.out)
	for i := range u.params {
		backendtest.EqualBits(t, "parameter or buffer "+strconv.Itoa(i), f.params[i], u.params[i])
	}
	// resnet8: the stem's BatchNorm+ReLU, three blocks of BatchNorm+ReLU
	// and add+ReLU, nine BatchNorms in all (two projections); per
	// training step.
	for _, c := range []struct {
		op            string
		fused, unfusd int
	}{
		{"add+relu", 3, 0},
		{"add", 0, 3},
		{"relu fwd", 0, 7},
		{"relu bwd", 3, 7}, // after each add
		{"bn+relu bwd", 4, 0},
		{"bn bwd", 5, 9},
	} {
		if f.calls[c.op] != steps*c.fused || u.calls[c.op] != steps*c.unfusd {
			t.Errorf("%s calls in %d steps: %d fused, %d as written; want %d and %d",
				c.op, steps, f.calls[c.op], u.calls[c.op], steps*c.fused, steps*c.unfusd)
		}
	}
}

// evalState evaluates m on the batch images first … first+batch−1 of ds
// and returns its outputs, then its parameters followed by its buffers.
func evalState(t *testing.T, m *Model, be backend.Backend, ds *data.Dataset, batch, first int) (out []float32, params [][]float32) {
	t.Helper()
	set, err := m.Upload(ds, ds.Standardisation())
	backendtest.MustNil(t, err)
	b, err := m.NewBatch(batch)
	backendtest.MustNil(t, err)
	b.Eval = true
	rows := make([]int32, batch)
	for i := range rows {
		rows[i] = int32(first + i)
	}
	backendtest.MustNil(t, m.Load(b, set, rows))
	backendtest.MustNil(t, m.Forward(b))
	out = make([]float32, b.Output().Len())
	backendtest.MustNil(t, be.Download(out, b.Output()))
	return out, paramsAndBuffers(t, m, be)
}

// paramsAndBuffers returns m's parameters followed by its buffers (the
// batch norms' running statistics).
func paramsAndBuffers(t *testing.T, m *Model, be backend.Backend) [][]float32 {
	t.Helper()
	values, err := m.ParamValues()
	backendtest.MustNil(t, err)
	for _, p := range m.Buffers() {
		v := make([]float32, p.Value.Len())
		backendtest.MustNil(t, be.Download(v, p.Value))
		values = append(values, v)
	}
	return values
}
