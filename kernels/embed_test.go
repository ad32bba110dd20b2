package kernels

import (
	"errors"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// ptxEntry is one .entry of a PTX file: its name and parameter types as
// Param.Type values.
type ptxEntry struct {
	name  string
	types []string
}

var (
	entryRE    = regexp.MustCompile(`(?m)^\.visible \.entry ([A-Za-z_][A-Za-z0-9_]*)\(`)
	anyEntryRE = regexp.MustCompile(`(?m)^\s*(?:\.visible\s+|\.weak\s+)?\.entry\s+([A-Za-z_][A-Za-z0-9_]*)`)
	paramRE    = regexp.MustCompile(`^\s*\.param\s+\.(u64|u32|s32|f32|b64|b32|s64)\s+([A-Za-z_][A-Za-z0-9_]*)\s*,?\s*$`)
	versionRE  = regexp.MustCompile(`(?m)^\.version (\d+)\.(\d+)$`)
	targetRE   = regexp.MustCompile(`(?m)^\.target (sm_\d+)$`)
)

// ptxParamType maps a PTX parameter type to a Param.Type.
var ptxParamType = map[string]string{"u64": TypePtr, "u32": TypeI32, "s32": TypeI32, "f32": TypeF32}

// parsePTXEntries returns the .visible .entry functions of a PTX text in
// order, with their parameter types.
func parsePTXEntries(t *testing.T, file, text string) []ptxEntry {
	t.Helper()
	var entries []ptxEntry
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		m := entryRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		e := ptxEntry{name: m[1]}
		for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), ")"); i++ {
			pm := paramRE.FindStringSubmatch(lines[i])
			if pm == nil {
				t.Fatalf("%s: entry %s: cannot parse parameter line %d %q", file, e.name, i+1, lines[i])
			}
			typ, ok := ptxParamType[pm[1]]
			if !ok {
				t.Fatalf("%s: entry %s: parameter %s has PTX type .%s, want .u64, .u32, .s32 or .f32",
					file, e.name, pm[2], pm[1])
			}
			if want := e.name + "_param_" + strconv.Itoa(len(e.types)); pm[2] != want {
				t.Errorf("%s: entry %s: parameter name %s, want %s", file, e.name, pm[2], want)
			}
			e.types = append(e.types, typ)
		}
		entries = append(entries, e)
	}
	return entries
}

func TestEntriesMatchTable(t *testing.T) {
	listed := map[string]Kernel{}
	for _, k := range All {
		if _, dup := listed[k.Name]; dup {
			t.Errorf("All lists %s twice", k.Name)
		}
		listed[k.Name] = k
	}
	if len(All) == 0 {
		t.Fatal("All is empty")
	}
	found := map[string]bool{}
	for _, file := range Files() {
		text, err := PTX(file)
		if err != nil {
			t.Fatalf("PTX(%q) error %v", file, err)
		}
		entries := parsePTXEntries(t, file, text)
		if got, want := len(anyEntryRE.FindAllString(text, -1)), len(entries); got != want {
			t.Errorf("%s: %d .entry directives, %d of them .visible and parsed; want all visible", file, got, want)
		}
		for _, e := range entries {
			k, ok := listed[e.name]
			if !ok {
				t.Errorf("%s: .entry %s is not listed in All", file, e.name)
				continue
			}
			found[e.name] = true
			if k.File != file {
				t.Errorf("%s: .entry %s: All says File = %q, want %q", file, e.name, k.File, file)
			}
			if len(e.types) != len(k.Params) {
				t.Errorf("%s: .entry %s has %d parameters, All lists %d", file, e.name, len(e.types), len(k.Params))
				continue
			}
			for i, typ := range e.types {
				if k.Params[i].Type != typ {
					t.Errorf("%s: .entry %s parameter %d (%s): PTX type %s, All says %s",
						file, e.name, i, k.Params[i].Name, typ, k.Params[i].Type)
				}
			}
		}
	}
	for _, k := range All {
		if !found[k.Name] {
			t.Errorf("All lists %s (File %q), but no PTX file has that .visible .entry", k.Name, k.File)
		}
	}
}

// cuKernelRE matches an entry point of a .cu source up to its parameter list.
// An optional __launch_bounds__(n) may stand between void and the name.
var cuKernelRE = regexp.MustCompile(`extern "C" __global__ void\s+(?:__launch_bounds__\([^)]*\)\s+)?([A-Za-z_][A-Za-z0-9_]*)\(([^)]*)\)`)

// TestSourceSignatures checks the parameter names and types of All against
// the .cu sources, which the PTX does not keep.
func TestSourceSignatures(t *testing.T) {
	seen := map[string]bool{}
	for _, file := range Files() {
		src := strings.TrimSuffix(file, ".ptx") + ".cu"
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("source of %s: %v", file, err)
		}
		header, _, _ := strings.Cut(string(b), "#include")
		for _, m := range cuKernelRE.FindAllStringSubmatch(string(b), -1) {
			name := m[1]
			seen[name] = true
			if !regexp.MustCompile(`(?m)^//\s+` + name + `\s+\S`).MatchString(header) {
				t.Errorf("%s: the header comment's version list has no line for %s", src, name)
			}
			k, ok := Lookup(name)
			if !ok {
				t.Errorf("%s: kernel %s is not listed in All", src, name)
				continue
			}
			var got []Param
			for _, decl := range strings.Split(m[2], ",") {
				fields := strings.Fields(decl)
				if len(fields) < 2 {
					t.Fatalf("%s: kernel %s: cannot parse parameter %q", src, name, decl)
				}
				pname := fields[len(fields)-1]
				ctype := strings.Join(fields[:len(fields)-1], " ")
				var typ string
				switch {
				case strings.HasSuffix(ctype, "*"):
					typ = TypePtr
				case ctype == "int":
					typ = TypeI32
				case ctype == "float":
					typ = TypeF32
				default:
					t.Fatalf("%s: kernel %s: parameter %q has C type %q, want a pointer, int or float", src, name, pname, ctype)
				}
				got = append(got, Param{Name: pname, Type: typ})
			}
			if len(got) != len(k.Params) {
				t.Errorf("%s: kernel %s has %d parameters %v, All lists %d %v", src, name, len(got), got, len(k.Params), k.Params)
				continue
			}
			for i := range got {
				if got[i].Name != k.Params[i].Name || got[i].Type != k.Params[i].Type {
					t.Errorf("%s: kernel %s parameter %d = %+v, All says %+v", src, name, i, got[i], k.Params[i])
				}
			}
		}
	}
	for _, k := range All {
		if !seen[k.Name] {
			t.Errorf("All lists %s, but no .cu source defines it", k.Name)
		}
	}
}

// TestGeneratedHeader checks that every embedded PTX file was written by
// scripts/gen-ptx.sh from the .cu of the same name, and that its PTX ISA
// version and target are ones the CUDA 12 and 13 drivers JIT-compile.
func TestGeneratedHeader(t *testing.T) {
	files := Files()
	if len(files) == 0 {
		t.Fatal("no embedded PTX files")
	}
	for _, file := range files {
		text, err := PTX(file)
		if err != nil {
			t.Fatalf("PTX(%q) error %v", file, err)
		}
		first, _, _ := strings.Cut(text, "\n")
		prefix := "// Code generated by scripts/gen-ptx.sh from " + strings.TrimSuffix(file, ".ptx") + ".cu with "
		if !strings.HasPrefix(first, prefix) || !strings.HasSuffix(first, "; DO NOT EDIT.") {
			t.Errorf("%s: first line %q, want %q…%q", file, first, prefix, "; DO NOT EDIT.")
		}
		if !strings.Contains(first, " clang version 19.") || !strings.Contains(first, "-ffp-contract=off") {
			t.Errorf("%s: first line %q does not name clang 19 and -ffp-contract=off", file, first)
		}
		if !regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`).MatchString(text) {
			t.Errorf("%s: no line matches Go's generated-code convention", file)
		}
		vm := versionRE.FindStringSubmatch(text)
		if vm == nil {
			t.Errorf("%s: no .version directive", file)
		} else if major, _ := strconv.Atoi(vm[1]); major < 6 || major > 8 {
			t.Errorf("%s: .version %s.%s, want 6.x to 8.x (sm_70 needs ≥ 6.0; CUDA 12 drivers JIT ≤ 8.x)", file, vm[1], vm[2])
		}
		// sm_70 unless the source asks for sm_80 (scripts/gen-ptx.sh).
		wantTarget := "sm_70"
		if src, err := os.ReadFile(strings.TrimSuffix(file, ".ptx") + ".cu"); err == nil &&
			regexp.MustCompile(`(?m)^// gen-ptx: target sm_80$`).Match(src) {
			wantTarget = "sm_80"
		}
		tm := targetRE.FindStringSubmatch(text)
		if tm == nil || tm[1] != wantTarget {
			t.Errorf("%s: .target %v, want %s", file, tm, wantTarget)
		}
		for _, k := range All {
			if k.File == file && tm != nil && k.Target != tm[1] {
				t.Errorf("%s: kernel %s: All says Target %q, PTX has %q", file, k.Name, k.Target, tm[1])
			}
		}
	}
}

// TestPTXInstructionRules checks the numerical rules every kernel keeps: no
// approximate or flush-to-zero instruction (the simulator and the GPU must
// agree bit for bit), no floating-point atomics (deterministic reductions),
// and no float add/sub/mul without an explicit rounding mode (ptxas may fuse
// those into an fma, which the simulator would not).
func TestPTXInstructionRules(t *testing.T) {
	unrounded := regexp.MustCompile(`^(add|sub|mul)\.f(32|64)$`)
	for _, file := range Files() {
		text, err := PTX(file)
		if err != nil {
			t.Fatalf("PTX(%q) error %v", file, err)
		}
		n := 0
		for i, line := range strings.Split(text, "\n") {
			fields := strings.Fields(strings.TrimSpace(line))
			if len(fields) == 0 || strings.HasPrefix(fields[0], "//") || strings.HasPrefix(fields[0], ".") {
				continue
			}
			op := fields[0]
			if strings.HasPrefix(op, "@") && len(fields) > 1 {
				op = fields[1]
			}
			n++
			switch {
			case strings.Contains(op, ".approx"), strings.Contains(op, ".ftz"):
				t.Errorf("%s:%d: %q: approximate or flush-to-zero instruction", file, i+1, strings.TrimSpace(line))
			case (strings.HasPrefix(op, "atom") || strings.HasPrefix(op, "red")) &&
				(strings.Contains(op, ".f32") || strings.Contains(op, ".f64") || strings.Contains(op, ".f16")):
				t.Errorf("%s:%d: %q: floating-point atomic", file, i+1, strings.TrimSpace(line))
			case unrounded.MatchString(op):
				t.Errorf("%s:%d: %q: float arithmetic without .rn may be fused by ptxas", file, i+1, strings.TrimSpace(line))
			}
		}
		if n == 0 {
			t.Errorf("%s: no instructions found", file)
		}
	}
}

func TestLookupAndPTX(t *testing.T) {
	for _, k := range All {
		got, ok := Lookup(k.Name)
		if !ok || got.Name != k.Name || got.File != k.File {
			t.Errorf("Lookup(%q) = %q in %q, %v; want %q in %q, true", k.Name, got.Name, got.File, ok, k.Name, k.File)
		}
	}
	if k, ok := Lookup("no_such_kernel"); ok {
		t.Errorf("Lookup(no_such_kernel) = %+v, true; want false", k)
	}
	if _, err := PTX("no_such.ptx"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("PTX(no_such.ptx) error = %v, want one wrapping fs.ErrNotExist", err)
	}
	files := Files()
	for i := 1; i < len(files); i++ {
		if files[i-1] >= files[i] {
			t.Errorf("Files() = %v, not sorted", files)
		}
	}
	for _, f := range files {
		if !strings.HasSuffix(f, ".ptx") {
			t.Errorf("Files() contains %q, want only .ptx files", f)
		}
	}
}

// TestDocs checks that every kernel of the generated table has a doc in
// docs.go and that docs.go documents no kernel the sources lack.
func TestDocs(t *testing.T) {
	for _, k := range All {
		if k.Doc == "" {
			t.Errorf("kernel %s (%s) has no doc: add one to kernels/docs.go", k.Name, k.Source)
		}
	}
	for name := range docs {
		if _, ok := Lookup(name); !ok {
			t.Errorf("docs.go documents %s, which no kernels/*.cu defines", name)
		}
	}
}

// TestDefines checks the constants the Go side shares with the CUDA side:
// BlockSize is kBlock of every source, and the table names each kernel's
// source and PTX file consistently.
func TestDefines(t *testing.T) {
	for _, k := range All {
		if got, want := k.File, strings.TrimSuffix(k.Source, ".cu")+".ptx"; got != want {
			t.Errorf("%s: File %q, want %q (from Source %q)", k.Name, got, want, k.Source)
		}
		got, ok := Define(k.Source, "kBlock")
		if !ok {
			t.Errorf("%s: %s sees no kBlock (common.cuh)", k.Name, k.Source)
			continue
		}
		if got != BlockSize {
			t.Errorf("%s: kBlock = %d, BlockSize = %d", k.Source, got, BlockSize)
		}
	}
	if v, ok := Define("conv.cu", "kNoSuchConstant"); ok {
		t.Errorf("Define(conv.cu, kNoSuchConstant) = %d, true; want false", v)
	}
	if v, ok := Define("no_such.cu", "kBlock"); ok {
		t.Errorf("Define(no_such.cu, kBlock) = %d, true; want false", v)
	}
}
