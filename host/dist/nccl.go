//go:build cuda

package dist

// The cgo of the NCCL binding, all of it. libnccl.so.2 is opened with
// dlopen at run time and never linked, so a binary built with -tags cuda
// starts, and trains on one GPU, where NCCL is absent; the types are our own
// (nccl_abi.h, checked against nccl.h in CI), so building needs no NCCL
// header either.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "nccl_abi.h"

// ct_nccl is one opened libnccl: its dlopen handle and the functions we call.
typedef struct {
	void *handle;
	ct_ncclGetVersion_fn *getVersion;
	ct_ncclGetUniqueId_fn *getUniqueId;
	ct_ncclCommInitRankConfig_fn *commInitRankConfig;
	ct_ncclCommGetAsyncError_fn *commGetAsyncError;
	ct_ncclCommAbort_fn *commAbort;
	ct_ncclCommDestroy_fn *commDestroy;
	ct_ncclAllReduce_fn *allReduce;
	ct_ncclAllGather_fn *allGather;
	ct_ncclGetErrorString_fn *getErrorString;
	ct_ncclGroupStart_fn *groupStart;
	ct_ncclGroupEnd_fn *groupEnd;
} ct_nccl;

// ct_nccl_open: dlopen(path, RTLD_NOW | RTLD_LOCAL) and dlsym of each
// function. On failure it returns NULL, closes what it opened, and copies
// dlerror()'s message, or the name of the missing function, into err.
static ct_nccl *ct_nccl_open(const char *path, char *err, size_t errlen) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
		return NULL;
	}
	ct_nccl *l = calloc(1, sizeof *l);
	if (l == NULL) {
		dlclose(h);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->handle = h;
#define CT_SYM(field, name)                                                        \
	if ((l->field = (ct_##name##_fn *)dlsym(h, #name)) == NULL) {               \
		snprintf(err, errlen, "%s has no symbol " #name " (NCCL 2.14 or later has it)", path); \
		dlclose(h);                                                             \
		free(l);                                                                \
		return NULL;                                                            \
	}
	CT_SYM(getVersion, ncclGetVersion)
	CT_SYM(getUniqueId, ncclGetUniqueId)
	CT_SYM(commInitRankConfig, ncclCommInitRankConfig)
	CT_SYM(commGetAsyncError, ncclCommGetAsyncError)
	CT_SYM(commAbort, ncclCommAbort)
	CT_SYM(commDestroy, ncclCommDestroy)
	CT_SYM(allReduce, ncclAllReduce)
	CT_SYM(allGather, ncclAllGather)
	CT_SYM(getErrorString, ncclGetErrorString)
	CT_SYM(groupStart, ncclGroupStart)
	CT_SYM(groupEnd, ncclGroupEnd)
#undef CT_SYM
	return l;
}

// The calls, one each: ncclGetVersion, ncclGetUniqueId, ncclGetErrorString.
static ct_ncclResult_t ct_nccl_version(ct_nccl *l, int *v) { return l->getVersion(v); }
static ct_ncclResult_t ct_nccl_unique_id(ct_nccl *l, ct_ncclUniqueId *id) { return l->getUniqueId(id); }
static const char *ct_nccl_error_string(ct_nccl *l, ct_ncclResult_t r) { return l->getErrorString(r); }

// ct_nccl_init_rank: ncclCommInitRankConfig with the 2.14 configuration and
// blocking = 0: it returns ncclInProgress (or ncclSuccess) at once and the
// communicator's state is then polled with ncclCommGetAsyncError.
static ct_ncclResult_t ct_nccl_init_rank(ct_nccl *l, ct_ncclComm_t *comm, int nranks, ct_ncclUniqueId *id, int rank) {
	ct_ncclConfig_v21400 config = {sizeof(ct_ncclConfig_v21400), CT_NCCL_CONFIG_MAGIC, CT_NCCL_CONFIG_VERSION, 0};
	return l->commInitRankConfig(comm, nranks, *id, rank, &config);
}

// ct_nccl_async_error: ncclCommGetAsyncError — the communicator's state:
// ncclInProgress while an operation is still being issued, ncclSuccess,
// or the error of a failed (possibly asynchronous) operation.
static ct_ncclResult_t ct_nccl_async_error(ct_nccl *l, ct_ncclComm_t comm, ct_ncclResult_t *state) {
	return l->commGetAsyncError(comm, state);
}

// ct_nccl_abort: ncclCommAbort — stops the communicator's pending
// operations and frees it; the way out when a peer is dead.
static ct_ncclResult_t ct_nccl_abort(ct_nccl *l, ct_ncclComm_t comm) { return l->commAbort(comm); }

// ct_nccl_destroy: ncclCommDestroy — frees a communicator whose operations
// have completed.
static ct_ncclResult_t ct_nccl_destroy(ct_nccl *l, ct_ncclComm_t comm) { return l->commDestroy(comm); }

// ct_nccl_allreduce_sum_f32: ncclAllReduce(send, recv, count, ncclFloat32,
// ncclSum, comm, stream) on device addresses; send == recv is in place.
static ct_ncclResult_t ct_nccl_allreduce_sum_f32(ct_nccl *l, uintptr_t send, uintptr_t recv, size_t count,
	ct_ncclComm_t comm, uintptr_t stream) {
	return l->allReduce((const void *)send, (void *)recv, count, ct_ncclFloat32, ct_ncclSum, comm, (ct_cudaStream_t)stream);
}

// ct_nccl_allgather_f32: ncclAllGather(send, recv, count, ncclFloat32, comm,
// stream) on device addresses: recv receives size × count floats, rank r's
// at r·count.
static ct_ncclResult_t ct_nccl_allgather_f32(ct_nccl *l, uintptr_t send, uintptr_t recv, size_t count,
	ct_ncclComm_t comm, uintptr_t stream) {
	return l->allGather((const void *)send, (void *)recv, count, ct_ncclFloat32, comm, (ct_cudaStream_t)stream);
}

// ct_nccl_group_start, ct_nccl_group_end: ncclGroupStart and ncclGroupEnd
// (per thread: the calling thread's collectives between them are enqueued
// together at ncclGroupEnd).
static ct_ncclResult_t ct_nccl_group_start(ct_nccl *l) { return l->groupStart(); }
static ct_ncclResult_t ct_nccl_group_end(ct_nccl *l) { return l->groupEnd(); }
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"
)

// NCCLDefaultLibrary is the name OpenNCCL("") gives dlopen, which searches
// LD_LIBRARY_PATH, the binary's run path and the loader's cache.
const NCCLDefaultLibrary = "libnccl.so.2"

// ncclMinVersion is the oldest NCCL accepted: 2.14 brought
// ncclCommInitRankConfig and non-blocking communicators.
const ncclMinVersion = 21400

// NCCLLibrary is an opened libnccl (dlopen); it stays loaded for the life
// of the process.
type NCCLLibrary struct {
	l       *C.ct_nccl
	path    string
	version int
}

// OpenNCCL opens the NCCL library at path (NCCLDefaultLibrary when empty),
// resolves the functions the binding calls and checks the version
// (≥ 2.14). The error of a missing library says how to provide one.
func OpenNCCL(path string) (*NCCLLibrary, error) {
	if path == "" {
		path = NCCLDefaultLibrary
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var msg [1024]C.char
	l := C.ct_nccl_open(cpath, &msg[0], C.size_t(len(msg)))
	if l == nil {
		return nil, fmt.Errorf("dist: open NCCL: %s; NCCL is loaded at run time, never linked: install it "+
			"(pip install nvidia-nccl-cu13, or the distribution's libnccl2) and put the folder of libnccl.so.2 on "+
			"LD_LIBRARY_PATH, e.g. LD_LIBRARY_PATH=$(python3 -c 'import nvidia.nccl as n; print(n.__path__[0] + \"/lib\")'), "+
			"or give its path", C.GoString(&msg[0]))
	}
	lib := &NCCLLibrary{l: l, path: path}
	var v C.int
	if rc := C.ct_nccl_version(l, &v); rc != C.ct_ncclSuccess {
		return nil, lib.errorf(rc, "ncclGetVersion (%s)", path)
	}
	lib.version = int(v)
	if lib.version < ncclMinVersion {
		return nil, fmt.Errorf("dist: %s is NCCL %s; the binding needs 2.14 or later (ncclCommInitRankConfig, non-blocking communicators)", path, ncclVersionString(lib.version))
	}
	return lib, nil
}

// ncclVersionString writes NCCL's version code as major.minor.patch (codes
// below 2.9 are major·1000 + minor·100 + patch, later ones major·10000 + minor·100 + patch).
func ncclVersionString(code int) string {
	if code < 20900 {
		return fmt.Sprintf("%d.%d.%d", code/1000, code%1000/100, code%100)
	}
	return fmt.Sprintf("%d.%d.%d", code/10000, code%10000/100, code%100)
}

// Version returns the library's version code (ncclGetVersion), e.g. 22707
// for 2.27.7.
func (lib *NCCLLibrary) Version() int { return lib.version }

// String returns the library's path and version.
func (lib *NCCLLibrary) String() string {
	return fmt.Sprintf("%s (NCCL %s)", lib.path, ncclVersionString(lib.version))
}

// errorf is the error of NCCL result rc from the call that what names,
// with NCCL's message (ncclGetErrorString).
func (lib *NCCLLibrary) errorf(rc C.ct_ncclResult_t, what string, args ...any) error {
	return fmt.Errorf("dist: %s: %s (NCCL result %d)", fmt.Sprintf(what, args...), C.GoString(C.ct_nccl_error_string(lib.l, rc)), int(rc))
}

// NCCLID is the unique id of one communicator (ncclUniqueId), made by one
// rank and given to all (InitNCCL sends it with the world's Bcast).
type NCCLID [C.CT_NCCL_UNIQUE_ID_BYTES]byte

// UniqueID returns a new id (ncclGetUniqueId), made by one rank only.
func (lib *NCCLLibrary) UniqueID() (NCCLID, error) {
	var id C.ct_ncclUniqueId
	if rc := C.ct_nccl_unique_id(lib.l, &id); rc != C.ct_ncclSuccess {
		return NCCLID{}, lib.errorf(rc, "ncclGetUniqueId")
	}
	return *(*NCCLID)(unsafe.Pointer(&id)), nil
}

// NCCL is one rank's NCCL communicator, one GPU per rank.
//
// CUDA context: NCCL takes the device from the CUDA context current on the
// calling thread, so InitRank, Group, AllreduceSum, Allgather, Wait, Abort
// and Close must be called on an OS thread locked to the goroutine
// (runtime.LockOSThread) with this rank's device context current.
//
// Every operation is non-blocking and bounded by the timeout given at
// InitRank: when the communicator makes no progress within it, or reports
// an error (a dead peer is ncclRemoteError or ncclSystemError), the
// communicator is aborted (ncclCommAbort) and the call returns an error, so
// a dead peer is an error, never a hang. An aborted communicator is closed.
type NCCL struct {
	lib        *NCCLLibrary
	comm       C.ct_ncclComm_t
	rank, size int
	timeout    time.Duration

	mu     sync.Mutex
	closed bool
}

// ncclWorld is what InitNCCL needs of the world that launched the ranks
// (MPI, or Local for one rank): its rank, its size, and a broadcast for the
// id.
type ncclWorld interface {
	Rank() int
	Size() int
	Bcast(buf []byte, root int) error
}

// InitNCCL makes the NCCL communicator of world's ranks: rank 0 makes the
// id, world's Bcast sends it to all, and each rank joins with InitRank
// (world's rank and size, the given timeout). Every rank of world must call
// it; when rank 0 cannot make the id, every rank returns an error.
func InitNCCL(world ncclWorld, lib *NCCLLibrary, timeout time.Duration) (*NCCL, error) {
	// buf[0] says whether rank 0 made an id (1) or failed (0); buf[1:] is the id.
	var buf [1 + len(NCCLID{})]byte
	var idErr error
	if world.Rank() == 0 {
		id, err := lib.UniqueID()
		if err == nil {
			buf[0] = 1
			copy(buf[1:], id[:])
		}
		idErr = err
	}
	if err := world.Bcast(buf[:], 0); err != nil {
		return nil, fmt.Errorf("dist: InitNCCL: broadcast of the NCCL id: %w", err)
	}
	if idErr != nil {
		return nil, fmt.Errorf("dist: InitNCCL: %w", idErr)
	}
	if buf[0] != 1 {
		return nil, errors.New("dist: InitNCCL: rank 0 could not make the NCCL id (its error is in rank 0's output)")
	}
	var id NCCLID
	copy(id[:], buf[1:])
	return lib.InitRank(id, world.Size(), world.Rank(), timeout)
}

// InitRank joins rank (0 ≤ rank < size) to the communicator of id with a
// non-blocking ncclCommInitRankConfig, then polls its state until every
// rank has joined; past timeout (> 0) it aborts and returns an error.
func (lib *NCCLLibrary) InitRank(id NCCLID, size, rank int, timeout time.Duration) (*NCCL, error) {
	if size < 1 || rank < 0 || rank >= size {
		return nil, fmt.Errorf("dist: NCCL InitRank: rank %d of %d: want 0 ≤ rank < size", rank, size)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("dist: NCCL InitRank: timeout %v: want a positive bound on every NCCL operation", timeout)
	}
	cid := (*C.ct_ncclUniqueId)(unsafe.Pointer(&id))
	var comm C.ct_ncclComm_t
	rc := C.ct_nccl_init_rank(lib.l, &comm, C.int(size), cid, C.int(rank))
	c := &NCCL{lib: lib, comm: comm, rank: rank, size: size, timeout: timeout}
	if rc != C.ct_ncclSuccess && rc != C.ct_ncclInProgress {
		err := lib.errorf(rc, "ncclCommInitRankConfig (rank %d of %d)", rank, size)
		if comm != nil {
			C.ct_nccl_abort(lib.l, comm)
		}
		return nil, err
	}
	if comm == nil {
		return nil, fmt.Errorf("dist: ncclCommInitRankConfig (rank %d of %d) returned no communicator", rank, size)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.wait("ncclCommInitRankConfig", nil); err != nil {
		return nil, err
	}
	return c, nil
}

// Rank returns this rank in the communicator.
func (c *NCCL) Rank() int { return c.rank }

// Size returns the number of ranks in the communicator.
func (c *NCCL) Size() int { return c.size }

// ncclMaxPause bounds the pause between two polls of wait: a training
// step waits once for its collectives (Group, then Wait), and the pause
// after the last poll is time the GPU may stand idle, so it is kept short
// (a poll is two cheap calls: ncclCommGetAsyncError and cuStreamQuery).
const ncclMaxPause = 250 * time.Microsecond

// wait polls the communicator's state (ncclCommGetAsyncError) until it is
// ncclSuccess and done (nil: at once) reports true. An error state, an
// error of done or the timeout aborts the communicator. c.mu is held.
func (c *NCCL) wait(op string, done func() (bool, error)) error {
	start := time.Now()
	pause := 20 * time.Microsecond
	for {
		var state C.ct_ncclResult_t
		if rc := C.ct_nccl_async_error(c.lib.l, c.comm, &state); rc != C.ct_ncclSuccess {
			return c.abort(c.lib.errorf(rc, "%s: ncclCommGetAsyncError", op))
		}
		switch state {
		case C.ct_ncclSuccess:
			if done == nil {
				return nil
			}
			ok, err := done()
			if err != nil {
				return c.abort(fmt.Errorf("dist: %s: %w", op, err))
			}
			if ok {
				return nil
			}
		case C.ct_ncclInProgress:
		default:
			return c.abort(c.lib.errorf(state, "%s on rank %d of %d (a peer may have died)", op, c.rank, c.size))
		}
		if time.Since(start) > c.timeout {
			return c.abort(fmt.Errorf("dist: %s on rank %d of %d: no progress within %v (a peer dead, hung or unreachable?)", op, c.rank, c.size, c.timeout))
		}
		time.Sleep(pause)
		pause = min(2*pause, ncclMaxPause)
	}
}

// abort aborts the communicator after err and returns err, with the
// abort's own failure appended. c.mu is held.
func (c *NCCL) abort(err error) error {
	c.closed = true
	if rc := C.ct_nccl_abort(c.lib.l, c.comm); rc != C.ct_ncclSuccess {
		return fmt.Errorf("%w; communicator abort failed too: %w", err, c.lib.errorf(rc, "ncclCommAbort"))
	}
	return fmt.Errorf("%w; communicator aborted", err)
}

// AllreduceSum enqueues on stream (a CUstream; 0 the default stream) the
// sum over all ranks of count float32 values at device address send into
// device address recv on every rank (ncclAllReduce, ncclFloat32, ncclSum;
// send == recv is in place). It returns once the operation is enqueued;
// Wait for its completion. The order of the additions is NCCL's (ring or
// tree): exact for 2 ranks, not fixed for more.
func (c *NCCL) AllreduceSum(send, recv uintptr, count int, stream uintptr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("dist: NCCL AllreduceSum after Close or an abort")
	}
	if count < 0 {
		return fmt.Errorf("dist: NCCL AllreduceSum: count %d < 0", count)
	}
	rc := C.ct_nccl_allreduce_sum_f32(c.lib.l, C.uintptr_t(send), C.uintptr_t(recv), C.size_t(count), c.comm, C.uintptr_t(stream))
	switch rc {
	case C.ct_ncclSuccess:
		return nil
	case C.ct_ncclInProgress:
		return c.wait("ncclAllReduce", nil)
	}
	return c.abort(c.lib.errorf(rc, "ncclAllReduce (%d float32, rank %d of %d)", count, c.rank, c.size))
}

// Allgather enqueues on stream the gather of count float32 values at
// device address send from every rank into device address recv, which
// holds Size × count values, rank r's at r·count (ncclAllGather,
// ncclFloat32): the first half of an ordered sum, whose adding in rank
// order is the caller's. It returns once the operation is enqueued; Wait
// for its completion.
func (c *NCCL) Allgather(send, recv uintptr, count int, stream uintptr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("dist: NCCL Allgather after Close or an abort")
	}
	if count < 0 {
		return fmt.Errorf("dist: NCCL Allgather: count %d < 0", count)
	}
	rc := C.ct_nccl_allgather_f32(c.lib.l, C.uintptr_t(send), C.uintptr_t(recv), C.size_t(count), c.comm, C.uintptr_t(stream))
	switch rc {
	case C.ct_ncclSuccess:
		return nil
	case C.ct_ncclInProgress:
		return c.wait("ncclAllGather", nil)
	}
	return c.abort(c.lib.errorf(rc, "ncclAllGather (%d float32, rank %d of %d)", count, c.rank, c.size))
}

// NCCLCollective is the kind of one operation of a Group.
type NCCLCollective int

const (
	// NCCLAllreduceSum: Recv's Count values are the sum over all ranks of
	// Send's (ncclAllReduce, ncclFloat32, ncclSum); Send == Recv is in
	// place. The order of the additions is NCCL's: exact for 2 ranks.
	NCCLAllreduceSum NCCLCollective = iota
	// NCCLAllgather: Recv's Size × Count values are every rank's Send,
	// rank r's at r·Count (ncclAllGather, ncclFloat32).
	NCCLAllgather
)

func (k NCCLCollective) String() string {
	switch k {
	case NCCLAllreduceSum:
		return "ncclAllReduce"
	case NCCLAllgather:
		return "ncclAllGather"
	}
	return fmt.Sprintf("NCCLCollective(%d)", int(k))
}

// NCCLOp is one collective of a Group on float32 device buffers: Count
// values sent by each rank from device address Send, received at device
// address Recv.
type NCCLOp struct {
	Collective NCCLCollective
	Send, Recv uintptr
	Count      int
}

// ncclMaxGroupOps is the most operations Group puts between one
// ncclGroupStart and its ncclGroupEnd: NCCL documented 2048 as the limit
// (to 2.19); a longer list is enqueued as several groups, in order.
const ncclMaxGroupOps = 2048

// Group enqueues ops on stream (a CUstream; 0 the default stream) as one
// NCCL group: ncclGroupStart, the collectives in order, ncclGroupEnd, so
// that NCCL launches them together (one operation, not one per buffer)
// and the host synchronises with the peers once. It returns once the
// group is enqueued (a non-blocking communicator's ncclInProgress polled
// to success, within the timeout); Wait for its completion. Every
// operation is validated before the group starts. A collective that fails
// inside the group still gets its ncclGroupEnd (the group state is the
// calling thread's), then the communicator is aborted; so is it when
// ncclGroupEnd fails, reports an error state, or makes no progress within
// the timeout.
func (c *NCCL) Group(ops []NCCLOp, stream uintptr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("dist: NCCL Group after Close or an abort")
	}
	for i, op := range ops {
		if op.Count < 0 {
			return fmt.Errorf("dist: NCCL Group: operation %d (%v): count %d < 0", i, op.Collective, op.Count)
		}
		if op.Collective != NCCLAllreduceSum && op.Collective != NCCLAllgather {
			return fmt.Errorf("dist: NCCL Group: operation %d: unknown collective %v", i, op.Collective)
		}
	}
	for lo := 0; lo < len(ops); lo += ncclMaxGroupOps {
		if err := c.group(ops[lo:min(lo+ncclMaxGroupOps, len(ops))], stream); err != nil {
			return err
		}
	}
	return nil
}

// group enqueues one group of at most ncclMaxGroupOps validated
// operations. c.mu is held.
func (c *NCCL) group(ops []NCCLOp, stream uintptr) error {
	if rc := C.ct_nccl_group_start(c.lib.l); rc != C.ct_ncclSuccess {
		return c.abort(c.lib.errorf(rc, "ncclGroupStart (rank %d of %d)", c.rank, c.size))
	}
	var opErr error
	for i, op := range ops {
		var rc C.ct_ncclResult_t
		if op.Collective == NCCLAllreduceSum {
			rc = C.ct_nccl_allreduce_sum_f32(c.lib.l, C.uintptr_t(op.Send), C.uintptr_t(op.Recv), C.size_t(op.Count), c.comm, C.uintptr_t(stream))
		} else {
			rc = C.ct_nccl_allgather_f32(c.lib.l, C.uintptr_t(op.Send), C.uintptr_t(op.Recv), C.size_t(op.Count), c.comm, C.uintptr_t(stream))
		}
		if rc != C.ct_ncclSuccess && rc != C.ct_ncclInProgress {
			opErr = c.lib.errorf(rc, "%v (operation %d of %d in a group, %d float32, rank %d of %d)", op.Collective, i+1, len(ops), op.Count, c.rank, c.size)
			break
		}
	}
	rc := C.ct_nccl_group_end(c.lib.l)
	if opErr != nil {
		if rc != C.ct_ncclSuccess && rc != C.ct_ncclInProgress {
			opErr = fmt.Errorf("%w; then %w", opErr, c.lib.errorf(rc, "ncclGroupEnd"))
		}
		return c.abort(opErr)
	}
	switch rc {
	case C.ct_ncclSuccess:
		return nil
	case C.ct_ncclInProgress:
		return c.wait(fmt.Sprintf("ncclGroupEnd (%d collectives)", len(ops)), nil)
	}
	return c.abort(c.lib.errorf(rc, "ncclGroupEnd (%d collectives, rank %d of %d)", len(ops), c.rank, c.size))
}

// Wait polls until done reports true — the caller's test that the stream
// has finished the enqueued operations (cuStreamQuery or an event) — while
// watching the communicator's state: an error there, an error of done, or
// no completion within the timeout aborts the communicator and returns an
// error instead of waiting forever for a dead peer.
func (c *NCCL) Wait(done func() (bool, error)) error {
	if done == nil {
		return errors.New("dist: NCCL Wait: done is nil; give the test of the stream's completion")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("dist: NCCL Wait after Close or an abort")
	}
	return c.wait("NCCL wait", done)
}

// Abort aborts the communicator (ncclCommAbort) at once, pending
// operations included: the way out of a failed step. It closes c.
func (c *NCCL) Abort() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if rc := C.ct_nccl_abort(c.lib.l, c.comm); rc != C.ct_ncclSuccess {
		return c.lib.errorf(rc, "ncclCommAbort")
	}
	return nil
}

// Close frees the communicator after its operations have completed
// (ncclCommDestroy); a second Close, or Close after an abort, returns nil.
func (c *NCCL) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if rc := C.ct_nccl_destroy(c.lib.l, c.comm); rc != C.ct_ncclSuccess {
		return c.lib.errorf(rc, "ncclCommDestroy")
	}
	return nil
}
