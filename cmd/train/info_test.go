package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestInfo: train info on a finished run's checkpoint and on one saved in
// the middle of an epoch: the architecture, the configuration, the
// position (with the partly done epoch's mean loss and accuracy) and a
// row per weight and optimiser-state tensor; and its usage errors.
func TestInfo(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	done, mid := filepath.Join(tmp, "done.st"), filepath.Join(tmp, "mid.st")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-save", done), &stdout, &stderr); err != nil {
		t.Fatalf("train: %v\n%s", err, stderr.String())
	}
	ctx := &countCtx{Context: context.Background()}
	ctx.n.Store(6 + 7 + 3) // epoch 1 and its evaluation, 3 steps of epoch 2
	if err := runContext(ctx, tinyArgs(dir, "-save", mid), &stdout, &stderr); exitCode(err) != 130 {
		t.Fatalf("interrupted run: %v", err)
	}
	stdout.Reset()
	if err := run([]string{"info", done, mid}, &stdout, &stderr); err != nil {
		t.Fatalf("info: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, re := range []string{
		`(?m)^checkpoint  .*done\.st \(written by convtrain .*\)$`,
		`(?m)^model       conv4x5x5s2,relu,maxpool2,flatten,dense10 on 1×28×28 inputs, 10 classes$`,
		`(?m)^1     conv 4 5×5 stride 2×2 pad 0×0 +\(4,12,12\) +104$`,
		`(?m)^optimizer   sgd momentum 0\.9, lr 0\.05 \(cosine schedule\), batch 16, weight decay 0, seed 4$`,
		`(?m)^position    2 of 2 epochs done; 12 steps in all, `,
		`(?m)^position    1 of 2 epochs done, and 3 steps of epoch 2 \(mean loss \d+\.\d{4}, train accuracy \d+\.\d\d% so far\); 9 steps in all`,
		`(?m)^data        /.+$`,
		`(?m)^            train: 96 images of 1x28x28 in 10 classes, sha256 [0-9a-f]{12}… \(-limit 96\)$`,
		`(?m)^            test:  100 images of 1x28x28 in 10 classes, sha256 [0-9a-f]{12}…$`,
		`(?m)^inputs      standardised with mean [0-9.]+ and standard deviation [0-9.]+`,
		`(?m)^layer5\.weight +10×144 +[0-9.e+-]+ +[0-9.e+-]+$`,
		`(?m)^optim\.velocity\.layer1\.bias +4 +[0-9.e+-]+ +[0-9.e+-]+$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("info output does not match %s", re)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^layer\d+\.(weight|bias) `).FindAllString(out, -1)); n != 2*4 {
		t.Errorf("%d parameter rows, want 8 (4 tensors in each of 2 checkpoints)", n)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	// A warm-up is part of the configuration a checkpoint keeps.
	warm := filepath.Join(tmp, "warm.st")
	if err := run(tinyArgs(dir, "-warmup", "3", "-epochs", "1", "-save", warm), &stdout, &stderr); err != nil {
		t.Fatalf("train -warmup 3: %v", err)
	}
	if c := mustLoad(t, warm); c.Config.Schedule.Warmup != 3 {
		t.Errorf("checkpoint warm-up %d steps, want 3", c.Config.Schedule.Warmup)
	}
	stdout.Reset()
	if err := run([]string{"info", warm}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "(cosine schedule, 3 warm-up steps)") {
		t.Errorf("info of a warm-up run: %v\n%s", err, stdout.String())
	}
	for _, args := range [][]string{{"-warmup", "-1"}, {"-resume", warm, "-warmup", "5"}} {
		if err := run(args, &stdout, &stderr); exitCode(err) != 2 {
			t.Errorf("run(%q) = %v (exit %d), want exit 2", args, err, exitCode(err))
		}
	}

	if err := run([]string{"info"}, &stdout, &stderr); exitCode(err) != 2 {
		t.Errorf("info without files: %v (exit %d), want exit 2", err, exitCode(err))
	}
	if err := run([]string{"info", filepath.Join(tmp, "none.st")}, &stdout, &stderr); exitCode(err) != 1 || !strings.Contains(err.Error(), "none.st") {
		t.Errorf("info on a missing file: %v (exit %d), want exit 1 naming it", err, exitCode(err))
	}
}
