//go:build cuda

package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// worldOf is an ncclWorld of size ranks seen from rank 0 (its Bcast is
// never reached by these tests).
type worldOf int

func (w worldOf) Rank() int                        { return 0 }
func (w worldOf) Size() int                        { return int(w) }
func (w worldOf) Bcast(buf []byte, root int) error { return nil }

// TestNCCLDeviceCommChoice checks which reduction -dist gets in the cuda
// build: none (the host path, MPI) for one rank, -nccl=false, the CPU and
// the simulator, without opening any NCCL library (the one named does not
// exist); NCCL for -device gpu on several ranks, where a missing library
// is an error that names it and says how to do without.
func TestNCCLDeviceCommChoice(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "libnccl.so.2")
	t.Setenv("CONVTRAIN_NCCL_LIB", missing)
	for _, tc := range []struct {
		name   string
		nccl   bool
		world  ncclWorld
		device string
	}{
		{"one-rank", true, worldOf(1), "gpu"},
		{"nccl=false", false, worldOf(2), "gpu"},
		{"device=cpu", true, worldOf(2), "cpu"},
		{"device=sim", true, worldOf(2), "sim"},
	} {
		dc, closer, err := newDeviceComm(distOptions{nccl: tc.nccl}, tc.world, tc.device, nil)
		if dc != nil || closer != nil || err != nil {
			t.Errorf("%s: newDeviceComm = %v, %v, %v; want the host path (nil) and no error", tc.name, dc, closer != nil, err)
		}
	}
	_, _, err := newDeviceComm(distOptions{nccl: true}, worldOf(2), "gpu", nil)
	if err == nil {
		t.Fatalf("-device gpu on 2 ranks without NCCL: no error")
	}
	for _, want := range []string{missing, "reduces the gradients with NCCL", "-nccl=false", "LD_LIBRARY_PATH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q, want it to say %q", err, want)
		}
	}
}
