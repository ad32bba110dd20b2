package ckpt

// Checkpoints are stored in the safetensors format
// (https://github.com/huggingface/safetensors), which PyTorch, NumPy and
// most other tools can read:
//
//	bytes [0, 8)      N, the header length, a little-endian uint64
//	bytes [8, 8+N)    the header: a JSON object, padded with spaces
//	bytes [8+N, end)  the buffer: every tensor's little-endian elements
//
// The header maps each tensor name to its dtype, shape and data_offsets
// [begin, end), relative to the start of the buffer, and the optional key
// "__metadata__" to an object of string values:
//
//	{"__metadata__":{"epoch":"3"},
//	 "conv1.b":{"data_offsets":[0,32],"dtype":"F32","shape":[8]}, ...}
//
// The tensors are contiguous, do not overlap and cover the buffer exactly.
// This package reads and writes the dtypes F32 (float32) and I32 (int32).

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// ErrSafetensorsFormat is wrapped by every error about malformed
// safetensors data, read or about to be written.
var ErrSafetensorsFormat = errors.New("invalid safetensors data")

// NamedTensor is one tensor of a safetensors file: its name, its shape
// (row-major; an empty shape is a scalar of one element) and its elements,
// either float32 (dtype F32) or int32 (dtype I32). Exactly one of F32 and
// I32 is non-nil, and its length is the product of Shape.
type NamedTensor struct {
	Name  string
	Shape []int
	F32   []float32
	I32   []int32
}

const (
	// stMaxHeader bounds the JSON header, as the reference implementation
	// does, so that a hostile length cannot make the reader allocate much.
	stMaxHeader = 100_000_000
	// stMetadataKey is the header key of the string-to-string metadata.
	stMetadataKey = "__metadata__"
	// stChunk is the size of the scratch buffer that tensor data is read
	// through.
	stChunk = 64 << 10
)

// stEntry is a tensor's header entry. Its fields are in alphabetical
// order, so the JSON written is sorted at every level.
type stEntry struct {
	DataOffsets [2]int64 `json:"data_offsets"`
	Dtype       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
}

// stErr formats an error wrapping ErrSafetensorsFormat.
func stErr(format string, a ...any) error {
	return fmt.Errorf("host: safetensors: %s: %w", fmt.Sprintf(format, a...), ErrSafetensorsFormat)
}

// stElems is the element count of shape, an error if a dimension is
// negative or if the product, in bytes, would overflow int64. Zero-size
// dimensions are allowed; the other dimensions must still fit.
func stElems(shape []int) (int64, error) {
	const limit = math.MaxInt64 / 4 // elements of 4 bytes
	n, nonzero := int64(1), int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d == 0 {
			n = 0
			continue
		}
		if nonzero > limit/int64(d) {
			return 0, fmt.Errorf("shape %v overflows: more than 2⁶¹ elements", shape)
		}
		nonzero *= int64(d)
	}
	if n != 0 {
		n = nonzero
	}
	return n, nil
}

// WriteSafetensors writes tensors and meta to w in the safetensors format.
// The output is deterministic: tensors are laid out in the buffer in the
// order of their sorted names, the header's keys are sorted at every level
// and the header is padded with spaces to a multiple of 8 bytes. meta may be
// nil; an empty meta writes no "__metadata__" key.
//
// It returns an error wrapping ErrSafetensorsFormat, before writing
// anything, if a name is empty, "__metadata__", repeated or not valid
// UTF-8, if a tensor has none or both of F32 and I32, a negative dimension
// or a length other than the product of its shape, or if a metadata key or
// value is not valid UTF-8. Otherwise it returns the first error of w.
func WriteSafetensors(w io.Writer, tensors []NamedTensor, meta map[string]string) error {
	sorted := make([]*NamedTensor, len(tensors))
	for i := range tensors {
		sorted[i] = &tensors[i]
	}
	slices.SortStableFunc(sorted, func(a, b *NamedTensor) int { return strings.Compare(a.Name, b.Name) })

	header := make(map[string]any, len(tensors)+1)
	var off int64
	for i, t := range sorted {
		switch {
		case t.Name == "":
			return stErr("tensor %d has an empty name", i)
		case t.Name == stMetadataKey:
			return stErr("tensor name %q is reserved for the metadata", t.Name)
		case !utf8.ValidString(t.Name):
			return stErr("tensor name %q is not valid UTF-8", t.Name)
		case i > 0 && sorted[i-1].Name == t.Name:
			return stErr("tensor name %q appears twice", t.Name)
		case (t.F32 == nil) == (t.I32 == nil):
			return stErr("tensor %q: exactly one of F32 and I32 must be set", t.Name)
		}
		n, err := stElems(t.Shape)
		if err != nil {
			return stErr("tensor %q: %v", t.Name, err)
		}
		dtype, have := "F32", len(t.F32)
		if t.I32 != nil {
			dtype, have = "I32", len(t.I32)
		}
		if int64(have) != n {
			return stErr("tensor %q: %d elements for shape %v, want %d", t.Name, have, t.Shape, n)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{} // a scalar: "shape":[] rather than null
		}
		header[t.Name] = stEntry{DataOffsets: [2]int64{off, off + 4*n}, Dtype: dtype, Shape: shape}
		off += 4 * n
	}
	if len(meta) > 0 {
		for k, v := range meta {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return stErr("metadata %q: %q is not valid UTF-8", k, v)
			}
		}
		header[stMetadataKey] = meta
	}

	var hb bytes.Buffer
	enc := json.NewEncoder(&hb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(header); err != nil {
		return fmt.Errorf("host: safetensors: encode header: %w", err)
	}
	hb.Truncate(hb.Len() - 1) // Encode's newline
	for hb.Len()%8 != 0 {
		hb.WriteByte(' ')
	}

	bw := bufio.NewWriterSize(w, stChunk)
	var lenBytes [8]byte
	binary.LittleEndian.PutUint64(lenBytes[:], uint64(hb.Len()))
	bw.Write(lenBytes[:])
	bw.Write(hb.Bytes())
	var word [4]byte
	for _, t := range sorted {
		for _, v := range t.F32 {
			binary.LittleEndian.PutUint32(word[:], math.Float32bits(v))
			bw.Write(word[:])
		}
		for _, v := range t.I32 {
			binary.LittleEndian.PutUint32(word[:], uint32(v))
			bw.Write(word[:])
		}
	}
	if err := bw.Flush(); err != nil { // bufio keeps the first write error
		return fmt.Errorf("host: safetensors: write: %w", err)
	}
	return nil
}

// SaveSafetensorsFile writes tensors and meta (see WriteSafetensors) to the
// file path atomically: into a new temporary file in the same directory,
// which is synced, closed and renamed over path, after which the directory
// is synced. A crash leaves either the old file or the new one, never a
// mix; on any error the temporary file is removed and a file already at
// path is left as it was. The file is created with mode 0644.
func SaveSafetensorsFile(path string, tensors []NamedTensor, meta map[string]string) error {
	return SaveAtomic(path, func(w io.Writer) error { return WriteSafetensors(w, tensors, meta) })
}

// SaveAtomic writes the file path atomically with write, as
// SaveSafetensorsFile does: a crash or an error leaves the old file as it
// was.
func SaveAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("host: save %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the first error is what matters
			os.Remove(tmp)
			err = fmt.Errorf("host: save %s: %w", path, err)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename is done: from here on an error must not remove anything.
	d, derr := os.Open(dir)
	if derr == nil {
		derr = d.Sync()
		if cerr := d.Close(); derr == nil {
			derr = cerr
		}
	}
	if derr != nil {
		return fmt.Errorf("host: save %s: sync directory: %w", path, derr)
	}
	return nil
}

// LoadSafetensorsFile reads the safetensors file at path; see
// ReadSafetensors. Errors name the file.
func LoadSafetensorsFile(path string) ([]NamedTensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("host: load %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("host: load %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("host: load %s: not a regular file", path)
	}
	tensors, meta, err := ReadSafetensors(f, fi.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("host: load %s: %w", path, err)
	}
	return tensors, meta, nil
}

// ReadSafetensors reads a safetensors file of size bytes from r and returns
// its tensors, sorted by name, and its metadata (never nil). Tensors of zero
// elements have non-nil empty slices.
//
// It is safe on hostile input: it allocates at most about the file's size,
// and returns an error wrapping ErrSafetensorsFormat, naming what is wrong,
// for a file shorter than 8 bytes or than it claims (size is checked by
// reading its last byte), a header length beyond the file or beyond 100 MB,
// a header that is not one JSON object (syntax errors, trailing data,
// duplicate keys, an entry with missing, extra or mistyped fields), a
// dtype other than F32 and I32, a negative dimension or a shape whose
// element count overflows, data_offsets that are not two integers, are out
// of the buffer or disagree with the shape, tensors that overlap or leave
// gaps or bytes at the end of the buffer, and metadata that is not an
// object of strings. Errors of r are returned wrapped.
func ReadSafetensors(r io.ReaderAt, size int64) ([]NamedTensor, map[string]string, error) {
	if size < 8 {
		return nil, nil, stErr("file of %d bytes is shorter than the 8-byte header length", size)
	}
	var lenBytes [8]byte
	if err := stReadFull(r, lenBytes[:], 0); err != nil {
		return nil, nil, fmt.Errorf("host: safetensors: read header length: %w", err)
	}
	// Before trusting size with any allocation, check that the file is
	// as long as the caller said.
	var last [1]byte
	if err := stReadFull(r, last[:], size-1); err != nil {
		return nil, nil, stErr("file is shorter than its stated size %d: %v", size, err)
	}
	hlen := binary.LittleEndian.Uint64(lenBytes[:])
	switch {
	case hlen > uint64(size-8):
		return nil, nil, stErr("header length %d exceeds the %d bytes after the length field", hlen, size-8)
	case hlen > stMaxHeader:
		return nil, nil, stErr("header length %d exceeds the limit of %d bytes", hlen, stMaxHeader)
	case hlen < 2:
		return nil, nil, stErr("header length %d is too short for a JSON object", hlen)
	}
	header := make([]byte, hlen)
	if err := stReadFull(r, header, 8); err != nil {
		return nil, nil, fmt.Errorf("host: safetensors: read header: %w", err)
	}
	bufStart := 8 + int64(hlen)
	bufLen := size - bufStart

	fields, err := stObject(header, true)
	if err != nil {
		return nil, nil, stErr("header: %v", err)
	}
	meta := map[string]string{}
	type tensorAt struct {
		t          NamedTensor
		begin, end int64
	}
	var ts []tensorAt
	for _, f := range fields {
		if f.key == stMetadataKey {
			if err := stMetadata(f.value, meta); err != nil {
				return nil, nil, stErr("header: %s: %v", stMetadataKey, err)
			}
			continue
		}
		t, begin, end, err := stTensorEntry(f.key, f.value, bufLen)
		if err != nil {
			return nil, nil, stErr("header: tensor %q: %v", f.key, err)
		}
		ts = append(ts, tensorAt{t, begin, end})
	}

	// Contiguous, non-overlapping and covering the buffer: in order of
	// offsets, each tensor begins where the previous one ended.
	slices.SortStableFunc(ts, func(a, b tensorAt) int {
		if c := cmp.Compare(a.begin, b.begin); c != 0 {
			return c
		}
		return cmp.Compare(a.end, b.end)
	})
	var at int64
	prev := ""
	for _, t := range ts {
		switch {
		case t.begin > at:
			return nil, nil, stErr("gap of %d bytes in the buffer at offset %d, before tensor %q", t.begin-at, at, t.t.Name)
		case t.begin < at:
			return nil, nil, stErr("tensor %q at offsets [%d,%d) overlaps tensor %q, which ends at %d", t.t.Name, t.begin, t.end, prev, at)
		}
		at, prev = t.end, t.t.Name
	}
	if at != bufLen {
		return nil, nil, stErr("tensors end at buffer offset %d but the buffer has %d bytes", at, bufLen)
	}

	// Read the data through a bounded scratch buffer: the element slices
	// total the buffer's size and nothing more.
	scratch := make([]byte, min(bufLen, stChunk))
	out := make([]NamedTensor, len(ts))
	for i := range ts {
		t := &ts[i].t
		n := int((ts[i].end - ts[i].begin) / 4)
		if t.F32 != nil {
			t.F32 = make([]float32, n)
		} else {
			t.I32 = make([]int32, n)
		}
		for done := 0; done < n; {
			m := min(n-done, len(scratch)/4)
			chunk := scratch[:4*m]
			if err := stReadFull(r, chunk, bufStart+ts[i].begin+4*int64(done)); err != nil {
				return nil, nil, fmt.Errorf("host: safetensors: read tensor %q: %w", t.Name, err)
			}
			for j := range m {
				u := binary.LittleEndian.Uint32(chunk[4*j:])
				if t.F32 != nil {
					t.F32[done+j] = math.Float32frombits(u)
				} else {
					t.I32[done+j] = int32(u)
				}
			}
			done += m
		}
		out[i] = *t
	}
	slices.SortFunc(out, func(a, b NamedTensor) int { return strings.Compare(a.Name, b.Name) })
	return out, meta, nil
}

// stReadFull reads len(p) bytes at off, treating a short read as an error.
func stReadFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%d of %d bytes at offset %d: %w", n, len(p), off, err)
}

// stField is one key and raw value of a JSON object, in file order.
type stField struct {
	key   string
	value json.RawMessage
}

// stObject decodes data as one JSON object, rejecting duplicate keys and,
// when top is set, anything but white space after it.
func stObject(data []byte, top bool) ([]stField, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want a JSON object, got %s", stTokenKind(tok))
	}
	var fields []stField
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("want an object key, got %s", stTokenKind(tok))
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		fields = append(fields, stField{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if top {
		if tok, err := dec.Token(); err != io.EOF {
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("trailing data after the JSON object: %s", stTokenKind(tok))
		}
	}
	return fields, nil
}

func stTokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return fmt.Sprintf("string %q", v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T %v", tok, tok)
}

// stKind is the first non-space byte of a raw JSON value.
func stKind(v json.RawMessage) byte {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// stTensorEntry checks one tensor entry against a buffer of bufLen bytes.
// The returned tensor has a non-nil empty F32 or I32 to mark its dtype.
func stTensorEntry(name string, raw json.RawMessage, bufLen int64) (NamedTensor, int64, int64, error) {
	t := NamedTensor{Name: name}
	fields, err := stObject(raw, false)
	if err != nil {
		return t, 0, 0, err
	}
	var dtype string
	var shape, offsets []int64
	have := map[string]bool{}
	for _, f := range fields {
		have[f.key] = true
		switch f.key {
		case "dtype":
			if stKind(f.value) != '"' {
				return t, 0, 0, fmt.Errorf("dtype %s is not a string", f.value)
			}
			err = json.Unmarshal(f.value, &dtype)
		case "shape":
			if stKind(f.value) != '[' {
				return t, 0, 0, fmt.Errorf("shape %s is not an array", f.value)
			}
			err = json.Unmarshal(f.value, &shape)
		case "data_offsets":
			if stKind(f.value) != '[' {
				return t, 0, 0, fmt.Errorf("data_offsets %s is not an array", f.value)
			}
			err = json.Unmarshal(f.value, &offsets)
		default:
			return t, 0, 0, fmt.Errorf("unknown field %q", f.key)
		}
		if err != nil {
			return t, 0, 0, fmt.Errorf("%s: %w", f.key, err)
		}
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if !have[k] {
			return t, 0, 0, fmt.Errorf("missing field %q", k)
		}
	}
	switch dtype {
	case "F32":
		t.F32 = []float32{}
	case "I32":
		t.I32 = []int32{}
	default:
		return t, 0, 0, fmt.Errorf("dtype %q is not supported (want F32 or I32)", dtype)
	}
	t.Shape = make([]int, len(shape))
	for i, d := range shape {
		if d < 0 || d > math.MaxInt {
			return t, 0, 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		t.Shape[i] = int(d)
	}
	n, err := stElems(t.Shape)
	if err != nil {
		return t, 0, 0, err
	}
	if len(offsets) != 2 {
		return t, 0, 0, fmt.Errorf("data_offsets %v: want two offsets [begin, end]", offsets)
	}
	begin, end := offsets[0], offsets[1]
	switch {
	case begin < 0 || end < begin:
		return t, 0, 0, fmt.Errorf("data_offsets [%d,%d] are not 0 ≤ begin ≤ end", begin, end)
	case end > bufLen:
		return t, 0, 0, fmt.Errorf("data_offsets [%d,%d] end beyond the %d-byte buffer", begin, end, bufLen)
	case end-begin != 4*n:
		return t, 0, 0, fmt.Errorf("shape %v needs %d bytes of %s but data_offsets [%d,%d] span %d", t.Shape, 4*n, dtype, begin, end, end-begin)
	}
	return t, begin, end, nil
}

// stMetadata adds the string-to-string object raw to meta.
func stMetadata(raw json.RawMessage, meta map[string]string) error {
	fields, err := stObject(raw, false)
	if err != nil {
		return err
	}
	for _, f := range fields {
		if stKind(f.value) != '"' {
			return fmt.Errorf("value of %q is %s, not a string", f.key, f.value)
		}
		var v string
		if err := json.Unmarshal(f.value, &v); err != nil {
			return fmt.Errorf("value of %q: %w", f.key, err)
		}
		meta[f.key] = v
	}
	return nil
}
