package gpu

import (
	"errors"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/kernels"
)

// The conformance cases of the batch-norm and average-pool kernels
// (kernels/norm.cu, kernels/avgpool.cu). Each kernel performs cpuref's
// float32 form operation for operation (the lane sums of
// cpuref.BatchNormTrainForward32 and BatchNormBackward32, the window sums
// of cpuref.AvgPoolForward), so the comparison is bit for bit on uniform
// reals, where any other summation order would differ.

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"bn_train_fwd_v1", []string{"bn_train_fwd_v1"}, testBNTrainForward},
		conformanceCase{"bn_eval_fwd_v1", []string{"bn_eval_fwd_v1"}, testBNEvalForward},
		conformanceCase{"bn_train_fwd_v2", []string{"bn_train_fwd_v2"}, testBNTrainReLUForward},
		conformanceCase{"bn_eval_fwd_v2", []string{"bn_eval_fwd_v2"}, testBNEvalReLUForward},
		conformanceCase{"bn_bwd_v1", []string{"bn_bwd_v1"}, testBNBackward},
		conformanceCase{"bn_bwd_relu_v1", []string{"bn_bwd_relu_v1"}, testBNBackwardReLU},
		conformanceCase{"avgpool_fwd_v1", []string{"avgpool_fwd_v1"}, testAvgPoolForward},
		conformanceCase{"avgpool_bwd_v1", []string{"avgpool_bwd_v1"}, testAvgPoolBackward},
		conformanceCase{"global_avgpool_v1", []string{"global_avgpool_fwd_v1", "global_avgpool_bwd_v1"}, testGlobalAvgPool},
	)
}

// bnShapes (N, C, HW): M = N·HW of 2 (the smallest training batch), below,
// at and above the 256 lanes, several lanes per thread, one value per image
// plane (BatchNorm1d) and many channels.
var bnShapes = [][3]int{{1, 1, 2}, {2, 3, 1}, {3, 5, 7}, {1, 2, 256}, {2, 4, 129}, {3, 2, 300}, {1, 1, 1000}, {4, 33, 3}}

// bnLargeShapes add, on a real GPU only (too slow for the simulator),
// training-size channels: a batch of 64 MNIST-size planes and a wide
// ResNet stage.
var bnLargeShapes = [][3]int{{64, 8, 784}, {32, 64, 196}}

// bnShapesFor is bnShapes, plus bnLargeShapes on a real GPU.
func bnShapesFor(d *Device) [][3]int {
	if d.IsSim() {
		return bnShapes
	}
	return append(append([][3]int(nil), bnShapes...), bnLargeShapes...)
}

// bnParams returns uniform γ, β and running statistics (variance in [0.5, 1.5)).
func bnParams(name string, c int) (gamma, beta, rm, rv []float32) {
	rng := newRand(name + "/params")
	gamma, beta, rm, rv = uniform(rng, c), uniform(rng, c), uniform(rng, c), uniform(rng, c)
	for i := range rv {
		rv[i] = 1 + rv[i]/2
	}
	return
}

func testBNTrainForward(t *testing.T, d *Device)     { bnTrainForward(t, d, false, bnF32) }
func testBNTrainReLUForward(t *testing.T, d *Device) { bnTrainForward(t, d, true, bnF32) }
func testBNEvalForward(t *testing.T, d *Device)      { bnEvalForward(t, d, false, bnF32) }
func testBNEvalReLUForward(t *testing.T, d *Device)  { bnEvalForward(t, d, true, bnF32) }
func testBNBackward(t *testing.T, d *Device)         { bnBackward(t, d, bnF32) }
func testBNBackwardReLU(t *testing.T, d *Device)     { bnBackwardReLU(t, d, bnF32) }

// bnTrainForward checks BatchNormTrainForward, with relu the fused ReLU
// (cpuref's batch norm, then ReLU as relu_fwd_v1); with bf16x on x
// rounded to bfloat16 (roundX) in a bfloat16 buffer (xIn).
func bnTrainForward(t *testing.T, d *Device, relu bool, f bnTypes) {
	const momentum, eps = 0.1, 1e-5
	for _, s := range bnShapesFor(d) {
		n, c, hw := s[0], s[1], s[2]
		for _, mode := range []string{"all", "no-running", "nan"} {
			t.Run(kv("mode", mode, "N", n, "C", c, "HW", hw), func(t *testing.T) {
				L := n * c * hw
				x := uniform(newRand(t.Name()), L)
				for i := range x {
					x[i] = 3*x[i] + 0.5 // a mean away from 0
				}
				if mode == "nan" {
					x[L/2] = float32(math.NaN()) // poisons its channel only
				}
				roundX(x, f.x())
				gamma, beta, rm, rv := bnParams(t.Name(), c)
				want := make([]float32, L)
				wMean, wInv := make([]float32, c), make([]float32, c)
				wrm, wrv := append([]float32(nil), rm...), append([]float32(nil), rv...)
				h := newHarness(t, d)
				y := bnOut(h, L, f)
				var sm, si, grm, grv *Buffer
				if mode == "no-running" {
					wrm, wrv, wMean, wInv = nil, nil, nil, nil
				} else {
					sm, si = h.out("saveMean", c), h.out("saveInvStd", c)
					grm, grv = h.inout("runMean", rm), h.inout("runVar", rv)
				}
				if err := cpuref.BatchNormTrainForward32(n, c, hw, x, gamma, beta, want, wMean, wInv, wrm, wrv, momentum, eps); err != nil {
					t.Fatal(err)
				}
				if relu {
					reluRef(want)
				}
				if err := d.BatchNormTrainForward(n, c, hw, xIn(h, x, f.x()), h.in("gamma", gamma), h.in("beta", beta), y,
					sm, si, grm, grv, momentum, eps, relu); err != nil {
					t.Fatal(err)
				}
				checkSameBits(t, "y", bnRead(h, y, want, f), want)
				if mode != "no-running" {
					checkSameBits(t, "saveMean", h.read(sm), wMean)
					checkSameBits(t, "saveInvStd", h.read(si), wInv)
					checkSameBits(t, "runMean", h.read(grm), wrm)
					checkSameBits(t, "runVar", h.read(grv), wrv)
				}
				h.check()
			})
		}
	}
	if f.x() {
		return // in place only as float32 (the model never writes a bfloat16 x over itself)
	}
	t.Run("in-place", func(t *testing.T) {
		n, c, hw := 3, 4, 90
		x := uniform(newRand(t.Name()), n*c*hw)
		gamma, beta, _, _ := bnParams(t.Name(), c)
		want := make([]float32, len(x))
		if err := cpuref.BatchNormTrainForward32(n, c, hw, x, gamma, beta, want, nil, nil, nil, nil, 0.1, 1e-5); err != nil {
			t.Fatal(err)
		}
		if relu {
			reluRef(want)
		}
		h := newHarness(t, d)
		xy := h.inout("xy", x)
		if err := d.BatchNormTrainForward(n, c, hw, xy, h.in("gamma", gamma), h.in("beta", beta), xy, nil, nil, nil, nil, 0.1, 1e-5, relu); err != nil {
			t.Fatal(err)
		}
		checkSameBits(t, "y", h.read(xy), want)
		h.check()
	})
}

func bnEvalForward(t *testing.T, d *Device, relu bool, f bnTypes) {
	const eps = 1e-3
	for _, s := range bnShapesFor(d) {
		n, c, hw := s[0], s[1], s[2]
		t.Run(kv("N", n, "C", c, "HW", hw), func(t *testing.T) {
			L := n * c * hw
			x := uniform(newRand(t.Name()), L)
			if L > 2 {
				x[L/2] = float32(math.NaN())
			}
			roundX(x, f.x())
			gamma, beta, rm, rv := bnParams(t.Name(), c)
			want := make([]float32, L)
			if err := cpuref.BatchNormEvalForward(n, c, hw, x, gamma, beta, rm, rv, want, eps); err != nil {
				t.Fatal(err)
			}
			if relu {
				reluRef(want)
			}
			h := newHarness(t, d)
			y := bnOut(h, L, f)
			if err := d.BatchNormEvalForward(n, c, hw, xIn(h, x, f.x()), h.in("gamma", gamma), h.in("beta", beta),
				h.in("runMean", rm), h.in("runVar", rv), y, eps, relu); err != nil {
				t.Fatal(err)
			}
			checkSameBits(t, "y", bnRead(h, y, want, f), want)
			h.check()
		})
	}
}

// bnTypes says which inputs of a batch norm's backward pass a conformance
// case stores as bfloat16: none, x (the _bf16x kernels), or x and dy (the
// _bf16xdy kernels).
type bnTypes int

const (
	bnF32 bnTypes = iota
	bnBF16X
	bnBF16XDY
	bnBF16XY // x and the forward pass's y (the _bf16xy kernels)
)

func (f bnTypes) x() bool  { return f != bnF32 }
func (f bnTypes) dy() bool { return f == bnBF16XDY }
func (f bnTypes) y() bool  { return f == bnBF16XY }

// bnOut is a batch norm's guarded output y of L elements: bfloat16 where
// f says so, else float32.
func bnOut(h *harness, L int, f bnTypes) *Buffer {
	if f.y() {
		return h.outBF16("y", L)
	}
	return h.out("y", L)
}

// bnRead downloads y (bnOut), and where it is bfloat16 rounds want, the
// float32 reference, to bfloat16 in place (cpuref.RoundBF16: what the
// kernel stores).
func bnRead(h *harness, y *Buffer, want []float32, f bnTypes) []float32 {
	if f.y() {
		cpuref.RoundBF16Slice(want, want)
		return h.readBF16(y)
	}
	return h.read(y)
}

// dyIn uploads dy as a batch norm's guarded gradient: a bfloat16 buffer
// where f says so (dy holds bfloat16 values: bnDy), else float32.
func dyIn(h *harness, dy []float32, f bnTypes) *Buffer {
	h.t.Helper()
	if f.dy() {
		b, _ := h.inBF16("dy", dy)
		return b
	}
	return h.in("dy", dy)
}

// bnDy rounds dy to bfloat16 in place where f says so: the values a BF16
// convolution stores as its input gradient (conv2d_bwd_data_v9_igemm_bf16dx).
func bnDy(dy []float32, f bnTypes) { roundX(dy, f.dy()) }

func bnBackward(t *testing.T, d *Device, f bnTypes) {
	for _, s := range bnShapesFor(d) {
		n, c, hw := s[0], s[1], s[2]
		for _, withDx := range []bool{true, false} {
			t.Run(kv("dx", withDx, "N", n, "C", c, "HW", hw), func(t *testing.T) {
				L := n * c * hw
				rng := newRand(t.Name())
				x, dy := uniform(rng, L), uniform(rng, L)
				roundX(x, f.x())
				bnDy(dy, f)
				gamma, beta, _, _ := bnParams(t.Name(), c)
				mean, inv := make([]float32, c), make([]float32, c)
				if err := cpuref.BatchNormTrainForward32(n, c, hw, x, gamma, beta, make([]float32, L), mean, inv, nil, nil, 0.1, 1e-5); err != nil {
					t.Fatal(err)
				}
				var want []float32
				if withDx {
					want = make([]float32, L)
				}
				wdg, wdb := make([]float32, c), make([]float32, c)
				if err := cpuref.BatchNormBackward32(n, c, hw, x, gamma, mean, inv, dy, want, wdg, wdb); err != nil {
					t.Fatal(err)
				}
				h := newHarness(t, d)
				var dx *Buffer
				if withDx {
					dx = h.out("dx", L)
				}
				dg, db := h.out("dgamma", c), h.out("dbeta", c)
				if err := d.BatchNormBackward(n, c, hw, xIn(h, x, f.x()), h.in("gamma", gamma), h.in("saveMean", mean),
					h.in("saveInvStd", inv), dyIn(h, dy, f), dx, dg, db); err != nil {
					t.Fatal(err)
				}
				if withDx {
					checkSameBits(t, "dx", h.read(dx), want)
				}
				checkSameBits(t, "dgamma", h.read(dg), wdg)
				checkSameBits(t, "dbeta", h.read(db), wdb)
				h.check()
			})
		}
	}
}

// bnReLUCase is the data of a batch norm with a ReLU after it, for the
// conformance cases of its backward kernels: x, dy, γ, β, the statistics
// cpuref.BatchNormTrainForward32 saves, and masked, dy masked as
// cpuref.ReLUBackward on the ReLU's output (its forward output, then
// cpuref.ReLUForward). Channel 0's γ and β are 0 where C > 1 (every
// pre-ReLU value ±0: all masked, whatever the sign of x̂), and a NaN in dy
// sits both where the mask keeps it and where it drops it. It fails the
// test unless the mask drops some values of dy and keeps others, so that
// a kernel ignoring it would differ. x and dy hold bfloat16 values where f
// says so (roundX, bnDy).
func bnReLUCase(t *testing.T, n, c, hw int, f bnTypes) (x, dy, gamma, beta, mean, inv, masked []float32) {
	t.Helper()
	L := n * c * hw
	rng := newRand(t.Name())
	x, dy = uniform(rng, L), uniform(rng, L)
	roundX(x, f.x())
	gamma, beta, _, _ = bnParams(t.Name(), c)
	for i := range gamma { // |γ| ≥ 1/2 of either sign and a small β: each channel's mask keeps about half
		gamma[i] = float32(1-2*(i%2)) * (1 + gamma[i]/2)
		beta[i] /= 8
	}
	if c > 1 {
		gamma[0], beta[0] = 0, 0
	}
	y := make([]float32, L)
	mean, inv = make([]float32, c), make([]float32, c)
	if err := cpuref.BatchNormTrainForward32(n, c, hw, x, gamma, beta, y, mean, inv, nil, nil, 0.1, 1e-5); err != nil {
		t.Fatal(err)
	}
	if err := cpuref.ReLUForward(y, y); err != nil {
		t.Fatal(err)
	}
	kept, dropped := -1, -1
	for i, v := range y {
		if v > 0 && kept < 0 {
			kept = i
		} else if !(v > 0) && dropped < 0 {
			dropped = i
		}
	}
	if kept < 0 || dropped < 0 {
		t.Fatalf("the ReLU keeps dy at %d and drops it at %d: want both", kept, dropped)
	}
	dy[kept], dy[dropped] = float32(math.NaN()), float32(math.NaN())
	bnDy(dy, f) // the NaNs too: a bfloat16 NaN is cpuref.BF16Bits's
	masked = make([]float32, L)
	if err := cpuref.ReLUBackward(y, dy, masked); err != nil {
		t.Fatal(err)
	}
	return x, dy, gamma, beta, mean, inv, masked
}

// testBNBackwardReLU checks bn_bwd_relu_v1 against cpuref: dx, dgamma and
// dbeta bit for bit as cpuref.ReLUBackward on the ReLU's output and then
// BatchNormBackward32 (bnReLUCase), with dx and without, and in place (dx
// = dy; not with a bfloat16 dy).
func bnBackwardReLU(t *testing.T, d *Device, f bnTypes) {
	for _, s := range bnShapesFor(d) {
		n, c, hw := s[0], s[1], s[2]
		if n*hw < 2 || n*c*hw < 4 {
			continue // too few values for a mask that keeps some and drops some
		}
		for _, mode := range []string{"dx", "no-dx", "in-place"} {
			if mode == "in-place" && f.dy() {
				continue // dx is float32
			}
			t.Run(kv("mode", mode, "N", n, "C", c, "HW", hw), func(t *testing.T) {
				L := n * c * hw
				x, dy, gamma, beta, mean, inv, masked := bnReLUCase(t, n, c, hw, f)
				var want []float32
				if mode != "no-dx" {
					want = make([]float32, L)
				}
				wdg, wdb := make([]float32, c), make([]float32, c)
				if err := cpuref.BatchNormBackward32(n, c, hw, x, gamma, mean, inv, masked, want, wdg, wdb); err != nil {
					t.Fatal(err)
				}
				h := newHarness(t, d)
				var dyb, dx *Buffer
				switch mode {
				case "dx":
					dyb, dx = dyIn(h, dy, f), h.out("dx", L)
				case "no-dx":
					dyb = dyIn(h, dy, f)
				case "in-place":
					dyb = h.inout("dy", dy)
					dx = dyb
				}
				dg, db := h.out("dgamma", c), h.out("dbeta", c)
				if err := d.BatchNormBackwardReLU(n, c, hw, xIn(h, x, f.x()), h.in("gamma", gamma), h.in("beta", beta),
					h.in("saveMean", mean), h.in("saveInvStd", inv), dyb, dx, dg, db); err != nil {
					t.Fatal(err)
				}
				if dx != nil {
					checkSameBits(t, "dx", h.read(dx), want)
				}
				checkSameBits(t, "dgamma", h.read(dg), wdg)
				checkSameBits(t, "dbeta", h.read(db), wdb)
				h.check()
			})
		}
	}
}

func apg(n, c, h, w, r, s, sh, sw, ph, pw int) geom.AvgPoolGeom {
	return geom.AvgPoolGeom{N: n, C: c, H: h, W: w, R: r, S: s, StrideH: sh, StrideW: sw, PadH: ph, PadW: pw}
}

// avgPoolShapes: 1×1, the 2×2 stride-2 fast form of cpuref (even and odd
// planes), overlapping windows with padding, a window larger than the
// input made valid by padding, non-square windows, strides and padding.
var avgPoolShapes = []geom.AvgPoolGeom{
	apg(1, 1, 1, 1, 1, 1, 1, 1, 0, 0),
	apg(2, 3, 6, 6, 2, 2, 2, 2, 0, 0),
	apg(1, 2, 7, 5, 2, 2, 2, 2, 0, 0),
	apg(2, 2, 7, 7, 3, 3, 1, 1, 1, 1),
	apg(1, 3, 9, 8, 3, 3, 2, 2, 1, 1),
	apg(1, 1, 1, 1, 3, 3, 1, 1, 1, 1),
	apg(3, 1, 9, 9, 3, 2, 3, 1, 1, 0),
	apg(2, 2, 5, 8, 2, 5, 1, 3, 0, 2),
	apg(1, 4, 28, 28, 4, 4, 3, 3, 2, 2),
}

func testAvgPoolForward(t *testing.T, d *Device) {
	for _, g := range avgPoolShapes {
		for _, nan := range []bool{false, true} {
			t.Run(kv("nan", nan)+"/"+g.String(), func(t *testing.T) {
				x := uniform(newRand(t.Name()), g.XLen())
				if nan {
					x[g.XLen()/2] = float32(math.NaN())
				}
				want := make([]float32, g.YLen())
				if err := cpuref.AvgPoolForward(g, x, want); err != nil {
					t.Fatal(err)
				}
				h := newHarness(t, d)
				y := h.out("y", g.YLen())
				if err := d.AvgPoolForward(g, h.in("x", x), y); err != nil {
					t.Fatal(err)
				}
				checkSameBits(t, "y", h.read(y), want)
				h.check()
			})
		}
	}
}

func testAvgPoolBackward(t *testing.T, d *Device) {
	for _, g := range avgPoolShapes {
		t.Run(g.String(), func(t *testing.T) {
			dy := uniform(newRand(t.Name()), g.YLen())
			want := make([]float32, g.XLen())
			if err := cpuref.AvgPoolBackward(g, dy, want); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			dx := h.out("dx", g.XLen())
			if err := d.AvgPoolBackward(g, h.in("dy", dy), dx); err != nil {
				t.Fatal(err)
			}
			checkSameBits(t, "dx", h.read(dx), want)
			h.check()
		})
	}
}

func testGlobalAvgPool(t *testing.T, d *Device) {
	for _, s := range [][3]int{{1, 1, 1}, {2, 3, 1}, {3, 5, 7}, {2, 4, 49}, {1, 300, 4}, {65, 2, 9}} {
		n, c, hw := s[0], s[1], s[2]
		t.Run(kv("N", n, "C", c, "HW", hw), func(t *testing.T) {
			rng := newRand(t.Name())
			x, dy := uniform(rng, n*c*hw), uniform(rng, n*c)
			if hw > 1 {
				x[hw/2] = float32(math.NaN()) // y[0,0] only
			}
			wy, wdx := make([]float32, n*c), make([]float32, n*c*hw)
			if err := cpuref.GlobalAvgPoolForward(n, c, hw, x, wy); err != nil {
				t.Fatal(err)
			}
			if err := cpuref.GlobalAvgPoolBackward(n, c, hw, dy, wdx); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			y, dx := h.out("y", n*c), h.out("dx", n*c*hw)
			if err := d.GlobalAvgPoolForward(n, c, hw, h.in("x", x), y); err != nil {
				t.Fatal(err)
			}
			if err := d.GlobalAvgPoolBackward(n, c, hw, h.in("dy", dy), dx); err != nil {
				t.Fatal(err)
			}
			checkSameBits(t, "y", h.read(y), wy)
			checkSameBits(t, "dx", h.read(dx), wdx)
			h.check()
		})
	}
}

// checkSameBits compares got with want bit for bit (−0 differs from +0; a
// NaN must be a NaN, any payload, and not the poison).
func checkSameBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d elements, want %d", name, len(got), len(want))
	}
	bad := 0
	for i, g := range got {
		w := want[i]
		gb, wb := math.Float32bits(g), math.Float32bits(w)
		ok := gb == wb || (math.IsNaN(float64(w)) && math.IsNaN(float64(g)) && gb != poisonBits)
		if !ok {
			if bad < 10 {
				if gb == poisonBits {
					t.Errorf("%s[%d] was not written (still the NaN poison), want %g (%#08x)", name, i, w, wb)
				} else {
					t.Errorf("%s[%d] = %g (%#08x), want %g (%#08x) bit for bit", name, i, g, gb, w, wb)
				}
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements differ", name, bad, len(got))
	}
}

// TestNormPoolValidationSim checks on the simulator that the batch-norm
// and average-pool launchers refuse bad shapes and hyperparameters.
func TestNormPoolValidationSim(t *testing.T) {
	t.Parallel()
	testNormPoolValidation(t, openSim(t))
}

// testNormPoolValidation checks that the launchers refuse bad shapes and
// hyperparameters before launching, with errors that name the kernel and
// wrap the geom sentinel.
func testNormPoolValidation(t *testing.T, d *Device) {
	h := newHarness(t, d)
	x, c3 := h.in("x", make([]float32, 12)), h.in("c3", make([]float32, 3))
	y := h.out("y", 12)
	cases := []struct {
		name, kernel string
		err, is      error
	}{
		{"one value per channel", "bn_train_fwd_v1",
			d.BatchNormTrainForward(1, 12, 1, x, h.in("g12", make([]float32, 12)), h.in("b12", make([]float32, 12)), y, nil, nil, nil, nil, 0.1, 1e-5, false), geom.ErrGeometry},
		{"momentum > 1", "bn_train_fwd_v1", d.BatchNormTrainForward(2, 3, 2, x, c3, c3, y, nil, nil, nil, nil, 1.5, 1e-5, false), geom.ErrHyperparameter},
		{"running mean without var", "bn_train_fwd_v1", d.BatchNormTrainForward(2, 3, 2, x, c3, c3, y, nil, nil, h.out("rm", 3), nil, 0.1, 1e-5, false), geom.ErrGeometry},
		{"eps 0", "bn_eval_fwd_v1", d.BatchNormEvalForward(2, 3, 2, x, c3, c3, c3, c3, y, 0, false), geom.ErrHyperparameter},
		{"gamma too short", "bn_bwd_v1", d.BatchNormBackward(2, 3, 2, x, h.in("g2", make([]float32, 2)), c3, c3, x, y, h.out("dg", 3), h.out("db", 3)), geom.ErrGeometry},
		{"pad > R/2", "avgpool_fwd_v1", d.AvgPoolForward(apg(1, 1, 3, 4, 2, 2, 1, 1, 2, 0), x, y), geom.ErrGeometry},
		{"dx too short", "avgpool_bwd_v1", d.AvgPoolBackward(apg(1, 3, 2, 2, 2, 2, 2, 2, 0, 0), c3, c3), geom.ErrGeometry},
		{"y too long", "global_avgpool_fwd_v1", d.GlobalAvgPoolForward(1, 3, 4, x, y), geom.ErrGeometry},
		{"zero channels", "global_avgpool_bwd_v1", d.GlobalAvgPoolBackward(1, 0, 4, c3, y), geom.ErrGeometry},
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

func init() {
	for _, k := range []string{"bn_train_fwd_v1", "bn_eval_fwd_v1", "bn_train_fwd_v2", "bn_eval_fwd_v2", "bn_bwd_v1", "bn_bwd_relu_v1", "avgpool_fwd_v1", "avgpool_bwd_v1",
		"global_avgpool_fwd_v1", "global_avgpool_bwd_v1"} {
		launcherTestedElsewhere[k] = true // TestNormPoolLaunchers
	}
}

// TestNormPoolLaunchers is TestLaunchers for the batch-norm and
// average-pool launchers: each argument lands in the parameter of that
// name, with the launch shape the kernel's doc states, and a launch
// allocates nothing on the host.
func TestNormPoolLaunchers(t *testing.T) {
	d, f := openFake(t)
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	F32 := func(v float32) uint64 { return uint64(math.Float32bits(v)) }
	const n, c, hw = 2, 3, 300
	x, y, dx := mustF32(t, d, n*c*hw), mustF32(t, d, n*c*hw), mustF32(t, d, n*c*hw)
	gm, bt, sm, si, rm, rv := mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c), mustF32(t, d, c)
	g := apg(2, 3, 9, 8, 3, 2, 2, 3, 1, 1) // P = (9+2−3)/2+1 = 5, Q = (8+2−2)/3+1 = 3
	px, py := mustF32(t, d, g.XLen()), mustF32(t, d, g.YLen())
	gy := mustF32(t, d, n*c)
	bn := map[string]uint64{"N": n, "C": c, "HW": hw}
	pool := map[string]uint64{"N": 2, "C": 3, "H": 9, "W": 8, "R": 3, "S": 2, "P": 5, "Q": 3, "sh": 2, "sw": 3, "ph": 1, "pw": 1}
	with := func(base map[string]uint64, more ...any) map[string]uint64 {
		m := make(map[string]uint64)
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(more); i += 2 {
			m[more[i].(string)] = more[i+1].(uint64)
		}
		return m
	}
	lin := func(total int) int { return (total + 255) / 256 }
	cases := []struct {
		kernel string
		call   func() error
		grid   int
		want   map[string]uint64
	}{
		{"bn_train_fwd_v1", func() error {
			return d.BatchNormTrainForward(n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, false)
		}, c, with(bn, "x", P(x), "gamma", P(gm), "beta", P(bt), "y", P(y), "save_mean", P(sm), "save_inv_std", P(si),
			"run_mean", P(rm), "run_var", P(rv), "m", F32(0.25), "one_minus_m", F32(0.75), "eps", F32(1e-3))},
		{"bn_train_fwd_v1", func() error {
			return d.BatchNormTrainForward(n, c, hw, x, gm, bt, x, nil, nil, nil, nil, 0.1, 1e-5, false)
		}, c, with(bn, "x", P(x), "gamma", P(gm), "beta", P(bt), "y", P(x), "save_mean", uint64(0), "save_inv_std", uint64(0),
			"run_mean", uint64(0), "run_var", uint64(0), "m", F32(0.1), "one_minus_m", F32(0.9), "eps", F32(1e-5))},
		{"bn_train_fwd_v2", func() error {
			return d.BatchNormTrainForward(n, c, hw, x, gm, bt, y, sm, si, rm, rv, 0.25, 1e-3, true)
		}, c, with(bn, "x", P(x), "gamma", P(gm), "beta", P(bt), "y", P(y), "save_mean", P(sm), "save_inv_std", P(si),
			"run_mean", P(rm), "run_var", P(rv), "m", F32(0.25), "one_minus_m", F32(0.75), "eps", F32(1e-3), "relu", uint64(1))},
		{"bn_eval_fwd_v1", func() error { return d.BatchNormEvalForward(n, c, hw, x, gm, bt, rm, rv, y, 1e-5, false) },
			lin(n * c * hw), with(bn, "x", P(x), "gamma", P(gm), "beta", P(bt), "run_mean", P(rm), "run_var", P(rv),
				"y", P(y), "eps", F32(1e-5))},
		{"bn_eval_fwd_v2", func() error { return d.BatchNormEvalForward(n, c, hw, x, gm, bt, rm, rv, y, 1e-5, true) },
			lin(n * c * hw), with(bn, "x", P(x), "gamma", P(gm), "beta", P(bt), "run_mean", P(rm), "run_var", P(rv),
				"y", P(y), "eps", F32(1e-5), "relu", uint64(1))},
		{"bn_bwd_v1", func() error { return d.BatchNormBackward(n, c, hw, x, gm, sm, si, y, dx, rm, rv) },
			c, with(bn, "x", P(x), "gamma", P(gm), "save_mean", P(sm), "save_inv_std", P(si), "dy", P(y), "dx", P(dx),
				"dgamma", P(rm), "dbeta", P(rv))},
		{"bn_bwd_v1", func() error { return d.BatchNormBackward(n, c, hw, x, gm, sm, si, y, nil, rm, rv) },
			c, with(bn, "x", P(x), "gamma", P(gm), "save_mean", P(sm), "save_inv_std", P(si), "dy", P(y), "dx", uint64(0),
				"dgamma", P(rm), "dbeta", P(rv))},
		{"bn_bwd_relu_v1", func() error { return d.BatchNormBackwardReLU(n, c, hw, x, gm, bt, sm, si, y, dx, rm, rv) },
			c, with(bn, "x", P(x), "gamma", P(gm), "beta", P(bt), "save_mean", P(sm), "save_inv_std", P(si), "dy", P(y),
				"dx", P(dx), "dgamma", P(rm), "dbeta", P(rv))},
		{"avgpool_fwd_v1", func() error { return d.AvgPoolForward(g, px, py) }, lin(2 * 3 * 5 * 3),
			with(pool, "x", P(px), "y", P(py))},
		{"avgpool_bwd_v1", func() error { return d.AvgPoolBackward(g, py, px) }, lin(2 * 3 * 9 * 8),
			with(pool, "dy", P(py), "dx", P(px))},
		{"global_avgpool_fwd_v1", func() error { return d.GlobalAvgPoolForward(n, c, hw, x, gy) }, lin(n * c),
			with(bn, "x", P(x), "y", P(gy))},
		{"global_avgpool_bwd_v1", func() error { return d.GlobalAvgPoolBackward(n, c, hw, gy, dx) }, lin(n * c * hw),
			with(bn, "dy", P(gy), "dx", P(dx))},
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
		if (k.Source == "norm.cu" || k.Source == "avgpool.cu") && !seen[k.Name] && !launcherTestedElsewhere[k.Name] {
			t.Errorf("kernel %s (%s) has no launcher case here", k.Name, k.Source)
		}
	}
}
