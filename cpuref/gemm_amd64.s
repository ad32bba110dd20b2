// AVX2+FMA micro-kernels of the float32 GEMM (see gemm.go) and the CPUID
// and XGETBV probes that decide whether they run.

#include "textflag.h"

// The micro-kernels compute one register tile of C, gemmMR = 4 rows by W
// columns (W = 24, 16 or 8), reading A and B through strides in floats:
//
//	A[i,p] = a[i·arow + p·astep]   (i < 4)
//	B[p,j] = b[p·brow + j]         (j < W)
//	acc[i][j] = load ? c[i·ldc + j] : 0
//	for p = 0 … k−1:  acc[i][j] = fma(A[i,p], B[p,j], acc[i][j])
//	c[i·ldc + j] = acc[i][j]
//
// Each element is one chain of fused multiply-adds in the order of p.
//
// Registers: CX steps left; SI, R12, R13, BX the rows of A and AX the byte
// offset into them, R10 its step; DI the row of B, R9 its step; DX and R11
// rows 0 and 3 of C, R8 its row stride; Y0–Y11 the sums, Y12–Y14 a row of
// B, Y15 a broadcast element of A.

// func gemmKernel24(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool)
TEXT ·gemmKernel24(SB), NOSPLIT, $0-65
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ arow+16(FP), R12
	SHLQ $2, R12
	LEAQ (SI)(R12*2), R13
	LEAQ (R13)(R12*1), BX
	ADDQ SI, R12
	MOVQ astep+24(FP), R10
	SHLQ $2, R10
	MOVQ b+32(FP), DI
	MOVQ brow+40(FP), R9
	SHLQ $2, R9
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8
	LEAQ (DX)(R8*2), R11
	ADDQ R8, R11
	MOVBLZX load+64(FP), AX
	TESTQ AX, AX
	JZ k24_zero
	VMOVUPS 0(DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS 64(DX), Y2
	VMOVUPS 0(DX)(R8*1), Y3
	VMOVUPS 32(DX)(R8*1), Y4
	VMOVUPS 64(DX)(R8*1), Y5
	VMOVUPS 0(DX)(R8*2), Y6
	VMOVUPS 32(DX)(R8*2), Y7
	VMOVUPS 64(DX)(R8*2), Y8
	VMOVUPS 0(R11), Y9
	VMOVUPS 32(R11), Y10
	VMOVUPS 64(R11), Y11
	JMP k24_start
k24_zero:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
k24_start:
	XORQ AX, AX
	TESTQ CX, CX
	JZ k24_store
k24_loop:
	VMOVUPS 0(DI), Y12
	VMOVUPS 32(DI), Y13
	VMOVUPS 64(DI), Y14
	VBROADCASTSS (SI)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y0
	VFMADD231PS Y13, Y15, Y1
	VFMADD231PS Y14, Y15, Y2
	VBROADCASTSS (R12)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y3
	VFMADD231PS Y13, Y15, Y4
	VFMADD231PS Y14, Y15, Y5
	VBROADCASTSS (R13)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y6
	VFMADD231PS Y13, Y15, Y7
	VFMADD231PS Y14, Y15, Y8
	VBROADCASTSS (BX)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y9
	VFMADD231PS Y13, Y15, Y10
	VFMADD231PS Y14, Y15, Y11
	ADDQ R10, AX
	ADDQ R9, DI
	DECQ CX
	JNZ k24_loop
k24_store:
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 0(DX)(R8*1)
	VMOVUPS Y4, 32(DX)(R8*1)
	VMOVUPS Y5, 64(DX)(R8*1)
	VMOVUPS Y6, 0(DX)(R8*2)
	VMOVUPS Y7, 32(DX)(R8*2)
	VMOVUPS Y8, 64(DX)(R8*2)
	VMOVUPS Y9, 0(R11)
	VMOVUPS Y10, 32(R11)
	VMOVUPS Y11, 64(R11)
	VZEROUPPER
	RET

// func gemmKernel16(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool)
TEXT ·gemmKernel16(SB), NOSPLIT, $0-65
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ arow+16(FP), R12
	SHLQ $2, R12
	LEAQ (SI)(R12*2), R13
	LEAQ (R13)(R12*1), BX
	ADDQ SI, R12
	MOVQ astep+24(FP), R10
	SHLQ $2, R10
	MOVQ b+32(FP), DI
	MOVQ brow+40(FP), R9
	SHLQ $2, R9
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8
	LEAQ (DX)(R8*2), R11
	ADDQ R8, R11
	MOVBLZX load+64(FP), AX
	TESTQ AX, AX
	JZ k16_zero
	VMOVUPS 0(DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS 0(DX)(R8*1), Y2
	VMOVUPS 32(DX)(R8*1), Y3
	VMOVUPS 0(DX)(R8*2), Y4
	VMOVUPS 32(DX)(R8*2), Y5
	VMOVUPS 0(R11), Y6
	VMOVUPS 32(R11), Y7
	JMP k16_start
k16_zero:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
k16_start:
	XORQ AX, AX
	TESTQ CX, CX
	JZ k16_store
k16_loop:
	VMOVUPS 0(DI), Y12
	VMOVUPS 32(DI), Y13
	VBROADCASTSS (SI)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y0
	VFMADD231PS Y13, Y15, Y1
	VBROADCASTSS (R12)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y2
	VFMADD231PS Y13, Y15, Y3
	VBROADCASTSS (R13)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y4
	VFMADD231PS Y13, Y15, Y5
	VBROADCASTSS (BX)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y6
	VFMADD231PS Y13, Y15, Y7
	ADDQ R10, AX
	ADDQ R9, DI
	DECQ CX
	JNZ k16_loop
k16_store:
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 0(DX)(R8*1)
	VMOVUPS Y3, 32(DX)(R8*1)
	VMOVUPS Y4, 0(DX)(R8*2)
	VMOVUPS Y5, 32(DX)(R8*2)
	VMOVUPS Y6, 0(R11)
	VMOVUPS Y7, 32(R11)
	VZEROUPPER
	RET

// func gemmKernel8(k int, a *float32, arow, astep int, b *float32, brow int, c *float32, ldc int, load bool)
TEXT ·gemmKernel8(SB), NOSPLIT, $0-65
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ arow+16(FP), R12
	SHLQ $2, R12
	LEAQ (SI)(R12*2), R13
	LEAQ (R13)(R12*1), BX
	ADDQ SI, R12
	MOVQ astep+24(FP), R10
	SHLQ $2, R10
	MOVQ b+32(FP), DI
	MOVQ brow+40(FP), R9
	SHLQ $2, R9
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8
	LEAQ (DX)(R8*2), R11
	ADDQ R8, R11
	MOVBLZX load+64(FP), AX
	TESTQ AX, AX
	JZ k8_zero
	VMOVUPS 0(DX), Y0
	VMOVUPS 0(DX)(R8*1), Y1
	VMOVUPS 0(DX)(R8*2), Y2
	VMOVUPS 0(R11), Y3
	JMP k8_start
k8_zero:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
k8_start:
	XORQ AX, AX
	TESTQ CX, CX
	JZ k8_store
k8_loop:
	VMOVUPS 0(DI), Y12
	VBROADCASTSS (SI)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y0
	VBROADCASTSS (R12)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y1
	VBROADCASTSS (R13)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y2
	VBROADCASTSS (BX)(AX*1), Y15
	VFMADD231PS Y12, Y15, Y3
	ADDQ R10, AX
	ADDQ R9, DI
	DECQ CX
	JNZ k8_loop
k8_store:
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 0(DX)(R8*1)
	VMOVUPS Y2, 0(DX)(R8*2)
	VMOVUPS Y3, 0(R11)
	VZEROUPPER
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv0() (eax, edx uint32)
TEXT ·xgetbv0(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	MOVL DX, edx+4(FP)
	RET
