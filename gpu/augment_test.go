package gpu

import (
	"errors"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/data"
)

// The conformance case of augment_batch_v1 (kernels/augment.cu), against
// host/data's reference (Augment.Draw and Apply): the output is a copy of
// source values and zeros, so the comparison is bit for bit.

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"augment_batch_v1", []string{"augment_batch_v1"}, testAugmentBatch},
		conformanceCase{"augment_batch_v2", []string{"augment_batch_v2"}, testAugmentBatchU8})
	launcherTestedElsewhere["augment_batch_v1"] = true // TestAugmentLauncher
	launcherTestedElsewhere["augment_batch_v2"] = true // TestAugmentU8Launcher
}

// augCases is testAugmentBatch's sweep.
var augCases = []struct {
	m, c, h, w int
	rows       []int32
	aug        data.Augment
	seed, step uint64
}{
	{5, 1, 1, 1, []int32{0, 4}, data.Augment{Pad: 1, Flip: true}, 11, 0},
	{7, 3, 5, 4, []int32{6, 0, 3, 3, 1}, data.Augment{Pad: 2, Flip: true}, 11, 3},
	{7, 3, 5, 4, []int32{2, 2, 5}, data.Augment{Pad: 4}, 0x89ABCDEF_01234567, 1},
	{4, 2, 6, 7, []int32{1, 3, 0, 2, 1, 3, 0, 2}, data.Augment{Flip: true}, 9, 0x5_00000009},
	{4, 2, 6, 7, []int32{1, 3, 0}, data.Augment{}, 9, 9},
	{3, 3, 8, 300, []int32{2, 0, 1, 2}, data.Augment{Pad: 3, Flip: true}, 0xFFFFFFFF_FFFFFFFF, 0xFFFFFFFF_00000000},
	{9, 1, 3, 3, []int32{8, 7, 6, 5, 4, 3, 2, 1, 0}, data.Augment{Pad: 64, Flip: true}, 2, 5},
}

// testAugmentBatch sweeps sizes (W = 1, odd, more than a block), paddings
// (0: no crop, up to more than the image) and flips, with repeated rows
// and 64-bit seeds and steps whose high halves matter, and compares every
// output element with host/data's augmentation of image rows[i].
func testAugmentBatch(t *testing.T, d *Device) {
	for _, s := range augCases {
		t.Run(kv("M", s.m, "C", s.c, "H", s.h, "W", s.w, "N", len(s.rows), "aug", s.aug.String(), "seed", s.seed, "step", s.step), func(t *testing.T) {
			rng := newRand(t.Name())
			size := s.c * s.h * s.w
			src := uniform(rng, s.m*size)
			want := make([]float32, len(s.rows)*size)
			for i, r := range s.rows {
				dr := s.aug.Draw(s.seed, s.step, uint64(r))
				if err := s.aug.Apply(want[i*size:(i+1)*size], src[int(r)*size:(int(r)+1)*size], s.c, s.h, s.w, dr); err != nil {
					t.Fatal(err)
				}
			}
			h := newHarness(t, d)
			dst := h.out("dst", len(want))
			if err := d.AugmentBatch(s.aug.Pad, s.aug.Flip, s.seed, s.step, s.c, s.h, s.w,
				h.in("src", src), h.inI32("rows", s.rows), dst); err != nil {
				t.Fatal(err)
			}
			checkSameBits(t, "dst", h.read(dst), want)
			h.check()
		})
	}
}

// testAugmentBatchU8 is testAugmentBatch for augment_batch_v2: src is
// random bytes (every value 0–255 in the larger cases), lut a table of
// random values (distinct, so that a byte looked up in the wrong channel's
// table, or the wrong byte, gives another value) and the reference is the
// CPU's route: the table lookup of image rows[i], then host/data's
// augmentation of it. The output is a copy of table entries and zeros, so
// the comparison is bit for bit.
func testAugmentBatchU8(t *testing.T, d *Device) {
	for _, s := range augCases {
		t.Run(kv("M", s.m, "C", s.c, "H", s.h, "W", s.w, "N", len(s.rows), "aug", s.aug.String(), "seed", s.seed, "step", s.step), func(t *testing.T) {
			rng := newRand(t.Name())
			size := s.c * s.h * s.w
			src := make([]uint8, s.m*size)
			for i := range src {
				src[i] = uint8(rng.IntN(256))
			}
			lut := uniform(rng, s.c*256)
			want := make([]float32, len(s.rows)*size)
			img := make([]float32, size)
			for i, r := range s.rows {
				for j := range img {
					img[j] = lut[j/(s.h*s.w)*256+int(src[int(r)*size+j])]
				}
				dr := s.aug.Draw(s.seed, s.step, uint64(r))
				if err := s.aug.Apply(want[i*size:(i+1)*size], img, s.c, s.h, s.w, dr); err != nil {
					t.Fatal(err)
				}
			}
			h := newHarness(t, d)
			dst := h.out("dst", len(want))
			if err := d.AugmentBatchU8(s.aug.Pad, s.aug.Flip, s.seed, s.step, s.c, s.h, s.w,
				h.inU8("src", src), h.in("lut", lut), h.inI32("rows", s.rows), dst); err != nil {
				t.Fatal(err)
			}
			checkSameBits(t, "dst", h.read(dst), want)
			h.check()
		})
	}
}

// TestAugmentDrawsVary checks that augCases draw both flip bits and
// several crop offsets, so that a kernel ignoring the draw fails
// testAugmentBatch.
func TestAugmentDrawsVary(t *testing.T) {
	flips, offsets := map[bool]bool{}, map[[2]int]bool{}
	for _, s := range augCases {
		for _, r := range s.rows {
			dr := s.aug.Draw(s.seed, s.step, uint64(r))
			if s.aug.Flip {
				flips[dr.Flip] = true
			}
			offsets[[2]int{dr.DY, dr.DX}] = true
		}
	}
	if got := len(flips); got != 2 {
		t.Errorf("%d distinct flip bits, want 2", got)
	}
	if got := len(offsets); got < 10 {
		t.Errorf("%d distinct crop offsets, want ≥ 10", got)
	}
}

// TestAugmentLauncher is TestLaunchers for augment_batch_v1: the grid and
// every argument, the 64-bit seed and step split into their halves, and
// no host allocation (checkFakeLaunch).
func TestAugmentLauncher(t *testing.T) {
	d, f := openFake(t)
	src, rows, dst := mustF32(t, d, 4*3*5*7), mustI32(t, d, 6), mustF32(t, d, 6*3*5*7)
	call := func() error {
		return d.AugmentBatch(4, true, 0x89ABCDEF_01234567, 0x5_00000009, 3, 5, 7, src, rows, dst)
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	U32 := func(v uint32) uint64 { return uint64(int64(int32(v))) } // an int parameter, sign-extended
	want := map[string]uint64{"src": P(src), "rows": P(rows), "dst": P(dst), "N": 6, "C": 3, "H": 5, "W": 7,
		"pad": 4, "flip": 1, "seed_lo": U32(0x01234567), "seed_hi": U32(0x89ABCDEF), "step_lo": 9, "step_hi": 5}
	checkFakeLaunch(t, f.last, "augment_batch_v1", Dim3{(6*3*5*7 + 255) / 256, 1, 1}, Dim3{256, 1, 1}, want, call)
}

// TestAugmentU8Launcher is TestLaunchers for augment_batch_v2.
func TestAugmentU8Launcher(t *testing.T) {
	d, f := openFake(t)
	src, lut, rows, dst := mustU8(t, d, 4*3*5*7), mustF32(t, d, 3*256), mustI32(t, d, 6), mustF32(t, d, 6*3*5*7)
	call := func() error {
		return d.AugmentBatchU8(4, true, 0x89ABCDEF_01234567, 0x5_00000009, 3, 5, 7, src, lut, rows, dst)
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	U32 := func(v uint32) uint64 { return uint64(int64(int32(v))) } // an int parameter, sign-extended
	want := map[string]uint64{"src": P(src), "lut": P(lut), "rows": P(rows), "dst": P(dst), "N": 6, "C": 3, "H": 5, "W": 7,
		"pad": 4, "flip": 1, "seed_lo": U32(0x01234567), "seed_hi": U32(0x89ABCDEF), "step_lo": 9, "step_hi": 5}
	checkFakeLaunch(t, f.last, "augment_batch_v2", Dim3{(6*3*5*7 + 255) / 256, 1, 1}, Dim3{256, 1, 1}, want, call)
}

// TestAugmentU8Validation checks AugmentBatchU8's refusals.
func TestAugmentU8Validation(t *testing.T) {
	d, _ := openFake(t)
	src, lut, rows, dst := mustU8(t, d, 4*2*3*3), mustF32(t, d, 2*256), mustI32(t, d, 2), mustF32(t, d, 2*2*3*3)
	srcF, rowsF, lut1 := mustF32(t, d, 4*2*3*3), mustF32(t, d, 2), mustF32(t, d, 256)
	for _, c := range []struct {
		name string
		err  error
	}{
		{"pad=-1", d.AugmentBatchU8(-1, false, 0, 0, 2, 3, 3, src, lut, rows, dst)},
		{"pad=65", d.AugmentBatchU8(MaxAugmentPad+1, false, 0, 0, 2, 3, 3, src, lut, rows, dst)},
		{"C=0", d.AugmentBatchU8(1, false, 0, 0, 0, 3, 3, src, lut, rows, dst)},
		{"src not whole images", d.AugmentBatchU8(1, false, 0, 0, 2, 3, 4, src, lut, rows, dst)},
		{"src float32", d.AugmentBatchU8(1, false, 0, 0, 2, 3, 3, srcF, lut, rows, dst)},
		{"lut of one channel", d.AugmentBatchU8(1, false, 0, 0, 2, 3, 3, src, lut1, rows, dst)},
		{"nil lut", d.AugmentBatchU8(1, false, 0, 0, 2, 3, 3, src, nil, rows, dst)},
		{"dst too short", d.AugmentBatchU8(1, false, 0, 0, 2, 3, 3, src, lut, rows, lut1)},
		{"rows float32", d.AugmentBatchU8(1, false, 0, 0, 2, 3, 3, src, lut, rowsF, dst)},
		{"nil rows", d.AugmentBatchU8(1, false, 0, 0, 2, 3, 3, src, lut, nil, dst)},
		{"gather of bytes", d.GatherRows(3, src, rows, dst)},
	} {
		t.Run("case="+c.name, func(t *testing.T) {
			if !errors.Is(c.err, geom.ErrGeometry) {
				t.Errorf("error %v, want one wrapping geom.ErrGeometry", c.err)
			}
		})
	}
}

// TestAugmentValidation checks the launcher's refusals.
func TestAugmentValidation(t *testing.T) {
	d, _ := openFake(t)
	src, rows, dst := mustF32(t, d, 4*2*3*3), mustI32(t, d, 2), mustF32(t, d, 2*2*3*3)
	rowsF := mustF32(t, d, 2)
	for _, c := range []struct {
		name string
		err  error
	}{
		{"pad=-1", d.AugmentBatch(-1, false, 0, 0, 2, 3, 3, src, rows, dst)},
		{"pad=65", d.AugmentBatch(MaxAugmentPad+1, false, 0, 0, 2, 3, 3, src, rows, dst)},
		{"C=0", d.AugmentBatch(1, false, 0, 0, 0, 3, 3, src, rows, dst)},
		{"src not whole images", d.AugmentBatch(1, false, 0, 0, 2, 3, 4, src, rows, dst)},
		{"dst too short", d.AugmentBatch(1, false, 0, 0, 2, 3, 3, src, rows, src)},
		{"dst is src", d.AugmentBatch(1, false, 0, 0, 2, 3, 3, dst, rows, dst)},
		{"rows float32", d.AugmentBatch(1, false, 0, 0, 2, 3, 3, src, rowsF, dst)},
		{"nil rows", d.AugmentBatch(1, false, 0, 0, 2, 3, 3, src, nil, dst)},
	} {
		t.Run("case="+c.name, func(t *testing.T) {
			if !errors.Is(c.err, geom.ErrGeometry) {
				t.Errorf("error %v, want one wrapping geom.ErrGeometry", c.err)
			}
		})
	}
}
