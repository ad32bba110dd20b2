//go:build mpi

package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/ckpt"
)

// TestDistMatchesAccum trains under mpirun with -dist mpi on P ranks (this
// test binary re-executed as train) and in one process with -accum P, and
// requires the two checkpoints' weights and optimiser state to be equal
// bit for bit: P = 2 with the library's all-reduce (exact for two ranks)
// and the ordered one, P = 3 with the ordered one. The world is time-bound
// (a hang fails the test after two minutes).
func TestDistMatchesAccum(t *testing.T) {
	path, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("needs mpirun on PATH (Debian: apt-get install openmpi-bin libopenmpi-dev)")
	}
	dir := syntheticDir(t)
	for _, tc := range []struct {
		np     int
		reduce string
	}{{2, "sum"}, {2, "ordered"}, {3, "ordered"}} {
		t.Run(fmt.Sprintf("np=%d,reduce=%s", tc.np, tc.reduce), func(t *testing.T) {
			tmp := t.TempDir()
			batch := strconv.Itoa(8 * tc.np)
			single, multi := filepath.Join(tmp, "accum.safetensors"), filepath.Join(tmp, "dist.safetensors")
			var stdout, stderr bytes.Buffer
			if err := run(tinyArgs(dir, "-batch", batch, "-accum", strconv.Itoa(tc.np), "-save", single), &stdout, &stderr); err != nil {
				t.Fatalf("-accum %d: %v\n%s", tc.np, err, stderr.String())
			}
			mpiRun(t, path, tc.np, tinyArgs(dir, "-batch", batch, "-dist", "mpi", "-reduce", tc.reduce, "-save", multi))
			a, err := ckpt.LoadCheckpoint(single)
			backendtest.MustNil(t, err)
			b, err := ckpt.LoadCheckpoint(multi)
			backendtest.MustNil(t, err)
			if len(a.Params) != len(b.Params) || len(a.Optim) != len(b.Optim) {
				t.Fatalf("%d+%d tensors, want %d+%d", len(b.Params), len(b.Optim), len(a.Params), len(a.Optim))
			}
			for i := range a.Params {
				backendtest.EqualBits(t, b.Params[i].Name, b.Params[i].F32, a.Params[i].F32)
			}
			for i := range a.Optim {
				backendtest.EqualBits(t, b.Optim[i].Name, b.Optim[i].F32, a.Optim[i].F32)
			}
		})
	}
}

// mpiRun runs this test binary as train under mpirun on np ranks with
// args, time-bound (a hang fails the test after two minutes).
func mpiRun(t *testing.T, path string, np int, args []string) {
	t.Helper()
	version, _ := exec.Command(path, "--version").CombinedOutput()
	margs := []string{"-np", strconv.Itoa(np)}
	if bytes.Contains(version, []byte("Open MPI")) {
		margs = append(margs, "--allow-run-as-root", "--oversubscribe", "-x", childEnv)
	}
	margs = append(margs, os.Args[0])
	margs = append(margs, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, margs...)
	cmd.Env = append(os.Environ(), childEnv+"=1", "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun -np %d: %v\n%s", np, err, out)
	}
}

// TestDistSyncBN trains a network with BatchNorm under mpirun -np 2 with
// -dist mpi -sync-bn and in one process on the whole global batch without
// accumulation, and requires the weights and running statistics to be
// within host/train TestSyncBatchNorm's tolerance (the ranks add their
// BatchNorm and gradient sums in rank order, one process over the whole
// batch: not bit for bit), and the checkpoint to record -sync-bn.
func TestDistSyncBN(t *testing.T) {
	path, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("needs mpirun on PATH (Debian: apt-get install openmpi-bin libopenmpi-dev)")
	}
	dir := syntheticDir(t)
	tmp := t.TempDir()
	single, multi := filepath.Join(tmp, "one.safetensors"), filepath.Join(tmp, "sync.safetensors")
	args := func(more ...string) []string {
		return append(tinyArgs(dir, "-model", "conv4x5x5s2,bn,relu,maxpool2,dense10"), more...)
	}
	var stdout, stderr bytes.Buffer
	if err := run(args("-save", single), &stdout, &stderr); err != nil {
		t.Fatalf("one process: %v\n%s", err, stderr.String())
	}
	mpiRun(t, path, 2, args("-dist", "mpi", "-sync-bn", "-save", multi))
	a, err := ckpt.LoadCheckpoint(single)
	backendtest.MustNil(t, err)
	b, err := ckpt.LoadCheckpoint(multi)
	backendtest.MustNil(t, err)
	if !b.Config.SyncBN || a.Config.SyncBN {
		t.Errorf("checkpoints record SyncBN %v (-sync-bn) and %v (one process), want true and false", b.Config.SyncBN, a.Config.SyncBN)
	}
	if len(a.Params) != len(b.Params) {
		t.Fatalf("%d tensors, want %d", len(b.Params), len(a.Params))
	}
	for i := range a.Params {
		got, want := b.Params[i].F32, a.Params[i].F32
		for j := range want {
			if d := math.Abs(float64(got[j]-want[j])) / (1e-3 + math.Abs(float64(want[j]))); d > 2e-4 {
				t.Errorf("%s[%d] = %g with -sync-bn on 2 ranks, %g in one process (relative distance %.3g > 2e-4)", a.Params[i].Name, j, got[j], want[j], d)
				break
			}
		}
	}
}
