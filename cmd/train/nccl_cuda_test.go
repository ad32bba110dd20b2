//go:build cuda

package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/gpubackend"
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

// TestNCCLGradsMock runs the trainer's NCCL reduction (ncclGrads, made by
// newDeviceComm) through the cu adapter on the mock libcuda (device memory
// is host memory there) and the mock libnccl of host/dist/testdata (rank 0
// of 2: the other rank sends each value plus 1): a step's tensors go as
// one group, ncclGroupStart, every collective queued, one ncclGroupEnd,
// and come back with the bits of v + (v + 1) (all-reduce) or v, v + 1
// (all-gather).
func TestNCCLGradsMock(t *testing.T) {
	if os.Getenv("CONVTRAIN_MOCK_LIBCUDA") != "1" {
		t.Skip("needs the mock libcuda of gpu/testdata (scripts/ci-cuda.sh, check nccl-train, sets CONVTRAIN_MOCK_LIBCUDA=1)")
	}
	cc := "gcc"
	if out, err := exec.Command("go", "env", "CC").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		cc = strings.Fields(string(out))[0]
	}
	dir := t.TempDir()
	lib, log := filepath.Join(dir, "libnccl.so.2"), filepath.Join(dir, "calls.log")
	if out, err := exec.Command(cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", lib,
		filepath.Join("..", "..", "host", "dist", "testdata", "mocklibnccl.c")).CombinedOutput(); err != nil {
		t.Fatalf("building the mock libnccl: %v\n%s", err, out)
	}
	t.Setenv("CONVTRAIN_NCCL_LIB", lib)
	t.Setenv("MOCK_NCCL_LOG", log)
	t.Setenv("MOCK_NCCL_MODE", "ok")
	t.Setenv("CONVTRAIN_MOCK_NOOP_KERNELS", "1") // the whole module loads; no kernel runs here

	dev, err := gpu.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	be, err := gpubackend.NewGPUBackend(dev)
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	defer dev.Close()
	defer be.Close()
	dc, closer, err := newDeviceComm(distOptions{nccl: true}, worldOf(2), "gpu", dev)
	if err != nil || dc == nil {
		t.Fatalf("newDeviceComm(2 ranks, gpu) = %v, %v", dc, err)
	}
	defer func() {
		if err := closer(); err != nil {
			t.Errorf("closing the communicator: %v", err)
		}
	}()

	sizes := []int{3, 1, 70}
	vals := make([][]float32, len(sizes))
	src := make([]backend.Tensor, len(sizes))
	dst := make([]backend.Tensor, len(sizes))
	for i, n := range sizes {
		vals[i] = make([]float32, n)
		for j := range vals[i] {
			vals[i][j] = float32(math.Cos(float64(3*i+j))) * 777.7
		}
		if src[i], err = be.NewTensor(n); err != nil {
			t.Fatal(err)
		}
		if dst[i], err = be.NewTensor(2 * n); err != nil {
			t.Fatal(err)
		}
		if err := be.Upload(src[i], vals[i]); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, ts []backend.Tensor, want func(v []float32) []float32, logName, extra string) {
		t.Helper()
		for i, x := range ts {
			got := make([]float32, x.Len())
			if err := be.Download(got, x); err != nil {
				t.Fatal(err)
			}
			w := want(vals[i])
			for j := range w {
				if math.Float32bits(got[j]) != math.Float32bits(w[j]) {
					t.Fatalf("%s: tensor %d value %d = %g, want %g", what, i, j, got[j], w[j])
				}
			}
		}
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		ok := strings.HasPrefix(got, "ncclGroupStart depth=1\n") && strings.Count(got, "ncclGroupStart") == 1 &&
			strings.HasSuffix(got, "ncclGroupEnd depth=0 queued=3\n") && strings.Count(got, "ncclGroupEnd") == 1 &&
			strings.Count(got, " queued\n") == len(sizes)
		for _, n := range sizes {
			ok = ok && strings.Contains(got, fmt.Sprintf("%s%d datatype=7 %sstream=", logName, n, extra))
		}
		if !ok {
			t.Errorf("%s: log:\n%swant ncclGroupStart, the %d collectives queued, ncclGroupEnd", what, got, len(sizes))
		}
		os.Remove(log)
	}
	os.Remove(log) // the communicator's start
	if err := dc.Allgather(dst, src); err != nil {
		t.Fatalf("Allgather = %v", err)
	}
	check("all-gather", dst, func(v []float32) []float32 {
		out := append([]float32(nil), v...)
		for _, x := range v {
			out = append(out, x+1)
		}
		return out
	}, "ncclAllGather sendcount=", "")
	if err := dc.AllreduceSum(src); err != nil {
		t.Fatalf("AllreduceSum = %v", err)
	}
	check("all-reduce", src, func(v []float32) []float32 {
		out := make([]float32, len(v))
		for j, x := range v {
			out[j] = x + (x + 1)
		}
		return out
	}, "ncclAllReduce count=", "op=0 ")
	if err := dc.Allgather(dst[:1], src); err == nil {
		t.Errorf("Allgather of 3 tensors into 1: no error")
	}
}
