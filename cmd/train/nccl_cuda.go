//go:build cuda

package main

import (
	"fmt"
	"os"
	"time"

	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/dist"
	"github.com/convtrain/convtrain/host/gpubackend"
	"github.com/convtrain/convtrain/host/train"
)

// ncclTimeout bounds every NCCL operation of a run: a peer that died or
// hangs makes the operation fail after it (the communicator aborted),
// never hang.
const ncclTimeout = 2 * time.Minute

// ncclGrads is train.DeviceComm over NCCL: a step's collectives, every
// parameter's, run on the device buffers of the GPU backend's tensors as
// one NCCL group enqueued on the device's stream, and are waited for once
// (bounded by ncclTimeout). The wait is what makes a dead peer an error:
// the kernels after the group would run in order without it, but the
// host's next read of the stream (a download, the end of the epoch)
// would block in the driver with no bound.
type ncclGrads struct {
	nc  *dist.NCCL
	dev *gpu.Device
}

// AllreduceSum sums each of ts over the ranks in place (ncclAllReduce),
// in one group.
func (g *ncclGrads) AllreduceSum(ts []backend.Tensor) error {
	ops := make([]dist.NCCLOp, len(ts))
	for i, t := range ts {
		b, err := gpubackend.Float32Buffer(t)
		if err != nil {
			return err
		}
		p := uintptr(b.Ptr())
		ops[i] = dist.NCCLOp{Collective: dist.NCCLAllreduceSum, Send: p, Recv: p, Count: b.Len()}
	}
	return g.run(ops)
}

// Allgather gathers every rank's src[i] into dst[i] (ncclAllGather), in
// one group.
func (g *ncclGrads) Allgather(dst, src []backend.Tensor) error {
	if len(dst) != len(src) {
		return fmt.Errorf("NCCL all-gather: %d tensors into %d", len(src), len(dst))
	}
	ops := make([]dist.NCCLOp, len(src))
	for i := range src {
		d, err := gpubackend.Float32Buffer(dst[i])
		if err != nil {
			return err
		}
		s, err := gpubackend.Float32Buffer(src[i])
		if err != nil {
			return err
		}
		if d.Len() != g.nc.Size()*s.Len() {
			return fmt.Errorf("NCCL all-gather of tensor %d: %d values for %d ranks of %d", i, d.Len(), g.nc.Size(), s.Len())
		}
		ops[i] = dist.NCCLOp{Collective: dist.NCCLAllgather, Send: uintptr(s.Ptr()), Recv: uintptr(d.Ptr()), Count: s.Len()}
	}
	return g.run(ops)
}

// run enqueues ops as one group on the device's stream and waits once for
// the stream.
func (g *ncclGrads) run(ops []dist.NCCLOp) error {
	return g.dev.OnStream(func(stream uintptr, done func() (bool, error)) error {
		if err := g.nc.Group(ops, stream); err != nil {
			return err
		}
		return g.nc.Wait(done)
	})
}

// ncclWorld is what the NCCL bootstrap needs of -dist's world.
type ncclWorld interface {
	Rank() int
	Size() int
	Bcast(buf []byte, root int) error
}

// newDeviceComm is the gradient reduction of -dist on -device gpu: NCCL on
// the device (the library from $CONVTRAIN_NCCL_LIB, else libnccl.so.2 on
// the loader's path), unless -nccl=false; nil (the host path, MPI) for
// one process, the CPU and the simulator. It returns the communicator's
// closer. A missing library is an error naming it.
func newDeviceComm(o distOptions, world ncclWorld, device string, dev *gpu.Device) (train.DeviceComm, func() error, error) {
	if world == nil || world.Size() < 2 || !o.nccl || device != "gpu" {
		return nil, nil, nil
	}
	lib, err := dist.OpenNCCL(os.Getenv("CONVTRAIN_NCCL_LIB"))
	if err != nil {
		return nil, nil, fmt.Errorf("-dist mpi -device gpu reduces the gradients with NCCL (-nccl=false reduces them through the host with MPI): %w", err)
	}
	if dev == nil {
		return nil, nil, fmt.Errorf("-dist mpi -device gpu: no GPU device for NCCL")
	}
	var nc *dist.NCCL
	err = dev.OnStream(func(uintptr, func() (bool, error)) error {
		var err error
		nc, err = dist.InitNCCL(world, lib, ncclTimeout)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("-dist mpi -device gpu: %w", err)
	}
	closer := func() error {
		return dev.OnStream(func(uintptr, func() (bool, error)) error { return nc.Close() })
	}
	return &ncclGrads{nc: nc, dev: dev}, closer, nil
}
