package gpu

import (
	"fmt"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/kernels"
)

func init() {
	// TestConvVariantLaunchers launches every conv variant.
	for _, v := range convVariants {
		launcherTestedElsewhere[v.name] = true
	}
	launcherTestedElsewhere[kernelTable[kConvBwdFilterReduce].name] = true
}

// TestConvVariantLaunchers launches every variant of the conv variant
// table through its pass's kernel-level entry on a fake driver and checks
// the kernel, the grid (in the variant's tiles; 1-D or one block per
// weight for the direct kernels), the block and every argument by
// parameter name, and that the launch allocates nothing: a new variant
// with an existing pass's parameters needs no launcher of its own.
func TestConvVariantLaunchers(t *testing.T) {
	d, f := openFake(t)
	// P = 5, Q = 7; N·P·Q = 70, N·H·W = 144, C·R·S = 18; 9 k-tiles of
	// N·P·Q: no split.
	g := cg(2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 0)
	x, w, b, y := mustF32(t, d, g.XLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.K), mustF32(t, d, g.YLen())
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	geomArgs := map[string]uint64{"N": 2, "C": 3, "H": 9, "W": 8, "K": 4, "R": 3, "S": 2, "P": 5, "Q": 7,
		"sh": 2, "sw": 1, "ph": 1, "pw": 0}
	for _, v := range convVariants {
		if _, packed := packedConvs[v.id]; packed {
			continue // packs its operands into workspaces first: TestPackedLaunchers
		}
		t.Run("kernel="+v.name, func(t *testing.T) {
			want := map[string]uint64{}
			for k, val := range geomArgs {
				want[k] = val
			}
			var call func() error
			var m, n, z int // the GEMM's rows, columns and grid.z
			switch v.pass {
			case ConvFwd:
				call = func() error { return d.runFwd(v.id, g, x, w, b, y, false) }
				want["x"], want["w"], want["b"], want["y"], want["relu"] = P(x), P(w), P(b), P(y), 0
				m, n, z = 70, g.K, 1
			case ConvBwdData:
				call = func() error { return d.runDgrad(v.id, g, y, w, x) }
				want["dy"], want["w"], want["dx"] = P(y), P(w), P(x)
				m, n, z = 144, g.C, 1
				if v.strided { // N·⌈9/2⌉·⌈8/1⌉ = 80 rows in each of 2 phases
					m, z = 80, 2
				}
			default:
				call = func() error { return d.runWgrad(v.id, g, x, y, w) }
				want["x"], want["dy"], want["dw"], want["ws"], want["tilesPerSplit"] = P(x), P(y), P(w), P(w), 9
				m, n, z = 18, g.K, 1
			}
			var grid Dim3
			switch {
			case v.algo != ConvDirect:
				grid = Dim3{ceilDiv(m, v.tile.M), ceilDiv(n, v.tile.N), z}
			case v.pass == ConvFwd:
				grid = Dim3{ceilDiv(g.YLen(), 256), 1, 1}
			case v.pass == ConvBwdData:
				grid = Dim3{ceilDiv(g.XLen(), 256), 1, 1}
			default:
				grid = Dim3{g.WLen(), 1, 1}
			}
			if err := call(); err != nil {
				t.Fatal(err)
			}
			l := f.last
			if l.name != v.name {
				t.Fatalf("launched %s, want %s", l.name, v.name)
			}
			if l.grid != grid || l.block != (Dim3{256, 1, 1}) || l.shared != 0 {
				t.Errorf("grid %v block %v shared %d, want grid %v block {256 1 1} shared 0", l.grid, l.block, l.shared, grid)
			}
			k, _ := kernels.Lookup(v.name)
			if l.nargs != len(k.Params) {
				t.Fatalf("%d arguments, kernel has %d parameters", l.nargs, len(k.Params))
			}
			for j, p := range k.Params {
				wv, ok := want[p.Name]
				if !ok {
					t.Fatalf("the test has no value for parameter %s", p.Name)
				}
				if l.args[j] != wv {
					t.Errorf("parameter %d (%s) = %#x, want %#x", j, p.Name, l.args[j], wv)
				}
			}
			if al := testing.AllocsPerRun(10, func() { call() }); al != 0 {
				t.Errorf("a launch allocates %v times, want 0", al)
			}
		})
	}
}

// TestIGemmLaunchers checks, on a fake driver, the grid, block and every
// argument of each launch of the FP32 and TF32 v2–v6 kernels (the shape's
// variant, as fwdKernel, dgradKernel, wgradKernel choose it before the
// packed kernels are considered), the split-K second pass included, and
// that a launch allocates nothing on the host.
func TestIGemmLaunchers(t *testing.T) {
	d, f := openFake(t)
	// P = 5, Q = 7; N·P·Q = 70, N·H·W = 144, C·R·S = 18.
	g := cg(2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 0)
	// N·P·Q = 4·30·30 = 3600: 450 k-tiles, split 50 ways of 9 (wgradSplits).
	big := cg(4, 3, 30, 30, 4, 3, 3, 1, 1, 1, 1)
	x, w, b, y := mustF32(t, d, g.XLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.K), mustF32(t, d, g.YLen())
	bx, by, bw := mustF32(t, d, big.XLen()), mustF32(t, d, big.YLen()), mustF32(t, d, big.WLen())
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	args := func(ptrs []uint64, gg [13]int, more ...int) []uint64 {
		out := append([]uint64(nil), ptrs...)
		for _, v := range gg {
			out = append(out, uint64(v))
		}
		for _, v := range more {
			out = append(out, uint64(v))
		}
		return out
	}
	gargs := [13]int{2, 3, 9, 8, 4, 3, 2, 5, 7, 2, 1, 1, 0}
	splits, tps := wgradSplits(big)
	if splits < 2 || (splits-1)*tps >= 450 || splits*tps < 450 {
		t.Fatalf("wgradSplits(%v) = %d splits of %d tiles, want ≥ 2 splits covering 450 tiles, none empty", big, splits, tps)
	}
	type launch struct {
		kernel string
		grid   Dim3
		args   []uint64
	}
	for _, a := range []ConvAlgo{ConvIGemm, ConvIGemmTF32} {
		cases := []struct {
			name string
			call func() error
			want launch
		}{
			{"fwd", func() error { return d.convForwardKernel(fwdKernel(a, g), g, x, w, b, y, false) },
				launch{a.KernelName(ConvFwd), Dim3{1, 1, 1}, args([]uint64{P(x), P(w), P(b), P(y)}, gargs, 0)}},
			{"fwd/relu/nobias", func() error { return d.convForwardKernel(fwdKernel(a, g), g, x, w, nil, y, true) },
				launch{a.KernelName(ConvFwd), Dim3{1, 1, 1}, args([]uint64{P(x), P(w), 0, P(y)}, gargs, 1)}},
			{"bwd_data", func() error { return d.convBackwardDataKernel(basicKernel(a, ConvBwdData), g, y, w, x) },
				launch{a.KernelName(ConvBwdData), Dim3{2, 1, 1}, args([]uint64{P(y), P(w), P(x)}, gargs)}},
			// stride 2×1: the phase-decomposed kernel, N·⌈9/2⌉·⌈8/1⌉ = 80 rows, 2 phases.
			{"bwd_data/strided", func() error { return d.convBackwardDataKernel(dgradKernel(a, g), g, y, w, x) },
				launch{kernelTable[convVariantFor(a, ConvBwdData, false, true)].name, Dim3{1, 1, 2}, args([]uint64{P(y), P(w), P(x)}, gargs)}},
			{"bwd_filter", func() error { return d.convBackwardFilterKernel(wgradKernel(a, g), g, x, y, w) },
				launch{a.KernelName(ConvBwdFilter), Dim3{1, 1, 1}, args([]uint64{P(x), P(y), P(w)}, gargs, 9)}},
			{"bwd_filter/split", func() error { return d.convBackwardFilterKernel(wgradKernel(a, big), big, bx, by, bw) },
				launch{"conv2d_bwd_filter_v2_reduce", Dim3{1, 1, 1}, nil}},
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("algo=%v/%s", a, c.name), func(t *testing.T) {
				before := f.launches
				if err := c.call(); err != nil {
					t.Fatal(err)
				}
				l := f.last
				if l.name != c.want.kernel {
					t.Fatalf("launched %s, want %s", l.name, c.want.kernel)
				}
				if l.grid != c.want.grid || l.block != (Dim3{256, 1, 1}) || l.shared != 0 {
					t.Errorf("grid %v block %v shared %d, want grid %v block {256 1 1} shared 0", l.grid, l.block, l.shared, c.want.grid)
				}
				k, _ := kernels.Lookup(l.name)
				if l.nargs != len(k.Params) {
					t.Fatalf("%d arguments, kernel has %d parameters", l.nargs, len(k.Params))
				}
				if c.want.args == nil { // the split: the reduce pass sums `splits` slices of K·C·R·S
					if f.launches-before != 2 {
						t.Errorf("%d launches, want 2 (split GEMM, reduce)", f.launches-before)
					}
					if l.args[1] != P(bw) || l.args[2] != uint64(splits) || l.args[3] != uint64(big.WLen()) {
						t.Errorf("reduce arguments %#x, want ws, dw=%#x, splits=%d, n=%d", l.args[:4], P(bw), splits, big.WLen())
					}
					// The workspace comes from the cache after the first call:
					// no host or device allocation in a steady state.
					allocs := f.allocs
					if al := testing.AllocsPerRun(10, func() { c.call() }); al != 0 {
						t.Errorf("a split launch allocates %v times on the host, want 0", al)
					}
					if f.allocs != allocs {
						t.Errorf("split launches made %d device allocations, want 0 (cached workspace)", f.allocs-allocs)
					}
					return
				}
				for j := range k.Params {
					if l.args[j] != c.want.args[j] {
						t.Errorf("parameter %d (%s) = %#x, want %#x", j, k.Params[j].Name, l.args[j], c.want.args[j])
					}
				}
				if al := testing.AllocsPerRun(10, func() { c.call() }); al != 0 {
					t.Errorf("a launch allocates %v times, want 0", al)
				}
			})
		}
	}
}

// TestIGemmWideLaunch checks, on a fake driver (which reports no SM
// count: the nominal 132), that the FP32 implicit GEMM runs the 128×128
// tiles where the cost model (cost.go) prefers them, with the grid
// counted in 128-wide tiles, the 128×64 tiles where they fill more SMs or
// pad less, and that ConvKernelFor names what runs.
func TestIGemmWideLaunch(t *testing.T) {
	d, f := openFake(t)
	cases := []struct {
		pass   ConvPass
		g      geom.ConvGeom
		kernel string
		grid   Dim3
	}{
		// ResNet-50 stage 3 at batch 128: 196 row tiles; v2 784 blocks in 3
		// waves of 2 an SM (6 v2 blocks of work an SM), v6 392 in 3 waves
		// of one (3 v6 blocks = 5.04 v2 blocks).
		{ConvFwd, cg(128, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1), "conv2d_fwd_v6_igemm_wide", Dim3{196, 2, 1}},
		{ConvBwdData, cg(128, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1), "conv2d_bwd_data_v6_igemm_wide", Dim3{196, 2, 1}},
		// bwd-filter at batch 1 (7 k-tiles: no split): 36 row tiles (C·R·S
		// = 4608); v6 144 blocks, 2 waves of one of 131072·7·1.48/32 slots
		// (84869), v2 288, 2 waves of 2 of 65536·7·1.75/32 (100352).
		{ConvBwdFilter, cg(1, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1), "conv2d_bwd_filter_v6_igemm_wide", Dim3{36, 4, 1}},
		// Stride 2, 1×1: 4 phases of 392 row tiles; v4 3136 blocks (12
		// waves of 2), v6 1568 (12 waves of one).
		{ConvBwdData, cg(64, 128, 56, 56, 256, 1, 1, 2, 2, 0, 0), "conv2d_bwd_data_v6_igemm_wide_strided", Dim3{392, 1, 4}},
		// ResNet-50 stage 4 at batch 8: 4 row tiles; v2's 32 blocks fill
		// twice the SMs of v6's 16, one wave each.
		{ConvFwd, cg(8, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1), "conv2d_fwd_v2_igemm", Dim3{4, 8, 1}},
		// K = 32 < 128: v6 would pad 3/4 of its columns.
		{ConvFwd, cg(128, 32, 16, 16, 32, 3, 3, 1, 1, 1, 1), "conv2d_fwd_v2_igemm", Dim3{256, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.kernel+"/"+c.g.String(), func(t *testing.T) {
			g := c.g
			x, w, y := mustF32(t, d, g.XLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.YLen())
			if got := d.ConvAlgoFor(c.pass, g); got != ConvIGemm {
				t.Fatalf("ConvAlgoFor = %v, want igemm", got)
			}
			if got := d.ConvKernelFor(c.pass, g); got != c.kernel {
				t.Errorf("ConvKernelFor = %s, want %s", got, c.kernel)
			}
			var err error
			switch c.pass {
			case ConvFwd:
				err = d.Conv2DForward(g, x, w, nil, y)
			case ConvBwdData:
				err = d.Conv2DBackwardData(g, y, w, x)
			default:
				err = d.Conv2DBackwardFilter(g, x, y, w)
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.last.name != c.kernel || f.last.grid != c.grid {
				t.Errorf("launched %s on grid %v, want %s on %v", f.last.name, f.last.grid, c.kernel, c.grid)
			}
		})
	}
}
