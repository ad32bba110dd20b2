/*
 * gpu/cudacompat/cuda.h: lets gorgonia.org/cu v0.9.6 (unmodified) build
 * against CUDA 13 headers. It is our own file, not NVIDIA's header: it
 * includes the real cuda.h with #include_next and, when CUDA_VERSION >= 13000,
 * maps the five driver functions whose signatures changed in CUDA 13.0 back
 * to the CUDA 12 signatures cu calls them with, as static inline shims over
 * the 13.0 functions. With CUDA 12 headers it adds nothing.
 *
 * Put this folder first on the include path, before the CUDA include folder:
 *
 *   CGO_CFLAGS="-I$PWD/gpu/cudacompat -I/usr/local/cuda/include" \
 *   CGO_LDFLAGS="-L/usr/local/cuda/lib64/stubs" go build -tags cuda ./...
 *
 * Do not force it with -include: that puts it into runtime/cgo's C files too.
 *
 * The five (cu v0.9.6 call sites):
 *   cuCtxCreate(&ctx, flags, dev)           ctx.go, ctx_debug.go, cucontext.go
 *       -> cuCtxCreate_v4(&ctx, NULL, flags, dev)   (NULL: no affinity/CIG params)
 *   cuMemAdvise(ptr, n, advice, dev)        addressing.go
 *       -> cuMemAdvise_v2(ptr, n, advice, loc)
 *   cuMemPrefetchAsync(ptr, n, dev, stream) addressing.go
 *       -> cuMemPrefetchAsync_v2(ptr, n, loc, 0, stream)
 *          where loc = {CU_MEM_LOCATION_TYPE_HOST, 0} for dev == CU_DEVICE_CPU,
 *                      {CU_MEM_LOCATION_TYPE_DEVICE, dev} otherwise
 *   cuGraphAddDependencies(g, from, to, n)  graph.go
 *       -> cuGraphAddDependencies_v2(g, from, to, NULL, n)   (default edges)
 *   cuGraphGetEdges(g, from, to, &n)        graph.go
 *       -> cuGraphGetEdges_v2(g, from, to, NULL, &n)
 */
#ifndef CONVTRAIN_CUDACOMPAT_CUDA_H
#define CONVTRAIN_CUDACOMPAT_CUDA_H

#include_next <cuda.h>

#if defined(CUDA_VERSION) && CUDA_VERSION >= 13000

#include <stddef.h>

static inline CUmemLocation convtrain_cu12_location(CUdevice dev)
{
	CUmemLocation loc;
	if (dev == CU_DEVICE_CPU) {
		loc.type = CU_MEM_LOCATION_TYPE_HOST;
		loc.id = 0; /* ignored for host */
	} else {
		loc.type = CU_MEM_LOCATION_TYPE_DEVICE;
		loc.id = (int)dev;
	}
	return loc;
}

/* cuda.h 13.0: #define cuCtxCreate cuCtxCreate_v4 */
static inline CUresult convtrain_cu12_cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
	return cuCtxCreate_v4(pctx, NULL, flags, dev);
}
#undef cuCtxCreate
#define cuCtxCreate convtrain_cu12_cuCtxCreate

/* cuda.h 13.0: #define cuMemAdvise cuMemAdvise_v2 */
static inline CUresult convtrain_cu12_cuMemAdvise(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUdevice device)
{
	return cuMemAdvise_v2(devPtr, count, advice, convtrain_cu12_location(device));
}
#undef cuMemAdvise
#define cuMemAdvise convtrain_cu12_cuMemAdvise

/* cuda.h 13.0: #define cuMemPrefetchAsync __CUDA_API_PTSZ(cuMemPrefetchAsync_v2);
 * __CUDA_API_PTSZ stays defined, so the per-thread-stream variant is kept. */
static inline CUresult convtrain_cu12_cuMemPrefetchAsync(CUdeviceptr devPtr, size_t count, CUdevice dstDevice, CUstream hStream)
{
	return __CUDA_API_PTSZ(cuMemPrefetchAsync_v2)(devPtr, count, convtrain_cu12_location(dstDevice), 0, hStream);
}
#undef cuMemPrefetchAsync
#define cuMemPrefetchAsync convtrain_cu12_cuMemPrefetchAsync

/* cuda.h 13.0: #define cuGraphAddDependencies cuGraphAddDependencies_v2 */
static inline CUresult convtrain_cu12_cuGraphAddDependencies(CUgraph hGraph, const CUgraphNode *from, const CUgraphNode *to, size_t numDependencies)
{
	return cuGraphAddDependencies_v2(hGraph, from, to, NULL, numDependencies);
}
#undef cuGraphAddDependencies
#define cuGraphAddDependencies convtrain_cu12_cuGraphAddDependencies

/* cuda.h 13.0: #define cuGraphGetEdges cuGraphGetEdges_v2 */
static inline CUresult convtrain_cu12_cuGraphGetEdges(CUgraph hGraph, CUgraphNode *from, CUgraphNode *to, size_t *numEdges)
{
	return cuGraphGetEdges_v2(hGraph, from, to, NULL, numEdges);
}
#undef cuGraphGetEdges
#define cuGraphGetEdges convtrain_cu12_cuGraphGetEdges

#endif /* CUDA_VERSION >= 13000 */

#endif /* CONVTRAIN_CUDACOMPAT_CUDA_H */
