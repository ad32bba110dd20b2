// Command gentable writes kernels/table_gen.go, the table of every kernel
// entry point, from the CUDA sources kernels/*.cu: each
//
//	extern "C" __global__ void [__launch_bounds__(…)] name(params)
//
// gives a kernels.Kernel with its name, its source and PTX file, the
// target the source asks for ("// gen-ptx: target sm_NN", else sm_70, as
// scripts/gen-ptx.sh compiles it) and its parameters (name, C type and
// kind: pointer, int or float). The integer #define constants whose names
// start with k (kBlock, kBM, kBN, kBK, kThreads, …) of each source and of
// the local headers it includes (#include "x.cuh") go into the table too,
// so that Go code can be tested against the CUDA tile sizes.
//
// Usage (from the repository root; scripts/gen-ptx.sh runs it):
//
//	go run ./kernels/internal/gentable          rewrite kernels/table_gen.go
//	go run ./kernels/internal/gentable -check   exit 1 when it is stale
//
// -dir names the kernels directory (default kernels). Exit status: 0
// success or up to date, 1 a parse failure or a stale table, 2 a usage
// error. The docs of the kernels stay hand-written in kernels/docs.go,
// keyed by name; the generated table refers to them.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// outName is the generated file, in the kernels directory.
const outName = "table_gen.go"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gentable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "kernels", "the kernels `directory` (holding *.cu)")
	check := fs.Bool("check", false, "exit 1, naming the difference, when "+outName+" is stale instead of writing it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "gentable: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	src, err := generate(*dir)
	if err != nil {
		fmt.Fprintln(stderr, "gentable:", err)
		return 1
	}
	path := filepath.Join(*dir, outName)
	if *check {
		old, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "gentable: %v; run go run ./kernels/internal/gentable\n", err)
			return 1
		}
		if !bytes.Equal(old, src) {
			fmt.Fprintf(stderr, "gentable: %s is stale (first difference at line %d); run go run ./kernels/internal/gentable\n",
				path, firstDiffLine(old, src))
			return 1
		}
		fmt.Fprintf(stdout, "gentable: %s is up to date\n", path)
		return 0
	}
	if err := os.WriteFile(path, src, 0o644); err != nil {
		fmt.Fprintln(stderr, "gentable:", err)
		return 1
	}
	return 0
}

// firstDiffLine is the 1-based line of the first difference of a and b.
func firstDiffLine(a, b []byte) int {
	line := 1
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return line
		}
		if a[i] == '\n' {
			line++
		}
	}
	return line
}

// param is one parameter of an entry point.
type param struct {
	name, ctype, kind string
}

// entry is one extern "C" __global__ function.
type entry struct {
	name, source, target string
	params               []param
}

// define is one integer #define of a source or a header it includes.
type define struct {
	name  string
	value int64
}

var (
	entryRE   = regexp.MustCompile(`extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*\(([^)]*)\)`)
	targetRE  = regexp.MustCompile(`(?m)^// gen-ptx: target (sm_[0-9]+)$`)
	includeRE = regexp.MustCompile(`(?m)^\s*#include\s+"([^"]+)"`)
	defineRE  = regexp.MustCompile(`(?m)^\s*#define\s+(k[A-Za-z0-9_]*)\s+(\(?-?(?:0x[0-9A-Fa-f]+|[0-9]+)\)?)(?:\s|$)`)
	globalRE  = regexp.MustCompile(`__global__`)
)

// generate parses dir/*.cu and returns the formatted table_gen.go.
func generate(dir string) ([]byte, error) {
	sources, err := filepath.Glob(filepath.Join(dir, "*.cu"))
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("no %s/*.cu sources", dir)
	}
	sort.Strings(sources)
	var entries []entry
	defs := map[string][]define{}
	seen := map[string]string{}
	for _, path := range sources {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		text := string(b)
		base := filepath.Base(path)
		es, err := parseEntries(base, text)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if prev, dup := seen[e.name]; dup {
				return nil, fmt.Errorf("kernel %s is defined in both %s and %s; names must be unique", e.name, prev, base)
			}
			seen[e.name] = base
		}
		entries = append(entries, es...)
		d, err := collectDefines(dir, base, map[string]bool{})
		if err != nil {
			return nil, err
		}
		defs[base] = d
	}
	return render(entries, defs)
}

// parseEntries returns the entry points of one source in order.
func parseEntries(file, text string) ([]entry, error) {
	target := "sm_70"
	if m := targetRE.FindStringSubmatch(text); m != nil {
		target = m[1]
	}
	var out []entry
	for _, m := range entryRE.FindAllStringSubmatchIndex(text, -1) {
		name := text[m[2]:m[3]]
		line := 1 + strings.Count(text[:m[0]], "\n")
		e := entry{name: name, source: file, target: target}
		for _, decl := range strings.Split(text[m[4]:m[5]], ",") {
			fields := strings.Fields(strings.ReplaceAll(decl, "*", "* "))
			if len(fields) < 2 {
				return nil, fmt.Errorf("%s:%d: kernel %s: cannot parse parameter %q", file, line, name, strings.TrimSpace(decl))
			}
			p := param{name: fields[len(fields)-1], ctype: strings.ReplaceAll(strings.Join(fields[:len(fields)-1], " "), " *", "*")}
			switch {
			case strings.HasSuffix(p.ctype, "*"):
				p.kind = "TypePtr"
			case p.ctype == "int":
				p.kind = "TypeI32"
			case p.ctype == "float":
				p.kind = "TypeF32"
			default:
				return nil, fmt.Errorf("%s:%d: kernel %s: parameter %s has C type %q; want a pointer, int or float",
					file, line, name, p.name, p.ctype)
			}
			e.params = append(e.params, p)
		}
		out = append(out, e)
	}
	// Every __global__ must have been read as an entry point: one written
	// in another form would silently miss the table.
	if got, want := len(out), countGlobals(text); got != want {
		return nil, fmt.Errorf("%s: %d __global__ functions, %d of them in the form extern \"C\" __global__ void [__launch_bounds__(n)] name(…)",
			file, want, got)
	}
	return out, nil
}

// countGlobals counts __global__ outside comments and #define lines.
func countGlobals(text string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "//") || strings.HasPrefix(t, "#") {
			continue
		}
		if i := strings.Index(t, "//"); i >= 0 {
			t = t[:i]
		}
		n += len(globalRE.FindAllString(t, -1))
	}
	return n
}

// collectDefines returns the k-prefixed integer #defines of file and of the
// local headers it includes, in include order, the file's own last.
func collectDefines(dir, file string, visiting map[string]bool) ([]define, error) {
	if visiting[file] {
		return nil, nil
	}
	visiting[file] = true
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil, err
	}
	text := string(b)
	var out []define
	for _, m := range includeRE.FindAllStringSubmatch(text, -1) {
		d, err := collectDefines(dir, m[1], visiting)
		if err != nil {
			return nil, fmt.Errorf("%s: include %q: %w", file, m[1], err)
		}
		out = append(out, d...)
	}
	for _, m := range defineRE.FindAllStringSubmatch(text, -1) {
		v, err := strconv.ParseInt(strings.Trim(m[2], "()"), 0, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: #define %s %s: %w", file, m[1], m[2], err)
		}
		dup := false
		for _, d := range out {
			if d.name == m[1] && d.value != v {
				return nil, fmt.Errorf("%s: #define %s %d redefines %d from an included header", file, m[1], v, d.value)
			}
			dup = dup || d.name == m[1]
		}
		if !dup {
			out = append(out, define{m[1], v})
		}
	}
	return out, nil
}

// render writes the Go source of the table.
func render(entries []entry, defs map[string][]define) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code generated by go run ./kernels/internal/gentable from kernels/*.cu; DO NOT EDIT.\n\n")
	b.WriteString("package kernels\n\n")
	b.WriteString("// All lists every kernel entry point of kernels/*.cu, by source file\n")
	b.WriteString("// (sorted) in source order, with its parameters as the source declares\n")
	b.WriteString("// them. Doc comes from docs.go.\n")
	b.WriteString("var All = []Kernel{\n")
	for _, e := range entries {
		ptx := strings.TrimSuffix(e.source, ".cu") + ".ptx"
		fmt.Fprintf(&b, "\t{\n\t\tName: %q, File: %q, Source: %q, Target: %q,\n\t\tParams: []Param{\n", e.name, ptx, e.source, e.target)
		for _, p := range e.params {
			fmt.Fprintf(&b, "\t\t\t{Name: %q, Type: %s, CType: %q},\n", p.name, p.kind, p.ctype)
		}
		fmt.Fprintf(&b, "\t\t},\n\t\tDoc: docs[%q],\n\t},\n", e.name)
	}
	b.WriteString("}\n\n")
	b.WriteString("// defines holds, per source file, the integer #define constants named\n")
	b.WriteString("// k… of the source and of the local headers it includes (see Define).\n")
	b.WriteString("var defines = map[string]map[string]int{\n")
	files := make([]string, 0, len(defs))
	for f := range defs {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		fmt.Fprintf(&b, "\t%q: {", f)
		for i, d := range defs[f] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q: %d", d.name, d.value)
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n")
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("formatting the table: %w", err)
	}
	return out, nil
}
