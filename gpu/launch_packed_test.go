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
// PTX ISA defines it: to nearest, ties away from zero, on the 10 explicit
// mantissa bits; NaN and infinities unchanged.
func testPackTF32(t *testing.T, d *Device) {
	testPack(t, d, kPackNHWCTF32, 4, func(x float32) uint32 {
		b := math.Float32bits(x)
		if b&0x7f800000 == 0x7f800000 {
			return b
		}
		return (b + 0x1000) &^ 0x1fff
	})
}

// testPack checks packing kernel id (elem bytes per packed element,
// round the expected bits of one element) on swept shapes.
func testPack(t *testing.T, d *Device, id kernelID, elem int, round func(float32) uint32) {
	if !d.hasTarget(80) {
		t.Skipf("%s needs compute capability 8.0; %v has less", kernelTable[id].name, d)
	}
	special := []float32{1 + 1.0/256, 1 + 3.0/256, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0x00018000), math.MaxFloat32, -0.0}
	for _, c := range []struct{ n, c, hw, cp int }{{2, 3, 5, 8}, {1, 8, 7, 8}, {3, 9, 4, 16}, {1, 1, 1, 8}} {
		t.Run(kv("N", c.n, "C", c.c, "HW", c.hw, "Cp", c.cp), func(t *testing.T) {
			x := uniform(newRand(kv("pack", c.n, c.c, c.hw)), c.n*c.c*c.hw)
			copy(x, special)
			h := newHarness(t, d)
			words := c.n * c.hw * c.cp * elem / 4
			xb, out := h.in("x", x), h.out("xh", words)
			d.mu.Lock()
			err := d.packLocked(id, xb.ptr, out.ptr, c.n, c.c, c.hw, c.cp)
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
			if want := (Dim3{1, 1, 1}); l.grid != want || l.block != (Dim3{packedThreads, 1, 1}) || l.shared != 0 {
				t.Errorf("grid %v block %v shared %d, want grid %v block {%d 1 1} shared 0", l.grid, l.block, l.shared, want, packedThreads)
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
			d.mu.Lock()
			err := d.packLocked(packedConvs[c.id].pack, x.ptr, DevicePtr(xh), 2, 3, 72, c.cp)
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
		})
	}
}

// TestPackedSimCounters runs each packed forward kernel on the simulator
// with counters on a ResNet-like 3×3 layer (C = 64, K = 128, 8×8, N = 2:
// one 128×128 block tile) and checks the properties its design promises:
// no shared-memory bank conflicts (the XOR-swizzled ldmatrix reads) and 64
// mma.sync per warp per k-tile; it logs the non-MMA instructions per MMA.
func TestPackedSimCounters(t *testing.T) {
	d := openSim(t)
	g := cg(2, 64, 8, 8, 128, 3, 3, 1, 1, 1, 1)
	for _, id := range []kernelID{kConvFwdBF16, kConvFwdTF32Pipe} {
		v, _ := variantOf(id)
		t.Run("kernel="+v.name, func(t *testing.T) {
			h := newHarness(t, d)
			in := convInputs("int", "packed-counters", g.XLen(), g.WLen())
			y := h.out("y", g.YLen())
			if err := d.runFwd(id, g, h.in("x", in[0]), h.in("w", in[1]), nil, y, false); err != nil {
				t.Fatal(err)
			}
			s, ok := d.LastStats()
			if !ok {
				t.Fatal("no stats")
			}
			ktiles := ceilDiv(g.R*g.S*packedChans(g.C, packedConvs[id].chanAlign), v.tile.K)
			if got, want := s.MMAs(), int64(4*64*ktiles); got != want {
				t.Errorf("MMAs() = %d, want %d (4 warps, 64 per k-tile, %d k-tiles)", got, want, ktiles)
			}
			if s.SharedBankConflicts != 0 {
				t.Errorf("SharedBankConflicts = %d over %d shared requests, want 0", s.SharedBankConflicts, s.SharedRequests)
			}
			t.Logf("%s %v: %.2f non-MMA thread instructions per mma thread instruction; %s", v.name, g, s.NonMMAPerMMA(), s.String())
			h.check()
		})
	}
}
