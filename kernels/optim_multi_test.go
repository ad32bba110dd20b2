package kernels

import (
	"regexp"
	"strings"
	"testing"
)

// TestOptimMultiRounding checks that the multi-tensor optimiser kernels
// round exactly as their per-tensor versions (TestOptimV2Rounding): each
// float operation rounded on its own, Adam's square root and divisions
// correctly rounded, no fused multiply-add, nothing approximate.
func TestOptimMultiRounding(t *testing.T) {
	src, err := PTX("optim_multi.ptx")
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
		"sgd_momentum_multi_v1": {"mul.rn.f32", "add.rn.f32", "sub.rn.f32"},
		"sgd_nesterov_multi_v1": {"mul.rn.f32", "add.rn.f32", "sub.rn.f32"},
		"adam_multi_v1":         {"mul.rn.f32", "add.rn.f32", "sub.rn.f32", "sqrt.rn.f32", "div.rn.f32"},
	} {
		body, ok := entries[name]
		if !ok {
			t.Errorf("optim_multi.ptx has no entry %s", name)
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
		if n := strings.Count(body, "div.rn.f32"); name == "adam_multi_v1" && n != 2 {
			t.Errorf("adam_multi_v1 has %d div.rn.f32, want 2 (√v/bc2_sqrt and the step)", n)
		}
	}
}
