package kernels

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var mathfStep = flag.Uint64("mathf.step", 257,
	"TestMathf checks every STEP-th float32 bit pattern (1 = all 2^32, a few minutes)")

// cCompilers returns the compiler commands to try, in order: $CC if set,
// then clang-19, cc, gcc and clang where found on PATH. The check program is
// C++ but needs no C++ runtime, so it is built with the C driver and -x c++
// (no libstdc++ to link).
func cCompilers() [][]string {
	var cs [][]string
	if cc := os.Getenv("CC"); cc != "" {
		cs = append(cs, strings.Fields(cc))
	}
	for _, c := range []string{"clang-19", "cc", "gcc", "clang"} {
		if path, err := exec.LookPath(c); err == nil {
			cs = append(cs, []string{path})
		}
	}
	return cs
}

// TestMathf builds testdata/mathf_check.cc, which includes mathf.cuh as
// plain C++, and checks its report: the largest error of mathf_expf and
// mathf_logf over the tested inputs against double-precision libm, and the
// exact bits of the special cases.
//
// The host build uses -ffp-contract=off and __builtin_fmaf, so it performs
// exactly the IEEE-754 operations of the PTX and its results are the
// kernels' results.
func TestMathf(t *testing.T) {
	compilers := cCompilers()
	if len(compilers) == 0 {
		t.Skip("no C compiler found (set CC); mathf.cuh is not checked")
	}
	bin := filepath.Join(t.TempDir(), "mathf_check")
	var failures []string
	built := false
	for _, cc := range compilers {
		args := append(cc[1:], "-x", "c++", "-std=c++20", "-O2", "-ffp-contract=off", "-fno-fast-math",
			"-o", bin, filepath.Join("testdata", "mathf_check.cc"), "-lm")
		out, err := exec.Command(cc[0], args...).CombinedOutput()
		if err == nil {
			built = true
			break
		}
		failures = append(failures, fmt.Sprintf("%s %s: %v\n%s", cc[0], strings.Join(args, " "), err, out))
	}
	if !built {
		t.Fatalf("cannot build testdata/mathf_check.cc with any compiler:\n%s", strings.Join(failures, "\n"))
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, strconv.FormatUint(*mathfStep, 10))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mathf_check: %v\n%s", err, stderr.String())
	}

	// Bound: 1 ulp, the accuracy mathf.cuh documents. The maxima measured
	// over all 2^32 inputs (-mathf.step=1) are below it: expf 0.78 ulp (at a
	// subnormal result), logf 0.92 ulp.
	const maxULP = 1.0
	maxSeen := map[string]bool{}
	specials := 0
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line := sc.Text()
		kind, rest, _ := strings.Cut(line, " ")
		kv := map[string]string{}
		for _, f := range strings.Fields(rest) {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		switch kind {
		case "max":
			ulp, err := strconv.ParseFloat(kv["ulp"], 64)
			if err != nil {
				t.Fatalf("mathf_check: bad line %q", line)
			}
			checked, _ := strconv.Atoi(kv["checked"])
			if checked < 1<<20 {
				t.Errorf("mathf_check: %s checked only %d inputs", kv["func"], checked)
			}
			maxSeen[kv["func"]] = true
			if ulp > maxULP {
				t.Errorf("mathf_%s(x=%s) = %s, want %s: error %g ulp > %g", kv["func"], kv["x"], kv["got"], kv["want"], ulp, maxULP)
			} else {
				t.Logf("mathf_%s: %s inputs, max error %g ulp at x=%s", kv["func"], kv["checked"], ulp, kv["x"])
			}
		case "special":
			specials++
			if kv["got"] != kv["want"] {
				t.Errorf("mathf_%s(x=%s) bits = %s, want %s", kv["func"], kv["x"], kv["got"], kv["want"])
			}
		default:
			t.Errorf("mathf_check: unexpected line %q", line)
		}
	}
	if !maxSeen["expf"] || !maxSeen["logf"] {
		t.Errorf("mathf_check reported max lines for %v, want expf and logf", maxSeen)
	}
	if specials == 0 {
		t.Error("mathf_check reported no special cases")
	}
}
