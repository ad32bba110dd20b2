package train

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"

	"github.com/convtrain/convtrain/host/nn"
)

// Comm is the data-parallel world a trainer runs in: package dist's MPI
// (or Local, a world of one). Every rank runs the same trainer on the same
// data with the same Config; Batch is the global batch, split evenly over
// the ranks.
type Comm interface {
	Rank() int
	Size() int
	// AllreduceSum sums buf over the ranks in place, in the library's order.
	AllreduceSum(buf []float32) error
	// OrderedSum sums buf over the ranks in place, in rank order 0, 1, …:
	// the bits of one process adding the ranks' buffers in turn.
	OrderedSum(buf []float32) error
	AllreduceSumF64(buf []float64) error
	// AnyTrue is whether flag is true on any rank (every rank gets the
	// same answer).
	AnyTrue(flag bool) (bool, error)
	// Same is whether v is equal on every rank.
	Same(v uint64) (bool, error)
}

// ReduceKind names how the ranks' gradients are summed.
type ReduceKind int

// The reductions.
const (
	// OrderedReduce gathers every rank's gradients and sums them in rank
	// order: P ranks give the bits of one process accumulating P
	// micro-batches (Config.Accum = P), for any P.
	OrderedReduce ReduceKind = iota
	// SumReduce is the library's all-reduce: less traffic, the same bits
	// as the ordered sum for P = 2 only.
	SumReduce
)

func (k ReduceKind) String() string {
	switch k {
	case OrderedReduce:
		return "ordered"
	case SumReduce:
		return "sum"
	}
	return fmt.Sprintf("ReduceKind(%d)", int(k))
}

// world is the number of ranks.
func (t *Trainer) world() int {
	if t.cfg.Comm == nil {
		return 1
	}
	return t.cfg.Comm.Size()
}

// accum is the number of micro-batches per step on each rank.
func (c Config) accum() int { return max(c.Accum, 1) }

// microBatch checks that Batch splits into world ranks × Accum micro-batches
// and returns the micro-batch size.
func (c Config) microBatch(world int) (int, error) {
	a := c.accum()
	if c.Batch%(world*a) != 0 {
		return 0, fmt.Errorf("host: the batch of %d does not split evenly into %d rank(s) × %d micro-batch(es): choose a batch divisible by %d", c.Batch, world, a, world*a)
	}
	return c.Batch / (world * a), nil
}

// accumStep takes one step of Batch images as Accum micro-batches on this
// rank (views s·Accum … s·Accum+Accum−1 of its order), summing their
// gradients on the host in order, then over the ranks (Config.Reduce),
// dividing the sum by the number of micro-batches in all, and updates
// the model with that mean gradient:
//
//	g = (Σ_rank Σ_a g_{rank,a}) / (world·Accum)     each g_{rank,a} the micro-batch's mean-loss gradient
//
// which is the gradient of the global batch's mean loss. One process with
// Accum = P and P ranks with Accum = 1 and the ordered reduction add the
// same gradients in the same order: the same bits.
func (t *Trainer) accumStep(s int, lr float64) error {
	m, b, cfg := t.m, t.micro, t.cfg
	be := m.Backend()
	ps := m.Params()
	a := cfg.accum()
	for k := range a {
		if err := t.loadTraining(b, t.orderViews[s*a+k]); err != nil {
			return err
		}
		if err := m.Forward(b); err != nil {
			return err
		}
		if err := m.Backward(b); err != nil {
			return err
		}
		off := 0
		for _, p := range ps {
			n := p.Grad.Len()
			dst := t.gradAcc[off : off+n]
			if k > 0 {
				dst = t.gradTmp[off : off+n]
			}
			if err := be.Download(dst, p.Grad); err != nil {
				return err
			}
			off += n
		}
		if k > 0 {
			for i, v := range t.gradTmp {
				t.gradAcc[i] += v
			}
		}
	}
	if c := cfg.Comm; c != nil && c.Size() > 1 {
		var err error
		if cfg.Reduce == SumReduce {
			err = c.AllreduceSum(t.gradAcc)
		} else {
			err = c.OrderedSum(t.gradAcc)
		}
		if err != nil {
			return fmt.Errorf("host: gradient all-reduce: %w", err)
		}
	}
	div := float32(t.world() * a)
	for i := range t.gradAcc {
		t.gradAcc[i] /= div
	}
	off := 0
	for _, p := range ps {
		n := p.Grad.Len()
		if err := be.Upload(p.Grad, t.gradAcc[off:off+n]); err != nil {
			return err
		}
		off += n
	}
	return m.Update(float32(lr), float32(cfg.Momentum), float32(cfg.WeightDecay))
}

// globalSums is the training loss sum and correct count over every rank,
// and the number of micro-batch means per step in the loss sum.
func (t *Trainer) globalSums(sum, correct float64) (float64, float64, int, error) {
	k := t.cfg.accum()
	if c := t.cfg.Comm; c != nil && c.Size() > 1 {
		v := []float64{sum, correct}
		if err := c.AllreduceSumF64(v); err != nil {
			return 0, 0, 0, fmt.Errorf("host: metrics all-reduce: %w", err)
		}
		sum, correct, k = v[0], v[1], k*c.Size()
	}
	return sum, correct, k, nil
}

// agree makes a decision every rank takes together: whether any rank
// failed (err) or must stop (stop, an interruption). A rank that did not
// fail itself returns an error saying that another did.
func (t *Trainer) agree(stop bool, err error) error {
	c := t.cfg.Comm
	if c == nil || c.Size() == 1 {
		return err
	}
	any, cerr := c.AnyTrue(stop || err != nil)
	switch {
	case cerr != nil:
		return errors.Join(err, fmt.Errorf("host: stop flag all-reduce: %w", cerr))
	case err != nil:
		return err
	case any && !stop:
		return fmt.Errorf("host: rank %d stops: another rank failed or was interrupted (its error is in its output)", c.Rank())
	}
	return nil
}

// sameWeights checks that every rank starts from the same weights (the
// same seed and spec): an FNV-1a checksum of every parameter's bits.
func (t *Trainer) sameWeights() error {
	c := t.cfg.Comm
	if c == nil || c.Size() == 1 {
		return nil
	}
	values, err := t.m.ParamValues()
	if err != nil {
		return err
	}
	h := fnv.New64a()
	var buf [4]byte
	for _, v := range values {
		for _, x := range v {
			bits := math.Float32bits(x)
			buf[0], buf[1], buf[2], buf[3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
			h.Write(buf[:])
		}
	}
	same, err := c.Same(h.Sum64())
	if err != nil {
		return fmt.Errorf("host: weights checksum: %w", err)
	}
	if !same {
		return fmt.Errorf("host: the ranks start from different weights: give every rank the same -seed, -model and checkpoint")
	}
	return nil
}

// trainBatch is the batch the training steps run: the micro-batch of an
// accumulated or data-parallel step, else the whole batch.
func (t *Trainer) trainBatch() *nn.Batch {
	if t.micro != nil {
		return t.micro
	}
	return t.batch
}
