package data

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// randomSet is a data set of n random images of c×h×w bytes in the given
// number of classes.
func randomSet(n, c, h, w, classes int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 2))
	d := &Dataset{Name: "random", N: n, C: c, H: h, W: w, Classes: classes,
		Images: make([]uint8, n*c*h*w), Labels: make([]uint8, n)}
	for i := range d.Images {
		d.Images[i] = byte(rng.Uint32())
	}
	for i := range d.Labels {
		d.Labels[i] = byte(i % classes) // every class present
	}
	return d
}

func sameSet(got, want *Dataset) bool {
	return got.N == want.N && got.C == want.C && got.H == want.H && got.W == want.W && got.Classes == want.Classes &&
		bytes.Equal(got.Images, want.Images) && bytes.Equal(got.Labels, want.Labels)
}

// nchwToNHWC is the inverse of nhwcToNCHW, written independently.
func nchwToNHWC(d *Dataset) []byte {
	y := make([]byte, len(d.Images))
	for i := range d.N {
		for c := range d.C {
			for p := range d.H * d.W {
				y[(i*d.H*d.W+p)*d.C+c] = d.Images[(i*d.C+c)*d.H*d.W+p]
			}
		}
	}
	return y
}

func writeIDXFile(t *testing.T, path string, dims []int, data []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteIDX(&buf, dims, data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoadIDXRank4 writes multi-channel sets as rank-4 IDX files in both
// layouts and checks that Load reads them back as (N,C,H,W).
func TestLoadIDXRank4(t *testing.T) {
	for _, tc := range []struct {
		name       string
		c, h, w    int
		fileLayout string // how the file is written
		opt        string // LoadOptions.Layout
		gz         bool
	}{
		{"C=3,file=NCHW", 3, 5, 7, "NCHW", "", false},
		{"C=3,file=NCHW,gzip=yes", 3, 5, 7, "NCHW", "", true},
		{"C=3,file=NHWC", 3, 5, 7, "NHWC", "", false},
		{"C=4,file=NHWC", 4, 6, 6, "NHWC", "", false},
		{"C=1,file=NCHW", 1, 6, 5, "NCHW", "", false},
		// (N,3,4,3): the dims say NCHW; the option says otherwise.
		{"C=3,H=4,W=3,file=NHWC,opt=NHWC", 3, 4, 3, "NHWC", "NHWC", false},
		{"C=3,H=3,W=4,file=NCHW,opt=NCHW", 3, 3, 4, "NCHW", "NCHW", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			train, test := randomSet(9, tc.c, tc.h, tc.w, 5, 1), randomSet(4, tc.c, tc.h, tc.w, 5, 2)
			dir := t.TempDir()
			if tc.fileLayout == "NCHW" {
				if tc.c == 1 { // WriteDir writes rank 3 for one channel
					writeIDXFile(t, filepath.Join(dir, TrainImagesFile), []int{train.N, 1, tc.h, tc.w}, train.Images)
					writeIDXFile(t, filepath.Join(dir, TestImagesFile), []int{test.N, 1, tc.h, tc.w}, test.Images)
					writeIDXFile(t, filepath.Join(dir, TrainLabelsFile), []int{train.N}, train.Labels)
					writeIDXFile(t, filepath.Join(dir, TestLabelsFile), []int{test.N}, test.Labels)
				} else if err := WriteDir(dir, train, test, tc.gz); err != nil {
					t.Fatal(err)
				}
			} else {
				writeIDXFile(t, filepath.Join(dir, TrainImagesFile), []int{train.N, tc.h, tc.w, tc.c}, nchwToNHWC(train))
				writeIDXFile(t, filepath.Join(dir, TestImagesFile), []int{test.N, tc.h, tc.w, tc.c}, nchwToNHWC(test))
				writeIDXFile(t, filepath.Join(dir, TrainLabelsFile), []int{train.N}, train.Labels)
				writeIDXFile(t, filepath.Join(dir, TestLabelsFile), []int{test.N}, test.Labels)
			}
			gotTrain, gotTest, src, err := Load(dir, LoadOptions{Layout: tc.opt})
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			if src.Format != "idx" {
				t.Errorf("Load format = %q, want idx", src.Format)
			}
			if !sameSet(gotTrain, train) || !sameSet(gotTest, test) {
				t.Errorf("Load = %d×%d×%d, %d×%d×%d images, want the written %d×%d×%d", gotTrain.C, gotTrain.H, gotTrain.W,
					gotTest.C, gotTest.H, gotTest.W, tc.c, tc.h, tc.w)
			}
		})
	}

	t.Run("case=rank-5", func(t *testing.T) {
		dir := t.TempDir()
		d := randomSet(2, 3, 2, 2, 2, 1)
		writeIDXFile(t, filepath.Join(dir, TrainImagesFile), []int{2, 1, 3, 2, 2}, d.Images)
		writeIDXFile(t, filepath.Join(dir, TrainLabelsFile), []int{2}, d.Labels)
		if _, _, _, err := Load(dir, LoadOptions{}); !errors.Is(err, ErrIDX) || !strings.Contains(err.Error(), "rank 5, want 3 for images (N,H,W) or 4") {
			t.Errorf("Load = %v, want an ErrIDX about rank 5", err)
		}
	})
	t.Run("case=channels-differ", func(t *testing.T) {
		dir := t.TempDir()
		if err := WriteDir(dir, randomSet(3, 3, 4, 4, 2, 1), randomSet(3, 1, 4, 4, 2, 1), false); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := Load(dir, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "training images have 3 channels, test images 1") {
			t.Errorf("Load = %v, want an error about 3 and 1 channels", err)
		}
	})
}

// TestLoadIDXLikeLoadDir: the registered idx format gives what LoadDir
// gives, and LoadDir's errors are unchanged.
func TestLoadIDXLikeLoadDir(t *testing.T) {
	train, err := Synthetic(30, 8, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteDir(dir, train, train.Limit(10), true); err != nil {
		t.Fatal(err)
	}
	a, b, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, d, src, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(c, a) || !sameSet(d, b) || c.Name != a.Name || src.Format != "idx" || src.Dir != dir {
		t.Errorf("Load = %s, %s from %+v; want LoadDir's %s, %s from idx in %s", c.Name, d.Name, src, a.Name, b.Name, dir)
	}
	os.Remove(filepath.Join(dir, TestLabelsFile+".gz"))
	_, _, err1 := LoadDir(dir)
	_, _, _, err2 := Load(dir, LoadOptions{})
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
		t.Errorf("without the test labels, Load = %v, want LoadDir's error %v", err2, err1)
	}
}

func TestLoadUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := Load(dir, LoadOptions{})
	if !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("Load(folder with a README) = %v, want ErrUnknownFormat", err)
	}
	for _, want := range append(Formats(), dir, TrainImagesFile, "test_batch.bin", "cifar-10-batches-bin", "cifar-100-binary") {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Load error = %q, want it to mention %q", err, want)
		}
	}
}

func TestLoadAmbiguous(t *testing.T) {
	dir := t.TempDir()
	train := randomSet(3, 1, 4, 4, 2, 1)
	if err := WriteDir(dir, train, train, false); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CIFAR100TrainFile, CIFAR100TestFile} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := Load(dir, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "several formats (cifar100, idx)") {
		t.Errorf("Load = %v, want an error naming idx and cifar100", err)
	}
}

func TestLoadOptionsBad(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts LoadOptions
		want string
	}{
		{"labels=medium", LoadOptions{Labels: "medium"}, `labels "medium": want fine or coarse`},
		{"layout=CHW", LoadOptions{Layout: "CHW"}, `layout "CHW": want NCHW or NHWC`},
		{"size=-1", LoadOptions{Size: -1}, "image size -1"},
		{"size=5000", LoadOptions{Size: 5000}, "image size 5000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := Load(dir, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// FashionMNISTDir is where Debian's dataset-fashion-mnist package puts the
// IDX files.
const fashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// TestLoadFashionMNIST reads Debian's Fashion-MNIST folder as it is.
func TestLoadFashionMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 30 MB of gzip")
	}
	if _, err := os.Stat(fashionMNISTDir); err != nil {
		t.Skip("needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)")
	}
	train, test, src, err := Load(fashionMNISTDir, LoadOptions{})
	if err != nil {
		t.Fatalf("Load(%s) = %v", fashionMNISTDir, err)
	}
	if src.Format != "idx" || train.N != 60000 || test.N != 10000 || train.C != 1 || train.H != 28 || train.W != 28 || train.Classes != 10 {
		t.Errorf("Load(%s) = %s: %d and %d images of %d×%d×%d in %d classes, want idx: 60000 and 10000 of 1×28×28 in 10",
			fashionMNISTDir, src.Format, train.N, test.N, train.C, train.H, train.W, train.Classes)
	}
}

// TestLoadSymlinks: a data set's folders may be symbolic links (to
// another disk); Load follows them.
func TestLoadSymlinks(t *testing.T) {
	elsewhere, dir := t.TempDir(), t.TempDir()
	d := sortedByLabel(6, 3, 4, 4, 2, 1)
	writeImageFolder(t, elsewhere, "real-train", d, []string{"a", "b"})
	if err := os.Symlink(filepath.Join(elsewhere, "real-train"), filepath.Join(dir, "train")); err != nil {
		t.Skip("needs symbolic links:", err)
	}
	// A class folder that is a link too.
	if err := os.Rename(filepath.Join(elsewhere, "real-train", "b"), filepath.Join(elsewhere, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, "b"), filepath.Join(elsewhere, "real-train", "b")); err != nil {
		t.Fatal(err)
	}
	train, _, src, err := Load(dir, LoadOptions{})
	if err != nil || src.Format != "imagefolder" || !sameSet(train, d) {
		t.Errorf("Load(linked folders) = %v, %+v; want the written image folder", err, src)
	}
}
