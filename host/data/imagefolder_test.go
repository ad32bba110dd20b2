package data

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// toImage is image i of d as an image.Image: Gray for one channel, NRGBA
// (opaque) for three.
func toImage(d *Dataset, i int) image.Image {
	plane := d.H * d.W
	x := d.Images[i*d.C*plane : (i+1)*d.C*plane]
	if d.C == 1 {
		g := image.NewGray(image.Rect(0, 0, d.W, d.H))
		copy(g.Pix, x)
		return g
	}
	m := image.NewNRGBA(image.Rect(0, 0, d.W, d.H))
	for p := range plane {
		m.Pix[4*p], m.Pix[4*p+1], m.Pix[4*p+2], m.Pix[4*p+3] = x[p], x[plane+p], x[2*plane+p], 255
	}
	return m
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeImageFolder writes d as PNGs under dir/sub/<class name>/<i>.png,
// file names in the order of d within each class.
func writeImageFolder(t testing.TB, dir, sub string, d *Dataset, names []string) {
	t.Helper()
	for i := range d.N {
		p := filepath.Join(dir, sub, names[d.Labels[i]], fmt.Sprintf("%06d.png", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, encodePNG(t, toImage(d, i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sortedByLabel is randomSet with the labels in increasing order, the
// order an image folder is read in.
func sortedByLabel(n, c, h, w, classes int, seed uint64) *Dataset {
	d := randomSet(n, c, h, w, classes, seed)
	for i := range d.Labels {
		d.Labels[i] = uint8(i * classes / n)
	}
	return d
}

// TestImageFolderRoundTrip writes sets as PNG folders and reads them back
// bit for bit, gray as C=1 and colour as C=3, with and without test/.
func TestImageFolderRoundTrip(t *testing.T) {
	names := []string{"cat", "dog", "emu"}
	for _, tc := range []struct {
		name    string
		c       int
		test    bool
		workers int
	}{
		{"C=1,test=yes", 1, true, 0},
		{"C=3,test=yes,workers=1", 3, true, 1},
		{"C=3,test=no,workers=3", 3, false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			train, test := sortedByLabel(20, tc.c, 5, 7, 3, 1), sortedByLabel(6, tc.c, 5, 7, 3, 2)
			writeImageFolder(t, dir, "train", train, names)
			if tc.test {
				writeImageFolder(t, dir, "test", test, names)
			}
			var calls [][2]int
			var mu sync.Mutex
			gotTrain, gotTest, src, err := Load(dir, LoadOptions{Workers: tc.workers, Progress: func(done, total int) {
				mu.Lock()
				calls = append(calls, [2]int{done, total})
				mu.Unlock()
			}})
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			if src.Format != "imagefolder" {
				t.Errorf("Load format = %q, want imagefolder", src.Format)
			}
			if !sameSet(gotTrain, train) || strings.Join(gotTrain.ClassNames, ",") != "cat,dog,emu" {
				t.Errorf("Load train = %d images %d×%d×%d classes %q, want the written %d of %d×5×7 in cat,dog,emu",
					gotTrain.N, gotTrain.C, gotTrain.H, gotTrain.W, gotTrain.ClassNames, train.N, tc.c)
			}
			if tc.test != (gotTest != nil) || tc.test && !sameSet(gotTest, test) {
				t.Errorf("Load test = %v, want the written set: %v", gotTest, tc.test)
			}
			total := train.N
			if tc.test {
				total += test.N
			}
			if len(calls) == 0 || calls[len(calls)-1] != [2]int{total, total} {
				t.Fatalf("Progress calls %v, want them to end with (%d, %d)", calls, total, total)
			}
			for i := 1; i < len(calls); i++ {
				if calls[i][0] <= calls[i-1][0] {
					t.Errorf("Progress calls %v do not increase", calls)
				}
			}
		})
	}
}

// TestImageFolderMixed: one colour image makes the set RGB, the gray ones
// repeated in the three channels; JPEGs decode, gray JPEG as gray.
func TestImageFolderMixed(t *testing.T) {
	dir := t.TempDir()
	gray := sortedByLabel(4, 1, 6, 6, 2, 3)
	writeImageFolder(t, dir, "train", gray, []string{"a", "b"})
	rgb := randomSet(1, 3, 6, 6, 2, 4)
	if err := os.WriteFile(filepath.Join(dir, "train", "b", "zz.PNG"), encodePNG(t, toImage(rgb, 0)), 0o644); err != nil {
		t.Fatal(err)
	}
	train, _, _, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if train.C != 3 || train.N != 5 {
		t.Fatalf("Load = %d images of %d channels, want 5 of 3", train.N, train.C)
	}
	for i := range 4 {
		for c := range 3 {
			if got, want := train.Images[(i*3+c)*36:(i*3+c+1)*36], gray.Images[i*36:(i+1)*36]; !bytes.Equal(got, want) {
				t.Errorf("gray image %d channel %d = %v, want %v", i, c, got, want)
			}
		}
	}
	if !bytes.Equal(train.Images[4*108:], rgb.Images) {
		t.Errorf("colour image = %v, want %v", train.Images[4*108:], rgb.Images)
	}

	t.Run("format=jpeg", func(t *testing.T) {
		dir := t.TempDir()
		for i, m := range []image.Image{image.NewGray(image.Rect(0, 0, 16, 16)), image.NewGray(image.Rect(0, 0, 16, 16))} {
			m.(*image.Gray).Pix[5] = 200
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 95}); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "train", fmt.Sprint("class", i), "x.jpg")
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		train, _, _, err := Load(dir, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if train.C != 1 || train.H != 16 || train.N != 2 || train.Images[5] < 150 || train.Images[100] > 30 {
			t.Errorf("Load(gray JPEGs) = %d of %d×%d×%d, pixels %d and %d; want 2 of 1×16×16, about 200 and 0",
				train.N, train.C, train.H, train.W, train.Images[5], train.Images[100])
		}
	})
}

// TestImageFolderResize: Size scales the centre square of each image.
func TestImageFolderResize(t *testing.T) {
	dir := t.TempDir()
	// 12×4: red, green and blue thirds; its centre square is green.
	wide := image.NewNRGBA(image.Rect(0, 0, 12, 4))
	for y := range 4 {
		for x := range 12 {
			c := color.NRGBA{A: 255}
			switch x / 4 {
			case 0:
				c.R = 255
			case 1:
				c.G = 255
			default:
				c.B = 255
			}
			wide.Set(x, y, c)
		}
	}
	// 40×60 of one colour, scaled down to 4×4 the colour stays.
	tall := image.NewNRGBA(image.Rect(0, 0, 40, 60))
	for p := 0; p < len(tall.Pix); p += 4 {
		copy(tall.Pix[p:], []byte{10, 100, 250, 255})
	}
	for _, f := range []struct {
		path string
		m    image.Image
	}{{"train/a/wide.png", wide}, {"train/b/tall.png", tall}} {
		p := filepath.Join(dir, f.path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, encodePNG(t, f.m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	train, _, _, err := Load(dir, LoadOptions{Size: 4})
	if err != nil {
		t.Fatal(err)
	}
	if train.C != 3 || train.H != 4 || train.W != 4 {
		t.Fatalf("Load(size 4) = %d×%d×%d images, want 3×4×4", train.C, train.H, train.W)
	}
	for i, want := range [][3]int{{0, 255, 0}, {10, 100, 250}} {
		for c := range 3 {
			for p := range 16 {
				got := int(train.Images[(i*3+c)*16+p])
				if got < want[c]-1 || got > want[c]+1 {
					t.Fatalf("image %d channel %d pixel %d = %d, want %d ± 1", i, c, p, got, want[c])
				}
			}
		}
	}
	// Without a size, images of different sizes are an error naming one.
	if _, _, _, err := Load(dir, LoadOptions{}); !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "tall.png: 40×60 pixels") {
		t.Errorf("Load(no size) = %v, want an ErrImage naming tall.png and its size", err)
	}
}

// pngHeader is a PNG signature and IHDR chunk declaring w×h 8-bit gray
// pixels, then an IDAT chunk with the start of a zlib stream, enough for
// a decoder to allocate the image before it finds the data short.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		c := append([]byte(typ), data...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
		b = append(b, c...)
		b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(c))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	chunk("IHDR", append(ihdr, 8, 0, 0, 0, 0))
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 64))
	zw.Flush()
	chunk("IDAT", z.Bytes())
	return b
}

func TestImageFolderBad(t *testing.T) {
	good := encodePNG(t, toImage(randomSet(1, 3, 4, 4, 2, 1), 0))
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"case=corrupt", map[string][]byte{"train/a/1.png": good, "train/b/2.png": []byte("not an image")}, "train/b/2.png: header"},
		{"case=truncated", map[string][]byte{"train/a/1.png": good, "train/b/2.png": good[:len(good)-20]}, "train/b/2.png: "},
		{"case=one-class", map[string][]byte{"train/a/1.png": good}, "1 class folders, want at least 2"},
		{"case=empty-class", map[string][]byte{"train/a/1.png": good, "train/b/notes.txt": nil}, `class folder "b" holds no .png or .jpg`},
		{"case=unknown-test-class", map[string][]byte{"train/a/1.png": good, "train/b/2.png": good, "test/c/3.png": good}, `class folder "c" is not among the 2 classes`},
		{"case=huge-header", map[string][]byte{"train/a/1.png": good, "train/b/2.png": pngHeader(20000, 20000)}, "more than 16777216"},
		{"case=header-beyond-file", map[string][]byte{"train/a/1.png": good, "train/b/2.png": pngHeader(3000, 3000)}, "declares 3000×3000 pixels, more than a 56-byte file can hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range tc.files {
				p := filepath.Join(dir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, _, _, err := Load(dir, LoadOptions{Size: 4})
			if !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want an ErrImage saying %q", err, tc.want)
			}
		})
	}
}

// TestDecodeImageAllocation: a header declaring more pixels than the file
// holds is refused before the decoder allocates them.
func TestDecodeImageAllocation(t *testing.T) {
	for _, tc := range []struct {
		name string
		file []byte
	}{
		{"case=png-4000x4000", pngHeader(4000, 4000)},
		{"case=png-65535x65535", pngHeader(65535, 65535)},
		{"case=jpeg-header-only", jpegHeader(8000, 8000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := decodeImage("x", tc.file, 32, 32, 32, make([]byte, 3*32*32))
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrImage) {
				t.Fatalf("decodeImage = %v, want an ErrImage", err)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
				t.Errorf("decodeImage allocated %d bytes, want ≤ 1 MiB (error %v)", d, err)
			}
		})
	}
}

// jpegHeader is the start of a baseline JPEG declaring w×h gray pixels:
// the header of a real 8×8 gray JPEG with the size changed, cut after the
// start of its scan, enough for a decoder to allocate the image.
func jpegHeader(w, h uint16) []byte {
	var buf bytes.Buffer
	jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), nil)
	b := buf.Bytes()
	sof := bytes.Index(b, []byte{0xff, 0xc0})
	b[sof+5], b[sof+6], b[sof+7], b[sof+8] = byte(h>>8), byte(h), byte(w>>8), byte(w)
	sos := bytes.Index(b, []byte{0xff, 0xda})
	return b[:sos+20]
}

// FuzzDecodeImage feeds arbitrary bytes to the image folder's decoder, at
// a fixed size and at the image's own size, and checks that it never
// panics and that its errors wrap ErrImage.
//
//	go test -run '^$' -fuzz FuzzDecodeImage -fuzztime 30s ./host/data
func FuzzDecodeImage(f *testing.F) {
	f.Add(encodePNG(f, toImage(randomSet(1, 3, 5, 3, 2, 1), 0)))
	f.Add(encodePNG(f, toImage(randomSet(1, 1, 8, 8, 2, 1), 0)))
	var buf bytes.Buffer
	jpeg.Encode(&buf, toImage(randomSet(1, 3, 8, 8, 2, 1), 0), nil)
	f.Add(buf.Bytes())
	f.Add(pngHeader(4000, 4000))
	f.Add(jpegHeader(100, 100))
	f.Fuzz(func(t *testing.T, b []byte) {
		dst := make([]byte, 3*8*8)
		if _, err := decodeImage("fuzz", b, 8, 8, 8, dst); err != nil && !errors.Is(err, ErrImage) {
			t.Fatalf("decodeImage(size 8) error %v does not wrap ErrImage", err)
		}
		cfg, err := imageConfig("fuzz", b)
		if err != nil || cfg.Width*cfg.Height > 1<<16 {
			return
		}
		dst = make([]byte, 3*cfg.Width*cfg.Height)
		if _, err := decodeImage("fuzz", b, 0, cfg.Height, cfg.Width, dst); err != nil && !errors.Is(err, ErrImage) {
			t.Fatalf("decodeImage(own size) error %v does not wrap ErrImage", err)
		}
	})
}

// BenchmarkLoadImageFolder decodes a folder of 2000 random 32×32 RGB PNGs
// (10 classes) with all cores, at their size and scaled to 24×24.
//
//	go test -run '^$' -bench LoadImageFolder -benchtime 3x ./host/data
func BenchmarkLoadImageFolder(b *testing.B) {
	dir := b.TempDir()
	d := randomSet(2000, 3, 32, 32, 10, 7)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range d.Labels {
		d.Labels[i] = uint8(rng.IntN(10))
	}
	writeImageFolder(b, dir, "train", d, []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"})
	for _, size := range []int{0, 24} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			for b.Loop() {
				train, _, _, err := Load(dir, LoadOptions{Size: size})
				if err != nil || train.N != 2000 {
					b.Fatalf("Load = %v", err)
				}
			}
			b.ReportMetric(float64(2000*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
