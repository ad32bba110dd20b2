package gpubackend

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/cpubackend"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// openDevice opens the device of the GPU backend's tests: the simulator
// with both shared-memory checks on (TestGPUBackendCUDA, -tags cuda, swaps
// in CUDA device 0).
var openDevice = func() (*gpu.Device, error) {
	return gpu.OpenSim(gpu.SimOptions{CheckRaces: true, CheckUninitShared: true})
}

// openSimBackend returns the GPU backend on openDevice's device (the
// simulator), closed at the end of the test.
func openSimBackend(t *testing.T) (backend.Backend, *gpu.Device) {
	t.Helper()
	dev, err := openDevice()
	if err != nil {
		t.Fatal(err)
	}
	be, err := NewGPUBackend(dev)
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := be.Close(); err != nil {
			t.Errorf("backend close: %v", err)
		}
		if err := dev.Close(); err != nil {
			t.Errorf("device close: %v", err)
		}
	})
	return be, dev
}

// twin runs each operation on the CPU backend and on the GPU backend (on
// the simulator) with the same inputs: index 0 is the CPU, 1 the GPU.
type twin struct {
	t  *testing.T
	be [2]backend.Backend
}

func newTwin(t *testing.T) *twin {
	t.Helper()
	cpu, err := cpubackend.NewCPUBackend(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cpu.Close() })
	g, _ := openSimBackend(t)
	return &twin{t: t, be: [2]backend.Backend{cpu, g}}
}

type pair [2]backend.Tensor

func (w *twin) f32(x []float32) pair {
	w.t.Helper()
	var p pair
	for i, be := range w.be {
		tn, err := be.NewTensor(len(x))
		if err != nil {
			w.t.Fatal(err)
		}
		if err := be.Upload(tn, x); err != nil {
			w.t.Fatal(err)
		}
		p[i] = tn
	}
	return p
}

// out returns a pair of outputs filled with NaN, so an element an
// operation does not write shows up.
func (w *twin) out(n int) pair {
	w.t.Helper()
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return w.f32(x)
}

func (w *twin) i32(x []int32) pair {
	w.t.Helper()
	var p pair
	for i, be := range w.be {
		tn, err := be.NewIndexTensor(len(x))
		if err != nil {
			w.t.Fatal(err)
		}
		if err := be.UploadIndex(tn, x); err != nil {
			w.t.Fatal(err)
		}
		p[i] = tn
	}
	return p
}

func (w *twin) outI32(n int) pair { return w.i32(make([]int32, n)) }

func (w *twin) u8(x []uint8) pair {
	w.t.Helper()
	var p pair
	for i, be := range w.be {
		tn, err := be.NewByteTensor(len(x))
		if err != nil {
			w.t.Fatal(err)
		}
		if err := be.UploadBytes(tn, x); err != nil {
			w.t.Fatal(err)
		}
		p[i] = tn
	}
	return p
}

// run calls op on both backends; both must succeed.
func (w *twin) run(op func(be backend.Backend, i int) error) {
	w.t.Helper()
	for i, be := range w.be {
		if err := op(be, i); err != nil {
			w.t.Fatalf("%s: %v", be.Name(), err)
		}
	}
}

func (w *twin) get(p pair) (cpu, gpu []float32) {
	w.t.Helper()
	var out [2][]float32
	for i, be := range w.be {
		out[i] = make([]float32, p[i].Len())
		if err := be.Download(out[i], p[i]); err != nil {
			w.t.Fatal(err)
		}
	}
	return out[0], out[1]
}

// same checks that the GPU backend's p equals the CPU backend's within
// atol + rtol·|cpu| (0, 0: exactly).
func (w *twin) same(name string, p pair, atol, rtol float64) {
	w.t.Helper()
	c, g := w.get(p)
	bad := 0
	for i := range c {
		d := math.Abs(float64(g[i]) - float64(c[i]))
		if math.IsNaN(float64(g[i])) || math.IsNaN(float64(c[i])) || d > atol+rtol*math.Abs(float64(c[i])) {
			if bad < 10 {
				w.t.Errorf("%s[%d]: gpu %g, cpu %g", name, i, g[i], c[i])
			}
			bad++
		}
	}
	if bad > 0 {
		w.t.Errorf("%s: %d of %d elements differ", name, bad, len(c))
	}
}

// ints returns n small integers in [lo, hi] as float32: every float32
// operation on them is exact whatever the summation order, so the two
// backends (im2col + SGEMM on the CPU, direct kernels on the GPU) must
// agree exactly.
func ints(rng *rand.Rand, n, lo, hi int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + rng.IntN(hi-lo+1))
	}
	return x
}

func reals(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(2*rng.Float64() - 1)
	}
	return x
}

// TestGPUBackendOps checks every Backend operation of the GPU backend (on
// the simulator) against the CPU backend on small shapes.
func TestGPUBackendOps(t *testing.T) {
	w := newTwin(t)
	rng := rand.New(rand.NewPCG(7, 8))

	for _, g := range []geom.ConvGeom{
		{N: 2, C: 3, H: 7, W: 6, K: 4, R: 3, S: 2, StrideH: 2, StrideW: 1, PadH: 1, PadW: 0},
		{N: 1, C: 1, H: 5, W: 5, K: 2, R: 5, S: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2},
	} {
		t.Run("op=conv/"+g.String(), func(t *testing.T) {
			w.t = t
			x, wt, b := w.f32(ints(rng, g.XLen(), -3, 3)), w.f32(ints(rng, g.WLen(), -3, 3)), w.f32(ints(rng, g.K, -3, 3))
			dy := w.f32(ints(rng, g.YLen(), -3, 3))
			y, y0, dx, dw, db, dw2 := w.out(g.YLen()), w.out(g.YLen()), w.out(g.XLen()), w.out(g.WLen()), w.out(g.K), w.out(g.WLen())
			w.run(func(be backend.Backend, i int) error {
				return be.Conv2DForward(g, x[i], wt[i], b[i], y[i], backend.NoEpilogue)
			})
			w.run(func(be backend.Backend, i int) error {
				return be.Conv2DForward(g, x[i], wt[i], nil, y0[i], backend.NoEpilogue)
			})
			yr := w.out(g.YLen())
			w.run(func(be backend.Backend, i int) error {
				return be.Conv2DForward(g, x[i], wt[i], b[i], yr[i], backend.EpilogueReLU)
			})
			w.same("y (relu epilogue)", yr, 0, 0)
			cy, _ := w.get(y)
			cr, _ := w.get(yr)
			for j := range cy {
				if want := max(cy[j], 0); cr[j] != want {
					t.Fatalf("y (relu epilogue)[%d] = %g, want max(y, 0) = %g", j, cr[j], want)
				}
			}
			w.run(func(be backend.Backend, i int) error { return be.Conv2DBackwardData(g, dy[i], wt[i], dx[i]) })
			w.run(func(be backend.Backend, i int) error { return be.Conv2DBackwardFilter(g, x[i], dy[i], dw[i], db[i]) })
			w.run(func(be backend.Backend, i int) error { return be.Conv2DBackwardFilter(g, x[i], dy[i], dw2[i], nil) })
			for _, c := range []struct {
				name string
				p    pair
			}{{"y", y}, {"y (no bias)", y0}, {"dx", dx}, {"dw", dw}, {"db", db}, {"dw (no db)", dw2}} {
				w.same(c.name, c.p, 0, 0)
			}
		})
	}

	t.Run("op=relu", func(t *testing.T) {
		w.t = t
		const n = 300
		x, dy := w.f32(ints(rng, n, -2, 2)), w.f32(reals(rng, n))
		y, dx := w.out(n), w.out(n)
		w.run(func(be backend.Backend, i int) error { return be.ReLUForward(x[i], y[i]) })
		w.run(func(be backend.Backend, i int) error { return be.ReLUBackward(x[i], dy[i], dx[i]) })
		w.same("y", y, 0, 0) // selections: exact
		w.same("dx", dx, 0, 0)
	})

	t.Run("op=maxpool", func(t *testing.T) {
		w.t = t
		g := geom.PoolGeom{N: 2, C: 3, H: 7, W: 6, R: 3, S: 2, StrideH: 2, StrideW: 2}
		x, dy := w.f32(ints(rng, g.XLen(), -2, 2)), w.f32(ints(rng, g.YLen(), -3, 3))
		y, arg, dx := w.out(g.YLen()), w.outI32(g.YLen()), w.out(g.XLen())
		w.run(func(be backend.Backend, i int) error { return be.MaxPoolForward(g, x[i], y[i], arg[i]) })
		w.run(func(be backend.Backend, i int) error { return be.MaxPoolBackward(g, dy[i], arg[i], dx[i]) })
		w.same("y", y, 0, 0)
		// argmax cannot be downloaded through Backend; the backward pass
		// routes dy through it, with overlapping windows and many ties.
		w.same("dx", dx, 0, 0)
	})

	t.Run("op=dense", func(t *testing.T) {
		w.t = t
		const n, in, out = 5, 33, 7
		x, wt, b, dy := w.f32(ints(rng, n*in, -3, 3)), w.f32(ints(rng, out*in, -3, 3)), w.f32(ints(rng, out, -3, 3)), w.f32(ints(rng, n*out, -3, 3))
		y, dx, dw, db, dw2, db2 := w.out(n*out), w.out(n*in), w.out(out*in), w.out(out), w.out(out*in), w.out(out)
		w.run(func(be backend.Backend, i int) error { return be.DenseForward(n, in, out, x[i], wt[i], b[i], y[i]) })
		w.run(func(be backend.Backend, i int) error {
			return be.DenseBackward(n, in, out, x[i], wt[i], dy[i], dx[i], dw[i], db[i])
		})
		w.run(func(be backend.Backend, i int) error {
			return be.DenseBackward(n, in, out, x[i], wt[i], dy[i], nil, dw2[i], db2[i])
		})
		for _, c := range []struct {
			name string
			p    pair
		}{{"y", y}, {"dx", dx}, {"dw", dw}, {"db", db}, {"dw (no dx)", dw2}, {"db (no dx)", db2}} {
			w.same(c.name, c.p, 0, 0)
		}
	})

	t.Run("op=softmax_ce", func(t *testing.T) {
		w.t = t
		const n, classes = 9, 10
		logits := make([]float32, n*classes)
		for i := range logits {
			logits[i] = float32(8*rng.Float64() - 4)
		}
		labels := make([]int32, n)
		for i := range labels {
			labels[i] = int32(rng.IntN(classes))
		}
		lg, lab := w.f32(logits), w.i32(labels)
		loss, dl, acc := w.out(1), w.out(n*classes), w.f32([]float32{3})
		w.run(func(be backend.Backend, i int) error {
			return be.SoftmaxCrossEntropy(n, classes, lg[i], lab[i], loss[i], dl[i])
		})
		w.run(func(be backend.Backend, i int) error { return be.CountCorrect(n, classes, lg[i], lab[i], acc[i]) })
		// Different exp/log implementations (Go's math vs kernels/mathf.cuh,
		// both within a few ulp) and summation orders: the loss (≈ 2–8)
		// within 1e-5 relative, gradient entries (≤ 1/N) within 1e-7
		// absolute + 1e-5 relative.
		w.same("loss", loss, 0, 1e-5)
		w.same("dlogits", dl, 1e-7, 1e-5)
		w.same("acc", acc, 0, 0) // integer count
	})

	t.Run("op=mse", func(t *testing.T) {
		w.t = t
		const n, dim = 6, 5
		y, tg := w.f32(reals(rng, n*dim)), w.f32(reals(rng, n*dim))
		loss, dy := w.out(1), w.out(n*dim)
		w.run(func(be backend.Backend, i int) error { return be.MSE(n, dim, y[i], tg[i], loss[i], dy[i]) })
		// Summation order of 30 squares ≤ 4 and one scaling: within 1e-6
		// relative; dy is one subtraction and one division or multiply by
		// 1/N: within 2 ulp.
		w.same("loss", loss, 0, 1e-6)
		w.same("dy", dy, 0, 2.5e-7)
	})

	t.Run("op=accumulate,sgd,fill", func(t *testing.T) {
		w.t = t
		const n = 260
		dst, src := w.f32(reals(rng, n)), w.f32(reals(rng, n))
		w.run(func(be backend.Backend, i int) error { return be.Accumulate(dst[i], src[i]) })
		w.same("accumulate", dst, 0, 0) // one IEEE addition per element
		// Power-of-two hyperparameters and small integers: exact.
		p, g, v := w.f32(ints(rng, n, -8, 8)), w.f32(ints(rng, n, -8, 8)), w.f32(ints(rng, n, -8, 8))
		w.run(func(be backend.Backend, i int) error { return be.SGDStep(p[i], g[i], v[i], 0.125, 0.5, 0.25) })
		w.same("p", p, 0, 0)
		w.same("v", v, 0, 0)
		f := w.out(n)
		w.run(func(be backend.Backend, i int) error { return be.Fill(f[i], -1.5) })
		w.same("fill", f, 0, 0)
	})

	t.Run("op=gather", func(t *testing.T) {
		w.t = t
		const srcRows, rowLen, rows = 11, 6, 7
		src := w.f32(reals(rng, srcRows*rowLen))
		isrc := make([]int32, srcRows)
		for i := range isrc {
			isrc[i] = int32(srcRows - 1 - i) // a permutation, as int32 data
		}
		is := w.i32(isrc)
		idx := make([]int32, rows)
		for i := range idx {
			idx[i] = int32(rng.IntN(srcRows))
		}
		ix := w.i32(idx)
		dst, idst, dst2 := w.out(rows*rowLen), w.outI32(rows), w.out(rows*rowLen)
		w.run(func(be backend.Backend, i int) error { return be.Gather(rowLen, src[i], ix[i], dst[i]) })
		// int32 gather: dst2 = src[isrc[idx]], which also checks that the
		// gathered int32 values are usable as indices.
		w.run(func(be backend.Backend, i int) error { return be.Gather(1, is[i], ix[i], idst[i]) })
		w.run(func(be backend.Backend, i int) error { return be.Gather(rowLen, src[i], idst[i], dst2[i]) })
		w.same("dst", dst, 0, 0)
		w.same("dst (int32 indices)", dst2, 0, 0)
	})

	testNormPoolOps(t, w, rng)     // norm_test.go
	testElementwiseOps(t, w, rng)  // elementwise_test.go
	testAugmentOps(t, w, rng)      // augment_test.go
	testGatherImagesOps(t, w, rng) // augment_test.go
}

// TestGPUBackendChecks checks the host-side checks of the GPU backend: bad
// handles, lengths and types, and the index and label ranges that kernels
// could not report.
func TestGPUBackendChecks(t *testing.T) {
	be, _ := openSimBackend(t)
	other, _ := openSimBackend(t)
	newF := func(b backend.Backend, n int) backend.Tensor {
		tn, err := b.NewTensor(n)
		if err != nil {
			t.Fatal(err)
		}
		return tn
	}
	newI := func(vals ...int32) backend.Tensor {
		tn, err := be.NewIndexTensor(len(vals))
		if err != nil {
			t.Fatal(err)
		}
		if err := be.UploadIndex(tn, vals); err != nil {
			t.Fatal(err)
		}
		return tn
	}
	logits, dl, loss := newF(be, 3*4), newF(be, 3*4), newF(be, 1)
	src, dst := newF(be, 5*2), newF(be, 3*2)
	freed := newF(be, 4)
	if err := be.Free(freed); err != nil {
		t.Fatal(err)
	}
	// A gather of int32 values outside the rows of a later source: the
	// recorded range travels with the gathered tensor.
	big := newI(0, 9, 4)
	gathered, err := be.NewIndexTensor(3)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Gather(1, big, newI(1, 1, 1), gathered); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
		is   error
	}{
		{"label = classes", be.SoftmaxCrossEntropy(3, 4, logits, newI(0, 4, 1), loss, dl), geom.ErrGeometry},
		{"label < 0", be.SoftmaxCrossEntropy(3, 4, logits, newI(0, -1, 1), loss, dl), geom.ErrGeometry},
		{"gather index = rows", be.Gather(2, src, newI(0, 5, 1), dst), backend.ErrTensor},
		{"gather index < 0", be.Gather(2, src, newI(-1, 0, 1), dst), backend.ErrTensor},
		{"gather through gathered indices", be.Gather(2, src, gathered, dst), backend.ErrTensor},
		{"float32 as labels", be.SoftmaxCrossEntropy(3, 4, logits, loss, loss, dl), backend.ErrTensor},
		{"short dlogits", be.SoftmaxCrossEntropy(3, 4, logits, newI(0, 1, 2), loss, loss), geom.ErrGeometry},
		{"freed tensor", be.Fill(freed, 1), backend.ErrTensor},
		{"other backend", be.Fill(newF(other, 4), 1), backend.ErrTensor},
		{"nil tensor", be.Fill(nil, 1), backend.ErrTensor},
		{"zero-length tensor", func() error { _, err := be.NewTensor(0); return err }(), backend.ErrTensor},
		{"upload length", be.Upload(src, make([]float32, 3)), backend.ErrTensor},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.is) {
			t.Errorf("%s: error %v, want one wrapping %v", c.name, c.err, c.is)
		}
	}
	// The loss and dlogits of the refused calls were never written.
	got := make([]float32, 1)
	if err := be.Download(got, loss); err != nil {
		t.Fatal(err)
	}
	if got[0] != 0 {
		t.Errorf("loss = %g after refused calls, want the initial 0", got[0])
	}
}

// TestGPUBackendTraining trains a small model for a few steps on the CPU
// backend and on the GPU backend (simulator) from the same seed and
// batches: the per-step losses and the final parameters must agree within
// float32 summation-order differences, and the GPU steps after the first
// must allocate no device memory.
func TestGPUBackendTraining(t *testing.T) {
	spec := nn.Spec{C: 1, H: 12, W: 12, Loss: nn.SoftmaxCE, Layers: []nn.LayerSpec{
		nn.ConvLayer(4, 3, 3), {Kind: nn.ReLU}, nn.PoolLayer(2),
		{Kind: nn.Conv, Filters: 6, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, {Kind: nn.ReLU},
		{Kind: nn.Flatten}, nn.DenseLayer(4),
	}}
	ds, err := data.Synthetic(48, 12, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	const steps, batch = 4, 16
	const lr, momentum, wd = 0.05, 0.9, 1e-4
	cpu, err := cpubackend.NewCPUBackend(1)
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	gbe, dev := openSimBackend(t)

	type result struct {
		losses []float32
		params [][]float32
	}
	train := func(be backend.Backend, after func(step int)) result {
		m, err := nn.NewModel(be, spec, 42)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		set, err := m.Upload(ds, ds.Standardisation())
		if err != nil {
			t.Fatal(err)
		}
		defer set.Free(be)
		b, err := m.NewBatch(batch)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Free(be)
		var r result
		loss := make([]float32, 1)
		rows := make([]int32, batch)
		for step := range steps {
			for i := range rows {
				rows[i] = int32((step*batch + i*5) % ds.N)
			}
			if err := m.Load(b, set, rows); err != nil {
				t.Fatal(err)
			}
			if err := m.TrainStep(b, lr, momentum, wd); err != nil {
				t.Fatalf("%s: step %d: %v", be.Name(), step, err)
			}
			if err := be.Download(loss, b.Loss); err != nil {
				t.Fatal(err)
			}
			r.losses = append(r.losses, loss[0])
			if after != nil {
				after(step)
			}
		}
		if r.params, err = m.ParamValues(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	want := train(cpu, nil)
	// After the first step: no device allocation, and per step exactly the
	// batch's row indices go up (batch int32) and the loss we read comes
	// down (one float32): the images and labels are gathered on the device.
	var prev gpu.MemStats
	got := train(gbe, func(step int) {
		s := dev.MemStats()
		if step > 0 {
			if s.Allocs != prev.Allocs {
				t.Errorf("step %d: %d device allocations so far, %d after the step before", step, s.Allocs, prev.Allocs)
			}
			if up, down := s.HtoDBytes-prev.HtoDBytes, s.DtoHBytes-prev.DtoHBytes; up != 4*batch || down != 4 {
				t.Errorf("step %d copied %d bytes to the device and %d to the host, want %d and 4", step, up, down, 4*batch)
			}
		}
		prev = s
	})
	// Real-valued data: the two backends sum in different orders (im2col +
	// SGEMM vs direct kernels) with different exp/log, so each op differs
	// by a few float32 ulp (≈ 1e-7 relative); 4 steps of lr 0.05 and
	// momentum 0.9 amplify that by far less than 10: the losses (≈ 1) agree
	// within 1e-6 relative, the parameters (|p| < 1) within 1e-6.
	for i := range want.losses {
		l, w := float64(got.losses[i]), float64(want.losses[i])
		if math.IsNaN(l) || math.Abs(l-w) > 1e-6*math.Abs(w) {
			t.Errorf("step %d: loss %g on %s, %g on %s", i, l, gbe.Name(), w, cpu.Name())
		}
	}
	if want.losses[steps-1] >= want.losses[0] {
		t.Errorf("the loss did not fall on the CPU: %v (the test would compare nothing useful)", want.losses)
	}
	worst := 0.0
	for i := range want.params {
		maxd := 0.0
		for j := range want.params[i] {
			maxd = math.Max(maxd, math.Abs(float64(got.params[i][j])-float64(want.params[i][j])))
		}
		if !(maxd <= 1e-6) {
			t.Errorf("parameter %d: max |gpu − cpu| = %g, want ≤ 1e-6", i, maxd)
		}
		worst = math.Max(worst, maxd)
	}
	t.Logf("losses: gpu %v, cpu %v; largest parameter difference %.3g", got.losses, want.losses, worst)
}
