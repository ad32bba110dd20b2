package host

import (
	"errors"
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
}

// Check validates the sizes of d and that every label is below Classes.
func (d *Dataset) Check() error {
	if d.N < 1 || d.C < 1 || d.H < 1 || d.W < 1 || d.Classes < 2 || d.Classes > 256 {
		return fmt.Errorf("host: data set %q: %d images of %d×%d×%d, %d classes: sizes must be ≥ 1 and classes in [2, 256]", d.Name, d.N, d.C, d.H, d.W, d.Classes)
	}
	if len(d.Images) != d.N*d.C*d.H*d.W || len(d.Labels) != d.N {
		return fmt.Errorf("host: data set %q: %d image bytes and %d labels for %d images of %d×%d×%d", d.Name, len(d.Images), len(d.Labels), d.N, d.C, d.H, d.W)
	}
	for i, l := range d.Labels {
		if int(l) >= d.Classes {
			return fmt.Errorf("host: data set %q: label %d of image %d is not below %d classes", d.Name, l, i, d.Classes)
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
	n := float64(len(d.Images))
	mean := float64(sum) / n
	v := float64(sq)/n - mean*mean
	if v <= 0 {
		return Norm{Mean: mean, Std: 1}
	}
	return Norm{Mean: mean, Std: math.Sqrt(v)}
}

// DeviceSet is a data set resident on a backend, so that a batch is
// assembled with Gather and nothing but the batch's row indices crosses
// from the host in a step.
type DeviceSet struct {
	N       int
	X       Tensor // (N,C,H,W) standardised inputs
	Labels  Tensor // int32 (N)
	Targets Tensor // (N,Classes) one-hot; MSE models only
}

// Upload copies d to m's backend, standardised with norm.
func (m *Model) Upload(d *Dataset, norm Norm) (*DeviceSet, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	if d.C != m.spec.C || d.H != m.spec.H || d.W != m.spec.W {
		return nil, fmt.Errorf("host: data set %q has %d×%d×%d images, the model takes %d×%d×%d", d.Name, d.C, d.H, d.W, m.spec.C, m.spec.H, m.spec.W)
	}
	if d.Classes > m.Classes() {
		return nil, fmt.Errorf("host: data set %q has %d classes, the model outputs %d", d.Name, d.Classes, m.Classes())
	}
	if norm.Std == 0 || math.IsNaN(norm.Std) || math.IsNaN(norm.Mean) {
		return nil, fmt.Errorf("host: bad standardisation %+v", norm)
	}
	be := m.be
	s := &DeviceSet{N: d.N}
	fail := func(err error) (*DeviceSet, error) {
		return nil, errors.Join(fmt.Errorf("host: upload %q: %w", d.Name, err), s.Free(be))
	}
	var err error
	var lut [256]float32
	for p := range lut {
		lut[p] = float32((float64(p) - norm.Mean) / norm.Std)
	}
	x := make([]float32, len(d.Images))
	for i, p := range d.Images {
		x[i] = lut[p]
	}
	if s.X, err = be.NewTensor(len(x)); err != nil {
		return fail(err)
	}
	if err = be.Upload(s.X, x); err != nil {
		return fail(err)
	}
	x = nil
	labels := make([]int32, d.N)
	for i, l := range d.Labels {
		labels[i] = int32(l)
	}
	if s.Labels, err = be.NewIndexTensor(d.N); err != nil {
		return fail(err)
	}
	if err = be.UploadIndex(s.Labels, labels); err != nil {
		return fail(err)
	}
	if m.spec.Loss == MSELoss {
		k := m.Classes()
		t := make([]float32, d.N*k)
		for i, l := range d.Labels {
			t[i*k+int(l)] = 1
		}
		if s.Targets, err = be.NewTensor(len(t)); err != nil {
			return fail(err)
		}
		if err = be.Upload(s.Targets, t); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// Free releases the set's tensors.
func (s *DeviceSet) Free(be Backend) error {
	var errs []error
	for _, t := range []*Tensor{&s.X, &s.Labels, &s.Targets} {
		if *t != nil {
			errs = append(errs, be.Free(*t))
			*t = nil
		}
	}
	return errors.Join(errs...)
}

// Load fills b with rows[0:b.N] of s: the indices are uploaded to b.Idx and
// the images, labels (and targets) gathered on the backend. On a GPU the
// upload is a host-to-device copy, which waits for the work queued before
// it; a loop of steps gathers through LoadIndexed instead.
func (m *Model) Load(b *Batch, s *DeviceSet, rows []int32) error {
	if len(rows) != b.N {
		return fmt.Errorf("host: load: %d rows for a batch of %d", len(rows), b.N)
	}
	if err := m.be.UploadIndex(b.Idx, rows); err != nil {
		return fmt.Errorf("host: load: %w", err)
	}
	return m.LoadIndexed(b, s, b.Idx)
}

// LoadIndexed fills b with the rows of s that the index tensor idx (b.N
// elements, typically an IndexView of an order uploaded once) names,
// gathering the images, labels (and targets) on the backend: no copy
// between host and device, so queued steps run on without waiting.
func (m *Model) LoadIndexed(b *Batch, s *DeviceSet, idx Tensor) error {
	if idx == nil || idx.Len() != b.N {
		n := 0
		if idx != nil {
			n = idx.Len()
		}
		return fmt.Errorf("host: load: %d indices for a batch of %d: %w", n, b.N, ErrTensor)
	}
	be := m.be
	if err := be.Gather(m.InputLen(), s.X, idx, b.X); err != nil {
		return fmt.Errorf("host: load images: %w", err)
	}
	if err := be.Gather(1, s.Labels, idx, b.Labels); err != nil {
		return fmt.Errorf("host: load labels: %w", err)
	}
	if b.Targets != nil {
		if s.Targets == nil {
			return fmt.Errorf("host: load: the set has no targets for an MSE model")
		}
		if err := be.Gather(m.Classes(), s.Targets, idx, b.Targets); err != nil {
			return fmt.Errorf("host: load targets: %w", err)
		}
	}
	return nil
}

// Synthetic returns a deterministic, learnable data set of n single-channel
// size×size images in the given number of classes: image i has class
// i mod classes and shows a bright bar through a point near the centre
// (shifted by up to size/6 pixels) at the angle π·class/classes, with
// uniform background noise. The same arguments give the same bytes.
func Synthetic(n, size, classes int, seed uint64) (*Dataset, error) {
	if n < 1 || size < 4 || size > 256 || classes < 2 || classes > 256 || n > (1<<31-1)/(size*size) {
		return nil, fmt.Errorf("host: synthetic: n=%d size=%d classes=%d: want n ≥ 1, size in [4, 256], classes in [2, 256]", n, size, classes)
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
