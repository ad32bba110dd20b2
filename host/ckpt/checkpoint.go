package ckpt

// A checkpoint is a safetensors file (see safetensors.go) holding
//
//	layer<i>.weight, layer<i>.bias    the parameters, (K,C,R,S)/(K) or (Out,In)/(Out);
//	                                  i is the 1-based layer of the spec's canonical
//	                                  text (FormatSpec), as torch.nn.Sequential numbers
//	                                  them (from 0) after load_state_dict renaming
//	optim.<state>.<parameter>         the optimiser's state, same shape as the
//	                                  parameter (SGD: optim.velocity.layer1.weight, …;
//	                                  Adam, AdamW: optim.exp_avg.…, optim.exp_avg_sq.…,
//	                                  see Param.OptimState)
//
// and, in the string metadata:
//
//	format              "pt", the safetensors convention for PyTorch weights
//	convtrain.checkpoint the checkpoint format version, "1"
//	convtrain.version   the convtrain module version (or VCS revision) that wrote it
//	spec                the layers in FormatSpec's canonical text
//	input               the input shape C×H×W, e.g. "1x28x28"
//	classes             the width of the output
//	loss, init          e.g. "softmax-ce", "glorot"
//	norm.mean, norm.std the inputs' standardisation (p − mean)/std of pixel bytes p:
//	                    one number, or one per input channel separated by commas
//	optimizer           the optimiser's name, e.g. "sgd"
//	config              the training Config as JSON (no callbacks): epochs, batch,
//	                    lr, momentum, weight decay, schedule, seed, …
//	state               the TrainState as JSON: epoch, step, shuffling RNG state,
//	                    the epoch's running loss and accuracy sums, time elapsed
//	epoch, step         for people and tools: epochs done, steps done in all
//	data                the training data as JSON (DataRecord): source, limits and
//	                    fingerprints; absent in files written before it was kept
//	note.<name>         the writing program's own notes (Checkpoint.Notes), kept
//	                    as they are and not interpreted here
//
// Only what a reader needs is trusted: spec, input, classes, loss, init,
// norm.*, config and state are parsed and checked, the tensors' names and
// shapes must match the spec exactly, and epoch, step, optimizer and
// format are informative.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
	"github.com/convtrain/convtrain/host/train"
)

// ErrCheckpoint is wrapped by every error about a checkpoint's content
// (a malformed safetensors file wraps ErrSafetensorsFormat instead).
var ErrCheckpoint = errors.New("invalid checkpoint")

// CheckpointVersion is the checkpoint format version written in the
// metadata key "convtrain.checkpoint"; readers accept only this version.
const CheckpointVersion = "1"

// Checkpoint limits: a spec read from a file may have at most
// ckptMaxLayers layers and ckptMaxActs activations per image over all
// layers, so that a small hostile file cannot make a model that needs
// more than about 128 MB (activations and their gradients) for one image.
// (The default network has 8 layers and 8,000 activations per image.)
const (
	ckptMaxLayers = 1000
	ckptMaxActs   = 1 << 24
)

// Checkpoint is everything a checkpoint file holds: the architecture, the
// weights, the optimiser state and the trainer's position, enough to
// predict with the model or to resume training bit-identically.
type Checkpoint struct {
	Spec   nn.Spec
	Norm   []data.Norm      // the inputs' standardisation per channel (one entry: every channel), from the training set
	Config train.Config     // the training configuration; callbacks nil
	State  train.TrainState // the trainer's position
	Params []NamedTensor    // in Model.Params order: layer<i>.weight, layer<i>.bias, …
	Optim  []NamedTensor    // the optimiser state: optim.<state>.<parameter>
	// Buffers are the running statistics, in Model.Buffers order:
	// layer<i>.running_mean, layer<i>.running_var (BatchNorm).
	Buffers []NamedTensor
	// Version is the convtrain version that wrote the file (metadata
	// convtrain.version); informative.
	Version string
	// Data is the training data (metadata data), nil when not recorded.
	Data *DataRecord
	// Notes are the metadata keys that start with NotePrefix, for the
	// program that writes the checkpoint (train keeps its curves there);
	// nil when there are none.
	Notes map[string]string
}

// NotePrefix starts the metadata keys of Checkpoint.Notes.
const NotePrefix = "note."

// optimState lists the optimiser state tensors of p under the optimiser o
// with their names in a checkpoint ("optim.velocity.layer1.weight").
func optimState(p *nn.Param, o nn.Optimizer) []struct {
	name string
	t    backend.Tensor
} {
	var out []struct {
		name string
		t    backend.Tensor
	}
	for _, s := range p.OptimState(o) {
		out = append(out, struct {
			name string
			t    backend.Tensor
		}{"optim." + s.Name + "." + p.Name, s.T})
	}
	return out
}

// optimizerName is the name written in the metadata key "optimizer".
func optimizerName(c train.Config) string { return c.Optimizer.Kind.String() }

// NewCheckpoint downloads the state of t and of its model into a
// Checkpoint. It is an error wrapping ErrDiverged, naming the tensor, if
// any parameter or optimiser state is NaN or infinite, so that a diverged
// model never replaces a good checkpoint.
func NewCheckpoint(t *train.Trainer) (*Checkpoint, error) {
	m := t.Model()
	st, err := t.State()
	if err != nil {
		return nil, err
	}
	cfg := t.Config()
	cfg.OnProgress, cfg.OnEpoch, cfg.OnCheckpoint = nil, nil, nil
	c := &Checkpoint{Spec: m.Spec(), Norm: slices.Clone(t.Norms()), Config: cfg, State: st, Version: moduleVersion()}
	c.Spec.Layers = append([]nn.LayerSpec(nil), c.Spec.Layers...)
	download := func(name string, shape []int, x backend.Tensor) (NamedTensor, error) {
		v := make([]float32, x.Len())
		if err := m.Backend().Download(v, x); err != nil {
			return NamedTensor{}, fmt.Errorf("host: checkpoint: download %s: %w", name, err)
		}
		for i, e := range v {
			if math.IsNaN(float64(e)) || math.IsInf(float64(e), 0) {
				return NamedTensor{}, fmt.Errorf("host: checkpoint at %s: %s[%d] is %g: %w", t.Where(), name, i, e, train.ErrDiverged)
			}
		}
		return NamedTensor{Name: name, Shape: append([]int(nil), shape...), F32: v}, nil
	}
	for _, p := range m.Buffers() {
		nt, err := download(p.Name, p.Shape, p.Value)
		if err != nil {
			return nil, err
		}
		c.Buffers = append(c.Buffers, nt)
	}
	for _, p := range m.Params() {
		nt, err := download(p.Name, p.Shape, p.Value)
		if err != nil {
			return nil, err
		}
		c.Params = append(c.Params, nt)
		for _, s := range optimState(p, m.Optimizer()) {
			nt, err := download(s.name, p.Shape, s.t)
			if err != nil {
				return nil, err
			}
			c.Optim = append(c.Optim, nt)
		}
	}
	return c, nil
}

// SaveCheckpoint writes the checkpoint of t (see NewCheckpoint) to path
// atomically (see SaveSafetensorsFile): a crash or an error leaves the
// previous file, if any, as it was.
func SaveCheckpoint(path string, t *train.Trainer) error {
	c, err := NewCheckpoint(t)
	if err != nil {
		return err
	}
	return c.Save(path)
}

// Save writes c to path atomically (see SaveSafetensorsFile).
func (c *Checkpoint) Save(path string) error {
	tensors, meta, err := c.encode()
	if err != nil {
		return err
	}
	return SaveSafetensorsFile(path, tensors, meta)
}

// Write writes c to w in the safetensors format.
func (c *Checkpoint) Write(w io.Writer) error {
	tensors, meta, err := c.encode()
	if err != nil {
		return err
	}
	return WriteSafetensors(w, tensors, meta)
}

func (c *Checkpoint) encode() ([]NamedTensor, map[string]string, error) {
	if _, err := c.Spec.Check(); err != nil {
		return nil, nil, fmt.Errorf("host: checkpoint: %w", err)
	}
	if len(c.Norm) != 1 && len(c.Norm) != c.Spec.C {
		return nil, nil, fmt.Errorf("host: checkpoint: %d standardisations for %d input channels, want 1 or %d", len(c.Norm), c.Spec.C, c.Spec.C)
	}
	cfg, err := ConfigJSON(c.Config)
	if err != nil {
		return nil, nil, err
	}
	st, err := json.Marshal(c.State)
	if err != nil {
		return nil, nil, fmt.Errorf("host: checkpoint: encode state: %w", err)
	}
	version := c.Version
	if version == "" {
		version = moduleVersion()
	}
	meta := map[string]string{
		"format":               "pt",
		"convtrain.checkpoint": CheckpointVersion,
		"convtrain.version":    version,
		"spec":                 nn.FormatSpec(c.Spec.Layers),
		"input":                fmt.Sprintf("%dx%dx%d", c.Spec.C, c.Spec.H, c.Spec.W),
		"classes":              strconv.Itoa(c.Spec.Classes()),
		"loss":                 c.Spec.Loss.String(),
		"init":                 c.Spec.Init.String(),
		"norm.mean":            normText(c.Norm, func(n data.Norm) float64 { return n.Mean }),
		"norm.std":             normText(c.Norm, func(n data.Norm) float64 { return n.Std }),
		"optimizer":            optimizerName(c.Config),
		"config":               cfg,
		"state":                string(st),
		"epoch":                strconv.Itoa(c.State.Epoch),
		"step":                 strconv.Itoa(c.State.Step),
	}
	if c.Data != nil {
		if meta["data"], err = encodeData(c.Data); err != nil {
			return nil, nil, err
		}
	}
	for k, v := range c.Notes {
		if !strings.HasPrefix(k, NotePrefix) {
			return nil, nil, fmt.Errorf("checkpoint: note %q does not start with %q", k, NotePrefix)
		}
		meta[k] = v
	}
	tensors := append(append(append([]NamedTensor(nil), c.Params...), c.Optim...), c.Buffers...)
	return tensors, meta, nil
}

// LoadCheckpoint reads the checkpoint file at path; see ReadCheckpoint.
// Errors name the file.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("host: load checkpoint: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("host: load checkpoint %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("host: load checkpoint %s: not a regular file", path)
	}
	c, err := ReadCheckpoint(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("host: load checkpoint %s: %w", path, err)
	}
	return c, nil
}

// ReadCheckpoint reads a checkpoint of size bytes from r. It is safe on
// hostile input: the safetensors layer allocates at most about the file's
// size (see ReadSafetensors), and every error about the content wraps
// ErrCheckpoint and says what is wrong: a missing or malformed metadata
// key, a format version other than CheckpointVersion, a spec that does not
// parse or does not fit the input shape or the class count (naming the
// layer), more than 1000 layers or 2²⁴ activations per image, a Config or
// TrainState that does not decode or is invalid, and a missing, extra,
// non-float32 or wrongly shaped tensor.
func ReadCheckpoint(r io.ReaderAt, size int64) (*Checkpoint, error) {
	tensors, meta, err := ReadSafetensors(r, size)
	if err != nil {
		return nil, err
	}
	return decodeCheckpoint(tensors, meta)
}

func ckptErr(format string, a ...any) error {
	return fmt.Errorf("host: checkpoint: %s: %w", fmt.Sprintf(format, a...), ErrCheckpoint)
}

func decodeCheckpoint(tensors []NamedTensor, meta map[string]string) (*Checkpoint, error) {
	get := func(key string) (string, error) {
		v, ok := meta[key]
		if !ok {
			return "", ckptErr("metadata key %q is missing", key)
		}
		return v, nil
	}
	v, err := get("convtrain.checkpoint")
	if err != nil {
		return nil, err
	}
	if v != CheckpointVersion {
		return nil, ckptErr("format version %q, this program reads version %q", v, CheckpointVersion)
	}
	c := &Checkpoint{Version: meta["convtrain.version"]}

	// The architecture.
	text, err := get("spec")
	if err != nil {
		return nil, err
	}
	if len(text) > 1<<20 {
		return nil, ckptErr("spec of %d bytes", len(text))
	}
	if c.Spec.Layers, err = nn.ParseSpec(text); err != nil {
		return nil, ckptErr("%v", err)
	}
	if len(c.Spec.Layers) > ckptMaxLayers {
		return nil, ckptErr("spec has %d layers, more than %d", len(c.Spec.Layers), ckptMaxLayers)
	}
	in, err := get("input")
	if err != nil {
		return nil, err
	}
	dims := strings.Split(in, "x")
	if len(dims) != 3 {
		return nil, ckptErr("input %q: want C×H×W as in 1x28x28", in)
	}
	for i, p := range []*int{&c.Spec.C, &c.Spec.H, &c.Spec.W} {
		if *p, err = strconv.Atoi(dims[i]); err != nil || *p < 1 {
			return nil, ckptErr("input %q: want C×H×W as in 1x28x28, sizes ≥ 1", in)
		}
	}
	loss, err := get("loss")
	if err != nil {
		return nil, err
	}
	switch loss {
	case nn.SoftmaxCE.String():
		c.Spec.Loss = nn.SoftmaxCE
	case nn.MSELoss.String():
		c.Spec.Loss = nn.MSELoss
	default:
		return nil, ckptErr("loss %q: want %v or %v", loss, nn.SoftmaxCE, nn.MSELoss)
	}
	init, err := get("init")
	if err != nil {
		return nil, err
	}
	switch init {
	case nn.GlorotInit.String():
		c.Spec.Init = nn.GlorotInit
	case nn.HeInit.String():
		c.Spec.Init = nn.HeInit
	default:
		return nil, ckptErr("init %q: want %v or %v", init, nn.GlorotInit, nn.HeInit)
	}
	classes, err := get("classes")
	if err != nil {
		return nil, err
	}
	k, err := strconv.Atoi(classes)
	if err != nil {
		return nil, ckptErr("classes %q: %v", classes, err)
	}
	infos, err := nn.InferShapes(c.Spec.Layers, c.Spec.C, c.Spec.H, c.Spec.W, k)
	if err != nil {
		return nil, ckptErr("spec %q on input %s: %v", text, in, err)
	}
	if len(infos) > ckptMaxLayers {
		return nil, ckptErr("spec has %d layers, more than %d", len(infos), ckptMaxLayers)
	}
	acts := c.Spec.C * c.Spec.H * c.Spec.W
	for _, info := range infos {
		acts += info.Out.Len() // each below 2¹⁹: no overflow before the check
		if acts > ckptMaxActs {
			return nil, ckptErr("spec %q on input %s needs more than %d activations per image", text, in, ckptMaxActs)
		}
	}

	// Standardisation, training configuration and position.
	var means, stds []float64
	for _, f := range []struct {
		key string
		p   *[]float64
	}{{"norm.mean", &means}, {"norm.std", &stds}} {
		s, err := get(f.key)
		if err != nil {
			return nil, err
		}
		fields := strings.Split(s, ",")
		if len(fields) != 1 && len(fields) != c.Spec.C {
			return nil, ckptErr("%s %q has %d values for %d input channels, want one value or one per channel", f.key, s, len(fields), c.Spec.C)
		}
		for _, t := range fields {
			v, err := strconv.ParseFloat(t, 64)
			if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, ckptErr("%s %q: %q is not a finite number", f.key, s, t)
			}
			*f.p = append(*f.p, v)
		}
	}
	if len(means) != len(stds) {
		return nil, ckptErr("norm.mean has %d values and norm.std %d, want as many", len(means), len(stds))
	}
	for i := range means {
		if !(stds[i] > 0) {
			return nil, ckptErr("norm.std %g of channel %d, want > 0", stds[i], i)
		}
		c.Norm = append(c.Norm, data.Norm{Mean: means[i], Std: stds[i]})
	}
	cfg, err := get("config")
	if err != nil {
		return nil, err
	}
	if c.Config, err = configFromJSON(cfg); err != nil {
		return nil, err
	}
	if err := c.Config.Check(); err != nil {
		return nil, ckptErr("config: %v", err)
	}
	st, err := get("state")
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(st))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c.State); err != nil {
		return nil, ckptErr("state %q: %v", st, err)
	}
	if s := c.State; s.Epoch < 0 || s.StepEpoch < 0 || s.Step < 0 || s.Epoch > c.Config.Epochs {
		return nil, ckptErr("state: epoch %d, step %d of the epoch, step %d of %d epochs: not a position", s.Epoch, s.StepEpoch, s.Step, c.Config.Epochs)
	}

	if s, ok := meta["data"]; ok {
		if c.Data, err = decodeData(s); err != nil {
			return nil, err
		}
	}
	for k, v := range meta {
		if strings.HasPrefix(k, NotePrefix) {
			if c.Notes == nil {
				c.Notes = map[string]string{}
			}
			c.Notes[k] = v
		}
	}

	// The tensors: exactly the parameters of the spec and their optimiser
	// state. ReadSafetensors bounded their total size by the file's.
	byName := make(map[string]NamedTensor, len(tensors))
	for _, t := range tensors {
		byName[t.Name] = t
	}
	take := func(name string, shape []int) (NamedTensor, error) {
		t, ok := byName[name]
		if !ok {
			return t, ckptErr("tensor %q is missing", name)
		}
		delete(byName, name)
		if t.F32 == nil {
			return t, ckptErr("tensor %q is not float32 (F32)", name)
		}
		if !slices.Equal(t.Shape, shape) {
			return t, ckptErr("tensor %q has shape %v; the spec's layer needs %v", name, t.Shape, shape)
		}
		for i, v := range t.F32 {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return t, ckptErr("tensor %q element %d is %g: a damaged or diverged model (train never saves one); use an earlier checkpoint", name, i, v)
			}
		}
		return t, nil
	}
	shapes, buffers, err := c.Spec.ParamShapes()
	if err != nil {
		return nil, ckptErr("spec %q on input %s: %v", text, in, err)
	}
	for _, p := range buffers {
		t, err := take(p.Name, p.Shape)
		if err != nil {
			return nil, err
		}
		c.Buffers = append(c.Buffers, t)
	}
	for _, p := range shapes {
		t, err := take(p.Name, p.Shape)
		if err != nil {
			return nil, err
		}
		c.Params = append(c.Params, t)
		for _, s := range optimState(&p, c.Config.Optimizer) {
			t, err := take(s.name, p.Shape)
			if err != nil {
				return nil, err
			}
			c.Optim = append(c.Optim, t)
		}
	}
	if len(byName) > 0 {
		var extra []string
		for name := range byName {
			extra = append(extra, strconv.Quote(name))
		}
		return nil, ckptErr("tensors %s are not parameters of the spec %q", strings.Join(slices.Sorted(slices.Values(extra)), ", "), text)
	}
	return c, nil
}

// NewModel builds the checkpoint's model on be and loads its parameters
// and optimiser state (see Load).
func (c *Checkpoint) NewModel(be backend.Backend) (*nn.Model, error) {
	m, err := nn.NewModel(be, c.Spec, 0)
	if err != nil {
		return nil, err
	}
	if err := c.Load(m); err != nil {
		return nil, errors.Join(err, m.Close())
	}
	return m, nil
}

// Load uploads the checkpoint's parameters and optimiser state into m,
// which must have the checkpoint's spec.
func (c *Checkpoint) Load(m *nn.Model) error {
	if nn.FormatSpec(m.Spec().Layers) != nn.FormatSpec(c.Spec.Layers) || m.Spec().C != c.Spec.C || m.Spec().H != c.Spec.H || m.Spec().W != c.Spec.W {
		return fmt.Errorf("host: checkpoint: model %s on %d×%d×%d, checkpoint %s on %d×%d×%d: %w",
			nn.FormatSpec(m.Spec().Layers), m.Spec().C, m.Spec().H, m.Spec().W, nn.FormatSpec(c.Spec.Layers), c.Spec.C, c.Spec.H, c.Spec.W, ErrCheckpoint)
	}
	if err := m.SetOptimizer(c.Config.Optimizer); err != nil {
		return fmt.Errorf("host: checkpoint: %w", err)
	}
	ps := m.Params()
	states := 0
	for _, p := range ps {
		states += len(optimState(p, m.Optimizer()))
	}
	if len(ps) != len(c.Params) || states != len(c.Optim) {
		return fmt.Errorf("host: checkpoint: %d parameters and %d optimiser tensors for a model of %d and %d: %w", len(c.Params), len(c.Optim), len(ps), states, ErrCheckpoint)
	}
	up := func(name string, x backend.Tensor, nt NamedTensor) error {
		if nt.Name != name || len(nt.F32) != x.Len() {
			return fmt.Errorf("host: checkpoint: tensor %q of %d elements for %s of %d: %w", nt.Name, len(nt.F32), name, x.Len(), ErrCheckpoint)
		}
		if err := m.Backend().Upload(x, nt.F32); err != nil {
			return fmt.Errorf("host: checkpoint: upload %s: %w", name, err)
		}
		return nil
	}
	bs := m.Buffers()
	if len(bs) != len(c.Buffers) {
		return fmt.Errorf("host: checkpoint: %d running statistics for a model of %d: %w", len(c.Buffers), len(bs), ErrCheckpoint)
	}
	for i, p := range bs {
		if err := up(p.Name, p.Value, c.Buffers[i]); err != nil {
			return err
		}
	}
	o := 0
	for i, p := range ps {
		if err := up(p.Name, p.Value, c.Params[i]); err != nil {
			return err
		}
		for _, s := range optimState(p, m.Optimizer()) {
			if err := up(s.name, s.t, c.Optim[o]); err != nil {
				return err
			}
			o++
		}
	}
	return nil
}

// Restore moves t, whose model was loaded from c (see NewModel and Load),
// to the checkpoint's position, after checking that t trains like the run
// that wrote c: the same configuration but for Epochs, ProgressEvery and
// CheckpointEvery, and the same input standardisation (a sign of the same
// training data). The next Run then continues bit-identically.
func (c *Checkpoint) Restore(t *train.Trainer) error {
	if !slices.Equal(t.Norms(), c.Norm) {
		return fmt.Errorf("host: resume: the training data's mean and std are %v, the checkpoint's %v: not the same data: %w",
			t.Norms(), c.Norm, ErrCheckpoint)
	}
	if err := c.SameTraining(t.Config()); err != nil {
		return err
	}
	return t.Restore(c.State)
}

// SameTraining reports, as an error naming the first difference, whether
// cfg trains like the checkpoint's configuration, ignoring Epochs,
// ProgressEvery, CheckpointEvery and the callbacks.
func (c *Checkpoint) SameTraining(cfg train.Config) error {
	a, b := c.Config, cfg
	for _, x := range []*train.Config{&a, &b} {
		x.Epochs, x.ProgressEvery, x.CheckpointEvery = 0, 0, 0
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if !f.IsExported() || f.Type.Kind() == reflect.Func || f.Type.Kind() == reflect.Interface {
			continue
		}
		x, y := va.Field(i).Interface(), vb.Field(i).Interface()
		if !reflect.DeepEqual(x, y) {
			return fmt.Errorf("host: resume: %s is %v, the checkpoint's is %v: %w", f.Name, y, x, ErrCheckpoint)
		}
	}
	return nil
}

// ConfigJSON encodes the exported fields of c but its callbacks as a JSON
// object keyed by field name (floats in their shortest exact form); a
// field tagged json:",omitempty" is left out when zero, so that a
// configuration that does not use a later field reads in an older
// program.
func ConfigJSON(c train.Config) (string, error) {
	v := reflect.ValueOf(c)
	m := map[string]any{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() || f.Type.Kind() == reflect.Func || f.Type.Kind() == reflect.Interface {
			continue
		}
		if strings.Contains(f.Tag.Get("json"), "omitempty") && v.Field(i).IsZero() {
			continue
		}
		m[f.Name] = v.Field(i).Interface()
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("host: checkpoint: encode config: %w", err)
	}
	return string(b), nil
}

// configFromJSON decodes configJSON's output; an unknown or repeated
// field, or a value of the wrong type, is an error. Fields absent from s
// keep their zero value.
func configFromJSON(s string) (train.Config, error) {
	var c train.Config
	fields, err := stObject([]byte(s), true)
	if err != nil {
		return c, ckptErr("config: %v", err)
	}
	v := reflect.ValueOf(&c).Elem()
	for _, f := range fields {
		sf, ok := v.Type().FieldByName(f.key)
		if !ok || !sf.IsExported() || sf.Type.Kind() == reflect.Func || sf.Type.Kind() == reflect.Interface || len(sf.Index) != 1 {
			return c, ckptErr("config: unknown field %q", f.key)
		}
		dec := json.NewDecoder(bytes.NewReader(f.value))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v.FieldByIndex(sf.Index).Addr().Interface()); err != nil {
			return c, ckptErr("config: %s: %v", f.key, err)
		}
	}
	return c, nil
}

// moduleVersion is the version of the convtrain module in this binary:
// its module version, else its VCS revision, else "devel".
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	const path = "github.com/convtrain/convtrain"
	version := ""
	if bi.Main.Path == path {
		version = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && (version == "" || version == "(devel)") {
				version = s.Value
			}
		}
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			version = d.Version
		}
	}
	if version == "" {
		version = "devel"
	}
	return version
}

// normText is the metadata value of one field of the norms: the numbers
// separated by commas, each in the shortest form that reads back exactly.
func normText(norms []data.Norm, field func(data.Norm) float64) string {
	parts := make([]string, len(norms))
	for i, n := range norms {
		parts[i] = strconv.FormatFloat(field(n), 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}
