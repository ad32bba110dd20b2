// mocklibnccl.c is a test-only stand-in for libnccl.so.2 (nccl_test.go
// compiles it into a temporary folder): the nine functions host/dist
// resolves, with NCCL's non-blocking behaviour, one rank's worth of work and
// scripted failures. It logs each call, one line, to $MOCK_NCCL_LOG.
//
// $MOCK_NCCL_MODE:
//   ok        init in progress for 3 polls, then success; ncclAllReduce
//             and ncclAllGather (one rank) copy send to recv (host memory
//             here) and succeed
//   hang      the communicator stays in progress forever (a peer that never joins)
//   remote    the communicator reports ncclRemoteError (a peer died)
//   dies      like ok until the 5th poll, then ncclRemoteError (a peer dies mid-run)
//   old       ncclGetVersion reports 2.13.0
//   fail-uid  ncclGetUniqueId fails with ncclSystemError
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
	} else if (mode_is("remote") || (mode_is("dies") && c->polls >= 5)) {
		*state = ct_ncclRemoteError;
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

#ifndef MOCK_NCCL_OMIT_ALLREDUCE
ct_ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ct_ncclDataType_t datatype,
	ct_ncclRedOp_t op, ct_ncclComm_t comm, ct_cudaStream_t stream) {
	struct mock_comm *c = comm;
	logline("ncclAllReduce count=%zu datatype=%d op=%d stream=%#lx rank=%d", count, datatype, op,
		(unsigned long)(uintptr_t)stream, c->rank);
	if (datatype != ct_ncclFloat32 || op != ct_ncclSum || c->nranks != 1) return ct_ncclInvalidUsage;
	memmove(recvbuff, sendbuff, count * sizeof(float));
	return ct_ncclSuccess;
}
#endif

ct_ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount, ct_ncclDataType_t datatype,
	ct_ncclComm_t comm, ct_cudaStream_t stream) {
	struct mock_comm *c = comm;
	logline("ncclAllGather sendcount=%zu datatype=%d stream=%#lx rank=%d", sendcount, datatype,
		(unsigned long)(uintptr_t)stream, c->rank);
	if (datatype != ct_ncclFloat32 || c->nranks != 1) return ct_ncclInvalidUsage;
	memmove(recvbuff, sendbuff, sendcount * sizeof(float));
	return ct_ncclSuccess;
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
