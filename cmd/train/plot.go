package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/convtrain/convtrain/host/ckpt"

	"github.com/convtrain/convtrain/host/train"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Size of the -plot image: 9×7 inches at 100 dots per inch.
const (
	plotWidth  = 9 * vg.Inch
	plotHeight = 7 * vg.Inch
	plotDPI    = 100
)

// curves collects the points of the -plot image: the training loss and
// accuracy over each window between progress reports, and each epoch's
// training and test loss and accuracy. The x axis counts epochs
// (fractionally within one: x = epoch − 1 + step/steps).
type curves struct {
	title               string
	trainLoss, trainAcc plotter.XYs // per progress window
	epochLoss, epochAcc plotter.XYs // the epoch's training batches
	testLoss, testAcc   plotter.XYs // the test set, after each epoch (with -val, after the last)
	valLoss, valAcc     plotter.XYs // the validation set (-val), after each epoch
	win                 windowed
}

func (c *curves) progress(p train.Progress) {
	loss, acc := c.win.next(p)
	x := float64(p.Epoch-1) + float64(p.Step)/float64(max(p.Steps, 1))
	c.trainLoss = append(c.trainLoss, plotter.XY{X: x, Y: loss})
	c.trainAcc = append(c.trainAcc, plotter.XY{X: x, Y: 100 * acc})
}

func (c *curves) epoch(m train.EpochMetrics) {
	x := float64(m.Epoch)
	if m.Averaged > 0 { // else resumed after the epoch's last step from an old checkpoint: no training metrics
		c.epochLoss = append(c.epochLoss, plotter.XY{X: x, Y: m.Loss})
		c.epochAcc = append(c.epochAcc, plotter.XY{X: x, Y: 100 * m.TrainAcc})
	}
	if m.Tested { // with -val, the test set is evaluated after the last epoch only
		c.testLoss = append(c.testLoss, plotter.XY{X: x, Y: m.TestLoss})
		c.testAcc = append(c.testAcc, plotter.XY{X: x, Y: 100 * m.TestAcc})
	}
	if m.Validated {
		c.valLoss = append(c.valLoss, plotter.XY{X: x, Y: m.ValLoss})
		c.valAcc = append(c.valAcc, plotter.XY{X: x, Y: 100 * m.ValAcc})
	}
}

// curvesNote is the checkpoint note (ckpt.Checkpoint.Notes) that keeps
// the curves, so that a plot drawn after -resume shows the whole run.
const curvesNote = ckpt.NotePrefix + "train.curves"

// maxNotePoints bounds the points of each series kept in a checkpoint: a
// longer series keeps every second point, repeatedly (the last always).
const maxNotePoints = 4096

// curvesJSON is the note's JSON: each series as [x, y] pairs.
type curvesJSON struct {
	TrainLoss, TrainAcc, EpochLoss, EpochAcc, TestLoss, TestAcc [][2]jsonFloat
	ValLoss, ValAcc                                             [][2]jsonFloat `json:",omitempty"`
}

// note is the JSON of c for a checkpoint.
func (c *curves) note() string {
	enc := func(xy plotter.XYs) [][2]jsonFloat {
		for len(xy) > maxNotePoints {
			var half plotter.XYs
			for i := len(xy) - 1; i >= 0; i -= 2 {
				half = append(half, xy[i])
			}
			slices.Reverse(half)
			xy = half
		}
		out := make([][2]jsonFloat, len(xy))
		for i, p := range xy {
			out[i] = [2]jsonFloat{jsonFloat(p.X), jsonFloat(p.Y)}
		}
		return out
	}
	b, err := json.Marshal(curvesJSON{enc(c.trainLoss), enc(c.trainAcc), enc(c.epochLoss), enc(c.epochAcc), enc(c.testLoss), enc(c.testAcc), enc(c.valLoss), enc(c.valAcc)})
	if err != nil {
		return "" // not reached: jsonFloat always encodes
	}
	return string(b)
}

// restore sets c's points from a note; one that does not decode leaves c
// as it was.
func (c *curves) restore(note string) {
	var j curvesJSON
	if json.Unmarshal([]byte(note), &j) != nil {
		return
	}
	dec := func(pts [][2]jsonFloat) plotter.XYs {
		out := make(plotter.XYs, len(pts))
		for i, p := range pts {
			out[i] = plotter.XY{X: float64(p[0]), Y: float64(p[1])}
		}
		return out
	}
	c.trainLoss, c.trainAcc, c.epochLoss = dec(j.TrainLoss), dec(j.TrainAcc), dec(j.EpochLoss)
	c.epochAcc, c.testLoss, c.testAcc = dec(j.EpochAcc), dec(j.TestLoss), dec(j.TestAcc)
	c.valLoss, c.valAcc = dec(j.ValLoss), dec(j.ValAcc)
}

// finite drops the points whose y is NaN or infinite, and, for a log
// scale (positive), those with y ≤ 0.
func finite(xy plotter.XYs, positive bool) plotter.XYs {
	var out plotter.XYs
	for _, p := range xy {
		if !math.IsNaN(p.Y) && !math.IsInf(p.Y, 0) && (!positive || p.Y > 0) {
			out = append(out, p)
		}
	}
	return out
}

var (
	trainColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff} // blue
	epochColor = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff} // green
	testColor  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff} // red
	valColor   = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff} // orange
)

// panel makes one of the two plots: the per-window series as a thin line,
// the per-epoch series as lines with markers.
func (c *curves) panel(title, ylabel string, window, epoch, test, val plotter.XYs, logY bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = ylabel
	p.Legend.Top = logY // the loss falls and the accuracy rises: keep the legend clear of them
	p.Add(plotter.NewGrid())
	window, epoch, test, val = finite(window, logY), finite(epoch, logY), finite(test, logY), finite(val, logY)
	if len(window) > 0 {
		l, err := plotter.NewLine(window)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = trainColor, vg.Points(1)
		p.Add(l)
		p.Legend.Add("training, mean of each 10 steps", l)
	}
	for _, s := range []struct {
		xy    plotter.XYs
		col   color.Color
		shape draw.GlyphDrawer
		name  string
	}{{epoch, epochColor, draw.BoxGlyph{}, "training, epoch mean"}, {val, valColor, draw.TriangleGlyph{}, "validation set, after each epoch"},
		{test, testColor, draw.CircleGlyph{}, testName(len(val) > 0)}} {
		if len(s.xy) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(s.xy)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = s.col, vg.Points(2)
		pts.Color, pts.Shape, pts.Radius = s.col, s.shape, vg.Points(4)
		p.Add(l, pts)
		p.Legend.Add(s.name, l, pts)
	}

	// Axes, set after Add (which widens them to the data): x from 0 to
	// the last epoch with a tick per epoch; y as below.
	lo, hi, xmax := math.Inf(1), math.Inf(-1), 1.0
	for _, s := range []plotter.XYs{window, epoch, test, val} {
		for _, q := range s {
			lo, hi, xmax = math.Min(lo, q.Y), math.Max(hi, q.Y), math.Max(xmax, q.X)
		}
	}
	xmax = math.Ceil(xmax)
	p.X.Min, p.X.Max = 0, xmax
	var ticks []plot.Tick
	every := math.Max(1, math.Ceil(xmax/10))
	for x := 0.0; x <= xmax; x += every {
		ticks = append(ticks, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'f', -1, 64)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if lo > hi {
		return p, nil // no points
	}
	if logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
		p.Y.Min, p.Y.Max = lo/1.2, hi*1.2
		return p, nil
	}
	// Accuracy: from a little below the lowest per-epoch value, so that
	// the first windows (near chance) do not flatten the rest; they are
	// clipped.
	floor := math.Inf(1)
	for _, s := range []plotter.XYs{epoch, test, val} {
		for _, q := range s {
			floor = math.Min(floor, q.Y)
		}
	}
	if math.IsInf(floor, 1) {
		floor = lo
	}
	p.Y.Min, p.Y.Max = math.Max(0, math.Floor(floor-2)), math.Min(100, math.Ceil(hi+0.5))
	if lo < p.Y.Min {
		p.Y.Label.Text = fmt.Sprintf("%s; training windows below %g%% not shown", ylabel, p.Y.Min)
	}
	return p, nil
}

// logTicks labels a logarithmic axis with at least two values whatever
// its range: the powers of ten and their multiples by 2 and 5 in range,
// or, when fewer than two of those fall in a narrow range, every
// multiple 1 to 9 of the powers of ten, and failing that the ends.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	var ticks []plot.Tick
	k0, k1 := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	labelled := func(ms []float64) int {
		n := 0
		for _, t := range ticks {
			if t.Label != "" {
				n++
			}
		}
		for k := k0; k <= k1; k++ {
			for _, m := range ms {
				v := m * math.Pow(10, float64(k))
				if v < lo || v > hi || slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == v }) {
					continue
				}
				ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 3, 64)})
				n++
			}
		}
		return n
	}
	if labelled([]float64{1, 2, 5}) < 2 && labelled([]float64{3, 4, 6, 7, 8, 9}) < 2 {
		ticks = append(ticks, plot.Tick{Value: lo, Label: strconv.FormatFloat(lo, 'g', 3, 64)},
			plot.Tick{Value: hi, Label: strconv.FormatFloat(hi, 'g', 3, 64)})
	}
	// Unlabelled minor ticks at every multiple, as LogTicks draws them.
	for k := k0; k <= k1; k++ {
		for m := 1.0; m <= 9; m++ {
			v := m * math.Pow(10, float64(k))
			if v >= lo && v <= hi && !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == v }) {
				ticks = append(ticks, plot.Tick{Value: v})
			}
		}
	}
	slices.SortFunc(ticks, func(a, b plot.Tick) int { return cmp.Compare(a.Value, b.Value) })
	return ticks
}

// render draws the loss panel above the accuracy panel into a PNG of
// width×height at plotDPI.
func (c *curves) render(w io.Writer, width, height vg.Length) error {
	title := c.title
	if n := len(c.testAcc); n > 0 {
		title += fmt.Sprintf("; test accuracy %.2f%% after epoch %g", c.testAcc[n-1].Y, c.testAcc[n-1].X)
	}
	lp, err := c.panel(title, "loss", c.trainLoss, c.epochLoss, c.testLoss, c.valLoss, true)
	if err != nil {
		return fmt.Errorf("-plot: %w", err)
	}
	ap, err := c.panel("", "accuracy (%)", c.trainAcc, c.epochAcc, c.testAcc, c.valAcc, false)
	if err != nil {
		return fmt.Errorf("-plot: %w", err)
	}
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(plotDPI))
	dc := draw.New(img)
	plots := [][]*plot.Plot{{lp}, {ap}}
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(12)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("-plot: %w", err)
	}
	return nil
}

// save writes the PNG to path atomically: a temporary file in the same
// directory, renamed over path, so that a reader never sees half an image.
func (c *curves) save(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".plot-*.png")
	if err != nil {
		return fmt.Errorf("-plot: %w", err)
	}
	err = c.render(f, plotWidth, plotHeight)
	err = errors.Join(err, f.Chmod(0o644), f.Close()) // CreateTemp made it 0600
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("-plot %s: %w", path, err)
	}
	return nil
}

// testName is the legend of the test series: with a validation set the
// test set is evaluated after the last epoch only (unless
// -test-every-epoch).
func testName(val bool) string {
	if val {
		return "test set"
	}
	return "test set, after each epoch"
}
