package gpu

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

func init() {
	launcherTestedElsewhere[plainKernels[kNonFiniteFirst]] = true // TestCheckLauncher
	optimConformance = append(optimConformance,
		conformanceCase{"nonfinite_first_v1", []string{"nonfinite_first_v1"}, testNonFiniteFirst})
}

// testNonFiniteFirst checks nonfinite_first_v1 against a host scan on
// tables whose tensors are not multiples of a block's chunk (2048), with
// NaN, +Inf and −Inf placed on the first and last elements and on chunk
// boundaries, in one tensor or several (the first one counts), and with
// finite extremes (the largest float32, subnormals, −0) that must not
// count. The inputs are guarded and must be unchanged; out is guarded.
func testNonFiniteFirst(t *testing.T, d *Device) {
	sizes := []int{3, 2049, 1, 2048, 5000, 2047}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	type spot struct{ tensor, index int }
	cases := []struct {
		name string
		bad  []spot
		v    float32
	}{
		{"finite", nil, 0},
		{"nan-first-element", []spot{{0, 0}}, nan},
		{"inf-last-of-chunk", []spot{{1, 2047}}, inf},
		{"-inf-past-chunk", []spot{{1, 2048}}, -inf},
		{"nan-one-element-tensor", []spot{{2, 0}}, nan},
		{"inf-last-element", []spot{{5, 2046}}, inf},
		{"two-tensors", []spot{{4, 4999}, {3, 17}}, nan},
		{"all-later", []spot{{5, 1}, {4, 2048 * 2}, {2, 0}}, -inf},
	}
	for _, c := range cases {
		t.Run(kv("case", c.name), func(t *testing.T) {
			rng := newRand(t.Name())
			h := newHarness(t, d)
			bufs := make([]*Buffer, len(sizes))
			want := len(sizes)
			for i, n := range sizes {
				x := uniform(rng, n)
				x[0] = math.MaxFloat32
				x[n-1] = math.Float32frombits(1) // the smallest subnormal
				if n > 2 {
					x[1] = float32(math.Copysign(0, -1))
				}
				for _, s := range c.bad {
					if s.tensor == i {
						x[s.index] = c.v
						want = min(want, i)
					}
				}
				bufs[i] = h.in(fmt.Sprintf("x%d", i), x)
			}
			tab, err := d.NewCheckTable(bufs)
			if err != nil {
				t.Fatal(err)
			}
			defer tab.Free()
			out := h.out("out", 1)
			before := d.Launches()
			if err := d.FirstNonFinite(tab, out); err != nil {
				t.Fatal(err)
			}
			if got := d.Launches() - before; got != 2 {
				t.Errorf("%d launches, want 2 (fill, check)", got)
			}
			if got := h.read(out)[0]; got != float32(want) {
				t.Errorf("FirstNonFinite = %g, want %d", got, want)
			}
			h.check()
		})
	}
}

// TestCheckLauncher checks nonfinite_first_v1's launch on a fake driver:
// the fill of out before it, the grid (Σ ⌈n/2048⌉), the block and the
// arguments; refused tables and buffers launch nothing.
func TestCheckLauncher(t *testing.T) {
	d, f := openFake(t)
	a, b, out := mustF32(t, d, 4097), mustF32(t, d, 1), mustF32(t, d, 1) // 3 + 1 blocks
	tab, err := d.NewCheckTable([]*Buffer{a, b})
	if err != nil {
		t.Fatal(err)
	}
	launches := f.launches
	if err := d.FirstNonFinite(tab, out); err != nil {
		t.Fatal(err)
	}
	l := f.last
	if f.launches-launches != 2 || l.name != "nonfinite_first_v1" || l.grid != (Dim3{4, 1, 1}) || l.block != (Dim3{256, 1, 1}) {
		t.Errorf("%d launches, the last %s grid %v block %v, want 2, nonfinite_first_v1 grid {4 1 1} block {256 1 1}",
			f.launches-launches, l.name, l.grid, l.block)
	}
	if l.nargs != 3 || l.args[0] != uint64(tab.buf.ptr) || l.args[1] != 2 || l.args[2] != uint64(out.ptr) {
		t.Errorf("arguments %#x, want table %#x, count 2, out %#x", l.args[:l.nargs], tab.buf.ptr, out.ptr)
	}
	if n := testing.AllocsPerRun(10, func() { d.FirstNonFinite(tab, out) }); n != 0 {
		t.Errorf("a check allocates %v times, want 0", n)
	}
	ints := mustI32(t, d, 4)
	if _, err := d.NewCheckTable(nil); !errors.Is(err, geom.ErrGeometry) {
		t.Errorf("NewCheckTable(nil): %v, want ErrGeometry", err)
	}
	if _, err := d.NewCheckTable([]*Buffer{a, ints}); !errors.Is(err, geom.ErrGeometry) || !strings.Contains(err.Error(), "tensor 1") {
		t.Errorf("NewCheckTable with an int32 buffer: %v, want ErrGeometry naming tensor 1", err)
	}
	launches = f.launches
	if err := d.FirstNonFinite(tab, ints); !errors.Is(err, geom.ErrGeometry) || !strings.Contains(err.Error(), "nonfinite_first_v1") {
		t.Errorf("FirstNonFinite into an int32 out: %v, want ErrGeometry naming the kernel", err)
	}
	if err := b.Free(); err != nil {
		t.Fatal(err)
	}
	if err := d.FirstNonFinite(tab, out); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "tensor 1") {
		t.Errorf("FirstNonFinite with a freed tensor: %v, want ErrClosed naming tensor 1", err)
	}
	if f.launches != launches {
		t.Errorf("%d launches by refused calls, want 0", f.launches-launches)
	}
}
