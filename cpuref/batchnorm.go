package cpuref

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Batch normalisation over the N·H·W values of each channel, as PyTorch's
// torch.nn.BatchNorm2d (and BatchNorm1d for hw = 1) defines it. With
// M = N·H·W and, for channel c, the values x[n,c,·] of every image:
//
//	training:   μ = Σ x / M,  σ² = Σ (x − μ)² / M (biased),  invStd = 1/√(σ² + ε)
//	            x̂ = (x − μ)·invStd,  y = γ·x̂ + β
//	            running_mean ← (1−m)·running_mean + m·μ
//	            running_var  ← (1−m)·running_var  + m·Σ (x − μ)² / (M − 1) (unbiased)
//	evaluation: invStd = 1/√(running_var + ε),  x̂ = (x − running_mean)·invStd,  y = γ·x̂ + β
//	backward:   dβ = Σ dy,  dγ = Σ dy·x̂,
//	            dx = (γ·invStd)·((dy − Σ dy/M) − x̂·(Σ dy·x̂/M))
//
// PyTorch's defaults are m = 0.1 and ε = 1e-5. The scalars enter the
// arithmetic rounded to the element type T: m, 1−m (computed in float64,
// then rounded), ε, M and M−1.
//
// Two forms compute this:
//
//   - BatchNormTrainForward and BatchNormBackward (any T) are the readable
//     definition: each channel's sums run sequentially over n, then h·W+w,
//     ascending, in float64, and μ, σ² and the sums' quotients are rounded
//     to T once.
//   - BatchNormTrainForward32 and BatchNormBackward32 (float32) are the
//     form the GPU kernels reproduce bit for bit: every sum is a lane sum
//     in float32, and every other operation is one float32 operation in
//     the order written in their doc, rounded separately (no fused
//     multiply-add).
//
// The lane sum of a channel's M values v(0), v(1), …, v(M−1) (index
// i = n·H·W + h·W + w) is the order of the GPU's block reduction with 256
// threads, one block per channel: lane t (0 ≤ t < 256) adds v(t), v(t+256),
// v(t+512), … in ascending order to a float32 starting at +0; then the
// lanes are combined by block_sum_f32's tree (kernels/common.cuh: for
// stride 128, 64, …, 1, lane t < stride sets lane[t] = lane[t] +
// lane[t+stride]); the sum is lane[0]. Every addition is one float32
// addition.
//
// BatchNorm32 (batchnorm_fast.go) computes the float32 forms with their
// bits, faster: channels on several goroutines, the passes in assembly.
//
// Both share the elementwise steps, written in T: x̂ = (x − μ)·invStd and
// y = γ·x̂ + β each rounded after every operation, invStd = 1/√(σ² + ε) with
// the sum, the square root (correctly rounded) and the quotient each
// rounded to T. BatchNormEvalForward has no sum and is a single form.

// bnLanes is the number of partial sums of a lane sum: the GPU kernels'
// block size kBlock (kernels/common.cuh), one block per channel.
const bnLanes = 256

// bnOp names a batch-norm operation with its shape for error messages.
func bnOp(name string, n, c, hw int) func() string {
	return func() string { return fmt.Sprintf("%s N=%d,C=%d,HW=%d", name, n, c, hw) }
}

// optLen is want, or 0 when the buffer is nil (optional and absent).
func optLen[T any](s []T, want int) int {
	if s == nil {
		return 0
	}
	return want
}

// checkBNTrain validates the arguments of a training-mode forward pass.
func checkBNTrain[T Float](name string, n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar []T, momentum, eps float64) error {
	op := bnOp(name, n, c, hw)
	if err := checkN(op, []int{n, c, hw}, []int{n, c, hw}); err != nil {
		return err
	}
	if n*hw < 2 {
		return fmt.Errorf("cpuref: %s: training needs more than one value per channel (N·H·W = %d): %w", op(), n*hw, geom.ErrGeometry)
	}
	if !(momentum >= 0 && momentum <= 1) || !(eps > 0) || math.IsInf(eps, 0) {
		return fmt.Errorf("cpuref: %s: momentum %g must be in [0, 1] and eps %g finite and > 0: %w", op(), momentum, eps, geom.ErrHyperparameter)
	}
	L := n * c * hw
	return checkLens(op, lenCheck{"x", len(x), L}, lenCheck{"gamma", len(gamma), c}, lenCheck{"beta", len(beta), c},
		lenCheck{"y", len(y), L}, lenCheck{"saveMean", len(saveMean), optLen(saveMean, c)},
		lenCheck{"saveInvStd", len(saveInvStd), optLen(saveInvStd, c)},
		lenCheck{"runMean", len(runMean), optLen(runMean, c)}, lenCheck{"runVar", len(runVar), optLen(runVar, c)},
		lenCheck{"runMean and runVar both or neither", optLen(runMean, 1), optLen(runVar, 1)})
}

// bnInvStd returns 1/√(v + ε) in T: the sum, the square root and the
// quotient each rounded to T (a float32 square root through float64 is
// correctly rounded: 53 ≥ 2·24 + 2 bits).
func bnInvStd[T Float](v, eps T) T {
	return 1 / T(math.Sqrt(float64(v+eps)))
}

// bnNormalize writes y = γ·x̂ + β with x̂ = (x − μ)·invStd for the values of
// channel ch, every operation rounded to T.
func bnNormalize[T Float](n, c, hw, ch int, x, y []T, mean, invStd, gamma, beta T) {
	for i := 0; i < n; i++ {
		off := (i*c + ch) * hw
		xs, ys := x[off:off+hw], y[off:off+hw]
		for j, v := range xs {
			xh := T((v - mean) * invStd)
			ys[j] = T(gamma*xh) + beta
		}
	}
}

// bnRunning updates the running statistics of channel ch:
// rm ← (1−m)·rm + m·μ and rv ← (1−m)·rv + m·unbiased, each product and
// the sum rounded to T.
func bnRunning[T Float](runMean, runVar []T, ch int, mean, unbiased T, momentum float64) {
	if runMean == nil {
		return
	}
	m, a := T(momentum), T(1-momentum)
	runMean[ch] = T(a*runMean[ch]) + T(m*mean)
	runVar[ch] = T(a*runVar[ch]) + T(m*unbiased)
}

// BatchNormTrainForward computes the training-mode batch normalisation
// defined above, the readable form: per channel, the sums Σ x and
// Σ (x − μ)² run over n then h·W+w ascending in float64, with μ the float64
// mean, and μ, σ² = Σ(x−μ)²/M and Σ(x−μ)²/(M−1) are rounded to T.
//
// y is overwritten. saveMean and saveInvStd, when not nil, receive μ and
// invStd for BatchNormBackward. runMean and runVar, when not nil (both or
// neither), are updated in place with momentum. A NaN in a channel's x
// makes that channel's y, statistics and running statistics NaN. x and y
// may be the same slice.
//
// An error wrapping geom.ErrGeometry is returned, before any work, when a
// size is < 1, N·H·W < 2 (PyTorch refuses training with one value per
// channel: the unbiased variance would divide by 0), a tensor has 2³¹
// elements or more, or a length differs from the shapes below; one
// wrapping geom.ErrHyperparameter when momentum is outside [0, 1] or eps is
// not finite and > 0.
func BatchNormTrainForward[T Float](n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar []T, momentum, eps float64) error {
	// x and y are (N,C,H·W); gamma, beta, saveMean, saveInvStd, runMean and runVar are (C)
	if err := checkBNTrain("BatchNormTrainForward", n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps); err != nil {
		return err
	}
	M := float64(n * hw)
	for ch := 0; ch < c; ch++ {
		var s float64
		for i := 0; i < n; i++ {
			off := (i*c + ch) * hw
			for _, v := range x[off : off+hw] {
				s += float64(v)
			}
		}
		mu := s / M
		var ss float64
		for i := 0; i < n; i++ {
			off := (i*c + ch) * hw
			for _, v := range x[off : off+hw] {
				d := float64(v) - mu
				ss += d * d
			}
		}
		mean, variance := T(mu), T(ss/M)
		invStd := bnInvStd(variance, T(eps))
		if saveMean != nil {
			saveMean[ch] = mean
		}
		if saveInvStd != nil {
			saveInvStd[ch] = invStd
		}
		bnRunning(runMean, runVar, ch, mean, T(ss/(M-1)), momentum)
		bnNormalize(n, c, hw, ch, x, y, mean, invStd, gamma[ch], beta[ch])
	}
	return nil
}

// BatchNormTrainForward32 is BatchNormTrainForward in the float32 form that
// the GPU kernel reproduces bit for bit. Per channel, with M = N·H·W, the
// channel's values v(i) = x[i/HW, c, i%HW] for i = 0 … M−1, and every
// operation one float32 operation:
//
//	μ      = lanesum(v) / float32(M)
//	d(i)   = v(i) − μ;   S = lanesum(d(i)·d(i))     (the product rounded, then added)
//	σ²     = S / float32(M);   unbiased = S / float32(M−1)
//	invStd = 1 / sqrt(σ² + float32(ε))
//	x̂      = (v − μ)·invStd;   y = γ·x̂ + β
//	running_mean = float32(1−m)·running_mean + float32(m)·μ   (products rounded, then added)
//	running_var  = float32(1−m)·running_var  + float32(m)·unbiased
//
// Arguments, NaN behaviour and errors are those of BatchNormTrainForward.
func BatchNormTrainForward32(n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar []float32, momentum, eps float64) error {
	// x and y are (N,C,H·W); gamma, beta, saveMean, saveInvStd, runMean and runVar are (C)
	if err := checkBNTrain("BatchNormTrainForward32", n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps); err != nil {
		return err
	}
	M := n * hw
	fM, fM1 := float32(M), float32(M-1)
	var lanes [bnLanes]float32
	for ch := 0; ch < c; ch++ {
		// Σ x, then Σ (x − μ)², over the channel's segments in order; the
		// element with index i = image·HW + j goes to lane i mod 256.
		clear(lanes[:])
		t := 0
		for i := 0; i < n; i++ {
			off := (i*c + ch) * hw
			t = laneAdd(&lanes, t, x[off:off+hw])
		}
		mean := laneTree(&lanes) / fM
		clear(lanes[:])
		t = 0
		for i := 0; i < n; i++ {
			off := (i*c + ch) * hw
			t = laneAddSqDev(&lanes, t, x[off:off+hw], mean)
		}
		S := laneTree(&lanes)
		invStd := bnInvStd(S/fM, float32(eps))
		if saveMean != nil {
			saveMean[ch] = mean
		}
		if saveInvStd != nil {
			saveInvStd[ch] = invStd
		}
		bnRunning(runMean, runVar, ch, mean, S/fM1, momentum)
		bnNormalize(n, c, hw, ch, x, y, mean, invStd, gamma[ch], beta[ch])
	}
	return nil
}

// laneAdd adds seg[k] to lane (t + k) mod 256 for every k, in order, and
// returns the next lane: the strided per-thread sums of the lane sum, fed
// a segment at a time.
func laneAdd(lanes *[bnLanes]float32, t int, seg []float32) int {
	for len(seg) > 0 {
		l := lanes[t:min(bnLanes, t+len(seg))]
		v := seg[:len(l)]
		for i := range l {
			l[i] += v[i]
		}
		seg = seg[len(l):]
		t = (t + len(l)) % bnLanes
	}
	return t
}

// laneAddSqDev is laneAdd of the values (seg[k] − mean)², the difference
// and the square each rounded to float32.
func laneAddSqDev(lanes *[bnLanes]float32, t int, seg []float32, mean float32) int {
	for len(seg) > 0 {
		l := lanes[t:min(bnLanes, t+len(seg))]
		v := seg[:len(l)]
		for i := range l {
			d := v[i] - mean
			l[i] += float32(d * d)
		}
		seg = seg[len(l):]
		t = (t + len(l)) % bnLanes
	}
	return t
}

// laneAddBackward is laneAdd of dy[k] into lanes and of dy[k]·x̂[k],
// x̂ = (x[k] − mean)·invStd, into lanes2, every operation rounded to
// float32: the two sums of the backward pass in one sweep.
func laneAddBackward(lanes, lanes2 *[bnLanes]float32, t int, dy, x []float32, mean, invStd float32) int {
	for len(dy) > 0 {
		n := min(bnLanes-t, len(dy))
		l, l2 := lanes[t:t+n], lanes2[t:t+n]
		d, xs := dy[:n], x[:n]
		for i := range l {
			xh := float32((xs[i] - mean) * invStd)
			l[i] += d[i]
			l2[i] += float32(d[i] * xh)
		}
		dy, x = dy[n:], x[n:]
		t = (t + n) % bnLanes
	}
	return t
}

// laneTree combines the 256 lanes by block_sum_f32's tree and returns the
// total (lanes is consumed).
func laneTree(lanes *[bnLanes]float32) float32 {
	for stride := bnLanes / 2; stride > 0; stride >>= 1 {
		for t := 0; t < stride; t++ {
			lanes[t] += lanes[t+stride]
		}
	}
	return lanes[0]
}

// BatchNormEvalForward computes the evaluation-mode batch normalisation
//
//	invStd = 1/√(running_var + ε),  y = γ·((x − running_mean)·invStd) + β
//
// every operation rounded to T (the GPU's float32 form is the same
// sequence). y is overwritten; x and y may be the same slice. A NaN stays
// NaN. An error wrapping geom.ErrGeometry is returned, before any work, when
// a size is < 1, a tensor has 2³¹ elements or more, or a length differs
// from the shapes below; one wrapping geom.ErrHyperparameter when eps is not
// finite and > 0.
func BatchNormEvalForward[T Float](n, c, hw int, x, gamma, beta, runMean, runVar, y []T, eps float64) error {
	// x and y are (N,C,H·W); gamma, beta, runMean and runVar are (C)
	if err := checkBNEval("BatchNormEvalForward", n, c, hw, x, gamma, beta, runMean, runVar, y, eps); err != nil {
		return err
	}
	for ch := 0; ch < c; ch++ {
		bnNormalize(n, c, hw, ch, x, y, runMean[ch], bnInvStd(runVar[ch], T(eps)), gamma[ch], beta[ch])
	}
	return nil
}

// checkBNEval validates the arguments of an evaluation-mode forward pass.
func checkBNEval[T Float](name string, n, c, hw int, x, gamma, beta, runMean, runVar, y []T, eps float64) error {
	op := bnOp(name, n, c, hw)
	if err := checkN(op, []int{n, c, hw}, []int{n, c, hw}); err != nil {
		return err
	}
	if !(eps > 0) || math.IsInf(eps, 0) {
		return fmt.Errorf("cpuref: %s: eps %g must be finite and > 0: %w", op(), eps, geom.ErrHyperparameter)
	}
	L := n * c * hw
	return checkLens(op, lenCheck{"x", len(x), L}, lenCheck{"gamma", len(gamma), c}, lenCheck{"beta", len(beta), c},
		lenCheck{"runMean", len(runMean), c}, lenCheck{"runVar", len(runVar), c}, lenCheck{"y", len(y), L})
}

// checkBNBackward validates the arguments of a backward pass.
func checkBNBackward[T Float](name string, n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta []T) error {
	op := bnOp(name, n, c, hw)
	if err := checkN(op, []int{n, c, hw}, []int{n, c, hw}); err != nil {
		return err
	}
	L := n * c * hw
	return checkLens(op, lenCheck{"x", len(x), L}, lenCheck{"gamma", len(gamma), c},
		lenCheck{"saveMean", len(saveMean), c}, lenCheck{"saveInvStd", len(saveInvStd), c},
		lenCheck{"dy", len(dy), L}, lenCheck{"dx", len(dx), optLen(dx, L)},
		lenCheck{"dgamma", len(dgamma), c}, lenCheck{"dbeta", len(dbeta), c})
}

// bnBackwardChannel writes dx for channel ch from the two sums:
// dx = (γ·invStd)·((dy − Σdy/M) − x̂·(Σdy·x̂/M)), with mdy = Σdy/M and
// mdyx = Σdy·x̂/M given, every operation rounded to T.
func bnBackwardChannel[T Float](n, c, hw, ch int, x, dy, dx []T, mean, invStd, gamma, mdy, mdyx T) {
	k := T(gamma * invStd)
	for i := 0; i < n; i++ {
		off := (i*c + ch) * hw
		for j := off; j < off+hw; j++ {
			xh := T((x[j] - mean) * invStd)
			dx[j] = T(k * ((dy[j] - mdy) - T(xh*mdyx)))
		}
	}
}

// BatchNormBackward computes the training-mode gradients defined above,
// given the forward input x, γ, and μ and invStd saved by
// BatchNormTrainForward, in the readable form: per channel, Σ dy and
// Σ dy·x̂ (x̂ recomputed as in the forward pass, rounded to T) run over n then
// h·W+w ascending in float64 and are rounded to T once as dβ and dγ; the
// means Σdy/M and Σdy·x̂/M are the float64 sums divided by M, rounded to T.
// Then dx = (γ·invStd)·((dy − mean(dy)) − x̂·mean(dy·x̂)), every operation
// rounded to T.
//
// dgamma and dbeta are overwritten; dx too unless it is nil (a first
// layer). dx may be the same slice as dy. An error wrapping
// geom.ErrGeometry is returned, before any work, when a size is < 1, a
// tensor has 2³¹ elements or more, or a length differs from the shapes
// below.
func BatchNormBackward[T Float](n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta []T) error {
	// x, dy and dx are (N,C,H·W); gamma, saveMean, saveInvStd, dgamma and dbeta are (C)
	if err := checkBNBackward("BatchNormBackward", n, c, hw, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta); err != nil {
		return err
	}
	M := float64(n * hw)
	for ch := 0; ch < c; ch++ {
		mean, invStd := saveMean[ch], saveInvStd[ch]
		var sdy, sdyx float64
		for i := 0; i < n; i++ {
			off := (i*c + ch) * hw
			for j := off; j < off+hw; j++ {
				xh := T((x[j] - mean) * invStd)
				sdy += float64(dy[j])
				sdyx += float64(dy[j]) * float64(xh)
			}
		}
		dbeta[ch], dgamma[ch] = T(sdy), T(sdyx)
		if dx != nil {
			bnBackwardChannel(n, c, hw, ch, x, dy, dx, mean, invStd, gamma[ch], T(sdy/M), T(sdyx/M))
		}
	}
	return nil
}

// BatchNormBackward32 is BatchNormBackward in the float32 form that the GPU
// kernel reproduces bit for bit. Per channel, with the channel's values
// indexed i = 0 … M−1 as in BatchNormTrainForward32 and every operation one
// float32 operation:
//
//	x̂(i)   = (x(i) − μ)·invStd
//	dβ     = lanesum(dy(i));   dγ = lanesum(dy(i)·x̂(i))   (the product rounded, then added)
//	k      = γ·invStd;  mdy = dβ / float32(M);  mdyx = dγ / float32(M)
//	dx(i)  = k·((dy(i) − mdy) − x̂(i)·mdyx)
//
// Arguments and errors are those of BatchNormBackward.
func BatchNormBackward32(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta []float32) error {
	// x, dy and dx are (N,C,H·W); gamma, saveMean, saveInvStd, dgamma and dbeta are (C)
	if err := checkBNBackward("BatchNormBackward32", n, c, hw, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta); err != nil {
		return err
	}
	fM := float32(n * hw)
	var lanes, lanes2 [bnLanes]float32
	for ch := 0; ch < c; ch++ {
		mean, invStd := saveMean[ch], saveInvStd[ch]
		clear(lanes[:])
		clear(lanes2[:])
		t := 0
		for i := 0; i < n; i++ {
			off := (i*c + ch) * hw
			t = laneAddBackward(&lanes, &lanes2, t, dy[off:off+hw], x[off:off+hw], mean, invStd)
		}
		sdy, sdyx := laneTree(&lanes), laneTree(&lanes2)
		dbeta[ch], dgamma[ch] = sdy, sdyx
		if dx != nil {
			bnBackwardChannel(n, c, hw, ch, x, dy, dx, mean, invStd, gamma[ch], sdy/fM, sdyx/fM)
		}
	}
	return nil
}
