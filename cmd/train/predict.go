package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// pngMagic starts every PNG file.
var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// maxPredictImages bounds the images of one call of train predict.
const maxPredictImages = 1 << 20

// readImages reads the images of one file for a model of c×h×w inputs, as
// bytes in (N,C,H,W) order, and their count. A PNG file (recognised by its signature) is one
// image: gray for c = 1 (colour converted by luminance,
// 0.299R + 0.587G + 0.114B), RGB planes for c = 3. Anything else is read
// as an IDX file of unsigned bytes: (N,H,W) for c = 1, (N,C,H,W), or one
// image (H,W) or (C,H,W). Images are not resized: a size other than the
// model's is an error that says so.
func readImages(path string, c, h, w int) ([]byte, int, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	var magic [8]byte
	n, _ := io.ReadFull(f, magic[:])
	f.Close()
	if bytes.Equal(magic[:n], pngMagic) {
		px, err := readPNG(path, c, h, w)
		return px, 1, err
	}
	// IDX files start with two zero bytes (gzip-compressed ones with
	// 1f 8b); anything else is neither format.
	if n < 4 || !(magic[0] == 0 && magic[1] == 0 || magic[0] == 0x1f && magic[1] == 0x8b) {
		what := "it is"
		if strings.EqualFold(filepath.Ext(path), ".png") {
			what = "it is named .png but is"
		}
		return nil, 0, fmt.Errorf("%s: %s neither a PNG nor an IDX file (it starts with %q); predict reads PNG images and IDX files of unsigned bytes", path, what, magic[:n])
	}
	idx, err := data.ReadIDX(path)
	if err != nil {
		return nil, 0, err
	}
	d := idx.Dims
	var count int
	switch {
	case len(d) == 2 && c == 1 && d[0] == h && d[1] == w:
		count = 1
	case len(d) == 3 && c == 1 && d[1] == h && d[2] == w:
		count = d[0]
	case len(d) == 3 && d[0] == c && d[1] == h && d[2] == w:
		count = 1
	case len(d) == 4 && d[1] == c && d[2] == h && d[3] == w:
		count = d[0]
	default:
		return nil, 0, fmt.Errorf("%s: IDX dimensions %v: the model takes images of %d×%d×%d (C×H×W) as (N,H,W), (N,C,H,W), (H,W) or (C,H,W); resize them first", path, d, c, h, w)
	}
	return idx.Data, count, nil
}

// readPNG decodes a PNG of exactly h×w pixels into c planes (c = 1: gray,
// c = 3: red, green, blue), 8 bits per sample.
func readPNG(path string, c, h, w int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.Width != w || cfg.Height != h {
		return nil, fmt.Errorf("%s: a PNG of %d×%d pixels; the model takes %d×%d (H×W): resize it first", path, cfg.Height, cfg.Width, h, w)
	}
	if c != 1 && c != 3 {
		return nil, fmt.Errorf("%s: the model takes %d channels; PNG input needs 1 (gray) or 3 (RGB)", path, c)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]byte, c*h*w)
	b := img.Bounds()
	for y := range h {
		for x := range w {
			px := img.At(b.Min.X+x, b.Min.Y+y)
			if c == 1 {
				out[y*w+x] = color.GrayModel.Convert(px).(color.Gray).Y
				continue
			}
			r, g, bl, _ := px.RGBA()
			out[0*h*w+y*w+x] = uint8(r >> 8)
			out[1*h*w+y*w+x] = uint8(g >> 8)
			out[2*h*w+y*w+x] = uint8(bl >> 8)
		}
	}
	return out, nil
}

// runPredict is train predict: the class and the class probabilities of
// every image of the files.
func runPredict(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, files, err := parseEval("predict", args, stderr)
	if err != nil {
		return err
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(o.threads))
	l, err := o.open()
	if err != nil {
		return err
	}
	defer l.Close()
	spec := l.ck.Spec
	k := spec.Classes()
	d := &data.Dataset{Name: "predict", C: spec.C, H: spec.H, W: spec.W, Classes: min(k, 256)}
	var names []string
	var bad []error // the files that could not be read, reported after the others' predictions
	for _, f := range files {
		px, n, err := readImages(f, spec.C, spec.H, spec.W)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		if d.N+n > maxPredictImages {
			return fmt.Errorf("%s: more than %d images in all; predict fewer files at a time", f, maxPredictImages)
		}
		d.Images = append(d.Images, px...)
		for i := range n {
			if n == 1 {
				names = append(names, f)
			} else {
				names = append(names, fmt.Sprintf("%s[%d]", f, i))
			}
		}
		d.N += n
	}
	if d.N == 0 {
		return errors.Join(bad...)
	}
	defer func() {
		if len(bad) > 0 {
			err = errors.Join(append([]error{err, fmt.Errorf("%d files or images have no prediction (the others' are above):", len(bad))}, bad...)...)
		}
	}()
	d.Labels = make([]uint8, d.N)
	if isTerminal(stdout) && d.N > o.batch {
		l.onBatch = evalProgress(stdout)
	}
	logits, err := l.logits(ctx, d, o.batch)
	if err != nil {
		return err
	}
	// An image whose outputs are not finite (the weights overflow on it)
	// has no prediction; it is reported with the unreadable files.
	finite := names[:0:0]
	var rows []float32
	for i, name := range names {
		row := logits[i*k : (i+1)*k]
		ok := true
		for _, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				bad = append(bad, fmt.Errorf("%s: the model's outputs are not finite (%g): its weights overflow on this image; no prediction", name, v))
				ok = false
				break
			}
		}
		if ok {
			finite = append(finite, name)
			rows = append(rows, row...)
		}
	}
	names, logits = finite, rows
	what := "probabilities"
	if spec.Loss == nn.MSELoss {
		what = "outputs" // an MSE model's outputs are scores, not probabilities
	}
	var classNames []string // from the checkpoint's data, when it names its classes
	if rec := l.ck.Data; rec != nil && len(rec.ClassNames) > 0 {
		classNames = rec.ClassNames
	}
	if o.json {
		return predictJSON(stdout, names, logits, k, what, classNames)
	}
	width := 5
	for _, n := range names {
		width = max(width, len(n))
	}
	cols := make([]string, k)
	for j := range cols {
		cols[j] = fmt.Sprintf("%6d", j)
	}
	named := ""
	if classNames != nil {
		named = "  name"
	}
	fmt.Fprintf(stdout, "%-*s  class  %s of classes 0 to %d%s\n", width, "image", what, k-1, named)
	fmt.Fprintf(stdout, "%-*s  %5s  %s\n", width, "", "", strings.Join(cols, " "))
	p := make([]float64, k)
	for i, name := range names {
		row := logits[i*k : (i+1)*k]
		if spec.Loss == nn.MSELoss {
			for j, v := range row {
				p[j] = float64(v)
			}
		} else {
			softmax(row, p)
		}
		for j := range cols {
			cols[j] = fmt.Sprintf("%6.4f", p[j])
		}
		name := fmt.Sprintf("%-*s  %5d  %s", width, name, argmax(row), strings.Join(cols, " "))
		if c := argmax(row); c < len(classNames) {
			name += "  " + classNames[c]
		}
		fmt.Fprintln(stdout, name)
	}
	return nil
}

// predictJSON writes one JSON object per image: its name, the predicted
// class and the probabilities (softmax of the outputs) or, for an MSE
// model (what = "outputs"), the outputs, at full precision.
func predictJSON(w io.Writer, names []string, logits []float32, k int, what string, classNames []string) error {
	enc := json.NewEncoder(w)
	p := make([]float64, k)
	for i, name := range names {
		row := logits[i*k : (i+1)*k]
		if what == "outputs" {
			for j, v := range row {
				p[j] = float64(v)
			}
		} else {
			softmax(row, p)
		}
		obj := map[string]any{"image": name, "class": argmax(row), what: p}
		if c := argmax(row); c < len(classNames) {
			obj["name"] = classNames[c]
		}
		if err := enc.Encode(obj); err != nil {
			return err
		}
	}
	return nil
}
