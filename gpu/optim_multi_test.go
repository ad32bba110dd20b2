package gpu

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

func init() {
	for _, k := range []kernelID{kSGDMomentumMulti, kSGDNesterovMulti, kAdamMulti} {
		launcherTestedElsewhere[plainKernels[k]] = true // TestMultiOptimLaunchers
	}
	optimConformance = append(optimConformance,
		conformanceCase{"sgd_momentum_multi_v1", []string{"sgd_momentum_multi_v1"}, testSGDMulti(false, false)},
		conformanceCase{"sgd_nesterov_multi_v1", []string{"sgd_nesterov_multi_v1"}, testSGDMulti(true, false)},
		conformanceCase{"adam_multi_v1", []string{"adam_multi_v1"}, testAdamMulti(false)},
		conformanceCase{"sgd_momentum_multi_at_v1", []string{"sgd_momentum_multi_at_v1"}, testSGDMulti(false, true)},
		conformanceCase{"sgd_nesterov_multi_at_v1", []string{"sgd_nesterov_multi_at_v1"}, testSGDMulti(true, true)},
		conformanceCase{"adam_multi_at_v1", []string{"adam_multi_at_v1"}, testAdamMulti(true)},
	)
}

// multiTables are the tensor lengths of the tables the multi-tensor
// conformance cases update: one tensor, and tensors of every size class
// (one element, a partial block, exactly one block, one element past it,
// several blocks) in an order that is not sorted, so that block b's
// tensor is found by the binary search at every position.
var multiTables = [][]int{
	{1000},
	{1, 257, 256, 31, 1000, 2, 255, 33},
}

// testSGDMulti checks sgd_momentum_multi_v1 (nesterov false) or
// sgd_nesterov_multi_v1 against cpuref.SGDStep or SGDNesterovStep on each
// tensor, bit for bit, over several steps with the velocity carried on the
// device and every guard band checked; with at, the _at_v1 kernels, the
// scalars uploaded into a words buffer before each step (the launch's
// arguments the same every step).
func testSGDMulti(nesterov, at bool) func(t *testing.T, d *Device) {
	return func(t *testing.T, d *Device) {
		type hyper struct{ lr, momentum, wd float32 }
		for _, sizes := range multiTables {
			for _, hp := range []hyper{{0.1, 0.9, 0}, {0.01, 0.99, 5e-4}, {0.125, 0, 0.25}} {
				t.Run(kv("tensors", len(sizes), "lr", hp.lr, "momentum", hp.momentum, "wd", hp.wd), func(t *testing.T) {
					rng := newRand(t.Name())
					h := newHarness(t, d)
					p, v, g := make([][]float32, len(sizes)), make([][]float32, len(sizes)), make([][]float32, len(sizes))
					sets := make([]ParamSet, len(sizes))
					for i, n := range sizes {
						p[i], v[i], g[i] = uniform(rng, n), make([]float32, n), make([]float32, n)
						sets[i] = ParamSet{P: h.inout(fmt.Sprintf("p%d", i), p[i]), G: h.inout(fmt.Sprintf("g%d", i), g[i]),
							M: h.inout(fmt.Sprintf("v%d", i), v[i])}
					}
					tab, err := d.NewParamTable(sets)
					if err != nil {
						t.Fatal(err)
					}
					defer tab.Free()
					words := h.inout("scalars", make([]float32, SGDWords)) // uploaded each step
					for step := 1; step <= optimSteps; step++ {
						lr := hp.lr
						if at {
							lr = hp.lr / float32(step) // a different rate each step, as a schedule's
						}
						for i := range sizes {
							g[i] = uniform(rng, sizes[i])
							if err := sets[i].G.Upload(g[i]); err != nil {
								t.Fatal(err)
							}
							step := cpuref.SGDStep[float32]
							if nesterov {
								step = cpuref.SGDNesterovStep[float32]
							}
							if err := step(p[i], g[i], v[i], lr, hp.momentum, hp.wd); err != nil {
								t.Fatal(err)
							}
						}
						launch := d.SGDMomentumMulti
						if nesterov {
							launch = d.SGDNesterovMulti
						}
						if at {
							launchAt := d.SGDMomentumMultiAt
							if nesterov {
								launchAt = d.SGDNesterovMultiAt
							}
							mustNil(t, words.Upload([]float32{lr, hp.momentum, hp.wd}))
							launch = func(tab *ParamTable, _, _, _ float32) error { return launchAt(tab, Word{words, 0}) }
						}
						before := d.Launches()
						if err := launch(tab, lr, hp.momentum, hp.wd); err != nil {
							t.Fatal(err)
						}
						if got := d.Launches() - before; got != 1 {
							t.Errorf("step %d: %d launches, want 1", step, got)
						}
						for i := range sizes {
							checkExact32(t, fmt.Sprintf("step %d: tensor %d: p", step, i), h.read(sets[i].P), p[i])
							checkExact32(t, fmt.Sprintf("step %d: tensor %d: v", step, i), h.read(sets[i].M), v[i])
						}
						h.check()
						if t.Failed() {
							return
						}
					}
				})
			}
		}
	}
}

// testAdamMulti checks adam_multi_v1 (at: adam_multi_at_v1, the scalars
// uploaded into a words buffer before each step) against cpuref.AdamStep
// on each tensor, bit for bit, over several steps (Adam, Adam with L2,
// AdamW).
func testAdamMulti(at bool) func(t *testing.T, d *Device) {
	return func(t *testing.T, d *Device) { testAdamMultiOn(t, d, at) }
}

func testAdamMultiOn(t *testing.T, d *Device, at bool) {
	type hyper struct {
		name                      string
		lr, beta1, beta2, eps, wd float32
		decoupled                 bool
	}
	for _, sizes := range multiTables {
		for _, hp := range []hyper{
			{"adam", 1e-3, 0.9, 0.999, 1e-8, 0, false},
			{"adam-l2", 0.01, 0.8, 0.99, 1e-6, 0.1, false},
			{"adamw", 1e-3, 0.9, 0.999, 1e-8, 0.01, true},
		} {
			t.Run(kv("tensors", len(sizes), "case", hp.name), func(t *testing.T) {
				rng := newRand(t.Name())
				h := newHarness(t, d)
				k := len(sizes)
				p, m, v, g := make([][]float32, k), make([][]float32, k), make([][]float32, k), make([][]float32, k)
				sets := make([]ParamSet, k)
				for i, n := range sizes {
					p[i], m[i], v[i], g[i] = uniform(rng, n), make([]float32, n), make([]float32, n), make([]float32, n)
					sets[i] = ParamSet{P: h.inout(fmt.Sprintf("p%d", i), p[i]), G: h.inout(fmt.Sprintf("g%d", i), g[i]),
						M: h.inout(fmt.Sprintf("m%d", i), m[i]), V: h.inout(fmt.Sprintf("v%d", i), v[i])}
				}
				tab, err := d.NewParamTable(sets)
				if err != nil {
					t.Fatal(err)
				}
				defer tab.Free()
				words := h.inout("scalars", make([]float32, AdamWords)) // uploaded each step
				for step := 1; step <= optimSteps; step++ {
					for i := range sizes {
						g[i] = uniform(rng, sizes[i])
						if len(g[i]) > 3 {
							g[i][0], g[i][1], g[i][2] = 0, g[i][1]*1e-30, g[i][2]*1e10
						}
						if err := sets[i].G.Upload(g[i]); err != nil {
							t.Fatal(err)
						}
						if err := cpuref.AdamStep(p[i], g[i], m[i], v[i], hp.lr, hp.beta1, hp.beta2, hp.eps, hp.wd, step, hp.decoupled); err != nil {
							t.Fatal(err)
						}
					}
					c, err := geom.AdamCoefficients(float64(hp.lr), float64(hp.beta1), float64(hp.beta2),
						float64(hp.eps), float64(hp.wd), step, hp.decoupled)
					if err != nil {
						t.Fatal(err)
					}
					if at {
						w := make([]float32, AdamWords)
						AdamScalars(w, c)
						mustNil(t, words.Upload(w))
						err = d.AdamMultiAt(tab, Word{words, 0})
					} else {
						err = d.AdamMulti(tab, c)
					}
					if err != nil {
						t.Fatal(err)
					}
					for i := range sizes {
						checkExact32(t, fmt.Sprintf("step %d: tensor %d: p", step, i), h.read(sets[i].P), p[i])
						checkExact32(t, fmt.Sprintf("step %d: tensor %d: m", step, i), h.read(sets[i].M), m[i])
						checkExact32(t, fmt.Sprintf("step %d: tensor %d: v", step, i), h.read(sets[i].V), v[i])
					}
					h.check()
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}

// TestMultiOptimLaunchers checks the multi-tensor launches on a fake
// driver: grid.x the sum of the tensors' blocks, block 256, the table's
// address and length and every scalar by parameter name; and no host
// allocation per launch.
func TestMultiOptimLaunchers(t *testing.T) {
	d, f := openFake(t)
	sizes := []int{1000, 1, 257} // 4 + 1 + 2 blocks
	sets := make([]ParamSet, len(sizes))
	for i, n := range sizes {
		sets[i] = ParamSet{P: mustF32(t, d, n), G: mustF32(t, d, n), M: mustF32(t, d, n), V: mustF32(t, d, n)}
	}
	adamTab, err := d.NewParamTable(sets)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sets {
		sets[i].V = nil
	}
	sgdTab, err := d.NewParamTable(sets)
	if err != nil {
		t.Fatal(err)
	}
	F32 := func(v float32) uint64 { return uint64(math.Float32bits(v)) }
	c := geom.AdamCoef{Beta1: 0.9, OneMinusBeta1: 0.1, Beta2: 0.999, OneMinusBeta2: 0.001, StepSize: 0.5,
		BC2Sqrt: 0.25, Eps: 1e-8, L2: 0.125, Decay: 0.75, Decoupled: true}
	sgd := map[string]uint64{"table": uint64(sgdTab.buf.ptr), "count": 3, "lr": F32(0.01), "momentum": F32(0.9),
		"weight_decay": F32(-1)}
	for _, tc := range []struct {
		kernel string
		call   func() error
		want   map[string]uint64
	}{
		{"sgd_momentum_multi_v1", func() error { return d.SGDMomentumMulti(sgdTab, 0.01, 0.9, -1) }, sgd},
		{"sgd_nesterov_multi_v1", func() error { return d.SGDNesterovMulti(sgdTab, 0.01, 0.9, -1) }, sgd},
		{"adam_multi_v1", func() error { return d.AdamMulti(adamTab, c) }, map[string]uint64{
			"table": uint64(adamTab.buf.ptr), "count": 3, "beta1": F32(0.9), "one_minus_beta1": F32(0.1),
			"beta2": F32(0.999), "one_minus_beta2": F32(0.001), "step_size": F32(0.5), "bc2_sqrt": F32(0.25),
			"eps": F32(1e-8), "l2": F32(0.125), "decay": F32(0.75), "decoupled": 1}},
	} {
		t.Run("kernel="+tc.kernel, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			l := f.last
			if l.name != tc.kernel || l.grid != (Dim3{7, 1, 1}) || l.block != (Dim3{256, 1, 1}) || l.shared != 0 {
				t.Errorf("launched %s grid %v block %v shared %d, want %s grid {7 1 1} block {256 1 1} shared 0",
					l.name, l.grid, l.block, l.shared, tc.kernel)
			}
			params := kernelTable[kernelByName(t, tc.kernel)].params
			if l.nargs != len(params) || len(tc.want) != len(params) {
				t.Fatalf("%d arguments and %d expected values for %d parameters", l.nargs, len(tc.want), len(params))
			}
			for j, p := range params {
				if want, ok := tc.want[p.Name]; !ok || l.args[j] != want {
					t.Errorf("parameter %d (%s) = %#x, want %#x", j, p.Name, l.args[j], want)
				}
			}
			if a := testing.AllocsPerRun(10, func() { tc.call() }); a != 0 {
				t.Errorf("a launch allocates %v times, want 0", a)
			}
		})
	}
}

func kernelByName(t *testing.T, name string) kernelID {
	t.Helper()
	for id := kernelID(0); id < numKernels; id++ {
		if kernelTable[id].name == name {
			return id
		}
	}
	t.Fatalf("no kernel %s", name)
	return 0
}

// TestParamTableValidation checks that bad tables are refused with an
// error wrapping geom.ErrGeometry (or ErrClosed for a freed tensor) that
// names the kernel or the table, before any launch.
func TestParamTableValidation(t *testing.T) {
	d, f := openFake(t)
	p, g, m, v := mustF32(t, d, 10), mustF32(t, d, 10), mustF32(t, d, 10), mustF32(t, d, 10)
	short, ints := mustF32(t, d, 9), mustI32(t, d, 10)
	for _, tc := range []struct {
		name string
		sets []ParamSet
	}{
		{"none", nil},
		{"nil p", []ParamSet{{G: g, M: m}}},
		{"short g", []ParamSet{{P: p, G: short, M: m}}},
		{"int32 m", []ParamSet{{P: p, G: g, M: ints}}},
		{"nil m", []ParamSet{{P: p, G: g}}},
		{"v in some", []ParamSet{{P: p, G: g, M: m, V: v}, {P: p, G: g, M: m}}},
		{"short v", []ParamSet{{P: p, G: g, M: m, V: short}}},
	} {
		if _, err := d.NewParamTable(tc.sets); !errors.Is(err, geom.ErrGeometry) || !strings.Contains(fmt.Sprint(err), "param table") {
			t.Errorf("NewParamTable(%s) error %v, want one wrapping geom.ErrGeometry naming the param table", tc.name, err)
		}
	}
	sgdTab, err := d.NewParamTable([]ParamSet{{P: p, G: g, M: m}})
	if err != nil {
		t.Fatal(err)
	}
	tmp := mustF32(t, d, 10)
	tab, err := d.NewParamTable([]ParamSet{{P: p, G: tmp, M: m}})
	if err != nil {
		t.Fatal(err)
	}
	c := geom.AdamCoef{Beta1: 0.9}
	launches := f.launches // buffers are zeroed by a launch: count from here
	if err := d.AdamMulti(sgdTab, c); !errors.Is(err, geom.ErrGeometry) || !strings.Contains(fmt.Sprint(err), "adam_multi_v1") {
		t.Errorf("AdamMulti on a table without v: error %v, want one wrapping geom.ErrGeometry naming adam_multi_v1", err)
	}
	if err := d.SGDMomentumMulti(nil, 0.1, 0.9, 0); !errors.Is(err, geom.ErrGeometry) {
		t.Errorf("SGDMomentumMulti(nil): error %v, want one wrapping geom.ErrGeometry", err)
	}
	if err := tmp.Free(); err != nil {
		t.Fatal(err)
	}
	if err := d.SGDNesterovMulti(tab, 0.1, 0.9, 0); !errors.Is(err, ErrClosed) || !strings.Contains(fmt.Sprint(err), "tensor 0") {
		t.Errorf("SGDNesterovMulti with a freed gradient: error %v, want one wrapping ErrClosed naming tensor 0", err)
	}
	if err := tab.Free(); err != nil {
		t.Fatal(err)
	}
	if err := d.SGDMomentumMulti(tab, 0.1, 0.9, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("SGDMomentumMulti on a freed table: error %v, want one wrapping ErrClosed", err)
	}
	if f.launches != launches {
		t.Errorf("%d launches by refused calls, want 0", f.launches-launches)
	}
}
