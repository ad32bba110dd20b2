package main

import (
	"bytes"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCompareSim runs train compare on the simulator, 3 steps of the
// default network: it must pass, print both losses of every step and the
// difference of every parameter, each within the default tolerance, and
// both speeds.
func TestCompareSim(t *testing.T) {
	dir := smallDir(t, 64, 4)
	args := []string{"compare", "-device", "sim", "-data", dir, "-steps", "3", "-batch", "4", "-threads", "2"}
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q) = %v; stderr:\n%s", args, err, stderr.String())
	}
	out := stdout.String()
	steps := regexp.MustCompile(`(?m)^ +(\d+)  (\S+) +(\S+) +(\S+)$`).FindAllStringSubmatch(out, -1)
	if len(steps) != 3 {
		t.Fatalf("run(%q) printed %d step lines, want 3:\n%s", args, len(steps), out)
	}
	for i, s := range steps {
		cpu, _ := strconv.ParseFloat(s[2], 64)
		sim, _ := strconv.ParseFloat(s[3], 64)
		rel, _ := strconv.ParseFloat(s[4], 64)
		if s[1] != strconv.Itoa(i+1) || !(cpu > 0) || !(math.Abs(sim-cpu) <= defaultCompareTol*cpu) || !(rel <= defaultCompareTol) {
			t.Errorf("step line %q: want step %d, losses > 0 and equal within %g", s[0], i+1, defaultCompareTol)
		}
	}
	params := regexp.MustCompile(`(?m)^(layer\d+\.(?:weight|bias)) +(\S+) +(\S+) +(\S+) +(\S+)$`).FindAllStringSubmatch(out, -1)
	var names []string
	for _, p := range params {
		names = append(names, p[1]+" "+p[2])
		rel, err := strconv.ParseFloat(p[5], 64)
		if err != nil || !(rel <= defaultCompareTol) {
			t.Errorf("parameter line %q: relative difference %q, want ≤ %g", p[0], p[5], defaultCompareTol)
		}
	}
	want := "layer1.weight 8×1×5×5,layer1.bias 8,layer4.weight 16×8×5×5,layer4.bias 16,layer8.weight 10×256,layer8.bias 10"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("parameters listed: %s, want %s:\n%s", got, want, out)
	}
	for _, re := range []string{
		`(?m)^backends cpu \(2 threads\) and sim \(ptxsim, 2 workers\)$`,
		`(?m)^device   ptxsim, compute capability \d+\.\d, 2 SMs`,
		`(?m)^compare  3 steps of 4 images, .* tolerance 0\.0001$`,
		`(?m)^speed    cpu [0-9.e+]+ steps/s, sim [0-9.e+-]+ steps/s: sim is [0-9.e+-]+× the cpu`,
		`(?m)^result   ok: the largest relative difference, \S+ \((the loss of step \d|layer\d\.\w+)\), is within -tol 0\.0001$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("run(%q) output does not match %s:\n%s", args, re, out)
		}
	}
}

// TestCompareSimRounded runs train compare on the simulator with
// -precision tf32 and bf16: the CPU reference rounds each convolution
// pass's operands as the simulator's kernel for it does (TF32, BF16 or not
// at all), so the two differ by float32 summation order and the rounding
// flips it causes: 8.2e-6 after 2 steps with TF32, 3.2e-4 after 1 with
// BF16 on these images, within the tolerances here, where a reference
// computing in float32 throughout differs by 2.2e-2 and 5.1e-2. The
// banner names the rounding.
func TestCompareSimRounded(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the simulator's compare runs are left to the full run")
	}
	dir := smallDir(t, 64, 4)
	for _, tc := range []struct{ precision, steps, tol, tolText string }{
		{"tf32", "2", "1e-4", `0\.0001`},
		{"bf16", "1", "2e-3", `0\.002`},
	} {
		t.Run(tc.precision, func(t *testing.T) {
			args := []string{"compare", "-device", "sim", "-precision", tc.precision, "-data", dir, "-steps", tc.steps, "-batch", "8", "-threads", "2", "-tol", tc.tol}
			var stdout, stderr bytes.Buffer
			if err := run(args, &stdout, &stderr); err != nil {
				t.Fatalf("run(%q) = %v; stdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
			}
			out := stdout.String()
			for _, re := range []string{
				`(?m)^backends cpu \(2 threads, convolutions rounded as the device's ` + tc.precision + ` kernels round them\) and sim \(ptxsim, 2 workers\)$`,
				`(?m)^result   ok: the largest relative difference, \S+ \(.*\), is within -tol ` + tc.tolText + `$`,
			} {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("run(%q) output does not match %s:\n%s", args, re, out)
				}
			}
		})
	}
}

// TestCompareFails: compare must exit 1 when the backends differ by more
// than -tol. The simulator's kernels sum in another order than the CPU's
// im2col + SGEMM, so after 2 steps some bits differ (≈ 1e-7 relative) and
// -tol 0 fails; a weight perturbed by 1e-3 on the simulator's side fails
// the default tolerance and is named.
func TestCompareFails(t *testing.T) {
	dir := smallDir(t, 16, 4)
	base := []string{"-device", "sim", "-data", dir, "-steps", "2", "-batch", "2", "-threads", "2", "-model", "conv4x5x5,relu,maxpool2,dense10"}
	for _, tc := range []struct {
		name    string
		args    []string
		perturb float32
		want    string
	}{
		{"case=tol-0", []string{"-tol", "0"}, 0, "more than -tol 0"},
		{"case=perturbed", nil, 1e-3, "layer1.weight on sim differs from the cpu by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string(nil), base...), tc.args...)
			o, err := parseCompare(args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			o.perturb = tc.perturb
			var stdout bytes.Buffer
			err = compare(o, &stdout)
			if got := exitCode(err); got != 1 {
				t.Errorf("compare(%q, perturb %g): exit code %d (error %v), want 1", args, tc.perturb, got, err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("compare(%q, perturb %g) = %v, want an error with %q", args, tc.perturb, err, tc.want)
			}
			if !strings.Contains(stdout.String(), "\nresult   FAIL: ") {
				t.Errorf("compare(%q, perturb %g) output has no FAIL result:\n%s", args, tc.perturb, stdout.String())
			}
		})
	}
}

func TestCompareErrors(t *testing.T) {
	dir := smallDir(t, 8, 4)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"case=device-cpu", []string{"-device", "cpu"}, 2, "-device cpu: compare runs the CPU against -device gpu or sim"},
		{"case=steps", []string{"-steps", "0"}, 2, "-steps 0: want 1 to 1000000"},
		{"case=batch", []string{"-batch", "0"}, 2, "-batch 0: want 1 to 4096"},
		{"case=tol", []string{"-tol", "-1"}, 2, "-tol -1: want ≥ 0"},
		{"case=tol-nan", []string{"-tol", "NaN"}, 2, "-tol NaN: want ≥ 0"},
		{"case=lr", []string{"-lr", "0"}, 2, "-lr 0: want > 0"},
		{"case=extra-arg", []string{"now"}, 2, `compare: unexpected arguments ["now"]`},
		{"case=bad-flag", []string{"-epochs", "3"}, 2, "flag provided but not defined: -epochs"},
		{"case=model", []string{"-device", "sim", "-data", dir, "-model", "conv8x5,dense10"}, 2, `-model conv8x5,dense10: host: model spec: layer 1 "conv8x5"`},
		{"case=model-too-big", []string{"-device", "sim", "-data", dir, "-model", "conv8x29x29,dense10", "-batch", "4"}, 1, "-model conv8x29x29,dense10 on 1×28×28 images"},
		{"case=batch-above-data", []string{"-device", "sim", "-data", dir, "-batch", "9"}, 1, "8 training images, fewer than a batch of 9"},
		{"case=missing-data", []string{"-device", "sim", "-data", dir + "/nope"}, 1, "nope: no such file or directory"},
		{"case=tf32-without-tol", []string{"-device", "sim", "-precision", "tf32"}, 2, "-precision tf32 needs -tol"},
		{"case=bf16-without-tol", []string{"-device", "sim", "-precision", "bf16"}, 2, "-precision bf16 needs -tol"},
		{"case=help", []string{"-h"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"compare"}, tc.args...)
			var stdout, stderr bytes.Buffer
			err := run(args, &stdout, &stderr)
			if got := exitCode(err); got != tc.code {
				t.Errorf("run(%q): exit code %d (error %v), want %d", args, got, err, tc.code)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("run(%q) = %v, want an error with %q", args, err, tc.want)
			}
			if tc.code == 0 && !strings.Contains(stderr.String(), "usage: train compare [flags]") {
				t.Errorf("run(%q): stderr %q, want the usage", args, stderr.String())
			}
		})
	}
}
