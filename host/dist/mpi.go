//go:build mpi

package dist

// The cgo of the MPI binding, all of it. Every MPI call goes through one of
// the small C functions below, so that MPI's handles (MPI_COMM_WORLD,
// MPI_FLOAT, MPI_IN_PLACE…, macros that cgo cannot evaluate, and pointers
// in Open MPI but integers in MPICH) never reach Go. Each returns MPI's
// return code; the only communicator is MPI_COMM_WORLD.

/*
#cgo pkg-config: mpi
#include <stdint.h>
#include <mpi.h>

// ct_initialized: MPI_Initialized — has MPI_Init(_thread) been called already?
static int ct_initialized(int *flag) { return MPI_Initialized(flag); }

// ct_finalized: MPI_Finalized — has MPI_Finalize been called already?
static int ct_finalized(int *flag) { return MPI_Finalized(flag); }

// ct_init: MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)
// (MPI-2 allows NULL for argc and argv). FUNNELED: the process may have
// many threads but only the one that called MPI_Init_thread calls MPI.
static int ct_init(int *provided) {
	return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, provided);
}

// ct_funneled: the value of MPI_THREAD_FUNNELED (the levels are ordered
// SINGLE < FUNNELED < SERIALIZED < MULTIPLE by the standard).
static int ct_funneled(void) { return MPI_THREAD_FUNNELED; }

// ct_errors_return: MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN),
// so that a failing call returns its code instead of aborting the job (the
// default, MPI_ERRORS_ARE_FATAL).
static int ct_errors_return(void) {
	return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

// ct_rank, ct_size: MPI_Comm_rank, MPI_Comm_size of MPI_COMM_WORLD.
static int ct_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
static int ct_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

// ct_allreduce_sum_f32: MPI_Allreduce in place, MPI_FLOAT, MPI_SUM.
static int ct_allreduce_sum_f32(float *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

// ct_allreduce_sum_f64: MPI_Allreduce in place, MPI_DOUBLE, MPI_SUM.
static int ct_allreduce_sum_f64(double *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

// ct_allreduce_max_i64: MPI_Allreduce in place, MPI_INT64_T, MPI_MAX.
static int ct_allreduce_max_i64(int64_t *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
}

// ct_allreduce_min_u64: MPI_Allreduce in place, MPI_UINT64_T, MPI_MIN.
static int ct_allreduce_min_u64(uint64_t *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
}

// ct_allgather_f32: MPI_Allgather of n floats from each rank into dst
// (size × n floats, rank 0's first).
static int ct_allgather_f32(float *src, int n, float *dst) {
	return MPI_Allgather(src, n, MPI_FLOAT, dst, n, MPI_FLOAT, MPI_COMM_WORLD);
}

// ct_bcast: MPI_Bcast of n bytes (MPI_BYTE) from root.
static int ct_bcast(void *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD);
}

// ct_barrier: MPI_Barrier(MPI_COMM_WORLD).
static int ct_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

// ct_finalize: MPI_Finalize.
static int ct_finalize(void) { return MPI_Finalize(); }

// ct_abort: MPI_Abort(MPI_COMM_WORLD, code): ends every rank of the job.
static int ct_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }

// ct_error_string: MPI_Error_string of a return code into buf, which holds
// MPI_MAX_ERROR_STRING bytes (ct_max_error_string).
static int ct_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static int ct_error_string(int code, char *buf, int *len) {
	return MPI_Error_string(code, buf, len);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// MPI is the world of an MPI job (MPI_COMM_WORLD), made by InitMPI.
//
// Every rank must call the collectives (all methods but Rank, Size, Abort
// and Close) in the same order with the same lengths; a method whose
// arguments are wrong returns its error before any MPI call, and a
// failing MPI call returns a Go error naming the call and MPI's message
// (MPI_ERRORS_RETURN is set on MPI_COMM_WORLD).
//
// MPI is initialised at MPI_THREAD_FUNNELED: one goroutine, locked to its
// OS thread, makes every MPI call, and the methods hand their call to it,
// so they may be called from any goroutine (one at a time: they are
// serialised by a mutex).
type MPI struct {
	rank, size int

	mu      sync.Mutex
	closed  bool
	calls   chan func() C.int // run by the funnel goroutine, on the thread that called MPI_Init_thread
	results chan C.int
	scratch []float32 // OrderedSum's gathered parts, grown as needed
}

// initMu guards initCalled: MPI can be initialised once per process
// (MPI_Init after MPI_Finalize is an error too).
var (
	initMu     sync.Mutex
	initCalled bool
)

// InitMPI initialises MPI with MPI_Init_thread at MPI_THREAD_FUNNELED,
// checks the level the library provides, sets MPI_ERRORS_RETURN on
// MPI_COMM_WORLD and reads the rank and size. Launch the program with
// mpirun or srun; started alone it is a world of one (a singleton).
//
// It returns an error when called a second time in a process, when MPI was
// initialised by other code, or when the library provides a level below
// FUNNELED (MPI is then finalised).
func InitMPI() (*MPI, error) {
	initMu.Lock()
	defer initMu.Unlock()
	if initCalled {
		return nil, errors.New("dist: InitMPI called twice; MPI can be initialised once per process: keep the *MPI of the first call")
	}
	initCalled = true
	m := &MPI{calls: make(chan func() C.int), results: make(chan C.int)}
	ready := make(chan error)
	go m.funnel(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return m, nil
}

// funnel initialises MPI and then makes every MPI call of m, all on one OS
// thread. The thread stays locked to this goroutine; after Close the
// goroutine returns and the runtime ends the thread with it.
func (m *MPI) funnel(ready chan<- error) {
	runtime.LockOSThread()
	if err := m.start(); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for f := range m.calls {
		m.results <- f()
	}
}

// start is InitMPI's work on the funnel thread.
func (m *MPI) start() error {
	var flag C.int
	if rc := C.ct_initialized(&flag); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Initialized", rc)
	}
	if flag != 0 {
		return errors.New("dist: MPI was initialised before InitMPI (by other code); InitMPI must make the only MPI_Init_thread call")
	}
	var provided C.int
	if rc := C.ct_init(&provided); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Init_thread", rc)
	}
	if provided < C.ct_funneled() {
		C.ct_finalize()
		return fmt.Errorf("dist: MPI_Init_thread provided thread level %d, below MPI_THREAD_FUNNELED (%d); "+
			"use an MPI library built with thread support (Debian's Open MPI and MPICH are)", int(provided), int(C.ct_funneled()))
	}
	if rc := C.ct_errors_return(); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN)", rc)
	}
	var rank, size C.int
	if rc := C.ct_rank(&rank); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Comm_rank", rc)
	}
	if rc := C.ct_size(&size); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Comm_size", rc)
	}
	m.rank, m.size = int(rank), int(size)
	return nil
}

// do runs f on the funnel thread and returns its MPI return code as an
// error naming call.
func (m *MPI) do(call string, f func() C.int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("dist: %s after Close or Abort: MPI is finalised", call)
	}
	m.calls <- f
	if rc := <-m.results; rc != C.MPI_SUCCESS {
		return mpiError(call, rc)
	}
	return nil
}

// mpiError is the Go error of MPI return code rc from call, with MPI's
// message (MPI_Error_string). MPI_Error_string may be called before
// MPI_Init and after MPI_Finalize, from any thread.
func mpiError(call string, rc C.int) error {
	buf := make([]C.char, int(C.ct_max_error_string())+1)
	var n C.int
	msg := "no message"
	if C.ct_error_string(rc, &buf[0], &n) == C.MPI_SUCCESS && n > 0 && int(n) < len(buf) {
		msg = C.GoStringN(&buf[0], n)
	}
	return fmt.Errorf("dist: %s: %s (MPI error %d)", call, msg, int(rc))
}

// count converts a length to MPI's int count, or names what is too long.
func count(call string, n int) (C.int, error) {
	if n > math.MaxInt32 {
		return 0, fmt.Errorf("dist: %s: %d elements exceed MPI's count limit %d; split the buffer", call, n, math.MaxInt32)
	}
	return C.int(n), nil
}

// Rank returns this process's rank in MPI_COMM_WORLD, 0 ≤ Rank < Size.
func (m *MPI) Rank() int { return m.rank }

// Size returns the number of processes in MPI_COMM_WORLD.
func (m *MPI) Size() int { return m.size }

// AllreduceSum replaces buf on every rank with the element-wise sum of all
// ranks' buf (MPI_Allreduce, MPI_IN_PLACE, MPI_FLOAT, MPI_SUM). The order
// of the additions is the library's: exact for P = 2 (float addition is
// commutative), not fixed for P > 2; use OrderedSum for fixed bits.
func (m *MPI) AllreduceSum(buf []float32) error {
	const call = "MPI_Allreduce(MPI_FLOAT, MPI_SUM)"
	n, err := count(call, len(buf))
	if err != nil {
		return err
	}
	p := (*C.float)(unsafe.SliceData(buf))
	return m.do(call, func() C.int { return C.ct_allreduce_sum_f32(p, n) })
}

// AllreduceSumF64 is AllreduceSum on float64 (MPI_DOUBLE): for loss sums
// and counts.
func (m *MPI) AllreduceSumF64(buf []float64) error {
	const call = "MPI_Allreduce(MPI_DOUBLE, MPI_SUM)"
	n, err := count(call, len(buf))
	if err != nil {
		return err
	}
	p := (*C.double)(unsafe.SliceData(buf))
	return m.do(call, func() C.int { return C.ct_allreduce_sum_f64(p, n) })
}

// AllreduceMaxInt64 returns the maximum of v over all ranks (MPI_INT64_T,
// MPI_MAX).
func (m *MPI) AllreduceMaxInt64(v int64) (int64, error) {
	buf := []C.int64_t{C.int64_t(v)}
	err := m.do("MPI_Allreduce(MPI_INT64_T, MPI_MAX)", func() C.int { return C.ct_allreduce_max_i64(&buf[0], 1) })
	return int64(buf[0]), err
}

// AnyTrue returns whether flag is true on any rank: every rank gets the
// same answer, so a stop decision taken on it is taken by all.
func (m *MPI) AnyTrue(flag bool) (bool, error) {
	var v int64
	if flag {
		v = 1
	}
	max, err := m.AllreduceMaxInt64(v)
	return max != 0, err
}

// Same returns whether v is equal on all ranks (one MPI_Allreduce with
// MPI_MIN of v and its complement): for checksums of the initial weights
// or of a configuration.
func (m *MPI) Same(v uint64) (bool, error) {
	buf := []C.uint64_t{C.uint64_t(v), C.uint64_t(^v)}
	err := m.do("MPI_Allreduce(MPI_UINT64_T, MPI_MIN)", func() C.int { return C.ct_allreduce_min_u64(&buf[0], 2) })
	// min(v) == max(v) ⇔ min(v) == ^min(^v).
	return buf[0] == ^buf[1], err
}

// Allgather writes every rank's src into dst in rank order: dst[r·n : (r+1)·n]
// is rank r's src, n = len(src), the same on every rank. len(dst) must be
// Size × len(src).
func (m *MPI) Allgather(dst, src []float32) error {
	const call = "MPI_Allgather(MPI_FLOAT)"
	if len(dst) != m.size*len(src) {
		return fmt.Errorf("dist: Allgather: destination has %d values, want %d (Size %d × %d)", len(dst), m.size*len(src), m.size, len(src))
	}
	n, err := count(call, len(src))
	if err != nil {
		return err
	}
	if _, err := count(call, len(dst)); err != nil {
		return err
	}
	s, d := (*C.float)(unsafe.SliceData(src)), (*C.float)(unsafe.SliceData(dst))
	return m.do(call, func() C.int { return C.ct_allgather_f32(s, n, d) })
}

// OrderedSum replaces buf on every rank with the sum of all ranks' buf
// taken in rank order 0, 1, …, P−1, left to right (SumInRankOrder after an
// Allgather): the same bits as one process adding P micro-batch gradients
// in turn, for any P. It costs P× the traffic and memory of AllreduceSum
// (a scratch of Size × len(buf) values, kept for the next call).
func (m *MPI) OrderedSum(buf []float32) error {
	need := m.size * len(buf)
	if cap(m.scratch) < need {
		m.scratch = make([]float32, need)
	}
	parts := m.scratch[:need]
	if err := m.Allgather(parts, buf); err != nil {
		return fmt.Errorf("dist: OrderedSum: %w", err)
	}
	return SumInRankOrder(buf, parts)
}

// Bcast copies root's buf into buf on every other rank (MPI_Bcast,
// MPI_BYTE). len(buf) must be the same on every rank.
func (m *MPI) Bcast(buf []byte, root int) error {
	if root < 0 || root >= m.size {
		return fmt.Errorf("dist: Bcast: root %d out of range [0, %d)", root, m.size)
	}
	return m.bcast(buf, root)
}

// bcast is Bcast without the check of root (the tests reach MPI's own
// check through it).
func (m *MPI) bcast(buf []byte, root int) error {
	call := fmt.Sprintf("MPI_Bcast(%d bytes, root %d)", len(buf), root)
	n, err := count(call, len(buf))
	if err != nil {
		return err
	}
	p, r := unsafe.Pointer(unsafe.SliceData(buf)), C.int(root)
	return m.do(call, func() C.int { return C.ct_bcast(p, n, r) })
}

// Barrier returns when every rank has called it (MPI_Barrier).
func (m *MPI) Barrier() error {
	return m.do("MPI_Barrier", func() C.int { return C.ct_barrier() })
}

// Abort ends every rank of the job with exit status code (MPI_Abort on
// MPI_COMM_WORLD); it does not return when it succeeds. A rank that fails
// while its peers may be inside a collective calls Abort, not Close:
// MPI_Finalize would wait for peers that are waiting for it. Under
// MPI_THREAD_FUNNELED it runs on the MPI thread too, after a call in
// progress on another goroutine returns.
func (m *MPI) Abort(code int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("dist: MPI_Abort after Close: MPI is finalised")
	}
	m.calls <- func() C.int { return C.ct_abort(C.int(code)) }
	if rc := <-m.results; rc != C.MPI_SUCCESS {
		return mpiError("MPI_Abort", rc)
	}
	return nil
}

// Close finalises MPI (MPI_Finalize), which every rank calls at the end of
// a successful run; later calls of any method return an error, and a
// second Close returns nil.
func (m *MPI) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.calls <- func() C.int { return C.ct_finalize() }
	rc := <-m.results
	m.closed = true
	close(m.calls)
	if rc != C.MPI_SUCCESS {
		return mpiError("MPI_Finalize", rc)
	}
	return nil
}
