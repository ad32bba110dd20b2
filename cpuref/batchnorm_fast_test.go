package cpuref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// poison32 is the NaN that outputs are filled with before a call and that
// guard bands keep: an element left at it was not written.
const poison32 = 0x7fa00bad

// poisoned32 is a buffer of n floats between guard bands, all poison32.
type poisoned32 struct{ buf, Out []float32 }

func newPoisoned32(n int) poisoned32 {
	buf := make([]float32, n+2*guard)
	for i := range buf {
		buf[i] = math.Float32frombits(poison32)
	}
	return poisoned32{buf: buf, Out: buf[guard : guard+n]}
}

// checkGuards fails the test if a guard element was written.
func (p poisoned32) checkGuards(t *testing.T, name string) {
	t.Helper()
	n := len(p.buf) - 2*guard
	for i := range guard {
		if b := math.Float32bits(p.buf[i]); b != poison32 {
			t.Errorf("%s: guard element %d before the buffer = %#08x, want the poison (out-of-range write)", name, guard-i, b)
		}
		if b := math.Float32bits(p.buf[guard+n+i]); b != poison32 {
			t.Errorf("%s: guard element %d after the buffer = %#08x, want the poison (out-of-range write)", name, i, b)
		}
	}
}

// equalBits32 fails the test at the first element whose bits differ (the
// sign of zero and NaN payloads included).
//
// Which NaN a float32 addition or multiplication keeps where both
// operands are NaNs is the first operand's on x86, and which operand
// comes first is the Go compiler's choice for a commutative operation:
// the assembly follows the order of the ordinary build (Go 1.26). The
// race detector's build compiles some of the reference's loops with the
// other order (laneAdd's), so under -race a NaN matches any NaN.
func equalBits32(t *testing.T, name string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", name, len(got), len(want))
	}
	for i := range want {
		if raceBuild && got[i] != got[i] && want[i] != want[i] {
			continue
		}
		if g, w := math.Float32bits(got[i]), math.Float32bits(want[i]); g != w {
			t.Errorf("%s: element %d = %g (%#08x), want %g (%#08x)", name, i, got[i], g, want[i], w)
			return
		}
	}
}

// specials32 are values that test the ordering of operands and the
// handling of zeros and non-finite values: NaNs with payloads and either
// sign (quiet and signalling), infinities, signed zeros, denormals.
var specials32 = []uint32{
	0x7fc00000, 0xffc00000, 0x7fc12345, 0xffd54321, 0x7f800001, 0xff812345,
	0x7f800000, 0xff800000, 0x00000000, 0x80000000, 0x00000001, 0x807fffff,
}

// specialFloats returns n random values in [−1, 1), with every
// (1/every)-th one taken from specials32 when every > 0.
func specialFloats(rng *rand.Rand, n, every int) []float32 {
	v := randFloats[float32](rng, n)
	if every > 0 {
		for i := rng.IntN(every); i < n; i += 1 + rng.IntN(2*every) {
			v[i] = math.Float32frombits(specials32[rng.IntN(len(specials32))])
		}
	}
	return v
}

// vecForms runs f with the kernels of vec.go in their assembly form
// (where this CPU has it) and in their Go form, restoring useVec.
func vecForms(t *testing.T, f func(t *testing.T)) {
	saved := useVec
	defer func() { useVec = saved }()
	forms := []bool{false}
	if saved {
		forms = append(forms, true)
	}
	for _, v := range forms {
		useVec = v
		t.Run(fmt.Sprintf("asm=%v", v), f)
	}
}

// TestVecKernels requires each kernel of vec.go to give the bits of its
// scalar Go form on every length from 0 to 70 (the assembly's 8-, 16- and
// 32-element steps and the Go tails), on values with NaNs of several
// payloads and signs, infinities, signed zeros and denormals, each input
// taken once from its own buffer and once as the output (in place).
func TestVecKernels(t *testing.T) {
	if !useVec {
		t.Skip("no assembly kernels on this CPU: the Go forms are the only ones")
	}
	rng := newRand(81)
	type kernel struct {
		name string
		// run computes into out from in (fresh copies each call).
		run func(vec bool, out []float32, in [4][]float32)
	}
	pick := func(vec bool, v, g func()) {
		if vec {
			v()
		} else {
			g()
		}
	}
	kernels := []kernel{
		{"add", func(vec bool, out []float32, in [4][]float32) {
			pick(vec, func() { vecAdd(out, in[0], in[1]) }, func() { addGo(out, in[0], in[1]) })
		}},
		{"relu", func(vec bool, out []float32, in [4][]float32) {
			pick(vec, func() { vecReLU(out, in[0]) }, func() { reluGo(out, in[0]) })
		}},
		{"reluBackward", func(vec bool, out []float32, in [4][]float32) {
			pick(vec, func() { vecReLUBackward(out, in[0], in[1]) }, func() { reluBackward32(in[0], in[1], out) })
		}},
		{"addReLU", func(vec bool, out []float32, in [4][]float32) {
			pick(vec, func() { vecAddReLU(out, in[0], in[1]) }, func() { addReLUGo(out, in[0], in[1]) })
		}},
	}
	for _, kn := range kernels {
		for n := 0; n <= 70; n++ {
			var in [4][]float32
			for i := range in {
				in[i] = specialFloats(rng, n, 3)
			}
			clone := func() [4][]float32 {
				var c [4][]float32
				for i := range in {
					c[i] = append([]float32(nil), in[i]...)
				}
				return c
			}
			want, got := newPoisoned32(n), newPoisoned32(n)
			kn.run(false, want.Out, clone())
			kn.run(true, got.Out, clone())
			name := fmt.Sprintf("%s n=%d", kn.name, n)
			equalBits32(t, name, got.Out, want.Out)
			got.checkGuards(t, name)
			// In place: the output is one of the inputs.
			for j := range 2 {
				w, g := clone(), clone()
				kn.run(false, w[j], w)
				kn.run(true, g[j], g)
				equalBits32(t, fmt.Sprintf("%s in place of input %d", name, j), g[j], w[j])
			}
		}
	}
}

// fastBNShapes adds to sweptBNShapes sizes that exercise the vector
// kernels' steps and the lane wrap: H·W not a multiple of 8, below 8,
// N·H·W below 256, a channel of exactly 256 values, and ResNet's.
var fastBNShapes = append(append([]bnShape(nil), sweptBNShapes...),
	bnShape{3, 4, 7}, bnShape{2, 3, 13}, bnShape{1, 1, 255}, bnShape{4, 2, 64},
	bnShape{3, 2, 256}, bnShape{2, 1, 520}, bnShape{3, 2, 300}, bnShape{9, 5, 49}, bnShape{2, 3, 196},
	bnShape{2, 2, 784})

// TestBatchNorm32 requires BatchNorm32's passes to give the bits of the
// lane forms (BatchNormTrainForward32, BatchNormEvalForward[float32],
// BatchNormBackward32, and ReLUForward after a forward pass where it
// applies the ReLU) in every output, on the shapes of fastBNShapes, with
// the assembly kernels and the Go ones, on 1 and 3 goroutines (every
// channel range split as far as it goes), with finite inputs and with
// inputs holding, sparsely or densely, NaNs of several payloads,
// infinities, signed zeros and denormals, and in place (y = x, dx = dy). Outputs start as a NaN poison
// between guard bands.
func TestBatchNorm32(t *testing.T) {
	bnSweep(t, checkBatchNorm32)
}

// checkBatchNorm32 compares BatchNorm32 with the lane forms on shape s,
// with special values (specials32) none, sparse (a few: most channels
// finite, the others NaN from their mean on) or dense (about one value in
// three: NaNs of different payloads meet in the lane sums).
func checkBatchNorm32(t *testing.T, s bnShape, special string) {
	rng := newRand(uint64(82 + s.n*1000 + s.c*100 + s.hw))
	L := s.n * s.c * s.hw
	every := map[string]int{"none": 0, "sparse": max(3, L/4), "dense": 3}[special]
	x, dy := specialFloats(rng, L, every), specialFloats(rng, L, every)
	gamma, beta := randFloats[float32](rng, s.c), randFloats[float32](rng, s.c)
	rm0, rv0 := randFloats[float32](rng, s.c), randFloats[float32](rng, s.c)
	for i := range rv0 {
		rv0[i] = float32(math.Abs(float64(rv0[i]))) + 0.5
	}
	if special != "none" && s.c > 1 {
		rm0[1] = float32(math.NaN())
		gamma[s.c-1] = float32(math.Inf(1))
	}
	var b BatchNorm32
	for _, relu := range []bool{false, true} {
		// Training forward, out of place and in place.
		ref := func(y, mean, inv, rm, rv []float32) {
			must(t, BatchNormTrainForward32(s.n, s.c, s.hw, x, gamma, beta, y, mean, inv, rm, rv, 0.1, 1e-5))
			if relu {
				must(t, ReLUForward(y, y))
			}
		}
		wy, wm, wi := make([]float32, L), make([]float32, s.c), make([]float32, s.c)
		wrm, wrv := append([]float32(nil), rm0...), append([]float32(nil), rv0...)
		ref(wy, wm, wi, wrm, wrv)
		gy, gm, gi := newPoisoned32(L), newPoisoned32(s.c), newPoisoned32(s.c)
		grm, grv := append([]float32(nil), rm0...), append([]float32(nil), rv0...)
		must(t, b.TrainForward(s.n, s.c, s.hw, x, gamma, beta, gy.Out, gm.Out, gi.Out, grm, grv, 0.1, 1e-5, relu))
		tag := fmt.Sprintf("train relu=%v ", relu)
		equalBits32(t, tag+"y", gy.Out, wy)
		equalBits32(t, tag+"saveMean", gm.Out, wm)
		equalBits32(t, tag+"saveInvStd", gi.Out, wi)
		equalBits32(t, tag+"runMean", grm, wrm)
		equalBits32(t, tag+"runVar", grv, wrv)
		gy.checkGuards(t, tag+"y")
		gm.checkGuards(t, tag+"saveMean")
		gi.checkGuards(t, tag+"saveInvStd")
		xy := append([]float32(nil), x...)
		must(t, b.TrainForward(s.n, s.c, s.hw, xy, gamma, beta, xy, nil, nil, nil, nil, 0.1, 1e-5, relu))
		equalBits32(t, tag+"y in place", xy, wy)

		// Evaluation forward.
		we := make([]float32, L)
		must(t, BatchNormEvalForward(s.n, s.c, s.hw, x, gamma, beta, rm0, rv0, we, 1e-5))
		if relu {
			must(t, ReLUForward(we, we))
		}
		ge := newPoisoned32(L)
		must(t, b.EvalForward(s.n, s.c, s.hw, x, gamma, beta, rm0, rv0, ge.Out, 1e-5, relu))
		tag = fmt.Sprintf("eval relu=%v ", relu)
		equalBits32(t, tag+"y", ge.Out, we)
		ge.checkGuards(t, tag+"y")
		xe := append([]float32(nil), x...)
		must(t, b.EvalForward(s.n, s.c, s.hw, xe, gamma, beta, rm0, rv0, xe, 1e-5, relu))
		equalBits32(t, tag+"y in place", xe, we)
	}

	// Backward, with the statistics of the forward pass, into dx, without
	// dx, and in place.
	mean, inv := make([]float32, s.c), make([]float32, s.c)
	must(t, BatchNormTrainForward32(s.n, s.c, s.hw, x, gamma, beta, make([]float32, L), mean, inv, nil, nil, 0.1, 1e-5))
	wdx, wdg, wdb := make([]float32, L), make([]float32, s.c), make([]float32, s.c)
	must(t, BatchNormBackward32(s.n, s.c, s.hw, x, gamma, mean, inv, dy, wdx, wdg, wdb))
	gdx, gdg, gdb := newPoisoned32(L), newPoisoned32(s.c), newPoisoned32(s.c)
	must(t, b.Backward(s.n, s.c, s.hw, x, gamma, mean, inv, dy, gdx.Out, gdg.Out, gdb.Out))
	equalBits32(t, "backward dx", gdx.Out, wdx)
	equalBits32(t, "backward dgamma", gdg.Out, wdg)
	equalBits32(t, "backward dbeta", gdb.Out, wdb)
	gdx.checkGuards(t, "backward dx")
	gdg.checkGuards(t, "backward dgamma")
	gdb.checkGuards(t, "backward dbeta")
	ndg, ndb := newPoisoned32(s.c), newPoisoned32(s.c)
	must(t, b.Backward(s.n, s.c, s.hw, x, gamma, mean, inv, dy, nil, ndg.Out, ndb.Out))
	equalBits32(t, "backward (no dx) dgamma", ndg.Out, wdg)
	equalBits32(t, "backward (no dx) dbeta", ndb.Out, wdb)
	dd := append([]float32(nil), dy...)
	must(t, b.Backward(s.n, s.c, s.hw, x, gamma, mean, inv, dd, dd, gdg.Out, gdb.Out))
	equalBits32(t, "backward dx in place", dd, wdx)
}

// TestAddReLUForward requires AddReLUForward to give the bits of
// AddForward followed by ReLUForward, in float32 (the assembly and the Go
// form) and float64, on every length from 1 to 70 and a long one, on
// values with NaNs, infinities, signed zeros (a + b = ±0 included) and
// denormals, out of place (between guard bands) and in place of a and of
// b.
func TestAddReLUForward(t *testing.T) {
	rng := newRand(84)
	vecForms(t, func(t *testing.T) {
		for _, n := range append(rangeInts(1, 70), 1031) {
			a, b := specialFloats(rng, n, 3), specialFloats(rng, n, 3)
			for i := 0; i < n; i += 5 { // exact zeros of either sign from the addition
				b[i] = -a[i]
			}
			want := make([]float32, n)
			must(t, AddForward(a, b, want))
			must(t, ReLUForward(want, want))
			name := fmt.Sprintf("n=%d", n)
			got := newPoisoned32(n)
			must(t, AddReLUForward(a, b, got.Out))
			equalBits32(t, name, got.Out, want)
			got.checkGuards(t, name)
			for j, in := range [][]float32{a, b} {
				c := append([]float32(nil), in...)
				if j == 0 {
					must(t, AddReLUForward(c, b, c))
				} else {
					must(t, AddReLUForward(a, c, c))
				}
				equalBits32(t, fmt.Sprintf("%s in place of input %d", name, j), c, want)
			}
			a64, b64, w64, g64 := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
			for i := range a {
				a64[i], b64[i] = float64(a[i]), float64(b[i])
			}
			must(t, AddForward(a64, b64, w64))
			must(t, ReLUForward(w64, w64))
			must(t, AddReLUForward(a64, b64, g64))
			for i := range w64 {
				if math.Float64bits(g64[i]) != math.Float64bits(w64[i]) && (g64[i] == g64[i] || w64[i] == w64[i]) {
					t.Errorf("float64 %s: element %d = %g, want %g", name, i, g64[i], w64[i])
					break
				}
			}
		}
	})
	for _, tc := range []struct {
		name    string
		a, b, y int
	}{{"empty", 0, 0, 0}, {"short b", 4, 3, 4}, {"short y", 4, 4, 3}} {
		y := newPoisoned32(tc.y)
		if err := AddReLUForward(make([]float32, tc.a), make([]float32, tc.b), y.Out); err == nil {
			t.Errorf("AddReLUForward(%s) = nil, want an error", tc.name)
		}
		for i, v := range y.Out {
			if math.Float32bits(v) != poison32 {
				t.Errorf("AddReLUForward(%s) wrote y[%d] before failing", tc.name, i)
				break
			}
		}
	}
}

// rangeInts is lo, lo+1, …, hi.
func rangeInts(lo, hi int) []int {
	var r []int
	for i := lo; i <= hi; i++ {
		r = append(r, i)
	}
	return r
}

// TestBatchNorm32BackwardReLU requires BatchNorm32.BackwardReLU to give
// the bits of ReLUBackward(y, dy) followed by BatchNormBackward32 on the
// masked gradient, in every output, on the shapes of fastBNShapes, with
// the assembly kernels and the Go ones, on 1 and 3 goroutines, with y
// holding ±0, NaNs and infinities (masking) and dy and x finite or holding
// special values sparsely or densely; with and without dx, and in place
// (dx = dy). Outputs start as a NaN poison between guard bands.
func TestBatchNorm32BackwardReLU(t *testing.T) {
	bnSweep(t, checkBatchNorm32BackwardReLU)
}

func checkBatchNorm32BackwardReLU(t *testing.T, s bnShape, special string) {
	rng := newRand(uint64(85 + s.n*1000 + s.c*100 + s.hw))
	L := s.n * s.c * s.hw
	every := map[string]int{"none": 0, "sparse": max(3, L/4), "dense": 3}[special]
	x, dy := specialFloats(rng, L, every), specialFloats(rng, L, every)
	y := specialFloats(rng, L, 3)
	for i := 0; i < L; i += 7 {
		y[i] = float32(math.Copysign(0, float64(rng.IntN(2))-0.5)) // ±0: masked
	}
	gamma, beta := randFloats[float32](rng, s.c), randFloats[float32](rng, s.c)
	mean, inv := make([]float32, s.c), make([]float32, s.c)
	must(t, BatchNormTrainForward32(s.n, s.c, s.hw, x, gamma, beta, make([]float32, L), mean, inv, nil, nil, 0.1, 1e-5))
	m := make([]float32, L)
	must(t, ReLUBackward(y, dy, m))
	wdx, wdg, wdb := make([]float32, L), make([]float32, s.c), make([]float32, s.c)
	must(t, BatchNormBackward32(s.n, s.c, s.hw, x, gamma, mean, inv, m, wdx, wdg, wdb))

	var b BatchNorm32
	dy0 := append([]float32(nil), dy...)
	gdx, gdg, gdb := newPoisoned32(L), newPoisoned32(s.c), newPoisoned32(s.c)
	must(t, b.BackwardReLU(s.n, s.c, s.hw, x, gamma, mean, inv, y, dy, gdx.Out, gdg.Out, gdb.Out))
	equalBits32(t, "dx", gdx.Out, wdx)
	equalBits32(t, "dgamma", gdg.Out, wdg)
	equalBits32(t, "dbeta", gdb.Out, wdb)
	equalBits32(t, "dy unchanged", dy, dy0)
	gdx.checkGuards(t, "dx")
	gdg.checkGuards(t, "dgamma")
	gdb.checkGuards(t, "dbeta")
	ndg, ndb := newPoisoned32(s.c), newPoisoned32(s.c)
	must(t, b.BackwardReLU(s.n, s.c, s.hw, x, gamma, mean, inv, y, dy, nil, ndg.Out, ndb.Out))
	equalBits32(t, "no dx: dgamma", ndg.Out, wdg)
	equalBits32(t, "no dx: dbeta", ndb.Out, wdb)
	dd := append([]float32(nil), dy...)
	must(t, b.BackwardReLU(s.n, s.c, s.hw, x, gamma, mean, inv, y, dd, dd, gdg.Out, gdb.Out))
	equalBits32(t, "dx in place", dd, wdx)
}

// TestBatchNorm32Errors requires BatchNorm32 to refuse what the lane
// forms refuse, before any work.
func TestBatchNorm32Errors(t *testing.T) {
	var b BatchNorm32
	f := func(n int) []float32 { return make([]float32, n) }
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"train/N·HW=1", func() error {
			return b.TrainForward(1, 2, 1, f(2), f(2), f(2), f(2), nil, nil, nil, nil, 0.1, 1e-5, false)
		}},
		{"train/short y", func() error {
			return b.TrainForward(2, 2, 3, f(12), f(2), f(2), f(11), nil, nil, nil, nil, 0.1, 1e-5, true)
		}},
		{"train/momentum", func() error {
			return b.TrainForward(2, 2, 3, f(12), f(2), f(2), f(12), nil, nil, nil, nil, 1.5, 1e-5, false)
		}},
		{"eval/eps=0", func() error { return b.EvalForward(2, 2, 3, f(12), f(2), f(2), f(2), f(2), f(12), 0, false) }},
		{"eval/short runVar", func() error { return b.EvalForward(2, 2, 3, f(12), f(2), f(2), f(2), f(1), f(12), 1e-5, true) }},
		{"backward/C=0", func() error { return b.Backward(2, 0, 3, f(0), f(0), f(0), f(0), f(0), nil, f(0), f(0)) }},
		{"backward/short dx", func() error {
			return b.Backward(2, 2, 3, f(12), f(2), f(2), f(2), f(12), f(11), f(2), f(2))
		}},
		{"backward relu/short y", func() error {
			return b.BackwardReLU(2, 2, 3, f(12), f(2), f(2), f(2), f(11), f(12), f(12), f(2), f(2))
		}},
		{"backward relu/nil y", func() error {
			return b.BackwardReLU(2, 2, 3, f(12), f(2), f(2), f(2), nil, f(12), f(12), f(2), f(2))
		}},
		{"backward relu/short dy", func() error {
			return b.BackwardReLU(2, 2, 3, f(12), f(2), f(2), f(2), f(12), f(10), f(12), f(2), f(2))
		}},
	} {
		if err := tc.call(); err == nil {
			t.Errorf("%s: nil error, want one", tc.name)
		}
	}
}

// TestBatchNorm32Allocs requires BatchNorm32's passes to allocate nothing
// after the first call.
func TestBatchNorm32Allocs(t *testing.T) {
	const n, c, hw = 4, 6, 50
	rng := newRand(83)
	x, dy := randFloats[float32](rng, n*c*hw), randFloats[float32](rng, n*c*hw)
	y, dx := make([]float32, n*c*hw), make([]float32, n*c*hw)
	gamma, beta := randFloats[float32](rng, c), randFloats[float32](rng, c)
	mean, inv, rm, rv, dg, db := make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c)
	for i := range rv {
		rv[i] = 1
	}
	var b BatchNorm32
	step := func() {
		must(t, b.TrainForward(n, c, hw, x, gamma, beta, y, mean, inv, rm, rv, 0.1, 1e-5, true))
		must(t, b.EvalForward(n, c, hw, x, gamma, beta, rm, rv, y, 1e-5, false))
		must(t, b.Backward(n, c, hw, x, gamma, mean, inv, dy, dx, dg, db))
		must(t, b.BackwardReLU(n, c, hw, x, gamma, mean, inv, y, dy, dx, dg, db))
	}
	step()
	// AllocsPerRun runs with GOMAXPROCS 1.
	if a := testing.AllocsPerRun(10, step); a != 0 {
		t.Errorf("%g allocations per step, want 0", a)
	}
}

// bnSweep runs check with the assembly kernels and the Go ones (vecForms),
// on 1 and 3 goroutines (every channel range split as far as it goes:
// bnMinWork 1), with no, sparse and dense special values, on each shape of
// fastBNShapes.
func bnSweep(t *testing.T, check func(t *testing.T, s bnShape, special string)) {
	savedWork := bnMinWork
	defer func() { bnMinWork = savedWork }()
	bnMinWork = 1
	vecForms(t, func(t *testing.T) {
		for _, procs := range []int{1, 3} {
			for _, special := range []string{"none", "sparse", "dense"} {
				for _, s := range fastBNShapes {
					name := fmt.Sprintf("procs=%d,special=%s,%v", procs, special, s)
					t.Run(name, func(t *testing.T) {
						defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
						check(t, s, special)
					})
				}
			}
		}
	})
}
