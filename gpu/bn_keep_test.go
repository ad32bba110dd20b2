package gpu

import (
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/kernels"
)

// The batch norm that writes the next convolution's bfloat16 copy
// (kernels/norm_pack.cu, BatchNormForwardKeep).

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"bn_apply_pack_bf16_v1", []string{"bn_train_stats_v1", "bn_apply_pack_bf16_v1"}, testBNApplyPack})
	launcherTestedElsewhere["bn_train_stats_v1"] = true     // TestBNKeepLaunchers
	launcherTestedElsewhere["bn_apply_pack_bf16_v1"] = true // TestBNKeepLaunchers
}

// testBNApplyPack checks bn_train_stats_v1 and bn_apply_pack_bf16_v1, as
// BatchNormForwardKeep runs them (in training the first, then the second
// with its statistics; in evaluation the second with the running ones),
// against cpuref: y, the saved and running statistics bit for bit as
// BatchNormTrainForward32 or BatchNormEvalForward (then ReLU), and every
// word of the copy as cpuref.BF16Bits of y, channels past C zero. The
// shapes of bnShapes span partial 32×32 tiles on both axes (C = 33: two
// channel tiles, Cp = 40; HW = 300: ten value tiles); a NaN poisons its
// channel.
func testBNApplyPack(t *testing.T, d *Device) {
	if !d.hasTarget(80) {
		t.Skipf("bn_apply_pack_bf16_v1 needs compute capability 8.0; %v has less", d)
	}
	const momentum, eps = 0.1, 1e-5
	for _, s := range bnShapesFor(d) {
		n, c, hw := s[0], s[1], s[2]
		for _, train := range []bool{true, false} {
			for _, relu := range []bool{false, true} {
				if n*hw < 2 && train {
					continue
				}
				t.Run(kv("train", train, "relu", relu, "N", n, "C", c, "HW", hw), func(t *testing.T) {
					L := n * c * hw
					x := uniform(newRand(t.Name()), L)
					for i := range x {
						x[i] = 3*x[i] + 0.5
					}
					if L > 2 {
						x[L/2] = float32(math.NaN())
					}
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
					cp := packedChans(c, packedBF16.chanAlign)
					g := geom.ConvGeom{N: n, C: c, H: 1, W: hw, K: 8, R: 1, S: 1, StrideH: 1, StrideW: 1}
					y, xk := h.out("y", L), h.out("xk", keepLen(packedBF16, g))
					sm, si := h.out("saveMean", c), h.out("saveInvStd", c)
					grm, grv := h.inout("runMean", rm), h.inout("runVar", rv)
					xb, gb, bb := h.in("x", x), h.in("gamma", gamma), h.in("beta", beta)
					d.mu.Lock()
					err = d.bnForwardKeep(train, n, c, hw, xb, gb, bb, y, sm, si, grm, grv, momentum, eps, relu, packedBF16, true, g, xk)
					d.mu.Unlock()
					if err != nil {
						t.Fatal(err)
					}
					checkSameBits(t, "y", h.read(y), want)
					if train {
						checkSameBits(t, "saveMean", h.read(sm), wMean)
						checkSameBits(t, "saveInvStd", h.read(si), wInv)
					}
					checkSameBits(t, "runMean", h.read(grm), wrm)
					checkSameBits(t, "runVar", h.read(grv), wrv)
					value := func(img, j, ch int) uint32 {
						if ch >= c {
							return 0
						}
						return uint32(cpuref.BF16Bits(want[(img*c+ch)*hw+j]))
					}
					got, bad := h.read(xk), 0
					for i := range n * hw * cp / 2 {
						pix, ch := i/(cp/2), 2*(i%(cp/2))
						img, j := pix/hw, pix%hw
						if w := value(img, j, ch) | value(img, j, ch+1)<<16; math.Float32bits(got[i]) != w && bad < 10 {
							bad++
							t.Errorf("xk word %d (n=%d hw=%d c=%d) = %#08x, want %#08x", i, img, j, ch, math.Float32bits(got[i]), w)
						}
					}
					h.check()
				})
			}
		}
	}
}

// TestBNKeepLaunchers is TestLaunchers for bn_train_stats_v1 and
// bn_apply_pack_bf16_v1: each argument lands in the parameter of that
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
			l := f.last
			if l.name != tc.kernel {
				t.Fatalf("launched %s last, want %s", l.name, tc.kernel)
			}
			if l.grid != tc.grid || l.block != tc.block || l.shared != 0 {
				t.Errorf("grid %v block %v shared %d, want grid %v block %v shared 0", l.grid, l.block, l.shared, tc.grid, tc.block)
			}
			k, _ := kernels.Lookup(tc.kernel)
			if l.nargs != len(k.Params) || len(tc.want) != len(k.Params) {
				t.Fatalf("%d arguments and %d test values, kernel has %d parameters", l.nargs, len(tc.want), len(k.Params))
			}
			for j, p := range k.Params {
				want, ok := tc.want[p.Name]
				if !ok {
					t.Fatalf("test has no value for parameter %s", p.Name)
				}
				if l.args[j] != want {
					t.Errorf("parameter %d (%s) = %#x, want %#x", j, p.Name, l.args[j], want)
				}
			}
			if a := testing.AllocsPerRun(10, func() { tc.call() }); a != 0 {
				t.Errorf("a launch allocates %v times, want 0", a)
			}
		})
	}
}

// TestBatchNormKeep checks BatchNormForwardKeep and the convolution after
// it on the simulator against BatchNormTrainForward (or
// BatchNormEvalForward) and Conv2DForwardKeep packing y itself: the same
// y, statistics, copy in xk, conv output and gradients, bit for bit; at
// BF16, where the conv's kernels share the copy, the conv's forward pass
// launches one packing fewer (the batch norm one more in training, the
// same in evaluation); elsewhere nothing changes. A copy made for another
// y, or already read by a forward pass, is not read.
func TestBatchNormKeep(t *testing.T) { testBatchNormKeep(t, openSim(t)) }

// testBatchNormKeep is TestBatchNormKeep on d (the simulator, or a GPU:
// TestBatchNormKeepCUDA); a precision d cannot run is skipped.
func testBatchNormKeep(t *testing.T, d *Device) {
	const momentum, eps = 0.1, 1e-5
	made := 0
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
					kl := d.ConvKeepLen(g)
					share := kl > 0
					if share {
						made++
					}
					type result struct {
						out                                  [][]float32
						bnLaunches, fwdLaunches, bwdLaunches int64
					}
					// run is the batch norm into y (with xk, fused) and the
					// conv on y, its forward and backward with xk.
					run := func(fused bool) result {
						y, xk := mustF32(t, d, n*c*hw), mustF32(t, d, max(kl, 1))
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
						if share {
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
					y, xk, out, ref := mustF32(t, d, n*c*hw), mustF32(t, d, kl), mustF32(t, d, g.YLen()), mustF32(t, d, g.YLen())
					sm, si, rm, rv := mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c)
					mustNil(t, d.Fill(rv, 1))
					mustNil(t, d.BatchNormForwardKeep(train, n, c, hw, x, gamma, beta, y, sm, si, rm, rv, momentum, eps, true, g, xk))
					mustNil(t, d.Conv2DForwardKeep(g, x2, w, bias, out, false, xk))
					mustNil(t, d.Conv2DForward(g, x2, w, bias, ref))
					equalBitsT(t, "conv y of x2 after a copy of y", download(t, out), download(t, ref))
				})
			}
		}
	}
	if made == 0 {
		t.Error("no case made the copy at BF16")
	}
}
