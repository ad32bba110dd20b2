package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/convtrain/convtrain/host/ckpt"
	"github.com/convtrain/convtrain/host/data"
)

// mnistSource is the DataRecord source of MNIST from the module cache.
const mnistSource = "mnist"

// dataOptions are the data flags beyond -data and the limits: how to
// load the folder, the validation split, the augmentation and what the
// validation set selects.
type dataOptions struct {
	labels         string
	size           int
	val            data.SplitSize
	valLimit       int
	augment        string
	aug            data.Augment // -augment parsed
	patience       int
	minDelta       float64
	testEveryEpoch bool
	// loadProgress, when not nil, draws the progress of a long load (on a
	// terminal).
	loadProgress func(done, total int)
}

func (d *dataOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&d.labels, "labels", "", "CIFAR-100's labels: fine (100 classes; the default) or coarse (20 superclasses)")
	fs.IntVar(&d.size, "size", 0, "image folders: bring every image to `N`×N (the shorter side scaled to N, the centre cut out); 0: keep the size")
	fs.Var(&d.val, "val", "take a validation set of `N` training images (5000) or a percentage (10%), drawn by -seed; it selects -save-best and early stopping")
	fs.IntVar(&d.valLimit, "val-limit", 0, "evaluate on the first `N` validation images only (0: all)")
	fs.StringVar(&d.augment, "augment", "", "training augmentation `LIST`: crop<P> (random crop with P pixels of zero padding) and flip (horizontal), e.g. crop4,flip")
	fs.IntVar(&d.patience, "patience", 0, "stop after `N` epochs without a better validation accuracy (needs -val; 0: never)")
	fs.Float64Var(&d.minDelta, "min-delta", 0, "a better validation accuracy must beat the best by more than this fraction (early stopping and -save-best with -val)")
	fs.BoolVar(&d.testEveryEpoch, "test-every-epoch", false, "with -val: evaluate the test set after every epoch, not only after the last")
}

// check validates the data flags after parsing.
func (d *dataOptions) check() error {
	var err error
	if d.aug, err = data.ParseAugment(d.augment); err != nil {
		return usagef("-augment: %v", strings.TrimPrefix(err.Error(), "data: "))
	}
	switch {
	case d.labels != "" && d.labels != "fine" && d.labels != "coarse":
		return usagef("-labels %q: want fine or coarse (CIFAR-100's 100 classes or 20 superclasses)", d.labels)
	case d.size < 0 || d.size > 4096:
		return usagef("-size %d: want 0 (keep the images' size) or 1 to 4096", d.size)
	case d.valLimit < 0:
		return usagef("-val-limit %d: want ≥ 0", d.valLimit)
	case d.patience < 0:
		return usagef("-patience %d: want ≥ 0", d.patience)
	case !(d.minDelta >= 0 && d.minDelta < 1):
		return usagef("-min-delta %g: want a fraction in [0, 1)", d.minDelta)
	}
	return nil
}

// loadProgress draws "loading [=====>    ] 12000/60000 images" on the
// terminal w of the given width (0: 80) and erases it when done.
func loadProgress(w io.Writer, width int) func(done, total int) {
	if width <= 0 {
		width = 80
	}
	drawn := 0
	return func(done, total int) {
		if done >= total || total <= 0 {
			if drawn > 0 {
				fmt.Fprintf(w, "\r%s\r", strings.Repeat(" ", drawn))
				drawn = 0
			}
			return
		}
		tail := fmt.Sprintf(" %d/%d images", done, total)
		line := "loading" + tail
		if n := min(maxBarWidth, width-1-len(line)-3); n >= 10 {
			k := n * done / total
			line = "loading [" + strings.Repeat("=", k) + ">" + strings.Repeat(" ", n-k-1) + "]" + tail
		}
		fmt.Fprintf(w, "\r%s", line)
		drawn = len([]rune(line))
	}
}

// dataSets are the training, validation and test sets of a run, after
// -limit, -val, -val-limit and -test-limit, with where they came from (a
// directory) and their record for checkpoints.
type dataSets struct {
	train, val, test *data.Dataset // val nil without -val
	dir              string
	format           string
	record           *ckpt.DataRecord
}

// loadData reads the data of the run: -data (or MNIST), in the format
// data.Load detects, with the limits and the validation split given, or,
// when resuming from a checkpoint that records its data, the recorded
// source, load options, limits and split for the flags not given. The
// data found must match the checkpoint's fingerprints; the error names
// the difference and what to do.
func (o *options) loadData() (*dataSets, error) {
	var rec *ckpt.DataRecord
	if o.ck != nil {
		rec = o.ck.Data
	}
	source := mnistSource
	if o.data != "" {
		abs, err := filepath.Abs(o.data)
		if err != nil {
			return nil, fmt.Errorf("-data %s: %w", o.data, err)
		}
		source = abs
	}
	seed := o.seed
	if o.ck != nil {
		seed = o.ck.Config.Seed // the split of the run resumed
	}
	if rec != nil {
		if !o.set["data"] {
			source = rec.Source
		}
		if !o.set["limit"] {
			o.limit = rec.Limit
		}
		if !o.set["test-limit"] {
			o.testLimit = rec.TestLimit
		}
		if !o.set["labels"] {
			o.labels = rec.Labels
		}
		if !o.set["size"] {
			o.size = rec.Size
		}
		if !o.set["val"] {
			o.val = data.SplitSize{Count: rec.Val}
		}
		if !o.set["val-limit"] {
			o.valLimit = rec.ValLimit
		}
	}
	d := &dataSets{dir: source}
	var err error
	if source == mnistSource {
		if d.dir, err = data.LocateMNIST(); err != nil {
			return nil, err
		}
	}
	if fi, serr := os.Stat(d.dir); serr != nil || !fi.IsDir() {
		what := "no such directory"
		if serr == nil {
			what = "not a directory"
		} else if !errors.Is(serr, os.ErrNotExist) {
			what = serr.Error()
		}
		if rec != nil && !o.set["data"] {
			return nil, fmt.Errorf("-resume %s: the checkpoint trained on %s: %s; give -data DIR with the same files", o.resume, source, what)
		}
		return nil, fmt.Errorf("-data %s: %s; give a directory of IDX files (MNIST's layout), CIFAR-10/100 binary batches or an image folder (see -h)", o.data, what)
	}
	opts := data.LoadOptions{Labels: o.labels, Size: o.size, Progress: o.loadProgress}
	var src data.Source
	if d.train, d.test, src, err = data.Load(d.dir, opts); err != nil {
		if o.data != "" {
			return nil, fmt.Errorf("-data: %w", err)
		}
		return nil, err
	}
	d.format = src.Format
	if d.test == nil {
		return nil, fmt.Errorf("-data %s: the image folder has no test/ sub-folder: add one (one sub-folder per class, as in train/) to evaluate on", o.data)
	}
	if source == mnistSource {
		d.train.Name, d.test.Name = "mnist/train", "mnist/test"
	}
	d.train, d.test = d.train.Limit(o.limit), d.test.Limit(o.testLimit)
	nVal, err := o.val.Of(d.train.N)
	if err != nil {
		return nil, usagef("-val %s: of %d training images (-limit %d), the validation set must take 1 to %d and leave the rest to train on", o.val.String(), d.train.N, o.limit, d.train.N-1)
	}
	if nVal > 0 {
		if d.train, d.val, err = d.train.Split(nVal, seed); err != nil {
			return nil, err
		}
		d.val = d.val.Limit(o.valLimit)
	} else if o.patience > 0 {
		return nil, usagef("-patience %d: early stopping selects on a validation set: give -val N or -val P%%", o.patience)
	}
	d.record = &ckpt.DataRecord{Source: source, Limit: o.limit, TestLimit: o.testLimit,
		Train: ckpt.Fingerprint(d.train), Test: ckpt.Fingerprint(d.test),
		Labels: o.labels, Size: o.size, ClassNames: d.train.ClassNames}
	if src.Format != "idx" {
		d.record.Format = src.Format
	}
	if d.val != nil {
		vp := ckpt.Fingerprint(d.val)
		d.record.Val, d.record.ValLimit, d.record.ValPrint = nVal, o.valLimit, &vp
	}
	if rec == nil {
		return d, nil
	}
	if rec.Val != nVal {
		return nil, usagef("-val %s with -resume %s: %d validation images, the checkpoint's split took %d; leave -val out", o.val.String(), o.resume, nVal, rec.Val)
	}
	was := fmt.Sprintf("%s with -limit %d", rec.Source, rec.Limit)
	if diff := d.record.Train.Diff(rec.Train); diff != "" {
		return nil, fmt.Errorf("-resume %s: the training data differs from the checkpoint's: %s, -limit %d: %s (it trained on %s); leave out -data and -limit to use the recorded ones",
			o.resume, source, o.limit, diff, was)
	}
	if o.testLimit == rec.TestLimit {
		if diff := d.record.Test.Diff(rec.Test); diff != "" {
			return nil, fmt.Errorf("-resume %s: the test data differs from the checkpoint's: %s, -test-limit %d: %s (it evaluated on %s with -test-limit %d); leave out -data to use the recorded one",
				o.resume, source, o.testLimit, diff, rec.Source, rec.TestLimit)
		}
	}
	if d.val != nil && o.valLimit == rec.ValLimit && rec.ValPrint != nil {
		if diff := d.record.ValPrint.Diff(*rec.ValPrint); diff != "" {
			return nil, fmt.Errorf("-resume %s: the validation data differs from the checkpoint's: %s (-val-limit %d); leave out -data to use the recorded data", o.resume, diff, o.valLimit)
		}
	}
	return d, nil
}

// checkResumeFlags refuses the data flags that contradict the checkpoint's
// record and an -epochs before its position: usage errors naming both.
func (o *options) checkResumeFlags() error {
	ck := o.ck
	if rec := ck.Data; rec != nil && o.set["limit"] && o.limit != rec.Limit {
		return usagef("-limit %d with -resume %s: the checkpoint trained with -limit %d; leave -limit out (or give -limit %d)", o.limit, o.resume, rec.Limit, rec.Limit)
	}
	if rec := ck.Data; rec != nil && o.set["labels"] && o.labels != rec.Labels {
		return usagef("-labels %q with -resume %s: the checkpoint trained with -labels %q; leave -labels out", o.labels, o.resume, rec.Labels)
	}
	if rec := ck.Data; rec != nil && o.set["size"] && o.size != rec.Size {
		return usagef("-size %d with -resume %s: the checkpoint trained with -size %d; leave -size out", o.size, o.resume, rec.Size)
	}
	st := ck.State
	if o.epochs < st.Epoch || (o.epochs == st.Epoch && st.StepEpoch > 0) {
		at := plural(st.Epoch, "epoch")
		if st.StepEpoch > 0 {
			at += fmt.Sprintf(" and %s of epoch %d", plural(st.StepEpoch, "step"), st.Epoch+1)
		}
		finish := ""
		if ck.Config.Epochs > st.Epoch {
			finish = fmt.Sprintf(", or leave it out to finish its %d", ck.Config.Epochs)
		}
		return usagef("-epochs %d with -resume %s: the checkpoint has done %s; give -epochs %d or more%s",
			o.epochs, o.resume, at, st.Epoch+1, finish)
	}
	return nil
}

// plural is "1 epoch", "2 epochs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// checkClasses refuses, for the default network (whose output width is
// the class count the labels imply), labels that imply classes without a
// training image: a corrupt label (200 among digits) or a class only in
// the test set would otherwise add outputs that are never trained. The
// error names the classes, the image with the largest label and what to
// do; with -model the user chooses the width and the check is left out.
func checkClasses(train, test *data.Dataset, dir string, limit int) error {
	count := make([]int, train.Classes)
	for _, l := range train.Labels {
		count[l]++
	}
	var empty []int
	for c, n := range count {
		if n == 0 {
			empty = append(empty, c)
		}
	}
	if len(empty) == 0 {
		return nil
	}
	where := func(d *data.Dataset, label int) int {
		for i, l := range d.Labels {
			if int(l) == label {
				return i
			}
		}
		return -1
	}
	top := train.Classes - 1
	seen := "training"
	at := where(train, top)
	if at < 0 {
		seen, at = "test", where(test, top)
	}
	missing := fmt.Sprintf("class %d has", empty[0])
	if len(empty) > 1 {
		missing = fmt.Sprintf("classes %s have", spanText(empty))
	}
	if limit > 0 {
		missing += fmt.Sprintf(" among the first %d (-limit %d; a larger -limit may include it)", train.N, limit)
	}
	return fmt.Errorf("%s: the labels imply %d classes (the largest label, %d, is on %s image %d), but %s no training image: a corrupt label, or a class only in the test set? The default network would get outputs it never learns: fix the labels, or give -model with a last layer of dense%d to train as they are",
		dir, train.Classes, top, seen, at, missing, train.Classes)
}

// spanText writes sorted integers as "3, 10 to 199".
func spanText(v []int) string {
	var parts []string
	for i := 0; i < len(v); {
		j := i
		for j+1 < len(v) && v[j+1] == v[j]+1 {
			j++
		}
		switch {
		case j == i:
			parts = append(parts, fmt.Sprint(v[i]))
		case j == i+1:
			parts = append(parts, fmt.Sprint(v[i]), fmt.Sprint(v[j]))
		default:
			parts = append(parts, fmt.Sprintf("%d to %d", v[i], v[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
