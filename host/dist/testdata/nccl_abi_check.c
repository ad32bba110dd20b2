// nccl_abi_check.c proves host/dist/nccl_abi.h equal to NCCL's own nccl.h
// (the pinned nvidia-nccl-cu13 wheel): scripts/ci-cuda.sh compiles it with
// -Wall -Wextra -Wconversion -Werror against nccl.h, links it with the
// wheel's libnccl.so.2 and runs it (it calls only ncclGetVersion, which
// needs no GPU). Compile-time: every value, size and offset; each wrapper
// below has our function type (it is assigned to a pointer of that type) and
// calls NCCL's function with our arguments, so a parameter added, dropped,
// or passed by value instead of by pointer fails the build. Run time: the
// magic and version of NCCL_CONFIG_INITIALIZER, and the library's version.
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#include <nccl.h>

#include "../nccl_abi.h"

#define SAME(a, b) _Static_assert((long long)(a) == (long long)(b), #a " == " #b)

SAME(sizeof(ncclResult_t), sizeof(ct_ncclResult_t));
SAME(ncclSuccess, ct_ncclSuccess);
SAME(ncclUnhandledCudaError, ct_ncclUnhandledCudaError);
SAME(ncclSystemError, ct_ncclSystemError);
SAME(ncclInternalError, ct_ncclInternalError);
SAME(ncclInvalidArgument, ct_ncclInvalidArgument);
SAME(ncclInvalidUsage, ct_ncclInvalidUsage);
SAME(ncclRemoteError, ct_ncclRemoteError);
SAME(ncclInProgress, ct_ncclInProgress);

SAME(sizeof(ncclDataType_t), sizeof(ct_ncclDataType_t));
SAME(ncclFloat32, ct_ncclFloat32);
SAME(ncclFloat64, ct_ncclFloat64);
SAME(sizeof(ncclRedOp_t), sizeof(ct_ncclRedOp_t));
SAME(ncclSum, ct_ncclSum);

SAME(sizeof(ncclComm_t), sizeof(ct_ncclComm_t));
SAME(sizeof(cudaStream_t), sizeof(ct_cudaStream_t));

SAME(NCCL_UNIQUE_ID_BYTES, CT_NCCL_UNIQUE_ID_BYTES);
SAME(sizeof(ncclUniqueId), sizeof(ct_ncclUniqueId));
SAME(alignof(ncclUniqueId), alignof(ct_ncclUniqueId));

SAME(offsetof(ncclConfig_t, size), offsetof(ct_ncclConfig_v21400, size));
SAME(offsetof(ncclConfig_t, magic), offsetof(ct_ncclConfig_v21400, magic));
SAME(offsetof(ncclConfig_t, version), offsetof(ct_ncclConfig_v21400, version));
SAME(offsetof(ncclConfig_t, blocking), offsetof(ct_ncclConfig_v21400, blocking));
SAME(sizeof(((ncclConfig_t *)0)->size), sizeof(((ct_ncclConfig_v21400 *)0)->size));
SAME(sizeof(((ncclConfig_t *)0)->blocking), sizeof(((ct_ncclConfig_v21400 *)0)->blocking));
SAME(NCCL_VERSION(2, 14, 0), CT_NCCL_CONFIG_VERSION);
_Static_assert(sizeof(ct_ncclConfig_v21400) <= sizeof(ncclConfig_t), "the 2.14 prefix is not longer than the header's configuration");

static ct_ncclResult_t w_GetVersion(int *version) { return ncclGetVersion(version); }
static ct_ncclResult_t w_GetUniqueId(ct_ncclUniqueId *id) { return ncclGetUniqueId((ncclUniqueId *)id); }
static ct_ncclResult_t w_CommInitRankConfig(ct_ncclComm_t *comm, int nranks, ct_ncclUniqueId id, int rank,
	ct_ncclConfig_v21400 *config) {
	ncclUniqueId nid;
	memcpy(&nid, &id, sizeof nid);
	return ncclCommInitRankConfig((ncclComm_t *)comm, nranks, nid, rank, (ncclConfig_t *)config);
}
static ct_ncclResult_t w_CommGetAsyncError(ct_ncclComm_t comm, ct_ncclResult_t *asyncError) {
	return ncclCommGetAsyncError(comm, (ncclResult_t *)asyncError);
}
static ct_ncclResult_t w_CommAbort(ct_ncclComm_t comm) { return ncclCommAbort(comm); }
static ct_ncclResult_t w_CommDestroy(ct_ncclComm_t comm) { return ncclCommDestroy(comm); }
static ct_ncclResult_t w_AllReduce(const void *sendbuff, void *recvbuff, size_t count, ct_ncclDataType_t datatype,
	ct_ncclRedOp_t op, ct_ncclComm_t comm, ct_cudaStream_t stream) {
	return ncclAllReduce(sendbuff, recvbuff, count, datatype, op, comm, stream);
}
static ct_ncclResult_t w_AllGather(const void *sendbuff, void *recvbuff, size_t sendcount, ct_ncclDataType_t datatype,
	ct_ncclComm_t comm, ct_cudaStream_t stream) {
	return ncclAllGather(sendbuff, recvbuff, sendcount, datatype, comm, stream);
}
static const char *w_GetErrorString(ct_ncclResult_t result) { return ncclGetErrorString(result); }
static ct_ncclResult_t w_GroupStart(void) { return ncclGroupStart(); }
static ct_ncclResult_t w_GroupEnd(void) { return ncclGroupEnd(); }

ct_ncclGetVersion_fn *const check_GetVersion = w_GetVersion;
ct_ncclGetUniqueId_fn *const check_GetUniqueId = w_GetUniqueId;
ct_ncclCommInitRankConfig_fn *const check_CommInitRankConfig = w_CommInitRankConfig;
ct_ncclCommGetAsyncError_fn *const check_CommGetAsyncError = w_CommGetAsyncError;
ct_ncclCommAbort_fn *const check_CommAbort = w_CommAbort;
ct_ncclCommDestroy_fn *const check_CommDestroy = w_CommDestroy;
ct_ncclAllReduce_fn *const check_AllReduce = w_AllReduce;
ct_ncclAllGather_fn *const check_AllGather = w_AllGather;
ct_ncclGetErrorString_fn *const check_GetErrorString = w_GetErrorString;
ct_ncclGroupStart_fn *const check_GroupStart = w_GroupStart;
ct_ncclGroupEnd_fn *const check_GroupEnd = w_GroupEnd;
// nccl.h declares both with empty parentheses (no parameter list to
// compare): the wrappers call them with no argument, as nccl.go does, and
// these prove the result ncclResult_t.
_Static_assert(__builtin_types_compatible_p(__typeof__(ncclGroupStart()), ncclResult_t), "ncclGroupStart returns ncclResult_t");
_Static_assert(__builtin_types_compatible_p(__typeof__(ncclGroupEnd()), ncclResult_t), "ncclGroupEnd returns ncclResult_t");

int main(void) {
	ncclConfig_t init = NCCL_CONFIG_INITIALIZER;
	if (init.magic != CT_NCCL_CONFIG_MAGIC) {
		printf("nccl_abi_check: NCCL_CONFIG_INITIALIZER magic %#x, nccl_abi.h says %#x\n", init.magic, CT_NCCL_CONFIG_MAGIC);
		return 1;
	}
	if (init.version < CT_NCCL_CONFIG_VERSION) {
		printf("nccl_abi_check: nccl.h configuration version %u is below %d\n", init.version, CT_NCCL_CONFIG_VERSION);
		return 1;
	}
	int v = 0;
	ct_ncclResult_t rc = check_GetVersion(&v);
	if (rc != ct_ncclSuccess || v != NCCL_VERSION_CODE) {
		printf("nccl_abi_check: ncclGetVersion = %d, version %d; nccl.h is %d\n", rc, v, NCCL_VERSION_CODE);
		return 1;
	}
	printf("nccl_abi_check: ok (nccl.h and libnccl.so.2 %d, ncclConfig_t %zu bytes, our 2.14 prefix %zu)\n", v,
		sizeof(ncclConfig_t), sizeof(ct_ncclConfig_v21400));
	return 0;
}
