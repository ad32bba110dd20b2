package train

import (
	"errors"
	"fmt"
	"time"

	"github.com/convtrain/convtrain/host/backend"
)

// DeviceComm reduces tensors where they live, on the model's backend: on
// a GPU, NCCL on the device buffers (host/dist's NCCL through the cuda
// build's adapter), so the gradients never cross to the host. Its ranks
// are Config.Comm's, which keeps the control (stop flags, metrics,
// evaluation). Each call takes every tensor of a step, so that an
// implementation issues them as one operation (NCCL: one group) and
// synchronises with the peers once per step.
type DeviceComm interface {
	// AllreduceSum sums each of ts over the ranks in place, in the
	// library's order (ncclAllReduce: the bits of the ordered sum for 2
	// ranks only).
	AllreduceSum(ts []backend.Tensor) error
	// Allgather writes every rank's src[i] into dst[i] (Size × src[i].Len()
	// values), rank r's at r·src[i].Len(), for each i.
	Allgather(dst, src []backend.Tensor) error
}

// deviceGrads is the trainer's state for reducing the gradients on the
// backend (Config.DeviceComm): per parameter, the accumulator of its
// micro-batches (nil without accumulation: the gradient itself), the
// gather of every rank's sum and one row of it (ordered reduction only)
// and the scratch of the division; the index tensors that select one
// rank's row of a gather (ranks, viewed one row at a time), the one row
// of a gradient (zero) and every div-th value of a parameter's scratch
// (stride, one per parameter: a backend checks a view's indices against
// its whole tensor's range).
type deviceGrads struct {
	acc, gathered, row, wide []backend.Tensor
	sums                     []backend.Tensor // what is reduced: acc[i], or the gradient without accumulation
	ranks, zero              backend.Tensor
	rankViews                []backend.Tensor
	stride                   []backend.Tensor
	div                      int
}

// newDeviceGrads allocates the device reduction's tensors for world
// ranks and a micro-batches per rank.
func (t *Trainer) newDeviceGrads(world, a int) error {
	be, ps := t.m.Backend(), t.m.Params()
	g := &deviceGrads{div: world * a}
	t.dev = g
	maxN := 0
	for _, p := range ps {
		n := p.Grad.Len()
		maxN = max(maxN, n)
		var acc, gath, row backend.Tensor
		var err error
		if a > 1 {
			if acc, err = be.NewTensor(n); err != nil {
				return err
			}
		}
		g.acc = append(g.acc, acc)
		if acc != nil {
			g.sums = append(g.sums, acc)
		} else {
			g.sums = append(g.sums, p.Grad)
		}
		if t.cfg.Reduce == OrderedReduce {
			if gath, err = be.NewTensor(world * n); err != nil {
				return err
			}
			if row, err = be.NewTensor(n); err != nil {
				return err
			}
		}
		g.gathered, g.row = append(g.gathered, gath), append(g.row, row)
		w, err := be.NewTensor(n * g.div)
		if err != nil {
			return err
		}
		g.wide = append(g.wide, w)
	}
	rows := make([]int32, world)
	for r := range rows {
		rows[r] = int32(r)
	}
	var err error
	if g.ranks, err = be.NewIndexTensor(world); err != nil {
		return err
	}
	if g.zero, err = be.NewIndexTensor(1); err != nil {
		return err
	}
	if err := errors.Join(be.UploadIndex(g.ranks, rows), be.UploadIndex(g.zero, []int32{0})); err != nil {
		return err
	}
	for r := range world {
		v, err := be.IndexView(g.ranks, r, 1)
		if err != nil {
			return err
		}
		g.rankViews = append(g.rankViews, v)
	}
	stride := make([]int32, maxN)
	for i := range stride {
		stride[i] = int32(i * g.div)
	}
	for _, p := range ps {
		n := p.Grad.Len()
		x, err := be.NewIndexTensor(n)
		if err != nil {
			return err
		}
		g.stride = append(g.stride, x)
		if err := be.UploadIndex(x, stride[:n]); err != nil {
			return err
		}
	}
	return nil
}

// free releases the device reduction's tensors.
func (g *deviceGrads) free(be backend.Backend) error {
	var errs []error
	for _, ts := range [][]backend.Tensor{g.acc, g.gathered, g.row, g.wide, g.stride, {g.ranks, g.zero}} {
		for _, x := range ts {
			if x != nil {
				errs = append(errs, be.Free(x))
			}
		}
	}
	return errors.Join(errs...)
}

// deviceStep is accumStep with the gradients kept on the backend: each
// parameter's micro-batch gradients are summed on the backend
// (Accumulate, in order), reduced over the ranks by Config.DeviceComm,
// divided by the number of micro-batches in all and written to the
// gradient, then the model is updated. The same operations in the same
// order as accumStep's host path, each with the same float32 rounding:
//
//	copy        Gather of one row of the whole tensor (bit for bit)
//	sum         Accumulate: dst += src, one float32 addition
//	ordered     Allgather, then rank 0's row copied and rows 1 … P−1 added in turn (SumInRankOrder)
//
// Config.DeviceComm gets all the parameters of a step in one call (one
// NCCL group on a GPU), before the first parameter's sum and division.
//
//	divide      GlobalAvgPoolBackward with H·W = P·Accum (dx = dy / float32(H·W)), then
//	            Gather of every (P·Accum)-th value into the gradient
//
// so both paths give the same bits (with -reduce sum, for the library's
// all-reduce as for MPI's: exact for 2 ranks).
func (t *Trainer) deviceStep(s int, lr float64) error {
	m, b, cfg, g := t.m, t.micro, t.cfg, t.dev
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
		if a == 1 {
			break
		}
		for i, p := range ps {
			var err error
			if k == 0 {
				err = be.Gather(p.Grad.Len(), p.Grad, g.zero, g.acc[i])
			} else {
				err = be.Accumulate(g.acc[i], p.Grad)
			}
			if err != nil {
				return err
			}
		}
	}
	t0 := time.Now()
	sums := g.sums
	// Every parameter's collective at once (one NCCL group), then each
	// parameter's ordered sum and division: per parameter, the same
	// operations in the same order as before.
	if cfg.Reduce == SumReduce {
		if err := cfg.DeviceComm.AllreduceSum(sums); err != nil {
			return fmt.Errorf("host: gradient all-reduce on the device: %w", err)
		}
	} else if err := cfg.DeviceComm.Allgather(g.gathered, sums); err != nil {
		return fmt.Errorf("host: gradient all-gather on the device: %w", err)
	}
	for i, p := range ps {
		sum, n := sums[i], p.Grad.Len()
		if cfg.Reduce == OrderedReduce {
			if err := be.Gather(n, g.gathered[i], g.rankViews[0], sum); err != nil {
				return err
			}
			for r := 1; r < len(g.rankViews); r++ {
				if err := be.Gather(n, g.gathered[i], g.rankViews[r], g.row[i]); err != nil {
					return err
				}
				if err := be.Accumulate(sum, g.row[i]); err != nil {
					return err
				}
			}
		}
		if err := be.GlobalAvgPoolBackward(1, n, g.div, sum, g.wide[i]); err != nil {
			return err
		}
		if err := be.Gather(1, g.wide[i], g.stride[i], p.Grad); err != nil {
			return err
		}
	}
	t.reduceTime += time.Since(t0)
	return m.Update(float32(lr), float32(cfg.Momentum), float32(cfg.WeightDecay))
}
