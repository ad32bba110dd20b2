package ckpt

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/cpubackend"
	"github.com/convtrain/convtrain/host/nn"
)

// stExample is a set of tensors that exercises the format: random floats,
// the special float32 values (NaN with a payload, ±0, ±Inf, denormals),
// int32 extremes, a scalar and tensors of zero elements.
func stExample() []NamedTensor {
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, 8*1*5*5)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	return []NamedTensor{
		{Name: "conv1.w", Shape: []int{8, 1, 5, 5}, F32: w},
		{Name: "conv1.b", Shape: []int{8}, F32: []float32{1, -2, 3.5, 0, 0, 0, 1e-3, -7}},
		{Name: "special", Shape: []int{3, 3}, F32: []float32{
			0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32,
			float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00001),
			math.Float32frombits(0xffbfffff), -math.MaxFloat32}},
		{Name: "labels", Shape: []int{2, 3}, I32: []int32{math.MinInt32, -1, 0, 1, 42, math.MaxInt32}},
		{Name: "scalar", Shape: []int{}, F32: []float32{3.25}},
		{Name: "empty", Shape: []int{0, 3}, F32: []float32{}},
		{Name: "empty.i", Shape: []int{4, 0}, I32: []int32{}},
		{Name: "ünïcode/name \"quoted\" <&>", Shape: []int{1}, I32: []int32{7}},
	}
}

// stSortedCopy returns ts sorted by name, as ReadSafetensors returns them.
func stSortedCopy(ts []NamedTensor) []NamedTensor {
	out := slices.Clone(ts)
	slices.SortFunc(out, func(a, b NamedTensor) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// stDiff reports the first difference between two tensor lists, comparing
// floats by their bits (so NaN payloads and −0 count), or "" if equal.
func stDiff(got, want []NamedTensor) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d tensors, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		switch {
		case g.Name != w.Name:
			return fmt.Sprintf("tensor %d is %q, want %q", i, g.Name, w.Name)
		case !slices.Equal(g.Shape, w.Shape):
			return fmt.Sprintf("%q: shape %v, want %v", g.Name, g.Shape, w.Shape)
		case (g.F32 == nil) != (w.F32 == nil) || (g.I32 == nil) != (w.I32 == nil):
			return fmt.Sprintf("%q: F32 set %v I32 set %v, want %v %v", g.Name, g.F32 != nil, g.I32 != nil, w.F32 != nil, w.I32 != nil)
		case len(g.F32) != len(w.F32) || len(g.I32) != len(w.I32):
			return fmt.Sprintf("%q: %d+%d elements, want %d+%d", g.Name, len(g.F32), len(g.I32), len(w.F32), len(w.I32))
		}
		for j := range g.F32 {
			if math.Float32bits(g.F32[j]) != math.Float32bits(w.F32[j]) {
				return fmt.Sprintf("%q[%d] = %g (%#08x), want %g (%#08x)", g.Name, j, g.F32[j], math.Float32bits(g.F32[j]), w.F32[j], math.Float32bits(w.F32[j]))
			}
		}
		for j := range g.I32 {
			if g.I32[j] != w.I32[j] {
				return fmt.Sprintf("%q[%d] = %d, want %d", g.Name, j, g.I32[j], w.I32[j])
			}
		}
	}
	return ""
}

func stWrite(t testing.TB, ts []NamedTensor, meta map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteSafetensors(&b, ts, meta); err != nil {
		t.Fatalf("WriteSafetensors: %v", err)
	}
	return b.Bytes()
}

func TestSafetensorsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tensors []NamedTensor
		meta    map[string]string
	}{
		{"tensors=none,meta=nil", nil, nil},
		{"tensors=none,meta=1", nil, map[string]string{"epoch": "3"}},
		{"tensors=example,meta=nil", stExample(), nil},
		{"tensors=example,meta=3", stExample(), map[string]string{"spec": "conv8x5x5,relu", "rng": "\x00\x01 ünï", "": "empty key"}},
		{"tensors=one-f32", []NamedTensor{{Name: "a", Shape: []int{1}, F32: []float32{1}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := stWrite(t, tc.tensors, tc.meta)
			hlen := binary.LittleEndian.Uint64(data)
			if (8+hlen)%8 != 0 {
				t.Errorf("header length %d: buffer starts at %d, not 8-byte aligned", hlen, 8+hlen)
			}
			got, meta, err := ReadSafetensors(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatalf("ReadSafetensors: %v", err)
			}
			if d := stDiff(got, stSortedCopy(tc.tensors)); d != "" {
				t.Errorf("ReadSafetensors(WriteSafetensors(x)): %s", d)
			}
			wantMeta := tc.meta
			if wantMeta == nil {
				wantMeta = map[string]string{}
			}
			if !reflect.DeepEqual(meta, wantMeta) {
				t.Errorf("metadata = %q, want %q", meta, wantMeta)
			}

			// Deterministic: the same tensors in another order give the same bytes.
			rev := slices.Clone(tc.tensors)
			slices.Reverse(rev)
			if again := stWrite(t, rev, tc.meta); !bytes.Equal(again, data) {
				t.Errorf("WriteSafetensors of the reversed list differs from the original's")
			}
		})
	}
}

// TestWriteSafetensorsLayout checks the exact bytes of a small file against
// the format: length, sorted JSON, space padding, little-endian data.
func TestWriteSafetensorsLayout(t *testing.T) {
	data := stWrite(t, []NamedTensor{
		{Name: "b", Shape: []int{2}, I32: []int32{-2, 258}},
		{Name: "a", Shape: []int{1}, F32: []float32{1}},
	}, map[string]string{"k": "v"})
	header := `{"__metadata__":{"k":"v"},"a":{"data_offsets":[0,4],"dtype":"F32","shape":[1]},"b":{"data_offsets":[4,12],"dtype":"I32","shape":[2]}}`
	for len(header)%8 != 0 {
		header += " "
	}
	var want []byte
	want = binary.LittleEndian.AppendUint64(want, uint64(len(header)))
	want = append(want, header...)
	want = append(want, 0x00, 0x00, 0x80, 0x3f) // 1.0f
	want = append(want, 0xfe, 0xff, 0xff, 0xff) // -2
	want = append(want, 0x02, 0x01, 0x00, 0x00) // 258
	if !bytes.Equal(data, want) {
		t.Errorf("WriteSafetensors =\n%q\nwant\n%q", data, want)
	}
}

func TestWriteSafetensorsErrors(t *testing.T) {
	f := []float32{1, 2}
	for _, tc := range []struct {
		name    string
		tensors []NamedTensor
		meta    map[string]string
		want    string
	}{
		{"empty-name", []NamedTensor{{Name: "", Shape: []int{2}, F32: f}}, nil, "empty name"},
		{"reserved-name", []NamedTensor{{Name: "__metadata__", Shape: []int{2}, F32: f}}, nil, "reserved"},
		{"duplicate", []NamedTensor{{Name: "a", Shape: []int{2}, F32: f}, {Name: "a", Shape: []int{2}, F32: f}}, nil, "appears twice"},
		{"bad-utf8-name", []NamedTensor{{Name: "a\xff", Shape: []int{2}, F32: f}}, nil, "UTF-8"},
		{"bad-utf8-meta", nil, map[string]string{"k": "\xfe"}, "UTF-8"},
		{"no-data", []NamedTensor{{Name: "a", Shape: []int{0}}}, nil, "exactly one of F32 and I32"},
		{"both-data", []NamedTensor{{Name: "a", Shape: []int{2}, F32: f, I32: []int32{1, 2}}}, nil, "exactly one of F32 and I32"},
		{"length", []NamedTensor{{Name: "a", Shape: []int{3}, F32: f}}, nil, "2 elements for shape [3], want 3"},
		{"scalar-length", []NamedTensor{{Name: "a", F32: f}}, nil, "2 elements for shape [], want 1"},
		{"negative-dim", []NamedTensor{{Name: "a", Shape: []int{-1, -2}, F32: f}}, nil, "negative dimension"},
		{"overflow", []NamedTensor{{Name: "a", Shape: []int{1 << 40, 1 << 40}, F32: f}}, nil, "overflows"},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			var b bytes.Buffer
			err := WriteSafetensors(&b, tc.tensors, tc.meta)
			if !errors.Is(err, ErrSafetensorsFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteSafetensors = %v, want an ErrSafetensorsFormat containing %q", err, tc.want)
			}
			if b.Len() != 0 {
				t.Errorf("WriteSafetensors wrote %d bytes before failing, want 0", b.Len())
			}
		})
	}
}

// errAfterWriter accepts n bytes, then fails.
type errAfterWriter struct{ n int }

var errDiskFull = errors.New("disk full (simulated)")

func (w *errAfterWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteSafetensorsWriterError(t *testing.T) {
	full := len(stWrite(t, stExample(), nil))
	for _, n := range []int{0, 7, 100, full - 1} {
		t.Run(fmt.Sprintf("failAfter=%d", n), func(t *testing.T) {
			err := WriteSafetensors(&errAfterWriter{n}, stExample(), nil)
			if !errors.Is(err, errDiskFull) {
				t.Errorf("WriteSafetensors = %v, want the writer's error", err)
			}
		})
	}
}

// stFile builds a file from a raw header and buffer.
func stFile(header string, buf []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), buf...)
}

// stHostile lists malformed files, each with a part of the error it must
// give. Also the corrupt half of the fuzz seeds.
func stHostile() []struct {
	name string
	data []byte
	want string
} {
	e := func(dtype, shape string, b, en int) string {
		return fmt.Sprintf(`{"dtype":%s,"shape":%s,"data_offsets":[%d,%d]}`, dtype, shape, b, en)
	}
	buf8 := make([]byte, 8)
	hugeLen := binary.LittleEndian.AppendUint64(nil, 1<<62)
	return []struct {
		name string
		data []byte
		want string
	}{
		{"empty-file", nil, "shorter than the 8-byte header length"},
		{"short-file", []byte{1, 0, 0}, "shorter than the 8-byte header length"},
		{"header-beyond-file", append(slices.Clone(hugeLen), "{}"...), "exceeds the 2 bytes after the length field"},
		{"header-length-max-uint64", append(binary.LittleEndian.AppendUint64(nil, math.MaxUint64), "{}"...), "exceeds"},
		{"header-empty", stFile("", nil), "too short for a JSON object"},
		{"json-syntax", stFile(`{"a":`, nil), "header"},
		{"json-not-object", stFile(`[1,2,3]`, nil), "want a JSON object"},
		{"json-null", stFile(`null`, nil), "want a JSON object"},
		{"json-trailing", stFile(`{} {}`, nil), "trailing data"},
		{"json-trailing-garbage", stFile(`{}xx`, nil), "header"},
		{"duplicate-name", stFile(`{"a":`+e(`"F32"`, "[1]", 0, 4)+`,"a":`+e(`"F32"`, "[1]", 4, 8)+`}`, buf8), `key "a" appears twice`},
		{"duplicate-name-escaped", stFile(`{"a":`+e(`"F32"`, "[1]", 0, 4)+`,"\u0061":`+e(`"F32"`, "[1]", 4, 8)+`}`, buf8), `key "a" appears twice`},
		{"duplicate-field", stFile(`{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, buf8[:4]), `key "dtype" appears twice`},
		{"entry-not-object", stFile(`{"a":[1]}`, nil), "want a JSON object"},
		{"unknown-field", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, buf8[:4]), `unknown field "x"`},
		{"missing-dtype", stFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, buf8[:4]), `missing field "dtype"`},
		{"missing-shape", stFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, buf8[:4]), `missing field "shape"`},
		{"missing-offsets", stFile(`{"a":{"dtype":"F32","shape":[1]}}`, buf8[:4]), `missing field "data_offsets"`},
		{"dtype-unknown", stFile(`{"a":`+e(`"Q7"`, "[1]", 0, 4)+`}`, buf8[:4]), `dtype "Q7" is not supported`},
		{"dtype-f16", stFile(`{"a":`+e(`"F16"`, "[2]", 0, 4)+`}`, buf8[:4]), `dtype "F16" is not supported`},
		{"dtype-lowercase", stFile(`{"a":`+e(`"f32"`, "[1]", 0, 4)+`}`, buf8[:4]), `dtype "f32" is not supported`},
		{"dtype-number", stFile(`{"a":`+e(`32`, "[1]", 0, 4)+`}`, buf8[:4]), "not a string"},
		{"shape-null", stFile(`{"a":`+e(`"F32"`, "null", 0, 4)+`}`, buf8[:4]), "not an array"},
		{"shape-float", stFile(`{"a":`+e(`"F32"`, "[1.5]", 0, 4)+`}`, buf8[:4]), "shape"},
		{"shape-string", stFile(`{"a":`+e(`"F32"`, `["1"]`, 0, 4)+`}`, buf8[:4]), "shape"},
		{"shape-negative", stFile(`{"a":`+e(`"F32"`, "[-1,-4]", 0, 16)+`}`, make([]byte, 16)), "negative dimension"},
		{"shape-overflow", stFile(`{"a":`+e(`"F32"`, "[4294967296,4294967296]", 0, 0)+`}`, nil), "overflows"},
		{"shape-overflow-int64", stFile(`{"a":`+e(`"F32"`, "[99999999999999999999]", 0, 0)+`}`, nil), "shape"},
		{"shape-wrapping-to-small", stFile(`{"a":`+e(`"F32"`, "[4611686018427387904,4]", 0, 0)+`}`, nil), "overflows"},
		{"shape-vs-offsets", stFile(`{"a":`+e(`"F32"`, "[3]", 0, 8)+`}`, buf8), "shape [3] needs 12 bytes of F32 but data_offsets [0,8] span 8"},
		{"huge-shape-tiny-file", stFile(`{"a":`+e(`"F32"`, "[1000000000]", 0, 8)+`}`, buf8), "needs 4000000000 bytes"},
		{"offsets-one", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, buf8[:4]), "want two offsets"},
		{"offsets-three", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, buf8), "want two offsets"},
		{"offsets-negative", stFile(`{"a":`+e(`"F32"`, "[1]", -4, 0)+`}`, buf8), "not 0 ≤ begin ≤ end"},
		{"offsets-reversed", stFile(`{"a":`+e(`"F32"`, "[1]", 8, 4)+`}`, buf8), "not 0 ≤ begin ≤ end"},
		{"offsets-beyond-buffer", stFile(`{"a":`+e(`"F32"`, "[2]", 4, 12)+`}`, buf8), "end beyond the 8-byte buffer"},
		{"offsets-huge", stFile(`{"a":`+e(`"F32"`, "[1]", 1<<62, 1<<62+4)+`}`, buf8), "end beyond"},
		{"offsets-overlap", stFile(`{"a":`+e(`"F32"`, "[2]", 0, 8)+`,"b":`+e(`"F32"`, "[1]", 4, 8)+`}`, buf8), `overlaps tensor "a"`},
		{"offsets-same", stFile(`{"a":`+e(`"F32"`, "[2]", 0, 8)+`,"b":`+e(`"I32"`, "[2]", 0, 8)+`}`, buf8), "overlaps"},
		{"offsets-gap", stFile(`{"a":`+e(`"F32"`, "[1]", 0, 4)+`,"b":`+e(`"F32"`, "[1]", 8, 12)+`}`, make([]byte, 12)), "gap of 4 bytes in the buffer at offset 4"},
		{"offsets-gap-at-start", stFile(`{"a":`+e(`"F32"`, "[1]", 4, 8)+`}`, buf8), "gap of 4 bytes in the buffer at offset 0"},
		{"trailing-bytes", stFile(`{"a":`+e(`"F32"`, "[1]", 0, 4)+`}`, buf8), "tensors end at buffer offset 4 but the buffer has 8 bytes"},
		{"no-tensors-trailing", stFile(`{}`, buf8), "tensors end at buffer offset 0 but the buffer has 8 bytes"},
		{"truncated-data", stFile(`{"a":`+e(`"F32"`, "[2]", 0, 8)+`}`, buf8[:5]), "end beyond the 5-byte buffer"},
		{"metadata-not-object", stFile(`{"__metadata__":"x"}`, nil), "__metadata__"},
		{"metadata-number", stFile(`{"__metadata__":{"epoch":3}}`, nil), `value of "epoch" is 3, not a string`},
		{"metadata-nested", stFile(`{"__metadata__":{"a":{"b":"c"}}}`, nil), "not a string"},
		{"metadata-duplicate", stFile(`{"__metadata__":{"a":"1","a":"2"}}`, nil), `key "a" appears twice`},
		{"metadata-twice", stFile(`{"__metadata__":{},"__metadata__":{}}`, nil), "appears twice"},
		{"deep-nesting", stFile(`{"a":`+strings.Repeat("[", 20000)+strings.Repeat("]", 20000)+`}`, nil), "header"},
	}
}

func TestReadSafetensorsRejects(t *testing.T) {
	for _, tc := range stHostile() {
		t.Run("case="+tc.name, func(t *testing.T) {
			ts, meta, err := ReadSafetensors(bytes.NewReader(tc.data), int64(len(tc.data)))
			if !errors.Is(err, ErrSafetensorsFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadSafetensors = %v, want an ErrSafetensorsFormat containing %q", err, tc.want)
			}
			if ts != nil || meta != nil {
				t.Errorf("ReadSafetensors returned %d tensors and metadata %v with its error, want nil", len(ts), meta)
			}
		})
	}
}

// TestReadSafetensorsAcceptsVariants checks inputs that other writers
// produce and the format allows: any key order, white space, no padding,
// unsorted offsets, zero-size tensors anywhere, empty metadata.
func TestReadSafetensorsAcceptsVariants(t *testing.T) {
	one := math.Float32bits(1)
	buf := binary.LittleEndian.AppendUint32(nil, one)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(0xfffffff9)) // int32 −7
	for _, tc := range []struct{ name, header string }{
		{"compact", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[],"data_offsets":[4,8]}}`},
		{"spaces", " \n{ \"b\" : {\"shape\":[ ],\"data_offsets\":[4,8],\"dtype\":\"I32\"},\t\"a\":{\"data_offsets\":[0,4],\"shape\":[1],\"dtype\":\"F32\"} }     "},
		{"metadata-empty", `{"__metadata__":{},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[],"data_offsets":[4,8]}}`},
		{"zero-size-between", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"z":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]},"b":{"dtype":"I32","shape":[],"data_offsets":[4,8]}}`},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			data := stFile(tc.header, buf)
			got, meta, err := ReadSafetensors(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatalf("ReadSafetensors: %v", err)
			}
			want := []NamedTensor{{Name: "a", Shape: []int{1}, F32: []float32{1}}, {Name: "b", Shape: []int{}, I32: []int32{-7}}}
			if tc.name == "zero-size-between" {
				want = append(want, NamedTensor{Name: "z", Shape: []int{0, 5}, F32: []float32{}})
			}
			if d := stDiff(got, want); d != "" {
				t.Errorf("ReadSafetensors: %s", d)
			}
			if meta == nil || len(meta) != 0 {
				t.Errorf("metadata = %#v, want an empty map", meta)
			}
		})
	}
}

// TestReadSafetensorsSizeLies checks a reader whose stated size is larger
// than its data, and data cut at every length.
func TestReadSafetensorsSizeLies(t *testing.T) {
	data := stWrite(t, stExample(), map[string]string{"a": "b"})
	for _, size := range []int64{int64(len(data)) + 1, 1 << 40, math.MaxInt64} {
		_, _, err := ReadSafetensors(bytes.NewReader(data), size)
		if !errors.Is(err, ErrSafetensorsFormat) || !strings.Contains(err.Error(), "shorter than its stated size") {
			t.Errorf("ReadSafetensors(size=%d of %d) = %v, want a stated-size error", size, len(data), err)
		}
	}
	if _, _, err := ReadSafetensors(bytes.NewReader(data), -1); !errors.Is(err, ErrSafetensorsFormat) {
		t.Errorf("ReadSafetensors(size=-1) = %v, want ErrSafetensorsFormat", err)
	}
	for n := range len(data) {
		if _, _, err := ReadSafetensors(bytes.NewReader(data[:n]), int64(n)); err == nil {
			t.Fatalf("ReadSafetensors(first %d of %d bytes) succeeded, want an error", n, len(data))
		}
	}
}

// failingReaderAt fails every read at or beyond off.
type failingReaderAt struct {
	r   io.ReaderAt
	off int64
}

var errDevice = errors.New("device error (simulated)")

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.off {
		return 0, errDevice
	}
	return f.r.ReadAt(p, off)
}

func TestReadSafetensorsReaderError(t *testing.T) {
	data := stWrite(t, stExample(), nil)
	hlen := int64(binary.LittleEndian.Uint64(data))
	for _, off := range []int64{0, 8, 8 + hlen, int64(len(data)) - 1} {
		// Keep the last byte readable so the failure is met where stated.
		fr := lastByteOK{failingReaderAt{bytes.NewReader(data), off}, int64(len(data)), bytes.NewReader(data)}
		_, _, err := ReadSafetensors(fr, int64(len(data)))
		if !errors.Is(err, errDevice) {
			t.Errorf("ReadSafetensors(reader failing at %d) = %v, want the reader's error", off, err)
		}
	}
}

// lastByteOK serves reads of the final byte from ok, others from r.
type lastByteOK struct {
	r    io.ReaderAt
	size int64
	ok   io.ReaderAt
}

func (l lastByteOK) ReadAt(p []byte, off int64) (int, error) {
	if off == l.size-1 && len(p) == 1 {
		return l.ok.ReadAt(p, off)
	}
	return l.r.ReadAt(p, off)
}

// zeroReaderAt is a file of size zero bytes that takes no memory.
type zeroReaderAt struct{ size int64 }

func (z zeroReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= z.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.size-off))
	clear(p[:n])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestReadSafetensorsHeaderCap checks that a header length within a large
// file but beyond the 100 MB cap is rejected before it is read.
func TestReadSafetensorsHeaderCap(t *testing.T) {
	r := stHeaderLen{zeroReaderAt{1 << 40}, stMaxHeader + 1}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := ReadSafetensors(r, 1<<40)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrSafetensorsFormat) || !strings.Contains(err.Error(), "exceeds the limit of 100000000 bytes") {
		t.Errorf("ReadSafetensors(header length %d) = %v, want a limit error", stMaxHeader+1, err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Errorf("ReadSafetensors allocated %d bytes before rejecting the header length, want ≤ 64 KiB", got)
	}
}

// stHeaderLen is r with the first 8 bytes replaced by n, little-endian.
type stHeaderLen struct {
	r io.ReaderAt
	n uint64
}

func (h stHeaderLen) ReadAt(p []byte, off int64) (int, error) {
	k, err := h.r.ReadAt(p, off)
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], h.n)
	for i := range k {
		if off+int64(i) < 8 {
			p[i] = lb[off+int64(i)]
		}
	}
	return k, err
}

// TestReadSafetensorsAllocation checks that hostile files that declare
// large sizes make the reader allocate little: at most a small constant
// plus a few times the file's size.
func TestReadSafetensorsAllocation(t *testing.T) {
	hostile := stHostile()
	for _, tc := range hostile {
		if tc.name == "deep-nesting" {
			continue // costs what the JSON decoder needs for 20000 levels, 40 kB of input
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ReadSafetensors(bytes.NewReader(tc.data), int64(len(tc.data)))
		runtime.ReadMemStats(&after)
		const slack = 64 << 10 // decoder state and error messages
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(slack+16*len(tc.data)); got > limit {
			t.Errorf("case=%s: ReadSafetensors of %d bytes allocated %d bytes, want ≤ %d", tc.name, len(tc.data), got, limit)
		}
	}
	// A valid file of 4 MB of data: at most the data plus the scratch buffer
	// and the header's decoding.
	big := []NamedTensor{{Name: "w", Shape: []int{1 << 20}, F32: make([]float32, 1<<20)}}
	data := stWrite(t, big, nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := ReadSafetensors(bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(len(data)+stChunk+64<<10); got > limit {
		t.Errorf("ReadSafetensors of a valid %d-byte file allocated %d bytes, want ≤ %d", len(data), got, limit)
	}
}

func stNoTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestSaveSafetensorsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	first := stExample()[:2]
	if err := SaveSafetensorsFile(path, first, map[string]string{"step": "1"}); err != nil {
		t.Fatalf("SaveSafetensorsFile: %v", err)
	}
	second := stExample()
	if err := SaveSafetensorsFile(path, second, map[string]string{"step": "2"}); err != nil {
		t.Fatalf("SaveSafetensorsFile over an existing file: %v", err)
	}
	got, meta, err := LoadSafetensorsFile(path)
	if err != nil {
		t.Fatalf("LoadSafetensorsFile: %v", err)
	}
	if d := stDiff(got, stSortedCopy(second)); d != "" {
		t.Errorf("LoadSafetensorsFile after two saves: %s", d)
	}
	if meta["step"] != "2" {
		t.Errorf("metadata step = %q, want 2", meta["step"])
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, want 0644", fi.Mode().Perm())
	}
	stNoTemps(t, dir)

	// A relative path saves into the working directory.
	t.Chdir(dir)
	if err := SaveSafetensorsFile("rel.safetensors", first, nil); err != nil {
		t.Fatalf("SaveSafetensorsFile(relative): %v", err)
	}
	if _, _, err := LoadSafetensorsFile(filepath.Join(dir, "rel.safetensors")); err != nil {
		t.Errorf("LoadSafetensorsFile(relative save): %v", err)
	}
}

// TestSaveSafetensorsFileFailureKeepsOld checks that a save failing at any
// point before the rename leaves the previous file as it was and no
// temporary file behind.
func TestSaveSafetensorsFileFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	if err := SaveSafetensorsFile(path, stExample(), map[string]string{"step": "1"}); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	full := len(stWrite(t, stExample(), nil))
	for _, tc := range []struct {
		name string
		save func() error
	}{
		{"invalid-tensor", func() error {
			return SaveSafetensorsFile(path, []NamedTensor{{Name: "a", Shape: []int{3}, F32: []float32{1}}}, nil)
		}},
		// The write fails midway, as on a full disk: part of the new data
		// has reached the temporary file.
		{"write-fails-midway", func() error {
			return SaveAtomic(path, func(w io.Writer) error {
				bw := bufio.NewWriterSize(w, 16)
				if err := WriteSafetensors(io.MultiWriter(bw, &errAfterWriter{full / 2}), stExample(), nil); err != nil {
					bw.Flush()
					return err
				}
				return bw.Flush()
			})
		}},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			if err := tc.save(); err == nil {
				t.Fatal("save succeeded, want an error")
			}
			now, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(now, old) {
				t.Errorf("after a failed save the file has %d bytes, differing from the %d before", len(now), len(old))
			}
			stNoTemps(t, dir)
		})
	}

	// The rename fails: the target is a non-empty directory.
	target := filepath.Join(dir, "is-a-dir")
	if err := os.MkdirAll(filepath.Join(target, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SaveSafetensorsFile(target, stExample(), nil); err == nil {
		t.Errorf("SaveSafetensorsFile over a directory succeeded, want an error")
	}
	if _, err := os.Stat(filepath.Join(target, "child")); err != nil {
		t.Errorf("the directory was changed by a failed save: %v", err)
	}
	stNoTemps(t, dir)

	// The directory does not exist.
	if err := SaveSafetensorsFile(filepath.Join(dir, "missing", "x.safetensors"), stExample(), nil); err == nil {
		t.Errorf("SaveSafetensorsFile into a missing directory succeeded, want an error")
	}
}

func TestLoadSafetensorsFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, stFile(`{"a":1}`, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope"), "nope"},
		{"directory", dir, "not a regular file"},
		{"malformed", bad, "bad.safetensors"},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			_, _, err := LoadSafetensorsFile(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadSafetensorsFile(%s) = %v, want an error containing %q", tc.path, err, tc.want)
			}
		})
	}
}

// stPyLine is one line printed by scripts/torch-checkpoint.py.
type stPyLine struct {
	Name     string            `json:"name"`
	Dtype    string            `json:"dtype"`
	Shape    []int             `json:"shape"`
	SHA256   string            `json:"sha256"`
	Metadata map[string]string `json:"metadata"`
}

// stDigest is the script's checksum: SHA-256 of the little-endian bytes.
func stDigest(t NamedTensor) string {
	h := sha256.New()
	var w [4]byte
	for _, v := range t.F32 {
		binary.LittleEndian.PutUint32(w[:], math.Float32bits(v))
		h.Write(w[:])
	}
	for _, v := range t.I32 {
		binary.LittleEndian.PutUint32(w[:], uint32(v))
		h.Write(w[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

const stPython = "/usr/bin/python3"

var (
	stTorchOnce sync.Once
	stTorchErr  error // whether stPython can import torch
)

// stTorchRun runs scripts/torch-checkpoint.py and returns its output,
// skipping the test when Debian's python3 with torch is not installed.
func stTorchRun(t *testing.T, args ...string) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("PyTorch interop: each run imports torch (seconds); -short leaves it to the full run")
	}
	stTorchOnce.Do(func() { stTorchErr = exec.Command(stPython, "-c", "import torch").Run() })
	if stTorchErr != nil {
		t.Skipf("needs %s with torch (Debian's python3-torch): %v", stPython, stTorchErr)
	}
	cmd := exec.Command(stPython, append([]string{"../../scripts/torch-checkpoint.py"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("torch-checkpoint.py %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// stTorch runs scripts/torch-checkpoint.py read or write and parses its
// lines.
func stTorch(t *testing.T, args ...string) ([]stPyLine, map[string]string) {
	t.Helper()
	out := stTorchRun(t, args...)
	var lines []stPyLine
	var meta map[string]string
	for _, l := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var pl stPyLine
		if err := json.Unmarshal(l, &pl); err != nil {
			t.Fatalf("torch-checkpoint.py output %q: %v", l, err)
		}
		if pl.Metadata != nil {
			meta = pl.Metadata
			continue
		}
		lines = append(lines, pl)
	}
	return lines, meta
}

func stCompareWithTorch(t *testing.T, got []NamedTensor, lines []stPyLine) {
	t.Helper()
	if len(got) != len(lines) {
		t.Fatalf("%d tensors in Go, %d in PyTorch", len(got), len(lines))
	}
	for i, g := range got {
		l := lines[i]
		dtype := "F32"
		if g.I32 != nil {
			dtype = "I32"
		}
		if g.Name != l.Name || dtype != l.Dtype || !slices.Equal(g.Shape, l.Shape) || stDigest(g) != l.SHA256 {
			t.Errorf("tensor %d: Go %s %s %v sha256 %s, PyTorch %s %s %v sha256 %s",
				i, g.Name, dtype, g.Shape, stDigest(g), l.Name, l.Dtype, l.Shape, l.SHA256)
		}
	}
}

// TestSafetensorsTorch round-trips through PyTorch both ways: a file written
// by Go is loaded with torch.frombuffer and checksummed, and a file written
// from PyTorch tensors is read by Go and checked against the checksums of
// the tensors PyTorch had in memory, against values recomputed in Go, and
// written again byte for byte.
func TestSafetensorsTorch(t *testing.T) {
	dir := t.TempDir()
	t.Run("dir=go-to-torch", func(t *testing.T) {
		path := filepath.Join(dir, "go.safetensors")
		ts := stExample()
		meta := map[string]string{"spec": "conv8x5x5", "epoch": "2"}
		if err := SaveSafetensorsFile(path, ts, meta); err != nil {
			t.Fatal(err)
		}
		lines, pyMeta := stTorch(t, "read", path)
		stCompareWithTorch(t, stSortedCopy(ts), lines)
		if !reflect.DeepEqual(pyMeta, meta) {
			t.Errorf("PyTorch metadata %q, want %q", pyMeta, meta)
		}
	})
	t.Run("dir=torch-to-go", func(t *testing.T) {
		path := filepath.Join(dir, "torch.safetensors")
		lines, pyMeta := stTorch(t, "write", path)
		got, meta, err := LoadSafetensorsFile(path)
		if err != nil {
			t.Fatalf("LoadSafetensorsFile(PyTorch's file): %v", err)
		}
		stCompareWithTorch(t, got, lines)
		if !reflect.DeepEqual(meta, pyMeta) {
			t.Errorf("metadata %q, want PyTorch's %q", meta, pyMeta)
		}
		byName := map[string]NamedTensor{}
		for _, g := range got {
			byName[g.Name] = g
		}
		// Values the script computes exactly: (i·37 mod 101 − 50)/16.
		w := byName["conv1.w"]
		for i, v := range w.F32 {
			if want := float32(i*37%101-50) / 16; v != want {
				t.Fatalf("conv1.w[%d] = %g, want %g", i, v, want)
			}
		}
		specials := []uint32{0, 0x80000000, 0x00000001, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f7fffff}
		for i, v := range byName["special"].F32 {
			if math.Float32bits(v) != specials[i] {
				t.Errorf("special[%d] = %#08x, want %#08x", i, math.Float32bits(v), specials[i])
			}
		}
		if got, want := byName["labels"].I32, []int32{math.MinInt32, -1, 0, 1, 7, math.MaxInt32}; !slices.Equal(got, want) {
			t.Errorf("labels = %v, want %v", got, want)
		}
		// The script lays the file out as Go does, so Go's rewrite is identical.
		pyBytes, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if goBytes := stWrite(t, got, meta); !bytes.Equal(goBytes, pyBytes) {
			t.Errorf("Go's rewrite of PyTorch's file differs: %d bytes, PyTorch %d", len(goBytes), len(pyBytes))
		}
	})
}

// stSeeds are the fuzz seeds: valid files and the hostile ones. The
// committed corpus under testdata/fuzz/FuzzReadSafetensors holds three
// valid files and ten of the hostile ones, written once from these
// functions ("valid-*" and "corrupt-<case name>").
func stSeeds(t testing.TB) [][]byte {
	// A small version of the example: the fuzzer's minimisation of new
	// inputs costs about the square of their length.
	small := stExample()
	small[0] = NamedTensor{Name: "conv1.w", Shape: []int{2, 1, 1, 2}, F32: small[0].F32[:4]}
	seeds := [][]byte{
		stWrite(t, nil, nil),
		stWrite(t, small, map[string]string{"epoch": "1"}),
		stWrite(t, []NamedTensor{{Name: "a", Shape: []int{2, 2}, I32: []int32{1, 2, 3, 4}}}, nil),
	}
	for _, h := range stHostile() {
		if len(h.data) < 4<<10 { // large seeds slow the fuzzer's minimisation down
			seeds = append(seeds, h.data)
		}
	}
	return seeds
}

// FuzzReadSafetensors checks that ReadSafetensors never panics, allocates
// no more tensor data than the file holds, and that whatever it accepts
// survives WriteSafetensors and a second read unchanged, bit for bit, with
// a deterministic encoding.
func FuzzReadSafetensors(f *testing.F) {
	for _, s := range stSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, meta, err := ReadSafetensors(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrSafetensorsFormat) {
				t.Fatalf("ReadSafetensors error %v does not wrap ErrSafetensorsFormat", err)
			}
			return
		}
		var total int
		for _, x := range ts {
			total += 4 * (len(x.F32) + len(x.I32))
		}
		if total > len(data) {
			t.Fatalf("ReadSafetensors returned %d bytes of tensors from a %d-byte file", total, len(data))
		}
		var b bytes.Buffer
		if err := WriteSafetensors(&b, ts, meta); err != nil {
			t.Fatalf("WriteSafetensors(ReadSafetensors(x)): %v", err)
		}
		ts2, meta2, err := ReadSafetensors(bytes.NewReader(b.Bytes()), int64(b.Len()))
		if err != nil {
			t.Fatalf("ReadSafetensors(WriteSafetensors(ReadSafetensors(x))): %v", err)
		}
		if d := stDiff(ts2, ts); d != "" {
			t.Fatalf("round trip: %s", d)
		}
		if !reflect.DeepEqual(meta2, meta) {
			t.Fatalf("round trip: metadata %q, want %q", meta2, meta)
		}
		var b2 bytes.Buffer
		if err := WriteSafetensors(&b2, ts2, meta2); err != nil || !bytes.Equal(b2.Bytes(), b.Bytes()) {
			t.Fatalf("second write differs from the first (err %v)", err)
		}
	})
}

// TestSafetensorsTorchPredict saves a model's parameters, with random
// values in every weight and bias, into a checkpoint, has PyTorch build the
// same network from the spec text (scripts/torch-checkpoint.py predict) and
// load it by parameter name, and compares its logits on the same inputs
// with the model's Forward on the CPU backend.
func TestSafetensorsTorchPredict(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		c, h, w int
	}{
		{nn.DefaultSpecText, 1, 28, 28},
		{"conv6x3x3s2p1,relu,conv4x5x1s1x2p2x0,relu,maxpool3x2s2x1,dense9,relu,dense7", 3, 17, 20},
		{"dense12,relu,dense3", 2, 5, 3},
		// Every other layer kind: residual blocks (identity and projection),
		// BatchNorm with running statistics, pools, activations, dropout, a
		// concatenation, layers without bias; and the resnet8 preset.
		{"conv4x3x3p1nobias,bn,relu,res(conv4x3x3p1,bn,leakyrelu20,conv4x3x3p1,bn),silu,res(conv6x3x3s2p1,bn,gelu,conv6x3x3p1|conv6x1x1s2nobias,bn),avgpool3s1p1,cat(conv2x1x1,tanh|sigmoid|),gelutanh,dropout30,gap,dense5nobias", 3, 9, 10},
		{"resnet8", 3, 16, 16},
	} {
		t.Run("spec="+tc.spec, func(t *testing.T) {
			layers, err := nn.ParseSpec(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			be, err := cpubackend.NewCPUBackend(1)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			m, err := nn.NewModel(be, nn.Spec{C: tc.c, H: tc.h, W: tc.w, Layers: layers, Loss: nn.SoftmaxCE}, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			rng := rand.New(rand.NewPCG(3, 4))
			var ckpt []NamedTensor
			for _, p := range m.Params() {
				v := make([]float32, p.Value.Len())
				for i := range v {
					v[i] = float32(rng.NormFloat64() * 0.3)
				}
				if err := be.Upload(p.Value, v); err != nil {
					t.Fatal(err)
				}
				ckpt = append(ckpt, NamedTensor{Name: p.Name, Shape: p.Shape, F32: v})
			}
			for _, p := range m.Buffers() { // running statistics; variances positive
				v := make([]float32, p.Value.Len())
				for i := range v {
					v[i] = float32(rng.NormFloat64() * 0.3)
					if strings.HasSuffix(p.Name, "running_var") {
						v[i] = 0.5 + float32(math.Abs(float64(v[i])))
					}
				}
				if err := be.Upload(p.Value, v); err != nil {
					t.Fatal(err)
				}
				ckpt = append(ckpt, NamedTensor{Name: p.Name, Shape: p.Shape, F32: v})
			}
			const n = 5
			x := make([]float32, n*tc.c*tc.h*tc.w)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			b, err := m.NewBatch(n)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Free(be)
			b.Eval = true // running statistics; dropout passes through
			if err := be.Upload(b.X, x); err != nil {
				t.Fatal(err)
			}
			if err := be.UploadIndex(b.Labels, make([]int32, n)); err != nil {
				t.Fatal(err)
			}
			if err := m.Forward(b); err != nil {
				t.Fatal(err)
			}
			logits := make([]float32, b.Output().Len())
			if err := be.Download(logits, b.Output()); err != nil {
				t.Fatal(err)
			}

			dir := t.TempDir()
			ckptPath, inPath := filepath.Join(dir, "model.safetensors"), filepath.Join(dir, "x.safetensors")
			if err := SaveSafetensorsFile(ckptPath, ckpt, map[string]string{"spec": nn.FormatSpec(layers)}); err != nil {
				t.Fatal(err)
			}
			if err := SaveSafetensorsFile(inPath, []NamedTensor{{Name: "x", Shape: []int{n, tc.c, tc.h, tc.w}, F32: x}}, nil); err != nil {
				t.Fatal(err)
			}
			out := stTorchRun(t, "predict", ckptPath, inPath)
			var pred struct {
				Logits [][]float64 `json:"logits"`
				Pred   []int       `json:"pred"`
			}
			if err := json.Unmarshal(out, &pred); err != nil {
				t.Fatalf("predict output %q: %v", out, err)
			}
			classes := m.Classes()
			if len(pred.Logits) != n || len(pred.Pred) != n {
				t.Fatalf("PyTorch gave %d rows of logits and %d predictions, want %d", len(pred.Logits), len(pred.Pred), n)
			}
			// Both sides compute in float32, summing at most a few hundred
			// products per output in different orders: relative errors of
			// ~1e-6 on logits up to ~100, well inside 1e-4 relative.
			const atol, rtol = 1e-4, 1e-4
			for i := range n {
				if len(pred.Logits[i]) != classes {
					t.Fatalf("PyTorch row %d has %d logits, want %d", i, len(pred.Logits[i]), classes)
				}
				best := 0
				for k := range classes {
					got, want := float64(logits[i*classes+k]), pred.Logits[i][k]
					if math.Abs(got-want) > atol+rtol*math.Abs(want) {
						t.Errorf("logit[%d,%d] = %g, PyTorch %g", i, k, got, want)
					}
					if logits[i*classes+k] > logits[i*classes+best] {
						best = k
					}
				}
				if best != pred.Pred[i] {
					t.Errorf("image %d: predicted class %d, PyTorch %d", i, best, pred.Pred[i])
				}
			}
		})
	}
}

// updateTorchGolden rewrites testdata/resnet8-step-torch.safetensors with
// PyTorch (TestTorchResNet8Step).
var updateTorchGolden = flag.Bool("update-torch-golden", false, "rewrite testdata/resnet8-step-torch.safetensors with PyTorch")

// resnet8Golden is PyTorch's float64 step of TestTorchResNet8Step, rounded
// to float32, with its generator named in the file's metadata.
const resnet8Golden = "testdata/resnet8-step-torch.safetensors"

// TestTorchResNet8Step runs one training step of resnet8 (on 3×8×8 images,
// a batch of 6, random weights) on the CPU backend in float32 and compares
// the loss, every gradient and BatchNorm's running statistics after the
// step with PyTorch's float64 step of the same model and batch
// (scripts/torch-checkpoint.py step): the committed golden file
// testdata/resnet8-step-torch.safetensors always (it pins convtrain's
// initialisation and inputs too), and PyTorch run live where it is
// installed (`go test -run TestTorchResNet8Step -update-torch-golden`
// rewrites the file from that run). |got − want| ≤ 1e-4 + 1e-3·|want|:
// float32 rounding through 8 layers of BatchNorm, whose division by the
// batch's standard deviation amplifies it (measured: about 1e-6 relative
// on the loss, 1e-5 on gradients).
func TestTorchResNet8Step(t *testing.T) {
	layers, err := nn.ParseSpec("resnet8")
	if err != nil {
		t.Fatal(err)
	}
	be, err := cpubackend.NewCPUBackend(1)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	const n, c, h, w = 6, 3, 8, 8
	m, err := nn.NewModel(be, nn.Spec{C: c, H: h, W: w, Layers: layers, Loss: nn.SoftmaxCE}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	var ckpt []NamedTensor
	for _, p := range m.Params() {
		v := make([]float32, p.Value.Len())
		backendtestDownload(t, be, v, p.Value)
		if strings.HasSuffix(p.Name, ".weight") && len(p.Shape) == 1 { // BatchNorm's γ: not all ones
			for i := range v {
				v[i] = 0.5 + float32(rng.Float64())
			}
			if err := be.Upload(p.Value, v); err != nil {
				t.Fatal(err)
			}
		}
		ckpt = append(ckpt, NamedTensor{Name: p.Name, Shape: p.Shape, F32: v})
	}
	for _, p := range m.Buffers() {
		v := make([]float32, p.Value.Len())
		backendtestDownload(t, be, v, p.Value)
		ckpt = append(ckpt, NamedTensor{Name: p.Name, Shape: p.Shape, F32: v})
	}
	x := make([]float32, n*c*h*w)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := []int32{0, 3, 9, 1, 3, 7}
	b, err := m.NewBatch(n)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free(be)
	if err := be.Upload(b.X, x); err != nil {
		t.Fatal(err)
	}
	if err := be.UploadIndex(b.Labels, labels); err != nil {
		t.Fatal(err)
	}
	if err := m.Forward(b); err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(b); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ckptPath, inPath := filepath.Join(dir, "model.safetensors"), filepath.Join(dir, "in.safetensors")
	if err := SaveSafetensorsFile(ckptPath, ckpt, map[string]string{"spec": nn.FormatSpec(layers)}); err != nil {
		t.Fatal(err)
	}
	if err := SaveSafetensorsFile(inPath, []NamedTensor{{Name: "x", Shape: []int{n, c, h, w}, F32: x}, {Name: "labels", Shape: []int{n}, I32: labels}}, nil); err != nil {
		t.Fatal(err)
	}
	// The committed golden file, read as the live run's JSON.
	golden := func(t *testing.T) torchStep {
		ts, meta, err := LoadSafetensorsFile(resnet8Golden)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(meta["generator"], "torch-checkpoint.py step") || meta["torch"] == "" {
			t.Fatalf("%s: metadata %v does not name its generator and PyTorch version", resnet8Golden, meta)
		}
		w := torchStep{Grads: map[string][]float64{}, Buffers: map[string][]float64{}}
		for _, nt := range ts {
			v := make([]float64, len(nt.F32))
			for i, f := range nt.F32 {
				v[i] = float64(f)
			}
			switch {
			case nt.Name == "loss" && len(v) == 1:
				w.Loss = v[0]
			case strings.HasPrefix(nt.Name, "grad."):
				w.Grads[strings.TrimPrefix(nt.Name, "grad.")] = v
			case strings.HasPrefix(nt.Name, "buffer."):
				w.Buffers[strings.TrimPrefix(nt.Name, "buffer.")] = v
			default:
				t.Fatalf("%s: unexpected tensor %s %v", resnet8Golden, nt.Name, nt.Shape)
			}
		}
		return w
	}
	live := func(t *testing.T) torchStep {
		args := []string{"step", ckptPath, inPath}
		if *updateTorchGolden {
			args = append(args, resnet8Golden)
		}
		out := stTorchRun(t, args...)
		var w torchStep
		if err := json.Unmarshal(out, &w); err != nil {
			t.Fatalf("step output %.500q: %v", out, err)
		}
		return w
	}
	t.Run("want=pytorch-live", func(t *testing.T) { compareStep(t, be, m, b, live(t)) })
	t.Run("want=golden-file", func(t *testing.T) { compareStep(t, be, m, b, golden(t)) })
}

// torchStep is what scripts/torch-checkpoint.py step prints.
type torchStep struct {
	Loss    float64              `json:"loss"`
	Grads   map[string][]float64 `json:"grads"`
	Buffers map[string][]float64 `json:"buffers"`
}

// compareStep compares the loss, the gradients and the running statistics
// of m after one step on b with want's.
func compareStep(t *testing.T, be backend.Backend, m *nn.Model, b *nn.Batch, want torchStep) {
	t.Helper()
	close := func(what string, got []float32, want []float64) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, PyTorch %d", what, len(got), len(want))
		}
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 1e-4+1e-3*math.Abs(want[i]) {
				t.Errorf("%s[%d] = %g, PyTorch float64 %g", what, i, got[i], want[i])
				return
			}
		}
	}
	loss := make([]float32, 1)
	backendtestDownload(t, be, loss, b.Loss)
	close("loss", loss, []float64{want.Loss})
	if len(want.Grads) != len(m.Params()) || len(want.Buffers) != len(m.Buffers()) {
		t.Fatalf("PyTorch: %d gradients and %d running statistics, convtrain %d and %d", len(want.Grads), len(want.Buffers), len(m.Params()), len(m.Buffers()))
	}
	for _, p := range m.Params() {
		g := make([]float32, p.Grad.Len())
		backendtestDownload(t, be, g, p.Grad)
		close("gradient of "+p.Name, g, want.Grads[p.Name])
	}
	for _, p := range m.Buffers() {
		v := make([]float32, p.Value.Len())
		backendtestDownload(t, be, v, p.Value)
		close(p.Name, v, want.Buffers[p.Name])
	}
}

func backendtestDownload(t *testing.T, be interface {
	Download([]float32, backend.Tensor) error
}, dst []float32, src backend.Tensor) {
	t.Helper()
	if err := be.Download(dst, src); err != nil {
		t.Fatal(err)
	}
}
