package gpu

import (
	"errors"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"bn_train_fwd_bf16xy_v1", []string{"bn_train_fwd_bf16xy_v1"}, func(t *testing.T, d *Device) {
			for _, relu := range []bool{false, true} {
				t.Run(kv("relu", relu), func(t *testing.T) { bnTrainForward(t, d, relu, bnBF16XY) })
			}
		}},
		conformanceCase{"bn_eval_fwd_bf16xy_v1", []string{"bn_eval_fwd_bf16xy_v1"}, func(t *testing.T, d *Device) {
			for _, relu := range []bool{false, true} {
				t.Run(kv("relu", relu), func(t *testing.T) { bnEvalForward(t, d, relu, bnBF16XY) })
			}
		}},
		conformanceCase{"add_bf16b_v1", []string{"add_bf16b_v1", "add_relu_bf16b_v1"}, testAddBF16B},
		conformanceCase{"add_relu_pack_bf16_bf16b_v1", []string{"add_relu_pack_bf16_bf16b_v1"}, func(t *testing.T, d *Device) {
			for _, in := range []string{"a", "b"} {
				t.Run("bf16="+in, func(t *testing.T) { addReLUPack(t, d, in) })
			}
		}})
	for _, k := range bnOutTwins {
		launcherTestedElsewhere[k] = true // TestBF16BNOutLaunchers
	}
}

// bnOutTwins are the kernels of bn_out_bf16.go, for TestBF16BNOutLaunchers.
var bnOutTwins = []string{"bn_train_fwd_bf16xy_v1", "bn_eval_fwd_bf16xy_v1", "add_bf16b_v1", "add_relu_bf16b_v1",
	"add_relu_pack_bf16_bf16b_v1"}

// testAddBF16B checks add_bf16b_v1 and add_relu_bf16b_v1, through Add and
// AddReLU with a or b a bfloat16 buffer, against cpuref.AddForward and
// AddReLUForward on the rounded values, bit for bit, the sums at ReLU's
// edges (NaN, ±0, ±∞) included.
func testAddBF16B(t *testing.T, d *Device) {
	nan, negZero, inf := float32(math.NaN()), float32(math.Copysign(0, -1)), float32(math.Inf(1))
	edges := [][2]float32{{nan, 1}, {1, nan}, {0, negZero}, {negZero, negZero}, {inf, -inf}, {inf, 1}, {1, -1}, {0.5, -0.25}}
	for _, n := range elemSizes {
		for _, in := range []string{"a", "b"} {
			for _, relu := range []bool{false, true} {
				t.Run(kv("n", n, "bf16", in, "relu", relu), func(t *testing.T) {
					rng := newRand(t.Name())
					a, b := uniform(rng, n), uniform(rng, n)
					for i := range b {
						b[i] -= 0.5
					}
					for i := 0; i < len(edges) && i < n; i++ {
						a[i], b[i] = edges[i][0], edges[i][1]
					}
					h := newHarness(t, d)
					var ab, bb *Buffer
					if in == "a" {
						ab, a = h.inBF16("a", a)
						bb = h.in("b", b)
					} else {
						ab = h.in("a", a)
						bb, b = h.inBF16("b", b)
					}
					want, y := make([]float32, n), h.out("y", n)
					if relu {
						mustNil(t, cpuref.AddReLUForward(a, b, want))
						mustNil(t, d.AddReLU(ab, bb, y))
					} else {
						mustNil(t, cpuref.AddForward(a, b, want))
						mustNil(t, d.Add(ab, bb, y))
					}
					checkSameBits(t, "y", h.read(y), want)
					h.check()
				})
			}
		}
	}
}

// TestBF16BNOutLaunchers is TestLaunchers for the kernels of
// bn_out_bf16.go: a batch norm's forward pass with x and y bfloat16
// launches its _bf16xy kernel, and an add with a bfloat16 input its
// _bf16b kernel with that input as b, every argument in the parameter of
// that name, with the launch shape of the float32 form; a bfloat16 y with
// a float32 x, a bfloat16 y beside a conv's copy and two bfloat16 inputs
// are refused, nothing launched.
func TestBF16BNOutLaunchers(t *testing.T) {
	d, f := openFake(t)
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	F32 := func(v float32) uint64 { return uint64(math.Float32bits(v)) }
	const n, c, hw = 2, 33, 70
	L := n * c * hw
	x, y, a, out := mustBF16(t, d, L), mustBF16(t, d, L), mustF32(t, d, L), mustF32(t, d, L)
	gm, bt, sm, si, rm, rv := mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c)
	g := geom.ConvGeom{N: n, C: c, H: 7, W: 10, K: 8, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	xk := mustF32(t, d, keepLen(packedBF16, g))
	x32 := mustF32(t, d, L)
	bn := func(more ...any) map[string]uint64 {
		m := map[string]uint64{"N": n, "C": c, "HW": hw, "x": P(x), "gamma": P(gm), "beta": P(bt), "y": P(y)}
		for i := 0; i < len(more); i += 2 {
			m[more[i].(string)] = u64(more[i+1])
		}
		return m
	}
	linear1 := Dim3{ceilDiv(L, 256), 1, 1}
	cases := []struct {
		name   string
		call   func() error
		kernel string
		grid   Dim3
		block  Dim3
		want   map[string]uint64
	}{
		{"train", func() error {
			return d.BatchNormTrainForward(n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, false)
		},
			"bn_train_fwd_bf16xy_v1", Dim3{c, 1, 1}, Dim3{256, 1, 1},
			bn("save_mean", P(sm), "save_inv_std", P(si), "run_mean", P(rm), "run_var", P(rv), "m", F32(0.25),
				"one_minus_m", F32(0.75), "eps", F32(1e-3), "relu", 0)},
		{"eval-relu", func() error { return d.BatchNormEvalForward(n, c, hw, x, gm, bt, rm, rv, y, 1e-3, true) },
			"bn_eval_fwd_bf16xy_v1", linear1, Dim3{256, 1, 1},
			bn("run_mean", P(rm), "run_var", P(rv), "eps", F32(1e-3), "relu", 1)},
		{"add", func() error { return d.Add(y, a, out) }, "add_bf16b_v1", linear1, Dim3{256, 1, 1},
			map[string]uint64{"a": P(a), "b": P(y), "y": P(out), "n": uint64(L)}},
		{"add-relu", func() error { return d.AddReLU(a, y, out) }, "add_relu_bf16b_v1", linear1, Dim3{256, 1, 1},
			map[string]uint64{"a": P(a), "b": P(y), "y": P(out), "n": uint64(L)}},
		{"add-relu-pack", func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.addReLUPack(y, a, out, []ConvKeep{{g, xk}}, packedBF16)
		}, "add_relu_pack_bf16_bf16b_v1", Dim3{3, 2, n}, Dim3{32, 8, 1},
			map[string]uint64{"a": P(a), "b": P(y), "y": P(out), "dst": P(xk), "dst2": 0, "N": n, "C": c, "HW": hw, "Cp": 40}},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustNil(t, tc.call())
			checkFakeLaunch(t, f.last, tc.kernel, tc.grid, tc.block, tc.want, tc.call)
		})
		seen[tc.kernel] = true
	}
	for _, k := range bnOutTwins {
		if !seen[k] {
			t.Errorf("kernel %s has no case here", k)
		}
	}
	before := f.launches
	d.mu.Lock()
	withCopy := d.bnForwardKeep(true, n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, false, packedBF16, true, g, xk)
	d.mu.Unlock()
	for name, err := range map[string]error{
		"float32 x":    d.BatchNormTrainForward(n, c, hw, x32, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, false),
		"with a copy":  withCopy,
		"two bfloat16": d.AddReLU(x, y, out),
	} {
		if !errors.Is(err, geom.ErrGeometry) {
			t.Errorf("%s: %v, want an error wrapping geom.ErrGeometry", name, err)
		}
	}
	if n := f.launches - before; n != 0 {
		t.Errorf("the refused calls launched %d kernels", n)
	}
}
