package cpuref

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// TestConv2DFrameVsIm2col checks the frame passes (frame.go) against the
// im2col passes they replace, bit for bit, on the stride-1 shapes they
// serve: ResNet's 3×3 convolutions at 28, 14 and 7 (P·F a multiple of 8 or
// not), C·R·S above gemmKC (the chains paused between cache blocks), K
// not a multiple of 4 nor of 8, wider padding, rows padded but not
// columns and the reverse, an unpadded one with Q not a multiple of 8 (the
// implicit forward pass refuses it), 1×1 and 1-wide images; and on the
// phase layout ResNet's stride-2 convolutions and projections, mixed and
// larger strides, and padding wider than the kernel. The inputs
// are random floats with zeros, a NaN, an Inf and −0 among them, and the
// passes run on 1 and 2 threads, on the AVX2 kernels and (where the CPU
// has them) the AVX-512 ones.
func TestConv2DFrameVsIm2col(t *testing.T) {
	if !useFMAGEMM {
		t.Skip("the frame passes run on the FMA GEMM, which this CPU lacks")
	}
	rng := newRand(21)
	shapes := []geom.ConvGeom{
		{N: 3, C: 16, H: 28, W: 28, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 32, H: 14, W: 14, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, // C·R·S = 288 > gemmKC
		{N: 2, C: 64, H: 7, W: 7, K: 64, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 3, H: 9, W: 11, K: 5, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 2, H: 10, W: 6, K: 7, R: 5, S: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2},
		{N: 2, C: 3, H: 8, W: 9, K: 9, R: 3, S: 4, StrideH: 1, StrideW: 1, PadH: 2, PadW: 3},
		{N: 2, C: 4, H: 6, W: 7, K: 4, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1},
		{N: 2, C: 4, H: 6, W: 7, K: 4, R: 3, S: 3, StrideH: 1, StrideW: 1, PadW: 1},
		{N: 2, C: 3, H: 9, W: 13, K: 6, R: 3, S: 3, StrideH: 1, StrideW: 1}, // Q = 11
		{N: 3, C: 5, H: 1, W: 1, K: 3, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 6, H: 5, W: 1, K: 2, R: 1, S: 1, StrideH: 1, StrideW: 1},
		{N: 1, C: 30, H: 4, W: 4, K: 25, R: 1, S: 1, StrideH: 1, StrideW: 1},                    // 1×1, Q = 4
		{N: 3, C: 1, H: 28, W: 28, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, // ResNet's stem: C·R·S = 9
		{N: 2, C: 3, H: 12, W: 10, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, // C·R·S = 27
		// The phase layout: ResNet's strided convolutions and projections,
		// other strides, and padding wider than the kernel.
		{N: 2, C: 16, H: 28, W: 28, K: 32, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 2, C: 32, H: 14, W: 14, K: 64, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 2, C: 16, H: 28, W: 28, K: 32, R: 1, S: 1, StrideH: 2, StrideW: 2},
		{N: 2, C: 32, H: 14, W: 14, K: 64, R: 1, S: 1, StrideH: 2, StrideW: 2},
		{N: 2, C: 3, H: 11, W: 10, K: 5, R: 3, S: 4, StrideH: 2, StrideW: 1, PadH: 1, PadW: 2},
		{N: 2, C: 3, H: 10, W: 11, K: 9, R: 4, S: 3, StrideH: 1, StrideW: 2, PadH: 2, PadW: 1},
		{N: 2, C: 7, H: 13, W: 11, K: 3, R: 5, S: 5, StrideH: 3, StrideW: 3, PadH: 2, PadW: 2},
		{N: 2, C: 2, H: 5, W: 5, K: 8, R: 1, S: 1, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 1, H: 7, W: 1, K: 3, R: 3, S: 1, StrideH: 2, StrideW: 3, PadH: 1},
	}
	defer func(was, z, tr bool) { useConvFrame, useAVX512, useTransposedData = was, z, tr }(useConvFrame, useAVX512, useTransposedData)
	useTransposedData = false // the frame's own backward-data pass (TestConv2DTransposedData has the other)
	kernels := []bool{false}
	if avx512Run {
		kernels = append(kernels, true)
	}
	for _, z := range kernels {
		for _, g := range shapes {
			t.Run(fmt.Sprintf("avx512=%t/%v", z, g), func(t *testing.T) {
				useAVX512 = z
				useConvFrame = false
				ref, err := NewConv2D(g)
				if err != nil {
					t.Fatal(err)
				}
				useConvFrame = true
				fr, err := NewConv2D(g)
				if err != nil {
					t.Fatal(err)
				}
				if !fr.frame || ref.frame || fr.fr.z != z {
					t.Fatalf("frame path: %t with useConvFrame, %t without, AVX-512 %t; want true, false, %t", fr.frame, ref.frame, fr.fr.z, z)
				}
				x, w := randFloats[float32](rng, g.XLen()), randFloats[float32](rng, g.WLen())
				b, dy := randFloats[float32](rng, g.K), randFloats[float32](rng, g.YLen())
				for i := 0; i < len(x); i += 7 {
					x[i] = 0
				}
				for i := 1; i < len(w); i += 5 {
					w[i] = float32(math.Copysign(0, -1))
				}
				for i := 2; i < len(dy); i += 9 {
					dy[i] = 0
				}
				for _, threads := range []int{1, 2} {
					prev := runtime.GOMAXPROCS(threads)
					want, got := runConv2D(t, ref, x, w, b, dy), runConv2D(t, fr, x, w, b, dy)
					runtime.GOMAXPROCS(prev)
					for _, o := range []struct {
						name      string
						got, want []float32
					}{{"y", got.y, want.y}, {"dx", got.dx, want.dx}, {"dw", got.dw, want.dw}, {"db", got.db, want.db}} {
						checkBits(t, o.name, o.got, o.want)
					}
				}
				// Without db the weight gradient is the same.
				dw := make([]float32, g.WLen())
				if err := fr.BackwardFilter(x, dy, dw, nil); err != nil {
					t.Fatal(err)
				}
				checkBits(t, "dw (db nil)", dw, runConv2D(t, ref, x, w, b, dy).dw)
				// Non-finite inputs reach the same outputs the same way.
				xn := append([]float32(nil), x...)
				xn[len(xn)/2] = float32(math.NaN())
				xn[len(xn)/3] = float32(math.Inf(1))
				dyn := append([]float32(nil), dy...)
				dyn[len(dyn)/2] = float32(math.Inf(-1))
				want, got := runConv2D(t, ref, xn, w, b, dyn), runConv2D(t, fr, xn, w, b, dyn)
				checkBits(t, "y (non-finite)", got.y, want.y)
				checkBits(t, "dx (non-finite)", got.dx, want.dx)
				checkBits(t, "dw (non-finite)", got.dw, want.dw)
			})
		}
	}
}

// TestAddTo checks addTo against its Go form bit for bit on every length
// up to 80 (the 32-, 8- and 1-element steps and their tails), at offsets
// that misalign the vectors, the floats past the end left alone.
func TestAddTo(t *testing.T) {
	rng := newRand(22)
	for n := 0; n <= 80; n++ {
		for _, off := range []int{0, 1, 3} {
			src := randFloats[float32](rng, n+off)[off:]
			dst := randFloats[float32](rng, n+off+5)
			want := append([]float32(nil), dst...)
			addToGo(want[off:off+n], src)
			addTo(dst[off:], src)
			checkBits(t, "dst", dst, want)
		}
	}
}

// TestTransposeRows checks transposeRows against its Go form on row
// counts around the 8×8 blocks and column counts with and without a tail,
// with strides wider than the rows; the floats between rows are left
// alone.
func TestTransposeRows(t *testing.T) {
	rng := newRand(25)
	for _, rows := range []int{0, 1, 7, 8, 9, 16, 24, 64} {
		for _, cols := range []int{0, 1, 5, 8, 13, 49, 196} {
			lds, ldd := cols+3, rows+2
			src := randFloats[float32](rng, max(rows*lds, 1))
			got := randFloats[float32](rng, max(cols*ldd, 1))
			want := append([]float32(nil), got...)
			transposeRowsGo(want, ldd, src, lds, rows, cols, 0)
			transposeRows(got, ldd, src, lds, rows, cols)
			checkBits(t, fmt.Sprintf("rows=%d cols=%d", rows, cols), got, want)
		}
	}
}

// TestCopyRows checks copyRows against its Go form, strided on the source
// side and on the destination side, the floats it skips left alone.
func TestCopyRows(t *testing.T) {
	rng := newRand(26)
	for _, rows := range []int{0, 1, 3} {
		for _, n := range []int{0, 1, 5, 8, 9, 14, 16, 17, 25, 40} {
			for _, stride := range []int{1, 2, 3} {
				for _, gather := range []bool{true, false} {
					ds, ss := 1, stride
					if !gather {
						ds, ss = stride, 1
					}
					ldd, lds := n*ds+2, n*ss+3
					src := randFloats[float32](rng, rows*lds+1)
					got := randFloats[float32](rng, rows*ldd+1)
					want := append([]float32(nil), got...)
					copyRowsGo(want, ldd, ds, src, lds, ss, rows, n)
					copyRows(got, ldd, ds, src, lds, ss, rows, n)
					checkBits(t, fmt.Sprintf("rows=%d n=%d ds=%d ss=%d", rows, n, ds, ss), got, want)
				}
			}
		}
	}
}

// TestConv2DTransposedData checks the backward-data pass that runs as the
// forward pass of the transposed convolution (transposedData): bit for bit
// the order it documents, each dx element one chain of fused multiply-adds
// over (k, r', s') from 0, computed here one element at a time; exactly
// the direct form on small integers; within the float32 bound of the
// float64 direct form on uniform inputs; on 1 and 2 threads, with NaN and
// Inf among the inputs.
func TestConv2DTransposedData(t *testing.T) {
	if !avx512Run || !useFMAGEMM {
		t.Skip("the transposed backward-data pass runs on the AVX-512 kernels, which this CPU lacks")
	}
	rng := newRand(27)
	for _, g := range []geom.ConvGeom{
		{N: 3, C: 16, H: 28, W: 28, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 32, H: 14, W: 14, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, // K·R·S = 288 > gemmKC
		{N: 2, C: 64, H: 7, W: 7, K: 64, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 8, H: 9, W: 11, K: 5, R: 3, S: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 1},
		{N: 2, C: 16, H: 6, W: 10, K: 3, R: 2, S: 3, StrideH: 1, StrideW: 1, PadW: 2},
	} {
		t.Run(g.String(), func(t *testing.T) {
			c, err := NewConv2D(g)
			if err != nil {
				t.Fatal(err)
			}
			if !c.transposedData() {
				t.Fatalf("transposedData false, want true")
			}
			w, dy := randFloats[float32](rng, g.WLen()), randFloats[float32](rng, g.YLen())
			w[3] = float32(math.Copysign(0, -1))
			dy[len(dy)/2] = float32(math.NaN())
			dy[len(dy)/3] = float32(math.Inf(1))
			want := transposedDataRef(g, dy, w)
			for _, threads := range []int{1, 2} {
				prev := runtime.GOMAXPROCS(threads)
				dx := newGuarded[float32](g.XLen())
				err := c.BackwardData(dy, w, dx.Out)
				runtime.GOMAXPROCS(prev)
				if err != nil {
					t.Fatal(err)
				}
				dx.checkGuards(t, "dx")
				checkBits(t, fmt.Sprintf("dx (threads=%d)", threads), dx.Out, want)
			}
			// Small integers: exact in any order.
			wi, dyi := randInts[float32](rng, g.WLen(), -3, 3), randInts[float32](rng, g.YLen(), -3, 3)
			direct := make([]float32, g.XLen())
			if err := Conv2DBackwardDataDirect(g, dyi, wi, direct); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, g.XLen())
			if err := c.BackwardData(dyi, wi, got); err != nil {
				t.Fatal(err)
			}
			checkClose(t, "dx (ints)", got, direct, 0, 0)
			// Uniform: within TestConvDirectVsIm2col's bound of float64.
			w64, dy64 := randFloats[float64](rng, g.WLen()), randFloats[float64](rng, g.YLen())
			d64 := make([]float64, g.XLen())
			if err := Conv2DBackwardDataDirect(g, dy64, w64, d64); err != nil {
				t.Fatal(err)
			}
			if err := c.BackwardData(to32(dy64), to32(w64), got); err != nil {
				t.Fatal(err)
			}
			l := float64(g.K * g.R * g.S)
			checkClose(t, "dx (uniform)", got, d64, 1e-6*l*max(1, math.Sqrt(l/280)), 0)
		})
	}
}

// transposedDataRef is the order transposedData documents, element by
// element: dx[n,c,h,w] = one chain of fma32 over (k, r', s') in order, from
// 0, of w[k,c,R−1−r',S−1−s'] · dy[n,k, h−(R−1−ph)+r', w−(S−1−pw)+s'] (0
// outside dy).
func transposedDataRef(g geom.ConvGeom, dy, w []float32) []float32 {
	P, Q := g.P(), g.Q()
	dx := make([]float32, g.XLen())
	for n := range g.N {
		for c := range g.C {
			for h := range g.H {
				for x := range g.W {
					var acc float32
					for k := range g.K {
						for r2 := range g.R {
							for s2 := range g.S {
								p, q := h-(g.R-1-g.PadH)+r2, x-(g.S-1-g.PadW)+s2
								var v float32
								if p >= 0 && p < P && q >= 0 && q < Q {
									v = dy[((n*g.K+k)*P+p)*Q+q]
								}
								acc = fma32(w[((k*g.C+c)*g.R+g.R-1-r2)*g.S+g.S-1-s2], v, acc)
							}
						}
					}
					dx[((n*g.C+c)*g.H+h)*g.W+x] = acc
				}
			}
		}
	}
	return dx
}
