package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// benchOptions are the flags of train bench.
type benchOptions struct {
	batch, steps, size, classes int
	seed                        uint64
	deviceOptions
	arch ckptOptions // -model only
}

func parseBench(args []string, stderr io.Writer) (*benchOptions, error) {
	o := &benchOptions{}
	fs := flag.NewFlagSet("train bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: train bench [flags]\n\nTimes the operations and kernels of one training step; see `go doc ./cmd/train`.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.IntVar(&o.batch, "batch", 64, "images per step (1 to 4096)")
	fs.IntVar(&o.steps, "steps", 0, "timed steps (0: 1 on sim, 20 on cpu and gpu)")
	fs.IntVar(&o.size, "size", 28, "image height and width (synthetic data)")
	fs.IntVar(&o.classes, "classes", 10, "classes (synthetic data)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the initialisation and the data")
	fs.StringVar(&o.arch.model, "model", "", "model `SPEC`, e.g. conv8x5x5,relu,maxpool2,dense10, or @FILE to read it from a file (default: "+nn.DefaultSpecText+")")
	o.deviceOptions.register(fs, "gpu")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err, true}
	}
	switch {
	case fs.NArg() > 0:
		return nil, usagef("bench: unexpected arguments %q", fs.Args())
	case o.batch < 1 || o.batch > 4096:
		return nil, usagef("-batch %d: want 1 to 4096", o.batch)
	case o.steps < 0 || o.steps > 100_000:
		return nil, usagef("-steps %d: want 0 to 100000", o.steps)
	case o.size < 4 || o.size > 256:
		return nil, usagef("-size %d: want 4 to 256", o.size)
	case o.classes < 2 || o.classes > 256:
		return nil, usagef("-classes %d: want 2 to 256", o.classes)
	}
	if err := o.arch.check(fs); err != nil {
		return nil, err
	}
	if err := o.deviceOptions.check(); err != nil {
		return nil, err
	}
	if o.steps == 0 {
		o.steps = 20
		if o.device == "sim" {
			o.steps = 1
		}
	}
	o.simCounters = o.device == "sim"
	return o, nil
}

// runBench is train bench.
func runBench(args []string, stdout, stderr io.Writer) error {
	o, err := parseBench(args, stderr)
	if err != nil {
		return err
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(o.threads))
	set, err := data.Synthetic(o.batch, o.size, o.classes, o.seed)
	if err != nil {
		return err
	}
	spec, err := o.arch.modelSpec(set)
	if err != nil {
		return err
	}
	summary, err := spec.Summary()
	if err != nil {
		return err
	}
	db, err := newBackend(o.deviceOptions)
	if err != nil {
		return err
	}
	defer db.Close()
	be := db.Backend
	tb := &timedBackend{Memory: be, be: be, dev: db.dev, ops: make(map[string]*opTimes)}
	if db.dev != nil && !db.dev.IsSim() {
		tb.events = true
	}
	defer tb.destroyEvents()
	var mb backend.Backend = tb // the model's backend

	fmt.Fprintf(stdout, "backend  %s\n", db.Name())
	if d := db.describe(); d != "" {
		fmt.Fprintf(stdout, "device   %s\n", d)
	}
	// One warm-up step on every device: first uses allocate (and zero)
	// scratch buffers, which the rows per step must not count.
	const warm = 1
	fmt.Fprintf(stdout, "bench    %d timed steps (after %d warm-up) of %d synthetic %d×%d images, %d classes, seed %d\n",
		o.steps, warm, o.batch, o.size, o.size, o.classes, o.seed)
	fmt.Fprint(stdout, summary)

	m, err := nn.NewModel(mb, spec, o.seed)
	if err != nil {
		return err
	}
	defer m.Close()
	ds, err := m.UploadChannels(set, set.ChannelNorm()) // as the trainer standardises
	if err != nil {
		return err
	}
	defer ds.Free(tb)
	b, err := m.NewBatch(o.batch)
	if err != nil {
		return err
	}
	defer b.Free(tb)
	rows := make([]int32, o.batch)
	for i := range rows {
		rows[i] = int32(i)
	}
	// The rows go up once; each step gathers through them on the device, as
	// the trainer's steps do through views of the epoch's order.
	if err := tb.UploadIndex(b.Idx, rows); err != nil {
		return err
	}
	step := func() error {
		if err := m.LoadIndexed(b, ds, b.Idx); err != nil {
			return err
		}
		// A small learning rate keeps the weights (and the work) near
		// their initial values however many steps are timed.
		return m.TrainStep(b, 1e-4, 0.9, 0)
	}
	for range warm {
		if err := step(); err != nil {
			return fmt.Errorf("warm-up step: %w", err)
		}
		if err := tb.Sync(); err != nil {
			return err
		}
	}
	tb.reset()
	var stepTimes []time.Duration
	for s := range o.steps {
		t0 := time.Now()
		tb.recording = true
		err := step()
		tb.recording = false
		if err == nil {
			err = tb.Sync()
		}
		if err == nil {
			err = tb.collect()
		}
		if err != nil {
			return fmt.Errorf("step %d: %w", s+1, err)
		}
		stepTimes = append(stepTimes, time.Since(t0))
	}
	if err := tb.report(stdout, o, stepTimes); err != nil {
		return err
	}
	if db.dev == nil {
		return nil
	}
	if err := benchQueued(stdout, db.dev, tb, step, o.steps, o.batch); err != nil {
		return err
	}
	if o.graph {
		return benchGraphed(stdout, db.dev, be, spec, set, o.steps, o.batch, o.seed)
	}
	return nil
}

// benchGraphed records the training step (nn.Model.RecordStep) of a second
// model on the backend itself (not the timing wrapper), after one eager
// step, replays it steps times back to back with nothing synchronised
// until the last, and prints the launches and uploads per step, the time
// per step and the host's time to issue one (the upload of the step's
// values and the graph launch).
func benchGraphed(w io.Writer, dev *gpu.Device, be backend.Backend, spec nn.Spec, set *data.Dataset, steps, batch int, seed uint64) error {
	m, err := nn.NewModel(be, spec, seed)
	if err != nil {
		return err
	}
	defer m.Close()
	ds, err := m.UploadChannels(set, set.ChannelNorm())
	if err != nil {
		return err
	}
	defer ds.Free(be)
	b, err := m.NewBatch(batch)
	if err != nil {
		return err
	}
	defer b.Free(be)
	rows := make([]int32, batch)
	for i := range rows {
		rows[i] = int32(i)
	}
	if err := be.UploadIndex(b.Idx, rows); err != nil {
		return err
	}
	if err := m.LoadIndexed(b, ds, b.Idx); err != nil {
		return err
	}
	if err := m.TrainStep(b, 1e-4, 0.9, 0); err != nil {
		return err
	}
	g, err := m.RecordStep(b, ds, b.Idx, backend.AugmentParams{})
	if errors.Is(err, nn.ErrNoGraphs) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record the step: %w", err)
	}
	defer g.Free()
	if err := g.Run(0, 0, 1e-4, 0.9, 0); err != nil { // warm-up
		return err
	}
	if err := be.Sync(); err != nil {
		return err
	}
	l0, mem := dev.Launches(), dev.MemStats()
	t0 := time.Now()
	for s := range steps {
		if err := g.Run(0, 0, 1e-4, 0.9, 0); err != nil {
			return fmt.Errorf("replayed step %d: %w", s+1, err)
		}
	}
	issued := time.Since(t0)
	if err := be.Sync(); err != nil {
		return err
	}
	total := time.Since(t0)
	launches := float64(dev.Launches()-l0) / float64(steps)
	uploads := float64(dev.MemStats().HtoDCopies-mem.HtoDCopies) / float64(steps)
	if dev.IsSim() {
		fmt.Fprintf(w, "graphed  %d step(s): %.0f launch(es) and %.0f upload(s) per step, replaying the %d kernel launches recorded\n",
			steps, launches, uploads, g.Kernels())
		return nil
	}
	perStep := float64(total.Nanoseconds()) / 1e6 / float64(steps)
	host := float64(issued.Nanoseconds()) / 1e3 / float64(steps)
	fmt.Fprintf(w, "graphed  %d step(s) replayed without synchronisation: %.3f ms per step, %.0f images/s; host %.2f µs per step to issue %.0f graph launch(es) and %.0f upload(s) (%d kernel launches recorded)\n",
		steps, perStep, float64(steps*batch)/total.Seconds(), host, launches, uploads, g.Kernels())
	return nil
}

// benchQueued runs steps training steps back to back as the trainer does,
// with nothing timed per operation and no synchronisation until the last,
// and prints the launches per step, the time per step and the host's
// share: the time to issue a step's launches. On a GPU the host runs ahead
// of the device, so a step costs the larger of the two; a host time close
// to the step time says the step is bound by launch overhead. On the
// simulator every launch runs as it is issued, so only the launches count.
func benchQueued(w io.Writer, dev *gpu.Device, be backend.Backend, step func() error, steps, batch int) error {
	l0 := dev.Launches()
	t0 := time.Now()
	for s := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("queued step %d: %w", s+1, err)
		}
	}
	issued := time.Since(t0)
	if err := be.Sync(); err != nil {
		return err
	}
	total := time.Since(t0)
	launches := float64(dev.Launches()-l0) / float64(steps)
	if dev.IsSim() {
		fmt.Fprintf(w, "queued   %d step(s): %.0f launches per step (on the simulator each launch runs as it is issued: no host/device overlap to measure)\n",
			steps, launches)
		return nil
	}
	perStep := float64(total.Nanoseconds()) / 1e6 / float64(steps)
	host := float64(issued.Nanoseconds()) / 1e6 / float64(steps)
	fmt.Fprintf(w, "queued   %d step(s) without synchronisation: %.3f ms per step, %.0f images/s; host %.3f ms per step to issue %.0f launches (%.1f µs per launch)\n",
		steps, perStep, float64(steps*batch)/total.Seconds(), host, launches, host*1e3/launches)
	return nil
}

// opTimes gathers the calls of one operation (a backend method on given
// sizes) over the timed steps.
type opTimes struct {
	label   string
	flops   float64   // per call (conv, dense); 0 for other ops
	gemms   int       // GEMM-like kernels per call, sharing flops equally
	calls   int       // over all timed steps
	times   []float64 // ms per step (summed over the step's calls)
	kernels map[string]*gpu.KernelStats
}

// timedBackend is a backend.Backend that times every operation of a step
// (every method of backend.Ops; those of backend.Memory pass through):
// with events on a GPU (no synchronisation between operations), with the
// wall clock on the CPU and the simulator, whose operations are
// synchronous. On the simulator it also keeps, per operation, the
// counters of each kernel launched (gpu.Device.KernelStats).
type timedBackend struct {
	backend.Memory
	be        backend.Backend // the timed backend
	dev       *gpu.Device
	events    bool // time with device events
	recording bool // inside a timed step
	order     []string
	ops       map[string]*opTimes
	// The current step's calls: the operation and its start and end
	// (events or times).
	pending []pendingOp
	evPool  []*gpu.Event
	evUsed  int
}

type pendingOp struct {
	op         *opTimes
	start, end *gpu.Event
	t0, t1     time.Time
}

// reset forgets what was recorded (the warm-up).
func (t *timedBackend) reset() {
	t.order, t.ops, t.pending = nil, make(map[string]*opTimes), nil
	if t.dev != nil {
		t.dev.ResetKernelStats()
	}
}

func (t *timedBackend) event() (*gpu.Event, error) {
	if t.evUsed == len(t.evPool) {
		e, err := t.dev.NewEvent()
		if err != nil {
			return nil, err
		}
		t.evPool = append(t.evPool, e)
	}
	t.evUsed++
	return t.evPool[t.evUsed-1], nil
}

func (t *timedBackend) destroyEvents() {
	for _, e := range t.evPool {
		e.Destroy()
	}
	t.evPool = nil
}

// time runs f as operation label, timing it when recording.
// flops are the operation's, done by gemms GEMM-like kernels (conv and
// dense passes; 0 and 0 for other operations).
func (t *timedBackend) time(label string, flops float64, gemms int, f func() error) error {
	if !t.recording {
		return f()
	}
	op := t.ops[label]
	if op == nil {
		op = &opTimes{label: label, flops: flops, gemms: gemms, kernels: make(map[string]*gpu.KernelStats)}
		t.ops[label] = op
		t.order = append(t.order, label)
	}
	p := pendingOp{op: op}
	var err error
	if t.events {
		if p.start, err = t.event(); err == nil {
			err = p.start.Record()
		}
		if err != nil {
			return err
		}
	} else if t.dev != nil {
		t.dev.ResetKernelStats()
	}
	p.t0 = time.Now()
	if err := f(); err != nil {
		return err
	}
	p.t1 = time.Now()
	if t.events {
		if p.end, err = t.event(); err == nil {
			err = p.end.Record()
		}
		if err != nil {
			return err
		}
	} else if t.dev != nil {
		for name, k := range t.dev.KernelStats() {
			sum := op.kernels[name]
			if sum == nil {
				sum = &gpu.KernelStats{SimStats: gpu.SimStats{Instructions: map[string]int64{}}}
				op.kernels[name] = sum
			}
			addKernelStats(sum, k)
		}
	}
	t.pending = append(t.pending, p)
	return nil
}

// addKernelStats adds the counters of k to sum.
func addKernelStats(sum *gpu.KernelStats, k gpu.KernelStats) {
	sum.Launches += k.Launches
	sum.SimTime += k.SimTime
	for c, v := range k.Instructions {
		sum.Instructions[c] += v
	}
	sum.ThreadInstructions += k.ThreadInstructions
	sum.GlobalLoadBytes += k.GlobalLoadBytes
	sum.GlobalStoreBytes += k.GlobalStoreBytes
	sum.GlobalRequests += k.GlobalRequests
	sum.GlobalSectors += k.GlobalSectors
	sum.SharedRequests += k.SharedRequests
	sum.SharedBankConflicts += k.SharedBankConflicts
}

// collect reads the times of the step just synchronised.
func (t *timedBackend) collect() error {
	step := make(map[*opTimes]float64)
	for _, p := range t.pending {
		ms := float64(p.t1.Sub(p.t0).Nanoseconds()) / 1e6
		if t.events {
			e, err := p.end.ElapsedMs(p.start)
			if err != nil {
				return err
			}
			ms = float64(e)
		}
		step[p.op] += ms
		p.op.calls++
	}
	for op, ms := range step {
		op.times = append(op.times, ms)
	}
	t.pending, t.evUsed = t.pending[:0], 0
	return nil
}

func (t *timedBackend) Conv2DForward(g geom.ConvGeom, x, w, b, y backend.Tensor, ep backend.Epilogue) error {
	label := "conv fwd "
	if ep == backend.EpilogueReLU {
		label = "conv+relu fwd "
	}
	return t.time(label+g.String(), g.FLOPs(), 1, func() error { return t.be.Conv2DForward(g, x, w, b, y, ep) })
}

func (t *timedBackend) Conv2DBackwardData(g geom.ConvGeom, dy, w, dx backend.Tensor) error {
	return t.time("conv bwd data "+g.String(), g.FLOPs(), 1, func() error { return t.be.Conv2DBackwardData(g, dy, w, dx) })
}

func (t *timedBackend) Conv2DBackwardFilter(g geom.ConvGeom, x, dy, dw, db backend.Tensor) error {
	return t.time("conv bwd filter "+g.String(), g.FLOPs(), 1, func() error { return t.be.Conv2DBackwardFilter(g, x, dy, dw, db) })
}

// Conv2DBackward is timed as one operation, "conv bwd": the two passes'
// FLOPs (the weight gradient's alone without dx) in as many GEMM-like
// kernels.
func (t *timedBackend) Conv2DBackward(g geom.ConvGeom, x, dy, w, dw, db, dx, xk backend.Tensor) error {
	passes := 1
	if dx != nil {
		passes = 2
	}
	return t.time("conv bwd "+g.String(), float64(passes)*g.FLOPs(), passes, func() error {
		return t.be.Conv2DBackward(g, x, dy, w, dw, db, dx, xk)
	})
}

func (t *timedBackend) ConvKeepLen(g geom.ConvGeom) int  { return t.be.ConvKeepLen(g) }
func (t *timedBackend) ConvXCopyLen(g geom.ConvGeom) int { return t.be.ConvXCopyLen(g) }
func (t *timedBackend) ConvOutputBF16(g geom.ConvGeom) bool {
	return t.be.ConvOutputBF16(g)
}

func (t *timedBackend) ConvInputGradBF16(g geom.ConvGeom) bool {
	return t.be.ConvInputGradBF16(g)
}

// Conv2DForwardKeep is timed as Conv2DForward.
func (t *timedBackend) Conv2DForwardKeep(g geom.ConvGeom, x, w, b, y backend.Tensor, ep backend.Epilogue, xk backend.Tensor) error {
	label := "conv fwd "
	if ep == backend.EpilogueReLU {
		label = "conv+relu fwd "
	}
	return t.time(label+g.String(), g.FLOPs(), 1, func() error { return t.be.Conv2DForwardKeep(g, x, w, b, y, ep, xk) })
}

func (t *timedBackend) ReLUForward(x, y backend.Tensor) error {
	return t.time(fmt.Sprintf("relu fwd n=%d", x.Len()), 0, 0, func() error { return t.be.ReLUForward(x, y) })
}

func (t *timedBackend) ReLUBackward(x, dy, dx backend.Tensor) error {
	return t.time(fmt.Sprintf("relu bwd n=%d", x.Len()), 0, 0, func() error { return t.be.ReLUBackward(x, dy, dx) })
}

func poolLabel(g geom.PoolGeom) string {
	return fmt.Sprintf("N=%d,C=%d,H=%d,W=%d,R=%d,S=%d", g.N, g.C, g.H, g.W, g.R, g.S)
}

func (t *timedBackend) MaxPoolForward(g geom.PoolGeom, x, y, argmax backend.Tensor) error {
	return t.time("maxpool fwd "+poolLabel(g), 0, 0, func() error { return t.be.MaxPoolForward(g, x, y, argmax) })
}

func (t *timedBackend) DenseBackwardPoolReLU(g geom.PoolGeom, out int, x, w, dy, dw, db, argmax, xr, dxr backend.Tensor) error {
	in := g.C * g.P() * g.Q()
	products := 1 // dw = dyᵀ·x; and dx = dy·w when asked
	if dxr != nil {
		products = 2
	}
	return t.time(fmt.Sprintf("dense+maxpool+relu bwd N=%d,In=%d,Out=%d", g.N, in, out), float64(products)*2*float64(g.N)*float64(in)*float64(out), 1,
		func() error { return t.be.DenseBackwardPoolReLU(g, out, x, w, dy, dw, db, argmax, xr, dxr) })
}

func (t *timedBackend) MaxPoolDenseSoftmax(g geom.PoolGeom, x, y, argmax backend.Tensor, classes int, w, b, logits, labels, loss, dlogits, lossSum, correct backend.Tensor) error {
	in := g.C * g.P() * g.Q()
	return t.time(fmt.Sprintf("maxpool+dense fwd+softmax-ce %s,Out=%d", poolLabel(g), classes), 2*float64(g.N)*float64(in)*float64(classes), 1,
		func() error {
			return t.be.MaxPoolDenseSoftmax(g, x, y, argmax, classes, w, b, logits, labels, loss, dlogits, lossSum, correct)
		})
}

func (t *timedBackend) MaxPoolDenseForward(g geom.PoolGeom, x, y, argmax backend.Tensor, out int, w, b, z backend.Tensor) error {
	in := g.C * g.P() * g.Q()
	return t.time(fmt.Sprintf("maxpool+dense fwd %s,Out=%d", poolLabel(g), out), 2*float64(g.N)*float64(in)*float64(out), 1,
		func() error { return t.be.MaxPoolDenseForward(g, x, y, argmax, out, w, b, z) })
}

func (t *timedBackend) MaxPoolBackwardReLU(g geom.PoolGeom, dy, argmax, x, dx backend.Tensor) error {
	return t.time("maxpool+relu bwd "+poolLabel(g), 0, 0, func() error { return t.be.MaxPoolBackwardReLU(g, dy, argmax, x, dx) })
}

func (t *timedBackend) MaxPoolBackward(g geom.PoolGeom, dy, argmax, dx backend.Tensor) error {
	return t.time("maxpool bwd "+poolLabel(g), 0, 0, func() error { return t.be.MaxPoolBackward(g, dy, argmax, dx) })
}

func (t *timedBackend) BatchNormForward(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y backend.Tensor, ep backend.Epilogue, momentum, eps float64) error {
	return t.BatchNormForwardKeep(train, n, c, hw, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y, ep, momentum, eps, geom.ConvGeom{}, nil, false)
}

// BatchNormForwardKeep is timed as BatchNormForward, under its label.
func (t *timedBackend) BatchNormForwardKeep(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y backend.Tensor, ep backend.Epilogue, momentum, eps float64, g geom.ConvGeom, xk backend.Tensor, copyOnly bool) error {
	label := "batchnorm"
	if ep == backend.EpilogueReLU {
		label = "batchnorm+relu"
	}
	return t.time(fmt.Sprintf("%s fwd N=%d,C=%d,HW=%d", label, n, c, hw), 0, 0, func() error {
		return t.be.BatchNormForwardKeep(train, n, c, hw, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y, ep, momentum, eps, g, xk, copyOnly)
	})
}

func (t *timedBackend) BatchNormBackward(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta backend.Tensor) error {
	return t.BatchNormBackwardKeep(n, c, hw, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta, geom.ConvGeom{}, nil, false, backend.BNReLU{})
}

// BatchNormBackwardKeep is timed as BatchNormBackward, or with relu as
// BatchNormBackwardReLU, under its label.
func (t *timedBackend) BatchNormBackwardKeep(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta backend.Tensor, g geom.ConvGeom, dyk backend.Tensor, copyOnly bool, relu backend.BNReLU) error {
	label := "batchnorm bwd"
	if relu.On() {
		label = "batchnorm+relu bwd"
	}
	return t.time(fmt.Sprintf("%s N=%d,C=%d,HW=%d", label, n, c, hw), 0, 0, func() error {
		return t.be.BatchNormBackwardKeep(n, c, hw, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta, g, dyk, copyOnly, relu)
	})
}

func (t *timedBackend) ConvDyCopyLen(g geom.ConvGeom) int { return t.be.ConvDyCopyLen(g) }

func (t *timedBackend) BatchNormBackwardReLU(n, c, hw int, x, gamma, beta, saveMean, saveInvStd, y, dy, dx, dgamma, dbeta backend.Tensor) error {
	return t.time(fmt.Sprintf("batchnorm+relu bwd N=%d,C=%d,HW=%d", n, c, hw), 0, 0, func() error {
		return t.be.BatchNormBackwardReLU(n, c, hw, x, gamma, beta, saveMean, saveInvStd, y, dy, dx, dgamma, dbeta)
	})
}

func (t *timedBackend) AvgPoolForward(g geom.AvgPoolGeom, x, y backend.Tensor) error {
	return t.time("avgpool fwd "+g.String(), 0, 0, func() error { return t.be.AvgPoolForward(g, x, y) })
}

func (t *timedBackend) AvgPoolBackward(g geom.AvgPoolGeom, dy, dx backend.Tensor) error {
	return t.time("avgpool bwd "+g.String(), 0, 0, func() error { return t.be.AvgPoolBackward(g, dy, dx) })
}

func (t *timedBackend) GlobalAvgPoolForward(n, c, hw int, x, y backend.Tensor) error {
	return t.time(fmt.Sprintf("global avgpool fwd N=%d,C=%d,HW=%d", n, c, hw), 0, 0, func() error { return t.be.GlobalAvgPoolForward(n, c, hw, x, y) })
}

func (t *timedBackend) GlobalAvgPoolBackward(n, c, hw int, dy, dx backend.Tensor) error {
	return t.time(fmt.Sprintf("global avgpool bwd N=%d,C=%d,HW=%d", n, c, hw), 0, 0, func() error { return t.be.GlobalAvgPoolBackward(n, c, hw, dy, dx) })
}

func (t *timedBackend) ActivationForward(act backend.Activation, param float32, x, y backend.Tensor) error {
	return t.time(act.String()+" fwd", 0, 0, func() error { return t.be.ActivationForward(act, param, x, y) })
}

func (t *timedBackend) ActivationBackward(act backend.Activation, param float32, x, y, dy, dx backend.Tensor) error {
	return t.time(act.String()+" bwd", 0, 0, func() error { return t.be.ActivationBackward(act, param, x, y, dy, dx) })
}

func (t *timedBackend) DropoutForward(key backend.DropoutKey, p float32, x, y backend.Tensor) error {
	return t.time("dropout fwd", 0, 0, func() error { return t.be.DropoutForward(key, p, x, y) })
}

func (t *timedBackend) DropoutBackward(key backend.DropoutKey, p float32, dy, dx backend.Tensor) error {
	return t.time("dropout bwd", 0, 0, func() error { return t.be.DropoutBackward(key, p, dy, dx) })
}

func (t *timedBackend) Add(a, b, y backend.Tensor) error {
	return t.time("add", 0, 0, func() error { return t.be.Add(a, b, y) })
}

func (t *timedBackend) AddReLU(a, b, y backend.Tensor) error {
	return t.AddReLUKeep(a, b, y, nil)
}

// AddReLUKeep is timed as AddReLU, under its label.
func (t *timedBackend) AddReLUKeep(a, b, y backend.Tensor, keeps []backend.ConvKeep) error {
	return t.time("add+relu", 0, 0, func() error { return t.be.AddReLUKeep(a, b, y, keeps) })
}

func (t *timedBackend) ConcatForward(n, hw int, cs []int, xs []backend.Tensor, y backend.Tensor) error {
	return t.time("concat fwd", 0, 0, func() error { return t.be.ConcatForward(n, hw, cs, xs, y) })
}

func (t *timedBackend) ConcatBackward(n, hw int, cs []int, dy backend.Tensor, dxs []backend.Tensor) error {
	return t.time("concat bwd", 0, 0, func() error { return t.be.ConcatBackward(n, hw, cs, dy, dxs) })
}

func (t *timedBackend) AugmentBatch(p backend.AugmentParams, n, c, h, w int, src, rows, dst backend.Tensor) error {
	return t.time(fmt.Sprintf("augment N=%d,C=%d,H=%d,W=%d", n, c, h, w), 0, 0,
		func() error { return t.be.AugmentBatch(p, n, c, h, w, src, rows, dst) })
}

func (t *timedBackend) GatherBatch(p backend.AugmentParams, n, c, h, w int, lut, src, labels, rows, dst, dlabels backend.Tensor) error {
	return t.time(fmt.Sprintf("gather batch N=%d,C=%d,H=%d,W=%d", n, c, h, w), 0, 0,
		func() error { return t.be.GatherBatch(p, n, c, h, w, lut, src, labels, rows, dst, dlabels) })
}

func (t *timedBackend) GatherImages(p backend.AugmentParams, n, c, h, w int, lut, src, rows, dst backend.Tensor) error {
	return t.time(fmt.Sprintf("gather images N=%d,C=%d,H=%d,W=%d", n, c, h, w), 0, 0,
		func() error { return t.be.GatherImages(p, n, c, h, w, lut, src, rows, dst) })
}

func (t *timedBackend) DenseForward(n, in, out int, x, w, b, y backend.Tensor) error {
	return t.time(fmt.Sprintf("dense fwd N=%d,In=%d,Out=%d", n, in, out), 2*float64(n)*float64(in)*float64(out), 1,
		func() error { return t.be.DenseForward(n, in, out, x, w, b, y) })
}

func (t *timedBackend) DenseBackward(n, in, out int, x, w, dy, dx, dw, db backend.Tensor) error {
	products := 1 // dw = dyᵀ·x; and dx = dy·w when asked
	if dx != nil {
		products = 2
	}
	// One kernel on the GPU backend (dense_bwd_v2) does both products and
	// the bias's column sum.
	return t.time(fmt.Sprintf("dense bwd N=%d,In=%d,Out=%d", n, in, out), float64(products)*2*float64(n)*float64(in)*float64(out), 1,
		func() error { return t.be.DenseBackward(n, in, out, x, w, dy, dx, dw, db) })
}

func (t *timedBackend) SoftmaxCrossEntropy(n, classes int, logits, labels, loss, dlogits backend.Tensor) error {
	return t.time(fmt.Sprintf("softmax-ce N=%d,classes=%d", n, classes), 0, 0,
		func() error { return t.be.SoftmaxCrossEntropy(n, classes, logits, labels, loss, dlogits) })
}

func (t *timedBackend) MSE(n, dim int, y, tt, loss, dy backend.Tensor) error {
	return t.time(fmt.Sprintf("mse N=%d,dim=%d", n, dim), 0, 0, func() error { return t.be.MSE(n, dim, y, tt, loss, dy) })
}

func (t *timedBackend) SoftmaxCrossEntropyMetrics(n, classes int, logits, labels, loss, dlogits, lossSum, correct backend.Tensor) error {
	return t.time(fmt.Sprintf("softmax-ce+metrics N=%d,classes=%d", n, classes), 0, 0,
		func() error {
			return t.be.SoftmaxCrossEntropyMetrics(n, classes, logits, labels, loss, dlogits, lossSum, correct)
		})
}

func (t *timedBackend) CountCorrect(n, classes int, logits, labels, acc backend.Tensor) error {
	return t.time(fmt.Sprintf("count correct N=%d,classes=%d", n, classes), 0, 0,
		func() error { return t.be.CountCorrect(n, classes, logits, labels, acc) })
}

func (t *timedBackend) Accumulate(dst, src backend.Tensor) error {
	return t.time(fmt.Sprintf("accumulate n=%d", dst.Len()), 0, 0, func() error { return t.be.Accumulate(dst, src) })
}

func (t *timedBackend) SGDStep(p, grad, vel backend.Tensor, lr, momentum, weightDecay float32) error {
	return t.time(fmt.Sprintf("sgd n=%d", p.Len()), 0, 0, func() error { return t.be.SGDStep(p, grad, vel, lr, momentum, weightDecay) })
}

func (t *timedBackend) SGDNesterovStep(p, grad, vel backend.Tensor, lr, momentum, weightDecay float32) error {
	return t.time(fmt.Sprintf("sgd nesterov n=%d", p.Len()), 0, 0, func() error {
		return t.be.SGDNesterovStep(p, grad, vel, lr, momentum, weightDecay)
	})
}

func (t *timedBackend) AdamStep(p, grad, m, v backend.Tensor, lr, beta1, beta2, eps, weightDecay float32, step int, decoupled bool) error {
	return t.time(fmt.Sprintf("adam n=%d", p.Len()), 0, 0, func() error {
		return t.be.AdamStep(p, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, decoupled)
	})
}

func (t *timedBackend) UpdateParams(ps []backend.ParamState, u backend.Update) error {
	n := 0
	for _, p := range ps {
		if p.Value != nil {
			n += p.Value.Len()
		}
	}
	return t.time(fmt.Sprintf("update %v tensors=%d,n=%d", u.Rule, len(ps), n), 0, 0, func() error { return t.be.UpdateParams(ps, u) })
}

func (t *timedBackend) FirstNonFinite(ts []backend.Tensor, out backend.Tensor) error {
	return t.time(fmt.Sprintf("finite check tensors=%d", len(ts)), 0, 0, func() error { return t.be.FirstNonFinite(ts, out) })
}

func (t *timedBackend) Gather(rowLen int, src, idx, dst backend.Tensor) error {
	return t.time(fmt.Sprintf("gather rows=%d,cols=%d", idx.Len(), rowLen), 0, 0, func() error { return t.be.Gather(rowLen, src, idx, dst) })
}

// median of xs (sorted in place); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// gemmKernel reports whether kernel does the GEMM-like work of a conv or
// dense operation (not a bias or column reduction), so that bytes per
// FLOP are meaningful for it.
func gemmKernel(name string) bool {
	return (strings.HasPrefix(name, "conv") || strings.HasPrefix(name, "dense")) &&
		!strings.Contains(name, "bias") && !strings.Contains(name, "reduce")
}

// instructionMix names the three largest instruction classes of the
// simulator's counters (gpu.SimStats.Instructions) with their shares of
// total, e.g. "fp32 41% int 30% mem.shared 12%".
func instructionMix(classes map[string]int64, total int64) string {
	if total <= 0 {
		return "-"
	}
	names := make([]string, 0, len(classes))
	for c, n := range classes {
		if n > 0 {
			names = append(names, c)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if classes[a] != classes[b] {
			return cmp.Compare(classes[b], classes[a])
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, 3)
	for _, c := range names[:min(3, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", c, 100*float64(classes[c])/float64(total)))
	}
	return strings.Join(parts, " ")
}

// report prints the table of operations (and kernels, on the simulator)
// and the step time.
func (t *timedBackend) report(w io.Writer, o *benchOptions, stepTimes []time.Duration) error {
	sim := t.dev != nil && t.dev.IsSim()
	steps := float64(o.steps)
	fmt.Fprintln(w)
	// Text columns are padded here to their width, left-aligned; the
	// tabwriter right-aligns the numbers.
	opW, kW := len("operation"), len("kernel")
	for _, label := range t.order {
		opW = max(opW, len(label))
		for name := range t.ops[label].kernels {
			kW = max(kW, len(name))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if sim {
		fmt.Fprintf(tw, "%-*s\t%-*s\tlaunches/step\tsim ms/step\tthread instr\tglobal MB\tbytes/FLOP\tsectors/request\tbank conflicts\t  %s\n", opW, "operation", kW, "kernel", "instruction mix")
	} else {
		fmt.Fprintf(tw, "%-*s\tcalls/step\tms/step\tGFLOP/s\t%% of step\t\n", opW, "operation")
	}
	var total float64
	for _, label := range t.order {
		total += median(slices.Clone(t.ops[label].times))
	}
	for _, label := range t.order {
		op := t.ops[label]
		if !sim {
			ms := median(op.times)
			gflops := "-"
			if op.flops > 0 {
				gflops = fmt.Sprintf("%.1f", op.flops*float64(op.calls)/steps/(ms*1e-3)/1e9)
			}
			fmt.Fprintf(tw, "%-*s\t%.3g\t%.3f\t%s\t%.1f\t\n", opW, label, float64(op.calls)/steps, ms, gflops, 100*ms/total)
			continue
		}
		names := make([]string, 0, len(op.kernels))
		for name := range op.kernels {
			names = append(names, name)
		}
		slices.Sort(names)
		for i, name := range names {
			k := op.kernels[name]
			l := label
			if i > 0 {
				l = ""
			}
			bpf := "-"
			if op.flops > 0 && gemmKernel(name) {
				bpf = fmt.Sprintf("%.3g", float64(k.GlobalLoadBytes+k.GlobalStoreBytes)/(op.flops/float64(op.gemms)*float64(k.Launches)))
			}
			spr := "-"
			if k.GlobalRequests > 0 {
				spr = fmt.Sprintf("%.2f", float64(k.GlobalSectors)/float64(k.GlobalRequests))
			}
			fmt.Fprintf(tw, "%-*s\t%-*s\t%.3g\t%.1f\t%d\t%.3f\t%s\t%s\t%d\t  %s\n", opW, l, kW, name, float64(k.Launches)/steps,
				float64(k.SimTime.Nanoseconds())/1e6/steps, k.ThreadInstructions/int64(o.steps),
				float64(k.GlobalLoadBytes+k.GlobalStoreBytes)/1e6/steps, bpf, spr, k.SharedBankConflicts/int64(o.steps),
				instructionMix(k.Instructions, k.ThreadInstructions))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	st := make([]float64, len(stepTimes))
	for i, d := range stepTimes {
		st[i] = float64(d.Nanoseconds()) / 1e6
	}
	ms := median(st)
	fmt.Fprintf(w, "\nstep     %.3f ms (median of %d; operations %.3f ms), %.0f images/s\n", ms, len(st), total, float64(o.batch)/(ms*1e-3))
	if sim {
		fmt.Fprintf(w, "note     on the simulator the times are the simulator's, not a GPU's; counters per step: bytes/FLOP over the kernel's global loads and stores, sectors/request 4 for a coalesced float32 warp access, bank conflicts the extra shared-memory wavefronts\n")
	}
	return nil
}
