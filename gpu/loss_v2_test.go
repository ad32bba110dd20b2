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
	launcherTestedElsewhere[plainKernels[kSoftmaxCEMean]] = true // TestSoftmaxCEMeanLauncher
	plainConformance = append(plainConformance,
		conformanceCase{"softmax_ce_mean_v1", []string{"softmax_ce_mean_v1"}, testSoftmaxCEMean})
}

// testSoftmaxCEMean checks softmax_ce_mean_v1 against the two launches it
// replaces, softmax_ce_v1 then reduce_sum_v1 with scale 1/N (both checked
// against cpuref by their own cases): the loss and dlogits must be the
// same bits, on row counts below, at and past one row a thread (256) up
// to SoftmaxCEMeanMaxRows, with a label out of range (a NaN loss and
// row) and without dlogits. Outputs are poisoned and guarded.
func testSoftmaxCEMean(t *testing.T, d *Device) {
	for _, n := range []int{1, 3, 64, 255, 256, 257, 700, SoftmaxCEMeanMaxRows} {
		for _, classes := range []int{1, 10, 33} {
			for _, c := range []struct {
				name          string
				bad, noDgrads bool
			}{{"plain", false, false}, {"bad-label", true, false}, {"loss-only", false, true}} {
				t.Run(kv("N", n, "classes", classes, "case", c.name), func(t *testing.T) {
					rng := newRand(t.Name())
					logits := make([]float32, n*classes)
					for i := range logits {
						logits[i] = float32(8*rng.Float64() - 4)
					}
					labels := make([]int32, n)
					for i := range labels {
						labels[i] = int32(rng.IntN(classes))
					}
					if c.bad {
						labels[n/2] = int32(classes)
					}
					h := newHarness(t, d)
					lg, lb := h.in("logits", logits), h.inI32("labels", labels)
					var dl1, dl2 *Buffer
					if !c.noDgrads {
						dl1, dl2 = h.out("dlogits two launches", n*classes), h.out("dlogits", n*classes)
					}
					rows, want, got := h.out("lossRows", n), h.out("loss two launches", 1), h.out("loss", 1)
					if err := d.SoftmaxCrossEntropy(n, classes, lg, lb, rows, dl1); err != nil {
						t.Fatal(err)
					}
					if err := d.ReduceSum(rows, want, float32(1/float64(n))); err != nil {
						t.Fatal(err)
					}
					before := d.Launches()
					if err := d.SoftmaxCrossEntropyMean(n, classes, lg, lb, got, dl2); err != nil {
						t.Fatal(err)
					}
					if l := d.Launches() - before; l != 1 {
						t.Errorf("%d launches, want 1", l)
					}
					g, w := h.read(got)[0], h.read(want)[0]
					if math.Float32bits(g) != math.Float32bits(w) || c.bad != math.IsNaN(float64(g)) {
						t.Errorf("loss = %g (%#x), want %g (%#x) as the two launches give", g, math.Float32bits(g), w, math.Float32bits(w))
					}
					if !c.noDgrads {
						checkExact32(t, "dlogits", h.read(dl2), h.read(dl1))
					}
					h.check()
				})
			}
		}
	}
}

// TestSoftmaxCEMeanLauncher checks softmax_ce_mean_v1's launch on a fake
// driver (one block of 256, every argument, the scale float32(1/N)) and
// its refusals, which launch nothing.
func TestSoftmaxCEMeanLauncher(t *testing.T) {
	d, f := openFake(t)
	const n, classes = 3, 7
	lg, lb, loss, dl := mustF32(t, d, n*classes), mustI32(t, d, n), mustF32(t, d, 1), mustF32(t, d, n*classes)
	if err := d.SoftmaxCrossEntropyMean(n, classes, lg, lb, loss, dl); err != nil {
		t.Fatal(err)
	}
	l := f.last
	want := []uint64{uint64(lg.ptr), uint64(lb.ptr), uint64(loss.ptr), uint64(dl.ptr), n, classes,
		uint64(math.Float32bits(float32(1.0 / 3)))}
	if l.name != "softmax_ce_mean_v1" || l.grid != (Dim3{1, 1, 1}) || l.block != (Dim3{256, 1, 1}) ||
		fmt.Sprint(l.args[:l.nargs]) != fmt.Sprint(want) {
		t.Errorf("launched %s grid %v block %v args %v, want softmax_ce_mean_v1 grid {1 1 1} block {256 1 1} args %v",
			l.name, l.grid, l.block, l.args[:l.nargs], want)
	}
	if a := testing.AllocsPerRun(10, func() { d.SoftmaxCrossEntropyMean(n, classes, lg, lb, loss, nil) }); a != 0 {
		t.Errorf("a launch allocates %v times, want 0", a)
	}
	launches := f.launches
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"float labels", d.SoftmaxCrossEntropyMean(n, classes, lg, lg, loss, dl)},
		{"short logits", d.SoftmaxCrossEntropyMean(n, classes+1, lg, lb, loss, nil)},
		{"nil loss", d.SoftmaxCrossEntropyMean(n, classes, lg, lb, nil, dl)},
		{"zero rows", d.SoftmaxCrossEntropyMean(0, classes, lg, lb, loss, dl)},
	} {
		if !errors.Is(tc.err, geom.ErrGeometry) || !strings.Contains(fmt.Sprint(tc.err), "softmax_ce_mean_v1") {
			t.Errorf("%s: %v, want an error wrapping ErrGeometry naming softmax_ce_mean_v1", tc.name, tc.err)
		}
	}
	if f.launches != launches {
		t.Errorf("%d launches by refused calls, want 0", f.launches-launches)
	}
}
