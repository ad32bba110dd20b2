package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/convtrain/convtrain/host/ckpt"
	"github.com/convtrain/convtrain/host/data"
)

// mnistSource is the DataRecord source of MNIST from the module cache.
const mnistSource = "mnist"

// dataSets are the training and test sets of a run, after -limit and
// -test-limit, with where they came from (a directory) and their record
// for checkpoints.
type dataSets struct {
	train, test *data.Dataset
	dir         string
	record      *ckpt.DataRecord
}

// loadData reads the data of the run: -data (or MNIST) and the limits
// given, or, when resuming from a checkpoint that records its data, the
// recorded source and limits for the flags not given. The data found must
// match the checkpoint's fingerprints; the error names the difference and
// what to do.
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
		return nil, fmt.Errorf("-data %s: %s; give a directory holding the four IDX files of MNIST's layout (see -h)", o.data, what)
	}
	if d.train, d.test, err = data.LoadDir(d.dir); err != nil {
		if o.data != "" {
			return nil, fmt.Errorf("-data: %w", err)
		}
		return nil, err
	}
	if source == mnistSource {
		d.train.Name, d.test.Name = "mnist/train", "mnist/test"
	}
	d.train, d.test = d.train.Limit(o.limit), d.test.Limit(o.testLimit)
	d.record = &ckpt.DataRecord{Source: source, Limit: o.limit, TestLimit: o.testLimit,
		Train: ckpt.Fingerprint(d.train), Test: ckpt.Fingerprint(d.test)}
	if rec == nil {
		return d, nil
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
	return d, nil
}

// checkResumeFlags refuses the data flags that contradict the checkpoint's
// record and an -epochs before its position: usage errors naming both.
func (o *options) checkResumeFlags() error {
	ck := o.ck
	if rec := ck.Data; rec != nil && o.set["limit"] && o.limit != rec.Limit {
		return usagef("-limit %d with -resume %s: the checkpoint trained with -limit %d; leave -limit out (or give -limit %d)", o.limit, o.resume, rec.Limit, rec.Limit)
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
