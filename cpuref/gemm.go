package cpuref

// The float32 GEMM of the fast convolution path, for CPUs with fused
// multiply-add vectors (AVX2 and FMA on amd64; see gemm_amd64.go). It
// computes
//
//	C = beta·C + A·B,   A is m×k, B is k×n, C is m×n (row stride ldc)
//
// with a register-blocked micro-kernel of gemmMR×gemmNR accumulators that
// reads A and B through strides (gemmA, gemmB): either packed into panels
// (packA, packB) or in place, row-major or transposed, so that the
// convolutions run their GEMMs on im2col's matrix, the weights and dy as
// they lie, packing only the small transposed dY of the weight gradient.
//
// Summation order. Every element of C is one chain of fused multiply-adds,
// in the order of the inner index, started from beta·C (from 0 when beta is
// 0, when C is not read):
//
//	c[i,j] = beta·c[i,j];  for p = 0 … k−1: c[i,j] = fma(a[i,p], b[p,j], c[i,j])
//
// with a single rounding per step. The cache blocking (gemmKC, gemmMC) and
// the edge tiles only decide where the chain is paused (its partial value
// stored in C and reloaded), never its order, so the result depends on the
// values and on k alone: it is bit-for-bit the same for any blocking, any
// tile position and any number of threads. It differs from gonum's Sgemm
// (separate multiply and add, other orders) in the last bits; on
// integer-valued inputs whose partial sums stay below 2²⁴ both are exact.

// Register tile and cache blocks. A micro-kernel keeps gemmMR×gemmNR = 4×24
// sums in 12 of the 16 vector registers; a packed B panel of gemmKC rows
// (24 KiB) stays in L1 while the gemmMC/gemmMR A panels of a block (128 KiB)
// stream from L2.
const (
	gemmMR = 4
	gemmNR = 24
	gemmKC = 256
	gemmMC = 128
)

// gemmA is the m×k operand A of gemm, read through strides:
//
//	A[i,p] = data[(i/MR)·panel + (i%MR)·row + p·step]
//
// which covers a packed A (packA: panel = MR·k, row = 1, step = MR), a
// row-major one (panel = MR·lda, row = lda, step = 1) and a transposed one
// (A = aᵀ, a row-major with stride lda: panel = MR, row = 1, step = lda).
type gemmA struct {
	data             []float32
	panel, row, step int
}

// gemmB is the k×n operand B of gemm, read through strides, its columns
// contiguous within a panel of NR:
//
//	B[p,j] = data[(j/NR)·panel + p·row + j%NR]
//
// which covers a packed B (packB: panel = NR·k, row = NR) and a row-major
// one (panel = NR, row = ldb).
type gemmB struct {
	data       []float32
	panel, row int
}

func packedA(ap []float32, k int) gemmA    { return gemmA{ap, gemmMR * k, 1, gemmMR} }
func rowMajorA(a []float32, lda int) gemmA { return gemmA{a, gemmMR * lda, lda, 1} }
func transA(a []float32, lda int) gemmA    { return gemmA{a, gemmMR, 1, lda} }
func packedB(bp []float32, k int) gemmB    { return gemmB{bp, gemmNR * k, gemmNR} }
func rowMajorB(b []float32, ldb int) gemmB { return gemmB{b, gemmNR, ldb} }

// gemmScratch holds the panels that gemm copies an operand's edge into when
// the micro-kernel's full-tile reads would run past the end of the operand's
// slice, and the tile of C that an edge tile is computed in.
type gemmScratch struct {
	a [gemmKC * gemmMR]float32
	b [gemmKC * gemmNR]float32
	c [gemmMR * gemmNR]float32
	z [8 * 32]float32 // an edge tile of the AVX-512 kernels
}

// packedALen is the length of the packed form of an m×k A: ⌈m/gemmMR⌉
// panels of gemmMR·k floats.
func packedALen(m, k int) int { return (m + gemmMR - 1) / gemmMR * gemmMR * k }

// packedBLen is the length of the packed form of a k×n B: ⌈n/gemmNR⌉
// panels of gemmNR·k floats.
func packedBLen(k, n int) int { return (n + gemmNR - 1) / gemmNR * gemmNR * k }

// packA writes op(A) (m×k; op(A) = Aᵀ when tA, A being k×m then) into dst
// in panels of gemmMR rows, the rows past m zero:
//
//	dst[(i − i%MR)·k + p·MR + i%MR] = op(A)[i,p]
func packA(tA bool, m, k int, a []float32, lda int, dst []float32) {
	for i0 := 0; i0 < m; i0 += gemmMR {
		panel := dst[i0*k : (i0+gemmMR)*k]
		rows := min(gemmMR, m-i0)
		if rows < gemmMR {
			clear(panel)
		}
		for ii := range rows {
			i := i0 + ii
			if tA {
				for p := range k {
					panel[p*gemmMR+ii] = a[p*lda+i]
				}
				continue
			}
			for p, v := range a[i*lda : i*lda+k] {
				panel[p*gemmMR+ii] = v
			}
		}
	}
}

// packB writes op(B) (k×n; op(B) = Bᵀ when tB, B being n×k then) into dst
// in panels of gemmNR columns, the columns past n zero:
//
//	dst[(j − j%NR)·k + p·NR + j%NR] = op(B)[p,j]
func packB(tB bool, k, n int, b []float32, ldb int, dst []float32) {
	for j0 := 0; j0 < n; j0 += gemmNR {
		panel := dst[j0*k : (j0+gemmNR)*k]
		cols := min(gemmNR, n-j0)
		if cols < gemmNR {
			clear(panel)
		}
		if tB {
			for jj := range cols {
				src := b[(j0+jj)*ldb : (j0+jj)*ldb+k]
				for p, v := range src {
					panel[p*gemmNR+jj] = v
				}
			}
			continue
		}
		for p := range k {
			copy(panel[p*gemmNR:p*gemmNR+cols], b[p*ldb+j0:])
		}
	}
}

// gemm computes C = beta·C + A·B (C is m×n with row stride ldc) on the
// micro-kernels, in the summation order of the comment at the top of this
// file. The caller guarantees that A and B hold their m×k and k×n elements
// at the places their strides give, and len(c) ≥ (m−1)·ldc + n, ldc ≥ n.
func gemm(m, n, k int, a gemmA, b gemmB, beta float32, c []float32, ldc int, s *gemmScratch) {
	if m == 0 || n == 0 {
		return
	}
	if beta != 0 && beta != 1 || k == 0 {
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
				continue
			}
			for j := range row {
				row[j] *= beta
			}
		}
		if k == 0 {
			return
		}
	}
	for p0 := 0; p0 < k; p0 += gemmKC {
		kc := min(gemmKC, k-p0)
		load := p0 > 0 || beta != 0
		for i0 := 0; i0 < m; i0 += gemmMC {
			i1 := min(i0+gemmMC, m)
			for j := 0; j < n; j += gemmNR {
				w := min(gemmNR, n-j)
				width := gemmNR
				switch {
				case w <= 8:
					width = 8
				case w <= 16:
					width = 16
				}
				bd, ob, brow := b.data, j/gemmNR*b.panel+p0*b.row, b.row
				if ob+(kc-1)*brow+width > len(bd) {
					// The kernel would read past the end: copy the panel.
					for p := range kc {
						copy(s.b[p*gemmNR:p*gemmNR+w], bd[ob+p*brow:])
					}
					bd, ob, brow = s.b[:], 0, gemmNR
				}
				for i := i0; i < i1; i += gemmMR {
					h := min(gemmMR, m-i)
					ad, oa, arow, astep := a.data, i/gemmMR*a.panel+p0*a.step, a.row, a.step
					if oa+(gemmMR-1)*arow+(kc-1)*astep >= len(ad) {
						clear(s.a[:kc*gemmMR])
						for ii := range h {
							for p := range kc {
								s.a[p*gemmMR+ii] = ad[oa+ii*arow+p*astep]
							}
						}
						ad, oa, arow, astep = s.a[:], 0, 1, gemmMR
					}
					kern := gemmKernel24
					switch width {
					case 8:
						kern = gemmKernel8
					case 16:
						kern = gemmKernel16
					}
					if h == gemmMR && w == width {
						_ = c[i*ldc+j+(gemmMR-1)*ldc+width-1] // the kernel writes without bounds checks
						kern(kc, &ad[oa], arow, astep, &bd[ob], brow, &c[i*ldc+j], ldc, load)
						continue
					}
					t := s.c[:]
					if load {
						for ii := range h {
							copy(t[ii*gemmNR:ii*gemmNR+w], c[(i+ii)*ldc+j:])
						}
					}
					kern(kc, &ad[oa], arow, astep, &bd[ob], brow, &t[0], gemmNR, load)
					for ii := range h {
						copy(c[(i+ii)*ldc+j:(i+ii)*ldc+j+w], t[ii*gemmNR:])
					}
				}
			}
		}
	}
}

// gemmKernelGo is the micro-kernel in Go, for CPUs without the assembly
// ones: the same tile, strides and order (see gemm_amd64.s), with each
// fused multiply-add done in float64 and rounded to float32 (a product of
// two float32 is exact in float64; the sum is rounded twice, so a result
// can differ from a single-rounding float32 FMA in the last bit, never on
// integer-valued data whose sums stay below 2²⁴).
func gemmKernelGo(width, k int, a []float32, arow, astep int, b []float32, brow int, c []float32, ldc int, load bool) {
	var acc [gemmMR][gemmNR]float64
	if load {
		for i := range gemmMR {
			for j := range width {
				acc[i][j] = float64(c[i*ldc+j])
			}
		}
	}
	for p := range k {
		bp := b[p*brow : p*brow+width]
		for i := range gemmMR {
			av := float64(a[i*arow+p*astep])
			for j, bv := range bp {
				acc[i][j] = float64(float32(av*float64(bv) + acc[i][j]))
			}
		}
	}
	for i := range gemmMR {
		for j := range width {
			c[i*ldc+j] = float32(acc[i][j])
		}
	}
}

// gemmKernelOffGo is the implicit-GEMM micro-kernel in Go: gemmKernelGo
// with B[p, 8·v + e] = b[v][boff[p] + e], the vectors v < width/8.
func gemmKernelOffGo(width, k int, a []float32, arow, astep int, b [3][]float32, boff []int32, c []float32, ldc int, load bool) {
	var acc [gemmMR][gemmNR]float64
	if load {
		for i := range gemmMR {
			for j := range width {
				acc[i][j] = float64(c[i*ldc+j])
			}
		}
	}
	for p := range k {
		o := int(boff[p])
		for i := range gemmMR {
			av := float64(a[i*arow+p*astep])
			for j := range width {
				bv := b[j/8][o+j%8]
				acc[i][j] = float64(float32(av*float64(bv) + acc[i][j]))
			}
		}
	}
	for i := range gemmMR {
		for j := range width {
			c[i*ldc+j] = float32(acc[i][j])
		}
	}
}

// gemmKernelRowsGo is the row-walking micro-kernel in Go: gemmKernelGo over
// k = nrows·q steps with A[i, t·q + e] = a[i][t·(q + jump) + e].
func gemmKernelRowsGo(width, nrows int, a [gemmMR][]float32, q, jump int, b []float32, brow int, c []float32, ldc int, load bool) {
	var acc [gemmMR][gemmNR]float64
	if load {
		for i := range gemmMR {
			for j := range width {
				acc[i][j] = float64(c[i*ldc+j])
			}
		}
	}
	for t := range nrows {
		for e := range q {
			p := t*q + e
			bp := b[p*brow : p*brow+width]
			for i := range gemmMR {
				av := float64(a[i][t*(q+jump)+e])
				for j, bv := range bp {
					acc[i][j] = float64(float32(av*float64(bv) + acc[i][j]))
				}
			}
		}
	}
	for i := range gemmMR {
		for j := range width {
			c[i*ldc+j] = float32(acc[i][j])
		}
	}
}

// gemmKernelAddGo is the scatter-add micro-kernel in Go: the tile of
// gemmKernelGo from zero, then d[v][doff[i] + e] += acc[i][8·v + e], row by
// row.
func gemmKernelAddGo(width, k int, a []float32, arow, astep int, b []float32, brow int, d [3][]float32, doff []int32) {
	var acc [gemmMR * gemmNR]float32
	gemmKernelGo(width, k, a, arow, astep, b, brow, acc[:], gemmNR, false)
	for i := range gemmMR {
		o := int(doff[i])
		for j := range width {
			d[j/8][o+j%8] += acc[i*gemmNR+j]
		}
	}
}

// gemmKernelRows8x8Go is the 8×8 row-walking micro-kernel in Go: for
// i < 8, j < 8 and k = nrows·q steps, A[i, t·q + e] = a[i][t·(q + jump) + e],
// B[p, j] = b[8·p + j], in gemmKernelGo's order and rounding.
func gemmKernelRows8x8Go(nrows int, a [8][]float32, q, jump int, b []float32, c []float32, ldc int, load bool) {
	var acc [8][8]float64
	if load {
		for i := range 8 {
			for j := range 8 {
				acc[i][j] = float64(c[i*ldc+j])
			}
		}
	}
	for t := range nrows {
		for e := range q {
			p := t*q + e
			bp := b[8*p : 8*p+8]
			for i := range 8 {
				av := float64(a[i][t*(q+jump)+e])
				for j, bv := range bp {
					acc[i][j] = float64(float32(av*float64(bv) + acc[i][j]))
				}
			}
		}
	}
	for i := range 8 {
		for j := range 8 {
			c[i*ldc+j] = float32(acc[i][j])
		}
	}
}
