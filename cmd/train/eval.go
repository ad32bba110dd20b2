package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"

	"github.com/convtrain/convtrain/host/ckpt"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// evalOptions are the flags of train eval and train predict.
type evalOptions struct {
	load  string
	data  string
	batch int
	json  bool // predict: JSON lines
	deviceOptions
}

// parseEval parses the flags of the subcommand name; predict takes file
// arguments, eval none.
func parseEval(name string, args []string, stderr io.Writer) (*evalOptions, []string, error) {
	o := &evalOptions{}
	fs := flag.NewFlagSet("train "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		if name == "eval" {
			fmt.Fprintf(stderr, "usage: train eval -load CKPT [flags]\n\nEvaluates a checkpoint on the test set of MNIST or -data DIR: loss, accuracy, confusion matrix.\n\nFlags:\n")
		} else {
			fmt.Fprintf(stderr, "usage: train predict -load CKPT [flags] FILE...\n\nClassifies the images of IDX or PNG files with a checkpoint.\n\nFlags:\n")
		}
		fs.PrintDefaults()
	}
	fs.StringVar(&o.load, "load", "", "the checkpoint `FILE` (from train -save)")
	if name == "eval" {
		fs.StringVar(&o.data, "data", "", "data set `DIR` (IDX, CIFAR-10/100, image folder) whose test set to evaluate (default: the checkpoint's data, else MNIST)")
	} else {
		fs.BoolVar(&o.json, "json", false, "print one JSON object per image (image, class, probabilities or outputs) instead of the table")
	}
	fs.IntVar(&o.batch, "batch", 256, "images per forward pass, 1 to 4096")
	o.deviceOptions.register(fs, "cpu")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, usageError{err, true}
	}
	switch {
	case o.load == "":
		return nil, nil, usagef("%s needs -load FILE: the checkpoint (from train -save) to %s", name, map[string]string{"eval": "evaluate", "predict": "predict with"}[name])
	case o.batch < 1 || o.batch > 4096:
		return nil, nil, usagef("-batch %d: want 1 to 4096", o.batch)
	case name == "eval" && fs.NArg() > 0:
		return nil, nil, usagef("unexpected arguments %q", fs.Args())
	case name == "predict" && fs.NArg() == 0:
		return nil, nil, usagef("predict needs image files (PNG or IDX) after the flags")
	}
	if err := o.deviceOptions.check(); err != nil {
		return nil, nil, err
	}
	return o, fs.Args(), nil
}

// loaded is a checkpoint's model on a backend.
type loaded struct {
	ck    *ckpt.Checkpoint
	be    *deviceBackend
	model *nn.Model
	// onBatch, when set, is called after each batch of logits with the
	// images done and their total (the progress line on a terminal).
	onBatch func(done, total int)
}

func (o *evalOptions) open() (*loaded, error) {
	ck, err := loadCheckpoint("-load", o.load)
	if err != nil {
		return nil, err
	}
	be, err := newBackend(o.deviceOptions)
	if err != nil {
		return nil, err
	}
	m, err := ck.NewModel(be.Backend)
	if err != nil {
		return nil, errors.Join(err, be.Close())
	}
	return &loaded{ck: ck, be: be, model: m}, nil
}

func (l *loaded) Close() error { return errors.Join(l.model.Close(), l.be.Close()) }

// logits runs the model over every image of d, standardised with the
// checkpoint's norm, in batches of at most batch images (fewer for a
// large model), and returns the outputs (d.N, classes). It stops between
// batches when ctx is done.
func (l *loaded) logits(ctx context.Context, d *data.Dataset, batch int) ([]float32, error) {
	m, be := l.model, l.be
	set, err := m.UploadChannels(d, l.ck.Norm)
	if err != nil {
		return nil, err
	}
	defer set.Free(be)
	k := m.Classes()
	// Batches of at most 2²⁷ activations (512 MB with their gradients).
	acts := 0
	for _, info := range m.Layers() {
		acts += info.Out.Len()
	}
	batch = max(1, min(batch, (1<<27)/max(acts, 1)))
	out := make([]float32, d.N*k)
	rows := make([]int32, d.N)
	for i := range rows {
		rows[i] = int32(i)
	}
	var b *nn.Batch
	defer func() {
		if b != nil {
			b.Free(be)
		}
	}()
	for i := 0; i < d.N; {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w after %d of %d images", errInterrupted, i, d.N)
		}
		n := min(batch, d.N-i)
		if b == nil || b.N != n {
			if b != nil {
				if err := b.Free(be); err != nil {
					return nil, err
				}
			}
			if b, err = m.NewBatch(n); err != nil {
				return nil, err
			}
			b.Eval = true // running statistics; dropout passes through
		}
		if err := m.Load(b, set, rows[i:i+n]); err != nil {
			return nil, err
		}
		if err := m.Forward(b); err != nil {
			return nil, err
		}
		if err := be.Download(out[i*k:(i+n)*k], b.Output()); err != nil {
			return nil, err
		}
		i += n
		if l.onBatch != nil {
			l.onBatch(i, d.N)
		}
	}
	return out, nil
}

// evalProgress returns an onBatch that shows "evaluating 2560/10000
// images" on the terminal w, redrawn in place and erased after the last.
func evalProgress(w io.Writer) func(done, total int) {
	return func(done, total int) {
		line := fmt.Sprintf("evaluating %d/%d images", done, total)
		if done >= total {
			fmt.Fprintf(w, "\r%s\r", strings.Repeat(" ", len(line)))
			return
		}
		fmt.Fprintf(w, "\r%s", line)
	}
}

// describe is one line about the checkpoint.
func (l *loaded) describe(path string) string {
	c := l.ck
	return fmt.Sprintf("model    %s: %s on %d×%d×%d, %d classes, %s; %s and %s done (step %d in all)",
		path, nn.FormatSpec(c.Spec.Layers), c.Spec.C, c.Spec.H, c.Spec.W, c.Spec.Classes(), c.Spec.Loss,
		plural(c.State.Epoch, "epoch"), plural(c.State.StepEpoch, "step"), c.State.Step)
}

// softmax writes the softmax of x into p, in float64.
func softmax(x []float32, p []float64) {
	hi := math.Inf(-1)
	for _, v := range x {
		hi = math.Max(hi, float64(v))
	}
	var sum float64
	for i, v := range x {
		p[i] = math.Exp(float64(v) - hi)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
}

// argmax is the index of the first largest element of x.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// runEval is train eval: the checkpoint's test loss (as in training: mean
// softmax cross-entropy or MSE over the images), accuracy and confusion
// matrix on the test set.
func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, _, err := parseEval("eval", args, stderr)
	if err != nil {
		return err
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(o.threads))
	l, err := o.open()
	if err != nil {
		return err
	}
	defer l.Close()
	// The data: -data, else the directory the checkpoint trained on
	// (with its -test-limit), else MNIST.
	source, testLimit := o.data, 0
	if rec := l.ck.Data; source == "" && rec != nil {
		testLimit = rec.TestLimit
		if rec.Source != mnistSource {
			source = rec.Source
		}
	}
	if source == "" {
		if source, err = data.LocateMNIST(); err != nil {
			return err
		}
	}
	var opts data.LoadOptions
	if rec := l.ck.Data; rec != nil {
		opts.Labels, opts.Size = rec.Labels, rec.Size // as the checkpoint's data was read
	}
	if isTerminal(stdout) {
		opts.Progress = loadProgress(stdout, columns(stdout))
	}
	_, test, _, err := data.Load(source, opts)
	if err != nil {
		return err
	}
	if test == nil {
		return fmt.Errorf("%s: the image folder has no test/ sub-folder to evaluate on", source)
	}
	test = test.Limit(testLimit)
	spec := l.ck.Spec
	k := spec.Classes()
	if test.C != spec.C || test.H != spec.H || test.W != spec.W || test.Classes > k {
		return fmt.Errorf("%s: the test set has %d×%d×%d images in %d classes, the model takes %d×%d×%d in %d",
			source, test.C, test.H, test.W, test.Classes, spec.C, spec.H, spec.W, k)
	}
	if isTerminal(stdout) {
		l.onBatch = evalProgress(stdout)
	}
	logits, err := l.logits(ctx, test, o.batch)
	if err != nil {
		return err
	}
	bad, first, last := 0, -1, -1
	for i, v := range logits {
		if img := i / k; (math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)) && img != last {
			bad, last = bad+1, img
			if first < 0 {
				first = img
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%s: the model's outputs are not finite on %d of %d test images (the first is image %d): its weights overflow; no loss or accuracy", o.load, bad, test.N, first)
	}
	confusion := make([][]int, k)
	for i := range confusion {
		confusion[i] = make([]int, k)
	}
	var loss float64
	correct := 0
	p := make([]float64, k)
	for i := range test.N {
		row, label := logits[i*k:(i+1)*k], int(test.Labels[i])
		pred := argmax(row)
		confusion[label][pred]++
		if pred == label {
			correct++
		}
		if spec.Loss == nn.MSELoss {
			for j, v := range row {
				t := 0.0
				if j == label {
					t = 1
				}
				loss += 0.5 * (t - float64(v)) * (t - float64(v))
			}
		} else {
			softmax(row, p)
			loss -= math.Log(p[label])
		}
	}
	fmt.Fprintf(stdout, "backend  %s\n", l.be.Name())
	fmt.Fprintln(stdout, l.describe(o.load))
	fmt.Fprintf(stdout, "data     %s: %d test images\n", source, test.N)
	fmt.Fprintf(stdout, "test     loss %.4f  accuracy %.2f%% (%d of %d)\n", loss/float64(test.N), 100*float64(correct)/float64(test.N), correct, test.N)
	writeConfusion(stdout, confusion)
	return nil
}

// writeConfusion prints the confusion matrix, rows the true class and
// columns the predicted one, with each class's recall.
func writeConfusion(w io.Writer, c [][]int) {
	width := 5
	for _, row := range c {
		for _, v := range row {
			width = max(width, len(fmt.Sprint(v))+1)
		}
	}
	fmt.Fprintf(w, "confusion (rows: true class, columns: predicted class)\n%5s", "")
	for j := range c {
		fmt.Fprintf(w, "%*d", width, j)
	}
	fmt.Fprintf(w, "  %7s\n", "recall")
	for i, row := range c {
		fmt.Fprintf(w, "%5d", i)
		total := 0
		for _, v := range row {
			fmt.Fprintf(w, "%*d", width, v)
			total += v
		}
		if total > 0 {
			fmt.Fprintf(w, "  %6.2f%%\n", 100*float64(row[i])/float64(total))
		} else {
			fmt.Fprintf(w, "  %7s\n", "-")
		}
	}
}
