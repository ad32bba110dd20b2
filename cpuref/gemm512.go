package cpuref

import "unsafe"

// The AVX-512 micro-kernels of the frame path (gemm512_amd64.s, written
// by scripts/gen-gemm512.py): 8×32 and 8×16 tiles of C in ZMM registers,
// for CPUs with AVX-512F whose operating system saves the ZMM state. Each
// element of C is one chain of fused multiply-adds over the inner index in
// order, from C when load, else from 0 — the chains of the AVX2 kernels,
// so the results are the same bits; only more of them run at once. The Go
// forms below define them and stand in off amd64 (where useAVX512 is
// false and the frame path does not run).

// gemmKernelZGo: C[i,j] (i < 8, j < 32, row stride ldc) over k steps with
// A[i,p] = a[i·arow + p·astep] and B[p,j] = b[p·brow + j], or with
// B[p,j] = b[boff[p] + j] when boff is not nil.
func gemmKernelZGo(k int, a []float32, arow, astep int, b []float32, brow int, boff []int32, c []float32, ldc int, load bool) {
	for i := range 8 {
		for j := range 32 {
			var s float32
			if load {
				s = c[i*ldc+j]
			}
			for p := range k {
				bi := p*brow + j
				if boff != nil {
					bi = int(boff[p]) + j
				}
				s = fma32(a[i*arow+p*astep], b[bi], s)
			}
			c[i*ldc+j] = s
		}
	}
}

// gemmKernelRowsZGo: C[i,j] (i < 8, j < width) over nrows·q steps with
// A[i, t·q + e] = a[i][t·(q + jump) + e] and B[p,j] = b[p·brow + j].
func gemmKernelRowsZGo(width, nrows int, a [8][]float32, q, jump int, b []float32, brow int, c []float32, ldc int, load bool) {
	for i := range 8 {
		for j := range width {
			var s float32
			if load {
				s = c[i*ldc+j]
			}
			for t := range nrows {
				for e := range q {
					s = fma32(a[i][t*(q+jump)+e], b[(t*q+e)*brow+j], s)
				}
			}
			c[i*ldc+j] = s
		}
	}
}

// rowsZSlices returns the 8 rows of a row-walking kernel's A as slices.
func rowsZSlices(a *[8]*float32, nrows, q, jump int) [8][]float32 {
	var s [8][]float32
	n := 1
	if nrows > 0 && q > 0 {
		n = (nrows-1)*(q+jump) + q
	}
	for i, p := range a {
		s[i] = unsafe.Slice(p, n)
	}
	return s
}
