//go:build cuda

package dist

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// ncclLibEnv names a real libnccl.so.2 for TestNCCLRealLibrary
// (scripts/ci-cuda.sh: the pinned nvidia-nccl-cu13 wheel's).
const ncclLibEnv = "CONVTRAIN_NCCL_LIB"

// buildMockNCCL compiles testdata/mocklibnccl.c into a temporary
// libnccl.so.2 with the extra compiler flags and returns its path; the
// test's calls log to the returned log file, in the given mode.
func buildMockNCCL(t *testing.T, mode string, flags ...string) (lib, log string) {
	t.Helper()
	cc := "gcc"
	if out, err := exec.Command("go", "env", "CC").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		cc = strings.Fields(string(out))[0]
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("needs a C compiler (%s) to build the mock libnccl: %v", cc, err)
	}
	dir := t.TempDir()
	lib = filepath.Join(dir, "libnccl.so.2")
	args := append([]string{"-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", lib}, flags...)
	args = append(args, filepath.Join("testdata", "mocklibnccl.c"))
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
	}
	log = filepath.Join(dir, "calls.log")
	t.Setenv("MOCK_NCCL_LOG", log)
	t.Setenv("MOCK_NCCL_MODE", mode)
	return lib, log
}

// readLog returns the mock's call log.
func readLog(t *testing.T, log string) string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenNCCLMissing(t *testing.T) {
	for _, path := range []string{filepath.Join(t.TempDir(), "libnccl.so.2"), "libconvtrain-no-such-nccl.so.2"} {
		t.Run("path="+filepath.Base(path), func(t *testing.T) {
			lib, err := OpenNCCL(path)
			if lib != nil || err == nil {
				t.Fatalf("OpenNCCL(%q) = %v, %v, want an error", path, lib, err)
			}
			for _, want := range []string{"open NCCL", filepath.Base(path), "LD_LIBRARY_PATH", "nvidia-nccl-cu13"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("OpenNCCL(%q) error %q lacks %q", path, err, want)
				}
			}
		})
	}
}

func TestOpenNCCLBadLibrary(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		flags      []string
		want       []string
	}{
		{"missing-symbol", "ok", []string{"-DMOCK_NCCL_OMIT_ALLREDUCE"}, []string{"no symbol ncclAllReduce"}},
		{"old", "old", nil, []string{"NCCL 2.13.0", "2.14 or later"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := buildMockNCCL(t, tc.mode, tc.flags...)
			lib, err := OpenNCCL(path)
			if lib != nil || err == nil {
				t.Fatalf("OpenNCCL = %v, %v, want an error", lib, err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("OpenNCCL error %q lacks %q", err, want)
				}
			}
		})
	}
}

// fakeWorld is rank `rank` of a world of `size`; its Bcast records what
// it was given and, on a rank other than the root, fills the buffer with
// `from` (what the root would have sent).
type fakeWorld struct {
	rank, size int
	from       []byte
	sent       []byte
	err        error
}

func (w *fakeWorld) Rank() int { return w.rank }
func (w *fakeWorld) Size() int { return w.size }
func (w *fakeWorld) Bcast(buf []byte, root int) error {
	if w.err != nil {
		return w.err
	}
	if w.rank == root {
		w.sent = append([]byte(nil), buf...)
	} else {
		copy(buf, w.from)
	}
	return nil
}

// mockIDSum is the mock's checksum (as it logs it) of the id bytes.
func mockIDSum(id []byte) string {
	var sum uint32
	for _, b := range id {
		sum = sum*31 + uint32(b)
	}
	return fmt.Sprintf("id=%08x", sum)
}

func TestNCCLMock(t *testing.T) {
	path, log := buildMockNCCL(t, "ok")
	lib, err := OpenNCCL(path)
	if err != nil {
		t.Fatal(err)
	}
	if lib.Version() != 22707 || !strings.Contains(lib.String(), "NCCL 2.27.7") {
		t.Errorf("Version, String = %d, %q, want 22707 and NCCL 2.27.7", lib.Version(), lib)
	}
	var mockID [128]byte
	for i := range mockID {
		mockID[i] = byte(i*7 + 3)
	}

	// One rank: the id goes from ncclGetUniqueId into the configuration call.
	c, err := InitNCCL(Local{}, lib, 5*time.Second)
	if err != nil {
		t.Fatalf("InitNCCL(Local) = %v", err)
	}
	if c.Rank() != 0 || c.Size() != 1 {
		t.Errorf("Rank, Size = %d, %d, want 0, 1", c.Rank(), c.Size())
	}
	want := "ncclCommInitRankConfig nranks=1 rank=0 size=24 magic=0xcafebeef version=21400 blocking=0 " + mockIDSum(mockID[:])
	if got := readLog(t, log); !strings.Contains(got, "ncclGetUniqueId\n"+want+"\n") {
		t.Errorf("log:\n%swant ncclGetUniqueId then %q", got, want)
	}

	// ncclAllReduce's arguments: the mock copies send into recv (host memory).
	send := []float32{1.5, -2, 3, 4.25, 5}
	recv := make([]float32, len(send))
	err = c.AllreduceSum(uintptr(unsafe.Pointer(&send[0])), uintptr(unsafe.Pointer(&recv[0])), len(send), 0x1234)
	runtime.KeepAlive(send)
	runtime.KeepAlive(recv)
	if err != nil {
		t.Fatalf("AllreduceSum = %v", err)
	}
	for i := range send {
		if recv[i] != send[i] {
			t.Fatalf("recv[%d] = %g, want %g", i, recv[i], send[i])
		}
	}
	if got := readLog(t, log); !strings.Contains(got, "ncclAllReduce count=5 datatype=7 op=0 stream=0x1234 rank=0\n") {
		t.Errorf("log:\n%swant ncclAllReduce count=5 datatype=7 (ncclFloat32) op=0 (ncclSum) stream=0x1234", got)
	}
	// ncclAllGather's arguments: one rank, so the mock copies send into recv.
	gathered := make([]float32, len(send))
	err = c.Allgather(uintptr(unsafe.Pointer(&send[0])), uintptr(unsafe.Pointer(&gathered[0])), len(send), 0x5678)
	runtime.KeepAlive(send)
	runtime.KeepAlive(gathered)
	if err != nil {
		t.Fatalf("Allgather = %v", err)
	}
	for i := range send {
		if gathered[i] != send[i] {
			t.Fatalf("gathered[%d] = %g, want %g", i, gathered[i], send[i])
		}
	}
	if got := readLog(t, log); !strings.Contains(got, "ncclAllGather sendcount=5 datatype=7 stream=0x5678 rank=0\n") {
		t.Errorf("log:\n%swant ncclAllGather sendcount=5 datatype=7 (ncclFloat32) stream=0x5678", got)
	}
	if err := c.Allgather(0, 0, -1, 0); err == nil {
		t.Errorf("Allgather of -1 values: no error")
	}
	polls := 0
	if err := c.Wait(func() (bool, error) { polls++; return polls == 3, nil }); err != nil || polls != 3 {
		t.Errorf("Wait = %v after %d polls of done, want nil after 3", err, polls)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := readLog(t, log); !strings.HasSuffix(got, "ncclCommDestroy rank=0\n") {
		t.Errorf("log:\n%swant ncclCommDestroy last", got)
	}
	if err := c.AllreduceSum(0, 0, 1, 0); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("AllreduceSum after Close = %v, want an error", err)
	}
	if err := c.Allgather(0, 0, 1, 0); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("Allgather after Close = %v, want an error", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}

	// Rank 1 of 2 joins with the id that rank 0 broadcast.
	other := append([]byte{1}, bytes.Repeat([]byte{0xab}, 128)...)
	c1, err := InitNCCL(&fakeWorld{rank: 1, size: 2, from: other}, lib, 5*time.Second)
	if err != nil {
		t.Fatalf("InitNCCL(rank 1 of 2) = %v", err)
	}
	want = "ncclCommInitRankConfig nranks=2 rank=1 size=24 magic=0xcafebeef version=21400 blocking=0 " + mockIDSum(other[1:])
	if got := readLog(t, log); !strings.Contains(got, want+"\n") {
		t.Errorf("log:\n%swant %q", got, want)
	}
	c1.Close()
	// Rank 0 of 2 broadcasts the flag 1 and its id.
	w0 := &fakeWorld{rank: 0, size: 2}
	c0, err := InitNCCL(w0, lib, 5*time.Second)
	if err != nil {
		t.Fatalf("InitNCCL(rank 0 of 2) = %v", err)
	}
	c0.Close()
	if sent := append([]byte{1}, mockID[:]...); !bytes.Equal(w0.sent, sent) {
		t.Errorf("rank 0 broadcast %x, want %x", w0.sent, sent)
	}
}

// TestNCCLFailures: every failure is an error naming the call, and a
// communicator that fails or makes no progress is aborted, within its
// timeout.
func TestNCCLFailures(t *testing.T) {
	t.Run("mode=hang", func(t *testing.T) {
		path, log := buildMockNCCL(t, "hang")
		lib, err := OpenNCCL(path)
		if err != nil {
			t.Fatal(err)
		}
		const timeout = 200 * time.Millisecond
		start := time.Now()
		c, err := lib.InitRank(NCCLID{}, 2, 0, timeout)
		took := time.Since(start)
		if c != nil || err == nil || !strings.Contains(err.Error(), "no progress within 200ms") || !strings.Contains(err.Error(), "aborted") {
			t.Fatalf("InitRank = %v, %v, want an error saying no progress within 200ms, aborted", c, err)
		}
		if took < timeout || took > timeout+2*time.Second {
			t.Errorf("InitRank failed after %v, want just past the timeout %v", took, timeout)
		}
		if got := readLog(t, log); !strings.Contains(got, "ncclCommAbort rank=0") {
			t.Errorf("log:\n%swant ncclCommAbort", got)
		}
		t.Logf("a peer that never joins: %v after %v", err, took.Round(time.Millisecond))
	})
	t.Run("mode=remote", func(t *testing.T) {
		path, log := buildMockNCCL(t, "remote")
		lib, err := OpenNCCL(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := lib.InitRank(NCCLID{}, 2, 1, 5*time.Second)
		if c != nil || err == nil || !strings.Contains(err.Error(), "mock: remote process exited") || !strings.Contains(err.Error(), "NCCL result 6") {
			t.Fatalf("InitRank = %v, %v, want the remote error (6) with NCCL's message", c, err)
		}
		if got := readLog(t, log); !strings.Contains(got, "ncclCommAbort rank=1") {
			t.Errorf("log:\n%swant ncclCommAbort", got)
		}
	})
	t.Run("mode=dies", func(t *testing.T) {
		path, log := buildMockNCCL(t, "dies")
		lib, err := OpenNCCL(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := lib.InitRank(NCCLID{}, 1, 0, 5*time.Second)
		if err != nil {
			t.Fatalf("InitRank = %v", err)
		}
		// The stream never finishes: the peer's death, seen in the
		// communicator's state, ends the wait.
		err = c.Wait(func() (bool, error) { return false, nil })
		if err == nil || !strings.Contains(err.Error(), "a peer may have died") || !strings.Contains(err.Error(), "aborted") {
			t.Fatalf("Wait = %v, want the remote error, aborted", err)
		}
		if got := readLog(t, log); !strings.Contains(got, "ncclCommAbort rank=0") {
			t.Errorf("log:\n%swant ncclCommAbort", got)
		}
		if err := c.Wait(func() (bool, error) { return true, nil }); err == nil || !strings.Contains(err.Error(), "after Close or an abort") {
			t.Errorf("Wait after an abort = %v, want an error", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close after an abort = %v, want nil", err)
		}
	})
	t.Run("mode=wait-error", func(t *testing.T) {
		path, log := buildMockNCCL(t, "ok")
		lib, err := OpenNCCL(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := lib.InitRank(NCCLID{}, 1, 0, 5*time.Second)
		if err != nil {
			t.Fatalf("InitRank = %v", err)
		}
		streamErr := errors.New("cuStreamQuery: an illegal memory access")
		if err := c.Wait(func() (bool, error) { return false, streamErr }); !errors.Is(err, streamErr) || !strings.Contains(err.Error(), "aborted") {
			t.Fatalf("Wait = %v, want the stream's error, aborted", err)
		}
		if got := readLog(t, log); !strings.Contains(got, "ncclCommAbort rank=0") {
			t.Errorf("log:\n%swant ncclCommAbort", got)
		}
	})
	t.Run("mode=fail-uid", func(t *testing.T) {
		path, _ := buildMockNCCL(t, "fail-uid")
		lib, err := OpenNCCL(path)
		if err != nil {
			t.Fatal(err)
		}
		w0 := &fakeWorld{rank: 0, size: 2}
		if _, err := InitNCCL(w0, lib, time.Second); err == nil || !strings.Contains(err.Error(), "ncclGetUniqueId: mock: unhandled system error") {
			t.Errorf("InitNCCL on rank 0 = %v, want ncclGetUniqueId's error", err)
		}
		if len(w0.sent) != 129 || w0.sent[0] != 0 {
			t.Errorf("rank 0 broadcast %x, want the failure flag 0 first (so the others do not wait)", w0.sent)
		}
		w1 := &fakeWorld{rank: 1, size: 2, from: make([]byte, 129)}
		if _, err := InitNCCL(w1, lib, time.Second); err == nil || !strings.Contains(err.Error(), "rank 0 could not make the NCCL id") {
			t.Errorf("InitNCCL on rank 1 = %v, want an error saying rank 0 failed", err)
		}
		wErr := &fakeWorld{rank: 1, size: 2, err: errors.New("MPI_Bcast: peer gone")}
		if _, err := InitNCCL(wErr, lib, time.Second); err == nil || !strings.Contains(err.Error(), "MPI_Bcast: peer gone") {
			t.Errorf("InitNCCL with a failing broadcast = %v, want its error", err)
		}
	})
	t.Run("args", func(t *testing.T) {
		path, _ := buildMockNCCL(t, "ok")
		lib, err := OpenNCCL(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			size, rank int
			timeout    time.Duration
			want       string
		}{
			{2, 2, time.Second, "rank 2 of 2"},
			{2, -1, time.Second, "rank -1 of 2"},
			{0, 0, time.Second, "rank 0 of 0"},
			{1, 0, 0, "timeout 0s"},
		} {
			if _, err := lib.InitRank(NCCLID{}, tc.size, tc.rank, tc.timeout); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("InitRank(size %d, rank %d, timeout %v) = %v, want an error containing %q", tc.size, tc.rank, tc.timeout, err, tc.want)
			}
		}
	})
}

// TestNCCLRealLibrary opens a real libnccl.so.2 (no GPU needed): every
// function resolves and the version is one the binding accepts.
func TestNCCLRealLibrary(t *testing.T) {
	path := os.Getenv(ncclLibEnv)
	if path == "" {
		t.Skipf("needs %s=/path/to/libnccl.so.2 (scripts/ci-cuda.sh sets it to the pinned nvidia-nccl-cu13 wheel's)", ncclLibEnv)
	}
	lib, err := OpenNCCL(path)
	if err != nil {
		t.Fatalf("OpenNCCL(%s) = %v", path, err)
	}
	if lib.Version() < ncclMinVersion {
		t.Fatalf("Version = %d, want at least %d", lib.Version(), ncclMinVersion)
	}
	t.Logf("opened %v", lib)
	id, err := lib.UniqueID()
	if err != nil {
		t.Fatalf("UniqueID = %v", err)
	}
	if id == (NCCLID{}) {
		t.Fatal("UniqueID returned all zeros")
	}
	// Without a GPU NCCL refuses at once ("unhandled cuda error"); with
	// one, a communicator of one rank forms. Either way, no hang.
	const timeout = 20 * time.Second
	start := time.Now()
	c, err := InitNCCL(Local{}, lib, timeout)
	took := time.Since(start)
	switch {
	case err == nil:
		if err := c.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
		t.Logf("a communicator of one rank formed in %v", took.Round(time.Millisecond))
	case !strings.Contains(err.Error(), "ncclCommInitRankConfig"):
		t.Fatalf("InitNCCL(Local) = %v, want success or an error naming ncclCommInitRankConfig", err)
	default:
		t.Logf("InitNCCL(Local) without a usable GPU, after %v: %v", took.Round(time.Millisecond), err)
	}
	if took > timeout+5*time.Second {
		t.Errorf("InitNCCL(Local) took %v, past its timeout %v", took, timeout)
	}
}

// mockRanks is what the mock libnccl does for rank `rank` of `size`:
// rank q sends v + (q − rank) for this rank's v, the all-reduce adds the
// ranks' values in rank order in float32 and the all-gather puts rank q's
// at q·len(v).
func mockRanks(v []float32, rank, size int) (sum, gathered []float32) {
	sum = make([]float32, len(v))
	gathered = make([]float32, size*len(v))
	for i, x := range v {
		s := x + float32(0-rank)
		for q := 1; q < size; q++ {
			s += x + float32(q-rank)
		}
		sum[i] = s
		for q := range size {
			gathered[q*len(v)+i] = x + float32(q-rank)
		}
	}
	return sum, gathered
}

// addr is the address of v's first value (nil for none); the caller keeps
// v alive across the call.
func addr(v []float32) uintptr {
	if len(v) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&v[0]))
}

// TestNCCLGroupMock enqueues a step's collectives as one group on the mock
// (rank 1 of 3): every buffer gets the bits of the same collectives issued
// one by one (the path before groups) and of the mock's ranks computed
// here; the log shows one ncclGroupStart, the collectives queued, one
// ncclGroupEnd; the group's ncclInProgress is polled to success before the
// next call (the mock refuses a collective on a communicator in progress);
// more than ncclMaxGroupOps operations make several groups, in order.
func TestNCCLGroupMock(t *testing.T) {
	path, log := buildMockNCCL(t, "ok")
	lib, err := OpenNCCL(path)
	if err != nil {
		t.Fatal(err)
	}
	const rank, size = 1, 3
	c, err := lib.InitRank(NCCLID{}, size, rank, 5*time.Second)
	if err != nil {
		t.Fatalf("InitRank = %v", err)
	}
	defer c.Close()
	// The gradients of a step: sizes 1, 0, 5 and 300, values with many
	// significant bits so that the order of the additions shows.
	var grads [][]float32
	for k, n := range []int{1, 0, 5, 300} {
		g := make([]float32, n)
		for i := range g {
			g[i] = float32(math.Sin(float64(7*k+i+1))) * 1.37e3
		}
		grads = append(grads, g)
	}
	clone := func() [][]float32 {
		out := make([][]float32, len(grads))
		for i, g := range grads {
			out[i] = append([]float32(nil), g...)
		}
		return out
	}

	for _, coll := range []NCCLCollective{NCCLAllreduceSum, NCCLAllgather} {
		t.Run(coll.String(), func(t *testing.T) {
			// One by one, as before groups.
			single, singleOut := clone(), make([][]float32, len(grads))
			for i, g := range single {
				var err error
				if coll == NCCLAllreduceSum {
					singleOut[i] = g // in place
					err = c.AllreduceSum(addr(g), addr(g), len(g), 0x77)
				} else {
					singleOut[i] = make([]float32, size*len(g))
					err = c.Allgather(addr(g), addr(singleOut[i]), len(g), 0x77)
				}
				if err != nil {
					t.Fatalf("%v %d one by one = %v", coll, i, err)
				}
			}
			runtime.KeepAlive(single)
			os.Remove(log)
			// One group.
			grouped, groupedOut := clone(), make([][]float32, len(grads))
			var ops []NCCLOp
			for i, g := range grouped {
				groupedOut[i] = g
				if coll == NCCLAllgather {
					groupedOut[i] = make([]float32, size*len(g))
				}
				ops = append(ops, NCCLOp{Collective: coll, Send: addr(g), Recv: addr(groupedOut[i]), Count: len(g)})
			}
			if err := c.Group(ops, 0x77); err != nil {
				t.Fatalf("Group = %v", err)
			}
			runtime.KeepAlive(grouped)
			runtime.KeepAlive(groupedOut)
			for i, g := range grads {
				sum, gathered := mockRanks(g, rank, size)
				want := sum
				if coll == NCCLAllgather {
					want = gathered
				}
				for j := range want {
					if math.Float32bits(groupedOut[i][j]) != math.Float32bits(singleOut[i][j]) {
						t.Fatalf("buffer %d value %d: grouped %g, one by one %g: want the same bits", i, j, groupedOut[i][j], singleOut[i][j])
					}
					if math.Float32bits(groupedOut[i][j]) != math.Float32bits(want[j]) {
						t.Fatalf("buffer %d value %d: grouped %g, want %g (the mock's ranks in rank order)", i, j, groupedOut[i][j], want[j])
					}
				}
			}
			got := readLog(t, log)
			name := map[NCCLCollective]string{NCCLAllreduceSum: "ncclAllReduce count=", NCCLAllgather: "ncclAllGather sendcount="}[coll]
			var want strings.Builder
			want.WriteString("ncclGroupStart depth=1\n")
			for _, g := range grads {
				fmt.Fprintf(&want, "%s%d datatype=7 %sstream=0x77 rank=1 queued\n", name, len(g), map[bool]string{true: "op=0 ", false: ""}[coll == NCCLAllreduceSum])
			}
			want.WriteString("ncclGroupEnd depth=0 queued=4\n")
			if got != want.String() {
				t.Errorf("log:\n%swant:\n%s", got, want.String())
			}
		})
	}

	// The group's ncclInProgress was polled away: a collective right after
	// it is accepted (the mock refuses one on a communicator in progress).
	v := []float32{2}
	if err := c.AllreduceSum(addr(v), addr(v), 1, 0); err != nil {
		t.Fatalf("AllreduceSum after Group = %v", err)
	}
	runtime.KeepAlive(v)

	// More operations than one group takes: two groups, in order.
	os.Remove(log)
	n := ncclMaxGroupOps + 1
	vals := make([]float32, n)
	ops := make([]NCCLOp, n)
	for i := range ops {
		vals[i] = float32(i)
		ops[i] = NCCLOp{Collective: NCCLAllreduceSum, Send: addr(vals[i : i+1]), Recv: addr(vals[i : i+1]), Count: 1}
	}
	if err := c.Group(ops, 0); err != nil {
		t.Fatalf("Group of %d = %v", n, err)
	}
	runtime.KeepAlive(vals)
	for i, x := range vals {
		if want, _ := mockRanks([]float32{float32(i)}, rank, size); x != want[0] {
			t.Fatalf("value %d of %d = %g, want %g", i, n, x, want[0])
		}
	}
	got := readLog(t, log)
	if ends := strings.Count(got, "ncclGroupEnd"); ends != 2 ||
		!strings.Contains(got, fmt.Sprintf("ncclGroupEnd depth=0 queued=%d\n", ncclMaxGroupOps)) ||
		!strings.HasSuffix(got, "ncclGroupEnd depth=0 queued=1\n") {
		t.Errorf("a group of %d: %d ncclGroupEnd, log ends %q; want 2, of %d then 1", n, ends, got[max(0, len(got)-200):], ncclMaxGroupOps)
	}

	// Invalid operations: refused before the group starts; the
	// communicator lives on.
	os.Remove(log)
	for _, op := range []NCCLOp{{Collective: NCCLAllreduceSum, Count: -1}, {Collective: 7, Count: 1}} {
		if err := c.Group([]NCCLOp{{Collective: NCCLAllgather}, op}, 0); err == nil || !strings.Contains(err.Error(), "operation 1") {
			t.Errorf("Group with %+v = %v, want an error naming operation 1", op, err)
		}
	}
	if got := readLog(t, log); got != "" {
		t.Errorf("log after invalid groups:\n%swant nothing called", got)
	}
	if err := c.Group(nil, 0); err != nil {
		t.Errorf("Group(nil) = %v", err)
	}
}

// TestNCCLGroupFailures: a collective refused inside a group, a failing
// ncclGroupEnd, a peer that dies or never arrives during a group, and a
// stream that never completes are each an error naming what failed, with
// the communicator aborted, within its timeout; the thread's group is
// always closed (ncclGroupEnd at depth 0).
func TestNCCLGroupFailures(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, tc := range []struct {
		mode string
		want []string
		wait bool // the failure shows in Wait, after the group
	}{
		{"op-fail", []string{"ncclAllGather (operation 2 of 3 in a group, 5 float32, rank 0 of 2)", "mock: invalid argument", "aborted"}, false},
		{"end-fail", []string{"ncclGroupEnd (3 collectives, rank 0 of 2)", "mock: unhandled system error", "aborted"}, false},
		{"group-dies", []string{"ncclGroupEnd (3 collectives) on rank 0 of 2 (a peer may have died)", "mock: remote process exited", "aborted"}, false},
		{"group-hang", []string{"ncclGroupEnd (3 collectives) on rank 0 of 2: no progress within 200ms", "aborted"}, false},
		{"ok", []string{"NCCL wait on rank 0 of 2: no progress within 200ms", "aborted"}, true},
	} {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			path, log := buildMockNCCL(t, tc.mode)
			lib, err := OpenNCCL(path)
			if err != nil {
				t.Fatal(err)
			}
			c, err := lib.InitRank(NCCLID{}, 2, 0, timeout)
			if err != nil {
				t.Fatalf("InitRank = %v", err)
			}
			a, b := make([]float32, 5), make([]float32, 10)
			ops := []NCCLOp{
				{Collective: NCCLAllreduceSum, Send: addr(a), Recv: addr(a), Count: 5},
				{Collective: NCCLAllgather, Send: addr(a), Recv: addr(b), Count: 5},
				{Collective: NCCLAllreduceSum, Send: addr(b), Recv: addr(b), Count: 10},
			}
			start := time.Now()
			err = c.Group(ops, 0)
			if tc.wait {
				if err != nil {
					t.Fatalf("Group = %v", err)
				}
				err = c.Wait(func() (bool, error) { return false, nil }) // a stream that never finishes
			}
			took := time.Since(start)
			runtime.KeepAlive(a)
			runtime.KeepAlive(b)
			if err == nil {
				t.Fatalf("no error, want one saying %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if took > timeout+2*time.Second {
				t.Errorf("failed after %v, want within the timeout %v (and a little)", took, timeout)
			}
			got := readLog(t, log)
			lines := strings.Split(strings.TrimSpace(got), "\n")
			if !strings.Contains(got, "ncclGroupEnd depth=0") || !strings.HasPrefix(lines[len(lines)-1], "ncclCommAbort rank=0") {
				t.Errorf("log:\n%swant the group closed (ncclGroupEnd depth=0), then ncclCommAbort last", got)
			}
			if err := c.Group(ops, 0); err == nil || !strings.Contains(err.Error(), "after Close or an abort") {
				t.Errorf("Group after the abort = %v, want an error", err)
			}
			t.Logf("%s: %v after %v", tc.mode, err, took.Round(time.Millisecond))
		})
	}
}
