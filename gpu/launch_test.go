package gpu

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/kernels"
)

// fakeDriver records launches instead of running them, so the launchers'
// argument packing, launch shapes and allocations can be checked without a
// device. Memory is a bump allocator; copies do nothing.
type fakeDriver struct {
	next     DevicePtr
	allocs   int
	last     fakeLaunch
	launches int
}

type fakeLaunch struct {
	name        string
	grid, block Dim3
	shared      int
	args        [maxArgs]uint64
	nargs       int
}

type fakeFunction struct{ name string }

func (f *fakeFunction) Name() string { return f.name }

type fakeModule struct{}

func (fakeModule) Function(name string) (function, error) { return &fakeFunction{name}, nil }
func (fakeModule) Unload() error                          { return nil }

func (f *fakeDriver) Info() (DeviceInfo, error) { return DeviceInfo{Name: "fake"}, nil }
func (f *fakeDriver) MemAlloc(n int64) (DevicePtr, error) {
	f.allocs++
	if f.next == 0 {
		f.next = 1 << 32
	}
	p := f.next
	f.next += DevicePtr(n+allocAlign-1) / allocAlign * allocAlign
	return p, nil
}
func (f *fakeDriver) MemFree(DevicePtr) error                  { return nil }
func (f *fakeDriver) MemcpyHtoD(DevicePtr, []byte) error       { return nil }
func (f *fakeDriver) MemcpyDtoH([]byte, DevicePtr) error       { return nil }
func (f *fakeDriver) MemcpyDtoD(_, _ DevicePtr, _ int64) error { return nil }
func (f *fakeDriver) LoadModule(string) (module, error)        { return fakeModule{}, nil }
func (f *fakeDriver) Launch(fn function, grid, block Dim3, shared int, args []uint64) error {
	f.launches++
	f.last.name, f.last.grid, f.last.block, f.last.shared = fn.Name(), grid, block, shared
	f.last.nargs = copy(f.last.args[:], args)
	return nil
}
func (f *fakeDriver) Synchronize() error       { return nil }
func (f *fakeDriver) NewEvent() (event, error) { return nil, errors.New("fake: no events") }
func (f *fakeDriver) Close() error             { return nil }
func (f *fakeDriver) BeginCapture() error      { return errors.New("fake: no graphs") }
func (f *fakeDriver) EndCapture() (graph, error) {
	return nil, errors.New("fake: no graphs")
}

// launcherTestedElsewhere names kernels whose launchers other tests check
// argument by argument (multi-dimensional grids: launch_igemm_test.go).
var launcherTestedElsewhere = map[string]bool{}

func openFake(t *testing.T) (*Device, *fakeDriver) {
	t.Helper()
	f := &fakeDriver{}
	d, err := newDevice(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, f
}

func mustF32(t *testing.T, d *Device, n int) *Buffer {
	t.Helper()
	b, err := d.NewFloat32(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustU8(t *testing.T, d *Device, n int) *Buffer {
	t.Helper()
	b, err := d.NewUint8(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustI32(t *testing.T, d *Device, n int) *Buffer {
	t.Helper()
	b, err := d.NewInt32(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestArgPacking checks the 8-byte argument rule: int32 sign-extended,
// float32 as its bits in the low half, pointers as they are; each with its
// kind.
func TestArgPacking(t *testing.T) {
	for _, c := range []struct {
		got  arg
		want uint64
		kind argKind
	}{
		{argI32(0), 0, kindI32},
		{argI32(7), 7, kindI32},
		{argI32(-3), 0xffff_ffff_ffff_fffd, kindI32},
		{argI32(math.MaxInt32), 0x7fff_ffff, kindI32},
		{argI32(math.MinInt32), 0xffff_ffff_8000_0000, kindI32},
		{argF32(1), 0x3f80_0000, kindF32},
		{argF32(-2.5), 0xc020_0000, kindF32},
		{argF32(float32(math.Inf(1))), 0x7f80_0000, kindF32},
		{argPtr(&Buffer{ptr: 0x7f00_1234_5600}), 0x7f00_1234_5600, kindPtr},
		{argPtr(nil), 0, kindPtr},
		{argDev(0x1000), 0x1000, kindPtr},
	} {
		if c.got.v != c.want || c.got.kind != c.kind {
			t.Errorf("packed %#x (%v), want %#x (%v)", c.got.v, c.got.kind, c.want, c.kind)
		}
	}
	for _, typ := range []string{kernels.TypePtr, kernels.TypeI32, kernels.TypeF32, "f64"} {
		want := typ
		if typ == "f64" {
			want = "unknown"
		}
		if got := kindOf(typ).String(); got != want {
			t.Errorf("kindOf(%q) = %s, want %s", typ, got, want)
		}
	}
}

// TestLaunchChecksArgs checks that launch refuses an argument list that
// does not match the kernel's parameters in the generated table: too few,
// too many, or a kind at the wrong place; nothing reaches the driver.
func TestLaunchChecksArgs(t *testing.T) {
	d, f := openFake(t)
	grid, block := linear(10)
	p := argDev(0x1000)
	for _, c := range []struct {
		name string
		args []arg
		want string
	}{
		{"few", []arg{p, p}, "launcher passes 2 arguments, kernel has 3 parameters"},
		{"many", []arg{p, p, argI32(10), argI32(1)}, "launcher passes 4 arguments, kernel has 3 parameters"},
		{"kind", []arg{p, argI32(1), argI32(10)}, "launcher passes i32 for parameter 1 (float* y)"},
		{"float", []arg{p, p, argF32(10)}, "launcher passes f32 for parameter 2 (int n)"},
	} {
		t.Run("case="+c.name, func(t *testing.T) {
			before := f.launches
			d.mu.Lock()
			err := d.launch(kReLUFwd, grid, block, 0, c.args...)
			d.mu.Unlock()
			if err == nil || err.Error() != c.want {
				t.Errorf("launch(relu_fwd_v1) error = %v, want %q", err, c.want)
			}
			if f.launches != before {
				t.Errorf("%d launches reached the driver, want 0", f.launches-before)
			}
		})
	}
}

// TestLaunchers checks every launcher against the parameter names of
// package kernels: each argument lands in the parameter of that name, with
// the launch shape the kernel's doc states.
func TestLaunchers(t *testing.T) {
	d, f := openFake(t)
	g := cg(2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 0) // P = 5, Q = 7
	// The forward's shape has a longer reduction (C·R·S = 160), so that the
	// dispatcher's cost model runs the direct kernel (one block of 8 warps ·
	// 160 taps · 22 + 14336 for its ReLU launch = 42496 slots against the
	// 128×64 implicit GEMM's 20 k-tiles, 64307).
	gf := cg(2, 16, 9, 8, 4, 5, 2, 2, 1, 1, 0) // P = 4, Q = 7
	xf, wf, yf := mustF32(t, d, gf.XLen()), mustF32(t, d, gf.WLen()), mustF32(t, d, gf.YLen())
	pool := pg(2, 3, 9, 8, 3, 2, 2, 3) // P = 4, Q = 3
	x, w, b, y := mustF32(t, d, g.XLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.K), mustF32(t, d, g.YLen())
	px, py, parg := mustF32(t, d, pool.XLen()), mustF32(t, d, pool.YLen()), mustI32(t, d, pool.YLen())
	const n, in, out = 3, 5, 7
	dx, dw, db, dy := mustF32(t, d, n*in), mustF32(t, d, out*in), mustF32(t, d, out), mustF32(t, d, n*out)
	lab, rows := mustI32(t, d, n), mustF32(t, d, n)
	e1, e2, e3 := mustF32(t, d, 1000), mustF32(t, d, 1000), mustF32(t, d, 1000)
	e4 := mustF32(t, d, 1000)
	F32 := func(v float32) uint64 { return uint64(math.Float32bits(v)) }
	adamCoef := geom.AdamCoef{Beta1: 0.9, OneMinusBeta1: 0.1, Beta2: 0.999, OneMinusBeta2: 0.001, StepSize: 0.5,
		BC2Sqrt: 0.25, Eps: 1e-8, L2: 0.125, Decay: 0.75, Decoupled: true}
	src, idx, dst := mustF32(t, d, 10*4), mustI32(t, d, 6), mustF32(t, d, 6*4)
	isrc, idst := mustI32(t, d, 10*4), mustI32(t, d, 6*4)
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	// maxpool_dense_fwd_v1's dense layer: 5 outputs of the 3·4·3 pooled values.
	pw, db5, pz := mustF32(t, d, 5*3*4*3), mustF32(t, d, 5), mustF32(t, d, 2*5)
	plab, prows := mustI32(t, d, 2), mustF32(t, d, 5)
	// augment_batch_at_v1's: 10 images of 1×2×2 bytes, 6 gathered.
	asrc, alut, adst := mustU8(t, d, 10*4), mustF32(t, d, 256), mustF32(t, d, 6*4)
	// The _at kernels' operands: a words buffer, a longer order, labels.
	words, order, labels, dlabels := mustF32(t, d, 16), mustI32(t, d, 16), mustI32(t, d, 10), mustI32(t, d, 6)
	sgdTab, err := d.NewParamTable([]ParamSet{{P: e1, G: e2, M: e3}})
	if err != nil {
		t.Fatal(err)
	}
	adamTab, err := d.NewParamTable([]ParamSet{{P: e1, G: e2, M: e3, V: e4}})
	if err != nil {
		t.Fatal(err)
	}
	convArgs := map[string]uint64{"N": 2, "C": 3, "H": 9, "W": 8, "K": 4, "R": 3, "S": 2, "P": 5, "Q": 7, "sh": 2, "sw": 1, "ph": 1, "pw": 0}
	fwdArgs := map[string]uint64{"N": 2, "C": 16, "H": 9, "W": 8, "K": 4, "R": 5, "S": 2, "P": 4, "Q": 7, "sh": 2, "sw": 1, "ph": 1, "pw": 0}
	poolArgs := map[string]uint64{"N": 2, "C": 3, "H": 9, "W": 8, "R": 3, "S": 2, "P": 4, "Q": 3, "sh": 2, "sw": 3}
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
		{"conv2d_fwd_v1_direct", func() error { return d.Conv2DForward(gf, xf, wf, b, yf) }, lin(2 * 4 * 4 * 7),
			with(fwdArgs, "x", P(xf), "w", P(wf), "b", P(b), "y", P(yf))},
		{"conv2d_fwd_v1_direct", func() error { return d.Conv2DForward(gf, xf, wf, nil, yf) }, lin(2 * 4 * 4 * 7),
			with(fwdArgs, "x", P(xf), "w", P(wf), "b", uint64(0), "y", P(yf))},
		{"conv2d_bwd_data_v1_direct", func() error { return d.Conv2DBackwardData(g, y, w, x) }, lin(2 * 3 * 9 * 8),
			with(convArgs, "dy", P(y), "w", P(w), "dx", P(x))},
		{"conv2d_bwd_filter_v1_direct", func() error { return d.Conv2DBackwardFilter(g, x, y, w) }, 4 * 3 * 3 * 2,
			with(convArgs, "x", P(x), "dy", P(y), "dw", P(w))},
		{"conv2d_bwd_filter_bias_v1", func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.conv2DBackwardFilterBias(g, x, y, w, b)
		}, 4*3*3*2 + 4, with(convArgs, "x", P(x), "dy", P(y), "dw", P(w), "db", P(b))},
		{"conv2d_bwd_bias_v1", func() error { return d.Conv2DBackwardBias(g, y, b) }, 4,
			map[string]uint64{"dy": P(y), "db": P(b), "N": 2, "K": 4, "PQ": 35}},
		{"relu_fwd_v1", func() error { return d.ReLUForward(e1, e2) }, 4,
			map[string]uint64{"x": P(e1), "y": P(e2), "n": 1000}},
		{"relu_bwd_v1", func() error { return d.ReLUBackward(e1, e2, e3) }, 4,
			map[string]uint64{"x": P(e1), "dy": P(e2), "dx": P(e3), "n": 1000}},
		{"maxpool_fwd_v1", func() error { return d.MaxPoolForward(pool, px, py, parg) }, lin(2 * 3 * 4 * 3),
			with(poolArgs, "x", P(px), "y", P(py), "argmax", P(parg))},
		{"maxpool_bwd_v1", func() error { return d.MaxPoolBackward(pool, py, parg, px) }, lin(2 * 3 * 9 * 8),
			with(poolArgs, "dy", P(py), "argmax", P(parg), "dx", P(px))},
		{"maxpool_bwd_relu_v1", func() error { return d.MaxPoolBackwardReLU(pool, py, parg, px, px) }, lin(2 * 3 * 9 * 8),
			with(poolArgs, "dy", P(py), "argmax", P(parg), "x", P(px), "dx", P(px))},
		{"maxpool_dense_fwd_v1", func() error { return d.MaxPoolDenseForward(pool, px, py, parg, 5, pw, db5, pz) }, 2,
			with(poolArgs, "x", P(px), "y", P(py), "argmax", P(parg), "w", P(pw), "b", P(db5), "z", P(pz), "Out", uint64(5))},
		{"dense_bwd_pool_relu_v1", func() error { return d.DenseBackwardPoolReLU(pool, 5, py, pw, pz, pw, db5, parg, px, px) },
			lin(5*36) + lin(5) + lin(2*3*9*8),
			with(poolArgs, "x", P(py), "w", P(pw), "dy", P(pz), "dw", P(pw), "db", P(db5), "argmax", P(parg), "xr", P(px), "dxr", P(px), "Out", uint64(5))},
		{"maxpool_dense_softmax_v1", func() error {
			return d.MaxPoolDenseSoftmax(pool, px, py, parg, 5, pw, db5, pz, plab, e1, pz, e2, e3, prows)
		}, 2, with(poolArgs, "x", P(px), "y", P(py), "argmax", P(parg), "w", P(pw), "b", P(db5), "z", P(pz),
			"labels", P(plab), "loss", P(e1), "dlogits", P(pz), "loss_sum", P(e2), "correct", P(e3), "rows", P(prows),
			"Out", uint64(5), "scale", F32(0.5))},
		{"augment_batch_at_v1", func() error {
			return d.AugmentBatchAt(2, true, 0x11111111_22222222, 0x33333333_44444444, 1, 2, 2, asrc, alut, labels, order, Word{words, 1}, Word{words, 4}, adst, dlabels)
		}, 1, map[string]uint64{"src": P(asrc), "lut": P(alut), "labels": P(labels), "order": P(order), "at": P(words) + 4,
			"astep": P(words) + 16, "dst": P(adst), "dlabels": P(dlabels), "N": 6, "C": 1, "H": 2, "W": 2, "pad": 2, "flip": 1,
			"seed_lo": 0x22222222, "seed_hi": 0x11111111, "step_lo": 0x44444444, "step_hi": 0x33333333, "orderLen": 16, "srcRows": 10}},
		{"dense_fwd_v1", func() error { return d.DenseForward(n, in, out, dx, dw, db, dy) }, 1,
			map[string]uint64{"x": P(dx), "w": P(dw), "b": P(db), "y": P(dy), "N": n, "In": in, "Out": out}},
		{"dense_bwd_data_v1", func() error { return d.DenseBackwardData(n, in, out, dy, dw, dx) }, 1,
			map[string]uint64{"dy": P(dy), "w": P(dw), "dx": P(dx), "N": n, "In": in, "Out": out}},
		{"dense_bwd_weight_v1", func() error { return d.DenseBackwardWeight(n, in, out, dx, dy, dw) }, 1,
			map[string]uint64{"x": P(dx), "dy": P(dy), "dw": P(dw), "N": n, "In": in, "Out": out}},
		{"dense_bwd_v2", func() error { return d.DenseBackward(n, in, out, dx, dw, dy, dx, dw, db) }, lin(out*in) + lin(out) + lin(n*in),
			map[string]uint64{"x": P(dx), "w": P(dw), "dy": P(dy), "dx": P(dx), "dw": P(dw), "db": P(db), "N": n, "In": in, "Out": out}},
		{"dense_bwd_v2", func() error { return d.DenseBackward(n, in, out, dx, nil, dy, nil, dw, nil) }, lin(out * in),
			map[string]uint64{"x": P(dx), "w": 0, "dy": P(dy), "dx": 0, "dw": P(dw), "db": 0, "N": n, "In": in, "Out": out}},
		{"softmax_ce_metrics_v1", func() error { return d.SoftmaxCrossEntropyMetrics(n, out, dy, lab, rows, dy, e1, e2) }, 1,
			map[string]uint64{"logits": P(dy), "labels": P(lab), "loss": P(rows), "dlogits": P(dy), "loss_sum": P(e1),
				"correct": P(e2), "N": n, "classes": out, "scale": F32(float32(1 / float64(n)))}},
		{"reduce_cols_v1", func() error { return d.ReduceCols(n, out, dy, db) }, 1,
			map[string]uint64{"a": P(dy), "out": P(db), "rows": n, "cols": out}},
		{"softmax_ce_v1", func() error { return d.SoftmaxCrossEntropy(n, out, dy, lab, rows, dy) }, 1,
			map[string]uint64{"logits": P(dy), "labels": P(lab), "loss_rows": P(rows), "dlogits": P(dy), "N": n, "classes": out}},
		{"mse_v1", func() error { return d.MSE(n, out, dy, dy, rows, nil) }, 1,
			map[string]uint64{"y": P(dy), "t": P(dy), "loss_rows": P(rows), "dy": 0, "N": n, "D": out}},
		{"reduce_sum_v1", func() error { return d.ReduceSum(e1, rows, 0.5) }, 1,
			map[string]uint64{"a": P(e1), "out": P(rows), "n": 1000, "scale": uint64(math.Float32bits(0.5))}},
		{"count_correct_v1", func() error { return d.CountCorrect(n, out, dy, lab, rows) }, 1,
			map[string]uint64{"logits": P(dy), "labels": P(lab), "acc": P(rows), "N": n, "classes": out}},
		{"accumulate_v1", func() error { return d.Accumulate(e1, e2) }, 4,
			map[string]uint64{"dst": P(e1), "src": P(e2), "n": 1000}},
		{"sgd_momentum_v1", func() error { return d.SGDMomentum(e1, e2, e3, 0.01, 0.9, -1) }, 4,
			map[string]uint64{"p": P(e1), "g": P(e2), "v": P(e3), "n": 1000, "lr": uint64(math.Float32bits(0.01)),
				"momentum": uint64(math.Float32bits(0.9)), "weight_decay": uint64(math.Float32bits(-1))}},
		{"gather_rows_f32_v1", func() error { return d.GatherRows(4, src, idx, dst) }, 1,
			map[string]uint64{"src": P(src), "idx": P(idx), "dst": P(dst), "rows": 6, "rowLen": 4}},
		{"gather_rows_i32_v1", func() error { return d.GatherRows(4, isrc, idx, idst) }, 1,
			map[string]uint64{"src": P(isrc), "idx": P(idx), "dst": P(idst), "rows": 6, "rowLen": 4}},
		{"fill_f32_v1", func() error { return d.Fill(e3, -2) }, 4,
			map[string]uint64{"p": P(e3), "n": 1000, "v": uint64(math.Float32bits(-2))}},
		{"sgd_nesterov_v1", func() error { return d.SGDNesterov(e1, e2, e3, 0.01, 0.9, -1) }, 4,
			map[string]uint64{"p": P(e1), "g": P(e2), "v": P(e3), "n": 1000, "lr": uint64(math.Float32bits(0.01)),
				"momentum": uint64(math.Float32bits(0.9)), "weight_decay": uint64(math.Float32bits(-1))}},
		{"gather_batch_at_v1", func() error { return d.GatherBatchAt(4, src, labels, order, Word{words, 3}, dst, dlabels) }, 1,
			map[string]uint64{"x": P(src), "labels": P(labels), "order": P(order), "at": P(words) + 12, "dx": P(dst),
				"dlabels": P(dlabels), "rows": 6, "rowLen": 4, "orderLen": 16, "srcRows": 10}},
		{"gather_batch_at_v1", func() error { return d.GatherBatchAt(4, isrc, nil, idx, Word{}, idst, nil) }, 1,
			map[string]uint64{"x": P(isrc), "labels": 0, "order": P(idx), "at": 0, "dx": P(idst),
				"dlabels": 0, "rows": 6, "rowLen": 4, "orderLen": 6, "srcRows": 10}},
		{"sgd_momentum_multi_at_v1", func() error { return d.SGDMomentumMultiAt(sgdTab, Word{words, 13}) }, 4,
			map[string]uint64{"table": P(sgdTab.buf), "count": 1, "s": P(words) + 52}},
		{"sgd_nesterov_multi_at_v1", func() error { return d.SGDNesterovMultiAt(sgdTab, Word{words, 0}) }, 4,
			map[string]uint64{"table": P(sgdTab.buf), "count": 1, "s": P(words)}},
		{"adam_multi_at_v1", func() error { return d.AdamMultiAt(adamTab, Word{words, 6}) }, 4,
			map[string]uint64{"table": P(adamTab.buf), "count": 1, "s": P(words) + 24}},
		{"adam_v1", func() error { return d.Adam(e1, e2, e3, e4, adamCoef) }, 4,
			map[string]uint64{"p": P(e1), "g": P(e2), "m": P(e3), "v": P(e4), "n": 1000,
				"beta1": F32(0.9), "one_minus_beta1": F32(0.1), "beta2": F32(0.999), "one_minus_beta2": F32(0.001),
				"step_size": F32(0.5), "bc2_sqrt": F32(0.25), "eps": F32(1e-8), "l2": F32(0.125),
				"decay": F32(0.75), "decoupled": 1}},
	}
	seen := map[string]bool{}
	for i, c := range cases {
		t.Run(fmt.Sprintf("case=%d/kernel=%s", i, c.kernel), func(t *testing.T) {
			if err := c.call(); err != nil {
				t.Fatal(err)
			}
			seen[c.kernel] = true
			l := f.last
			if l.name != c.kernel {
				t.Fatalf("launched %s, want %s", l.name, c.kernel)
			}
			if l.grid != (Dim3{c.grid, 1, 1}) || l.block != (Dim3{256, 1, 1}) || l.shared != 0 {
				t.Errorf("grid %v block %v shared %d, want grid {%d 1 1} block {256 1 1} shared 0", l.grid, l.block, l.shared, c.grid)
			}
			k, _ := kernels.Lookup(c.kernel)
			if l.nargs != len(k.Params) {
				t.Fatalf("%d arguments, kernel has %d parameters", l.nargs, len(k.Params))
			}
			for j, p := range k.Params {
				want, ok := c.want[p.Name]
				if !ok {
					t.Fatalf("test has no value for parameter %s", p.Name)
				}
				if l.args[j] != want {
					t.Errorf("parameter %d (%s) = %#x, want %#x", j, p.Name, l.args[j], want)
				}
			}
			if len(c.want) != len(k.Params) {
				t.Errorf("test lists %d values for %d parameters", len(c.want), len(k.Params))
			}
			// Arguments are staged in the Device: a launch allocates nothing
			// on the host.
			if a := testing.AllocsPerRun(10, func() { c.call() }); a != 0 {
				t.Errorf("a launch allocates %v times, want 0", a)
			}
		})
	}
	for _, k := range kernels.All {
		if !seen[k.Name] && !launcherTestedElsewhere[k.Name] {
			t.Errorf("kernel %s has no launcher case", k.Name)
		}
	}
}

// TestLaunchAllocs checks that a launch allocates nothing on the host (the
// arguments are staged in the Device) and that buffers freed and allocated
// again in a loop are served from the cache: no driver allocation in steady
// state.
func TestLaunchAllocs(t *testing.T) {
	d, f := openFake(t)
	g := cg(2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 0)
	x, w, b, y := mustF32(t, d, g.XLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.K), mustF32(t, d, g.YLen())
	if a := testing.AllocsPerRun(100, func() {
		if err := d.Conv2DForward(g, x, w, b, y); err != nil {
			t.Fatal(err)
		}
		if err := d.SGDMomentum(x, x, x, 0.1, 0.9, 0); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("launches allocate %v times per run, want 0", a)
	}
	before := f.allocs
	for range 10 {
		t1, err := d.NewFloat32(1000)
		if err != nil {
			t.Fatal(err)
		}
		t2, err := d.NewInt32(990) // 3960 bytes: the same 4096-byte class as 1000 float32
		if err != nil {
			t.Fatal(err)
		}
		if err := t1.Free(); err != nil {
			t.Fatal(err)
		}
		if err := t2.Free(); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.allocs - before; got != 2 {
		t.Errorf("10 alloc/free cycles of two buffers made %d driver allocations, want 2", got)
	}
	s := d.MemStats()
	if s.Reuses != 18 || s.BytesCached != 2*4096 {
		t.Errorf("MemStats = %+v, want 18 reuses and 8192 bytes cached", s)
	}
	if err := d.ReleaseCached(); err != nil {
		t.Fatal(err)
	}
	if s := d.MemStats(); s.BytesCached != 0 || s.Frees != 2 {
		t.Errorf("after ReleaseCached: MemStats = %+v, want nothing cached and 2 frees", s)
	}
}

// TestBufferChecks checks the length, type and lifetime checks of buffers.
func TestBufferChecks(t *testing.T) {
	d, _ := openFake(t)
	a, b := mustF32(t, d, 10), mustI32(t, d, 10)
	view, err := a.Slice(2, 5)
	if err != nil {
		t.Fatal(err)
	}
	if view.Ptr() != a.Ptr()+8 || view.Len() != 5 {
		t.Errorf("Slice(2, 5) = %v, want 5 elements at %#x", view, uint64(a.Ptr()+8))
	}
	cases := []struct {
		name string
		err  error
	}{
		{"upload short", a.Upload(make([]float32, 9))},
		{"upload long", a.Upload(make([]float32, 11))},
		{"upload float32 to int32", b.Upload(make([]float32, 10))},
		{"download int32 from float32", a.DownloadInt32(make([]int32, 10))},
		{"copy type mismatch", a.CopyFrom(b)},
		{"copy length mismatch", a.CopyFrom(view)},
		{"slice past the end", func() error { _, err := a.Slice(6, 5); return err }()},
		{"slice negative", func() error { _, err := a.Slice(-1, 2); return err }()},
		{"zero length", func() error { _, err := d.NewFloat32(0); return err }()},
	}
	for _, c := range cases {
		if !errors.Is(c.err, geom.ErrGeometry) {
			t.Errorf("%s: error %v, want one wrapping geom.ErrGeometry", c.name, c.err)
		}
	}
	if err := view.Free(); err == nil {
		t.Errorf("freeing a view: no error")
	}
	if err := a.Free(); err != nil {
		t.Fatal(err)
	}
	closed := []struct {
		name string
		err  error
	}{
		{"free twice", a.Free()},
		{"upload to freed", a.Upload(make([]float32, 10))},
		{"download from view of freed", view.Download(make([]float32, 5))},
		{"launch on freed", d.Fill(a, 1)},
	}
	for _, c := range closed {
		if !errors.Is(c.err, ErrClosed) {
			t.Errorf("%s: error %v, want one wrapping ErrClosed", c.name, c.err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.NewFloat32(1); !errors.Is(err, ErrClosed) {
		t.Errorf("NewFloat32 after Close: error %v, want one wrapping ErrClosed", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// failingDriver is a fakeDriver whose module load or function lookup
// fails.
type failingDriver struct {
	fakeDriver
	loadErr   error
	missingFn string
}

type failingModule struct{ missing string }

func (m failingModule) Function(name string) (function, error) {
	if name == m.missing {
		return nil, fmt.Errorf("named symbol not found")
	}
	return &fakeFunction{name}, nil
}
func (failingModule) Unload() error { return nil }

func (f *failingDriver) LoadModule(string) (module, error) {
	if f.loadErr != nil {
		return nil, f.loadErr
	}
	return failingModule{f.missingFn}, nil
}

// TestOpenErrors checks that Open fails, naming the file or the kernel,
// when a module does not load (the JIT log is in the driver's error) or a
// kernel of kernels.All is missing from its module.
func TestOpenErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		drv  *failingDriver
		want []string
	}{
		{"jit failure", &failingDriver{loadErr: errors.New("ptxas fatal: JIT log here")},
			[]string{"gpu: load module ", ".ptx", "JIT log here"}},
		{"missing kernel", &failingDriver{missingFn: "sgd_momentum_v1"},
			[]string{"gpu: kernel sgd_momentum_v1 in optim.ptx", "named symbol not found"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := newDevice(c.drv, nil)
			if err == nil {
				d.Close()
				t.Fatalf("newDevice: no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestBufferRoundTrip checks uploads, downloads, device copies and views
// on the simulator, float32 and int32, and that new buffers (fresh or
// reused from the cache) are zero.
func TestBufferRoundTrip(t *testing.T) {
	d := openSim(t)
	a, b := mustF32(t, d, 300), mustF32(t, d, 300)
	want := make([]float32, 300)
	for i := range want {
		want[i] = float32(i) - 0.5
	}
	if err := a.Upload(want); err != nil {
		t.Fatal(err)
	}
	if err := b.CopyFrom(a); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 300)
	if err := b.Download(got); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("copy: element %d = %g, want %g", i, got[i], want[i])
		}
	}
	// A view writes through to its buffer.
	v, err := b.Slice(100, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Upload([]float32{7, 8, 9}); err != nil {
		t.Fatal(err)
	}
	if err := b.Download(got); err != nil {
		t.Fatal(err)
	}
	if got[99] != 98.5 || got[100] != 7 || got[102] != 9 || got[103] != 102.5 {
		t.Errorf("after a view upload: b[99:104] = %v, want [98.5 7 8 9 102.5]", got[99:104])
	}
	ia, ib := mustI32(t, d, 5), mustI32(t, d, 5)
	if err := ia.UploadInt32([]int32{-1, 0, 1, 1 << 30, -1 << 31}); err != nil {
		t.Fatal(err)
	}
	if err := ib.CopyFrom(ia); err != nil {
		t.Fatal(err)
	}
	gi := make([]int32, 5)
	if err := ib.DownloadInt32(gi); err != nil {
		t.Fatal(err)
	}
	if gi[0] != -1 || gi[3] != 1<<30 || gi[4] != -1<<31 {
		t.Errorf("int32 copy = %v, want [-1 0 1 1073741824 -2147483648]", gi)
	}
	// Freed memory comes back zeroed.
	if err := a.Free(); err != nil {
		t.Fatal(err)
	}
	c := mustF32(t, d, 290) // same 1280-byte class as a
	if s := d.MemStats(); s.Reuses != 1 {
		t.Errorf("MemStats.Reuses = %d, want 1", s.Reuses)
	}
	z := make([]float32, 290)
	if err := c.Download(z); err != nil {
		t.Fatal(err)
	}
	for i, v := range z {
		if v != 0 {
			t.Fatalf("reused buffer element %d = %g, want 0", i, v)
		}
	}
}

// checkFakeLaunch checks l, the fake driver's last launch made by call:
// kernel's name, the grid and block, no dynamic shared memory, each
// argument in the parameter of that name (want lists every parameter),
// and a call allocates nothing on the host.
func checkFakeLaunch(t *testing.T, l fakeLaunch, kernel string, grid, block Dim3, want map[string]uint64, call func() error) {
	t.Helper()
	if l.name != kernel {
		t.Fatalf("launched %s, want %s", l.name, kernel)
	}
	if l.grid != grid || l.block != block || l.shared != 0 {
		t.Errorf("grid %v block %v shared %d, want grid %v block %v shared 0", l.grid, l.block, l.shared, grid, block)
	}
	k, _ := kernels.Lookup(kernel)
	if l.nargs != len(k.Params) || len(want) != len(k.Params) {
		t.Fatalf("%d arguments and %d test values, kernel has %d parameters", l.nargs, len(want), len(k.Params))
	}
	for j, p := range k.Params {
		w, ok := want[p.Name]
		if !ok {
			t.Fatalf("test has no value for parameter %s", p.Name)
		}
		if l.args[j] != w {
			t.Errorf("parameter %d (%s) = %#x, want %#x", j, p.Name, l.args[j], w)
		}
	}
	if a := testing.AllocsPerRun(10, func() { call() }); a != 0 {
		t.Errorf("a launch allocates %v times, want 0", a)
	}
}
