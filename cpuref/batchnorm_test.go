package cpuref

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// bnShape is one batch-norm shape: x is (N,C,HW).
type bnShape struct{ n, c, hw int }

func (s bnShape) String() string { return fmt.Sprintf("N=%d,C=%d,HW=%d", s.n, s.c, s.hw) }

// sweptBNShapes covers N=1, C=1, HW=1 (BatchNorm1d), odd sizes, and
// channels of more than 256 values, so that the lane sums wrap.
var sweptBNShapes = []bnShape{
	{2, 1, 1}, {1, 1, 2}, {1, 3, 5}, {3, 2, 1}, {2, 3, 7}, {5, 1, 9}, {4, 2, 49}, {3, 5, 100}, {1, 2, 257}, {7, 3, 64},
}

// TestGradCheckBatchNormTrain checks dx (through the batch statistics), dγ
// and dβ of the training-mode pass against central differences of
// L = Σ c·y.
func TestGradCheckBatchNormTrain(t *testing.T) {
	rng := newRand(30)
	for _, s := range sweptBNShapes {
		if s.n*s.hw > 300 {
			continue // the differences cost 2·L forward passes
		}
		t.Run(s.String(), func(t *testing.T) {
			L := s.n * s.c * s.hw
			x, c := randFloats[float64](rng, L), randFloats[float64](rng, L)
			gamma, beta := randFloats[float64](rng, s.c), randFloats[float64](rng, s.c)
			y := make([]float64, L)
			loss := func() float64 {
				must(t, BatchNormTrainForward(s.n, s.c, s.hw, x, gamma, beta, y, nil, nil, nil, nil, 0.1, 1e-5))
				return dot(c, y)
			}
			mean, inv := make([]float64, s.c), make([]float64, s.c)
			must(t, BatchNormTrainForward(s.n, s.c, s.hw, x, gamma, beta, y, mean, inv, nil, nil, 0.1, 1e-5))
			dx, dg, db := newGuarded[float64](L), newGuarded[float64](s.c), newGuarded[float64](s.c)
			must(t, BatchNormBackward(s.n, s.c, s.hw, x, gamma, mean, inv, c, dx.Out, dg.Out, db.Out))
			// invStd up to 1/√ε ≈ 316 when a channel is nearly constant
			// (two values of N·H·W = 2 can be close): the third derivative,
			// and the h² truncation with it, grows; these shapes keep it ≲ 1e-7.
			checkClose(t, "dx", dx.Out, numGrad(loss, x), 1e-6, 1e-5)
			checkClose(t, "dgamma", dg.Out, numGrad(loss, gamma), fdAtol, fdRtol)
			checkClose(t, "dbeta", db.Out, numGrad(loss, beta), fdAtol, fdRtol)
			dx.checkGuards(t, "dx")
		})
	}
}

// TestBatchNormRunningStats checks the running statistics and the saved
// values against their definitions computed here independently, and eval
// mode against its formula, in float64.
func TestBatchNormRunningStats(t *testing.T) {
	rng := newRand(31)
	for _, s := range sweptBNShapes {
		t.Run(s.String(), func(t *testing.T) {
			L, M := s.n*s.c*s.hw, float64(s.n*s.hw)
			x, gamma, beta := randFloats[float64](rng, L), randFloats[float64](rng, s.c), randFloats[float64](rng, s.c)
			for i := range x {
				x[i] = 3*x[i] + 2 // mean ≈ 2, var ≈ 3
			}
			rm, rv := randFloats[float64](rng, s.c), randFloats[float64](rng, s.c)
			for i := range rv {
				rv[i] = math.Abs(rv[i]) + 0.5
			}
			rm0, rv0 := append([]float64(nil), rm...), append([]float64(nil), rv...)
			y, mean, inv := make([]float64, L), make([]float64, s.c), make([]float64, s.c)
			must(t, BatchNormTrainForward(s.n, s.c, s.hw, x, gamma, beta, y, mean, inv, rm, rv, 0.1, 1e-5))
			for ch := 0; ch < s.c; ch++ {
				var vals []float64
				for i := 0; i < s.n; i++ {
					vals = append(vals, x[(i*s.c+ch)*s.hw:(i*s.c+ch+1)*s.hw]...)
				}
				var mu, v float64
				for _, a := range vals {
					mu += a / M
				}
				for _, a := range vals {
					v += (a - mu) * (a - mu)
				}
				checkClose(t, "mean", mean[ch:ch+1], []float64{mu}, 1e-14, 1e-13)
				checkClose(t, "invStd", inv[ch:ch+1], []float64{1 / math.Sqrt(v/M+1e-5)}, 0, 1e-13)
				checkClose(t, "runMean", rm[ch:ch+1], []float64{0.9*rm0[ch] + 0.1*mu}, 1e-14, 1e-13)
				checkClose(t, "runVar", rv[ch:ch+1], []float64{0.9*rv0[ch] + 0.1*v/(M-1)}, 1e-14, 1e-13)
			}
			// Evaluation mode with the updated running statistics.
			must(t, BatchNormEvalForward(s.n, s.c, s.hw, x, gamma, beta, rm, rv, y, 1e-5))
			for i := range x {
				ch := i / s.hw % s.c
				want := gamma[ch]*(x[i]-rm[ch])/math.Sqrt(rv[ch]+1e-5) + beta[ch]
				checkClose(t, "eval y", y[i:i+1], []float64{want}, 1e-14, 1e-13)
			}
		})
	}
}

// TestBatchNormLaneForm checks the float32 lane form (the GPU's) against
// the readable form in float32, and its determinism. Both round the same
// elementwise steps; they differ only in the sums (float64 sequential
// against float32 lanes), whose relative error is at most about
// log2(256) + M/256 roundings, ~3e-6 for M ≤ 2000 values of size ~1; it
// reaches y through μ and invStd scaled by |x̂| ≲ 4, hence the tolerance.
func TestBatchNormLaneForm(t *testing.T) {
	rng := newRand(32)
	for _, s := range sweptBNShapes {
		t.Run(s.String(), func(t *testing.T) {
			L := s.n * s.c * s.hw
			x, dy := randFloats[float32](rng, L), randFloats[float32](rng, L)
			for i := range x {
				x[i] = 2*x[i] + 0.5
			}
			gamma, beta := randFloats[float32](rng, s.c), randFloats[float32](rng, s.c)
			type outs struct{ y, mean, inv, rm, rv, dx, dg, db []float32 }
			run := func(fwd func(n, c, hw int, x, gamma, beta, y, sm, si, rm, rv []float32, m, e float64) error,
				bwd func(n, c, hw int, x, gamma, sm, si, dy, dx, dg, db []float32) error) outs {
				o := outs{nans32(L), nans32(s.c), nans32(s.c), make([]float32, s.c), make([]float32, s.c), nans32(L), nans32(s.c), nans32(s.c)}
				for i := range o.rv {
					o.rv[i] = 1
				}
				must(t, fwd(s.n, s.c, s.hw, x, gamma, beta, o.y, o.mean, o.inv, o.rm, o.rv, 0.1, 1e-5))
				must(t, bwd(s.n, s.c, s.hw, x, gamma, o.mean, o.inv, dy, o.dx, o.dg, o.db))
				return o
			}
			ref := run(BatchNormTrainForward[float32], BatchNormBackward[float32])
			lane := run(BatchNormTrainForward32, BatchNormBackward32)
			again := run(BatchNormTrainForward32, BatchNormBackward32)
			// The lane form's sums against the definition, bit for bit.
			M := s.n * s.hw
			at := func(i int) int { return (i/s.hw*s.c)*s.hw + i%s.hw }
			for ch := 0; ch < s.c; ch++ {
				var lanes [bnLanes]float32
				xc := func(i int) float32 { return x[at(i)+ch*s.hw] }
				mean := laneSum32(M, xc, &lanes) / float32(M)
				S := laneSum32(M, func(i int) float32 { d := xc(i) - mean; return float32(d * d) }, &lanes)
				sdy := laneSum32(M, func(i int) float32 { return dy[at(i)+ch*s.hw] }, &lanes)
				sdyx := laneSum32(M, func(i int) float32 {
					xh := float32((xc(i) - lane.mean[ch]) * lane.inv[ch])
					return float32(dy[at(i)+ch*s.hw] * xh)
				}, &lanes)
				inv := 1 / float32(math.Sqrt(float64(S/float32(M)+float32(1e-5))))
				checkBits(t, fmt.Sprintf("channel %d: mean, invStd, dβ, dγ", ch),
					[]float32{lane.mean[ch], lane.inv[ch], lane.db[ch], lane.dg[ch]}, []float32{mean, inv, sdy, sdyx})
			}
			for _, f := range []struct {
				name           string
				got, want, rep []float32
				atol, rtol     float64
			}{
				{"y", lane.y, ref.y, again.y, 2e-5, 2e-5},
				{"mean", lane.mean, ref.mean, again.mean, 2e-6, 1e-5},
				{"invStd", lane.inv, ref.inv, again.inv, 0, 1e-5},
				{"runMean", lane.rm, ref.rm, again.rm, 2e-6, 1e-5},
				{"runVar", lane.rv, ref.rv, again.rv, 2e-6, 1e-5},
				// Σ dy and Σ dy·x̂ over M terms cancel: absolute error ~M·6e-8.
				{"dbeta", lane.db, ref.db, again.db, 1e-7 * float64(s.n*s.hw), 1e-5},
				{"dgamma", lane.dg, ref.dg, again.dg, 1e-7 * float64(s.n*s.hw), 1e-5},
				{"dx", lane.dx, ref.dx, again.dx, 1e-5, 1e-4},
			} {
				checkClose(t, f.name, f.got, f.want, f.atol, f.rtol)
				checkClose(t, f.name+" (second run)", f.rep, f.got, 0, 0)
			}
		})
	}
}

// laneSum32 returns the sum of the m values v(0), v(1), …, v(m−1) in the
// order of the GPU's block reduction with 256 threads: lane t (0 ≤ t < 256)
// adds v(t), v(t+256), v(t+512), … in ascending order to a float32 starting
// at 0; then the lanes are combined by block_sum_f32's tree (for stride
// 128, 64, …, 1, lane t < stride sets lane[t] = lane[t] + lane[t+stride]);
// the result is lane[0]. Every addition is one float32 addition. It is the
// definition (batchnorm.go's comment) that the lane forms, which work a
// segment at a time, must match bit for bit.
func laneSum32(m int, v func(i int) float32, lanes *[bnLanes]float32) float32 {
	clear(lanes[:])
	for i := 0; i < m; i++ {
		lanes[i%bnLanes] += v(i)
	}
	for stride := bnLanes / 2; stride > 0; stride >>= 1 {
		for t := 0; t < stride; t++ {
			lanes[t] += lanes[t+stride]
		}
	}
	return lanes[0]
}

// TestLaneSum32Order checks laneSum32 against a direct rendering of the
// GPU's order on values whose float32 sum depends on the order.
func TestLaneSum32Order(t *testing.T) {
	for _, m := range []int{1, 2, 255, 256, 257, 1000} {
		t.Run(fmt.Sprintf("M=%d", m), func(t *testing.T) {
			v := func(i int) float32 { return float32(math.Pow(1.7, float64(i%40))) * float32(1-2*(i%3&1)) }
			var th [256]float32
			for tid := 0; tid < 256; tid++ {
				for i := tid; i < m; i += 256 {
					th[tid] = th[tid] + v(i)
				}
			}
			for stride := 128; stride >= 1; stride /= 2 {
				for tid := 0; tid < stride; tid++ {
					th[tid] = th[tid] + th[tid+stride]
				}
			}
			var lanes [bnLanes]float32
			if got := laneSum32(m, v, &lanes); got != th[0] {
				t.Errorf("laneSum32 = %g, want %g", got, th[0])
			}
		})
	}
}

func TestBatchNormErrors(t *testing.T) {
	f := func(n int) []float64 { return nans64(n) }
	for _, tc := range []struct {
		name string
		call func() error
		kind error
	}{
		{"train/N·HW=1", func() error {
			return BatchNormTrainForward(1, 2, 1, f(2), f(2), f(2), f(2), nil, nil, nil, nil, 0.1, 1e-5)
		}, geom.ErrGeometry},
		{"train/C=0", func() error {
			return BatchNormTrainForward(2, 0, 1, f(0), f(0), f(0), f(0), nil, nil, nil, nil, 0.1, 1e-5)
		}, geom.ErrGeometry},
		{"train/len(y)", func() error {
			return BatchNormTrainForward(2, 2, 3, f(12), f(2), f(2), f(11), nil, nil, nil, nil, 0.1, 1e-5)
		}, geom.ErrGeometry},
		{"train/runMean-without-runVar", func() error {
			return BatchNormTrainForward(2, 2, 3, f(12), f(2), f(2), f(12), nil, nil, f(2), nil, 0.1, 1e-5)
		}, geom.ErrGeometry},
		{"train/momentum=1.5", func() error {
			return BatchNormTrainForward(2, 2, 3, f(12), f(2), f(2), f(12), nil, nil, nil, nil, 1.5, 1e-5)
		}, geom.ErrHyperparameter},
		{"train32/eps=0", func() error {
			return BatchNormTrainForward32(2, 2, 3, nans32(12), nans32(2), nans32(2), nans32(12), nil, nil, nil, nil, 0.1, 0)
		}, geom.ErrHyperparameter},
		{"eval/eps=NaN", func() error {
			return BatchNormEvalForward(2, 2, 3, f(12), f(2), f(2), f(2), f(2), f(12), math.NaN())
		}, geom.ErrHyperparameter},
		{"eval/len(runVar)", func() error {
			return BatchNormEvalForward(2, 2, 3, f(12), f(2), f(2), f(2), f(3), f(12), 1e-5)
		}, geom.ErrGeometry},
		{"backward/len(saveInvStd)", func() error {
			return BatchNormBackward(2, 2, 3, f(12), f(2), f(2), f(1), f(12), f(12), f(2), f(2))
		}, geom.ErrGeometry},
		{"backward32/len(dx)", func() error {
			return BatchNormBackward32(2, 2, 3, nans32(12), nans32(2), nans32(2), nans32(2), nans32(12), nans32(13), nans32(2), nans32(2))
		}, geom.ErrGeometry},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.kind) {
				t.Errorf("error = %v, want one wrapping %v", err, tc.kind)
			}
		})
	}
}
