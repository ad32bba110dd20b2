// mocklibnccl.c is a test-only stand-in for libnccl.so.2 (nccl_test.go
// compiles it into a temporary folder): the eleven functions host/dist
// resolves, with NCCL's non-blocking behaviour, every rank's work played in
// this one process and scripted failures. It logs each call, one line, to
// $MOCK_NCCL_LOG.
//
// The ranks: this process is rank `rank` of `nranks`; each other rank q
// sends its own send values plus (q - rank), so ncclAllReduce writes, per
// value, ((v_0 + v_1) + v_2) + … in float32 in rank order, and
// ncclAllGather writes v_q at q·count (one rank: a copy). Buffers are host
// memory (the mock libcuda's device memory is too).
//
// Groups: between ncclGroupStart and ncclGroupEnd a collective is only
// queued (logged "queued"); ncclGroupEnd runs the queue in order and
// returns ncclInProgress, and the communicators it touched report
// ncclInProgress for 2 more polls. ncclGroupEnd without a ncclGroupStart
// is ncclInvalidUsage.
//
// $MOCK_NCCL_MODE:
//   ok          init in progress for 3 polls, then success; collectives
//               as above
//   hang        the communicator stays in progress forever (a peer that never joins)
//   remote      the communicator reports ncclRemoteError (a peer died)
//   dies        like ok until the 5th poll, then ncclRemoteError (a peer dies mid-run)
//   old         ncclGetVersion reports 2.13.0
//   fail-uid    ncclGetUniqueId fails with ncclSystemError
//   group-hang  like ok, but after a ncclGroupEnd the communicator stays
//               in progress forever (a peer that never enters the group)
//   group-dies  like ok, but after a ncclGroupEnd the communicator reports
//               ncclRemoteError (a peer died in the group)
//   op-fail     the second collective queued in a group returns
//               ncclInvalidArgument
//   end-fail    ncclGroupEnd returns ncclSystemError (having run nothing)
// -DMOCK_NCCL_OMIT_ALLREDUCE builds it without ncclAllReduce.
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nccl_abi.h"

static int mode_is(const char *m) {
	const char *v = getenv("MOCK_NCCL_MODE");
	return strcmp(v ? v : "ok", m) == 0;
}

static void logline(const char *format, ...) {
	const char *path = getenv("MOCK_NCCL_LOG");
	if (path == NULL) return;
	FILE *f = fopen(path, "a");
	if (f == NULL) return;
	va_list ap;
	va_start(ap, format);
	vfprintf(f, format, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

struct mock_comm {
	int nranks, rank, polls;
	int group_polls; // polls left in progress after a ncclGroupEnd; -1: forever
	int failed;      // a ncclGroupEnd left it in ncclRemoteError
};

ct_ncclResult_t ncclGetVersion(int *version) {
	*version = mode_is("old") ? 21300 : 22707;
	return ct_ncclSuccess;
}

ct_ncclResult_t ncclGetUniqueId(ct_ncclUniqueId *id) {
	if (mode_is("fail-uid")) return ct_ncclSystemError;
	for (int i = 0; i < CT_NCCL_UNIQUE_ID_BYTES; i++) id->internal[i] = (char)(i * 7 + 3);
	logline("ncclGetUniqueId");
	return ct_ncclSuccess;
}

ct_ncclResult_t ncclCommInitRankConfig(ct_ncclComm_t *comm, int nranks, ct_ncclUniqueId id, int rank,
	ct_ncclConfig_v21400 *config) {
	unsigned sum = 0;
	for (int i = 0; i < CT_NCCL_UNIQUE_ID_BYTES; i++) sum = sum * 31u + (unsigned char)id.internal[i];
	logline("ncclCommInitRankConfig nranks=%d rank=%d size=%zu magic=%#x version=%u blocking=%d id=%08x",
		nranks, rank, config->size, config->magic, config->version, config->blocking, sum);
	if (config->magic != CT_NCCL_CONFIG_MAGIC || config->size < sizeof(ct_ncclConfig_v21400)) return ct_ncclInvalidArgument;
	struct mock_comm *c = calloc(1, sizeof *c);
	if (c == NULL) return ct_ncclSystemError;
	c->nranks = nranks;
	c->rank = rank;
	*comm = c;
	return ct_ncclInProgress;
}

ct_ncclResult_t ncclCommGetAsyncError(ct_ncclComm_t comm, ct_ncclResult_t *state) {
	struct mock_comm *c = comm;
	c->polls++;
	if (mode_is("hang")) {
		*state = ct_ncclInProgress;
	} else if (mode_is("remote") || (mode_is("dies") && c->polls >= 5) || c->failed) {
		*state = ct_ncclRemoteError;
	} else if (c->group_polls != 0) {
		if (c->group_polls > 0) c->group_polls--;
		*state = ct_ncclInProgress;
	} else {
		*state = c->polls <= 3 ? ct_ncclInProgress : ct_ncclSuccess;
	}
	return ct_ncclSuccess;
}

ct_ncclResult_t ncclCommAbort(ct_ncclComm_t comm) {
	struct mock_comm *c = comm;
	logline("ncclCommAbort rank=%d polls=%d", c->rank, c->polls);
	free(c);
	return ct_ncclSuccess;
}

ct_ncclResult_t ncclCommDestroy(ct_ncclComm_t comm) {
	struct mock_comm *c = comm;
	logline("ncclCommDestroy rank=%d", c->rank);
	free(c);
	return ct_ncclSuccess;
}

// rank_value is rank q's value of a buffer whose value here is v.
static float rank_value(const struct mock_comm *c, int q, float v) { return v + (float)(q - c->rank); }

static ct_ncclResult_t run_allreduce(const void *sendbuff, void *recvbuff, size_t count, struct mock_comm *c) {
	const float *send = sendbuff;
	float *recv = recvbuff;
	for (size_t i = 0; i < count; i++) {
		float v = send[i], sum = rank_value(c, 0, v);
		for (int q = 1; q < c->nranks; q++) sum += rank_value(c, q, v);
		recv[i] = sum;
	}
	return ct_ncclSuccess;
}

static ct_ncclResult_t run_allgather(const void *sendbuff, void *recvbuff, size_t count, struct mock_comm *c) {
	float *v = malloc(count * sizeof(float) + 1);
	if (v == NULL) return ct_ncclSystemError;
	memcpy(v, sendbuff, count * sizeof(float));
	float *recv = recvbuff;
	for (int q = 0; q < c->nranks; q++)
		for (size_t i = 0; i < count; i++) recv[(size_t)q * count + i] = rank_value(c, q, v[i]);
	free(v);
	return ct_ncclSuccess;
}

// The group: its depth and the collectives queued in it.
enum { MOCK_MAX_QUEUED = 4096 };
static struct {
	int allreduce; // 1: ncclAllReduce, 0: ncclAllGather
	const void *send;
	void *recv;
	size_t count;
	struct mock_comm *comm;
} queued[MOCK_MAX_QUEUED];
static int group_depth, nqueued;

ct_ncclResult_t ncclGroupStart(void) {
	group_depth++;
	logline("ncclGroupStart depth=%d", group_depth);
	return ct_ncclSuccess;
}

ct_ncclResult_t ncclGroupEnd(void) {
	if (group_depth == 0) {
		logline("ncclGroupEnd without ncclGroupStart");
		return ct_ncclInvalidUsage;
	}
	group_depth--;
	logline("ncclGroupEnd depth=%d queued=%d", group_depth, nqueued);
	if (group_depth > 0) return ct_ncclSuccess;
	int n = nqueued;
	nqueued = 0;
	if (mode_is("end-fail")) return ct_ncclSystemError;
	for (int i = 0; i < n; i++) {
		struct mock_comm *c = queued[i].comm;
		ct_ncclResult_t rc = queued[i].allreduce ? run_allreduce(queued[i].send, queued[i].recv, queued[i].count, c)
		                                         : run_allgather(queued[i].send, queued[i].recv, queued[i].count, c);
		if (rc != ct_ncclSuccess) return rc;
		c->group_polls = mode_is("group-hang") ? -1 : 2;
		c->failed = mode_is("group-dies");
	}
	return ct_ncclInProgress;
}

// collective runs one collective, or queues it inside a group. Called
// while the communicator is still in progress (NCCL forbids it: poll
// ncclCommGetAsyncError to success first), it is ncclInvalidUsage.
static ct_ncclResult_t collective(int allreduce, const void *sendbuff, void *recvbuff, size_t count, struct mock_comm *c) {
	if (c->group_polls != 0 || c->polls <= 3) {
		logline("collective while the communicator is in progress");
		return ct_ncclInvalidUsage;
	}
	if (group_depth == 0)
		return allreduce ? run_allreduce(sendbuff, recvbuff, count, c) : run_allgather(sendbuff, recvbuff, count, c);
	if (nqueued == MOCK_MAX_QUEUED) return ct_ncclInvalidUsage;
	if (mode_is("op-fail") && nqueued == 1) return ct_ncclInvalidArgument;
	queued[nqueued].allreduce = allreduce;
	queued[nqueued].send = sendbuff;
	queued[nqueued].recv = recvbuff;
	queued[nqueued].count = count;
	queued[nqueued].comm = c;
	nqueued++;
	return ct_ncclSuccess;
}

#ifndef MOCK_NCCL_OMIT_ALLREDUCE
ct_ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ct_ncclDataType_t datatype,
	ct_ncclRedOp_t op, ct_ncclComm_t comm, ct_cudaStream_t stream) {
	struct mock_comm *c = comm;
	logline("ncclAllReduce count=%zu datatype=%d op=%d stream=%#lx rank=%d%s", count, datatype, op,
		(unsigned long)(uintptr_t)stream, c->rank, group_depth > 0 ? " queued" : "");
	if (datatype != ct_ncclFloat32 || op != ct_ncclSum) return ct_ncclInvalidUsage;
	return collective(1, sendbuff, recvbuff, count, c);
}
#endif

ct_ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount, ct_ncclDataType_t datatype,
	ct_ncclComm_t comm, ct_cudaStream_t stream) {
	struct mock_comm *c = comm;
	logline("ncclAllGather sendcount=%zu datatype=%d stream=%#lx rank=%d%s", sendcount, datatype,
		(unsigned long)(uintptr_t)stream, c->rank, group_depth > 0 ? " queued" : "");
	if (datatype != ct_ncclFloat32) return ct_ncclInvalidUsage;
	return collective(0, sendbuff, recvbuff, sendcount, c);
}

const char *ncclGetErrorString(ct_ncclResult_t result) {
	switch (result) {
	case ct_ncclSuccess: return "no error";
	case ct_ncclSystemError: return "mock: unhandled system error";
	case ct_ncclInvalidArgument: return "mock: invalid argument";
	case ct_ncclInvalidUsage: return "mock: invalid usage";
	case ct_ncclRemoteError: return "mock: remote process exited or there was a network error";
	case ct_ncclInProgress: return "mock: in progress";
	}
	return "mock: unknown result";
}
