package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/convtrain/convtrain/host/ckpt"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
	"github.com/convtrain/convtrain/host/train"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	code := exitCode(err)
	var ue usageError
	switch {
	case code == 0:
		return
	case errors.As(err, &ue) && ue.shown:
		// The flag package has printed the error and the usage.
	default:
		fmt.Fprintln(os.Stderr, userMessage(err))
	}
	os.Exit(code)
}

// packagePrefixes are the prefixes that library packages put on their
// errors; userMessage drops them.
var packagePrefixes = []string{"host: ", "ckpt: ", "data: ", "nn: ", "backend: ", "cpuref: ", "gpu: "}

// userMessage is the line printed for run's error: "train: " and the
// message without the library packages' prefixes (which repeat when
// errors wrap errors: "host: load checkpoint x: host: safetensors: …"),
// and for a usage error a pointer to -h.
func userMessage(err error) string {
	msg := err.Error()
	for _, p := range packagePrefixes {
		msg = strings.ReplaceAll(msg, ": "+p, ": ")
		msg = strings.TrimPrefix(msg, p)
	}
	// The sentinel errors that classify a message end it with a phrase
	// the message has already said better ("…: invalid model spec").
	for _, s := range []error{nn.ErrSpec, ckpt.ErrCheckpoint, ckpt.ErrSafetensorsFormat, data.ErrIDX} {
		msg = strings.ReplaceAll(msg, ": "+s.Error()+"\n", "\n")
		msg = strings.TrimSuffix(msg, ": "+s.Error())
	}
	if exitCode(err) == 2 {
		var sc subcommandError
		if errors.As(err, &sc) {
			msg += fmt.Sprintf(" (train %s -h lists its flags)", sc.name)
		} else {
			msg += " (-h lists the flags)"
		}
	}
	return "train: " + msg
}

// exitCode is the exit status for run's error: 0 for none (or -h), 2 for
// a usage error, 1 otherwise.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errInterrupted):
		return 130
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// usageError marks a bad command line (exit status 2); shown says that
// the flag package has already printed it with the usage.
type usageError struct {
	error
	shown bool
}

func (e usageError) Unwrap() error { return e.error }

// subcommandError marks an error of the subcommand name, so that a usage
// error points to that subcommand's -h.
type subcommandError struct {
	name string
	err  error
}

func (e subcommandError) Error() string { return e.err.Error() }
func (e subcommandError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...), false} }

// subcommandList names the subcommands, for messages.
const subcommandList = "eval, predict, info, export, compare or bench"

// options are the parsed flags.
type options struct {
	epochs, batch    int
	lr, momentum, wd float64
	schedule         string
	stepEvery        int
	warmup           int
	gamma            float64
	seed             uint64
	data             string
	limit, testLimit int
	dataOptions      // datasource.go
	deviceOptions
	ckptOptions
	optimOptions       // optim.go
	reportOptions      // metrics.go
	distOptions        // dist.go
	progress      bool // draw a progress bar (stdout is a terminal)
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: train [flags]\n       train compare|bench|eval|predict|info|export [flags] (train SUBCOMMAND -h for each)\n\nTrains a convolutional network on MNIST or -data DIR; see `go doc ./cmd/train`.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.IntVar(&o.epochs, "epochs", 3, "epochs to train")
	fs.IntVar(&o.batch, "batch", 64, "images per SGD step (1 to 4096)")
	fs.Float64Var(&o.lr, "lr", 0.05, "learning rate (the resnet presets with SGD: 0.1)")
	fs.Float64Var(&o.momentum, "momentum", 0.9, "SGD momentum in [0, 1)")
	fs.Float64Var(&o.wd, "weight-decay", 0, "L2 weight decay (the resnet presets with SGD: 5e-4)")
	fs.StringVar(&o.schedule, "schedule", "cosine", "learning-rate schedule: constant, step or cosine")
	fs.IntVar(&o.stepEvery, "step-every", 1, "step schedule: epochs between decays")
	fs.Float64Var(&o.gamma, "gamma", 0.1, "step schedule: factor per decay")
	fs.IntVar(&o.warmup, "warmup", 0, "linear learning-rate warm-up over the first `N` steps (0: none)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the initialisation and the shuffling")
	fs.StringVar(&o.data, "data", "", "data set `DIR`: IDX files, CIFAR-10/100 binary batches or an image folder, detected (default: MNIST from the Go module cache)")
	fs.IntVar(&o.limit, "limit", 0, "use only the first `N` training images (0: all)")
	fs.IntVar(&o.testLimit, "test-limit", 0, "evaluate on the first `N` test images only (0: all)")
	o.dataOptions.register(fs)
	o.deviceOptions.register(fs, "cpu")
	o.ckptOptions.register(fs)
	o.optimOptions.register(fs)
	o.distOptions.register(fs)
	o.reportOptions.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err, true}
	}
	switch {
	case fs.NArg() > 0 && len(args) > 0 && args[0] == fs.Arg(0):
		return nil, usagef("unknown subcommand %q: want %s, or flags to train", fs.Arg(0), subcommandList)
	case fs.NArg() > 0:
		return nil, usagef("unexpected arguments %q after the flags: train takes no file arguments (subcommands %s come first)", fs.Args(), subcommandList)
	case o.epochs < 1:
		return nil, usagef("-epochs %d: want ≥ 1", o.epochs)
	case o.batch < 1 || o.batch > 4096:
		return nil, usagef("-batch %d: want 1 to 4096", o.batch)
	case !(o.lr > 0) || o.lr > 1e6:
		return nil, usagef("-lr %g: want > 0 and at most 1e6", o.lr)
	case !(o.momentum >= 0 && o.momentum < 1):
		return nil, usagef("-momentum %g: want in [0, 1)", o.momentum)
	case !(o.wd >= 0) || o.wd > 1e6:
		return nil, usagef("-weight-decay %g: want ≥ 0 and at most 1e6", o.wd)
	case !slices.Contains([]string{"constant", "step", "cosine"}, o.schedule):
		return nil, usagef("-schedule %q: want constant, step or cosine", o.schedule)
	case o.stepEvery < 1:
		return nil, usagef("-step-every %d: want ≥ 1", o.stepEvery)
	case !(o.gamma > 0 && o.gamma <= 1):
		return nil, usagef("-gamma %g: want in (0, 1]", o.gamma)
	case o.warmup < 0:
		return nil, usagef("-warmup %d: want ≥ 0", o.warmup)
	case o.limit < 0:
		return nil, usagef("-limit %d: want ≥ 0", o.limit)
	case o.testLimit < 0:
		return nil, usagef("-test-limit %d: want ≥ 0", o.testLimit)
	}
	if err := o.dataOptions.check(); err != nil {
		return nil, err
	}
	if err := o.deviceOptions.check(); err != nil {
		return nil, err
	}
	if err := o.ckptOptions.check(fs); err != nil {
		return nil, err
	}
	// A preset's recipe, for the flags not given: an SGD recipe, so not
	// with Adam; a resumed run takes its checkpoint's values instead.
	if r, ok := nn.PresetRecipes[strings.ToLower(strings.TrimSpace(o.model))]; ok && o.resume == "" && o.optName == "sgd" {
		if !o.set["lr"] {
			o.lr = r.LR
		}
		if !o.set["weight-decay"] {
			o.wd = r.WeightDecay
		}
	}
	if err := o.optimOptions.check(o.momentum); err != nil {
		return nil, err
	}
	if err := o.distOptions.check(); err != nil {
		return nil, err
	}
	return o, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// run is the whole command: it parses args, trains and writes the report
// to stdout and usage messages to stderr.
func run(args []string, stdout, stderr io.Writer) error {
	// SIGINT and SIGTERM cancel ctx; from then on a second signal has its
	// default effect (the process ends at once).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	return runContext(ctx, args, stdout, stderr)
}

// runContext is run with the context that an interruption cancels.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	subcommands := map[string]func() error{
		"compare": func() error { return runCompare(args[1:], stdout, stderr) },
		"bench":   func() error { return runBench(args[1:], stdout, stderr) },
		"eval":    func() error { return runEval(ctx, args[1:], stdout, stderr) },
		"predict": func() error { return runPredict(ctx, args[1:], stdout, stderr) },
		"info":    func() error { return runInfo(args[1:], stdout, stderr) },
		"export":  func() error { return runExport(args[1:], stdout, stderr) },
	}
	if len(args) > 0 && subcommands[args[0]] != nil {
		if err := subcommands[args[0]](); err != nil {
			return subcommandError{args[0], err}
		}
		return nil
	}
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	o.progress = isTerminal(stdout)
	if o.progress {
		o.loadProgress = loadProgress(stdout, columns(stdout))
	}
	return runTrain(ctx, o, stdout)
}

func runTrain(ctx context.Context, o *options, stdout io.Writer) error {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(o.threads))
	world, err := o.distOptions.world()
	if err != nil {
		return err
	}
	if world != nil {
		defer world.Close()
		if world.Rank() != 0 { // only rank 0 writes: checkpoints, metrics, plots, output
			o.noWrite, o.metricsPath, o.plotPath, o.progress = true, "", "", false
			stdout = io.Discard
		}
	}
	if err := o.loadResume(); err != nil {
		return err
	}
	if err := o.checkOutputs(); err != nil {
		return err
	}
	ds, err := o.loadData()
	if err != nil {
		return err
	}
	// -gpu auto, the default with -dist: the local rank's device; ranks
	// that reduce with NCCL may not share one.
	o.deviceOptions.dist = world != nil
	o.deviceOptions.exclusiveGPU = world != nil && world.Size() > 1 && o.nccl
	be, err := newBackend(o.deviceOptions)
	if err != nil {
		return err
	}
	defer be.Close()

	trainSet, valSet, testSet, source := ds.train, ds.val, ds.test, ds.dir
	if o.ck == nil && o.model == "" {
		if err := checkClasses(trainSet, testSet, source, o.limit); err != nil {
			return err
		}
	}
	if trainSet.N < o.batch {
		return fmt.Errorf("-batch %d: only %d training images (-limit %d); give -batch %d or less, or more images", o.batch, trainSet.N, o.limit, trainSet.N)
	}
	o.record = ds.record
	spec, err := o.modelSpec(trainSet)
	if err != nil {
		return err
	}
	summary, err := spec.Summary()
	if err != nil {
		return err
	}
	model, err := o.newModel(be.Backend, spec, o.seed)
	if err != nil {
		return err
	}
	defer model.Close()

	sched := train.Schedule{Kind: map[string]train.ScheduleKind{
		"constant": train.ConstantLR, "step": train.StepLR, "cosine": train.CosineLR}[o.schedule],
		Every: o.stepEvery, Gamma: o.gamma, Warmup: o.warmup}
	bar := &progressBar{w: stdout, enabled: o.progress, width: columns(stdout), batch: o.batch, test: testSet.N}
	bestEpoch := 0 // for the early-stopping line
	if o.ck != nil {
		bestEpoch = o.ck.State.BestEpoch
	}
	cfg := train.Config{
		Epochs: o.epochs, Batch: o.batch, LR: o.lr, Momentum: o.momentum, WeightDecay: o.wd,
		Schedule: sched, Seed: o.seed, Optimizer: o.optimizer(), Graph: o.graph,
		Augment: o.aug, Patience: o.patience, MinDelta: o.minDelta, TestEveryEpoch: o.testEveryEpoch,
		OnEpoch: func(m train.EpochMetrics) {
			bar.clear()
			speed := fmt.Sprintf("%.0f images/s", m.ImagesPerSec)
			if m.ReduceTime > 0 && m.TrainTime > 0 {
				speed += fmt.Sprintf(" (all-reduce %.1f%%)", 100*m.ReduceTime.Seconds()/m.TrainTime.Seconds())
			}
			if m.Images == 0 {
				speed = "no steps left" // resumed after the epoch's last step: evaluated only
			}
			evals := ""
			if m.Validated {
				evals += fmt.Sprintf("  val loss %.4f  val %.2f%%", m.ValLoss, 100*m.ValAcc)
			}
			if m.Tested {
				evals += fmt.Sprintf("  test %.2f%%", 100*m.TestAcc)
			}
			fmt.Fprintf(stdout, "epoch %d/%d  loss %.4f  train %.2f%%%s  %s  epoch %s  elapsed %s\n",
				m.Epoch, m.Epochs, m.Loss, 100*m.TrainAcc, evals, speed,
				(m.TrainTime + m.EvalTime).Round(100*time.Millisecond), m.Elapsed.Round(100*time.Millisecond))
			if m.Best {
				bestEpoch = m.Epoch
			}
			if m.Stop {
				fmt.Fprintf(stdout, "stopped  early after epoch %d: no better validation accuracy in the %s since epoch %d, the best (-patience)\n",
					m.Epoch, plural(m.Epoch-bestEpoch, "epoch"), bestEpoch)
			}
		},
	}
	// Every 10 steps: the progress bar on a terminal, and in every case the
	// divergence check (see the manual).
	cfg.ProgressEvery = 10
	if o.progress {
		cfg.OnProgress = bar.update
	}
	o.hook(&cfg)
	o.distOptions.configure(&cfg, world)
	if world != nil {
		dc, closeDC, err := newDeviceComm(o.distOptions, world, o.device, be.dev)
		if err != nil {
			return err
		}
		if dc != nil {
			cfg.DeviceComm = dc
			defer closeDC()
		}
	}
	o.record.Augment = ""
	if cfg.Augment != (data.Augment{}) {
		o.record.Augment = cfg.Augment.String()
	}
	dataName := "MNIST"
	if ds.record.Source != mnistSource {
		dataName = filepath.Base(ds.record.Source)
	}
	schedule := o.schedule
	if o.warmup > 0 {
		schedule += fmt.Sprintf(", %d warm-up steps", o.warmup)
	}
	title := fmt.Sprintf("%s, %s, batch %d", dataName, o.describe(o.lr, schedule, o.momentum, o.wd), o.batch)
	var history map[string]string
	if o.ck != nil {
		history = o.ck.Notes
	}
	if err := o.reportOptions.open(&cfg, o.resume != "", title, history); err != nil {
		return err
	}
	defer o.reportOptions.close() // on an early return; the error is reported below otherwise
	o.ckptOptions.notes = func() map[string]string { return map[string]string{curvesNote: o.curves.note()} }
	trainer, err := train.NewTrainer(model, trainSet, testSet, cfg)
	if err != nil {
		return err
	}
	defer trainer.Close()
	if valSet != nil {
		if err := trainer.SetValidation(valSet); err != nil {
			return err
		}
	}

	fmt.Fprintf(stdout, "backend  %s\n", be.Name())
	if d := be.describe(); d != "" {
		fmt.Fprintf(stdout, "device   %s\n", d)
	}
	shape := fmt.Sprintf("%d×%d", trainSet.H, trainSet.W)
	if trainSet.C > 1 {
		shape = fmt.Sprintf("%d×%d×%d", trainSet.C, trainSet.H, trainSet.W)
	}
	sets := fmt.Sprintf("%d training and %d test", trainSet.N, testSet.N)
	if valSet != nil {
		sets = fmt.Sprintf("%d training, %d validation and %d test", trainSet.N, valSet.N, testSet.N)
	}
	if ds.format != "" && ds.format != "idx" {
		source += " (" + ds.format + ")"
	}
	fmt.Fprintf(stdout, "data     %s: %s images of %s, %d classes\n", source, sets, shape, trainSet.Classes)
	if cfg.Augment != (data.Augment{}) {
		fmt.Fprintf(stdout, "augment  %s (drawn by seed, epoch and image)\n", cfg.Augment)
	}
	fmt.Fprintf(stdout, "train    %s of %s of %d images (%d left out per epoch), %s, seed %d\n",
		plural(o.epochs, "epoch"), plural(trainer.StepsPerEpoch(), "step"), o.batch, trainSet.N%o.batch, o.describe(o.lr, o.schedule, o.momentum, o.wd), o.seed)
	fmt.Fprint(stdout, summary)
	if err := o.attach(trainer, stdout); err != nil {
		return err
	}
	for _, p := range []string{o.save, o.saveBest} {
		if p == "" {
			continue
		}
		if n := removeStaleTemps(p); n > 0 {
			fmt.Fprintf(stdout, "note     removed %d temporary file(s) of an earlier save to %s that was killed before it finished\n", n, p)
		}
	}

	_, err = trainer.Run(ctx)
	bar.clear()
	rerr := o.reportOptions.close()
	if err != nil {
		return errors.Join(o.stopped(ctx, err, stdout), rerr)
	}
	if rerr != nil {
		return rerr
	}
	o.saved(stdout)
	return nil
}
