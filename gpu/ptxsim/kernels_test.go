package ptxsim

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLoadAllKernels loads every PTX file of the project's kernels/ and
// checks that each entry point decodes: the simulator covers every
// instruction our kernels use.
func TestLoadAllKernels(t *testing.T) {
	files, err := filepath.Glob("../../kernels/*.ptx")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no ../../kernels/*.ptx files: the kernels must be generated (scripts/gen-ptx.sh) before the simulator can prove it covers them")
	}
	for _, f := range files {
		t.Run("file="+filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			mod, err := Load(string(src))
			if err != nil {
				t.Fatalf("Load(%s) = %v", f, err)
			}
			if len(mod.Kernels()) == 0 {
				t.Fatalf("Load(%s): no kernels", f)
			}
			for _, name := range mod.Kernels() {
				k, err := mod.Kernel(name)
				if err != nil {
					t.Fatal(err)
				}
				if k.Name() != name {
					t.Errorf("Kernel(%q).Name() = %q", name, k.Name())
				}
				for _, p := range k.Params() {
					if p.Size < 1 || p.Size > 8 {
						t.Errorf("%s: parameter %s has size %d, want 1..8", name, p.Name, p.Size)
					}
				}
			}
			t.Logf("%s: %d kernels: %v", filepath.Base(f), len(mod.Kernels()), mod.Kernels())
		})
	}
}
