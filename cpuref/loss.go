package cpuref

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// SoftmaxCrossEntropy returns the mean over the batch of the cross-entropy
// of softmax(logits) against the labels, and its gradient:
//
//	loss       = (1/N) Σ_n ( log Σ_j exp(z[n,j]) − z[n, t_n] )
//	dlogits[n,j] = (softmax(z[n])_j − [j = t_n]) / N
//
// The log-sum-exp subtracts the row maximum first, so large logits do not
// overflow; sums are taken in float64 whatever T. dlogits is overwritten
// unless it is nil. An error wrapping geom.ErrGeometry is returned, before any
// work, when a size is < 1, a length differs from the shapes below, or a
// label lies outside [0, classes).
func SoftmaxCrossEntropy[T Float](n, classes int, logits []T, labels []int32, dlogits []T) (loss T, err error) {
	// logits and dlogits are (N,Classes), labels is (N)
	op := func() string { return fmt.Sprintf("SoftmaxCrossEntropy N=%d,Classes=%d", n, classes) }
	if err := checkN(op, []int{n, classes}, []int{n, classes}); err != nil {
		return 0, err
	}
	dLen := n * classes
	if dlogits == nil {
		dLen = 0
	}
	if err := checkLens(op, lenCheck{"logits", len(logits), n * classes},
		lenCheck{"labels", len(labels), n}, lenCheck{"dlogits", len(dlogits), dLen}); err != nil {
		return 0, err
	}
	for i, t := range labels {
		if t < 0 || int(t) >= classes {
			return 0, fmt.Errorf("cpuref: %s: labels[%d] = %d outside [0, %d): %w", op(), i, t, classes, geom.ErrGeometry)
		}
	}
	var total float64
	for i := 0; i < n; i++ {
		z := logits[i*classes : (i+1)*classes]
		m := float64(z[0])
		for _, v := range z[1:] {
			m = math.Max(m, float64(v))
		}
		var s float64
		for _, v := range z {
			s += math.Exp(float64(v) - m)
		}
		lse := m + math.Log(s)
		t := labels[i]
		total += lse - float64(z[t])
		if dlogits != nil {
			d := dlogits[i*classes : (i+1)*classes]
			for j, v := range z {
				pj := math.Exp(float64(v) - lse)
				if j == int(t) {
					pj--
				}
				d[j] = T(pj / float64(n))
			}
		}
	}
	return T(total / float64(n)), nil
}

// MSE returns the mean over the batch of the squared error, in the form of
// the reference derivation (E = ½ Σ (t − y)² per sample), and its gradient:
//
//	loss    = (1/N) Σ_n Σ_d ½ (t[n,d] − y[n,d])²
//	dy[n,d] = (y[n,d] − t[n,d]) / N
//
// The sum is taken in float64 whatever T. dy is overwritten unless it is
// nil. An error wrapping geom.ErrGeometry is returned, before any work, when a
// size is < 1 or a length differs from the shapes below.
func MSE[T Float](n, dim int, y, t, dy []T) (loss T, err error) {
	// y, t and dy are (N,Dim)
	op := func() string { return fmt.Sprintf("MSE N=%d,Dim=%d", n, dim) }
	if err := checkN(op, []int{n, dim}, []int{n, dim}); err != nil {
		return 0, err
	}
	dLen := n * dim
	if dy == nil {
		dLen = 0
	}
	if err := checkLens(op, lenCheck{"y", len(y), n * dim}, lenCheck{"t", len(t), n * dim},
		lenCheck{"dy", len(dy), dLen}); err != nil {
		return 0, err
	}
	var total float64
	for i, yv := range y {
		e := float64(yv) - float64(t[i])
		total += 0.5 * e * e
		if dy != nil {
			dy[i] = T(e / float64(n))
		}
	}
	return T(total / float64(n)), nil
}
