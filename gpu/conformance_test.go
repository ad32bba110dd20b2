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
				if d.fns[v.id] == nil {
					continue // above the device's compute capability (FP32's v11/v12/v13 need sm_80)
				}
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
	{"pack_crsk_flip_bf16_v1", []string{"pack_crsk_flip_bf16_v1"}, testPackFlipBF16},
	{"pack_crsk_flip_tf32_v1", []string{"pack_crsk_flip_tf32_v1"}, testPackFlipTF32},
	{"pack_transpose_bf16_v2", []string{"pack_transpose_bf16_v2"}, testPackTransposeBF16},
	{"pack_transpose_tf32_v2", []string{"pack_transpose_tf32_v2"}, testPackTransposeTF32},
	{"pack_transpose_f32_v2", []string{"pack_transpose_f32_v2"}, testPackTransposeF32},
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
	// Every implicit-GEMM variant the device runs (the packed kernels'
	// split-K too: 1024 rows in 16-row or 32-row k-tiles split).
	for _, v := range convVariants {
		if v.algo == ConvDirect || d.fns[v.id] == nil {
			continue // the direct kernels are in bitCases
		}
		switch {
		case v.pass == ConvFwd:
			cases = append(cases, bitCase{v.name, []int{g.XLen(), g.WLen(), g.K}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
				y := h.out("y", g.YLen())
				return []*Buffer{y}, d.runFwd(v.id, g, h.in("x", in[0]), h.in("w", in[1]), h.in("b", in[2]), y, false)
			}})
		case v.pass == ConvBwdData:
			gg := g
			if v.strided || packedConvs[v.id] != (packedConv{}) {
				gg = g2 // the phase-decomposed kernels; the packed ones with their stride handling
			}
			cases = append(cases, bitCase{v.name, []int{gg.YLen(), gg.WLen()}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
				dx := h.out("dx", gg.XLen())
				return []*Buffer{dx}, d.runDgrad(v.id, gg, h.in("dy", in[0]), h.in("w", in[1]), dx)
			}})
		default:
			cases = append(cases, bitCase{v.name, []int{g.XLen(), g.YLen()}, func(d *Device, h *harness, in [][]float32) ([]*Buffer, error) {
				dw := h.out("dw", g.WLen())
				return []*Buffer{dw}, d.runWgrad(v.id, g, h.in("x", in[0]), h.in("dy", in[1]), dw)
			}})
		}
	}
	if s, _ := pipeWgradSplits(g, bf16BK, packedChans(g.C, 8)); s < 2 {
		t.Fatalf("pipeWgradSplits(%v) = %d, want a split", g, s)
	}
	if s, _ := fp32PipeWgradSplits(g, tf32PipeBK, packedChans(g.C, packedF32.chanAlign)); s < 2 {
		t.Fatalf("fp32PipeWgradSplits(%v) = %d, want a split", g, s)
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
		// The dispatcher runs g's forward on the implicit GEMM (one block of
		// 4 k-tiles, 12861 modelled slots, against the direct kernel's 4752
		// and its ReLU launch, 14336); an invalid stride empties the GEMM:
		// the direct kernel.
		{"x too short", "conv2d_fwd_v2_igemm", d.Conv2DForward(g, short, w, b, y)},
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
