package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // the decoders image.Decode uses
	_ "image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/image/draw"
)

// ErrImage is wrapped by every error about the content of an image file.
var ErrImage = errors.New("bad image file")

// Bounds on an image file's declared size: no image above maxImagePixels,
// and none whose pixels outnumber what its file can hold: a PNG of 1-bit
// gray pixels compressed 1032:1 by DEFLATE holds at most 8·1032 pixels per
// byte (JPEG's minimum of about 2 bits per 8×8 block holds fewer).
const (
	maxImagePixels        = 1 << 24
	maxImagePixelsPerByte = 8 * maxDeflateRatio
	maxImageFileBytes     = 1 << 28
)

// The sub-folders of an image folder.
const (
	ImageFolderTrain = "train"
	ImageFolderTest  = "test"
)

func init() {
	RegisterFormat(Format{
		Name:   "imagefolder",
		Looks:  ImageFolderTrain + "/<class>/*.png|jpg and optionally " + ImageFolderTest + "/<class>/… (an image folder)",
		Detect: func(e []fs.DirEntry) bool { return hasEntry(e, true, ImageFolderTrain) },
		Load:   loadImageFolder,
	})
}

// imageExt reports whether a file name has an image extension that the
// image folder reads (.png, .jpg, .jpeg, in any case).
func imageExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// imageFile is one image of an image folder.
type imageFile struct {
	path  string
	label uint8
}

// listClasses returns the images of dir/<class>/ for each class folder:
// classes in name order (index = label), files in name order, files
// without an image extension and names starting with '.' skipped. With
// classes given (the training set's), every folder must be one of them.
func listClasses(dir string, classes []string) (names []string, files []imageFile, err error) {
	entries, err := readDir(dir)
	if err != nil {
		return nil, nil, err
	}
	index := map[string]int{}
	for i, c := range classes {
		index[c] = i
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		label := len(names)
		if classes != nil {
			k, ok := index[e.Name()]
			if !ok {
				return nil, nil, fmt.Errorf("data: %s: class folder %q is not among the %d classes of the training set: %w",
					dir, e.Name(), len(classes), ErrImage)
			}
			label = k
		}
		if label > 255 {
			return nil, nil, fmt.Errorf("data: %s: more than 256 class folders: %w", dir, ErrImage)
		}
		names = append(names, e.Name())
		imgs, err := readDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, nil, err
		}
		n := len(files)
		for _, f := range imgs {
			if !f.IsDir() && !strings.HasPrefix(f.Name(), ".") && imageExt(f.Name()) {
				files = append(files, imageFile{filepath.Join(dir, e.Name(), f.Name()), uint8(label)})
			}
		}
		if len(files) == n {
			return nil, nil, fmt.Errorf("data: %s: class folder %q holds no .png or .jpg image: %w", dir, e.Name(), ErrImage)
		}
	}
	if classes == nil && len(names) < 2 {
		return nil, nil, fmt.Errorf("data: %s: %d class folders, want at least 2 (one folder of images per class): %w", dir, len(names), ErrImage)
	}
	return names, files, nil
}

// loadImageFolder reads dir/train/<class>/*.png|jpg and, when present,
// dir/test/<class>/…: see LoadOptions.Size for the image size. Every
// image is decoded once, by opts.Workers goroutines, into bytes (N,C,H,W):
// C = 1 when every image of both sets is gray (PNG or JPEG grayscale),
// else 3 (R, G, B; a gray image repeated in the three channels, alpha
// dropped after premultiplying, i.e. over black).
func loadImageFolder(dir string, opts LoadOptions) (train, test *Dataset, err error) {
	classes, trainFiles, err := listClasses(filepath.Join(dir, ImageFolderTrain), nil)
	if err != nil {
		return nil, nil, err
	}
	var testFiles []imageFile
	testDir := filepath.Join(dir, ImageFolderTest)
	if st, err := os.Stat(testDir); err == nil && st.IsDir() {
		if _, testFiles, err = listClasses(testDir, classes); err != nil {
			return nil, nil, err
		}
	}
	files := append(trainFiles, testFiles...)

	h, w := opts.Size, opts.Size
	if opts.Size == 0 { // the size of the first image
		b, err := readImageFile(files[0].path)
		if err != nil {
			return nil, nil, err
		}
		cfg, err := imageConfig(files[0].path, b)
		if err != nil {
			return nil, nil, err
		}
		h, w = cfg.Height, cfg.Width
	}
	size := 3 * h * w
	if len(files) > maxIDXBytes/size {
		return nil, nil, fmt.Errorf("data: %s: %d images of %d×%d take more than %d bytes: %w", dir, len(files), w, h, int64(maxIDXBytes), ErrImage)
	}
	images := make([]uint8, len(files)*size)
	gray := make([]bool, len(files))

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(files))
	var next atomic.Int64
	var stop atomic.Bool
	results := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				if stop.Load() {
					results <- nil
					continue
				}
				var err error
				var b []byte
				if b, err = readImageFile(files[i].path); err == nil {
					gray[i], err = decodeImage(files[i].path, b, opts.Size, h, w, images[i*size:(i+1)*size])
				}
				results <- err
			}
		}()
	}
	var first error
	step := max(1, len(files)/200)
	for done := 1; done <= len(files); done++ {
		if err := <-results; err != nil && first == nil {
			first = err
			stop.Store(true)
		}
		if opts.Progress != nil && first == nil && (done%step == 0 || done == len(files)) {
			opts.Progress(done, len(files))
		}
	}
	wg.Wait()
	if first != nil {
		return nil, nil, first
	}

	c := 3
	allGray := true
	for _, g := range gray {
		allGray = allGray && g
	}
	if allGray { // keep the first channel: in place, forward
		c = 1
		for i := range files {
			copy(images[i*h*w:(i+1)*h*w], images[i*size:i*size+h*w])
		}
		images = images[:len(files)*h*w]
	}
	labels := make([]uint8, len(files))
	for i, f := range files {
		labels[i] = f.label
	}
	base := filepath.Base(filepath.Clean(dir))
	split := len(trainFiles) * c * h * w
	train = &Dataset{Name: base + "/train", N: len(trainFiles), C: c, H: h, W: w, Classes: len(classes),
		Images: images[:split:split], Labels: labels[:len(trainFiles):len(trainFiles)], ClassNames: classes}
	if len(testFiles) > 0 {
		test = &Dataset{Name: base + "/test", N: len(testFiles), C: c, H: h, W: w, Classes: len(classes),
			Images: images[split:], Labels: labels[len(trainFiles):], ClassNames: classes}
	}
	return train, test, nil
}

// readImageFile reads an image file whole, at most maxImageFileBytes.
func readImageFile(path string) ([]byte, error) {
	f, size, err := openRegular(path, ErrImage)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > maxImageFileBytes {
		return nil, fmt.Errorf("data: image %s: %d bytes, more than %d: %w", path, size, maxImageFileBytes, ErrImage)
	}
	b := make([]byte, size)
	if n, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("data: image %s: read %d of %d bytes: %v: %w", path, n, size, readErr(err), ErrImage)
	}
	return b, nil
}

// imageConfig decodes the header of an image file and checks its size
// against the bounds, before anything of that size is allocated.
func imageConfig(name string, b []byte) (image.Config, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return cfg, fmt.Errorf("data: image %s: header: %v (want PNG or JPEG): %w", name, err, ErrImage)
	}
	px := int64(cfg.Width) * int64(cfg.Height)
	switch {
	case cfg.Width < 1 || cfg.Height < 1:
		return cfg, fmt.Errorf("data: image %s: %s of %d×%d pixels: %w", name, format, cfg.Width, cfg.Height, ErrImage)
	case px > maxImagePixels:
		return cfg, fmt.Errorf("data: image %s: %s of %d×%d pixels, more than %d: %w", name, format, cfg.Width, cfg.Height, maxImagePixels, ErrImage)
	case px > maxImagePixelsPerByte*int64(len(b)):
		return cfg, fmt.Errorf("data: image %s: %s header declares %d×%d pixels, more than a %d-byte file can hold: %w",
			name, format, cfg.Width, cfg.Height, len(b), ErrImage)
	}
	return cfg, nil
}

// decodeImage decodes the image file b (PNG or JPEG) into dst, 3·h·w
// bytes (C,H,W) in R, G, B order, and reports whether the image is gray.
// With side > 0 the image's centre square (side min(width, height)) is
// scaled to side×side (h = w = side) with bilinear interpolation (x/image's
// draw.BiLinear, which averages over the source pixels when shrinking);
// with side 0 the image must be h×w.
func decodeImage(name string, b []byte, side, h, w int, dst []uint8) (gray bool, err error) {
	cfg, err := imageConfig(name, b)
	if err != nil {
		return false, err
	}
	if side == 0 && (cfg.Width != w || cfg.Height != h) {
		return false, fmt.Errorf("data: image %s: %d×%d pixels (width×height), the first image is %d×%d: give an image size to scale them all: %w",
			name, cfg.Width, cfg.Height, w, h, ErrImage)
	}
	src, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return false, fmt.Errorf("data: image %s: %v: %w", name, err, ErrImage)
	}
	gray = src.ColorModel() == color.GrayModel || src.ColorModel() == color.Gray16Model
	sb := src.Bounds()
	sr := sb
	if side > 0 { // the centre square
		m := min(sb.Dx(), sb.Dy())
		x0, y0 := sb.Min.X+(sb.Dx()-m)/2, sb.Min.Y+(sb.Dy()-m)/2
		sr = image.Rect(x0, y0, x0+m, y0+m)
	}
	plane := h * w
	if g, ok := src.(*image.Gray); ok && sr.Dx() == w && sr.Dy() == h {
		for y := range h {
			row := g.Pix[g.PixOffset(sr.Min.X, sr.Min.Y+y):][:w]
			for c := range 3 {
				copy(dst[c*plane+y*w:c*plane+(y+1)*w], row)
			}
		}
		return gray, nil
	}
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	if sr.Dx() == w && sr.Dy() == h {
		draw.Draw(rgba, rgba.Bounds(), src, sr.Min, draw.Src)
	} else {
		draw.BiLinear.Scale(rgba, rgba.Bounds(), src, sr, draw.Src, nil)
	}
	for p := range plane {
		px := rgba.Pix[4*p : 4*p+3]
		dst[p], dst[plane+p], dst[2*plane+p] = px[0], px[1], px[2]
	}
	return gray, nil
}
