package gpu

import (
	"errors"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/kernels"
)

// The conformance cases of the activation kernels (kernels/activation_v2.cu)
// and of dropout, add and the channel copy (kernels/elementwise.cu). Each
// performs cpuref's float32 operations in the same order, so the
// comparison is bit for bit.

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"act_fwd_v1", []string{"act_fwd_v1"}, testActForward},
		conformanceCase{"act_bwd_v1", []string{"act_bwd_v1"}, testActBackward},
		conformanceCase{"dropout_v1", []string{"dropout_v1"}, testDropout},
		conformanceCase{"add_v1", []string{"add_v1"}, testAdd},
		conformanceCase{"add_relu_v1", []string{"add_relu_v1"}, testAddReLU},
		conformanceCase{"channel_copy_v1", []string{"channel_copy_v1"}, testChannelCopy},
	)
	for _, k := range []string{"act_fwd_v1", "act_bwd_v1", "dropout_v1", "add_v1", "add_relu_v1", "channel_copy_v1"} {
		launcherTestedElsewhere[k] = true // TestElementwiseLaunchers
	}
}

var allActs = []Activation{ActLeakyReLU, ActSigmoid, ActTanh, ActSiLU, ActGELUErf, ActGELUTanh}

// actSpecials are inputs at the edges of the activations' branches:
// signed zeros, the polynomial/exp switch points, the tails where e^x
// under- or overflows, infinities, NaN and subnormals.
var actSpecials = []float32{0, float32(math.Copysign(0, -1)), 0.5, -0.5, 0.70710677, -0.70710677, 10, -10, 10.5, -10.5,
	88.8, -88.8, 104, -104, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
	math.Float32frombits(1), math.Float32frombits(0x80000001), math.Float32frombits(0x00800000), 1e-20, -1e-20}

// actInputs returns n inputs: the specials first, then reals in [−12, 12).
func actInputs(name string, n int) []float32 {
	x := uniform(newRand(name), n)
	for i := range x {
		x[i] *= 12
	}
	copy(x, actSpecials)
	return x
}

// actRef computes cpuref's float32 forward activation.
func actRef(act Activation, slope float32, x, y []float32) error {
	switch act {
	case ActLeakyReLU:
		return cpuref.LeakyReLUForward(x, y, slope)
	case ActSigmoid:
		return cpuref.SigmoidForward(x, y)
	case ActTanh:
		return cpuref.TanhForward(x, y)
	case ActSiLU:
		return cpuref.SiLUForward(x, y)
	case ActGELUErf:
		return cpuref.GELUForward(x, y, cpuref.GELUErf)
	case ActGELUTanh:
		return cpuref.GELUForward(x, y, cpuref.GELUTanh)
	}
	return errors.New("unknown activation")
}

// actGradRef computes cpuref's float32 backward activation.
func actGradRef(act Activation, slope float32, x, y, dy, dx []float32) error {
	switch act {
	case ActLeakyReLU:
		return cpuref.LeakyReLUBackward(x, dy, dx, slope)
	case ActSigmoid:
		return cpuref.SigmoidBackward(y, dy, dx)
	case ActTanh:
		return cpuref.TanhBackward(y, dy, dx)
	case ActSiLU:
		return cpuref.SiLUBackward(x, dy, dx)
	case ActGELUErf:
		return cpuref.GELUBackward(x, dy, dx, cpuref.GELUErf)
	case ActGELUTanh:
		return cpuref.GELUBackward(x, dy, dx, cpuref.GELUTanh)
	}
	return errors.New("unknown activation")
}

var actSizes = []int{1, 33, 257, 3000}

func testActForward(t *testing.T, d *Device) {
	const slope = 0.01
	for _, act := range allActs {
		for _, n := range actSizes {
			t.Run(kv("act", act, "n", n), func(t *testing.T) {
				x := actInputs(t.Name(), n)
				want := make([]float32, n)
				if err := actRef(act, slope, x, want); err != nil {
					t.Fatal(err)
				}
				h := newHarness(t, d)
				y := h.out("y", n)
				if err := d.ActivationForward(act, slope, h.in("x", x), y); err != nil {
					t.Fatal(err)
				}
				checkSameBits(t, "y", h.read(y), want)
				h.check()
			})
		}
	}
}

func testActBackward(t *testing.T, d *Device) {
	const slope = 0.2
	for _, act := range allActs {
		for _, n := range actSizes {
			t.Run(kv("act", act, "n", n), func(t *testing.T) {
				x := actInputs(t.Name(), n)
				dy := uniform(newRand(t.Name()+"/dy"), n)
				y := make([]float32, n)
				if err := actRef(act, slope, x, y); err != nil {
					t.Fatal(err)
				}
				want := make([]float32, n)
				if err := actGradRef(act, slope, x, y, dy, want); err != nil {
					t.Fatal(err)
				}
				h := newHarness(t, d)
				dx := h.out("dx", n)
				// The buffer the backward pass does not read is passed as nil.
				var xb, yb *Buffer
				if act.fromOutput() {
					yb = h.in("y", y)
				} else {
					xb = h.in("x", x)
				}
				if err := d.ActivationBackward(act, slope, xb, yb, h.in("dy", dy), dx); err != nil {
					t.Fatal(err)
				}
				checkSameBits(t, "dx", h.read(dx), want)
				h.check()
			})
		}
	}
}

func testDropout(t *testing.T, d *Device) {
	keys := []DropoutKey{{Seed: 1, Stream: 0, Step: 0}, {Seed: 0xDEADBEEF_12345678, Stream: 7, Step: 0x1_0000_0003}}
	for _, key := range keys {
		for _, p := range []float32{0, 0.1, 0.5, 0.9} {
			for _, n := range []int{1, 3, 4, 5, 257, 1030} {
				t.Run(kv("seed", key.Seed, "stream", key.Stream, "step", key.Step, "p", p, "n", n), func(t *testing.T) {
					x := uniform(newRand(t.Name()), n)
					copy(x, []float32{float32(math.Inf(1)), float32(math.NaN()), float32(math.Copysign(0, -1))})
					mask := make([]uint8, n)
					if err := cpuref.DropoutMask(cpuref.DropoutKey{Seed: key.Seed, Stream: key.Stream, Step: key.Step}, p, mask); err != nil {
						t.Fatal(err)
					}
					want := make([]float32, n)
					if err := cpuref.DropoutForward(p, mask, x, want); err != nil {
						t.Fatal(err)
					}
					h := newHarness(t, d)
					y := h.out("y", n)
					if err := d.Dropout(key, p, h.in("x", x), y); err != nil {
						t.Fatal(err)
					}
					checkSameBits(t, "y", h.read(y), want)
					h.check()
				})
			}
		}
	}
}

func testAdd(t *testing.T, d *Device) {
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			rng := newRand(t.Name())
			a, b := uniform(rng, n), uniform(rng, n)
			a[0] = float32(math.NaN())
			want := make([]float32, n)
			if err := cpuref.AddForward(a, b, want); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			y := h.out("y", n)
			if err := d.Add(h.in("a", a), h.in("b", b), y); err != nil {
				t.Fatal(err)
			}
			checkSameBits(t, "y", h.read(y), want)
			h.check()
		})
	}
}

// testAddReLU checks add_relu_v1 against cpuref.AddReLUForward, with the
// sums at ReLU's edges (NaN, ±0, ±∞, subnormals either side of 0) first,
// and against Add then ReLUForward, bit for bit.
func testAddReLU(t *testing.T, d *Device) {
	nan, negZero := float32(math.NaN()), float32(math.Copysign(0, -1))
	inf, tiny := float32(math.Inf(1)), math.Float32frombits(1)
	edges := [][2]float32{{nan, 1}, {1, nan}, {0, negZero}, {negZero, negZero}, {inf, -inf}, {inf, 1}, {-inf, 1},
		{tiny, 0}, {-tiny, 0}, {1, -1}, {-1, 1}, {0.5, -0.25}, {-0.5, 0.25}}
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			rng := newRand(t.Name())
			a, b := uniform(rng, n), uniform(rng, n)
			for i := range b {
				b[i] -= 0.5 // about as many sums below 0 as above
			}
			for i := 0; i < len(edges) && i < n; i++ {
				a[i], b[i] = edges[i][0], edges[i][1]
			}
			want := make([]float32, n)
			if err := cpuref.AddReLUForward(a, b, want); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			y, two := h.out("y", n), h.out("add then relu", n)
			if err := d.AddReLU(h.in("a", a), h.in("b", b), y); err != nil {
				t.Fatal(err)
			}
			checkSameBits(t, "y", h.read(y), want)
			if err := d.Add(h.in("a again", a), h.in("b again", b), two); err != nil {
				t.Fatal(err)
			}
			if err := d.ReLUForward(two, two); err != nil {
				t.Fatal(err)
			}
			checkSameBits(t, "add then relu", h.read(two), want)
			h.check()
		})
	}
}

// testChannelCopy builds concatenation's forward and backward passes from
// channel copies and compares them with cpuref.ConcatForward and
// ConcatBackward.
func testChannelCopy(t *testing.T, d *Device) {
	for _, s := range []struct {
		n, hw int
		cs    []int
	}{{1, 1, []int{1}}, {2, 3, []int{1, 2}}, {3, 7, []int{4, 1, 3}}, {2, 129, []int{2, 5}}} {
		total := 0
		for _, c := range s.cs {
			total += c
		}
		t.Run(kv("N", s.n, "HW", s.hw, "cs", s.cs), func(t *testing.T) {
			rng := newRand(t.Name())
			xs := make([][]float32, len(s.cs))
			for i, c := range s.cs {
				xs[i] = uniform(rng, s.n*c*s.hw)
			}
			dy := uniform(rng, s.n*total*s.hw)
			wy := make([]float32, s.n*total*s.hw)
			if err := cpuref.ConcatForward(s.n, s.hw, s.cs, xs, wy); err != nil {
				t.Fatal(err)
			}
			wdx := make([][]float32, len(s.cs))
			for i, c := range s.cs {
				wdx[i] = make([]float32, s.n*c*s.hw)
			}
			if err := cpuref.ConcatBackward(s.n, s.hw, s.cs, dy, wdx); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			y, dyb := h.out("y", len(wy)), h.in("dy", dy)
			off := 0
			for i, c := range s.cs {
				dx := h.out("dx", len(wdx[i]))
				if err := d.ChannelCopy(s.n, c, s.hw, h.in("x", xs[i]), c, 0, y, total, off); err != nil {
					t.Fatal(err)
				}
				if err := d.ChannelCopy(s.n, c, s.hw, dyb, total, off, dx, c, 0); err != nil {
					t.Fatal(err)
				}
				checkSameBits(t, "dx", h.read(dx), wdx[i])
				off += c
			}
			checkSameBits(t, "y", h.read(y), wy)
			h.check()
		})
	}
}

// TestActivationCodes checks that the Activation values are the kernels'
// kAct* codes.
func TestActivationCodes(t *testing.T) {
	for _, c := range []struct {
		act  Activation
		name string
	}{{ActLeakyReLU, "kActLeakyReLU"}, {ActSigmoid, "kActSigmoid"}, {ActTanh, "kActTanh"}, {ActSiLU, "kActSiLU"},
		{ActGELUErf, "kActGELUErf"}, {ActGELUTanh, "kActGELUTanh"}} {
		if v, ok := kernels.Define("activation_v2.cu", c.name); !ok || v != int(c.act) {
			t.Errorf("%s = %d (defined %v) in activation_v2.cu, %v = %d here", c.name, v, ok, c.act, int(c.act))
		}
	}
}

// TestElementwiseValidationSim checks on the simulator that the launchers
// of these kernels refuse bad arguments before launching.
func TestElementwiseValidationSim(t *testing.T) {
	t.Parallel()
	d := openSim(t)
	h := newHarness(t, d)
	x, y := h.in("x", make([]float32, 12)), h.out("y", 12)
	short := h.in("short", make([]float32, 11))
	cases := []struct {
		name, kernel string
		err, is      error
	}{
		{"unknown activation", "act_fwd_v1", d.ActivationForward(Activation(9), 0, x, y), geom.ErrHyperparameter},
		{"y too short", "act_fwd_v1", d.ActivationForward(ActTanh, 0, x, short), geom.ErrGeometry},
		{"sigmoid without y", "act_bwd_v1", d.ActivationBackward(ActSigmoid, 0, x, nil, x, y), geom.ErrGeometry},
		{"silu without x", "act_bwd_v1", d.ActivationBackward(ActSiLU, 0, nil, x, x, y), geom.ErrGeometry},
		{"p = 1", "dropout_v1", d.Dropout(DropoutKey{}, 1, x, y), geom.ErrHyperparameter},
		{"p NaN", "dropout_v1", d.Dropout(DropoutKey{}, float32(math.NaN()), x, y), geom.ErrHyperparameter},
		{"add lengths differ", "add_v1", d.Add(x, short, y), geom.ErrGeometry},
		{"add+relu y too short", "add_relu_v1", d.AddReLU(x, x, short), geom.ErrGeometry},
		{"add+relu without a", "add_relu_v1", d.AddReLU(nil, x, y), geom.ErrGeometry},
		{"channels out of range", "channel_copy_v1", d.ChannelCopy(1, 2, 4, x, 3, 2, y, 3, 0), geom.ErrGeometry},
		{"negative offset", "channel_copy_v1", d.ChannelCopy(1, 2, 4, x, 3, 0, y, 3, -1), geom.ErrGeometry},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.err == nil {
				t.Fatalf("no error")
			}
			want := "gpu: launch " + c.kernel + " ("
			if msg := c.err.Error(); len(msg) < len(want) || msg[:len(want)] != want {
				t.Errorf("error %q does not start with %q", msg, want)
			}
			if !errors.Is(c.err, c.is) {
				t.Errorf("error %q does not wrap %v", c.err, c.is)
			}
		})
	}
	for i, v := range h.read(y) {
		if math.Float32bits(v) != poisonBits {
			t.Fatalf("y[%d] = %g after refused launches, want the poison untouched", i, v)
		}
	}
	h.check()
}

// TestElementwiseLaunchers is TestLaunchers for these kernels.
func TestElementwiseLaunchers(t *testing.T) {
	d, f := openFake(t)
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	F32 := func(v float32) uint64 { return uint64(math.Float32bits(v)) }
	U32 := func(v uint32) uint64 { return uint64(int64(int32(v))) } // an int parameter, sign-extended
	e1, e2, e3, e4 := mustF32(t, d, 1000), mustF32(t, d, 1000), mustF32(t, d, 1000), mustF32(t, d, 1000)
	src, dst := mustF32(t, d, 2*5*7), mustF32(t, d, 2*6*7)
	key := DropoutKey{Seed: 0x89ABCDEF_01234567, Stream: 3, Step: 0x5_00000009}
	lin := func(total int) int { return (total + 255) / 256 }
	cases := []struct {
		kernel string
		call   func() error
		grid   int
		want   map[string]uint64
	}{
		{"act_fwd_v1", func() error { return d.ActivationForward(ActGELUTanh, 0.5, e1, e2) }, 4,
			map[string]uint64{"x": P(e1), "y": P(e2), "n": 1000, "act": 6, "param": F32(0.5)}},
		{"act_bwd_v1", func() error { return d.ActivationBackward(ActLeakyReLU, 0.25, e1, nil, e2, e3) }, 4,
			map[string]uint64{"x": P(e1), "y": 0, "dy": P(e2), "dx": P(e3), "n": 1000, "act": 1, "param": F32(0.25)}},
		{"act_bwd_v1", func() error { return d.ActivationBackward(ActTanh, 0, nil, e4, e2, e3) }, 4,
			map[string]uint64{"x": 0, "y": P(e4), "dy": P(e2), "dx": P(e3), "n": 1000, "act": 3, "param": 0}},
		{"dropout_at_v1", func() error { return d.DropoutAt(key, 0.25, e1, e2, Word{e3, 1}) }, lin(250),
			map[string]uint64{"x": P(e1), "y": P(e2), "n": 1000, "p": F32(0.25), "seed_lo": U32(0x01234567),
				"seed_hi": U32(0x89ABCDEF), "stream": 3, "step": P(e3) + 4}},
		{"dropout_v1", func() error { return d.Dropout(key, 0.5, e1, e2) }, lin(250),
			map[string]uint64{"x": P(e1), "y": P(e2), "n": 1000, "p": F32(0.5), "seed_lo": U32(0x01234567),
				"seed_hi": U32(0x89ABCDEF), "stream": 3, "step_lo": 9, "step_hi": 5}},
		{"add_v1", func() error { return d.Add(e1, e2, e3) }, 4,
			map[string]uint64{"a": P(e1), "b": P(e2), "y": P(e3), "n": 1000}},
		{"add_relu_v1", func() error { return d.AddReLU(e2, e4, e1) }, 4,
			map[string]uint64{"a": P(e2), "b": P(e4), "y": P(e1), "n": 1000}},
		{"channel_copy_v1", func() error { return d.ChannelCopy(2, 4, 7, src, 5, 1, dst, 6, 2) }, lin(2 * 4 * 7),
			map[string]uint64{"src": P(src), "dst": P(dst), "N": 2, "C": 4, "HW": 7, "src_C": 5, "src_off": 1,
				"dst_C": 6, "dst_off": 2}},
	}
	seen := map[string]bool{}
	for i, tc := range cases {
		t.Run(kv("case", i, "kernel", tc.kernel), func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			seen[tc.kernel] = true
			checkFakeLaunch(t, f.last, tc.kernel, Dim3{tc.grid, 1, 1}, Dim3{256, 1, 1}, tc.want, tc.call)
		})
	}
	for _, k := range kernels.All {
		if (k.Source == "activation_v2.cu" || k.Source == "elementwise.cu") && !seen[k.Name] && !launcherTestedElsewhere[k.Name] {
			t.Errorf("kernel %s (%s) has no launcher case here", k.Name, k.Source)
		}
	}
}
