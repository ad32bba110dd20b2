package gpu

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// blocksPerSM is the occupancy that regs registers per thread allow
// blocks of threads threads on the nominal device (sm_90): registers are
// allocated per warp in units of 256, that is per thread in units of 8.
func blocksPerSM(regs, threads int) int {
	perBlock := ceilDiv(regs, 8) * 8 * threads
	return min(sm90RegsPerSM/perBlock, sm90ThreadsPerSM/threads)
}

// waveFill is the fraction of the waves of a launch of blocks blocks,
// wave to a wave, that does work.
func waveFill(blocks, wave int) float64 {
	return float64(blocks) / float64(ceilDiv(blocks, wave)*wave)
}

// TestIGemmOccupancy ties igemmBlocksPerSM to the registers ptxas gives
// the FP32 implicit-GEMM kernels for sm_90 (kernels/RESOURCES.md, ptxas
// 13.0) and checks that shared memory does not bound them (228 KiB an SM,
// 227 KiB a block); and pipeBlocksPerSM to the packed kernels'.
func TestIGemmOccupancy(t *testing.T) {
	f, err := os.Open("../kernels/RESOURCES.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "|")
		if len(cols) < 11 {
			continue
		}
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		kernel, arch, ptxas := cols[2], cols[3], cols[4]
		if arch != "sm_90" || ptxas != "13.0" {
			continue
		}
		var v convVariant
		found := false
		for _, c := range convVariants {
			if c.name == kernel && (c.algo == ConvIGemm || packedConvs[c.id] != (packedConv{})) {
				v, found = c, true
			}
		}
		if !found {
			continue
		}
		regs, err1 := strconv.Atoi(cols[5])
		smem, err2 := strconv.Atoi(cols[9])
		if err1 != nil || err2 != nil {
			t.Fatalf("RESOURCES.md row %q: registers or shared memory unreadable", sc.Text())
		}
		if pc, packed := packedConvs[v.id]; packed {
			// The packed kernels: pipeBlocksPerSM for the tensor-core
			// ones (pipeWgradSplits' model); FP32's v11, v12 and v13
			// (256 threads of 8×8 outputs, more than 128 registers, not
			// dispatched; fp32PipeWgradSplits' model) one block.
			want := pipeBlocksPerSM
			if v.precision == FP32 {
				want = fp32PipeBlocksPerSM
			}
			if got := blocksPerSM(regs, pc.threads); got != want || want*smem > 228*1024 {
				t.Errorf("%s: %d registers give %d blocks of %d threads per SM (%d bytes of shared memory each), want %d",
					kernel, regs, got, pc.threads, smem, want)
			}
			continue
		}
		seen++
		want := igemmBlocksPerSM(v.wide)
		if got := blocksPerSM(regs, igemmThreads); got != want {
			t.Errorf("%s: %d registers give %d blocks of %d threads per SM, igemmBlocksPerSM(wide=%v) = %d",
				kernel, regs, got, igemmThreads, v.wide, want)
		}
		if want*smem > 228*1024 {
			t.Errorf("%s: %d blocks of %d bytes of shared memory exceed an SM's", kernel, want, smem)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if seen < 6 {
		t.Errorf("RESOURCES.md has %d sm_90 ptxas 13.0 rows of FP32 implicit-GEMM kernels, want every one (≥ 6)", seen)
	}
}

// wgradSteps is the cost of s splits in the model of wgradSplits' doc
// comment, written out again from it.
func wgradSteps(g geom.ConvGeom, s int) int {
	tiles := ceilDiv(g.N*g.P()*g.Q(), igemmBK)
	crs := g.C * g.R * g.S
	bn, wave := igemmBN, 2*nominalSMs
	if useWide(g.K) {
		bn, wave = igemmBNWide, nominalSMs
	}
	blocks := ceilDiv(crs, igemmBM) * ceilDiv(g.K, bn)
	tps := ceilDiv(tiles, s)
	steps := ceilDiv(blocks*s, wave) * tps
	if s > 1 {
		steps += 4 + ceilDiv(s*g.K*crs, 1<<18)
	}
	return steps
}

// TestWgradSplitsShapes checks the split-K rule on the bwd-filter passes
// of the MNIST network and of ResNet stages: the chosen split count has
// the least cost of every admissible one (smallest on a tie); small layers
// fill at least half a wave or use every split they may; the counts
// worked out by hand from the rule hold; the cost falls against the rule
// before (16 splits on MNIST conv2).
func TestWgradSplitsShapes(t *testing.T) {
	cases := []struct {
		name   string
		g      geom.ConvGeom
		splits int // worked out by hand; 0: not stated
	}{
		// T = 512 k-tiles, B = 2 blocks: s = 64 (8 tiles each, the floor)
		// costs ⌈128/264⌉·8 + 4 + ⌈64·3200/2¹⁸⌉ = 13 steps.
		{"mnist-conv2-b64", cg(64, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0), 64},
		// T = 4608, B = 1: s = 128 (36 tiles) costs 36 + 4 + 1 = 41.
		{"mnist-conv1-b64", cg(64, 1, 28, 28, 8, 5, 5, 1, 1, 0, 0), 128},
		// T = 450, B = 1, at most 56 splits: 50 of 9 tiles cost 14.
		{"launcher-big", cg(4, 3, 30, 30, 4, 3, 3, 1, 1, 1, 1), 50},
		{"resnet20-stage1-b128", cg(128, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1), 0},
		{"resnet20-stage2-b128", cg(128, 32, 16, 16, 32, 3, 3, 1, 1, 1, 1), 0},
		{"resnet20-stage3-b128", cg(128, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1), 0},
		{"resnet20-down3-b128", cg(128, 32, 16, 16, 64, 3, 3, 2, 2, 1, 1), 0},
		{"resnet50-stage3-b64", cg(64, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1), 0},
		{"resnet50-stage4-b64", cg(64, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1), 0},
		{"resnet50-1x1-b64", cg(64, 1024, 14, 14, 256, 1, 1, 1, 1, 0, 0), 0},
	}
	for _, c := range cases {
		t.Run(kv("shape", c.name), func(t *testing.T) {
			if err := c.g.Validate(); err != nil {
				t.Fatal(err)
			}
			s, tps := wgradSplits(c.g)
			tiles := ceilDiv(c.g.N*c.g.P()*c.g.Q(), igemmBK)
			crs := c.g.C * c.g.R * c.g.S
			limit := max(min(tiles/wgradMinTiles, wgradMaxSplits, maxElems/(c.g.K*crs)), 1)
			got := wgradSteps(c.g, s)
			for o := 1; o <= limit; o++ {
				if n := ceilDiv(tiles, ceilDiv(tiles, o)); n != o {
					continue // o splits would leave some empty: n splits are the same launch
				}
				if w := wgradSteps(c.g, o); w < got || w == got && o < s {
					t.Errorf("%d splits cost %d steps, %d splits %d: the rule takes the least (smallest on a tie)", s, got, o, w)
				}
			}
			if c.splits != 0 && (s != c.splits || tps != ceilDiv(tiles, c.splits)) {
				t.Errorf("wgradSplits = %d splits of %d tiles, want %d of %d", s, tps, c.splits, ceilDiv(tiles, c.splits))
			}
			bn, wave := igemmBN, 2*nominalSMs
			if useWide(c.g.K) {
				bn, wave = igemmBNWide, nominalSMs
			}
			blocks := ceilDiv(crs, igemmBM) * ceilDiv(c.g.K, bn)
			most := ceilDiv(tiles, ceilDiv(tiles, limit)) // the most splits without an empty one
			if blocks < wave && s < most && waveFill(blocks*s, wave) < 0.5 {
				t.Errorf("%d splits of %d blocks fill %.2f of a wave of %d, with %d splits allowed", s, blocks, waveFill(blocks*s, wave), wave, most)
			}
			if old := 16; c.name == "mnist-conv2-b64" && wgradSteps(c.g, old) <= got {
				t.Errorf("%d splits cost %d steps, no fewer than the earlier rule's %d splits (%d)", s, got, old, wgradSteps(c.g, old))
			}
			t.Logf("%v: %d blocks a split, %d k-tiles: %d splits of %d tiles, %d blocks (fill %.2f of a wave of %d), %d steps (%d unsplit)",
				c.g, blocks, tiles, s, tps, blocks*s, waveFill(blocks*s, wave), wave, got, wgradSteps(c.g, 1))
		})
	}
}

// TestMMAOther checks mmaOther, the dispatcher's other SASS instructions
// per HMMA, against the SASS mix of kernels/RESOURCES.md (sm_80, the
// column other) for every tensor-core variant.
func TestMMAOther(t *testing.T) {
	f, err := os.Open("../kernels/RESOURCES.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "|")
		if len(cols) != 15 {
			continue
		}
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		if cols[3] == "sm_80" && strings.HasSuffix(cols[5], " HMMA") {
			other[cols[2]] = cols[7]
		}
	}
	for _, v := range convVariants {
		if v.precision == FP32 {
			continue
		}
		got, ok := mmaOther[v.id]
		if !ok {
			t.Errorf("%s: no mmaOther entry", v.name)
			continue
		}
		if want, ok := other[v.name]; !ok || strconv.FormatFloat(got, 'f', 2, 64) != want {
			t.Errorf("mmaOther[%s] = %.2f, RESOURCES.md's sm_80 SASS mix says %q (found: %v)", v.name, got, want, ok)
		}
	}
}
