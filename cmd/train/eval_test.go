package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// trainedCheckpoint trains tinyArgs for 2 epochs with -save and returns
// the data directory, the checkpoint and the training output.
func trainedCheckpoint(t *testing.T) (dir, ckpt, out string) {
	t.Helper()
	dir = syntheticDir(t)
	ckpt = filepath.Join(t.TempDir(), "model.safetensors")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-save", ckpt), &stdout, &stderr); err != nil {
		t.Fatalf("training: %v\n%s", err, stderr.String())
	}
	return dir, ckpt, stdout.String()
}

// TestEval evaluates a trained checkpoint: the accuracy must be the one
// the training run reported for its last epoch (same model, same test
// set, same standardisation), and the confusion matrix must account for
// every test image, its diagonal for the correct ones.
func TestEval(t *testing.T) {
	dir, ckpt, trainOut := trainedCheckpoint(t)
	m := regexp.MustCompile(`epoch 2/2 .* test ([0-9.]+)%`).FindStringSubmatch(trainOut)
	if m == nil {
		t.Fatalf("no epoch 2/2 line in\n%s", trainOut)
	}
	var stdout, stderr bytes.Buffer
	if err := run([]string{"eval", "-load", ckpt, "-data", dir, "-batch", "32"}, &stdout, &stderr); err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	acc := regexp.MustCompile(`accuracy ([0-9.]+)% \(([0-9]+) of 100\)`).FindStringSubmatch(out)
	if acc == nil || acc[1] != m[1] {
		t.Fatalf("eval output\n%s\nwant accuracy %s%% as in training", out, m[1])
	}
	correct, _ := strconv.Atoi(acc[2])
	rows := regexp.MustCompile(`(?m)^ +([0-9]) ((?: +[0-9]+){10}) +[0-9.]+%$`).FindAllStringSubmatch(out, -1)
	if len(rows) != 10 {
		t.Fatalf("confusion matrix has %d rows, want 10:\n%s", len(rows), out)
	}
	total, diag := 0, 0
	for i, r := range rows {
		for j, f := range strings.Fields(r[2]) {
			v, _ := strconv.Atoi(f)
			total += v
			if i == j {
				diag += v
			}
		}
	}
	if total != 100 || diag != correct {
		t.Errorf("confusion matrix: %d images, %d on the diagonal; want 100 and %d", total, diag, correct)
	}

	// Without -data: the data the checkpoint records.
	stdout.Reset()
	if err := run([]string{"eval", "-load", ckpt, "-batch", "32"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "data     "+dir+": 100 test images") ||
		!strings.Contains(stdout.String(), acc[0]) {
		t.Errorf("eval without -data: %v\n%s\nwant the recorded %s and %s", err, stdout.String(), dir, acc[0])
	}

	// Ctrl-C stops the evaluation (exit status 130).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := runContext(ctx, []string{"eval", "-load", ckpt, "-data", dir}, &stdout, &stderr); exitCode(err) != 130 {
		t.Errorf("eval with a cancelled context = %v, want an interruption", err)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval"}, 2, "needs -load"},
		{[]string{"eval", "-load", ckpt, "extra"}, 2, "unexpected arguments"},
		{[]string{"eval", "-load", filepath.Join(dir, "none")}, 1, "no such file"},
		{[]string{"eval", "-load", filepath.Join(dir, "t10k-labels-idx1-ubyte.gz")}, 1, "safetensors"},
	} {
		err := run(tc.args, &stdout, &stderr)
		if exitCode(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want exit %d and %q", tc.args, err, tc.code, tc.want)
		}
	}
}

// TestEvalProgress: the evaluation's progress line counts the images and
// is erased after the last batch.
func TestEvalProgress(t *testing.T) {
	var buf bytes.Buffer
	f := evalProgress(&buf)
	f(256, 600)
	f(512, 600)
	f(600, 600)
	want := "\revaluating 256/600 images\revaluating 512/600 images\r" + strings.Repeat(" ", len("evaluating 600/600 images")) + "\r"
	if buf.String() != want {
		t.Errorf("progress wrote %q, want %q", buf.String(), want)
	}
}
