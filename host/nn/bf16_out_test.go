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

// floatForm is the name of the float32 kernel whose _bf16x, _bf16xdy or
// _bf16xy twin (a batch norm reading a BF16 conv's bfloat16 output, and
// its bfloat16 input gradient or writing a bfloat16 output) or _bf16b twin
// (an add reading a bfloat16 input) is name, or name itself.
func floatForm(name string) string {
	for _, twin := range []string{"_bf16xdy", "_bf16xy", "_bf16x"} {
		if strings.Contains(name, twin) {
			return strings.Replace(name, twin, "", 1)
		}
	}
	return strings.Replace(name, "_bf16b_", "_", 1)
}

// roundedOutputs is a backend whose convolutions write float32 outputs
// (ConvOutputBF16 false), rounded to bfloat16 afterwards on the host
// where the backend would have stored them as bfloat16: the reference of
// TestConvOutputBF16Plan, whose every conv output a batch norm reads; and
// float32 input gradients (ConvInputGradBF16 false), rounded on the host
// for the convolutions in dx (those whose input gradient the plan stores
// as bfloat16 on the backend).
type roundedOutputs struct {
	backend.Backend
	dx map[geom.ConvGeom]bool
	// bnY: the convolutions whose batch norm's output the plan stores as
	// bfloat16 (tensorInfo.bnAdd), rounded on the host after the batch
	// norm that reads the output of a conv in ys (each conv's output
	// tensor, recorded as the conv writes it) of such a geometry; nil:
	// none.
	bnY map[geom.ConvGeom]bool
	ys  map[backend.Tensor]geom.ConvGeom
}

func (r roundedOutputs) BatchNormForward(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y backend.Tensor, ep backend.Epilogue, momentum, eps float64) error {
	if err := r.Backend.BatchNormForward(train, n, c, hw, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y, ep, momentum, eps); err != nil {
		return err
	}
	if g, ok := r.ys[x]; ok && r.bnY[g] {
		return roundTensor(r.Backend, y)
	}
	return nil
}

func (r roundedOutputs) ConvOutputBF16(geom.ConvGeom) bool    { return false }
func (r roundedOutputs) ConvInputGradBF16(geom.ConvGeom) bool { return false }

func (r roundedOutputs) Conv2DBackwardData(g geom.ConvGeom, dy, w, dx backend.Tensor) error {
	if err := r.Backend.Conv2DBackwardData(g, dy, w, dx); err != nil {
		return err
	}
	return r.roundDx(g, dx)
}

func (r roundedOutputs) Conv2DBackward(g geom.ConvGeom, x, dy, w, dw, db, dx, xk backend.Tensor) error {
	if err := r.Backend.Conv2DBackward(g, x, dy, w, dw, db, dx, xk); err != nil {
		return err
	}
	return r.roundDx(g, dx)
}

func (r roundedOutputs) roundDx(g geom.ConvGeom, dx backend.Tensor) error {
	if dx == nil || !r.dx[g] {
		return nil
	}
	return roundTensor(r.Backend, dx)
}

// storedDx is the geometries at batch size n of the convolutions of m
// whose input gradient NewBatch stores as bfloat16 (Model.bf16Grad) where
// m's backend answers as be.
func storedDx(m *Model, be backend.Backend, n int) map[geom.ConvGeom]bool {
	on := withBackend(m, be)
	out := map[geom.ConvGeom]bool{}
	for i, t := range m.g.tensors {
		if on.bf16Grad(i, n) {
			out[convOf(m.g.nodes[t.bnDyConv], n)] = true
		}
	}
	return out
}

// withBackend is a copy of m answering as be (its plan and tensors m's),
// for the plan tests' questions of what NewBatch stores as bfloat16.
func withBackend(m *Model, be backend.Backend) *Model {
	on := *m
	on.be = be
	return &on
}

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
	if r.ys != nil {
		r.ys[y] = g
	}
	if !r.Backend.ConvOutputBF16(g) {
		return nil
	}
	return roundTensor(r.Backend, y)
}

// roundTensor rounds the float32 tensor t to bfloat16 on the host.
func roundTensor(be backend.Backend, t backend.Tensor) error {
	v := make([]float32, t.Len())
	if err := be.Download(v, t); err != nil {
		return err
	}
	cpuref.RoundBF16Slice(v, v)
	return be.Upload(t, v)
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
// (ConvOutputBF16: NewBatch allocates it with NewBF16Tensor) and each
// conv's input gradient that only the batch norm (and ReLU) before it
// reads stored so too (ConvInputGradBF16, tensorInfo.bnDy), and with
// float32 outputs and input gradients rounded to bfloat16 on the host
// after each conv; then evaluates a batch. Losses, weights, running
// statistics and evaluation outputs must be the same bit for bit; a batch
// holds one bfloat16 tensor per conv whose forward pass runs in BF16 (at
// least two on the simulator, all three on the CPU) and one per stored
// input gradient (at least one on the simulator, both on the CPU), and on
// the simulator the batch norms read them with their _bf16x and _bf16xdy
// kernels, in training, evaluation and the backward pass, the convs write
// them with their _bf16y and _bf16dx kernels, and the device holds less
// memory. With fuse false (the ReLU's own backward pass reading the
// gradient: relu_bwd_bf16dy_v1) the CPU run gives the same bits too.
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
				planRun
				bf16, planned int // bfloat16 tensors allocated; convs whose output the plan stores as bfloat16
				plannedDx     int // convs whose input gradient the plan stores as bfloat16
				bf16x         map[string]int64
				bytes         int64
			}
			run := func(stored, fuse bool) result {
				be, d := bf16Backend(t, dev)
				r := result{bf16x: map[string]int64{}}
				ref := newRounded(be, false)
				if stored {
					be = countedBF16{be, &r.bf16}
				} else {
					be = ref
				}
				m, err := newModel(be, spec, 2, fuse)
				backendtest.MustNil(t, err)
				if stored {
					r.plannedDx = len(storedDx(m, be, batch))
				} else {
					ref.fill(m, batch)
				}
				r.planned = storedConvOut(m, be, batch)
				r.losses = trainSteps(t, m, ds, steps, batch, 5, 0.1)
				if d != nil {
					r.bytes = d.MemStats().BytesInUse
				}
				r.eval, r.params = evalState(t, m, be, ds, batch, 7)
				if d != nil {
					for name, k := range d.KernelStats() {
						if strings.Contains(name, "_bf16x") || strings.HasSuffix(name, "_bf16y") || strings.Contains(name, "_bf16d") {
							r.bf16x[name] += k.Launches
						}
					}
				}
				return r
			}
			got, want := run(true, true), run(false, true)
			samePlanRun(t, got.planRun, want.planRun)
			least, leastDx := 3, 2
			if dev == "sim" {
				least, leastDx = 2, 1 // the dispatcher's choice: a conv it runs directly keeps float32
			}
			// trainSteps' batch and evalState's, each of the planned convs
			// and input gradients
			if got.planned < least || got.plannedDx < leastDx || got.bf16 != 2*(got.planned+got.plannedDx) || want.bf16 != 0 {
				t.Errorf("%d bfloat16 tensors allocated for %d convs stored as bfloat16 and %d input gradients a batch "+
					"(want two batches' and at least %d and %d), %d by the reference", got.bf16, got.planned, got.plannedDx,
					least, leastDx, want.bf16)
			}
			if dev == "cpu" {
				// unfused: the ReLUs' own backward passes read the
				// bfloat16 gradients, the same bits
				samePlanRun(t, run(true, false).planRun, want.planRun)
				return
			}
			st, k, kdx := int64(steps), int64(got.planned), int64(got.plannedDx)
			if n := got.bf16x["conv2d_fwd_v7_igemm_bf16y"]; n != k*(st+1) { // each forward pass
				t.Errorf("conv2d_fwd_v7_igemm_bf16y launched %d times, want %d", n, k*(st+1))
			}
			if n := got.bf16x["conv2d_bwd_data_v9_igemm_bf16dx"]; n != kdx*st { // each backward pass
				t.Errorf("conv2d_bwd_data_v9_igemm_bf16dx launched %d times, want %d", n, kdx*st)
			}
			var bwdDy int64
			for name, n := range got.bf16x {
				if strings.Contains(name, "_bf16xdy") {
					bwdDy += n
				}
			}
			if bwdDy < kdx*st {
				t.Errorf("batch norms on bfloat16 x and dy: %d backward launches, want at least %d: %v", bwdDy, kdx*st, got.bf16x)
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
			t.Logf("%d of 3 conv outputs and %d of 2 input gradients stored as bfloat16; launches %v; device memory %d → %d bytes",
				k, kdx, got.bf16x, want.bytes, got.bytes)
			if got.bytes >= want.bytes {
				t.Errorf("device memory in use %d bytes with bfloat16 conv outputs, %d without: want less", got.bytes, want.bytes)
			}
		})
	}
}

// storedBNOut is the geometries at batch size n of the convolutions whose
// batch norm's output NewBatch stores as bfloat16 (Model.bf16BNOut) where
// m's backend answers as be, one for each such output.
func storedBNOut(m *Model, be backend.Backend, n int) map[geom.ConvGeom]bool {
	on := withBackend(m, be)
	out := map[geom.ConvGeom]bool{}
	for i, ok := range on.bf16BNOut(n) {
		if ok {
			x := m.g.tensors[m.g.nodes[m.g.tensors[i].producer].in]
			out[convOf(m.g.nodes[x.producer], n)] = true
		}
	}
	return out
}

// TestBNOutputBF16Plan trains a few steps at BF16, on the simulator and on
// the CPU backend emulating BF16, of a residual block whose two batch
// norms (the branch's last and the projection's) only the residual add
// reads, with the first's output stored as bfloat16 (tensorInfo.bnAdd; the
// add reads one bfloat16 input:
// NewBatch allocates them with NewBF16Tensor, bn_train_fwd_bf16xy_v1 and
// bn_eval_fwd_bf16xy_v1 write them, the add+ReLU reads them with
// add_relu_pack_bf16_bf16b_v1 or add_relu_bf16b_v1), beside the conv
// outputs and input gradients of TestConvOutputBF16Plan; and with every
// such tensor float32, rounded on the host. Losses, weights, running
// statistics and evaluation outputs must be the same bit for bit, with
// and (CPU) without fusions; a batch holds one bfloat16 tensor for each.
func TestBNOutputBF16Plan(t *testing.T) {
	t.Parallel()
	layers, err := ParseSpec("conv8x3x3p1,bn,relu,res(conv24x3x3p1nobias,bn,relu,conv16x3x3p1nobias,bn|conv16x1x1nobias,bn),relu,gap,dense4")
	backendtest.MustNil(t, err)
	spec := Spec{C: 1, H: 14, W: 14, Loss: SoftmaxCE, Layers: layers}
	ds, err := data.Synthetic(64, 14, 4, 3)
	backendtest.MustNil(t, err)
	steps, batch := 2, 16
	for _, dev := range []string{"sim", "cpu"} {
		t.Run("device="+dev, func(t *testing.T) {
			if testing.Short() && dev == "sim" {
				t.Skip("-short: the simulator's run is left to the full run (the conformance cases check the kernels)")
			}
			type result struct {
				planRun
				bf16    int   // bfloat16 tensors allocated
				planned int   // tensors of the batch the plan stores as bfloat16
				bnOut   int   // of which batch norm outputs
				xy, b16 int64 // launches of the _bf16xy batch norms and the _bf16b adds
			}
			run := func(stored, fuse bool) result {
				be, d := bf16Backend(t, dev)
				var r result
				ref := newRounded(be, true)
				if stored {
					be = countedBF16{be, &r.bf16}
				} else {
					be = ref
				}
				m, err := newModel(be, spec, 2, fuse)
				backendtest.MustNil(t, err)
				if stored {
					r.bnOut = len(storedBNOut(m, be, batch))
					r.planned = storedConvOut(m, be, batch) + len(storedDx(m, be, batch)) + r.bnOut
				} else {
					ref.fill(m, batch)
				}
				r.losses = trainSteps(t, m, ds, steps, batch, 5, 0.1)
				r.eval, r.params = evalState(t, m, be, ds, batch, 7)
				if d != nil {
					for name, k := range d.KernelStats() {
						switch {
						case strings.HasSuffix(name, "_bf16xy_v1"):
							r.xy += k.Launches
						case strings.HasPrefix(name, "add_") && strings.Contains(name, "_bf16b_"):
							r.b16 += k.Launches
						}
					}
				}
				return r
			}
			got, want := run(true, true), run(false, true)
			samePlanRun(t, got.planRun, want.planRun)
			// trainSteps' batch and evalState's; one of the add's two
			// batch-norm inputs (it reads one bfloat16 input)
			if got.bnOut != 1 || got.bf16 != 2*got.planned || want.bf16 != 0 {
				t.Errorf("%d bfloat16 tensors allocated for %d a batch, %d of them batch norm outputs (want two batches' and 1), "+
					"%d by the reference", got.bf16, got.planned, got.bnOut, want.bf16)
			}
			if dev == "cpu" {
				samePlanRun(t, run(true, false).planRun, want.planRun) // unfused: add_bf16b then the ReLU, the same bits
				return
			}
			// each forward pass: the batch norms and the add
			if k, passes := int64(got.bnOut), int64(steps+1); got.xy != k*passes || got.b16 != passes || want.xy+want.b16 != 0 {
				t.Errorf("%d _bf16xy batch-norm and %d _bf16b add launches, want %d and %d (the reference: %d)", got.xy, got.b16,
					k*passes, passes, want.xy+want.b16)
			}
		})
	}
}

// bf16Backend is a backend at BF16 for the plan tests: the simulator's
// (and its device), or with dev "cpu" the CPU backend emulating BF16 (d
// nil).
func bf16Backend(t *testing.T, dev string) (be backend.Backend, d *gpu.Device) {
	t.Helper()
	if dev == "sim" {
		be, d = backendtest.Sim(t)
		backendtest.MustNil(t, d.SetPrecision(gpu.BF16))
		return be, d
	}
	cb, err := cpubackend.NewCPUBackendBF16(2)
	backendtest.MustNil(t, err)
	t.Cleanup(func() { cb.Close() })
	return cb, nil
}

// newRounded is the reference over be of a plan test, its maps filled
// (fill) once the model's plan is made; with bnOut it rounds the batch
// norms' outputs too.
func newRounded(be backend.Backend, bnOut bool) roundedOutputs {
	r := roundedOutputs{Backend: be, dx: map[geom.ConvGeom]bool{}}
	if bnOut {
		r.bnY, r.ys = map[geom.ConvGeom]bool{}, map[backend.Tensor]geom.ConvGeom{}
	}
	return r
}

// fill sets what r rounds for m at batch size n: what NewBatch would
// store as bfloat16 on r's backend.
func (r roundedOutputs) fill(m *Model, n int) {
	for g := range storedDx(m, r.Backend, n) {
		r.dx[g] = true
	}
	if r.bnY != nil {
		for g := range storedBNOut(m, r.Backend, n) {
			r.bnY[g] = true
		}
	}
}

// storedConvOut is the number of convs of m whose output NewBatch stores
// as bfloat16 at batch size n on be (tensorInfo.bnIn, ConvOutputBF16).
func storedConvOut(m *Model, be backend.Backend, n int) int {
	k := 0
	for _, c := range m.g.nodes {
		if c.mod != addModule && c.mod != catModule && c.mod.kind == Conv && m.g.tensors[c.out].bnIn && be.ConvOutputBF16(convOf(c, n)) {
			k++
		}
	}
	return k
}

// planRun is what a plan test compares of two runs: the training losses,
// the evaluation's outputs, and every parameter and buffer after.
type planRun struct {
	losses, eval []float32
	params       [][]float32
}

// samePlanRun fails t unless got and want are the same bit for bit.
func samePlanRun(t *testing.T, got, want planRun) {
	t.Helper()
	backendtest.EqualBits(t, "losses", got.losses, want.losses)
	backendtest.EqualBits(t, "evaluation output", got.eval, want.eval)
	for i := range want.params {
		backendtest.EqualBits(t, "param or buffer "+strconv.Itoa(i), got.params[i], want.params[i])
	}
}
