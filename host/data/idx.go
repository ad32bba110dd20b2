package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrIDX is wrapped by every error about the content of an IDX file.
var ErrIDX = errors.New("bad IDX file")

// IDX is the content of an IDX file of unsigned bytes (element type 0x08):
// the dimensions from the header and the data in row-major order,
// len(Data) == product of Dims.
type IDX struct {
	Dims []int
	Data []byte
}

// maxIDXBytes bounds the data of one IDX file (2³¹ − 1 bytes, the largest
// tensor a backend holds).
const maxIDXBytes = 1<<31 - 1

// maxDeflateRatio is the largest expansion of DEFLATE (RFC 1951): a
// 258-byte match costs at least 2 bits, so 1032:1; gzip input of s bytes
// never decompresses to more than s·1032 bytes.
const maxDeflateRatio = 1032

var idxTypeNames = map[byte]string{
	0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16",
	0x0C: "int32", 0x0D: "float32", 0x0E: "float64",
}

// ReadIDX reads an IDX file, raw or gzip-compressed (recognised by the gzip
// magic bytes 1f 8b, not by the name). The header is
//
//	offset 0: 0x00 0x00, element type (must be 0x08, unsigned byte),
//	          rank (1 to 8)
//	offset 4: rank big-endian uint32 dimensions, each ≥ 1
//	then the product of the dimensions in bytes, and nothing after them.
//
// Every violation, a truncated file, trailing bytes and a corrupt gzip
// stream is an error wrapping ErrIDX that names the file, what is wrong and
// the byte offset (in the decompressed stream for gzip files). The data is
// only allocated as it arrives, after the declared size has been checked
// against what the file can hold (its size, or 1032 times it for gzip),
// so a hostile header cannot make ReadIDX allocate more than the file
// justifies.
func ReadIDX(path string) (*IDX, error) { return readIDX(path, nil) }

// readIDX is ReadIDX with check, when not nil, called on the dimensions
// as soon as the header is read, before any data: its error (naming what
// is wrong) stops the read, so a file declaring unusable dimensions costs
// no memory for its data.
func readIDX(path string, check func(dims []int) error) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: idx: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("data: idx: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("data: idx %s: not a regular file: %w", path, ErrIDX)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("data: idx %s: gzip header: %v: %w", path, err, ErrIDX)
		}
		zr.Multistream(false)
		limit := st.Size() * maxDeflateRatio
		if st.Size() > maxIDXBytes/maxDeflateRatio {
			limit = maxIDXBytes
		}
		return decodeIDX(path+" (gzip, decompressed)", zr, limit, false, check)
	}
	return decodeIDX(path, br, st.Size(), true, check)
}

// DecodeIDX reads an IDX stream from r (see ReadIDX) named name in errors.
// size bounds the stream's length in bytes; when exact is true the stream
// is known to be exactly size bytes long, so a header declaring any other
// length is rejected before reading the data.
func DecodeIDX(name string, r io.Reader, size int64, exact bool) (*IDX, error) {
	return decodeIDX(name, r, size, exact, nil)
}

func decodeIDX(name string, r io.Reader, size int64, exact bool, check func([]int) error) (*IDX, error) {
	bad := func(off int64, format string, a ...any) error {
		return fmt.Errorf("data: idx %s: %s at offset %d: %w", name, fmt.Sprintf(format, a...), off, ErrIDX)
	}
	var hdr [4]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, bad(int64(n), "truncated header (%d of 4 bytes): %v", n, readErr(err))
	}
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, bad(0, "bad magic %02x %02x %02x %02x, want 00 00 08 <rank>", hdr[0], hdr[1], hdr[2], hdr[3])
	}
	if hdr[2] != 0x08 {
		if t, ok := idxTypeNames[hdr[2]]; ok {
			return nil, bad(2, "element type 0x%02x (%s) is not supported, want 0x08 (unsigned byte)", hdr[2], t)
		}
		return nil, bad(2, "unknown element type 0x%02x, want 0x08 (unsigned byte)", hdr[2])
	}
	rank := int(hdr[3])
	if rank < 1 || rank > 8 {
		return nil, bad(3, "rank %d, want 1 to 8", rank)
	}
	dimBytes := make([]byte, 4*rank)
	if n, err := io.ReadFull(r, dimBytes); err != nil {
		return nil, bad(int64(4+n), "truncated header: %d of %d dimension bytes: %v", n, 4*rank, readErr(err))
	}
	dims := make([]int, rank)
	total := int64(1)
	for i := range dims {
		d := int64(binary.BigEndian.Uint32(dimBytes[4*i:]))
		if d == 0 {
			return nil, bad(int64(4+4*i), "dimension %d is 0", i)
		}
		if total > maxIDXBytes/d {
			return nil, bad(int64(4+4*i), "dimensions %v then %d declare more than %d bytes of data", dims[:i], d, int64(maxIDXBytes))
		}
		total *= d
		dims[i] = int(d)
	}
	hdrLen := int64(4 + 4*rank)
	if check != nil {
		if err := check(dims); err != nil {
			return nil, bad(4, "dims %v: %v", dims, err)
		}
	}
	avail := size - hdrLen
	switch {
	case exact && total > avail:
		return nil, bad(hdrLen+max(avail, 0), "truncated: dims %v declare %d data bytes, the file has %d after the header", dims, total, max(avail, 0))
	case exact && total < avail:
		return nil, bad(hdrLen+total, "%d bytes of trailing data after the %d declared by dims %v", avail-total, total, dims)
	case total > avail:
		return nil, bad(hdrLen, "dims %v declare %d data bytes, more than the file can hold (%d)", dims, total, max(avail, 0))
	}
	var data []byte
	if exact {
		data = make([]byte, total)
		if n, err := io.ReadFull(r, data); err != nil {
			return nil, bad(hdrLen+int64(n), "truncated data: %d of %d bytes: %v", n, total, readErr(err))
		}
	} else {
		// Grow with the data actually read, never to the declared size up front.
		var buf bytes.Buffer
		buf.Grow(int(min(total, 1<<20)))
		n, err := io.CopyN(&buf, r, total)
		if err != nil {
			return nil, bad(hdrLen+n, "truncated data: %d of %d bytes: %v", n, total, readErr(err))
		}
		data = buf.Bytes()
	}
	var one [1]byte
	if n, err := io.ReadFull(r, one[:]); n > 0 {
		return nil, bad(hdrLen+total, "trailing data after the %d bytes declared by dims %v", total, dims)
	} else if err != io.EOF {
		return nil, bad(hdrLen+total, "after the data: %v", readErr(err))
	}
	return &IDX{Dims: dims, Data: data}, nil
}

// readErr names an end of stream as such.
func readErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("unexpected end of file")
	}
	return err
}

// The file names of an MNIST-style directory; each may end in .gz.
const (
	TrainImagesFile = "train-images-idx3-ubyte"
	TrainLabelsFile = "train-labels-idx1-ubyte"
	TestImagesFile  = "t10k-images-idx3-ubyte"
	TestLabelsFile  = "t10k-labels-idx1-ubyte"
)

// LoadDir reads a training and a test set from dir, which holds the four
// MNIST-style IDX files (TrainImagesFile, TrainLabelsFile, TestImagesFile,
// TestLabelsFile, each raw or with a .gz suffix): images of rank 3
// (N,H,W) or 4 (N,C,H,W or N,H,W,C, detected from the dimensions as
// LoadOptions.Layout says), labels of rank 1 (N). The two sets must have
// the same image size; the class count is the largest label + 1 (at least
// 2). It is Load's "idx" format with default options.
func LoadDir(dir string) (train, test *Dataset, err error) {
	return loadIDXDir(dir, LoadOptions{})
}

func init() {
	RegisterFormat(Format{
		Name:   "idx",
		Looks:  TrainImagesFile + "[.gz] and " + TestImagesFile + "[.gz] with their label files (MNIST, Fashion-MNIST)",
		Detect: func(e []fs.DirEntry) bool { return hasEntry(e, false, TrainImagesFile, TrainImagesFile+".gz") },
		Load:   loadIDXDir,
	})
}

func loadIDXDir(dir string, opts LoadOptions) (train, test *Dataset, err error) {
	if train, err = loadPair(dir, "train", TrainImagesFile, TrainLabelsFile, opts.Layout); err != nil {
		return nil, nil, err
	}
	if test, err = loadPair(dir, "test", TestImagesFile, TestLabelsFile, opts.Layout); err != nil {
		return nil, nil, err
	}
	if train.H != test.H || train.W != test.W {
		return nil, nil, fmt.Errorf("data: %s: training images are %d×%d, test images %d×%d", dir, train.H, train.W, test.H, test.W)
	}
	if train.C != test.C {
		return nil, nil, fmt.Errorf("data: %s: training images have %d channels, test images %d", dir, train.C, test.C)
	}
	classes := 2
	for _, d := range []*Dataset{train, test} {
		for _, l := range d.Labels {
			classes = max(classes, int(l)+1)
		}
	}
	train.Classes, test.Classes = classes, classes
	return train, test, nil
}

// findIDX returns dir/name or dir/name.gz, whichever exists.
func findIDX(dir, name string) (string, error) {
	for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, name+".gz")} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("data: %s: no %s or %s.gz", dir, name, name)
}

// maxIDXImageValues bounds the values (pixels × channels) of one image of
// an IDX file: 2²⁴, the most activations per image a checkpoint may
// declare, so a model could never take a larger one.
const maxIDXImageValues = 1 << 24

// checkImageDims refuses an images file whose images (dims after the
// first, the count) no model can take, before its data is read.
func checkImageDims(dims []int) error {
	if len(dims) < 2 {
		return nil
	}
	px := 1
	for _, d := range dims[1:] {
		px *= d // below 2³¹ in all: DecodeIDX checked the product
	}
	if px > maxIDXImageValues {
		size := make([]string, len(dims)-1)
		for i, d := range dims[1:] {
			size[i] = strconv.Itoa(d)
		}
		return fmt.Errorf("images of %s values, more than the %d a model can take", strings.Join(size, "×"), maxIDXImageValues)
	}
	return nil
}

// IDXLayout returns the layout of a rank-4 IDX image file with dims
// (N,a,b,c): layout when it is "NCHW" or "NHWC", else "NHWC" when c is a
// channel count (1, 3 or 4) and a is not, else "NCHW".
func IDXLayout(dims []int, layout string) string {
	if layout != "" {
		return layout
	}
	isC := func(n int) bool { return n == 1 || n == 3 || n == 4 }
	if len(dims) == 4 && isC(dims[3]) && !isC(dims[1]) {
		return "NHWC"
	}
	return "NCHW"
}

func loadPair(dir, which, imagesName, labelsName, layout string) (*Dataset, error) {
	ip, err := findIDX(dir, imagesName)
	if err != nil {
		return nil, err
	}
	lp, err := findIDX(dir, labelsName)
	if err != nil {
		return nil, err
	}
	images, err := readIDX(ip, checkImageDims)
	if err != nil {
		return nil, err
	}
	if len(images.Dims) != 3 && len(images.Dims) != 4 {
		return nil, fmt.Errorf("data: idx %s: rank %d, want 3 for images (N,H,W) or 4 (N,C,H,W or N,H,W,C): %w", ip, len(images.Dims), ErrIDX)
	}
	labels, err := ReadIDX(lp)
	if err != nil {
		return nil, err
	}
	if len(labels.Dims) != 1 {
		return nil, fmt.Errorf("data: idx %s: rank %d, want 1 for labels (N): %w", lp, len(labels.Dims), ErrIDX)
	}
	if labels.Dims[0] != images.Dims[0] {
		return nil, fmt.Errorf("data: %s has %d images but %s has %d labels: %w", ip, images.Dims[0], lp, labels.Dims[0], ErrIDX)
	}
	d := &Dataset{
		Name: strings.TrimSuffix(filepath.Base(dir), string(filepath.Separator)) + "/" + which,
		N:    images.Dims[0], C: 1, H: images.Dims[1], W: images.Dims[2], Classes: 256,
		Images: images.Data, Labels: labels.Data,
	}
	if len(images.Dims) == 4 {
		switch IDXLayout(images.Dims, layout) {
		case "NHWC":
			d.H, d.W, d.C = images.Dims[1], images.Dims[2], images.Dims[3]
			d.Images = nhwcToNCHW(images.Data, d.N, d.H, d.W, d.C)
		default:
			d.C, d.H, d.W = images.Dims[1], images.Dims[2], images.Dims[3]
		}
	}
	return d, nil
}

// nhwcToNCHW returns the images x (N,H,W,C) as (N,C,H,W).
func nhwcToNCHW(x []byte, n, h, w, c int) []byte {
	if c == 1 {
		return x
	}
	y := make([]byte, len(x))
	hw := h * w
	for i := range n {
		src := x[i*hw*c : (i+1)*hw*c]
		dst := y[i*hw*c : (i+1)*hw*c]
		for p := range hw {
			for ch := range c {
				dst[ch*hw+p] = src[p*c+ch]
			}
		}
	}
	return y
}

// WriteIDX writes an IDX file of unsigned bytes with the given dimensions
// (each 1 to 2³²−1, rank 1 to 8) and len(data) == product of dims.
func WriteIDX(w io.Writer, dims []int, data []byte) error {
	if len(dims) < 1 || len(dims) > 8 {
		return fmt.Errorf("data: write idx: rank %d, want 1 to 8", len(dims))
	}
	hdr := []byte{0, 0, 0x08, byte(len(dims))}
	total := 1
	for _, d := range dims {
		if d < 1 || int64(d) > 1<<32-1 || total > maxIDXBytes/d {
			return fmt.Errorf("data: write idx: dims %v: each must be ≥ 1 and the data below 2³¹ bytes", dims)
		}
		total *= d
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(d))
	}
	if len(data) != total {
		return fmt.Errorf("data: write idx: %d data bytes for dims %v (want %d)", len(data), dims, total)
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("data: write idx: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("data: write idx: %w", err)
	}
	return nil
}

// WriteDir writes train and test as the four MNIST-style files in dir
// (gzip-compressed with a .gz suffix when gz is true), readable by LoadDir:
// images of rank 3 (N,H,W) when C == 1, else of rank 4 (N,C,H,W).
func WriteDir(dir string, train, test *Dataset, gz bool) error {
	imageDims := func(d *Dataset) []int {
		if d.C == 1 {
			return []int{d.N, d.H, d.W}
		}
		return []int{d.N, d.C, d.H, d.W}
	}
	for _, f := range []struct {
		name string
		dims []int
		data []byte
	}{
		{TrainImagesFile, imageDims(train), train.Images},
		{TrainLabelsFile, []int{train.N}, train.Labels},
		{TestImagesFile, imageDims(test), test.Images},
		{TestLabelsFile, []int{test.N}, test.Labels},
	} {
		var buf bytes.Buffer
		var w io.Writer = &buf
		var zw *gzip.Writer
		name := f.name
		if gz {
			zw = gzip.NewWriter(&buf)
			w, name = zw, name+".gz"
		}
		if err := WriteIDX(w, f.dims, f.data); err != nil {
			return err
		}
		if zw != nil {
			if err := zw.Close(); err != nil {
				return fmt.Errorf("data: write %s: %w", name, err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("data: %w", err)
		}
	}
	return nil
}
