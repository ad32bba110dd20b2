// The AVX2 row addition of the frame path (see frame.go).

#include "textflag.h"

// func addFloats(dst, src *float32, n int)
//
// dst[i] += src[i] for i < n: one rounded addition per element, as the Go
// loop; 32, then 8, then 1 element per step.
TEXT ·addFloats(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
add32:
	CMPQ CX, $32
	JLT add8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VADDPS 0(DI), Y0, Y0
	VADDPS 32(DI), Y1, Y1
	VADDPS 64(DI), Y2, Y2
	VADDPS 96(DI), Y3, Y3
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP add32
add8:
	CMPQ CX, $8
	JLT add1
	VMOVUPS 0(SI), Y0
	VADDPS 0(DI), Y0, Y0
	VMOVUPS Y0, 0(DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP add8
add1:
	TESTQ CX, CX
	JZ done
	VMOVSS 0(SI), X0
	VADDSS 0(DI), X0, X0
	VMOVSS X0, 0(DI)
	ADDQ $4, SI
	ADDQ $4, DI
	DECQ CX
	JMP add1
done:
	VZEROUPPER
	RET

// func transpose8x8(dst *float32, ldd int, src *float32, lds int)
//
// dst[j·ldd + i] = src[i·lds + j] for i, j < 8 (strides in floats): the
// 8×8 block transpose of unpack, shuffle and 128-bit permute steps.
TEXT ·transpose8x8(SB), NOSPLIT, $0-32
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), AX
	SHLQ $2, AX
	LEAQ (AX)(AX*2), BX
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(AX*1), Y1
	VMOVUPS (SI)(AX*2), Y2
	VMOVUPS (SI)(BX*1), Y3
	LEAQ (SI)(AX*4), SI
	VMOVUPS (SI), Y4
	VMOVUPS (SI)(AX*1), Y5
	VMOVUPS (SI)(AX*2), Y6
	VMOVUPS (SI)(BX*1), Y7
	// t0 = (r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5]), …
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15
	// u0 = (r0[0] r1[0] r2[0] r3[0] | r0[4] … r3[4]), …
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xee, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xee, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xee, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xee, Y15, Y13, Y7
	// column j: low halves of u_j and u_(j+4) for j < 4, high halves for j ≥ 4
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), AX
	SHLQ $2, AX
	LEAQ (AX)(AX*2), BX
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(AX*1)
	VMOVUPS Y10, (DI)(AX*2)
	VMOVUPS Y11, (DI)(BX*1)
	LEAQ (DI)(AX*4), DI
	VMOVUPS Y12, (DI)
	VMOVUPS Y13, (DI)(AX*1)
	VMOVUPS Y14, (DI)(AX*2)
	VMOVUPS Y15, (DI)(BX*1)
	VZEROUPPER
	RET

// func gatherRows(dst *float32, ldd int, src *float32, lds int, rows, n, stride int)
//
// dst[r·ldd + k] = src[r·lds + k·stride] for r < rows, k < n (strides in
// floats): a plain copy, one float at a time.
TEXT ·gatherRows(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R9
	MOVQ rows+32(FP), DX
	MOVQ n+40(FP), R10
	MOVQ stride+48(FP), R11
	SHLQ $2, R11
	TESTQ R10, R10
	JZ gr_done
gr_row:
	TESTQ DX, DX
	JZ gr_done
	MOVQ DI, R12
	MOVQ SI, R13
	MOVQ R10, CX
gr_loop:
	MOVL (R13), AX
	MOVL AX, (R12)
	ADDQ R11, R13
	ADDQ $4, R12
	DECQ CX
	JNZ gr_loop
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ DX
	JMP gr_row
gr_done:
	RET

// func scatterRows(dst *float32, ldd int, src *float32, lds int, rows, n, stride int)
//
// dst[r·ldd + k·stride] = src[r·lds + k] for r < rows, k < n.
TEXT ·scatterRows(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R9
	MOVQ rows+32(FP), DX
	MOVQ n+40(FP), R10
	MOVQ stride+48(FP), R11
	SHLQ $2, R11
	TESTQ R10, R10
	JZ sr_done
sr_row:
	TESTQ DX, DX
	JZ sr_done
	MOVQ DI, R12
	MOVQ SI, R13
	MOVQ R10, CX
sr_loop:
	MOVL (R13), AX
	MOVL AX, (R12)
	ADDQ $4, R13
	ADDQ R11, R12
	DECQ CX
	JNZ sr_loop
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ DX
	JMP sr_row
sr_done:
	RET
