package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the multi-tensor optimiser kernels (kernels/optim_multi.cu):
// sgd_momentum_multi_v1, sgd_nesterov_multi_v1 and adam_multi_v1 update
// every tensor of a ParamTable in one launch, with the same bits as one
// per-tensor launch (SGDMomentum, SGDNesterov, Adam) per tensor.

// ParamSet is one parameter of a multi-tensor update: its value P, its
// gradient G and its optimiser state, M (SGD's velocity or Adam's first
// moment) and V (Adam's second moment; nil for SGD). All are float32 of
// P's length.
type ParamSet struct {
	P, G, M, V *Buffer
}

// paramTableWords is the number of 64-bit words per tensor in the device
// table (kTableWords in optim_multi.cu): p, g, m, v, n, first block.
const paramTableWords = 6

// ParamTable is the device-side table of the tensors of a multi-tensor
// update, built once (NewParamTable) and launched every step: the launch
// passes only the table's address, its length and the step's scalars.
// Its buffers must stay allocated while the table is used; each launch
// checks that they are.
type ParamTable struct {
	d      *Device
	buf    *Buffer // int32, 2·paramTableWords per tensor
	sets   []ParamSet
	blocks int  // grid.x: Σ ⌈n/256⌉
	elems  int  // Σ n
	adam   bool // every set has V
}

// NewParamTable uploads the table of sets (at least one): for each, the
// addresses of P, G, M and V (0 when V is nil), P's length n and its first
// block Σ_{earlier} ⌈n/256⌉. Either every set has V (usable by
// AdamMulti) or none (SGD); the buffers are float32 of equal length within
// a set. The sets are copied: changing the slice later changes nothing.
func (d *Device) NewParamTable(sets []ParamSet) (*ParamTable, error) {
	if len(sets) == 0 {
		return nil, fmt.Errorf("gpu: param table: no tensors: %w", geom.ErrGeometry)
	}
	t := &ParamTable{d: d, sets: append([]ParamSet(nil), sets...), adam: sets[0].V != nil}
	words := make([]int32, 0, 2*paramTableWords*len(sets))
	put := func(v uint64) { words = append(words, int32(uint32(v)), int32(uint32(v>>32))) }
	d.mu.Lock()
	for i, s := range sets {
		if err := d.checkSet(s, t.adam); err != nil {
			d.mu.Unlock()
			return nil, fmt.Errorf("gpu: param table: tensor %d: %w", i, err)
		}
		n := s.P.n
		if t.blocks > maxElems-ceilDiv(n, blockSize) {
			d.mu.Unlock()
			return nil, fmt.Errorf("gpu: param table: tensor %d: 2³¹ blocks or more: %w", i, geom.ErrGeometry)
		}
		var v DevicePtr
		if s.V != nil {
			v = s.V.ptr
		}
		put(uint64(s.P.ptr))
		put(uint64(s.G.ptr))
		put(uint64(s.M.ptr))
		put(uint64(v))
		put(uint64(n))
		put(uint64(t.blocks))
		t.blocks += ceilDiv(n, blockSize)
		t.elems += n
	}
	d.mu.Unlock()
	buf, err := d.NewInt32(len(words))
	if err != nil {
		return nil, fmt.Errorf("gpu: param table: %w", err)
	}
	if err := buf.UploadInt32(words); err != nil {
		buf.Free()
		return nil, fmt.Errorf("gpu: param table: %w", err)
	}
	t.buf = buf
	return t, nil
}

// Len is the number of tensors in the table.
func (t *ParamTable) Len() int { return len(t.sets) }

// Free releases the table's device memory (not the tensors it names).
func (t *ParamTable) Free() error { return t.buf.Free() }

// checkSet checks one set: live float32 buffers of this device, of P's
// length, V present exactly when adam. The caller holds d.mu.
func (d *Device) checkSet(s ParamSet, adam bool) error {
	if s.P == nil {
		return fmt.Errorf("p is nil: %w", geom.ErrGeometry)
	}
	n := s.P.n
	if err := d.need("p", s.P, Float32, n); err != nil {
		return err
	}
	if err := d.need("g", s.G, Float32, n); err != nil {
		return err
	}
	if err := d.need("m", s.M, Float32, n); err != nil {
		return err
	}
	if adam != (s.V != nil) {
		return fmt.Errorf("v present in some tensors and not in others: %w", geom.ErrGeometry)
	}
	return d.needOpt("v", s.V, Float32, n)
}

// multiShape is a multi-tensor launch's shape in errors.
type multiShape struct{ tensors, elems int }

func (s multiShape) String() string { return fmt.Sprintf("tensors=%d,n=%d", s.tensors, s.elems) }

// checkTable checks, before a launch, that t belongs to d, that every
// buffer it names is still allocated and that it has V when adam. The
// caller holds d.mu.
func (d *Device) checkTable(t *ParamTable, adam bool) error {
	if t == nil {
		return fmt.Errorf("param table is nil: %w", geom.ErrGeometry)
	}
	if t.d != d {
		return fmt.Errorf("param table of another device")
	}
	if err := t.buf.live(); err != nil {
		return fmt.Errorf("param table: %w", err)
	}
	if adam && !t.adam {
		return fmt.Errorf("param table has no second moments (v): %w", geom.ErrGeometry)
	}
	for i, s := range t.sets {
		if err := d.checkSet(s, t.adam); err != nil {
			return fmt.Errorf("tensor %d: %w", i, err)
		}
	}
	return nil
}

func shapeOf(t *ParamTable) multiShape {
	if t == nil {
		return multiShape{}
	}
	return multiShape{len(t.sets), t.elems}
}

// SGDMomentumMulti is SGDMomentum on every tensor of t (M the velocity) in
// one launch of sgd_momentum_multi_v1.
func (d *Device) SGDMomentumMulti(t *ParamTable, lr, momentum, weightDecay float32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.sgdMulti(kSGDMomentumMulti, t, lr, momentum, weightDecay); err != nil {
		return launchErr(kSGDMomentumMulti, shapeOf(t), err)
	}
	return nil
}

// SGDNesterovMulti is SGDNesterov on every tensor of t (M the velocity) in
// one launch of sgd_nesterov_multi_v1.
func (d *Device) SGDNesterovMulti(t *ParamTable, lr, momentum, weightDecay float32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.sgdMulti(kSGDNesterovMulti, t, lr, momentum, weightDecay); err != nil {
		return launchErr(kSGDNesterovMulti, shapeOf(t), err)
	}
	return nil
}

func (d *Device) sgdMulti(id kernelID, t *ParamTable, lr, momentum, weightDecay float32) error {
	if err := d.checkTable(t, false); err != nil {
		return err
	}
	return d.launch(id, Dim3{t.blocks, 1, 1}, Dim3{blockSize, 1, 1}, 0, argPtr(t.buf), argI32(len(t.sets)),
		argF32(lr), argF32(momentum), argF32(weightDecay))
}

// AdamMulti is Adam on every tensor of t (M and V the moments), with the
// scalars c for all of them, in one launch of adam_multi_v1.
func (d *Device) AdamMulti(t *ParamTable, c geom.AdamCoef) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.adamMulti(t, c); err != nil {
		return launchErr(kAdamMulti, shapeOf(t), err)
	}
	return nil
}

func (d *Device) adamMulti(t *ParamTable, c geom.AdamCoef) error {
	if err := d.checkTable(t, true); err != nil {
		return err
	}
	decoupled := 0
	if c.Decoupled {
		decoupled = 1
	}
	return d.launch(kAdamMulti, Dim3{t.blocks, 1, 1}, Dim3{blockSize, 1, 1}, 0, argPtr(t.buf), argI32(len(t.sets)),
		argF32(float32(c.Beta1)), argF32(float32(c.OneMinusBeta1)), argF32(float32(c.Beta2)),
		argF32(float32(c.OneMinusBeta2)), argF32(float32(c.StepSize)), argF32(float32(c.BC2Sqrt)),
		argF32(float32(c.Eps)), argF32(float32(c.L2)), argF32(float32(c.Decay)), argI32(decoupled))
}
