package gpubackend

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// TestWrongSizeErrors gives each operation one argument of the wrong
// length, on both backends: the error wraps geom.ErrGeometry, names the
// operation and the argument with its length and the one wanted, comes
// from a single check (one "want" in the message: the sizes are checked
// in one layer, cpuref's or gpu's, or the backend's own for what those
// cannot see), and the outputs, filled with NaN, are left as they were.
func TestWrongSizeErrors(t *testing.T) {
	w := newTwin(t)
	nan := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.NaN())
		}
		return x
	}
	conv := geom.ConvGeom{N: 2, C: 3, H: 6, W: 5, K: 4, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	pool := geom.PoolGeom{N: 2, C: 3, H: 6, W: 4, R: 2, S: 2, StrideH: 2, StrideW: 2}
	const n, in, out, classes = 3, 5, 4, 4
	x, wt, bias := w.f32(nan(conv.XLen())), w.f32(nan(conv.WLen())), w.f32(nan(conv.K))
	y, dw := w.out(conv.YLen()), w.out(conv.WLen())
	px, py, pam := w.f32(nan(pool.XLen())), w.out(pool.YLen()), w.outI32(pool.YLen())
	dxd, dwd, dbd := w.out(n*in), w.out(out*in), w.out(out)
	logits, dl, loss := w.f32(nan(n*classes)), w.out(n*classes), w.out(1)
	labels := w.i32([]int32{0, 1, 3})
	p3, g3, v3 := w.out(7), w.out(7), w.out(7)
	short := func(m int) pair { return w.out(m - 1) }
	img, lut, irows := w.u8(make([]uint8, 4*3*4*5)), w.f32(nan(3*256)), w.i32([]int32{3, 0})
	for _, c := range []struct {
		op, arg string
		call    func(be backend.Backend, i int) error
		outs    []pair
	}{
		{"conv forward", "y", func(be backend.Backend, i int) error {
			return be.Conv2DForward(conv, x[i], wt[i], bias[i], short(conv.YLen())[i], backend.NoEpilogue)
		}, nil},
		{"conv+relu forward", "b", func(be backend.Backend, i int) error {
			return be.Conv2DForward(conv, x[i], wt[i], short(conv.K)[i], y[i], backend.EpilogueReLU)
		}, []pair{y}},
		{"conv backward data", "dx", func(be backend.Backend, i int) error {
			return be.Conv2DBackwardData(conv, y[i], wt[i], short(conv.XLen())[i])
		}, nil},
		{"conv backward filter", "db", func(be backend.Backend, i int) error {
			return be.Conv2DBackwardFilter(conv, x[i], y[i], dw[i], short(conv.K)[i])
		}, []pair{dw}},
		{"relu forward", "y", func(be backend.Backend, i int) error {
			return be.ReLUForward(x[i], short(conv.XLen())[i])
		}, nil},
		{"relu backward", "dx", func(be backend.Backend, i int) error {
			return be.ReLUBackward(x[i], x[i], short(conv.XLen())[i])
		}, nil},
		{"max-pool forward", "y", func(be backend.Backend, i int) error {
			return be.MaxPoolForward(pool, px[i], short(pool.YLen())[i], pam[i])
		}, nil},
		{"max-pool backward", "dx", func(be backend.Backend, i int) error {
			return be.MaxPoolBackward(pool, py[i], pam[i], short(pool.XLen())[i])
		}, nil},
		{"dense forward", "w", func(be backend.Backend, i int) error {
			return be.DenseForward(n, in, out, dxd[i], short(out * in)[i], nil, short(n*out + 1)[i])
		}, nil},
		{"dense backward", "db", func(be backend.Backend, i int) error {
			return be.DenseBackward(n, in, out, dxd[i], dwd[i], w.out(n * out)[i], nil, dwd[i], short(out)[i])
		}, []pair{dwd}},
		{"dense backward", "dx", func(be backend.Backend, i int) error {
			return be.DenseBackward(n, in, out, dxd[i], dwd[i], w.out(n * out)[i], short(n * in)[i], dwd[i], dbd[i])
		}, []pair{dwd, dbd}},
		{"softmax cross-entropy", "dlogits", func(be backend.Backend, i int) error {
			return be.SoftmaxCrossEntropy(n, classes, logits[i], labels[i], loss[i], short(n * classes)[i])
		}, []pair{loss}},
		{"mse", "loss", func(be backend.Backend, i int) error {
			return be.MSE(n, classes, logits[i], logits[i], w.out(2)[i], dl[i])
		}, []pair{dl}},
		{"sgd step", "vel", func(be backend.Backend, i int) error {
			return be.SGDStep(p3[i], g3[i], short(7)[i], 0.1, 0.9, 0)
		}, []pair{p3}},
		{"adam step", "m", func(be backend.Backend, i int) error {
			return be.AdamStep(p3[i], g3[i], short(7)[i], v3[i], 1e-3, 0.9, 0.999, 1e-8, 0, 1, false)
		}, []pair{p3, v3}},
		{"accumulate", "src", func(be backend.Backend, i int) error {
			return be.Accumulate(p3[i], short(7)[i])
		}, []pair{p3}},
		{"gather images", "dst", func(be backend.Backend, i int) error {
			return be.GatherImages(backend.AugmentParams{Pad: 1, Flip: true}, 2, 3, 4, 5, lut[i], img[i], irows[i], short(2 * 3 * 4 * 5)[i])
		}, nil},
		{"gather images", "lut", func(be backend.Backend, i int) error {
			return be.GatherImages(backend.AugmentParams{}, 2, 3, 4, 5, short(3 * 256)[i], img[i], irows[i], w.out(2 * 3 * 4 * 5)[i])
		}, nil},
	} {
		for i, be := range w.be {
			err := c.call(be, i)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			arg := c.arg
			if i == 1 && c.arg == "vel" {
				arg = "v" // gpu's SGD launchers call it v
			}
			named := strings.Contains(msg, "len("+arg+") = ") || strings.Contains(msg, arg+" has ")
			if !errors.Is(err, geom.ErrGeometry) || !strings.Contains(msg, c.op) || !named ||
				strings.Count(msg, "want") != 1 {
				t.Errorf("%s: %s with a wrong-length %s: %v; want one error wrapping %v that names both once",
					be.Name(), c.op, c.arg, err, geom.ErrGeometry)
			}
		}
		for _, o := range c.outs {
			cpu, gpu := w.get(o)
			for j := range cpu {
				if !math.IsNaN(float64(cpu[j])) || !math.IsNaN(float64(gpu[j])) {
					t.Fatalf("%s (%s): output[%d] = %g (cpu), %g (gpu) after the refused call, want the NaN it held",
						c.op, c.arg, j, cpu[j], gpu[j])
				}
			}
		}
	}
}
