package cpuref

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// The split form of BatchNormTrainForward32 and BatchNormBackward32, for
// BatchNorm synchronised over the ranks of a data-parallel world: each
// rank holds n of the global batch's images and computes the lane sums of
// its own values (BatchNormSums32, BatchNormBackwardSums32); the caller
// adds the ranks' sums (in a fixed order) and finishes with the global
// sums and the global count of values per channel, m = (images in all)·H·W
// (BatchNormFinish32, BatchNormBackwardFinish32). Per channel:
//
//	forward:  Σx = Σ_rank lanesum(x);   μ = Σx / float32(m)
//	          S  = Σ_rank lanesum((x − μ)²);  then as BatchNormTrainForward32 with S and m
//	backward: Σdy, Σdy·x̂ = Σ_rank lanesum(…);  then dx as BatchNormBackward32 with those and m
//
// With one rank (the sums not added to anything, m = n·H·W) the split form
// gives BatchNormTrainForward32's and BatchNormBackward32's bits. With
// several, each sum is the float32 sum of the ranks' lane sums, which
// rounds differently from one lane sum over all m values: a few float32
// ulps in μ, σ² and the backward sums.

// checkBNSums validates the arguments of a sum of the split form.
func checkBNSums(name string, n, c, hw int, lens ...lenCheck) error {
	op := bnOp(name, n, c, hw)
	if err := checkN(op, []int{n, c, hw}, []int{n, c, hw}); err != nil {
		return err
	}
	return checkLens(op, lens...)
}

// BatchNormSums32 writes into sums (C) each channel's lane sum of x
// (N,C,H·W) when mean is nil, else of the squared deviations (x − mean)²
// (the difference and the square each rounded): the sums of
// BatchNormTrainForward32 over this rank's values. An error wrapping
// geom.ErrGeometry is returned, before any work, when a size is < 1 or a
// length differs from the shapes.
func BatchNormSums32(n, c, hw int, x, mean, sums []float32) error {
	// x is (N,C,H·W); mean (nil or C) and sums are (C)
	if err := checkBNSums("BatchNormSums32", n, c, hw, lenCheck{"x", len(x), n * c * hw},
		lenCheck{"mean", len(mean), optLen(mean, c)}, lenCheck{"sums", len(sums), c}); err != nil {
		return err
	}
	var lanes [bnLanes]float32
	for ch := 0; ch < c; ch++ {
		clear(lanes[:])
		t := 0
		for i := 0; i < n; i++ {
			off := (i*c + ch) * hw
			if mean == nil {
				t = laneAdd(&lanes, t, x[off:off+hw])
			} else {
				t = laneAddSqDev(&lanes, t, x[off:off+hw], mean[ch])
			}
		}
		sums[ch] = laneTree(&lanes)
	}
	return nil
}

// BatchNormMean32 writes mean = sum / float32(m) per channel: μ from the
// global Σx of m values.
func BatchNormMean32(m int, sums, mean []float32) error {
	if m < 1 || len(sums) != len(mean) {
		return fmt.Errorf("cpuref: BatchNormMean32 M=%d: %d sums for %d means: %w", m, len(sums), len(mean), geom.ErrGeometry)
	}
	fM := float32(m)
	for ch, s := range sums {
		mean[ch] = s / fM
	}
	return nil
}

// BatchNormFinish32 is the rest of BatchNormTrainForward32 given each
// channel's mean μ and global sum of squared deviations S over m values:
// invStd = 1/√(S/float32(m) + ε), the running statistics updated with μ
// and S/float32(m−1), and y = γ·((x − μ)·invStd) + β for this rank's
// values. saveMean and saveInvStd (nil or C) receive μ and invStd; runMean
// and runVar (both or neither) are updated in place. Errors as
// BatchNormTrainForward32's, and m < 2 is one.
func BatchNormFinish32(n, c, hw, m int, x, gamma, beta, y, mean, sqDev, saveMean, saveInvStd, runMean, runVar []float32, momentum, eps float64) error {
	if err := checkBNTrain("BatchNormFinish32", n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps); err != nil {
		return err
	}
	if m < n*hw || len(mean) != c || len(sqDev) != c {
		return fmt.Errorf("cpuref: BatchNormFinish32 N=%d,C=%d,HW=%d: %d values per channel in all, %d means and %d sums: %w", n, c, hw, m, len(mean), len(sqDev), geom.ErrGeometry)
	}
	fM, fM1 := float32(m), float32(m-1)
	for ch := 0; ch < c; ch++ {
		mu, S := mean[ch], sqDev[ch]
		invStd := bnInvStd(S/fM, float32(eps))
		if saveMean != nil {
			saveMean[ch] = mu
		}
		if saveInvStd != nil {
			saveInvStd[ch] = invStd
		}
		bnRunning(runMean, runVar, ch, mu, S/fM1, momentum)
		bnNormalize(n, c, hw, ch, x, y, mu, invStd, gamma[ch], beta[ch])
	}
	return nil
}

// BatchNormBackwardSums32 writes each channel's lane sums of dy (into
// sdy) and of dy·x̂, x̂ = (x − μ)·invStd (into sdyx), over this rank's
// values: BatchNormBackward32's dβ and dγ. Errors as BatchNormBackward32's.
func BatchNormBackwardSums32(n, c, hw int, x, saveMean, saveInvStd, dy, sdy, sdyx []float32) error {
	L := n * c * hw
	if err := checkBNSums("BatchNormBackwardSums32", n, c, hw, lenCheck{"x", len(x), L}, lenCheck{"dy", len(dy), L},
		lenCheck{"saveMean", len(saveMean), c}, lenCheck{"saveInvStd", len(saveInvStd), c},
		lenCheck{"sdy", len(sdy), c}, lenCheck{"sdyx", len(sdyx), c}); err != nil {
		return err
	}
	var lanes, lanes2 [bnLanes]float32
	for ch := 0; ch < c; ch++ {
		clear(lanes[:])
		clear(lanes2[:])
		t := 0
		for i := 0; i < n; i++ {
			off := (i*c + ch) * hw
			t = laneAddBackward(&lanes, &lanes2, t, dy[off:off+hw], x[off:off+hw], saveMean[ch], saveInvStd[ch])
		}
		sdy[ch], sdyx[ch] = laneTree(&lanes), laneTree(&lanes2)
	}
	return nil
}

// BatchNormBackwardFinish32 writes dx for this rank's values given the
// global sums Σdy and Σdy·x̂ over m values: dx = (γ·invStd)·((dy − mdy) −
// x̂·mdyx) with mdy = Σdy/float32(m), mdyx = Σdy·x̂/float32(m), as
// BatchNormBackward32. Errors as BatchNormBackward32's.
func BatchNormBackwardFinish32(n, c, hw, m int, x, gamma, saveMean, saveInvStd, dy, sdy, sdyx, dx []float32) error {
	L := n * c * hw
	if err := checkBNSums("BatchNormBackwardFinish32", n, c, hw, lenCheck{"x", len(x), L}, lenCheck{"dy", len(dy), L},
		lenCheck{"dx", len(dx), L}, lenCheck{"gamma", len(gamma), c},
		lenCheck{"saveMean", len(saveMean), c}, lenCheck{"saveInvStd", len(saveInvStd), c},
		lenCheck{"sdy", len(sdy), c}, lenCheck{"sdyx", len(sdyx), c}); err != nil {
		return err
	}
	if m < n*hw || m > math.MaxInt32 {
		return fmt.Errorf("cpuref: BatchNormBackwardFinish32 N=%d,C=%d,HW=%d: %d values per channel in all: %w", n, c, hw, m, geom.ErrGeometry)
	}
	fM := float32(m)
	for ch := 0; ch < c; ch++ {
		bnBackwardChannel(n, c, hw, ch, x, dy, dx, saveMean[ch], saveInvStd[ch], gamma[ch], sdy[ch]/fM, sdyx[ch]/fM)
	}
	return nil
}
