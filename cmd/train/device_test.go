package main

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/data"
)

// smallDir writes a synthetic 28×28 data set of nTrain training and nTest
// test images in MNIST's file layout and returns its directory: small
// enough for the simulator, which runs a conv pass on a few images in a
// few tens of milliseconds.
func smallDir(t *testing.T, nTrain, nTest int) string {
	t.Helper()
	train, err := data.Synthetic(nTrain, 28, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	test, err := data.Synthetic(nTest, 28, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := data.WriteDir(dir, train, test, false); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRunSim trains one short epoch on the simulator and on the CPU from
// the same seed through the whole command: the simulator's run prints its
// device and reports the CPU's numbers. Both backends compute in float32
// and differ only in summation order (a few ulp per operation, ≈ 4e-7
// relative after 4 steps measured by train compare), so the epoch's mean
// loss agrees within 1e-5 relative; the accuracies (counts of 8 and 4 images)
// are equal unless a logit comparison is decided by those last bits.
// (8 training images in batches of 4 and 4 test images: the simulator is
// slow.)
func TestRunSim(t *testing.T) {
	dir := smallDir(t, 8, 4)
	epoch := regexp.MustCompile(`(?m)^epoch 1/1  loss (\S+)  train (\S+)%  test (\S+)%`)
	var results [2][]string
	for i, device := range []string{"sim", "cpu"} {
		var stdout, stderr bytes.Buffer
		args := []string{"-device", device, "-data", dir, "-epochs", "1", "-batch", "4", "-threads", "2", "-seed", "3"}
		if err := run(args, &stdout, &stderr); err != nil {
			t.Fatalf("run(%q) = %v; stderr:\n%s", args, err, stderr.String())
		}
		out := stdout.String()
		results[i] = epoch.FindStringSubmatch(out)
		if results[i] == nil {
			t.Fatalf("run(%q) printed no line for epoch 1/1:\n%s", args, out)
		}
		if device == "sim" {
			for _, want := range []string{`(?m)^backend  sim \(ptxsim, 2 workers\)$`,
				`(?m)^device   ptxsim, compute capability \d+\.\d, 2 SMs, 4\.0 GiB memory`} {
				if !regexp.MustCompile(want).MatchString(out) {
					t.Errorf("run(%q) output does not match %s:\n%s", args, want, out)
				}
			}
		}
	}
	sim, cpu := results[0], results[1]
	ls, _ := strconv.ParseFloat(sim[1], 64)
	lc, _ := strconv.ParseFloat(cpu[1], 64)
	if !(math.Abs(ls-lc) <= 1e-5*math.Abs(lc)) || lc == 0 {
		t.Errorf("epoch loss on sim %g, on cpu %g: want equal within 1e-5 relative", ls, lc)
	}
	if sim[2] != cpu[2] || sim[3] != cpu[3] {
		t.Errorf("accuracies on sim: train %s%% test %s%%, on cpu: train %s%% test %s%%, want equal", sim[2], sim[3], cpu[2], cpu[3])
	}
}

func TestDeviceFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"cmd=train,case=precision", []string{"-precision", "fp16"}, 2, `-precision "fp16": want fp32, tf32 or bf16`},
		{"cmd=train,case=precision-cpu", []string{"-precision", "tf32"}, 2, "-precision tf32 needs -device gpu or sim"},
		{"cmd=train,case=gpu-ordinal", []string{"-device", "gpu", "-gpu", "-1"}, 2, "-gpu -1: want ≥ 0"},
		{"cmd=train,case=threads", []string{"-threads", "0"}, 2, "-threads 0: want 1 to 4096"},
		{"cmd=compare,case=precision", []string{"compare", "-precision", "fp16"}, 2, `-precision "fp16": want fp32, tf32 or bf16`},
		{"cmd=bench,case=device", []string{"bench", "-device", "tpu"}, 2, `-device "tpu": want one of cpu, gpu, sim`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tc.args, &stdout, &stderr)
			if got := exitCode(err); got != tc.code {
				t.Errorf("run(%q): exit code %d (error %v), want %d", tc.args, got, err, tc.code)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error with %q", tc.args, err, tc.want)
			}
		})
	}
}
