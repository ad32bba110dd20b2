package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convtrain/convtrain/host/ckpt"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/train"
)

// tinyArgs train a small model on the synthetic data of syntheticDir: 96
// images in 6 steps of 16 per epoch, 2 epochs, on the CPU.
func tinyArgs(dir string, more ...string) []string {
	return append([]string{"-data", dir, "-limit", "96", "-batch", "16", "-epochs", "2", "-threads", "1",
		"-model", "conv4x5x5s2,relu,maxpool2,dense10", "-seed", "4"}, more...)
}

// countCtx is a context whose Err becomes context.Canceled from its
// (n+1)th call: the trainer asks before every step and every evaluation
// batch, so it stops the run at a deterministic point, as a Ctrl-C there
// would.
type countCtx struct {
	context.Context
	n atomic.Int64
}

func (c *countCtx) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func (c *countCtx) Done() <-chan struct{} { return nil }

func (c *countCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// equalCheckpoints fails unless a and b hold the same tensors bit for bit
// and the same position.
func equalCheckpoints(t *testing.T, a, b *ckpt.Checkpoint) {
	t.Helper()
	if a.State.Step != b.State.Step || a.State.Epoch != b.State.Epoch || !bytes.Equal(a.State.Shuffle, b.State.Shuffle) {
		t.Errorf("positions differ: %+v and %+v", a.State, b.State)
	}
	at, bt := append(a.Params, a.Optim...), append(b.Params, b.Optim...)
	if len(at) != len(bt) {
		t.Fatalf("%d and %d tensors", len(at), len(bt))
	}
	for i := range at {
		if at[i].Name != bt[i].Name || len(at[i].F32) != len(bt[i].F32) {
			t.Fatalf("tensor %d: %s (%d) and %s (%d)", i, at[i].Name, len(at[i].F32), bt[i].Name, len(bt[i].F32))
		}
		for j := range at[i].F32 {
			if math.Float32bits(at[i].F32[j]) != math.Float32bits(bt[i].F32[j]) {
				t.Fatalf("%s[%d] = %g resumed, %g straight", at[i].Name, j, bt[i].F32[j], at[i].F32[j])
			}
		}
	}
}

func mustLoad(t *testing.T, path string) *ckpt.Checkpoint {
	t.Helper()
	c, err := ckpt.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRunInterruptResume trains 12 steps straight with -save; then the
// same run interrupted (as by Ctrl-C: the context is cancelled) during the
// first epoch's evaluation and in the middle of the second epoch, which
// must save a checkpoint there and exit with status 130; then -resume from
// it: the final checkpoint must equal the straight run's bit for bit.
func TestRunInterruptResume(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	straight, stopped, resumed := filepath.Join(tmp, "straight.st"), filepath.Join(tmp, "stopped.st"), filepath.Join(tmp, "resumed.st")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-save", straight, "-save-every", "4"), &stdout, &stderr); err != nil {
		t.Fatalf("straight run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "saved    "+straight) {
		t.Errorf("straight run does not report its checkpoint:\n%s", stdout.String())
	}
	// An epoch's line without its speed and times: a resumed epoch must
	// report the same loss and accuracies as the straight run's.
	epochLine := func(out string, e int) string {
		return regexp.MustCompile(fmt.Sprintf(`(?m)^epoch %d/2  loss \S+  train \S+  test \S+`, e)).FindString(out)
	}
	straightOut := stdout.String()

	for _, tc := range []struct {
		name  string
		calls int64 // ctx.Err calls before the interruption
		want  train.TrainState
	}{
		// 6 steps and 3 of the 7 evaluation batches (100 test images) of
		// epoch 1: resuming repeats the evaluation.
		{"at=evaluation", 6 + 3, train.TrainState{Epoch: 0, StepEpoch: 6, Step: 6}},
		// 6 steps and 7 evaluation batches of epoch 1, 3 steps of epoch 2.
		{"at=mid-epoch", 6 + 7 + 3, train.TrainState{Epoch: 1, StepEpoch: 3, Step: 9}},
		// Epoch 1 and its evaluation, stopped before the first step of
		// epoch 2, whose order was drawn already: the checkpoint must
		// hold the shuffling state before it (found by TestSignalsSurvived).
		{"at=epoch-start", 6 + 7, train.TrainState{Epoch: 1, StepEpoch: 0, Step: 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := &countCtx{Context: context.Background()}
			ctx.n.Store(tc.calls)
			var stdout, stderr bytes.Buffer
			err := runContext(ctx, tinyArgs(dir, "-save", stopped), &stdout, &stderr)
			if code := exitCode(err); code != 130 || !strings.Contains(err.Error(), "train -resume "+stopped) {
				t.Fatalf("interrupted run: exit code %d, error %v; want 130 and how to resume", code, err)
			}
			c := mustLoad(t, stopped)
			if st := c.State; st.Epoch != tc.want.Epoch || st.StepEpoch != tc.want.StepEpoch || st.Step != tc.want.Step {
				t.Fatalf("interrupted at %+v, want %+v", st, tc.want)
			}
			args := []string{"-data", dir, "-limit", "96", "-threads", "1", "-resume", stopped, "-save", resumed}
			stdout.Reset()
			if err := run(args, &stdout, &stderr); err != nil {
				t.Fatalf("run(%q) = %v\n%s", args, err, stderr.String())
			}
			st := tc.want
			if !strings.Contains(stdout.String(), fmt.Sprintf("resume   %s: %s and %s done (step %d in all)", stopped, plural(st.Epoch, "epoch"), plural(st.StepEpoch, "step"), st.Step)) ||
				!strings.Contains(stdout.String(), "epoch 2/2") || strings.Contains(stdout.String(), "epoch 1/2") != (st.Epoch == 0) {
				t.Errorf("resumed run output:\n%s", stdout.String())
			}
			equalCheckpoints(t, mustLoad(t, straight), mustLoad(t, resumed))
			if evalOnly := regexp.MustCompile(`(?m)^epoch 1/2 .*  no steps left  `).MatchString(stdout.String()); evalOnly != (st.StepEpoch == 6) || strings.Contains(stdout.String(), " 0 images/s") {
				t.Errorf("an epoch resumed after its last step must say 'no steps left' (and no other):\n%s", stdout.String())
			}
			for e := st.Epoch + 1; e <= 2; e++ {
				if got, want := epochLine(stdout.String(), e), epochLine(straightOut, e); got == "" || got != want {
					t.Errorf("resumed run: %q, straight run: %q", got, want)
				}
			}
		})
	}

	// Resuming a finished run trains nothing, unless -epochs asks for more.
	stdout.Reset()
	if err := run([]string{"-data", dir, "-limit", "96", "-resume", resumed}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "nothing to train") {
		t.Errorf("resume a finished run: %v\n%s", err, stdout.String())
	}
	stdout.Reset()
	if err := run([]string{"-data", dir, "-limit", "96", "-resume", resumed, "-epochs", "3"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "epoch 3/3") ||
		!strings.Contains(stdout.String(), "note     -epochs 3: the cosine schedule now spans 3 epochs, not 2") {
		t.Errorf("resume with -epochs 3: %v\n%s", err, stdout.String())
	}
	// Other data is refused.
	if err := run([]string{"-data", dir, "-limit", "112", "-resume", resumed}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "trained with -limit 96") {
		t.Errorf("resume on other data = %v, want an error", err)
	}
}

// TestRunResumeAlone: a run of -limit 96 on -data DIR, interrupted, resumes
// with -resume alone (the data, its limit and the training settings come
// from the checkpoint), saves to the resumed file, keeps the checkpoint it
// resumed from as .prev, and ends bit-identical to the run straight
// through. Data flags that contradict the checkpoint are refused naming
// the difference; so is an -epochs before its position.
func TestRunResumeAlone(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	straight, stopped := filepath.Join(tmp, "straight.st"), filepath.Join(tmp, "stopped.st")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-save", straight), &stdout, &stderr); err != nil {
		t.Fatalf("straight run: %v\n%s", err, stderr.String())
	}
	ctx := &countCtx{Context: context.Background()}
	ctx.n.Store(6 + 7 + 3)
	err := runContext(ctx, tinyArgs(dir, "-save", stopped), &stdout, &stderr)
	if exitCode(err) != 130 || !strings.Contains(err.Error(), "continue with train -resume "+stopped) {
		t.Fatalf("interrupted run = %v, want exit 130 and how to resume", err)
	}
	before, err := os.ReadFile(stopped)
	if err != nil {
		t.Fatal(err)
	}

	// Contradicting flags, before any work.
	other := t.TempDir()
	set, err := data.Synthetic(320, 28, 10, 9)
	if err != nil {
		t.Fatal(err)
	}
	test, err := data.Synthetic(100, 28, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := data.WriteDir(other, set, test, false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"flag=limit", []string{"-resume", stopped, "-limit", "112"}, 2, []string{"-limit 112 with -resume", "trained with -limit 96"}},
		{"flag=data", []string{"-resume", stopped, "-data", other}, 1, []string{"training data differs", "other pixels or labels", "it trained on " + dir + " with -limit 96"}},
		{"flag=epochs", []string{"-resume", stopped, "-epochs", "1"}, 2, []string{"-epochs 1 with -resume", "has done 1 epoch and 3 steps of epoch 2", "give -epochs 2 or more"}},
		{"flag=lr", []string{"-resume", stopped, "-lr", "0.1"}, 2, []string{"-lr 0.1 with -resume " + stopped + ": the checkpoint trained with -lr 0.05; leave -lr out"}},
		{"flag=model", []string{"-resume", stopped, "-model", "conv4x5x5,relu,maxpool2,dense10"}, 2, []string{"-model conv4x5x5,relu,maxpool2,flatten,dense10 with -resume", "trained with -model conv4x5x5s2,relu,maxpool2,flatten,dense10"}},
		{"flag=optimizer", []string{"-resume", stopped, "-optimizer", "adam"}, 2, []string{"-optimizer adam with -resume", "trained with -optimizer sgd"}},
		{"flag=beta1", []string{"-resume", stopped, "-beta1", "0.8"}, 2, []string{"the checkpoint's optimizer is sgd, to which -beta1 does not apply"}},
		{"flag=sync-bn", []string{"-resume", stopped, "-sync-bn"}, 2, []string{"-sync-bn true with -resume", "trained with -sync-bn false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, &stdout, &stderr)
			if exitCode(err) != tc.code {
				t.Fatalf("run(%q) = %v (exit %d), want exit %d", tc.args, err, exitCode(err), tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("run(%q) = %v, want %q", tc.args, err, w)
				}
			}
		})
	}

	// The first run's command with -resume added: the same values are no
	// contradiction.
	again := filepath.Join(tmp, "again.st")
	if err := run(tinyArgs(dir, "-resume", stopped, "-save", again), &stdout, &stderr); err != nil {
		t.Fatalf("resume with the first run's flags: %v", err)
	}
	equalCheckpoints(t, mustLoad(t, straight), mustLoad(t, again))

	t.Chdir(t.TempDir()) // MNIST must not be looked for: the data comes from the record
	stdout.Reset()
	if err := run([]string{"-resume", stopped, "-threads", "1"}, &stdout, &stderr); err != nil {
		t.Fatalf("run -resume %s alone: %v\n%s", stopped, err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "saved    "+stopped) {
		t.Errorf("resumed run does not save to the resumed file:\n%s", stdout.String())
	}
	equalCheckpoints(t, mustLoad(t, straight), mustLoad(t, stopped))
	if prev, err := os.ReadFile(stopped + ".prev"); err != nil || !bytes.Equal(prev, before) {
		t.Errorf("%s.prev: %v; want the checkpoint resumed from (%d bytes, got %d)", stopped, err, len(before), len(prev))
	}
}

// TestRunInterruptDefaultPath: without -save an interrupted run saves to
// train-interrupted.safetensors in the current directory.
func TestRunInterruptDefaultPath(t *testing.T) {
	dir := syntheticDir(t)
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	err := runContext(ctx, tinyArgs(dir), &stdout, &stderr)
	if exitCode(err) != 130 || !errors.Is(err, errInterrupted) || !strings.Contains(err.Error(), interruptedPath) {
		t.Fatalf("run with a cancelled context = %v (exit %d), want an interruption naming %s", err, exitCode(err), interruptedPath)
	}
	if c := mustLoad(t, interruptedPath); c.State.Step != 0 {
		t.Errorf("checkpoint at step %d, want 0", c.State.Step)
	}
	// A second interrupted run keeps the first one's checkpoint.
	err = runContext(ctx, tinyArgs(dir), &stdout, &stderr)
	if second := "train-interrupted-2.safetensors"; exitCode(err) != 130 || !strings.Contains(err.Error(), "train -resume "+second) {
		t.Fatalf("second interrupted run = %v, want it saved to %s", err, second)
	}
	mustLoad(t, interruptedPath)
}

// TestRunDiverged trains with a learning rate of 10⁶ and a checkpoint
// every step: the run must fail (exit status 1) naming the step and the
// layer, and the checkpoint file must hold finite weights.
func TestRunDiverged(t *testing.T) {
	dir := syntheticDir(t)
	path := filepath.Join(t.TempDir(), "ckpt.st")
	var stdout, stderr bytes.Buffer
	err := run(tinyArgs(dir, "-lr", "1e6", "-schedule", "constant", "-save", path, "-save-every", "1"), &stdout, &stderr)
	if !errors.Is(err, train.ErrDiverged) || exitCode(err) != 1 || !strings.Contains(err.Error(), "step ") ||
		!strings.Contains(err.Error(), "(layer ") || !strings.Contains(err.Error(), "last good checkpoint is "+path) {
		t.Fatalf("run = %v, want a divergence naming the step, the layer and the checkpoint", err)
	}
	t.Logf("%v", err)
	c := mustLoad(t, path)
	// Checked after every step (a checkpoint each): the divergence is in
	// the step named, right after the last good checkpoint's.
	m := regexp.MustCompile(`\(step (\d+) in all; finite at the check after step (\d+)\)`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error %q does not name the last step found finite", err)
	}
	if bad, good := atoi(t, m[1]), atoi(t, m[2]); good != bad-1 || c.State.Step != good {
		t.Errorf("diverged at step %d, finite after step %d, checkpoint at step %d; want %d, %d, %d", bad, good, c.State.Step, bad, bad-1, bad-1)
	}
	for _, x := range append(c.Params, c.Optim...) {
		for i, v := range x.F32 {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("checkpoint %s[%d] = %g", x.Name, i, v)
			}
		}
	}
}

// TestRunModelFlag: -model as text and as @file gives the layer table;
// bad specs are errors that name the layer.
func TestRunModelFlag(t *testing.T) {
	dir := syntheticDir(t)
	file := filepath.Join(t.TempDir(), "model.txt")
	if err := os.WriteFile(file, []byte("# a small net\nconv6x3x3p1\nrelu\nmaxpool2\ndense10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	large := filepath.Join(t.TempDir(), "large.txt")
	if err := os.WriteFile(large, bytes.Repeat([]byte("relu\n"), 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-model", "@"+file, "-epochs", "1"), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"conv 6 3×3 stride 1×1 pad 1×1      (6,28,28)", "maxpool 2×2 stride 2×2             (6,14,14)", "dense 10                           (10)              11770"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("layer table lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"case=syntax", []string{"-model", "conv3x3"}, 2, `layer 1 "conv3x3"`},
		{"case=no-file", []string{"-model", "@" + filepath.Join(dir, "none")}, 2, "-model @" + filepath.Join(dir, "none") + ": open"},
		{"case=binary-file", []string{"-model", "@" + filepath.Join(dir, "train-images-idx3-ubyte.gz")}, 2, "not a text file (byte 0 is 0x1f)"},
		{"case=large-file", []string{"-model", "@" + large}, 2, "more than 64 KiB, too large for a model spec"},
		{"case=too-big", tinyArgs(dir, "-model", "conv8x30x30,relu,dense10"), 1, "layer 1 (conv 8 30×30"},
		{"case=classes", tinyArgs(dir, "-model", "dense7"), 1, "the data has 10 classes"},
		{"case=save-every", []string{"-save-every", "3"}, 2, "-save-every needs -save"},
		{"case=resume-missing", []string{"-data", dir, "-resume", filepath.Join(dir, "none")}, 1, "no such file"},
		{"case=save-dir-missing", tinyArgs(dir, "-save", filepath.Join(dir, "none", "x.st")), 1, "cannot write there"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, &stdout, &stderr)
			if got := exitCode(err); got != tc.code || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v (exit %d), want exit %d and %q", tc.args, err, got, tc.code, tc.want)
			}
		})
	}
}

// TestRunResumeAdamW: an AdamW run interrupted in its second epoch and
// resumed (the optimiser, its moments and its step count from the
// checkpoint, no optimiser flag given) ends bit-identical to the run
// straight through.
func TestRunResumeAdamW(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	straight, stopped, resumed := filepath.Join(tmp, "straight.st"), filepath.Join(tmp, "stopped.st"), filepath.Join(tmp, "resumed.st")
	opt := []string{"-optimizer", "adamw", "-lr", "0.002", "-weight-decay", "0.01", "-beta2", "0.99"}
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, append(opt, "-save", straight)...), &stdout, &stderr); err != nil {
		t.Fatalf("straight run: %v\n%s", err, stderr.String())
	}
	ctx := &countCtx{Context: context.Background()}
	ctx.n.Store(6 + 7 + 2)
	if err := runContext(ctx, tinyArgs(dir, append(opt, "-save", stopped)...), &stdout, &stderr); exitCode(err) != 130 {
		t.Fatalf("interrupted run = %v, want exit status 130", err)
	}
	stdout.Reset()
	if err := run([]string{"-data", dir, "-limit", "96", "-threads", "1", "-resume", stopped, "-save", resumed}, &stdout, &stderr); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "AdamW lr 0.002 (cosine) β1 0.9 β2 0.99") {
		t.Errorf("resumed run does not describe the checkpoint's optimiser:\n%s", stdout.String())
	}
	a, b := mustLoad(t, straight), mustLoad(t, resumed)
	if len(a.Optim) != 2*len(a.Params) || !strings.HasPrefix(a.Optim[0].Name, "optim.exp_avg") {
		t.Fatalf("AdamW checkpoint has optimiser tensors %d, first %q; want exp_avg and exp_avg_sq per parameter", len(a.Optim), a.Optim[0].Name)
	}
	equalCheckpoints(t, a, b)
}

// TestRunResumeSim: on the GPU backend (the PTX simulator), a run
// interrupted in its second epoch and resumed ends bit-identical to the
// run straight through, without and with augmentation (each batch
// gathered from the bytes on the device, cropped and flipped there). 3
// steps of 16 images per epoch, to keep the simulator quick.
func TestRunResumeSim(t *testing.T) {
	dir := syntheticDir(t)
	for _, aug := range []string{"", "crop2,flip"} {
		t.Run("augment="+aug, func(t *testing.T) {
			tmp := t.TempDir()
			straight, stopped, resumed := filepath.Join(tmp, "straight.st"), filepath.Join(tmp, "stopped.st"), filepath.Join(tmp, "resumed.st")
			args := func(more ...string) []string {
				return append([]string{"-data", dir, "-limit", "48", "-threads", "2", "-device", "sim"}, more...)
			}
			hyper := []string{"-batch", "16", "-epochs", "2", "-model", "conv4x5x5s2,relu,maxpool2,dense10", "-seed", "4"}
			if aug != "" {
				hyper = append(hyper, "-augment", aug)
			}
			var stdout, stderr bytes.Buffer
			if err := run(args(append(hyper, "-save", straight)...), &stdout, &stderr); err != nil {
				t.Fatalf("straight run: %v\n%s", err, stderr.String())
			}
			ctx := &countCtx{Context: context.Background()}
			ctx.n.Store(3 + 7 + 1) // 3 steps, 7 evaluation batches, 1 step
			if err := runContext(ctx, args(append(hyper, "-save", stopped)...), &stdout, &stderr); exitCode(err) != 130 {
				t.Fatalf("interrupted run = %v, want exit status 130", err)
			}
			if c := mustLoad(t, stopped); c.State.Step != 4 {
				t.Fatalf("interrupted at step %d, want 4", c.State.Step)
			}
			if err := run(args("-resume", stopped, "-save", resumed), &stdout, &stderr); err != nil {
				t.Fatalf("resumed run: %v\n%s", err, stderr.String())
			}
			equalCheckpoints(t, mustLoad(t, straight), mustLoad(t, resumed))
		})
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRunSaveBest: -save-best keeps the checkpoint of the epoch with the
// best test accuracy, written right after that epoch; the run's last line
// names it; a resumed run compares against the best it carries; the same
// file for -save and -save-best is a usage error.
func TestRunSaveBest(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	best, last := filepath.Join(tmp, "best.st"), filepath.Join(tmp, "last.st")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-save", last, "-save-best", best), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	// The epoch lines' test accuracies, and the best among them (the first
	// of equals).
	accs := regexp.MustCompile(`(?m)^epoch (\d)/2 .* test ([0-9.]+)%`).FindAllStringSubmatch(out, -1)
	if len(accs) != 2 {
		t.Fatalf("%d epoch lines:\n%s", len(accs), out)
	}
	bestEpoch, bestAcc := 0, -1.0
	for _, m := range accs {
		if a := parseFloat(t, m[2]); a > bestAcc {
			bestEpoch, bestAcc = atoi(t, m[1]), a
		}
	}
	if want := fmt.Sprintf("best     %s: epoch %d, test accuracy %.2f%%", best, bestEpoch, bestAcc); !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	c := mustLoad(t, best)
	if c.State.Epoch != bestEpoch || c.State.StepEpoch != 0 || c.State.BestEpoch != bestEpoch ||
		math.Abs(100*c.State.BestTestAcc-bestAcc) > 0.005 {
		t.Errorf("best checkpoint at epoch %d (+%d steps), best %d at %v; want epoch %d, %.2f%%",
			c.State.Epoch, c.State.StepEpoch, c.State.BestEpoch, c.State.BestTestAcc, bestEpoch, bestAcc)
	}
	// Resumed for a third epoch: it either beats the carried best (and is
	// saved) or leaves the file as it was.
	stdout.Reset()
	if err := run([]string{"-data", dir, "-limit", "96", "-resume", last, "-epochs", "3", "-save-best", best}, &stdout, &stderr); err != nil {
		t.Fatalf("resume: %v\n%s", err, stderr.String())
	}
	out = stdout.String()
	third := regexp.MustCompile(`(?m)^epoch 3/3 .* test ([0-9.]+)%`).FindStringSubmatch(out)
	if third == nil {
		t.Fatalf("no third epoch:\n%s", out)
	}
	c = mustLoad(t, best)
	if parseFloat(t, third[1]) > bestAcc {
		if !strings.Contains(out, fmt.Sprintf("best     %s: epoch 3,", best)) || c.State.Epoch != 3 {
			t.Errorf("epoch 3 beat %.2f%% but the best file is at epoch %d:\n%s", bestAcc, c.State.Epoch, out)
		}
	} else if !strings.Contains(out, fmt.Sprintf("no epoch of this run beat epoch %d's test accuracy", bestEpoch)) || c.State.Epoch != bestEpoch {
		t.Errorf("epoch 3 did not beat %.2f%% but the best file is at epoch %d:\n%s", bestAcc, c.State.Epoch, out)
	}

	if err := run(tinyArgs(dir, "-save", last, "-save-best", last), &stdout, &stderr); exitCode(err) != 2 {
		t.Errorf("-save-best = -save: %v (exit %d), want exit 2", err, exitCode(err))
	}
}

func parseFloat(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRunOutputs: every output path is checked before any work starts
// (no epoch is trained, so no epoch line is printed): a directory, an
// unwritable directory, two outputs or an output and an input naming the
// same file, a plot or metrics over a checkpoint, and a checkpoint over a
// file that is not one are refused with the flag and what to do.
func TestRunOutputs(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	ck := filepath.Join(tmp, "ck.st")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-epochs", "1", "-save", ck), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	ro := filepath.Join(tmp, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(tmp, "notes.txt")
	if err := os.WriteFile(notes, []byte("my notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(tmp, "model.txt")
	if err := os.WriteFile(spec, []byte("conv4x5x5s2,relu,maxpool2,dense10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"save=dir", tinyArgs(dir, "-save", tmp), 2, "-save " + tmp + ": is a directory; name a file in it, such as " + filepath.Join(tmp, "model.safetensors")},
		{"save=not-checkpoint", tinyArgs(dir, "-save", notes), 2, "the file exists and is not a checkpoint; refusing to replace it"},
		{"plot=checkpoint", tinyArgs(dir, "-plot", ck), 2, "-plot " + ck + ": the file is a checkpoint (safetensors); refusing to replace it with a plot"},
		{"metrics=checkpoint", tinyArgs(dir, "-metrics", ck), 2, "refusing to replace it with metrics"},
		{"plot=same-as-metrics", tinyArgs(dir, "-plot", notes+".x", "-metrics", notes+".x"), 2, "-plot " + notes + ".x and -metrics " + notes + ".x name the same file"},
		{"metrics=model", tinyArgs(dir, "-model", "@"+spec, "-metrics", spec), 2, "-metrics " + spec + " is also the input of -model"},
		{"plot=resume", []string{"-resume", ck, "-plot", ck}, 2, "refusing to replace it with a plot"},
		{"metrics=data", tinyArgs(dir, "-metrics", filepath.Join(dir, "train-labels-idx1-ubyte.gz")), 2, "-metrics " + filepath.Join(dir, "train-labels-idx1-ubyte.gz") + " is also the input of -data"},
		{"plot=under-a-file", tinyArgs(dir, "-plot", filepath.Join(notes, "p.png")), 1, "-plot " + filepath.Join(notes, "p.png") + ": cannot write there"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		cases = append(cases, struct {
			name string
			args []string
			code int
			want string
		}{"plot=unwritable", tinyArgs(dir, "-plot", filepath.Join(ro, "p.png")), 1, "-plot " + filepath.Join(ro, "p.png") + ": cannot write there"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout.Reset()
			err := run(tc.args, &stdout, &stderr)
			if exitCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v (exit %d), want exit %d and %q", tc.args, err, exitCode(err), tc.code, tc.want)
			}
			if strings.Contains(stdout.String(), "epoch 1/") {
				t.Errorf("run(%q) trained before refusing its output:\n%s", tc.args, stdout.String())
			}
		})
	}
	if b, err := os.ReadFile(notes); err != nil || string(b) != "my notes\n" {
		t.Errorf("%s changed: %q, %v", notes, b, err)
	}
	mustLoad(t, ck)
}

// TestRunResumeValAugment: a run with -val and -augment, interrupted in
// the middle of its second epoch, resumes with -resume alone (the split
// and the augmentation come from the checkpoint's record and
// configuration) and ends bit-identical to the run straight through, with
// the same epoch line (validation and test accuracy); -save-best selects
// on the validation set. Another -val with -resume is refused.
func TestRunResumeValAugment(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	straight, stopped, resumed, best := filepath.Join(tmp, "straight.st"), filepath.Join(tmp, "stopped.st"), filepath.Join(tmp, "resumed.st"), filepath.Join(tmp, "best.st")
	more := []string{"-val", "16", "-augment", "crop2,flip"}
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, append(more, "-save", straight, "-save-best", best)...), &stdout, &stderr); err != nil {
		t.Fatalf("straight run: %v\n%s", err, stderr.String())
	}
	straightOut := stdout.String()
	if !strings.Contains(straightOut, "80 training, 16 validation and 100 test images") || !strings.Contains(straightOut, "augment  crop2,flip") ||
		!regexp.MustCompile(`best     \S+: epoch [12], validation accuracy`).MatchString(straightOut) {
		t.Errorf("straight run output lacks the split, the augmentation or the best line:\n%s", straightOut)
	}
	epochLine := func(out string, e int) string {
		return regexp.MustCompile(fmt.Sprintf(`(?m)^epoch %d/2  loss \S+  train \S+  val loss \S+  val \S+(  test \S+)?`, e)).FindString(out)
	}
	if l := epochLine(straightOut, 1); l == "" || strings.Contains(l, "test") {
		t.Errorf("epoch 1 line %q: want validation and no test accuracy (-val, not the last epoch)", l)
	}
	if l := epochLine(straightOut, 2); !strings.Contains(l, "test") {
		t.Errorf("epoch 2 line %q: want the test accuracy after the last epoch", l)
	}
	// 5 steps and 1 validation batch of epoch 1, 2 steps of epoch 2.
	ctx := &countCtx{Context: context.Background()}
	ctx.n.Store(5 + 1 + 2)
	err := runContext(ctx, tinyArgs(dir, append(more, "-save", stopped)...), &stdout, &stderr)
	if code := exitCode(err); code != 130 {
		t.Fatalf("interrupted run: exit code %d, error %v; want 130", code, err)
	}
	if st := mustLoad(t, stopped).State; st.Epoch != 1 || st.StepEpoch != 2 {
		t.Fatalf("interrupted at %+v, want epoch 1 and 2 steps", st)
	}
	stdout.Reset()
	if err := run([]string{"-resume", stopped, "-save", resumed, "-threads", "1"}, &stdout, &stderr); err != nil {
		t.Fatalf("resume: %v\n%s", err, stderr.String())
	}
	equalCheckpoints(t, mustLoad(t, straight), mustLoad(t, resumed))
	if got, want := epochLine(stdout.String(), 2), epochLine(straightOut, 2); got == "" || got != want {
		t.Errorf("resumed run: %q, straight run: %q", got, want)
	}
	if err := run([]string{"-resume", stopped, "-val", "20"}, &stdout, &stderr); exitCode(err) != 2 || !strings.Contains(err.Error(), "the checkpoint's split took 16") {
		t.Errorf("resume with another -val = %v, want a usage error naming the checkpoint's split", err)
	}
}

// TestRunEarlyStop: with a learning rate too small to change anything,
// -patience 1 stops the run after its second epoch, saying so, with the
// test set evaluated then; resuming the stopped run trains nothing.
func TestRunEarlyStop(t *testing.T) {
	dir, save := syntheticDir(t), filepath.Join(t.TempDir(), "m.st")
	var stdout, stderr bytes.Buffer
	args := []string{"-data", dir, "-limit", "96", "-batch", "16", "-epochs", "5", "-threads", "1", "-model", "conv4x5x5s2,relu,maxpool2,dense10",
		"-val", "16", "-patience", "1", "-lr", "1e-12", "-save", save}
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	if !regexp.MustCompile(`(?m)^epoch 2/5 .* val \S+  test \S+ .*\nstopped  early after epoch 2: no better validation accuracy in the 1 epoch since epoch 1, the best`).MatchString(out) ||
		strings.Contains(out, "epoch 3/5") {
		t.Errorf("run output: want a stop after epoch 2, with its test accuracy:\n%s", out)
	}
	stdout.Reset()
	if err := run([]string{"-resume", save}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "nothing to train: the run stopped early after epoch 2, 1 epoch after its best validation accuracy (epoch 1; -patience 1)") {
		t.Errorf("resume of a stopped run = %v:\n%s", err, stdout.String())
	}
}
