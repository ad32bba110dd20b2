// nccl_abi.h declares the part of NCCL's C API that host/dist calls
// (nccl.go), under ct_ names, so that the cuda build needs no NCCL header:
// libnccl.so.2 is opened with dlopen at run time, never linked.
//
// Written from NCCL's documented API (NCCL >= 2.14, the first with
// ncclCommInitRankConfig and non-blocking communicators); every line is
// checked against nccl.h of the pinned nvidia-nccl-cu13 wheel by
// testdata/nccl_abi_check.c (scripts/ci-cuda.sh, check "nccl"): values,
// sizes, the configuration's layout, and each function called through these
// types.

#ifndef CONVTRAIN_DIST_NCCL_ABI_H
#define CONVTRAIN_DIST_NCCL_ABI_H

#include <stddef.h>

// ncclResult_t: an int-sized enum.
typedef int ct_ncclResult_t;
enum {
	ct_ncclSuccess = 0,
	ct_ncclUnhandledCudaError = 1,
	ct_ncclSystemError = 2,
	ct_ncclInternalError = 3,
	ct_ncclInvalidArgument = 4,
	ct_ncclInvalidUsage = 5,
	ct_ncclRemoteError = 6,
	ct_ncclInProgress = 7,
};

// ncclDataType_t and ncclRedOp_t: int-sized enums; only these values are used.
typedef int ct_ncclDataType_t;
typedef int ct_ncclRedOp_t;
enum { ct_ncclFloat32 = 7, ct_ncclFloat64 = 8 };
enum { ct_ncclSum = 0 };

// ncclComm_t: an opaque pointer. cudaStream_t: an opaque pointer (the
// driver API's CUstream is the same type).
typedef void *ct_ncclComm_t;
typedef void *ct_cudaStream_t;

// ncclUniqueId: 128 opaque bytes, passed by value to ncclCommInitRankConfig.
#define CT_NCCL_UNIQUE_ID_BYTES 128
typedef struct {
	char internal[CT_NCCL_UNIQUE_ID_BYTES];
} ct_ncclUniqueId;

// ncclConfig_t as NCCL 2.14 defined it: the fields that lead every later
// version. NCCL reads `size` bytes and gives every field newer than
// `version` its default, so this prefix works with every NCCL >= 2.14.
typedef struct {
	size_t size;           // sizeof(ct_ncclConfig_v21400)
	unsigned int magic;    // CT_NCCL_CONFIG_MAGIC
	unsigned int version;  // CT_NCCL_CONFIG_VERSION
	int blocking;          // 0: non-blocking init and collectives (ncclInProgress)
} ct_ncclConfig_v21400;
#define CT_NCCL_CONFIG_MAGIC 0xcafebeefu
#define CT_NCCL_CONFIG_VERSION 21400 // NCCL_VERSION(2, 14, 0)

// The functions, as pointer targets for dlsym.
typedef ct_ncclResult_t ct_ncclGetVersion_fn(int *version);
typedef ct_ncclResult_t ct_ncclGetUniqueId_fn(ct_ncclUniqueId *id);
typedef ct_ncclResult_t ct_ncclCommInitRankConfig_fn(ct_ncclComm_t *comm, int nranks, ct_ncclUniqueId id,
	int rank, ct_ncclConfig_v21400 *config);
typedef ct_ncclResult_t ct_ncclCommGetAsyncError_fn(ct_ncclComm_t comm, ct_ncclResult_t *asyncError);
typedef ct_ncclResult_t ct_ncclCommAbort_fn(ct_ncclComm_t comm);
typedef ct_ncclResult_t ct_ncclCommDestroy_fn(ct_ncclComm_t comm);
typedef ct_ncclResult_t ct_ncclAllReduce_fn(const void *sendbuff, void *recvbuff, size_t count,
	ct_ncclDataType_t datatype, ct_ncclRedOp_t op, ct_ncclComm_t comm, ct_cudaStream_t stream);
typedef ct_ncclResult_t ct_ncclAllGather_fn(const void *sendbuff, void *recvbuff, size_t sendcount,
	ct_ncclDataType_t datatype, ct_ncclComm_t comm, ct_cudaStream_t stream);
typedef const char *ct_ncclGetErrorString_fn(ct_ncclResult_t result);
// ncclGroupStart/ncclGroupEnd: the collectives issued between them are
// enqueued as one operation at ncclGroupEnd (on a non-blocking
// communicator, it may return ncclInProgress while they are enqueued).
typedef ct_ncclResult_t ct_ncclGroupStart_fn(void);
typedef ct_ncclResult_t ct_ncclGroupEnd_fn(void);

#endif
