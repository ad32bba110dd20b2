package gpu

import (
	"errors"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

// The batch norms that write a convolution's channels-last copies
// (kernels/norm_pack.cu, BatchNormForwardKeep, BatchNormBackwardKeep).

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"bn_apply_pack_bf16_v1", []string{"bn_train_stats_v1", "bn_apply_pack_bf16_v1", "bn_apply_pack_tf32_v1",
			"bn_pack_bf16_v1"}, testBNApplyPack},
		conformanceCase{"bn_bwd_apply_pack_v1", []string{"bn_bwd_apply_pack_v1", "bn_bwd_pack_v1",
			"bn_bwd_relu_apply_pack_v1", "bn_bwd_relu_pack_v1"}, testBNBwdApplyPack})
	launcherTestedElsewhere["bn_train_stats_v1"] = true     // TestBNKeepLaunchers
	launcherTestedElsewhere["bn_apply_pack_bf16_v1"] = true // TestBNKeepLaunchers
	launcherTestedElsewhere["bn_apply_pack_tf32_v1"] = true // TestBNKeepLaunchers
	launcherTestedElsewhere["bn_pack_bf16_v1"] = true       // TestBNKeepLaunchers
	launcherTestedElsewhere["bn_bwd_apply_pack_v1"] = true  // TestBNKeepLaunchers
	launcherTestedElsewhere["bn_bwd_pack_v1"] = true        // TestBNKeepLaunchers
	for _, k := range []string{"bn_bwd_relu_apply_pack_v1", "bn_bwd_relu_pack_v1"} {
		launcherTestedElsewhere[k] = true // TestBNKeepLaunchers
	}
}

// checkOutput is checkSameBits(t, name, got, want), or with copyOnly (a
// kernel writing a copy alone) every element of got still the harness's
// poison: not written.
func checkOutput(t *testing.T, name string, got, want []float32, copyOnly bool) {
	t.Helper()
	if !copyOnly {
		checkSameBits(t, name, got, want)
		return
	}
	for i, v := range got {
		if math.Float32bits(v) != poisonBits {
			t.Fatalf("%s[%d] = %g written by the copy-only kernel, want the poison untouched", name, i, v)
		}
	}
}

// packedRound is the word pc's packing makes of a value: cpuref.BF16Bits
// (bfloat16, to nearest even) or cpuref.RoundTF32's bits.
func packedRound(pc packedConv) func(float32) uint32 {
	if pc == packedTF32 {
		return func(v float32) uint32 { return math.Float32bits(cpuref.RoundTF32(v)) }
	}
	return func(v float32) uint32 { return uint32(cpuref.BF16Bits(v)) }
}

// packedWant checks got, the channels-last copy (n, hw, cp) of v (n, c,
// hw) with elem bytes an element, word by word against round of each
// value, channels past c zero.
func packedWant(t *testing.T, name string, got, v []float32, n, c, hw, cp, elem int, round func(float32) uint32) {
	t.Helper()
	value := func(img, j, ch int) uint32 {
		if ch >= c {
			return 0
		}
		return round(v[(img*c+ch)*hw+j])
	}
	per, bad := 4/elem, 0
	for i := range n * hw * cp / per {
		pix, ch := i/(cp/per), per*(i%(cp/per))
		img, j := pix/hw, pix%hw
		w := value(img, j, ch)
		if per == 2 {
			w |= value(img, j, ch+1) << 16
		}
		if math.Float32bits(got[i]) != w && bad < 10 {
			bad++
			t.Errorf("%s word %d (n=%d hw=%d c=%d) = %#08x, want %#08x", name, i, img, j, ch, math.Float32bits(got[i]), w)
		}
	}
}

// testBNBwdApplyPack checks bn_bwd_apply_pack_v1 after bn_bwd_v1's sums
// (dx null), as BatchNormBackwardKeep runs them, against cpuref: dx,
// dgamma and dbeta bit for bit as BatchNormBackward32, and every word of
// dx's copy as cpuref.BF16Bits (bfloat16) or cpuref.RoundTF32 (TF32) of
// dx, channels past C zero, on bnShapes (partial tiles on both axes) with a
// NaN in dy; and bn_bwd_pack_v1 (copyOnly, BatchNormBackwardCopy): the
// same words, dx's buffer left as it was (the harness's poison). With
// relu, their bn_bwd_relu_ forms after bn_bwd_relu_v1's sums, against
// cpuref.ReLUBackward on the ReLU's output and then BatchNormBackward32
// (bnReLUCase).
func testBNBwdApplyPack(t *testing.T, d *Device) { bnBwdApplyPack(t, d, bnF32) }

// bnBwdApplyPack is testBNBwdApplyPack, where f says so with x (and dy)
// rounded to bfloat16 in bfloat16 buffers (xIn, dyIn): bn_bwd_bf16x_v1's
// sums, then bn_bwd_apply_pack_bf16x_v1 (their _bf16xdy forms).
func bnBwdApplyPack(t *testing.T, d *Device, f bnTypes) {
	if !d.hasTarget(80) {
		t.Skipf("bn_bwd_apply_pack_v1 needs compute capability 8.0; %v has less", d)
	}
	for _, s := range bnShapesFor(d) {
		n, c, hw := s[0], s[1], s[2]
		for m := range 8 {
			pc, copyOnly, relu := packedBF16, m&2 != 0, m&4 != 0
			if m&1 != 0 {
				pc = packedTF32
			}
			if relu && (n*hw < 2 || n*c*hw < 4) {
				continue // bnReLUCase's mask needs values to keep and to drop
			}
			t.Run(kv("tf32", pc == packedTF32, "copyOnly", copyOnly, "relu", relu, "N", n, "C", c, "HW", hw), func(t *testing.T) {
				L := n * c * hw
				var x, dy, gamma, beta, mean, inv, masked []float32
				if relu {
					x, dy, gamma, beta, mean, inv, masked = bnReLUCase(t, n, c, hw, f)
				} else {
					rng := newRand(t.Name())
					x, dy = uniform(rng, L), uniform(rng, L)
					roundX(x, f.x())
					if L > 2 {
						dy[L/3] = float32(math.NaN())
					}
					bnDy(dy, f)
					gamma, beta, _, _ = bnParams(t.Name(), c)
					mean, inv = make([]float32, c), make([]float32, c)
					if err := cpuref.BatchNormTrainForward32(n, c, hw, x, gamma, beta, make([]float32, L), mean, inv, nil, nil, 0.1, 1e-5); err != nil {
						t.Fatal(err)
					}
					masked = dy
				}
				want, wdg, wdb := make([]float32, L), make([]float32, c), make([]float32, c)
				if err := cpuref.BatchNormBackward32(n, c, hw, x, gamma, mean, inv, masked, want, wdg, wdb); err != nil {
					t.Fatal(err)
				}
				h := newHarness(t, d)
				kp := packedChans(c, pc.chanAlign)
				xb, gb, mb, ib, dyb := xIn(h, x, f.x()), h.in("gamma", gamma), h.in("saveMean", mean), h.in("saveInvStd", inv), dyIn(h, dy, f)
				dx, dg, db, dyk := h.out("dx", L), h.out("dgamma", c), h.out("dbeta", c), h.out("dyk", n*hw*kp*pc.elemBytes/4)
				var bb *Buffer // beta: the ReLU's mask
				if relu {
					bb = h.in("beta", beta)
				}
				d.mu.Lock()
				err := d.bnBackward(n, c, hw, xb, gb, bb, mb, ib, dyb, nil, dg, db)
				if err == nil {
					out := dx
					if copyOnly {
						out = nil
					}
					err = d.bnBwdApplyPack(n, c, hw, xb, gb, bb, mb, ib, dyb, dg, db, out, dyk, kp, pc == packedTF32)
				}
				d.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				checkOutput(t, "dx", h.read(dx), want, copyOnly)
				checkSameBits(t, "dgamma", h.read(dg), wdg)
				checkSameBits(t, "dbeta", h.read(db), wdb)
				packedWant(t, "dyk", h.read(dyk), want, n, c, hw, kp, pc.elemBytes, packedRound(pc))
				h.check()
			})
		}
	}
}

// testBNApplyPack checks bn_train_stats_v1 and bn_apply_pack_bf16_v1, as
// BatchNormForwardKeep runs them (in training the first, then the second
// with its statistics; in evaluation the second with the running ones),
// against cpuref: y, the saved and running statistics bit for bit as
// BatchNormTrainForward32 or BatchNormEvalForward (then ReLU), and every
// word of the copy as cpuref.BF16Bits of y, channels past C zero; and
// bn_apply_pack_tf32_v1, the copy's words as cpuref.RoundTF32 of y. The
// shapes of bnShapes span partial 32×32 tiles on both axes (C = 33: two
// channel tiles, Cp = 40 or 36; HW = 300: ten value tiles); a NaN poisons
// its channel.
func testBNApplyPack(t *testing.T, d *Device) { bnApplyPack(t, d, false) }

// bnApplyPack is testBNApplyPack, with bf16x on x rounded to bfloat16 in
// a bfloat16 buffer (xIn): bn_train_stats_bf16x_v1, then
// bn_apply_pack_bf16x_v1.
func bnApplyPack(t *testing.T, d *Device, bf16x bool) {
	if !d.hasTarget(80) {
		t.Skipf("bn_apply_pack_bf16_v1 needs compute capability 8.0; %v has less", d)
	}
	const momentum, eps = 0.1, 1e-5
	for _, s := range bnShapesFor(d) {
		n, c, hw := s[0], s[1], s[2]
		for m := range 16 {
			train, relu, pc, copyOnly := m&1 == 0, m&2 != 0, packedBF16, m&8 != 0
			if m&4 != 0 {
				pc = packedTF32
			}
			// no TF32 copy of a bfloat16 x (TestBF16YLaunchers), nor a TF32 copy alone (bn_pack_bf16_v1)
			if (n*hw < 2 && train) || (pc == packedTF32 && (bf16x || copyOnly)) {
				continue
			}
			t.Run(kv("train", train, "relu", relu, "tf32", pc == packedTF32, "copyOnly", copyOnly, "N", n, "C", c, "HW", hw), func(t *testing.T) {
				L := n * c * hw
				x := uniform(newRand(t.Name()), L)
				for i := range x {
					x[i] = 3*x[i] + 0.5
				}
				if L > 2 {
					x[L/2] = float32(math.NaN())
				}
				roundX(x, bf16x)
				gamma, beta, rm, rv := bnParams(t.Name(), c)
				want := make([]float32, L)
				wMean, wInv := make([]float32, c), make([]float32, c)
				wrm, wrv := append([]float32(nil), rm...), append([]float32(nil), rv...)
				var err error
				if train {
					err = cpuref.BatchNormTrainForward32(n, c, hw, x, gamma, beta, want, wMean, wInv, wrm, wrv, momentum, eps)
				} else {
					err = cpuref.BatchNormEvalForward(n, c, hw, x, gamma, beta, rm, rv, want, eps)
				}
				if err != nil {
					t.Fatal(err)
				}
				if relu {
					reluRef(want)
				}
				h := newHarness(t, d)
				cp := packedChans(c, pc.chanAlign)
				g := geom.ConvGeom{N: n, C: c, H: 1, W: hw, K: 8, R: 1, S: 1, StrideH: 1, StrideW: 1}
				y, xk := h.out("y", L), h.out("xk", keepLen(pc, g))
				sm, si := h.out("saveMean", c), h.out("saveInvStd", c)
				grm, grv := h.inout("runMean", rm), h.inout("runVar", rv)
				xb, gb, bb := xIn(h, x, bf16x), h.in("gamma", gamma), h.in("beta", beta)
				d.mu.Lock()
				err = d.bnForwardKeepY(!copyOnly, train, n, c, hw, xb, gb, bb, y, sm, si, grm, grv, momentum, eps, relu, pc, true, g, xk)
				d.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				checkOutput(t, "y", h.read(y), want, copyOnly)
				if train {
					checkSameBits(t, "saveMean", h.read(sm), wMean)
					checkSameBits(t, "saveInvStd", h.read(si), wInv)
				}
				checkSameBits(t, "runMean", h.read(grm), wrm)
				checkSameBits(t, "runVar", h.read(grv), wrv)
				packedWant(t, "xk", h.read(xk), want, n, c, hw, cp, pc.elemBytes, packedRound(pc))
				h.check()
			})
		}
	}
}

// TestBNKeepLaunchers is TestLaunchers for bn_train_stats_v1,
// bn_apply_pack_bf16_v1, bn_apply_pack_tf32_v1, bn_bwd_apply_pack_v1, bn_bwd_pack_v1 and their
// bn_bwd_relu_ forms: each argument lands in the parameter of that
// name, with the launch shape the kernel's doc states, and a launch
// allocates nothing on the host.
func TestBNKeepLaunchers(t *testing.T) {
	d, f := openFake(t)
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	F32 := func(v float32) uint64 { return uint64(math.Float32bits(v)) }
	const n, c, hw = 2, 33, 70 // Cp = 40: two channel tiles; three value tiles
	g := geom.ConvGeom{N: n, C: c, H: 7, W: 10, K: 8, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	x, y, xk := mustF32(t, d, n*c*hw), mustF32(t, d, n*c*hw), mustF32(t, d, keepLen(packedBF16, g))
	gm, bt, sm, si, rm, rv := mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c)
	run := func(train, relu bool) func() error {
		return func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.bnForwardKeep(train, n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, relu, packedBF16, true, g, xk)
		}
	}
	bn := map[string]uint64{"N": n, "C": c, "HW": hw}
	with := func(more ...any) map[string]uint64 {
		m := map[string]uint64{}
		for k, v := range bn {
			m[k] = v
		}
		for i := 0; i < len(more); i += 2 {
			m[more[i].(string)] = more[i+1].(uint64)
		}
		return m
	}
	apply := func(mean, stat *Buffer, eval, relu uint64) map[string]uint64 {
		return with("x", P(x), "gamma", P(gm), "beta", P(bt), "mean", P(mean), "stat", P(stat), "y", P(y), "dst", P(xk),
			"Cp", uint64(40), "eps", F32(1e-3), "eval", eval, "relu", relu)
	}
	tile := Dim3{3, 2, n}
	dx := mustF32(t, d, n*c*hw)
	bwd := func(cp, tf32 uint64) map[string]uint64 {
		return with("x", P(x), "gamma", P(gm), "save_mean", P(sm), "save_inv_std", P(si), "dy", P(y), "dgamma", P(rm),
			"dbeta", P(rv), "dx", P(dx), "dst", P(xk), "Cp", cp, "tf32", tf32)
	}
	xt := mustF32(t, d, keepLen(packedTF32, g))
	withDst := func(m map[string]uint64, dst *Buffer, cp uint64) map[string]uint64 {
		m["dst"], m["Cp"] = P(dst), cp
		return m
	}
	withoutY := func(m map[string]uint64) map[string]uint64 {
		delete(m, "y")
		return m
	}
	withBeta := func(m map[string]uint64) map[string]uint64 {
		m["beta"] = P(bt)
		return m
	}
	cases := []struct {
		name   string
		call   func() error
		kernel string // the last launch
		grid   Dim3
		block  Dim3
		want   map[string]uint64
		total  int // launches
	}{
		{"train", run(true, true), "bn_apply_pack_bf16_v1", tile, Dim3{32, 8, 1}, apply(sm, si, 0, 1), 2},
		{"eval", run(false, false), "bn_apply_pack_bf16_v1", tile, Dim3{32, 8, 1}, apply(rm, rv, 1, 0), 1},
		{"copy-only", func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.bnForwardKeepY(false, true, n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, true, packedBF16, true, g, xk)
		}, "bn_pack_bf16_v1", tile, Dim3{32, 8, 1}, withoutY(apply(sm, si, 0, 1)), 2},
		{"bwd-bf16", func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.bnBwdApplyPack(n, c, hw, x, gm, nil, sm, si, y, rm, rv, dx, xk, 40, false)
		}, "bn_bwd_apply_pack_v1", tile, Dim3{32, 8, 1}, bwd(40, 0), 1},
		{"bwd-tf32", func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.bnBwdApplyPack(n, c, hw, x, gm, nil, sm, si, y, rm, rv, dx, xk, 36, true)
		}, "bn_bwd_apply_pack_v1", tile, Dim3{32, 8, 1}, bwd(36, 1), 1},
		{"bwd-copy-only", func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.bnBwdApplyPack(n, c, hw, x, gm, nil, sm, si, y, rm, rv, nil, xk, 40, false)
		}, "bn_bwd_pack_v1", tile, Dim3{32, 8, 1}, with("x", P(x), "gamma", P(gm), "save_mean", P(sm), "save_inv_std", P(si),
			"dy", P(y), "dgamma", P(rm), "dbeta", P(rv), "dst", P(xk), "Cp", uint64(40), "tf32", uint64(0)), 1},
		{"bwd-relu", func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.bnBwdApplyPack(n, c, hw, x, gm, bt, sm, si, y, rm, rv, dx, xk, 36, true)
		}, "bn_bwd_relu_apply_pack_v1", tile, Dim3{32, 8, 1}, withBeta(bwd(36, 1)), 1},
		{"bwd-relu-copy-only", func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.bnBwdApplyPack(n, c, hw, x, gm, bt, sm, si, y, rm, rv, nil, xk, 40, false)
		}, "bn_bwd_relu_pack_v1", tile, Dim3{32, 8, 1}, with("x", P(x), "gamma", P(gm), "beta", P(bt), "save_mean", P(sm),
			"save_inv_std", P(si), "dy", P(y), "dgamma", P(rm), "dbeta", P(rv), "dst", P(xk), "Cp", uint64(40), "tf32", uint64(0)), 1},
		{"train-tf32", func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.bnForwardKeep(true, n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, true, packedTF32, true, g, xt)
		}, "bn_apply_pack_tf32_v1", tile, Dim3{32, 8, 1}, withDst(apply(sm, si, 0, 1), xt, 36), 2},
		{"stats", func() error { // the train case's first launch
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.bnTrainStats(n, c, hw, x, sm, si, rm, rv, 0.25, 1e-3)
		}, "bn_train_stats_v1", Dim3{c, 1, 1}, Dim3{256, 1, 1},
			with("x", P(x), "save_mean", P(sm), "save_inv_std", P(si), "run_mean", P(rm), "run_var", P(rv),
				"m", F32(0.25), "one_minus_m", F32(0.75), "eps", F32(1e-3)), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.launches
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			if got := f.launches - before; got != tc.total {
				t.Errorf("%d launches, want %d", got, tc.total)
			}
			checkFakeLaunch(t, f.last, tc.kernel, tc.grid, tc.block, tc.want, tc.call)
		})
	}
}

// TestBatchNormKeep checks BatchNormForwardKeep and the convolution after
// it on the simulator against BatchNormTrainForward (or
// BatchNormEvalForward) and Conv2DForwardKeep packing y itself: the same
// y, statistics, copy in xk, conv output and gradients, bit for bit; at
// BF16, where the conv's kernels share the copy, and at TF32, where its
// packed forward kernel reads one (ConvXCopyLen, not kept), the conv's
// forward pass launches one packing fewer (the batch norm one more in
// training, the same in evaluation); elsewhere nothing changes. A copy
// made for another y, or already read by a forward pass, is not read.
func TestBatchNormKeep(t *testing.T) { testBatchNormKeep(t, openSim(t)) }

// testBatchNormKeep is TestBatchNormKeep on d (the simulator, or a GPU:
// TestBatchNormKeepCUDA); a precision d cannot run is skipped.
func testBatchNormKeep(t *testing.T, d *Device) {
	const momentum, eps = 0.1, 1e-5
	made := map[Precision]int{}
	for _, prec := range []Precision{BF16, TF32} {
		for i, g := range []geom.ConvGeom{
			cg(8, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1),  // BF16: v7, v10 share the copy
			cg(2, 130, 4, 4, 12, 3, 3, 1, 1, 1, 1), // C past a multiple of 8 and of 32
			cg(8, 16, 8, 8, 32, 1, 1, 1, 1, 0, 0),  // 1×1
			cg(2, 16, 8, 8, 24, 3, 3, 1, 1, 1, 1),  // a direct bwd-filter: nothing kept
		} {
			for _, train := range []bool{true, false} {
				t.Run(kv("prec", prec, "train", train, "g", g), func(t *testing.T) {
					if testing.Short() && (prec != BF16 || i > 0) {
						t.Skip("-short: BF16's first shape; the sweep is left to the full run")
					}
					if err := d.SetPrecision(prec); err != nil {
						t.Skip(err)
					}
					defer d.SetPrecision(FP32)
					n, c, hw := g.N, g.C, g.H*g.W
					rng := newRand("bn-keep/" + g.String())
					x, x2 := randomBufT(t, d, n*c*hw, rng), randomBufT(t, d, n*c*hw, rng)
					gamma, beta := randomBufT(t, d, c, rng), randomBufT(t, d, c, rng)
					w, bias, dy := randomBufT(t, d, g.WLen(), rng), randomBufT(t, d, g.K, rng), randomBufT(t, d, g.YLen(), rng)
					kl, xl := d.ConvKeepLen(g), d.ConvXCopyLen(g)
					if kl > 0 && xl > 0 {
						t.Fatalf("ConvKeepLen %d and ConvXCopyLen %d: want one at most", kl, xl)
					}
					share := kl > 0 || xl > 0
					if share {
						made[prec]++
					}
					type result struct {
						out                                  [][]float32
						bnLaunches, fwdLaunches, bwdLaunches int64
					}
					// run is the batch norm into y (with xk, fused) and the
					// conv on y, its forward and backward with xk.
					run := func(fused bool) result {
						y, xk := mustF32(t, d, n*c*hw), mustF32(t, d, max(kl, xl, 1))
						sm, si, rm, rv := mustF32(t, d, c), mustF32(t, d, c), randomBufT(t, d, c, newRand("bn-keep/run")), mustF32(t, d, c)
						mustNil(t, d.Fill(rv, 1))
						out, dw, db, dx := mustF32(t, d, g.YLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.K), mustF32(t, d, g.XLen())
						var r result
						l0 := d.Launches()
						switch {
						case fused:
							mustNil(t, d.BatchNormForwardKeep(train, n, c, hw, x, gamma, beta, y, sm, si, rm, rv, momentum, eps, true, g, xk))
						case train:
							mustNil(t, d.BatchNormTrainForward(n, c, hw, x, gamma, beta, y, sm, si, rm, rv, momentum, eps, true))
						default:
							mustNil(t, d.BatchNormEvalForward(n, c, hw, x, gamma, beta, rm, rv, y, eps, true))
						}
						l1 := d.Launches()
						mustNil(t, d.Conv2DForwardKeep(g, y, w, bias, out, false, xk))
						l2 := d.Launches()
						mustNil(t, d.Conv2DBackward(g, y, dy, w, dw, db, dx, xk))
						r.bnLaunches, r.fwdLaunches, r.bwdLaunches = l1-l0, l2-l1, d.Launches()-l2
						for _, b := range []*Buffer{y, sm, si, rm, rv, out, dw, db, dx} {
							r.out = append(r.out, download(t, b))
						}
						if kl > 0 { // kept for the backward pass (TF32's is not: the plain run leaves xk alone)
							r.out = append(r.out, download(t, xk))
						}
						// The copy was read: a second forward pass packs y.
						l3 := d.Launches()
						mustNil(t, d.Conv2DForwardKeep(g, y, w, bias, out, false, xk))
						if again := d.Launches() - l3; again != r.fwdLaunches+map[bool]int64{true: 1}[fused && share] {
							t.Errorf("a second forward on the copy: %d launches, want %d", again, r.fwdLaunches+map[bool]int64{true: 1}[fused && share])
						}
						return r
					}
					plain, fused := run(false), run(true)
					names := []string{"y", "saveMean", "saveInvStd", "runMean", "runVar", "conv y", "dw", "db", "dx", "xk"}
					for j := range plain.out {
						if !train && (names[j] == "saveMean" || names[j] == "saveInvStd") {
							continue // evaluation writes neither
						}
						equalBitsT(t, names[j], fused.out[j], plain.out[j])
					}
					wantBN, wantFwd := plain.bnLaunches, plain.fwdLaunches
					if share {
						wantBN += map[bool]int64{true: 1}[train]
						wantFwd--
					}
					if fused.bnLaunches != wantBN || fused.fwdLaunches != wantFwd || fused.bwdLaunches != plain.bwdLaunches {
						t.Errorf("fused: %d, %d, %d launches (batch norm, conv forward, backward), want %d, %d, %d",
							fused.bnLaunches, fused.fwdLaunches, fused.bwdLaunches, wantBN, wantFwd, plain.bwdLaunches)
					}
					if !share {
						return
					}
					// A copy of y is not read for another x.
					y, xk, out, ref := mustF32(t, d, n*c*hw), mustF32(t, d, max(kl, xl)), mustF32(t, d, g.YLen()), mustF32(t, d, g.YLen())
					sm, si, rm, rv := mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c)
					mustNil(t, d.Fill(rv, 1))
					mustNil(t, d.BatchNormForwardKeep(train, n, c, hw, x, gamma, beta, y, sm, si, rm, rv, momentum, eps, true, g, xk))
					mustNil(t, d.Conv2DForwardKeep(g, x2, w, bias, out, false, xk))
					mustNil(t, d.Conv2DForward(g, x2, w, bias, ref))
					equalBitsT(t, "conv y of x2 after a copy of y", download(t, out), download(t, ref))
					// Refused, nothing launched: a buffer too short for the
					// copy, or y itself.
					short := mustF32(t, d, max(kl, xl)-1)
					l := d.Launches()
					for name, bad := range map[string]*Buffer{"short": short, "y": y} {
						if err := d.BatchNormForwardKeep(train, n, c, hw, x, gamma, beta, y, sm, si, rm, rv, momentum, eps, true, g, bad); err == nil {
							t.Errorf("BatchNormForwardKeep into %s: no error", name)
						}
					}
					if d.Launches() != l {
						t.Errorf("%d launches by refused calls", d.Launches()-l)
					}
					if xl == 0 {
						return
					}
					// TF32: a longer buffer, as a batch shares one, serves.
					long := mustF32(t, d, xl+5)
					mustNil(t, d.BatchNormForwardKeep(train, n, c, hw, x, gamma, beta, y, sm, si, rm, rv, momentum, eps, true, g, long))
					l = d.Launches()
					mustNil(t, d.Conv2DForward(g, y, w, bias, out))
					if got := d.Launches() - l; got != fused.fwdLaunches {
						t.Errorf("forward pass after a copy in a longer buffer: %d launches, want %d", got, fused.fwdLaunches)
					}
					mustNil(t, d.Conv2DForward(g, y, w, bias, ref))
					equalBitsT(t, "conv y from a copy in a longer buffer", download(t, out), download(t, ref))
				})
			}
		}
	}
	if made[BF16] == 0 || !testing.Short() && made[TF32] == 0 {
		t.Errorf("cases making the copy: %d at BF16, %d at TF32: want some at each", made[BF16], made[TF32])
	}
}

// TestBatchNormBackwardKeep checks BatchNormBackwardKeep and the conv's
// Conv2DBackward after it on the simulator against BatchNormBackward and
// Conv2DBackward packing dy itself: the same dx (the conv's dy), dgamma,
// dbeta, dw, db and the conv's dx, bit for bit, at FP32, TF32 and BF16; where
// the conv's two backward kernels share dy's copy (ConvDyCopyLen > 0),
// the batch norm launches once more and the conv once fewer; elsewhere
// nothing changes. A copy is read once, for its own dy only.
func TestBatchNormBackwardKeep(t *testing.T) { testBatchNormBackwardKeep(t, openSim(t)) }

// testBatchNormBackwardKeep is TestBatchNormBackwardKeep on d (the
// simulator, or a GPU: TestBatchNormBackwardKeepCUDA); a precision d
// cannot run is skipped.
func testBatchNormBackwardKeep(t *testing.T, d *Device) {
	made, ran := map[Precision]int{}, map[Precision]bool{}
	for _, prec := range []Precision{BF16, TF32, FP32} {
		for i, g := range []geom.ConvGeom{
			cg(8, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1),     // v9 and v10 share dy's copy
			cg(2, 12, 4, 4, 130, 3, 3, 1, 1, 1, 1),    // K past a multiple of 8 and of 32
			cg(8, 32, 8, 8, 16, 1, 1, 2, 2, 0, 0),     // 1×1 stride 2
			cg(2, 16, 8, 8, 24, 3, 3, 1, 1, 1, 1),     // a direct bwd-filter: nothing shared
			cg(16, 32, 12, 12, 128, 3, 3, 1, 1, 1, 1), // TF32's v9 and v10 share it
		} {
			t.Run(kv("prec", prec, "g", g), func(t *testing.T) {
				if testing.Short() && (prec != BF16 || i > 0) {
					t.Skip("-short: BF16's first shape; the sweep is left to the full run")
				}
				if i == 4 && prec != TF32 {
					t.Skip("TF32's shape")
				}
				if err := d.SetPrecision(prec); err != nil {
					t.Skip(err)
				}
				defer d.SetPrecision(FP32)
				ran[prec] = true
				n, c, hw := g.N, g.K, g.P()*g.Q()
				rng := newRand("bn-bwd-keep/" + g.String())
				y, dz := randomBufT(t, d, g.YLen(), rng), randomBufT(t, d, g.YLen(), rng)
				gamma, sm, si := randomBufT(t, d, c, rng), randomBufT(t, d, c, rng), randomBufT(t, d, c, rng)
				x, w := randomBufT(t, d, g.XLen(), rng), randomBufT(t, d, g.WLen(), rng)
				kl := d.ConvDyCopyLen(g)
				if kl > 0 {
					made[prec]++
				}
				dyk := mustF32(t, d, max(kl, 1)+5) // longer than needed: a batch shares one
				type result struct {
					out                  [][]float32
					bnLaunches, launches int64
				}
				run := func(fused bool, dyk *Buffer) result {
					dy, dg, db := mustF32(t, d, g.YLen()), mustF32(t, d, c), mustF32(t, d, c)
					dw, cdb, dx := mustF32(t, d, g.WLen()), mustF32(t, d, g.K), mustF32(t, d, g.XLen())
					l0 := d.Launches()
					if fused {
						mustNil(t, d.BatchNormBackwardKeep(n, c, hw, y, gamma, nil, sm, si, dz, dy, dg, db, g, dyk))
					} else {
						mustNil(t, d.BatchNormBackward(n, c, hw, y, gamma, sm, si, dz, dy, dg, db))
					}
					l1 := d.Launches()
					mustNil(t, d.Conv2DBackward(g, x, dy, w, dw, cdb, dx, nil))
					r := result{bnLaunches: l1 - l0, launches: d.Launches() - l1}
					for _, b := range []*Buffer{dy, dg, db, dw, cdb, dx} {
						r.out = append(r.out, download(t, b))
					}
					// The copy was read: a second backward packs dy again.
					l2 := d.Launches()
					mustNil(t, d.Conv2DBackward(g, x, dy, w, dw, cdb, dx, nil))
					if again, want := d.Launches()-l2, r.launches+map[bool]int64{true: 1}[fused && kl > 0]; again != want {
						t.Errorf("a second backward on dy: %d launches, want %d", again, want)
					}
					return r
				}
				plain, fused := run(false, nil), run(true, dyk)
				for j, name := range []string{"dy", "dgamma", "dbeta", "dw", "db", "dx"} {
					equalBitsT(t, name, fused.out[j], plain.out[j])
				}
				wantBN, want := plain.bnLaunches, plain.launches
				if kl > 0 {
					wantBN, want = wantBN+1, want-1
				}
				if fused.bnLaunches != wantBN || fused.launches != want {
					t.Errorf("fused: %d and %d launches (batch norm, conv backward), want %d and %d", fused.bnLaunches, fused.launches, wantBN, want)
				}
				if kl == 0 {
					return
				}
				// A copy of dy is not read for another dy.
				dy, dy2, dg, db := mustF32(t, d, g.YLen()), randomBufT(t, d, g.YLen(), rng), mustF32(t, d, c), mustF32(t, d, c)
				dwa, dwb := mustF32(t, d, g.WLen()), mustF32(t, d, g.WLen())
				mustNil(t, d.BatchNormBackwardKeep(n, c, hw, y, gamma, nil, sm, si, dz, dy, dg, db, g, dyk))
				mustNil(t, d.Conv2DBackward(g, x, dy2, w, dwa, nil, mustF32(t, d, g.XLen()), nil))
				mustNil(t, d.Conv2DBackwardFilter(g, x, dy2, dwb))
				equalBitsT(t, "dw of dy2 after a copy of dy", download(t, dwa), download(t, dwb))

				// BatchNormBackwardCopy: the copy alone, dy's values not
				// written; the conv (no bias gradient) gets the dw and dx of
				// BatchNormBackwardKeep's copy, in as many launches.
				type copyRun struct {
					dy, dg, db, dw, dx *Buffer
					bn, conv           int64
				}
				runCopy := func(only bool) copyRun {
					r := copyRun{mustF32(t, d, g.YLen()), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, g.WLen()), mustF32(t, d, g.XLen()), 0, 0}
					mustNil(t, d.Fill(r.dy, 7))
					l0 := d.Launches()
					if only {
						mustNil(t, d.BatchNormBackwardCopy(n, c, hw, y, gamma, nil, sm, si, dz, r.dy, r.dg, r.db, g, dyk))
					} else {
						mustNil(t, d.BatchNormBackwardKeep(n, c, hw, y, gamma, nil, sm, si, dz, r.dy, r.dg, r.db, g, dyk))
					}
					l1 := d.Launches()
					mustNil(t, d.Conv2DBackward(g, x, r.dy, w, r.dw, nil, r.dx, nil))
					r.bn, r.conv = l1-l0, d.Launches()-l1
					return r
				}
				keep, only := runCopy(false), runCopy(true)
				if only.bn != keep.bn || only.conv != keep.conv {
					t.Errorf("copy only: %d and %d launches (batch norm, conv backward), want %d and %d", only.bn, only.conv, keep.bn, keep.conv)
				}
				for j, v := range download(t, only.dy) {
					if v != 7 {
						t.Fatalf("dy[%d] = %g after BatchNormBackwardCopy, want 7 (not written)", j, v)
					}
				}
				for _, p := range []struct {
					name      string
					got, want *Buffer
				}{{"dgamma", only.dg, keep.dg}, {"dbeta", only.db, keep.db}, {"dw", only.dw, keep.dw}, {"dx", only.dx, keep.dx}} {
					equalBitsT(t, p.name+" (copy only)", download(t, p.got), download(t, p.want))
				}
				dyc, dwc, dxc := only.dy, only.dw, only.dx
				mustNil(t, d.BatchNormBackwardCopy(n, c, hw, y, gamma, nil, sm, si, dz, dyc, only.dg, only.db, g, dyk))
				// Refused while dy holds only the copy: a bias gradient, a
				// single pass; nothing launched.
				dbias := mustF32(t, d, g.K)
				l2 := d.Launches()
				for name, err := range map[string]error{
					"bias gradient":    d.Conv2DBackward(g, x, dyc, w, dwc, dbias, dxc, nil),
					"bwd-data alone":   d.Conv2DBackwardData(g, dyc, w, dxc),
					"bwd-filter alone": d.Conv2DBackwardFilter(g, x, dyc, dwc),
					"filter and bias":  d.Conv2DBackwardFilterBias(g, x, dyc, dwc, nil),
				} {
					if !errors.Is(err, geom.ErrGeometry) {
						t.Errorf("%s on a dy holding only its copy: %v, want a refusal", name, err)
					}
				}
				if d.Launches() != l2 {
					t.Errorf("%d launches by refused calls", d.Launches()-l2)
				}
				// Read once: then dy may be written and used again.
				mustNil(t, d.Conv2DBackward(g, x, dyc, w, dwc, nil, dxc, nil))
				mustNil(t, d.Conv2DBackwardData(g, dyc, w, dxc))
			})
		}
	}
	for _, p := range []Precision{BF16, TF32} {
		if ran[p] && made[p] == 0 {
			t.Errorf("no case made dy's copy at %v", p)
		}
	}
}

// TestBatchNormBackwardReLU checks, on the simulator, the batch norm's
// backward pass with the ReLU after it masking dy inside it
// (BatchNormBackwardReLU, and BatchNormBackwardKeep and
// BatchNormBackwardCopy given beta) against ReLUBackward on the ReLU's
// output and then the plain forms: the same dx (the conv's dy), dgamma,
// dbeta, and the conv's dw and dx after it, bit for bit, at BF16, TF32
// and FP32; one launch fewer each time (the ReLU's), and where the conv
// reads dy's copy, the conv's packing launch gone as well.
func TestBatchNormBackwardReLU(t *testing.T) { testBatchNormBackwardReLU(t, openSim(t)) }

// testBatchNormBackwardReLU is TestBatchNormBackwardReLU on d (the
// simulator, or a GPU: TestBatchNormBackwardReLUCUDA); a precision d
// cannot run is skipped.
func testBatchNormBackwardReLU(t *testing.T, d *Device) {
	made := 0
	for _, prec := range []Precision{BF16, TF32, FP32} {
		for i, g := range []geom.ConvGeom{
			cg(8, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1), // v9 and v10 share dy's copy
			cg(2, 16, 8, 8, 24, 3, 3, 1, 1, 1, 1), // a direct bwd-filter: nothing shared
		} {
			t.Run(kv("prec", prec, "g", g), func(t *testing.T) {
				if testing.Short() && (prec != BF16 || i > 0) {
					t.Skip("-short: BF16's first shape; the rest is left to the full run")
				}
				if err := d.SetPrecision(prec); err != nil {
					t.Skip(err)
				}
				defer d.SetPrecision(FP32)
				n, c, hw := g.N, g.K, g.P()*g.Q()
				rng := newRand("bn-bwd-relu/" + g.String())
				// The batch norm's input y (the conv's output), its forward
				// pass with the ReLU: yr, the saved statistics.
				y, dz := randomBufT(t, d, g.YLen(), rng), randomBufT(t, d, g.YLen(), rng)
				gv, bv, _, _ := bnParams("bn-bwd-relu/"+g.String(), c)
				for j := range gv { // each channel's ReLU keeps about half
					gv[j] = float32(1-2*(j%2)) * (1 + gv[j]/2)
					bv[j] /= 8
				}
				gamma, beta, sm, si, yr := mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, g.YLen())
				mustNil(t, gamma.Upload(gv))
				mustNil(t, beta.Upload(bv))
				mustNil(t, d.BatchNormTrainForward(n, c, hw, y, gamma, beta, yr, sm, si, nil, nil, 0.1, 1e-5, true))
				x, w := randomBufT(t, d, g.XLen(), rng), randomBufT(t, d, g.WLen(), rng)
				kl := d.ConvDyCopyLen(g)
				if kl > 0 {
					made++
				}
				dyk := mustF32(t, d, max(kl, 1))
				masked := mustF32(t, d, g.YLen())
				type result struct {
					out      [][]float32
					bn, conv int64
				}
				// mode: "apart" (ReLUBackward, then BatchNormBackward),
				// "fused" (BatchNormBackwardReLU), "keep"
				// (BatchNormBackwardKeep with beta), "copy"
				// (BatchNormBackwardCopy with beta; dy's values not written).
				run := func(mode string) result {
					dy, dg, db := mustF32(t, d, g.YLen()), mustF32(t, d, c), mustF32(t, d, c)
					dw, dx := mustF32(t, d, g.WLen()), mustF32(t, d, g.XLen())
					mustNil(t, d.Fill(dy, 7))
					l0 := d.Launches()
					switch mode {
					case "apart":
						mustNil(t, d.ReLUBackward(yr, dz, masked))
						mustNil(t, d.BatchNormBackward(n, c, hw, y, gamma, sm, si, masked, dy, dg, db))
					case "fused":
						mustNil(t, d.BatchNormBackwardReLU(n, c, hw, y, gamma, beta, sm, si, dz, dy, dg, db))
					case "keep":
						mustNil(t, d.BatchNormBackwardKeep(n, c, hw, y, gamma, beta, sm, si, dz, dy, dg, db, g, dyk))
					case "copy":
						mustNil(t, d.BatchNormBackwardCopy(n, c, hw, y, gamma, beta, sm, si, dz, dy, dg, db, g, dyk))
					}
					l1 := d.Launches()
					// no bias gradient: BatchNormBackwardCopy's conv
					mustNil(t, d.Conv2DBackward(g, x, dy, w, dw, nil, dx, nil))
					r := result{bn: l1 - l0, conv: d.Launches() - l1}
					for _, b := range []*Buffer{dy, dg, db, dw, dx} {
						r.out = append(r.out, download(t, b))
					}
					return r
				}
				apart := run("apart")
				zero, kept := 0, 0
				for _, v := range download(t, masked) {
					if v == 0 {
						zero++
					} else {
						kept++
					}
				}
				if zero == 0 || kept == 0 {
					t.Fatalf("the ReLU's mask drops %d values and keeps %d: want both", zero, kept)
				}
				copied := map[bool]int64{true: 1}[kl > 0]
				for _, m := range []struct {
					mode     string
					bn, conv int64
				}{
					{"fused", apart.bn - 1, apart.conv},
					{"keep", apart.bn - 1 + copied, apart.conv - copied},
					{"copy", apart.bn - 1 + copied, apart.conv - copied},
				} {
					got := run(m.mode)
					for j, name := range []string{"dy", "dgamma", "dbeta", "dw", "dx"} {
						if m.mode == "copy" && name == "dy" && kl > 0 {
							continue // not written (below)
						}
						equalBitsT(t, m.mode+" "+name, got.out[j], apart.out[j])
					}
					if m.mode == "copy" && kl > 0 {
						for j, v := range got.out[0] {
							if v != 7 {
								t.Fatalf("dy[%d] = %g after BatchNormBackwardCopy, want 7 (not written)", j, v)
							}
						}
					}
					if got.bn != m.bn || got.conv != m.conv {
						t.Errorf("%s: %d and %d launches (batch norm, conv backward), want %d and %d", m.mode, got.bn, got.conv, m.bn, m.conv)
					}
				}
			})
		}
	}
	if !testing.Short() && made == 0 {
		t.Error("no case made dy's copy")
	}
}
