// AVX2 kernels of the elementwise passes (see vec.go): ReLU forward and
// backward, addition, and addition then ReLU, each over n floats, n a
// multiple of 8, eight at a time; and the rounding to bfloat16 and TF32
// (bf16.go, tf32.go), integer operations on the bits. Batch norm's channel kernels are in
// bnvec_amd64.s.
//
// Every operation is one rounded float32 operation on each of the eight
// elements, the same as the Go scalar code it stands for, and every
// two-operand instruction takes its operands in the order in which Go
// compiles the scalar code (first source = the operand whose NaN x86
// keeps where both are NaN). In Go's operand order, VSUBPS b, a, d is
// d = a − b.

#include "textflag.h"

// func addAVX(y, a, b *float32, n int)
// y[i] = a[i] + b[i]; four vectors a step, then one.
TEXT ·addAVX(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	CMPQ CX, $32
	JB   add8

add32:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VADDPS  (DX), Y0, Y0
	VADDPS  32(DX), Y1, Y1
	VADDPS  64(DX), Y2, Y2
	VADDPS  96(DX), Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, SI
	ADDQ    $128, DX
	ADDQ    $128, DI
	SUBQ    $32, CX
	CMPQ    CX, $32
	JAE     add32

add8:
	CMPQ CX, $8
	JB   adddone

add8loop:
	VMOVUPS (SI), Y0
	VADDPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	SUBQ    $8, CX
	CMPQ    CX, $8
	JAE     add8loop

adddone:
	VZEROUPPER
	RET

// RELU computes into r the ReLU of v as Go compiles max(v, 0) for
// float32 (max(v, 0) = −min(−v, −0), its two MINSS and the OR that makes
// min(−0, +0) = −0), with Y11 all sign bits (−0); clobbers a.
//
//	nv = v ^ sign;  a = nv < −0 ? nv : −0;  r = a < nv ? a : nv;  r = (r | a) ^ sign
//
// For v > 0 that is v; for v ≤ 0 (−0 included) +0; for a NaN, v with
// its sign bit cleared.
#define RELU(v, nv, a, r) \
	VXORPS Y11, v, nv; \
	VMINPS Y11, nv, a; \
	VMINPS nv, a, r; \
	VORPS  a, r, r; \
	VXORPS Y11, r, r

// SIGN sets Y11 to eight sign bits (−0).
#define SIGN \
	MOVL         $0x80000000, AX; \
	VMOVD        AX, X11; \
	VBROADCASTSS X11, Y11

// func reluAVX(y, x *float32, n int)
// y[i] = max(x[i], 0) as ReLUForward.
TEXT ·reluAVX(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SIGN
	CMPQ CX, $16
	JB   rl8

rl16:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y4
	RELU(Y0, Y1, Y2, Y3)
	RELU(Y4, Y5, Y6, Y7)
	VMOVUPS Y3, (DI)
	VMOVUPS Y7, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	CMPQ    CX, $16
	JAE     rl16

rl8:
	CMPQ CX, $8
	JB   rldone
	VMOVUPS (SI), Y0
	RELU(Y0, Y1, Y2, Y3)
	VMOVUPS Y3, (DI)

rldone:
	VZEROUPPER
	RET

// func reluBackwardAVX(dx, x, dy *float32, n int)
// dx[i] = dy[i] where x[i] > 0 (ordered: false for a NaN), else +0: dy's
// bits and-ed with the comparison's mask.
TEXT ·reluBackwardAVX(SB), NOSPLIT, $0-32
	MOVQ   dx+0(FP), DI
	MOVQ   x+8(FP), SI
	MOVQ   dy+16(FP), DX
	MOVQ   n+24(FP), CX
	VXORPS Y15, Y15, Y15
	CMPQ   CX, $16
	JB     rb8

rb16:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VCMPPS  $0x1e, Y15, Y0, Y0 // x > 0, ordered, quiet
	VCMPPS  $0x1e, Y15, Y1, Y1
	VANDPS  (DX), Y0, Y0
	VANDPS  32(DX), Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	SUBQ    $16, CX
	CMPQ    CX, $16
	JAE     rb16

rb8:
	CMPQ CX, $8
	JB   rbdone
	VMOVUPS (SI), Y0
	VCMPPS  $0x1e, Y15, Y0, Y0
	VANDPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)

rbdone:
	VZEROUPPER
	RET


// func addReLUAVX(y, a, b *float32, n int)
// y[i] = max(a[i] + b[i], 0): addAVX's addition, then reluAVX's ReLU.
TEXT ·addReLUAVX(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SIGN
	CMPQ CX, $16
	JB   ar8

ar16:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y4
	VADDPS  (DX), Y0, Y0
	VADDPS  32(DX), Y4, Y4
	RELU(Y0, Y1, Y2, Y3)
	RELU(Y4, Y5, Y6, Y7)
	VMOVUPS Y3, (DI)
	VMOVUPS Y7, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	SUBQ    $16, CX
	CMPQ    CX, $16
	JAE     ar16

ar8:
	CMPQ CX, $8
	JB   ardone
	VMOVUPS (SI), Y0
	VADDPS  (DX), Y0, Y0
	RELU(Y0, Y1, Y2, Y3)
	VMOVUPS Y3, (DI)

ardone:
	VZEROUPPER
	RET

// BCAST(c, x, y) sets every 32-bit lane of y to the constant c (through AX
// and x).
#define BCAST(c, x, y) \
	MOVL c, AX; VMOVD AX, x; VPBROADCASTD x, y

// func roundBF16AVX(dst, src *float32, n int)
// dst[i] = RoundBF16(src[i]): a NaN becomes 0x7fff0000 (BF16Bits'
// canonical NaN); any other b = bits(src[i]) becomes
// (b + 0x7fff + (b>>16 & 1)) & 0xffff0000, to nearest, ties to even, a
// carry into the exponent up to ±Inf.
TEXT ·roundBF16AVX(SB), NOSPLIT, $0-24
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	BCAST($1, X8, Y8)
	BCAST($0x7fff, X9, Y9)
	BCAST($0xffff0000, X10, Y10) // the kept bits
	BCAST($0x7fffffff, X11, Y11) // all but the sign
	BCAST($0x7f800000, X12, Y12) // +Inf
	BCAST($0x7fff0000, X13, Y13) // the canonical NaN

rbf8:
	CMPQ         CX, $8
	JB           rbfdone
	VMOVDQU      (SI), Y0
	VPSRLD       $16, Y0, Y1
	VPAND        Y8, Y1, Y1        // the lowest kept bit
	VPADDD       Y9, Y1, Y1
	VPADDD       Y0, Y1, Y1        // b + 0x7fff + bit
	VPAND        Y10, Y1, Y1
	VPAND        Y11, Y0, Y2       // |b|
	VPCMPGTD     Y12, Y2, Y2       // |b| > +Inf: NaN
	VPBLENDVB    Y2, Y13, Y1, Y1   // NaN: the canonical one
	VMOVDQU      Y1, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	SUBQ         $8, CX
	JMP          rbf8

rbfdone:
	VZEROUPPER
	RET

// func roundTF32AVX(dst, src *float32, n int)
// dst[i] = RoundTF32(src[i]): b = bits(src[i]) with the exponent all ones
// (±Inf, NaN) unchanged, any other (b + 0x1000) &^ 0x1fff, to nearest,
// ties away from zero.
TEXT ·roundTF32AVX(SB), NOSPLIT, $0-24
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	BCAST($0x1000, X8, Y8) // half the dropped unit
	BCAST($0xffffe000, X9, Y9) // the kept bits
	BCAST($0x7f800000, X10, Y10) // the exponent

rtf8:
	CMPQ         CX, $8
	JB           rtfdone
	VMOVDQU      (SI), Y0
	VPADDD       Y8, Y0, Y1
	VPAND        Y9, Y1, Y1
	VPAND        Y10, Y0, Y2
	VPCMPEQD     Y10, Y2, Y2       // exponent all ones: Inf or NaN
	VPBLENDVB    Y2, Y0, Y1, Y1    // those unchanged
	VMOVDQU      Y1, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	SUBQ         $8, CX
	JMP          rtf8

rtfdone:
	VZEROUPPER
	RET
