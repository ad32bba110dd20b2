package train

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// TestCheckDiverged plants a NaN or an infinity in parameters' values and
// gradients, on the CPU and on the simulator, and checks that the
// divergence check names the first one in its order (values from the
// first layer, then gradients from the last) with its layer and norm, and
// that with everything finite it passes, or blames the loss. On the
// simulator a passing check downloads one value (the device's answer),
// never a parameter or a gradient.
func TestCheckDiverged(t *testing.T) {
	sim, dev := backendtest.Sim(t)
	for _, c := range []struct {
		name string
		be   backend.Backend
		dev  *gpu.Device
	}{{"cpu", backendtest.CPU(t), nil}, {"sim", sim, dev}} {
		t.Run("backend="+c.name, func(t *testing.T) {
			train, err := data.Synthetic(32, 12, 4, 1)
			backendtest.MustNil(t, err)
			m, err := nn.NewModel(c.be, smallSpec(nn.SoftmaxCE, 4), 1)
			backendtest.MustNil(t, err)
			defer m.Close()
			tr, err := NewTrainer(m, train, train, Config{Epochs: 1, Batch: 16, LR: 0.01})
			backendtest.MustNil(t, err)
			defer tr.Close()
			ps := m.Params()
			if len(ps) != 4 {
				t.Fatalf("%d parameters, the test wants 4", len(ps))
			}
			set := func(x backend.Tensor, i int, v float32) {
				h := make([]float32, x.Len())
				backendtest.MustNil(t, c.be.Download(h, x))
				h[i] = v
				backendtest.MustNil(t, c.be.Upload(x, h))
			}
			// Finite: passes, and on the simulator reads back 4 bytes.
			var before gpu.MemStats
			if c.dev != nil {
				before = c.dev.MemStats()
			}
			backendtest.MustNil(t, tr.checkDiverged(1.5))
			if c.dev != nil {
				if down := c.dev.MemStats().DtoHBytes - before.DtoHBytes; down != 4 {
					t.Errorf("a passing check downloads %d bytes, want 4 (the device's answer)", down)
				}
			}
			if err := tr.checkDiverged(math.Inf(1)); !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), "the loss is +Inf") {
				t.Errorf("checkDiverged(+Inf loss) = %v, want ErrDiverged blaming the loss", err)
			}
			inf, nan := float32(math.Inf(-1)), float32(math.NaN())
			layer := func(p *nn.Param) string {
				return strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(p.Name, "layer"), ".weight"), ".bias")
			}
			// Planted one after the other, each earlier in the check's
			// order than the ones before: gradient of the first parameter
			// (last in order), gradient of the last, value of the last,
			// value of the first.
			for _, s := range []struct {
				x    backend.Tensor
				p    *nn.Param
				what string
				v    float32
			}{
				{ps[0].Grad, ps[0], "gradient", nan},
				{ps[3].Grad, ps[3], "gradient", inf},
				{ps[3].Value, ps[3], "value", nan},
				{ps[0].Value, ps[0], "value", inf},
			} {
				set(s.x, s.x.Len()-1, s.v)
				err := tr.checkDiverged(1)
				want := fmt.Sprintf("the %s of %s (layer %s) is not finite, norm %g", s.what, s.p.Name, layer(s.p), math.Abs(float64(s.v)))
				if !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "step ") {
					t.Errorf("with a %g in the %s of %s: %v, want ErrDiverged with %q and the step", s.v, s.what, s.p.Name, err, want)
				}
			}
		})
	}
}
