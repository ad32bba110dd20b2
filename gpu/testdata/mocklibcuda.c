/*
 * mocklibcuda.c: a TEST-ONLY stand-in for the CUDA driver library, so that
 * the cu adapter (gpu/cu_driver.go) runs in CI on machines without a GPU.
 * scripts/ci-cuda.sh builds it as libcuda.so.1 in its own folder, together
 * with fallbacks returning CUDA_ERROR_STUB_LIBRARY (34) for every other
 * symbol of the link stub, and runs the cuda-tagged gpu test binary with
 * LD_LIBRARY_PATH pointing there and CONVTRAIN_MOCK_LIBCUDA=1
 * (TestCUDADriverMock in gpu/cu_driver_mock_test.go).
 *
 * What it models:
 * - one device, "convtrain mock GPU", compute capability 8.6, 84 SMs,
 *   1024 threads and 48 KiB shared memory per block, 1 GiB of memory;
 * - the primary context: cuDevicePrimaryCtxRetain returns the device's one
 *   primary context (not made current), counting retains; the release of
 *   the last retain destroys it (a later retain makes it live again);
 * - streams: cuStreamCreate makes a stream of the current context;
 *   launches, asynchronous copies and event records must name a live
 *   stream of the current context: the legacy stream (NULL) and the
 *   synchronous copies are refused with CUDA_ERROR_NOT_PERMITTED (800),
 *   so the adapter must put all its work on its own stream; a created
 *   stream that is not CU_STREAM_NON_BLOCKING is refused the same way;
 *   work runs at once, so cuStreamSynchronize only checks the stream;
 * - contexts: cuCtxCreate pushes on the calling thread, every memory,
 *   module, launch and event call fails with CUDA_ERROR_INVALID_CONTEXT
 *   unless a live context is current on the calling thread (so the adapter
 *   must make its context current on whatever thread it runs);
 *   cuCtxCreate_v4 (CUDA 13) accepts only NULL creation parameters;
 * - device memory is host memory (calloc), so copies are memcpy and device
 *   pointers are host addresses; cuMemAlloc fails with out-of-memory past
 *   the 1 GiB total;
 * - modules: PTX text containing "mock_bad_ptx" fails to JIT with
 *   CUDA_ERROR_INVALID_PTX and a log written to CU_JIT_ERROR_LOG_BUFFER;
 *   otherwise any PTX loads and has the kernels "mock_echo" and "mock_fill";
 * - with CONVTRAIN_MOCK_NOOP_KERNELS=1 in the environment, fill_f32_v1
 *   runs as mock_fill (the same parameters), so new buffers are zeroed and
 *   the divergence check's answer (set by a fill, lowered by a kernel that
 *   finds a NaN) reads "all finite"; every other
 *   name resolves too, to a kernel that does nothing: convtrain's whole
 *   module loads and a training step runs through the real cu adapter,
 *   which is how scripts/ci-cuda.sh measures the host's cost of issuing a
 *   step (`train bench -device gpu`) without a GPU;
 * - kernels: mock_echo(u64 *out, u64 n, a_1 .. a_n) writes grid x,y,z,
 *   block x,y,z, shared bytes, n, then the 8 bytes at each kernelParams[2+i]
 *   to out[0..8+n); mock_fill(f32 *out, s32 n, f32 v) reads n and v as 4-byte
 *   values (as a driver reads .s32 and .f32 parameters) and sets out[0..n);
 * - events: each record stamps a counter; elapsed time is 0.5 ms per record
 *   between two events.
 * - graphs: cuStreamBeginCapture_v2 puts a stream in capture mode (any of
 *   the three modes; one capture per stream at a time); while capturing, a
 *   launch or a device-to-device copy on it is recorded (a launch with
 *   copies of its parameters: 8 bytes each, the mock's kernels' counts)
 *   instead of run, and host copies, cuStreamSynchronize and event records
 *   on it fail with CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED (900);
 *   cuStreamEndCapture returns the recorded graph, cuGraphInstantiateWithFlags
 *   (flags 0) copies it into an executable graph, cuGraphLaunch runs the
 *   recorded nodes in order on a stream that is not capturing, and
 *   cuGraphExecDestroy and cuGraphDestroy free them (handles checked).
 *
 * It is built with -Wl,-soname,libcuda.so.1 and never installed anywhere;
 * never put its folder on a library path outside that test run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

enum {
	OK = 0,
	ERR_INVALID_VALUE = 1,
	ERR_OUT_OF_MEMORY = 2,
	ERR_INVALID_DEVICE = 101,
	ERR_INVALID_CONTEXT = 201,
	ERR_INVALID_PTX = 218,
	ERR_INVALID_HANDLE = 400,
	ERR_NOT_FOUND = 500,
	ERR_ILLEGAL_STATE = 401,
	ERR_NOT_PERMITTED = 800,
	ERR_CAPTURE_UNSUPPORTED = 900,
};

#define TOTAL_MEM (1ull << 30)

struct ctx {
	int magic;
	int dev;
	int alive;
};
struct module {
	int magic;
};
struct function {
	const char *name;
};
struct event {
	int magic;
	long stamp;
};
struct graph;
struct stream {
	int magic;
	struct ctx *ctx;
	struct graph *capture; /* non-NULL while capturing */
};

#define MAX_PARAMS 64
/* node is one recorded launch (f non-NULL) or device-to-device copy. */
struct node {
	struct function *f;
	unsigned int dims[7]; /* grid x,y,z, block x,y,z, shared bytes */
	int nparams;
	uint64_t params[MAX_PARAMS];
	CUdeviceptr dst, src;
	size_t n;
};
struct graph {
	int magic; /* 0x6A: a graph, 0x6E: an executable graph */
	int n, cap;
	struct node *nodes;
};

static __thread struct ctx *current;
static size_t used;
static long clock_ticks;
static struct function echo_fn = {"mock_echo"};
static struct function fill_fn = {"mock_fill"};
static struct function noop_fn = {"(no-op)"};

static int have_ctx(void) { return current != NULL && current->magic == 0xC7C7 && current->alive; }

static struct ctx primary = {0xC7C7, 0, 0};
static int primary_retains;

/* stream_ok checks a stream argument: a live created stream of the current
 * context; NULL (the legacy stream) is not permitted. */
static CUresult stream_ok(void *stream)
{
	struct stream *st = stream;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	if (st == NULL)
		return ERR_NOT_PERMITTED;
	if (st->magic != 0x57 || st->ctx != current)
		return ERR_INVALID_HANDLE;
	return OK;
}

CUresult cuDevicePrimaryCtxRetain(void **pctx, CUdevice d)
{
	if (d != 0)
		return ERR_INVALID_DEVICE;
	primary_retains++;
	primary.alive = 1;
	*pctx = &primary;
	return OK;
}
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d)
{
	if (d != 0)
		return ERR_INVALID_DEVICE;
	if (primary_retains == 0)
		return ERR_INVALID_CONTEXT;
	if (--primary_retains == 0) {
		primary.alive = 0;
		if (current == &primary)
			current = NULL;
	}
	return OK;
}
CUresult cuDevicePrimaryCtxRelease(CUdevice d) { return cuDevicePrimaryCtxRelease_v2(d); }

CUresult cuStreamCreate(void **ps, unsigned int flags)
{
	struct stream *st;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	if (flags != 1) /* CU_STREAM_NON_BLOCKING */
		return ERR_NOT_PERMITTED;
	st = calloc(1, sizeof *st);
	st->magic = 0x57;
	st->ctx = current;
	*ps = st;
	return OK;
}
/* capture_ok is stream_ok for the calls a capturing stream refuses. */
static CUresult capture_ok(void *stream)
{
	CUresult r = stream_ok(stream);
	if (r != OK)
		return r;
	return ((struct stream *)stream)->capture != NULL ? ERR_CAPTURE_UNSUPPORTED : OK;
}
CUresult cuStreamSynchronize(void *stream) { return capture_ok(stream); }
/* cuStreamQuery: the mock's work is done when it returns: CUDA_SUCCESS. */
CUresult cuStreamQuery(void *stream) { return capture_ok(stream); }

/* add_node appends a zeroed node to g. */
static struct node *add_node(struct graph *g)
{
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 16;
		g->nodes = realloc(g->nodes, (size_t)g->cap * sizeof *g->nodes);
	}
	memset(&g->nodes[g->n], 0, sizeof g->nodes[0]);
	return &g->nodes[g->n++];
}
CUresult cuStreamDestroy_v2(void *stream)
{
	CUresult r = stream_ok(stream);
	if (r != OK)
		return r;
	((struct stream *)stream)->magic = 0;
	free(stream);
	return OK;
}
CUresult cuStreamDestroy(void *stream) { return cuStreamDestroy_v2(stream); }

CUresult cuInit(unsigned int flags) { return flags == 0 ? OK : ERR_INVALID_VALUE; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return OK; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return OK; }
CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
	if (ordinal != 0)
		return ERR_INVALID_DEVICE;
	*d = 0;
	return OK;
}
CUresult cuDeviceGetName(char *name, int len, CUdevice d)
{
	if (d != 0)
		return ERR_INVALID_DEVICE;
	strncpy(name, "convtrain mock GPU", (size_t)len);
	name[len - 1] = 0;
	return OK;
}
CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice d)
{
	if (d != 0)
		return ERR_INVALID_DEVICE;
	switch (attr) {
	case 75: *v = 8; return OK;     /* compute capability major */
	case 76: *v = 6; return OK;     /* minor */
	case 16: *v = 84; return OK;    /* multiprocessors */
	case 1: *v = 1024; return OK;   /* max threads per block */
	case 8: *v = 48 << 10; return OK; /* max shared memory per block */
	}
	*v = 0;
	return OK;
}
CUresult cuDeviceTotalMem_v2(size_t *b, CUdevice d) { (void)d; *b = TOTAL_MEM; return OK; }

static CUresult create(void **pctx, CUdevice d)
{
	struct ctx *c;
	if (d != 0)
		return ERR_INVALID_DEVICE;
	c = calloc(1, sizeof *c);
	c->magic = 0xC7C7;
	c->alive = 1;
	*pctx = c;
	current = c; /* pushed on the calling thread */
	return OK;
}
CUresult cuCtxCreate_v2(void **pctx, unsigned int flags, CUdevice d) { (void)flags; return create(pctx, d); }
CUresult cuCtxCreate_v4(void **pctx, void *params, unsigned int flags, CUdevice d)
{
	(void)flags;
	if (params != NULL)
		return ERR_INVALID_VALUE;
	return create(pctx, d);
}
CUresult cuCtxPopCurrent_v2(void **pctx)
{
	if (pctx)
		*pctx = current;
	current = NULL;
	return OK;
}
CUresult cuCtxSetCurrent(void *c)
{
	struct ctx *x = c;
	if (x != NULL && (x->magic != 0xC7C7 || !x->alive))
		return ERR_INVALID_CONTEXT;
	current = x;
	return OK;
}
CUresult cuCtxGetCurrent(void **pctx) { *pctx = current; return OK; }
CUresult cuCtxDestroy_v2(void *c)
{
	struct ctx *x = c;
	if (x == NULL || x->magic != 0xC7C7 || !x->alive)
		return ERR_INVALID_CONTEXT;
	x->alive = 0; /* kept allocated: a stale handle stays detectable */
	if (current == x)
		current = NULL;
	return OK;
}
CUresult cuCtxSynchronize(void) { return have_ctx() ? OK : ERR_INVALID_CONTEXT; }

CUresult cuMemGetInfo_v2(size_t *free_, size_t *total)
{
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	*free_ = TOTAL_MEM - used;
	*total = TOTAL_MEM;
	return OK;
}
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n)
{
	size_t *blk;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	if (n == 0)
		return ERR_INVALID_VALUE;
	if (n > TOTAL_MEM - used)
		return ERR_OUT_OF_MEMORY;
	blk = calloc(1, n + 16);
	if (blk == NULL)
		return ERR_OUT_OF_MEMORY;
	blk[0] = n;
	used += n;
	*p = (CUdeviceptr)(uintptr_t)((char *)blk + 16);
	return OK;
}
CUresult cuMemFree_v2(CUdeviceptr p)
{
	size_t *blk;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	blk = (size_t *)((char *)(uintptr_t)p - 16);
	used -= blk[0];
	free(blk);
	return OK;
}
/* The synchronous copies run on the legacy stream: not permitted. */
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
	(void)dst, (void)src, (void)n;
	return have_ctx() ? ERR_NOT_PERMITTED : ERR_INVALID_CONTEXT;
}
CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
	(void)dst, (void)src, (void)n;
	return have_ctx() ? ERR_NOT_PERMITTED : ERR_INVALID_CONTEXT;
}
CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
	(void)dst, (void)src, (void)n;
	return have_ctx() ? ERR_NOT_PERMITTED : ERR_INVALID_CONTEXT;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *stream)
{
	CUresult r = capture_ok(stream);
	if (r != OK)
		return r;
	memcpy((void *)(uintptr_t)dst, src, n);
	return OK;
}
CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *stream)
{
	CUresult r = capture_ok(stream);
	if (r != OK)
		return r;
	memcpy(dst, (void *)(uintptr_t)src, n);
	return OK;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void *stream)
{
	struct stream *st = stream;
	CUresult r = stream_ok(stream);
	if (r != OK)
		return r;
	if (st->capture != NULL) {
		struct node *nd = add_node(st->capture);
		nd->dst = dst, nd->src = src, nd->n = n;
		return OK;
	}
	memmove((void *)(uintptr_t)dst, (void *)(uintptr_t)src, n);
	return OK;
}

CUresult cuModuleLoadDataEx(void **mod, const void *image, unsigned int nopt, int *opts, void **vals)
{
	static const char log[] = "ptxas application ptx input, line 1; error   : mock_bad_ptx is not a PTX instruction";
	struct module *m;
	unsigned int i;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	if (strstr((const char *)image, "mock_bad_ptx") != NULL) {
		char *buf = NULL;
		size_t size = 0;
		for (i = 0; i < nopt; i++) {
			if (opts[i] == 5)
				buf = vals[i];
			if (opts[i] == 6)
				size = (size_t)(uintptr_t)vals[i];
		}
		if (buf != NULL && size > 0) {
			strncpy(buf, log, size);
			buf[size - 1] = 0;
			for (i = 0; i < nopt; i++)
				if (opts[i] == 6)
					vals[i] = (void *)(uintptr_t)(strlen(buf) + 1);
		}
		return ERR_INVALID_PTX;
	}
	m = calloc(1, sizeof *m);
	m->magic = 0x40D;
	*mod = m;
	return OK;
}
CUresult cuModuleUnload(void *mod)
{
	struct module *m = mod;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	if (m == NULL || m->magic != 0x40D)
		return ERR_INVALID_HANDLE;
	m->magic = 0;
	free(m);
	return OK;
}
static int noop_kernels(void)
{
	const char *v = getenv("CONVTRAIN_MOCK_NOOP_KERNELS");
	return v != NULL && strcmp(v, "1") == 0;
}

CUresult cuModuleGetFunction(void **fn, void *mod, const char *name)
{
	struct module *m = mod;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	if (m == NULL || m->magic != 0x40D)
		return ERR_INVALID_HANDLE;
	if (strcmp(name, "mock_echo") == 0)
		*fn = &echo_fn;
	else if (strcmp(name, "mock_fill") == 0)
		*fn = &fill_fn;
	else if (strcmp(name, "fill_f32_v1") == 0 && noop_kernels())
		*fn = &fill_fn; /* the same parameters: (f32 *p, s32 n, f32 v) */
	else if (noop_kernels())
		*fn = &noop_fn;
	else
		return ERR_NOT_FOUND;
	return OK;
}

/* run_kernel runs one of the mock's kernels. */
static CUresult run_kernel(struct function *f, const unsigned int *dims, void **params)
{
	if (f == &echo_fn) {
		uint64_t *out = (uint64_t *)(uintptr_t)(*(uint64_t *)params[0]);
		uint64_t n = *(uint64_t *)params[1], i;
		for (i = 0; i < 7; i++)
			out[i] = dims[i];
		out[7] = n;
		for (i = 0; i < n; i++)
			memcpy(&out[8 + i], params[2 + i], 8);
		return OK;
	}
	if (f == &fill_fn) {
		float *out = (float *)(uintptr_t)(*(uint64_t *)params[0]);
		int32_t n;
		float v;
		memcpy(&n, params[1], 4); /* a .s32 parameter: 4 bytes */
		memcpy(&v, params[2], 4); /* a .f32 parameter: 4 bytes */
		for (int32_t i = 0; i < n; i++)
			out[i] = v;
		return OK;
	}
	if (f == &noop_fn)
		return OK;
	return ERR_INVALID_HANDLE;
}

CUresult cuLaunchKernel(void *f, unsigned int gx, unsigned int gy, unsigned int gz,
			unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared,
			void *stream, void **params, void **extra)
{
	struct stream *st = stream;
	unsigned int dims[7] = {gx, gy, gz, bx, by, bz, shared};
	CUresult r = stream_ok(stream);
	(void)extra;
	if (r != OK)
		return r;
	if (f != &echo_fn && f != &fill_fn && f != &noop_fn)
		return ERR_INVALID_HANDLE;
	if (st->capture != NULL) {
		/* Record the launch with copies of its parameters (8 bytes each:
		 * the adapter passes 8-byte slots). */
		struct node *nd;
		int np = 0;
		if (f == &echo_fn)
			np = 2 + (int)*(uint64_t *)params[1];
		else if (f == &fill_fn)
			np = 3;
		if (np > MAX_PARAMS)
			return ERR_INVALID_VALUE;
		nd = add_node(st->capture);
		nd->f = f;
		memcpy(nd->dims, dims, sizeof dims);
		nd->nparams = np;
		for (int i = 0; i < np; i++)
			memcpy(&nd->params[i], params[i], 8);
		return OK;
	}
	return run_kernel(f, dims, params);
}

CUresult cuStreamBeginCapture_v2(void *stream, int mode)
{
	struct stream *st = stream;
	CUresult r = stream_ok(stream);
	if (r != OK)
		return r;
	if (mode < 0 || mode > 2)
		return ERR_INVALID_VALUE;
	if (st->capture != NULL)
		return ERR_ILLEGAL_STATE;
	st->capture = calloc(1, sizeof *st->capture);
	st->capture->magic = 0x6A;
	return OK;
}
CUresult cuStreamEndCapture(void *stream, void **pgraph)
{
	struct stream *st = stream;
	CUresult r = stream_ok(stream);
	if (r != OK)
		return r;
	if (st->capture == NULL)
		return ERR_ILLEGAL_STATE;
	*pgraph = st->capture;
	st->capture = NULL;
	return OK;
}
CUresult cuGraphInstantiateWithFlags(void **pexec, void *graph, unsigned long long flags)
{
	struct graph *g = graph, *e;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	if (g == NULL || g->magic != 0x6A)
		return ERR_INVALID_HANDLE;
	if (flags != 0)
		return ERR_INVALID_VALUE;
	e = calloc(1, sizeof *e);
	e->magic = 0x6E;
	e->n = e->cap = g->n;
	e->nodes = malloc((size_t)(g->n ? g->n : 1) * sizeof *e->nodes);
	memcpy(e->nodes, g->nodes, (size_t)g->n * sizeof *e->nodes);
	*pexec = e;
	return OK;
}
CUresult cuGraphLaunch(void *exec, void *stream)
{
	struct graph *e = exec;
	CUresult r = capture_ok(stream);
	if (r != OK)
		return r;
	if (e == NULL || e->magic != 0x6E)
		return ERR_INVALID_HANDLE;
	for (int i = 0; i < e->n; i++) {
		struct node *nd = &e->nodes[i];
		if (nd->f == NULL) {
			memmove((void *)(uintptr_t)nd->dst, (void *)(uintptr_t)nd->src, nd->n);
			continue;
		}
		void *ptrs[MAX_PARAMS];
		for (int j = 0; j < nd->nparams; j++)
			ptrs[j] = &nd->params[j];
		if ((r = run_kernel(nd->f, nd->dims, ptrs)) != OK)
			return r;
	}
	return OK;
}
static CUresult free_graph(struct graph *g, int magic)
{
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	if (g == NULL || g->magic != magic)
		return ERR_INVALID_HANDLE;
	g->magic = 0;
	free(g->nodes);
	free(g);
	return OK;
}
CUresult cuGraphExecDestroy(void *exec) { return free_graph(exec, 0x6E); }
CUresult cuGraphDestroy(void *graph) { return free_graph(graph, 0x6A); }

CUresult cuEventCreate(void **ev, unsigned int flags)
{
	struct event *e;
	(void)flags;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	e = calloc(1, sizeof *e);
	e->magic = 0xE7;
	e->stamp = -1;
	*ev = e;
	return OK;
}
CUresult cuEventRecord(void *ev, void *stream)
{
	struct event *e = ev;
	CUresult r = capture_ok(stream);
	if (r != OK)
		return r;
	if (e == NULL || e->magic != 0xE7)
		return ERR_INVALID_HANDLE;
	e->stamp = ++clock_ticks;
	return OK;
}
CUresult cuEventSynchronize(void *ev)
{
	struct event *e = ev;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	return (e != NULL && e->magic == 0xE7) ? OK : ERR_INVALID_HANDLE;
}
static CUresult elapsed(float *ms, void *a, void *b)
{
	struct event *s = a, *e = b;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	if (s == NULL || e == NULL || s->magic != 0xE7 || e->magic != 0xE7)
		return ERR_INVALID_HANDLE;
	if (s->stamp < 0 || e->stamp < 0)
		return 600; /* CUDA_ERROR_NOT_READY */
	*ms = 0.5f * (float)(e->stamp - s->stamp);
	return OK;
}
CUresult cuEventElapsedTime(float *ms, void *a, void *b) { return elapsed(ms, a, b); }
CUresult cuEventElapsedTime_v2(float *ms, void *a, void *b) { return elapsed(ms, a, b); }
CUresult cuEventDestroy_v2(void *ev)
{
	struct event *e = ev;
	if (!have_ctx())
		return ERR_INVALID_CONTEXT;
	if (e == NULL || e->magic != 0xE7)
		return ERR_INVALID_HANDLE;
	e->magic = 0;
	free(e);
	return OK;
}
