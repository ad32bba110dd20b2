package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/data"
)

// onnxPython runs scripts/onnx-check.py with the pinned onnx and ONNX
// Runtime (.ci/run installs them into $CONVTRAIN_PYTHONPATH, by default
// ~/.cache/convtrain-py, for Debian's /usr/bin/python3); the test skips
// without them, and fails under CI=true.
func onnxPython(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	dir := os.Getenv("CONVTRAIN_PYTHONPATH")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "convtrain-py")
	}
	cmd := func(a ...string) *exec.Cmd {
		c := exec.Command("/usr/bin/python3", a...)
		c.Env = append(os.Environ(), "PYTHONPATH="+dir)
		return c
	}
	if out, err := cmd("-c", "import onnx, onnxruntime, numpy").CombinedOutput(); err != nil {
		msg := "needs /usr/bin/python3 with onnx and onnxruntime from scripts/python-pins.txt in " + dir + " (as .ci/run installs them): " + strings.TrimSpace(string(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return cmd(args...)
}

// TestExportONNX exports trained checkpoints of a plain network, one with
// both kinds of residual block, one with BatchNorm (its running
// statistics), average and global average pooling, the resnet8 preset, a
// concatenation, and one with every activation, dropout and layers without
// bias, and runs them in ONNX Runtime on test
// images given as pixel values: every class must be predict's and every
// probability within 1e-5 of predict's (float32 in both, different
// summation orders and exp: a few ulp of values near 1). The script also
// requires onnx.checker.check_model(full_check=True) to pass.
func TestExportONNX(t *testing.T) {
	dir := syntheticDir(t)
	tmp := t.TempDir()
	_, test, err := data.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 6, 28
	idxPath := filepath.Join(tmp, "six.idx")
	var idx bytes.Buffer
	if err := data.WriteIDX(&idx, []int{n, size, size}, test.Images[:n*size*size]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idxPath, idx.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pixels := make([]byte, 0, 4*n*size*size)
	for _, p := range test.Images[:n*size*size] {
		pixels = binary.LittleEndian.AppendUint32(pixels, math.Float32bits(float32(p)))
	}
	inPath := filepath.Join(tmp, "input.f32")
	if err := os.WriteFile(inPath, pixels, 0o644); err != nil {
		t.Fatal(err)
	}
	type manifestInput struct {
		Name  string `json:"name"`
		Shape []int  `json:"shape"`
		File  string `json:"file"`
	}
	type manifestCase struct {
		Name   string          `json:"name"`
		Model  string          `json:"model"`
		Inputs []manifestInput `json:"inputs"`
	}
	var cases []manifestCase
	models := map[string]string{
		"plain":    "conv4x5x5s2,relu,maxpool2,dense10",
		"residual": "conv4x3x3p1,relu,res(conv4x3x3p1,relu,conv4x3x3p1),maxpool2,res(conv6x3x3s2p1,relu,conv6x3x3p1|conv6x1x1s2),relu,dense10",
		"bn":       "conv4x3x3p1,bn,relu,res(conv4x3x3p1,bn,relu,conv4x3x3p1,bn|conv4x1x1,bn),relu,avgpool3s2p1,gap,dense10",
		"resnet8":  "resnet8",
		"cat":      "conv4x3x3p1,relu,cat(conv4x1x1|conv2x3x3p1,relu|),maxpool2,res(cat(conv2x1x1|),conv10x1x1),relu,dense10",
		"act":      "conv4x3x3p1,leakyrelu20,conv4x3x3p1,silu,maxpool2,conv4x3x3p1,gelu,dropout20,conv4x3x3p1,gelutanh,conv4x3x3p1nobias,sigmoid,conv2x3x3p1,tanh,dense10nobias",
	}
	want := map[string][]predictLine{}
	for name, spec := range models {
		ckptPath, onnxPath := filepath.Join(tmp, name+".safetensors"), filepath.Join(tmp, name+".onnx")
		var stdout, stderr bytes.Buffer
		if err := run(tinyArgs(dir, "-model", spec, "-save", ckptPath), &stdout, &stderr); err != nil {
			t.Fatalf("%s: training: %v\n%s", name, err, stderr.String())
		}
		stdout.Reset()
		if err := run([]string{"export", "-load", ckptPath, "-o", onnxPath, "-softmax"}, &stdout, &stderr); err != nil {
			t.Fatalf("%s: export: %v\n%s", name, err, stderr.String())
		}
		if !strings.Contains(stdout.String(), "wrote "+onnxPath) {
			t.Errorf("%s: export said %q", name, stdout.String())
		}
		stdout.Reset()
		if err := run([]string{"predict", "-load", ckptPath, "-json", idxPath}, &stdout, &stderr); err != nil {
			t.Fatalf("%s: predict: %v\n%s", name, err, stderr.String())
		}
		for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			var p predictLine
			if err := json.Unmarshal([]byte(l), &p); err != nil {
				t.Fatalf("%s: predict -json line %q: %v", name, l, err)
			}
			want[name] = append(want[name], p)
		}
		cases = append(cases, manifestCase{Name: name, Model: onnxPath, Inputs: []manifestInput{{"input", []int{n, 1, size, size}, inPath}}})
	}
	manifest, _ := json.Marshal(map[string]any{"cases": cases})
	manifestPath := filepath.Join(tmp, "manifest.json")
	if err := os.WriteFile(manifestPath, manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := onnxPython(t, "../../scripts/onnx-check.py", manifestPath)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/onnx-check.py: %v\n%s", err, stderr.String())
	}
	var res struct {
		Cases map[string]struct {
			Error   string `json:"error"`
			Outputs []struct {
				Name  string    `json:"name"`
				Shape []int     `json:"shape"`
				Data  []float64 `json:"data"`
			} `json:"outputs"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("scripts/onnx-check.py output: %v\n%.2000s", err, out)
	}
	for name := range models {
		r, ok := res.Cases[name]
		switch {
		case !ok:
			t.Fatalf("%s: no result", name)
		case r.Error != "":
			t.Fatalf("%s: onnx or ONNX Runtime: %s", name, r.Error)
		case len(r.Outputs) != 1 || r.Outputs[0].Name != "probabilities" || len(r.Outputs[0].Data) != n*10:
			t.Fatalf("%s: outputs %+v, want probabilities of %d×10", name, r.Outputs, n)
		}
		got := r.Outputs[0].Data
		for i, p := range want[name] {
			row := got[i*10 : (i+1)*10]
			best := 0
			for k, v := range row {
				if v > row[best] {
					best = k
				}
				if math.Abs(v-p.Probs[k]) > 1e-5 {
					t.Errorf("%s: image %d class %d: ONNX Runtime %g, predict %g", name, i, k, v, p.Probs[k])
				}
			}
			if best != p.Class {
				t.Errorf("%s: image %d: ONNX Runtime class %d, predict %d", name, i, best, p.Class)
			}
		}
	}
}

// predictLine is one line of train predict -json.
type predictLine struct {
	Image string    `json:"image"`
	Class int       `json:"class"`
	Probs []float64 `json:"probabilities"`
}

func TestExportErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "-o", "x.onnx"}, "needs -load"},
		{[]string{"export", "-load", "x.safetensors"}, "needs -o"},
		{[]string{"export", "-load", "x.safetensors", "-o", "x.safetensors"}, "is the checkpoint it reads"},
		{[]string{"export", "-load", "x", "-o", "y", "-opset", "9"}, "-opset 9"},
		{[]string{"export", "-load", "x", "-o", "y", "z"}, "unexpected arguments"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(tc.args, &stdout, &stderr)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("train %q = %v (exit %d), want a usage error containing %q", tc.args, err, exitCode(err), tc.want)
		}
	}
}
