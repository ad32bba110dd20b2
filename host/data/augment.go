package data

import (
	"fmt"
	"strconv"
	"strings"
)

// Mix64 is the finaliser of SplitMix64 (Steele, Lea and Flood, 2014; the
// constants of Vigna's splitmix64.c), a bijection of uint64 whose every
// output bit depends on every input bit:
//
//	z ^= z >> 30; z *= 0xbf58476d1ce4e5b9
//	z ^= z >> 27; z *= 0x94d049bb133111eb
//	z ^= z >> 31
//
// (all arithmetic modulo 2⁶⁴).
func Mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// golden is 2⁶⁴/φ, SplitMix64's increment.
const golden = 0x9e3779b97f4a7c15

// Hash3 is the counter-based draw of the augmentation and of Split: 64
// random-looking bits from three counters, with no state, so that a GPU
// thread computes the same bits from the same counters:
//
//	Hash3(a, b, c) = Mix64(Mix64(Mix64(a + γ) + b + γ) + c + γ)
//
// with γ = 0x9e3779b97f4a7c15 and additions modulo 2⁶⁴.
func Hash3(a, b, c uint64) uint64 {
	return Mix64(Mix64(Mix64(a+golden)+b+golden) + c + golden)
}

// Augment is the training-time augmentation of an image: a random crop
// with zero padding, then a random horizontal flip. The zero value does
// nothing.
type Augment struct {
	// Pad, when > 0, pads the image with Pad zeros on every side and cuts
	// an H×W window at a random offset ("crop4": Pad 4).
	Pad int
	// Flip mirrors the image left to right with probability ½.
	Flip bool
}

// maxAugmentPad bounds Augment.Pad.
const maxAugmentPad = 64

// ParseAugment parses a comma-separated list of augmentations: "crop<P>"
// (random crop with P pixels of zero padding, 1 ≤ P ≤ 64) and "flip"
// (horizontal flip); "" and "none" mean none. Errors name the value.
func ParseAugment(s string) (Augment, error) {
	var a Augment
	if s == "" || s == "none" {
		return a, nil
	}
	bad := func(why string) (Augment, error) {
		return Augment{}, fmt.Errorf("data: augmentation %q: %s; want a comma-separated list of crop<P> (P pixels of padding, 1 to %d) and flip, e.g. crop4,flip, or none", s, why, maxAugmentPad)
	}
	for _, item := range strings.Split(s, ",") {
		switch {
		case item == "flip":
			if a.Flip {
				return bad("flip twice")
			}
			a.Flip = true
		case strings.HasPrefix(item, "crop"):
			p, err := strconv.Atoi(item[len("crop"):])
			if err != nil || p < 1 || p > maxAugmentPad {
				return bad(fmt.Sprintf("%q is not crop1 to crop%d", item, maxAugmentPad))
			}
			if a.Pad != 0 {
				return bad("crop twice")
			}
			a.Pad = p
		default:
			return bad(fmt.Sprintf("unknown item %q", item))
		}
	}
	return a, nil
}

// String is the canonical form that ParseAugment reads ("crop4,flip",
// "none").
func (a Augment) String() string {
	var items []string
	if a.Pad > 0 {
		items = append(items, "crop"+strconv.Itoa(a.Pad))
	}
	if a.Flip {
		items = append(items, "flip")
	}
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ",")
}

// Draw is the augmentation of one image: the crop window's offset (DY, DX)
// in the padded image, each in [0, 2·Pad], and whether to flip.
type Draw struct {
	DY, DX int
	Flip   bool
}

// Draw returns the augmentation of the training image with the given
// index (its position in the training set) at the given step, for a run
// with the given seed. step is the trainer's counter of passes: the epoch
// (one draw per image per epoch) or the global step, whichever it keeps in
// its resume state; the draw depends on nothing else, not on the batch or
// the rank. With r = Hash3(seed, step, index) and s = 2·Pad + 1:
//
//	DY   = ((r mod 2³²) · s) >> 32
//	DX   = (((r >> 32) mod 2³¹) · s) >> 31
//	Flip = Flip and r >> 63 == 1
//
// The same arguments give the same draw, on any machine and on the GPU.
func (a Augment) Draw(seed, step, index uint64) Draw {
	r := Hash3(seed, step, index)
	s := uint64(2*a.Pad + 1)
	return Draw{
		DY:   int((r & 0xffffffff) * s >> 32),
		DX:   int((r >> 32 & 0x7fffffff) * s >> 31),
		Flip: a.Flip && r>>63 == 1,
	}
}

// Apply writes to dst the image src (C,H,W) augmented by the draw d:
//
//	dst[c][y][x] = src[c][y + DY − Pad][x' + DX − Pad],  x' = W−1−x if Flip else x
//
// and 0 where the source position is outside the image (the padding): the
// crop of the zero-padded image, then the flip. dst and src must not
// overlap and both hold C·H·W values.
func (a Augment) Apply(dst, src []float32, c, h, w int, d Draw) error {
	if c < 1 || h < 1 || w < 1 || len(src) != c*h*w || len(dst) != c*h*w {
		return fmt.Errorf("data: augment: %d and %d values for an image of %d×%d×%d", len(dst), len(src), c, h, w)
	}
	if a.Pad < 0 || d.DY < 0 || d.DX < 0 || d.DY > 2*a.Pad || d.DX > 2*a.Pad {
		return fmt.Errorf("data: augment: offset (%d, %d) outside [0, %d] for padding %d", d.DY, d.DX, 2*a.Pad, a.Pad)
	}
	oy, ox := d.DY-a.Pad, d.DX-a.Pad
	for ch := range c {
		plane, out := src[ch*h*w:(ch+1)*h*w], dst[ch*h*w:(ch+1)*h*w]
		for y := range h {
			row := out[y*w : (y+1)*w]
			sy := y + oy
			if sy < 0 || sy >= h {
				clear(row)
				continue
			}
			in := plane[sy*w : (sy+1)*w]
			for x := range w {
				xs := x
				if d.Flip {
					xs = w - 1 - x
				}
				xs += ox
				if xs < 0 || xs >= w {
					row[x] = 0
				} else {
					row[x] = in[xs]
				}
			}
		}
	}
	return nil
}

// Batch augments a batch: image i of src (N,C,H,W), the training image
// with index index[i], is written to dst augmented by
// a.Draw(seed, step, index[i]). Labels are not involved: the augmentation
// changes pixels only.
func (a Augment) Batch(dst, src []float32, n, c, h, w int, seed, step uint64, index []int) error {
	if n < 0 || len(index) != n || len(src) != n*c*h*w || len(dst) != n*c*h*w {
		return fmt.Errorf("data: augment: %d indices, %d and %d values for %d images of %d×%d×%d", len(index), len(dst), len(src), n, c, h, w)
	}
	size := c * h * w
	for i, k := range index {
		if k < 0 {
			return fmt.Errorf("data: augment: image %d has index %d, want ≥ 0", i, k)
		}
		if err := a.Apply(dst[i*size:(i+1)*size], src[i*size:(i+1)*size], c, h, w, a.Draw(seed, step, uint64(k))); err != nil {
			return err
		}
	}
	return nil
}
