package kernels

import (
	"regexp"
	"strings"
	"testing"
)

// TestOptimV2Rounding checks the instructions that make sgd_nesterov_v1
// and adam_v1 agree bit for bit with cpuref.SGDNesterovStep and
// cpuref.AdamStep on every device: each float operation rounded to
// nearest on its own (mul.rn, add.rn, sub.rn), adam_v1's square root and
// divisions correctly rounded (sqrt.rn, div.rn), and nothing that a device
// may compute differently: no fused multiply-add, no approximate division
// or square root, no flush of subnormals to zero.
func TestOptimV2Rounding(t *testing.T) {
	src, err := PTX("optim_v2.ptx")
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]string{}
	parts := regexp.MustCompile(`(?m)^\.visible \.entry (\w+)\(`).FindAllStringSubmatchIndex(src, -1)
	for i, p := range parts {
		end := len(src)
		if i+1 < len(parts) {
			end = parts[i+1][0]
		}
		entries[src[p[2]:p[3]]] = src[p[0]:end]
	}
	for name, want := range map[string][]string{
		"sgd_nesterov_v1": {"mul.rn.f32", "add.rn.f32", "sub.rn.f32"},
		"adam_v1":         {"mul.rn.f32", "add.rn.f32", "sub.rn.f32", "sqrt.rn.f32", "div.rn.f32"},
	} {
		body, ok := entries[name]
		if !ok {
			t.Errorf("optim_v2.ptx has no entry %s", name)
			continue
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s has no %s", name, w)
			}
		}
		if m := regexp.MustCompile(`\b(fma|mad)(\.\w+)*\.f(32|64)`).FindString(body); m != "" {
			t.Errorf("%s contains %q: a fused multiply-add, which cpuref does not do", name, m)
		}
		for _, bad := range []string{".approx", ".full", ".ftz", "rsqrt", "rcp."} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q: the device could round differently from cpuref", name, bad)
			}
		}
		if n := strings.Count(body, "div.rn.f32"); name == "adam_v1" && n != 2 {
			t.Errorf("adam_v1 has %d div.rn.f32, want 2 (√v/bc2_sqrt and the step)", n)
		}
	}
}
