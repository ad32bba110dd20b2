package nn

import (
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/cpubackend"
	"github.com/convtrain/convtrain/host/data"
)

// floatForm is the name of the float32 kernel whose _bf16x twin (a batch
// norm reading a BF16 conv's bfloat16 output) is name, or name itself.
func floatForm(name string) string { return strings.Replace(name, "_bf16x", "", 1) }

// roundedOutputs is a backend whose convolutions write float32 outputs
// (ConvOutputBF16 false), rounded to bfloat16 afterwards on the host
// where the backend would have stored them as bfloat16: the reference of
// TestConvOutputBF16Plan, whose every conv output a batch norm reads.
type roundedOutputs struct{ backend.Backend }

func (r roundedOutputs) ConvOutputBF16(geom.ConvGeom) bool { return false }

func (r roundedOutputs) Conv2DForward(g geom.ConvGeom, x, w, b, y backend.Tensor, ep backend.Epilogue) error {
	if err := r.Backend.Conv2DForward(g, x, w, b, y, ep); err != nil {
		return err
	}
	return r.round(g, y)
}

func (r roundedOutputs) Conv2DForwardKeep(g geom.ConvGeom, x, w, b, y backend.Tensor, ep backend.Epilogue, xk backend.Tensor) error {
	if err := r.Backend.Conv2DForwardKeep(g, x, w, b, y, ep, xk); err != nil {
		return err
	}
	return r.round(g, y)
}

func (r roundedOutputs) round(g geom.ConvGeom, y backend.Tensor) error {
	if !r.Backend.ConvOutputBF16(g) {
		return nil
	}
	v := make([]float32, y.Len())
	if err := r.Download(v, y); err != nil {
		return err
	}
	cpuref.RoundBF16Slice(v, v)
	return r.Upload(y, v)
}

// countedBF16 counts the bfloat16 tensors a backend allocates.
type countedBF16 struct {
	backend.Backend
	n *int
}

func (c countedBF16) NewBF16Tensor(n int) (backend.Tensor, error) {
	*c.n++
	return c.Backend.NewBF16Tensor(n)
}

// TestConvOutputBF16Plan trains a few steps of three conv → batch norm
// pairs at BF16, on the simulator and on the CPU backend emulating BF16,
// with each conv's output stored as bfloat16 for its batch norm
// (ConvOutputBF16: NewBatch allocates it with NewBF16Tensor), and with
// float32 outputs rounded to bfloat16 on the host after each conv; then
// evaluates a batch. Losses, weights, running statistics and evaluation
// outputs must be the same bit for bit; a batch holds one bfloat16 tensor
// per conv whose forward pass runs in BF16 (at least two on the
// simulator, all three on the CPU), and on the simulator the batch norms
// read them with their _bf16x kernels, in training, evaluation and the
// backward pass, and the device holds less memory.
func TestConvOutputBF16Plan(t *testing.T) {
	t.Parallel()
	spec := bnPlanSpec()
	ds, err := data.Synthetic(64, 14, 4, 3)
	backendtest.MustNil(t, err)
	steps, batch := 2, 16
	for _, dev := range []string{"sim", "cpu"} {
		t.Run("device="+dev, func(t *testing.T) {
			if testing.Short() && dev == "sim" {
				t.Skip("-short: the simulator's run is left to the full run (TestConvOutputBF16 checks the device's part)")
			}
			type result struct {
				losses, eval  []float32
				params        [][]float32
				bf16, planned int // bfloat16 tensors allocated; convs whose output the plan stores as bfloat16
				bf16x         map[string]int64
				bytes         int64
			}
			run := func(stored bool) result {
				var be backend.Backend
				var d *gpu.Device
				if dev == "sim" {
					be, d = backendtest.Sim(t)
					backendtest.MustNil(t, d.SetPrecision(gpu.BF16))
				} else {
					cb, err := cpubackend.NewCPUBackendBF16(2)
					backendtest.MustNil(t, err)
					t.Cleanup(func() { cb.Close() })
					be = cb
				}
				r := result{bf16x: map[string]int64{}}
				if stored {
					be = countedBF16{be, &r.bf16}
				} else {
					be = roundedOutputs{be}
				}
				m, err := newModel(be, spec, 2, true)
				backendtest.MustNil(t, err)
				for _, n := range m.g.nodes {
					if n.mod != addModule && n.mod != catModule && n.mod.kind == Conv && m.g.tensors[n.out].bnIn &&
						be.ConvOutputBF16(convOf(n, batch)) {
						r.planned++
					}
				}
				r.losses = trainSteps(t, m, ds, steps, batch, 5, 0.1)
				if d != nil {
					r.bytes = d.MemStats().BytesInUse
				}
				r.eval, r.params = evalState(t, m, be, ds, batch, 7)
				if d != nil {
					for name, k := range d.KernelStats() {
						if strings.Contains(name, "_bf16x") || strings.HasSuffix(name, "_bf16y") {
							r.bf16x[name] += k.Launches
						}
					}
				}
				return r
			}
			got, want := run(true), run(false)
			backendtest.EqualBits(t, "losses", got.losses, want.losses)
			backendtest.EqualBits(t, "evaluation output", got.eval, want.eval)
			for i := range want.params {
				backendtest.EqualBits(t, "param or buffer "+strconv.Itoa(i), got.params[i], want.params[i])
			}
			least := 3
			if dev == "sim" {
				least = 2 // the dispatcher's choice: a conv it runs directly keeps float32
			}
			// trainSteps' batch and evalState's, each of the planned convs
			if got.planned < least || got.bf16 != 2*got.planned || want.bf16 != 0 {
				t.Errorf("%d bfloat16 tensors allocated for %d convs stored as bfloat16 a batch (want two batches' and at least %d), "+
					"%d by the reference", got.bf16, got.planned, least, want.bf16)
			}
			if dev == "cpu" {
				return
			}
			st, k := int64(steps), int64(got.planned)
			if n := got.bf16x["conv2d_fwd_v7_igemm_bf16y"]; n != k*(st+1) { // each forward pass
				t.Errorf("conv2d_fwd_v7_igemm_bf16y launched %d times, want %d", n, k*(st+1))
			}
			var fwd, bwd int64
			for name, n := range got.bf16x {
				switch {
				case strings.HasPrefix(name, "bn_bwd"):
					bwd += n
				case strings.HasPrefix(name, "bn_"):
					fwd += n
				}
			}
			if fwd < k*(st+1) || bwd < k*st || len(want.bf16x) != 0 {
				t.Errorf("batch norms on bfloat16 x: %d forward and %d backward launches (want at least %d and %d: %v), %d kernels by the reference",
					fwd, bwd, k*(st+1), k*st, got.bf16x, len(want.bf16x))
			}
			t.Logf("%d of 3 conv outputs stored as bfloat16; launches %v; device memory %d → %d bytes", k, got.bf16x, want.bytes, got.bytes)
			if got.bytes >= want.bytes {
				t.Errorf("device memory in use %d bytes with bfloat16 conv outputs, %d without: want less", got.bytes, want.bytes)
			}
		})
	}
}
