package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
	"github.com/convtrain/convtrain/host/train"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// syntheticDir writes a small synthetic 28×28 data set in MNIST's file
// layout (gzip) and returns its directory.
func syntheticDir(t *testing.T) string {
	t.Helper()
	trainSet, err := data.Synthetic(320, 28, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	test, err := data.Synthetic(100, 28, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := data.WriteDir(dir, trainSet, test, true); err != nil {
		t.Fatal(err)
	}
	return dir
}

// numbers matches the measured quantities of the report (and the data
// directory), which vary from run to run or machine to machine.
var (
	dirRE    = regexp.MustCompile(`(?m)^data     \S+:`)
	numberRE = regexp.MustCompile(`(loss|train|test|epoch|elapsed) [0-9.]+(%|s|ms|m[0-9.]+s)?|[0-9.]+ images/s`)
)

func normalise(out string) string {
	out = dirRE.ReplaceAllString(out, "data     DIR:")
	return numberRE.ReplaceAllStringFunc(out, func(s string) string {
		if strings.HasSuffix(s, "images/s") {
			return "N images/s"
		}
		return strings.Fields(s)[0] + " N"
	})
}

// TestRunSynthetic trains on a synthetic data set through the whole
// command and compares the report, numbers masked, with
// testdata/synthetic.golden; the test accuracy after 3 epochs of 9 steps
// must reach 60 % (10 classes, chance 10 %; measured 77 %).
func TestRunSynthetic(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-data", syntheticDir(t), "-epochs", "3", "-batch", "32", "-threads", "2", "-limit", "300", "-seed", "3"}
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q) = %v; stderr:\n%s", args, err, stderr.String())
	}
	out := stdout.String()
	if strings.Contains(out, "\r") {
		t.Errorf("output to a non-terminal has a carriage return (progress bar):\n%q", out)
	}
	m := regexp.MustCompile(`epoch 3/3 .* test ([0-9.]+)%`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("run output has no line for epoch 3/3:\n%s", out)
	}
	if acc, _ := strconv.ParseFloat(m[1], 64); acc < 60 {
		t.Errorf("test accuracy after 3 epochs = %g%%, want ≥ 60%%:\n%s", acc, out)
	}
	golden := filepath.Join("testdata", "synthetic.golden")
	got := normalise(out)
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("run output (numbers masked) =\n%s\nwant (%s)\n%s", got, golden, want)
	}
}

// TestRunDeterministic runs the command twice with one seed and requires
// the same losses and accuracies.
func TestRunDeterministic(t *testing.T) {
	dir := syntheticDir(t)
	metrics := regexp.MustCompile(`loss \S+  train \S+  test \S+`)
	var outs [2]string
	for i := range outs {
		var stdout, stderr bytes.Buffer
		if err := run([]string{"-data", dir, "-epochs", "2", "-batch", "16", "-limit", "160"}, &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		outs[i] = strings.Join(metrics.FindAllString(stdout.String(), -1), "\n")
	}
	if outs[0] != outs[1] || strings.Count(outs[0], "loss") != 2 {
		t.Errorf("two runs with seed 1 reported\n%s\nand\n%s\nwant the same two epochs", outs[0], outs[1])
	}
}

func TestRunErrors(t *testing.T) {
	dir := syntheticDir(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"case=bad-flag", []string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{"case=extra-arg", []string{"mnist"}, 2, `unknown subcommand "mnist": want eval, predict, info`},
		{"case=arg-after-flags", []string{"-epochs", "1", "mnist"}, 2, `unexpected arguments ["mnist"] after the flags`},
		{"case=lr-huge", []string{"-lr", "1e300"}, 2, "-lr 1e+300: want > 0 and at most 1e6"},
		{"case=model-empty", []string{"-model", ""}, 2, `-model "": empty; give layers such as conv8x5x5`},
		{"case=model-zero", []string{"-model", "@/dev/zero"}, 2, "-model @/dev/zero: not a text file (byte 0 is 0x00)"},
		{"case=test-limit", []string{"-test-limit", "-1"}, 2, "-test-limit -1: want ≥ 0"},
		{"case=epochs", []string{"-epochs", "0"}, 2, "-epochs 0: want ≥ 1"},
		{"case=batch", []string{"-batch", "5000"}, 2, "-batch 5000: want 1 to 4096"},
		{"case=lr", []string{"-lr", "-1"}, 2, "-lr -1: want > 0"},
		{"case=lr-nan", []string{"-lr", "NaN"}, 2, "-lr NaN: want > 0"},
		{"case=momentum", []string{"-momentum", "1"}, 2, "-momentum 1: want in [0, 1)"},
		{"case=weight-decay", []string{"-weight-decay", "-0.1"}, 2, "-weight-decay -0.1: want ≥ 0"},
		{"case=schedule", []string{"-schedule", "linear"}, 2, `-schedule "linear": want constant, step or cosine`},
		{"case=gamma", []string{"-gamma", "2"}, 2, "-gamma 2: want in (0, 1]"},
		{"case=limit", []string{"-limit", "-5"}, 2, "-limit -5: want ≥ 0"},
		{"case=device", []string{"-device", "tpu"}, 2, `-device "tpu": want one of cpu, gpu, sim`},
		{"case=threads", []string{"-threads", "0"}, 2, "-threads 0: want 1 to 4096"},
		{"case=not-a-number", []string{"-epochs", "three"}, 2, `invalid value "three" for flag -epochs`},
		{"case=missing-data", []string{"-data", filepath.Join(dir, "nope")}, 1, "nope: no such directory; give a directory of IDX files (MNIST's layout), CIFAR-10/100 binary batches or an image folder"},
		{"case=missing-files", []string{"-data", t.TempDir()}, 1, "unknown data format; looked for cifar10"},
		{"case=batch-above-limit", []string{"-data", dir, "-limit", "10", "-batch", "32"}, 1, "-batch 32: only 10 training images (-limit 10); give -batch 10 or less"},
		{"case=help", []string{"-h"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tc.args, &stdout, &stderr)
			if got := exitCode(err); got != tc.code {
				t.Errorf("run(%q): exit code %d (error %v), want %d", tc.args, got, err, tc.code)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error()+stderr.String(), tc.want)) {
				t.Errorf("run(%q) = %v, stderr %q; want %q", tc.args, err, stderr.String(), tc.want)
			}
			if tc.code == 2 || tc.code == 0 {
				if !strings.Contains(stderr.String(), "usage: train") && !strings.HasPrefix(tc.want, "unknown subcommand") && !strings.HasPrefix(tc.want, "unexpected") && !strings.HasPrefix(tc.want, "-") {
					t.Errorf("run(%q): stderr %q, want the usage", tc.args, stderr.String())
				}
			}
		})
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	p := &progressBar{w: &buf, enabled: true, width: 120, batch: 64, test: 10000}
	p.update(train.Progress{Epoch: 1, Epochs: 3, Step: 468, Steps: 937, Loss: 0.25, ImagesPerSec: 5000})
	p.update(train.Progress{Epoch: 1, Epochs: 3, Step: 937, Steps: 937, Loss: 0.125, ImagesPerSec: 5001})
	p.clear()
	line2 := "epoch 1/3 [==============================] 937/937  loss 0.1250  5001 images/s  evaluating 10000 test images"
	want := "\repoch 1/3 [==============>               ] 468/937  loss 0.2500  5000 images/s  ETA 6s" +
		"\r" + line2 + "\r" + strings.Repeat(" ", len(line2)) + "\r"
	if buf.String() != want {
		t.Errorf("progress bar wrote\n%q\nwant\n%q", buf.String(), want)
	}
	// Narrower terminals: a shorter bar, then none, then a cut line; never
	// as wide as the terminal (no wrap).
	for _, tc := range []struct {
		width int
		want  string
	}{
		{80, "\repoch 1/3 [===========>           ] 468/937  loss 0.2500  5000 images/s  ETA 6s"},
		{60, "\repoch 1/3 468/937  loss 0.2500  5000 images/s  ETA 6s"},
		{30, "\repoch 1/3 468/937  loss 0.250"},
	} {
		buf.Reset()
		p := &progressBar{w: &buf, enabled: true, width: tc.width, batch: 64}
		p.update(train.Progress{Epoch: 1, Epochs: 3, Step: 468, Steps: 937, Loss: 0.25, ImagesPerSec: 5000})
		if got := buf.String(); got != tc.want || len([]rune(got))-1 >= tc.width {
			t.Errorf("width=%d: progress bar wrote %q, want %q", tc.width, got, tc.want)
		}
	}
	buf.Reset()
	off := &progressBar{w: &buf}
	off.update(train.Progress{Epoch: 1, Epochs: 1, Step: 1, Steps: 2})
	off.clear()
	if buf.Len() != 0 {
		t.Errorf("disabled progress bar wrote %q, want nothing", buf.String())
	}
}

// TestRunSimSmall: -test-limit makes a small run on the simulator small:
// 4 steps of 16 images and 32 test images, where the whole test set
// would be evaluated without it.
func TestRunSimSmall(t *testing.T) {
	dir := syntheticDir(t)
	var stdout, stderr bytes.Buffer
	args := []string{"-data", dir, "-device", "sim", "-threads", "2", "-limit", "64", "-test-limit", "32", "-batch", "16", "-epochs", "1",
		"-model", "conv4x5x5s2,relu,maxpool2,dense10"}
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q) = %v\n%s", args, err, stderr.String())
	}
	for _, want := range []string{"64 training and 32 test images", "train    1 epoch of 4 steps of 16 images", "epoch 1/1"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestRunLossMSE: -loss mse trains with the squared error (the checkpoint
// says so, and predict prints outputs rather than probabilities); an
// unknown loss and -loss with -resume are usage errors.
func TestRunLossMSE(t *testing.T) {
	dir := syntheticDir(t)
	path := filepath.Join(t.TempDir(), "mse.st")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-loss", "mse", "-epochs", "1", "-save", path), &stdout, &stderr); err != nil {
		t.Fatalf("train -loss mse: %v\n%s", err, stderr.String())
	}
	c := mustLoad(t, path)
	if c.Spec.Loss != nn.MSELoss {
		t.Errorf("checkpoint loss %v, want %v", c.Spec.Loss, nn.MSELoss)
	}
	img := filepath.Join(t.TempDir(), "one.idx")
	var idx bytes.Buffer
	if err := data.WriteIDX(&idx, []int{28, 28}, make([]byte, 28*28)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, idx.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if err := run([]string{"predict", "-load", path, img}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "outputs of classes 0 to 9") {
		t.Errorf("predict with an MSE model: %v\n%s", err, stdout.String())
	}
	for _, args := range [][]string{{"-loss", "hinge"}, {"-resume", path, "-loss", "ce"}} {
		if err := run(args, &stdout, &stderr); exitCode(err) != 2 || !strings.Contains(err.Error(), "-loss") {
			t.Errorf("run(%q) = %v (exit %d), want exit 2 naming -loss", args, err, exitCode(err))
		}
	}
}

// TestRunCorruptLabels: with the default network, one corrupt label (200
// among 10 classes) or a class present only in the test set is refused,
// naming the classes without training images and the image with the
// largest label, instead of silently widening the network; with -model
// the user decides.
func TestRunCorruptLabels(t *testing.T) {
	trainSet, err := data.Synthetic(320, 28, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	test, err := data.Synthetic(100, 28, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := *trainSet
	corrupt.Labels = append([]uint8(nil), trainSet.Labels...)
	corrupt.Labels[37] = 200
	corrupt.Classes = 201
	testOnly := *test
	testOnly.Labels = append([]uint8(nil), test.Labels...)
	testOnly.Labels[5] = 10
	testOnly.Classes = 11
	trainOnly := *trainSet
	trainOnly.Classes = 11
	for _, tc := range []struct {
		name        string
		train, test *data.Dataset
		want        string
	}{
		{"label=200", &corrupt, func() *data.Dataset { d := *test; d.Classes = 201; return &d }(), "the labels imply 201 classes (the largest label, 200, is on training image 37), but classes 10 to 199 have no training image"},
		{"class=test-only", &trainOnly, &testOnly, "the labels imply 11 classes (the largest label, 10, is on test image 5), but class 10 has no training image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := data.WriteDir(dir, tc.train, tc.test, false); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err := run([]string{"-data", dir, "-epochs", "1", "-threads", "1"}, &stdout, &stderr)
			if exitCode(err) != 1 || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "give -model with a last layer of dense") {
				t.Errorf("run = %v (exit %d), want exit 1 and %q", err, exitCode(err), tc.want)
			}
			if err := run([]string{"-data", dir, "-epochs", "1", "-threads", "1", "-limit", "32", "-batch", "16", "-model", fmt.Sprintf("conv4x5x5s2,relu,maxpool2,dense%d", tc.train.Classes)}, &stdout, &stderr); err != nil {
				t.Errorf("with -model: %v", err)
			}
		})
	}
}

// TestPresetRecipe checks that a preset with a recipe (nn.PresetRecipes)
// sets -lr and -weight-decay where they are not given, and only there:
// not over given flags, not with Adam, not for other models, not when
// resuming (the checkpoint's values rule then).
func TestPresetRecipe(t *testing.T) {
	r := nn.PresetRecipes["resnet8"]
	for _, tc := range []struct {
		args   []string
		lr, wd float64
	}{
		{[]string{"-model", "resnet8"}, r.LR, r.WeightDecay},
		{[]string{"-model", " ResNet20 "}, nn.PresetRecipes["resnet20"].LR, nn.PresetRecipes["resnet20"].WeightDecay},
		{[]string{"-model", "resnet8", "-lr", "0.02"}, 0.02, r.WeightDecay},
		{[]string{"-model", "resnet8", "-weight-decay", "0"}, r.LR, 0},
		{[]string{"-model", "resnet8", "-optimizer", "adam"}, 0.05, 0},
		{[]string{"-model", "lenet"}, 0.05, 0},
		{[]string{}, 0.05, 0},
		{[]string{"-model", "conv8x3x3,relu,gap,dense10"}, 0.05, 0},
		{[]string{"-model", "resnet8", "-resume", "x.safetensors"}, 0.05, 0},
	} {
		o, err := parse(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("parse %q: %v", tc.args, err)
		}
		if o.lr != tc.lr || o.wd != tc.wd {
			t.Errorf("parse %q: lr %g, weight decay %g; want %g, %g", tc.args, o.lr, o.wd, tc.lr, tc.wd)
		}
	}
}
