package cpuref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// gemmSizes are the swept sizes of m, n and k: 1, below, at and above the
// register tile (4×24) and its 8-wide edges, and above the cache blocks
// (gemmMC = 128, gemmKC = 256).
var gemmSizes = []int{1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 64, 100, 257}

// gemmCase is one GEMM C = beta·C + op(A)·op(B) with its operands stored
// with leading dimensions larger than their rows.
type gemmCase struct {
	tA, tB  bool
	m, n, k int
	beta    float32
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%t,tB=%t,m=%d,n=%d,k=%d,beta=%g", tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.beta)
}

// gemmOperands returns A, B and C filled by fill, stored with leading
// dimensions 3 more than needed (the gaps NaN: they must not be read), and
// those leading dimensions.
func gemmOperands(tc gemmCase, fill func() float32) (a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	ar, ac := tc.m, tc.k
	if tc.tA {
		ar, ac = tc.k, tc.m
	}
	br, bc := tc.k, tc.n
	if tc.tB {
		br, bc = tc.n, tc.k
	}
	mat := func(r, cols int) ([]float32, int) {
		ld := cols + 3
		s := make([]float32, r*ld)
		for i := range s {
			if i%ld < cols {
				s[i] = fill()
			} else {
				s[i] = float32(math.NaN())
			}
		}
		return s, ld
	}
	a, lda = mat(ar, ac)
	b, ldb = mat(br, bc)
	c, ldc = mat(tc.m, tc.n)
	return
}

// runGEMM runs gemm on c with op(A) and op(B) packed (packA, packB), or,
// when inPlace, read where they lie (rowMajorA or transA; rowMajorB, or
// packB for a transposed B, which gemm cannot read in place).
func runGEMM(tc gemmCase, inPlace bool, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	var ga gemmA
	var gb gemmB
	switch {
	case inPlace && tc.tA:
		ga = transA(a, lda)
	case inPlace:
		ga = rowMajorA(a, lda)
	default:
		ap := make([]float32, packedALen(tc.m, tc.k))
		packA(tc.tA, tc.m, tc.k, a, lda, ap)
		ga = packedA(ap, tc.k)
	}
	if inPlace && !tc.tB {
		gb = rowMajorB(b, ldb)
	} else {
		bp := make([]float32, packedBLen(tc.k, tc.n))
		packB(tc.tB, tc.k, tc.n, b, ldb, bp)
		gb = packedB(bp, tc.k)
	}
	gemm(tc.m, tc.n, tc.k, ga, gb, tc.beta, c, ldc, new(gemmScratch))
}

// naiveGEMM returns beta·C + op(A)·op(B) (m×n, dense) in float64, and the
// bound Σ_p |a[i,p]·b[p,j]| + |beta·c[i,j]| of each element, for the
// rounding-error bound.
func naiveGEMM(tc gemmCase, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) (want, mag []float64) {
	want, mag = make([]float64, tc.m*tc.n), make([]float64, tc.m*tc.n)
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n; j++ {
			var sum, abs float64
			if tc.beta != 0 {
				sum = float64(tc.beta) * float64(c[i*ldc+j])
				abs = math.Abs(sum)
			}
			for p := 0; p < tc.k; p++ {
				var av, bv float32
				if tc.tA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if tc.tB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				sum += float64(av) * float64(bv)
				abs += math.Abs(float64(av) * float64(bv))
			}
			want[i*tc.n+j], mag[i*tc.n+j] = sum, abs
		}
	}
	return want, mag
}

// checkGEMM runs one case and compares it with naiveGEMM: exactly for
// integer-valued inputs, else within the bound of a chain of k+1 roundings,
// (k+2)·u·Σ|terms| with u = 2⁻²⁴, the standard bound of a recursive sum with
// fused multiply-adds (plus one rounding for beta·C). The gaps between rows
// of C must keep their NaN, and the inputs must be unchanged.
func checkGEMM(t *testing.T, tc gemmCase, inPlace bool, rng *rand.Rand, ints bool) {
	t.Helper()
	fill := func() float32 { return float32(2*rng.Float64() - 1) }
	if ints {
		fill = func() float32 { return float32(rng.IntN(7) - 3) }
	}
	a, lda, b, ldb, c, ldc := gemmOperands(tc, fill)
	if tc.beta == 0 { // C must not be read
		for i := range c {
			c[i] = float32(math.NaN())
		}
	}
	want, mag := naiveGEMM(tc, a, lda, b, ldb, c, ldc)
	a0, b0 := slices.Clone(a), slices.Clone(b)
	runGEMM(tc, inPlace, a, lda, b, ldb, c, ldc)
	const u = 0x1p-24
	bad := 0
	for i := 0; i < tc.m; i++ {
		for j := 0; j < ldc; j++ {
			got := float64(c[i*ldc+j])
			if j >= tc.n {
				if got == got {
					t.Errorf("%v: C[%d,%d] (gap between rows) = %g, want NaN (out-of-range write)", tc, i, j, got)
					bad++
				}
				continue
			}
			w, tol := want[i*tc.n+j], float64(tc.k+2)*u*mag[i*tc.n+j]
			if ints {
				tol = 0
			}
			if !(math.Abs(got-w) <= tol) {
				t.Errorf("%v: C[%d,%d] = %g, want %g (tolerance %g)", tc, i, j, got, w, tol)
				bad++
			}
			if bad >= 10 {
				t.Fatalf("%v: stopping after 10 mismatches", tc)
			}
		}
	}
	if !slices.EqualFunc(a, a0, sameBits) || !slices.EqualFunc(b, b0, sameBits) {
		t.Errorf("%v: an input was modified", tc)
	}
}

// skipWithoutKernels skips a test that calls the micro-kernels on a CPU
// that cannot run them (amd64 without AVX2 and FMA, where Conv2D uses
// gonum instead).
func skipWithoutKernels(t *testing.T) {
	t.Helper()
	if !gemmKernelsRun {
		t.Skip("the assembly GEMM kernels need AVX2 and FMA, which this CPU lacks")
	}
}

func sameBits(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) }

// TestGEMM compares the FMA GEMM with a float64 triple loop over swept
// shapes: every (m, n, k) of gemmSizes without transposes, beta 1, random
// inputs, operands packed or in place (by the parity of m+n+k); and the transposes and beta 0, 1
// and 0.5 on a subset, with random and small-integer inputs (exact). The
// operands' rows have NaN gaps at their ends, which the in-place forms read
// into tile lanes that must be discarded.
func TestGEMM(t *testing.T) {
	skipWithoutKernels(t)
	rng := newRand(11)
	t.Run("sweep", func(t *testing.T) {
		for _, m := range gemmSizes {
			for _, n := range gemmSizes {
				for _, k := range gemmSizes {
					// Alternate the operand forms, both meeting every size.
					inPlace := (m+n+k)%2 == 0
					checkGEMM(t, gemmCase{m: m, n: n, k: k, beta: 1}, inPlace, rng, false)
				}
			}
		}
	})
	sub := []int{1, 3, 8, 17, 33, 100}
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, beta := range []float32{0, 1, 0.5} {
				for _, ints := range []bool{false, true} {
					for _, inPlace := range []bool{false, true} {
						t.Run(fmt.Sprintf("tA=%t,tB=%t,beta=%g,ints=%t,inPlace=%t", tA, tB, beta, ints, inPlace), func(t *testing.T) {
							for _, m := range sub {
								for _, n := range sub {
									for _, k := range append(sub, 0, 257) {
										checkGEMM(t, gemmCase{tA: tA, tB: tB, m: m, n: n, k: k, beta: beta}, inPlace, rng, ints)
									}
								}
							}
						})
					}
				}
			}
		}
	}
}

// TestGEMMOrder checks the stated summation order: a GEMM over k steps
// gives the same bits as one over the first k₁ steps followed by one with
// beta = 1 over the rest (the chain paused in C and resumed), whatever the
// tile and block positions; and the same bits as the Go micro-kernel on
// integer inputs.
func TestGEMMOrder(t *testing.T) {
	skipWithoutKernels(t)
	rng := newRand(12)
	for _, tc := range []struct{ m, n, k, k1 int }{
		{4, 24, 10, 3}, {7, 50, 300, 1}, {17, 33, 520, 256}, {130, 17, 64, 63}, {5, 8, 2, 1},
	} {
		t.Run(fmt.Sprintf("m=%d,n=%d,k=%d,k1=%d", tc.m, tc.n, tc.k, tc.k1), func(t *testing.T) {
			a, b := randFloats[float32](rng, tc.m*tc.k), randFloats[float32](rng, tc.k*tc.n)
			c0 := randFloats[float32](rng, tc.m*tc.n)
			whole := slices.Clone(c0)
			runGEMM(gemmCase{m: tc.m, n: tc.n, k: tc.k, beta: 1}, false, a, tc.k, b, tc.n, whole, tc.n)
			split := slices.Clone(c0)
			runGEMM(gemmCase{m: tc.m, n: tc.n, k: tc.k1, beta: 1}, true, a, tc.k, b, tc.n, split, tc.n)
			runGEMM(gemmCase{m: tc.m, n: tc.n, k: tc.k - tc.k1, beta: 1}, false, a[tc.k1:], tc.k, b[tc.k1*tc.n:], tc.n, split, tc.n)
			checkClose(t, "C (k split, packed and in place)", split, whole, 0, 0)
		})
	}
}

// TestGEMMKernels checks the micro-kernels in use (assembly on amd64 with
// AVX2 and FMA) against the Go one: exactly on integer inputs; within one
// rounding of the float64-then-float32 double rounding per step on random
// ones (the Go kernel rounds each FMA twice, the hardware once: at most one
// rounding, u·|partial sum| with u = 2⁻²⁴, apart per step).
func TestGEMMKernels(t *testing.T) {
	skipWithoutKernels(t)
	rng := newRand(13)
	for _, width := range []int{8, 16, 24} {
		for _, k := range []int{0, 1, 2, 7, 64, 300} {
			for _, load := range []bool{false, true} {
				for _, ints := range []bool{false, true} {
					t.Run(fmt.Sprintf("width=%d,k=%d,load=%t,ints=%t", width, k, load, ints), func(t *testing.T) {
						// A row-major with row stride k+2, B with row stride 27.
						const ldc, brow = gemmNR + 5, gemmNR + 3
						arow := k + 2
						a, b := randFloats[float32](rng, gemmMR*arow), randFloats[float32](rng, brow*k+1)
						c := randFloats[float32](rng, gemmMR*ldc)
						if ints {
							a, b = randInts[float32](rng, len(a), -3, 3), randInts[float32](rng, len(b), -3, 3)
							c = randInts[float32](rng, len(c), -3, 3)
						}
						want, got := slices.Clone(c), slices.Clone(c)
						gemmKernelGo(width, k, a, arow, 1, b, brow, want, ldc, load)
						kern := map[int]func(int, *float32, int, int, *float32, int, *float32, int, bool){
							8: gemmKernel8, 16: gemmKernel16, 24: gemmKernel24}[width]
						kern(k, &a[0], arow, 1, &b[0], brow, &got[0], ldc, load)
						// |a|, |b|, |c| ≤ 1: every partial sum is at most k+1.
						tol := float64(k) * float64(k+1) * 0x1p-24
						if ints {
							tol = 0
						}
						for i := range gemmMR {
							for j := range ldc {
								g, w := got[i*ldc+j], want[i*ldc+j]
								if j >= width {
									if !sameBits(g, c[i*ldc+j]) {
										t.Errorf("c[%d,%d] = %g outside the tile, want %g unchanged", i, j, g, c[i*ldc+j])
									}
									continue
								}
								if !(math.Abs(float64(g)-float64(w)) <= tol) {
									t.Errorf("c[%d,%d] = %g, Go kernel %g (tolerance %g)", i, j, g, w, tol)
								}
							}
						}
					})
				}
			}
		}
	}
}

// TestGEMMKernelsOff checks the implicit-GEMM micro-kernels in use against
// the Go one, on B rows gathered through an offset table from three vector
// bases, like the implicit convolution: exactly on integer inputs, within
// TestGEMMKernels' bound on random ones.
func TestGEMMKernelsOff(t *testing.T) {
	skipWithoutKernels(t)
	rng := newRand(14)
	for _, width := range []int{8, 16, 24} {
		for _, k := range []int{0, 1, 5, 25, 200} {
			for _, ints := range []bool{false, true} {
				t.Run(fmt.Sprintf("width=%d,k=%d,ints=%t", width, k, ints), func(t *testing.T) {
					const ldc, xlen = gemmNR + 5, 4100 // bases below 2900, offsets below 1000
					arow := k + 2
					a, x := randFloats[float32](rng, gemmMR*arow), randFloats[float32](rng, xlen)
					c := randFloats[float32](rng, gemmMR*ldc)
					if ints {
						a, x = randInts[float32](rng, len(a), -3, 3), randInts[float32](rng, len(x), -3, 3)
						c = randInts[float32](rng, len(c), -3, 3)
					}
					boff := make([]int32, k+1)
					for p := range boff {
						boff[p] = int32(rng.IntN(1000))
					}
					var bs [3][]float32
					var bp [3]*float32
					for v := range 3 {
						bs[v] = x[v*1000+rng.IntN(900):]
						bp[v] = &bs[v][0]
					}
					for _, load := range []bool{false, true} {
						want, got := slices.Clone(c), slices.Clone(c)
						gemmKernelOffGo(width, k, a, arow, 1, bs, boff, want, ldc, load)
						kern := map[int]func(int, *float32, int, int, *float32, *float32, *float32, *int32, *float32, int, bool){
							8: gemmKernelOff8, 16: gemmKernelOff16, 24: gemmKernelOff24}[width]
						kern(k, &a[0], arow, 1, bp[0], bp[1], bp[2], &boff[0], &got[0], ldc, load)
						tol := float64(k) * float64(k+1) * 0x1p-24 // as in TestGEMMKernels
						if ints {
							tol = 0
						}
						for i := range gemmMR {
							for j := range ldc {
								g, w := got[i*ldc+j], want[i*ldc+j]
								if j >= width {
									if !sameBits(g, c[i*ldc+j]) {
										t.Errorf("load=%t: c[%d,%d] = %g outside the tile, want %g unchanged", load, i, j, g, c[i*ldc+j])
									}
									continue
								}
								if !(math.Abs(float64(g)-float64(w)) <= tol) {
									t.Errorf("load=%t: c[%d,%d] = %g, Go kernel %g (tolerance %g)", load, i, j, g, w, tol)
								}
							}
						}
					}
				})
			}
		}
	}
}

// TestConv2DFMAVsGonum checks the Conv2D passes on the FMA GEMM against the
// same passes on gonum's Sgemm (useFMAGEMM off), and both against the
// direct form on integer inputs: exactly there (every partial sum is an
// integer below 2²⁴); within the direct-vs-im2col bound of
// TestConvDirectVsIm2col on random inputs. The shapes add to the swept
// ones an implicit forward pass with C·R·S > gemmKC (the chain paused
// between cache blocks) and K not a multiple of 4, and an implicit
// weight gradient with K over one panel of 24. Without the FMA kernels
// (other CPUs and architectures) the two runs are the same path.
func TestConv2DFMAVsGonum(t *testing.T) {
	rng := newRand(15)
	shapes := append(sweptConvShapes(),
		geom.ConvGeom{N: 2, C: 12, H: 12, W: 12, K: 6, R: 5, S: 5, StrideH: 2, StrideW: 1}, // implicit, C·R·S = 300
		geom.ConvGeom{N: 3, C: 3, H: 9, W: 20, K: 5, R: 2, S: 5, StrideH: 1, StrideW: 1},   // implicit, Q = 16
		geom.ConvGeom{N: 2, C: 3, H: 8, W: 9, K: 30, R: 3, S: 2, StrideH: 2, StrideW: 1},   // implicit dw: K > 24, C·R·S = 18
		geom.ConvGeom{N: 5, C: 1, H: 6, W: 6, K: 17, R: 6, S: 6, StrideH: 1, StrideW: 1},   // one output
	)
	fma := useFMAGEMM
	defer func() { useFMAGEMM = fma }()
	for _, g := range shapes {
		t.Run(g.String(), func(t *testing.T) {
			useFMAGEMM = false
			ref, err := NewConv2D(g)
			if err != nil {
				t.Fatal(err)
			}
			useFMAGEMM = fma
			c, err := NewConv2D(g)
			if err != nil {
				t.Fatal(err)
			}
			x, w := randInts[float32](rng, g.XLen(), -3, 3), randInts[float32](rng, g.WLen(), -3, 3)
			b, dy := randInts[float32](rng, g.K, -3, 3), randInts[float32](rng, g.YLen(), -3, 3)
			want := runConvDirect(t, g, x, w, b, dy)
			for _, run := range []struct {
				name string
				c    *Conv2D
			}{{"gonum", ref}, {"fma", c}} {
				got := runConv2D(t, run.c, x, w, b, dy)
				checkClose(t, run.name+" y (ints)", got.y, want.y, 0, 0)
				checkClose(t, run.name+" dx (ints)", got.dx, want.dx, 0, 0)
				checkClose(t, run.name+" dw (ints)", got.dw, want.dw, 0, 0)
				checkClose(t, run.name+" db (ints)", got.db, want.db, 0, 0)
			}
			xf, wf := randFloats[float32](rng, g.XLen()), randFloats[float32](rng, g.WLen())
			bf, dyf := randFloats[float32](rng, g.K), randFloats[float32](rng, g.YLen())
			r, f := runConv2D(t, ref, xf, wf, bf, dyf), runConv2D(t, c, xf, wf, bf, dyf)
			// Both are float32 sums of L terms of size ≤ 1 in different
			// orders: each is within TestConvDirectVsIm2col's bound of the
			// exact value, so within twice that of each other.
			tol := func(l int) float64 { return 2e-6 * float64(l) * max(1, math.Sqrt(float64(l)/280)) }
			checkClose(t, "fma vs gonum y", f.y, r.y, tol(g.C*g.R*g.S+1), 0)
			checkClose(t, "fma vs gonum dx", f.dx, r.dx, tol(g.K*g.R*g.S), 0)
			checkClose(t, "fma vs gonum dw", f.dw, r.dw, tol(g.N*g.P()*g.Q()), 0)
			checkClose(t, "fma vs gonum db", f.db, r.db, tol(g.N*g.P()*g.Q()), 0)
		})
	}
}

// TestGEMMKernelsRows checks the row-walking micro-kernels in use against
// the Go one, with A's four rows at unrelated places of x, as in the
// implicit weight gradient: exactly on integer inputs, within
// TestGEMMKernels' bound on random ones.
func TestGEMMKernelsRows(t *testing.T) {
	skipWithoutKernels(t)
	rng := newRand(16)
	for _, width := range []int{8, 16, 24} {
		for _, shape := range []struct{ nrows, q, jump int }{{0, 3, 1}, {1, 1, 0}, {3, 8, 4}, {24, 24, 4}, {7, 5, 0}} {
			for _, ints := range []bool{false, true} {
				t.Run(fmt.Sprintf("width=%d,nrows=%d,q=%d,jump=%d,ints=%t", width, shape.nrows, shape.q, shape.jump, ints), func(t *testing.T) {
					const ldc, brow = gemmNR + 5, gemmNR + 3
					k := shape.nrows * shape.q
					span := max(1, shape.nrows*(shape.q+shape.jump))
					x, b := randFloats[float32](rng, 4*span+50), randFloats[float32](rng, brow*k+gemmNR)
					c := randFloats[float32](rng, gemmMR*ldc)
					if ints {
						x, b = randInts[float32](rng, len(x), -3, 3), randInts[float32](rng, len(b), -3, 3)
						c = randInts[float32](rng, len(c), -3, 3)
					}
					var as [gemmMR][]float32
					var ap [gemmMR]*float32
					for i := range gemmMR {
						as[i] = x[(3-i)*span+rng.IntN(50):] // rows in reverse order, unaligned
						ap[i] = &as[i][0]
					}
					for _, load := range []bool{false, true} {
						want, got := slices.Clone(c), slices.Clone(c)
						gemmKernelRowsGo(width, shape.nrows, as, shape.q, shape.jump, b, brow, want, ldc, load)
						kern := map[int]func(int, *float32, *float32, *float32, *float32, int, int, *float32, int, *float32, int, bool){
							8: gemmKernelRows8, 16: gemmKernelRows16, 24: gemmKernelRows24}[width]
						kern(shape.nrows, ap[0], ap[1], ap[2], ap[3], shape.q, shape.jump, &b[0], brow, &got[0], ldc, load)
						tol := float64(k) * float64(k+1) * 0x1p-24 // as in TestGEMMKernels
						if ints {
							tol = 0
						}
						for i := range gemmMR {
							for j := range ldc {
								g, w := got[i*ldc+j], want[i*ldc+j]
								if j >= width {
									if !sameBits(g, c[i*ldc+j]) {
										t.Errorf("load=%t: c[%d,%d] = %g outside the tile, want %g unchanged", load, i, j, g, c[i*ldc+j])
									}
									continue
								}
								if !(math.Abs(float64(g)-float64(w)) <= tol) {
									t.Errorf("load=%t: c[%d,%d] = %g, Go kernel %g (tolerance %g)", load, i, j, g, w, tol)
								}
							}
						}
					}
				})
			}
		}
	}
}

// TestGEMMKernelsAdd checks the scatter-add micro-kernels in use against
// the Go one, with the four rows' targets overlapping (offsets 0, 1, 1 and
// 9, so rows 1 and 2 add into the same floats and row 3 into the next
// vector's): exactly on integer inputs, within TestGEMMKernels' bound per
// added term (three terms at most meet in a float) on random ones.
func TestGEMMKernelsAdd(t *testing.T) {
	skipWithoutKernels(t)
	rng := newRand(17)
	for _, width := range []int{8, 16, 24} {
		for _, k := range []int{0, 1, 16, 70} {
			for _, ints := range []bool{false, true} {
				t.Run(fmt.Sprintf("width=%d,k=%d,ints=%t", width, k, ints), func(t *testing.T) {
					const brow = gemmNR + 3
					arow := k + 2
					a, b := randFloats[float32](rng, gemmMR*arow), randFloats[float32](rng, brow*k+gemmNR)
					d := randFloats[float32](rng, 200)
					if ints {
						a, b = randInts[float32](rng, len(a), -3, 3), randInts[float32](rng, len(b), -3, 3)
						d = randInts[float32](rng, len(d), -3, 3)
					}
					doff := []int32{0, 1, 1, 9}
					want, got := slices.Clone(d), slices.Clone(d)
					var ws [3][]float32
					var gp [3]*float32
					for v := range 3 {
						ws[v] = want[60*v+3:]
						gp[v] = &got[60*v+3]
					}
					gemmKernelAddGo(width, k, a, arow, 1, b, brow, ws, doff)
					kern := map[int]func(int, *float32, int, int, *float32, int, *float32, *float32, *float32, *int32){
						8: gemmKernelAdd8, 16: gemmKernelAdd16, 24: gemmKernelAdd24}[width]
					kern(k, &a[0], arow, 1, &b[0], brow, gp[0], gp[1], gp[2], &doff[0])
					tol := 3 * float64(k) * float64(k+1) * 0x1p-24
					if ints {
						tol = 0
					}
					changed := 0
					for i := range d {
						if !(math.Abs(float64(got[i])-float64(want[i])) <= tol) {
							t.Errorf("d[%d] = %g, Go kernel %g (tolerance %g)", i, got[i], want[i], tol)
						}
						if !sameBits(got[i], d[i]) {
							changed++
						}
					}
					// Targets: vector v covers 60·v+3 … 60·v+3+17 at most.
					if k > 0 && changed == 0 {
						t.Errorf("no element of d changed, want the tile added")
					}
				})
			}
		}
	}
}

// TestGEMMKernelRows8x8 checks the 8×8 row-walking micro-kernel in use
// against the Go one, as TestGEMMKernelsRows does for the 4-row ones.
func TestGEMMKernelRows8x8(t *testing.T) {
	skipWithoutKernels(t)
	rng := newRand(18)
	for _, shape := range []struct{ nrows, q, jump int }{{0, 3, 1}, {1, 1, 0}, {24, 24, 4}, {8, 8, 4}, {7, 5, 0}} {
		for _, ints := range []bool{false, true} {
			t.Run(fmt.Sprintf("nrows=%d,q=%d,jump=%d,ints=%t", shape.nrows, shape.q, shape.jump, ints), func(t *testing.T) {
				const ldc = 11
				k := shape.nrows * shape.q
				span := max(1, shape.nrows*(shape.q+shape.jump))
				x, b := randFloats[float32](rng, 8*span+50), randFloats[float32](rng, 8*k+8)
				c := randFloats[float32](rng, 8*ldc)
				if ints {
					x, b = randInts[float32](rng, len(x), -3, 3), randInts[float32](rng, len(b), -3, 3)
					c = randInts[float32](rng, len(c), -3, 3)
				}
				var as [8][]float32
				var ap [8]*float32
				for i := range 8 {
					as[i] = x[(7-i)*span+rng.IntN(50):] // rows in reverse order, unaligned
					ap[i] = &as[i][0]
				}
				for _, load := range []bool{false, true} {
					want, got := slices.Clone(c), slices.Clone(c)
					gemmKernelRows8x8Go(shape.nrows, as, shape.q, shape.jump, b, want, ldc, load)
					gemmKernelRows8x8(shape.nrows, &ap, shape.q, 4*shape.jump, &b[0], &got[0], ldc, load)
					tol := float64(k) * float64(k+1) * 0x1p-24 // as in TestGEMMKernels
					if ints {
						tol = 0
					}
					for i := range 8 {
						for j := range ldc {
							g, w := got[i*ldc+j], want[i*ldc+j]
							if j >= 8 {
								if !sameBits(g, c[i*ldc+j]) {
									t.Errorf("load=%t: c[%d,%d] = %g outside the tile, want %g unchanged", load, i, j, g, c[i*ldc+j])
								}
								continue
							}
							if !(math.Abs(float64(g)-float64(w)) <= tol) {
								t.Errorf("load=%t: c[%d,%d] = %g, Go kernel %g (tolerance %g)", load, i, j, g, w, tol)
							}
						}
					}
				}
			})
		}
	}
}
