// AVX2 kernels of BatchNorm32 (see bnvec.go): each runs one pass over one
// channel, the n segments of hw floats of x (and dy, y, dx) that start
// stride floats apart, eight elements at a time and the last hw mod 8 (or
// the rest of a run of lanes) one at a time.
//
// Every operation is one rounded float32 operation, the same as the Go
// code of batchnorm.go it stands for (no fused multiply-add), in its
// order; every two-operand instruction takes its operands in the order in
// which Go compiles that code (first source = the operand whose NaN x86
// keeps where both are NaN). In Go's operand order, VSUBPS b, a, d is
// d = a − b.
//
// The lane sums add element i of the channel (i = segment·hw + j) to
// lane i mod 256 (laneAdd): a segment is cut into runs that do not wrap
// past lane 255. Registers of the three sum kernels: DI the lanes, SI the
// segment, CX the element, DX the elements left in the segment, R11 the
// lane t of the next element, AX the elements left in the run, BX the lane
// address, R10 the stride in bytes, R12 the segments left, R13 hw.

#include "textflag.h"

// RUN sets AX = min(256 − t, DX), the run's length, BX = &lanes[t], and
// advances DX and t past it.
#define RUN \
	MOVQ    $256, AX;      \
	SUBQ    R11, AX;       \
	CMPQ    DX, AX;        \
	CMOVQLT DX, AX;        \
	SUBQ    AX, DX;        \
	LEAQ    (DI)(R11*4), BX; \
	ADDQ    AX, R11;       \
	ANDQ    $255, R11

// func chanSumAVX(lanes, x *float32, n, hw, stride int)
// lanes[t] = lanes[t] + x (laneAdd).
TEXT ·chanSumAVX(SB), NOSPLIT, $0-40
	MOVQ lanes+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), R12
	MOVQ hw+24(FP), R13
	MOVQ stride+32(FP), R10
	SHLQ $2, R10
	XORQ R11, R11

sum_seg:
	MOVQ SI, CX
	MOVQ R13, DX

sum_run:
	RUN
	CMPQ AX, $8
	JB   sum_s

sum_v:
	VMOVUPS (BX), Y0
	VADDPS  (CX), Y0, Y0
	VMOVUPS Y0, (BX)
	ADDQ    $32, BX
	ADDQ    $32, CX
	SUBQ    $8, AX
	CMPQ    AX, $8
	JAE     sum_v

sum_s:
	TESTQ AX, AX
	JZ    sum_next
	VMOVSS (BX), X0
	VADDSS (CX), X0, X0
	VMOVSS X0, (BX)
	ADDQ   $4, BX
	ADDQ   $4, CX
	DECQ   AX
	JMP    sum_s

sum_next:
	TESTQ DX, DX
	JNZ   sum_run
	ADDQ  R10, SI
	DECQ  R12
	JNZ   sum_seg
	VZEROUPPER
	RET

// func chanSumSqDevAVX(lanes, x *float32, n, hw, stride int, mean float32)
// d = x − mean; lanes[t] = d·d + lanes[t] (laneAddSqDev, as compiled:
// the square is the first operand).
TEXT ·chanSumSqDevAVX(SB), NOSPLIT, $0-44
	MOVQ         lanes+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), R12
	MOVQ         hw+24(FP), R13
	MOVQ         stride+32(FP), R10
	SHLQ         $2, R10
	VBROADCASTSS mean+40(FP), Y15
	XORQ         R11, R11

sq_seg:
	MOVQ SI, CX
	MOVQ R13, DX

sq_run:
	RUN
	CMPQ AX, $8
	JB   sq_s

sq_v:
	VMOVUPS (CX), Y0
	VSUBPS  Y15, Y0, Y0
	VMULPS  Y0, Y0, Y0
	VADDPS  (BX), Y0, Y0
	VMOVUPS Y0, (BX)
	ADDQ    $32, BX
	ADDQ    $32, CX
	SUBQ    $8, AX
	CMPQ    AX, $8
	JAE     sq_v

sq_s:
	TESTQ AX, AX
	JZ    sq_next
	VMOVSS (CX), X0
	VSUBSS X15, X0, X0
	VMULSS X0, X0, X0
	VADDSS (BX), X0, X0
	VMOVSS X0, (BX)
	ADDQ   $4, BX
	ADDQ   $4, CX
	DECQ   AX
	JMP    sq_s

sq_next:
	TESTQ DX, DX
	JNZ   sq_run
	ADDQ  R10, SI
	DECQ  R12
	JNZ   sq_seg
	VZEROUPPER
	RET

// func chanSumBackwardAVX(lanes, lanes2, dy, x *float32, n, hw, stride int, mean, invStd float32)
// x̂ = (x − mean)·invStd; lanes[t] = lanes[t] + dy;
// lanes2[t] = lanes2[t] + dy·x̂ (laneAddBackward). R8 is lanes2 − lanes
// and R9 dy − x, in bytes.
TEXT ·chanSumBackwardAVX(SB), NOSPLIT, $0-64
	MOVQ         lanes+0(FP), DI
	MOVQ         lanes2+8(FP), R8
	SUBQ         DI, R8
	MOVQ         dy+16(FP), R9
	MOVQ         x+24(FP), SI
	SUBQ         SI, R9
	MOVQ         n+32(FP), R12
	MOVQ         hw+40(FP), R13
	MOVQ         stride+48(FP), R10
	SHLQ         $2, R10
	VBROADCASTSS mean+56(FP), Y15
	VBROADCASTSS invStd+60(FP), Y14
	XORQ         R11, R11

bs_seg:
	MOVQ SI, CX
	MOVQ R13, DX

bs_run:
	RUN
	CMPQ AX, $8
	JB   bs_s

bs_v:
	VMOVUPS (CX), Y0
	VSUBPS  Y15, Y0, Y0
	VMULPS  Y14, Y0, Y0      // x̂
	VMOVUPS (CX)(R9*1), Y1   // dy
	VMOVUPS (BX), Y2
	VADDPS  Y1, Y2, Y2
	VMOVUPS Y2, (BX)
	VMULPS  Y0, Y1, Y3       // dy·x̂
	VMOVUPS (BX)(R8*1), Y4
	VADDPS  Y3, Y4, Y4
	VMOVUPS Y4, (BX)(R8*1)
	ADDQ    $32, BX
	ADDQ    $32, CX
	SUBQ    $8, AX
	CMPQ    AX, $8
	JAE     bs_v

bs_s:
	TESTQ AX, AX
	JZ    bs_next
	VMOVSS (CX), X0
	VSUBSS X15, X0, X0
	VMULSS X14, X0, X0
	VMOVSS (CX)(R9*1), X1
	VMOVSS (BX), X2
	VADDSS X1, X2, X2
	VMOVSS X2, (BX)
	VMULSS X0, X1, X3
	VMOVSS (BX)(R8*1), X4
	VADDSS X3, X4, X4
	VMOVSS X4, (BX)(R8*1)
	ADDQ   $4, BX
	ADDQ   $4, CX
	DECQ   AX
	JMP    bs_s

bs_next:
	TESTQ DX, DX
	JNZ   bs_run
	ADDQ  R10, SI
	DECQ  R12
	JNZ   bs_seg
	VZEROUPPER
	RET

// NORM sets r = x̂·γ + β with x̂ = (r − mean)·invStd, from Y15 = mean,
// Y14 = invStd, Y13 = γ, Y12 = β (bnNormalize, as compiled: x̂ is the
// first operand of the product); with the X registers, one element.
#define NORM(r, m, i, g, b) \
	VSUBPS m, r, r; \
	VMULPS i, r, r; \
	VMULPS g, r, r; \
	VADDPS b, r, r

#define NORMS(r, m, i, g, b) \
	VSUBSS m, r, r; \
	VMULSS i, r, r; \
	VMULSS g, r, r; \
	VADDSS b, r, r

// RELU computes into r the ReLU of v as Go compiles max(v, 0) for
// float32 (max(v, 0) = −min(−v, −0), its two MINSS and the OR that makes
// min(−0, +0) = −0), with s all sign bits (−0); clobbers nv and a:
//
//	nv = v ^ sign;  a = nv < −0 ? nv : −0;  r = a < nv ? a : nv;  r = (r | a) ^ sign
//
// For v > 0 that is v; for v ≤ 0 (−0 included) +0; for a NaN, v with
// its sign bit cleared. RELUS is the same on one element.
#define RELU(s, v, nv, a, r) \
	VXORPS s, v, nv; \
	VMINPS s, nv, a; \
	VMINPS nv, a, r; \
	VORPS  a, r, r;  \
	VXORPS s, r, r

#define RELUS(s, v, nv, a, r) \
	VXORPS s, v, nv; \
	VMINSS s, nv, a; \
	VMINSS nv, a, r; \
	VORPS  a, r, r;  \
	VXORPS s, r, r

// func chanNormalizeAVX(y, x *float32, n, hw, stride int, mean, invStd, gamma, beta float32)
// y = x̂·γ + β, x̂ = (x − mean)·invStd (bnNormalize). SI is the segment
// of x, R9 y − x in bytes, Y15–Y12 mean, invStd, γ, β.
TEXT ·chanNormalizeAVX(SB), NOSPLIT, $0-56
	MOVQ         y+0(FP), R9
	MOVQ         x+8(FP), SI
	SUBQ         SI, R9
	MOVQ         n+16(FP), R12
	MOVQ         hw+24(FP), R13
	MOVQ         stride+32(FP), R10
	SHLQ         $2, R10
	VBROADCASTSS mean+40(FP), Y15
	VBROADCASTSS invStd+44(FP), Y14
	VBROADCASTSS gamma+48(FP), Y13
	VBROADCASTSS beta+52(FP), Y12

nm_seg:
	MOVQ SI, CX
	MOVQ R13, AX
	CMPQ AX, $8
	JB   nm_s

nm_v:
	VMOVUPS (CX), Y0
	NORM(Y0, Y15, Y14, Y13, Y12)
	VMOVUPS Y0, (CX)(R9*1)
	ADDQ    $32, CX
	SUBQ    $8, AX
	CMPQ    AX, $8
	JAE     nm_v

nm_s:
	TESTQ AX, AX
	JZ    nm_next
	VMOVSS (CX), X0
	NORMS(X0, X15, X14, X13, X12)
	VMOVSS X0, (CX)(R9*1)
	ADDQ   $4, CX
	DECQ   AX
	JMP    nm_s

nm_next:
	ADDQ R10, SI
	DECQ R12
	JNZ  nm_seg
	VZEROUPPER
	RET

// func chanNormalizeReLUAVX(y, x *float32, n, hw, stride int, mean, invStd, gamma, beta float32)
// chanNormalizeAVX, then y = max(y, 0) as ReLUForward.
TEXT ·chanNormalizeReLUAVX(SB), NOSPLIT, $0-56
	MOVQ         y+0(FP), R9
	MOVQ         x+8(FP), SI
	SUBQ         SI, R9
	MOVQ         n+16(FP), R12
	MOVQ         hw+24(FP), R13
	MOVQ         stride+32(FP), R10
	SHLQ         $2, R10
	VBROADCASTSS mean+40(FP), Y15
	VBROADCASTSS invStd+44(FP), Y14
	VBROADCASTSS gamma+48(FP), Y13
	VBROADCASTSS beta+52(FP), Y12
	MOVL         $0x80000000, AX
	VMOVD        AX, X11
	VBROADCASTSS X11, Y11

nr_seg:
	MOVQ SI, CX
	MOVQ R13, AX
	CMPQ AX, $8
	JB   nr_s

nr_v:
	VMOVUPS (CX), Y0
	NORM(Y0, Y15, Y14, Y13, Y12)
	RELU(Y11, Y0, Y1, Y2, Y3)
	VMOVUPS Y3, (CX)(R9*1)
	ADDQ    $32, CX
	SUBQ    $8, AX
	CMPQ    AX, $8
	JAE     nr_v

nr_s:
	TESTQ AX, AX
	JZ    nr_next
	VMOVSS (CX), X0
	NORMS(X0, X15, X14, X13, X12)
	RELUS(X11, X0, X1, X2, X3)
	VMOVSS X3, (CX)(R9*1)
	ADDQ   $4, CX
	DECQ   AX
	JMP    nr_s

nr_next:
	ADDQ R10, SI
	DECQ R12
	JNZ  nr_seg
	VZEROUPPER
	RET

// func chanBackwardAVX(dx, x, dy *float32, n, hw, stride int, mean, invStd, gamma, mdy, mdyx float32)
// k = γ·invStd; x̂ = (x − mean)·invStd; dx = ((dy − mdy) − x̂·mdyx)·k
// (bnBackwardChannel, as compiled: the parenthesis is the first operand
// of the last product). R8 is dx − x and R9 dy − x, in bytes.
TEXT ·chanBackwardAVX(SB), NOSPLIT, $0-68
	MOVQ         dx+0(FP), R8
	MOVQ         x+8(FP), SI
	SUBQ         SI, R8
	MOVQ         dy+16(FP), R9
	SUBQ         SI, R9
	MOVQ         n+24(FP), R12
	MOVQ         hw+32(FP), R13
	MOVQ         stride+40(FP), R10
	SHLQ         $2, R10
	VBROADCASTSS mean+48(FP), Y15
	VBROADCASTSS invStd+52(FP), Y14
	VMOVSS       gamma+56(FP), X13
	VMULSS       invStd+52(FP), X13, X13
	VBROADCASTSS X13, Y13
	VBROADCASTSS mdy+60(FP), Y12
	VBROADCASTSS mdyx+64(FP), Y11

bb_seg:
	MOVQ SI, CX
	MOVQ R13, AX
	CMPQ AX, $8
	JB   bb_s

bb_v:
	VMOVUPS (CX), Y0
	VSUBPS  Y15, Y0, Y0
	VMULPS  Y14, Y0, Y0      // x̂
	VMULPS  Y11, Y0, Y0      // x̂·mdyx
	VMOVUPS (CX)(R9*1), Y1
	VSUBPS  Y12, Y1, Y1      // dy − mdy
	VSUBPS  Y0, Y1, Y1
	VMULPS  Y13, Y1, Y1      // (…)·k
	VMOVUPS Y1, (CX)(R8*1)
	ADDQ    $32, CX
	SUBQ    $8, AX
	CMPQ    AX, $8
	JAE     bb_v

bb_s:
	TESTQ AX, AX
	JZ    bb_next
	VMOVSS (CX), X0
	VSUBSS X15, X0, X0
	VMULSS X14, X0, X0
	VMULSS X11, X0, X0
	VMOVSS (CX)(R9*1), X1
	VSUBSS X12, X1, X1
	VSUBSS X0, X1, X1
	VMULSS X13, X1, X1
	VMOVSS X1, (CX)(R8*1)
	ADDQ   $4, CX
	DECQ   AX
	JMP    bb_s

bb_next:
	ADDQ R10, SI
	DECQ R12
	JNZ  bb_seg
	VZEROUPPER
	RET

// func laneTreeAVX(lanes *float32) float32
// laneTree: for stride 128, 64, …, 1, lanes[t] = lanes[t] + lanes[t+stride]
// for t < stride; returns lanes[0]. Strides of 8 and more run on lanes
// in memory, eight a step; 4, 2 and 1 in X0 (lanes 0–3). AX is t and CX
// the stride, in bytes.
TEXT ·laneTreeAVX(SB), NOSPLIT, $0-12
	MOVQ lanes+0(FP), DI
	MOVQ $512, CX

tr_stride:
	XORQ AX, AX
	LEAQ (DI)(CX*1), BX

tr_t:
	VMOVUPS (DI)(AX*1), Y0
	VADDPS  (BX)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JB      tr_t
	SHRQ    $1, CX
	CMPQ    CX, $32
	JAE     tr_stride

	VMOVUPS   (DI), X0
	VADDPS    16(DI), X0, X0 // stride 4
	VMOVHLPS  X0, X0, X1
	VADDPS    X1, X0, X0     // stride 2
	VMOVSHDUP X0, X1
	VADDSS    X1, X0, X0     // stride 1
	VMOVSS    X0, ret+8(FP)
	VZEROUPPER
	RET

// The ReLU-masked backward kernels read dy masked by the output y of the
// ReLU that followed the batch normalisation, as ReLUBackward(y, dy)
// writes it: dy where y > 0 (ordered: false for a NaN), else +0, dy's
// bits and-ed with the comparison's mask. R14 is y − x in bytes (R14 is
// free in an ABI0 function).

// func chanSumBackwardReLUAVX(lanes, lanes2, dy, x, y *float32, n, hw, stride int, mean, invStd float32)
// chanSumBackwardAVX of the masked dy; Y13 is zero.
TEXT ·chanSumBackwardReLUAVX(SB), NOSPLIT, $0-72
	MOVQ         lanes+0(FP), DI
	MOVQ         lanes2+8(FP), R8
	SUBQ         DI, R8
	MOVQ         dy+16(FP), R9
	MOVQ         x+24(FP), SI
	SUBQ         SI, R9
	MOVQ         y+32(FP), R14
	SUBQ         SI, R14
	MOVQ         n+40(FP), R12
	MOVQ         hw+48(FP), R13
	MOVQ         stride+56(FP), R10
	SHLQ         $2, R10
	VBROADCASTSS mean+64(FP), Y15
	VBROADCASTSS invStd+68(FP), Y14
	VXORPS       Y13, Y13, Y13
	XORQ         R11, R11

br_seg:
	MOVQ SI, CX
	MOVQ R13, DX

br_run:
	RUN
	CMPQ AX, $8
	JB   br_s

br_v:
	VMOVUPS (CX), Y0
	VSUBPS  Y15, Y0, Y0
	VMULPS  Y14, Y0, Y0        // x̂
	VMOVUPS (CX)(R14*1), Y5
	VCMPPS  $0x1e, Y13, Y5, Y5 // y > 0, ordered, quiet
	VANDPS  (CX)(R9*1), Y5, Y1 // masked dy
	VMOVUPS (BX), Y2
	VADDPS  Y1, Y2, Y2
	VMOVUPS Y2, (BX)
	VMULPS  Y0, Y1, Y3         // dy·x̂
	VMOVUPS (BX)(R8*1), Y4
	VADDPS  Y3, Y4, Y4
	VMOVUPS Y4, (BX)(R8*1)
	ADDQ    $32, BX
	ADDQ    $32, CX
	SUBQ    $8, AX
	CMPQ    AX, $8
	JAE     br_v

br_s:
	TESTQ AX, AX
	JZ    br_next
	VMOVSS (CX), X0
	VSUBSS X15, X0, X0
	VMULSS X14, X0, X0
	VMOVSS (CX)(R14*1), X5
	VCMPSS $0x1e, X13, X5, X5
	VMOVSS (CX)(R9*1), X1
	VANDPS X1, X5, X1
	VMOVSS (BX), X2
	VADDSS X1, X2, X2
	VMOVSS X2, (BX)
	VMULSS X0, X1, X3
	VMOVSS (BX)(R8*1), X4
	VADDSS X3, X4, X4
	VMOVSS X4, (BX)(R8*1)
	ADDQ   $4, BX
	ADDQ   $4, CX
	DECQ   AX
	JMP    br_s

br_next:
	TESTQ DX, DX
	JNZ   br_run
	ADDQ  R10, SI
	DECQ  R12
	JNZ   br_seg
	VZEROUPPER
	RET

// func chanBackwardReLUAVX(dx, x, dy, y *float32, n, hw, stride int, mean, invStd, gamma, mdy, mdyx float32)
// chanBackwardAVX of the masked dy; Y10 is zero.
TEXT ·chanBackwardReLUAVX(SB), NOSPLIT, $0-76
	MOVQ         dx+0(FP), R8
	MOVQ         x+8(FP), SI
	SUBQ         SI, R8
	MOVQ         dy+16(FP), R9
	SUBQ         SI, R9
	MOVQ         y+24(FP), R14
	SUBQ         SI, R14
	MOVQ         n+32(FP), R12
	MOVQ         hw+40(FP), R13
	MOVQ         stride+48(FP), R10
	SHLQ         $2, R10
	VBROADCASTSS mean+56(FP), Y15
	VBROADCASTSS invStd+60(FP), Y14
	VMOVSS       gamma+64(FP), X13
	VMULSS       invStd+60(FP), X13, X13
	VBROADCASTSS X13, Y13
	VBROADCASTSS mdy+68(FP), Y12
	VBROADCASTSS mdyx+72(FP), Y11
	VXORPS       Y10, Y10, Y10

bm_seg:
	MOVQ SI, CX
	MOVQ R13, AX
	CMPQ AX, $8
	JB   bm_s

bm_v:
	VMOVUPS (CX), Y0
	VSUBPS  Y15, Y0, Y0
	VMULPS  Y14, Y0, Y0        // x̂
	VMULPS  Y11, Y0, Y0        // x̂·mdyx
	VMOVUPS (CX)(R14*1), Y5
	VCMPPS  $0x1e, Y10, Y5, Y5 // y > 0
	VANDPS  (CX)(R9*1), Y5, Y1 // masked dy
	VSUBPS  Y12, Y1, Y1        // dy − mdy
	VSUBPS  Y0, Y1, Y1
	VMULPS  Y13, Y1, Y1        // (…)·k
	VMOVUPS Y1, (CX)(R8*1)
	ADDQ    $32, CX
	SUBQ    $8, AX
	CMPQ    AX, $8
	JAE     bm_v

bm_s:
	TESTQ AX, AX
	JZ    bm_next
	VMOVSS (CX), X0
	VSUBSS X15, X0, X0
	VMULSS X14, X0, X0
	VMULSS X11, X0, X0
	VMOVSS (CX)(R14*1), X5
	VCMPSS $0x1e, X10, X5, X5
	VMOVSS (CX)(R9*1), X1
	VANDPS X1, X5, X1
	VSUBSS X12, X1, X1
	VSUBSS X0, X1, X1
	VMULSS X13, X1, X1
	VMOVSS X1, (CX)(R8*1)
	ADDQ   $4, CX
	DECQ   AX
	JMP    bm_s

bm_next:
	ADDQ R10, SI
	DECQ R12
	JNZ  bm_seg
	VZEROUPPER
	RET
