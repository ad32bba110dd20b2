package cpubackend

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

// TestCPUParallelPasses checks the CPU backend's chunked ReLU and max-pool
// passes (with its own 2×2 stride-2 max-pool) against cpuref's serial
// functions for 1 to 3 threads: the values must be bit-identical, argmax
// must be the flat index into the whole x, also for ties, ±0 and NaN.
// Sizes are large enough to be split. Outputs are poisoned with NaN first,
// so an unwritten element fails.
func TestCPUParallelPasses(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, g := range []geom.PoolGeom{
		{N: 64, C: 8, H: 24, W: 24, R: 2, S: 2, StrideH: 2, StrideW: 2},
		{N: 37, C: 5, H: 25, W: 23, R: 3, S: 3, StrideH: 2, StrideW: 2}, // overlapping windows
		{N: 3, C: 2, H: 5, W: 5, R: 2, S: 2, StrideH: 2, StrideW: 2},    // too small to split
		{N: 40, C: 7, H: 13, W: 27, R: 2, S: 2, StrideH: 2, StrideW: 2}, // odd sizes
		{N: 40, C: 7, H: 13, W: 27, R: 2, S: 2, StrideH: 1, StrideW: 2}, // 2×2, not stride 2
	} {
		// Normal values with ties, runs of +0 and −0 (whole windows of
		// zeros, as after a ReLU), and NaNs.
		x := make([]float32, g.XLen())
		negZero := float32(math.Copysign(0, -1))
		for i := range x {
			switch {
			case i%97 == 0:
				x[i] = float32(math.NaN())
			case i%61 < 8:
				x[i] = [2]float32{0, negZero}[rng.IntN(2)]
			case i%7 == 0:
				x[i] = x[i-i%14] // ties
			default:
				x[i] = float32(rng.NormFloat64())
			}
		}
		dy := make([]float32, g.YLen())
		for i := range dy {
			dy[i] = float32(rng.NormFloat64())
		}
		wantY, wantAM := make([]float32, g.YLen()), make([]int32, g.YLen())
		mustNil(t, cpuref.MaxPoolForward(g, x, wantY, wantAM))
		wantDX := make([]float32, g.XLen())
		mustNil(t, cpuref.MaxPoolBackward(g, dy, wantAM, wantDX))
		wantR, wantRB := make([]float32, len(x)), make([]float32, len(x))
		mustNil(t, cpuref.ReLUForward(x, wantR))
		mustNil(t, cpuref.ReLUBackward(x, x, wantRB))
		for threads := 1; threads <= 3; threads++ {
			name := g.String() + ",threads=" + strconv.Itoa(threads)
			be, err := NewCPUBackend(threads)
			mustNil(t, err)
			tx, _ := be.NewTensor(len(x))
			ty, _ := be.NewTensor(g.YLen())
			tam, _ := be.NewIndexTensor(g.YLen())
			tdy, _ := be.NewTensor(g.YLen())
			tdx, _ := be.NewTensor(len(x))
			mustNil(t, be.Upload(tx, x))
			mustNil(t, be.Upload(tdy, dy))
			mustNil(t, be.Fill(ty, float32(math.NaN())))
			mustNil(t, be.Fill(tdx, float32(math.NaN())))
			mustNil(t, be.MaxPoolForward(g, tx, ty, tam))
			mustNil(t, be.MaxPoolBackward(g, tdy, tam, tdx))
			equalBits(t, name+" max-pool y", ty.(*cpuTensor).f, wantY)
			equalBits(t, name+" max-pool dx", tdx.(*cpuTensor).f, wantDX)
			for i, a := range tam.(*cpuTensor).i {
				if a != wantAM[i] {
					t.Fatalf("%s: argmax[%d] = %d, want %d", name, i, a, wantAM[i])
				}
			}
			mustNil(t, be.Fill(tdx, float32(math.NaN())))
			mustNil(t, be.ReLUForward(tx, tdx))
			equalBits(t, name+" relu", tdx.(*cpuTensor).f, wantR)
			mustNil(t, be.Fill(tdx, float32(math.NaN())))
			mustNil(t, be.ReLUBackward(tx, tx, tdx))
			equalBits(t, name+" relu backward", tdx.(*cpuTensor).f, wantRB)

			// An argmax outside its plane is an error before any write.
			am := append([]int32(nil), wantAM...)
			am[len(am)-1] = 0
			mustNil(t, be.UploadIndex(tam, am))
			mustNil(t, be.Fill(tdx, 7))
			err = be.MaxPoolBackward(g, tdy, tam, tdx)
			if err == nil || !strings.Contains(err.Error(), "outside") {
				t.Errorf("%s: MaxPoolBackward with a bad argmax = %v, want an error", name, err)
			}
			for i, v := range tdx.(*cpuTensor).f {
				if v != 7 {
					t.Fatalf("%s: MaxPoolBackward with a bad argmax wrote dx[%d] = %g", name, i, v)
				}
			}
			mustNil(t, be.Close())
		}
	}
}

// equalBits fails unless got and want hold the same float32 bit patterns.
func equalBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d = %g, want %g", name, i, got[i], want[i])
		}
	}
}

func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCPUAddAccumulate checks Add (y = a + b) and Accumulate (d = d + s),
// split over 1 to 3 threads, against the scalar loops, bit for bit, on
// lengths that are not multiples of 8 or of the chunks, with ±0,
// infinities and NaNs (in one operand: which NaN is kept where both are
// NaN is checked by cpuref's TestVecKernels). Outputs are poisoned with
// NaN first, so an unwritten element fails.
func TestCPUAddAccumulate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc12345), math.Float32frombits(0xff812345)}
	for _, n := range []int{1, 7, 8, 100, 1<<15 + 3, 3*minChunk + 5} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			switch k := rng.IntN(16); {
			case k < len(special):
				a[i] = special[k]
			case k < 2*len(special) && a[i] == a[i]:
				b[i] = special[k-len(special)]
			}
		}
		wantAdd, wantAcc := make([]float32, n), make([]float32, n)
		for i := range a {
			wantAdd[i] = a[i] + b[i]
			wantAcc[i] = b[i] + a[i]
		}
		for threads := 1; threads <= 3; threads++ {
			name := "n=" + strconv.Itoa(n) + ",threads=" + strconv.Itoa(threads)
			be, err := NewCPUBackend(threads)
			mustNil(t, err)
			ta, _ := be.NewTensor(n)
			tb, _ := be.NewTensor(n)
			ty, _ := be.NewTensor(n)
			mustNil(t, be.Upload(ta, a))
			mustNil(t, be.Upload(tb, b))
			mustNil(t, be.Fill(ty, float32(math.NaN())))
			mustNil(t, be.Add(ta, tb, ty))
			equalBits(t, name+" add", ty.(*cpuTensor).f, wantAdd)
			mustNil(t, be.Accumulate(ta, tb)) // a += b
			equalBits(t, name+" accumulate", ta.(*cpuTensor).f, wantAcc)
			short, _ := be.NewTensor(n + 1)
			if err := be.Add(ta, tb, short); err == nil {
				t.Errorf("%s: Add into %d elements = nil, want an error", name, n+1)
			}
			if err := be.Accumulate(short, tb); err == nil {
				t.Errorf("%s: Accumulate into %d elements = nil, want an error", name, n+1)
			}
			mustNil(t, be.Close())
		}
	}
}

// TestCPUAddReLU checks AddReLU (y = max(a + b, 0)), split over 1 to 3
// threads, against Add and then ReLUForward, bit for bit, on lengths
// that are not multiples of 8 or of the chunks, with sums of ±0,
// infinities and NaNs, out of place (y poisoned with NaN first) and in
// place; a y of another length is an error that writes nothing.
func TestCPUAddReLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc12345), math.Float32frombits(0xff812345)}
	for _, n := range []int{1, 7, 8, 100, 1<<15 + 3, 3*minChunk + 5} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			switch k := rng.IntN(16); {
			case k < len(special):
				a[i] = special[k]
			case k < 14:
				b[i] = -a[i] // a sum of ±0
			}
		}
		for threads := 1; threads <= 3; threads++ {
			name := "n=" + strconv.Itoa(n) + ",threads=" + strconv.Itoa(threads)
			be, err := NewCPUBackend(threads)
			mustNil(t, err)
			ta, _ := be.NewTensor(n)
			tb, _ := be.NewTensor(n)
			want, _ := be.NewTensor(n)
			ty, _ := be.NewTensor(n)
			mustNil(t, be.Upload(ta, a))
			mustNil(t, be.Upload(tb, b))
			mustNil(t, be.Add(ta, tb, want))
			mustNil(t, be.ReLUForward(want, want))
			mustNil(t, be.Fill(ty, float32(math.NaN())))
			mustNil(t, be.AddReLU(ta, tb, ty))
			equalBits(t, name+" add+relu", ty.(*cpuTensor).f, want.(*cpuTensor).f)
			mustNil(t, be.AddReLU(ta, tb, ta))
			equalBits(t, name+" add+relu in place", ta.(*cpuTensor).f, want.(*cpuTensor).f)
			short, _ := be.NewTensor(n + 1)
			mustNil(t, be.Fill(short, 7))
			if err := be.AddReLU(tb, tb, short); err == nil {
				t.Errorf("%s: AddReLU into %d elements = nil, want an error", name, n+1)
			}
			for i, v := range short.(*cpuTensor).f {
				if v != 7 {
					t.Errorf("%s: AddReLU wrote y[%d] = %g before its error", name, i, v)
					break
				}
			}
			mustNil(t, be.Close())
		}
	}
}
