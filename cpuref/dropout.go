package cpuref

import (
	"fmt"
	"math/bits"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Philox4x32 is the counter-based generator Philox4x32-10 of Salmon et al.,
// "Parallel random numbers: as easy as 1, 2, 3" (SC11), as Random123
// defines it: ten rounds of
//
//	(hi0, lo0) = M0·c0,  (hi1, lo1) = M1·c2      (32×32 → 64-bit products)
//	c = (hi1 ⊕ c1 ⊕ k0,  lo1,  hi0 ⊕ c3 ⊕ k1,  lo0)
//
// with M0 = 0xD2511F53, M1 = 0xCD9E8D57, the key bumped between rounds by
// k0 += 0x9E3779B9, k1 += 0xBB67AE85 (mod 2³²). It returns the four 32-bit
// words of the final counter. TestPhiloxKnownAnswers checks it against
// Random123's published known-answer vectors.
func Philox4x32(ctr [4]uint32, key [2]uint32) [4]uint32 {
	const (
		m0, m1 = 0xD2511F53, 0xCD9E8D57
		w0, w1 = 0x9E3779B9, 0xBB67AE85
	)
	c, k := ctr, key
	for round := 0; round < 10; round++ {
		if round > 0 {
			k[0] += w0
			k[1] += w1
		}
		hi0, lo0 := bits.Mul32(m0, c[0])
		hi1, lo1 := bits.Mul32(m1, c[2])
		c = [4]uint32{hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0}
	}
	return c
}

// DropoutKey selects the random stream of one dropout mask. Seed is the
// run's seed, Stream tells apart the dropout layers of a model (their
// index, say), Step is the training step, so that every layer and every
// step draws an independent mask and a run is reproducible from the seed.
type DropoutKey struct {
	Seed   uint64
	Stream uint32
	Step   uint64
}

// checkDropoutP reports an error unless 0 ≤ p < 1.
func checkDropoutP(op string, p float32) error {
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("cpuref: %s: dropout probability %g must be in [0, 1): %w", op, p, geom.ErrHyperparameter)
	}
	return nil
}

// DropoutMask writes the keep-mask of a dropout with drop probability p
// for mask's len(mask) elements, from the counter-based generator alone
// (any element can be computed independently, in any order, by a GPU
// thread):
//
//	key     = (lo32(k.Seed), hi32(k.Seed))
//	counter = (i/4, k.Stream, lo32(k.Step), hi32(k.Step))
//	r[i]    = Philox4x32(counter, key)[i mod 4]   (one call serves 4 consecutive elements)
//	u[i]    = float32(r[i] >> 8) · 2^−24     (exact: a uniform on the 2^24 multiples of 2^−24 in [0, 1))
//	mask[i] = 1 if u[i] ≥ p, else 0          (a float32 comparison)
//
// so an element is kept with probability 1 − ⌈p·2^24⌉/2^24. An error
// wrapping geom.ErrGeometry is returned, before any work, when mask is
// empty or has 2³¹ elements or more; one wrapping geom.ErrHyperparameter
// when p is outside [0, 1) or NaN.
func DropoutMask(k DropoutKey, p float32, mask []uint8) error {
	// mask is (L)
	if err := checkDropoutP("DropoutMask", p); err != nil {
		return err
	}
	if err := checkElementwise("DropoutMask", len(mask)); err != nil {
		return err
	}
	key := [2]uint32{uint32(k.Seed), uint32(k.Seed >> 32)}
	for j := 0; 4*j < len(mask); j++ {
		r := Philox4x32([4]uint32{uint32(j), k.Stream, uint32(k.Step), uint32(k.Step >> 32)}, key)
		for w := 0; w < 4 && 4*j+w < len(mask); w++ {
			mask[4*j+w] = 0
			if float32(r[w]>>8)*0x1p-24 >= p {
				mask[4*j+w] = 1
			}
		}
	}
	return nil
}

// DropoutForward applies a dropout mask in training, PyTorch's inverted
// dropout:
//
//	y[i] = (x[i]·mask[i])·s,   s = 1/(1 − p)
//
// with mask[i] ∈ {0, 1} converted to T, s computed in T (T(1)/(T(1) − T(p))),
// each product rounded to T. A dropped element is ±0 (the sign of x), or
// NaN when x is NaN or infinite, as in PyTorch. In evaluation, dropout is
// the identity and this function is not called. x and y may be the same
// slice. An error wrapping geom.ErrGeometry is returned, before any work,
// when x is empty, has 2³¹ elements or more, a length differs, or a mask
// entry is neither 0 nor 1; one wrapping geom.ErrHyperparameter when p is
// outside [0, 1) or NaN.
func DropoutForward[T Float](p float32, mask []uint8, x, y []T) error {
	// mask, x and y are (L)
	if err := checkDropout("DropoutForward", p, mask, len(x), lenCheck{"y", len(y), len(x)}); err != nil {
		return err
	}
	applyMask(p, mask, x, y)
	return nil
}

// DropoutBackward computes the gradient of DropoutForward with the same
// mask and p:
//
//	dx[i] = (dy[i]·mask[i])·s,   s = 1/(1 − p)
//
// with the same roundings. dx may be the same slice as dy. Errors are those
// of DropoutForward.
func DropoutBackward[T Float](p float32, mask []uint8, dy, dx []T) error {
	// mask, dy and dx are (L)
	if err := checkDropout("DropoutBackward", p, mask, len(dy), lenCheck{"dx", len(dx), len(dy)}); err != nil {
		return err
	}
	applyMask(p, mask, dy, dx)
	return nil
}

func checkDropout(op string, p float32, mask []uint8, n int, lens ...lenCheck) error {
	if err := checkDropoutP(op, p); err != nil {
		return err
	}
	if err := checkElementwise(op, n, append(lens, lenCheck{"mask", len(mask), n})...); err != nil {
		return err
	}
	for i, m := range mask {
		if m > 1 {
			return fmt.Errorf("cpuref: %s: mask[%d] = %d, want 0 or 1: %w", op, i, m, geom.ErrGeometry)
		}
	}
	return nil
}

func applyMask[T Float](p float32, mask []uint8, x, y []T) {
	s := T(1) / (T(1) - T(p))
	y, mask = y[:len(x)], mask[:len(x)]
	for i, v := range x {
		y[i] = (v * T(mask[i])) * s
	}
}
