package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/ckpt"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
	"github.com/convtrain/convtrain/host/train"
)

// interruptedPath is where an interrupted run saves its checkpoint when
// neither -save nor -resume is given (or train-interrupted-2.safetensors,
// -3, …: the first free name).
const interruptedPath = "train-interrupted.safetensors"

// errInterrupted marks a run stopped by SIGINT or SIGTERM (exit status 130).
var errInterrupted = errors.New("interrupted")

// ckptOptions are the flags of checkpoints and of the model's architecture.
type ckptOptions struct {
	save      string // -save FILE
	saveEvery int    // -save-every N steps
	saveBest  string // -save-best FILE
	resume    string // -resume FILE
	model     string // -model SPEC or @FILE
	loss      string // -loss ce or mse

	layers  []nn.LayerSpec           // parsed from -model
	ck      *ckpt.Checkpoint         // loaded by -resume
	record  *ckpt.DataRecord         // the training data, saved in checkpoints
	prev    bool                     // the resumed file has been kept as its .prev
	notes   func() map[string]string // the notes saved in checkpoints (the curves)
	set     map[string]bool          // flags given on the command line
	given   map[string]string        // their values, as the flag package writes them
	tr      *train.Trainer           // the trainer that checkpoints save
	best    train.EpochMetrics       // the epoch last saved to -save-best in this run
	noWrite bool                     // saveTo writes nothing: a rank other than 0 of -dist
}

func (c *ckptOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&c.save, "save", "", "save checkpoints to `FILE` (safetensors) after each epoch, every -save-every steps and on Ctrl-C")
	fs.IntVar(&c.saveEvery, "save-every", 0, "with -save, also save every `N` steps (0: only after each epoch)")
	fs.StringVar(&c.saveBest, "save-best", "", "save a checkpoint to `FILE` after each epoch whose validation accuracy (with -val; else test accuracy) beats every earlier one")
	fs.StringVar(&c.resume, "resume", "", "resume training from the checkpoint `FILE`")
	fs.StringVar(&c.loss, "loss", "ce", "loss: ce (softmax cross-entropy) or mse (½ squared error against one-hot targets)")
	fs.StringVar(&c.model, "model", "", "model `SPEC`, e.g. conv8x5x5,relu,maxpool2,dense10, or @FILE to read it from a file (default: "+nn.DefaultSpecText+")")
}

// trainingFlags are the flags whose values a resumed run takes from its
// checkpoint; giving one with -resume is a usage error unless its value is
// the checkpoint's.
var trainingFlags = []string{"model", "loss", "batch", "lr", "momentum", "weight-decay", "schedule", "step-every", "gamma", "warmup", "seed",
	"optimizer", "nesterov", "beta1", "beta2", "eps", "augment", "patience", "min-delta", "test-every-epoch", "sync-bn"}

// check validates the flags after parsing, recording which were given.
func (c *ckptOptions) check(fs *flag.FlagSet) error {
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	switch {
	case c.saveEvery < 0:
		return usagef("-save-every %d: want ≥ 0", c.saveEvery)
	case c.loss != "" && c.loss != "ce" && c.loss != "mse": // "": compare and bench, which have no -loss
		return usagef("-loss %q: want ce (softmax cross-entropy) or mse (squared error)", c.loss)
	case c.saveEvery > 0 && c.save == "" && c.resume == "":
		return usagef("-save-every needs -save FILE (or -resume FILE, which it saves to)")
	case c.saveBest != "" && c.save != "" && filepath.Clean(c.saveBest) == filepath.Clean(c.save):
		return usagef("-save-best and -save name the same file %s", c.save)
	}
	if c.set["model"] && strings.TrimSpace(c.model) == "" {
		return usagef("-model %q: empty; give layers such as %s, or leave -model out for that default", c.model, nn.DefaultSpecText)
	}
	if c.model != "" {
		text := c.model
		if name, ok := strings.CutPrefix(c.model, "@"); ok {
			var err error
			if text, err = readSpecFile(name); err != nil {
				return usageError{err, false}
			}
		}
		var err error
		if c.layers, err = nn.ParseSpec(text); err != nil {
			return usagef("-model %s: %v", c.model, err)
		}
	}
	c.given = map[string]string{}
	fs.Visit(func(f *flag.Flag) { c.given[f.Name] = f.Value.String() })
	return nil
}

// recorded is the value that the training flag name had in the run that
// wrote ck, written as the flag package writes the flag's value, and
// whether the flag applies to that run (-beta1 does not to SGD).
func recorded(name string, ck *ckpt.Checkpoint) (string, bool) {
	cfg := ck.Config
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	adam := cfg.Optimizer.Kind != nn.SGD
	switch name {
	case "model":
		return nn.FormatSpec(ck.Spec.Layers), true
	case "loss":
		return map[nn.LossKind]string{nn.SoftmaxCE: "ce", nn.MSELoss: "mse"}[ck.Spec.Loss], true
	case "batch":
		return strconv.Itoa(cfg.Batch), true
	case "lr":
		return f(cfg.LR), true
	case "momentum":
		return f(cfg.Momentum), true
	case "weight-decay":
		return f(cfg.WeightDecay), true
	case "schedule":
		return cfg.Schedule.Kind.String(), true
	case "step-every":
		return strconv.Itoa(cfg.Schedule.Every), true
	case "gamma":
		return f(cfg.Schedule.Gamma), true
	case "warmup":
		return strconv.Itoa(cfg.Schedule.Warmup), true
	case "seed":
		return strconv.FormatUint(cfg.Seed, 10), true
	case "optimizer":
		return cfg.Optimizer.Kind.String(), true
	case "nesterov":
		return strconv.FormatBool(cfg.Optimizer.Nesterov), !adam
	case "beta1":
		return f(cfg.Optimizer.Beta1), adam
	case "beta2":
		return f(cfg.Optimizer.Beta2), adam
	case "eps":
		return f(cfg.Optimizer.Eps), adam
	case "augment":
		return cfg.Augment.String(), true
	case "patience":
		return strconv.Itoa(cfg.Patience), true
	case "min-delta":
		return f(cfg.MinDelta), true
	case "test-every-epoch":
		return strconv.FormatBool(cfg.TestEveryEpoch), true
	case "sync-bn":
		return strconv.FormatBool(cfg.SyncBN), true
	}
	return "", false
}

// checkTrainingFlags refuses the training flags given with -resume whose
// values differ from the checkpoint's, naming both; the same values are
// accepted, so that the first run's command with -resume added works.
func (c *ckptOptions) checkTrainingFlags() error {
	for _, name := range trainingFlags {
		given, ok := c.given[name]
		if !ok {
			continue
		}
		if name == "model" {
			given = nn.FormatSpec(c.layers)
		}
		if name == "optimizer" {
			given = strings.ToLower(given)
		}
		if name == "augment" {
			if a, err := data.ParseAugment(given); err == nil {
				given = a.String()
			}
		}
		want, applies := recorded(name, c.ck)
		switch {
		case !applies:
			return usagef("-%s with -resume %s: the checkpoint's optimizer is %s, to which -%s does not apply; leave it out", name, c.resume, c.ck.Config.Optimizer.Kind, name)
		case given != want:
			return usagef("-%s %s with -resume %s: the checkpoint trained with -%s %s; leave -%s out (a resumed run takes every training setting from its checkpoint; only -epochs and -test-limit may change)",
				name, given, c.resume, name, want, name)
		}
	}
	return nil
}

// loadCheckpoint reads the checkpoint that flag names (for train info,
// flag is ""): errors say which flag, and whether the file is missing,
// not a checkpoint at all, or a damaged or incompatible one.
func loadCheckpoint(flag, path string) (*ckpt.Checkpoint, error) {
	where := strings.TrimSpace(flag + " " + path)
	if _, err := os.Stat(path); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w; give a checkpoint written by train -save", where, err)
	}
	ck, err := ckpt.LoadCheckpoint(path)
	if err == nil {
		return ck, nil
	}
	detail := err.Error()
	if i := strings.Index(detail, path+": "); i >= 0 {
		detail = detail[i+len(path)+2:]
	}
	for _, p := range []string{"host: ", "ckpt: ", "safetensors: ", "checkpoint: "} {
		detail = strings.TrimPrefix(detail, p)
	}
	for _, s := range []error{ckpt.ErrSafetensorsFormat, ckpt.ErrCheckpoint} {
		detail = strings.TrimSuffix(detail, ": "+s.Error())
	}
	switch {
	case errors.Is(err, ckpt.ErrSafetensorsFormat):
		return nil, fmt.Errorf("%s: not a checkpoint (a safetensors file written by train -save): %s: %w", where, detail, ckpt.ErrSafetensorsFormat)
	case errors.Is(err, ckpt.ErrCheckpoint):
		return nil, fmt.Errorf("%s: a damaged checkpoint, or one of another convtrain version: %s: %w", where, detail, ckpt.ErrCheckpoint)
	}
	return nil, fmt.Errorf("%s: %s", where, detail)
}

// maxSpecFile bounds the size of a -model @FILE: a spec of 1000 layers
// (the checkpoint limit) with comments fits in far less.
const maxSpecFile = 64 << 10

// readSpecFile reads the model spec of -model @name: a text file of at
// most maxSpecFile bytes, UTF-8 without NUL bytes. Reading stops at the
// bound, so /dev/zero or a large file costs no more than that.
func readSpecFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("-model @%s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSpecFile+1))
	if err != nil {
		return "", fmt.Errorf("-model @%s: %w", name, err)
	}
	// The first byte that no text has: a control character (but tab, line
	// feed, form feed and carriage return) or invalid UTF-8 (a rune cut at
	// the bound is not checked).
	end := len(b)
	if end > maxSpecFile {
		end = maxSpecFile - utf8.UTFMax
	}
	for i := 0; i < end; {
		r, n := utf8.DecodeRune(b[i:])
		if (r == utf8.RuneError && n <= 1) || (r < 0x20 && r != '\t' && r != '\n' && r != '\f' && r != '\r') || r == 0x7f {
			return "", fmt.Errorf("-model @%s: not a text file (byte %d is 0x%02x); a model spec is text such as %s", name, i, b[i], nn.DefaultSpecText)
		}
		i += n
	}
	if len(b) > maxSpecFile {
		return "", fmt.Errorf("-model @%s: more than %d KiB, too large for a model spec (a text file of layers such as %s)", name, maxSpecFile>>10, nn.DefaultSpecText)
	}
	return string(b), nil
}

// loadResume reads the -resume checkpoint and takes the training settings
// from it into o, so that the run is configured as the one that wrote it.
func (o *options) loadResume() error {
	if o.resume == "" {
		return nil
	}
	ck, err := loadCheckpoint("-resume", o.resume)
	if err != nil {
		return err
	}
	o.ck = ck
	if err := o.checkTrainingFlags(); err != nil {
		return err
	}
	cfg := ck.Config
	if !o.set["epochs"] {
		o.epochs = cfg.Epochs
	}
	o.batch, o.lr, o.momentum, o.wd = cfg.Batch, cfg.LR, cfg.Momentum, cfg.WeightDecay
	o.schedule, o.stepEvery, o.gamma, o.seed = cfg.Schedule.Kind.String(), cfg.Schedule.Every, cfg.Schedule.Gamma, cfg.Seed
	o.setOptimizer(cfg.Optimizer)
	if o.save == "" {
		o.save = o.resume // resuming keeps saving, to the resumed file
	}
	return o.checkResumeFlags()
}

// modelSpec is the network to train on d: the checkpoint's when resuming,
// else -model's, else the default network (its last layer widened to
// more than 10 classes). It checks that the spec fits d's images and
// classes; the error names the layer and the reason.
func (c *ckptOptions) modelSpec(d *data.Dataset) (nn.Spec, error) {
	if c.ck != nil {
		s := c.ck.Spec
		if s.C != d.C || s.H != d.H || s.W != d.W || s.Classes() != d.Classes {
			return s, fmt.Errorf("checkpoint %s: the model takes %d×%d×%d images in %d classes, the data has %d×%d×%d in %d",
				c.resume, s.C, s.H, s.W, s.Classes(), d.C, d.H, d.W, d.Classes)
		}
		return s, nil
	}
	spec := nn.DefaultSpec()
	spec.C, spec.H, spec.W = d.C, d.H, d.W
	if c.loss == "mse" {
		spec.Loss = nn.MSELoss
	}
	if c.model == "" {
		if d.Classes > 10 {
			spec.Layers[len(spec.Layers)-1] = nn.DenseLayer(d.Classes)
		}
		if _, err := spec.Check(); err != nil {
			return spec, fmt.Errorf("the default network does not fit %d×%d images (give another with -model): %w", d.H, d.W, err)
		}
		return spec, nil
	}
	if _, ok := nn.Presets[strings.ToLower(strings.TrimSpace(c.model))]; ok {
		c.layers = nn.WithClasses(c.layers, d.Classes) // a preset's last layer fits the data's classes
	}
	if _, err := nn.InferShapes(c.layers, d.C, d.H, d.W, d.Classes); err != nil {
		return spec, fmt.Errorf("-model %s on %d×%d×%d images: %w", c.model, d.C, d.H, d.W, err)
	}
	spec.Layers = c.layers
	return spec, nil
}

// newModel builds the model: from the checkpoint when resuming, else
// initialised from seed.
func (c *ckptOptions) newModel(be backend.Backend, spec nn.Spec, seed uint64) (*nn.Model, error) {
	if c.ck != nil {
		return c.ck.NewModel(be)
	}
	return nn.NewModel(be, spec, seed)
}

// hook makes cfg save checkpoints to -save (after each epoch and every
// -save-every steps), once attach has named the trainer. When resuming,
// it also takes every training setting of cfg from the checkpoint (the
// optimiser included, whatever flags set it) but Epochs, ProgressEvery and
// the callbacks.
func (c *ckptOptions) hook(cfg *train.Config) {
	if c.ck != nil {
		v, ck := reflect.ValueOf(cfg).Elem(), reflect.ValueOf(c.ck.Config)
		for i := range v.NumField() {
			switch f := v.Type().Field(i); {
			case !f.IsExported(), f.Type.Kind() == reflect.Func, f.Type.Kind() == reflect.Interface, f.Name == "Epochs", f.Name == "ProgressEvery":
			default:
				v.Field(i).Set(ck.Field(i))
			}
		}
	}
	if c.saveBest != "" {
		cfg.OnBest = func(m train.EpochMetrics) error {
			if err := c.saveTo(c.saveBest); err != nil {
				return err
			}
			c.best = m
			return nil
		}
	}
	if c.save == "" {
		return
	}
	cfg.CheckpointEvery = c.saveEvery
	cfg.OnCheckpoint = func() error { return c.saveTo(c.save) }
}

// saveTo writes the trainer's checkpoint, with the data record, to path
// atomically. The first time it replaces the -resume file, that file is
// first kept as path.prev (a hard link, else a copy), so that the
// checkpoint a run resumed from survives it.
func (c *ckptOptions) saveTo(path string) error {
	if c.noWrite {
		return nil // a rank other than 0 of a data-parallel run
	}
	ck, err := ckpt.NewCheckpoint(c.tr)
	if err != nil {
		return err
	}
	ck.Data = c.record
	if c.notes != nil {
		ck.Notes = c.notes()
	}
	if !c.prev && c.resume != "" && sameFile(path, c.resume) {
		if err := keepPrev(path); err != nil {
			return err
		}
		c.prev = true
	}
	if err := ck.Save(path); err != nil {
		if _, serr := os.Stat(path); serr == nil {
			return fmt.Errorf("%w; the checkpoint %s written before is intact: free some space and continue from it with train -resume %s", err, path, path)
		}
		return err
	}
	return nil
}

// freePath is path when no file has that name, else the first of
// name-2.ext, name-3.ext, … that is free, so that an interrupted run never
// replaces an earlier one's checkpoint.
func freePath(path string) string {
	ext := filepath.Ext(path)
	stem := strings.TrimSuffix(path, ext)
	first := path
	for i := 2; i <= 1000; i++ {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			return path
		}
		path = fmt.Sprintf("%s-%d%s", stem, i, ext)
	}
	return first
}

// sameFile reports whether a and b name the same existing file, or the
// same path.
func sameFile(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// keepPrev makes path.prev a copy of path (a hard link when the file
// system allows), replacing any earlier one atomically.
func keepPrev(path string) error {
	prev := path + ".prev"
	tmp := prev + ".tmp"
	os.Remove(tmp)
	if err := os.Link(path, tmp); err != nil {
		b, rerr := os.ReadFile(path)
		if rerr != nil {
			return fmt.Errorf("keep %s as %s: %w", path, prev, rerr)
		}
		if werr := os.WriteFile(tmp, b, 0o644); werr != nil {
			os.Remove(tmp)
			return fmt.Errorf("keep %s as %s: %w", path, prev, werr)
		}
	}
	if err := os.Rename(tmp, prev); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keep %s as %s: %w", path, prev, err)
	}
	return nil
}

// attach names the trainer that checkpoints save and, when resuming,
// moves it to the checkpoint's position.
func (c *ckptOptions) attach(t *train.Trainer, stdout io.Writer) error {
	c.tr = t
	if c.ck == nil {
		return nil
	}
	if err := c.ck.Restore(t); err != nil {
		return fmt.Errorf("-resume %s: %w", c.resume, err)
	}
	st := c.ck.State
	fmt.Fprintf(stdout, "resume   %s: %s and %s done (step %d in all), written by convtrain %s\n",
		c.resume, plural(st.Epoch, "epoch"), plural(st.StepEpoch, "step"), st.Step, c.ck.Version)
	if st.Epoch >= t.Config().Epochs {
		fmt.Fprintf(stdout, "nothing to train: the checkpoint has done all %d epochs (give -epochs N to train further)\n", st.Epoch)
	} else if t.Stopped() {
		fmt.Fprintf(stdout, "nothing to train: the run stopped early after epoch %d, %s after its best validation accuracy (epoch %d; -patience %d)\n",
			st.Epoch, plural(st.Epoch-st.BestEpoch, "epoch"), st.BestEpoch, t.Config().Patience)
	} else if was, now := c.ck.Config.Epochs, t.Config().Epochs; was != now && t.Config().Schedule.Kind == train.CosineLR {
		fmt.Fprintf(stdout, "note     -epochs %d: the cosine schedule now spans %d epochs, not %d, so the learning rate from here on differs from the original run's\n",
			now, now, was)
	}
	return nil
}

// stopped handles the error that stopped trainer.Run: an interruption
// saves a checkpoint (to -save, else interruptedPath) and returns an
// error wrapping errInterrupted; a divergence says which checkpoint is
// left; any other error is returned as it is.
func (c *ckptOptions) stopped(ctx context.Context, err error, stdout io.Writer) error {
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		st, serr := c.tr.State()
		if serr != nil {
			return fmt.Errorf("%w: %v", errInterrupted, serr)
		}
		path := c.save
		if path == "" {
			path = freePath(interruptedPath)
		}
		if serr := c.saveTo(path); serr != nil {
			return fmt.Errorf("%w at epoch %d, step %d (step %d in all); saving the checkpoint failed: %v", errInterrupted, st.Epoch+1, st.StepEpoch, st.Step, serr)
		}
		return fmt.Errorf("%w at epoch %d, step %d (step %d in all); checkpoint saved to %s: continue with train -resume %s",
			errInterrupted, st.Epoch+1, st.StepEpoch, st.Step, path, path)
	case errors.Is(err, train.ErrDiverged) && c.save != "":
		if _, serr := os.Stat(c.save); serr == nil {
			return fmt.Errorf("%w; the last good checkpoint is %s", err, c.save)
		}
	}
	return err
}

// saved reports the final checkpoint after a completed run.
func (c *ckptOptions) saved(stdout io.Writer) {
	if c.save != "" {
		fmt.Fprintf(stdout, "saved    %s\n", c.save)
	}
	switch {
	case c.best.Epoch > 0 && c.best.Validated:
		fmt.Fprintf(stdout, "best     %s: epoch %d, validation accuracy %.2f%%\n", c.saveBest, c.best.Epoch, 100*c.best.ValAcc)
	case c.best.Epoch > 0:
		fmt.Fprintf(stdout, "best     %s: epoch %d, test accuracy %.2f%%\n", c.saveBest, c.best.Epoch, 100*c.best.TestAcc)
	case c.saveBest != "" && c.ck != nil && c.ck.State.BestEpoch > 0 && c.ck.Data != nil && c.ck.Data.Val > 0:
		fmt.Fprintf(stdout, "best     %s: no epoch of this run beat epoch %d's validation accuracy, %.2f%% (file unchanged)\n",
			c.saveBest, c.ck.State.BestEpoch, 100*c.ck.State.BestValAcc)
	case c.saveBest != "" && c.ck != nil && c.ck.State.BestEpoch > 0:
		fmt.Fprintf(stdout, "best     %s: no epoch of this run beat epoch %d's test accuracy, %.2f%% (file unchanged)\n",
			c.saveBest, c.ck.State.BestEpoch, 100*c.ck.State.BestTestAcc)
	}
}
