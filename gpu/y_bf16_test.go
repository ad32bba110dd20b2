package gpu

import (
	"errors"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/kernels"
)

// A BF16 convolution's output stored as bfloat16 and the batch norms that
// read it (y_bf16.go).

// bandBF16 is the guard-band value of bfloat16 buffer i: finite, exact in
// bfloat16 and beyond any value a test writes, so a kernel reading the
// band makes its result wrong and one writing it is seen.
func bandBF16(i int) float32 { return -float32(3+i) * 0x1p100 }

// allocBF16 is alloc for a bfloat16 buffer of n elements, guardLen of
// band on each side; the view holds −band (the poison).
func (h *harness) allocBF16(name string, n int) *guarded {
	h.t.Helper()
	band := bandBF16(len(h.bufs))
	p := make([]float32, n+2*guardLen)
	for i := range p {
		p[i] = band
		if i >= guardLen && i < guardLen+n {
			p[i] = -band // never a result: an element left unwritten fails any check
		}
	}
	whole, err := h.d.NewBFloat16(len(p))
	if err == nil {
		err = whole.UploadBF16(p)
	}
	if err != nil {
		h.t.Fatalf("alloc %s (%d bfloat16): %v", name, n, err)
	}
	view, err := whole.Slice(guardLen, n)
	if err != nil {
		h.t.Fatalf("slice %s: %v", name, err)
	}
	g := &guarded{name: name, band: math.Float32bits(band), whole: whole, view: view}
	h.bufs = append(h.bufs, g)
	return g
}

// inBF16 uploads x rounded to bfloat16 (cpuref.RoundBF16) as a guarded
// input and returns the buffer and the rounded values.
func (h *harness) inBF16(name string, x []float32) (*Buffer, []float32) {
	h.t.Helper()
	g := h.allocBF16(name, len(x))
	if err := g.view.UploadBF16(x); err != nil {
		h.t.Fatalf("upload %s: %v", name, err)
	}
	r := make([]float32, len(x))
	cpuref.RoundBF16Slice(r, x)
	g.isInput, g.bf16 = true, r
	return g.view, r
}

// outBF16 returns a guarded bfloat16 output.
func (h *harness) outBF16(name string, n int) *Buffer {
	h.t.Helper()
	return h.allocBF16(name, n).view
}

// readBF16 downloads a bfloat16 buffer, widened.
func (h *harness) readBF16(b *Buffer) []float32 {
	h.t.Helper()
	got := make([]float32, b.Len())
	if err := b.DownloadBF16(got); err != nil {
		h.t.Fatalf("download: %v", err)
	}
	return got
}

// checkBF16 is check for a bfloat16 buffer: bands unchanged, and an
// input's contents.
func (h *harness) checkBF16(g *guarded) {
	h.t.Helper()
	got := h.readBF16(g.whole)
	n, bad := g.view.Len(), 0
	for i, v := range got {
		want, what := g.band, "guard band"
		if j := i - guardLen; j >= 0 && j < n {
			if !g.isInput {
				continue
			}
			want, what = math.Float32bits(g.bf16[j]), "input"
		}
		if math.Float32bits(v) != want {
			if bad < 10 {
				h.t.Errorf("%s: %s element %d (offset %d from the buffer) = %#08x, want %#08x", g.name, what, i, i-guardLen, math.Float32bits(v), want)
			}
			bad++
		}
	}
}

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"conv2d_fwd_v7_igemm_bf16y", []string{"conv2d_fwd_v7_igemm_bf16y"}, testConvForwardBF16Y},
		conformanceCase{"bn_train_fwd_bf16x_v1", []string{"bn_train_fwd_bf16x_v1"}, func(t *testing.T, d *Device) {
			for _, relu := range []bool{false, true} {
				t.Run(kv("relu", relu), func(t *testing.T) { bnTrainForward(t, d, relu, bnBF16X) })
			}
		}},
		conformanceCase{"bn_eval_fwd_bf16x_v1", []string{"bn_eval_fwd_bf16x_v1"}, func(t *testing.T, d *Device) {
			for _, relu := range []bool{false, true} {
				t.Run(kv("relu", relu), func(t *testing.T) { bnEvalForward(t, d, relu, bnBF16X) })
			}
		}},
		conformanceCase{"bn_bwd_bf16x_v1", []string{"bn_bwd_bf16x_v1"}, func(t *testing.T, d *Device) { bnBackward(t, d, bnBF16X) }},
		conformanceCase{"bn_bwd_relu_bf16x_v1", []string{"bn_bwd_relu_bf16x_v1"}, func(t *testing.T, d *Device) { bnBackwardReLU(t, d, bnBF16X) }},
		conformanceCase{"bn_apply_pack_bf16_bf16x_v1", []string{"bn_train_stats_bf16x_v1", "bn_apply_pack_bf16_bf16x_v1", "bn_pack_bf16_bf16x_v1"},
			func(t *testing.T, d *Device) { bnApplyPack(t, d, true) }},
		conformanceCase{"bn_bwd_apply_pack_bf16x_v1", []string{"bn_bwd_apply_pack_bf16x_v1", "bn_bwd_pack_bf16x_v1",
			"bn_bwd_relu_apply_pack_bf16x_v1", "bn_bwd_relu_pack_bf16x_v1"}, func(t *testing.T, d *Device) { bnBwdApplyPack(t, d, bnBF16X) }})
	for _, k := range bf16Twins {
		launcherTestedElsewhere[k] = true // TestBF16YLaunchers
	}
}

// bf16Twins are the kernels of y_bf16.go, for TestBF16YLaunchers.
var bf16Twins = []string{"conv2d_fwd_v7_igemm_bf16y", "bn_train_fwd_bf16x_v1", "bn_eval_fwd_bf16x_v1", "bn_bwd_bf16x_v1",
	"bn_bwd_relu_bf16x_v1", "bn_train_stats_bf16x_v1", "bn_apply_pack_bf16_bf16x_v1", "bn_bwd_apply_pack_bf16x_v1",
	"bn_bwd_pack_bf16x_v1", "bn_bwd_relu_apply_pack_bf16x_v1", "bn_bwd_relu_pack_bf16x_v1", "bn_pack_bf16_bf16x_v1"}

// roundX rounds x to bfloat16 in place (cpuref.RoundBF16) when bf16x: the
// values a BF16 convolution stores for the batch norm after it.
func roundX(x []float32, bf16x bool) {
	if bf16x {
		cpuref.RoundBF16Slice(x, x)
	}
}

// xIn uploads x as the batch norm's guarded input: a bfloat16 buffer when
// bf16x (x holds bfloat16 values: roundX), else float32.
func xIn(h *harness, x []float32, bf16x bool) *Buffer {
	h.t.Helper()
	if bf16x {
		b, _ := h.inBF16("x", x)
		return b
	}
	return h.in("x", x)
}

// testConvForwardBF16Y checks conv2d_fwd_v7_igemm_bf16y on the swept
// shapes, with and without the ReLU, against cpuref: with small integers
// (exact products and sums, outputs beyond 2⁸ rounded) y is
// cpuref.RoundBF16 of Conv2DForwardDirect's bit for bit; with uniform
// reals, where v7's float32 sum order is its own, y is RoundBF16 of
// conv2d_fwd_v7_igemm_bf16's float32 y (itself within the float32 bound
// of cpuref: its own case) bit for bit, a NaN in x included.
func testConvForwardBF16Y(t *testing.T, d *Device) {
	if !d.hasTarget(80) {
		t.Skipf("conv2d_fwd_v7_igemm_bf16y needs compute capability 8.0; %v has less", d)
	}
	for _, kind := range inputKinds {
		for _, relu := range []bool{false, true} {
			for _, g := range sweptConvShapes() {
				t.Run(kv("inputs", kind, "relu", relu)+"/"+g.String(), func(t *testing.T) {
					in := convInputs(kind, "inputs="+kind+"/"+g.String(), g.XLen(), g.WLen(), g.K)
					x, w, b := in[0], in[1], in[2]
					if kind != "int" && g.XLen() > 2 {
						x[g.XLen()/2] = float32(math.NaN())
					}
					h := newHarness(t, d)
					y, y32 := h.outBF16("y", g.YLen()), h.out("y32", g.YLen())
					xb, wb, bb := h.in("x", x), h.in("w", w), h.in("b", b)
					mustNil(t, d.runFwd(kConvFwdBF16, g, xb, wb, bb, y, relu))
					mustNil(t, d.runFwd(kConvFwdBF16, g, xb, wb, bb, y32, relu))
					want := h.read(y32)
					if kind == "int" {
						want = make([]float32, g.YLen())
						mustNil(t, cpuref.Conv2DForwardDirect(g, bf16Ref(x), bf16Ref(w), b, want))
						if relu {
							reluRef(want)
						}
					}
					cpuref.RoundBF16Slice(want, want)
					checkSameBits(t, "y", h.readBF16(y), want)
					h.check()
				})
			}
		}
	}
}

func mustBF16(t *testing.T, d *Device, n int) *Buffer {
	t.Helper()
	b, err := d.NewBFloat16(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBF16YLaunchers is TestLaunchers for the kernels of y_bf16.go: the
// forward pass of conv2d_fwd_v7_igemm_bf16 into a bfloat16 y launches
// conv2d_fwd_v7_igemm_bf16y with v7's arguments (y the bfloat16 buffer),
// and each batch-norm path on a bfloat16 x its _bf16x kernel, every
// argument in the parameter of that name (relu, tf32, beta and dx saying
// which form), with the launch shape of the float32 form, nothing
// allocated on the host.
func TestBF16YLaunchers(t *testing.T) {
	d, f := openFake(t)
	P := func(b *Buffer) uint64 { // null for nil
		if b == nil {
			return 0
		}
		return uint64(b.ptr)
	}
	F32 := func(v float32) uint64 { return uint64(math.Float32bits(v)) }
	t.Run("conv", func(t *testing.T) {
		g := cg(2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 0) // P = 5, Q = 7
		x, w, b, y := mustF32(t, d, g.XLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.K), mustBF16(t, d, g.YLen())
		before := f.launches
		mustNil(t, d.runFwd(kConvFwdBF16, g, x, w, b, y, true))
		if n := f.launches - before; n != 3 {
			t.Errorf("%d launches, want 3 (pack x, pack w, conv)", n)
		}
		l := f.last
		k, _ := kernels.Lookup("conv2d_fwd_v7_igemm_bf16y")
		got := map[string]uint64{}
		for j, p := range k.Params {
			got[p.Name] = l.args[j]
		}
		want := map[string]uint64{"xh": got["xh"], "wh": got["wh"], "b": P(b), "y": P(y), "N": 2, "C": 3, "H": 9, "W": 8, "K": 4,
			"R": 3, "S": 2, "P": 5, "Q": 7, "sh": 2, "sw": 1, "ph": 1, "pw": 0, "relu": 1, "Cp": 8}
		if got["xh"] == 0 || got["wh"] == 0 || got["xh"] == got["wh"] {
			t.Errorf("xh = %#x, wh = %#x: want two distinct workspaces", got["xh"], got["wh"])
		}
		checkFakeLaunch(t, l, "conv2d_fwd_v7_igemm_bf16y", Dim3{1, 1, 1}, Dim3{128, 1, 1}, want,
			func() error { return d.runFwd(kConvFwdBF16, g, x, w, b, y, true) })
	})
	const n, c, hw = 2, 33, 70 // Cp = 40 (bfloat16), 36 (TF32)
	g := geom.ConvGeom{N: n, C: c, H: 7, W: 10, K: 8, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	x, y, dx := mustBF16(t, d, n*c*hw), mustF32(t, d, n*c*hw), mustF32(t, d, n*c*hw)
	xk, xt := mustF32(t, d, keepLen(packedBF16, g)), mustF32(t, d, keepLen(packedTF32, g))
	gm, bt, sm, si, rm, rv := mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c)
	bn := func(more ...any) map[string]uint64 {
		m := map[string]uint64{"N": n, "C": c, "HW": hw}
		for i := 0; i < len(more); i += 2 {
			m[more[i].(string)] = u64(more[i+1])
		}
		return m
	}
	locked := func(f func() error) func() error {
		return func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return f()
		}
	}
	train := bn("x", P(x), "gamma", P(gm), "beta", P(bt), "y", P(y), "save_mean", P(sm), "save_inv_std", P(si),
		"run_mean", P(rm), "run_var", P(rv), "m", F32(0.25), "one_minus_m", F32(0.75), "eps", F32(1e-3))
	eval := bn("x", P(x), "gamma", P(gm), "beta", P(bt), "run_mean", P(rm), "run_var", P(rv), "y", P(y), "eps", F32(1e-3))
	with := func(m map[string]uint64, more ...any) map[string]uint64 {
		o := map[string]uint64{}
		for k, v := range m {
			o[k] = v
		}
		for i := 0; i < len(more); i += 2 {
			o[more[i].(string)] = u64(more[i+1])
		}
		return o
	}
	apply := func(mean, stat *Buffer, eval, relu uint64) map[string]uint64 {
		return bn("x", P(x), "gamma", P(gm), "beta", P(bt), "mean", P(mean), "stat", P(stat), "y", P(y), "dst", P(xk),
			"Cp", 40, "eps", F32(1e-3), "eval", eval, "relu", relu)
	}
	without := func(m map[string]uint64, name string) map[string]uint64 {
		delete(m, name)
		return m
	}
	// bwd is a backward kernel's arguments: beta and dx where given
	bwd := func(beta, out *Buffer) map[string]uint64 {
		m := bn("x", P(x), "gamma", P(gm), "save_mean", P(sm), "save_inv_std", P(si), "dy", P(y), "dgamma", P(rm), "dbeta", P(rv))
		if beta != nil {
			m["beta"] = P(beta)
		}
		if out != nil {
			m["dx"] = P(out)
		}
		return m
	}
	bwdPack := func(beta, out *Buffer, cp, tf32 uint64) map[string]uint64 {
		return with(bwd(beta, out), "dst", P(xk), "Cp", cp, "tf32", tf32)
	}
	perChannel, tile := Dim3{c, 1, 1}, Dim3{3, 2, n}
	cases := []struct {
		name   string
		call   func() error
		kernel string
		grid   Dim3
		block  Dim3
		want   map[string]uint64
	}{
		{"train", func() error {
			return d.BatchNormTrainForward(n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, false)
		}, "bn_train_fwd_bf16x_v1", perChannel, Dim3{256, 1, 1}, with(train, "relu", 0)},
		{"train-relu", func() error {
			return d.BatchNormTrainForward(n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, true)
		}, "bn_train_fwd_bf16x_v1", perChannel, Dim3{256, 1, 1}, with(train, "relu", 1)},
		{"eval-relu", func() error {
			return d.BatchNormEvalForward(n, c, hw, x, gm, bt, rm, rv, y, 1e-3, true)
		}, "bn_eval_fwd_bf16x_v1", Dim3{ceilDiv(n*c*hw, 256), 1, 1}, Dim3{256, 1, 1}, with(eval, "relu", 1)},
		{"stats", locked(func() error { return d.bnTrainStats(n, c, hw, x, sm, si, rm, rv, 0.25, 1e-3) }),
			"bn_train_stats_bf16x_v1", perChannel, Dim3{256, 1, 1},
			bn("x", P(x), "save_mean", P(sm), "save_inv_std", P(si), "run_mean", P(rm), "run_var", P(rv),
				"m", F32(0.25), "one_minus_m", F32(0.75), "eps", F32(1e-3))},
		{"apply-bf16", locked(func() error {
			return d.bnForwardKeep(true, n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, true, packedBF16, true, g, xk)
		}), "bn_apply_pack_bf16_bf16x_v1", tile, Dim3{32, 8, 1}, apply(sm, si, 0, 1)},
		{"copy-only", locked(func() error {
			return d.bnForwardKeepY(false, false, n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, true, packedBF16, true, g, xk)
		}), "bn_pack_bf16_bf16x_v1", tile, Dim3{32, 8, 1}, without(apply(rm, rv, 1, 1), "y")},
		{"apply-bf16-eval", locked(func() error {
			return d.bnForwardKeep(false, n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, false, packedBF16, true, g, xk)
		}), "bn_apply_pack_bf16_bf16x_v1", tile, Dim3{32, 8, 1}, apply(rm, rv, 1, 0)},
		{"bwd", func() error {
			return d.BatchNormBackward(n, c, hw, x, gm, sm, si, y, dx, rm, rv)
		}, "bn_bwd_bf16x_v1", perChannel, Dim3{256, 1, 1}, bwd(nil, dx)},
		{"bwd-relu", func() error {
			return d.BatchNormBackwardReLU(n, c, hw, x, gm, bt, sm, si, y, nil, rm, rv)
		}, "bn_bwd_relu_bf16x_v1", perChannel, Dim3{256, 1, 1}, with(bwd(bt, nil), "dx", 0)},
		{"bwd-pack", locked(func() error {
			return d.bnBwdApplyPack(n, c, hw, x, gm, nil, sm, si, y, rm, rv, dx, xk, 40, false)
		}), "bn_bwd_apply_pack_bf16x_v1", tile, Dim3{32, 8, 1}, bwdPack(nil, dx, 40, 0)},
		{"bwd-copy-only", locked(func() error {
			return d.bnBwdApplyPack(n, c, hw, x, gm, nil, sm, si, y, rm, rv, nil, xk, 40, false)
		}), "bn_bwd_pack_bf16x_v1", tile, Dim3{32, 8, 1}, bwdPack(nil, nil, 40, 0)},
		{"bwd-relu-pack-tf32", locked(func() error {
			return d.bnBwdApplyPack(n, c, hw, x, gm, bt, sm, si, y, rm, rv, dx, xk, 36, true)
		}), "bn_bwd_relu_apply_pack_bf16x_v1", tile, Dim3{32, 8, 1}, bwdPack(bt, dx, 36, 1)},
		{"bwd-relu-copy-only", locked(func() error {
			return d.bnBwdApplyPack(n, c, hw, x, gm, bt, sm, si, y, rm, rv, nil, xk, 40, false)
		}), "bn_bwd_relu_pack_bf16x_v1", tile, Dim3{32, 8, 1}, bwdPack(bt, nil, 40, 0)},
	}
	seen := map[string]bool{"conv2d_fwd_v7_igemm_bf16y": true}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustNil(t, tc.call())
			checkFakeLaunch(t, f.last, tc.kernel, tc.grid, tc.block, tc.want, tc.call)
		})
		seen[tc.kernel] = true
	}
	for _, k := range bf16Twins {
		if !seen[k] {
			t.Errorf("kernel %s has no case here", k)
		}
	}
	// No TF32 copy of a bfloat16 x.
	d.mu.Lock()
	err := d.bnForwardKeep(false, n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, false, packedTF32, true, g, xt)
	d.mu.Unlock()
	if !errors.Is(err, geom.ErrGeometry) {
		t.Errorf("a TF32 copy of a bfloat16 x: %v, want an error wrapping geom.ErrGeometry", err)
	}
}

// u64 is an argument value of a launcher test: a uint64, or an int
// constant.
func u64(v any) uint64 {
	if i, ok := v.(int); ok {
		return uint64(i)
	}
	return v.(uint64)
}

// TestConvOutputBF16 runs a BF16 training step's conv → batch norm + ReLU
// → conv chain on the simulator twice: with the first conv's output in a
// bfloat16 buffer (ConvOutputBF16), and with it in float32, rounded to
// bfloat16 on the host before the batch norm reads it. Every result (the
// bfloat16 output's values, the batch norm's output, statistics and
// copies, the second conv's output, every gradient) is the same bit for
// bit, with the same launches; where the pass is not a BF16 one a
// bfloat16 y is refused with nothing launched, and the operations that do
// not take bfloat16 refuse it.
func TestConvOutputBF16(t *testing.T) { testConvOutputBF16(t, openSim(t)) }

// testConvOutputBF16 is TestConvOutputBF16 on d (TestConvOutputBF16CUDA on
// a GPU); skipped where d cannot run BF16.
func testConvOutputBF16(t *testing.T, d *Device) {
	if err := d.SetPrecision(BF16); err != nil {
		t.Skip(err)
	}
	defer d.SetPrecision(FP32)
	const momentum, eps = 0.1, 1e-5
	g0, g1 := bf16ChainGeoms()
	if !d.ConvOutputBF16(g0) {
		t.Fatalf("ConvOutputBF16(%v) = false at BF16 (forward kernel %s)", g0, d.ConvKernelFor(ConvFwd, g0))
	}
	n, hw := g0.N, g0.P()*g0.Q()
	ch := newBF16Chain(t, d)
	gamma, beta := ch.gamma, ch.beta
	ref, got := ch.run(false, dzFloat32), ch.run(true, dzFloat32)
	ch.same(t, got, ref)

	// Refused, nothing launched.
	y16, x, w, z := mustBF16(t, d, g1.YLen()), mustF32(t, d, g1.XLen()), mustF32(t, d, g1.WLen()), mustF32(t, d, g1.YLen())
	small := cg(1, 1, 3, 3, 1, 1, 1, 1, 1, 0, 0) // too small for v7: the direct kernel
	xs, ws, ys := mustF32(t, d, small.XLen()), mustF32(t, d, small.WLen()), mustBF16(t, d, small.YLen())
	l := d.Launches()
	for name, err := range map[string]error{
		"direct conv":      d.Conv2DForward(small, xs, ws, nil, ys),
		"relu":             d.ReLUForward(y16, z),
		"bfloat16 y of bn": d.BatchNormTrainForward(n, 16, hw, x, gamma, beta, y16, nil, nil, nil, nil, momentum, eps, false),
		"download":         y16.Download(make([]float32, y16.Len())),
		"upload":           y16.Upload(make([]float32, y16.Len())),
	} {
		if !errors.Is(err, geom.ErrGeometry) {
			t.Errorf("%s on a bfloat16 buffer: %v, want an error wrapping geom.ErrGeometry", name, err)
		}
	}
	if d.ConvOutputBF16(small) {
		t.Errorf("ConvOutputBF16(%v) = true for the direct kernel %s", small, d.ConvKernelFor(ConvFwd, small))
	}
	mustNil(t, d.SetPrecision(TF32))
	if d.ConvOutputBF16(g1) {
		t.Errorf("ConvOutputBF16 true at TF32")
	}
	if err := d.Conv2DForward(g1, x, w, nil, y16); !errors.Is(err, geom.ErrGeometry) {
		t.Errorf("a TF32 conv into a bfloat16 y: %v, want an error wrapping geom.ErrGeometry", err)
	}
	if n := d.Launches() - l; n != 0 {
		t.Errorf("the refused calls launched %d kernels", n)
	}
	// Half the memory of float32.
	if s := d.MemStats(); s.BytesInUse <= 0 {
		t.Fatalf("MemStats %+v", s)
	}
	before := d.MemStats().BytesInUse
	b16 := mustBF16(t, d, 1<<16)
	if grew := d.MemStats().BytesInUse - before; grew != 1<<17 {
		t.Errorf("NewBFloat16(65536) took %d bytes, want %d", grew, 1<<17)
	}
	mustNil(t, b16.Free())
}

// bf16ChainGeoms are the convolutions of bf16Chain: g0 runs v7 forward,
// its batch norm over 32 channels, then g1, whose backward-data pass
// (v9 at BF16: 32 filters, where 16 would run the direct kernel) writes
// the batch norm's input gradient dz.
func bf16ChainGeoms() (g0, g1 geom.ConvGeom) {
	return cg(8, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1), cg(8, 32, 8, 8, 32, 3, 3, 1, 1, 1, 1)
}

// bf16Chain is a BF16 training step's conv → batch norm + ReLU → conv
// chain on a device, with its inputs: TestConvOutputBF16 and
// TestConvInputGradBF16 run it with y and dz in bfloat16 buffers and in
// float32 ones rounded on the host.
type bf16Chain struct {
	d                       *Device
	t                       *testing.T
	x0, w0, w1, gamma, beta *Buffer
	dout                    *Buffer
}

// bf16ChainResult is what a run of bf16Chain computed.
type bf16ChainResult struct {
	y, dz    []float32 // the first conv's output, as the batch norm reads it, and its input gradient
	out      [][]float32
	launches int64
}

// dzMode is how bf16Chain.run stores dz, the second conv's input
// gradient: float32, float32 rounded to bfloat16 on the host before the
// batch norm reads it, or a bfloat16 buffer (ConvInputGradBF16).
type dzMode int

const (
	dzFloat32 dzMode = iota
	dzRounded
	dzBF16
)

func newBF16Chain(t *testing.T, d *Device) *bf16Chain {
	g0, g1 := bf16ChainGeoms()
	rng := newRand(t.Name())
	ch := &bf16Chain{d: d, t: t}
	ch.x0, ch.w0, ch.w1 = randomBufT(t, d, g0.XLen(), rng), randomBufT(t, d, g0.WLen(), rng), randomBufT(t, d, g1.WLen(), rng)
	ch.gamma, ch.beta, ch.dout = randomBufT(t, d, g0.K, rng), randomBufT(t, d, g0.K, rng), randomBufT(t, d, g1.YLen(), rng)
	return ch
}

// run runs the chain: with bf16y the first conv's output y in a bfloat16
// buffer, else in float32, rounded to bfloat16 on the host; dz as mode
// says.
func (ch *bf16Chain) run(bf16y bool, mode dzMode) bf16ChainResult {
	t, d := ch.t, ch.d
	const momentum, eps = 0.1, 1e-5
	g0, g1 := bf16ChainGeoms()
	n, c, hw := g0.N, g0.K, g0.P()*g0.Q()
	var y, dz *Buffer
	if bf16y {
		y = mustBF16(t, d, g0.YLen())
	} else {
		y = mustF32(t, d, g0.YLen())
	}
	if mode == dzBF16 {
		dz = mustBF16(t, d, g1.XLen())
	} else {
		dz = mustF32(t, d, g1.XLen())
	}
	xk0, xk1, dyk := mustF32(t, d, d.ConvKeepLen(g0)), mustF32(t, d, d.ConvKeepLen(g1)), mustF32(t, d, d.ConvDyCopyLen(g0))
	z, out, sm, si, rm, rv := mustF32(t, d, g1.XLen()), mustF32(t, d, g1.YLen()), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c)
	mustNil(t, d.Fill(rv, 1))
	dw0, dw1, dy := mustF32(t, d, g0.WLen()), mustF32(t, d, g1.WLen()), mustF32(t, d, g0.YLen())
	dg, db, dx0 := mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, g0.XLen())
	// rounded is b's values as the next operation reads them: a bfloat16
	// buffer's, or a float32 one's, rounded on the host where round says.
	rounded := func(b *Buffer, round bool) []float32 {
		if b.DType() == BFloat16 {
			v := make([]float32, b.Len())
			mustNil(t, b.DownloadBF16(v))
			return v
		}
		v := download(t, b)
		if round {
			cpuref.RoundBF16Slice(v, v)
			mustNil(t, b.Upload(v))
		}
		return v
	}
	var r bf16ChainResult
	l0 := d.Launches()
	mustNil(t, d.Conv2DForwardKeep(g0, ch.x0, ch.w0, nil, y, false, xk0))
	r.y = rounded(y, true)
	mustNil(t, d.BatchNormForwardKeep(true, n, c, hw, y, ch.gamma, ch.beta, z, sm, si, rm, rv, momentum, eps, true, g1, xk1))
	mustNil(t, d.Conv2DForwardKeep(g1, z, ch.w1, nil, out, false, xk1))
	mustNil(t, d.Conv2DBackward(g1, z, ch.dout, ch.w1, dw1, nil, dz, xk1))
	r.dz = rounded(dz, mode == dzRounded)
	mustNil(t, d.BatchNormBackwardCopy(n, c, hw, y, ch.gamma, ch.beta, sm, si, dz, dy, dg, db, g0, dyk))
	mustNil(t, d.Conv2DBackward(g0, ch.x0, dy, ch.w0, dw0, nil, dx0, xk0))
	mustNil(t, d.Synchronize())
	r.launches = d.Launches() - l0
	for _, b := range []*Buffer{z, sm, si, rm, rv, out, dw1, dg, db, dw0, dx0} {
		r.out = append(r.out, download(t, b))
	}
	return r
}

// same fails t unless got and ref are the same bit for bit, with as many
// launches.
func (ch *bf16Chain) same(t *testing.T, got, ref bf16ChainResult) {
	t.Helper()
	equalBitsT(t, "conv output (bfloat16)", got.y, ref.y)
	equalBitsT(t, "dz", got.dz, ref.dz)
	for i, name := range []string{"batch norm output", "saveMean", "saveInvStd", "runMean", "runVar", "conv output", "dw1",
		"dgamma", "dbeta", "dw0", "dx0"} {
		equalBitsT(t, name, got.out[i], ref.out[i])
	}
	if got.launches != ref.launches {
		t.Errorf("%d launches, want %d", got.launches, ref.launches)
	}
}
