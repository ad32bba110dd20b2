package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/ckpt"
	"github.com/convtrain/convtrain/host/data"
)

// writePNG writes img to path.
func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// prediction is one line of train predict's output.
type prediction struct {
	name  string
	class int
	probs []float64
}

func parsePredictions(t *testing.T, out string) []prediction {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], "probabilities of classes 0 to 9") {
		t.Fatalf("predict output has no header:\n%s", out)
	}
	var ps []prediction
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 12 {
			t.Fatalf("predict line %q: %d fields, want 12", l, len(f))
		}
		p := prediction{name: f[0]}
		var err error
		if p.class, err = strconv.Atoi(f[1]); err != nil {
			t.Fatalf("predict line %q: %v", l, err)
		}
		for _, s := range f[2:] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("predict line %q: %v", l, err)
			}
			p.probs = append(p.probs, v)
		}
		ps = append(ps, p)
	}
	return ps
}

// TestPredict classifies 5 test images from an IDX file and 2 of them
// from PNG files (gray, and RGB with equal channels): each PNG must give
// the same line as the same image in the IDX file, the predicted class
// must be the most probable one, and the probabilities must sum to 1.
// Then PyTorch (scripts/torch-checkpoint.py predict, skipped without
// /usr/bin/python3 and torch) loads the checkpoint, runs the same images,
// standardised with the checkpoint's mean and std, and must predict the
// same classes with the same probabilities.
func TestPredict(t *testing.T) {
	dir, ckptPath, _ := trainedCheckpoint(t)
	_, test, err := data.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 5, 28
	tmp := t.TempDir()
	idxPath := filepath.Join(tmp, "five.idx")
	var idx bytes.Buffer
	if err := data.WriteIDX(&idx, []int{n, size, size}, test.Images[:n*size*size]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idxPath, idx.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	gray := image.NewGray(image.Rect(0, 0, size, size))
	copy(gray.Pix, test.Images[3*size*size:4*size*size])
	rgb := image.NewRGBA(image.Rect(0, 0, size, size))
	for i, p := range test.Images[1*size*size : 2*size*size] {
		rgb.Set(i%size, i/size, color.RGBA{p, p, p, 255})
	}
	grayPath, rgbPath := filepath.Join(tmp, "three.png"), filepath.Join(tmp, "one.png")
	writePNG(t, grayPath, gray)
	writePNG(t, rgbPath, rgb)

	var stdout, stderr bytes.Buffer
	if err := run([]string{"predict", "-load", ckptPath, "-batch", "2", idxPath, grayPath, rgbPath}, &stdout, &stderr); err != nil {
		t.Fatalf("predict: %v\n%s", err, stderr.String())
	}
	ps := parsePredictions(t, stdout.String())
	if len(ps) != n+2 {
		t.Fatalf("%d predictions, want %d:\n%s", len(ps), n+2, stdout.String())
	}
	for i, p := range ps {
		sum, best := 0.0, 0
		for j, v := range p.probs {
			sum += v
			if v > p.probs[best] {
				best = j
			}
		}
		// 10 values rounded to 4 decimals: the sum is within 5e-4 of 1.
		if math.Abs(sum-1) > 5e-4 || p.probs[p.class] != p.probs[best] {
			t.Errorf("prediction %d %+v: probabilities sum to %g, class %d, most probable %d", i, p, sum, p.class, best)
		}
	}
	for _, pair := range [][2]int{{n, 3}, {n + 1, 1}} {
		png, fromIDX := ps[pair[0]], ps[pair[1]]
		if png.class != fromIDX.class || !slices.Equal(png.probs, fromIDX.probs) {
			t.Errorf("PNG %s gives class %d %v, the same image in the IDX file class %d %v", png.name, png.class, png.probs, fromIDX.class, fromIDX.probs)
		}
	}
	if want := idxPath + "[4]"; ps[4].name != want {
		t.Errorf("fifth image named %q, want %q", ps[4].name, want)
	}

	// -json: the same classes and probabilities, one object per image.
	stdout.Reset()
	if err := run([]string{"predict", "-load", ckptPath, "-json", idxPath}, &stdout, &stderr); err != nil {
		t.Fatalf("predict -json: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != n {
		t.Fatalf("predict -json: %d lines, want %d:\n%s", len(lines), n, stdout.String())
	}
	for i, l := range lines {
		var got struct {
			Image string    `json:"image"`
			Class int       `json:"class"`
			Probs []float64 `json:"probabilities"`
		}
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if got.Image != ps[i].name || got.Class != ps[i].class || len(got.Probs) != len(ps[i].probs) {
			t.Errorf("JSON %+v, table %+v", got, ps[i])
			continue
		}
		for j, v := range got.Probs {
			if math.Abs(v-ps[i].probs[j]) > 5e-5 {
				t.Errorf("image %d class %d: JSON probability %g, table %g", i, j, v, ps[i].probs[j])
			}
		}
	}

	// Wrong sizes are errors that say so.
	small := filepath.Join(tmp, "small.png")
	writePNG(t, small, image.NewGray(image.Rect(0, 0, 20, 20)))
	if err := run([]string{"predict", "-load", ckptPath, small}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "20×20 pixels; the model takes 28×28 (H×W): resize it first") {
		t.Errorf("predict on a 20×20 PNG = %v, want an error about the size", err)
	}
	if err := run([]string{"predict", "-load", ckptPath}, &stdout, &stderr); exitCode(err) != 2 {
		t.Errorf("predict without files = %v, want a usage error", err)
	}

	// PyTorch on the same checkpoint and images.
	c, err := ckpt.LoadCheckpoint(ckptPath)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, n*size*size)
	for i, p := range test.Images[:n*size*size] {
		x[i] = float32((float64(p) - c.Norm[0].Mean) / c.Norm[0].Std) // as nn.Model.Upload
	}
	xPath := filepath.Join(tmp, "x.safetensors")
	if err := ckpt.SaveSafetensorsFile(xPath, []ckpt.NamedTensor{{Name: "x", Shape: []int{n, 1, size, size}, F32: x}}, nil); err != nil {
		t.Fatal(err)
	}
	out := torchRun(t, "predict", ckptPath, xPath)
	var pred struct {
		Logits [][]float64 `json:"logits"`
		Pred   []int       `json:"pred"`
	}
	if err := json.Unmarshal(out, &pred); err != nil || len(pred.Logits) != n || len(pred.Pred) != n {
		t.Fatalf("PyTorch predict output %q: %v", out, err)
	}
	for i := range n {
		if pred.Pred[i] != ps[i].class {
			t.Errorf("image %d: class %d, PyTorch %d", i, ps[i].class, pred.Pred[i])
		}
		hi := math.Inf(-1)
		for _, v := range pred.Logits[i] {
			hi = math.Max(hi, v)
		}
		var sum float64
		for _, v := range pred.Logits[i] {
			sum += math.Exp(v - hi)
		}
		for j, v := range pred.Logits[i] {
			// Printed with 4 decimals (±5e-5); float32 logits that
			// differ by ~1e-6 change a probability by far less.
			want := math.Exp(v-hi) / sum
			if got := ps[i].probs[j]; math.Abs(got-want) > 6e-5 {
				t.Errorf("image %d class %d: probability %.4f, PyTorch %.6f", i, j, got, want)
			}
		}
	}
}

const python = "/usr/bin/python3"

// torchRun runs scripts/torch-checkpoint.py with args and returns its
// output, skipping the test when python3 with torch is not installed.
func torchRun(t *testing.T, args ...string) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("PyTorch interop: each run imports torch (seconds); -short leaves it to the full run")
	}
	if err := exec.Command(python, "-c", "import torch").Run(); err != nil {
		t.Skipf("needs %s with torch (Debian's python3-torch): %v", python, err)
	}
	cmd := exec.Command(python, append([]string{"../../scripts/torch-checkpoint.py"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("torch-checkpoint.py %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// TestPredictBadInputs: a checkpoint with a NaN weight is refused by eval
// and predict naming the tensor; one whose weights overflow gives no
// accuracy and no prediction (table or JSON), naming the images; a file
// that is neither PNG nor IDX is reported as such, after the predictions
// of the good files, with exit status 1.
func TestPredictBadInputs(t *testing.T) {
	dir, ckptPath, _ := trainedCheckpoint(t)
	tmp := t.TempDir()
	good := filepath.Join(tmp, "good.png")
	white := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range white.Pix {
		white.Pix[i] = 255
	}
	writePNG(t, good, white)
	text := filepath.Join(tmp, "text.png")
	if err := os.WriteFile(text, []byte("this is not an image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mutated := func(name string, f func(c *ckpt.Checkpoint)) string {
		c, err := ckpt.LoadCheckpoint(ckptPath)
		if err != nil {
			t.Fatal(err)
		}
		f(c)
		path := filepath.Join(tmp, name)
		if err := c.Save(path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	nan := mutated("nan.st", func(c *ckpt.Checkpoint) { c.Params[0].F32[2] = float32(math.NaN()) })
	huge := mutated("huge.st", func(c *ckpt.Checkpoint) {
		for i := range c.Params {
			for j := range c.Params[i].F32 {
				c.Params[i].F32[j] = 3e38
			}
		}
	})
	for _, tc := range []struct {
		name    string
		args    []string
		want    []string
		printed string // on stdout
	}{
		{"ckpt=nan/eval", []string{"eval", "-load", nan, "-data", dir}, []string{nan, `tensor "layer1.weight" element 2 is NaN`}, ""},
		{"ckpt=nan/predict", []string{"predict", "-load", nan, good}, []string{`tensor "layer1.weight" element 2 is NaN`}, ""},
		{"ckpt=huge/eval", []string{"eval", "-load", huge, "-data", dir}, []string{"outputs are not finite on 100 of 100 test images (the first is image 0)"}, ""},
		{"ckpt=huge/json", []string{"predict", "-json", "-load", huge, good}, []string{good + ": the model's outputs are not finite"}, ""},
		{"file=text", []string{"predict", "-load", ckptPath, text, good}, []string{"1 files or images have no prediction",
			text + `: it is named .png but is neither a PNG nor an IDX file (it starts with "this is ")`}, good},
		{"file=text/json", []string{"predict", "-json", "-load", ckptPath, good, text}, []string{"neither a PNG nor an IDX file"}, `"image":"` + good + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tc.args, &stdout, &stderr)
			if exitCode(err) != 1 {
				t.Fatalf("run(%q) = %v (exit %d), want exit 1\n%s", tc.args, err, exitCode(err), stdout.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("run(%q) = %v, want %q", tc.args, err, w)
				}
			}
			if !strings.Contains(stdout.String(), tc.printed) || (tc.printed == "" && strings.Contains(stdout.String(), "NaN")) {
				t.Errorf("run(%q) printed\n%s\nwant %q and no NaN", tc.args, stdout.String(), tc.printed)
			}
		})
	}
}
