package gpu

import (
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

// The conformance cases of the kernels that are not convolutions
// (plainConformance): activations, pooling, dense layers, losses, the
// optimiser step and data movement.

// elemSizes: 1, around a warp, around and beyond one 256-thread block.
var elemSizes = []int{1, 2, 31, 33, 255, 256, 257, 1000}

func testReLUForward(t *testing.T, d *Device) {
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			x := smallInts(newRand(t.Name()), n, -2, 2)
			if n > 2 {
				x[n/2] = float32(math.NaN()) // must propagate
			}
			want := make([]float32, n)
			if err := cpuref.ReLUForward(x, want); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			y := h.out("y", n)
			if err := d.ReLUForward(h.in("x", x), y); err != nil {
				t.Fatal(err)
			}
			// A selection: exact.
			checkExact32(t, "y", h.read(y), want)
			h.check()
		})
	}
}

func testReLUBackward(t *testing.T, d *Device) {
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			rng := newRand(t.Name())
			x, dy := smallInts(rng, n, -2, 2), uniform(rng, n)
			want := make([]float32, n)
			if err := cpuref.ReLUBackward(x, dy, want); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			dx := h.out("dx", n)
			if err := d.ReLUBackward(h.in("x", x), h.in("dy", dy), dx); err != nil {
				t.Fatal(err)
			}
			checkExact32(t, "dx", h.read(dx), want)
			h.check()
		})
	}
}

func pg(n, c, h, w, r, s, sh, sw int) geom.PoolGeom {
	return geom.PoolGeom{N: n, C: c, H: h, W: w, R: r, S: s, StrideH: sh, StrideW: sw}
}

// poolShapes: 1×1, non-overlapping, overlapping (stride < window), windows
// that leave a remainder, non-square windows and strides.
var poolShapes = []geom.PoolGeom{
	pg(1, 1, 1, 1, 1, 1, 1, 1),
	pg(2, 3, 6, 6, 2, 2, 2, 2),
	pg(1, 2, 7, 5, 3, 3, 2, 2),
	pg(3, 1, 9, 9, 3, 2, 3, 1),
	pg(2, 2, 5, 8, 2, 3, 1, 3),
	pg(1, 4, 28, 28, 2, 2, 2, 2),
}

func testMaxPoolForward(t *testing.T, d *Device) {
	for _, g := range poolShapes {
		for _, nan := range []bool{false, true} {
			t.Run(kv("nan", nan)+"/"+g.String(), func(t *testing.T) {
				// Values in [−2, 2]: many ties, which checks "first maximum".
				x := smallInts(newRand(t.Name()), g.XLen(), -2, 2)
				if nan {
					x[g.XLen()/2] = float32(math.NaN()) // a NaN wins its windows
				}
				want := make([]float32, g.YLen())
				wantArg := make([]int32, g.YLen())
				if err := cpuref.MaxPoolForward(g, x, want, wantArg); err != nil {
					t.Fatal(err)
				}
				h := newHarness(t, d)
				y, arg := h.out("y", g.YLen()), h.outI32("argmax", g.YLen())
				if err := d.MaxPoolForward(g, h.in("x", x), y, arg); err != nil {
					t.Fatal(err)
				}
				checkExact32(t, "y", h.read(y), want)
				checkExactI32(t, "argmax", h.readI32(arg), wantArg)
				h.check()
			})
		}
	}
}

func testMaxPoolBackward(t *testing.T, d *Device) {
	for _, g := range poolShapes {
		t.Run(g.String(), func(t *testing.T) {
			rng := newRand(t.Name())
			x := smallInts(rng, g.XLen(), -2, 2)
			y := make([]float32, g.YLen())
			arg := make([]int32, g.YLen())
			if err := cpuref.MaxPoolForward(g, x, y, arg); err != nil {
				t.Fatal(err)
			}
			// Integer dy: overlapping windows sum exactly in any order.
			dy := smallInts(rng, g.YLen(), -3, 3)
			want := make([]float32, g.XLen())
			if err := cpuref.MaxPoolBackward(g, dy, arg, want); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			dx := h.out("dx", g.XLen())
			if err := d.MaxPoolBackward(g, h.in("dy", dy), h.inI32("argmax", arg), dx); err != nil {
				t.Fatal(err)
			}
			checkExact32(t, "dx", h.read(dx), want)
			h.check()
		})
	}
}

// denseShapes (N, In, Out): size 1, odd widths, widths around 32 and 256.
var denseShapes = [][3]int{{1, 1, 1}, {2, 3, 5}, {7, 33, 10}, {4, 257, 3}, {3, 5, 300}, {65, 20, 10}}

func testDenseForward(t *testing.T, d *Device) {
	for _, s := range denseShapes {
		n, in, out := s[0], s[1], s[2]
		for _, kind := range inputKinds {
			name := "inputs=" + kind + "/" + kv("N", n, "In", in, "Out", out)
			t.Run(name, func(t *testing.T) {
				inp := convInputs(kind, name, n*in, out*in, out)
				x, w, b := inp[0], inp[1], inp[2]
				h := newHarness(t, d)
				y := h.out("y", n*out)
				if err := d.DenseForward(n, in, out, h.in("x", x), h.in("w", w), h.in("b", b), y); err != nil {
					t.Fatal(err)
				}
				got := h.read(y)
				if kind == "int" {
					want := make([]float32, n*out)
					if err := cpuref.DenseForward(n, in, out, x, w, b, want); err != nil {
						t.Fatal(err)
					}
					checkExact32(t, "y", got, want)
				} else {
					want, abs := make([]float64, n*out), make([]float64, n*out)
					if err := cpuref.DenseForward(n, in, out, to64(x), to64(w), to64(b), want); err != nil {
						t.Fatal(err)
					}
					if err := cpuref.DenseForward(n, in, out, abs64(x), abs64(w), abs64(b), abs); err != nil {
						t.Fatal(err)
					}
					checkClose(t, "y", got, want, sumBound(2*in+1, abs))
				}
				h.check()
			})
		}
	}
}

// denseBackwardRef computes the float64 (or exact float32) reference of
// the three dense backward outputs.
func denseBackwardRef[T cpuref.Float](n, in, out int, x, w, dy []T) (dx, dw, db []T) {
	dx, dw, db = make([]T, n*in), make([]T, out*in), make([]T, out)
	if err := cpuref.DenseBackward(n, in, out, x, w, dy, dx, dw, db); err != nil {
		panic(err) // shapes are fixed by the test table
	}
	return dx, dw, db
}

func testDenseBackwardData(t *testing.T, d *Device) {
	for _, s := range denseShapes {
		n, in, out := s[0], s[1], s[2]
		for _, kind := range inputKinds {
			name := "inputs=" + kind + "/" + kv("N", n, "In", in, "Out", out)
			t.Run(name, func(t *testing.T) {
				inp := convInputs(kind, name, n*in, out*in, n*out)
				x, w, dy := inp[0], inp[1], inp[2]
				h := newHarness(t, d)
				dx := h.out("dx", n*in)
				if err := d.DenseBackwardData(n, in, out, h.in("dy", dy), h.in("w", w), dx); err != nil {
					t.Fatal(err)
				}
				got := h.read(dx)
				if kind == "int" {
					want, _, _ := denseBackwardRef(n, in, out, x, w, dy)
					checkExact32(t, "dx", got, want)
				} else {
					want, _, _ := denseBackwardRef(n, in, out, to64(x), to64(w), to64(dy))
					abs, _, _ := denseBackwardRef(n, in, out, abs64(x), abs64(w), abs64(dy))
					checkClose(t, "dx", got, want, sumBound(2*out, abs))
				}
				h.check()
			})
		}
	}
}

func testDenseBackwardWeight(t *testing.T, d *Device) {
	for _, s := range denseShapes {
		n, in, out := s[0], s[1], s[2]
		for _, kind := range inputKinds {
			name := "inputs=" + kind + "/" + kv("N", n, "In", in, "Out", out)
			t.Run(name, func(t *testing.T) {
				inp := convInputs(kind, name, n*in, out*in, n*out)
				x, w, dy := inp[0], inp[1], inp[2]
				h := newHarness(t, d)
				dw := h.out("dw", out*in)
				if err := d.DenseBackwardWeight(n, in, out, h.in("x", x), h.in("dy", dy), dw); err != nil {
					t.Fatal(err)
				}
				got := h.read(dw)
				if kind == "int" {
					_, want, _ := denseBackwardRef(n, in, out, x, w, dy)
					checkExact32(t, "dw", got, want)
				} else {
					_, want, _ := denseBackwardRef(n, in, out, to64(x), to64(w), to64(dy))
					_, abs, _ := denseBackwardRef(n, in, out, abs64(x), abs64(w), abs64(dy))
					checkClose(t, "dw", got, want, sumBound(2*n, abs))
				}
				h.check()
			})
		}
	}
}

func testReduceCols(t *testing.T, d *Device) {
	for _, s := range [][2]int{{1, 1}, {3, 7}, {64, 10}, {5, 300}, {257, 2}} {
		rows, cols := s[0], s[1]
		for _, kind := range inputKinds {
			name := "inputs=" + kind + "/" + kv("rows", rows, "cols", cols)
			t.Run(name, func(t *testing.T) {
				a := convInputs(kind, name, rows*cols)[0]
				h := newHarness(t, d)
				out := h.out("out", cols)
				if err := d.ReduceCols(rows, cols, h.in("a", a), out); err != nil {
					t.Fatal(err)
				}
				// The bias gradient of a dense layer with dy = a.
				ones := make([]float32, cols)
				if kind == "int" {
					_, _, want := denseBackwardRef(rows, 1, cols, make([]float32, rows), ones, a)
					checkExact32(t, "out", h.read(out), want)
				} else {
					_, _, want := denseBackwardRef(rows, 1, cols, make([]float64, rows), to64(ones), to64(a))
					_, _, abs := denseBackwardRef(rows, 1, cols, make([]float64, rows), to64(ones), abs64(a))
					checkClose(t, "out", h.read(out), want, sumBound(rows, abs))
				}
				h.check()
			})
		}
	}
}

// softmaxShapes (N, Classes).
var softmaxShapes = [][2]int{{1, 1}, {1, 2}, {3, 10}, {33, 7}, {257, 3}, {2, 300}}

func testSoftmaxCE(t *testing.T, d *Device) {
	for _, s := range softmaxShapes {
		n, classes := s[0], s[1]
		for _, badLabel := range []bool{false, true} {
			t.Run(kv("N", n, "classes", classes, "badLabel", badLabel), func(t *testing.T) {
				rng := newRand(t.Name())
				logits := make([]float32, n*classes)
				for i := range logits {
					logits[i] = float32(8*rng.Float64() - 4)
				}
				labels := make([]int32, n)
				for i := range labels {
					labels[i] = int32(rng.IntN(classes))
				}
				bad := -1
				if badLabel {
					bad = n / 2
					labels[bad] = int32(classes) // one past the end
					if n > 2 {
						labels[0] = -1
					}
				}
				// Per-row float64 reference: cpuref with a batch of one gives
				// the row's loss and softmax − onehot; the kernel divides the
				// gradient by N.
				wantLoss := make([]float64, n)
				wantGrad := make([]float64, n*classes)
				for r := range n {
					row := to64(logits[r*classes : (r+1)*classes])
					lab := labels[r]
					if lab < 0 || int(lab) >= classes {
						wantLoss[r] = math.NaN()
						for c := range classes {
							wantGrad[r*classes+c] = math.NaN()
						}
						continue
					}
					g := make([]float64, classes)
					l, err := cpuref.SoftmaxCrossEntropy(1, classes, row, []int32{lab}, g)
					if err != nil {
						t.Fatal(err)
					}
					wantLoss[r] = l
					for c := range classes {
						wantGrad[r*classes+c] = g[c] / float64(n)
					}
				}
				h := newHarness(t, d)
				loss, dl := h.out("lossRows", n), h.out("dlogits", n*classes)
				if err := d.SoftmaxCrossEntropy(n, classes, h.in("logits", logits), h.inI32("labels", labels), loss, dl); err != nil {
					t.Fatal(err)
				}
				// mathf_expf and mathf_logf are within 1 ulp (2u relative).
				// Each e^(z_j−m) is off by ≤ (|z_j−m| + 3)·u ≤ 11u relative
				// (logits in [−4, 4]), their sum by ≤ (classes + 11)·u, its
				// log by that plus 2u·|ln Σ| ≤ 12u, and the last subtraction
				// adds ≤ 8u + u·|loss|: loss within (classes + 32)·u·(1 +
				// |loss|). A gradient entry (p_j − [j = l])/N: p_j = e/Σ within
				// (classes + 23)·u·p_j, then the subtraction and the division
				// 2u more on values ≤ 1: within (classes + 26)·u/N.
				lt := make([]float64, n)
				for i := range lt {
					lt[i] = float64(classes+32) * u * (1 + math.Abs(wantLoss[i]))
				}
				gt := make([]float64, n*classes)
				for i := range gt {
					gt[i] = float64(classes+26) * u / float64(n)
				}
				checkClose(t, "lossRows", h.read(loss), wantLoss, lt)
				checkClose(t, "dlogits", h.read(dl), wantGrad, gt)
				h.check()
			})
		}
	}
}

func testMSE(t *testing.T, d *Device) {
	for _, s := range [][2]int{{1, 1}, {3, 10}, {33, 7}, {257, 2}} {
		n, dim := s[0], s[1]
		t.Run(kv("N", n, "dim", dim), func(t *testing.T) {
			rng := newRand(t.Name())
			y, tt := uniform(rng, n*dim), uniform(rng, n*dim)
			wantLoss := make([]float64, n)
			absLoss := make([]float64, n)
			wantDy := make([]float64, n*dim)
			for r := range n {
				for c := range dim {
					i := r*dim + c
					e := float64(tt[i]) - float64(y[i])
					wantLoss[r] += 0.5 * e * e
					wantDy[i] = (float64(y[i]) - float64(tt[i])) / float64(n)
				}
				absLoss[r] = wantLoss[r]
			}
			// Cross-check the hand-written reference with cpuref's mean.
			mean, err := cpuref.MSE(n, dim, to64(y), to64(tt), nil)
			if err != nil {
				t.Fatal(err)
			}
			var sum float64
			for _, l := range wantLoss {
				sum += l
			}
			if math.Abs(sum/float64(n)-mean) > 1e-12*math.Max(1, mean) {
				t.Fatalf("test reference: mean loss %g, cpuref %g", sum/float64(n), mean)
			}
			h := newHarness(t, d)
			loss, dy := h.out("lossRows", n), h.out("dy", n*dim)
			if err := d.MSE(n, dim, h.in("y", y), h.in("t", tt), loss, dy); err != nil {
				t.Fatal(err)
			}
			// loss: 3·dim roundings (difference, square, sum); dy: a
			// difference then a division or a multiply by 1/N (3 roundings).
			checkClose(t, "lossRows", h.read(loss), wantLoss, sumBound(3*dim+1, absLoss))
			dt := make([]float64, n*dim)
			for i, w := range wantDy {
				dt[i] = 4 * u * math.Abs(w)
			}
			checkClose(t, "dy", h.read(dy), wantDy, dt)
			h.check()
		})
	}
}

func testReduceSum(t *testing.T, d *Device) {
	for _, n := range []int{1, 7, 255, 256, 257, 1000, 4097} {
		for _, kind := range inputKinds {
			t.Run(kv("inputs", kind, "n", n), func(t *testing.T) {
				a := convInputs(kind, t.Name(), n)[0]
				var sum, abs float64
				for _, v := range a {
					sum += float64(v)
					abs += math.Abs(float64(v))
				}
				scale := float32(1) / float32(n)
				h := newHarness(t, d)
				out := h.out("out", 1)
				if err := d.ReduceSum(h.in("a", a), out, scale); err != nil {
					t.Fatal(err)
				}
				if kind == "int" {
					// The integer sum is exact; the product of two 24-bit
					// mantissas is exact in float64, so one rounding to
					// float32 gives what the kernel's final multiply gives.
					checkExact32(t, "out", h.read(out), []float32{float32(float64(scale) * sum)})
				} else {
					checkClose(t, "out", h.read(out), []float64{float64(scale) * sum},
						[]float64{float64(n+1) * u * abs * float64(scale)})
				}
				h.check()
			})
		}
	}
}

func testCountCorrect(t *testing.T, d *Device) {
	for _, s := range [][2]int{{1, 1}, {1, 3}, {7, 10}, {257, 4}, {1000, 2}} {
		n, classes := s[0], s[1]
		t.Run(kv("N", n, "classes", classes), func(t *testing.T) {
			rng := newRand(t.Name())
			// Integer logits in [0, 3]: many ties, which checks "first
			// largest".
			logits := smallInts(rng, n*classes, 0, 3)
			labels := make([]int32, n)
			for i := range labels {
				labels[i] = int32(rng.IntN(classes))
			}
			const start = 5
			want := start
			for r := range n {
				best := 0
				for c := 1; c < classes; c++ {
					if logits[r*classes+c] > logits[r*classes+best] {
						best = c
					}
				}
				if int32(best) == labels[r] {
					want++
				}
			}
			h := newHarness(t, d)
			acc := h.inout("acc", []float32{start})
			if err := d.CountCorrect(n, classes, h.in("logits", logits), h.inI32("labels", labels), acc); err != nil {
				t.Fatal(err)
			}
			// An integer count: exact.
			checkExact32(t, "acc", h.read(acc), []float32{float32(want)})
			h.check()
		})
	}
}

func testAccumulate(t *testing.T, d *Device) {
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			rng := newRand(t.Name())
			dst, src := uniform(rng, n), uniform(rng, n)
			want := make([]float32, n)
			for i := range want {
				want[i] = dst[i] + src[i] // one IEEE addition on both sides: exact match
			}
			h := newHarness(t, d)
			b := h.inout("dst", dst)
			if err := d.Accumulate(b, h.in("src", src)); err != nil {
				t.Fatal(err)
			}
			checkExact32(t, "dst", h.read(b), want)
			h.check()
		})
	}
}

func testSGD(t *testing.T, d *Device) {
	type hyper struct{ lr, momentum, wd float32 }
	for _, n := range elemSizes {
		for _, kind := range inputKinds {
			t.Run(kv("inputs", kind, "n", n), func(t *testing.T) {
				rng := newRand(t.Name())
				var p, g, v []float32
				var hp hyper
				if kind == "int" {
					// Integers and power-of-two hyperparameters: every
					// operation exact, so fused or not the bits agree.
					p, g, v = smallInts(rng, n, -8, 8), smallInts(rng, n, -8, 8), smallInts(rng, n, -8, 8)
					hp = hyper{0.125, 0.5, 0.25}
				} else {
					p, g, v = uniform(rng, n), uniform(rng, n), uniform(rng, n)
					hp = hyper{0.01, 0.9, 5e-4}
				}
				wantP, wantV := append([]float32(nil), p...), append([]float32(nil), v...)
				if err := cpuref.SGDStep(wantP, g, wantV, hp.lr, hp.momentum, hp.wd); err != nil {
					t.Fatal(err)
				}
				// float64 reference for the real case.
				p64, v64 := to64(p), to64(v)
				if err := cpuref.SGDStep(p64, to64(g), v64, float64(hp.lr), float64(hp.momentum), float64(hp.wd)); err != nil {
					t.Fatal(err)
				}
				h := newHarness(t, d)
				bp, bv := h.inout("p", p), h.inout("v", v)
				if err := d.SGDMomentum(bp, h.in("g", g), bv, hp.lr, hp.momentum, hp.wd); err != nil {
					t.Fatal(err)
				}
				if kind == "int" {
					checkExact32(t, "p", h.read(bp), wantP)
					checkExact32(t, "v", h.read(bv), wantV)
				} else {
					// v: 4 roundings on terms ≤ |μv| + |g| + |wd·p| ≤ 2.01;
					// p: 2 more on |p| + lr·|v|.
					vt, pt := make([]float64, n), make([]float64, n)
					for i := range vt {
						vt[i] = 5 * u * 2.01
						pt[i] = 4*u*(math.Abs(float64(p[i]))+0.03) + float64(hp.lr)*vt[i]
					}
					checkClose(t, "v", h.read(bv), v64, vt)
					checkClose(t, "p", h.read(bp), p64, pt)
				}
				h.check()
			})
		}
	}
}

func testGather(t *testing.T, d *Device) {
	for _, s := range [][3]int{{1, 1, 1}, {10, 7, 5}, {100, 3, 33}, {5, 300, 9}, {3, 1, 257}} {
		srcRows, rowLen, rows := s[0], s[1], s[2]
		for _, dt := range []DType{Float32, Int32} {
			t.Run(kv("type", dt, "srcRows", srcRows, "rowLen", rowLen, "rows", rows), func(t *testing.T) {
				rng := newRand(t.Name())
				idx := make([]int32, rows)
				for i := range idx {
					idx[i] = int32(rng.IntN(srcRows)) // repeats and any order
				}
				idx[0] = int32(srcRows - 1)
				h := newHarness(t, d)
				bi := h.inI32("idx", idx)
				if dt == Float32 {
					src := uniform(rng, srcRows*rowLen)
					want := make([]float32, rows*rowLen)
					for r, i := range idx {
						copy(want[r*rowLen:(r+1)*rowLen], src[int(i)*rowLen:])
					}
					dst := h.out("dst", rows*rowLen)
					if err := d.GatherRows(rowLen, h.in("src", src), bi, dst); err != nil {
						t.Fatal(err)
					}
					checkExact32(t, "dst", h.read(dst), want) // copies: exact
				} else {
					src := make([]int32, srcRows*rowLen)
					for i := range src {
						src[i] = int32(rng.Uint32())
					}
					want := make([]int32, rows*rowLen)
					for r, i := range idx {
						copy(want[r*rowLen:(r+1)*rowLen], src[int(i)*rowLen:])
					}
					dst := h.outI32("dst", rows*rowLen)
					if err := d.GatherRows(rowLen, h.inI32("src", src), bi, dst); err != nil {
						t.Fatal(err)
					}
					checkExactI32(t, "dst", h.readI32(dst), want)
				}
				h.check()
			})
		}
	}
}

func testFill(t *testing.T, d *Device) {
	for _, n := range elemSizes {
		t.Run(kv("n", n), func(t *testing.T) {
			h := newHarness(t, d)
			b := h.out("p", n)
			if err := d.Fill(b, -2.5); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, n)
			for i := range want {
				want[i] = -2.5
			}
			checkExact32(t, "p", h.read(b), want)
			h.check()
		})
	}
}
