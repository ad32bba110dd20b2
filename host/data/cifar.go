package data

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrCIFAR is wrapped by every error about the content of a CIFAR file.
var ErrCIFAR = errors.New("bad CIFAR file")

// CIFARVariant is the record layout of a CIFAR binary batch and the label
// taken from it.
type CIFARVariant int

const (
	// CIFAR10: records of 1 label byte (0 to 9) and 3072 image bytes.
	CIFAR10 CIFARVariant = iota
	// CIFAR100Fine: records of a coarse label byte (0 to 19), a fine label
	// byte (0 to 99) and 3072 image bytes; the fine label is kept.
	CIFAR100Fine
	// CIFAR100Coarse: CIFAR-100 records, the coarse label kept.
	CIFAR100Coarse
)

// The image of every CIFAR record: 3 channels (R, G, B) of 32×32 bytes,
// each channel row-major, so (C,H,W) as a Dataset holds it.
const (
	cifarSide       = 32
	cifarImageBytes = 3 * cifarSide * cifarSide
)

func (v CIFARVariant) String() string {
	switch v {
	case CIFAR10:
		return "cifar10"
	case CIFAR100Fine:
		return "cifar100"
	case CIFAR100Coarse:
		return "cifar100-coarse"
	}
	return "CIFARVariant(" + strconv.Itoa(int(v)) + ")"
}

// labelBytes is the number of label bytes before the image of a record.
func (v CIFARVariant) labelBytes() int {
	if v == CIFAR10 {
		return 1
	}
	return 2
}

// RecordBytes is the size of one record of the variant's files.
func (v CIFARVariant) RecordBytes() int { return v.labelBytes() + cifarImageBytes }

// labelOffset is the offset in a record of the label that is kept.
func (v CIFARVariant) labelOffset() int {
	if v == CIFAR100Fine {
		return 1
	}
	return 0
}

// Classes is the number of classes of the kept label.
func (v CIFARVariant) Classes() int {
	switch v {
	case CIFAR100Fine:
		return 100
	case CIFAR100Coarse:
		return 20
	}
	return 10
}

// cifarChunk is the number of records read at a time.
const cifarChunk = 256

// ReadCIFAR reads one CIFAR binary batch file (data_batch_1.bin,
// test_batch.bin, train.bin, …): a sequence of records, each the label
// byte(s) of the variant and 3072 image bytes (the red, green and blue
// 32×32 planes, row-major), and nothing else. A file whose size is not a
// positive multiple of the record size, a label not below the variant's
// class count and a file shorter than its size said are errors wrapping
// ErrCIFAR that name the file and the byte offset. The images are
// allocated from the file's size, checked first, so ReadCIFAR allocates no
// more than the file holds.
func ReadCIFAR(path string, v CIFARVariant) (*Dataset, error) {
	f, size, err := openRegular(path, ErrCIFAR)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return DecodeCIFAR(path, f, size, v)
}

// openRegular opens a regular file and returns its size.
func openRegular(path string, kind error) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("data: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("data: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("data: %s: not a regular file: %w", path, kind)
	}
	return f, st.Size(), nil
}

// DecodeCIFAR reads CIFAR records (see ReadCIFAR) from r, a stream of
// exactly size bytes named name in errors.
func DecodeCIFAR(name string, r io.Reader, size int64, v CIFARVariant) (*Dataset, error) {
	n, err := cifarRecords(name, size, v)
	if err != nil {
		return nil, err
	}
	d := &Dataset{Name: v.String(), N: n, C: 3, H: cifarSide, W: cifarSide, Classes: v.Classes(),
		Images: make([]uint8, n*cifarImageBytes), Labels: make([]uint8, n)}
	if err := decodeCIFARInto(name, r, v, d.Images, d.Labels); err != nil {
		return nil, err
	}
	return d, nil
}

// cifarRecords returns the number of records in a file of size bytes.
func cifarRecords(name string, size int64, v CIFARVariant) (int, error) {
	rec := int64(v.RecordBytes())
	switch {
	case size == 0:
		return 0, fmt.Errorf("data: cifar %s: empty file at offset 0, want %d-byte %s records: %w", name, rec, v, ErrCIFAR)
	case size%rec != 0:
		return 0, fmt.Errorf("data: cifar %s: %d bytes are %d %d-byte %s records and %d bytes more: a truncated or foreign file, incomplete record at offset %d: %w",
			name, size, size/rec, rec, v, size%rec, size/rec*rec, ErrCIFAR)
	case size/rec*cifarImageBytes > maxIDXBytes:
		return 0, fmt.Errorf("data: cifar %s: %d records at offset 0 hold more than %d image bytes: %w", name, size/rec, int64(maxIDXBytes), ErrCIFAR)
	}
	return int(size / rec), nil
}

// decodeCIFARInto reads len(labels) records from r into images and labels.
func decodeCIFARInto(name string, r io.Reader, v CIFARVariant, images, labels []byte) error {
	rec := v.RecordBytes()
	lb, lo, classes := v.labelBytes(), v.labelOffset(), v.Classes()
	n := len(labels)
	buf := make([]byte, min(n, cifarChunk)*rec)
	for i := 0; i < n; {
		k := min(n-i, cifarChunk)
		chunk := buf[:k*rec]
		if got, err := io.ReadFull(r, chunk); err != nil {
			return fmt.Errorf("data: cifar %s: truncated at offset %d (record %d of %d): %v: %w",
				name, int64(i)*int64(rec)+int64(got), i+got/rec, n, readErr(err), ErrCIFAR)
		}
		for j := range k {
			x := chunk[j*rec : (j+1)*rec]
			l := x[lo]
			if int(l) >= classes {
				return fmt.Errorf("data: cifar %s: label %d of record %d at offset %d is not below %d (%s): %w",
					name, l, i+j, int64(i+j)*int64(rec)+int64(lo), classes, v, ErrCIFAR)
			}
			labels[i+j] = l
			copy(images[(i+j)*cifarImageBytes:(i+j+1)*cifarImageBytes], x[lb:])
		}
		i += k
	}
	return nil
}

// WriteCIFAR writes n CIFAR records to w: for image i the bytes
// labels[0][i], labels[1][i], … then images[i·3072 : (i+1)·3072]. One
// label slice writes CIFAR-10 records, two (coarse, fine) CIFAR-100 ones.
func WriteCIFAR(w io.Writer, images []byte, labels ...[]byte) error {
	if len(labels) < 1 || len(labels) > 2 {
		return fmt.Errorf("data: write cifar: %d label slices, want 1 (CIFAR-10) or 2 (CIFAR-100 coarse, fine)", len(labels))
	}
	n := len(labels[0])
	for _, l := range labels {
		if len(l) != n {
			return fmt.Errorf("data: write cifar: label slices of %d and %d entries", n, len(l))
		}
	}
	if len(images) != n*cifarImageBytes {
		return fmt.Errorf("data: write cifar: %d image bytes for %d images (want %d)", len(images), n, n*cifarImageBytes)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	for i := range n {
		for _, l := range labels {
			bw.WriteByte(l[i])
		}
		bw.Write(images[i*cifarImageBytes : (i+1)*cifarImageBytes])
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("data: write cifar: %w", err)
	}
	return nil
}

// The file names of the CIFAR binary distributions.
const (
	CIFAR10TestFile         = "test_batch.bin"
	CIFAR10MetaFile         = "batches.meta.txt"
	CIFAR100TrainFile       = "train.bin"
	CIFAR100TestFile        = "test.bin"
	CIFAR100FineNamesFile   = "fine_label_names.txt"
	CIFAR100CoarseNamesFile = "coarse_label_names.txt"
)

// cifar10Batch returns k for a name data_batch_<k>.bin.
func cifar10Batch(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "data_batch_")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".bin")
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(s)
	return k, err == nil && k >= 1
}

func init() {
	RegisterFormat(Format{
		Name:  "cifar10",
		Looks: "data_batch_<k>.bin and " + CIFAR10TestFile + " (CIFAR-10 binary)",
		Detect: func(entries []fs.DirEntry) bool {
			if !hasEntry(entries, false, CIFAR10TestFile) {
				return false
			}
			for _, e := range entries {
				if _, ok := cifar10Batch(e.Name()); ok && !e.IsDir() {
					return true
				}
			}
			return false
		},
		Subdirs: []string{"cifar-10-batches-bin"},
		Load:    loadCIFAR10,
	})
	RegisterFormat(Format{
		Name:  "cifar100",
		Looks: CIFAR100TrainFile + " and " + CIFAR100TestFile + " (CIFAR-100 binary)",
		Detect: func(entries []fs.DirEntry) bool {
			return hasEntry(entries, false, CIFAR100TrainFile) && hasEntry(entries, false, CIFAR100TestFile)
		},
		Subdirs: []string{"cifar-100-binary"},
		Load:    loadCIFAR100,
	})
}

func loadCIFAR10(dir string, opts LoadOptions) (train, test *Dataset, err error) {
	entries, err := readDir(dir)
	if err != nil {
		return nil, nil, err
	}
	type batch struct {
		k    int
		path string
	}
	var batches []batch
	for _, e := range entries {
		if k, ok := cifar10Batch(e.Name()); ok {
			batches = append(batches, batch{k, filepath.Join(dir, e.Name())})
		}
	}
	sort.Slice(batches, func(i, j int) bool { return batches[i].k < batches[j].k })
	paths := make([]string, len(batches))
	for i, b := range batches {
		paths[i] = b.path
	}
	paths = append(paths, filepath.Join(dir, CIFAR10TestFile))
	if train, test, err = readCIFARSets(paths, CIFAR10, opts.Progress); err != nil {
		return nil, nil, err
	}
	names, err := readClassNames(filepath.Join(dir, CIFAR10MetaFile), 10)
	if err != nil {
		return nil, nil, err
	}
	train.ClassNames, test.ClassNames = names, names
	return train, test, nil
}

func loadCIFAR100(dir string, opts LoadOptions) (train, test *Dataset, err error) {
	v, namesFile := CIFAR100Fine, CIFAR100FineNamesFile
	if opts.Labels == "coarse" {
		v, namesFile = CIFAR100Coarse, CIFAR100CoarseNamesFile
	}
	paths := []string{filepath.Join(dir, CIFAR100TrainFile), filepath.Join(dir, CIFAR100TestFile)}
	if train, test, err = readCIFARSets(paths, v, opts.Progress); err != nil {
		return nil, nil, err
	}
	names, err := readClassNames(filepath.Join(dir, namesFile), v.Classes())
	if err != nil {
		return nil, nil, err
	}
	train.ClassNames, test.ClassNames = names, names
	return train, test, nil
}

// readCIFARSets reads the files as a training set (all but the last
// file, in order) and a test set (the last file). Every file's size is
// checked before the images are allocated. progress, when not nil, is
// called after each file.
func readCIFARSets(paths []string, v CIFARVariant, progress func(done, total int)) (train, test *Dataset, err error) {
	files := make([]*os.File, len(paths))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	counts := make([]int, len(paths))
	total := 0
	for i, p := range paths {
		f, size, err := openRegular(p, ErrCIFAR)
		if err != nil {
			return nil, nil, err
		}
		files[i] = f
		if counts[i], err = cifarRecords(p, size, v); err != nil {
			return nil, nil, err
		}
		if total+counts[i] > maxIDXBytes/cifarImageBytes {
			return nil, nil, fmt.Errorf("data: cifar %s: more than %d images in all: %w", p, maxIDXBytes/cifarImageBytes, ErrCIFAR)
		}
		total += counts[i]
	}
	images, labels := make([]uint8, total*cifarImageBytes), make([]uint8, total)
	at := 0
	for i, p := range paths {
		if err := decodeCIFARInto(p, files[i], v, images[at*cifarImageBytes:(at+counts[i])*cifarImageBytes], labels[at:at+counts[i]]); err != nil {
			return nil, nil, err
		}
		at += counts[i]
		if progress != nil {
			progress(at, total)
		}
	}
	nTrain := total - counts[len(counts)-1]
	split := nTrain * cifarImageBytes
	set := func(name string, images, labels []uint8) *Dataset {
		return &Dataset{Name: v.String() + "/" + name, N: len(labels), C: 3, H: cifarSide, W: cifarSide, Classes: v.Classes(),
			Images: images, Labels: labels}
	}
	return set("train", images[:split:split], labels[:nTrain:nTrain]), set("test", images[split:], labels[nTrain:]), nil
}

// maxNamesBytes bounds a file of class names.
const maxNamesBytes = 1 << 20

// readClassNames reads the class names of a names file, one a line (blank
// lines skipped), when the file exists (nil, nil when it does not). It
// must hold exactly the given number of names.
func readClassNames(path string, classes int) ([]string, error) {
	f, size, err := openRegular(path, ErrCIFAR)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > maxNamesBytes {
		return nil, fmt.Errorf("data: %s: %d bytes, more than %d for class names: %w", path, size, maxNamesBytes, ErrCIFAR)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if s := strings.TrimSpace(line); s != "" {
			names = append(names, s)
		}
	}
	if len(names) != classes {
		return nil, fmt.Errorf("data: %s: %d class names, want %d (one a line): %w", path, len(names), classes, ErrCIFAR)
	}
	return names, nil
}
