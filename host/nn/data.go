package nn

import (
	"errors"
	"fmt"
	"math"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/data"
)

// DeviceSet is a data set resident on a backend, so that a batch is
// assembled with GatherImages and Gather and nothing but the batch's row
// indices crosses from the host in a step. The images stay bytes, as
// loaded: the set takes N·C·H·W bytes of the backend's memory for its
// inputs, a quarter of what their float32 values would take, and each
// batch is standardised (and augmented) as it is gathered.
type DeviceSet struct {
	N       int
	Images  backend.Tensor // uint8 (N,C,H,W): the pixel bytes
	LUT     backend.Tensor // (C,256): channel c's standardised value of every byte
	Labels  backend.Tensor // int32 (N)
	Targets backend.Tensor // (N,Classes) one-hot; MSE models only
}

// Upload copies d to m's backend, every channel standardised with norm
// (UploadChannels with one norm).
func (m *Model) Upload(d *data.Dataset, norm data.Norm) (*DeviceSet, error) {
	return m.UploadChannels(d, []data.Norm{norm})
}

// UploadChannels copies d to m's backend, channel c of every image to be
// standardised with norms[c] (p − Mean)/Std; one norm applies to every
// channel. The bytes are uploaded as they are, with the table of each
// channel's 256 input values (InputTable), which a batch's gather looks
// them up in. The error names a count of norms that is neither 1 nor C
// and a norm that is not finite or has Std 0.
func (m *Model) UploadChannels(d *data.Dataset, norms []data.Norm) (*DeviceSet, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	if d.C != m.spec.C || d.H != m.spec.H || d.W != m.spec.W {
		return nil, fmt.Errorf("host: data set %q has %d×%d×%d images, the model takes %d×%d×%d", d.Name, d.C, d.H, d.W, m.spec.C, m.spec.H, m.spec.W)
	}
	if d.Classes > m.Classes() {
		return nil, fmt.Errorf("host: data set %q has %d classes, the model outputs %d", d.Name, d.Classes, m.Classes())
	}
	if len(norms) != 1 && len(norms) != d.C {
		return nil, fmt.Errorf("host: %d standardisations for %d channels, want 1 or %d", len(norms), d.C, d.C)
	}
	for _, norm := range norms {
		if norm.Std == 0 || math.IsNaN(norm.Std) || math.IsNaN(norm.Mean) || math.IsInf(norm.Std, 0) || math.IsInf(norm.Mean, 0) {
			return nil, fmt.Errorf("host: bad standardisation %+v", norm)
		}
	}
	be := m.be
	s := &DeviceSet{N: d.N}
	fail := func(err error) (*DeviceSet, error) {
		return nil, errors.Join(fmt.Errorf("host: upload %q: %w", d.Name, err), s.Free(be))
	}
	var err error
	if s.Images, err = be.NewByteTensor(len(d.Images)); err != nil {
		return fail(err)
	}
	if err = be.UploadBytes(s.Images, d.Images); err != nil {
		return fail(err)
	}
	lut := InputTable(norms, d.C)
	if s.LUT, err = be.NewTensor(len(lut)); err != nil {
		return fail(err)
	}
	if err = be.Upload(s.LUT, lut); err != nil {
		return fail(err)
	}
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

// InputTable returns the model inputs of every byte of each of c
// channels, (C,256): entry [ch, p] is float32((p − Mean)/Std) of channel
// ch's norm (norms[ch], or norms[0] for every channel when there is one),
// computed in float64 and rounded once. A batch's inputs are entries of
// this table (Backend.GatherImages), so every backend gives them the same
// bits.
func InputTable(norms []data.Norm, c int) []float32 {
	lut := make([]float32, c*256)
	for ch := range c {
		norm := norms[0]
		if len(norms) > 1 {
			norm = norms[ch]
		}
		for p := range 256 {
			lut[ch*256+p] = float32((float64(p) - norm.Mean) / norm.Std)
		}
	}
	return lut
}

// Free releases the set's tensors.
func (s *DeviceSet) Free(be backend.Backend) error {
	var errs []error
	for _, t := range []*backend.Tensor{&s.Images, &s.LUT, &s.Labels, &s.Targets} {
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
// gathering the images (standardised), labels (and targets) on the
// backend: no copy between host and device, so queued steps run on
// without waiting. It is LoadAugmented with no augmentation.
func (m *Model) LoadIndexed(b *Batch, s *DeviceSet, idx backend.Tensor) error {
	return m.LoadAugmented(b, s, idx, backend.AugmentParams{})
}

// LoadAugmented is LoadIndexed with each image augmented as it is
// gathered (Backend.GatherImages with p; the zero p: none), in one pass
// over the batch.
func (m *Model) LoadAugmented(b *Batch, s *DeviceSet, idx backend.Tensor, p backend.AugmentParams) error {
	if idx == nil || idx.Len() != b.N {
		n := 0
		if idx != nil {
			n = idx.Len()
		}
		return fmt.Errorf("host: load: %d indices for a batch of %d: %w", n, b.N, backend.ErrTensor)
	}
	be, sp := m.be, m.spec
	if err := be.GatherBatch(p, b.N, sp.C, sp.H, sp.W, s.LUT, s.Images, s.Labels, idx, b.X, b.Labels); err != nil {
		return fmt.Errorf("host: load images and labels: %w", err)
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
