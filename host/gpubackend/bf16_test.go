package gpubackend_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/cpubackend"
)

// TestBF16Tensors checks NewBF16Tensor on both backends at BF16 (the
// simulator, and the CPU emulating BF16): a conv whose forward pass is a
// BF16 one (ConvOutputBF16) writes a bfloat16 y whose values are
// cpuref.RoundBF16 of its float32 y; a batch norm reading it (training,
// evaluation, backward with and without the ReLU) gives the bits of one
// reading a float32 tensor of the same values; Download gives the values;
// Upload, Fill, other operations and a conv that is not a BF16 one
// refuse it with ErrTensor. Likewise a conv whose backward-data pass is a
// BF16 one (ConvInputGradBF16) writes a bfloat16 dx holding RoundBF16 of
// its float32 dx (Conv2DBackwardData and Conv2DBackward); the batch norm
// before it reads it as dy with a bfloat16 x, with the bits of a float32
// dy of the same values; a bfloat16 dy with a float32 x, and a bfloat16
// dx of a pass that is not a BF16 one, are refused. A batch norm with a
// bfloat16 x writes a bfloat16 y holding RoundBF16 of its float32 y, which
// an add reads as a or b with the bits of a float32 input of the same
// values; a bfloat16 y from a float32 x and two bfloat16 addends are
// refused.
func TestBF16Tensors(t *testing.T) {
	sim, dev := backendtest.Sim(t)
	backendtest.MustNil(t, dev.SetPrecision(gpu.BF16))
	cpu, err := cpubackend.NewCPUBackendBF16(2)
	backendtest.MustNil(t, err)
	defer cpu.Close()
	plain := backendtest.CPU(t) // no rounding: no BF16 conv
	g := geom.ConvGeom{N: 8, C: 16, H: 8, W: 8, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	small := geom.ConvGeom{N: 1, C: 1, H: 3, W: 3, K: 1, R: 1, S: 1, StrideH: 1, StrideW: 1} // the simulator's direct kernel
	for _, c := range []struct {
		name     string
		be       backend.Backend
		notBF16  geom.ConvGeom
		notBF16B backend.Backend
	}{{"sim", sim, small, sim}, {"cpu", cpu, g, plain}} {
		t.Run(c.name, func(t *testing.T) {
			be := c.be
			if !be.ConvOutputBF16(g) || c.notBF16B.ConvOutputBF16(c.notBF16) {
				t.Fatalf("ConvOutputBF16: %v for %v, %v for %v on %s: want true, false", be.ConvOutputBF16(g), g,
					c.notBF16B.ConvOutputBF16(c.notBF16), c.notBF16, c.notBF16B.Name())
			}
			rng := rand.New(rand.NewPCG(1, 2))
			up := func(n int, scale float32) backend.Tensor {
				v := make([]float32, n)
				for i := range v {
					v[i] = scale * (2*rng.Float32() - 1)
				}
				tt, err := be.NewTensor(n)
				backendtest.MustNil(t, err)
				backendtest.MustNil(t, be.Upload(tt, v))
				return tt
			}
			down := func(tt backend.Tensor) []float32 {
				v := make([]float32, tt.Len())
				backendtest.MustNil(t, be.Download(v, tt))
				return v
			}
			newF := func(n int) backend.Tensor {
				tt, err := be.NewTensor(n)
				backendtest.MustNil(t, err)
				return tt
			}
			x, w, b := up(g.XLen(), 1), up(g.WLen(), 0.3), up(g.K, 0.1)
			y16, err := be.NewBF16Tensor(g.YLen())
			backendtest.MustNil(t, err)
			y32 := newF(g.YLen())
			for _, ep := range []backend.Epilogue{backend.NoEpilogue, backend.EpilogueReLU} {
				backendtest.MustNil(t, be.Conv2DForward(g, x, w, b, y16, ep))
				backendtest.MustNil(t, be.Conv2DForward(g, x, w, b, y32, ep))
				want := down(y32)
				cpuref.RoundBF16Slice(want, want)
				backendtest.EqualBits(t, "bfloat16 y, "+ep.String(), down(y16), want)
			}
			// y32 now holds y16's values: the batch norms on either agree.
			backendtest.MustNil(t, be.Upload(y32, down(y16)))
			n, ch, hw := g.N, g.K, g.P()*g.Q()
			gamma, beta, dy := up(ch, 1), up(ch, 0.5), up(g.YLen(), 1)
			bn := func(x backend.Tensor, train bool, relu backend.BNReLU) [][]float32 {
				rm, rv, sm, si, out, dx, dg, db := newF(ch), newF(ch), newF(ch), newF(ch), newF(g.YLen()), newF(g.YLen()), newF(ch), newF(ch)
				backendtest.MustNil(t, be.Fill(rv, 1))
				ep := backend.NoEpilogue
				if relu.On() {
					ep = backend.EpilogueReLU
				}
				backendtest.MustNil(t, be.BatchNormForward(train, n, ch, hw, x, gamma, beta, rm, rv, sm, si, out, ep, 0.1, 1e-5))
				r := [][]float32{down(out), down(rm), down(rv)}
				if train {
					if relu.On() {
						relu.Y = out
					}
					backendtest.MustNil(t, be.BatchNormBackwardKeep(n, ch, hw, x, gamma, sm, si, dy, dx, dg, db, g, nil, false, relu))
					r = append(r, down(dx), down(dg), down(db))
				}
				return r
			}
			for _, train := range []bool{true, false} {
				for _, relu := range []backend.BNReLU{{}, {Beta: beta}} {
					got, want := bn(y16, train, relu), bn(y32, train, relu)
					for i := range want {
						backendtest.EqualBits(t, "batch norm result", got[i], want[i])
					}
				}
			}
			// The input gradient of g, stored as bfloat16 for the batch
			// norm before it, whose input x16 is the bfloat16 output of
			// g0 (16 channels of g's 8×8 images).
			if !be.ConvInputGradBF16(g) || c.notBF16B.ConvInputGradBF16(c.notBF16) {
				t.Fatalf("ConvInputGradBF16: %v for %v, %v for %v on %s: want true, false", be.ConvInputGradBF16(g), g,
					c.notBF16B.ConvInputGradBF16(c.notBF16), c.notBF16, c.notBF16B.Name())
			}
			g0 := geom.ConvGeom{N: 8, C: 32, H: 8, W: 8, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
			x16, err := be.NewBF16Tensor(g0.YLen())
			backendtest.MustNil(t, err)
			backendtest.MustNil(t, be.Conv2DForward(g0, up(g0.XLen(), 1), up(g0.WLen(), 0.3), nil, x16, backend.NoEpilogue))
			dz16a, err := be.NewBF16Tensor(g.XLen())
			backendtest.MustNil(t, err)
			dz16b, err := be.NewBF16Tensor(g.XLen())
			backendtest.MustNil(t, err)
			dz32 := newF(g.XLen())
			backendtest.MustNil(t, be.Conv2DBackwardData(g, dy, w, dz16a))
			backendtest.MustNil(t, be.Conv2DBackward(g, x, dy, w, newF(g.WLen()), nil, dz16b, nil))
			backendtest.MustNil(t, be.Conv2DBackwardData(g, dy, w, dz32))
			wantDz := down(dz32)
			cpuref.RoundBF16Slice(wantDz, wantDz)
			backendtest.EqualBits(t, "bfloat16 dx (Conv2DBackwardData)", down(dz16a), wantDz)
			backendtest.EqualBits(t, "bfloat16 dx (Conv2DBackward)", down(dz16b), wantDz)
			backendtest.MustNil(t, be.Upload(dz32, wantDz))
			c0, hw0 := g.C, g.H*g.W
			g16, b16, sm, si := up(c0, 1), up(c0, 0.5), newF(c0), newF(c0)
			backendtest.MustNil(t, be.BatchNormForward(true, g.N, c0, hw0, x16, g16, b16, nil, nil, sm, si, newF(g.XLen()), backend.NoEpilogue, 0.1, 1e-5))
			relu16 := newF(g.XLen())
			backendtest.MustNil(t, be.BatchNormForward(true, g.N, c0, hw0, x16, g16, b16, nil, nil, sm, si, relu16, backend.EpilogueReLU, 0.1, 1e-5))
			bwd := func(dz backend.Tensor, relu backend.BNReLU) [][]float32 {
				dx, dg, db := newF(g.XLen()), newF(c0), newF(c0)
				backendtest.MustNil(t, be.BatchNormBackwardKeep(g.N, c0, hw0, x16, g16, sm, si, dz, dx, dg, db, geom.ConvGeom{}, nil, false, relu))
				return [][]float32{down(dx), down(dg), down(db)}
			}
			for _, relu := range []backend.BNReLU{{}, {Beta: b16, Y: relu16}} {
				got, want := bwd(dz16a, relu), bwd(dz32, relu)
				for i := range want {
					backendtest.EqualBits(t, "batch norm backward on a bfloat16 dy", got[i], want[i])
				}
			}
			// The batch norm's output stored as bfloat16 for a residual
			// add (x bfloat16): RoundBF16 of the float32 output, in
			// training and evaluation; the add reads it as a or b with
			// the bits of a float32 input of the same values.
			skip := up(g.XLen(), 1)
			for _, train := range []bool{true, false} {
				y16b, err := be.NewBF16Tensor(g.XLen())
				backendtest.MustNil(t, err)
				y32b := newF(g.XLen())
				rm, rv := newF(c0), newF(c0)
				backendtest.MustNil(t, be.Fill(rv, 1))
				backendtest.MustNil(t, be.BatchNormForward(train, g.N, c0, hw0, x16, g16, b16, rm, rv, sm, si, y16b, backend.NoEpilogue, 0.1, 1e-5))
				backendtest.MustNil(t, be.Fill(rm, 0))
				backendtest.MustNil(t, be.Fill(rv, 1))
				backendtest.MustNil(t, be.BatchNormForward(train, g.N, c0, hw0, x16, g16, b16, rm, rv, sm, si, y32b, backend.NoEpilogue, 0.1, 1e-5))
				wantY := down(y32b)
				cpuref.RoundBF16Slice(wantY, wantY)
				backendtest.EqualBits(t, "bfloat16 batch norm output", down(y16b), wantY)
				backendtest.MustNil(t, be.Upload(y32b, wantY))
				out16a, out16b, out32 := newF(g.XLen()), newF(g.XLen()), newF(g.XLen())
				backendtest.MustNil(t, be.AddReLU(skip, y16b, out16a))
				backendtest.MustNil(t, be.AddReLU(y16b, skip, out16b))
				backendtest.MustNil(t, be.AddReLU(skip, y32b, out32))
				backendtest.EqualBits(t, "add+relu of a bfloat16 b", down(out16a), down(out32))
				backendtest.EqualBits(t, "add+relu of a bfloat16 a", down(out16b), down(out32))
			}
			// Refused.
			z := newF(g.YLen())
			other := func(n int, bf16 bool) backend.Tensor { // a tensor of c.notBF16B
				newT := c.notBF16B.NewTensor
				if bf16 {
					newT = c.notBF16B.NewBF16Tensor
				}
				tt, err := newT(n)
				backendtest.MustNil(t, err)
				return tt
			}
			xs, ws, ys := other(c.notBF16.XLen(), false), other(c.notBF16.WLen(), false), other(c.notBF16.YLen(), true)
			dys, dxs := other(c.notBF16.YLen(), false), other(c.notBF16.XLen(), true)
			x32, pc := newF(g.XLen()), newF(c0)
			for name, err := range map[string]error{
				"relu":                 be.ReLUForward(y16, z),
				"upload":               be.Upload(y16, make([]float32, g.YLen())),
				"fill":                 be.Fill(y16, 0),
				"conv reading":         be.Conv2DForward(geom.ConvGeom{N: 8, C: 32, H: 8, W: 8, K: 8, R: 1, S: 1, StrideH: 1, StrideW: 1}, y16, up(8*32, 1), nil, newF(8*8*64), backend.NoEpilogue),
				"not a bf16 conv":      c.notBF16B.Conv2DForward(c.notBF16, xs, ws, nil, ys, backend.NoEpilogue),
				"not a bf16 bwd-data":  c.notBF16B.Conv2DBackwardData(c.notBF16, dys, ws, dxs),
				"dy with a float32 x":  be.BatchNormBackward(g.N, c0, hw0, x32, g16, sm, si, dz16a, newF(g.XLen()), pc, pc),
				"sigmoid":              be.ActivationForward(backend.Sigmoid, 0, y16, z),
				"avg pool":             be.GlobalAvgPoolForward(g.N, g.K, g.P()*g.Q(), y16, newF(g.N*g.K)),
				"bn y from float32 x":  be.BatchNormForward(true, g.N, c0, hw0, x32, g16, b16, nil, nil, sm, si, dz16a, backend.NoEpilogue, 0.1, 1e-5),
				"two bfloat16 addends": be.Add(dz16a, dz16b, x32),
			} {
				if !errors.Is(err, backend.ErrTensor) {
					t.Errorf("%s with a bfloat16 tensor: %v, want an error wrapping backend.ErrTensor", name, err)
				}
			}
		})
	}
}
