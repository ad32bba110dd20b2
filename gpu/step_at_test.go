package gpu

import (
	"math"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

func init() {
	launcherTestedElsewhere["dropout_at_v1"] = true // TestElementwiseLaunchers
	plainConformance = append(plainConformance,
		conformanceCase{"gather_batch_at_v1", []string{"gather_batch_at_v1"}, testGatherBatchAt},
		conformanceCase{"dropout_at_v1", []string{"dropout_at_v1"}, testDropoutAt},
	)
}

// nanBits is the bit pattern the harness poisons outputs with.
var nanBits = int32(math.Float32bits(float32(math.NaN())))

// testGatherBatchAt checks gather_batch_at_v1 against a host gather, bit
// for bit: float32 and int32 rows, with and without labels, the offset
// read from a words buffer (changed between launches of the same
// arguments) or none (the order is the batch's own); an offset out of
// range writes nothing, a row index out of range leaves its row
// unwritten (the NaN poison stays).
func testGatherBatchAt(t *testing.T, d *Device) {
	for _, s := range [][3]int{{1, 1, 1}, {10, 7, 5}, {100, 3, 33}, {5, 300, 9}, {3, 1, 257}} {
		srcRows, rowLen, rows := s[0], s[1], s[2]
		for _, dt := range []DType{Float32, Int32} {
			for _, labels := range []bool{false, true} {
				for _, at := range []bool{false, true} {
					t.Run(kv("type", dt, "srcRows", srcRows, "rowLen", rowLen, "rows", rows, "labels", labels, "at", at), func(t *testing.T) {
						testGatherBatchAtCase(t, d, dt, srcRows, rowLen, rows, labels, at)
					})
				}
			}
		}
	}
}

func testGatherBatchAtCase(t *testing.T, d *Device, dt DType, srcRows, rowLen, rows int, labels, at bool) {
	rng := newRand(t.Name())
	orderLen := rows
	if at {
		orderLen = 3*rows + 2
	}
	order := make([]int32, orderLen)
	for i := range order {
		order[i] = int32(rng.IntN(srcRows)) // repeats and any order
	}
	order[0] = int32(srcRows - 1)
	// Source words: float32 bits or int32, compared as int32 bits.
	src := make([]int32, srcRows*rowLen)
	for i := range src {
		src[i] = int32(rng.Uint32())
		if dt == Float32 {
			src[i] = int32(math.Float32bits(float32(rng.Float64()*2 - 1)))
		}
	}
	lab := make([]int32, srcRows)
	for i := range lab {
		lab[i] = int32(rng.IntN(1000))
	}
	h := newHarness(t, d)
	var x, dx *Buffer
	if dt == Float32 {
		f := make([]float32, len(src))
		for i, v := range src {
			f[i] = math.Float32frombits(uint32(v))
		}
		x, dx = h.in("x", f), h.out("dx", rows*rowLen)
	} else {
		x, dx = h.inI32("x", src), h.outI32("dx", rows*rowLen)
	}
	var bl, dl *Buffer
	if labels {
		bl, dl = h.inI32("labels", lab), h.outI32("dlabels", rows)
	}
	ob := h.inI32("order", order)
	var w Word
	offsets := []int{0}
	if at {
		w = Word{h.inout("at", []float32{0}), 0}
		offsets = []int{orderLen - rows, 0, rows + 1, orderLen - rows + 1, -1}
	}
	readWords := func(b *Buffer) []int32 {
		if b.dtype == Int32 {
			return h.readI32(b)
		}
		f := h.read(b)
		out := make([]int32, len(f))
		for i, v := range f {
			out[i] = int32(math.Float32bits(v))
		}
		return out
	}
	wantX, wantL := make([]int32, rows*rowLen), make([]int32, rows)
	for i := range wantX {
		wantX[i] = nanBits
	}
	for i := range wantL {
		wantL[i] = nanBits
	}
	for _, off := range offsets {
		if at {
			mustNil(t, w.Buf.Upload([]float32{math.Float32frombits(uint32(int32(off)))}))
		}
		// An offset out of range writes nothing: the last values stay.
		if off >= 0 && off <= orderLen-rows {
			for r := range rows {
				row := int(order[off+r])
				copy(wantX[r*rowLen:(r+1)*rowLen], src[row*rowLen:])
				wantL[r] = lab[row]
			}
		}
		if err := d.GatherBatchAt(rowLen, x, bl, ob, w, dx, dl); err != nil {
			t.Fatal(err)
		}
		checkExactI32(t, kv("offset", off)+": dx", readWords(dx), wantX)
		if labels {
			checkExactI32(t, kv("offset", off)+": dlabels", h.readI32(dl), wantL)
		}
	}
	h.check()
	if t.Failed() || !at {
		return
	}
	// A row index out of range (the order is the caller's to keep valid)
	// leaves that row unwritten.
	bad := append([]int32(nil), order...)
	bad[1] = int32(srcRows)
	if rows > 1 {
		mustNil(t, ob.UploadInt32(bad))
		mustNil(t, w.Buf.Upload([]float32{0}))
		if dt == Float32 {
			mustNil(t, dx.Upload(make([]float32, rows*rowLen)))
		} else {
			mustNil(t, dx.UploadInt32(make([]int32, rows*rowLen)))
		}
		if err := d.GatherBatchAt(rowLen, x, bl, ob, w, dx, dl); err != nil {
			t.Fatal(err)
		}
		got := readWords(dx)
		for j := range rowLen {
			if got[rowLen+j] != 0 {
				t.Fatalf("row 1 (index %d of %d rows) dx[1,%d] = %#x, want 0 (not written)", srcRows, srcRows, j, got[rowLen+j])
			}
		}
	}
}

// testDropoutAt checks dropout_at_v1 against cpuref's mask, bit for bit,
// with the step read from a words buffer that changes between launches
// of the same arguments (steps with high bits set included).
func testDropoutAt(t *testing.T, d *Device) {
	for _, p := range []float32{0, 0.1, 0.5, 0.9} {
		for _, n := range []int{1, 3, 4, 5, 257, 1030} {
			t.Run(kv("p", p, "n", n), func(t *testing.T) {
				x := uniform(newRand(t.Name()), n)
				copy(x, []float32{float32(math.Inf(1)), float32(math.NaN()), float32(math.Copysign(0, -1))})
				h := newHarness(t, d)
				bx, y := h.in("x", x), h.out("y", n)
				words := h.inout("step", make([]float32, 2))
				key := DropoutKey{Seed: 0xDEADBEEF_12345678, Stream: 7, Step: 12345} // Step is ignored
				for _, step := range []uint64{0, 1, 0x1_0000_0003, 77} {
					w := make([]float32, 2)
					StepWords(w, step)
					mustNil(t, words.Upload(w))
					mask := make([]uint8, n)
					if err := cpuref.DropoutMask(cpuref.DropoutKey{Seed: key.Seed, Stream: key.Stream, Step: step}, p, mask); err != nil {
						t.Fatal(err)
					}
					want := make([]float32, n)
					if err := cpuref.DropoutForward(p, mask, x, want); err != nil {
						t.Fatal(err)
					}
					if err := d.DropoutAt(key, p, bx, y, Word{words, 0}); err != nil {
						t.Fatal(err)
					}
					checkSameBits(t, kv("step", step)+": y", h.read(y), want)
				}
				h.check()
			})
		}
	}
}

// TestAtWordsChecked checks that the _at launchers refuse a missing word,
// words past the end of their buffer and a freed buffer, before launching.
func TestAtWordsChecked(t *testing.T) {
	d, f := openFake(t)
	x, y := mustF32(t, d, 8), mustF32(t, d, 8)
	w := mustF32(t, d, 4)
	tab, err := d.NewParamTable([]ParamSet{{P: x, G: y, M: mustF32(t, d, 8), V: mustF32(t, d, 8)}})
	mustNil(t, err)
	o8, o7 := mustI32(t, d, 8), mustI32(t, d, 7)
	freed := mustF32(t, d, 16)
	mustNil(t, freed.Free())
	for name, call := range map[string]func() error{
		"dropout, no word":        func() error { return d.DropoutAt(DropoutKey{}, 0.5, x, y, Word{}) },
		"dropout, word 3 of 4":    func() error { return d.DropoutAt(DropoutKey{}, 0.5, x, y, Word{w, 3}) },
		"dropout, negative index": func() error { return d.DropoutAt(DropoutKey{}, 0.5, x, y, Word{w, -1}) },
		"adam, 10 words of 4":     func() error { return d.AdamMultiAt(tab, Word{w, 0}) },
		"sgd, freed words":        func() error { return d.SGDMomentumMultiAt(tab, Word{freed, 0}) },
		"gather, offset past end": func() error { return d.GatherBatchAt(1, x, nil, o8, Word{w, 4}, y, nil) },
		"gather, short order":     func() error { return d.GatherBatchAt(1, x, nil, o7, Word{}, y, nil) },
	} {
		before := f.launches
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if f.launches != before {
			t.Errorf("%s: launched", name)
		}
	}
}

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"dense_bwd_v2", []string{"dense_bwd_v2"}, testDenseBackwardV2})
}

// testDenseBackwardV2 checks dense_bwd_v2 against cpuref (exactly on
// integer inputs, within the summation bound on reals) and, bit for bit,
// against dense_bwd_weight_v1, reduce_cols_v1 and dense_bwd_data_v1 run on
// the same inputs; with and without db and dx.
func testDenseBackwardV2(t *testing.T, d *Device) {
	for _, s := range denseShapes {
		n, in, out := s[0], s[1], s[2]
		for _, kind := range inputKinds {
			for _, parts := range []string{"dw,db,dx", "dw,db", "dw,dx", "dw"} {
				name := "inputs=" + kind + "/" + kv("N", n, "In", in, "Out", out, "parts", parts)
				t.Run(name, func(t *testing.T) {
					inp := convInputs(kind, name, n*in, out*in, n*out)
					x, w, dy := inp[0], inp[1], inp[2]
					h := newHarness(t, d)
					bx, bw, bdy := h.in("x", x), h.in("w", w), h.in("dy", dy)
					dw := h.out("dw", out*in)
					var db, dx *Buffer
					if strings.Contains(parts, "db") {
						db = h.out("db", out)
					}
					if strings.Contains(parts, "dx") {
						dx = h.out("dx", n*in)
					}
					if err := d.DenseBackward(n, in, out, bx, bw, bdy, dx, dw, db); err != nil {
						t.Fatal(err)
					}
					// The three v1 launches on the same inputs.
					dw1, db1, dx1 := h.out("dw1", out*in), h.out("db1", out), h.out("dx1", n*in)
					mustNil(t, d.DenseBackwardWeight(n, in, out, bx, bdy, dw1))
					mustNil(t, d.ReduceCols(n, out, bdy, db1))
					mustNil(t, d.DenseBackwardData(n, in, out, bdy, bw, dx1))
					checkSameBits(t, "dw", h.read(dw), h.read(dw1))
					if db != nil {
						checkSameBits(t, "db", h.read(db), h.read(db1))
					}
					if dx != nil {
						checkSameBits(t, "dx", h.read(dx), h.read(dx1))
					}
					if kind == "int" {
						wdx, wdw, wdb := denseBackwardRef(n, in, out, x, w, dy)
						checkExact32(t, "dw", h.read(dw), wdw)
						if db != nil {
							checkExact32(t, "db", h.read(db), wdb)
						}
						if dx != nil {
							checkExact32(t, "dx", h.read(dx), wdx)
						}
					}
					h.check()
				})
			}
		}
	}
}

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"softmax_ce_metrics_v1", []string{"softmax_ce_metrics_v1"}, testSoftmaxCEMetrics})
}

// testSoftmaxCEMetrics checks softmax_ce_metrics_v1 bit for bit against
// softmax_ce_mean_v1, accumulate_v1 and count_correct_v1 run one after the
// other on the same inputs, twice in a row (running sums that do not start
// at zero), with a label out of range and without dlogits.
func testSoftmaxCEMetrics(t *testing.T, d *Device) {
	for _, n := range []int{1, 3, 64, 257, SoftmaxCEMeanMaxRows} {
		for _, classes := range []int{1, 10, 33} {
			for _, c := range []struct {
				name          string
				bad, noDgrads bool
			}{{"plain", false, false}, {"bad-label", true, false}, {"loss-only", false, true}} {
				t.Run(kv("N", n, "classes", classes, "case", c.name), func(t *testing.T) {
					rng := newRand(t.Name())
					h := newHarness(t, d)
					var dl1, dl2 *Buffer
					if !c.noDgrads {
						dl1, dl2 = h.out("dlogits three launches", n*classes), h.out("dlogits", n*classes)
					}
					loss1, loss2 := h.out("loss three launches", 1), h.out("loss", 1)
					sum1, sum2 := h.inout("sum three launches", []float32{0.75}), h.inout("sum", []float32{0.75})
					cor1, cor2 := h.inout("correct three launches", []float32{3}), h.inout("correct", []float32{3})
					for rep := range 2 {
						logits := make([]float32, n*classes)
						for i := range logits {
							logits[i] = float32(8*rng.Float64() - 4)
						}
						if classes > 2 && n > 1 {
							logits[classes], logits[classes+1] = 2, 2 // a tie: the first counts
						}
						labels := make([]int32, n)
						for i := range labels {
							labels[i] = int32(rng.IntN(classes))
						}
						if c.bad {
							labels[n/2] = int32(classes)
						}
						lg, lb := h.in(kv("logits", rep), logits), h.inI32(kv("labels", rep), labels)
						mustNil(t, d.SoftmaxCrossEntropyMean(n, classes, lg, lb, loss1, dl1))
						mustNil(t, d.Accumulate(sum1, loss1))
						mustNil(t, d.CountCorrect(n, classes, lg, lb, cor1))
						before := d.Launches()
						mustNil(t, d.SoftmaxCrossEntropyMetrics(n, classes, lg, lb, loss2, dl2, sum2, cor2))
						if l := d.Launches() - before; l != 1 {
							t.Errorf("%d launches, want 1", l)
						}
						for _, p := range [][2]*Buffer{{loss1, loss2}, {sum1, sum2}, {cor1, cor2}} {
							checkSameBits(t, kv("rep", rep), h.read(p[1]), h.read(p[0]))
						}
						if !c.noDgrads {
							checkExact32(t, "dlogits", h.read(dl2), h.read(dl1))
						}
					}
					h.check()
				})
			}
		}
	}
}

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"maxpool_bwd_relu_v1", []string{"maxpool_bwd_relu_v1"}, testMaxPoolBackwardReLU})
}

// testMaxPoolBackwardReLU checks maxpool_bwd_relu_v1 against
// cpuref.MaxPoolBackward then cpuref.ReLUBackward masking with the pool's
// input, exactly (integer gradients), and bit for bit against
// maxpool_bwd_v1 then relu_bwd_v1 on the same inputs; the input holds
// zeros, negatives and a NaN (masked to 0).
func testMaxPoolBackwardReLU(t *testing.T, d *Device) {
	for _, g := range poolShapes {
		t.Run(g.String(), func(t *testing.T) {
			rng := newRand(t.Name())
			x := smallInts(rng, g.XLen(), -2, 2)
			x[len(x)/2] = float32(math.NaN())
			y := make([]float32, g.YLen())
			arg := make([]int32, g.YLen())
			if err := cpuref.MaxPoolForward(g, x, y, arg); err != nil {
				t.Fatal(err)
			}
			dy := smallInts(rng, g.YLen(), -3, 3)
			routed := make([]float32, g.XLen())
			if err := cpuref.MaxPoolBackward(g, dy, arg, routed); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, g.XLen())
			if err := cpuref.ReLUBackward(x, routed, want); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, d)
			bdy, barg, bx := h.in("dy", dy), h.inI32("argmax", arg), h.in("x", x)
			dx := h.out("dx", g.XLen())
			mustNil(t, d.MaxPoolBackwardReLU(g, bdy, barg, bx, dx))
			checkExact32(t, "dx", h.read(dx), want)
			mid, dx1 := h.out("routed", g.XLen()), h.out("dx two launches", g.XLen())
			mustNil(t, d.MaxPoolBackward(g, bdy, barg, mid))
			mustNil(t, d.ReLUBackward(bx, mid, dx1))
			checkSameBits(t, "dx against two launches", h.read(dx), h.read(dx1))
			h.check()
		})
	}
}

func init() {
	// Its launch shape (grid ⌈n/256⌉ + K) and arguments: the conformance
	// case below, on split shapes, against the two launches it replaces.
	launcherTestedElsewhere["conv2d_bwd_filter_reduce_bias_v1"] = true
	plainConformance = append(plainConformance, conformanceCase{"conv2d_bwd_filter_bias_v1",
		[]string{"conv2d_bwd_filter_bias_v1", "conv2d_bwd_filter_reduce_bias_v1"}, testConvBackwardFilterBias})
}

// testConvBackwardFilterBias checks conv2d_bwd_filter_bias_v1 (the direct
// weight gradient with the bias) and conv2d_bwd_filter_reduce_bias_v1 (the
// split-K second pass with the bias) bit for bit against the weight
// gradient and conv2d_bwd_bias_v1 launched apart on the same inputs, and
// against cpuref exactly on integer inputs, on every swept shape; the
// split shapes among them run the second. After a packed kernel (TF32's
// v10, where the device has it), which the dispatcher may run, the bias is
// a launch of its own: the same check.
func testConvBackwardFilterBias(t *testing.T, d *Device) {
	split := 0
	for _, g := range sweptConvShapes() {
		for _, id := range []kernelID{kConvBwdFilter, kConvBwdFilterIGemm, kConvBwdFilterTF32Pipe} {
			if d.fns[id] == nil {
				continue
			}
			if s, _ := wgradSplits(g); id == kConvBwdFilterIGemm && s > 1 {
				split++
			}
			for _, kind := range inputKinds {
				name := "kernel=" + kernelTable[id].name + "/inputs=" + kind + "/" + g.String()
				t.Run(name, func(t *testing.T) {
					inp := convInputs(kind, name, g.XLen(), g.YLen())
					x, dy := inp[0], inp[1]
					h := newHarness(t, d)
					bx, bdy := h.in("x", x), h.in("dy", dy)
					dw, db := h.out("dw", g.WLen()), h.out("db", g.K)
					dw1, db1 := h.out("dw apart", g.WLen()), h.out("db apart", g.K)
					d.mu.Lock()
					err := d.convBackwardFilterKernelBias(id, g, bx, bdy, dw, db)
					if err == nil {
						err = d.convBackwardFilterKernel(id, g, bx, bdy, dw1)
					}
					d.mu.Unlock()
					mustNil(t, err)
					mustNil(t, d.Conv2DBackwardBias(g, bdy, db1))
					checkSameBits(t, "dw", h.read(dw), h.read(dw1))
					checkSameBits(t, "db", h.read(db), h.read(db1))
					if kind == "int" {
						want := make([]float32, g.K)
						mustNil(t, cpuref.Conv2DBackwardBias(g, dy, want))
						checkExact32(t, "db", h.read(db), want)
					}
					h.check()
				})
			}
		}
	}
	if split == 0 {
		t.Errorf("no swept shape splits: conv2d_bwd_filter_reduce_bias_v1 untested")
	}
}

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"maxpool_dense_fwd_v1", []string{"maxpool_dense_fwd_v1"}, testMaxPoolDenseForward})
}

// testMaxPoolDenseForward checks maxpool_dense_fwd_v1 bit for bit against
// maxpool_fwd_v1 then dense_fwd_v1 on the same inputs (with and without a
// bias, outputs past one block's 256 threads), and against cpuref exactly
// on integer inputs.
func testMaxPoolDenseForward(t *testing.T, d *Device) {
	for _, g := range poolShapes {
		for _, out := range []int{1, 10, 300} {
			for _, bias := range []bool{true, false} {
				for _, kind := range inputKinds {
					name := "inputs=" + kind + "/" + g.String() + "/" + kv("Out", out, "bias", bias)
					t.Run(name, func(t *testing.T) {
						in := g.C * g.P() * g.Q()
						inp := convInputs(kind, name, g.XLen(), out*in, out)
						x, w, b := inp[0], inp[1], inp[2]
						x[len(x)/3] = float32(math.NaN())
						h := newHarness(t, d)
						bx, bw := h.in("x", x), h.in("w", w)
						var bb *Buffer
						if bias {
							bb = h.in("b", b)
						}
						y, am, z := h.out("y", g.YLen()), h.outI32("argmax", g.YLen()), h.out("z", g.N*out)
						mustNil(t, d.MaxPoolDenseForward(g, bx, y, am, out, bw, bb, z))
						y1, am1, z1 := h.out("y apart", g.YLen()), h.outI32("argmax apart", g.YLen()), h.out("z apart", g.N*out)
						mustNil(t, d.MaxPoolForward(g, bx, y1, am1))
						mustNil(t, d.DenseForward(g.N, in, out, y1, bw, bb, z1))
						checkSameBits(t, "y", h.read(y), h.read(y1))
						checkExactI32(t, "argmax", h.readI32(am), h.readI32(am1))
						checkSameBits(t, "z", h.read(z), h.read(z1))
						if kind == "int" {
							wy, wa := make([]float32, g.YLen()), make([]int32, g.YLen())
							mustNil(t, cpuref.MaxPoolForward(g, x, wy, wa))
							checkExactI32(t, "argmax (cpuref)", h.readI32(am), wa)
						}
						h.check()
					})
				}
			}
		}
	}
}

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"dense_bwd_pool_relu_v1", []string{"dense_bwd_pool_relu_v1"}, testDenseBackwardPoolReLU})
}

// testDenseBackwardPoolReLU checks dense_bwd_pool_relu_v1 bit for bit
// against dense_bwd_v2 and then maxpool_bwd_relu_v1 on the same inputs
// (with and without db, with and without the input gradient), on pools
// with and without overlapping windows, the ReLU's output holding zeros,
// negatives and a NaN.
func testDenseBackwardPoolReLU(t *testing.T, d *Device) {
	for _, g := range poolShapes {
		for _, out := range []int{1, 10, 300} {
			for _, parts := range []string{"dw,db,dx", "dw,dx", "dw,db"} {
				for _, kind := range inputKinds {
					name := "inputs=" + kind + "/" + g.String() + "/" + kv("Out", out, "parts", parts)
					t.Run(name, func(t *testing.T) {
						in := g.C * g.P() * g.Q()
						inp := convInputs(kind, name, g.XLen(), out*in, g.N*out)
						xr, w, dy := inp[0], inp[1], inp[2]
						xr[len(xr)/2] = float32(math.NaN())
						if len(xr) > 2 {
							xr[1] = 0
						}
						h := newHarness(t, d)
						bxr, bw, bdy := h.in("xr", xr), h.in("w", w), h.in("dy", dy)
						y, am := h.out("y", g.YLen()), h.outI32("argmax", g.YLen())
						mustNil(t, d.MaxPoolForward(g, bxr, y, am))
						dw, dw1 := h.out("dw", out*in), h.out("dw apart", out*in)
						var db, db1, dxr, dxr1 *Buffer
						if strings.Contains(parts, "db") {
							db, db1 = h.out("db", out), h.out("db apart", out)
						}
						if strings.Contains(parts, "dx") {
							dxr, dxr1 = h.out("dxr", g.XLen()), h.out("dxr apart", g.XLen())
						}
						mustNil(t, d.DenseBackwardPoolReLU(g, out, y, bw, bdy, dw, db, am, bxr, dxr))
						mid := h.out("dense dx", g.N*in)
						mustNil(t, d.DenseBackward(g.N, in, out, y, bw, bdy, mid, dw1, db1))
						checkSameBits(t, "dw", h.read(dw), h.read(dw1))
						if db != nil {
							checkSameBits(t, "db", h.read(db), h.read(db1))
						}
						if dxr != nil {
							mustNil(t, d.MaxPoolBackwardReLU(g, mid, am, bxr, dxr1))
							checkSameBits(t, "dxr", h.read(dxr), h.read(dxr1))
						}
						h.check()
					})
				}
			}
		}
	}
}

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"maxpool_dense_softmax_v1", []string{"maxpool_dense_softmax_v1"}, testMaxPoolDenseSoftmax})
}

// testMaxPoolDenseSoftmax checks maxpool_dense_softmax_v1 bit for bit
// against maxpool_dense_fwd_v1 and then softmax_ce_metrics_v1 on the same
// inputs, three launches in a row with the same scratch (the ticket back
// at 0 after each; running sums that do not start at zero), with a label
// out of range, without dlogits, and with more images than a block has
// threads.
func testMaxPoolDenseSoftmax(t *testing.T, d *Device) {
	shapes := append([]geom.PoolGeom{pg(300, 2, 4, 4, 2, 2, 2, 2)}, poolShapes...)
	for _, g := range shapes {
		for _, out := range []int{1, 10} {
			for _, c := range []struct {
				name          string
				bad, noDgrads bool
			}{{"plain", false, false}, {"bad-label", true, false}, {"loss-only", false, true}} {
				name := g.String() + "/" + kv("Out", out, "case", c.name)
				t.Run(name, func(t *testing.T) {
					rng := newRand(name)
					in := g.C * g.P() * g.Q()
					h := newHarness(t, d)
					bw, bb := h.in("w", uniform(rng, out*in)), h.in("b", uniform(rng, out))
					rows := h.inout("rows", make([]float32, 2*g.N+1)) // the ticket (last word) 0
					y, am, z := h.out("y", g.YLen()), h.outI32("argmax", g.YLen()), h.out("z", g.N*out)
					y1, am1, z1 := h.out("y apart", g.YLen()), h.outI32("argmax apart", g.YLen()), h.out("z apart", g.N*out)
					var dl, dl1 *Buffer
					if !c.noDgrads {
						dl, dl1 = h.out("dlogits", g.N*out), h.out("dlogits apart", g.N*out)
					}
					loss, loss1 := h.out("loss", 1), h.out("loss apart", 1)
					sum, sum1 := h.inout("sum", []float32{0.5}), h.inout("sum apart", []float32{0.5})
					cor, cor1 := h.inout("correct", []float32{2}), h.inout("correct apart", []float32{2})
					for rep := range 3 {
						x := uniform(rng, g.XLen())
						labels := make([]int32, g.N)
						for i := range labels {
							labels[i] = int32(rng.IntN(out))
						}
						if c.bad {
							labels[g.N/2] = int32(out)
						}
						bx, bl := h.in(kv("x", rep), x), h.inI32(kv("labels", rep), labels)
						mustNil(t, d.MaxPoolDenseSoftmax(g, bx, y, am, out, bw, bb, z, bl, loss, dl, sum, cor, rows))
						mustNil(t, d.MaxPoolDenseForward(g, bx, y1, am1, out, bw, bb, z1))
						mustNil(t, d.SoftmaxCrossEntropyMetrics(g.N, out, z1, bl, loss1, dl1, sum1, cor1))
						checkSameBits(t, kv("rep", rep)+": y", h.read(y), h.read(y1))
						checkExactI32(t, kv("rep", rep)+": argmax", h.readI32(am), h.readI32(am1))
						checkSameBits(t, kv("rep", rep)+": z", h.read(z), h.read(z1))
						for _, p := range [][2]*Buffer{{loss, loss1}, {sum, sum1}, {cor, cor1}} {
							checkSameBits(t, kv("rep", rep)+": loss, sum, correct", h.read(p[0]), h.read(p[1]))
						}
						if dl != nil {
							checkSameBits(t, kv("rep", rep)+": dlogits", h.read(dl), h.read(dl1))
						}
						if tk := h.read(rows)[2*g.N]; math.Float32bits(tk) != 0 {
							t.Fatalf("rep %d: ticket %#x after the launch, want 0", rep, math.Float32bits(tk))
						}
					}
					h.check()
				})
			}
		}
	}
}

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"augment_batch_at_v1", []string{"augment_batch_at_v1"}, testAugmentBatchAt})
}

// testAugmentBatchAt checks augment_batch_at_v1 against the reference
// draw (data.Augment.Apply, bit for bit, as testAugmentBatchU8) and the
// labels against a host gather: the rows taken from an order at offsets
// read from a words buffer, the draw's step from words or from the
// argument, changed between launches of the same arguments; with the
// order the batch's own (no offset word) and without labels.
func testAugmentBatchAt(t *testing.T, d *Device) {
	for _, s := range augCases {
		for _, mode := range []string{"at", "view", "at-no-labels"} {
			name := kv("M", s.m, "C", s.c, "H", s.h, "W", s.w, "N", len(s.rows), "aug", s.aug.String(), "mode", mode)
			t.Run(name, func(t *testing.T) {
				rng := newRand(name)
				size, n := s.c*s.h*s.w, len(s.rows)
				src := make([]uint8, s.m*size)
				for i := range src {
					src[i] = uint8(rng.IntN(256))
				}
				lut := uniform(rng, s.c*256)
				labels := make([]int32, s.m)
				for i := range labels {
					labels[i] = int32(rng.IntN(1000))
				}
				// The order: s.rows at offset 3, other rows around it.
				order := append([]int32{int32(s.m - 1), 0, int32(s.m / 2)}, s.rows...)
				order = append(order, 0, int32(s.m-1))
				h := newHarness(t, d)
				bsrc, blut, blab := h.inU8("src", src), h.in("lut", lut), h.inI32("labels", labels)
				dst := h.out("dst", n*size)
				var dl, bl *Buffer
				if mode != "at-no-labels" {
					dl, bl = h.outI32("dlabels", n), blab
				}
				var bo *Buffer
				var at, astep Word
				steps := []uint64{s.step}
				offsets := []int{0}
				if mode == "view" {
					bo = h.inI32("order", s.rows)
				} else {
					bo = h.inI32("order", order)
					at = Word{h.inout("at", []float32{0}), 0}
					astep = Word{h.inout("astep", []float32{0, 0}), 0}
					offsets = []int{3, 0, len(order) - n}
					steps = []uint64{s.step, s.step + 7, 0x3_00000001}
				}
				for k, off := range offsets {
					step := steps[k]
					if at.Buf != nil {
						mustNil(t, at.Buf.Upload([]float32{math.Float32frombits(uint32(off))}))
						w := make([]float32, 2)
						StepWords(w, step)
						mustNil(t, astep.Buf.Upload(w))
					}
					rows := order[off : off+n]
					if mode == "view" {
						rows = s.rows
					}
					want := make([]float32, n*size)
					img := make([]float32, size)
					for i, r := range rows {
						for j := range img {
							img[j] = lut[j/(s.h*s.w)*256+int(src[int(r)*size+j])]
						}
						dr := s.aug.Draw(s.seed, step, uint64(r))
						mustNil(t, s.aug.Apply(want[i*size:(i+1)*size], img, s.c, s.h, s.w, dr))
					}
					// The step argument is a decoy where the words give it.
					mustNil(t, d.AugmentBatchAt(s.aug.Pad, s.aug.Flip, s.seed, s.step^0xF0F0, s.c, s.h, s.w,
						bsrc, blut, bl, bo, at, astep, dst, dl))
					if mode == "view" {
						mustNil(t, d.AugmentBatchAt(s.aug.Pad, s.aug.Flip, s.seed, s.step, s.c, s.h, s.w,
							bsrc, blut, bl, bo, at, astep, dst, dl))
					}
					checkSameBits(t, kv("offset", off)+": dst", h.read(dst), want)
					if dl != nil {
						wl := make([]int32, n)
						for i, r := range rows {
							wl[i] = labels[r]
						}
						checkExactI32(t, kv("offset", off)+": dlabels", h.readI32(dl), wl)
					}
				}
				h.check()
			})
		}
	}
}
