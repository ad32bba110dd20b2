package gpu

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

// runConformance runs every kernel on devs[0] against cpuref over swept
// shapes (size-1 dimensions, odd sizes, sizes that are not multiples of 32
// or 256, strides 1–3, padding 0–2, batch > 1), the golden vector of
// DESIGN.md and the determinism checks. The simulator runs it in CI
// (TestConformanceSim); a cuda-tagged test runs it on a real GPU
// (TestConformanceCUDA). The heavy sweeps (every conv variant, the wide
// tiles' bits, determinism) run as parallel subtests, each on a device of
// devs that no other holds, so that several simulated devices keep the
// cores busy; they start once the sequential subtests (dispatch with its
// precision changes and per-kernel counters, the small kernels, the error
// checks) are done.
//
// Two kinds of inputs: small integers, where every float32 operation is
// exact whatever the order, so the kernel must equal cpuref exactly; and
// uniform reals in [−1, 1), compared with a float64 cpuref within the
// rounding bound (m+1)·u·Σ|terms| of an m-term float32 sum in any order.
func runConformance(t *testing.T, devs ...*Device) {
	d := devs[0]
	// parallel runs f as a parallel subtest on a device of devs that no
	// other running subtest holds (a device serialises its calls).
	pool := make(chan *Device, len(devs))
	for _, pd := range devs {
		pool <- pd
	}
	parallel := func(name string, f func(t *testing.T, d *Device)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pd := <-pool
			t.Cleanup(func() { pool <- pd }) // after the harness's cleanups
			f(t, pd)
		})
	}
	// Every convolution variant of every algorithm the device can run (the
	// dispatcher's candidates), on every swept shape.
	for _, a := range d.ConvAlgos() {
		for p := ConvPass(0); p < numConvPasses; p++ {
			for _, v := range variantsOf(a, p) {
				// One parallel subtest per kind of input: the subtests are
				// kernel=NAME[/relu]/inputs=KIND/SHAPE.
				for _, kind := range inputKinds {
					in := "/inputs=" + kind
					switch p {
					case ConvFwd:
						parallel("kernel="+v.name+in, func(t *testing.T, d *Device) { testConvForward(t, d, a, v.id, false, kind) })
						parallel("kernel="+v.name+"/relu"+in, func(t *testing.T, d *Device) { testConvForward(t, d, a, v.id, true, kind) })
					case ConvBwdData:
						parallel("kernel="+v.name+in, func(t *testing.T, d *Device) { testConvBackwardData(t, d, a, v.id, kind) })
					default:
						parallel("kernel="+v.name+in, func(t *testing.T, d *Device) { testConvBackwardFilter(t, d, a, v.id, kind) })
					}
				}
			}
		}
	}
	for _, v := range convVariants {
		if v.wide {
			parallel("wide-same-bits/kernel="+v.name, func(t *testing.T, d *Device) { testWideSameBits(t, d, v) })
		}
	}
	parallel("determinism", testDeterminism)
	t.Run("dispatch", func(t *testing.T) { testConvDispatch(t, d) })
	t.Run("tf32-rounding", func(t *testing.T) { testTF32Rounding(t, d) })
	t.Run("golden", func(t *testing.T) { testGolden(t, d) })
	for _, c := range plainConformance {
		t.Run("kernel="+c.name, func(t *testing.T) { c.run(t, d) })
	}
	if !d.IsSim() {
		t.Run("large", func(t *testing.T) { testLarge(t, d) })
	}
	t.Run("errors", func(t *testing.T) { testLaunchValidation(t, d) })
}

// conformanceCase is the conformance check of kernels that are not
// convolution variants (those run from convVariants).
type conformanceCase struct {
	name    string   // the subtest is kernel=name
	kernels []string // every kernel it launches and checks
	run     func(t *testing.T, d *Device)
}

// plainConformance lists runConformance's cases of the kernels that are
// not convolution variants; TestConformanceCoverage fails on a kernel of
// kernels.All that no variant and no case covers.
var plainConformance = []conformanceCase{
	{"conv2d_bwd_bias_v1", []string{"conv2d_bwd_bias_v1"}, testConvBackwardBias},
	{"relu_fwd_v1", []string{"relu_fwd_v1"}, testReLUForward},
	{"relu_bwd_v1", []string{"relu_bwd_v1"}, testReLUBackward},
	{"maxpool_fwd_v1", []string{"maxpool_fwd_v1"}, testMaxPoolForward},
	{"maxpool_bwd_v1", []string{"maxpool_bwd_v1"}, testMaxPoolBackward},
	{"dense_fwd_v1", []string{"dense_fwd_v1"}, testDenseForward},
	{"dense_bwd_data_v1", []string{"dense_bwd_data_v1"}, testDenseBackwardData},
	{"dense_bwd_weight_v1", []string{"dense_bwd_weight_v1"}, testDenseBackwardWeight},
	{"reduce_cols_v1", []string{"reduce_cols_v1"}, testReduceCols},
	{"softmax_ce_v1", []string{"softmax_ce_v1"}, testSoftmaxCE},
	{"mse_v1", []string{"mse_v1"}, testMSE},
	{"reduce_sum_v1", []string{"reduce_sum_v1"}, testReduceSum},
	{"count_correct_v1", []string{"count_correct_v1"}, testCountCorrect},
	{"accumulate_v1", []string{"accumulate_v1"}, testAccumulate},
	{"sgd_momentum_v1", []string{"sgd_momentum_v1"}, testSGD},
	{"gather_rows_v1", []string{"gather_rows_f32_v1", "gather_rows_i32_v1"}, testGather},
	{"fill_f32_v1", []string{"fill_f32_v1"}, testFill},
	{"pack_nhwc_bf16_v1", []string{"pack_nhwc_bf16_v1"}, testPackBF16},
	{"pack_nhwc_tf32_v1", []string{"pack_nhwc_tf32_v1"}, testPackTF32},
}

func cg(n, c, h, w, k, r, s, sh, sw, ph, pw int) geom.ConvGeom {
	return geom.ConvGeom{N: n, C: c, H: h, W: w, K: k, R: r, S: s, StrideH: sh, StrideW: sw, PadH: ph, PadW: pw}
}

// convShapes: size-1 dimensions, 1×1 and non-square kernels, kernels as
// large as the padded input, strides 1–3 and padding 0–2 per axis, batch >
// 1, and output counts that are not multiples of 32 or 256.
var convShapes = []geom.ConvGeom{
	cg(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0),
	cg(1, 1, 1, 7, 2, 1, 3, 1, 1, 0, 0),
	cg(2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1),
	cg(1, 2, 5, 6, 3, 3, 2, 2, 1, 0, 1),
	cg(3, 1, 9, 8, 2, 3, 3, 3, 3, 2, 2),
	cg(2, 4, 6, 5, 5, 1, 1, 1, 2, 0, 0),
	cg(1, 3, 4, 4, 2, 5, 5, 1, 1, 2, 2),
	cg(2, 2, 11, 10, 3, 2, 3, 2, 3, 1, 2),
	cg(5, 2, 3, 3, 3, 3, 3, 1, 1, 1, 1),
	cg(1, 1, 28, 28, 2, 5, 5, 1, 1, 0, 0),
	cg(2, 5, 8, 9, 3, 3, 3, 2, 2, 1, 0),
	// For the implicit-GEMM kernels (128×64×8 tiles): two M tiles and two
	// N tiles with C·R·S = 36 (16-byte weight loads) and P·Q = 90 (scalar
	// stores); a 1×1 stride-1 conv with P·Q = 36 (16-byte x loads and
	// stores); a 1×1 conv with P·Q = 35 (scalar) and C = 67 (two N tiles
	// of bwd-data); strides 2 and 3 with C, K > 16; C·R·S = 135 (two M
	// tiles of bwd-filter); K = 130 (three N tiles); N·P·Q = 768 and
	// 544: bwd-filter split in 3 and 2 (the last split partial).
	cg(2, 4, 9, 10, 70, 3, 3, 1, 1, 1, 1),
	cg(3, 8, 6, 6, 20, 1, 1, 1, 1, 0, 0),
	cg(2, 67, 5, 7, 3, 1, 1, 1, 1, 0, 0),
	cg(2, 20, 11, 13, 24, 3, 3, 2, 3, 1, 2),
	cg(1, 15, 4, 4, 20, 3, 3, 1, 1, 1, 1),
	cg(1, 2, 3, 3, 130, 1, 1, 1, 1, 0, 0),
	cg(3, 2, 16, 16, 3, 3, 3, 1, 1, 1, 1),
	cg(2, 3, 17, 16, 5, 3, 3, 1, 1, 1, 1),
	// Phase-decomposed bwd-data: strides larger than the kernel (phases
	// without taps write zeros), a 1×1 stride-2 projection, a stride
	// larger than the input, stride 3 with padding 2.
	cg(2, 5, 9, 11, 18, 2, 1, 3, 2, 0, 0),
	cg(2, 6, 8, 10, 20, 1, 1, 2, 2, 0, 0),
	cg(1, 3, 2, 5, 4, 1, 2, 4, 3, 0, 1),
	cg(2, 4, 10, 9, 17, 5, 4, 3, 3, 2, 2),
}

func init() {
	// Every stride 1–3 and padding 0–2 on each axis, the other axis
	// differing: (sh, ph) × (sw, pw) = (sh, ph) × (4−sh, 2−ph).
	for sh := 1; sh <= 3; sh++ {
		for ph := 0; ph <= 2; ph++ {
			convShapes = append(convShapes, cg(2, 2, 5+sh, 4+ph, 3, 3, 2, sh, 4-sh, ph, 2-ph))
		}
	}
	// Random small geometries (fixed seed): inputs as small as 1×1, kernels
	// larger than the unpadded input, any stride/padding combination.
	rng := newRand("convShapes")
	for len(convShapes) < 50 {
		g := cg(1+rng.IntN(3), 1+rng.IntN(4), 1+rng.IntN(12), 1+rng.IntN(12), 1+rng.IntN(5),
			1+rng.IntN(5), 1+rng.IntN(5), 1+rng.IntN(3), 1+rng.IntN(3), rng.IntN(3), rng.IntN(3))
		if g.Validate() == nil {
			convShapes = append(convShapes, g)
		}
	}
	rng = newRand("poolShapes")
	for len(poolShapes) < 20 {
		g := pg(1+rng.IntN(3), 1+rng.IntN(4), 1+rng.IntN(12), 1+rng.IntN(12), 1+rng.IntN(4), 1+rng.IntN(4), 1+rng.IntN(3), 1+rng.IntN(3))
		if g.Validate() == nil {
			poolShapes = append(poolShapes, g)
		}
	}
}

// shortConvShapes is the sweep of the conv kernels under go test -short:
// shapes of convShapes (TestShortConvShapes checks that, and what they
// cover) chosen to reach every code path at a fraction of the cost: size-1
// dimensions, padding, a stride > 1 on each axis, strides larger than the
// kernel (phases without taps) and than the input, 16-byte loads and
// stores (1×1, stride 1, P·Q a multiple of 4), several M tiles with a
// split-K bwd-filter (N·P·Q = 768), several M tiles in every pass (C·R·S =
// 135 for bwd-filter) and several N tiles in every pass (K = 130, C = 67). Without -short every test sweeps all of convShapes.
var shortConvShapes = []geom.ConvGeom{
	cg(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0),
	cg(2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1),
	cg(1, 2, 5, 6, 3, 3, 2, 2, 1, 0, 1),
	cg(3, 8, 6, 6, 20, 1, 1, 1, 1, 0, 0),
	cg(2, 67, 5, 7, 3, 1, 1, 1, 1, 0, 0),
	cg(1, 15, 4, 4, 20, 3, 3, 1, 1, 1, 1),
	cg(1, 2, 3, 3, 130, 1, 1, 1, 1, 0, 0),
	cg(3, 2, 16, 16, 3, 3, 3, 1, 1, 1, 1),
	cg(2, 5, 9, 11, 18, 2, 1, 3, 2, 0, 0),
	cg(1, 3, 2, 5, 4, 1, 2, 4, 3, 0, 1),
}

// sweptConvShapes is the sweep of the conv kernel tests: convShapes, or
// shortConvShapes under go test -short.
func sweptConvShapes() []geom.ConvGeom {
	if testing.Short() {
		return shortConvShapes
	}
	return convShapes
}

// TestShortConvShapes checks that the -short sweep is a subset of the full
// one that still reaches what its comment lists.
func TestShortConvShapes(t *testing.T) {
	full := map[geom.ConvGeom]bool{}
	for _, g := range convShapes {
		full[g] = true
	}
	var has struct {
		one, pad, strideH, strideW, strideOverKernel, strideOverInput, vec16, split bool
		mTiles, nTiles                                                              [numConvPasses]bool
	}
	for _, g := range shortConvShapes {
		if !full[g] {
			t.Errorf("short shape %v is not in convShapes", g)
		}
		has.one = has.one || g.N*g.C*g.H*g.W*g.K*g.R*g.S == 1
		has.pad = has.pad || g.PadH > 0 || g.PadW > 0
		has.strideH = has.strideH || g.StrideH > 1
		has.strideW = has.strideW || g.StrideW > 1
		has.strideOverKernel = has.strideOverKernel || g.StrideH > g.R || g.StrideW > g.S
		has.strideOverInput = has.strideOverInput || g.StrideH > g.H || g.StrideW > g.W
		has.vec16 = has.vec16 || g.R == 1 && g.S == 1 && g.StrideH == 1 && g.StrideW == 1 &&
			g.PadH == 0 && g.PadW == 0 && g.P()*g.Q()%4 == 0
		s, _ := wgradSplits(g)
		has.split = has.split || s > 1
		for p, mn := range [numConvPasses][2]int{{g.N * g.P() * g.Q(), g.K}, {g.N * g.H * g.W, g.C}, {g.C * g.R * g.S, g.K}} {
			has.mTiles[p] = has.mTiles[p] || mn[0] > igemmBM
			has.nTiles[p] = has.nTiles[p] || mn[1] > igemmBN
		}
	}
	for _, c := range []struct {
		what string
		ok   bool
	}{
		{"size-1 dimensions", has.one}, {"padding", has.pad}, {"stride > 1 on H", has.strideH},
		{"stride > 1 on W", has.strideW}, {"a stride larger than the kernel", has.strideOverKernel},
		{"a stride larger than the input", has.strideOverInput}, {"16-byte loads and stores", has.vec16},
		{"a split-K bwd-filter", has.split},
		{"several M tiles of forward", has.mTiles[ConvFwd]}, {"several M tiles of bwd-data", has.mTiles[ConvBwdData]},
		{"several M tiles of bwd-filter", has.mTiles[ConvBwdFilter]},
		{"several N tiles of forward", has.nTiles[ConvFwd]}, {"several N tiles of bwd-data", has.nTiles[ConvBwdData]},
		{"several N tiles of bwd-filter", has.nTiles[ConvBwdFilter]},
	} {
		if !c.ok {
			t.Errorf("shortConvShapes has no shape with %s", c.what)
		}
	}
}

// convInputs returns the inputs of a conv case: small integers in [−3, 3]
// (exact) or uniform reals.
func convInputs(kind, name string, lens ...int) [][]float32 {
	rng := newRand(name)
	out := make([][]float32, len(lens))
	for i, n := range lens {
		if kind == "int" {
			out[i] = smallInts(rng, n, -3, 3)
		} else {
			out[i] = uniform(rng, n)
		}
	}
	return out
}

var inputKinds = []string{"int", "real"}

// runConv runs pass p of algorithm a (relu: the fused forward) with d.mu
// held, as the dispatching entry points do.
func (d *Device) runConv(a ConvAlgo, p ConvPass, g geom.ConvGeom, in1, in2, b, out *Buffer, relu bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch p {
	case ConvFwd:
		return d.convForwardAlgo(a, g, in1, in2, b, out, relu)
	case ConvBwdData:
		return d.convBackwardDataAlgo(a, g, in1, in2, out)
	}
	return d.convBackwardFilterAlgo(a, g, in1, in2, out)
}

// convTol is the tolerance of algorithm a for a sum of m float32
// roundings of terms whose absolute values sum to abs: sumBound for the
// FP32 algorithms. TF32 rounds each operand of a product to 10 explicit
// mantissa bits (relative error ≤ 2⁻¹¹ each, so ≤ 2⁻¹⁰ + 2⁻²² per
// product) and the tensor cores' float32 accumulation may truncate rather
// than round (≤ 2u per addition): (2⁻¹⁰ + 2⁻²⁰ + 2(m+1)·u)·Σ|terms|.
//
// BF16: the reference rounds x and w to bfloat16 itself (cpuref.RoundBF16,
// bf16Ref), so only the accumulation remains: products of two bfloat16
// are exact in float32 and the float32 sums may truncate, 2(m+1)·u·Σ|terms|
// over the rounded terms.
func convTol(a ConvAlgo, m int, abs []float64) []float64 {
	if a == ConvIGemmBF16 {
		tol := make([]float64, len(abs))
		for i, v := range abs {
			tol[i] = 2*float64(m+1)*u*v + 1e-30
		}
		return tol
	}
	if a != ConvIGemmTF32 {
		return sumBound(m, abs)
	}
	tol := make([]float64, len(abs))
	for i, v := range abs {
		tol[i] = (1.0/1024+1.0/(1<<20)+2*float64(m+1)*u)*v + 1e-30
	}
	return tol
}

// reluRef applies ReLU in place (for the fused forward's reference).
func reluRef[T float32 | float64](y []T) {
	for i, v := range y {
		if !(v > 0) && v == v {
			y[i] = 0
		}
	}
}

// testConvForward checks the forward pass of algorithm a (relu: fused
// with ReLU) against cpuref. Integer inputs in [−3, 3] are exact in TF32
// and BF16 too, so every algorithm must match exactly. The BF16 kernel's
// reference rounds x and w to bfloat16 first (bf16Ref).
func testConvForward(t *testing.T, d *Device, a ConvAlgo, id kernelID, relu bool, kind string) {
	for _, g := range sweptConvShapes() {
		name := "inputs=" + kind + "/" + g.String()
		t.Run(g.String(), func(t *testing.T) {
			in := convInputs(kind, name, g.XLen(), g.WLen(), g.K)
			x, w, b := in[0], in[1], in[2]
			h := newHarness(t, d)
			y := h.out("y", g.YLen())
			if err := d.runFwd(id, g, h.in("x", x), h.in("w", w), h.in("b", b), y, relu); err != nil {
				t.Fatal(err)
			}
			got := h.read(y)
			if a == ConvIGemmBF16 {
				x, w = bf16Ref(x), bf16Ref(w)
			}
			if kind == "int" {
				want := make([]float32, g.YLen())
				if err := cpuref.Conv2DForwardDirect(g, x, w, b, want); err != nil {
					t.Fatal(err)
				}
				if relu {
					reluRef(want)
				}
				checkExact32(t, "y", got, want)
			} else {
				want := make([]float64, g.YLen())
				abs := make([]float64, g.YLen())
				if err := cpuref.Conv2DForwardDirect(g, to64(x), to64(w), to64(b), want); err != nil {
					t.Fatal(err)
				}
				if err := cpuref.Conv2DForwardDirect(g, abs64(x), abs64(w), abs64(b), abs); err != nil {
					t.Fatal(err)
				}
				if relu {
					reluRef(want) // |relu(a) − relu(b)| ≤ |a − b|: the same tolerance holds
				}
				// C·R·S products and C·R·S + 1 additions (the bias).
				checkClose(t, "y", got, want, convTol(a, 2*g.C*g.R*g.S+1, abs))
			}
			h.check()
		})
	}
}

// runFwd and runWgrad run forward and bwd-filter kernel id with d.mu held.
func (d *Device) runFwd(id kernelID, g geom.ConvGeom, x, w, b, y *Buffer, relu bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.convForwardKernel(id, g, x, w, b, y, relu)
}

func (d *Device) runWgrad(id kernelID, g geom.ConvGeom, x, dy, dw *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.convBackwardFilterKernel(id, g, x, dy, dw)
}

// runDgrad runs backward-data kernel id with d.mu held.
func (d *Device) runDgrad(id kernelID, g geom.ConvGeom, dy, w, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.convBackwardDataKernel(id, g, dy, w, dx)
}

// testConvBackwardData checks backward-data kernel id of algorithm a.
func testConvBackwardData(t *testing.T, d *Device, a ConvAlgo, id kernelID, kind string) {
	for _, g := range sweptConvShapes() {
		name := "inputs=" + kind + "/" + g.String()
		t.Run(g.String(), func(t *testing.T) {
			in := convInputs(kind, name, g.YLen(), g.WLen())
			dy, w := in[0], in[1]
			h := newHarness(t, d)
			dx := h.out("dx", g.XLen())
			if err := d.runDgrad(id, g, h.in("dy", dy), h.in("w", w), dx); err != nil {
				t.Fatal(err)
			}
			got := h.read(dx)
			if kind == "int" {
				want := make([]float32, g.XLen())
				if err := cpuref.Conv2DBackwardDataDirect(g, dy, w, want); err != nil {
					t.Fatal(err)
				}
				checkExact32(t, "dx", got, want)
			} else {
				want := make([]float64, g.XLen())
				abs := make([]float64, g.XLen())
				if err := cpuref.Conv2DBackwardDataDirect(g, to64(dy), to64(w), want); err != nil {
					t.Fatal(err)
				}
				if err := cpuref.Conv2DBackwardDataDirect(g, abs64(dy), abs64(w), abs); err != nil {
					t.Fatal(err)
				}
				// At most K·R·S terms per element.
				checkClose(t, "dx", got, want, convTol(a, 2*g.K*g.R*g.S, abs))
			}
			h.check()
		})
	}
}

func testConvBackwardFilter(t *testing.T, d *Device, a ConvAlgo, id kernelID, kind string) {
	for _, g := range sweptConvShapes() {
		name := "inputs=" + kind + "/" + g.String()
		t.Run(g.String(), func(t *testing.T) {
			in := convInputs(kind, name, g.XLen(), g.YLen())
			x, dy := in[0], in[1]
			h := newHarness(t, d)
			dw := h.out("dw", g.WLen())
			if err := d.runWgrad(id, g, h.in("x", x), h.in("dy", dy), dw); err != nil {
				t.Fatal(err)
			}
			got := h.read(dw)
			if kind == "int" {
				want := make([]float32, g.WLen())
				if err := cpuref.Conv2DBackwardFilterDirect(g, x, dy, want); err != nil {
					t.Fatal(err)
				}
				checkExact32(t, "dw", got, want)
			} else {
				want := make([]float64, g.WLen())
				abs := make([]float64, g.WLen())
				if err := cpuref.Conv2DBackwardFilterDirect(g, to64(x), to64(dy), want); err != nil {
					t.Fatal(err)
				}
				if err := cpuref.Conv2DBackwardFilterDirect(g, abs64(x), abs64(dy), abs); err != nil {
					t.Fatal(err)
				}
				// N·P·Q terms per weight.
				// N·P·Q products and additions, plus the split-K
				// second pass (at most 64 more additions).
				checkClose(t, "dw", got, want, convTol(a, 2*g.N*g.P()*g.Q()+64, abs))
			}
			h.check()
		})
	}
}

func testConvBackwardBias(t *testing.T, d *Device) {
	for _, g := range sweptConvShapes() {
		for _, kind := range inputKinds {
			name := "inputs=" + kind + "/" + g.String()
			t.Run(name, func(t *testing.T) {
				dy := convInputs(kind, name, g.YLen())[0]
				h := newHarness(t, d)
				db := h.out("db", g.K)
				if err := d.Conv2DBackwardBias(g, h.in("dy", dy), db); err != nil {
					t.Fatal(err)
				}
				got := h.read(db)
				if kind == "int" {
					want := make([]float32, g.K)
					if err := cpuref.Conv2DBackwardBias(g, dy, want); err != nil {
						t.Fatal(err)
					}
					checkExact32(t, "db", got, want)
				} else {
					want := make([]float64, g.K)
					abs := make([]float64, g.K)
					if err := cpuref.Conv2DBackwardBias(g, to64(dy), want); err != nil {
						t.Fatal(err)
					}
					if err := cpuref.Conv2DBackwardBias(g, abs64(dy), abs); err != nil {
						t.Fatal(err)
					}
					checkClose(t, "db", got, want, sumBound(g.N*g.P()*g.Q(), abs))
				}
				h.check()
			})
		}
	}
}

// testGolden checks the golden vector of DESIGN.md §1 through the
// backward-filter and bias kernels.
func testGolden(t *testing.T, d *Device) {
	o := []float32{
		0.51, 0.9, 0.88, 0.84, 0.05,
		0.4, 0.62, 0.22, 0.59, 0.1,
		0.11, 0.2, 0.74, 0.33, 0.14,
		0.47, 0.01, 0.85, 0.7, 0.09,
		0.76, 0.19, 0.72, 0.17, 0.57,
	}
	delta := []float32{
		0, 0, 0.0686, 0,
		0, 0.0364, 0, 0,
		0, 0.0467, 0, 0,
		0, 0, 0, -0.0681,
	}
	g := cg(1, 1, 5, 5, 1, 2, 2, 1, 1, 0, 0)
	h := newHarness(t, d)
	dw, db := h.out("dw", 4), h.out("db", 1)
	x, dy := h.in("o", o), h.in("δ", delta)
	if err := d.Conv2DBackwardFilter(g, x, dy, dw); err != nil {
		t.Fatal(err)
	}
	if err := d.Conv2DBackwardBias(g, dy, db); err != nil {
		t.Fatal(err)
	}
	// DESIGN.md gives ∂E/∂w to 6 decimals: the rounding is at most 5e-7,
	// and float32 adds a few 1e-8.
	const atol = 1e-6
	tol := []float64{atol, atol, atol, atol}
	checkClose(t, "∂E/∂w", h.read(dw), []float64{0.044606, 0.094061, 0.011262, 0.068288}, tol)
	// ∂E/∂b = Σ δ = 0.0686 + 0.0364 + 0.0467 − 0.0681.
	checkClose(t, "∂E/∂b", h.read(db), []float64{0.0836}, tol[:1])
	h.check()
}

// elemSizes: 1, around a warp, around and beyond one 256-thread block.
var elemSizes = []int{1, 2, 31, 33, 255, 256, 257, 1000}

func testReLUForward(t *testing.T, d *Device) {
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			x := smallInts(newRand(t.Name()), n, -2, 2)
			if n > 2 {
				x[n/2] = float32(math.NaN()) // must propagate
			}
			want := make([]float32, n)
			if err := cpuref.ReLUForward(x, want); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			y := h.out("y", n)
			if err := d.ReLUForward(h.in("x", x), y); err != nil {
				t.Fatal(err)
			}
			// A selection: exact.
			checkExact32(t, "y", h.read(y), want)
			h.check()
		})
	}
}

func testReLUBackward(t *testing.T, d *Device) {
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			rng := newRand(t.Name())
			x, dy := smallInts(rng, n, -2, 2), uniform(rng, n)
			want := make([]float32, n)
			if err := cpuref.ReLUBackward(x, dy, want); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			dx := h.out("dx", n)
			if err := d.ReLUBackward(h.in("x", x), h.in("dy", dy), dx); err != nil {
				t.Fatal(err)
			}
			checkExact32(t, "dx", h.read(dx), want)
			h.check()
		})
	}
}

func pg(n, c, h, w, r, s, sh, sw int) geom.PoolGeom {
	return geom.PoolGeom{N: n, C: c, H: h, W: w, R: r, S: s, StrideH: sh, StrideW: sw}
}

// poolShapes: 1×1, non-overlapping, overlapping (stride < window), windows
// that leave a remainder, non-square windows and strides.
var poolShapes = []geom.PoolGeom{
	pg(1, 1, 1, 1, 1, 1, 1, 1),
	pg(2, 3, 6, 6, 2, 2, 2, 2),
	pg(1, 2, 7, 5, 3, 3, 2, 2),
	pg(3, 1, 9, 9, 3, 2, 3, 1),
	pg(2, 2, 5, 8, 2, 3, 1, 3),
	pg(1, 4, 28, 28, 2, 2, 2, 2),
}

func testMaxPoolForward(t *testing.T, d *Device) {
	for _, g := range poolShapes {
		for _, nan := range []bool{false, true} {
			t.Run(kv("nan", nan)+"/"+g.String(), func(t *testing.T) {
				// Values in [−2, 2]: many ties, which checks "first maximum".
				x := smallInts(newRand(t.Name()), g.XLen(), -2, 2)
				if nan {
					x[g.XLen()/2] = float32(math.NaN()) // a NaN wins its windows
				}
				want := make([]float32, g.YLen())
				wantArg := make([]int32, g.YLen())
				if err := cpuref.MaxPoolForward(g, x, want, wantArg); err != nil {
					t.Fatal(err)
				}
				h := newHarness(t, d)
				y, arg := h.out("y", g.YLen()), h.outI32("argmax", g.YLen())
				if err := d.MaxPoolForward(g, h.in("x", x), y, arg); err != nil {
					t.Fatal(err)
				}
				checkExact32(t, "y", h.read(y), want)
				checkExactI32(t, "argmax", h.readI32(arg), wantArg)
				h.check()
			})
		}
	}
}

func testMaxPoolBackward(t *testing.T, d *Device) {
	for _, g := range poolShapes {
		t.Run(g.String(), func(t *testing.T) {
			rng := newRand(t.Name())
			x := smallInts(rng, g.XLen(), -2, 2)
			y := make([]float32, g.YLen())
			arg := make([]int32, g.YLen())
			if err := cpuref.MaxPoolForward(g, x, y, arg); err != nil {
				t.Fatal(err)
			}
			// Integer dy: overlapping windows sum exactly in any order.
			dy := smallInts(rng, g.YLen(), -3, 3)
			want := make([]float32, g.XLen())
			if err := cpuref.MaxPoolBackward(g, dy, arg, want); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			dx := h.out("dx", g.XLen())
			if err := d.MaxPoolBackward(g, h.in("dy", dy), h.inI32("argmax", arg), dx); err != nil {
				t.Fatal(err)
			}
			checkExact32(t, "dx", h.read(dx), want)
			h.check()
		})
	}
}

// denseShapes (N, In, Out): size 1, odd widths, widths around 32 and 256.
var denseShapes = [][3]int{{1, 1, 1}, {2, 3, 5}, {7, 33, 10}, {4, 257, 3}, {3, 5, 300}, {65, 20, 10}}

func testDenseForward(t *testing.T, d *Device) {
	for _, s := range denseShapes {
		n, in, out := s[0], s[1], s[2]
		for _, kind := range inputKinds {
			name := "inputs=" + kind + "/" + kv("N", n, "In", in, "Out", out)
			t.Run(name, func(t *testing.T) {
				inp := convInputs(kind, name, n*in, out*in, out)
				x, w, b := inp[0], inp[1], inp[2]
				h := newHarness(t, d)
				y := h.out("y", n*out)
				if err := d.DenseForward(n, in, out, h.in("x", x), h.in("w", w), h.in("b", b), y); err != nil {
					t.Fatal(err)
				}
				got := h.read(y)
				if kind == "int" {
					want := make([]float32, n*out)
					if err := cpuref.DenseForward(n, in, out, x, w, b, want); err != nil {
						t.Fatal(err)
					}
					checkExact32(t, "y", got, want)
				} else {
					want, abs := make([]float64, n*out), make([]float64, n*out)
					if err := cpuref.DenseForward(n, in, out, to64(x), to64(w), to64(b), want); err != nil {
						t.Fatal(err)
					}
					if err := cpuref.DenseForward(n, in, out, abs64(x), abs64(w), abs64(b), abs); err != nil {
						t.Fatal(err)
					}
					checkClose(t, "y", got, want, sumBound(2*in+1, abs))
				}
				h.check()
			})
		}
	}
}

// denseBackwardRef computes the float64 (or exact float32) reference of
// the three dense backward outputs.
func denseBackwardRef[T cpuref.Float](n, in, out int, x, w, dy []T) (dx, dw, db []T) {
	dx, dw, db = make([]T, n*in), make([]T, out*in), make([]T, out)
	if err := cpuref.DenseBackward(n, in, out, x, w, dy, dx, dw, db); err != nil {
		panic(err) // shapes are fixed by the test table
	}
	return dx, dw, db
}

func testDenseBackwardData(t *testing.T, d *Device) {
	for _, s := range denseShapes {
		n, in, out := s[0], s[1], s[2]
		for _, kind := range inputKinds {
			name := "inputs=" + kind + "/" + kv("N", n, "In", in, "Out", out)
			t.Run(name, func(t *testing.T) {
				inp := convInputs(kind, name, n*in, out*in, n*out)
				x, w, dy := inp[0], inp[1], inp[2]
				h := newHarness(t, d)
				dx := h.out("dx", n*in)
				if err := d.DenseBackwardData(n, in, out, h.in("dy", dy), h.in("w", w), dx); err != nil {
					t.Fatal(err)
				}
				got := h.read(dx)
				if kind == "int" {
					want, _, _ := denseBackwardRef(n, in, out, x, w, dy)
					checkExact32(t, "dx", got, want)
				} else {
					want, _, _ := denseBackwardRef(n, in, out, to64(x), to64(w), to64(dy))
					abs, _, _ := denseBackwardRef(n, in, out, abs64(x), abs64(w), abs64(dy))
					checkClose(t, "dx", got, want, sumBound(2*out, abs))
				}
				h.check()
			})
		}
	}
}

func testDenseBackwardWeight(t *testing.T, d *Device) {
	for _, s := range denseShapes {
		n, in, out := s[0], s[1], s[2]
		for _, kind := range inputKinds {
			name := "inputs=" + kind + "/" + kv("N", n, "In", in, "Out", out)
			t.Run(name, func(t *testing.T) {
				inp := convInputs(kind, name, n*in, out*in, n*out)
				x, w, dy := inp[0], inp[1], inp[2]
				h := newHarness(t, d)
				dw := h.out("dw", out*in)
				if err := d.DenseBackwardWeight(n, in, out, h.in("x", x), h.in("dy", dy), dw); err != nil {
					t.Fatal(err)
				}
				got := h.read(dw)
				if kind == "int" {
					_, want, _ := denseBackwardRef(n, in, out, x, w, dy)
					checkExact32(t, "dw", got, want)
				} else {
					_, want, _ := denseBackwardRef(n, in, out, to64(x), to64(w), to64(dy))
					_, abs, _ := denseBackwardRef(n, in, out, abs64(x), abs64(w), abs64(dy))
					checkClose(t, "dw", got, want, sumBound(2*n, abs))
				}
				h.check()
			})
		}
	}
}

func testReduceCols(t *testing.T, d *Device) {
	for _, s := range [][2]int{{1, 1}, {3, 7}, {64, 10}, {5, 300}, {257, 2}} {
		rows, cols := s[0], s[1]
		for _, kind := range inputKinds {
			name := "inputs=" + kind + "/" + kv("rows", rows, "cols", cols)
			t.Run(name, func(t *testing.T) {
				a := convInputs(kind, name, rows*cols)[0]
				h := newHarness(t, d)
				out := h.out("out", cols)
				if err := d.ReduceCols(rows, cols, h.in("a", a), out); err != nil {
					t.Fatal(err)
				}
				// The bias gradient of a dense layer with dy = a.
				ones := make([]float32, cols)
				if kind == "int" {
					_, _, want := denseBackwardRef(rows, 1, cols, make([]float32, rows), ones, a)
					checkExact32(t, "out", h.read(out), want)
				} else {
					_, _, want := denseBackwardRef(rows, 1, cols, make([]float64, rows), to64(ones), to64(a))
					_, _, abs := denseBackwardRef(rows, 1, cols, make([]float64, rows), to64(ones), abs64(a))
					checkClose(t, "out", h.read(out), want, sumBound(rows, abs))
				}
				h.check()
			})
		}
	}
}

// softmaxShapes (N, Classes).
var softmaxShapes = [][2]int{{1, 1}, {1, 2}, {3, 10}, {33, 7}, {257, 3}, {2, 300}}

func testSoftmaxCE(t *testing.T, d *Device) {
	for _, s := range softmaxShapes {
		n, classes := s[0], s[1]
		for _, badLabel := range []bool{false, true} {
			t.Run(kv("N", n, "classes", classes, "badLabel", badLabel), func(t *testing.T) {
				rng := newRand(t.Name())
				logits := make([]float32, n*classes)
				for i := range logits {
					logits[i] = float32(8*rng.Float64() - 4)
				}
				labels := make([]int32, n)
				for i := range labels {
					labels[i] = int32(rng.IntN(classes))
				}
				bad := -1
				if badLabel {
					bad = n / 2
					labels[bad] = int32(classes) // one past the end
					if n > 2 {
						labels[0] = -1
					}
				}
				// Per-row float64 reference: cpuref with a batch of one gives
				// the row's loss and softmax − onehot; the kernel divides the
				// gradient by N.
				wantLoss := make([]float64, n)
				wantGrad := make([]float64, n*classes)
				for r := range n {
					row := to64(logits[r*classes : (r+1)*classes])
					lab := labels[r]
					if lab < 0 || int(lab) >= classes {
						wantLoss[r] = math.NaN()
						for c := range classes {
							wantGrad[r*classes+c] = math.NaN()
						}
						continue
					}
					g := make([]float64, classes)
					l, err := cpuref.SoftmaxCrossEntropy(1, classes, row, []int32{lab}, g)
					if err != nil {
						t.Fatal(err)
					}
					wantLoss[r] = l
					for c := range classes {
						wantGrad[r*classes+c] = g[c] / float64(n)
					}
				}
				h := newHarness(t, d)
				loss, dl := h.out("lossRows", n), h.out("dlogits", n*classes)
				if err := d.SoftmaxCrossEntropy(n, classes, h.in("logits", logits), h.inI32("labels", labels), loss, dl); err != nil {
					t.Fatal(err)
				}
				// mathf_expf and mathf_logf are within 1 ulp (2u relative).
				// Each e^(z_j−m) is off by ≤ (|z_j−m| + 3)·u ≤ 11u relative
				// (logits in [−4, 4]), their sum by ≤ (classes + 11)·u, its
				// log by that plus 2u·|ln Σ| ≤ 12u, and the last subtraction
				// adds ≤ 8u + u·|loss|: loss within (classes + 32)·u·(1 +
				// |loss|). A gradient entry (p_j − [j = l])/N: p_j = e/Σ within
				// (classes + 23)·u·p_j, then the subtraction and the division
				// 2u more on values ≤ 1: within (classes + 26)·u/N.
				lt := make([]float64, n)
				for i := range lt {
					lt[i] = float64(classes+32) * u * (1 + math.Abs(wantLoss[i]))
				}
				gt := make([]float64, n*classes)
				for i := range gt {
					gt[i] = float64(classes+26) * u / float64(n)
				}
				checkClose(t, "lossRows", h.read(loss), wantLoss, lt)
				checkClose(t, "dlogits", h.read(dl), wantGrad, gt)
				h.check()
			})
		}
	}
}

func testMSE(t *testing.T, d *Device) {
	for _, s := range [][2]int{{1, 1}, {3, 10}, {33, 7}, {257, 2}} {
		n, dim := s[0], s[1]
		t.Run(kv("N", n, "dim", dim), func(t *testing.T) {
			rng := newRand(t.Name())
			y, tt := uniform(rng, n*dim), uniform(rng, n*dim)
			wantLoss := make([]float64, n)
			absLoss := make([]float64, n)
			wantDy := make([]float64, n*dim)
			for r := range n {
				for c := range dim {
					i := r*dim + c
					e := float64(tt[i]) - float64(y[i])
					wantLoss[r] += 0.5 * e * e
					wantDy[i] = (float64(y[i]) - float64(tt[i])) / float64(n)
				}
				absLoss[r] = wantLoss[r]
			}
			// Cross-check the hand-written reference with cpuref's mean.
			mean, err := cpuref.MSE(n, dim, to64(y), to64(tt), nil)
			if err != nil {
				t.Fatal(err)
			}
			var sum float64
			for _, l := range wantLoss {
				sum += l
			}
			if math.Abs(sum/float64(n)-mean) > 1e-12*math.Max(1, mean) {
				t.Fatalf("test reference: mean loss %g, cpuref %g", sum/float64(n), mean)
			}
			h := newHarness(t, d)
			loss, dy := h.out("lossRows", n), h.out("dy", n*dim)
			if err := d.MSE(n, dim, h.in("y", y), h.in("t", tt), loss, dy); err != nil {
				t.Fatal(err)
			}
			// loss: 3·dim roundings (difference, square, sum); dy: a
			// difference then a division or a multiply by 1/N (3 roundings).
			checkClose(t, "lossRows", h.read(loss), wantLoss, sumBound(3*dim+1, absLoss))
			dt := make([]float64, n*dim)
			for i, w := range wantDy {
				dt[i] = 4 * u * math.Abs(w)
			}
			checkClose(t, "dy", h.read(dy), wantDy, dt)
			h.check()
		})
	}
}

func testReduceSum(t *testing.T, d *Device) {
	for _, n := range []int{1, 7, 255, 256, 257, 1000, 4097} {
		for _, kind := range inputKinds {
			t.Run(kv("inputs", kind, "n", n), func(t *testing.T) {
				a := convInputs(kind, t.Name(), n)[0]
				var sum, abs float64
				for _, v := range a {
					sum += float64(v)
					abs += math.Abs(float64(v))
				}
				scale := float32(1) / float32(n)
				h := newHarness(t, d)
				out := h.out("out", 1)
				if err := d.ReduceSum(h.in("a", a), out, scale); err != nil {
					t.Fatal(err)
				}
				if kind == "int" {
					// The integer sum is exact; the product of two 24-bit
					// mantissas is exact in float64, so one rounding to
					// float32 gives what the kernel's final multiply gives.
					checkExact32(t, "out", h.read(out), []float32{float32(float64(scale) * sum)})
				} else {
					checkClose(t, "out", h.read(out), []float64{float64(scale) * sum},
						[]float64{float64(n+1) * u * abs * float64(scale)})
				}
				h.check()
			})
		}
	}
}

func testCountCorrect(t *testing.T, d *Device) {
	for _, s := range [][2]int{{1, 1}, {1, 3}, {7, 10}, {257, 4}, {1000, 2}} {
		n, classes := s[0], s[1]
		t.Run(kv("N", n, "classes", classes), func(t *testing.T) {
			rng := newRand(t.Name())
			// Integer logits in [0, 3]: many ties, which checks "first
			// largest".
			logits := smallInts(rng, n*classes, 0, 3)
			labels := make([]int32, n)
			for i := range labels {
				labels[i] = int32(rng.IntN(classes))
			}
			const start = 5
			want := start
			for r := range n {
				best := 0
				for c := 1; c < classes; c++ {
					if logits[r*classes+c] > logits[r*classes+best] {
						best = c
					}
				}
				if int32(best) == labels[r] {
					want++
				}
			}
			h := newHarness(t, d)
			acc := h.inout("acc", []float32{start})
			if err := d.CountCorrect(n, classes, h.in("logits", logits), h.inI32("labels", labels), acc); err != nil {
				t.Fatal(err)
			}
			// An integer count: exact.
			checkExact32(t, "acc", h.read(acc), []float32{float32(want)})
			h.check()
		})
	}
}

func testAccumulate(t *testing.T, d *Device) {
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			rng := newRand(t.Name())
			dst, src := uniform(rng, n), uniform(rng, n)
			want := make([]float32, n)
			for i := range want {
				want[i] = dst[i] + src[i] // one IEEE addition on both sides: exact match
			}
			h := newHarness(t, d)
			b := h.inout("dst", dst)
			if err := d.Accumulate(b, h.in("src", src)); err != nil {
				t.Fatal(err)
			}
			checkExact32(t, "dst", h.read(b), want)
			h.check()
		})
	}
}

func testSGD(t *testing.T, d *Device) {
	type hyper struct{ lr, momentum, wd float32 }
	for _, n := range elemSizes {
		for _, kind := range inputKinds {
			t.Run(kv("inputs", kind, "n", n), func(t *testing.T) {
				rng := newRand(t.Name())
				var p, g, v []float32
				var hp hyper
				if kind == "int" {
					// Integers and power-of-two hyperparameters: every
					// operation exact, so fused or not the bits agree.
					p, g, v = smallInts(rng, n, -8, 8), smallInts(rng, n, -8, 8), smallInts(rng, n, -8, 8)
					hp = hyper{0.125, 0.5, 0.25}
				} else {
					p, g, v = uniform(rng, n), uniform(rng, n), uniform(rng, n)
					hp = hyper{0.01, 0.9, 5e-4}
				}
				wantP, wantV := append([]float32(nil), p...), append([]float32(nil), v...)
				if err := cpuref.SGDStep(wantP, g, wantV, hp.lr, hp.momentum, hp.wd); err != nil {
					t.Fatal(err)
				}
				// float64 reference for the real case.
				p64, v64 := to64(p), to64(v)
				if err := cpuref.SGDStep(p64, to64(g), v64, float64(hp.lr), float64(hp.momentum), float64(hp.wd)); err != nil {
					t.Fatal(err)
				}
				h := newHarness(t, d)
				bp, bv := h.inout("p", p), h.inout("v", v)
				if err := d.SGDMomentum(bp, h.in("g", g), bv, hp.lr, hp.momentum, hp.wd); err != nil {
					t.Fatal(err)
				}
				if kind == "int" {
					checkExact32(t, "p", h.read(bp), wantP)
					checkExact32(t, "v", h.read(bv), wantV)
				} else {
					// v: 4 roundings on terms ≤ |μv| + |g| + |wd·p| ≤ 2.01;
					// p: 2 more on |p| + lr·|v|.
					vt, pt := make([]float64, n), make([]float64, n)
					for i := range vt {
						vt[i] = 5 * u * 2.01
						pt[i] = 4*u*(math.Abs(float64(p[i]))+0.03) + float64(hp.lr)*vt[i]
					}
					checkClose(t, "v", h.read(bv), v64, vt)
					checkClose(t, "p", h.read(bp), p64, pt)
				}
				h.check()
			})
		}
	}
}

func testGather(t *testing.T, d *Device) {
	for _, s := range [][3]int{{1, 1, 1}, {10, 7, 5}, {100, 3, 33}, {5, 300, 9}, {3, 1, 257}} {
		srcRows, rowLen, rows := s[0], s[1], s[2]
		for _, dt := range []DType{Float32, Int32} {
			t.Run(kv("type", dt, "srcRows", srcRows, "rowLen", rowLen, "rows", rows), func(t *testing.T) {
				rng := newRand(t.Name())
				idx := make([]int32, rows)
				for i := range idx {
					idx[i] = int32(rng.IntN(srcRows)) // repeats and any order
				}
				idx[0] = int32(srcRows - 1)
				h := newHarness(t, d)
				bi := h.inI32("idx", idx)
				if dt == Float32 {
					src := uniform(rng, srcRows*rowLen)
					want := make([]float32, rows*rowLen)
					for r, i := range idx {
						copy(want[r*rowLen:(r+1)*rowLen], src[int(i)*rowLen:])
					}
					dst := h.out("dst", rows*rowLen)
					if err := d.GatherRows(rowLen, h.in("src", src), bi, dst); err != nil {
						t.Fatal(err)
					}
					checkExact32(t, "dst", h.read(dst), want) // copies: exact
				} else {
					src := make([]int32, srcRows*rowLen)
					for i := range src {
						src[i] = int32(rng.Uint32())
					}
					want := make([]int32, rows*rowLen)
					for r, i := range idx {
						copy(want[r*rowLen:(r+1)*rowLen], src[int(i)*rowLen:])
					}
					dst := h.outI32("dst", rows*rowLen)
					if err := d.GatherRows(rowLen, h.inI32("src", src), bi, dst); err != nil {
						t.Fatal(err)
					}
					checkExactI32(t, "dst", h.readI32(dst), want)
				}
				h.check()
			})
		}
	}
}

func testFill(t *testing.T, d *Device) {
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			h := newHarness(t, d)
			b := h.out("p", n)
			if err := d.Fill(b, -2.5); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, n)
			for i := range want {
				want[i] = -2.5
			}
			checkExact32(t, "p", h.read(b), want)
			h.check()
		})
	}
}

// bitCase is a launch on real-valued inputs whose output bits must be the
// same on every run and on every device (the simulator and a GPU run the
// same PTX, and the kernels use no atomics and only correctly rounded
// operations). Shapes have more terms than threads per block, so the
// strided partial sums and the tree of the block reductions both matter.
type bitCase struct {
	name string
	lens []int // lengths of the uniform real inputs
	run  func(d *Device, h *harness, in [][]float32) (outs []*Buffer, err error)
}

func bitCases() []bitCase {
	g := cg(3, 2, 19, 17, 3, 3, 3, 1, 1, 1, 1) // N·P·Q = 969 terms per weight
	const n, classes = 300, 10
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(i*7) % classes
	}
	return []bitCase{
		{"conv2d_fwd_v1_direct", []int{g.XLen(), g.WLen(), g.K}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			y := h.out("y", g.YLen())
			return []*Buffer{y}, d.Conv2DForward(g, h.in("x", in[0]), h.in("w", in[1]), h.in("b", in[2]), y)
		}},
		{"conv2d_bwd_data_v1_direct", []int{g.YLen(), g.WLen()}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			dx := h.out("dx", g.XLen())
			return []*Buffer{dx}, d.Conv2DBackwardData(g, h.in("dy", in[0]), h.in("w", in[1]), dx)
		}},
		{"conv2d_bwd_filter_v1_direct", []int{g.XLen(), g.YLen()}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			dw := h.out("dw", g.WLen())
			return []*Buffer{dw}, d.Conv2DBackwardFilter(g, h.in("x", in[0]), h.in("dy", in[1]), dw)
		}},
		{"conv2d_bwd_bias_v1", []int{g.YLen()}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			db := h.out("db", g.K)
			return []*Buffer{db}, d.Conv2DBackwardBias(g, h.in("dy", in[0]), db)
		}},
		{"dense_fwd_v1", []int{n * 33, 10 * 33, 10}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			y := h.out("y", n*10)
			return []*Buffer{y}, d.DenseForward(n, 33, 10, h.in("x", in[0]), h.in("w", in[1]), h.in("b", in[2]), y)
		}},
		{"dense_bwd_weight_v1", []int{600 * 5, 600 * 4}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			dw := h.out("dw", 4*5)
			return []*Buffer{dw}, d.DenseBackwardWeight(600, 5, 4, h.in("x", in[0]), h.in("dy", in[1]), dw)
		}},
		{"reduce_cols_v1", []int{700 * 3}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			out := h.out("out", 3)
			return []*Buffer{out}, d.ReduceCols(700, 3, h.in("a", in[0]), out)
		}},
		{"reduce_sum_v1", []int{5000}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			out := h.out("out", 1)
			return []*Buffer{out}, d.ReduceSum(h.in("a", in[0]), out, 1.0/5000)
		}},
		{"softmax_ce_v1", []int{n * classes}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			loss, dl := h.out("lossRows", n), h.out("dlogits", n*classes)
			return []*Buffer{loss, dl}, d.SoftmaxCrossEntropy(n, classes, h.in("logits", in[0]), h.inI32("labels", labels), loss, dl)
		}},
		{"mse_v1", []int{n * 3, n * 3}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			loss, dy := h.out("lossRows", n), h.out("dy", n*3)
			return []*Buffer{loss, dy}, d.MSE(n, 3, h.in("y", in[0]), h.in("t", in[1]), loss, dy)
		}},
		{"sgd_momentum_v1", []int{1000, 1000, 1000}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
			p, v := h.inout("p", in[0]), h.inout("v", in[2])
			return []*Buffer{p, v}, d.SGDMomentum(p, h.in("g", in[1]), v, 0.01, 0.9, 5e-4)
		}},
	}
}

// runBits runs c on d and returns the bits of its outputs.
func runBits(t *testing.T, d *Device, c bitCase) [][]uint32 {
	t.Helper()
	in := convInputs("real", c.name, c.lens...)
	h := newHarness(t, d)
	outs, err := c.run(d, h, in)
	if err != nil {
		t.Fatal(err)
	}
	bits := make([][]uint32, len(outs))
	for i, o := range outs {
		for _, v := range h.read(o) {
			bits[i] = append(bits[i], math.Float32bits(v))
		}
	}
	h.check()
	return bits
}

// sameBits fails the test at the first output element whose bits differ.
func sameBits(t *testing.T, what string, got, want [][]uint32) {
	t.Helper()
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("%s: output %d element %d = %#08x (%g), want %#08x (%g)", what, i, j,
					got[i][j], math.Float32frombits(got[i][j]), want[i][j], math.Float32frombits(want[i][j]))
			}
		}
	}
}

// testDeterminism runs each bitCase twice into fresh poisoned outputs: the
// bits must be identical.
func testDeterminism(t *testing.T, d *Device) {
	cases := bitCases()
	// Every implicit-GEMM bwd-filter with its split-K (N·P·Q = 4·16·16 =
	// 1024: 128 k-tiles in 4 splits) and the other implicit-GEMM passes.
	g := cg(4, 3, 16, 16, 20, 3, 3, 1, 1, 1, 1)
	g2 := cg(2, 20, 15, 16, 18, 3, 3, 2, 2, 1, 1) // stride 2: 4 phases
	if s, _ := wgradSplits(g); s < 2 {
		t.Fatalf("wgradSplits(%v) = %d, want a split", g, s)
	}
	for _, a := range d.ConvAlgos() {
		if a == ConvDirect {
			continue // in bitCases
		}
		if a == ConvIGemmBF16 { // forward only
			cases = append(cases, bitCase{a.KernelName(ConvFwd), []int{g.XLen(), g.WLen(), g.K}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
				y := h.out("y", g.YLen())
				return []*Buffer{y}, d.runConv(a, ConvFwd, g, h.in("x", in[0]), h.in("w", in[1]), h.in("b", in[2]), y, false)
			}})
			continue
		}
		cases = append(cases,
			bitCase{a.KernelName(ConvBwdFilter), []int{g.XLen(), g.YLen()}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
				dw := h.out("dw", g.WLen())
				return []*Buffer{dw}, d.runConv(a, ConvBwdFilter, g, h.in("x", in[0]), h.in("dy", in[1]), nil, dw, false)
			}},
			bitCase{a.KernelName(ConvFwd), []int{g.XLen(), g.WLen(), g.K}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
				y := h.out("y", g.YLen())
				return []*Buffer{y}, d.runConv(a, ConvFwd, g, h.in("x", in[0]), h.in("w", in[1]), h.in("b", in[2]), y, false)
			}},
			bitCase{a.KernelName(ConvBwdData), []int{g.YLen(), g.WLen()}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
				dx := h.out("dx", g.XLen())
				return []*Buffer{dx}, d.runConv(a, ConvBwdData, g, h.in("dy", in[0]), h.in("w", in[1]), nil, dx, false)
			}},
			bitCase{kernelTable[convVariantFor(a, ConvBwdData, false, true)].name, []int{g2.YLen(), g2.WLen()}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
				dx := h.out("dx", g2.XLen())
				return []*Buffer{dx}, d.runDgrad(convVariantFor(a, ConvBwdData, false, true), g2, h.in("dy", in[0]), h.in("w", in[1]), dx)
			}})
	}
	for _, c := range cases {
		t.Run("kernel="+c.name, func(t *testing.T) {
			first := runBits(t, d, c)
			sameBits(t, "run 2 vs run 1", runBits(t, d, c), first)
		})
	}
}

// testLaunchValidation checks that bad sizes are refused before any launch,
// with an error wrapping geom.ErrGeometry that names the kernel and the
// shape, and that the output is left untouched.
func testLaunchValidation(t *testing.T, d *Device) {
	g := cg(2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1)
	h := newHarness(t, d)
	x, w, b := h.in("x", make([]float32, g.XLen())), h.in("w", make([]float32, g.WLen())), h.in("b", make([]float32, g.K))
	y := h.out("y", g.YLen())
	short := h.in("short", make([]float32, g.XLen()-1))
	idx := h.inI32("idx", make([]int32, 3))
	cases := []struct {
		name, kernel string
		err          error
	}{
		{"x too short", "conv2d_fwd_v1_direct", d.Conv2DForward(g, short, w, b, y)},
		{"zero stride", "conv2d_fwd_v1_direct", d.Conv2DForward(cg(2, 3, 7, 7, 4, 3, 3, 0, 1, 1, 1), x, w, b, y)},
		{"empty output", "conv2d_bwd_data_v1_direct", d.Conv2DBackwardData(cg(2, 3, 2, 2, 4, 3, 3, 1, 1, 0, 0), y, w, x)},
		{"int32 where float32", "relu_fwd_v1", d.ReLUForward(x, h.outI32("yi", g.XLen()))},
		{"lengths differ", "accumulate_v1", d.Accumulate(x, short)},
		{"dense zero width", "dense_fwd_v1", d.DenseForward(2, 0, 3, x, w, b, y)},
		{"gather partial rows", "gather_rows_f32_v1", d.GatherRows(4, short, idx, y)},
		{"labels float32", "softmax_ce_v1", d.SoftmaxCrossEntropy(1, 4, b, b, h.out("l", 1), b)},
		{"nil output", "fill_f32_v1", d.Fill(nil, 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.err == nil {
				t.Fatalf("no error")
			}
			want := fmt.Sprintf("gpu: launch %s (", c.kernel)
			if msg := c.err.Error(); len(msg) < len(want) || msg[:len(want)] != want {
				t.Errorf("error %q does not start with %q", msg, want)
			}
			if !errors.Is(c.err, geom.ErrGeometry) {
				t.Errorf("error %q does not wrap geom.ErrGeometry", c.err)
			}
		})
	}
	for i, v := range h.read(y) {
		if math.Float32bits(v) != poisonBits {
			t.Fatalf("y[%d] = %g after refused launches, want the poison untouched", i, v)
		}
	}
	h.check()
}

// testLarge runs, on a real GPU only (too slow for the simulator), shapes of
// training size and a 1-D grid wider than 65535 blocks: the MNIST network's
// conv layers at batch 64 with exact integer inputs, ReLU over 2²⁴ + 3
// elements (65537 blocks) and a single-block sum over 2²⁰ + 7 elements.
func testLarge(t *testing.T, d *Device) {
	for _, g := range []geom.ConvGeom{cg(64, 1, 28, 28, 8, 5, 5, 1, 1, 0, 0), cg(64, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0)} {
		t.Run(g.String(), func(t *testing.T) {
			in := convInputs("int", g.String(), g.XLen(), g.WLen(), g.K, g.YLen())
			x, w, b, dy := in[0], in[1], in[2], in[3]
			h := newHarness(t, d)
			bx, bw, bdy := h.in("x", x), h.in("w", w), h.in("dy", dy)
			y, dx, dw := h.out("y", g.YLen()), h.out("dx", g.XLen()), h.out("dw", g.WLen())
			if err := d.Conv2DForward(g, bx, bw, h.in("b", b), y); err != nil {
				t.Fatal(err)
			}
			if err := d.Conv2DBackwardData(g, bdy, bw, dx); err != nil {
				t.Fatal(err)
			}
			if err := d.Conv2DBackwardFilter(g, bx, bdy, dw); err != nil {
				t.Fatal(err)
			}
			wy, wdx, wdw := make([]float32, g.YLen()), make([]float32, g.XLen()), make([]float32, g.WLen())
			if err := cpuref.Conv2DForwardDirect(g, x, w, b, wy); err != nil {
				t.Fatal(err)
			}
			if err := cpuref.Conv2DBackwardDataDirect(g, dy, w, wdx); err != nil {
				t.Fatal(err)
			}
			if err := cpuref.Conv2DBackwardFilterDirect(g, x, dy, wdw); err != nil {
				t.Fatal(err)
			}
			// Integer inputs: exact (the largest partial sum, 64·8·8·9·… ≪ 2²⁴).
			checkExact32(t, "y", h.read(y), wy)
			checkExact32(t, "dx", h.read(dx), wdx)
			checkExact32(t, "dw", h.read(dw), wdw)
			h.check()
		})
	}
	t.Run("kernel=relu_fwd_v1/n=16777219", func(t *testing.T) {
		const n = 1<<24 + 3
		x := smallInts(newRand(t.Name()), n, -2, 2)
		want := make([]float32, n)
		if err := cpuref.ReLUForward(x, want); err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, d)
		y := h.out("y", n)
		if err := d.ReLUForward(h.in("x", x), y); err != nil {
			t.Fatal(err)
		}
		checkExact32(t, "y", h.read(y), want)
		h.check()
	})
	t.Run("kernel=reduce_sum_v1/n=1048583", func(t *testing.T) {
		const n = 1<<20 + 7
		a := smallInts(newRand(t.Name()), n, -3, 3)
		var sum float64
		for _, v := range a {
			sum += float64(v)
		}
		h := newHarness(t, d)
		out := h.out("out", 1)
		if err := d.ReduceSum(h.in("a", a), out, 1); err != nil {
			t.Fatal(err)
		}
		// Integer partial sums stay below 2²⁴ in magnitude: exact.
		checkExact32(t, "out", h.read(out), []float32{float32(sum)})
		h.check()
	})
}
