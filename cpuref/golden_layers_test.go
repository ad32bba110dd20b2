package cpuref

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// goldenLayersFile is written by scripts/gen-golden.py with PyTorch in
// float64; its header says with which torch, when, and what each field is.
const goldenLayersFile = "testdata/golden_layers_torch.json"

type goldenLayersDoc struct {
	Header    map[string]any `json:"header"`
	BatchNorm []struct {
		Name                  string
		N, C, HW              int
		Momentum, Eps         float64
		X, Gamma, Beta        []float64
		RunningMeanBefore     []float64 `json:"running_mean_before"`
		RunningVarBefore      []float64 `json:"running_var_before"`
		Y, Mean, InvStd       []float64
		RunningMeanAfter      []float64 `json:"running_mean_after"`
		RunningVarAfter       []float64 `json:"running_var_after"`
		DY, DX, DGamma, DBeta []float64
		YEval                 []float64 `json:"y_eval"`
	}
	AvgPool []struct {
		Name         string
		Geom         geom.AvgPoolGeom
		X, DY, Y, DX []float64
	}
	GlobalAvgPool []struct {
		Name         string
		N, C, HW     int
		X, DY, Y, DX []float64
	} `json:"global_avgpool"`
	Activations []struct {
		Name         string
		X, DY, Y, DX []float64
	}
}

func readGoldenLayers(t *testing.T) *goldenLayersDoc {
	t.Helper()
	data, err := os.ReadFile(goldenLayersFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc goldenLayersDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", goldenLayersFile, err)
	}
	if doc.Header["torch"] == nil || doc.Header["command"] == nil {
		t.Fatalf("%s: header %v lacks the torch version or the command", goldenLayersFile, doc.Header)
	}
	if len(doc.BatchNorm) == 0 || len(doc.AvgPool) == 0 || len(doc.GlobalAvgPool) == 0 || len(doc.Activations) != 7 {
		t.Fatalf("%s: a section is empty or the activations are not the 7 expected", goldenLayersFile)
	}
	return &doc
}

// Tolerances against PyTorch in float64: sums of at most a few hundred
// terms of size ≲ 10 in other orders, and divisions by √(σ²+ε), off by
// ~1e-15 relative; 1e-12 leaves room.
const goldenLayersTol64 = 1e-12

func TestGoldenTorchBatchNorm(t *testing.T) {
	doc := readGoldenLayers(t)
	for _, c := range doc.BatchNorm {
		t.Run("case="+c.Name, func(t *testing.T) {
			L := c.N * c.C * c.HW
			t.Run("form=readable/type=float64", func(t *testing.T) {
				y, mean, inv := newGuarded[float64](L), newGuarded[float64](c.C), newGuarded[float64](c.C)
				rm, rv := append([]float64(nil), c.RunningMeanBefore...), append([]float64(nil), c.RunningVarBefore...)
				must(t, BatchNormTrainForward(c.N, c.C, c.HW, c.X, c.Gamma, c.Beta, y.Out, mean.Out, inv.Out, rm, rv, c.Momentum, c.Eps))
				tol := goldenLayersTol64
				checkClose(t, "y", y.Out, c.Y, tol, tol)
				checkClose(t, "mean", mean.Out, c.Mean, tol, tol)
				checkClose(t, "invStd", inv.Out, c.InvStd, tol, tol)
				checkClose(t, "runMean", rm, c.RunningMeanAfter, tol, tol)
				checkClose(t, "runVar", rv, c.RunningVarAfter, tol, tol)
				dx, dg, db := newGuarded[float64](L), newGuarded[float64](c.C), newGuarded[float64](c.C)
				must(t, BatchNormBackward(c.N, c.C, c.HW, c.X, c.Gamma, mean.Out, inv.Out, c.DY, dx.Out, dg.Out, db.Out))
				checkClose(t, "dx", dx.Out, c.DX, tol, tol)
				checkClose(t, "dgamma", dg.Out, c.DGamma, tol, tol)
				checkClose(t, "dbeta", db.Out, c.DBeta, tol, tol)
				ye := newGuarded[float64](L)
				must(t, BatchNormEvalForward(c.N, c.C, c.HW, c.X, c.Gamma, c.Beta, rm, rv, ye.Out, c.Eps))
				checkClose(t, "y_eval", ye.Out, c.YEval, tol, tol)
				for _, g := range []guarded[float64]{y, mean, inv, dx, dg, db, ye} {
					g.checkGuards(t, "output")
				}
			})
			// float32, both forms: the inputs' rounding to float32 (6e-8
			// relative) and float32 sums of ≤ 330 terms (~1e-6 relative
			// of values ≲ 5) reach y through invStd ≲ 3 and x̂ ≲ 3, dx
			// through γ·invStd and the two means: 2e-5 absolute and
			// relative covers them.
			for _, form := range []struct {
				name string
				fwd  func(n, c, hw int, x, gamma, beta, y, sm, si, rm, rv []float32, m, e float64) error
				bwd  func(n, c, hw int, x, gamma, sm, si, dy, dx, dg, db []float32) error
			}{
				{"readable", BatchNormTrainForward[float32], BatchNormBackward[float32]},
				{"lanes", BatchNormTrainForward32, BatchNormBackward32},
			} {
				t.Run("form="+form.name+"/type=float32", func(t *testing.T) {
					y, mean, inv := nans32(L), nans32(c.C), nans32(c.C)
					rm, rv := to32(c.RunningMeanBefore), to32(c.RunningVarBefore)
					x, gamma := to32(c.X), to32(c.Gamma)
					must(t, form.fwd(c.N, c.C, c.HW, x, gamma, to32(c.Beta), y, mean, inv, rm, rv, c.Momentum, c.Eps))
					const tol = 2e-5
					checkClose(t, "y", y, c.Y, tol, tol)
					checkClose(t, "runMean", rm, c.RunningMeanAfter, tol, tol)
					checkClose(t, "runVar", rv, c.RunningVarAfter, tol, tol)
					dx, dg, db := nans32(L), nans32(c.C), nans32(c.C)
					must(t, form.bwd(c.N, c.C, c.HW, x, gamma, mean, inv, to32(c.DY), dx, dg, db))
					checkClose(t, "dx", dx, c.DX, tol, tol)
					checkClose(t, "dgamma", dg, c.DGamma, tol, tol)
					checkClose(t, "dbeta", db, c.DBeta, tol, tol)
				})
			}
		})
	}
}

func TestGoldenTorchAvgPool(t *testing.T) {
	doc := readGoldenLayers(t)
	for _, c := range doc.AvgPool {
		g := c.Geom
		t.Run("case="+c.Name+"/"+g.String(), func(t *testing.T) {
			y, dx := newGuarded[float64](g.YLen()), newGuarded[float64](g.XLen())
			must(t, AvgPoolForward(g, c.X, y.Out))
			must(t, AvgPoolBackward(g, c.DY, dx.Out))
			checkClose(t, "y", y.Out, c.Y, goldenLayersTol64, 0)
			checkClose(t, "dx", dx.Out, c.DX, goldenLayersTol64, 0)
			y.checkGuards(t, "y")
			dx.checkGuards(t, "dx")
			// float32 (the fast form for 2×2 stride 2): at most R·S + 1
			// roundings of values ≤ 1 plus the inputs' rounding.
			y32, dx32 := nans32(g.YLen()), nans32(g.XLen())
			must(t, AvgPoolForward(g, to32(c.X), y32))
			must(t, AvgPoolBackward(g, to32(c.DY), dx32))
			checkClose(t, "y (float32)", y32, c.Y, 1e-6, 0)
			checkClose(t, "dx (float32)", dx32, c.DX, 1e-6, 0)
		})
	}
	for _, c := range doc.GlobalAvgPool {
		t.Run("case=global-"+c.Name, func(t *testing.T) {
			y, dx := newGuarded[float64](c.N*c.C), newGuarded[float64](c.N*c.C*c.HW)
			must(t, GlobalAvgPoolForward(c.N, c.C, c.HW, c.X, y.Out))
			must(t, GlobalAvgPoolBackward(c.N, c.C, c.HW, c.DY, dx.Out))
			checkClose(t, "y", y.Out, c.Y, goldenLayersTol64, 0)
			checkClose(t, "dx", dx.Out, c.DX, goldenLayersTol64, 0)
			y32 := nans32(c.N * c.C)
			must(t, GlobalAvgPoolForward(c.N, c.C, c.HW, to32(c.X), y32))
			// 49 float32 additions of values ≤ 1: ≤ 49·6e-8·1.
			checkClose(t, "y (float32)", y32, c.Y, 3e-6, 0)
		})
	}
}

func TestGoldenTorchActivations(t *testing.T) {
	doc := readGoldenLayers(t)
	for _, c := range doc.Activations {
		t.Run("op="+c.Name, func(t *testing.T) {
			a := findActivation(t, c.Name)
			y, dx := newGuarded[float64](len(c.X)), newGuarded[float64](len(c.X))
			must(t, a.fwd(c.X, y.Out))
			must(t, a.bwd(c.X, y.Out, c.DY, dx.Out))
			// libm differences (exp, erf, tanh within an ulp or two) on
			// values ≲ 8: 1e-14 relative; PyTorch's GELU-tanh evaluates
			// 1 + tanh(w), which cancels in the negative tail to an
			// absolute ~1e-16·|x·z'| ≲ 1e-14.
			checkClose(t, "y", y.Out, c.Y, 1e-14, 1e-14)
			checkClose(t, "dx", dx.Out, c.DX, 1e-14, 1e-14)
			y.checkGuards(t, "y")
			dx.checkGuards(t, "dx")
			var a32 activation[float32]
			for _, b := range activations[float32]() {
				if b.name == c.Name {
					a32 = b
				}
			}
			x32, y32, dx32 := to32(c.X), nans32(len(c.X)), nans32(len(c.X))
			must(t, a32.fwd(x32, y32))
			must(t, a32.bwd(x32, y32, to32(c.DY), dx32))
			// The float32 functions' few ulp, the inputs' rounding
			// amplified by the derivative (≲ 1.2 here), and sigmoid's and
			// tanh's backward from the rounded y (see TestActivationsFloat32).
			checkClose(t, "y (float32)", y32, c.Y, 3e-7, 2e-6)
			checkClose(t, "dx (float32)", dx32, c.DX, 3e-7, 2e-6)
		})
	}
}
