package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/convtrain/convtrain/host/train"
	"gonum.org/v1/plot/plotter"
)

// TestRunMetricsAndPlot trains 2 epochs of 23 steps on synthetic data with
// -metrics and -plot and checks the JSON lines and the PNG: every line
// parses; per epoch there are ⌈23/10⌉ = 3 step records (steps 10, 20, 23)
// and then one epoch record; steps increase; the step records' window
// means, weighted by their window lengths, give the epoch record's mean
// loss and accuracy (1e−9 relative: float64 arithmetic on float32 sums);
// and the image decodes at 900×700 and shows the three series' colours.
func TestRunMetricsAndPlot(t *testing.T) {
	dir := t.TempDir()
	metricsPath, plotPath := filepath.Join(dir, "m.jsonl"), filepath.Join(dir, "curves.png")
	var stdout, stderr bytes.Buffer
	args := []string{"-data", syntheticDir(t), "-epochs", "2", "-batch", "13", "-limit", "300", "-threads", "1",
		"-metrics", metricsPath, "-plot", plotPath}
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q) = %v; stderr:\n%s", args, err, stderr.String())
	}

	recs := readMetrics(t, metricsPath)
	const steps = 300 / 13 // 23
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, r.Kind)
	}
	if got, want := strings.Join(kinds, ","), "step,step,step,epoch,step,step,step,epoch"; got != want {
		t.Fatalf("record kinds %s, want %s", got, want)
	}
	prev := 0
	for e := 0; e < 2; e++ {
		block := recs[4*e : 4*e+4]
		var lossSum, accSum float64
		done := 0
		for i, r := range block[:3] {
			wantStep := min(10*(i+1), steps)
			if r.Epoch != e+1 || r.EpochStep != wantStep || r.Step != e*steps+wantStep || r.Steps != steps || r.Epochs != 2 {
				t.Errorf("record %+v: want epoch %d, epoch step %d, step %d of %d", r, e+1, wantStep, e*steps+wantStep, steps)
			}
			if r.Step <= prev || r.Loss == nil || r.TrainAcc == nil || r.LR == nil || r.ImagesPerSec == nil || r.Elapsed == nil {
				t.Errorf("record %+v: steps must increase and every number be present", r)
			}
			if r.TestLoss != nil || r.TestAcc != nil {
				t.Errorf("step record %+v has test metrics", r)
			}
			prev = r.Step
			n := float64(wantStep - done)
			lossSum += *r.Loss * n
			accSum += *r.TrainAcc * n
			done = wantStep
		}
		ep := block[3]
		if ep.Epoch != e+1 || ep.Step != (e+1)*steps || ep.TestLoss == nil || ep.TestAcc == nil || ep.Loss == nil || ep.TrainAcc == nil {
			t.Fatalf("epoch record %+v: want epoch %d at step %d with train and test metrics", ep, e+1, (e+1)*steps)
		}
		if !(*ep.TestAcc >= 0 && *ep.TestAcc <= 1) || !(*ep.TrainAcc >= 0 && *ep.TrainAcc <= 1) {
			t.Errorf("epoch record %+v: accuracies outside [0, 1]", ep)
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{{"loss", lossSum / steps, *ep.Loss}, {"train accuracy", accSum / steps, *ep.TrainAcc}} {
			if math.Abs(c.got-c.want) > 1e-9*math.Abs(c.want) {
				t.Errorf("epoch %d: step records' %s averages to %.12g, the epoch record says %.12g", e+1, c.name, c.got, c.want)
			}
		}
	}

	if st, err := os.Stat(plotPath); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("plot file: %v, %v; want mode 0644", st, err)
	}
	f, err := os.Open(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", plotPath, err)
	}
	if b := img.Bounds(); b.Dx() != 900 || b.Dy() != 700 {
		t.Errorf("plot is %d×%d pixels, want 900×700", b.Dx(), b.Dy())
	}
	for name, c := range map[string][3]uint32{"training windows": rgb(trainColor), "epoch means": rgb(epochColor), "test": rgb(testColor)} {
		if n := countColor(img, c); n < 50 {
			t.Errorf("plot has %d pixels of the %s colour %v, want a curve (≥ 50)", n, name, c)
		}
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, ".plot-*")); len(matches) != 0 {
		t.Errorf("temporary plot files left behind: %v", matches)
	}
}

type testRecord struct {
	Kind                       string
	Epoch, Epochs, Step, Steps int
	EpochStep                  int `json:"epoch_step"`
	Loss, LR                   *float64
	TrainAcc                   *float64 `json:"train_acc"`
	TestLoss                   *float64 `json:"test_loss"`
	TestAcc                    *float64 `json:"test_acc"`
	ImagesPerSec               *float64 `json:"images_per_sec"`
	Elapsed                    *float64 `json:"elapsed_s"`
}

// readMetrics parses a metrics file strictly: one JSON object per line,
// no unknown fields.
func readMetrics(t *testing.T, path string) []testRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []testRecord
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var r testRecord
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s:%d: %v: %s", path, line, err, sc.Text())
		}
		if dec.More() {
			t.Fatalf("%s:%d: more than one value on the line", path, line)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func rgb(c interface{ RGBA() (r, g, b, a uint32) }) [3]uint32 {
	r, g, b, _ := c.RGBA()
	return [3]uint32{r >> 8, g >> 8, b >> 8}
}

func countColor(img image.Image, c [3]uint32) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if rgb(img.At(x, y)) == c {
				n++
			}
		}
	}
	return n
}

// TestWindowed checks the conversion of running epoch means into window
// means, also in an epoch resumed from its middle (Averaged < Step).
func TestWindowed(t *testing.T) {
	var w windowed
	for _, c := range []struct {
		p         train.Progress
		loss, acc float64
	}{
		// Epoch 1: steps 1–10 mean 2, steps 11–20 mean 1 (running mean 1.5).
		{train.Progress{Epoch: 1, Step: 10, Averaged: 10, Loss: 2, TrainAcc: 0.25}, 2, 0.25},
		{train.Progress{Epoch: 1, Step: 20, Averaged: 20, Loss: 1.5, TrainAcc: 0.5}, 1, 0.75},
		// Epoch 2 resumed after step 5: 3 steps averaged, then 8.
		{train.Progress{Epoch: 2, Step: 8, Averaged: 3, Loss: 0.5, TrainAcc: 1}, 0.5, 1},
		{train.Progress{Epoch: 2, Step: 13, Averaged: 8, Loss: 0.5 * 3 / 8, TrainAcc: 3.0 / 8}, 0, 0},
	} {
		loss, acc := w.next(c.p)
		if math.Abs(loss-c.loss) > 1e-15 || math.Abs(acc-c.acc) > 1e-15 {
			t.Errorf("next(%+v) = %g, %g; want %g, %g", c.p, loss, acc, c.loss, c.acc)
		}
	}
}

// TestMetricsNonFinite checks that a NaN or infinite value is written as
// JSON null, which every JSON reader accepts.
func TestMetricsNonFinite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.jsonl")
	l, err := openMetrics(path, false)
	if err != nil {
		t.Fatal(err)
	}
	l.epoch(train.EpochMetrics{Epoch: 1, Epochs: 1, Loss: math.NaN(), TestLoss: math.Inf(1), TrainAcc: 0.5, Elapsed: time.Second}, 7, 7)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readMetrics(t, path)
	if len(recs) != 1 || recs[0].Loss != nil || recs[0].TrainAcc == nil || *recs[0].TrainAcc != 0.5 || recs[0].TestLoss != nil {
		t.Errorf("records %+v: want one with null loss and test loss and train accuracy 0.5", recs)
	}
	// Appending (a resumed run) keeps the first line.
	l, err = openMetrics(path, true)
	if err != nil {
		t.Fatal(err)
	}
	l.epoch(train.EpochMetrics{Epoch: 2, Epochs: 2}, 14, 7)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if recs := readMetrics(t, path); len(recs) != 2 || recs[1].Epoch != 2 {
		t.Errorf("after appending: %+v, want 2 records", recs)
	}
}

// TestPlotEmpty renders curves without a single point (a run stopped
// before its first report): the image must still be a valid PNG.
func TestPlotEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := (&curves{title: "empty"}).render(&buf, plotWidth, plotHeight); err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(&buf)
	if err != nil || cfg.Width != 900 || cfg.Height != 700 {
		t.Errorf("empty plot: %+v, %v; want a 900×700 PNG", cfg, err)
	}
}

// TestRunOptimizers trains with each optimiser through the command and
// checks the description line and that both epochs ran;
// bad optimiser flags are usage errors.
func TestRunOptimizers(t *testing.T) {
	dir := syntheticDir(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-nesterov"}, "SGD (Nesterov) lr 0.05 (cosine) momentum 0.9 weight decay 0"},
		{[]string{"-optimizer", "adam", "-lr", "0.002"}, "Adam lr 0.002 (cosine) β1 0.9 β2 0.999 ε 1e-08 weight decay 0"},
		{[]string{"-optimizer", "adamw", "-lr", "0.002", "-weight-decay", "0.01", "-beta2", "0.99"}, "AdamW lr 0.002 (cosine) β1 0.9 β2 0.99 ε 1e-08 weight decay 0.01"},
	} {
		t.Run("args="+strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"-data", dir, "-epochs", "2", "-batch", "32", "-limit", "300", "-threads", "1"}, c.args...)
			if err := run(args, &stdout, &stderr); err != nil {
				t.Fatalf("run(%q) = %v; stderr:\n%s", args, err, stderr.String())
			}
			if !strings.Contains(stdout.String(), c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, stdout.String())
			}
			if !strings.Contains(stdout.String(), "epoch 2/2") {
				t.Errorf("output lacks the second epoch:\n%s", stdout.String())
			}
		})
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-optimizer", "rmsprop"}, `-optimizer "rmsprop": want sgd, adam or adamw`},
		{[]string{"-optimizer", "adam", "-nesterov"}, "-nesterov is an option of -optimizer sgd"},
		{[]string{"-nesterov", "-momentum", "0"}, "-nesterov needs -momentum > 0"},
		{[]string{"-beta1", "1"}, "-beta1 1: want in [0, 1)"},
		{[]string{"-beta2", "-0.5"}, "-beta2 -0.5: want in [0, 1)"},
		{[]string{"-eps", "NaN"}, "-eps NaN: want ≥ 0"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(c.args, &stdout, &stderr)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%q) = %v (exit %d), want a usage error containing %q", c.args, err, exitCode(err), c.want)
		}
	}
}

// TestLogTicks: the loss axis has at least two labelled ticks over any
// range, also one narrower than a factor of 2 (plot.LogTicks labels only
// the powers of ten: one label, "1", on 0.9 to 1.3).
func TestLogTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   []string // labels that must be present
	}{
		{0.9, 1.3, []string{"0.9", "1"}},
		{0.02, 3, []string{"0.02", "0.05", "0.1", "0.2", "0.5", "1", "2"}},
		{1.01, 1.02, []string{"1.01", "1.02"}},
		{0.0004, 0.0007, []string{"0.0004", "0.0005", "0.0006", "0.0007"}},
	} {
		t.Run(fmt.Sprintf("lo=%g,hi=%g", tc.lo, tc.hi), func(t *testing.T) {
			var labels []string
			for _, tk := range (logTicks{}).Ticks(tc.lo, tc.hi) {
				if tk.Value < tc.lo || tk.Value > tc.hi {
					t.Errorf("tick %g outside [%g, %g]", tk.Value, tc.lo, tc.hi)
				}
				if tk.Label != "" {
					labels = append(labels, tk.Label)
				}
			}
			for _, w := range tc.want {
				if !slices.Contains(labels, w) {
					t.Errorf("labels %q, want %q among them", labels, w)
				}
			}
		})
	}
}

// TestPlotClipNote: when the accuracy axis starts above the first
// training windows, its label says so.
func TestPlotClipNote(t *testing.T) {
	c := &curves{
		trainAcc: plotter.XYs{{X: 0.1, Y: 12}, {X: 0.5, Y: 85}, {X: 1, Y: 93}},
		epochAcc: plotter.XYs{{X: 1, Y: 90}}, testAcc: plotter.XYs{{X: 1, Y: 94}},
	}
	p, err := c.panel("", "accuracy (%)", c.trainAcc, c.epochAcc, c.testAcc, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := "accuracy (%); training windows below 88% not shown"; p.Y.Label.Text != want {
		t.Errorf("y label %q, want %q", p.Y.Label.Text, want)
	}
}

// TestPlotResumeHistory: a checkpoint keeps the curves, so that a plot
// drawn by a resumed run has the epochs before the resume: after 1 epoch
// and a resume for a second, the checkpoint's curves have both epochs'
// test points and training windows from the start.
func TestPlotResumeHistory(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	ck, plotPath := filepath.Join(tmp, "ck.st"), filepath.Join(tmp, "p.png")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-epochs", "1", "-save", ck), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-resume", ck, "-epochs", "2", "-plot", plotPath}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var c curves
	c.restore(mustLoad(t, ck).Notes[curvesNote])
	if len(c.testAcc) != 2 || c.testAcc[0].X != 1 || c.testAcc[1].X != 2 || len(c.trainLoss) == 0 || c.trainLoss[0].X > 1 {
		t.Errorf("curves after the resume: test %v, training windows %v; want epochs 1 and 2 and windows from epoch 1", c.testAcc, c.trainLoss)
	}
	if _, err := os.Stat(plotPath); err != nil {
		t.Error(err)
	}
}
