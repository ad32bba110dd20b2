//go:build !amd64

package cpuref

import (
	"slices"
	"unsafe"
)

// useFMAGEMM reports whether the convolutions run on the GEMM of gemm.go;
// off this architecture, where it has no assembly micro-kernels, they run
// on gonum's blas32 Sgemm.
var useFMAGEMM = false

// gemmKernelsRun reports whether the micro-kernels can run on this CPU:
// here they are Go.
var gemmKernelsRun = true

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

// The implicit-GEMM micro-kernels in Go (see gemmKernelOffGo).
func gemmKernelOff24(k int, a *float32, arow, astep int, b0, b1, b2 *float32, boff *int32, c *float32, ldc int, load bool) {
	gemmKernelOffPtr(24, k, a, arow, astep, [3]*float32{b0, b1, b2}, boff, c, ldc, load)
}

func gemmKernelOff16(k int, a *float32, arow, astep int, b0, b1, b2 *float32, boff *int32, c *float32, ldc int, load bool) {
	gemmKernelOffPtr(16, k, a, arow, astep, [3]*float32{b0, b1, b2}, boff, c, ldc, load)
}

func gemmKernelOff8(k int, a *float32, arow, astep int, b0, b1, b2 *float32, boff *int32, c *float32, ldc int, load bool) {
	gemmKernelOffPtr(8, k, a, arow, astep, [3]*float32{b0, b1, b2}, boff, c, ldc, load)
}

func gemmKernelOffPtr(width, k int, a *float32, arow, astep int, bp [3]*float32, boff *int32, c *float32, ldc int, load bool) {
	na := 1
	var offs []int32
	var b [3][]float32
	if k > 0 {
		na = (gemmMR-1)*arow + (k-1)*astep + 1
		offs = unsafe.Slice(boff, k)
		hi := int(slices.Max(offs)) + 8
		for v := range width / 8 {
			b[v] = unsafe.Slice(bp[v], hi)
		}
	}
	gemmKernelOffGo(width, k, unsafe.Slice(a, na), arow, astep, b, offs, unsafe.Slice(c, (gemmMR-1)*ldc+width), ldc, load)
}

// The row-walking micro-kernels in Go (see gemmKernelRowsGo).
func gemmKernelRows24(nrows int, a0, a1, a2, a3 *float32, q, jump int, b *float32, brow int, c *float32, ldc int, load bool) {
	gemmKernelRowsPtr(24, nrows, [gemmMR]*float32{a0, a1, a2, a3}, q, jump, b, brow, c, ldc, load)
}

func gemmKernelRows16(nrows int, a0, a1, a2, a3 *float32, q, jump int, b *float32, brow int, c *float32, ldc int, load bool) {
	gemmKernelRowsPtr(16, nrows, [gemmMR]*float32{a0, a1, a2, a3}, q, jump, b, brow, c, ldc, load)
}

func gemmKernelRows8(nrows int, a0, a1, a2, a3 *float32, q, jump int, b *float32, brow int, c *float32, ldc int, load bool) {
	gemmKernelRowsPtr(8, nrows, [gemmMR]*float32{a0, a1, a2, a3}, q, jump, b, brow, c, ldc, load)
}

func gemmKernelRowsPtr(width, nrows int, ap [gemmMR]*float32, q, jump int, b *float32, brow int, c *float32, ldc int, load bool) {
	var a [gemmMR][]float32
	var bs []float32
	if k := nrows * q; k > 0 {
		for i := range a {
			a[i] = unsafe.Slice(ap[i], (nrows-1)*(q+jump)+q)
		}
		bs = unsafe.Slice(b, (k-1)*brow+width)
	}
	gemmKernelRowsGo(width, nrows, a, q, jump, bs, brow, unsafe.Slice(c, (gemmMR-1)*ldc+width), ldc, load)
}

// The scatter-add micro-kernels in Go (see gemmKernelAddGo).
func gemmKernelAdd24(k int, a *float32, arow, astep int, b *float32, brow int, d0, d1, d2 *float32, doff *int32) {
	gemmKernelAddPtr(24, k, a, arow, astep, b, brow, [3]*float32{d0, d1, d2}, doff)
}

func gemmKernelAdd16(k int, a *float32, arow, astep int, b *float32, brow int, d0, d1, d2 *float32, doff *int32) {
	gemmKernelAddPtr(16, k, a, arow, astep, b, brow, [3]*float32{d0, d1, d2}, doff)
}

func gemmKernelAdd8(k int, a *float32, arow, astep int, b *float32, brow int, d0, d1, d2 *float32, doff *int32) {
	gemmKernelAddPtr(8, k, a, arow, astep, b, brow, [3]*float32{d0, d1, d2}, doff)
}

func gemmKernelAddPtr(width, k int, a *float32, arow, astep int, b *float32, brow int, dp [3]*float32, doff *int32) {
	na, nb := 1, 1
	if k > 0 {
		na = (gemmMR-1)*arow + (k-1)*astep + 1
		nb = (k-1)*brow + width
	}
	offs := unsafe.Slice(doff, gemmMR)
	hi := int(slices.Max(offs)) + 8
	var d [3][]float32
	for v := range width / 8 {
		d[v] = unsafe.Slice(dp[v], hi)
	}
	gemmKernelAddGo(width, k, unsafe.Slice(a, na), arow, astep, unsafe.Slice(b, nb), brow, d, offs)
}

// gemmKernelRows8x8 in Go (see gemmKernelRows8x8Go).
func gemmKernelRows8x8(nrows int, a *[8]*float32, q, jumpb int, b *float32, c *float32, ldc int, load bool) {
	jump := jumpb / 4
	var as [8][]float32
	var bs []float32
	if k := nrows * q; k > 0 {
		for i := range as {
			as[i] = unsafe.Slice(a[i], (nrows-1)*(q+jump)+q)
		}
		bs = unsafe.Slice(b, 8*k)
	}
	gemmKernelRows8x8Go(nrows, as, q, jump, bs, unsafe.Slice(c, 7*ldc+8), ldc, load)
}
