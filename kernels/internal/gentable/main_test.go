package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTableUpToDate regenerates the table from kernels/*.cu and compares it
// with the committed kernels/table_gen.go: a kernel added, renamed or
// re-typed in a .cu without running the generator fails here (and in
// scripts/gen-ptx.sh --check).
func TestTableUpToDate(t *testing.T) {
	dir := filepath.Join("..", "..")
	want, err := generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, outName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("kernels/%s is stale from line %d; run go run ./kernels/internal/gentable", outName, firstDiffLine(got, want))
	}
}

// TestGenerate runs the generator on small sources: what it reads and the
// errors it reports.
func TestGenerate(t *testing.T) {
	header := "#define kBlock 256\n#define kFar (-0x10)\n"
	for _, c := range []struct {
		name    string
		files   map[string]string
		want    []string // substrings of the output
		wantErr string
	}{
		{"ok", map[string]string{
			"a.cuh": header,
			"a.cu": "// gen-ptx: target sm_80\n#include \"a.cuh\"\n#define kBM 128  // rows\n" +
				"extern \"C\" __global__ void __launch_bounds__(kBM)\n    f_v1(const float* x, int *y,\n int n, float s) {}\n" +
				"extern \"C\" __global__ void g_v1(float* p) {}\n",
		}, []string{
			`Name: "f_v1", File: "a.ptx", Source: "a.cu", Target: "sm_80"`,
			`{Name: "x", Type: TypePtr, CType: "const float*"}`,
			`{Name: "y", Type: TypePtr, CType: "int*"}`,
			`{Name: "n", Type: TypeI32, CType: "int"}`,
			`{Name: "s", Type: TypeF32, CType: "float"}`,
			`Name: "g_v1", File: "a.ptx", Source: "a.cu", Target: "sm_80"`,
			`"a.cu": {"kBlock": 256, "kFar": -16, "kBM": 128}`,
		}, ""},
		{"default target", map[string]string{"b.cu": "extern \"C\" __global__ void h_v1(float* p) {}\n"},
			[]string{`Target: "sm_70"`}, ""},
		{"double param", map[string]string{"a.cu": "extern \"C\" __global__ void f(double d) {}\n"},
			nil, `a.cu:1: kernel f: parameter d has C type "double"`},
		{"unnamed param", map[string]string{"a.cu": "extern \"C\" __global__ void f(int) {}\n"},
			nil, `a.cu:1: kernel f: cannot parse parameter "int"`},
		{"other form", map[string]string{"a.cu": "__global__ void f(int n) {}\n"},
			nil, `a.cu: 1 __global__ functions, 0 of them`},
		{"duplicate", map[string]string{
			"a.cu": "extern \"C\" __global__ void f(int n) {}\n",
			"b.cu": "extern \"C\" __global__ void f(int n) {}\n",
		}, nil, "kernel f is defined in both a.cu and b.cu"},
		{"redefined", map[string]string{"a.cuh": header, "a.cu": "#include \"a.cuh\"\n#define kBlock 128\n"},
			nil, "a.cu: #define kBlock 128 redefines 256"},
		{"missing include", map[string]string{"a.cu": "#include \"nope.cuh\"\n"}, nil, `include "nope.cuh"`},
		{"no sources", map[string]string{}, nil, "no "},
	} {
		t.Run("case="+c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, text := range c.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := generate(dir)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("generate error = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestRun checks the command's -check mode and exit statuses.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.cu"), []byte("extern \"C\" __global__ void f(int n) {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if got := run([]string{"-dir", dir, "-check"}, &stdout, &stderr); got != 1 {
		t.Errorf("-check without a table: status %d, want 1 (stderr %q)", got, stderr.String())
	}
	if got := run([]string{"-dir", dir}, &stdout, &stderr); got != 0 {
		t.Fatalf("generate: status %d, want 0 (stderr %q)", got, stderr.String())
	}
	if got := run([]string{"-dir", dir, "-check"}, &stdout, &stderr); got != 0 {
		t.Errorf("-check after generating: status %d, want 0 (stderr %q)", got, stderr.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "a.cu"), []byte("extern \"C\" __global__ void f(int n, int m) {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if got := run([]string{"-dir", dir, "-check"}, &stdout, &stderr); got != 1 || !strings.Contains(stderr.String(), "stale") {
		t.Errorf("-check after a source change: status %d, stderr %q; want 1 and 'stale'", got, stderr.String())
	}
	if got := run([]string{"extra"}, &stdout, &stderr); got != 2 {
		t.Errorf("an argument: status %d, want 2", got)
	}
	if got := run([]string{"-nosuchflag"}, &stdout, &stderr); got != 2 {
		t.Errorf("an unknown flag: status %d, want 2", got)
	}
}
