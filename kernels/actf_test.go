package kernels

import (
	"os"
	"strings"
	"testing"
)

// TestActfMatchesCpurefTwins checks that the activation functions of
// actf.cuh are, character for character, those of
// cpuref/testdata/actf_check.cc, which cpuref's TestMathfTwinsAgainstC
// compiles and compares bit for bit with cpuref's float32 activations:
// an edit to one copy without the other fails here.
func TestActfMatchesCpurefTwins(t *testing.T) {
	const first, cEnd, hEnd = "MATHF_FN float actf_fabsf", "static uint32_t bits_of", "#endif  // CONVTRAIN_KERNELS_ACTF_CUH"
	body := func(path, end string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i, j := strings.Index(s, first), strings.Index(s, end)
		if i < 0 || j < i {
			t.Fatalf("%s: no functions between %q and %q", path, first, end)
		}
		return strings.TrimSpace(s[i:j])
	}
	h, c := body("actf.cuh", hEnd), body("../cpuref/testdata/actf_check.cc", cEnd)
	if h != c {
		hl, cl := strings.Split(h, "\n"), strings.Split(c, "\n")
		for i := 0; i < min(len(hl), len(cl)); i++ {
			if hl[i] != cl[i] {
				t.Fatalf("actf.cuh differs from cpuref/testdata/actf_check.cc at function line %d:\n  actf.cuh:      %s\n  actf_check.cc: %s", i+1, hl[i], cl[i])
			}
		}
		t.Fatalf("actf.cuh has %d function lines, cpuref/testdata/actf_check.cc %d", len(hl), len(cl))
	}
}
