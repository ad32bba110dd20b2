package gpu

import (
	"fmt"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/kernels"
)

// TestKernelTable checks that every kernelID names a kernel of the
// generated table, once, and that every kernel of the table has a
// kernelID (a launcher).
func TestKernelTable(t *testing.T) {
	if kernelTableErr != nil {
		t.Fatal(kernelTableErr)
	}
	launched := map[string]kernelID{}
	for id := kernelID(0); id < numKernels; id++ {
		e := kernelTable[id]
		if prev, dup := launched[e.name]; dup {
			t.Errorf("kernelIDs %d and %d both name %q", prev, id, e.name)
		}
		launched[e.name] = id
		k, ok := kernels.Lookup(e.name)
		if !ok {
			t.Errorf("kernelID %d: %q is not in kernels.All", id, e.name)
			continue
		}
		if len(e.params) != len(k.Params) || e.target != k.Target {
			t.Errorf("kernelID %d (%s): %d parameters, target %s; kernels.All has %d, %s", id, e.name,
				len(e.params), e.target, len(k.Params), k.Target)
		}
	}
	for _, k := range kernels.All {
		if _, ok := launched[k.Name]; !ok {
			t.Errorf("kernel %s (%s) has no kernelID: add it to plainKernels (kernel_table.go) or convVariants (variants.go)",
				k.Name, k.Source)
		}
	}
	if got := kernelName(numKernels); got != fmt.Sprintf("kernelID(%d)", int(numKernels)) {
		t.Errorf("kernelName(numKernels) = %q, want kernelID(%d)", got, int(numKernels))
	}
}

// TestConvVariantTable checks the conv variant table against the CUDA
// side and itself: the ids cover the variant range once; every tile is the
// source's kBM × (kBNW for the wide tiles, else kBN) × kBK and the Go
// constants equal them; igemmThreads is kThreads; the minimum compute
// capability is the kernel's PTX target; each algorithm has one precision
// and a basic (128×64, unphased) kernel per pass; the wide variants are the
// 128-column tiles.
func TestConvVariantTable(t *testing.T) {
	seen := map[kernelID]bool{}
	for _, v := range convVariants {
		if v.id < numPlainKernels || v.id >= numKernels || seen[v.id] {
			t.Errorf("%s: kernelID %d out of the variant range [%d, %d) or listed twice", v.name, v.id, numPlainKernels, numKernels)
		}
		seen[v.id] = true
		if got, ok := variantOf(v.id); !ok || got.name != v.name {
			t.Errorf("variantOf(%d) = %q, %v; want %q", v.id, got.name, ok, v.name)
		}
	}
	if len(seen) != int(numKernels-numPlainKernels) {
		t.Errorf("convVariants has %d ids, want %d (every conv kernelID)", len(seen), numKernels-numPlainKernels)
	}
	if _, ok := variantOf(kConvBwdBias); ok {
		t.Error("variantOf(kConvBwdBias) is a variant")
	}
	precision := map[ConvAlgo]Precision{}
	for _, v := range convVariants {
		k, ok := kernels.Lookup(v.name)
		if !ok {
			t.Errorf("%s is not in kernels.All", v.name)
			continue
		}
		var target int
		if _, err := fmt.Sscanf(k.Target, "sm_%d", &target); err != nil || target != v.minCC {
			t.Errorf("%s: minCC %d, its PTX target is %s", v.name, v.minCC, k.Target)
		}
		if p, ok := precision[v.algo]; ok && p != v.precision {
			t.Errorf("%s: precision %v, other %v variants have %v", v.name, v.precision, v.algo, p)
		}
		precision[v.algo] = v.precision
		// wide names the 128×128 tiles of the 8-deep FP32/TF32 family
		// (igemm.cuh); the packed kernels' 128×128×32 and ×16 tiles are
		// their only ones.
		if _, packed := packedConvs[v.id]; !packed && v.wide != (v.tile.N == igemmBNWide) {
			t.Errorf("%s: wide = %v with tile %v", v.name, v.wide, v.tile)
		}
		if v.algo == ConvDirect {
			if v.tile != (tileShape{}) || v.wide || v.strided {
				t.Errorf("%s: a direct kernel with tile %v, wide %v, strided %v", v.name, v.tile, v.wide, v.strided)
			}
			continue
		}
		if v.strided && v.pass != ConvBwdData {
			t.Errorf("%s: strided (phase-decomposed) is a bwd-data variant, pass is %v", v.name, v.pass)
		}
		def := func(name string) int {
			n, ok := kernels.Define(k.Source, name)
			if !ok {
				t.Errorf("%s: %s defines no %s", v.name, k.Source, name)
			}
			return n
		}
		nName := "kBN"
		if v.wide {
			nName = "kBNW"
		}
		cuda := tileShape{def("kBM"), def(nName), def("kBK")}
		if v.tile != cuda {
			t.Errorf("%s: tile %v in Go, %v in %s (kBM×%s×kBK)", v.name, v.tile, cuda, k.Source, nName)
		}
		if th := def("kThreads"); th != variantThreads(v) {
			t.Errorf("%s: variantThreads = %d, kThreads = %d in %s", v.name, variantThreads(v), th, k.Source)
		}
	}
	for a := ConvAlgo(0); a < numConvAlgos; a++ {
		for p := ConvPass(0); p < numConvPasses; p++ {
			if !a.HasPass(p) {
				t.Errorf("%v has no %v kernel", a, p)
				continue
			}
			v, ok := variantOf(basicKernel(a, p))
			if !ok || v.algo != a || v.pass != p || v.wide || v.strided {
				t.Errorf("basicKernel(%v, %v) = %q, want the basic kernel of the pass", a, p, v.name)
			}
		}
	}
	for _, p := range []Precision{TF32, BF16} {
		if got := precisionMinCC(p); got != 80 {
			t.Errorf("precisionMinCC(%v) = %d, want 80", p, got)
		}
	}
	// The Go constants the dispatcher and the split-K planner use.
	for _, c := range []struct {
		name, source, define string
		goValue              int
	}{
		{"igemmBM", "conv_igemm.cu", "kBM", igemmBM},
		{"igemmBN", "conv_igemm.cu", "kBN", igemmBN},
		{"igemmBK", "conv_igemm.cu", "kBK", igemmBK},
		{"igemmThreads", "conv_igemm.cu", "kThreads", igemmThreads},
		{"igemmBNWide", "conv_igemm_wide.cu", "kBNW", igemmBNWide},
		{"blockSize", "conv.cu", "kBlock", blockSize},
	} {
		if got, ok := kernels.Define(c.source, c.define); !ok || got != c.goValue {
			t.Errorf("%s = %d in Go, %s = %d (defined: %v) in %s", c.name, c.goValue, c.define, got, ok, c.source)
		}
	}
}

// TestConvVariantFor checks the fallbacks of convVariantFor: the wide
// tiles and the phase decomposition only where an algorithm has them.
func TestConvVariantFor(t *testing.T) {
	for _, c := range []struct {
		a             ConvAlgo
		p             ConvPass
		wide, strided bool
		want          kernelID
	}{
		{ConvDirect, ConvBwdData, true, true, kConvBwdData},
		{ConvIGemm, ConvBwdData, true, true, kConvBwdDataWideStrided},
		{ConvIGemm, ConvBwdData, false, true, kConvBwdDataStrided},
		{ConvIGemm, ConvBwdData, true, false, kConvBwdDataWide},
		{ConvIGemmTF32, ConvBwdData, true, true, kConvBwdDataStridedTF32},
		{ConvIGemmTF32, ConvFwd, true, false, kConvFwdTF32},
		{ConvIGemm, ConvFwd, true, false, kConvFwdWide},
		{ConvIGemm, ConvBwdFilter, false, true, kConvBwdFilterIGemm},
		{numConvAlgos, ConvFwd, false, false, -1},
	} {
		if got := convVariantFor(c.a, c.p, c.wide, c.strided); got != c.want {
			t.Errorf("convVariantFor(%v, %v, wide=%v, strided=%v) = %s, want %s", c.a, c.p, c.wide, c.strided,
				kernelName(got), kernelName(c.want))
		}
	}
}

// TestConformanceCoverage fails on a kernel of kernels.All that the
// conformance suites do not run: runConformance runs every conv variant
// (convVariants) and the cases of plainConformance, runOptimConformance
// those of optimConformance, and the split-K second pass runs inside the
// implicit-GEMM bwd-filter variants on the swept shapes that split.
func TestConformanceCoverage(t *testing.T) {
	covered := map[string]string{}
	for _, v := range convVariants {
		covered[v.name] = "runConformance/kernel=" + v.name
	}
	for _, suite := range []struct {
		name  string
		cases []conformanceCase
	}{{"runConformance", plainConformance}, {"runOptimConformance", optimConformance}} {
		for _, c := range suite.cases {
			if len(c.kernels) == 0 || c.run == nil {
				t.Errorf("%s/kernel=%s checks no kernel", suite.name, c.name)
			}
			for _, k := range c.kernels {
				if prev, dup := covered[k]; dup {
					t.Errorf("%s is covered by both %s and %s/kernel=%s", k, prev, suite.name, c.name)
				}
				covered[k] = suite.name + "/kernel=" + c.name
			}
		}
	}
	for _, g := range sweptConvShapes() {
		if s, _ := wgradSplits(g); s > 1 {
			covered[kernelTable[kConvBwdFilterReduce].name] = "the implicit-GEMM bwd-filter variants on " + g.String()
			break
		}
	}
	for _, g := range sweptConvShapes() {
		if s, _ := fp32PipeWgradSplits(g, tf32PipeBK, packedChans(g.C, packedF32.chanAlign)); s > 1 {
			covered[kernelTable[kConvBwdFilterReducePipe].name] = "conv2d_bwd_filter_v13_igemm_pipe on " + g.String()
			break
		}
	}
	for _, k := range kernels.All {
		if covered[k.Name] == "" {
			t.Errorf("kernel %s (%s) has no conformance case: add it to convVariants (variants.go) or a case to plainConformance",
				k.Name, k.Source)
		}
	}
	for name, by := range covered {
		if _, ok := kernels.Lookup(name); !ok {
			t.Errorf("%s names kernel %s, which kernels.All lacks", by, name)
		}
	}
}

// TestBenchAlternatives pins the variants BenchmarkConvSuite runs beside
// the dispatcher's kernel, named in BENCHMARKS.md as algo=A-vN_…: the
// 128×64 tiles beside the 128×128 ones, the unphased bwd-data beside the
// phase-decomposed one, the TF32 pipeline beside v3 and v5, FP32's v11,
// v12 and v13 beside v2/v4/v6, nothing beside a kernel that has no narrower or plainer
// variant. (The dispatcher's kernel is kernelFor's, of least modelled
// cost: TestDispatchShapes, TestDispatchLeastCost.)
func TestBenchAlternatives(t *testing.T) {
	d, _ := openFake(t)
	wide := cg(1, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1)    // r50-3x3-128-28
	strided := cg(1, 128, 56, 56, 128, 3, 3, 2, 2, 1, 1) // r50-3x3s2-128-56
	narrow := cg(4, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0)     // mnist-conv2
	narrowS := cg(1, 64, 56, 56, 64, 3, 3, 2, 2, 1, 1)   // stride 2, 64 channels
	for _, c := range []struct {
		a    ConvAlgo
		p    ConvPass
		g    geom.ConvGeom
		pick string
		alts string
	}{
		// At N = 1 the 128-channel layers have 7 row tiles: the 128×64
		// tiles fill twice the SMs (cost.go), the 128×128 ones run beside.
		{ConvIGemm, ConvFwd, wide, "v2_igemm", "v6_igemm_wide v12_igemm_pipe"},
		{ConvIGemm, ConvFwd, narrow, "v2_igemm", "v12_igemm_pipe"},
		{ConvIGemm, ConvBwdFilter, wide, "v6_igemm_wide", "v2_igemm v13_igemm_pipe"},
		{ConvIGemm, ConvBwdData, wide, "v2_igemm", "v6_igemm_wide v11_igemm_pipe"},
		{ConvIGemm, ConvBwdData, strided, "v4_igemm_strided", "v2_igemm v6_igemm_wide v6_igemm_wide_strided v11_igemm_pipe"},
		{ConvIGemm, ConvBwdData, narrowS, "v4_igemm_strided", "v2_igemm v11_igemm_pipe"},
		{ConvIGemmTF32, ConvFwd, wide, "v8_igemm_tf32", "v3_igemm_tf32"},
		{ConvIGemmTF32, ConvBwdData, strided, "v5_igemm_strided_tf32", "v3_igemm_tf32 v9_igemm_tf32"},
		{ConvIGemmBF16, ConvFwd, wide, "v7_igemm_bf16", ""},
		{ConvDirect, ConvBwdData, strided, "v1_direct", ""},
	} {
		pick, ok := variantOf(d.kernelFor(c.a, c.p, c.g))
		var alts []string
		for _, v := range benchAlternatives(pick, c.g) {
			alts = append(alts, v.version())
		}
		if !ok || pick.version() != c.pick || strings.Join(alts, " ") != c.alts {
			t.Errorf("%v %v %v: dispatcher's %s, beside it %q; want %s, %q", c.a, c.p, c.g, pick.version(), alts, c.pick, c.alts)
		}
	}
}
