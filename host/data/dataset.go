package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Dataset is a labelled image set in host memory: N images of C×H×W bytes
// (row-major, as in IDX files) and one label in [0, Classes) per image.
type Dataset struct {
	Name       string
	N, C, H, W int
	Classes    int
	Images     []uint8 // N·C·H·W
	Labels     []uint8 // N
	// ClassNames, when not nil, names each class (len == Classes), from
	// the data set's files (CIFAR's names files, an image folder's
	// sub-folders).
	ClassNames []string
}

// Check validates the sizes of d and that every label is below Classes.
func (d *Dataset) Check() error {
	if d.N < 1 || d.C < 1 || d.H < 1 || d.W < 1 || d.Classes < 2 || d.Classes > 256 {
		return fmt.Errorf("data: data set %q: %d images of %d×%d×%d, %d classes: sizes must be ≥ 1 and classes in [2, 256]", d.Name, d.N, d.C, d.H, d.W, d.Classes)
	}
	if len(d.Images) != d.N*d.C*d.H*d.W || len(d.Labels) != d.N {
		return fmt.Errorf("data: data set %q: %d image bytes and %d labels for %d images of %d×%d×%d", d.Name, len(d.Images), len(d.Labels), d.N, d.C, d.H, d.W)
	}
	if d.ClassNames != nil && len(d.ClassNames) != d.Classes {
		return fmt.Errorf("data: data set %q: %d class names for %d classes", d.Name, len(d.ClassNames), d.Classes)
	}
	for i, l := range d.Labels {
		if int(l) >= d.Classes {
			return fmt.Errorf("data: data set %q: label %d of image %d is not below %d classes", d.Name, l, i, d.Classes)
		}
	}
	return nil
}

// Limit returns the first n images of d (all of them when n ≤ 0 or n ≥ N),
// sharing storage.
func (d *Dataset) Limit(n int) *Dataset {
	if n <= 0 || n >= d.N {
		return d
	}
	e := *d
	e.N = n
	e.Images = d.Images[:n*d.C*d.H*d.W]
	e.Labels = d.Labels[:n]
	return &e
}

// Norm is the affine map from a pixel byte p to the model's input
// (p − Mean)/Std.
type Norm struct{ Mean, Std float64 }

// Standardisation returns the mean and standard deviation of all pixel
// bytes of d (Std is 1 for a constant image set), computed exactly with
// integer sums.
func (d *Dataset) Standardisation() Norm {
	var sum, sq uint64
	for _, p := range d.Images {
		sum += uint64(p)
		sq += uint64(p) * uint64(p)
	}
	return normOf(sum, sq, len(d.Images))
}

// ChannelNorm returns the mean and standard deviation of each channel's
// pixel bytes over all images of d (C entries; Std is 1 for a constant
// channel), computed exactly with integer sums as Standardisation does:
// for C == 1 its one entry has the bits of Standardisation().
func (d *Dataset) ChannelNorm() []Norm {
	sums, sqs := make([]uint64, d.C), make([]uint64, d.C)
	plane := d.H * d.W
	for i := range d.N {
		for c := range d.C {
			var sum, sq uint64
			for _, p := range d.Images[(i*d.C+c)*plane : (i*d.C+c+1)*plane] {
				sum += uint64(p)
				sq += uint64(p) * uint64(p)
			}
			sums[c] += sum
			sqs[c] += sq
		}
	}
	norms := make([]Norm, d.C)
	for c := range norms {
		norms[c] = normOf(sums[c], sqs[c], d.N*plane)
	}
	return norms
}

// normOf is the mean and standard deviation of n bytes with the given sum
// and sum of squares (Std 1 when the variance is not positive).
func normOf(sum, sq uint64, count int) Norm {
	n := float64(count)
	mean := float64(sum) / n
	v := float64(sq)/n - mean*mean
	if v <= 0 {
		return Norm{Mean: mean, Std: 1}
	}
	return Norm{Mean: mean, Std: math.Sqrt(v)}
}

// Synthetic returns a deterministic, learnable data set of n single-channel
// size×size images in the given number of classes: image i has class
// i mod classes and shows a bright bar through a point near the centre
// (shifted by up to size/6 pixels) at the angle π·class/classes, with
// uniform background noise. The same arguments give the same bytes.
func Synthetic(n, size, classes int, seed uint64) (*Dataset, error) {
	if n < 1 || size < 4 || size > 256 || classes < 2 || classes > 256 || n > (1<<31-1)/(size*size) {
		return nil, fmt.Errorf("data: synthetic: n=%d size=%d classes=%d: want n ≥ 1, size in [4, 256], classes in [2, 256]", n, size, classes)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5851f42d4c957f2d))
	d := &Dataset{Name: fmt.Sprintf("synthetic-%d", seed), N: n, C: 1, H: size, W: size, Classes: classes,
		Images: make([]uint8, n*size*size), Labels: make([]uint8, n)}
	half := float64(size-1) / 2
	shift := float64(size) / 6
	for i := range n {
		c := i % classes
		d.Labels[i] = uint8(c)
		img := d.Images[i*size*size : (i+1)*size*size]
		for j := range img {
			img[j] = uint8(rng.IntN(48))
		}
		theta := math.Pi * float64(c) / float64(classes)
		dy, dx := math.Sin(theta), math.Cos(theta)
		cy := half + (2*rng.Float64()-1)*shift
		cx := half + (2*rng.Float64()-1)*shift
		length := 0.35 * float64(size)
		for t := -length; t <= length; t += 0.25 {
			y, x := int(math.Round(cy+t*dy)), int(math.Round(cx+t*dx))
			if y >= 0 && y < size && x >= 0 && x < size {
				img[y*size+x] = 200 + uint8(rng.IntN(56))
			}
		}
	}
	return d, nil
}
