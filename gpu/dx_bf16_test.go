package gpu

import (
	"errors"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/kernels"
)

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"conv2d_bwd_data_v9_igemm_bf16dx", []string{"conv2d_bwd_data_v9_igemm_bf16dx"}, testConvBackwardDataBF16DX},
		conformanceCase{"bn_bwd_bf16xdy_v1", []string{"bn_bwd_bf16xdy_v1"}, func(t *testing.T, d *Device) { bnBackward(t, d, bnBF16XDY) }},
		conformanceCase{"bn_bwd_relu_bf16xdy_v1", []string{"bn_bwd_relu_bf16xdy_v1"},
			func(t *testing.T, d *Device) { bnBackwardReLU(t, d, bnBF16XDY) }},
		conformanceCase{"bn_bwd_apply_pack_bf16xdy_v1", []string{"bn_bwd_apply_pack_bf16xdy_v1", "bn_bwd_pack_bf16xdy_v1",
			"bn_bwd_relu_apply_pack_bf16xdy_v1", "bn_bwd_relu_pack_bf16xdy_v1"}, func(t *testing.T, d *Device) { bnBwdApplyPack(t, d, bnBF16XDY) }},
		conformanceCase{"relu_bwd_bf16dy_v1", []string{"relu_bwd_bf16dy_v1"}, testReLUBackwardBF16DY})
	for _, k := range dxTwins {
		launcherTestedElsewhere[k] = true // TestBF16DxLaunchers
	}
}

// dxTwins are the kernels of dx_bf16.go, for TestBF16DxLaunchers.
var dxTwins = []string{"conv2d_bwd_data_v9_igemm_bf16dx", "bn_bwd_bf16xdy_v1", "bn_bwd_relu_bf16xdy_v1", "bn_bwd_apply_pack_bf16xdy_v1",
	"bn_bwd_pack_bf16xdy_v1", "bn_bwd_relu_apply_pack_bf16xdy_v1", "bn_bwd_relu_pack_bf16xdy_v1", "relu_bwd_bf16dy_v1"}

// testConvBackwardDataBF16DX checks conv2d_bwd_data_v9_igemm_bf16dx on the
// swept shapes against cpuref: with small integers (exact products and
// sums, values beyond 2⁸ rounded) dx is cpuref.RoundBF16 of
// Conv2DBackwardDataDirect's bit for bit; with uniform reals, where v9's
// float32 sum order is its own, dx is RoundBF16 of
// conv2d_bwd_data_v9_igemm_bf16's float32 dx (itself within the float32
// bound of cpuref: its own case) bit for bit, a NaN in dy included.
func testConvBackwardDataBF16DX(t *testing.T, d *Device) {
	if !d.hasTarget(80) {
		t.Skipf("conv2d_bwd_data_v9_igemm_bf16dx needs compute capability 8.0; %v has less", d)
	}
	for _, kind := range inputKinds {
		for _, g := range sweptConvShapes() {
			t.Run(kv("inputs", kind)+"/"+g.String(), func(t *testing.T) {
				in := convInputs(kind, "inputs="+kind+"/"+g.String(), g.YLen(), g.WLen())
				dy, w := in[0], in[1]
				if kind != "int" && g.YLen() > 2 {
					dy[g.YLen()/2] = float32(math.NaN())
				}
				h := newHarness(t, d)
				dx, dx32 := h.outBF16("dx", g.XLen()), h.out("dx32", g.XLen())
				dyb, wb := h.in("dy", dy), h.in("w", w)
				mustNil(t, d.runDgrad(kConvBwdDataBF16, g, dyb, wb, dx))
				mustNil(t, d.runDgrad(kConvBwdDataBF16, g, dyb, wb, dx32))
				want := h.read(dx32)
				if kind == "int" {
					want = make([]float32, g.XLen())
					mustNil(t, cpuref.Conv2DBackwardDataDirect(g, bf16Ref(dy), bf16Ref(w), want))
				}
				cpuref.RoundBF16Slice(want, want)
				checkSameBits(t, "dx", h.readBF16(dx), want)
				h.check()
			})
		}
	}
}

// testReLUBackwardBF16DY checks relu_bwd_bf16dy_v1 against cpuref: dx bit
// for bit as cpuref.ReLUBackward on dy rounded to bfloat16 (a NaN in dy
// and x at zero included).
func testReLUBackwardBF16DY(t *testing.T, d *Device) {
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			rng := newRand(t.Name())
			x, dy := smallInts(rng, n, -2, 2), uniform(rng, n)
			if n > 2 {
				dy[n/2], x[n/2] = float32(math.NaN()), 1
			}
			h := newHarness(t, d)
			dyb, r := h.inBF16("dy", dy)
			want := make([]float32, n)
			mustNil(t, cpuref.ReLUBackward(x, r, want))
			dx := h.out("dx", n)
			mustNil(t, d.ReLUBackward(h.in("x", x), dyb, dx))
			checkSameBits(t, "dx", h.read(dx), want)
			h.check()
		})
	}
}

// TestBF16DxLaunchers is TestLaunchers for the kernels of dx_bf16.go: the
// backward-data pass of conv2d_bwd_data_v9_igemm_bf16 into a bfloat16 dx
// launches conv2d_bwd_data_v9_igemm_bf16dx with v9's arguments (dx the
// bfloat16 buffer), alone and in Conv2DBackward, and each backward
// batch-norm path on a bfloat16 x and dy its _bf16xdy kernel, every
// argument in the parameter of that name, with the launch shape of the
// float32 form; a bfloat16 dy with a float32 x is refused, nothing
// launched.
func TestBF16DxLaunchers(t *testing.T) {
	d, f := openFake(t)
	P := func(b *Buffer) uint64 {
		if b == nil {
			return 0
		}
		return uint64(b.ptr)
	}
	t.Run("conv", func(t *testing.T) {
		g := cg(2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 0) // P = 5, Q = 7
		dy, w, dx := mustF32(t, d, g.YLen()), mustF32(t, d, g.WLen()), mustBF16(t, d, g.XLen())
		before := f.launches
		mustNil(t, d.runDgrad(kConvBwdDataBF16, g, dy, w, dx))
		if n := f.launches - before; n != 3 {
			t.Errorf("%d launches, want 3 (pack dy, pack w, conv)", n)
		}
		l := f.last
		k, _ := kernels.Lookup("conv2d_bwd_data_v9_igemm_bf16dx")
		got := map[string]uint64{}
		for j, p := range k.Params {
			got[p.Name] = l.args[j]
		}
		want := map[string]uint64{"dyh": got["dyh"], "wt": got["wt"], "dx": P(dx), "N": 2, "C": 3, "H": 9, "W": 8, "K": 4,
			"R": 3, "S": 2, "P": 5, "Q": 7, "sh": 2, "sw": 1, "ph": 1, "pw": 0, "Kp": 8}
		if got["dyh"] == 0 || got["wt"] == 0 || got["dyh"] == got["wt"] {
			t.Errorf("dyh = %#x, wt = %#x: want two distinct workspaces", got["dyh"], got["wt"])
		}
		grid := Dim3{ceilDiv(2*9*8, 128), 1, 1}
		checkFakeLaunch(t, l, "conv2d_bwd_data_v9_igemm_bf16dx", grid, Dim3{128, 1, 1}, want,
			func() error { return d.runDgrad(kConvBwdDataBF16, g, dy, w, dx) })
	})
	const n, c, hw = 2, 33, 70 // Cp = 40 (bfloat16), 36 (TF32)
	x, dy, dx, y32 := mustBF16(t, d, n*c*hw), mustBF16(t, d, n*c*hw), mustF32(t, d, n*c*hw), mustF32(t, d, n*c*hw)
	dyk := mustF32(t, d, n*hw*40/2)
	gm, bt, sm, si, dg, db := mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c)
	locked := func(f func() error) func() error {
		return func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return f()
		}
	}
	// bwd is a backward kernel's arguments: beta and dx where given, and
	// the copy's (dst, Cp, tf32) where cp > 0
	bwd := func(beta, out *Buffer, cp, tf32 uint64) map[string]uint64 {
		m := map[string]uint64{"N": n, "C": c, "HW": hw, "x": P(x), "gamma": P(gm), "save_mean": P(sm), "save_inv_std": P(si),
			"dy": P(dy), "dgamma": P(dg), "dbeta": P(db), "dx": P(out)}
		if beta != nil {
			m["beta"] = P(beta)
		}
		if cp > 0 {
			m["dst"], m["Cp"], m["tf32"] = P(dyk), cp, tf32
			if out == nil {
				delete(m, "dx")
			}
		}
		return m
	}
	perChannel, tile := Dim3{c, 1, 1}, Dim3{3, 2, n}
	cases := []struct {
		name   string
		call   func() error
		kernel string
		grid   Dim3
		want   map[string]uint64
	}{
		{"bwd", func() error { return d.BatchNormBackward(n, c, hw, x, gm, sm, si, dy, dx, dg, db) },
			"bn_bwd_bf16xdy_v1", perChannel, bwd(nil, dx, 0, 0)},
		{"bwd-relu", func() error { return d.BatchNormBackwardReLU(n, c, hw, x, gm, bt, sm, si, dy, nil, dg, db) },
			"bn_bwd_relu_bf16xdy_v1", perChannel, bwd(bt, nil, 0, 0)},
		{"bwd-pack", locked(func() error { return d.bnBwdApplyPack(n, c, hw, x, gm, nil, sm, si, dy, dg, db, dx, dyk, 40, false) }),
			"bn_bwd_apply_pack_bf16xdy_v1", tile, bwd(nil, dx, 40, 0)},
		{"bwd-copy-only", locked(func() error { return d.bnBwdApplyPack(n, c, hw, x, gm, nil, sm, si, dy, dg, db, nil, dyk, 40, false) }),
			"bn_bwd_pack_bf16xdy_v1", tile, bwd(nil, nil, 40, 0)},
		{"bwd-relu-pack-tf32", locked(func() error { return d.bnBwdApplyPack(n, c, hw, x, gm, bt, sm, si, dy, dg, db, dx, dyk, 36, true) }),
			"bn_bwd_relu_apply_pack_bf16xdy_v1", tile, bwd(bt, dx, 36, 1)},
		{"bwd-relu-copy-only", locked(func() error { return d.bnBwdApplyPack(n, c, hw, x, gm, bt, sm, si, dy, dg, db, nil, dyk, 40, false) }),
			"bn_bwd_relu_pack_bf16xdy_v1", tile, bwd(bt, nil, 40, 0)},
	}
	block := map[bool]Dim3{true: {256, 1, 1}, false: {32, 8, 1}}
	seen := map[string]bool{"conv2d_bwd_data_v9_igemm_bf16dx": true}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustNil(t, tc.call())
			checkFakeLaunch(t, f.last, tc.kernel, tc.grid, block[tc.grid == perChannel], tc.want, tc.call)
		})
		seen[tc.kernel] = true
	}
	t.Run("relu", func(t *testing.T) {
		call := func() error { return d.ReLUBackward(y32, dy, dx) }
		mustNil(t, call())
		checkFakeLaunch(t, f.last, "relu_bwd_bf16dy_v1", Dim3{ceilDiv(n*c*hw, 256), 1, 1}, Dim3{256, 1, 1},
			map[string]uint64{"x": P(y32), "dy": P(dy), "dx": P(dx), "n": n * c * hw}, call)
	})
	seen["relu_bwd_bf16dy_v1"] = true
	for _, k := range dxTwins {
		if !seen[k] {
			t.Errorf("kernel %s has no case here", k)
		}
	}
	// A bfloat16 dy with a float32 x: no kernel reads it.
	before := f.launches
	for name, err := range map[string]error{
		"bwd":      d.BatchNormBackward(n, c, hw, y32, gm, sm, si, dy, dx, dg, db),
		"bwd-relu": d.BatchNormBackwardReLU(n, c, hw, y32, gm, bt, sm, si, dy, dx, dg, db),
	} {
		if !errors.Is(err, geom.ErrGeometry) {
			t.Errorf("%s: a bfloat16 dy with a float32 x: %v, want an error wrapping geom.ErrGeometry", name, err)
		}
	}
	if n := f.launches - before; n != 0 {
		t.Errorf("the refused calls launched %d kernels", n)
	}
}

// TestConvInputGradBF16 runs bf16Chain (conv → batch norm + ReLU → conv,
// forward and backward, at BF16) on the simulator with the second conv's
// input gradient dz in a bfloat16 buffer (ConvInputGradBF16), read by the
// batch norm's backward pass, against the chain with dz in float32,
// rounded to bfloat16 on the host before the batch norm reads it (y
// bfloat16 in both): every result the same bit for bit, with the same
// launches. Where the pass is not a BF16 one a bfloat16 dx is refused with
// nothing launched, and the operations that do not take a bfloat16
// gradient refuse it.
func TestConvInputGradBF16(t *testing.T) { testConvInputGradBF16(t, openSim(t)) }

// testConvInputGradBF16 is TestConvInputGradBF16 on d
// (TestConvInputGradBF16CUDA on a GPU); skipped where d cannot run BF16.
func testConvInputGradBF16(t *testing.T, d *Device) {
	if err := d.SetPrecision(BF16); err != nil {
		t.Skip(err)
	}
	defer d.SetPrecision(FP32)
	_, g1 := bf16ChainGeoms()
	if !d.ConvInputGradBF16(g1) {
		t.Fatalf("ConvInputGradBF16(%v) = false at BF16 (backward-data kernel %s)", g1, d.ConvKernelFor(ConvBwdData, g1))
	}
	ch := newBF16Chain(t, d)
	ref, got := ch.run(true, dzRounded), ch.run(true, dzBF16)
	ch.same(t, got, ref)
	// dz rounded at all: the float32 chain's dz differs
	if plain := ch.run(true, dzFloat32); bitsEqual(plain.dz, got.dz) {
		t.Errorf("dz rounded to bfloat16 equals the float32 dz: the case does not test the rounding")
	}

	// Refused, nothing launched.
	dy, w, dx16 := mustF32(t, d, g1.YLen()), mustF32(t, d, g1.WLen()), mustBF16(t, d, g1.XLen())
	small := cg(1, 1, 3, 3, 1, 1, 1, 1, 1, 0, 0) // too small for v9: the direct kernel
	dys, ws, dxs := mustF32(t, d, small.YLen()), mustF32(t, d, small.WLen()), mustBF16(t, d, small.XLen())
	x32, z, dw := mustF32(t, d, g1.XLen()), mustF32(t, d, g1.XLen()), mustF32(t, d, g1.WLen())
	pc := make([]*Buffer, 5) // a batch norm's per-channel buffers
	for i := range pc {
		pc[i] = mustF32(t, d, g1.C)
	}
	l := d.Launches()
	for name, err := range map[string]error{
		"direct bwd-data":     d.Conv2DBackwardData(small, dys, ws, dxs),
		"bwd-data dy":         d.Conv2DBackwardData(g1, dx16, w, z),
		"bwd-filter x":        d.Conv2DBackwardFilter(g1, dx16, dy, dw),
		"float32 x in the bn": d.BatchNormBackward(g1.N, g1.C, g1.H*g1.W, x32, pc[0], pc[1], pc[2], dx16, z, pc[3], pc[4]),
	} {
		if !errors.Is(err, geom.ErrGeometry) {
			t.Errorf("%s with a bfloat16 buffer: %v, want an error wrapping geom.ErrGeometry", name, err)
		}
	}
	if d.ConvInputGradBF16(small) {
		t.Errorf("ConvInputGradBF16(%v) = true for the kernel %s", small, d.ConvKernelFor(ConvBwdData, small))
	}
	mustNil(t, d.SetPrecision(TF32))
	if d.ConvInputGradBF16(g1) {
		t.Errorf("ConvInputGradBF16 true at TF32")
	}
	if err := d.Conv2DBackwardData(g1, dy, w, dx16); !errors.Is(err, geom.ErrGeometry) {
		t.Errorf("a TF32 bwd-data pass into a bfloat16 dx: %v, want an error wrapping geom.ErrGeometry", err)
	}
	if err := d.Conv2DBackward(g1, x32, dy, w, dw, nil, dx16, nil); !errors.Is(err, geom.ErrGeometry) {
		t.Errorf("a TF32 Conv2DBackward into a bfloat16 dx: %v, want an error wrapping geom.ErrGeometry", err)
	}
	if n := d.Launches() - l; n != 0 {
		t.Errorf("the refused calls launched %d kernels", n)
	}
}

// bitsEqual reports whether a and b hold the same bits.
func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
