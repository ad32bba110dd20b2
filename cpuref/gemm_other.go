//go:build !amd64

package cpuref

import "unsafe"

// useFMAGEMM reports whether the convolutions run on the GEMM of gemm.go;
// off this architecture, where it has no assembly micro-kernels, they run
// on gonum's blas32 Sgemm.
var useFMAGEMM = false

// The micro-kernels in Go (see gemmKernelGo), for callers of gemm on
// architectures without assembly ones.
func gemmKernel24(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool) {
	gemmKernelPtr(24, k, a, arow, astep, b, brow, c, ldc, load)
}

func gemmKernel16(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool) {
	gemmKernelPtr(16, k, a, arow, astep, b, brow, c, ldc, load)
}

func gemmKernel8(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool) {
	gemmKernelPtr(8, k, a, arow, astep, b, brow, c, ldc, load)
}

func gemmKernelPtr(width, k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool) {
	na, nb := 1, 1
	if k > 0 {
		na = (gemmMR-1)*arow + (k-1)*astep + 1
		nb = (k-1)*brow + width
	}
	gemmKernelGo(width, k, unsafe.Slice(a, na), arow, astep, unsafe.Slice(b, nb), brow,
		unsafe.Slice(c, (gemmMR-1)*ldc+width), ldc, load)
}
