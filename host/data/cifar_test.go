package data

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// randomCIFAR returns n random CIFAR images with random coarse (< 20) and
// fine (< 100) labels.
func randomCIFAR(n int, seed uint64) (images, coarse, fine []byte) {
	rng := rand.New(rand.NewPCG(seed, 1))
	images = make([]byte, n*cifarImageBytes)
	for i := range images {
		images[i] = byte(rng.Uint32())
	}
	coarse, fine = make([]byte, n), make([]byte, n)
	for i := range n {
		coarse[i], fine[i] = byte(rng.IntN(20)), byte(rng.IntN(100))
	}
	return images, coarse, fine
}

func writeCIFARFile(t testing.TB, path string, images []byte, labels ...[]byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteCIFAR(&buf, images, labels...); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCIFARRoundTrip writes random sets with WriteCIFAR in both layouts
// and checks that Load reads back the same bytes, from the folder and from
// its parent through the usual sub-folder name.
func TestCIFARRoundTrip(t *testing.T) {
	images, coarse, fine := randomCIFAR(23, 1)
	tImages, tCoarse, tFine := randomCIFAR(5, 2)
	ten := func(l []byte) []byte {
		m := make([]byte, len(l))
		for i, v := range l {
			m[i] = v % 10
		}
		return m
	}
	for _, tc := range []struct {
		name, format, sub string
		opts              LoadOptions
		write             func(dir string)
		labels, tLabels   []byte
		classes           int
	}{
		{"format=cifar10", "cifar10", "", LoadOptions{}, func(dir string) {
			// Three batches of 10, 3 (out of order on disk) and 10 images.
			writeCIFARFile(t, filepath.Join(dir, "data_batch_1.bin"), images[:10*cifarImageBytes], ten(coarse[:10]))
			writeCIFARFile(t, filepath.Join(dir, "data_batch_10.bin"), images[13*cifarImageBytes:], ten(coarse[13:]))
			writeCIFARFile(t, filepath.Join(dir, "data_batch_2.bin"), images[10*cifarImageBytes:13*cifarImageBytes], ten(coarse[10:13]))
			writeCIFARFile(t, filepath.Join(dir, "test_batch.bin"), tImages, ten(tCoarse))
		}, ten(coarse), ten(tCoarse), 10},
		{"format=cifar10,sub=yes", "cifar10", "cifar-10-batches-bin", LoadOptions{}, func(dir string) {
			writeCIFARFile(t, filepath.Join(dir, "data_batch_1.bin"), images, ten(coarse))
			writeCIFARFile(t, filepath.Join(dir, "test_batch.bin"), tImages, ten(tCoarse))
		}, ten(coarse), ten(tCoarse), 10},
		{"format=cifar100,labels=fine", "cifar100", "", LoadOptions{}, func(dir string) {
			writeCIFARFile(t, filepath.Join(dir, "train.bin"), images, coarse, fine)
			writeCIFARFile(t, filepath.Join(dir, "test.bin"), tImages, tCoarse, tFine)
		}, fine, tFine, 100},
		{"format=cifar100,labels=coarse,sub=yes", "cifar100", "cifar-100-binary", LoadOptions{Labels: "coarse"}, func(dir string) {
			writeCIFARFile(t, filepath.Join(dir, "train.bin"), images, coarse, fine)
			writeCIFARFile(t, filepath.Join(dir, "test.bin"), tImages, tCoarse, tFine)
		}, coarse, tCoarse, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, tc.sub)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.write(dir)
			var calls [][2]int
			tc.opts.Progress = func(done, total int) { calls = append(calls, [2]int{done, total}) }
			train, test, src, err := Load(parent, tc.opts)
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			if src.Format != tc.format || src.Dir != dir {
				t.Errorf("Load source = %+v, want format %s in %s", src, tc.format, dir)
			}
			if len(calls) < 2 || calls[len(calls)-1] != [2]int{28, 28} || tc.name == "format=cifar10" && fmt.Sprint(calls) != "[[10 28] [13 28] [23 28] [28 28]]" {
				t.Errorf("Progress calls = %v, want one per file ending with [28 28]", calls)
			}
			for _, c := range []struct {
				got            *Dataset
				images, labels []byte
			}{{train, images, tc.labels}, {test, tImages, tc.tLabels}} {
				if c.got.N != len(c.labels) || c.got.C != 3 || c.got.H != 32 || c.got.W != 32 || c.got.Classes != tc.classes ||
					!bytes.Equal(c.got.Images, c.images) || !bytes.Equal(c.got.Labels, c.labels) {
					t.Errorf("Load %s = %d images %d×%d×%d in %d classes (images equal %v, labels equal %v), want %d 3×32×32 in %d",
						c.got.Name, c.got.N, c.got.C, c.got.H, c.got.W, c.got.Classes,
						bytes.Equal(c.got.Images, c.images), bytes.Equal(c.got.Labels, c.labels), len(c.labels), tc.classes)
				}
			}
		})
	}
}

// TestCIFARPythonWriter reads the files of scripts/gen-cifar.py, an
// independent writer of the layout, and checks every pixel and label
// against the script's formulas.
func TestCIFARPythonWriter(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 to run scripts/gen-cifar.py")
	}
	for _, tc := range []struct {
		name    string
		variant int
		opts    LoadOptions
		sub     string
		label   func(i, s int) int
		names   func(k int) string
		classes int
	}{
		{"variant=10", 10, LoadOptions{}, "", func(i, s int) int { return (i*7 + s*3) % 10 }, func(k int) string { return fmt.Sprint("class", k) }, 10},
		{"variant=10,sub=yes", 10, LoadOptions{}, "cifar-10-batches-bin", func(i, s int) int { return (i*7 + s*3) % 10 }, func(k int) string { return fmt.Sprint("class", k) }, 10},
		{"variant=100,labels=fine", 100, LoadOptions{Labels: "fine"}, "", func(i, s int) int { return (i*13 + s*5) % 100 }, func(k int) string { return fmt.Sprint("fine", k) }, 100},
		{"variant=100,labels=coarse", 100, LoadOptions{Labels: "coarse"}, "cifar-100-binary", func(i, s int) int { return (i*3 + s) % 20 }, func(k int) string { return fmt.Sprint("coarse", k) }, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, tc.sub)
			const nTrain, nTest = 11, 4
			out, err := exec.Command(py, "../../scripts/gen-cifar.py", "--variant", fmt.Sprint(tc.variant), "--out", dir,
				"--train", fmt.Sprint(nTrain), "--test", fmt.Sprint(nTest), "--batches", "3").CombinedOutput()
			if err != nil {
				t.Fatalf("gen-cifar.py: %v\n%s", err, out)
			}
			train, test, _, err := Load(parent, tc.opts)
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			for s, d := range []*Dataset{train, test} {
				if d.N != []int{nTrain, nTest}[s] || d.C != 3 || d.H != 32 || d.W != 32 || d.Classes != tc.classes {
					t.Fatalf("Load %s = %d images %d×%d×%d in %d classes, want %d 3×32×32 in %d",
						d.Name, d.N, d.C, d.H, d.W, d.Classes, []int{nTrain, nTest}[s], tc.classes)
				}
				bad := 0
				for i := range d.N {
					if got, want := int(d.Labels[i]), tc.label(i, s); got != want {
						t.Errorf("%s label %d = %d, want %d", d.Name, i, got, want)
					}
					for c := range 3 {
						for y := range 32 {
							for x := range 32 {
								got := d.Images[((i*3+c)*32+y)*32+x]
								want := byte((i*131 + c*71 + y*37 + x*11 + s*29) % 256)
								if got != want && bad < 5 {
									bad++
									t.Errorf("%s image %d pixel c=%d y=%d x=%d = %d, want %d", d.Name, i, c, y, x, got, want)
								}
							}
						}
					}
				}
				if len(d.ClassNames) != tc.classes || d.ClassNames[0] != tc.names(0) || d.ClassNames[tc.classes-1] != tc.names(tc.classes-1) {
					t.Errorf("%s class names = %q, want %s … %s", d.Name, d.ClassNames, tc.names(0), tc.names(tc.classes-1))
				}
			}
		})
	}
}

func TestReadCIFARBad(t *testing.T) {
	images, coarse, fine := randomCIFAR(3, 3)
	rec := func(v CIFARVariant, labels ...[]byte) []byte {
		var buf bytes.Buffer
		if err := WriteCIFAR(&buf, images, labels...); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	good10 := rec(CIFAR10, []byte{1, 2, 3})
	for _, tc := range []struct {
		name string
		v    CIFARVariant
		file []byte
		want string
	}{
		{"case=empty", CIFAR10, nil, "empty file at offset 0"},
		{"case=truncated", CIFAR10, good10[:len(good10)-1], "2 3073-byte cifar10 records and 3072 bytes more: a truncated or foreign file, incomplete record at offset 6146"},
		{"case=trailing", CIFAR10, append(append([]byte(nil), good10...), 7), "incomplete record at offset 9219"},
		{"case=label-10", CIFAR10, rec(CIFAR10, []byte{1, 10, 3}), "label 10 of record 1 at offset 3073 is not below 10"},
		{"case=fine-100", CIFAR100Fine, rec(CIFAR100Fine, coarse, []byte{0, 0, 100}), "label 100 of record 2 at offset 6149 is not below 100"},
		{"case=coarse-20", CIFAR100Coarse, rec(CIFAR100Coarse, []byte{20, 0, 0}, fine), "label 20 of record 0 at offset 0 is not below 20"},
		{"case=cifar100-as-10", CIFAR10, rec(CIFAR100Fine, coarse, fine), "incomplete record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "batch.bin", tc.file)
			got, err := ReadCIFAR(p, tc.v)
			if err == nil {
				t.Fatalf("ReadCIFAR = %d images, want an error containing %q", got.N, tc.want)
			}
			if msg := err.Error(); !errors.Is(err, ErrCIFAR) || !strings.Contains(msg, p) || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "offset") {
				t.Errorf("ReadCIFAR error = %q, want one wrapping ErrCIFAR naming %s, the offset and saying %q", msg, p, tc.want)
			}
		})
	}

	t.Run("case=names-count", func(t *testing.T) {
		dir := t.TempDir()
		writeCIFARFile(t, filepath.Join(dir, "data_batch_1.bin"), images, []byte{1, 2, 3})
		writeCIFARFile(t, filepath.Join(dir, "test_batch.bin"), images, []byte{1, 2, 3})
		if err := os.WriteFile(filepath.Join(dir, CIFAR10MetaFile), []byte("a\nb\n\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := Load(dir, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "2 class names, want 10") {
			t.Errorf("Load = %v, want an error about 2 class names", err)
		}
	})
	t.Run("case=bad-batch-2", func(t *testing.T) {
		dir := t.TempDir()
		writeCIFARFile(t, filepath.Join(dir, "data_batch_1.bin"), images, []byte{1, 2, 3})
		if err := os.WriteFile(filepath.Join(dir, "data_batch_2.bin"), good10[:100], 0o644); err != nil {
			t.Fatal(err)
		}
		writeCIFARFile(t, filepath.Join(dir, "test_batch.bin"), images, []byte{1, 2, 3})
		if _, _, _, err := Load(dir, LoadOptions{}); !errors.Is(err, ErrCIFAR) || !strings.Contains(err.Error(), "data_batch_2.bin") {
			t.Errorf("Load = %v, want an ErrCIFAR naming data_batch_2.bin", err)
		}
	})
}

// TestReadCIFARAllocation checks that the sizes are checked before the
// images are allocated, and that a good file costs its size and a chunk.
func TestReadCIFARAllocation(t *testing.T) {
	const n = 2000 // 6 MB
	images, _, fine := randomCIFAR(n, 4)
	for i := range fine {
		fine[i] %= 10
	}
	var buf bytes.Buffer
	if err := WriteCIFAR(&buf, images, fine); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for _, tc := range []struct {
		name   string
		files  map[string][]byte
		limit  uint64
		hasErr bool
	}{
		{"case=good", map[string][]byte{"data_batch_1.bin": good, "test_batch.bin": good[:3073]},
			uint64(len(good)) + n + 1<<20 + 64<<10, false},
		// The second batch's size is wrong: nothing is allocated for the first.
		{"case=second-bad", map[string][]byte{"data_batch_1.bin": good, "data_batch_2.bin": good[:len(good)-1], "test_batch.bin": good[:3073]},
			64 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, _, err := Load(dir, LoadOptions{})
			runtime.ReadMemStats(&after)
			if (err != nil) != tc.hasErr {
				t.Fatalf("Load = %v, want error %v", err, tc.hasErr)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > tc.limit {
				t.Errorf("Load allocated %d bytes, want ≤ %d (error %v)", d, tc.limit, err)
			}
		})
	}
}

// FuzzDecodeCIFAR feeds arbitrary bytes to the CIFAR decoder in each
// variant and checks that it never panics, that its errors wrap ErrCIFAR,
// and that what it accepts re-encodes as the input.
//
//	go test -run '^$' -fuzz FuzzDecodeCIFAR -fuzztime 30s ./host/data
func FuzzDecodeCIFAR(f *testing.F) {
	images, coarse, fine := randomCIFAR(2, 5)
	var buf bytes.Buffer
	WriteCIFAR(&buf, images, []byte{3, 9})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteCIFAR(&buf, images, coarse, fine)
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:3074])
	f.Add(buf.Bytes()[:100])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var kept [3]*Dataset
		for _, v := range []CIFARVariant{CIFAR10, CIFAR100Fine, CIFAR100Coarse} {
			d, err := DecodeCIFAR("fuzz", bytes.NewReader(b), int64(len(b)), v)
			if err != nil {
				if !errors.Is(err, ErrCIFAR) {
					t.Fatalf("DecodeCIFAR(%s) error %v does not wrap ErrCIFAR", v, err)
				}
				continue
			}
			if err := d.Check(); err != nil {
				t.Fatalf("DecodeCIFAR(%s) accepted %d bytes: %v", v, len(b), err)
			}
			kept[v] = d
		}
		var again bytes.Buffer
		switch {
		case kept[CIFAR10] != nil:
			if err := WriteCIFAR(&again, kept[CIFAR10].Images, kept[CIFAR10].Labels); err != nil {
				t.Fatal(err)
			}
		case kept[CIFAR100Fine] != nil && kept[CIFAR100Coarse] != nil:
			if err := WriteCIFAR(&again, kept[CIFAR100Fine].Images, kept[CIFAR100Coarse].Labels, kept[CIFAR100Fine].Labels); err != nil {
				t.Fatal(err)
			}
		default:
			return
		}
		if !bytes.Equal(again.Bytes(), b) {
			t.Fatalf("DecodeCIFAR accepted %d bytes that re-encode differently", len(b))
		}
	})
}

// BenchmarkLoadCIFAR loads a CIFAR-10-sized folder (5 batches of 10 000
// training images, 10 000 test images; 184 MB written to a temporary
// folder, so read from the page cache).
//
//	go test -run '^$' -bench LoadCIFAR -benchtime 5x ./host/data
func BenchmarkLoadCIFAR(b *testing.B) {
	dir := b.TempDir()
	images, _, labels := randomCIFAR(10000, 6)
	for i := range labels {
		labels[i] %= 10
	}
	for _, name := range []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"} {
		writeCIFARFile(b, filepath.Join(dir, name), images, labels)
	}
	if _, _, _, err := Load(dir, LoadOptions{}); err != nil { // warm the page cache
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		train, _, _, err := Load(dir, LoadOptions{})
		if err != nil || train.N != 50000 || !slices.Equal(train.Labels[:10000], labels) {
			b.Fatalf("Load = %v", err)
		}
	}
	b.ReportMetric(float64(60000*b.N)/b.Elapsed().Seconds(), "images/s")
}
