package ckpt

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/cpubackend"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
	"github.com/convtrain/convtrain/host/train"
)

// ckptSpec is a tiny model for 8×8 synthetic images: a padded conv, a
// fused ReLU and max-pool, and a dense layer of 3 classes.
func ckptSpec() nn.Spec {
	return nn.Spec{C: 1, H: 8, W: 8, Loss: nn.SoftmaxCE, Layers: []nn.LayerSpec{
		{Kind: nn.Conv, Filters: 3, KernelH: 3, KernelW: 3, PadH: 1, PadW: 1}, {Kind: nn.ReLU}, nn.PoolLayer(2),
		{Kind: nn.Flatten}, nn.DenseLayer(3),
	}}
}

// ckptData is 44 training images (5 steps of 8 per epoch, 4 left out) and
// 10 test images (a batch and a partial one).
func ckptData(t testing.TB) (trainSet, test *data.Dataset) {
	t.Helper()
	trainSet, err := data.Synthetic(44, 8, 3, 1)
	backendtest.MustNil(t, err)
	test, err = data.Synthetic(10, 8, 3, 2)
	backendtest.MustNil(t, err)
	return trainSet, test
}

func ckptConfig() train.Config {
	return train.Config{Epochs: 2, Batch: 8, LR: 0.05, Momentum: 0.9, WeightDecay: 1e-3, Schedule: train.Schedule{Kind: train.CosineLR}, Seed: 7}
}

// bufferValues downloads every running statistic.
func bufferValues(t testing.TB, m *nn.Model) [][]float32 {
	t.Helper()
	var out [][]float32
	for _, p := range m.Buffers() {
		v := make([]float32, p.Value.Len())
		backendtest.MustNil(t, m.Backend().Download(v, p.Value))
		out = append(out, v)
	}
	return out
}

// paramsAndVels downloads every parameter's value and velocity.
func paramsAndVels(t testing.TB, m *nn.Model) [][]float32 {
	t.Helper()
	var out [][]float32
	for _, p := range m.Params() {
		for _, x := range []backend.Tensor{p.Value, p.Vel} {
			v := make([]float32, x.Len())
			backendtest.MustNil(t, m.Backend().Download(v, x))
			out = append(out, v)
		}
	}
	return out
}

// TestCheckpointResume trains 10 steps straight, and for several stopping
// points trains to there, saves a checkpoint (through OnCheckpoint, as the
// command does), stops, loads the file into a new model and trainer and
// finishes: the parameters and velocities must equal the straight run's
// bit for bit, on the CPU backend and on the GPU backend (simulated), for a
// LeNet-like network and for one with BatchNorm, a residual block and
// dropout.
// stop=5 is the epoch boundary (after the evaluation), 3 and 7 are in the
// middle of the first and the second epoch.
func TestCheckpointResume(t *testing.T) {
	trainSet, test := ckptData(t)
	bnLayers, err := nn.ParseSpec("conv3x3x3p1,bn,relu,res(conv3x3x3p1,bn,relu,conv3x3x3p1,bn),relu,avgpool2,dropout30,gap,dense3")
	backendtest.MustNil(t, err)
	bnSpec := nn.Spec{C: 1, H: 8, W: 8, Loss: nn.SoftmaxCE, Layers: bnLayers}
	backends := []struct {
		name string
		new  func(t *testing.T) backend.Backend
		spec nn.Spec
	}{
		{"cpu", func(t *testing.T) backend.Backend { return backendtest.CPU(t) }, ckptSpec()},
		{"sim", func(t *testing.T) backend.Backend { be, _ := backendtest.Sim(t); return be }, ckptSpec()},
		// BatchNorm's running statistics, dropout's masks and a residual
		// block resume too.
		{"cpu/spec=bn-res", func(t *testing.T) backend.Backend { return backendtest.CPU(t) }, bnSpec},
		// The same on the simulator, where BatchNorm+ReLU runs fused.
		{"sim/spec=bn-res", func(t *testing.T) backend.Backend { be, _ := backendtest.Sim(t); return be }, bnSpec},
	}
	for _, bk := range backends {
		t.Run("backend="+bk.name, func(t *testing.T) {
			if testing.Short() && bk.name == "sim/spec=bn-res" {
				t.Skip("-short: the BatchNorm network on the simulator is left to the full run")
			}
			be := bk.new(t)
			newRun := func(cfg train.Config) (*nn.Model, *train.Trainer) {
				m, err := nn.NewModel(be, bk.spec, 3)
				backendtest.MustNil(t, err)
				tr, err := train.NewTrainer(m, trainSet, test, cfg)
				backendtest.MustNil(t, err)
				t.Cleanup(func() { tr.Close(); m.Close() })
				return m, tr
			}
			straight, tr := newRun(ckptConfig())
			_, err := tr.Run(context.Background())
			backendtest.MustNil(t, err)
			want := paramsAndVels(t, straight)
			wantBuf := bufferValues(t, straight)

			for _, stop := range []int{3, 5, 7} {
				t.Run(fmt.Sprintf("stop=%d", stop), func(t *testing.T) {
					path := filepath.Join(t.TempDir(), "ckpt.safetensors")
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					cfg := ckptConfig()
					var tr1 *train.Trainer
					cfg.CheckpointEvery = 1
					cfg.OnCheckpoint = func() error {
						st, err := tr1.State()
						if err != nil || st.Step != stop {
							return err
						}
						cancel()
						return SaveCheckpoint(path, tr1)
					}
					_, tr1 = newRun(cfg)
					if _, err := tr1.Run(ctx); !errors.Is(err, context.Canceled) {
						t.Fatalf("Run = %v, want context.Canceled", err)
					}

					c, err := LoadCheckpoint(path)
					backendtest.MustNil(t, err)
					if c.State.Step != stop {
						t.Fatalf("checkpoint at step %d, want %d", c.State.Step, stop)
					}
					m2, err := c.NewModel(be)
					backendtest.MustNil(t, err)
					defer m2.Close()
					tr2, err := train.NewTrainer(m2, trainSet, test, c.Config)
					backendtest.MustNil(t, err)
					defer tr2.Close()
					backendtest.MustNil(t, c.Restore(tr2))
					_, err = tr2.Run(context.Background())
					backendtest.MustNil(t, err)
					got := paramsAndVels(t, m2)
					for i := range want {
						backendtest.EqualBits(t, fmt.Sprintf("tensor %d (param %s)", i, m2.Params()[i/2].Name), got[i], want[i])
					}
					gotBuf := bufferValues(t, m2)
					for i := range wantBuf {
						backendtest.EqualBits(t, m2.Buffers()[i].Name, gotBuf[i], wantBuf[i])
					}
				})
			}
		})
	}
}

// ckptSample is a checkpoint of ckptSpec after 3 training steps on the CPU.
func ckptSample(t testing.TB) *Checkpoint {
	t.Helper()
	trainSet, test := ckptData(t)
	m, err := nn.NewModel(backendtest.CPU(t), ckptSpec(), 3)
	backendtest.MustNil(t, err)
	t.Cleanup(func() { m.Close() })
	cfg := ckptConfig()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.ProgressEvery, cfg.OnProgress = 3, func(train.Progress) { cancel() }
	tr, err := train.NewTrainer(m, trainSet, test, cfg)
	backendtest.MustNil(t, err)
	t.Cleanup(func() { tr.Close() })
	if _, err := tr.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	c, err := NewCheckpoint(tr)
	backendtest.MustNil(t, err)
	return c
}

// TestCheckpointRoundTrip writes a checkpoint and reads it back: every
// field must survive exactly, the metadata must carry the documented keys
// for other tools, and the file must be byte-for-byte stable.
func TestCheckpointRoundTrip(t *testing.T) {
	c := ckptSample(t)
	if c.State.Step != 3 || len(c.Params) != 4 || len(c.Optim) != 4 {
		t.Fatalf("sample: step %d, %d params, %d optimiser tensors; want 3, 4, 4", c.State.Step, len(c.Params), len(c.Optim))
	}
	trainSet, test := ckptData(t)
	valPrint := Fingerprint(test.Limit(4))
	c.Data = &DataRecord{Source: "/data/x", Limit: 40, TestLimit: 7, Train: Fingerprint(trainSet), Test: Fingerprint(test),
		Format: "cifar100", Labels: "coarse", Size: 32, ClassNames: []string{"a", "b", "c"}, Val: 6, ValLimit: 4, ValPrint: &valPrint, Augment: "crop4,flip"}
	c.Config.Augment, c.Config.Patience, c.Config.MinDelta, c.Config.TestEveryEpoch = data.Augment{Pad: 4, Flip: true}, 3, 0.01, true
	c.Notes = map[string]string{"note.curves": `{"x":[1,2]}`}
	var buf bytes.Buffer
	backendtest.MustNil(t, c.Write(&buf))
	got, err := ReadCheckpoint(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	backendtest.MustNil(t, err)
	if !reflect.DeepEqual(got, c) {
		t.Errorf("ReadCheckpoint(Write(c)) =\n%+v\nwant\n%+v", got, c)
	}
	var again bytes.Buffer
	backendtest.MustNil(t, got.Write(&again))
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("rewriting the checkpoint read back gives different bytes")
	}
	_, meta, err := ReadSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	backendtest.MustNil(t, err)
	for k, want := range map[string]string{
		"format": "pt", "convtrain.checkpoint": "1", "spec": "conv3x3x3p1,relu,maxpool2,flatten,dense3",
		"input": "1x8x8", "classes": "3", "loss": "softmax-ce", "init": "glorot", "optimizer": "sgd",
		"epoch": "0", "step": "3",
	} {
		if meta[k] != want {
			t.Errorf("metadata %q = %q, want %q", k, meta[k], want)
		}
	}
	for _, k := range []string{"convtrain.version", "config", "state", "norm.mean", "norm.std", "data", "note.curves"} {
		if meta[k] == "" {
			t.Errorf("metadata %q is missing", k)
		}
	}
}

// ckptMutate writes c, lets mutate change its tensors and metadata, and
// returns the safetensors bytes.
func ckptMutate(t testing.TB, c *Checkpoint, mutate func(ts []NamedTensor, meta map[string]string) []NamedTensor) []byte {
	t.Helper()
	ts, meta, err := c.encode()
	backendtest.MustNil(t, err)
	ts = mutate(ts, meta)
	var buf bytes.Buffer
	backendtest.MustNil(t, WriteSafetensors(&buf, ts, meta))
	return buf.Bytes()
}

// TestCheckpointErrors feeds ReadCheckpoint checkpoints with one thing
// wrong each: every one must be an error wrapping ErrCheckpoint whose
// message says what is wrong.
func TestCheckpointErrors(t *testing.T) {
	c := ckptSample(t)
	setMeta := func(k, v string) func([]NamedTensor, map[string]string) []NamedTensor {
		return func(ts []NamedTensor, meta map[string]string) []NamedTensor {
			if v == "" {
				delete(meta, k)
			} else {
				meta[k] = v
			}
			return ts
		}
	}
	drop := func(name string) func([]NamedTensor, map[string]string) []NamedTensor {
		return func(ts []NamedTensor, _ map[string]string) []NamedTensor {
			var out []NamedTensor
			for _, x := range ts {
				if x.Name != name {
					out = append(out, x)
				}
			}
			return out
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func([]NamedTensor, map[string]string) []NamedTensor
		want   string
	}{
		{"missing=spec", setMeta("spec", ""), `"spec" is missing`},
		{"version=2", setMeta("convtrain.checkpoint", "2"), `version "2"`},
		{"spec=syntax", setMeta("spec", "conv3x3,relu,dense3"), `layer 1 "conv3x3"`},
		{"spec=otherClasses", setMeta("spec", "conv3x3x3p1,relu,maxpool2,flatten,dense4"), "data has 3 classes"},
		{"spec=tooSmall", setMeta("input", "1x1x1"), "layer 3 (maxpool"},
		{"spec=huge", setMeta("spec", strings.Repeat("relu,", 2000)+"conv3x3x3p1,relu,maxpool2,flatten,dense3"), "more than 1000"},
		{"spec=activations", func(ts []NamedTensor, m map[string]string) []NamedTensor {
			m["input"] = "1x400x400"
			m["spec"] = "conv3x3x3p1," + strings.Repeat("relu,", 35) + "maxpool2,flatten,dense3"
			return ts
		}, "more than 16777216 activations per image"},
		{"spec=otherParams", setMeta("spec", "conv3x5x5p2,relu,maxpool2,flatten,dense3"), `tensor "layer1.weight" has shape [3 1 3 3]; the spec's layer needs [3 1 5 5]`},
		{"input=bad", setMeta("input", "1x8"), `input "1x8"`},
		{"loss=bad", setMeta("loss", "hinge"), `loss "hinge"`},
		{"norm=NaN", setMeta("norm.std", "NaN"), "norm.std"},
		{"norm=zero", setMeta("norm.std", "0"), "norm.std 0"},
		{"norm=channels", setMeta("norm.mean", "1,2"), `norm.mean "1,2" has 2 values for 1 input channels`},
		{"config=syntax", setMeta("config", "{"), "config"},
		{"config=unknown", setMeta("config", `{"Epochs":2,"Batch":8,"LR":0.1,"Bogus":1}`), `unknown field "Bogus"`},
		{"config=type", setMeta("config", `{"Epochs":"two"}`), "config: Epochs"},
		{"config=invalid", setMeta("config", `{"Epochs":2,"Batch":0,"LR":0.1}`), "batch 0"},
		{"state=bad", setMeta("state", `{"Epoch":-1}`), "epoch -1"},
		{"state=unknown", setMeta("state", `{"Epoch":0,"X":1}`), `unknown field "X"`},
		{"tensor=missing", drop("layer5.bias"), `tensor "layer5.bias" is missing`},
		{"velocity=missing", drop("optim.velocity.layer1.weight"), `"optim.velocity.layer1.weight" is missing`},
		{"tensor=extra", func(ts []NamedTensor, _ map[string]string) []NamedTensor {
			return append(ts, NamedTensor{Name: "layer9.weight", Shape: []int{1}, F32: []float32{1}})
		}, `tensors "layer9.weight" are not parameters`},
		{"tensor=int32", func(ts []NamedTensor, _ map[string]string) []NamedTensor {
			for i := range ts {
				if ts[i].Name == "layer1.bias" {
					ts[i].I32, ts[i].F32 = make([]int32, len(ts[i].F32)), nil
				}
			}
			return ts
		}, `"layer1.bias" is not float32`},
		{"tensor=NaN", func(ts []NamedTensor, _ map[string]string) []NamedTensor {
			for i := range ts {
				if ts[i].Name == "layer1.weight" {
					ts[i].F32 = append([]float32(nil), ts[i].F32...)
					ts[i].F32[3] = float32(math.NaN())
				}
			}
			return ts
		}, `tensor "layer1.weight" element 3 is NaN`},
		{"tensor=Inf", func(ts []NamedTensor, _ map[string]string) []NamedTensor {
			for i := range ts {
				if ts[i].Name == "optim.velocity.layer5.bias" {
					ts[i].F32 = append([]float32(nil), ts[i].F32...)
					ts[i].F32[0] = float32(math.Inf(-1))
				}
			}
			return ts
		}, `"optim.velocity.layer5.bias" element 0 is -Inf`},
		{"data=unknown", setMeta("data", `{"source":"mnist","limit":0,"test_limit":0,"train":{"n":1},"test":{"n":1},"split":0.1}`), `unknown field "split"`},
		{"data=noSource", setMeta("data", `{"limit":0,"train":{"n":1}}`), "want a source"},
		{"data=valWithoutPrint", setMeta("data", `{"source":"mnist","limit":0,"test_limit":0,"train":{"n":1},"test":{"n":1},"val":5}`), "a validation fingerprint with a validation count"},
		{"data=names", setMeta("data", `{"source":"mnist","limit":0,"test_limit":0,"train":{"n":1,"classes":3},"test":{"n":1},"class_names":["a"]}`), "one class name per class"},
		{"data=augment", setMeta("data", `{"source":"mnist","limit":0,"test_limit":0,"train":{"n":1},"test":{"n":1},"augment":"flip,crop4"}`), `augmentation "flip,crop4" is not in canonical form`},
		{"data=syntax", setMeta("data", `{`), "data record"},
		{"tensor=shape", func(ts []NamedTensor, _ map[string]string) []NamedTensor {
			for i := range ts {
				if ts[i].Name == "optim.velocity.layer5.weight" {
					ts[i].Shape = []int{ts[i].Shape[1], ts[i].Shape[0]}
				}
			}
			return ts
		}, `"optim.velocity.layer5.weight" has shape [48 3]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := ckptMutate(t, c, tc.mutate)
			_, err := ReadCheckpoint(bytes.NewReader(data), int64(len(data)))
			if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadCheckpoint = %v, want an ErrCheckpoint containing %q", err, tc.want)
			}
		})
	}
}

// TestCheckpointDiverged trains with a learning rate of 10⁸, saving a
// checkpoint every step: training must stop with ErrDiverged naming the
// step and a layer, and the file must hold the last good (finite)
// checkpoint, which loads. A model whose weights are NaN must not
// overwrite a checkpoint.
func TestCheckpointDiverged(t *testing.T) {
	trainSet, test := ckptData(t)
	be := backendtest.CPU(t)
	m, err := nn.NewModel(be, ckptSpec(), 3)
	backendtest.MustNil(t, err)
	defer m.Close()
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	cfg := ckptConfig()
	cfg.LR = 1e8
	cfg.Schedule = train.Schedule{}
	var tr *train.Trainer
	saved := -1 // the step of the last checkpoint
	cfg.CheckpointEvery = 1
	cfg.OnCheckpoint = func() error {
		if err := SaveCheckpoint(path, tr); err != nil {
			return err
		}
		st, err := tr.State()
		saved = st.Step
		return err
	}
	tr, err = train.NewTrainer(m, trainSet, test, cfg)
	backendtest.MustNil(t, err)
	defer tr.Close()
	_, err = tr.Run(context.Background())
	if !errors.Is(err, train.ErrDiverged) || !strings.Contains(err.Error(), "step ") || !strings.Contains(err.Error(), "(layer ") {
		t.Fatalf("Run = %v, want ErrDiverged naming the step and the layer", err)
	}
	t.Logf("Run: %v (last checkpoint at step %d)", err, saved)
	if saved < 0 {
		t.Fatalf("no checkpoint was saved before the divergence was found; the test needs one")
	}
	before, err := os.ReadFile(path)
	backendtest.MustNil(t, err)
	c, err := LoadCheckpoint(path)
	backendtest.MustNil(t, err)
	if c.State.Step != saved {
		t.Errorf("last good checkpoint at step %d, want %d", c.State.Step, saved)
	}
	for _, x := range append(c.Params, c.Optim...) {
		for i, v := range x.F32 {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("saved %s[%d] = %g", x.Name, i, v)
			}
		}
	}

	// Saving the diverged model itself is refused and leaves the file.
	if err := SaveCheckpoint(path, tr); !errors.Is(err, train.ErrDiverged) {
		t.Errorf("SaveCheckpoint(diverged) = %v, want ErrDiverged", err)
	}
	after, err := os.ReadFile(path)
	backendtest.MustNil(t, err)
	if !bytes.Equal(after, before) {
		t.Errorf("SaveCheckpoint(diverged) changed the checkpoint file")
	}
}

// TestCheckpointRestoreChecks: resuming with other training data or
// another configuration is an error that names the difference.
func TestCheckpointRestoreChecks(t *testing.T) {
	c := ckptSample(t)
	trainSet, test := ckptData(t)
	be := backendtest.CPU(t)
	m, err := c.NewModel(be)
	backendtest.MustNil(t, err)
	defer m.Close()
	cfg := c.Config
	cfg.LR *= 2
	tr, err := train.NewTrainer(m, trainSet, test, cfg)
	backendtest.MustNil(t, err)
	defer tr.Close()
	if err := c.Restore(tr); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "LR is 0.1") {
		t.Errorf("Restore(other lr) = %v, want an error naming LR", err)
	}
	other, err := data.Synthetic(44, 8, 3, 9)
	backendtest.MustNil(t, err)
	tr2, err := train.NewTrainer(m, other, test, c.Config)
	backendtest.MustNil(t, err)
	defer tr2.Close()
	if err := c.Restore(tr2); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "not the same data") {
		t.Errorf("Restore(other data) = %v, want an error about the data", err)
	}
	spec := ckptSpec()
	spec.Layers[0].Filters = 4
	m3, err := nn.NewModel(be, spec, 1)
	backendtest.MustNil(t, err)
	defer m3.Close()
	if err := c.Load(m3); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("Load(other spec) = %v, want ErrCheckpoint", err)
	}
}

// FuzzLoadCheckpoint: ReadCheckpoint never panics, and what it accepts
// builds a model (on the CPU) that can run a forward pass, and writes back
// to a file that reads back the same. Seeds: testdata/fuzz/FuzzLoadCheckpoint
// (made by TestCheckpointFuzzSeeds).
func FuzzLoadCheckpoint(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadCheckpoint(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := c.Write(&buf); err != nil {
			t.Fatalf("Write of an accepted checkpoint: %v", err)
		}
		d, err := ReadCheckpoint(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("rereading an accepted checkpoint: %v", err)
		}
		if !reflect.DeepEqual(c.Spec, d.Spec) || !reflect.DeepEqual(c.State, d.State) || len(c.Params) != len(d.Params) ||
			!reflect.DeepEqual(c.Data, d.Data) || !reflect.DeepEqual(c.Notes, d.Notes) {
			t.Fatalf("reread checkpoint differs")
		}
		infos, err := c.Spec.Check()
		if err != nil {
			t.Fatalf("Check of an accepted spec: %v", err)
		}
		acts := 0
		for _, info := range infos {
			acts += info.Out.Len()
		}
		if acts > 1<<20 {
			return // accepted (up to 2²⁴), but too slow to run at fuzzing rates
		}
		be, err := cpubackend.NewCPUBackend(1)
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		m, err := c.NewModel(be)
		if err != nil {
			t.Fatalf("NewModel of an accepted checkpoint: %v", err)
		}
		defer m.Close()
		b, err := m.NewBatch(1)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Free(be)
		if err := m.Forward(b); err != nil {
			t.Fatalf("Forward: %v", err)
		}
	})
}

// TestCheckpointFuzzSeeds keeps the committed seeds of FuzzLoadCheckpoint
// in step with the format: the valid seed must still load, and with
// -update the seeds are rewritten.
func TestCheckpointFuzzSeeds(t *testing.T) {
	c := ckptSample(t)
	c.Version = "test"
	seeds := map[string][]byte{
		"valid":        ckptMutate(t, c, func(ts []NamedTensor, _ map[string]string) []NamedTensor { return ts }),
		"missing-bias": ckptMutate(t, c, func(ts []NamedTensor, _ map[string]string) []NamedTensor { return ts[1:] }),
		"wrong-spec":   ckptMutate(t, c, func(ts []NamedTensor, m map[string]string) []NamedTensor { m["spec"] = "dense3"; return ts }),
		"huge-input": ckptMutate(t, c, func(ts []NamedTensor, m map[string]string) []NamedTensor {
			m["input"] = "1x99999999x99999999"
			return ts
		}),
		"bad-config":    ckptMutate(t, c, func(ts []NamedTensor, m map[string]string) []NamedTensor { m["config"] = `{"Batch":1e99}`; return ts }),
		"shape-swapped": ckptMutate(t, c, func(ts []NamedTensor, m map[string]string) []NamedTensor { ts[0].Shape = []int{1, 3, 3, 3}; return ts }),
		"valid-data": ckptMutate(t, c, func(ts []NamedTensor, m map[string]string) []NamedTensor {
			m["data"] = `{"source":"/d","limit":40,"test_limit":0,"train":{"n":40,"shape":"1x8x8","classes":3,"sha256":"00"},"test":{"n":10,"shape":"1x8x8","classes":3,"sha256":"11"}}`
			m[NotePrefix+"x"] = "{}"
			return ts
		}),
		"nan-weight": ckptMutate(t, c, func(ts []NamedTensor, m map[string]string) []NamedTensor {
			ts[0].F32 = append([]float32(nil), ts[0].F32...)
			ts[0].F32[0] = float32(math.NaN())
			return ts
		}),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzLoadCheckpoint")
	for name, data := range seeds {
		path := filepath.Join(dir, name)
		file := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if *updateFuzz {
			backendtest.MustNil(t, os.MkdirAll(dir, 0o755))
			backendtest.MustNil(t, os.WriteFile(path, []byte(file), 0o644))
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestCheckpointFuzzSeeds -update-fuzz ./host)", err)
		}
		quoted, ok := strings.CutPrefix(strings.TrimSpace(string(got)), "go test fuzz v1\n[]byte(")
		var data string
		if ok {
			data, err = strconv.Unquote(strings.TrimSuffix(quoted, ")"))
		}
		if !ok || err != nil {
			t.Fatalf("seed %s is not a []byte corpus entry: %v", path, err)
		}
		// The valid seed must stay valid, so that the fuzzer starts from
		// an accepted checkpoint; the others must be rejected.
		_, err = ReadCheckpoint(strings.NewReader(data), int64(len(data)))
		if (err == nil) != strings.HasPrefix(name, "valid") {
			t.Errorf("seed %s: ReadCheckpoint = %v (rerun with -update-fuzz after a format change)", name, err)
		}
	}
}

var updateFuzz = flag.Bool("update-fuzz", false, "rewrite the seeds of FuzzLoadCheckpoint in testdata/fuzz")

// TestFingerprint: one changed label or pixel, or one image fewer, changes
// the fingerprint, and Diff names what differs.
func TestFingerprint(t *testing.T) {
	d, _ := ckptData(t)
	base := Fingerprint(d)
	if again := Fingerprint(d); again != base || base.Diff(again) != "" {
		t.Fatalf("Fingerprint is not stable: %v, %v", base, again)
	}
	label := *d
	label.Labels = append([]uint8(nil), d.Labels...)
	label.Labels[5] ^= 1
	pixel := *d
	pixel.Images = append([]uint8(nil), d.Images...)
	pixel.Images[len(pixel.Images)-1]++
	for _, tc := range []struct {
		name string
		d    *data.Dataset
		want string
	}{
		{"change=label", &label, "other pixels or labels"},
		{"change=pixel", &pixel, "other pixels or labels"},
		{"change=limit", d.Limit(d.N - 1), fmt.Sprintf("%d images, the checkpoint's %d", d.N-1, d.N)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Fingerprint(tc.d).Diff(base); !strings.Contains(got, tc.want) {
				t.Errorf("Diff = %q, want %q", got, tc.want)
			}
		})
	}
}

// rgb is d with three channels: channel c holds d's pixels divided by
// c+1, so that each channel has its own mean and standard deviation.
func rgb(d *data.Dataset) *data.Dataset {
	e := *d
	e.C = 3
	plane := d.H * d.W
	e.Images = make([]uint8, 0, 3*len(d.Images))
	for i := range d.N {
		for c := range 3 {
			for _, p := range d.Images[i*plane : (i+1)*plane] {
				e.Images = append(e.Images, p/uint8(c+1))
			}
		}
	}
	return &e
}

// TestCheckpointChannelNorms trains a step on three-channel images: the
// checkpoint keeps the training set's three standardisations, written as
// comma-separated numbers, and reads them back exactly.
func TestCheckpointChannelNorms(t *testing.T) {
	trainSet, test := ckptData(t)
	trainSet, test = rgb(trainSet), rgb(test)
	spec := ckptSpec()
	spec.C = 3
	m, err := nn.NewModel(backendtest.CPU(t), spec, 3)
	backendtest.MustNil(t, err)
	defer m.Close()
	cfg := ckptConfig()
	cfg.Epochs = 1
	tr, err := train.NewTrainer(m, trainSet, test, cfg)
	backendtest.MustNil(t, err)
	defer tr.Close()
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := NewCheckpoint(tr)
	backendtest.MustNil(t, err)
	if want := trainSet.ChannelNorm(); !reflect.DeepEqual(c.Norm, want) || len(want) != 3 || want[0] == want[1] {
		t.Fatalf("checkpoint norms = %v, want the training set's per channel %v", c.Norm, want)
	}
	var buf bytes.Buffer
	backendtest.MustNil(t, c.Write(&buf))
	got, err := ReadCheckpoint(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	backendtest.MustNil(t, err)
	if !reflect.DeepEqual(got.Norm, c.Norm) {
		t.Errorf("norms read back = %v, want %v", got.Norm, c.Norm)
	}
	_, meta, err := ReadSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	backendtest.MustNil(t, err)
	if n := strings.Count(meta["norm.mean"], ","); n != 2 {
		t.Errorf("metadata norm.mean = %q, want 3 comma-separated values", meta["norm.mean"])
	}
	c.Norm = c.Norm[:2]
	if err := c.Write(&buf); err == nil || !strings.Contains(err.Error(), "2 standardisations for 3 input channels") {
		t.Errorf("Write with 2 norms for 3 channels = %v, want an error naming both", err)
	}
}

// TestCheckpointResumeAugmentVal stops a run with augmentation
// (crop2,flip), a validation split and early-stopping patience at a
// checkpoint (in the middle of an epoch, at an epoch boundary), resumes
// it from the file and finishes: the parameters, velocities and every
// epoch's metrics (validation included) must equal the straight run's bit
// for bit. A run without augmentation must end elsewhere, so that the
// augmentation is known to act.
func TestCheckpointResumeAugmentVal(t *testing.T) {
	all, test := ckptData(t)
	trainSet, val, err := all.Split(8, 7) // 36 training images: 4 steps of 8
	backendtest.MustNil(t, err)
	be := backendtest.CPU(t)
	config := func() train.Config {
		cfg := ckptConfig()
		cfg.Epochs, cfg.Augment, cfg.Patience, cfg.MinDelta = 3, data.Augment{Pad: 2, Flip: true}, 5, 0.01
		return cfg
	}
	newRun := func(cfg train.Config) (*nn.Model, *train.Trainer) {
		m, err := nn.NewModel(be, ckptSpec(), 3)
		backendtest.MustNil(t, err)
		tr, err := train.NewTrainer(m, trainSet, test, cfg)
		backendtest.MustNil(t, err)
		backendtest.MustNil(t, tr.SetValidation(val))
		t.Cleanup(func() { tr.Close(); m.Close() })
		return m, tr
	}
	straight, tr := newRun(config())
	wantEpochs, err := tr.Run(context.Background())
	backendtest.MustNil(t, err)
	want := paramsAndVels(t, straight)
	plainCfg := config()
	plainCfg.Augment = data.Augment{}
	plain, tr := newRun(plainCfg)
	_, err = tr.Run(context.Background())
	backendtest.MustNil(t, err)
	if reflect.DeepEqual(paramsAndVels(t, plain), want) {
		t.Fatalf("training with and without augmentation gave the same weights")
	}
	for _, stop := range []int{2, 4, 9} {
		t.Run(fmt.Sprintf("stop=%d", stop), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ckpt.safetensors")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg := config()
			var tr1 *train.Trainer
			cfg.CheckpointEvery = 1
			cfg.OnCheckpoint = func() error {
				st, err := tr1.State()
				if err != nil || st.Step != stop {
					return err
				}
				cancel()
				return SaveCheckpoint(path, tr1)
			}
			_, tr1 = newRun(cfg)
			first, err := tr1.Run(ctx)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
			c, err := LoadCheckpoint(path)
			backendtest.MustNil(t, err)
			if c.Config.Augment != cfg.Augment || c.Config.Patience != 5 {
				t.Fatalf("checkpoint config %+v: want the augmentation and patience kept", c.Config)
			}
			m2, err := c.NewModel(be)
			backendtest.MustNil(t, err)
			defer m2.Close()
			tr2, err := train.NewTrainer(m2, trainSet, test, c.Config)
			backendtest.MustNil(t, err)
			defer tr2.Close()
			backendtest.MustNil(t, tr2.SetValidation(val))
			backendtest.MustNil(t, c.Restore(tr2))
			rest, err := tr2.Run(context.Background())
			backendtest.MustNil(t, err)
			got := paramsAndVels(t, m2)
			for i := range want {
				backendtest.EqualBits(t, fmt.Sprintf("tensor %d (param %s)", i, m2.Params()[i/2].Name), got[i], want[i])
			}
			all := append(first, rest...)
			if len(all) != len(wantEpochs) {
				t.Fatalf("%d epochs before the stop and %d after, want %d in all", len(first), len(rest), len(wantEpochs))
			}
			for i, em := range all {
				w := wantEpochs[i]
				if em.Loss != w.Loss || em.TrainAcc != w.TrainAcc || em.ValLoss != w.ValLoss || em.ValAcc != w.ValAcc ||
					em.TestAcc != w.TestAcc || em.Best != w.Best || em.Tested != w.Tested {
					t.Errorf("epoch %d: %+v, want the straight run's %+v", em.Epoch, em, w)
				}
			}
		})
	}
}

// TestConfigJSONOmitsUnused checks that the configuration of a run that
// uses no later field (augmentation, early stopping, …) is written
// without them, so that it reads in a program that predates them, and
// that a used one is written and read back.
func TestConfigJSONOmitsUnused(t *testing.T) {
	s, err := ConfigJSON(ckptConfig())
	backendtest.MustNil(t, err)
	for _, k := range []string{"Augment", "Patience", "MinDelta", "TestEveryEpoch"} {
		if strings.Contains(s, `"`+k+`"`) {
			t.Errorf("ConfigJSON = %s, want no %s (zero)", s, k)
		}
	}
	cfg := ckptConfig()
	cfg.Augment, cfg.Patience = data.Augment{Pad: 2}, 4
	s, err = ConfigJSON(cfg)
	backendtest.MustNil(t, err)
	got, err := configFromJSON(s)
	backendtest.MustNil(t, err)
	if got.Augment != cfg.Augment || got.Patience != 4 {
		t.Errorf("configFromJSON(%s) = %+v, want the augmentation and patience back", s, got)
	}
}
