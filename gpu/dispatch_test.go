package gpu

import (
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// testConvDispatch checks ConvAlgoFor's rule (the least modelled cost,
// cost.go) on small shapes on both sides of it, at every precision the
// device has, and (on the simulator, whose per-kernel counters name what
// ran) that the dispatching entry points launch the chosen kernels. Each
// case lists the modelled costs (issue slots on the nominal device; every
// launch here is one wave) of the direct kernel and of the cheapest
// kernel of each implicit-GEMM family; a packed kernel (v7–v10) pays
// 2·14336 for its packing launches, the direct forward 14336 more for the
// ReLU launch of Conv2DForwardReLU (under Conv2DForward too: both run the
// same kernel). TestDispatchShapes works the model by hand on the MNIST
// and ResNet shapes.
func testConvDispatch(t *testing.T, d *Device) {
	const (
		D = ConvDirect
		I = ConvIGemm
		T = ConvIGemmTF32
		B = ConvIGemmBF16
	)
	cases := []struct {
		pass ConvPass
		g    geom.ConvGeom
		want [3]ConvAlgo // at FP32, TF32, BF16
	}{
		// direct 4 (2) blocks: 8 warps·25 taps·22 = 4400, + 14336 = 18736;
		// v2 one block of 4 k-tiles: 65536·4·1.57/32 = 12861; v3 4·64
		// HMMAs·14 = 3584; v7 6720 + 28672 = 35392.
		{ConvFwd, cg(2, 1, 12, 12, 8, 5, 5, 1, 1, 0, 0), [3]ConvAlgo{I, T, D}},
		{ConvFwd, cg(2, 1, 12, 12, 4, 5, 5, 1, 1, 0, 0), [3]ConvAlgo{I, T, D}},
		// direct 35200 + 14336 = 49536; v2 80384; v3 22400; v7 35392.
		{ConvFwd, cg(2, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0), [3]ConvAlgo{D, T, B}},
		// direct 2112 + 14336 = 16448; v2 6431; v3 1792; v7 29632.
		{ConvFwd, cg(2, 3, 5, 5, 32, 2, 2, 1, 1, 0, 0), [3]ConvAlgo{I, T, D}},
		// direct 92800; v2 191488; v9 tf32 57344; v9 bf16 43581.
		{ConvBwdData, cg(2, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0), [3]ConvAlgo{D, T, B}},
		// direct 4176; v2 11489; v3 5833; v9 32113 (both).
		{ConvBwdData, cg(2, 16, 6, 6, 2, 3, 3, 1, 1, 1, 1), [3]ConvAlgo{D, D, D}},
		// direct 2088; v2 7660; v3 3889; v9 32113 (both).
		{ConvBwdData, cg(2, 16, 6, 6, 1, 3, 3, 1, 1, 1, 1), [3]ConvAlgo{D, D, D}},
		// direct 1024 (960) blocks of 8·(38 + 82) = 960 slots, 8 an SM:
		// 7680; v2 one block of 2 k-tiles: 7168; v3 3249; v10 bf16 29839.
		{ConvBwdFilter, cg(1, 16, 4, 4, 64, 1, 1, 1, 1, 0, 0), [3]ConvAlgo{I, T, D}},
		{ConvBwdFilter, cg(1, 15, 4, 4, 64, 1, 1, 1, 1, 0, 0), [3]ConvAlgo{I, T, D}},
		{ConvBwdFilter, cg(1, 16, 3, 3, 64, 1, 1, 1, 1, 0, 0), [3]ConvAlgo{I, T, D}},
	}
	precisions := []Precision{FP32}
	if d.hasTarget(80) {
		precisions = append(precisions, TF32, BF16)
	} else {
		for _, p := range []Precision{TF32, BF16} {
			if err := d.SetPrecision(p); err == nil {
				t.Errorf("SetPrecision(%v) on %v: no error", p, d)
			}
		}
	}
	t.Cleanup(func() {
		if err := d.SetPrecision(FP32); err != nil {
			t.Errorf("SetPrecision(fp32): %v", err)
		}
	})
	for _, prec := range precisions {
		if err := d.SetPrecision(prec); err != nil {
			t.Fatal(err)
		}
		if got := d.Precision(); got != prec {
			t.Fatalf("Precision() = %v after SetPrecision(%v)", got, prec)
		}
		for _, c := range cases {
			t.Run(kv("precision", prec, "pass", c.pass)+"/"+c.g.String(), func(t *testing.T) {
				want := c.want[prec]
				if got := d.ConvAlgoFor(c.pass, c.g); got != want {
					t.Fatalf("ConvAlgoFor(%v, %v) = %v, want %v", c.pass, c.g, got, want)
				}
				if !d.IsSim() {
					return
				}
				g := c.g
				h := newHarness(t, d)
				x, w, y := h.in("x", make([]float32, g.XLen())), h.in("w", make([]float32, g.WLen())), h.in("y", make([]float32, g.YLen()))
				// ran checks that the entry point launched the algorithm's
				// kernel of least modelled cost (TestDispatchShapes checks
				// that rule) once, and that ConvKernelFor names it.
				named := d.ConvKernelFor(c.pass, g)
				ran := func(call func() error, a ConvAlgo, relu bool) {
					t.Helper()
					d.ResetKernelStats()
					if err := call(); err != nil {
						t.Fatal(err)
					}
					id, _ := d.bestKernel(a, c.pass, g, d.fillSMs())
					name := kernelTable[id].name
					if named != name {
						t.Errorf("ConvKernelFor(%v, %v) = %s, want %s", c.pass, g, named, name)
					}
					st := d.KernelStats()
					if st[name].Launches != 1 {
						t.Errorf("kernel %s launched %d times, want 1 (launched: %v)", name, st[name].Launches, st)
					}
					if want := relu && a == ConvDirect; (st["relu_fwd_v1"].Launches == 1) != want {
						t.Errorf("relu_fwd_v1 launched %d times, want %v (launched: %v)", st["relu_fwd_v1"].Launches, want, st)
					}
				}
				switch c.pass {
				case ConvFwd:
					ran(func() error { return d.Conv2DForward(g, x, w, nil, h.out("out", g.YLen())) }, want, false)
					ran(func() error { return d.Conv2DForwardReLU(g, x, w, nil, h.out("outr", g.YLen())) }, want, true)
				case ConvBwdData:
					ran(func() error { return d.Conv2DBackwardData(g, y, w, h.out("out", g.XLen())) }, want, false)
				default:
					ran(func() error { return d.Conv2DBackwardFilter(g, x, y, h.out("out", g.WLen())) }, want, false)
				}
			})
		}
	}
}

// TestSetPrecision checks the precision setting on a device without a
// compute capability ≥ 8.0 (the fake driver reports none): TF32 and BF16
// are refused and FP32 stays; unknown precisions are refused; ParsePrecision
// reads the flag values.
func TestSetPrecision(t *testing.T) {
	d, _ := openFake(t)
	if err := d.SetPrecision(TF32); err == nil {
		t.Errorf("SetPrecision(tf32) on a device below sm_80: no error")
	}
	if err := d.SetPrecision(BF16); err == nil {
		t.Errorf("SetPrecision(bf16) on a device below sm_80: no error")
	}
	if err := d.SetPrecision(Precision(7)); err == nil {
		t.Errorf("SetPrecision(7): no error")
	}
	if got := d.Precision(); got != FP32 {
		t.Errorf("Precision() = %v after refused settings, want fp32", got)
	}
	for _, c := range []struct {
		in   string
		want Precision
		ok   bool
	}{{"fp32", FP32, true}, {"TF32", TF32, true}, {"bf16", BF16, true}, {"BF16", BF16, true}, {"fp16", FP32, false}, {"", FP32, false}} {
		got, err := ParsePrecision(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParsePrecision(%q) = %v, %v; want %v, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

// testTF32Rounding checks that the TF32 kernels round their operands to
// TF32 with cvt.rna (10 explicit mantissa bits, ties away from zero), the
// BF16 kernel to bfloat16 (8 significant bits, ties to even) and the FP32
// kernels not at all: a 1×1 convolution with w = 1 maps x to round(x).
// 1 + 2⁻¹¹ is a TF32 tie (→ 1 + 2⁻¹⁰), 1 + 2⁻¹² rounds down, 1 + 3·2⁻¹²
// up; the sign is kept.
func testTF32Rounding(t *testing.T, d *Device) {
	const e11, e12, e8 = 1.0 / (1 << 11), 1.0 / (1 << 12), 1.0 / (1 << 8)
	x := []float32{1 + e11, 1 + e12, 1 + 3*e12, -(1 + e11), 3, 1 + e8, 1 + 3*e8, -(1 + 3*e8)}
	tf32 := []float32{1 + 2*e11, 1, 1 + 2*e11, -(1 + 2*e11), 3, 1 + e8, 1 + 3*e8, -(1 + 3*e8)}
	// BF16 (8 significant bits, ties to even): 1 + 2⁻⁸ is a tie between 1
	// (even) and 1 + 2⁻⁷, 1 + 3·2⁻⁸ one between 1 + 2⁻⁷ and 1 + 2⁻⁶ (even).
	bf16 := []float32{1, 1, 1, -1, 3, 1, 1 + 4*e8, -(1 + 4*e8)}
	g := cg(1, 1, 1, len(x), 1, 1, 1, 1, 1, 0, 0)
	for _, a := range d.ConvAlgos() {
		t.Run(kv("algo", a), func(t *testing.T) {
			h := newHarness(t, d)
			y := h.out("y", g.YLen())
			if err := d.runConv(a, ConvFwd, g, h.in("x", x), h.in("w", []float32{1}), nil, y, false); err != nil {
				t.Fatal(err)
			}
			want := x
			switch a {
			case ConvIGemmTF32:
				want = tf32
			case ConvIGemmBF16:
				want = bf16
			}
			checkExact32(t, "y", h.read(y), want)
			h.check()
		})
	}
}

// TestWgradSplits checks the split-K rule over many shapes: the splits
// cover the N·P·Q reduction exactly with no empty split, each gets at
// least wgradMinTiles k-tiles when there is more than one, at most
// wgradMaxSplits, and the workspace stays below 2³¹ floats.
func TestWgradSplits(t *testing.T) {
	rng := newRand("wgradSplits")
	for range 2000 {
		g := cg(1+rng.IntN(256), 1+rng.IntN(512), 1+rng.IntN(64), 1+rng.IntN(64), 1+rng.IntN(512),
			1+rng.IntN(7), 1+rng.IntN(7), 1+rng.IntN(3), 1+rng.IntN(3), rng.IntN(3), rng.IntN(3))
		if g.Validate() != nil {
			continue
		}
		tiles := ceilDiv(g.N*g.P()*g.Q(), igemmBK)
		s, tps := wgradSplits(g)
		switch {
		case s < 1 || s > wgradMaxSplits:
			t.Fatalf("wgradSplits(%v) = %d splits", g, s)
		case s*tps < tiles || (s-1)*tps >= tiles:
			t.Fatalf("wgradSplits(%v) = %d splits of %d tiles for %d tiles: not an exact cover", g, s, tps, tiles)
		case s > 1 && tps < wgradMinTiles:
			t.Fatalf("wgradSplits(%v) = %d splits of %d < %d tiles", g, s, tps, wgradMinTiles)
		case s*g.K*g.C*g.R*g.S > maxElems:
			t.Fatalf("wgradSplits(%v) = %d: workspace of 2³¹ floats or more", g, s)
		}
	}
}

// testWideSameBits checks that the 128×128-tile kernel v (a wide variant,
// v6) gives the same bits as the 128×64-tile kernel of the same algorithm,
// pass and stride handling that it replaces, on every swept shape with
// real inputs: same loads, same FMA order, same splits.
func testWideSameBits(t *testing.T, d *Device, v convVariant) {
	c := struct {
		pass        ConvPass
		plain, wide kernelID
	}{v.pass, convVariantFor(v.algo, v.pass, false, v.strided), v.id}
	if c.plain == c.wide {
		t.Fatalf("%s has no 128×64 counterpart", v.name)
	}
	for _, g := range sweptConvShapes() {
		name := kv("kernel", kernelTable[c.wide].name) + "/" + g.String()
		t.Run(g.String(), func(t *testing.T) {
			in := convInputs("real", name, g.XLen(), g.WLen(), g.K, g.YLen())
			x, w, b, dy := in[0], in[1], in[2], in[3]
			var outs [2][]uint32
			for i, id := range []kernelID{c.plain, c.wide} {
				h := newHarness(t, d)
				var out *Buffer
				var err error
				switch c.pass {
				case ConvFwd:
					out = h.out("y", g.YLen())
					err = d.runFwd(id, g, h.in("x", x), h.in("w", w), h.in("b", b), out, true)
				case ConvBwdData:
					out = h.out("dx", g.XLen())
					err = d.runDgrad(id, g, h.in("dy", dy), h.in("w", w), out)
				default:
					out = h.out("dw", g.WLen())
					err = d.runWgrad(id, g, h.in("x", x), h.in("dy", dy), out)
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range h.read(out) {
					outs[i] = append(outs[i], math.Float32bits(v))
				}
				h.check()
			}
			sameBits(t, kernelTable[c.wide].name+" vs "+kernelTable[c.plain].name, outs[1:], outs[:1])
		})
	}
}

// TestPipeWins checks the TF32 dispatcher's choice between v3/v5 and the
// packed kernels v8/v9/v10 on shapes worked by hand: the issue slots of
// their main loops (tensorMMAs: padded tiles × MMAs per tile; issue =
// MMAs·(1 + mmaOther)), on which the packed kernels win (pipe), and the
// cost model's choice (dispatch: the same slots a block times the waves,
// plus the packed kernels' two packing launches at 14336 slots each),
// which the small shapes turn.
func TestPipeWins(t *testing.T) {
	d := openSim(t)
	for _, c := range []struct {
		pass     ConvPass
		g        geom.ConvGeom
		mmas3    int // v3/v5
		mmasPipe int // v8/v9/v10
		pipe     bool
		dispatch bool
	}{
		// MNIST conv1 (C = 1): v3 288·1·⌈25/8⌉ tiles of 64 MMAs; v8 pads C
		// to 4, 288·1·⌈100/16⌉ tiles of 256: 73728·14 < 516096·3.75.
		{ConvFwd, cg(64, 1, 28, 28, 32, 5, 5, 1, 1, 0, 0), 288 * 4 * 64, 288 * 7 * 256, false, false},
		// ResNet 3×3, 64 channels: v3 196·1·72·64; v8 196·1·36·256. 196
		// blocks each, one wave of 2 an SM: v3 2·72·64·14 = 129024, v8
		// 2·36·256·3.75 + 2·14336 = 97792.
		{ConvFwd, cg(8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1), 196 * 72 * 64, 196 * 36 * 256, true, true},
		// bwd-data, stride 1: v3 196·1·72·64 against v9 196·1·36·256.
		{ConvBwdData, cg(8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1), 196 * 72 * 64, 196 * 36 * 256, true, true},
		// bwd-data, a 1×1 stride-2 projection (C = 64, K = 128, 28×28 → 14×14):
		// v5 4 phases of ⌈8·14·14/128⌉ = 13 M tiles × ⌈128/8⌉ k-tiles; v9
		// multiplies the zero taps: ⌈8·784/128⌉ = 49 M tiles × ⌈128/16⌉,
		// twice v5's MMAs but a quarter of its other instructions per MMA.
		// The model: v5 52 blocks, one an SM, of 16·64·22 = 22528 slots; v9
		// 49 of 8·256·4.48 = 9175 plus two packing launches: 37847. v5.
		{ConvBwdData, cg(8, 64, 28, 28, 128, 1, 1, 2, 2, 0, 0), 4 * 13 * 16 * 64, 49 * 8 * 256, true, false},
		// bwd-data with K = 3 filters: v3 ⌈27/8⌉ = 4 k-tiles of 64 MMAs on
		// 196 M tiles, v9 pads K to 4: ⌈36/16⌉ = 3 of 256, 3× the MMAs at
		// a sixth of v3's issue slots per MMA. The model: 196 blocks each,
		// one wave of 2 an SM: v3 2·4·64·30.38 = 15555, v9 2·3·256·4.48 +
		// 2·14336 = 35553. v3.
		{ConvBwdData, cg(8, 64, 56, 56, 3, 3, 3, 1, 1, 1, 1), 196 * 4 * 64, 196 * 3 * 256, true, false},
		// bwd-filter: v3 M = C·R·S = 576 (5 tiles) × N = 64 (1) × ⌈25088/8⌉;
		// v10 M = K = 64 (1) × N = 9·64 (5) × ⌈25088/16⌉. The model (split-K
		// to fill a wave either way): v3 241175, v10 158208.
		{ConvBwdFilter, cg(8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1), 5 * 3136 * 64, 5 * 1568 * 256, true, true},
	} {
		t.Run(kv("pass", c.pass)+"/"+c.g.String(), func(t *testing.T) {
			id := [...]func(ConvAlgo, geom.ConvGeom) kernelID{fwdKernel, dgradKernel, wgradKernel}[c.pass](ConvIGemmTF32, c.g)
			pk := pipeKernel(ConvIGemmTF32, c.pass)
			if got := tensorMMAs(id, c.g); got != c.mmas3 {
				t.Errorf("tensorMMAs(%s) = %d, want %d", kernelName(id), got, c.mmas3)
			}
			if got := tensorMMAs(pk, c.g); got != c.mmasPipe {
				t.Errorf("tensorMMAs(%s) = %d, want %d", kernelName(pk), got, c.mmasPipe)
			}
			want := float64(c.mmasPipe)*(1+mmaOther[pk]) <= float64(c.mmas3)*(1+mmaOther[id])
			if want != c.pipe {
				t.Fatalf("the worked case says pipe = %v, the figures %v", c.pipe, want)
			}
			if got, _ := d.bestKernel(ConvIGemmTF32, c.pass, c.g, nominalSMs); (got == pk) != c.dispatch {
				t.Errorf("bestKernel(tf32, %v, %v) = %s (%s costs %.0f, %s %.0f), want the packed kernel: %v",
					c.pass, c.g, kernelName(got), kernelName(pk), convCost(pk, c.g).cost(nominalSMs), kernelName(id), convCost(id, c.g).cost(nominalSMs), c.dispatch)
			}
		})
	}
	// Packed copies that do not fit: never the packed kernel.
	huge := cg(1<<16, 3, 128, 128, 8, 3, 3, 1, 1, 1, 1)
	if d.eligible(kConvFwdTF32Pipe, ConvFwd, huge) {
		t.Errorf("%s eligible on %v, whose channels-last x has 2^16·128·128·4 elements", kernelName(kConvFwdTF32Pipe), huge)
	}
	if got, _ := d.bestKernel(ConvIGemmTF32, ConvFwd, huge, nominalSMs); got != kConvFwdTF32 {
		t.Errorf("bestKernel(tf32, fwd, %v) = %s, want %s", huge, kernelName(got), kernelName(kConvFwdTF32))
	}
}
