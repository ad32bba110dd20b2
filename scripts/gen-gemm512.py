#!/usr/bin/env python3
"""Writes cpuref/gemm512_amd64.s, the AVX-512 micro-kernels of the frame
path of cpuref's convolutions (see cpuref/gemm512.go), to stdout:

    python3 scripts/gen-gemm512.py > cpuref/gemm512_amd64.s

Every kernel keeps one chain of fused multiply-adds per element of C, in
the order of the inner index, as the AVX2 kernels of gemm_amd64.s do: the
16-wide vectors change how many chains run at once, not any chain.
"""

out = []


def emit(s=""):
    out.append(s)


def load_c(label, nacc, per_row, ldc_off, c_off, load_off, ptr="R11"):
    """C's 8 rows into the accumulators (or zeros), per_row vectors a row."""
    emit(f"\tMOVQ c+{c_off}(FP), {ptr}")
    emit(f"\tMOVQ ldc+{ldc_off}(FP), R8")
    emit("\tSHLQ $2, R8")
    emit(f"\tMOVBLZX load+{load_off}(FP), AX")
    emit("\tTESTQ AX, AX")
    emit(f"\tJZ {label}_zero")
    for i in range(8):
        for v in range(per_row):
            emit(f"\tVMOVUPS {64*v}({ptr}), Z{acc(i, v)}")
        emit(f"\tADDQ R8, {ptr}")
    emit(f"\tJMP {label}_start")
    emit(f"{label}_zero:")
    for i in range(8):
        for v in range(per_row):
            z = acc(i, v)
            emit(f"\tVPXORD Z{z}, Z{z}, Z{z}")
    emit(f"{label}_start:")


def store_c(per_row, ldc_off, c_off):
    emit(f"\tMOVQ c+{c_off}(FP), R11")
    emit(f"\tMOVQ ldc+{ldc_off}(FP), R8")
    emit("\tSHLQ $2, R8")
    for i in range(8):
        for v in range(per_row):
            emit(f"\tVMOVUPS Z{acc(i, v)}, {64*v}(R11)")
        emit("\tADDQ R8, R11")
    emit("\tVZEROUPPER")
    emit("\tRET")


def acc(i, v):
    # row i, vector v: Z0-Z7 the first vector of rows 0-7, Z8-Z15 the second
    return i + 8 * v


# A's 8 rows from one pointer SI and its row stride R12 (bytes), with
# R13 = SI + 3·R12 and BX = SI + 6·R12: every row one addressing mode.
A_ROWS = ["(SI)", "(SI)(R12*1)", "(SI)(R12*2)", "(R13)",
          "(SI)(R12*4)", "(R13)(R12*2)", "(BX)", "(BX)(R12*1)"]


def strided_kernel(name, doc, boff):
    """8×32 tile, A[i,p] = a[i·arow + p·astep]; B through boff or brow."""
    emit(doc)
    bname = "boff" if boff else "brow"
    btype = "*int32" if boff else "int"
    emit(f"// func {name}(k int, a *float32, arow, astep int, b *float32, {bname} {btype}, c *float32, ldc int, load bool)")
    emit(f"TEXT ·{name}(SB), NOSPLIT, $0-65")
    lab = name
    load_c(lab, 16, 2, 56, 48, 64)
    emit("\tMOVQ k+0(FP), CX")
    emit("\tTESTQ CX, CX")
    emit(f"\tJZ {lab}_store")
    emit("\tMOVQ a+8(FP), SI")
    emit("\tMOVQ arow+16(FP), R12")
    emit("\tSHLQ $2, R12")
    emit("\tLEAQ (R12)(R12*2), R13")
    emit("\tLEAQ (SI)(R13*2), BX")
    emit("\tADDQ SI, R13")
    emit("\tMOVQ astep+24(FP), R10")
    emit("\tSHLQ $2, R10")
    emit("\tMOVQ b+32(FP), DI")
    if boff:
        emit("\tMOVQ boff+40(FP), R9")
    else:
        emit("\tMOVQ brow+40(FP), R9")
        emit("\tSHLQ $2, R9")
    emit(f"{lab}_loop:")
    if boff:
        emit("\tMOVLQSX (R9), R11")
        emit("\tADDQ $4, R9")
        emit("\tVMOVUPS (DI)(R11*4), Z16")
        emit("\tVMOVUPS 64(DI)(R11*4), Z17")
    else:
        emit("\tVMOVUPS (DI), Z16")
        emit("\tVMOVUPS 64(DI), Z17")
        emit("\tADDQ R9, DI")
    for i in range(8):
        emit(f"\tVBROADCASTSS {A_ROWS[i]}, Z{18+i}")
        emit(f"\tVFMADD231PS Z16, Z{18+i}, Z{acc(i, 0)}")
        emit(f"\tVFMADD231PS Z17, Z{18+i}, Z{acc(i, 1)}")
    emit("\tADDQ R10, SI")
    emit("\tADDQ R10, R13")
    emit("\tADDQ R10, BX")
    emit("\tDECQ CX")
    emit(f"\tJNZ {lab}_loop")
    emit(f"{lab}_store:")
    store_c(2, 56, 48)
    emit()


ROW_PTRS = ["SI", "R12", "R13", "BX", "DX", "R8", "R9", "R11"]


def rows_kernel(width):
    per_row = width // 16
    name = f"gemmKernelRowsZ{width}"
    emit(f"""// {name} is the row-walking kernel of an 8×{width} tile: A's 8 rows
// from 8 pointers, each walked as nrows runs of q floats jumpb bytes apart,
// B[p, j] = b[p·brow + j]; the run count lives on the stack.
//
// func {name}(nrows int, a *[8]*float32, q, jumpb int, b *float32, brow int, c *float32, ldc int, load bool)""")
    emit(f"TEXT ·{name}(SB), NOSPLIT, $8-65")
    lab = name
    load_c(lab, 8 * per_row, per_row, 56, 48, 64)
    emit("\tMOVQ nrows+0(FP), AX")
    emit("\tMOVQ AX, cnt-8(SP)")
    emit("\tMOVQ q+16(FP), CX")
    emit("\tTESTQ CX, CX")
    emit(f"\tJZ {lab}_store")
    emit("\tTESTQ AX, AX")
    emit(f"\tJZ {lab}_store")
    emit("\tMOVQ a+8(FP), AX")
    for i, r in enumerate(ROW_PTRS):
        emit(f"\tMOVQ {8*i}(AX), {r}")
    emit("\tMOVQ jumpb+24(FP), R10")
    emit("\tMOVQ b+32(FP), DI")
    emit("\tMOVQ brow+40(FP), R14")
    emit("\tSHLQ $2, R14")
    emit("\tXORQ AX, AX")
    emit(f"{lab}_row:")
    emit("\tMOVQ q+16(FP), CX")
    emit(f"{lab}_loop:")
    for v in range(per_row):
        emit(f"\tVMOVUPS {64*v}(DI), Z{16+v}")
    emit("\tADDQ R14, DI")
    for i, r in enumerate(ROW_PTRS):
        emit(f"\tVBROADCASTSS ({r})(AX*1), Z{18+i}")
        for v in range(per_row):
            emit(f"\tVFMADD231PS Z{16+v}, Z{18+i}, Z{acc(i, v)}")
    emit("\tADDQ $4, AX")
    emit("\tDECQ CX")
    emit(f"\tJNZ {lab}_loop")
    emit("\tADDQ R10, AX")
    emit("\tDECQ cnt-8(SP)")
    emit(f"\tJNZ {lab}_row")
    emit(f"{lab}_store:")
    store_c(per_row, 56, 48)
    emit()


emit("""// Code generated by scripts/gen-gemm512.py; DO NOT EDIT.

// AVX-512 micro-kernels of the frame path of the convolutions (see
// gemm512.go): 8 rows of C by 32 (or 16) columns in 16 (or 8) ZMM
// accumulators, each element one chain of fused multiply-adds in the
// order of the inner index, started from C when load, else from 0.

#include "textflag.h"
""")
strided_kernel("gemmKernelZ", """// gemmKernelZ is the 8×32 tile of gemmKernel24: A[i,p] = a[i·arow + p·astep],
// B[p,j] = b[p·brow + j].""", False)
strided_kernel("gemmKernelOffZ", """// gemmKernelOffZ is the implicit-GEMM 8×32 tile: A[i,p] = a[i·arow + p·astep],
// B[p,j] = b[boff[p] + j].""", True)
rows_kernel(16)
rows_kernel(32)
print("\n".join(out).rstrip() + "\n", end="")
