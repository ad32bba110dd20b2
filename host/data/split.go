package data

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// splitDomain is Hash3's second counter for Split's permutation, beyond
// any training step, so that Split's draws are not the augmentation's.
const splitDomain = 1<<63 | 0x73706c6974 // "split"

// SplitPermutation returns the permutation of 0 … n−1 that Split uses
// for a seed: a Fisher–Yates shuffle of the identity,
//
//	for i = n−1 down to 1:
//	    j = (Hash3(seed, 2⁶³ + 0x73706c6974, i) · (i+1)) >> 64   (128-bit product)
//	    swap p[i], p[j]
func SplitPermutation(n int, seed uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i >= 1; i-- {
		hi, _ := bits.Mul64(Hash3(seed, splitDomain, uint64(i)), uint64(i+1))
		p[i], p[hi] = p[hi], p[i]
	}
	return p
}

// Split returns two disjoint subsets of d that together hold every image:
// val, the images p[0], …, p[n−1] of SplitPermutation(d.N, seed), and
// train, the others; each keeps the images in the order of d. They have
// their own storage. n must be in [1, N−1].
func (d *Dataset) Split(n int, seed uint64) (train, val *Dataset, err error) {
	if n < 1 || n >= d.N {
		return nil, nil, fmt.Errorf("data: split %s: %d validation images of %d, want 1 to %d", d.Name, n, d.N, d.N-1)
	}
	p := SplitPermutation(d.N, seed)
	inVal := make([]bool, d.N)
	for _, i := range p[:n] {
		inVal[i] = true
	}
	size := d.C * d.H * d.W
	subset := func(name string, count int, want bool) *Dataset {
		s := *d
		s.Name, s.N = d.Name+"/"+name, count
		s.Images, s.Labels = make([]uint8, 0, count*size), make([]uint8, 0, count)
		s.ClassNames = slices.Clone(d.ClassNames)
		for i := range d.N {
			if inVal[i] == want {
				s.Images = append(s.Images, d.Images[i*size:(i+1)*size]...)
				s.Labels = append(s.Labels, d.Labels[i])
			}
		}
		return &s
	}
	return subset("train", d.N-n, false), subset("val", n, true), nil
}

// SplitSize is the size of a validation set as a flag gives it: a count
// of images ("5000") or a percentage of the training set ("10%"). The zero
// value means no validation set. It is a flag.Value.
type SplitSize struct {
	Count   int     // images, when Percent is 0
	Percent float64 // in (0, 100), when not 0
}

// ParseSplitSize parses "N" (a count ≥ 0; 0 means none), "P%" (0 < P <
// 100) or "" (none). Errors name the value.
func ParseSplitSize(s string) (SplitSize, error) {
	bad := func(why string) (SplitSize, error) {
		return SplitSize{}, fmt.Errorf("data: validation size %q: %s; want a count of images (5000) or a percentage of the training set (10%%)", s, why)
	}
	if s == "" {
		return SplitSize{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(v) {
			return bad(fmt.Sprintf("%q is not a number", p))
		}
		if v <= 0 || v >= 100 {
			return bad("the percentage must be above 0 and below 100")
		}
		return SplitSize{Percent: v}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return bad("not a whole number")
	}
	if n < 0 {
		return bad("negative")
	}
	return SplitSize{Count: n}, nil
}

// Set parses s as ParseSplitSize does (flag.Value).
func (z *SplitSize) Set(s string) error {
	v, err := ParseSplitSize(s)
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// String is the form ParseSplitSize reads ("5000", "10%", "0").
func (z *SplitSize) String() string {
	if z == nil {
		return "0"
	}
	if z.Percent != 0 {
		return strconv.FormatFloat(z.Percent, 'g', -1, 64) + "%"
	}
	return strconv.Itoa(z.Count)
}

// Of returns the number of validation images taken from a training set of
// total images: Count, or Percent of total rounded to the nearest (halves
// up); 0 for the zero SplitSize. A non-zero result must be in [1, total−1].
func (z SplitSize) Of(total int) (int, error) {
	n := z.Count
	if z.Percent != 0 {
		n = int(math.Floor(z.Percent*float64(total)/100 + 0.5))
	} else if n == 0 {
		return 0, nil
	}
	if n < 1 || n >= total {
		return 0, fmt.Errorf("data: validation size %s of %d training images is %d images, want 1 to %d", z.String(), total, n, total-1)
	}
	return n, nil
}
