/*
 * shim_test.c checks gpu/cudacompat/cuda.h without a GPU; scripts/ci-cuda.sh
 * compiles it against each pinned cuda.h (wrapper folder first) and runs it.
 *
 * CUDA 12: the wrapper must add nothing: the five names keep cuda.h's own
 * mapping (cuCtxCreate -> cuCtxCreate_v2, the others unmapped).
 * CUDA 13: each of the five names must reach our shim, and each shim must
 * call the 13.0 function with the arguments cu meant. The 13.0 functions are
 * replaced here by recorders, so the test runs with no driver.
 */
#include <cuda.h>

#include <stdio.h>
#include <string.h>

#define STR(x) STR2(x)
#define STR2(x) #x

static int failures;

static void expect_name(const char *macro, const char *got, const char *want)
{
	if (strcmp(got, want) != 0) {
		printf("FAIL: %s expands to %s, want %s\n", macro, got, want);
		failures++;
	}
}

static void expect(int ok, const char *what)
{
	if (!ok) {
		printf("FAIL: %s\n", what);
		failures++;
	}
}

#if CUDA_VERSION >= 13000

/* Recorders standing in for the CUDA 13.0 driver functions. */
static struct {
	const char *fn;
	CUcontext *pctx;
	CUctxCreateParams *params;
	unsigned int flags;
	CUdevice dev;
	CUdeviceptr ptr;
	size_t count;
	CUmem_advise advice;
	CUmemLocation loc;
	CUstream stream;
	CUgraph graph;
	const CUgraphNode *from, *to;
	const CUgraphEdgeData *edges;
	size_t n;
	size_t *pn;
} rec;

CUresult CUDAAPI cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags, CUdevice dev)
{
	rec.fn = "cuCtxCreate_v4";
	rec.pctx = pctx;
	rec.params = params;
	rec.flags = flags;
	rec.dev = dev;
	return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAdvise_v2(CUdeviceptr ptr, size_t count, CUmem_advise advice, CUmemLocation loc)
{
	rec.fn = "cuMemAdvise_v2";
	rec.ptr = ptr;
	rec.count = count;
	rec.advice = advice;
	rec.loc = loc;
	return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemPrefetchAsync_v2(CUdeviceptr ptr, size_t count, CUmemLocation loc, unsigned int flags, CUstream stream)
{
	rec.fn = "cuMemPrefetchAsync_v2";
	rec.ptr = ptr;
	rec.count = count;
	rec.loc = loc;
	rec.flags = flags;
	rec.stream = stream;
	return CUDA_ERROR_INVALID_VALUE; /* checks that results pass through */
}

CUresult CUDAAPI cuGraphAddDependencies_v2(CUgraph g, const CUgraphNode *from, const CUgraphNode *to, const CUgraphEdgeData *edges, size_t n)
{
	rec.fn = "cuGraphAddDependencies_v2";
	rec.graph = g;
	rec.from = from;
	rec.to = to;
	rec.edges = edges;
	rec.n = n;
	return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphGetEdges_v2(CUgraph g, CUgraphNode *from, CUgraphNode *to, CUgraphEdgeData *edges, size_t *pn)
{
	rec.fn = "cuGraphGetEdges_v2";
	rec.graph = g;
	rec.from = from;
	rec.to = to;
	rec.edges = edges;
	rec.pn = pn;
	return CUDA_SUCCESS;
}

static void test_cuda13(void)
{
	CUcontext ctx;
	CUgraphNode a[2], b[2];
	size_t n = 2;
	CUgraph g = (CUgraph)0x1234;
	CUstream s = (CUstream)0x5678;

	expect_name("cuCtxCreate", STR(cuCtxCreate), "convtrain_cu12_cuCtxCreate");
	expect_name("cuMemAdvise", STR(cuMemAdvise), "convtrain_cu12_cuMemAdvise");
	expect_name("cuMemPrefetchAsync", STR(cuMemPrefetchAsync), "convtrain_cu12_cuMemPrefetchAsync");
	expect_name("cuGraphAddDependencies", STR(cuGraphAddDependencies), "convtrain_cu12_cuGraphAddDependencies");
	expect_name("cuGraphGetEdges", STR(cuGraphGetEdges), "convtrain_cu12_cuGraphGetEdges");

	/* The calls exactly as cu v0.9.6 writes them (CUDA 12 signatures). */
	memset(&rec, 0xff, sizeof rec);
	expect(cuCtxCreate(&ctx, CU_CTX_SCHED_BLOCKING_SYNC, 3) == CUDA_SUCCESS, "cuCtxCreate result");
	expect(strcmp(rec.fn, "cuCtxCreate_v4") == 0, "cuCtxCreate calls cuCtxCreate_v4");
	expect(rec.pctx == &ctx && rec.params == NULL && rec.flags == CU_CTX_SCHED_BLOCKING_SYNC && rec.dev == 3,
	       "cuCtxCreate_v4(pctx, NULL, flags, dev)");

	memset(&rec, 0xff, sizeof rec);
	expect(cuMemAdvise(0xabc0, 4096, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, 2) == CUDA_SUCCESS, "cuMemAdvise result");
	expect(strcmp(rec.fn, "cuMemAdvise_v2") == 0, "cuMemAdvise calls cuMemAdvise_v2");
	expect(rec.ptr == 0xabc0 && rec.count == 4096 && rec.advice == CU_MEM_ADVISE_SET_PREFERRED_LOCATION &&
	       rec.loc.type == CU_MEM_LOCATION_TYPE_DEVICE && rec.loc.id == 2,
	       "cuMemAdvise_v2(ptr, n, advice, {DEVICE, 2})");

	memset(&rec, 0xff, sizeof rec);
	cuMemAdvise(0xabc0, 4096, CU_MEM_ADVISE_SET_ACCESSED_BY, CU_DEVICE_CPU);
	expect(rec.loc.type == CU_MEM_LOCATION_TYPE_HOST, "cuMemAdvise(CU_DEVICE_CPU) -> {HOST, _}");

	memset(&rec, 0xff, sizeof rec);
	expect(cuMemPrefetchAsync(0xdef0, 512, 1, s) == CUDA_ERROR_INVALID_VALUE, "cuMemPrefetchAsync passes the result through");
	expect(strcmp(rec.fn, "cuMemPrefetchAsync_v2") == 0, "cuMemPrefetchAsync calls cuMemPrefetchAsync_v2");
	expect(rec.ptr == 0xdef0 && rec.count == 512 && rec.loc.type == CU_MEM_LOCATION_TYPE_DEVICE && rec.loc.id == 1 &&
	       rec.flags == 0 && rec.stream == s,
	       "cuMemPrefetchAsync_v2(ptr, n, {DEVICE, 1}, 0, stream)");

	memset(&rec, 0xff, sizeof rec);
	cuMemPrefetchAsync(0xdef0, 512, CU_DEVICE_CPU, s);
	expect(rec.loc.type == CU_MEM_LOCATION_TYPE_HOST && rec.flags == 0, "cuMemPrefetchAsync(CU_DEVICE_CPU) -> {HOST, _}, 0");

	memset(&rec, 0xff, sizeof rec);
	expect(cuGraphAddDependencies(g, a, b, 2) == CUDA_SUCCESS, "cuGraphAddDependencies result");
	expect(strcmp(rec.fn, "cuGraphAddDependencies_v2") == 0, "cuGraphAddDependencies calls _v2");
	expect(rec.graph == g && rec.from == a && rec.to == b && rec.edges == NULL && rec.n == 2,
	       "cuGraphAddDependencies_v2(g, from, to, NULL, n)");

	memset(&rec, 0xff, sizeof rec);
	expect(cuGraphGetEdges(g, a, b, &n) == CUDA_SUCCESS, "cuGraphGetEdges result");
	expect(strcmp(rec.fn, "cuGraphGetEdges_v2") == 0, "cuGraphGetEdges calls _v2");
	expect(rec.graph == g && rec.from == a && rec.to == b && rec.edges == NULL && rec.pn == &n,
	       "cuGraphGetEdges_v2(g, from, to, NULL, &n)");
}

#else

static void test_cuda12(void)
{
	/* The wrapper stays out of the way: cuda.h's own names. */
	expect(CUDA_VERSION >= 12000, "CUDA_VERSION >= 12000 (cu v0.9.6 needs CUDA 12 or later)");
	expect_name("cuCtxCreate", STR(cuCtxCreate), "cuCtxCreate_v2");
	expect_name("cuMemAdvise", STR(cuMemAdvise), "cuMemAdvise");
	expect_name("cuMemPrefetchAsync", STR(cuMemPrefetchAsync), "cuMemPrefetchAsync");
	expect_name("cuGraphAddDependencies", STR(cuGraphAddDependencies), "cuGraphAddDependencies");
	expect_name("cuGraphGetEdges", STR(cuGraphGetEdges), "cuGraphGetEdges");
}

#endif

int main(void)
{
#ifndef CONVTRAIN_CUDACOMPAT_CUDA_H
	printf("FAIL: <cuda.h> is not gpu/cudacompat/cuda.h: put its folder first on the include path\n");
	return 1;
#endif
#if CUDA_VERSION >= 13000
	test_cuda13();
#else
	test_cuda12();
#endif
	if (failures > 0) {
		printf("cudacompat: %d failure(s) with CUDA_VERSION %d\n", failures, CUDA_VERSION);
		return 1;
	}
	printf("cudacompat: ok with CUDA_VERSION %d\n", CUDA_VERSION);
	return 0;
}
