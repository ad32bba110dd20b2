package cpuref

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// goldenFile is written by scripts/gen-golden.py with PyTorch in float64;
// its header says with which torch and when.
const goldenFile = "testdata/golden_torch.json"

type goldenDoc struct {
	Header map[string]any `json:"header"`
	Conv   []struct {
		Name                       string
		Geom                       geom.ConvGeom
		X, W, B, DY, Y, DX, DW, DB []float64
	}
	Maxpool []struct {
		Name         string
		Geom         geom.PoolGeom
		X, DY, Y, DX []float64
		Argmax       []int32
	}
	Dense []struct {
		Name                       string
		N, In, Out                 int
		X, W, B, DY, Y, DX, DW, DB []float64
	}
	SoftmaxCE []struct {
		Name       string
		N, Classes int
		Logits     []float64
		Labels     []int32
		Loss       float64
		DLogits    []float64
	} `json:"softmax_ce"`
	MSE []struct {
		Name     string
		N, Dim   int
		Y, T, DY []float64
		Loss     float64
	}
}

func readGolden(t *testing.T) *goldenDoc {
	t.Helper()
	data, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc goldenDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", goldenFile, err)
	}
	if doc.Header["torch"] == nil || doc.Header["command"] == nil {
		t.Fatalf("%s: header %v lacks the torch version or the command", goldenFile, doc.Header)
	}
	if len(doc.Conv) == 0 || len(doc.Maxpool) == 0 || len(doc.Dense) == 0 || len(doc.SoftmaxCE) == 0 || len(doc.MSE) == 0 {
		t.Fatalf("%s: a section is empty", goldenFile)
	}
	return &doc
}

// Tolerances against PyTorch. float64: both sides sum at most a few
// hundred terms of size ≤ 1 in different orders, off by ~1e-16·L; 1e-12
// leaves room. float32: as in TestConvDirectVsIm2col, 1e-6·L for sums of L
// terms, plus the rounding of the inputs to float32 (relative 6e-8 per
// term, below the same bound).
const goldenAtol64 = 1e-12

func TestGoldenTorchConv(t *testing.T) {
	doc := readGolden(t)
	for _, c := range doc.Conv {
		g := c.Geom
		t.Run("case="+c.Name+"/"+g.String(), func(t *testing.T) {
			t.Run("impl=direct/type=float64", func(t *testing.T) {
				got := runConvDirect(t, g, c.X, c.W, c.B, c.DY)
				checkClose(t, "y", got.y, c.Y, goldenAtol64, 0)
				checkClose(t, "dx", got.dx, c.DX, goldenAtol64, 0)
				checkClose(t, "dw", got.dw, c.DW, goldenAtol64, 0)
				checkClose(t, "db", got.db, c.DB, goldenAtol64, 0)
			})
			tol := func(l int) float64 { return 1e-6 * float64(l) }
			x, w, b, dy := to32(c.X), to32(c.W), to32(c.B), to32(c.DY)
			check32 := func(t *testing.T, got convOutputs[float32]) {
				checkClose(t, "y", got.y, c.Y, tol(g.C*g.R*g.S+1), 0)
				checkClose(t, "dx", got.dx, c.DX, tol(g.K*g.R*g.S), 0)
				checkClose(t, "dw", got.dw, c.DW, tol(g.N*g.P()*g.Q()), 0)
				checkClose(t, "db", got.db, c.DB, tol(g.N*g.P()*g.Q()), 0)
			}
			t.Run("impl=direct/type=float32", func(t *testing.T) {
				check32(t, runConvDirect(t, g, x, w, b, dy))
			})
			t.Run("impl=im2col/type=float32", func(t *testing.T) {
				conv, err := NewConv2D(g)
				must(t, err)
				check32(t, runConv2D(t, conv, x, w, b, dy))
			})
		})
	}
}

func TestGoldenTorchMaxPool(t *testing.T) {
	doc := readGolden(t)
	for _, c := range doc.Maxpool {
		g := c.Geom
		t.Run("case="+c.Name+"/"+g.String(), func(t *testing.T) {
			y, arg := newGuarded[float64](g.YLen()), make([]int32, g.YLen())
			must(t, MaxPoolForward(g, c.X, y.Out, arg))
			// A maximum is a copy of an input: exact.
			checkClose(t, "y", y.Out, c.Y, 0, 0)
			if !slices.Equal(arg, c.Argmax) {
				t.Errorf("argmax = %v, want %v", arg, c.Argmax)
			}
			dx := newGuarded[float64](g.XLen())
			must(t, MaxPoolBackward(g, c.DY, arg, dx.Out))
			checkClose(t, "dx", dx.Out, c.DX, goldenAtol64, 0)
			y.checkGuards(t, "y")
			dx.checkGuards(t, "dx")
		})
	}
}

func TestGoldenTorchDense(t *testing.T) {
	doc := readGolden(t)
	for _, c := range doc.Dense {
		t.Run("case="+c.Name, func(t *testing.T) {
			y := newGuarded[float64](c.N * c.Out)
			must(t, DenseForward(c.N, c.In, c.Out, c.X, c.W, c.B, y.Out))
			checkClose(t, "y", y.Out, c.Y, goldenAtol64, 0)
			dx, dw, db := newGuarded[float64](c.N*c.In), newGuarded[float64](c.Out*c.In), newGuarded[float64](c.Out)
			must(t, DenseBackward(c.N, c.In, c.Out, c.X, c.W, c.DY, dx.Out, dw.Out, db.Out))
			checkClose(t, "dx", dx.Out, c.DX, goldenAtol64, 0)
			checkClose(t, "dw", dw.Out, c.DW, goldenAtol64, 0)
			checkClose(t, "db", db.Out, c.DB, goldenAtol64, 0)
		})
	}
}

func TestGoldenTorchLosses(t *testing.T) {
	doc := readGolden(t)
	for _, c := range doc.SoftmaxCE {
		t.Run("loss=softmax-ce/case="+c.Name, func(t *testing.T) {
			d := newGuarded[float64](c.N * c.Classes)
			loss, err := SoftmaxCrossEntropy(c.N, c.Classes, c.Logits, c.Labels, d.Out)
			must(t, err)
			// exp and log differ between libms by an ulp or so; logits of
			// 500 make the loss's absolute rounding ~1e-13.
			checkClose(t, "loss", []float64{loss}, []float64{c.Loss}, goldenAtol64, 1e-13)
			checkClose(t, "dlogits", d.Out, c.DLogits, goldenAtol64, 0)
		})
	}
	for _, c := range doc.MSE {
		t.Run("loss=mse/case="+c.Name, func(t *testing.T) {
			d := newGuarded[float64](c.N * c.Dim)
			loss, err := MSE(c.N, c.Dim, c.Y, c.T, d.Out)
			must(t, err)
			checkClose(t, "loss", []float64{loss}, []float64{c.Loss}, goldenAtol64, 0)
			checkClose(t, "dy", d.Out, c.DY, goldenAtol64, 0)
		})
	}
}
