package cpuref

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

func TestSGDNesterovStepValues(t *testing.T) {
	// d = 0.5 + 0.01·1 = 0.51, v = 0.9·0.2 + 0.51 = 0.69,
	// p = 1 − 0.1·(0.51 + 0.9·0.69) = 1 − 0.1·1.131 = 0.8869.
	// Second element: d = 0 − 0.02 = −0.02, v = 0.9 − 0.02 = 0.88,
	// p = −2 − 0.1·(−0.02 + 0.792) = −2.0772.
	p, g, v := []float64{1, -2}, []float64{0.5, 0}, []float64{0.2, 1}
	must(t, SGDNesterovStep(p, g, v, 0.1, 0.9, 0.01))
	checkClose(t, "vel", v, []float64{0.69, 0.88}, 1e-15, 0)
	checkClose(t, "p", p, []float64{0.8869, -2.0772}, 1e-15, 0)
	// With momentum 0 it is plain SGD, bit for bit.
	p1, p2 := []float32{0.3, -0.7}, []float32{0.3, -0.7}
	must(t, SGDNesterovStep(p1, []float32{1, 2}, make([]float32, 2), 0.05, 0, 0.125))
	must(t, SGDStep(p2, []float32{1, 2}, nil, 0.05, 0, 0.125))
	checkClose(t, "p (momentum 0)", p1, p2, 0, 0)
}

func TestAdamStepValues(t *testing.T) {
	// Step 1 from m = v = 0, g = 0.5, β1 = 0.9, β2 = 0.999:
	// m = 0.05, v = 0.001·0.25 = 2.5e−4, m̂ = 0.5, v̂ = 0.25, so
	// p = 1 − 0.01·0.5/(0.5 + 1e−8).
	p, m, v := []float64{1}, []float64{0}, []float64{0}
	must(t, AdamStep(p, []float64{0.5}, m, v, 0.01, 0.9, 0.999, 1e-8, 0, 1, false))
	checkClose(t, "m", m, []float64{0.05}, 1e-16, 0)
	checkClose(t, "v", v, []float64{2.5e-4}, 1e-18, 0)
	checkClose(t, "p", p, []float64{1 - 0.01*0.5/(0.5+1e-8)}, 1e-15, 0)
	// A zero gradient from zero moments leaves p unchanged (0/ε = 0).
	p = []float64{3}
	must(t, AdamStep(p, []float64{0}, []float64{0}, []float64{0}, 0.01, 0.9, 0.999, 1e-8, 0, 1, false))
	checkClose(t, "p (zero gradient)", p, []float64{3}, 0, 0)
	// AdamW with a zero gradient only decays: p = 3·(1 − 0.01·0.5).
	must(t, AdamStep(p, []float64{0}, []float64{0}, []float64{0}, 0.01, 0.9, 0.999, 1e-8, 0.5, 1, true))
	checkClose(t, "p (AdamW decay)", p, []float64{3 * (1 - 0.005)}, 1e-15, 0)
	// Adam's L2 decay enters the moments: g' = 0 + 0.5·2 = 1, m = 0.1,
	// v = 0.001, p = 2 − 0.01·1/(1 + 1e−8).
	p, m, v = []float64{2}, []float64{0}, []float64{0}
	must(t, AdamStep(p, []float64{0}, m, v, 0.01, 0.9, 0.999, 1e-8, 0.5, 1, false))
	checkClose(t, "m (L2)", m, []float64{0.1}, 1e-16, 0)
	checkClose(t, "v (L2)", v, []float64{0.001}, 1e-18, 0)
	checkClose(t, "p (L2)", p, []float64{2 - 0.01/(1+1e-8)}, 1e-15, 0)
}

// TestAdamTextbook runs 30 float64 steps against the textbook form of the
// update, written independently of AdamStep's operation order:
//
//	m̂ = m/(1 − β1^t),  v̂ = v/(1 − β2^t),  p ← p − η·m̂/(√v̂ + ε)
//
// Tolerance: a few float64 roundings per step, compounded over 30 steps,
// relative to the size of p: 1e−13.
func TestAdamTextbook(t *testing.T) {
	for _, decoupled := range []bool{false, true} {
		for _, wd := range []float64{0, 0.05} {
			t.Run(fmt.Sprintf("decoupled=%v,wd=%g", decoupled, wd), func(t *testing.T) {
				rng := newRand(7)
				const n, steps = 37, 30
				lr, b1, b2, eps := 0.02, 0.9, 0.99, 1e-6
				p := randFloats[float64](rng, n)
				want := slices.Clone(p)
				m, v := make([]float64, n), make([]float64, n)
				wm, wv := make([]float64, n), make([]float64, n)
				for step := 1; step <= steps; step++ {
					g := randFloats[float64](rng, n)
					must(t, AdamStep(p, g, m, v, lr, b1, b2, eps, wd, step, decoupled))
					for i := range want {
						gi := g[i]
						if decoupled {
							want[i] -= lr * wd * want[i]
						} else {
							gi += wd * want[i]
						}
						wm[i] = b1*wm[i] + (1-b1)*gi
						wv[i] = b2*wv[i] + (1-b2)*gi*gi
						mhat := wm[i] / (1 - math.Pow(b1, float64(step)))
						vhat := wv[i] / (1 - math.Pow(b2, float64(step)))
						want[i] -= lr * mhat / (math.Sqrt(vhat) + eps)
					}
				}
				checkClose(t, "m", m, wm, 1e-14, 1e-13)
				checkClose(t, "v", v, wv, 1e-14, 1e-13)
				checkClose(t, "p", p, want, 1e-13, 1e-13)
			})
		}
	}
}

// optimFile is written by scripts/gen-optim-golden.py with PyTorch's
// torch.optim; its header says with which torch and when.
const optimFile = "testdata/optim_torch.json"

type optimCase struct {
	Name, Optimizer, Dtype string
	LR                     float64
	WeightDecay            float64 `json:"weight_decay"`
	Momentum               float64
	Nesterov               bool
	Beta1, Beta2, Eps      float64
	P0                     []float64
	Grads                  [][]float64
	Steps                  []struct{ P, M, V []float64 }
}

type optimDoc struct {
	Header map[string]any
	Cases  []optimCase
}

// TestOptimTorch replays PyTorch's trajectories (torch.optim.SGD with
// nesterov, Adam, AdamW) with the same float64 or float32 inputs and
// compares p, m and v after every step. PyTorch fuses some multiply-adds
// (ATen's vectorised add with alpha is an FMA) where cpuref rounds twice,
// so the two differ by a few roundings per step; the tolerances bound 12
// steps of that. float64: 1e−13 relative, 1e−15 absolute (elements near
// zero). float32: 1e−5 relative (about 80 units of 2⁻²⁴), 1e−7 absolute.
func TestOptimTorch(t *testing.T) {
	data, err := os.ReadFile(optimFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc optimDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", optimFile, err)
	}
	if doc.Header["torch"] == nil || doc.Header["command"] == nil {
		t.Fatalf("%s: header %v lacks the torch version or the command", optimFile, doc.Header)
	}
	kinds := map[string]int{}
	for _, c := range doc.Cases {
		kinds[c.Optimizer+"/"+c.Dtype]++
		t.Run(fmt.Sprintf("case=%s,dtype=%s", c.Name, c.Dtype), func(t *testing.T) {
			if len(c.Steps) == 0 || len(c.Grads) != len(c.Steps) {
				t.Fatalf("%d gradients for %d steps", len(c.Grads), len(c.Steps))
			}
			if c.Dtype == "float64" {
				replayOptim[float64](t, c, 1e-15, 1e-13)
			} else {
				replayOptim[float32](t, c, 1e-7, 1e-5)
			}
		})
	}
	for _, k := range []string{"sgd/float32", "sgd/float64", "adam/float32", "adam/float64", "adamw/float32", "adamw/float64"} {
		if kinds[k] == 0 {
			t.Errorf("%s: no %s case", optimFile, k)
		}
	}
}

func replayOptim[T Float](t *testing.T, c optimCase, atol, rtol float64) {
	t.Helper()
	conv := func(x []float64) []T {
		y := make([]T, len(x))
		for i, v := range x {
			y[i] = T(v)
			if float64(y[i]) != v {
				t.Fatalf("%g is not a %T value", v, y[i])
			}
		}
		return y
	}
	p := conv(c.P0)
	m, v := make([]T, len(p)), make([]T, len(p))
	for s, g := range c.Grads {
		var err error
		switch c.Optimizer {
		case "sgd":
			if !c.Nesterov {
				t.Fatal("only Nesterov SGD cases are expected")
			}
			err = SGDNesterovStep(p, conv(g), m, T(c.LR), T(c.Momentum), T(c.WeightDecay))
		case "adam", "adamw":
			err = AdamStep(p, conv(g), m, v, T(c.LR), T(c.Beta1), T(c.Beta2), T(c.Eps), T(c.WeightDecay), s+1, c.Optimizer == "adamw")
		default:
			t.Fatalf("unknown optimizer %q", c.Optimizer)
		}
		must(t, err)
		want := c.Steps[s]
		checkClose(t, fmt.Sprintf("step %d: p", s+1), p, want.P, atol, rtol)
		checkClose(t, fmt.Sprintf("step %d: m", s+1), m, want.M, atol, rtol)
		if c.Optimizer != "sgd" {
			checkClose(t, fmt.Sprintf("step %d: v", s+1), v, want.V, atol*atol, rtol)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

func TestOptimErrors(t *testing.T) {
	p, g, m, v := []float32{1, 2}, []float32{3, 4}, []float32{5, 6}, []float32{7, 8}
	orig := [][]float32{slices.Clone(p), slices.Clone(g), slices.Clone(m), slices.Clone(v)}
	adam := func(lr, b1, b2, eps, wd float32, step int) error {
		return AdamStep(p, g, m, v, lr, b1, b2, eps, wd, step, false)
	}
	nan := float32(math.NaN())
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"nesterov/empty", SGDNesterovStep[float32](nil, nil, nil, 0.1, 0.9, 0), geom.ErrGeometry},
		{"nesterov/len(grad)", SGDNesterovStep(p, g[:1], m, 0.1, 0.9, 0), geom.ErrGeometry},
		{"nesterov/len(vel)", SGDNesterovStep(p, g, nil, 0.1, 0.9, 0), geom.ErrGeometry},
		{"adam/empty", AdamStep[float32](nil, nil, nil, nil, 0.1, 0.9, 0.999, 1e-8, 0, 1, false), geom.ErrGeometry},
		{"adam/len(m)", AdamStep(p, g, m[:1], v, 0.1, 0.9, 0.999, 1e-8, 0, 1, false), geom.ErrGeometry},
		{"adam/len(v)", AdamStep(p, g, m, nil, 0.1, 0.9, 0.999, 1e-8, 0, 1, true), geom.ErrGeometry},
		{"adam/step 0", adam(0.1, 0.9, 0.999, 1e-8, 0, 0), geom.ErrHyperparameter},
		{"adam/lr<0", adam(-0.1, 0.9, 0.999, 1e-8, 0, 1), geom.ErrHyperparameter},
		{"adam/lr NaN", adam(nan, 0.9, 0.999, 1e-8, 0, 1), geom.ErrHyperparameter},
		{"adam/beta1=1", adam(0.1, 1, 0.999, 1e-8, 0, 1), geom.ErrHyperparameter},
		{"adam/beta2<0", adam(0.1, 0.9, -0.5, 1e-8, 0, 1), geom.ErrHyperparameter},
		{"adam/eps<0", adam(0.1, 0.9, 0.999, -1, 0, 1), geom.ErrHyperparameter},
		{"adam/wd<0", adam(0.1, 0.9, 0.999, 1e-8, -1, 1), geom.ErrHyperparameter},
		{"adam/wd Inf", adam(0.1, 0.9, 0.999, 1e-8, float32(math.Inf(1)), 1), geom.ErrHyperparameter},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: error %v, want one wrapping %v", c.name, c.err, c.want)
		}
	}
	for i, s := range [][]float32{p, g, m, v} {
		checkUnchanged(t, fmt.Sprintf("argument %d", i), s, orig[i])
	}
}
