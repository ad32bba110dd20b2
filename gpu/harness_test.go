package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The test harness: every buffer a kernel sees is a view into a larger
// allocation whose guard bands on both sides hold a NaN with a payload
// unique to that buffer; outputs are filled with another NaN, the poison,
// before the launch. After the launch every band must be bit-for-bit
// intact (no out-of-range write: a kernel that copied an input's band into
// an output's band would leave the input's payload there), inputs
// unchanged, and no output element may still hold the poison (every
// element written).

const (
	// guardLen elements of poison on each side of every buffer; 256 bytes,
	// so views keep the allocator's alignment.
	guardLen = 64
	// poisonBits is a quiet NaN with the payload 0xdead, for outputs.
	poisonBits = 0x7fc0dead
	// bandBits + i is the quiet NaN in the guard bands of buffer i.
	bandBits = 0x7fc10000
)

// u is the unit roundoff of float32, 2⁻²⁴.
const u = 1.0 / (1 << 24)

type guarded struct {
	name    string
	band    uint32 // the bit pattern of the guard bands
	whole   *Buffer
	view    *Buffer
	isInput bool
	f32     []float32 // an input's contents
	i32     []int32
	u8      []uint8
	bf16    []float32 // a bfloat16 input's contents, each rounded (y_bf16_test.go)
}

type harness struct {
	t    *testing.T
	d    *Device
	bufs []*guarded
}

func newHarness(t *testing.T, d *Device) *harness {
	t.Helper()
	h := &harness{t: t, d: d}
	t.Cleanup(func() {
		for _, g := range h.bufs {
			if err := g.whole.Free(); err != nil {
				t.Errorf("free %s: %v", g.name, err)
			}
		}
	})
	return h
}

// alloc returns a guarded buffer of n elements: its bands hold its own
// NaN, the view the poison.
func (h *harness) alloc(name string, t DType, n int) *guarded {
	h.t.Helper()
	var whole *Buffer
	var err error
	total := n + 2*guardLen
	band := uint32(bandBits + len(h.bufs))
	bits := make([]uint32, total)
	for i := range bits {
		bits[i] = band
		if i >= guardLen && i < guardLen+n {
			bits[i] = poisonBits
		}
	}
	if t == Float32 {
		whole, err = h.d.NewFloat32(total)
		if err == nil {
			p := make([]float32, total)
			for i, b := range bits {
				p[i] = math.Float32frombits(b)
			}
			err = whole.Upload(p)
		}
	} else {
		whole, err = h.d.NewInt32(total)
		if err == nil {
			p := make([]int32, total)
			for i, b := range bits {
				p[i] = int32(b)
			}
			err = whole.UploadInt32(p)
		}
	}
	if err != nil {
		h.t.Fatalf("alloc %s (%d %s): %v", name, n, t, err)
	}
	view, err := whole.Slice(guardLen, n)
	if err != nil {
		h.t.Fatalf("slice %s: %v", name, err)
	}
	g := &guarded{name: name, band: band, whole: whole, view: view}
	h.bufs = append(h.bufs, g)
	return g
}

// guardLenU8 bytes of band on each side of a uint8 buffer: 256 bytes, as
// for the others.
const guardLenU8 = 4 * guardLen

// bandU8 is the band byte of buffer i (uint8 buffers are inputs only).
func bandU8(i int) uint8 { return uint8(0xa5 + 16*i) }

// inU8 uploads x as a guarded uint8 input: its bands hold its own byte,
// so a kernel that read past x would see a byte that x does not hold.
func (h *harness) inU8(name string, x []uint8) *Buffer {
	h.t.Helper()
	band := bandU8(len(h.bufs))
	total := len(x) + 2*guardLenU8
	p := make([]uint8, total)
	for i := range p {
		p[i] = band
	}
	copy(p[guardLenU8:], x)
	whole, err := h.d.NewUint8(total)
	if err == nil {
		err = whole.UploadUint8(p)
	}
	if err != nil {
		h.t.Fatalf("alloc %s (%d uint8): %v", name, len(x), err)
	}
	view, err := whole.Slice(guardLenU8, len(x))
	if err != nil {
		h.t.Fatalf("slice %s: %v", name, err)
	}
	h.bufs = append(h.bufs, &guarded{name: name, band: uint32(band), whole: whole, view: view, isInput: true, u8: append([]uint8(nil), x...)})
	return view
}

// in uploads x as a guarded input.
func (h *harness) in(name string, x []float32) *Buffer {
	h.t.Helper()
	g := h.alloc(name, Float32, len(x))
	if err := g.view.Upload(x); err != nil {
		h.t.Fatalf("upload %s: %v", name, err)
	}
	g.isInput, g.f32 = true, append([]float32(nil), x...)
	return g.view
}

// inI32 uploads x as a guarded int32 input.
func (h *harness) inI32(name string, x []int32) *Buffer {
	h.t.Helper()
	g := h.alloc(name, Int32, len(x))
	if err := g.view.UploadInt32(x); err != nil {
		h.t.Fatalf("upload %s: %v", name, err)
	}
	g.isInput, g.i32 = true, append([]int32(nil), x...)
	return g.view
}

// out returns a guarded float32 output poisoned with NaN.
func (h *harness) out(name string, n int) *Buffer {
	h.t.Helper()
	return h.alloc(name, Float32, n).view
}

// outI32 returns a guarded int32 output poisoned with the NaN's bits.
func (h *harness) outI32(name string, n int) *Buffer {
	h.t.Helper()
	return h.alloc(name, Int32, n).view
}

// inout returns a guarded buffer holding x that the kernel updates in place
// (accumulators, SGD state): bands are checked, contents are not.
func (h *harness) inout(name string, x []float32) *Buffer {
	h.t.Helper()
	g := h.alloc(name, Float32, len(x))
	if err := g.view.Upload(x); err != nil {
		h.t.Fatalf("upload %s: %v", name, err)
	}
	return g.view
}

func (h *harness) read(b *Buffer) []float32 {
	h.t.Helper()
	got := make([]float32, b.Len())
	if err := b.Download(got); err != nil {
		h.t.Fatalf("download: %v", err)
	}
	return got
}

func (h *harness) readI32(b *Buffer) []int32 {
	h.t.Helper()
	got := make([]int32, b.Len())
	if err := b.DownloadInt32(got); err != nil {
		h.t.Fatalf("download: %v", err)
	}
	return got
}

// check verifies every guard band bit for bit and that every input is
// unchanged.
func (h *harness) check() {
	h.t.Helper()
	for _, g := range h.bufs {
		if g.u8 != nil {
			h.checkU8(g)
			continue
		}
		if g.whole.DType() == BFloat16 {
			h.checkBF16(g)
			continue
		}
		n := g.view.Len()
		bits := make([]uint32, g.whole.Len())
		if g.whole.DType() == Float32 {
			f := h.read(g.whole)
			for i, v := range f {
				bits[i] = math.Float32bits(v)
			}
		} else {
			for i, v := range h.readI32(g.whole) {
				bits[i] = uint32(v)
			}
		}
		bad := 0
		for i, b := range bits {
			if i >= guardLen && i < guardLen+n {
				continue
			}
			if b != g.band {
				if bad < 10 {
					h.t.Errorf("%s: guard band element %d (offset %d from the buffer) = %#08x, want the band's NaN %#08x (out-of-range write)",
						g.name, i, i-guardLen, b, g.band)
				}
				bad++
			}
		}
		if !g.isInput {
			continue
		}
		view := bits[guardLen : guardLen+n]
		for i, b := range view {
			var want uint32
			if g.f32 != nil {
				want = math.Float32bits(g.f32[i])
			} else {
				want = uint32(g.i32[i])
			}
			if b != want {
				if bad < 10 {
					h.t.Errorf("input %s[%d] = %#08x after the launch, want %#08x (input modified)", g.name, i, b, want)
				}
				bad++
			}
		}
	}
}

// checkU8 is check for a uint8 input: bands and contents unchanged.
func (h *harness) checkU8(g *guarded) {
	h.t.Helper()
	got := make([]uint8, g.whole.Len())
	if err := g.whole.DownloadUint8(got); err != nil {
		h.t.Fatalf("download %s: %v", g.name, err)
	}
	bad := 0
	for i, b := range got {
		want, what := uint8(g.band), "guard band"
		if j := i - guardLenU8; j >= 0 && j < len(g.u8) {
			want, what = g.u8[j], "input"
		}
		if b != want {
			if bad < 10 {
				h.t.Errorf("%s: %s byte %d (offset %d from the buffer) = %#02x, want %#02x", g.name, what, i, i-guardLenU8, b, want)
			}
			bad++
		}
	}
}

// checkClose compares got with want elementwise: |got − want| ≤ tol[i]
// (tol nil: exact, got == want, so −0 equals +0). A NaN want needs a NaN got
// (not the poison: an element still holding the poison was never written).
// It reports the first ten mismatches and the largest error.
func checkClose(t *testing.T, name string, got []float32, want []float64, tol []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d elements, want %d", name, len(got), len(want))
	}
	bad, maxErr, maxAt := 0, 0.0, -1
	for i, g := range got {
		w := want[i]
		var ok bool
		var e float64
		switch {
		case math.Float32bits(g) == poisonBits:
			ok = false
			e = math.Inf(1)
		case math.IsNaN(w):
			ok = math.IsNaN(float64(g))
		case tol == nil:
			ok = float64(g) == w
			e = math.Abs(float64(g) - w)
		default:
			e = math.Abs(float64(g) - w)
			ok = e <= tol[i]
		}
		if e > maxErr || (math.IsNaN(e) && maxAt < 0) {
			maxErr, maxAt = e, i
		}
		if !ok {
			if bad < 10 {
				switch {
				case math.Float32bits(g) == poisonBits:
					t.Errorf("%s[%d] was not written (still the NaN poison), want %g", name, i, w)
				case tol == nil:
					t.Errorf("%s[%d] = %g, want %g exactly", name, i, g, w)
				default:
					t.Errorf("%s[%d] = %g, want %g ± %.3g", name, i, g, w, tol[i])
				}
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements wrong; largest error %g at %d", name, bad, len(got), maxErr, maxAt)
	}
}

// checkExact32 is checkClose with an exact comparison against float32 wants.
func checkExact32(t *testing.T, name string, got, want []float32) {
	t.Helper()
	checkClose(t, name, got, to64(want), nil)
}

func checkExactI32(t *testing.T, name string, got, want []int32) {
	t.Helper()
	bad := 0
	for i := range got {
		if got[i] != want[i] {
			if bad < 10 {
				if uint32(got[i]) == poisonBits {
					t.Errorf("%s[%d] was not written (still the poison), want %d", name, i, want[i])
				} else {
					t.Errorf("%s[%d] = %d, want %d", name, i, got[i], want[i])
				}
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements wrong", name, bad, len(got))
	}
}

// sumBound is the tolerance of a float32 result computed with m roundings
// in any order (products, sums, fused or not): |error| ≤ (m+1)·u·Σ|terms|
// (Higham, Accuracy and Stability, §3.1), with abs[i] = Σ|terms| of element
// i computed in float64 from |inputs|.
func sumBound(m int, abs []float64) []float64 {
	tol := make([]float64, len(abs))
	for i, a := range abs {
		tol[i] = float64(m+1)*u*a + 1e-30
	}
	return tol
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func abs64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = math.Abs(float64(v))
	}
	return y
}

// smallInts returns n integers in [lo, hi] as float32. Products and sums of
// such values stay integers far below 2²⁴, so every float32 operation on
// them is exact and any summation order gives the same bits: the kernels
// must then match cpuref exactly.
func smallInts(rng *rand.Rand, n, lo, hi int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + rng.IntN(hi-lo+1))
	}
	return x
}

// uniform returns n values uniform in [−1, 1).
func uniform(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(2*rng.Float64() - 1)
	}
	return x
}

func newRand(name string) *rand.Rand {
	var h uint64 = 14695981039346656037
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(1, h))
}

// kv formats key=value pairs for sub-test names.
func kv(pairs ...any) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%v=%v", pairs[i], pairs[i+1])
	}
	return b.String()
}
