package gpubackend

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/cpubackend"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// testNormPoolOps is TestGPUBackendOps' part for batch norm and the
// average pools. Both backends compute cpuref's float32 forms (the CPU by
// calling them, the GPU with kernels that reproduce them operation for
// operation), so every result must be equal exactly, on real-valued
// inputs where another summation order would show.
func testNormPoolOps(t *testing.T, w *twin, rng *rand.Rand) {
	t.Run("op=batchnorm", func(t *testing.T) {
		w.t = t
		for _, s := range [][3]int{{2, 3, 50}, {3, 2, 129}, {5, 4, 1}} {
			n, c, hw := s[0], s[1], s[2]
			L := n * c * hw
			xs := reals(rng, L)
			for i := range xs {
				xs[i] = 2*xs[i] + 0.25
			}
			x, dy := w.f32(xs), w.f32(reals(rng, L))
			gamma, beta := w.f32(reals(rng, c)), w.f32(reals(rng, c))
			ones := make([]float32, c)
			for i := range ones {
				ones[i] = 1
			}
			rm, rv := w.f32(make([]float32, c)), w.f32(ones)
			y, sm, si, ye := w.out(L), w.out(c), w.out(c), w.out(L)
			dx, dg, db, dg2, db2 := w.out(L), w.out(c), w.out(c), w.out(c), w.out(c)
			for range 2 { // the running statistics move twice
				w.run(func(be backend.Backend, i int) error {
					return be.BatchNormForward(true, n, c, hw, x[i], gamma[i], beta[i], rm[i], rv[i], sm[i], si[i], y[i], backend.NoEpilogue, 0.1, 1e-5)
				})
			}
			w.run(func(be backend.Backend, i int) error {
				return be.BatchNormForward(false, n, c, hw, x[i], gamma[i], beta[i], rm[i], rv[i], nil, nil, ye[i], backend.NoEpilogue, 0.1, 1e-5)
			})
			// the ReLU epilogue, in both modes (the running statistics move a third time)
			yr, yer := w.out(L), w.out(L)
			w.run(func(be backend.Backend, i int) error {
				return be.BatchNormForward(false, n, c, hw, x[i], gamma[i], beta[i], rm[i], rv[i], nil, nil, yer[i], backend.EpilogueReLU, 0.1, 1e-5)
			})
			w.run(func(be backend.Backend, i int) error {
				return be.BatchNormForward(true, n, c, hw, x[i], gamma[i], beta[i], rm[i], rv[i], sm[i], si[i], yr[i], backend.EpilogueReLU, 0.1, 1e-5)
			})
			w.run(func(be backend.Backend, i int) error {
				return be.BatchNormBackward(n, c, hw, x[i], gamma[i], sm[i], si[i], dy[i], dx[i], dg[i], db[i])
			})
			w.run(func(be backend.Backend, i int) error {
				return be.BatchNormBackward(n, c, hw, x[i], gamma[i], sm[i], si[i], dy[i], nil, dg2[i], db2[i])
			})
			// Through the ReLU after it, masked by its output yr (zeros
			// where the normalised value is ≤ 0): fused on the CPU,
			// bn_bwd_relu_v1 here (the mask recomputed from x, γ and β);
			// with dx, without, in place.
			dxr, dgr, dbr, dgr2, dbr2 := w.out(L), w.out(c), w.out(c), w.out(c), w.out(c)
			dyr := w.f32(reals(rng, L))
			w.run(func(be backend.Backend, i int) error {
				return be.BatchNormBackwardReLU(n, c, hw, x[i], gamma[i], beta[i], sm[i], si[i], yr[i], dy[i], dxr[i], dgr[i], dbr[i])
			})
			w.run(func(be backend.Backend, i int) error {
				return be.BatchNormBackwardReLU(n, c, hw, x[i], gamma[i], beta[i], sm[i], si[i], yr[i], dy[i], nil, dgr2[i], dbr2[i])
			})
			w.run(func(be backend.Backend, i int) error {
				return be.BatchNormBackwardReLU(n, c, hw, x[i], gamma[i], beta[i], sm[i], si[i], yr[i], dyr[i], dyr[i], dgr2[i], dbr2[i])
			})
			for _, p := range []struct {
				name string
				p    pair
			}{{"y", y}, {"saveMean", sm}, {"saveInvStd", si}, {"runMean", rm}, {"runVar", rv}, {"y (evaluation)", ye},
				{"y (relu epilogue)", yr}, {"y (evaluation, relu epilogue)", yer},
				{"dx", dx}, {"dgamma", dg}, {"dbeta", db}, {"dgamma (no dx)", dg2}, {"dbeta (no dx)", db2},
				{"dx (relu)", dxr}, {"dgamma (relu)", dgr}, {"dbeta (relu)", dbr}, {"dgamma (relu, in place)", dgr2},
				{"dbeta (relu, in place)", dbr2}, {"dx (relu, in place)", dyr}} {
				w.same(fmt.Sprintf("N=%d,C=%d,HW=%d %s", n, c, hw, p.name), p.p, 0, 0)
			}
		}
	})

	t.Run("op=avgpool", func(t *testing.T) {
		w.t = t
		for _, g := range []geom.AvgPoolGeom{
			{N: 2, C: 3, H: 7, W: 6, R: 3, S: 2, StrideH: 2, StrideW: 1, PadH: 1, PadW: 1},
			{N: 2, C: 2, H: 6, W: 6, R: 2, S: 2, StrideH: 2, StrideW: 2}, // cpuref's 2×2 fast form
		} {
			x, dy := w.f32(reals(rng, g.XLen())), w.f32(reals(rng, g.YLen()))
			y, dx := w.out(g.YLen()), w.out(g.XLen())
			w.run(func(be backend.Backend, i int) error { return be.AvgPoolForward(g, x[i], y[i]) })
			w.run(func(be backend.Backend, i int) error { return be.AvgPoolBackward(g, dy[i], dx[i]) })
			w.same(g.String()+" y", y, 0, 0)
			w.same(g.String()+" dx", dx, 0, 0)
		}
	})

	t.Run("op=gap", func(t *testing.T) {
		w.t = t
		const n, c, hw = 3, 5, 49
		x, dy := w.f32(reals(rng, n*c*hw)), w.f32(reals(rng, n*c))
		y, dx := w.out(n*c), w.out(n*c*hw)
		w.run(func(be backend.Backend, i int) error { return be.GlobalAvgPoolForward(n, c, hw, x[i], y[i]) })
		w.run(func(be backend.Backend, i int) error { return be.GlobalAvgPoolBackward(n, c, hw, dy[i], dx[i]) })
		w.same("y", y, 0, 0)
		w.same("dx", dx, 0, 0)
	})

	t.Run("op=norm-pool-checks", func(t *testing.T) {
		w.t = t
		g := w.be[1]
		x, c3 := w.f32(make([]float32, 12)), w.f32(make([]float32, 3))
		idx := w.i32(make([]int32, 12))
		for _, c := range []struct {
			name string
			err  error
			is   error
		}{
			{"zero channels", g.BatchNormForward(true, 2, 0, 2, x[1], c3[1], c3[1], nil, nil, nil, nil, x[1], backend.NoEpilogue, 0.1, 1e-5), geom.ErrGeometry},
			{"index tensor as x", g.BatchNormBackward(2, 3, 2, idx[1], c3[1], c3[1], c3[1], x[1], nil, c3[1], c3[1]), backend.ErrTensor},
			{"relu: y too short", g.BatchNormBackwardReLU(2, 3, 2, x[1], c3[1], c3[1], c3[1], c3[1], c3[1], x[1], x[1], c3[1], c3[1]), geom.ErrGeometry},
			{"relu: dx too short", g.BatchNormBackwardReLU(2, 3, 2, x[1], c3[1], c3[1], c3[1], c3[1], x[1], x[1], c3[1], c3[1], c3[1]), geom.ErrGeometry},
			{"relu: index tensor as y", g.BatchNormBackwardReLU(2, 3, 2, x[1], c3[1], c3[1], c3[1], c3[1], idx[1], x[1], nil, c3[1], c3[1]), backend.ErrTensor},
			{"relu: beta too short", g.BatchNormBackwardReLU(2, 3, 2, x[1], c3[1], x[1], c3[1], c3[1], x[1], x[1], nil, c3[1], c3[1]), geom.ErrGeometry},
			{"relu: no beta", g.BatchNormBackwardReLU(2, 3, 2, x[1], c3[1], nil, c3[1], c3[1], x[1], x[1], nil, c3[1], c3[1]), backend.ErrTensor},
			{"evaluation without running var", g.BatchNormForward(false, 2, 3, 2, x[1], c3[1], c3[1], c3[1], nil, nil, nil, x[1], backend.NoEpilogue, 0.1, 1e-5), backend.ErrTensor},
			{"avgpool pad > R/2", g.AvgPoolForward(geom.AvgPoolGeom{N: 1, C: 1, H: 3, W: 4, R: 2, S: 2, StrideH: 1, StrideW: 1, PadH: 2}, x[1], x[1]), geom.ErrGeometry},
			{"gap y too long", g.GlobalAvgPoolForward(1, 3, 4, x[1], x[1]), geom.ErrGeometry},
			{"gap N·C·HW overflows", g.GlobalAvgPoolBackward(1<<20, 1<<20, 4, c3[1], x[1]), geom.ErrGeometry},
		} {
			if !errors.Is(c.err, c.is) {
				t.Errorf("%s: error %v, want one wrapping %v", c.name, c.err, c.is)
			}
		}
	})
}

// residualSpecs are small residual networks with every new layer kind:
// batch norm after each convolution (in both branches of a projection
// block), a padded average pool and a global average pool; then the
// activations, dropout and a concatenation block with an identity branch.
var residualSpecs = []struct {
	name, text string
	bns        int
}{
	{"bn-pools", "conv6x3x3p1,bn,relu,res(conv6x3x3p1,bn,relu,conv6x3x3p1,bn),relu,avgpool3s2p1," +
		"res(conv8x3x3s2p1,bn,relu,conv8x3x3p1,bn|conv8x1x1s2,bn),relu,gap,dense4", 6},
	{"activations-dropout-cat", "conv6x3x3p1,bn,silu,res(conv6x3x3p1,bn,gelu,conv6x3x3p1,bn),leakyrelu,avgpool2," +
		"cat(conv4x3x3p1,tanh|conv4x1x1,sigmoid|),gelutanh,gap,dropout25,dense4", 3},
}

// TestGPUBackendResidualTraining trains each of residualSpecs a few steps
// on the CPU backend and on the GPU backend (simulator) from the same seed
// and batches, then runs an evaluation-mode forward pass: the per-step
// losses, the evaluation loss, the parameters and BatchNorm's running
// statistics must agree within the stated tolerance.
func TestGPUBackendResidualTraining(t *testing.T) {
	if testing.Short() {
		t.Skip("trains residual networks on the simulator (≈ 20–40 s); runs without -short")
	}
	for _, rs := range residualSpecs {
		t.Run("model="+rs.name, func(t *testing.T) { testResidualTraining(t, rs.text, rs.bns) })
	}
}

func testResidualTraining(t *testing.T, text string, bns int) {
	layers, err := nn.ParseSpec(text)
	if err != nil {
		t.Fatal(err)
	}
	spec := nn.Spec{C: 1, H: 12, W: 12, Loss: nn.SoftmaxCE, Layers: layers}
	ds, err := data.Synthetic(48, 12, 4, 5)
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
	gbe, _ := openSimBackend(t)

	type result struct {
		losses  []float32 // per training step, then the evaluation loss
		params  [][]float32
		buffers [][]float32
	}
	train := func(be backend.Backend) result {
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
		for step := range steps + 1 {
			for i := range rows {
				rows[i] = int32((step*batch + i*5) % ds.N)
			}
			if err := m.Load(b, set, rows); err != nil {
				t.Fatal(err)
			}
			if step < steps {
				err = m.TrainStep(b, lr, momentum, wd)
			} else {
				b.Eval = true
				err = m.Forward(b)
			}
			if err != nil {
				t.Fatalf("%s: step %d: %v", be.Name(), step, err)
			}
			if err := be.Download(loss, b.Loss); err != nil {
				t.Fatal(err)
			}
			r.losses = append(r.losses, loss[0])
		}
		if r.params, err = m.ParamValues(); err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Buffers() {
			v := make([]float32, p.Value.Len())
			if err := be.Download(v, p.Value); err != nil {
				t.Fatal(err)
			}
			r.buffers = append(r.buffers, v)
		}
		return r
	}
	want := train(cpu)
	got := train(gbe)
	if len(want.buffers) != 2*bns || len(got.buffers) != 2*bns {
		t.Fatalf("%d and %d buffers, want %d (running mean and var of %d batch norms)", len(got.buffers), len(want.buffers), 2*bns, bns)
	}
	// The convolutions and the dense layer sum in different orders on the
	// two backends (im2col + SGEMM vs direct kernels) and the loss uses
	// different exp/log, a few float32 ulp per op (≈ 1e-7 relative); every
	// other op of these networks (batch norm, the pools, the activations,
	// dropout, the adds, the concatenation) is bit-identical. Batch norm rescales by 1/σ, which does not grow a
	// relative error, and 4 steps of lr 0.05 and momentum 0.9 amplify it
	// by far less than 10: the losses (≈ 1.4) agree within 1e-6 relative,
	// parameters and running statistics (|v| ≲ 2) within 1e-6 (seen:
	// 6e-8).
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
	for _, c := range []struct {
		what      string
		got, want [][]float32
	}{{"parameter", got.params, want.params}, {"buffer", got.buffers, want.buffers}} {
		for i := range c.want {
			maxd := 0.0
			for j := range c.want[i] {
				d := math.Abs(float64(c.got[i][j]) - float64(c.want[i][j]))
				if math.IsNaN(d) {
					d = math.Inf(1)
				}
				maxd = math.Max(maxd, d)
			}
			if !(maxd <= 1e-6) {
				t.Errorf("%s %d: max |gpu − cpu| = %g, want ≤ 1e-6", c.what, i, maxd)
			}
			worst = math.Max(worst, maxd)
		}
	}
	t.Logf("losses (4 training steps, then evaluation): gpu %v, cpu %v; largest parameter or buffer difference %.3g",
		got.losses, want.losses, worst)
}
