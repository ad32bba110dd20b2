package gpu

import (
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/kernels"
)

func init() {
	// TestPackedLaunchers checks the packing launches.
	launcherTestedElsewhere[kernelTable[kPackNHWCBF16].name] = true
	launcherTestedElsewhere[kernelTable[kPackNHWCTF32].name] = true
	launcherTestedElsewhere[kernelTable[kPackCRSKFlipBF16].name] = true // TestPackedBackwardLaunchers
	launcherTestedElsewhere[kernelTable[kPackCRSKFlipTF32].name] = true
	launcherTestedElsewhere[kernelTable[kPackTransposeBF16].name] = true // TestPackedLaunchers
	launcherTestedElsewhere[kernelTable[kPackTransposeTF32].name] = true
	launcherTestedElsewhere[kernelTable[kPackTransposeF32].name] = true
	launcherTestedElsewhere[kernelTable[kConvBwdFilterReducePipe].name] = true // TestPackedSplitLaunchers
}

// bf16Ref returns a copy of x rounded to bfloat16 (cpuref.RoundBF16): the
// BF16 kernel's operands as its reference sees them.
func bf16Ref(x []float32) []float32 {
	r := make([]float32, len(x))
	cpuref.RoundBF16Slice(r, x)
	return r
}

// testPackBF16 checks pack_nhwc_bf16_v1 against cpuref.BF16Bits: every
// word of xh, channels past C zero, on shapes with C below, at and above a
// multiple of 8, inputs with ties, infinities, NaN and subnormals.
func testPackBF16(t *testing.T, d *Device) {
	testPack(t, d, kPackNHWCBF16, 2, func(x float32) uint32 { return uint32(cpuref.BF16Bits(x)) })
}

// testPackTF32 checks pack_nhwc_tf32_v1 against cvt.rna.tf32.f32 as the
// PTX ISA defines it (cpuref.RoundTF32): to nearest, ties away from zero,
// on the 10 explicit mantissa bits; NaN and infinities unchanged.
func testPackTF32(t *testing.T, d *Device) {
	testPack(t, d, kPackNHWCTF32, 4, func(x float32) uint32 { return math.Float32bits(cpuref.RoundTF32(x)) })
}

// testPack checks packing kernel id (elem bytes per packed element,
// round the expected bits of one element) on swept shapes.
func testPack(t *testing.T, d *Device, id kernelID, elem int, round func(float32) uint32) {
	if !d.hasTarget(80) {
		t.Skipf("%s needs compute capability 8.0; %v has less", kernelTable[id].name, d)
	}
	special := []float32{1 + 1.0/256, 1 + 3.0/256, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0x00018000), math.MaxFloat32, -0.0}
	// The last two span several 32×32 tiles of pack_transpose_*_v2 on
	// both axes, with partial tiles.
	for _, c := range []struct{ n, c, hw, cp int }{{2, 3, 5, 8}, {1, 8, 7, 8}, {3, 9, 4, 16}, {1, 1, 1, 8}, {2, 40, 37, 40}, {1, 70, 65, 72}} {
		t.Run(kv("N", c.n, "C", c.c, "HW", c.hw, "Cp", c.cp), func(t *testing.T) {
			x := uniform(newRand(kv("pack", c.n, c.c, c.hw)), c.n*c.c*c.hw)
			copy(x, special)
			h := newHarness(t, d)
			words := c.n * c.hw * c.cp * elem / 4
			xb, out := h.in("x", x), h.out("xh", words)
			d.mu.Lock()
			var err error
			if isTranspose(id) {
				err = d.transposeLocked(id, xb.ptr, out.ptr, c.n, c.c, c.hw, c.cp, 1)
			} else {
				err = d.packLocked(id, xb.ptr, out.ptr, c.n, c.c, c.hw, c.cp)
			}
			d.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			got := h.read(out)
			value := func(n, hw, ch int) uint32 {
				if ch >= c.c {
					return 0
				}
				return round(x[(n*c.c+ch)*c.hw+hw])
			}
			per := 4 / elem // elements per word
			bad := 0
			for i := range words {
				pix, ch := i/(c.cp/per), per*(i%(c.cp/per))
				n, hw := pix/c.hw, pix%c.hw
				want := value(n, hw, ch)
				if per == 2 {
					want |= value(n, hw, ch+1) << 16
				}
				if g := math.Float32bits(got[i]); g != want && bad < 10 {
					bad++
					t.Errorf("xh word %d (n=%d hw=%d c=%d) = %#08x, want %#08x", i, n, hw, ch, g, want)
				}
			}
			h.check()
		})
	}
}

// testPackFlipBF16 and testPackFlipTF32 check pack_crsk_flip_bf16_v1 and
// pack_crsk_flip_tf32_v1: every word of wt[c,r,s,k] against the rounding
// of w[k,c,R−1−r,S−1−s] (cpuref.BF16Bits; cvt.rna as testPackTF32 states
// it), filters past K zero, with K below, at and above a multiple of the
// chunk and the special values of testPack.
func testPackFlipBF16(t *testing.T, d *Device) {
	testPackFlip(t, d, kPackCRSKFlipBF16, 2, func(x float32) uint32 { return uint32(cpuref.BF16Bits(x)) })
}

func testPackFlipTF32(t *testing.T, d *Device) {
	testPackFlip(t, d, kPackCRSKFlipTF32, 4, func(x float32) uint32 {
		b := math.Float32bits(x)
		if b&0x7f800000 == 0x7f800000 {
			return b
		}
		return (b + 0x1000) &^ 0x1fff
	})
}

func testPackFlip(t *testing.T, d *Device, id kernelID, elem int, round func(float32) uint32) {
	if !d.hasTarget(80) {
		t.Skipf("%s needs compute capability 8.0; %v has less", kernelTable[id].name, d)
	}
	special := []float32{1 + 1.0/256, 1 + 3.0/256, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0x00018000), math.MaxFloat32, -0.0}
	for _, c := range []struct{ k, c, rs, kp int }{{3, 2, 9, 8}, {8, 3, 4, 8}, {9, 2, 1, 16}, {1, 1, 1, 8}, {37, 5, 9, 40}, {66, 7, 1, 72}} {
		t.Run(kv("K", c.k, "C", c.c, "RS", c.rs, "Kp", c.kp), func(t *testing.T) {
			w := uniform(newRand(kv("flip", c.k, c.c, c.rs)), c.k*c.c*c.rs)
			copy(w, special)
			h := newHarness(t, d)
			words := c.c * c.rs * c.kp * elem / 4
			wb, out := h.in("w", w), h.out("wt", words)
			d.mu.Lock()
			var err error
			if isTranspose(id) {
				err = d.transposeLocked(id, wb.ptr, out.ptr, 1, c.k, c.c*c.rs, c.kp, c.rs)
			} else {
				err = d.packLocked(id, wb.ptr, out.ptr, c.k, c.c, c.rs, c.kp)
			}
			d.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			got := h.read(out)
			value := func(ch, rs, k int) uint32 {
				if k >= c.k {
					return 0
				}
				return round(w[(k*c.c+ch)*c.rs+c.rs-1-rs])
			}
			per := 4 / elem
			bad := 0
			for i := range words {
				crs, k := i/(c.kp/per), per*(i%(c.kp/per))
				ch, rs := crs/c.rs, crs%c.rs
				want := value(ch, rs, k)
				if per == 2 {
					want |= value(ch, rs, k+1) << 16
				}
				if g := math.Float32bits(got[i]); g != want {
					if bad++; bad <= 10 {
						t.Errorf("wt word %d (c=%d, rs=%d, k=%d) = %#08x, want %#08x", i, ch, rs, k, g, want)
					}
				}
			}
			h.check()
		})
	}
}

// isTranspose reports whether id is a pack_transpose_*_v2 kernel.
func isTranspose(id kernelID) bool {
	return id == kPackTransposeBF16 || id == kPackTransposeTF32 || id == kPackTransposeF32
}

// testPackTransposeF32 checks pack_transpose_f32_v2 as testPackTransposeBF16
// does, the values copied bit for bit.
func testPackTransposeF32(t *testing.T, d *Device) {
	same := func(x float32) uint32 { return math.Float32bits(x) }
	t.Run("as=pack_nhwc", func(t *testing.T) { testPack(t, d, kPackTransposeF32, 4, same) })
	t.Run("as=pack_crsk_flip", func(t *testing.T) { testPackFlip(t, d, kPackTransposeF32, 4, same) })
}

// testPackTransposeBF16 and testPackTransposeTF32 check
// pack_transpose_bf16_v2 and pack_transpose_tf32_v2 as the channels-last
// packing of x (testPack's cases and expected bits) and as the flipped
// transpose of w (testPackFlip's).
func testPackTransposeBF16(t *testing.T, d *Device) {
	t.Run("as=pack_nhwc", func(t *testing.T) {
		testPack(t, d, kPackTransposeBF16, 2, func(x float32) uint32 { return uint32(cpuref.BF16Bits(x)) })
	})
	t.Run("as=pack_crsk_flip", func(t *testing.T) {
		testPackFlip(t, d, kPackTransposeBF16, 2, func(x float32) uint32 { return uint32(cpuref.BF16Bits(x)) })
	})
}

func testPackTransposeTF32(t *testing.T, d *Device) {
	rna := func(x float32) uint32 {
		b := math.Float32bits(x)
		if b&0x7f800000 == 0x7f800000 {
			return b
		}
		return (b + 0x1000) &^ 0x1fff
	}
	t.Run("as=pack_nhwc", func(t *testing.T) { testPack(t, d, kPackTransposeTF32, 4, rna) })
	t.Run("as=pack_crsk_flip", func(t *testing.T) { testPackFlip(t, d, kPackTransposeTF32, 4, rna) })
}

// TestPackedLaunchers checks each forward pass over packed operands on a
// fake driver: two packing launches then the conv kernel with its grid,
// block and every argument by parameter name (the packed copies in two
// distinct workspaces, Cp = C rounded up to the kernel's chunk), nothing
// allocated on the host in a steady state; and the packing launch's own
// shape and arguments.
func TestPackedLaunchers(t *testing.T) {
	d, f := openFake(t)
	// P = 5, Q = 7; N·P·Q = 70.
	g := cg(2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 0)
	x, w, b, y := mustF32(t, d, g.XLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.K), mustF32(t, d, g.YLen())
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	for _, c := range []struct {
		id       kernelID
		pack     string
		cp       int
		packGrid int // 1-D over 2·72·Cp (/2 for BF16: two channels a thread)
	}{
		{kConvFwdBF16, "pack_nhwc_bf16_v1", 8, 3},
		{kConvFwdTF32Pipe, "pack_nhwc_tf32_v1", 4, 3},
		{kConvFwdPipe, "pack_transpose_f32_v2", 16, 0}, // FP32 packs with the transpose only
	} {
		t.Run("kernel="+kernelTable[c.id].name, func(t *testing.T) {
			before := f.launches
			if err := d.runFwd(c.id, g, x, w, b, y, true); err != nil {
				t.Fatal(err)
			}
			if n := f.launches - before; n != 3 {
				t.Errorf("%d launches, want 3 (pack x, pack w, conv)", n)
			}
			l := f.last
			if l.name != kernelTable[c.id].name {
				t.Fatalf("launched %s last, want %s", l.name, kernelTable[c.id].name)
			}
			th := packedConvs[c.id].threads
			if want := (Dim3{1, 1, 1}); l.grid != want || l.block != (Dim3{th, 1, 1}) || l.shared != 0 {
				t.Errorf("grid %v block %v shared %d, want grid %v block {%d 1 1} shared 0", l.grid, l.block, l.shared, want, th)
			}
			k, _ := kernels.Lookup(l.name)
			want := map[string]uint64{"b": P(b), "y": P(y), "N": 2, "C": 3, "H": 9, "W": 8, "K": 4, "R": 3, "S": 2, "P": 5, "Q": 7,
				"sh": 2, "sw": 1, "ph": 1, "pw": 0, "relu": 1, "Cp": uint64(c.cp)}
			got := map[string]uint64{}
			for j, p := range k.Params {
				got[p.Name] = l.args[j]
			}
			for name, wv := range want {
				if got[name] != wv {
					t.Errorf("parameter %s = %#x, want %#x", name, got[name], wv)
				}
			}
			if len(k.Params) != len(want)+2 || l.nargs != len(k.Params) {
				t.Errorf("%d arguments for %d parameters, the test knows %d + xh, wh", l.nargs, len(k.Params), len(want))
			}
			xh, wh := got["xh"], got["wh"]
			if xh == 0 || wh == 0 || xh == wh || xh == P(x) || wh == P(w) || xh%16 != 0 || wh%16 != 0 {
				t.Errorf("xh = %#x, wh = %#x: want two distinct 16-byte aligned workspaces, not x (%#x) or w (%#x)", xh, wh, P(x), P(w))
			}
			if a := testing.AllocsPerRun(10, func() { d.runFwd(c.id, g, x, w, nil, y, false) }); a != 0 {
				t.Errorf("a forward pass allocates %v times on the host, want 0", a)
			}
			if pk := packedConvs[c.id].pack; pk >= 0 {
				d.mu.Lock()
				err := d.packLocked(pk, x.ptr, DevicePtr(xh), 2, 3, 72, c.cp)
				d.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				l = f.last
				if l.name != c.pack || l.grid != (Dim3{c.packGrid, 1, 1}) || l.block != (Dim3{256, 1, 1}) {
					t.Errorf("launched %s grid %v block %v, want %s grid {%d 1 1} block {256 1 1}", l.name, l.grid, l.block, c.pack, c.packGrid)
				}
				k, _ = kernels.Lookup(l.name)
				want = map[string]uint64{"x": P(x), "xh": xh, "N": 2, "C": 3, "HW": 72, "Cp": uint64(c.cp)}
				if l.nargs != len(want) || len(k.Params) != len(want) {
					t.Fatalf("%d arguments for %d parameters, want %d", l.nargs, len(k.Params), len(want))
				}
				for j, p := range k.Params {
					if l.args[j] != want[p.Name] {
						t.Errorf("pack parameter %s = %#x, want %#x", p.Name, l.args[j], want[p.Name])
					}
				}
			}
			// The coalesced packing the launchers use: x as 2 batches of a
			// 3×72 matrix, grid ⌈72/32⌉ × ⌈Cp/32⌉ × 2 of 32×8 threads.
			tr := packedConvs[c.id].transpose
			d.mu.Lock()
			err := d.transposeLocked(tr, x.ptr, DevicePtr(xh), 2, 3, 72, c.cp, 1)
			d.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			l = f.last
			if l.name != kernelTable[tr].name || l.grid != (Dim3{3, 1, 2}) || l.block != (Dim3{32, 8, 1}) {
				t.Errorf("launched %s grid %v block %v, want %s grid {3 1 2} block {32 8 1}", l.name, l.grid, l.block, kernelTable[tr].name)
			}
			k, _ = kernels.Lookup(l.name)
			want = map[string]uint64{"src": P(x), "dst": xh, "B": 2, "rows": 3, "cols": 72, "rowsP": uint64(c.cp), "rev": 1}
			if l.nargs != len(want) || len(k.Params) != len(want) {
				t.Fatalf("%d arguments for %d parameters, want %d", l.nargs, len(k.Params), len(want))
			}
			for j, p := range k.Params {
				if l.args[j] != want[p.Name] {
					t.Errorf("transpose parameter %s = %#x, want %#x", p.Name, l.args[j], want[p.Name])
				}
			}
		})
	}
}

// TestPackedSimCounters runs each packed kernel on the simulator with
// counters on a ResNet-like 3×3 layer (C = 64, K = 128, 8×8, N = 2: one
// 128-row block tile of forward and bwd-data, five 128-column tiles of
// bwd-filter's R·S·Cp = 576, unsplit) and checks the properties its design
// promises: no shared-memory bank conflicts (the XOR-swizzled ldmatrix and
// 32-bit fragment reads) and 64 mma.sync per warp per k-tile; it logs the
// non-MMA instructions per MMA.
func TestPackedSimCounters(t *testing.T) {
	d := openSim(t)
	g := cg(2, 64, 8, 8, 128, 3, 3, 1, 1, 1, 1)
	for _, id := range []kernelID{kConvFwdBF16, kConvFwdTF32Pipe, kConvBwdDataBF16, kConvBwdDataTF32Pipe, kConvBwdFilterBF16, kConvBwdFilterTF32Pipe, kConvBwdDataPipe, kConvFwdPipe, kConvBwdFilterPipe} {
		v, _ := variantOf(id)
		t.Run("kernel="+v.name, func(t *testing.T) {
			h := newHarness(t, d)
			d.ResetKernelStats()
			align := packedConvs[id].chanAlign
			var err error
			var ktiles, blocks int
			switch v.pass {
			case ConvFwd:
				in := convInputs("int", "packed-counters", g.XLen(), g.WLen())
				err = d.runFwd(id, g, h.in("x", in[0]), h.in("w", in[1]), nil, h.out("y", g.YLen()), false)
				ktiles, blocks = ceilDiv(g.R*g.S*packedChans(g.C, align), v.tile.K), 1
			case ConvBwdData:
				in := convInputs("int", "packed-counters", g.YLen(), g.WLen())
				err = d.runDgrad(id, g, h.in("dy", in[0]), h.in("w", in[1]), h.out("dx", g.XLen()))
				ktiles, blocks = ceilDiv(g.R*g.S*packedChans(g.K, align), v.tile.K), 1
			default:
				if s, _ := packedWgradSplits(id, g, v.tile.K, packedChans(g.C, align)); s != 1 {
					t.Fatalf("packedWgradSplits = %d, the counts below assume one split", s)
				}
				in := convInputs("int", "packed-counters", g.XLen(), g.YLen())
				err = d.runWgrad(id, g, h.in("x", in[0]), h.in("dy", in[1]), h.out("dw", g.WLen()))
				ktiles, blocks = ceilDiv(g.N*g.P()*g.Q(), v.tile.K), ceilDiv(g.R*g.S*packedChans(g.C, align), packedBN)
			}
			if err != nil {
				t.Fatal(err)
			}
			s, ok := d.LastStats()
			if !ok {
				t.Fatal("no stats")
			}
			// Both operands packed by the coalesced transpose, not v1.
			st := d.KernelStats()
			pc := packedConvs[id]
			packs := 0
			for _, name := range []string{"pack_nhwc_bf16_v1", "pack_nhwc_tf32_v1", "pack_crsk_flip_bf16_v1", "pack_crsk_flip_tf32_v1"} {
				packs += int(st[name].Launches)
			}
			if n := st[kernelTable[pc.transpose].name].Launches; n != 2 || packs != 0 {
				t.Errorf("packing launches %v, want 2 of %s", st, kernelTable[pc.transpose].name)
			}
			if v.precision == FP32 {
				// 256 threads, 64 FFMA per k per thread, 16 k a tile.
				if got, want := s.Instructions["fp32"], int64(blocks*256*64*16*ktiles); got < want {
					t.Errorf("%d fp32 thread instructions, want at least the %d FFMA", got, want)
				}
			} else if got, want := s.MMAs(), int64(blocks*4*64*ktiles); got != want {
				t.Errorf("MMAs() = %d, want %d (%d blocks of 4 warps, 64 per k-tile, %d k-tiles)", got, want, blocks, ktiles)
			}
			if s.SharedBankConflicts != 0 {
				t.Errorf("SharedBankConflicts = %d over %d shared requests, want 0", s.SharedBankConflicts, s.SharedRequests)
			}
			if v.precision == FP32 {
				t.Logf("%s %v: %.1f %% of the thread instructions fp32; %s", v.name, g, 100*float64(s.Instructions["fp32"])/float64(s.ThreadInstructions), s.String())
			} else {
				t.Logf("%s %v: %.2f non-MMA thread instructions per mma thread instruction; %s", v.name, g, s.NonMMAPerMMA(), s.String())
			}
			h.check()
		})
	}
}

// TestPackedBackwardLaunchers checks each backward pass over packed
// operands on a fake driver: the packing launches, then the kernel with
// its grid, block and every argument by parameter name (Kp, Cp = K, C
// rounded up to the kernel's chunk; bwd-filter unsplit here, so ws is dw),
// nothing allocated on the host in a steady state; and the flip packing
// launch's shape and arguments.
func TestPackedBackwardLaunchers(t *testing.T) {
	d, f := openFake(t)
	// P = 5, Q = 7; N·H·W = 144, N·P·Q = 70 (one split: fewer than 64 rows
	// a split otherwise).
	g := cg(2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 0)
	x, w, y := mustF32(t, d, g.XLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.YLen())
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	geomArgs := map[string]uint64{"N": 2, "C": 3, "H": 9, "W": 8, "K": 4, "R": 3, "S": 2, "P": 5, "Q": 7,
		"sh": 2, "sw": 1, "ph": 1, "pw": 0}
	for _, c := range []struct {
		id       kernelID
		pack     []string // the launches before the kernel
		grid     Dim3
		cp, kp   int
		tps      int // bwd-filter: k-tiles of N·P·Q = 70 in the one split
		flipGrid int // 1-D over C·R·S·Kp (/2 for BF16)
	}{
		{kConvBwdDataBF16, []string{"pack_nhwc_bf16_v1", "pack_crsk_flip_bf16_v1"}, Dim3{2, 1, 1}, 0, 8, 0, 1},
		{kConvBwdDataTF32Pipe, []string{"pack_nhwc_tf32_v1", "pack_crsk_flip_tf32_v1"}, Dim3{2, 1, 1}, 0, 4, 0, 1},
		{kConvBwdFilterBF16, []string{"pack_nhwc_bf16_v1", "pack_nhwc_bf16_v1"}, Dim3{1, 1, 1}, 8, 8, 3, 0},
		{kConvBwdFilterTF32Pipe, []string{"pack_nhwc_tf32_v1", "pack_nhwc_tf32_v1"}, Dim3{1, 1, 1}, 4, 4, 5, 0},
		{kConvBwdDataPipe, []string{"pack_transpose_f32_v2", "pack_transpose_f32_v2"}, Dim3{2, 1, 1}, 0, 16, 0, 1},
		{kConvBwdFilterPipe, []string{"pack_transpose_f32_v2", "pack_transpose_f32_v2"}, Dim3{1, 1, 1}, 16, 16, 5, 0},
	} {
		v, _ := variantOf(c.id)
		t.Run("kernel="+v.name, func(t *testing.T) {
			want := map[string]uint64{"Kp": uint64(c.kp)}
			for k, val := range geomArgs {
				want[k] = val
			}
			var call func() error
			var a, b string // the packed workspaces' parameters
			if v.pass == ConvBwdData {
				call = func() error { return d.runDgrad(c.id, g, y, w, x) }
				want["dx"] = P(x)
				a, b = "dyh", "wt"
			} else {
				if s, tps := packedWgradSplits(c.id, g, v.tile.K, c.cp); s != 1 || tps != c.tps {
					t.Fatalf("packedWgradSplits = %d splits of %d tiles, want 1 of %d", s, tps, c.tps)
				}
				call = func() error { return d.runWgrad(c.id, g, x, y, w) }
				want["ws"], want["Cp"], want["tilesPerSplit"] = P(w), uint64(c.cp), uint64(c.tps)
				a, b = "dyh", "xh"
			}
			before := f.launches
			if err := call(); err != nil {
				t.Fatal(err)
			}
			if n := f.launches - before; n != len(c.pack)+1 {
				t.Errorf("%d launches, want %d (%v, then the kernel)", n, len(c.pack)+1, c.pack)
			}
			l := f.last
			if l.name != v.name {
				t.Fatalf("launched %s last, want %s", l.name, v.name)
			}
			if th := variantThreads(v); l.grid != c.grid || l.block != (Dim3{th, 1, 1}) || l.shared != 0 {
				t.Errorf("grid %v block %v shared %d, want grid %v block {%d 1 1} shared 0", l.grid, l.block, l.shared, c.grid, th)
			}
			k, _ := kernels.Lookup(l.name)
			got := map[string]uint64{}
			for j, p := range k.Params {
				got[p.Name] = l.args[j]
			}
			for name, wv := range want {
				if got[name] != wv {
					t.Errorf("parameter %s = %#x, want %#x", name, got[name], wv)
				}
			}
			if len(k.Params) != len(want)+2 || l.nargs != len(k.Params) {
				t.Errorf("%d arguments for %d parameters, the test knows %d + %s, %s", l.nargs, len(k.Params), len(want), a, b)
			}
			pa, pb := got[a], got[b]
			if pa == 0 || pb == 0 || pa == pb || pa%16 != 0 || pb%16 != 0 || pa == P(y) || pb == P(w) || pb == P(x) {
				t.Errorf("%s = %#x, %s = %#x: want two distinct 16-byte aligned workspaces", a, pa, b, pb)
			}
			if al := testing.AllocsPerRun(10, func() { call() }); al != 0 {
				t.Errorf("a backward pass allocates %v times on the host, want 0", al)
			}
			pc := packedConvs[c.id]
			if v.pass != ConvBwdData || pc.flip < 0 {
				return // v11 packs with the transpose only (TestPackedSimCounters)
			}
			d.mu.Lock()
			err := d.packLocked(pc.flip, w.ptr, DevicePtr(pb), 4, 3, 6, c.kp)
			d.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			l = f.last
			if l.name != c.pack[1] || l.grid != (Dim3{c.flipGrid, 1, 1}) || l.block != (Dim3{256, 1, 1}) {
				t.Errorf("launched %s grid %v block %v, want %s grid {%d 1 1} block {256 1 1}", l.name, l.grid, l.block, c.pack[1], c.flipGrid)
			}
			want = map[string]uint64{"w": P(w), "wt": pb, "K": 4, "C": 3, "RS": 6, "Kp": uint64(c.kp)}
			k, _ = kernels.Lookup(l.name)
			if l.nargs != len(want) || len(k.Params) != len(want) {
				t.Fatalf("%d arguments for %d parameters, want %d", l.nargs, len(k.Params), len(want))
			}
			for j, p := range k.Params {
				if l.args[j] != want[p.Name] {
					t.Errorf("flip parameter %s = %#x, want %#x", p.Name, l.args[j], want[p.Name])
				}
			}
		})
	}
}

// TestPackCoalescing measures the global-memory transactions of the
// packing kernels on the simulator, v1 (one output word per thread) and
// the coalesced v2 transpose, on a ResNet-like x (N = 2, C = 64, 28×28)
// and w (K = 128, C = 64, 3×3): sectors (32 bytes) per packed element.
// Reading 4 bytes and writing 2 (BF16) or 4 (TF32) per element needs at
// least 6/32 or 8/32 sectors; v2 must stay within 10 % of that, and at
// least 4× below v1. It logs both.
func TestPackCoalescing(t *testing.T) {
	d := openSim(t)
	const n, c, hw, k, rs = 2, 64, 28 * 28, 128, 9
	for _, pc := range []packedConv{packedBF16, packedTF32} {
		for _, what := range []string{"x", "w"} {
			t.Run(kv("kernel", kernelTable[pc.transpose].name, "as", what), func(t *testing.T) {
				h := newHarness(t, d)
				rows, cols, batch, v1 := c, hw, n, pc.pack
				if what == "w" {
					rows, cols, batch, v1 = k, c*rs, 1, pc.flip
				}
				elems := batch * rows * cols
				src := h.in("src", uniform(newRand("coalesce"), elems))
				out := h.out("dst", elems*pc.elemBytes/4)
				sectors := func(run func() error) float64 {
					d.mu.Lock()
					err := run()
					d.mu.Unlock()
					if err != nil {
						t.Fatal(err)
					}
					s, ok := d.LastStats()
					if !ok {
						t.Fatal("no stats")
					}
					return float64(s.GlobalSectors) / float64(elems)
				}
				before := sectors(func() error {
					if what == "w" {
						return d.packLocked(v1, src.ptr, out.ptr, k, c, rs, rows)
					}
					return d.packLocked(v1, src.ptr, out.ptr, n, c, hw, rows)
				})
				rev := 1
				if what == "w" {
					rev = rs
				}
				after := sectors(func() error {
					return d.transposeLocked(pc.transpose, src.ptr, out.ptr, batch, rows, cols, rows, rev)
				})
				ideal := float64(4+pc.elemBytes) / 32
				t.Logf("%s: %.3f sectors per element with %s, %.3f with %s (ideal %.3f)", what,
					before, kernelTable[v1].name, after, kernelTable[pc.transpose].name, ideal)
				if after > 1.1*ideal || 4*after > before {
					t.Errorf("%s: %.3f sectors per element, want ≤ %.3f (1.1 × ideal) and ≤ %s's %.3f / 4", kernelTable[pc.transpose].name,
						after, 1.1*ideal, kernelTable[v1].name, before)
				}
				h.check()
			})
		}
	}
}

// TestPackedSplitLaunchers checks FP32's split-K bwd-filter on a fake
// driver: two packing launches, conv2d_bwd_filter_v13_igemm_pipe into a
// workspace, then conv2d_bwd_filter_v13_reduce with its 1-D grid over
// K·R·S·C and every argument by parameter name (the workspace of
// channels-last partial sums, dw, the split count, K, C, R·S and Cp),
// nothing allocated on the host or the device in a steady state.
func TestPackedSplitLaunchers(t *testing.T) {
	d, f := openFake(t)
	// N·P·Q = 1024: 64 k-tiles of 16 rows, split.
	g := cg(4, 3, 16, 16, 20, 3, 3, 1, 1, 1, 1)
	cp := packedChans(g.C, packedF32.chanAlign)
	splits, _ := fp32PipeWgradSplits(g, tf32PipeBK, cp)
	if splits < 2 {
		t.Fatalf("fp32PipeWgradSplits(%v) = %d splits, want several", g, splits)
	}
	x, dy, dw := mustF32(t, d, g.XLen()), mustF32(t, d, g.YLen()), mustF32(t, d, g.WLen())
	call := func() error { return d.runWgrad(kConvBwdFilterPipe, g, x, dy, dw) }
	before := f.launches
	if err := call(); err != nil {
		t.Fatal(err)
	}
	if n := f.launches - before; n != 4 {
		t.Errorf("%d launches, want 4 (pack dy, pack x, conv, reduce)", n)
	}
	l := f.last
	if name := kernelTable[kConvBwdFilterReducePipe].name; l.name != name {
		t.Fatalf("launched %s last, want %s", l.name, name)
	}
	grid, block := linear(g.WLen())
	if l.grid != grid || l.block != block || l.shared != 0 {
		t.Errorf("reduce grid %v block %v shared %d, want %v %v 0", l.grid, l.block, l.shared, grid, block)
	}
	k, _ := kernels.Lookup(l.name)
	got := map[string]uint64{}
	for j, p := range k.Params {
		got[p.Name] = l.args[j]
	}
	want := map[string]uint64{"dw": uint64(dw.ptr), "splits": uint64(splits), "K": 20, "C": 3, "RS": 9, "Cp": uint64(cp)}
	for name, wv := range want {
		if got[name] != wv {
			t.Errorf("reduce parameter %s = %#x, want %#x", name, got[name], wv)
		}
	}
	if ws := got["ws"]; len(k.Params) != len(want)+1 || l.nargs != len(k.Params) || ws == 0 || ws%16 != 0 ||
		ws == uint64(dw.ptr) || ws == uint64(x.ptr) || ws == uint64(dy.ptr) {
		t.Errorf("reduce arguments %#x: want a 16-byte aligned workspace ws, then %v", l.args[:l.nargs], want)
	}
	allocs := f.allocs
	if al := testing.AllocsPerRun(10, func() { call() }); al != 0 {
		t.Errorf("a split launch allocates %v times on the host, want 0", al)
	}
	if f.allocs != allocs {
		t.Errorf("split launches made %d device allocations, want 0 (cached workspaces)", f.allocs-allocs)
	}
}
