package gpu

import (
	"math"
	"math/rand"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// dispatchShapes are the shapes of TestDispatchShapes: the default MNIST
// network at batch 64 and the stages of a CIFAR ResNet (16, 32, 64
// channels at 32×32, 16×16, 8×8; the stem and the two stride-2 transitions)
// at batch 128, and two ResNet-50 stages on which the tile width turns on
// the SM fill.
var dispatchShapes = []struct {
	name string
	g    geom.ConvGeom
}{
	{"mnist-conv1-b64", cg(64, 1, 28, 28, 8, 5, 5, 1, 1, 0, 0)},
	{"mnist-conv2-b64", cg(64, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0)},
	{"resnet-stem-b128", cg(128, 3, 32, 32, 16, 3, 3, 1, 1, 1, 1)},
	{"resnet-16x32-b128", cg(128, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1)},
	{"resnet-32x16-b128", cg(128, 32, 16, 16, 32, 3, 3, 1, 1, 1, 1)},
	{"resnet-64x8-b128", cg(128, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1)},
	{"resnet-down16to32-b128", cg(128, 16, 32, 32, 32, 3, 3, 2, 2, 1, 1)},
	{"resnet-down32to64-b128", cg(128, 32, 16, 16, 64, 3, 3, 2, 2, 1, 1)},
	{"r50-stage4-b8", cg(8, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1)},
	{"r50-stage3-b128", cg(128, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1)},
}

// TestDispatchShapes checks the dispatcher's choice (ConvKernelFor) on
// dispatchShapes against choices worked out by hand from the cost model
// (cost.go), at FP32 and TF32, and on the MNIST shapes the modelled costs
// of the choice and of the runner-up.
func TestDispatchShapes(t *testing.T) {
	d := openSim(t)
	t.Cleanup(func() { d.SetPrecision(FP32) })
	const (
		v1f   = "conv2d_fwd_v1_direct"
		v1d   = "conv2d_bwd_data_v1_direct"
		v1w   = "conv2d_bwd_filter_v1_direct"
		v2f   = "conv2d_fwd_v2_igemm"
		v2d   = "conv2d_bwd_data_v2_igemm"
		v2w   = "conv2d_bwd_filter_v2_igemm"
		v4d   = "conv2d_bwd_data_v4_igemm_strided"
		v6f   = "conv2d_fwd_v6_igemm_wide"
		v6d   = "conv2d_bwd_data_v6_igemm_wide"
		v6w   = "conv2d_bwd_filter_v6_igemm_wide"
		v3f   = "conv2d_fwd_v3_igemm_tf32"
		v3w   = "conv2d_bwd_filter_v3_igemm_tf32"
		v5d   = "conv2d_bwd_data_v5_igemm_strided_tf32"
		v8f   = "conv2d_fwd_v8_igemm_tf32"
		v9d   = "conv2d_bwd_data_v9_igemm_tf32"
		v3d   = "conv2d_bwd_data_v3_igemm_tf32"
		v10w  = "conv2d_bwd_filter_v10_igemm_tf32"
		nocst = 0.0
	)
	cases := []struct {
		shape string
		prec  Precision
		want  [3]string // fwd, bwd-data, bwd-filter
		// cost and the runner-up's (kernel, cost) per pass, worked by hand;
		// zero: not stated.
		cost   [3]float64
		second [3]string
		cost2  [3]float64
	}{
		// MNIST conv1, batch 64 (P = Q = 24).
		// fwd: direct 1152 blocks, 8 an SM: 2 waves of 8 blocks of 8 warps·25 taps·22
		// = 4400 slots: 70400, + 14336 for the ReLU launch (Conv2DForwardReLU's,
		// charged to both forward entry points): 84736; v2 288 blocks of 4 k-tiles, 2 an SM: 2 waves of 2
		// blocks of 65536·4·1.57/32 = 12861.44: 51445.76; v6 3 waves of one
		// block of 131072·4·1.32/32: 64880.64.
		// bwd-data: direct 196 blocks (2 on the fullest SM) of 8·200·29 = 46400:
		// 92800; v2 392 blocks (C = 1 of 64 columns) of 25 k-tiles: 2·2·95744.
		// bwd-filter: direct 200 blocks (2 an SM) of 8·(144·38 + 82) = 44432:
		// 88864; v2 128 splits of 36 k-tiles on 128 blocks: 65536·36·1.75/32 =
		// 129024, plus the reduce (4 + ⌈128·200/2¹⁸⌉)·3584 = 17920: 146944.
		{"mnist-conv1-b64", FP32, [3]string{v2f, v1d, v1w},
			[3]float64{51445.76, 92800, 88864}, [3]string{v6f, v2d, v2w}, [3]float64{64880.64, 382976, 146944}},
		// MNIST conv2, batch 64 (P = Q = 8).
		// fwd: direct 256 blocks (2 an SM) of 8·200·22 = 35200: 70400, + 14336
		// for the ReLU launch: 84736; v2 32 blocks (1 an SM) of 25 k-tiles:
		// 65536·25·1.57/32 = 80384. v2 fills 32 of 132 SMs and still wins,
		// by the launch the direct kernel's ReLU needs.
		// bwd-data: direct 288 blocks (3 an SM) of 8·400·29 = 92800: 278400;
		// v2 72 blocks of 50 k-tiles: 65536·50·1.87/32 = 191488.
		// bwd-filter: direct 3200 blocks: 4 waves of 8 of 8·(16·38 + 82) = 5520:
		// 176640; v2 64 splits of 8 k-tiles on 128 blocks: 28672 + 5·3584 = 46592.
		{"mnist-conv2-b64", FP32, [3]string{v2f, v2d, v2w},
			[3]float64{80384, 191488, 46592}, [3]string{v1f, v1d, v1w}, [3]float64{84736, 278400, 176640}},
		// TF32: the packed kernels pay two packing launches (2·14336).
		// conv1: v3 keeps the forward (C = 1: v8 pads it to 4; 288 blocks,
		// 2 waves of 2 of 4·64·14 = 3584: 14336, against 55552); bwd-data v9:
		// 392 blocks, 2 waves of 2 of 13·256·4.48 = 14909.44, + 28672 =
		// 88309.76 against direct's 92800; bwd-filter v10 65162 against v3's
		// 76396 and direct's 88864.
		{"mnist-conv1-b64", TF32, [3]string{v3f, v9d, v10w},
			[3]float64{14336, 88309.76, 0}, [3]string{v8f, v1d, v3w}, [3]float64{55552, 92800, 0}},
		// conv2: 32 blocks of v3 (25·64·14 = 22400) against v8's 32 of
		// 13·256·3.75 = 12480 + 28672; bwd-data v9 57344 against v3 97216;
		// bwd-filter v3 30915 against v10 50719.
		{"mnist-conv2-b64", TF32, [3]string{v3f, v9d, v3w},
			[3]float64{22400, 57344, 0}, [3]string{v8f, v3d, v10w}, [3]float64{41152, 97216, 0}},
		// CIFAR ResNet stages: N ≤ 64 columns, so the 128×128 tiles would
		// pad half or more; the 128×64 tiles win everywhere, the direct
		// kernels nowhere but the stem's bwd-data (C = 3: 1536 blocks of
		// 8·144·29 slots, 2 waves of 8, against v2's 1024 blocks of 18
		// k-tiles, 4 waves of 2).
		{"resnet-stem-b128", FP32, [3]string{v2f, v1d, v2w}, [3]float64{}, [3]string{}, [3]float64{}},
		{"resnet-16x32-b128", FP32, [3]string{v2f, v2d, v2w}, [3]float64{}, [3]string{}, [3]float64{}},
		{"resnet-32x16-b128", FP32, [3]string{v2f, v2d, v2w}, [3]float64{}, [3]string{}, [3]float64{}},
		{"resnet-64x8-b128", FP32, [3]string{v2f, v2d, v2w}, [3]float64{}, [3]string{}, [3]float64{}},
		{"resnet-down16to32-b128", FP32, [3]string{v2f, v4d, v2w}, [3]float64{}, [3]string{}, [3]float64{}},
		{"resnet-down32to64-b128", FP32, [3]string{v2f, v4d, v2w}, [3]float64{}, [3]string{}, [3]float64{}},
		// TF32 on the ResNet: the packed kernels win where their main loops
		// save more than the two packing launches; the stem's forward (C = 3
		// padded to 4) and the stride-2 transition to 64 channels (v5's
		// phases skip the zero taps v9 multiplies; 64 blocks) keep v3/v5;
		// that transition's bwd-filter goes to v10 (77435 against v3's
		// 78072) since v10's main loop issues 3.03 other instructions per
		// HMMA, not 4.50.
		{"resnet-stem-b128", TF32, [3]string{v3f, v9d, v10w}, [3]float64{}, [3]string{v8f, v3d, v3w}, [3]float64{}},
		{"resnet-32x16-b128", TF32, [3]string{v8f, v9d, v10w}, [3]float64{}, [3]string{v3f, v3d, v3w}, [3]float64{}},
		{"resnet-down32to64-b128", TF32, [3]string{v3f, v5d, v10w}, [3]float64{}, [3]string{v8f, v9d, v3w}, [3]float64{}},
		// ResNet-50 stage 4 at batch 8, fwd: M = 392 (4 row tiles), K = 512:
		// v2 32 blocks, v6 16, one wave each; a v6 block costs 2·1.32/1.57 =
		// 1.68 v2 blocks, so the narrower tiles win (useWide took v6).
		// bwd-filter: M = C·R·S = 4608 (36 row tiles), 49 k-tiles in
		// wgradSplits' 2 splits of 25: v6 288 blocks, 3 waves of one block of
		// 131072·25·1.48/32 = 151552, plus the reduce (4 + ⌈2·512·4608/2¹⁸⌉)·3584
		// = 78848: 533504; v2 576 blocks, 3 waves of 2 of 89600, plus the
		// reduce: 616448. Many blocks: the wide tiles win.
		{"r50-stage4-b8", FP32, [3]string{v2f, v2d, v6w}, [3]float64{0, 0, 533504}, [3]string{v6f, v6d, v2w}, [3]float64{0, 0, 616448}},
		// ResNet-50 stage 3 at batch 128, fwd: M = 25088 (196 row tiles): v2
		// 784 blocks, 3 waves of 2 an SM = 6 v2 blocks; v6 392, 3 waves of
		// one = 5.04 v2 blocks: the wide tiles win once the waves are full.
		{"r50-stage3-b128", FP32, [3]string{v6f, v6d, v6w}, [3]float64{}, [3]string{v2f, v2d, v2w}, [3]float64{}},
	}
	shapes := map[string]geom.ConvGeom{}
	for _, s := range dispatchShapes {
		shapes[s.name] = s.g
	}
	for _, c := range cases {
		g, ok := shapes[c.shape]
		if !ok {
			t.Fatalf("no shape %q", c.shape)
		}
		if err := d.SetPrecision(c.prec); err != nil {
			t.Fatal(err)
		}
		for p := ConvPass(0); p < numConvPasses; p++ {
			got := d.ConvKernelFor(p, g)
			if got != c.want[p] {
				t.Errorf("%s %v %v: ConvKernelFor = %s (cost %.0f), want %s (cost %.0f)", c.shape, c.prec, p,
					got, convCost(kernelByName(t, got), g).cost(nominalSMs), c.want[p], convCost(kernelByName(t, c.want[p]), g).cost(nominalSMs))
				continue
			}
			if c.cost[p] != nocst {
				if m := convCost(kernelByName(t, got), g).cost(nominalSMs); math.Abs(m-c.cost[p]) > 1e-6*c.cost[p] {
					t.Errorf("%s %v %v: modelled cost of %s = %.2f, worked by hand %.2f", c.shape, c.prec, p, got, m, c.cost[p])
				}
			}
			if c.second[p] != "" {
				m2 := convCost(kernelByName(t, c.second[p]), g).cost(nominalSMs)
				if c.cost2[p] != nocst && math.Abs(m2-c.cost2[p]) > 1e-6*c.cost2[p] {
					t.Errorf("%s %v %v: modelled cost of %s = %.2f, worked by hand %.2f", c.shape, c.prec, p, c.second[p], m2, c.cost2[p])
				}
				if m := convCost(kernelByName(t, got), g).cost(nominalSMs); m >= m2 {
					t.Errorf("%s %v %v: %s costs %.0f, no less than %s's %.0f", c.shape, c.prec, p, got, m, c.second[p], m2)
				}
			}
		}
	}
	// The tile width follows the SM count (fillSMs on a GPU): on 16 SMs
	// ResNet-50 stage 4's forward at batch 8 fills the SMs with v6's 16
	// blocks (one wave of one block, 1.68 v2 blocks) as with v2's 32
	// (one wave of two, 2 v2 blocks), and the wide tiles win.
	g := shapes["r50-stage4-b8"]
	if id, _ := d.bestKernel(ConvIGemm, ConvFwd, g, 16); id != kConvFwdWide {
		t.Errorf("bestKernel(igemm, fwd, %v, 16 SMs) = %s, want %s", g, kernelName(id), kernelName(kConvFwdWide))
	}
}

// TestDispatchLeastCost is the property of the rule: at every precision,
// on the shapes of TestDispatchShapes and on random shapes (fixed seed),
// the kernel the dispatcher runs has a modelled cost no greater than that
// of any other kernel it could run: the direct kernel and every eligible
// kernel of the precision's algorithm (BF16's, or TF32's where BF16 has
// none).
func TestDispatchLeastCost(t *testing.T) {
	d := openSim(t)
	t.Cleanup(func() { d.SetPrecision(FP32) })
	var shapes []geom.ConvGeom
	for _, s := range dispatchShapes {
		shapes = append(shapes, s.g)
	}
	rng := rand.New(rand.NewSource(16))
	for len(shapes) < 400 {
		r := 1 + rng.Intn(5)
		s := 1 + rng.Intn(5)
		sh := 1 + rng.Intn(2)
		g := cg(1+rng.Intn(128), 1+rng.Intn(256), r+rng.Intn(40), s+rng.Intn(40), 1+rng.Intn(256), r, s, sh, sh, rng.Intn(r), rng.Intn(s))
		if g.Validate() == nil {
			shapes = append(shapes, g)
		}
	}
	algoOf := map[string]ConvAlgo{}
	for _, v := range convVariants {
		algoOf[v.name] = v.algo
	}
	for _, prec := range []Precision{FP32, TF32, BF16} {
		if err := d.SetPrecision(prec); err != nil {
			t.Fatal(err)
		}
		for _, g := range shapes {
			for p := ConvPass(0); p < numConvPasses; p++ {
				name := d.ConvKernelFor(p, g)
				chosen := kernelByName(t, name)
				if a := d.ConvAlgoFor(p, g); algoOf[name] != a {
					t.Fatalf("%v %v %v: ConvKernelFor = %s, not of ConvAlgoFor's %v", prec, p, g, name, a)
				}
				fam := map[Precision]ConvAlgo{FP32: ConvIGemm, TF32: ConvIGemmTF32, BF16: ConvIGemmBF16}[prec]
				if prec == BF16 && !d.eligible(pipeKernel(ConvIGemmBF16, p), p, g) {
					fam = ConvIGemmTF32
				}
				if !d.eligible(chosen, p, g) {
					t.Fatalf("%v %v %v: %s runs but is not eligible", prec, p, g, name)
				}
				cost := func(id kernelID) float64 { return convCost(id, g).cost(nominalSMs) }
				c := cost(chosen)
				for _, v := range convVariants {
					if (v.algo != ConvDirect && v.algo != fam) || !d.eligible(v.id, p, g) {
						continue
					}
					if o := cost(v.id); o < c {
						t.Errorf("%v %v %v: %s costs %.0f, %s only %.0f", prec, p, g, name, c, v.name, o)
					}
				}
			}
		}
	}
}
