package main

import (
	"flag"

	"github.com/convtrain/convtrain/host/dist"
	"github.com/convtrain/convtrain/host/train"
)

// distOptions are the flags of gradient accumulation and data-parallel
// training.
type distOptions struct {
	accum  int
	dist   string // "" or "mpi"
	reduce string // "ordered" or "sum"
	syncBN bool
	nccl   bool
}

func (o *distOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&o.accum, "accum", 1, "split each step's batch into `N` micro-batches whose gradients are summed (per rank)")
	fs.StringVar(&o.dist, "dist", "", "data-parallel training: mpi (launch with mpirun or srun; the binary built with -tags mpi)")
	fs.StringVar(&o.reduce, "reduce", "ordered", "how -dist sums the ranks' gradients: ordered (the bits of one process with -accum P) or sum (the library's all-reduce)")
	fs.BoolVar(&o.nccl, "nccl", true, "with -dist and -device gpu: reduce the gradients with NCCL on the device (false: through the host, with MPI)")
	fs.BoolVar(&o.syncBN, "sync-bn", false, "with -dist: BatchNorm normalises with the statistics of the global batch, summed over the ranks (default: each rank's own)")
}

func (o *distOptions) check() error {
	switch {
	case o.accum < 1:
		return usagef("-accum %d: want ≥ 1", o.accum)
	case o.dist != "" && o.dist != "mpi":
		return usagef("-dist %q: want mpi (or nothing: one process)", o.dist)
	case o.reduce != "ordered" && o.reduce != "sum":
		return usagef("-reduce %q: want ordered or sum", o.reduce)
	}
	return nil
}

// world starts the data-parallel world of -dist: nil without it. The
// caller closes it.
func (o *distOptions) world() (*dist.MPI, error) {
	if o.dist == "" {
		return nil, nil
	}
	return dist.InitMPI()
}

// configure sets cfg's accumulation, world and reduction, and
// synchronised BatchNorm when -sync-bn is given (a resumed run keeps its
// checkpoint's otherwise: the hook copied it, and a contradiction was
// refused).
func (o *distOptions) configure(cfg *train.Config, w *dist.MPI) {
	cfg.SyncBN = cfg.SyncBN || o.syncBN
	cfg.Accum = o.accum
	cfg.Reduce = map[string]train.ReduceKind{"ordered": train.OrderedReduce, "sum": train.SumReduce}[o.reduce]
	if w != nil {
		cfg.Comm = w
	}
}
