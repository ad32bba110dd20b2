package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/cpubackend"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// compareOptions are the flags of train compare.
type compareOptions struct {
	steps, batch, limit int
	lr, momentum, wd    float64
	seed                uint64
	data                string
	tol                 float64
	deviceOptions
	arch ckptOptions // -model only
	// perturb is added to the first weight of the device's model before
	// the first step (tests: a difference the comparison must catch).
	perturb float32
}

// defaultCompareTol is the default of compare's -tol; see the package
// documentation for the reasoning.
const defaultCompareTol = 1e-4

func parseCompare(args []string, stderr io.Writer) (*compareOptions, error) {
	o := &compareOptions{}
	fs := flag.NewFlagSet("train compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: train compare [flags]\n\nTrains the same model from the same seed on the same batches on the CPU and on -device, and compares; see `go doc ./cmd/train`.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.IntVar(&o.steps, "steps", 20, "SGD steps on each backend")
	fs.IntVar(&o.batch, "batch", 16, "images per step (1 to 4096)")
	fs.IntVar(&o.limit, "limit", 1024, "use only the first N training images (0: all)")
	fs.Float64Var(&o.lr, "lr", 0.05, "learning rate (constant)")
	fs.Float64Var(&o.momentum, "momentum", 0.9, "SGD momentum in [0, 1)")
	fs.Float64Var(&o.wd, "weight-decay", 0, "L2 weight decay")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the initialisation and the batches")
	fs.StringVar(&o.data, "data", "", "data set `DIR` (IDX, CIFAR-10/100, image folder; default: MNIST from the Go module cache)")
	fs.StringVar(&o.arch.model, "model", "", "model `SPEC`, e.g. conv8x5x5,relu,maxpool2,dense10, or @FILE to read it from a file (default: "+nn.DefaultSpecText+")")
	fs.Float64Var(&o.tol, "tol", defaultCompareTol, "largest relative difference accepted (required with -precision tf32 and bf16)")
	o.deviceOptions.register(fs, "gpu")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err, true}
	}
	switch {
	case fs.NArg() > 0:
		return nil, usagef("compare: unexpected arguments %q", fs.Args())
	case o.steps < 1 || o.steps > 1_000_000:
		return nil, usagef("-steps %d: want 1 to 1000000", o.steps)
	case o.batch < 1 || o.batch > 4096:
		return nil, usagef("-batch %d: want 1 to 4096", o.batch)
	case o.limit < 0:
		return nil, usagef("-limit %d: want ≥ 0", o.limit)
	case !(o.lr > 0) || o.lr > 1e6:
		return nil, usagef("-lr %g: want > 0", o.lr)
	case !(o.momentum >= 0 && o.momentum < 1):
		return nil, usagef("-momentum %g: want in [0, 1)", o.momentum)
	case !(o.wd >= 0) || o.wd > 1e6:
		return nil, usagef("-weight-decay %g: want ≥ 0", o.wd)
	case !(o.tol >= 0) || math.IsInf(o.tol, 0):
		return nil, usagef("-tol %g: want ≥ 0", o.tol)
	}
	if err := o.arch.check(fs); err != nil {
		return nil, err
	}
	if err := o.deviceOptions.check(); err != nil {
		return nil, err
	}
	if o.device == "cpu" {
		return nil, usagef("-device cpu: compare runs the CPU against -device gpu or sim")
	}
	tolSet := false
	fs.Visit(func(f *flag.Flag) { tolSet = tolSet || f.Name == "tol" })
	if o.precision != "fp32" && !tolSet {
		return nil, usagef("-precision %s needs -tol: an operand a last bit away from a %s rounding boundary rounds the other way, and such flips grow step by step, so no default fits every -steps (see `go doc ./cmd/train`; e.g. -steps 2 -tol 1e-3)", o.precision, o.precision)
	}
	return o, nil
}

// loadTrainingSet reads the training set of dir (MNIST when dir is "") and
// keeps its first limit images (all when limit is 0); source is where it
// came from.
func loadTrainingSet(dir string, limit int) (set *data.Dataset, source string, err error) {
	source = dir
	if dir == "" {
		if source, err = data.LocateMNIST(); err != nil {
			return nil, "", err
		}
	}
	set, _, _, err = data.Load(source, data.LoadOptions{}) // any format train reads
	if err != nil {
		return nil, "", err
	}
	if dir == "" {
		set.Name = "mnist/train"
	}
	return set.Limit(limit), source, nil
}

// compareRun is what one backend did in compare.
type compareRun struct {
	name   string
	losses []float32
	names  []string // the parameters', in Params order
	shapes []string // "8×1×5×5"
	params [][]float32
	perSec float64 // steps per second, the first step excluded
}

// runCompare is train compare.
func runCompare(args []string, stdout, stderr io.Writer) error {
	o, err := parseCompare(args, stderr)
	if err != nil {
		return err
	}
	return compare(o, stdout)
}

// compare trains on the CPU and on o.device and reports to stdout.
func compare(o *compareOptions, stdout io.Writer) error {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(o.threads))
	set, source, err := loadTrainingSet(o.data, o.limit)
	if err != nil {
		return err
	}
	if set.N < o.batch {
		return fmt.Errorf("%d training images, fewer than a batch of %d", set.N, o.batch)
	}
	spec, err := o.arch.modelSpec(set)
	if err != nil {
		return err
	}
	summary, err := spec.Summary()
	if err != nil {
		return err
	}
	dev, err := newBackend(o.deviceOptions)
	if err != nil {
		return err
	}
	defer dev.Close()
	cpu, err := referenceBackend(o, dev)
	if err != nil {
		return err
	}
	defer cpu.Close()

	fmt.Fprintf(stdout, "backends %s and %s\n", cpu.Name(), dev.Name())
	fmt.Fprintf(stdout, "device   %s\n", dev.describe())
	fmt.Fprintf(stdout, "data     %s: %d training images of %d×%d, %d classes\n", source, set.N, set.H, set.W, set.Classes)
	fmt.Fprintf(stdout, "compare  %d steps of %d images, SGD lr %g momentum %g weight decay %g, seed %d, tolerance %g\n",
		o.steps, o.batch, o.lr, o.momentum, o.wd, o.seed, o.tol)
	fmt.Fprint(stdout, summary)

	rows := compareRows(set.N, o.batch, o.steps, o.seed)
	want, err := compareTrain(cpu, "cpu", spec, set, rows, o, 0)
	if err != nil {
		return err
	}
	got, err := compareTrain(dev, o.device, spec, set, rows, o, o.perturb)
	if err != nil {
		return err
	}
	return compareReport(stdout, got, want, spec, o)
}

// referenceBackend is compare's CPU backend: float32 for -precision
// fp32; for tf32 and bf16 one that rounds each convolution pass's operands
// as dev's kernel for that pass and shape rounds them (the device's choice,
// gpu.Device.ConvAlgoFor, depends on the shape, the precision and the
// compute capability only), so that the two differ by float32 summation
// order alone, as with fp32.
func referenceBackend(o *compareOptions, dev *deviceBackend) (*deviceBackend, error) {
	if o.precision == "fp32" || dev.dev == nil {
		return newBackend(deviceOptions{device: "cpu", threads: o.threads, precision: "fp32"})
	}
	passes := [...]gpu.ConvPass{
		cpubackend.ConvForward:        gpu.ConvFwd,
		cpubackend.ConvBackwardData:   gpu.ConvBwdData,
		cpubackend.ConvBackwardFilter: gpu.ConvBwdFilter,
	}
	be, err := cpubackend.NewCPUBackendRounding(o.threads, "convolutions rounded as the device's "+o.precision+" kernels round them",
		func(p cpubackend.ConvPass, g geom.ConvGeom) cpubackend.Rounding {
			switch dev.dev.ConvAlgoFor(passes[p], g) {
			case gpu.ConvIGemmTF32:
				return cpubackend.RoundTF32
			case gpu.ConvIGemmBF16:
				return cpubackend.RoundBF16
			}
			return cpubackend.RoundNone
		})
	if err != nil {
		return nil, err
	}
	return &deviceBackend{Backend: be}, nil
}

// compareRows are the batches of compare, o.steps·o.batch row indices:
// successive Fisher–Yates permutations of the n images drawn from a PCG
// stream of seed, each cut into whole batches (the last n mod batch rows
// of each permutation are left out, as in training).
func compareRows(n, batch, steps int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 0x94d049bb133111eb))
	perm := make([]int32, n)
	var rows []int32
	for len(rows) < steps*batch {
		for i := range perm {
			perm[i] = int32(i)
		}
		rng.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		rows = append(rows, perm[:n/batch*batch]...)
	}
	return rows[:steps*batch]
}

// compareTrain trains a fresh model of spec on be over the batches of
// rows, reading the loss after each step, and returns the losses, the
// final parameters and the speed. perturb is added to the first weight
// before training.
func compareTrain(be *deviceBackend, name string, spec nn.Spec, set *data.Dataset, rows []int32, o *compareOptions, perturb float32) (r compareRun, err error) {
	r.name = name
	fail := func(err error) (compareRun, error) { return r, fmt.Errorf("%s: %w", name, err) }
	m, err := nn.NewModel(be.Backend, spec, o.seed)
	if err != nil {
		return fail(err)
	}
	defer func() { err = errors.Join(err, m.Close()) }()
	if perturb != 0 {
		p := m.Params()[0]
		v := make([]float32, p.Value.Len())
		if err := be.Download(v, p.Value); err != nil {
			return fail(err)
		}
		v[0] += perturb
		if err := be.Upload(p.Value, v); err != nil {
			return fail(err)
		}
	}
	ds, err := m.UploadChannels(set, set.ChannelNorm()) // as the trainer standardises
	if err != nil {
		return fail(err)
	}
	defer func() { err = errors.Join(err, ds.Free(be)) }()
	b, err := m.NewBatch(o.batch)
	if err != nil {
		return fail(err)
	}
	defer func() { err = errors.Join(err, b.Free(be)) }()
	loss := make([]float32, 1)
	var t0 time.Time
	for s := range o.steps {
		if s == min(1, o.steps-1) {
			t0 = time.Now()
		}
		if err := m.Load(b, ds, rows[s*o.batch:(s+1)*o.batch]); err != nil {
			return fail(err)
		}
		if err := m.TrainStep(b, float32(o.lr), float32(o.momentum), float32(o.wd)); err != nil {
			return fail(fmt.Errorf("step %d: %w", s+1, err))
		}
		if err := be.Download(loss, b.Loss); err != nil {
			return fail(fmt.Errorf("step %d: %w", s+1, err))
		}
		r.losses = append(r.losses, loss[0])
	}
	r.perSec = float64(max(o.steps-1, 1)) / time.Since(t0).Seconds()
	if r.params, err = m.ParamValues(); err != nil {
		return fail(err)
	}
	for _, p := range m.Params() {
		r.names = append(r.names, p.Name)
		r.shapes = append(r.shapes, shapeText(p.Shape))
	}
	return r, nil
}

// lossDiff is |got − want| / max(|want|, 1): relative for losses above 1,
// absolute below, where a cross-entropy is the small difference of two
// log-sum-exp terms of the logits' size and float32 bounds its absolute
// error, not its relative one. NaN when either is NaN.
func lossDiff(got, want float64) float64 {
	if math.IsNaN(got) || math.IsNaN(want) {
		return math.NaN()
	}
	return math.Abs(got-want) / math.Max(math.Abs(want), 1)
}

// tensorDiff returns max_i |got_i − want_i|, max_i |want_i| and their
// ratio, the tensor's relative difference (the absolute difference when
// want is all zeros); NaN when any element is NaN.
func tensorDiff(got, want []float32) (maxAbs, maxWant, rel float64) {
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsNaN(w) {
			return math.NaN(), math.NaN(), math.NaN()
		}
		maxAbs = math.Max(maxAbs, math.Abs(g-w))
		maxWant = math.Max(maxWant, math.Abs(w))
	}
	rel = maxAbs
	if maxWant != 0 {
		rel /= maxWant
	}
	return maxAbs, maxWant, rel
}

// compareReport prints the losses step by step, the parameter differences
// and the speeds, and returns an error when a difference exceeds o.tol.
func compareReport(w io.Writer, got, want compareRun, spec nn.Spec, o *compareOptions) error {
	dn := got.name
	fmt.Fprintf(w, "\n%5s  %-14s %-14s %s\n", "step", "loss cpu", "loss "+dn, "diff")
	worst, worstWhat := 0.0, ""
	note := func(rel float64, what string) {
		if !math.IsNaN(worst) && !(rel <= worst) { // the first NaN wins
			worst, worstWhat = rel, what
		}
	}
	for s := range want.losses {
		rel := lossDiff(float64(got.losses[s]), float64(want.losses[s]))
		note(rel, fmt.Sprintf("the loss of step %d", s+1))
		fmt.Fprintf(w, "%5d  %-14.8g %-14.8g %.3g\n", s+1, want.losses[s], got.losses[s], rel)
	}
	fmt.Fprintf(w, "\n%-16s %-14s %-13s %-13s %s\n", "parameter", "shape", "max |cpu|", "max |"+dn+"−cpu|", "rel diff")
	for i, name := range want.names {
		maxAbs, maxWant, rel := tensorDiff(got.params[i], want.params[i])
		note(rel, name)
		fmt.Fprintf(w, "%-16s %-14s %-13.4g %-13.3g %.3g\n", name, want.shapes[i], maxWant, maxAbs, rel)
	}
	fmt.Fprintf(w, "\nspeed    cpu %.3g steps/s, %s %.3g steps/s: %s is %.3g× the cpu (first step excluded, loss read after every step)\n",
		want.perSec, dn, got.perSec, dn, got.perSec/want.perSec)
	if math.IsNaN(worst) {
		fmt.Fprintf(w, "result   FAIL: %s is NaN\n", worstWhat)
		return fmt.Errorf("compare: %s is NaN on the cpu or on %s", worstWhat, dn)
	}
	if !(worst <= o.tol) {
		fmt.Fprintf(w, "result   FAIL: %s differs by %.3g relative, more than -tol %g\n", worstWhat, worst, o.tol)
		return fmt.Errorf("compare: %s on %s differs from the cpu by %.3g relative, more than -tol %g", worstWhat, dn, worst, o.tol)
	}
	fmt.Fprintf(w, "result   ok: the largest relative difference, %.3g (%s), is within -tol %g\n", worst, worstWhat, o.tol)
	return nil
}
