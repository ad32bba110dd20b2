//go:build !cuda

package main

import (
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/train"
)

// ncclWorld is what the NCCL bootstrap needs of -dist's world.
type ncclWorld interface {
	Rank() int
	Size() int
	Bcast(buf []byte, root int) error
}

// newDeviceComm returns nil: without the cuda build there is no GPU and
// no NCCL, and -dist reduces through the host (MPI).
func newDeviceComm(o distOptions, world ncclWorld, device string, dev *gpu.Device) (train.DeviceComm, func() error, error) {
	return nil, nil, nil
}
