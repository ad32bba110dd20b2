package cpuref

// useAVX512 reports whether the frame path runs its GEMMs on the AVX-512
// kernels (gemm512_amd64.s): the AVX2+FMA kernels run (useFMAGEMM's
// test), the CPU has AVX-512F, and the operating system saves the opmask
// and ZMM registers (XCR0 bits 5, 6 and 7). Tests switch it to compare
// the two.
var useAVX512 = hasAVX2FMA() && hasAVX512F()

// avx512Run reports whether the AVX-512 kernels can run on this CPU.
var avx512Run = hasAVX2FMA() && hasAVX512F()

func hasAVX512F() bool {
	if maxID, _, _, _ := cpuid(0, 0); maxID < 7 {
		return false
	}
	if xcr0, _ := xgetbv0(); xcr0&0xe6 != 0xe6 {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	const avx512f = 1 << 16
	return ebx7&avx512f != 0
}

// gemmKernelZ and gemmKernelOffZ are the 8×32 tiles of gemmKernelZGo, B
// read through brow or boff (see gemm512_amd64.s).
//
//go:noescape
func gemmKernelZ(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool)

//go:noescape
func gemmKernelOffZ(k int, a *float32, arow, astep int, b *float32, boff *int32, c *float32, ldc int, load bool)

// gemmKernelRowsZ16 and gemmKernelRowsZ32 are the 8×16 and 8×32 tiles of
// gemmKernelRowsZGo, jumpb = 4·jump (see gemm512_amd64.s).
//
//go:noescape
func gemmKernelRowsZ16(nrows int, a *[8]*float32, q, jumpb int, b *float32, brow int, c *float32, ldc int, load bool)

//go:noescape
func gemmKernelRowsZ32(nrows int, a *[8]*float32, q, jumpb int, b *float32, brow int, c *float32, ldc int, load bool)
