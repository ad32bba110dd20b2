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
