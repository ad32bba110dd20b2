package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/ckpt"
	"github.com/convtrain/convtrain/host/data"
)

// cifarNames are the class names written to the synthetic CIFAR-10
// folder's batches.meta.txt.
var cifarNames = []string{"red", "green", "blue", "yellow", "cyan", "magenta", "white", "black", "orange", "violet"}

// cifarDir writes a CIFAR-10 binary folder of train and test images
// whose classes are separable by colour: image i has class i mod 10, a
// colour of its own per class with uniform noise of ±24 on every pixel,
// and a dark square at a random place. The same seed gives the same
// bytes.
func cifarDir(t *testing.T, train, test int) string {
	t.Helper()
	colours := [10][3]int{{200, 40, 40}, {40, 200, 40}, {40, 40, 200}, {200, 200, 40}, {40, 200, 200},
		{200, 40, 200}, {210, 210, 210}, {30, 30, 30}, {230, 130, 30}, {120, 40, 160}}
	rng := rand.New(rand.NewPCG(1, 2))
	write := func(path string, n int) {
		images, labels := make([]byte, n*3072), make([]byte, n)
		for i := range n {
			c := i % 10
			labels[i] = byte(c)
			y0, x0 := rng.IntN(24), rng.IntN(24)
			for ch := range 3 {
				for y := range 32 {
					for x := range 32 {
						v := colours[c][ch] + rng.IntN(49) - 24
						if y >= y0 && y < y0+8 && x >= x0 && x < x0+8 {
							v /= 3
						}
						images[i*3072+ch*1024+y*32+x] = byte(min(max(v, 0), 255))
					}
				}
			}
		}
		var buf bytes.Buffer
		if err := data.WriteCIFAR(&buf, images, labels); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	write(filepath.Join(dir, "data_batch_1.bin"), train)
	write(filepath.Join(dir, data.CIFAR10TestFile), test)
	if err := os.WriteFile(filepath.Join(dir, data.CIFAR10MetaFile), []byte(strings.Join(cifarNames, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCIFARResNet20 trains the resnet20 preset for one epoch on
// synthetic CIFAR-10 data separable by colour, with crop4,flip
// augmentation and a 10 % validation split, through the whole command on
// the CPU: the validation and test accuracies after the epoch must be
// well above chance (above 40 %; chance 10 %), the checkpoint must keep three per-channel
// standardisations, the class names, the split and the augmentation, and
// predict must print the class names.
func TestCIFARResNet20(t *testing.T) {
	if testing.Short() {
		t.Skip("trains resnet20 for an epoch on the CPU (about 15 s); skipped with -short")
	}
	dir := cifarDir(t, 640, 100)
	save := filepath.Join(t.TempDir(), "r20.safetensors")
	var stdout, stderr bytes.Buffer
	args := []string{"-data", dir, "-model", "resnet20", "-augment", "crop4,flip", "-val", "10%", "-epochs", "1",
		"-batch", "16", "-lr", "0.02", "-save", save}
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q) = %v\n%s%s", args, err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Log(out)
	if !strings.Contains(out, "(cifar10): 576 training, 64 validation and 100 test images of 3×32×32, 10 classes") {
		t.Errorf("no data line for the CIFAR-10 folder with a split in\n%s", out)
	}
	m := regexp.MustCompile(`epoch 1/1 .* val ([0-9.]+)%  test ([0-9.]+)%`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no epoch line with validation and test accuracy in\n%s", out)
	}
	for i, what := range []string{"validation", "test"} {
		if acc, _ := strconv.ParseFloat(m[i+1], 64); !(acc > 40) {
			t.Errorf("%s accuracy after one epoch %g%%, want above 40%% (chance 10%%; measured 67%% and 70%%)", what, acc)
		}
	}
	c, err := ckpt.LoadCheckpoint(save)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Norm) != 3 || c.Norm[0] == c.Norm[1] {
		t.Errorf("checkpoint standardisation %v, want three channels of their own", c.Norm)
	}
	rec := c.Data
	if rec == nil || rec.Format != "cifar10" || rec.Val != 64 || rec.Augment != "crop4,flip" || fmt.Sprint(rec.ClassNames) != fmt.Sprint(cifarNames) {
		t.Errorf("data record %+v: want cifar10, 64 validation images, crop4,flip and the class names", rec)
	}

	// predict names the classes: one image of the test set, written as IDX.
	test, err := data.ReadCIFAR(filepath.Join(dir, data.CIFAR10TestFile), data.CIFAR10)
	if err != nil {
		t.Fatal(err)
	}
	var idx bytes.Buffer
	if err := data.WriteIDX(&idx, []int{1, 3, 32, 32}, test.Images[:3072]); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "one.idx")
	if err := os.WriteFile(img, idx.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if err := run([]string{"predict", "-load", save, "-json", img}, &stdout, &stderr); err != nil {
		t.Fatalf("predict: %v\n%s", err, stderr.String())
	}
	var p struct {
		Class int    `json:"class"`
		Name  string `json:"name"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatalf("predict -json printed %q: %v", stdout.String(), err)
	}
	if p.Name != cifarNames[p.Class] {
		t.Errorf("predict -json = %s, want the name of class %d, %q", stdout.String(), p.Class, cifarNames[p.Class])
	}
}

// TestImageFolder trains on an image folder of PNGs of two sizes with
// -size 8: the classes are named by their folders, the checkpoint keeps
// the names and -size, and predict prints the name of each image's class.
func TestImageFolder(t *testing.T) {
	dir := t.TempDir()
	colours := map[string]color.RGBA{"cat": {200, 60, 40, 255}, "dog": {40, 80, 220, 255}}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, split := range []string{"train", "test"} {
		for name, c := range colours {
			sub := filepath.Join(dir, split, name)
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range 24 {
				side := 10 + 6*(i%2) // 10×10 and 16×16: -size brings both to 8×8
				m := image.NewRGBA(image.Rect(0, 0, side, side))
				for y := range side {
					for x := range side {
						d := uint8(rng.IntN(30))
						m.Set(x, y, color.RGBA{c.R - d, c.G + d, c.B - d, 255})
					}
				}
				var buf bytes.Buffer
				if err := png.Encode(&buf, m); err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(sub, fmt.Sprintf("%02d.png", i))
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	save := filepath.Join(t.TempDir(), "m.st")
	var stdout, stderr bytes.Buffer
	args := []string{"-data", dir, "-size", "8", "-model", "conv4x3x3,relu,dense2", "-epochs", "3", "-batch", "8", "-save", save}
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q) = %v\n%s", args, err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "(imagefolder): 48 training and 48 test images of 3×8×8, 2 classes") {
		t.Errorf("no data line for the image folder in\n%s", stdout.String())
	}
	rec := mustLoad(t, save).Data
	if rec == nil || rec.Size != 8 || fmt.Sprint(rec.ClassNames) != "[cat dog]" || rec.Format != "imagefolder" {
		t.Fatalf("data record %+v: want -size 8, the class names [cat dog], imagefolder", rec)
	}
	// info shows the three standardisations; export takes them.
	stdout.Reset()
	if err := run([]string{"info", save}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "standardised per channel (pixel values 0 to 255): channel 0 mean") ||
		!strings.Contains(stdout.String(), "classes: cat, dog") {
		t.Errorf("info = %v:\n%s", err, stdout.String())
	}
	onnx := filepath.Join(t.TempDir(), "m.onnx")
	if err := run([]string{"export", "-load", save, "-o", onnx}, &stdout, &stderr); err != nil {
		t.Errorf("export of a three-channel checkpoint: %v", err)
	}
	// predict takes the model's 8×8 input: the loaded test set's first
	// dog image, written as IDX.
	_, test, _, err := data.Load(dir, data.LoadOptions{Size: 8})
	if err != nil {
		t.Fatal(err)
	}
	k := slices.Index(test.Labels, 1)
	var idx bytes.Buffer
	if err := data.WriteIDX(&idx, []int{1, 3, 8, 8}, test.Images[k*192:(k+1)*192]); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "dog.idx")
	if err := os.WriteFile(img, idx.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if err := run([]string{"predict", "-load", save, img}, &stdout, &stderr); err != nil {
		t.Fatalf("predict: %v\n%s", err, stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "  name\n") || !regexp.MustCompile(`(?m)dog\.idx .*  (cat|dog)$`).MatchString(out) {
		t.Errorf("predict output lacks the class name column:\n%s", out)
	}
}
