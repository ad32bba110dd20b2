package ptxsim

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// TestMutationsNeverPanic loads and runs randomly damaged copies of the test
// PTX: every failure must be an error, never an internal panic.
func TestMutationsNeverPanic(t *testing.T) {
	t.Parallel()
	src, _ := os.ReadFile("testdata/kernels.ptx")
	src2, _ := os.ReadFile("testdata/kernels_sm80.ptx")
	base := []string{string(src), string(src2)}
	rng := rand.New(rand.NewPCG(1, 1))
	toks := []string{"{", "}", "[", "]", "%r1", "%rd1", ",", ";", "-", "0x", "0f", "(", ")", ".b8", "|", "!", "@", ".reg", ".param", "1", "99999999999999999999", "$L__BB0_2", ":", "%p1", "%tid.x", "bra", "call.uni"}
	for i := 0; i < 1500; i++ {
		s := base[rng.IntN(2)]
		lines := strings.Split(s, "\n")
		for j := 0; j < 1+rng.IntN(3); j++ {
			l := rng.IntN(len(lines))
			switch rng.IntN(4) {
			case 0:
				lines = append(lines[:l], lines[l+1:]...)
			case 1:
				ln := lines[l]
				if len(ln) > 0 {
					p := rng.IntN(len(ln))
					lines[l] = ln[:p] + toks[rng.IntN(len(toks))] + ln[p:]
				}
			case 2:
				ln := lines[l]
				if len(ln) > 0 {
					p := rng.IntN(len(ln))
					q := p + rng.IntN(len(ln)-p)
					lines[l] = ln[:p] + ln[q:]
				}
			case 3:
				lines[l] = lines[rng.IntN(len(lines))]
			}
		}
		mod, err := Load(strings.Join(lines, "\n"))
		if err != nil && strings.Contains(err.Error(), "internal error") {
			t.Fatalf("%v", err)
		}
		if err != nil || i%4 != 0 {
			continue
		}
		m := New(Options{Workers: 1, MaxInstructionsPerThread: 20000, CheckRaces: true, CheckUninitShared: true, Counters: true})
		buf, _ := m.Alloc(1 << 16)
		for _, name := range mod.Kernels() {
			k, _ := mod.Kernel(name)
			args := make([]uint64, len(k.Params()))
			for j, p := range k.Params() {
				if p.Size == 8 {
					args[j] = buf
				} else {
					args[j] = 3
				}
			}
			_, err := m.Launch(k, [3]int{2, 1, 1}, [3]int{32, 1, 1}, 64, args)
			if err != nil && strings.Contains(err.Error(), "internal error") {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
}
