// Package dist is data-parallel training's communication: thin cgo
// bindings of MPI (launching, control, CPU all-reduce) and, in the cuda
// build, NCCL (GPU all-reduce), plus the reduction semantics the trainer
// relies on. It holds no protocol of its own: the launcher (mpirun, srun)
// owns the ranks.
//
// Two worlds with the same methods (a test keeps them equal), so the
// trainer holds one interface over both:
//
//	Local   a world of one, rank 0 of 1: every collective is an identity or a copy
//	MPI     MPI_COMM_WORLD of a job, from InitMPI; needs -tags mpi (without it,
//	        InitMPI returns an error saying how to rebuild)
//
// and SumInRankOrder, pure Go, the ordered reduction that OrderedSum computes
// (for the trainer's single-process equivalent and its tests).
//
// The methods: Rank, Size; AllreduceSum (float32, in place) and
// AllreduceSumF64; AllreduceMaxInt64; AnyTrue, the all-reduced stop flag
// (every rank gets the same answer, so every stop decision is taken by all);
// Same, whether a value (a checksum of the initial weights) is equal on
// every rank; Allgather (each rank's slice, all slices in rank order);
// OrderedSum; Bcast; Barrier; Abort; Close.
//
// What is exact. OrderedSum gathers every rank's buffer and adds them in
// rank order 0, 1, …, P−1, left to right in float32: the bits of one
// process that adds P micro-batch gradients in turn, for any P
// (SumInRankOrder's doc gives the one exception, the sign of an all-zero
// sum). AllreduceSum leaves the order to the MPI library (it depends on P,
// the length and the library's tuning), so it gives those bits for P = 2
// only, where a+b = b+a (Open MPI 4.1.4, random data of mixed magnitudes:
// P = 3 agrees at 1000 and 2^20 values but not at 2^14, where 1589 values
// differ; P = 4 differs in about 16 % of the values at every length). The price of the order: each rank receives
// (P−1)·n values and keeps P·n, where a ring all-reduce moves about 2·n. Sums of
// integer-valued floats (counts of correct answers) are exact either way
// while they stay below 2^24 (float32) or 2^53 (float64).
//
// How to build and launch (Debian: apt-get install openmpi-bin
// libopenmpi-dev; MPICH's libmpich-dev works the same; the binding finds the
// library with pkg-config's "mpi"):
//
//	go build -tags mpi -o train ./cmd/train
//	mpirun -np 4 ./train -dist mpi ...        # one node or a hostfile (-hostfile, --host)
//	srun -n 4 ./train -dist mpi ...           # Slurm, with Open MPI built with PMIx/PMI2 support
//
// Threads. MPI is initialised at MPI_THREAD_FUNNELED (the level is checked):
// one goroutine locked to its OS thread calls MPI_Init_thread and then
// makes every MPI call, and the methods hand their calls to it, so they may
// be called from any goroutine, one at a time. Failing MPI calls return Go
// errors naming the call and MPI's message (MPI_ERRORS_RETURN is set on
// MPI_COMM_WORLD); wrong arguments (lengths, roots) are errors before any
// MPI call.
//
// A dead peer. A rank that dies — killed, exiting without Close, or calling
// Abort — while the others wait in a collective ends the whole job with a
// non-zero status within 30 s, never a hang: mpirun notices the exit and
// ends the other ranks (measured with Open MPI 4.1.4 on 2 cores, one node:
// 0.5 s after MPI_Abort, 1.5–1.7 s after SIGKILL or os.Exit; TestMPIDeadPeer
// asserts the 30 s bound). So a rank that fails calls Abort, not Close:
// MPI_Finalize would wait for peers that are waiting for it. A peer that
// hangs without dying is not detected by MPI; bound a job with mpirun's
// --timeout SECONDS or the scheduler's time limit.
//
// NCCL (the cuda build). OpenNCCL opens libnccl.so.2 with dlopen, never
// linked, so a cuda binary runs where NCCL is absent, and its error says how
// to provide one; NCCL 2.14 or later. InitNCCL makes the communicator of a
// world's ranks, one GPU each: rank 0's ncclGetUniqueId goes to every rank
// with the world's Bcast (MPI's; Local's for one rank), and each rank joins
// with a non-blocking ncclCommInitRankConfig whose state is polled with
// ncclCommGetAsyncError. AllreduceSum enqueues ncclAllReduce (float32 sum)
// on a stream, Allgather ncclAllGather (float32, rank r's values at r·count:
// the gather of an ordered sum, added in rank order by the caller); Group
// enqueues a list of them between one ncclGroupStart and ncclGroupEnd (a
// training step's gradients: one NCCL operation, one synchronisation with
// the peers); Wait polls the caller's completion test (a stream query) and
// the communicator's state together. Every operation is bounded by the
// timeout given to InitNCCL: an error state (a dead peer) or no progress
// aborts the communicator (ncclCommAbort) and returns an error. The calls
// need the rank's CUDA context current on a locked OS thread. The binding
// declares the NCCL types it uses itself (nccl_abi.h), proved equal to
// nccl.h by CI (scripts/ci-cuda.sh, check nccl), so building needs no NCCL
// header.
//
// Tests: go test -tags mpi ./host/dist re-executes its test binary under
// mpirun -np 1, 2 and 3 (--oversubscribe; as root, --allow-run-as-root),
// and skips, saying what it needs, without mpirun; go test -tags cuda
// ./host/dist runs the NCCL binding against a mock libnccl built from
// testdata/mocklibnccl.c, and against a real one named by
// CONVTRAIN_NCCL_LIB (no GPU needed).
package dist
