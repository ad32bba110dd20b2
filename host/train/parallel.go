package train

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"time"

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
	// Allgather writes every rank's src into dst in rank order
	// (len(dst) = Size × len(src)).
	Allgather(dst, src []float32) error
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
		t0 := time.Now()
		if cfg.Reduce == SumReduce {
			err = c.AllreduceSum(t.gradAcc)
		} else {
			err = c.OrderedSum(t.gradAcc)
		}
		t.reduceTime += time.Since(t0)
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

// evaluateSharded is evaluate on a world of several ranks: the set's
// batches (the same batches of Batch images and the tail as one process
// evaluates) are split into contiguous shares, rank r taking batches
// [r·k, (r+1)·k) with k = ⌈batches/P⌉ (a share may be empty); each rank
// evaluates its share and keeps every batch's mean loss (downloaded after
// its forward pass: on a GPU one synchronisation per batch) and counts its
// correct answers on the backend. The means are gathered in batch order
// and summed on the host as one process's backend sums them: in float32,
// from +0, batch by batch, the tail batch apart; the counts are summed in
// float64. So every rank returns the bits that one process returns, for
// any P: the correct count exactly, the loss sum too.
func (t *Trainer) evaluateSharded(ctx context.Context, e *evalSet) (loss, acc float64, err error) {
	c, m := t.cfg.Comm, t.m
	p, nb := c.Size(), len(e.views)
	k := (nb + p - 1) / p
	lo := min(c.Rank()*k, nb)
	hi := min(lo+k, nb)
	means := make([]float32, k)
	var stop bool
	err = func() error {
		for _, b := range []*nn.Batch{t.batch, e.tail} {
			if b == nil {
				continue
			}
			if err := m.ResetMetrics(b); err != nil {
				return err
			}
		}
		for i := lo; i < hi; i++ {
			if ctx.Err() != nil {
				stop = true
				return nil
			}
			idx, b := e.views[i], t.batch
			if idx.Len() < b.N {
				b = e.tail
			}
			if err := m.LoadIndexed(b, e.set, idx); err != nil {
				return err
			}
			b.Eval = true // running statistics; dropout passes through
			err := m.Forward(b)
			b.Eval = false
			if err != nil {
				return fmt.Errorf("host: evaluate rows %d to %d: %w", i*t.batch.N, i*t.batch.N+b.N, err)
			}
			if err := m.Backend().Download(means[i-lo:i-lo+1], b.Loss); err != nil {
				return err
			}
		}
		return nil
	}()
	if err := t.agree(stop, err); err != nil {
		return 0, 0, err
	}
	if stop {
		return 0, 0, ctx.Err()
	}
	var count float64
	for _, b := range []*nn.Batch{t.batch, e.tail} {
		if b == nil {
			continue
		}
		v, err := t.download(b.Correct)
		if err != nil {
			return 0, 0, err
		}
		count += v
	}
	all := make([]float32, p*k)
	if err := c.Allgather(all, means); err != nil {
		return 0, 0, fmt.Errorf("host: evaluation losses all-gather: %w", err)
	}
	sums := []float64{count}
	if err := c.AllreduceSumF64(sums); err != nil {
		return 0, 0, fmt.Errorf("host: evaluation counts all-reduce: %w", err)
	}
	// all[r·k + j] is batch r·k + j's mean: in batch order, padded at the end.
	var full float32
	var lossSum float64
	for i, v := range all[:nb] {
		if e.views[i].Len() < t.batch.N {
			lossSum += float64(full) * float64(t.batch.N)
			full = 0
			lossSum += float64(v) * float64(e.tail.N)
			continue
		}
		full += v
	}
	if e.tail == nil {
		lossSum += float64(full) * float64(t.batch.N)
	}
	return lossSum / float64(e.n), sums[0] / float64(e.n), nil
}
