package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// ErrUnknownFormat is wrapped by Load's error for a folder that no
// registered format recognises.
var ErrUnknownFormat = errors.New("unknown data format")

// maxImageSide bounds LoadOptions.Size.
const maxImageSide = 4096

// LoadOptions are the choices a format may need; the zero value is the
// default of every format.
type LoadOptions struct {
	// Labels picks the label of CIFAR-100: "fine" (100 classes, the
	// default when empty) or "coarse" (20 superclasses). Other formats
	// ignore it.
	Labels string
	// Size is the side of the square images an image folder is brought to:
	// each image is scaled so that its shorter side is Size, then its
	// centre Size×Size is cut out. 0 keeps the images as they are, and
	// then every image must have the size of the first one. Other formats
	// ignore it.
	Size int
	// Layout is the order of the dimensions of a rank-4 IDX image file:
	// "NCHW" or "NHWC"; empty detects it from the dimensions (NHWC when
	// the last is 1, 3 or 4 and the second is not, else NCHW). Other
	// formats ignore it.
	Layout string
	// Workers is the number of goroutines that decode an image folder;
	// ≤ 0 means runtime.GOMAXPROCS(0).
	Workers int
	// Progress, when not nil, is called while a format that takes a while
	// loads: done of total images so far, from the goroutine that called
	// Load, and with done == total at the end. An image folder reports
	// about every 0.5 % of its images, CIFAR after each batch file.
	Progress func(done, total int)
}

// check validates the option values, naming the bad one.
func (o LoadOptions) check() error {
	switch o.Labels {
	case "", "fine", "coarse":
	default:
		return fmt.Errorf("data: labels %q: want fine or coarse", o.Labels)
	}
	switch o.Layout {
	case "", "NCHW", "NHWC":
	default:
		return fmt.Errorf("data: layout %q: want NCHW or NHWC (or empty to detect it)", o.Layout)
	}
	if o.Size < 0 || o.Size > maxImageSide {
		return fmt.Errorf("data: image size %d: want 0 (keep) or 1 to %d", o.Size, maxImageSide)
	}
	return nil
}

// Format is a data set format known to Load: a way to recognise a folder
// from its listing and to read a training and a test set from it.
type Format struct {
	// Name identifies the format ("idx", "cifar10", "imagefolder").
	Name string
	// Looks says what Detect looks for, for the error about a folder that
	// no format recognises ("train-images-idx3-ubyte[.gz] …").
	Looks string
	// Detect reports whether a folder with these entries is in the format.
	Detect func(entries []fs.DirEntry) bool
	// Subdirs are the usual names of a sub-folder that holds the format
	// (as a download unpacks it), tried when -data points at its parent.
	Subdirs []string
	// Load reads the folder. test may be nil where the format allows a
	// folder without a test set (the caller then splits the training set).
	Load func(dir string, opts LoadOptions) (train, test *Dataset, err error)
}

var (
	formatsMu sync.RWMutex
	formats   []Format
)

// RegisterFormat makes a format known to Load, in the spirit of
// image.RegisterFormat: each format's file registers itself. A second
// format with the same name replaces the first; a format without Detect
// or Load is never detected.
func RegisterFormat(f Format) {
	formatsMu.Lock()
	defer formatsMu.Unlock()
	for i := range formats {
		if formats[i].Name == f.Name {
			formats[i] = f
			return
		}
	}
	formats = append(formats, f)
}

// Formats returns the names of the registered formats in the order of
// registration.
func Formats() []string {
	formatsMu.RLock()
	defer formatsMu.RUnlock()
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = f.Name
	}
	return names
}

// Source says where Load found a data set: the format's name and the
// folder it read (dir itself or one of the format's Subdirs).
type Source struct {
	Format string
	Dir    string
}

// Load detects the format of the folder dir, reads its training and test
// sets and checks them (Dataset.Check; the same C×H×W and class count in
// both). When no registered format recognises dir itself, the formats'
// usual sub-folder names inside dir are tried (cifar-10-batches-bin/, …).
// A folder that several formats recognise, or none, is an error that names
// them or lists what was looked for. test is nil only for a format that
// allows a folder without a test set (an image folder without test/).
func Load(dir string, opts LoadOptions) (train, test *Dataset, src Source, err error) {
	if err := opts.check(); err != nil {
		return nil, nil, Source{}, err
	}
	entries, err := readDir(dir)
	if err != nil {
		return nil, nil, Source{}, err
	}
	formatsMu.RLock()
	all := append([]Format(nil), formats...)
	formatsMu.RUnlock()

	all = slices.DeleteFunc(all, func(f Format) bool { return f.Detect == nil || f.Load == nil })
	match := func(entries []fs.DirEntry) (*Format, error) {
		var found []*Format
		for i := range all {
			if all[i].Detect(entries) {
				found = append(found, &all[i])
			}
		}
		if len(found) > 1 {
			names := make([]string, len(found))
			for i, f := range found {
				names[i] = f.Name
			}
			sort.Strings(names)
			return nil, fmt.Errorf("data: %s looks like several formats (%s): point at a folder that holds one", dir, strings.Join(names, ", "))
		}
		if len(found) == 1 {
			return found[0], nil
		}
		return nil, nil
	}
	f, err := match(entries)
	if err != nil {
		return nil, nil, Source{}, err
	}
	src.Dir = dir
	if f == nil {
		for i := range all {
			for _, sub := range all[i].Subdirs {
				p := filepath.Join(dir, sub)
				subEntries, err := readDir(p)
				if err != nil || !all[i].Detect(subEntries) {
					continue
				}
				if f != nil {
					return nil, nil, Source{}, fmt.Errorf("data: %s holds several data sets (%s, %s): point at one of them", dir, src.Dir, p)
				}
				f, src.Dir = &all[i], p
			}
		}
	}
	if f == nil {
		looks := make([]string, len(all))
		for i, f := range all {
			looks[i] = f.Name + ": " + f.Looks
			if len(f.Subdirs) > 0 {
				looks[i] += " (also in " + strings.Join(f.Subdirs, "/ or ") + "/)"
			}
		}
		return nil, nil, Source{}, fmt.Errorf("data: %s: %w; looked for %s", dir, ErrUnknownFormat, strings.Join(looks, "; "))
	}
	src.Format = f.Name
	train, test, err = f.Load(src.Dir, opts)
	if err != nil {
		return nil, nil, Source{}, err
	}
	if err := checkPair(src.Dir, train, test); err != nil {
		return nil, nil, Source{}, err
	}
	return train, test, src, nil
}

// checkPair checks each set and that test (when present) matches train.
func checkPair(dir string, train, test *Dataset) error {
	if err := train.Check(); err != nil {
		return err
	}
	if test == nil {
		return nil
	}
	if err := test.Check(); err != nil {
		return err
	}
	if train.C != test.C || train.H != test.H || train.W != test.W || train.Classes != test.Classes {
		return fmt.Errorf("data: %s: training images are %d×%d×%d in %d classes, test images %d×%d×%d in %d classes",
			dir, train.C, train.H, train.W, train.Classes, test.C, test.H, test.W, test.Classes)
	}
	return nil
}

// readDir lists dir as os.ReadDir does, a symbolic link listed as what it
// points to (a folder of a data set is often a link to another disk); a
// dangling link is left as it is.
func readDir(dir string) ([]fs.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	for i, e := range entries {
		if e.Type()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil {
				entries[i] = fs.FileInfoToDirEntry(st)
			}
		}
	}
	return entries, nil
}

// hasEntry reports whether entries hold a regular file (or, with dir, a
// folder) with one of the names.
func hasEntry(entries []fs.DirEntry, dir bool, names ...string) bool {
	for _, e := range entries {
		if e.IsDir() != dir {
			continue
		}
		for _, n := range names {
			if e.Name() == n {
				return true
			}
		}
	}
	return false
}
