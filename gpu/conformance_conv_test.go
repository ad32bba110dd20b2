package gpu

import (
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

// The convolution half of the conformance suite (runConformance): the
// swept shapes, every conv variant against cpuref, the bias gradient and
// the golden vector.

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
// too, so every algorithm must match exactly.
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
			if a == ConvIGemmBF16 {
				dy, w = bf16Ref(dy), bf16Ref(w)
			}
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
			if a == ConvIGemmBF16 {
				x, dy = bf16Ref(x), bf16Ref(dy)
			}
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
