package main

import (
	"fmt"

	"github.com/convtrain/convtrain/host"
)

// devices lists the values -device accepts, in the order the usage shows.
var devices = []string{"cpu", "gpu", "sim"}

// newBackend returns the Backend that -device names, using threads CPU
// threads where the backend has a use for them. device is one of devices
// (checked when the flags are parsed).
func newBackend(device string, threads int) (host.Backend, error) {
	switch device {
	case "cpu":
		return host.NewCPUBackend(threads)
	case "gpu", "sim":
		return nil, fmt.Errorf("-device %s: the GPU backend is not wired into train yet; use -device cpu", device)
	}
	return nil, fmt.Errorf("-device %q: unknown device", device)
}
