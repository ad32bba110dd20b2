//go:build !amd64

package cpuref

import "unsafe"

// useAVX512: off amd64 the frame path does not run (useFMAGEMM is false).
var useAVX512 = false

// avx512Run: the kernels below are Go.
var avx512Run = true

func gemmKernelZ(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool) {
	na, nb := 1, 1
	if k > 0 {
		na, nb = 7*arow+(k-1)*astep+1, (k-1)*brow+32
	}
	gemmKernelZGo(k, unsafe.Slice(a, na), arow, astep, unsafe.Slice(b, nb), brow, nil, unsafe.Slice(c, 7*ldc+32), ldc, load)
}

func gemmKernelOffZ(k int, a *float32, arow, astep int, b *float32, boff *int32, c *float32, ldc int, load bool) {
	na, nb := 1, 1
	offs := unsafe.Slice(boff, max(k, 1))[:k]
	for _, o := range offs {
		nb = max(nb, int(o)+32)
	}
	if k > 0 {
		na = 7*arow + (k-1)*astep + 1
	}
	gemmKernelZGo(k, unsafe.Slice(a, na), arow, astep, unsafe.Slice(b, nb), 0, offs, unsafe.Slice(c, 7*ldc+32), ldc, load)
}

func gemmKernelRowsZ16(nrows int, a *[8]*float32, q, jumpb int, b *float32, brow int, c *float32, ldc int, load bool) {
	gemmKernelRowsZPtr(16, nrows, a, q, jumpb/4, b, brow, c, ldc, load)
}

func gemmKernelRowsZ32(nrows int, a *[8]*float32, q, jumpb int, b *float32, brow int, c *float32, ldc int, load bool) {
	gemmKernelRowsZPtr(32, nrows, a, q, jumpb/4, b, brow, c, ldc, load)
}

func gemmKernelRowsZPtr(width, nrows int, a *[8]*float32, q, jump int, b *float32, brow int, c *float32, ldc int, load bool) {
	nb := 1
	if nrows > 0 && q > 0 {
		nb = (nrows*q-1)*brow + width
	}
	gemmKernelRowsZGo(width, nrows, rowsZSlices(a, nrows, q, jump), q, jump, unsafe.Slice(b, nb), brow, unsafe.Slice(c, 7*ldc+width), ldc, load)
}
