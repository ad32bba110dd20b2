package cpuref

import (
	"math"
	"testing"
)

// TestGEMMKernelsZ checks the AVX-512 kernels against their Go forms bit
// for bit: k from 0 to past a cache block, C loaded and not, A by rows and
// transposed, B by rows and through offsets (in any order), the floats
// around C's tile (its row gaps) left alone.
func TestGEMMKernelsZ(t *testing.T) {
	if !avx512Run {
		t.Skip("this CPU lacks AVX-512F")
	}
	rng := newRand(23)
	for _, k := range []int{0, 1, 2, 7, 16, 144, 300} {
		for _, load := range []bool{false, true} {
			for _, trans := range []bool{false, true} {
				arow, astep := k+3, 1
				if trans {
					arow, astep = 1, 11
				}
				a := randFloats[float32](rng, 7*arow+max(k-1, 0)*astep+1)
				const brow, ldc = 37, 40
				b := randFloats[float32](rng, max(k-1, 0)*brow+32)
				boff := make([]int32, k+1)
				for p := range k {
					boff[p] = int32(rng.IntN(len(b) - 31))
				}
				c := randFloats[float32](rng, 8*ldc)
				c[5] = float32(math.NaN())
				for _, off := range []bool{false, true} {
					want, got := append([]float32(nil), c...), append([]float32(nil), c...)
					if off {
						gemmKernelZGo(k, a, arow, astep, b, 0, boff[:k], want, ldc, load)
						gemmKernelOffZ(k, &a[0], arow, astep, &b[0], &boff[0], &got[0], ldc, load)
					} else {
						gemmKernelZGo(k, a, arow, astep, b, brow, nil, want, ldc, load)
						gemmKernelZ(k, &a[0], arow, astep, &b[0], brow, &got[0], ldc, load)
					}
					checkBits(t, "C", got, want)
				}
			}
		}
	}
}

// TestGEMMKernelsRowsZ checks the AVX-512 row-walking kernels against
// their Go form bit for bit, A's 8 rows at unrelated places of x.
func TestGEMMKernelsRowsZ(t *testing.T) {
	if !avx512Run {
		t.Skip("this CPU lacks AVX-512F")
	}
	rng := newRand(24)
	x := randFloats[float32](rng, 4000)
	for _, width := range []int{16, 32} {
		for _, sz := range []struct{ nrows, q, jump int }{{0, 5, 1}, {1, 1, 0}, {3, 7, 2}, {28, 28, 1}, {7, 7, 1}} {
			for _, load := range []bool{false, true} {
				var a [8]*float32
				var as [8][]float32
				span := max((sz.nrows-1)*(sz.q+sz.jump)+sz.q, 1)
				for i := range a {
					o := rng.IntN(len(x) - span)
					a[i], as[i] = &x[o], x[o:o+span]
				}
				brow, ldc := width+5, width+3
				b := randFloats[float32](rng, max(sz.nrows*sz.q-1, 0)*brow+width)
				c := randFloats[float32](rng, 8*ldc)
				want, got := append([]float32(nil), c...), append([]float32(nil), c...)
				gemmKernelRowsZGo(width, sz.nrows, as, sz.q, sz.jump, b, brow, want, ldc, load)
				kern := gemmKernelRowsZ16
				if width == 32 {
					kern = gemmKernelRowsZ32
				}
				kern(sz.nrows, &a, sz.q, 4*sz.jump, &b[0], brow, &got[0], ldc, load)
				checkBits(t, "C", got, want)
			}
		}
	}
}
