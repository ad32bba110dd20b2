//go:build mpi

package dist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The MPI tests re-execute this test binary under mpirun; the environment
// variable workerEnv selects what each rank does (TestMain), npEnv the
// size it must see.
const (
	workerEnv   = "CONVTRAIN_DIST_WORKER"
	npEnv       = "CONVTRAIN_DIST_NP"
	benchLenEnv = "CONVTRAIN_DIST_BENCH_N"
)

// deadPeerBound is the time within which a job whose rank dies (SIGKILL,
// exit without MPI_Finalize, MPI_Abort) while the others wait in a
// collective must end with a non-zero status, the bound stated in doc.go.
const deadPeerBound = 30 * time.Second

func TestMain(m *testing.M) {
	if mode := os.Getenv(workerEnv); mode != "" {
		os.Exit(worker(mode))
	}
	os.Exit(m.Run())
}

// worker is one rank of a test job; its exit status is the job's verdict.
func worker(mode string) int {
	comm, err := InitMPI()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "worker rank=%d: %v\n", comm.Rank(), err)
		comm.Abort(1)
		return 1
	}
	switch mode {
	case "collectives":
		if err := checkCollectives(comm); err != nil {
			return fail(err)
		}
		fmt.Printf("worker rank=%d size=%d ok\n", comm.Rank(), comm.Size())
		return 0
	case "kill", "exit", "abort":
		// Every rank is up; then the last one dies while the others
		// wait for it in an all-reduce.
		if err := comm.Barrier(); err != nil {
			return fail(err)
		}
		if comm.Rank() == comm.Size()-1 {
			fmt.Printf("worker rank=%d dies (%s)\n", comm.Rank(), mode)
			os.Stdout.Sync()
			switch mode {
			case "kill":
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute) // the signal ends the process
			case "exit":
				os.Exit(3)
			case "abort":
				comm.Abort(3)
			}
			return 4 // not reached
		}
		err := comm.AllreduceSum(make([]float32, 1000))
		fmt.Printf("worker rank=%d AllreduceSum with a dead peer returned %v\n", comm.Rank(), err)
		return 1
	case "bench":
		n, _ := strconv.Atoi(os.Getenv(benchLenEnv))
		ordered, sum, err := timeReductions(comm, n)
		if err != nil {
			return fail(err)
		}
		if comm.Rank() == 0 {
			fmt.Printf("bench ordered=%d sum=%d\n", ordered.Nanoseconds(), sum.Nanoseconds())
		}
		if err := comm.Close(); err != nil {
			return fail(err)
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "worker: unknown mode %q\n", mode)
	return 2
}

// checkCollectives checks every method of comm on this rank; all ranks
// run it together.
func checkCollectives(comm *MPI) error {
	r, p := comm.Rank(), comm.Size()
	if want, _ := strconv.Atoi(os.Getenv(npEnv)); p != want || r < 0 || r >= p {
		return fmt.Errorf("Rank, Size = %d, %d, want size %d", r, p, want)
	}
	if _, err := InitMPI(); err == nil || !strings.Contains(err.Error(), "called twice") {
		return fmt.Errorf("second InitMPI = %v, want an error saying it was called twice", err)
	}

	// Sums of small integers are exact in any order.
	const n = 1001
	f32, f64 := make([]float32, n), make([]float64, n)
	for i := range f32 {
		f32[i] = float32((r + 1) * (i % 97))
		f64[i] = float64((r+1)*(i%89)) * 0.5
	}
	if err := comm.AllreduceSum(f32); err != nil {
		return err
	}
	if err := comm.AllreduceSumF64(f64); err != nil {
		return err
	}
	tri := p * (p + 1) / 2
	for i := range f32 {
		if want := float32(tri * (i % 97)); f32[i] != want {
			return fmt.Errorf("AllreduceSum: buf[%d] = %g, want %g", i, f32[i], want)
		}
		if want := float64(tri*(i%89)) * 0.5; f64[i] != want {
			return fmt.Errorf("AllreduceSumF64: buf[%d] = %g, want %g", i, f64[i], want)
		}
	}
	if err := comm.AllreduceSum(nil); err != nil {
		return fmt.Errorf("AllreduceSum(nil) = %v, want nil", err)
	}

	// OrderedSum: the bits of a sequential sum in rank order, on data
	// where the order matters (TestOrderSensitiveParts).
	parts := orderSensitiveParts(7, p, 1000)
	want := sequentialSum(parts)
	ordered := append([]float32(nil), parts[r]...)
	if err := comm.OrderedSum(ordered); err != nil {
		return err
	}
	plain := append([]float32(nil), parts[r]...)
	if err := comm.AllreduceSum(plain); err != nil {
		return err
	}
	plainDiffer := 0
	for i := range want {
		if math.Float32bits(ordered[i]) != math.Float32bits(want[i]) {
			return fmt.Errorf("OrderedSum: buf[%d] = %g (%#08x), want %g (%#08x), the sequential sum in rank order",
				i, ordered[i], math.Float32bits(ordered[i]), want[i], math.Float32bits(want[i]))
		}
		if math.Float32bits(plain[i]) != math.Float32bits(want[i]) {
			plainDiffer++
		}
	}
	if p == 2 && plainDiffer != 0 {
		return fmt.Errorf("AllreduceSum with P=2 differs from the sequential sum in %d of %d values, want 0 (a+b = b+a)", plainDiffer, len(want))
	}
	if r == 0 {
		fmt.Printf("worker P=%d: OrderedSum equals the sequential sum in all %d values; AllreduceSum differs in %d\n", p, len(want), plainDiffer)
	}

	// Allgather, and its length check before any MPI call.
	src := make([]float32, 5)
	for i := range src {
		src[i] = float32(r*1000 + i)
	}
	dst := make([]float32, p*len(src))
	if err := comm.Allgather(dst, src); err != nil {
		return err
	}
	for i, v := range dst {
		if want := float32((i/len(src))*1000 + i%len(src)); v != want {
			return fmt.Errorf("Allgather: dst[%d] = %g, want %g", i, v, want)
		}
	}
	if err := comm.Allgather(dst[1:], src); err == nil || !strings.Contains(err.Error(), "destination has") {
		return fmt.Errorf("Allgather with a short destination = %v, want a length error", err)
	}

	// Bcast from the first and the last rank.
	for _, root := range []int{0, p - 1} {
		msg := []byte(fmt.Sprintf("from root %d....", root))
		buf := make([]byte, len(msg))
		if r == root {
			copy(buf, msg)
		}
		if err := comm.Bcast(buf, root); err != nil {
			return err
		}
		if !bytes.Equal(buf, msg) {
			return fmt.Errorf("Bcast(root %d): rank %d has %q, want %q", root, r, buf, msg)
		}
	}
	if err := comm.Bcast(make([]byte, 4), p); err == nil || !strings.Contains(err.Error(), "out of range") {
		return fmt.Errorf("Bcast(root %d) = %v, want a root out of range error", p, err)
	}
	// MPI's own check, through MPI_ERRORS_RETURN: a Go error naming the call.
	if err := comm.bcast(make([]byte, 4), p); err == nil || !strings.Contains(err.Error(), "MPI_Bcast") || !strings.Contains(err.Error(), "MPI error") {
		return fmt.Errorf("MPI_Bcast with root %d = %v, want MPI's error naming MPI_Bcast", p, err)
	} else if r == 0 {
		fmt.Printf("worker: MPI's error reaches Go as: %v\n", err)
	}

	// The stop flag and the other small reductions.
	for _, tc := range []struct {
		flag func(rank int) bool
		want bool
	}{
		{func(rank int) bool { return rank == p-1 }, true},
		{func(rank int) bool { return rank == 0 }, true},
		{func(int) bool { return false }, false},
		{func(int) bool { return true }, true},
	} {
		got, err := comm.AnyTrue(tc.flag(r))
		if err != nil {
			return err
		}
		if got != tc.want {
			return fmt.Errorf("AnyTrue(%v) on rank %d = %v, want %v", tc.flag(r), r, got, tc.want)
		}
	}
	if got, err := comm.AllreduceMaxInt64(int64(r*10 - 5)); err != nil || got != int64((p-1)*10-5) {
		return fmt.Errorf("AllreduceMaxInt64 = %d, %v, want %d", got, err, (p-1)*10-5)
	}
	if got, err := comm.Same(0xdeadbeef12345678); err != nil || !got {
		return fmt.Errorf("Same(equal values) = %v, %v, want true", got, err)
	}
	if got, err := comm.Same(uint64(r)); err != nil || got != (p == 1) {
		return fmt.Errorf("Same(the rank) = %v, %v, want %v", got, err, p == 1)
	}
	if err := comm.Barrier(); err != nil {
		return err
	}

	if err := comm.Close(); err != nil {
		return err
	}
	if err := comm.AllreduceSum(f32); err == nil || !strings.Contains(err.Error(), "after Close") {
		return fmt.Errorf("AllreduceSum after Close = %v, want an error", err)
	}
	if err := comm.Close(); err != nil {
		return fmt.Errorf("second Close = %v, want nil", err)
	}
	return nil
}

// mpirun returns the command that runs this test binary as np ranks in
// mode, or skips the test when mpirun is missing.
func mpirun(t testing.TB, ctx context.Context, np int, mode string) *exec.Cmd {
	t.Helper()
	path, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("needs mpirun on PATH (Debian: apt-get install openmpi-bin libopenmpi-dev)")
	}
	version, _ := exec.Command(path, "--version").CombinedOutput()
	args := []string{"-np", strconv.Itoa(np)}
	if bytes.Contains(version, []byte("Open MPI")) {
		// CI runs as root; 3 ranks on 2 cores need --oversubscribe
		// (MPICH's mpiexec oversubscribes by default and knows neither flag).
		args = append(args, "--allow-run-as-root", "--oversubscribe")
	}
	args = append(args, os.Args[0], "-test.run=^$")
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), workerEnv+"="+mode, npEnv+"="+strconv.Itoa(np),
		"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	// On a hang, SIGTERM lets mpirun end its ranks before it exits.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	return cmd
}

func TestMPICollectives(t *testing.T) {
	for _, np := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("np=%d", np), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := mpirun(t, ctx, np, "collectives").CombinedOutput()
			if err != nil {
				t.Fatalf("mpirun -np %d: %v\n%s", np, err, out)
			}
			for r := range np {
				if line := fmt.Sprintf("worker rank=%d size=%d ok", r, np); !bytes.Contains(out, []byte(line)) {
					t.Errorf("output lacks %q:\n%s", line, out)
				}
			}
			t.Logf("mpirun -np %d:\n%s", np, out)
		})
	}
}

// TestMPIDeadPeer: a rank that dies while its peers wait in a collective
// ends the job with a non-zero status within deadPeerBound, never a hang.
func TestMPIDeadPeer(t *testing.T) {
	for _, tc := range []struct {
		mode string
		np   int
	}{{"kill", 2}, {"exit", 2}, {"abort", 2}, {"kill", 3}} {
		t.Run(fmt.Sprintf("mode=%s,np=%d", tc.mode, tc.np), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*deadPeerBound)
			defer cancel()
			cmd := mpirun(t, ctx, tc.np, tc.mode)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(start)
			var exit *exec.ExitError
			switch {
			case ctx.Err() != nil:
				t.Fatalf("mpirun -np %d (%s) hung: killed after %v\n%s", tc.np, tc.mode, took.Round(time.Millisecond), out)
			case err == nil:
				t.Fatalf("mpirun -np %d (%s) exited 0, want a non-zero status\n%s", tc.np, tc.mode, out)
			case !errors.As(err, &exit):
				t.Fatalf("mpirun -np %d (%s): %v\n%s", tc.np, tc.mode, err, out)
			}
			if !bytes.Contains(out, []byte("dies ("+tc.mode+")")) {
				t.Fatalf("the last rank never reached its death:\n%s", out)
			}
			if took > deadPeerBound {
				t.Fatalf("mpirun -np %d (%s) took %v to fail, want at most %v\n%s", tc.np, tc.mode, took.Round(time.Millisecond), deadPeerBound, out)
			}
			t.Logf("mpirun -np %d, last rank %s: exit status %d after %v (bound %v)", tc.np, tc.mode, exit.ExitCode(), took.Round(time.Millisecond), deadPeerBound)
		})
	}
}

// timeReductions returns the median time of OrderedSum and of
// AllreduceSum of n float32 values on this rank, over 200 calls each after
// 20 warm-up calls, a Barrier before each.
func timeReductions(comm *MPI, n int) (ordered, sum time.Duration, err error) {
	if n < 1 {
		return 0, 0, fmt.Errorf("bench: %d values", n)
	}
	buf := make([]float32, n)
	median := func(f func([]float32) error) (time.Duration, error) {
		var ts []time.Duration
		for i := range 220 {
			if err := comm.Barrier(); err != nil {
				return 0, err
			}
			t0 := time.Now()
			if err := f(buf); err != nil {
				return 0, err
			}
			if i >= 20 {
				ts = append(ts, time.Since(t0))
			}
		}
		slices.Sort(ts)
		return ts[len(ts)/2], nil
	}
	if ordered, err = median(comm.OrderedSum); err != nil {
		return 0, 0, err
	}
	sum, err = median(comm.AllreduceSum)
	return ordered, sum, err
}

// BenchmarkMPIReduce runs mpirun -np 2 of this binary, which times
// OrderedSum and AllreduceSum of the gradients of the default network
// (5994 values) and of resnet8 (77754) on each rank (median of 200 calls,
// a Barrier before each, so a rank's wait for the other is not counted),
// and reports rank 0's medians. Run it with -benchtime=1x: each
// iteration is one whole job.
func BenchmarkMPIReduce(b *testing.B) {
	for _, n := range []int{5994, 77754} {
		b.Run(fmt.Sprintf("np=2,n=%d", n), func(b *testing.B) {
			for range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				cmd := mpirun(b, ctx, 2, "bench")
				cmd.Env = append(cmd.Env, benchLenEnv+"="+strconv.Itoa(n))
				out, err := cmd.CombinedOutput()
				cancel()
				if err != nil {
					b.Fatalf("mpirun: %v\n%s", err, out)
				}
				var ordered, sum int64
				i := bytes.Index(out, []byte("bench "))
				if i < 0 {
					b.Fatalf("no timing in the output:\n%s", out)
				}
				if _, err := fmt.Sscanf(string(out[i:]), "bench ordered=%d sum=%d", &ordered, &sum); err != nil {
					b.Fatalf("%v in %q", err, out[i:])
				}
				b.ReportMetric(float64(ordered)/1e3, "µs/ordered")
				b.ReportMetric(float64(sum)/1e3, "µs/allreduce")
			}
		})
	}
}
