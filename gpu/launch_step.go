package gpu

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the kernels that read a step's changing values from device
// memory when they run (gather_batch_at_v1, dropout_at_v1 and the _at_v1
// multi-tensor optimisers): a recorded step (Graph) launches them with
// fixed arguments, and the host writes the values of each step (the
// batch's offset into the epoch's order, the step of the dropout keys, the
// optimiser's scalars) into device memory with one upload before each
// replay.

// Word names the 32-bit words [Index, Index+k) of a buffer (float32 or
// int32) that a kernel reads when it runs, k being what the kernel reads
// there. A zero Word (Buf nil) is "no word" where a launcher accepts one.
type Word struct {
	Buf   *Buffer
	Index int
}

// wordPtr checks that w names k live words of this device and returns their
// address. The caller holds d.mu.
func (d *Device) wordPtr(name string, w Word, k int) (arg, error) {
	if w.Buf == nil {
		return arg{}, fmt.Errorf("%s: no buffer: %w", name, geom.ErrGeometry)
	}
	if err := w.Buf.live(); err != nil {
		return arg{}, fmt.Errorf("%s: %w", name, err)
	}
	if w.Buf.d != d {
		return arg{}, fmt.Errorf("%s: buffer of another device", name)
	}
	if w.Index < 0 || w.Index > w.Buf.n-k {
		return arg{}, fmt.Errorf("%s: words [%d, %d) of %v: out of range: %w", name, w.Index, w.Index+k, w.Buf, geom.ErrGeometry)
	}
	return argDev(w.Buf.ptr + DevicePtr(4*w.Index)), nil
}

// GatherBatchAt gathers rows of x (float32 or int32, rows of rowLen) and,
// when labels is not nil, the labels (int32, one per row) of rows
// order[off .. off+rows), in one launch of gather_batch_at_v1:
//
//	dx[r,:] = x[order[off+r],:],  dlabels[r] = labels[order[off+r]]
//
// off is the int32 word at (read by the kernel when it runs), or 0 when at
// is the zero Word. dx (x's type) has rows·rowLen elements and dlabels
// rows. The kernel writes nothing when off is outside [0, order.Len()−rows]
// and skips a row whose index lies outside [0, x.Len()/rowLen): the
// caller keeps both in range. An error wrapping geom.ErrGeometry is
// returned for a nil, mistyped or wrong-length buffer.
func (d *Device) GatherBatchAt(rowLen int, x, labels, order *Buffer, at Word, dx, dlabels *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.gatherBatchAt(rowLen, x, labels, order, at, dx, dlabels); err != nil {
		return launchErr(kGatherBatchAt, rowShape{lenOf(dlabels), rowLen}, err)
	}
	return nil
}

func (d *Device) gatherBatchAt(rowLen int, x, labels, order *Buffer, at Word, dx, dlabels *Buffer) error {
	if x == nil || order == nil || dx == nil {
		return fmt.Errorf("x, order or dx is nil: %w", geom.ErrGeometry)
	}
	if rowLen < 1 || x.n%rowLen != 0 || dx.n%rowLen != 0 {
		return fmt.Errorf("x (%d) or dx (%d) is not whole rows of %d: %w", x.n, dx.n, rowLen, geom.ErrGeometry)
	}
	rows, srcRows := dx.n/rowLen, x.n/rowLen
	if err := dims([]int{rows, rowLen}, []int{rows, rowLen + 1}); err != nil {
		return err
	}
	if err := d.need("x", x, x.dtype, x.n); err != nil {
		return err
	}
	if err := d.need("dx", dx, x.dtype, rows*rowLen); err != nil {
		return err
	}
	if err := d.needAtLeast("order", order, Int32, rows); err != nil {
		return err
	}
	if (labels == nil) != (dlabels == nil) {
		return fmt.Errorf("labels and dlabels: both or neither: %w", geom.ErrGeometry)
	}
	if labels != nil {
		if err := d.need("labels", labels, Int32, srcRows); err != nil {
			return err
		}
		if err := d.need("dlabels", dlabels, Int32, rows); err != nil {
			return err
		}
	}
	off := argPtr(nil)
	if at.Buf != nil {
		var err error
		if off, err = d.wordPtr("at", at, 1); err != nil {
			return err
		}
	} else if order.n != rows {
		return fmt.Errorf("order has %d elements for %d rows and no offset word: %w", order.n, rows, geom.ErrGeometry)
	}
	total := rows * rowLen
	if labels != nil {
		total += rows
	}
	grid, block := linear(total)
	return d.launch(kGatherBatchAt, grid, block, 0, argPtr(x), argPtr(labels), argPtr(order), off,
		argPtr(dx), argPtr(dlabels), argI32(rows), argI32(rowLen), argI32(order.n), argI32(srcRows))
}

// DropoutAt is Dropout with the key's step read from the two words at
// (low 32 bits, then high) when the kernel runs; key.Step is ignored.
// Kernel dropout_at_v1.
func (d *Device) DropoutAt(key DropoutKey, p float32, x, y *Buffer, step Word) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.dropoutAt(key, p, x, y, step); err != nil {
		return launchErr(kDropoutAt, elemShape{lenOf(x)}, err)
	}
	return nil
}

func (d *Device) dropoutAt(key DropoutKey, p float32, x, y *Buffer, step Word) error {
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("dropout probability %g must be in [0, 1): %w", p, geom.ErrHyperparameter)
	}
	if x == nil {
		return fmt.Errorf("x is nil: %w", geom.ErrGeometry)
	}
	n := x.n
	if err := d.need("x", x, Float32, n); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, n); err != nil {
		return err
	}
	sp, err := d.wordPtr("step", step, 2)
	if err != nil {
		return err
	}
	grid, block := linear(ceilDiv(n, 4))
	return d.launch(kDropoutAt, grid, block, 0, argPtr(x), argPtr(y), argI32(n), argF32(p),
		argU32(uint32(key.Seed)), argU32(uint32(key.Seed>>32)), argU32(key.Stream), sp)
}

// StepWords puts step into w[0:2] as DropoutAt reads it: the low 32 bits,
// then the high, each as a float32 with those bits (the word is copied
// bit for bit, never converted).
func StepWords(w []float32, step uint64) {
	w[0], w[1] = math.Float32frombits(uint32(step)), math.Float32frombits(uint32(step>>32))
}

// SGDWords is the number of words SGDMomentumMultiAt and
// SGDNesterovMultiAt read: lr, momentum, weight decay.
const SGDWords = 3

// AdamWords is the number of words AdamMultiAt reads (AdamScalars).
const AdamWords = 10

// AdamScalars puts the scalars of adam_multi_v1 for c into w[0:AdamWords]
// as adam_multi_at_v1 reads them: β1, 1−β1, β2, 1−β2, the step size,
// √(1−β2^t), ε, the L2 coefficient, the decay factor (each rounded to
// float32 as AdamMulti passes it) and decoupled as the int32 word 0 or 1.
func AdamScalars(w []float32, c geom.AdamCoef) {
	w[0], w[1] = float32(c.Beta1), float32(c.OneMinusBeta1)
	w[2], w[3] = float32(c.Beta2), float32(c.OneMinusBeta2)
	w[4], w[5] = float32(c.StepSize), float32(c.BC2Sqrt)
	w[6], w[7], w[8] = float32(c.Eps), float32(c.L2), float32(c.Decay)
	w[9] = 0
	if c.Decoupled {
		w[9] = math.Float32frombits(1)
	}
}

// SGDMomentumMultiAt is SGDMomentumMulti with lr, momentum and weight
// decay read from the SGDWords words at s when the kernel runs. Kernel
// sgd_momentum_multi_at_v1.
func (d *Device) SGDMomentumMultiAt(t *ParamTable, s Word) error {
	return d.multiAt(kSGDMomentumMultiAt, t, false, s, SGDWords)
}

// SGDNesterovMultiAt is SGDNesterovMulti with lr, momentum and weight
// decay read from the SGDWords words at s when the kernel runs. Kernel
// sgd_nesterov_multi_at_v1.
func (d *Device) SGDNesterovMultiAt(t *ParamTable, s Word) error {
	return d.multiAt(kSGDNesterovMultiAt, t, false, s, SGDWords)
}

// AdamMultiAt is AdamMulti with the scalars read from the AdamWords words
// at s (AdamScalars) when the kernel runs. Kernel adam_multi_at_v1.
func (d *Device) AdamMultiAt(t *ParamTable, s Word) error {
	return d.multiAt(kAdamMultiAt, t, true, s, AdamWords)
}

func (d *Device) multiAt(id kernelID, t *ParamTable, adam bool, s Word, words int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.checkTable(t, adam)
	var sp arg
	if err == nil {
		sp, err = d.wordPtr("scalars", s, words)
	}
	if err == nil {
		err = d.launch(id, Dim3{t.blocks, 1, 1}, Dim3{blockSize, 1, 1}, 0, argPtr(t.buf), argI32(len(t.sets)), sp)
	}
	if err != nil {
		return launchErr(id, shapeOf(t), err)
	}
	return nil
}
