package cpuref

// useFMAGEMM reports whether the convolutions run on the AVX2+FMA GEMM of
// gemm.go: the CPU has AVX, AVX2 and FMA and the operating system saves
// the YMM registers (XCR0 bits 1 and 2). Otherwise they run on gonum's
// blas32 Sgemm. Tests switch it to compare the two paths.
var useFMAGEMM = hasAVX2FMA()

// gemmKernelsRun reports whether the micro-kernels can run on this CPU
// (the assembly ones need AVX2 and FMA); tests that call them skip if not.
var gemmKernelsRun = hasAVX2FMA()

func hasAVX2FMA() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	if xcr0, _ := xgetbv0(); xcr0&6 != 6 {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	const avx2 = 1 << 5
	return ebx7&avx2 != 0
}

// cpuid executes CPUID with EAX = eaxArg and ECX = ecxArg.
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// xgetbv0 executes XGETBV with ECX = 0 (XCR0); only valid when CPUID
// reports OSXSAVE.
func xgetbv0() (eax, edx uint32)

// gemmKernel24, gemmKernel16 and gemmKernel8 are the AVX2+FMA
// micro-kernels of the 4×24, 4×16 and 4×8 tiles (see gemm_amd64.s): c is
// 4 rows of ldc floats, A[i,p] = a[i·arow + p·astep], B[p,j] = b[p·brow + j].
//
//go:noescape
func gemmKernel24(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool)

//go:noescape
func gemmKernel16(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool)

//go:noescape
func gemmKernel8(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool)

// gemmKernelOff24, gemmKernelOff16 and gemmKernelOff8 are the implicit-GEMM
// micro-kernels (see gemm_amd64.s): the tiles of gemmKernel24/16/8, with
// B[p, 8·v + e] = b_v[boff[p] + e] for the vectors v < W/8.
//
//go:noescape
func gemmKernelOff24(k int, a *float32, arow, astep int, b0, b1, b2 *float32, boff *int32, c *float32, ldc int, load bool)

//go:noescape
func gemmKernelOff16(k int, a *float32, arow, astep int, b0, b1, b2 *float32, boff *int32, c *float32, ldc int, load bool)

//go:noescape
func gemmKernelOff8(k int, a *float32, arow, astep int, b0, b1, b2 *float32, boff *int32, c *float32, ldc int, load bool)

// gemmKernelRows24, gemmKernelRows16 and gemmKernelRows8 are the
// row-walking micro-kernels (see gemm_amd64.s): the tiles of
// gemmKernel24/16/8 over k = nrows·q steps, with
// A[i, t·q + e] = a_i[t·(q + jump) + e] and B[p, j] = b[p·brow + j].
//
//go:noescape
func gemmKernelRows24(nrows int, a0, a1, a2, a3 *float32, q, jump int, b *float32, brow int, c *float32, ldc int, load bool)

//go:noescape
func gemmKernelRows16(nrows int, a0, a1, a2, a3 *float32, q, jump int, b *float32, brow int, c *float32, ldc int, load bool)

//go:noescape
func gemmKernelRows8(nrows int, a0, a1, a2, a3 *float32, q, jump int, b *float32, brow int, c *float32, ldc int, load bool)

// gemmKernelAdd24, gemmKernelAdd16 and gemmKernelAdd8 are the scatter-add
// micro-kernels (see gemm_amd64.s): the 4×W tile of A·B as in
// gemmKernel24/16/8 from zero, added row by row into
// d_v[doff[i] + e] for the vectors v < W/8.
//
//go:noescape
func gemmKernelAdd24(k int, a *float32, arow, astep int, b *float32, brow int, d0, d1, d2 *float32, doff *int32)

//go:noescape
func gemmKernelAdd16(k int, a *float32, arow, astep int, b *float32, brow int, d0, d1, d2 *float32, doff *int32)

//go:noescape
func gemmKernelAdd8(k int, a *float32, arow, astep int, b *float32, brow int, d0, d1, d2 *float32, doff *int32)

// gemmKernelRows8x8 is the row-walking micro-kernel of an 8×8 tile (see
// gemm_amd64.s): A's rows from a[0 … 7], B[p, j] = b[8·p + j], the jump
// between runs given in bytes (jumpb = 4·jump).
//
//go:noescape
func gemmKernelRows8x8(nrows int, a *[8]*float32, q, jumpb int, b *float32, c *float32, ldc int, load bool)
