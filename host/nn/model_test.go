package nn

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
)

func TestDefaultSpecShapes(t *testing.T) {
	infos, err := DefaultSpec().Check()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		out    string
		params int
	}{
		{"(8,24,24)", 8*1*5*5 + 8}, {"(8,24,24)", 0}, {"(8,12,12)", 0},
		{"(16,8,8)", 16*8*5*5 + 16}, {"(16,8,8)", 0}, {"(16,4,4)", 0},
		{"(256)", 0}, {"(10)", 256*10 + 10},
	}
	if len(infos) != len(want) {
		t.Fatalf("DefaultSpec has %d layers, want %d", len(infos), len(want))
	}
	for i, w := range want {
		if got := infos[i].Out.String(); got != w.out || infos[i].Params != w.params {
			t.Errorf("layer %d (%v): output %s, %d params; want %s, %d", i+1, infos[i].Spec, got, infos[i].Params, w.out, w.params)
		}
	}
	s, err := DefaultSpec().Summary()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, "5994 total") {
		t.Errorf("Summary =\n%s\nwant a total of 5994 parameters", s)
	}
}

func TestSpecErrors(t *testing.T) {
	relu, flat := LayerSpec{Kind: ReLU}, LayerSpec{Kind: Flatten}
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"case=no-layers", Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE}, "no layers"},
		{"case=bad-input", Spec{C: 0, H: 8, W: 8, Loss: SoftmaxCE, Layers: []LayerSpec{flat, DenseLayer(2)}}, "input 0×8×8"},
		{"case=no-loss", Spec{C: 1, H: 8, W: 8, Layers: []LayerSpec{flat, DenseLayer(2)}}, "unknown loss"},
		{"case=kernel-too-big", Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: []LayerSpec{relu, ConvLayer(4, 9, 3), flat, DenseLayer(2)}}, "layer 2 (conv 4 9×3"},
		{"case=zero-filters", Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: []LayerSpec{ConvLayer(0, 3, 3), flat, DenseLayer(2)}}, "layer 1 (conv 0 3×3"},
		{"case=pool-too-big", Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: []LayerSpec{ConvLayer(2, 5, 5), PoolLayer(5), flat, DenseLayer(2)}}, "layer 2 (maxpool 5×5"},
		{"case=dense-on-image", Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: []LayerSpec{DenseLayer(2)}}, "layer 1 (dense 2) on input (1,8,8): needs a flat input"},
		{"case=conv-on-flat", Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: []LayerSpec{flat, ConvLayer(2, 1, 1), DenseLayer(2)}}, "layer 2 (conv 2 1×1 stride 1×1 pad 0×0) on input (64): needs an image input"},
		{"case=last-not-dense", Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: []LayerSpec{flat, DenseLayer(2), relu}}, "layer 3 (relu): the last layer must be dense"},
		{"case=one-class", Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: []LayerSpec{flat, DenseLayer(1)}}, "at least 2 classes"},
		{"case=huge-dense", Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: []LayerSpec{flat, DenseLayer(1 << 30)}}, "layer 2 (dense 1073741824)"},
		{"case=unknown-kind", Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: []LayerSpec{{Kind: 42}}}, "layer 1 (LayerKind(42))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.spec.Check()
			if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want an ErrSpec containing %q", err, tc.want)
			}
		})
	}
}

// gradSpec is a small model with every layer kind: conv (stride 2, pad 1),
// ReLU, max-pool, a second conv, flatten, dense, ReLU, dense.
func gradSpec(loss LossKind) Spec {
	return Spec{C: 2, H: 9, W: 7, Loss: loss, Layers: []LayerSpec{
		{Kind: Conv, Filters: 3, KernelH: 3, KernelW: 2, StrideH: 2, StrideW: 1, PadH: 1, PadW: 1},
		{Kind: ReLU}, PoolLayer(2),
		ConvLayer(4, 2, 2), {Kind: Flatten}, DenseLayer(5), {Kind: ReLU}, DenseLayer(3),
	}}
}

// TestModelGradient checks every parameter gradient of a whole model (the
// CPU backend in float32) against central differences of the loss,
//
//	∂E/∂p ≈ (E(p+h) − E(p−h)) / 2h,  h = 3e-3,
//
// computed in float64 from float32 losses. Tolerance |got − want| ≤
// 2e-3 + 2e-2·|want|: the float32 loss (≈ 1e-7 relative) gives ≈ 2e-5
// after dividing by 2h, the O(h²) truncation error is ≈ 1e-5, and a ReLU
// or max-pool kink within h of a parameter's value breaks the difference
// quotient, which random inputs make rare but not impossible, so at most
// 1 in 50 parameters may miss (with h = 1e-2, 3 of 146 did, all in the
// first conv layer; with h = 3e-3 none).
func TestModelGradient(t *testing.T) {
	for _, loss := range []LossKind{SoftmaxCE, MSELoss} {
		t.Run("loss="+loss.String(), func(t *testing.T) {
			be := backendtest.CPU(t)
			m, err := NewModel(be, gradSpec(loss), 3)
			if err != nil {
				t.Fatal(err)
			}
			const n = 3
			ds, err := data.Synthetic(n, 9, 3, 5)
			if err != nil {
				t.Fatal(err)
			}
			// Two channels: the synthetic image and its mirror.
			x := make([]float32, n*2*9*7)
			rng := rand.New(rand.NewPCG(7, 7))
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			b, err := m.NewBatch(n)
			if err != nil {
				t.Fatal(err)
			}
			labels := []int32{int32(ds.Labels[0]), int32(ds.Labels[1]), int32(ds.Labels[2])}
			backendtest.MustNil(t, be.Upload(b.X, x))
			backendtest.MustNil(t, be.UploadIndex(b.Labels, labels))
			if loss == MSELoss {
				tg := make([]float32, n*3)
				for i, l := range labels {
					tg[i*3+int(l)] = 1
				}
				backendtest.MustNil(t, be.Upload(b.Targets, tg))
			}
			lossOf := func() float64 {
				backendtest.MustNil(t, m.Forward(b))
				v := make([]float32, 1)
				backendtest.MustNil(t, be.Download(v, b.Loss))
				return float64(v[0])
			}
			lossOf()
			backendtest.MustNil(t, m.Backward(b))
			const h = 3e-3
			checked, bad := 0, 0
			for _, p := range m.Params() {
				val := make([]float32, p.Value.Len())
				grad := make([]float32, p.Value.Len())
				backendtest.MustNil(t, be.Download(val, p.Value))
				backendtest.MustNil(t, be.Download(grad, p.Grad))
				for i := range val {
					orig := val[i]
					val[i] = orig + h
					backendtest.MustNil(t, be.Upload(p.Value, val))
					ep := lossOf()
					val[i] = orig - h
					backendtest.MustNil(t, be.Upload(p.Value, val))
					em := lossOf()
					val[i] = orig
					backendtest.MustNil(t, be.Upload(p.Value, val))
					want := (ep - em) / (2 * h)
					got := float64(grad[i])
					checked++
					if math.Abs(got-want) > 2e-3+2e-2*math.Abs(want) {
						bad++
						t.Logf("%s[%d]: gradient %g, central difference %g", p.Name, i, got, want)
					}
				}
			}
			if bad*50 > checked {
				t.Errorf("%d of %d gradients differ from central differences, want at most 1 in 50", bad, checked)
			}
		})
	}
}

// TestModelInit checks the initial weights' spread against the stated
// distributions: for n weights the sample variance is within 5 standard
// errors (σ²·√(2/n) for a normal, σ²·√(0.8/n) for a uniform) of σ².
func TestModelInit(t *testing.T) {
	spec := DefaultSpec()
	for _, init := range []InitKind{GlorotInit, HeInit} {
		spec.Init = init
		t.Run("init="+init.String(), func(t *testing.T) {
			m, err := NewModel(backendtest.CPU(t), spec, 11)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := m.ParamValues()
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range m.Params() {
				v := vals[i]
				var mean, sq float64
				for _, x := range v {
					mean += float64(x)
					sq += float64(x) * float64(x)
				}
				mean /= float64(len(v))
				variance := sq/float64(len(v)) - mean*mean
				if strings.HasSuffix(p.Name, "bias") {
					if sq != 0 {
						t.Errorf("%s: Σx² = %g, want zero biases", p.Name, sq)
					}
					continue
				}
				fanIn := product(p.Shape[1:])
				fanOut := p.Shape[0] * product(p.Shape[2:])
				want, se := 2/float64(fanIn+fanOut), math.Sqrt(0.8/float64(len(v)))
				if init == HeInit && p.Name != "layer8.weight" {
					want, se = 2/float64(fanIn), math.Sqrt(2/float64(len(v)))
				}
				if math.Abs(variance-want) > 5*se*want {
					t.Errorf("%s: variance %g, want %g ± %g", p.Name, variance, want, 5*se*want)
				}
			}
		})
	}
}

func TestCPUBackendErrors(t *testing.T) {
	be := backendtest.CPU(t)
	other := backendtest.CPU(t)
	f4, _ := be.NewTensor(4)
	f3, _ := be.NewTensor(3)
	i4, _ := be.NewIndexTensor(4)
	o4, _ := other.NewTensor(4)
	freed, _ := be.NewTensor(4)
	backendtest.MustNil(t, be.Free(freed))
	g := geom.ConvGeom{N: 1, C: 1, H: 2, W: 2, K: 1, R: 1, S: 1, StrideH: 1, StrideW: 1}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"op=new-zero", func() error { _, err := be.NewTensor(0); return err }(), "tensor of 0 elements"},
		{"op=upload-length", be.Upload(f4, make([]float32, 3)), "upload: 3 host values for a tensor of 4 elements"},
		{"op=upload-index-into-float", be.UploadIndex(f4, make([]int32, 4)), "want int32"},
		{"op=relu-foreign", be.ReLUForward(f4, o4), "belongs to another backend"},
		{"op=relu-freed", be.ReLUForward(f4, freed), "was freed"},
		{"op=relu-nil", be.ReLUForward(nil, f4), "is not a cpu tensor"},
		{"op=relu-length", be.ReLUForward(f4, f3), "y has 3 elements, want 4"},
		{"op=conv-w-length", be.Conv2DForward(g, f4, f3, nil, f4, backend.NoEpilogue), "conv forward: cpuref: Conv2D.Forward N=1,C=1,H=2,W=2,K=1,R=1,S=1,stride=1x1,pad=0x0: len(w) = 3, want 1"},
		{"op=conv-bad-geom", be.Conv2DForward(geom.ConvGeom{}, f4, f4, nil, f4, backend.NoEpilogue), "invalid geometry"},
		{"op=gather-out-of-range", func() error {
			backendtest.MustNil(t, be.UploadIndex(i4, []int32{0, 1, 2, 4}))
			return be.Gather(1, f4, i4, f4)
		}(), "idx[3] = 4 is outside [0, 4)"},
		{"op=gather-types", be.Gather(1, f4, i4, i4), "different element types"},
		{"op=count-labels", be.CountCorrect(2, 2, f4, f4, f3), "want int32"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s = %v, want an error containing %q", tc.name, tc.err, tc.want)
		}
	}
}

// TestFusedReLUPool trains a few steps with the rewrites of NewModel and
// with every layer run as written, and requires the same losses and
// weights, bit for bit, for non-overlapping and overlapping (3×3 stride 2)
// windows: on the CPU every ReLU before a max-pool runs as pool-then-ReLU,
// on the GPU backend (simulator) every conv runs with its ReLU in one call
// (checked by the count of relu_fwd launches).
func TestFusedReLUPool(t *testing.T) {
	for _, pool := range []LayerSpec{PoolLayer(2), {Kind: MaxPool, KernelH: 3, KernelW: 3, StrideH: 2, StrideW: 2}} {
		spec := Spec{C: 1, H: 14, W: 14, Loss: SoftmaxCE, Layers: []LayerSpec{
			ConvLayer(16, 5, 5), {Kind: ReLU}, pool, ConvLayer(4, 2, 2), {Kind: ReLU}, pool, {Kind: Flatten}, DenseLayer(4),
		}}
		for _, onGPU := range []bool{false, true} {
			name := "pool=" + strings.ReplaceAll(pool.String(), " ", "_") + map[bool]string{false: "/cpu", true: "/sim"}[onGPU]
			t.Run(name, func(t *testing.T) {
				if onGPU && testing.Short() && pool.StrideH != 0 {
					t.Skip("-short: the overlapping pool on the simulator is left to the full run")
				}
				t.Parallel()
				testFused(t, spec, onGPU, true)
			})
		}
	}
}

// testFused trains spec 8 steps with the step plan's fusions and with every
// layer as written and requires the same bits; with launches, it also
// checks the kernels launched on the simulator for the two-conv networks
// of TestFusedReLUPool.
func testFused(t *testing.T, spec Spec, onGPU, launches bool) {
	ds, err := data.Synthetic(64, 14, 4, 3)
	backendtest.MustNil(t, err)
	run := func(fuse bool) ([][]float32, []float32) {
		var be backend.Backend
		var dev *gpu.Device
		if onGPU {
			be, dev = backendtest.Sim(t)
		} else {
			be = backendtest.CPU(t)
		}
		m, err := newModel(be, spec, 2, fuse)
		backendtest.MustNil(t, err)
		losses := trainSteps(t, m, ds, 8, 16, 5, 0.1)
		w, err := m.ParamValues()
		backendtest.MustNil(t, err)
		if dev != nil && launches {
			// Two ReLUs per step: run as written, 8 relu_fwd launches
			// in all; fused with their convs, none (the implicit-GEMM
			// kernels apply it) or one per direct-kernel conv.
			relu, direct := dev.KernelStats()["relu_fwd_v1"].Launches, int64(0)
			for name, k := range dev.KernelStats() {
				if strings.HasPrefix(name, "conv2d_fwd_v1_direct") {
					direct += k.Launches
				}
			}
			if want := map[bool]int64{false: 16, true: direct}[fuse]; relu != want {
				t.Errorf("fuse=%v: %d relu_fwd_v1 launches in 8 steps, want %d", fuse, relu, want)
			}
			// The first conv (L = 25, 16 filters, M = 1600) runs on the
			// implicit GEMM, the second (4 filters) on the direct kernel.
			if direct != 8 {
				t.Errorf("fuse=%v: %d direct conv forward launches in 8 steps, want 8 (one conv of each kind)", fuse, direct)
			}
		}
		return w, losses
	}
	wf, lf := run(true)
	wu, lu := run(false)
	backendtest.EqualBits(t, "losses", lf, lu)
	for i := range wu {
		backendtest.EqualBits(t, "param "+strconv.Itoa(i), wf[i], wu[i])
	}
	if lf[7] >= lf[0] {
		t.Errorf("loss %g after 8 steps, want below the first %g", lf[7], lf[0])
	}
}

// TestDenseWeightsUnbounded checks that a dense layer's size is bounded by
// its output and its weight tensor, not by an activation bound on the
// weights: PyTorch's MNIST example's 9216→128 layer fits, a 2³¹-weight one
// does not.
func TestDenseWeightsUnbounded(t *testing.T) {
	layers, err := ParseSpec("conv8x5x5,relu,maxpool2,dense1024,relu,dense10")
	backendtest.MustNil(t, err)
	if _, err := (Spec{C: 1, H: 28, W: 28, Layers: layers, Loss: SoftmaxCE}).Check(); err != nil {
		t.Errorf("1152→1024 dense: %v", err)
	}
	if _, err := (Spec{C: 9216, H: 1, W: 1, Layers: []LayerSpec{{Kind: Flatten}, DenseLayer(128), DenseLayer(10)}, Loss: SoftmaxCE}).Check(); err != nil {
		t.Errorf("9216→128 dense: %v", err)
	}
	_, err = (Spec{C: 65536, H: 1, W: 1, Layers: []LayerSpec{{Kind: Flatten}, DenseLayer(32768), DenseLayer(10)}, Loss: SoftmaxCE}).Check()
	if err == nil || !strings.Contains(err.Error(), "32768 units on 65536 inputs: the weights (units×inputs) must number below 2³¹") {
		t.Errorf("2³¹ weights: %v, want an error naming the weights", err)
	}
}

// trainSteps takes steps SGD steps (momentum 0.9) of batches of n rows of
// ds, row i of step s being (s·n + i·stride) mod ds.N, and returns each
// step's loss.
func trainSteps(t *testing.T, m *Model, ds *data.Dataset, steps, n, stride int, lr float32) []float32 {
	t.Helper()
	set, err := m.Upload(ds, ds.Standardisation())
	backendtest.MustNil(t, err)
	b, err := m.NewBatch(n)
	backendtest.MustNil(t, err)
	var losses []float32
	for step := range steps {
		rows := make([]int32, n)
		for i := range rows {
			rows[i] = int32((step*n + i*stride) % ds.N)
		}
		backendtest.MustNil(t, m.Load(b, set, rows))
		backendtest.MustNil(t, m.TrainStep(b, lr, 0.9, 0))
		l := make([]float32, 1)
		backendtest.MustNil(t, m.be.Download(l, b.Loss))
		losses = append(losses, l[0])
	}
	return losses
}

// TestConvBackwardShared trains a few steps at BF16 on the simulator with
// the step plan (each conv's backward passes as one Conv2DBackward, x's
// bfloat16 copy kept from its forward pass, Conv2DForwardKeep) and with
// every layer as written, and requires the same bits, and per step one
// packing launch fewer for each conv whose two backward kernels read one
// copy of dy (BF16's v9 and v10) and one for each that keeps x's copy.
func TestConvBackwardShared(t *testing.T) {
	t.Parallel()
	spec := Spec{C: 1, H: 14, W: 14, Loss: SoftmaxCE, Layers: []LayerSpec{
		{Kind: Conv, Filters: 16, KernelH: 3, KernelW: 3, PadH: 1, PadW: 1}, {Kind: ReLU},
		{Kind: Conv, Filters: 32, KernelH: 3, KernelW: 3, PadH: 1, PadW: 1}, {Kind: ReLU},
		PoolLayer(2), {Kind: Flatten}, DenseLayer(4),
	}}
	ds, err := data.Synthetic(64, 14, 4, 3)
	backendtest.MustNil(t, err)
	const steps, batch = 3, 16
	run := func(fuse bool) ([][]float32, []float32, int64, *gpu.Device) {
		be, dev := backendtest.Sim(t)
		backendtest.MustNil(t, dev.SetPrecision(gpu.BF16))
		m, err := newModel(be, spec, 2, fuse)
		backendtest.MustNil(t, err)
		losses := trainSteps(t, m, ds, steps, batch, 5, 0.1)
		w, err := m.ParamValues()
		backendtest.MustNil(t, err)
		var packs int64
		for name, k := range dev.KernelStats() {
			if strings.HasPrefix(name, "pack_") {
				packs += k.Launches
			}
		}
		return w, losses, packs, dev
	}
	wf, lf, pf, dev := run(true)
	wu, lu, pu, _ := run(false)
	backendtest.EqualBits(t, "losses", lf, lu)
	for i := range wu {
		backendtest.EqualBits(t, "param "+strconv.Itoa(i), wf[i], wu[i])
	}
	// The second conv needs dx and, at N = 16, runs BF16's v7, v10 and v9:
	// dy packed once, x's copy kept. The first (C = 1) has no dx.
	conv2 := geom.ConvGeom{N: batch, C: 16, H: 14, W: 14, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	conv1 := conv2
	conv1.C, conv1.K = 1, 16
	if got := [3]string{dev.ConvKernelFor(gpu.ConvFwd, conv2), dev.ConvKernelFor(gpu.ConvBwdFilter, conv2),
		dev.ConvKernelFor(gpu.ConvBwdData, conv2)}; got != [3]string{"conv2d_fwd_v7_igemm_bf16",
		"conv2d_bwd_filter_v10_igemm_bf16", "conv2d_bwd_data_v9_igemm_bf16"} {
		t.Fatalf("the second conv's kernels are %v, want BF16's v7, v10 and v9", got)
	}
	fewer := int64(2)
	if dev.ConvKeepLen(conv1) > 0 {
		fewer++
	}
	if pu-pf != steps*fewer {
		t.Errorf("%d packing launches with the plan, %d without: want %d fewer (%d a step)", pf, pu, steps*fewer, fewer)
	}
}

// lessFused is a backend whose Fusions lack what off clears: the step
// plan without those fusions.
type lessFused struct {
	backend.Backend
	off func(*backend.Fusions)
}

func (b lessFused) Fusions() backend.Fusions {
	f := b.Backend.Fusions()
	b.off(&f)
	return f
}

// bnPlanSpec is three conv → batch norm pairs on 14×14 images (the
// first two with a ReLU, the second conv without a bias), then a
// max-pool and a dense layer: the network of TestBatchNormKeepPlan and
// TestConvOutputBF16Plan.
func bnPlanSpec() Spec {
	return Spec{C: 1, H: 14, W: 14, Loss: SoftmaxCE, Layers: []LayerSpec{
		{Kind: Conv, Filters: 16, KernelH: 3, KernelW: 3, PadH: 1, PadW: 1}, {Kind: BatchNorm}, {Kind: ReLU},
		{Kind: Conv, Filters: 16, KernelH: 3, KernelW: 3, PadH: 1, PadW: 1, NoBias: true}, {Kind: BatchNorm}, {Kind: ReLU},
		{Kind: Conv, Filters: 32, KernelH: 3, KernelW: 3, PadH: 1, PadW: 1}, {Kind: BatchNorm},
		PoolLayer(2), {Kind: Flatten}, DenseLayer(4),
	}}
}

// TestBatchNormKeepPlan trains a few steps at BF16 on the simulator with
// the step plan's batch norms making the bfloat16 copy of their output
// that the conv after them keeps (BatchNormForwardKeep) and the copy of
// their input gradient that the conv before them reads as its dy
// (BatchNormBackwardKeep), and without, then evaluates a batch, and
// requires the same losses, weights, running statistics and evaluation
// outputs, bit for bit, and one packing launch fewer for each such pair
// and pass, made by bn_apply_pack_bf16_v1, bn_bwd_apply_pack_v1 or, for
// the conv without a bias, the copy without dx instead; a batch norm with
// a ReLU after it masks its gradient in the same kernels (the conv
// without a bias: bn_bwd_relu_pack_v1).
func TestBatchNormKeepPlan(t *testing.T) {
	t.Parallel()
	spec := bnPlanSpec()
	ds, err := data.Synthetic(64, 14, 4, 3)
	backendtest.MustNil(t, err)
	steps, batch := 3, 16
	if testing.Short() {
		steps = 1 // -short: one training step and the evaluation
	}
	type result struct {
		losses               []float32
		params               [][]float32
		eval                 []float32
		packs, made, bwdMade int64
		fwdCopyOnly          int64
		copyOnly, reluMade   int64
		keepFor, dyFor       int64
	}
	run := func(keep bool) result {
		be, dev := backendtest.Sim(t)
		backendtest.MustNil(t, dev.SetPrecision(gpu.BF16))
		if !keep {
			be = lessFused{be, func(f *backend.Fusions) { f.BatchNormKeep = false }}
		}
		m, err := newModel(be, spec, 2, true)
		backendtest.MustNil(t, err)
		var r result
		for _, n := range m.g.nodes {
			if n.keepFor != nil {
				r.keepFor++
			}
			if n.dyFor != nil && n.dyFor.needDX {
				r.dyFor++
			}
		}
		r.losses = trainSteps(t, m, ds, steps, batch, 5, 0.1)
		r.eval, r.params = evalState(t, m, be, ds, batch, 7)
		for name, k := range dev.KernelStats() {
			if strings.HasPrefix(name, "pack_") {
				r.packs += k.Launches
			}
			switch name = floatForm(name); name {
			case "bn_apply_pack_bf16_v1", "bn_pack_bf16_v1":
				r.made += k.Launches
				if name == "bn_pack_bf16_v1" {
					r.fwdCopyOnly += k.Launches
				}
			case "bn_bwd_apply_pack_v1", "bn_bwd_pack_v1", "bn_bwd_relu_apply_pack_v1", "bn_bwd_relu_pack_v1":
				r.bwdMade += k.Launches
				if name == "bn_bwd_pack_v1" || name == "bn_bwd_relu_pack_v1" {
					r.copyOnly += k.Launches
				}
				if strings.HasPrefix(name, "bn_bwd_relu_") {
					r.reluMade += k.Launches
				}
			}
		}
		return r
	}
	with, without := run(true), run(false)
	backendtest.EqualBits(t, "losses", with.losses, without.losses)
	backendtest.EqualBits(t, "evaluation output", with.eval, without.eval)
	for i := range without.params {
		backendtest.EqualBits(t, "param or buffer "+strconv.Itoa(i), with.params[i], without.params[i])
	}
	// Forward: the first batch norm feeds conv 2, the second conv 3, the
	// third a max-pool; each of the two runs once per training step and
	// once in the evaluation, and writes the copy alone (bn_pack_bf16_v1:
	// conv 2 and conv 3 are the only readers of its output, which its
	// backward pass, masking for its ReLU, does not read). Backward: the
	// second and third batch norm make the dy copy of conv 2 and conv 3
	// (conv 1 has no dx, so its backward kernels share no copy), once per
	// training step; conv 2 has no bias, so its copy alone, without dx's
	// float32 values, which nothing reads, and the ReLU after the second
	// batch norm masks its gradient there (bn_bwd_relu_pack_v1); conv 3's
	// bias gradient reads dx's values (bn_bwd_apply_pack_v1, no ReLU after
	// the third).
	const pairs, bwdPairs = 2, 2
	st := int64(steps)
	passes := st + 1
	if with.keepFor != pairs || with.dyFor != bwdPairs || without.keepFor != 0 || without.dyFor != 0 {
		t.Errorf("%d and %d batch norms make a conv's copy forward and backward with BatchNormKeep, %d and %d without: want %d, %d, 0, 0",
			with.keepFor, with.dyFor, without.keepFor, without.dyFor, pairs, bwdPairs)
	}
	fewer := pairs*passes + bwdPairs*st
	if without.packs-with.packs != fewer || with.made != pairs*passes || with.bwdMade != bwdPairs*st || without.made+without.bwdMade != 0 {
		t.Errorf("packing launches %d with, %d without (want %d fewer); bn_apply_pack_bf16_v1 and bn_pack_bf16_v1 launches %d and %d (want %d and 0), "+
			"dy copies by the batch norms %d and %d (want %d and 0)", with.packs, without.packs, fewer, with.made, without.made, pairs*passes,
			with.bwdMade, without.bwdMade, bwdPairs*st)
	}
	if with.fwdCopyOnly != pairs*passes {
		t.Errorf("bn_pack_bf16_v1 launches %d, want %d: every batch norm feeding a conv writes the copy alone", with.fwdCopyOnly, pairs*passes)
	}
	if with.copyOnly != st || with.reluMade != st {
		t.Errorf("copy-only launches %d and masking ones %d, want %d and %d: conv 2 has no bias and a ReLU after its batch norm, "+
			"conv 3 a bias and none", with.copyOnly, with.reluMade, st, st)
	}
}

// TestAddReLUKeepPlan trains a few steps at BF16 on the simulator with the
// step plan's residual add+ReLU making the bfloat16 copies of its output
// that the convolutions reading it keep (AddReLUKeep: the next block's
// first conv and its projection), and without, then evaluates a batch,
// and requires the same losses, weights, running statistics and
// evaluation outputs, bit for bit, and one packing launch fewer for each
// such conv and forward pass, its copy made by add_relu_pack_bf16_v1
// instead (one launch for both convs).
func TestAddReLUKeepPlan(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: the simulator's runs are left to the full run (TestAddReLUKeep checks the device's part)")
	}
	// A 3×3 projection: at this batch the simulator's dispatcher runs a
	// 1×1 strided one with the direct kernels, which keep nothing.
	layers, err := ParseSpec("conv16x3x3p1nobias,bn,relu,res(conv16x3x3p1nobias,bn,relu,conv16x3x3p1nobias,bn),relu," +
		"res(conv32x3x3s2p1nobias,bn,relu,conv32x3x3p1nobias,bn|conv32x3x3s2p1nobias,bn),relu,gap,dense4")
	backendtest.MustNil(t, err)
	spec := Spec{C: 1, H: 16, W: 16, Loss: SoftmaxCE, Layers: layers}
	ds, err := data.Synthetic(32, 16, 4, 3)
	backendtest.MustNil(t, err)
	const steps, batch = 2, 8
	type result struct {
		losses, eval       []float32
		params             [][]float32
		packs, made, plain int64
		keepsFor, keeping  int
	}
	run := func(keep bool) result {
		be, dev := backendtest.Sim(t)
		backendtest.MustNil(t, dev.SetPrecision(gpu.BF16))
		if !keep {
			be = lessFused{be, func(f *backend.Fusions) { f.AddReLUKeep = false }}
		}
		m, err := newModel(be, spec, 2, true)
		backendtest.MustNil(t, err)
		var r result
		for _, n := range m.g.nodes {
			r.keepsFor += len(n.keepsFor)
			for _, c := range n.keepsFor {
				if be.ConvKeepLen(convOf(c, batch)) > 0 {
					r.keeping++
				}
			}
		}
		r.losses = trainSteps(t, m, ds, steps, batch, 5, 0.1)
		r.eval, r.params = evalState(t, m, be, ds, batch, 7)
		for name, k := range dev.KernelStats() {
			if strings.HasPrefix(name, "pack_") {
				r.packs += k.Launches
			}
			switch floatForm(name) {
			case "add_relu_pack_bf16_v1":
				r.made += k.Launches
			case "add_relu_v1":
				r.plain += k.Launches
			}
		}
		return r
	}
	with, without := run(true), run(false)
	backendtest.EqualBits(t, "losses", with.losses, without.losses)
	backendtest.EqualBits(t, "evaluation output", with.eval, without.eval)
	for i := range without.params {
		backendtest.EqualBits(t, "param or buffer "+strconv.Itoa(i), with.params[i], without.params[i])
	}
	// The first block's add+ReLU feeds the second block's first conv and
	// its projection, both keeping their copies at this batch; the second
	// block's feeds the global average pool. Each add runs once per
	// training step and once in the evaluation.
	passes := int64(steps) + 1
	if with.keepsFor != 2 || with.keeping != 2 || without.keepsFor != 0 {
		t.Fatalf("%d convs (%d keeping) read an add+ReLU that makes their copies with AddReLUKeep, %d without: want 2 (2), 0",
			with.keepsFor, with.keeping, without.keepsFor)
	}
	if without.packs-with.packs != 2*passes || with.made != passes || with.plain != passes || without.made != 0 || without.plain != 2*passes {
		t.Errorf("packing launches %d with, %d without (want %d fewer); add_relu_pack_bf16_v1 launches %d and %d (want %d and 0), "+
			"add_relu_v1 %d and %d (want %d and %d)", with.packs, without.packs, 2*passes, with.made, without.made, passes,
			with.plain, without.plain, passes, 2*passes)
	}
}

// TestXCopyPlan trains two steps on the simulator with the step plan's
// batch norms and residual add+ReLU making the copy of their output that
// the next conv's forward pass reads, and without, then evaluates a batch,
// and requires the same losses, weights, running statistics and
// evaluation outputs, bit for bit: at TF32 the copy the packed forward
// kernel alone reads (ConvXCopyLen: BatchNormForwardKeep and AddReLUKeep
// into the batch's one tensor, xck), one packing launch fewer for each
// such conv and forward pass, made by bn_apply_pack_tf32_v1 or
// add_relu_pack_tf32_v1 instead; at BF16 the conv's kept copy, made by
// bn_apply_pack_bf16_v1 or add_relu_pack_bf16_v1. The stem's batch norm
// feeds a residual block, its output read by the block's first conv and
// by the skip.
func TestXCopyPlan(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: the simulator's runs are left to the full run (TestBatchNormKeep and TestAddReLUKeep check the device's part)")
	}
	// 64 channels: at this batch the simulator's dispatcher runs TF32's
	// packed forward kernel on them (fewer: an unpacked one).
	layers, err := ParseSpec("conv64x3x3p1nobias,bn,relu,res(conv64x3x3p1nobias,bn,relu,conv64x3x3p1nobias,bn),relu," +
		"conv64x3x3p1nobias,bn,relu,gap,dense3")
	backendtest.MustNil(t, err)
	spec := Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: layers}
	ds, err := data.Synthetic(32, 8, 3, 5)
	backendtest.MustNil(t, err)
	const steps, batch = 2, 8
	type result struct {
		losses, eval    []float32
		params          [][]float32
		packs, bn, add  int64
		copying, xckLen int
	}
	for _, prec := range []gpu.Precision{gpu.TF32, gpu.BF16} {
		t.Run("prec="+prec.String(), func(t *testing.T) {
			t.Parallel()
			bnKernel, addKernel := "bn_apply_pack_tf32_v1", "add_relu_pack_tf32_v1"
			if prec == gpu.BF16 {
				bnKernel, addKernel = "bn_apply_pack_bf16_v1", "add_relu_pack_bf16_v1"
			}
			run := func(fused bool) result {
				be, dev := backendtest.Sim(t)
				backendtest.MustNil(t, dev.SetPrecision(prec))
				if !fused {
					be = lessFused{be, func(f *backend.Fusions) { f.BatchNormKeep, f.AddReLUKeep = false, false }}
				}
				m, err := newModel(be, spec, 3, true)
				backendtest.MustNil(t, err)
				var r result
				b, err := m.NewBatch(batch)
				backendtest.MustNil(t, err)
				for _, n := range m.g.nodes { // the convs whose x copy a batch norm or an add makes
					c := n.keepFor
					if len(n.keepsFor) > 0 {
						c = n.keepsFor[0]
					}
					if c != nil && b.xIn[c.id] != nil {
						r.copying++
						if prec == gpu.TF32 && b.keep[c.id] != nil {
							t.Errorf("conv %d keeps its x at TF32", c.id)
						}
					}
				}
				if b.xck != nil {
					r.xckLen = b.xck.Len()
				}
				backendtest.MustNil(t, b.Free(be))
				r.losses = trainSteps(t, m, ds, steps, batch, 5, 0.1)
				r.eval, r.params = evalState(t, m, be, ds, batch, 7)
				for name, k := range dev.KernelStats() {
					if strings.HasPrefix(name, "pack_") {
						r.packs += k.Launches
					}
					switch floatForm(name) {
					case bnKernel, "bn_pack_bf16_v1": // the copy alone where only the conv reads y
						r.bn += k.Launches
					case addKernel:
						r.add += k.Launches
					}
				}
				return r
			}
			with, without := run(true), run(false)
			backendtest.EqualBits(t, "losses", with.losses, without.losses)
			backendtest.EqualBits(t, "evaluation output", with.eval, without.eval)
			for i := range without.params {
				backendtest.EqualBits(t, "param or buffer "+strconv.Itoa(i), with.params[i], without.params[i])
			}
			// The stem's batch norm feeds the block's first conv (and the
			// skip), the block's first its second conv, the add+ReLU the
			// conv after the block: three copies a forward pass, each
			// forward pass of the two training steps and the evaluation;
			// at TF32 in the one tensor of 8·8·8·64 words.
			passes := int64(steps) + 1
			wantLen := batch * 8 * 8 * 64
			if prec == gpu.BF16 {
				wantLen = 0 // kept, each in its conv's tensor
			}
			if with.copying != 3 || with.xckLen != wantLen || without.copying != 0 || without.xckLen != 0 {
				t.Fatalf("%d convs get their x copy (xck of %d), %d without (%d): want 3 (%d), 0 (0)",
					with.copying, with.xckLen, without.copying, without.xckLen, wantLen)
			}
			if with.bn != 2*passes || with.add != passes || without.bn+without.add != 0 {
				t.Errorf("%s launches %d, %s %d (want %d and %d), %d without", bnKernel, with.bn, addKernel, with.add,
					2*passes, passes, without.bn+without.add)
			}
			// At BF16 the batch norms make dy's copies too (BatchNormKeep),
			// so only TF32's forward packs are counted.
			if prec == gpu.TF32 && without.packs-with.packs != 3*passes {
				t.Errorf("packing launches %d with, %d without: want %d fewer", with.packs, without.packs, 3*passes)
			}
		})
	}
}
