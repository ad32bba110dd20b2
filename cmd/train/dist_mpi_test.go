//go:build mpi

package main

import (
	"bytes"
	"context"
	"fmt"
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
			version, _ := exec.Command(path, "--version").CombinedOutput()
			args := []string{"-np", strconv.Itoa(tc.np)}
			if bytes.Contains(version, []byte("Open MPI")) {
				args = append(args, "--allow-run-as-root", "--oversubscribe", "-x", childEnv)
			}
			args = append(args, os.Args[0])
			args = append(args, tinyArgs(dir, "-batch", batch, "-dist", "mpi", "-reduce", tc.reduce, "-save", multi)...)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, path, args...)
			cmd.Env = append(os.Environ(), childEnv+"=1", "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = 15 * time.Second
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("mpirun -np %d: %v\n%s", tc.np, err, out)
			}
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
