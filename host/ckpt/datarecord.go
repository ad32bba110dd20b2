package ckpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/convtrain/convtrain/host/data"
)

// DataRecord is the training data of a checkpoint (metadata key "data",
// JSON): where it came from and which part of it was used, and a
// fingerprint of the images and labels actually used, so that a run can
// resume from the checkpoint alone and refuse other data naming the
// difference. Checkpoints written before it was kept lack it (nil).
//
// Later fields (a validation split, augmentation) are added beside these;
// a reader refuses a field it does not know, so an older program never
// resumes a run whose data it cannot reproduce.
type DataRecord struct {
	// Source is "mnist" (MNIST from the Go module cache) or the absolute
	// path of the directory of IDX files.
	Source string `json:"source"`
	// Limit and TestLimit are the -limit and -test-limit of the run: the
	// first that many training and test images (0: all).
	Limit     int `json:"limit"`
	TestLimit int `json:"test_limit"`
	// Train and Test fingerprint the images used, after the limits (and
	// Train after the validation split).
	Train DataPrint `json:"train"`
	Test  DataPrint `json:"test"`

	// The fields below are absent (zero) where they do not apply, so
	// that a record without them reads as before.

	// Format is the format data.Load detected ("idx", "cifar10", …);
	// informative. Labels and Size are the load options of -labels and
	// -size (CIFAR-100's label kind, an image folder's image side).
	Format string `json:"format,omitempty"`
	Labels string `json:"labels,omitempty"`
	Size   int    `json:"size,omitempty"`
	// ClassNames name the classes, from the data set's files (CIFAR's
	// names, an image folder's sub-folders); predict prints them.
	ClassNames []string `json:"class_names,omitempty"`
	// Val is the number of validation images taken from the training set
	// (after Limit) by data.Dataset.Split with the run's seed, ValLimit
	// the -val-limit (the first that many of them evaluated; 0: all) and
	// ValPrint the fingerprint of the validation images evaluated.
	Val      int        `json:"val,omitempty"`
	ValLimit int        `json:"val_limit,omitempty"`
	ValPrint *DataPrint `json:"val_print,omitempty"`
	// Augment is the training augmentation in data.ParseAugment's form
	// ("crop4,flip"); empty: none.
	Augment string `json:"augment,omitempty"`
}

// DataPrint fingerprints a data set: its image count and shape, and the
// SHA-256 of its shape, image bytes and labels.
type DataPrint struct {
	N       int    `json:"n"`
	Shape   string `json:"shape"` // C×H×W as in "1x28x28"
	Classes int    `json:"classes"`
	SHA256  string `json:"sha256"`
}

// Fingerprint returns the DataPrint of d.
func Fingerprint(d *data.Dataset) DataPrint {
	h := sha256.New()
	var hdr [40]byte
	for i, v := range []int{d.N, d.C, d.H, d.W, d.Classes} {
		binary.LittleEndian.PutUint64(hdr[8*i:], uint64(v))
	}
	h.Write(hdr[:])
	h.Write(d.Images)
	h.Write(d.Labels)
	return DataPrint{N: d.N, Shape: fmt.Sprintf("%dx%dx%d", d.C, d.H, d.W), Classes: d.Classes, SHA256: hex.EncodeToString(h.Sum(nil))}
}

// String is the fingerprint for people: "8000 images of 1x28x28 in 10
// classes, sha256 1a2b3c4d5e6f…".
func (p DataPrint) String() string {
	sum := p.SHA256
	if len(sum) > 12 {
		sum = sum[:12] + "…"
	}
	return fmt.Sprintf("%d images of %s in %d classes, sha256 %s", p.N, p.Shape, p.Classes, sum)
}

// Diff names the first difference between the fingerprints p (found) and
// q (recorded), or is "" when they are equal.
func (p DataPrint) Diff(q DataPrint) string {
	switch {
	case p.N != q.N:
		return fmt.Sprintf("%d images, the checkpoint's %d", p.N, q.N)
	case p.Shape != q.Shape:
		return fmt.Sprintf("images of %s, the checkpoint's %s", p.Shape, q.Shape)
	case p.Classes != q.Classes:
		return fmt.Sprintf("%d classes, the checkpoint's %d", p.Classes, q.Classes)
	case p.SHA256 != q.SHA256:
		return fmt.Sprintf("%d images of the same size but other pixels or labels (sha256 %.12s…, the checkpoint's %.12s…)", p.N, p.SHA256, q.SHA256)
	}
	return ""
}

// encodeData is the metadata value of r.
func encodeData(r *DataRecord) (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("checkpoint: encode data record: %w", err)
	}
	return string(b), nil
}

// decodeData parses the metadata value s, refusing unknown fields and
// values out of range.
func decodeData(s string) (*DataRecord, error) {
	if len(s) > 1<<16 {
		return nil, ckptErr("data record of %d bytes, more than %d", len(s), 1<<16)
	}
	var r DataRecord
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, ckptErr("data record %q: %v (written by a newer convtrain?)", s, err)
	}
	if r.Source == "" || r.Limit < 0 || r.TestLimit < 0 || r.Train.N < 1 || r.Test.N < 0 ||
		strings.ContainsRune(r.Source, 0) || r.Size < 0 || r.Val < 0 || r.ValLimit < 0 ||
		(r.Val > 0) != (r.ValPrint != nil) || (r.ClassNames != nil && len(r.ClassNames) != r.Train.Classes) {
		return nil, ckptErr("data record %q: want a source, limits, size and validation count ≥ 0, a validation fingerprint with a validation count, one class name per class and at least one training image", s)
	}
	if r.Augment != "" {
		a, err := data.ParseAugment(r.Augment)
		if err != nil || a.String() != r.Augment {
			return nil, ckptErr("data record: augmentation %q is not in canonical form (%v)", r.Augment, err)
		}
	}
	return &r, nil
}
