// conv_igemm_fp32_pipe.cu: FP32 (FFMA) convolutions on the packed cp.async
// pipeline of the tensor-core kernels; sm_80 and newer (cp.async). The
// backward-data body is pipe_bwd.cuh's dgrad_ffma; the forward and
// backward-filter bodies are below.
// gen-ptx: target sm_80
//
// Versions:
//
//	conv2d_bwd_data_v11_igemm_pipe    dx from float32 dyh (N,P,Q,Kp) and wt (C,R,S,Kp) (flipped
//	                                  taps), both from pack_transpose_f32_v2 (Kp a multiple of 16:
//	                                  a k-tile lies in one tap): M = N·H·W, N = C, K = R·S·Kp;
//	                                  128×128×16 tiles, 256 threads of 8×8 outputs, 3-stage cp.async
//	                                  pipeline of 16-byte copies (dy: two of one pixel a thread),
//	                                  float4 shared reads from an XOR-swizzled dy tile and a
//	                                  broadcast filter tile; any stride.
//	conv2d_fwd_v12_igemm_pipe         y from float32 xh (N,H,W,Cp) and wh (K,R,S,Cp), both from
//	                                  pack_transpose_f32_v2 (Cp a multiple of 16): M = N·P·Q, N = K,
//	                                  K = R·S·Cp; v11's tiles, threads, pipeline, swizzled pixel tile
//	                                  and broadcast filter tile, the forward taps; bias and optional
//	                                  ReLU fused.
//	conv2d_bwd_filter_v13_igemm_pipe  split z of dw from float32 dyh (N,P,Q,Kp) and xh (N,H,W,Cp)
//	                                  (Kp, Cp multiples of 16): M = K, N = R·S·Cp, K = N·P·Q in
//	                                  16-row k-tiles, tilesPerSplit a split; 128×128×16 tiles of
//	                                  k-major rows (512 bytes), 256 threads of 8×8 outputs, two
//	                                  float4 of each tile a k (64 FFMA for 4 shared loads); one
//	                                  split writes dw (KCRS), several write channels-last partial
//	                                  sums ws[z] (K,R,S,Cp) with 16-byte stores.
//	conv2d_bwd_filter_v13_reduce      dw (KCRS) = Σ_z ws[z] (K,R,S,Cp), z ascending: v13's splits.
//
// Numerics: exact float32 FFMA chains from 0, k-tiles in ascending order:
// v11 over k = (r, s, kf) (the flipped taps), v12 over k = (r, s, c), v13
// over j = (n, p, q) within its split, the splits then added in split
// order by conv2d_bwd_filter_v13_reduce (z ascending from split 0, as
// conv2d_bwd_filter_v2_reduce); the zero terms of the padded channels and of
// the stride add exactly zero (a chain from +0 is never −0); v12 adds the
// bias last. With integer inputs the results equal the direct kernels',
// else each is within (m+1)·u·Σ|terms|. Their orders differ from
// v2/v4/v6's (k = (c, r, s)), so the dispatcher does not run them (FP32's
// default bits stay those of v2/v4/v6); they are the FP32 kernels of the
// pipeline, measured beside them. No atomics.

#define __launch_bounds__(n, m) __attribute__((launch_bounds(n, m)))

#define kBM 128      // block tile rows (pixels)
#define kBN 128      // block tile columns (channels)
#define kBK 16       // k-tile depth (floats)
#define kThreads 256 // 16×16 threads of 8×8 outputs
#define kStages 3

#include "pipe_bwd.cuh"

// conv2d_bwd_data_v11_igemm_pipe overwrites dx with
//
//	dx[n,c,h,w] = Σ_k Σ_r Σ_s dy[n,k,p,q] · w[k,c,r,s],
//	p = (h + ph − r)/sh, q = (w + pw − s)/sw when divisible and in range,
//
// dyh is (N,P,Q,Kp), wt is (C,R,S,Kp) float32 from pack_transpose_f32_v2,
// 16-byte aligned, Kp a multiple of 16; dx is (N,C,H,W).
//
// Launch: grid = (⌈N·H·W/128⌉, ⌈C/128⌉), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads, 1)
    conv2d_bwd_data_v11_igemm_pipe(const float* dyh, const float* wt, float* dx, int N, int C,
                                   int H, int W, int K, int R, int S, int P, int Q, int sh, int sw,
                                   int ph, int pw, int Kp) {
  // dyh is (N,P,Q,Kp), wt is (C,R,S,Kp), dx is (N,C,H,W)
  __shared__ __attribute__((aligned(128))) unsigned char smem[kStages * 2 * kBM * 64];
  pipe::dgrad_ffma(dyh, wt, dx, N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, Kp, smem);
}

// swzA is the byte offset of chunk c of row r in a 64-byte-row pixel tile
// (v12's A tile): chunk c ^ g((r >> 1) & 3) with g(u) = 2·(u & 1) + (u >>
// 1), as dgrad_ffma's (see pipe_bwd.cuh): the 8 rows a float4 phase reads
// and the loader's phases (rows 4q … 4q + 3, chunks {0, 1} or {2, 3}) fall
// into distinct 16-byte bank groups.
static __device__ __forceinline__ unsigned swzA(int r, int c) {
  int u = (r >> 1) & 3;
  return (unsigned)(r * 64 + ((c ^ (((u & 1) << 1) | (u >> 1))) << 4));
}

// conv2d_fwd_v12_igemm_pipe computes
//
//	y[n,k,p,q] = act(b[k] + Σ_r Σ_s Σ_c wh[k,r,s,c] · xh[n, p·sh − ph + r, q·sw − pw + s, c])
//
// in float32 (b may be null; act = ReLU when relu ≠ 0: NaN propagates, −0
// becomes +0). xh is (N,H,W,Cp) and wh is (K,R,S,Cp) float32 from
// pack_transpose_f32_v2, 16-byte aligned, Cp a multiple of 16 (a k-tile
// lies in one tap); y is (N,K,P,Q).
//
// Thread (tm, tn) = (tid % 16, tid / 16) owns pixels m0 + tm + 16·i and
// filters n0 + tn + 16·j (i, j < 8); per 4-float chunk of k it reads 8 + 8
// float4 (the 8 lanes of a phase: 8 consecutive pixel rows of the
// swizzled tile, and one filter row, a broadcast) and issues 256 FFMA
// (8·8 for each of the chunk's 4 k). The pixel loader copies chunks h and
// h + 2 (h = tid % 2) of pixel row tid / 2 (whole 32-byte sectors; one
// tap bookkeeping a thread); the filter loader chunk tid % 4 of rows tid /
// 4 and + 64, 128 contiguous bytes a phase.
//
// Launch: grid = (⌈N·P·Q/128⌉, ⌈K/128⌉), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads, 1)
    conv2d_fwd_v12_igemm_pipe(const float* xh, const float* wh, const float* b, float* y, int N,
                              int C, int H, int W, int K, int R, int S, int P, int Q, int sh,
                              int sw, int ph, int pw, int relu, int Cp) {
  // xh is (N,H,W,Cp), wh is (K,R,S,Cp), b is (K) or null, y is (N,K,P,Q)
  constexpr int kTileBytes = kBM * 64;
  __shared__ __attribute__((aligned(128))) unsigned char smem[kStages * 2 * kTileBytes];
  unsigned long long sgen;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(sgen) : "l"(smem));
  const unsigned sbase = (unsigned)sgen;  // stage s: A at sbase + 2s·kTileBytes, B after it

  const int tid = (int)threadIdx.x;
  const int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBN;
  const int PQ = P * Q, M = N * PQ, Kg = R * S * Cp;
  const int ktiles = Kg / kBK;

  // Pixel loader: row ar, chunks ah and ah + 2; the row's input
  // coordinates at tap (0, 0) are (h0, w0).
  const int ar = tid >> 1, ah = tid & 1;
  int pixBase, h0, w0;
  {
    int m = m0 + ar;
    int n = m / PQ, pq = m - n * PQ;
    int p = pq / Q, q = pq - p * Q;
    pixBase = n * H * W;
    h0 = m < M ? p * sh - ph : -(1 << 30);  // an invalid row never passes the h test
    w0 = q * sw - pw;
  }
  // The k index of the row's first chunk in the next tile as tap (lrr,
  // lss) and channel lcc. aok tells whether the tap reads inside the
  // input and aoff is then the pixel's element offset into xh (else 0:
  // the chunks are zero-filled); they change only when the tap does.
  int lrr = 0, lss = 0, lcc = 4 * ah;
  int aoff;
  bool aok;
  auto retap = [&]() {
    int h = h0 + lrr, v = w0 + lss;
    aok = lrr < R && (unsigned)h < (unsigned)H && (unsigned)v < (unsigned)W;
    aoff = aok ? (pixBase + h * W + v) * Cp : 0;
  };
  // advance moves to the next k-tile: the next tap when this one's
  // channels are done (Cp a multiple of kBK: never more than one).
  auto advance = [&]() {
    lcc += kBK;
    if (lcc < Cp) return;
    lcc -= Cp;
    if (++lss == S) lss = 0, ++lrr;
    retap();
  };
  retap();
  // Filter loader: chunk lc of rows lr and lr + 64 (filters n0 + lr, +
  // 64) at element offsets wo0, wo1 into wh in the next tile (Kg is a
  // multiple of kBK: every chunk of a row is in range).
  const int lc = tid & 3, lr = tid >> 2;
  const bool okc0 = n0 + lr < K, okc1 = n0 + lr + 64 < K;
  unsigned wo0 = (unsigned)(n0 + lr) * (unsigned)Kg + 4 * lc, wo1 = wo0 + 64u * (unsigned)Kg;

  auto load = [&](int stage) {
    unsigned sa = sbase + (unsigned)(2 * stage * kTileBytes);
    unsigned sb = sa + kTileBytes;
    const float* src = xh + (unsigned)(aoff + lcc);
    pipe::cp_async16(sa + swzA(ar, ah), src, aok);
    pipe::cp_async16(sa + swzA(ar, ah + 2), src + 8, aok);
    pipe::cp_async16(sb + (unsigned)(lr * 64 + lc * 16), wh + (okc0 ? wo0 : 0u), okc0);
    pipe::cp_async16(sb + (unsigned)((lr + 64) * 64 + lc * 16), wh + (okc1 ? wo1 : 0u), okc1);
    wo0 += kBK;
    wo1 += kBK;
    advance();
  };

  const int tm = tid & 15, tn = tid >> 4;
  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; i++)
#pragma unroll
    for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;

#pragma unroll
  for (int s = 0; s < kStages - 1; s++) {
    if (s < ktiles) load(s);
    pipe::cp_async_commit();
  }
  // rd is the stage of k-tile kt (kt mod kStages), wr that of kt + 2,
  // rotated without a division.
  for (int kt = 0, rd = 0, wr = kStages - 1; kt < ktiles; kt++) {
    pipe::cp_async_wait1();  // this thread's copies of tile kt have landed
    __syncthreads();         // everyone's have, and stage wr is free
    if (kt + kStages - 1 < ktiles) load(wr);
    pipe::cp_async_commit();
    unsigned sa = sbase + (unsigned)(2 * rd * kTileBytes);
    unsigned sb = sa + kTileBytes + (unsigned)(tn * 64);
    rd = rd == kStages - 1 ? 0 : rd + 1;
    wr = wr == kStages - 1 ? 0 : wr + 1;
#pragma unroll
    for (int kc = 0; kc < 4; kc++) {
      float a[8][4], bb[8][4];
#pragma unroll
      for (int i = 0; i < 8; i++)
        pipe::lds128(sa + swzA(tm + 16 * i, kc), a[i][0], a[i][1], a[i][2], a[i][3]);
#pragma unroll
      for (int j = 0; j < 8; j++)
        pipe::lds128(sb + (unsigned)(1024 * j + 16 * kc), bb[j][0], bb[j][1], bb[j][2], bb[j][3]);
#pragma unroll
      for (int e = 0; e < 4; e++)
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
          for (int j = 0; j < 8; j++) acc[i][j] = __builtin_fmaf(a[i][e], bb[j][e], acc[i][j]);
    }
  }

#pragma unroll
  for (int i = 0; i < 8; i++) {
    int m = m0 + tm + 16 * i;
    if (m >= M) continue;
    int n = m / PQ, pq = m - n * PQ;
    float* yo = y + n * K * PQ + pq;
#pragma unroll
    for (int j = 0; j < 8; j++) {
      int k = n0 + tn + 16 * j;
      if (k >= K) continue;
      float v = acc[i][j];
      if (b != 0) v = v + b[k];
      if (relu) v = (v > 0.0f || v != v) ? v : 0.0f;
      yo[k * PQ] = v;
    }
  }
}

// sreg reads a special register (0: %tid.x, 1: %ctaid.x, 2: %ctaid.y, 3:
// %ctaid.z, 4: %nctaid.z) anew: volatile, so that the compiler does not
// merge it with an earlier read and keep that value in a register.
template <int R>
static __device__ __forceinline__ unsigned sreg() {
  unsigned v;
  if constexpr (R == 0) asm volatile("mov.u32 %0, %%tid.x;" : "=r"(v));
  if constexpr (R == 1) asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(v));
  if constexpr (R == 2) asm volatile("mov.u32 %0, %%ctaid.y;" : "=r"(v));
  if constexpr (R == 3) asm volatile("mov.u32 %0, %%ctaid.z;" : "=r"(v));
  if constexpr (R == 4) asm volatile("mov.u32 %0, %%nctaid.z;" : "=r"(v));
  return v;
}

// wgrad_store is v13's epilogue: acc[i][jj] is filter m0 + 4·tm + i%4 +
// 64·(i/4), column n0 + 4·tn + jj%4 + 64·(jj/4) = (r,s,c) of block
// (m0/128, n0/128, z), thread (tm, tn) = (tid % 16, tid / 16). It reads
// those indices from the special registers again (sreg), so that none of
// them is live across the main loop. One split writes dw, (K,C,R,S), for c < C;
// several write split z's partial sums ws[z], (K,R,S,Cp), 4 columns of a
// filter in one 16-byte store (Ng = R·S·Cp a multiple of 16: the 4 are in
// range or none is). The host keeps splits·K·R·S·Cp < 2³¹.
static __device__ __forceinline__ void wgrad_store(const float (&acc)[8][8], float* ws, int K,
                                                   int C, int RS, int Cp) {
  const int t = (int)sreg<0>(), tm = t & 15, tn = t >> 4;
  const int m0 = (int)sreg<1>() * kBM, n0 = (int)sreg<2>() * kBN;
  const int Ng = RS * Cp;
  if (sreg<4>() > 1) {
    float* o = ws + (int)sreg<3>() * K * Ng;
#pragma unroll
    for (int h = 0; h < 2; h++) {
      int cl = n0 + 4 * tn + 64 * h;
      if (cl >= Ng) continue;
#pragma unroll
      for (int i = 0; i < 8; i++) {
        int k = m0 + 4 * tm + (i & 3) + 64 * (i >> 2);
        if (k < K)
          asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(o + k * Ng + cl),
                       "f"(acc[i][4 * h]), "f"(acc[i][4 * h + 1]), "f"(acc[i][4 * h + 2]),
                       "f"(acc[i][4 * h + 3])
                       : "memory");
      }
    }
    return;
  }
#pragma unroll
  for (int jj = 0; jj < 8; jj++) {
    int cl = n0 + 4 * tn + (jj & 3) + 64 * (jj >> 2);
    int crs = cl / Cp, c = cl - crs * Cp;
    if (cl >= Ng || c >= C) continue;
#pragma unroll
    for (int i = 0; i < 8; i++) {
      int k = m0 + 4 * tm + (i & 3) + 64 * (i >> 2);
      if (k < K) ws[(k * C + c) * RS + crs] = acc[i][jj];
    }
  }
}

// conv2d_bwd_filter_v13_igemm_pipe computes split z = blockIdx.z of
//
//	dw[k,c,r,s] = Σ_j dyh[j,k] · xh[n, p·sh − ph + r, q·sw − pw + s, c],   j = (n·P + p)·Q + q
//
// over the reduction rows j of k-tiles z·tilesPerSplit … (z+1)·tilesPerSplit
// − 1 (kBK rows each, j < N·P·Q). dyh is (N,P,Q,Kp) and xh (N,H,W,Cp)
// float32 from pack_transpose_f32_v2, 16-byte aligned, Kp and Cp
// multiples of 16. The GEMM's M side is the filters k, its N side the
// columns (r,s,c) of R·S·Cp. With one split (gridDim.z = 1) ws is dw,
// (K,C,R,S), and only c < C is written; with several, ws[z] is split z's
// partial sums channels-last, (K,R,S,Cp) (the padded channels' sums are
// zero), which conv2d_bwd_filter_v13_reduce adds into dw. In KCRS the
// columns of a tile are R·S floats apart, so each 4-byte store would
// touch a 32-byte sector of its own; channels-last, a thread stores 4
// adjacent columns in 16 bytes and two lanes fill a sector.
//
// Both tiles hold kBK reduction rows of 128 columns (512 bytes, 32
// chunks), unswizzled. Thread (tm, tn) = (tid % 16, tid / 16) owns filters
// m0 + 4·tm + e + 64·h and columns n0 + 4·tn + e + 64·h (e < 4, h < 2): per
// row it reads two float4 of each tile and issues 64 FFMA. The 8 lanes of
// a phase read 128 contiguous bytes of the filter tile (tm = 0…7 or 8…15)
// and one float4 of the column tile (one tn: a broadcast). The loader
// copies chunks lc and lc + 16 (lc = tid % 16) of row tid / 16 of both
// tiles: a thread tracks one j = (n, p, q) a k-tile, its columns' offsets
// are loop-invariant, and the 8 lanes of a phase store 128 contiguous
// bytes and read 128 contiguous bytes of global memory.
// __launch_bounds__(256, 1) as v11 and v12: capped at 128 registers for
// two blocks an SM, the main loop (64 accumulators, 16 operands a k and
// the next k's, the loader's (n, p, q) and column state) spills.
//
// Launch: grid = (⌈K/128⌉, ⌈R·S·Cp/128⌉, splits), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads, 1)
    conv2d_bwd_filter_v13_igemm_pipe(const float* dyh, const float* xh, float* ws, int N, int C,
                                     int H, int W, int K, int R, int S, int P, int Q, int sh,
                                     int sw, int ph, int pw, int Kp, int Cp, int tilesPerSplit) {
  // dyh is (N,P,Q,Kp), xh is (N,H,W,Cp), ws is (splits,K,C,R,S)
  constexpr int kRowBytes = kBM * 4;
  constexpr int kTileBytes = kBK * kRowBytes;
  __shared__ __attribute__((aligned(128))) unsigned char smem[kStages * 2 * kTileBytes];
  unsigned long long sgen;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(sgen) : "l"(smem));
  const unsigned sbase = (unsigned)sgen;

  const int tid = (int)threadIdx.x;
  const int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBN;
  const int PQ = P * Q, NPQ = N * PQ, RS = R * S, Ng = RS * Cp;
  const int t0 = (int)blockIdx.z * tilesPerSplit;
  const int jEnd = NPQ < (t0 + tilesPerSplit) * kBK ? NPQ : (t0 + tilesPerSplit) * kBK;
  const int ktiles = (jEnd - t0 * kBK + kBK - 1) / kBK;

  // Loader: chunks lc + 16·i (i < 2) of row lr. A: filters m0 + 4·(lc +
  // 16·i) (a chunk lies wholly below or above Kp); B: columns n0 + 4·(lc
  // + 16·i) = (r, s, c) (Cp a multiple of 4: one tap a chunk).
  const int lc = tid & 15, lr = tid >> 4;
  bool okA[2], okB[2];
  int rr[2], ss[2], colOff[2];
#pragma unroll
  for (int i = 0; i < 2; i++) {
    okA[i] = m0 + 4 * (lc + 16 * i) < Kp;
    int col = n0 + 4 * (lc + 16 * i);
    okB[i] = col < Ng;
    int rs = col / Cp, cc = col - rs * Cp;
    rr[i] = rs / S;
    ss[i] = rs - rr[i] * S;
    colOff[i] = (rr[i] * W + ss[i]) * Cp + cc;  // xh offset of (r, s, c) from pixel (0, 0)
  }
  const float* const dyc = dyh + m0 + 4 * lc;
  // The row's reduction index j and its (n, p, q), advanced by kBK a tile:
  // q by dq, p by dp, n by dn with carries.
  const int dq = kBK % Q, dp = (kBK / Q) % P, dn = kBK / PQ;
  int j = t0 * kBK + lr;
  int qn = j / PQ, qp, qq;
  {
    int pq = j - qn * PQ;
    qp = pq / Q;
    qq = pq - qp * Q;
  }
  const unsigned srow = (unsigned)(lr * kRowBytes + lc * 16);

  auto load = [&](int stage) {
    unsigned sa = sbase + (unsigned)(2 * stage * kTileBytes) + srow;
    unsigned sb = sa + kTileBytes;
    const bool in = j < jEnd;
    const float* arow = dyc + (unsigned)(in ? j * Kp : 0);
    const int hb = qp * sh - ph, vb = qq * sw - pw;
    const int pix = ((qn * H + hb) * W + vb) * Cp;
#pragma unroll
    for (int i = 0; i < 2; i++) {
      bool oka = in && okA[i];
      pipe::cp_async16(sa + 256 * i, oka ? arow + 64 * i : dyh, oka);
      bool okb = in && okB[i] && (unsigned)(hb + rr[i]) < (unsigned)H &&
                 (unsigned)(vb + ss[i]) < (unsigned)W;
      pipe::cp_async16(sb + 256 * i, xh + (unsigned)(okb ? pix + colOff[i] : 0), okb);
    }
    j += kBK;
    qq += dq;
    qp += dp;
    qn += dn;
    if (qq >= Q) qq -= Q, ++qp;
    if (qp >= P) qp -= P, ++qn;
  };

  const int tm = tid & 15, tn = tid >> 4;
  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; i++)
#pragma unroll
    for (int jj = 0; jj < 8; jj++) acc[i][jj] = 0.0f;

#pragma unroll
  for (int st = 0; st < kStages - 1; st++) {
    if (st < ktiles) load(st);
    pipe::cp_async_commit();
  }
  for (int kt = 0, rd = 0, wr = kStages - 1; kt < ktiles; kt++) {
    pipe::cp_async_wait1();
    __syncthreads();
    if (kt + kStages - 1 < ktiles) load(wr);
    pipe::cp_async_commit();
    unsigned sa = sbase + (unsigned)(2 * rd * kTileBytes) + (unsigned)(16 * tm);
    unsigned sb = sbase + (unsigned)((2 * rd + 1) * kTileBytes) + (unsigned)(16 * tn);
    rd = rd == kStages - 1 ? 0 : rd + 1;
    wr = wr == kStages - 1 ? 0 : wr + 1;
#pragma unroll
    for (int k = 0; k < kBK; k++) {
      float a[8], bb[8];
      pipe::lds128(sa + k * kRowBytes, a[0], a[1], a[2], a[3]);
      pipe::lds128(sa + k * kRowBytes + 256, a[4], a[5], a[6], a[7]);
      pipe::lds128(sb + k * kRowBytes, bb[0], bb[1], bb[2], bb[3]);
      pipe::lds128(sb + k * kRowBytes + 256, bb[4], bb[5], bb[6], bb[7]);
#pragma unroll
      for (int i = 0; i < 8; i++)
#pragma unroll
        for (int jj = 0; jj < 8; jj++) acc[i][jj] = __builtin_fmaf(a[i], bb[jj], acc[i][jj]);
    }
  }

  wgrad_store(acc, ws, K, C, RS, Cp);
}

// conv2d_bwd_filter_v13_reduce writes
//
//	dw[k,c,r,s] = Σ_z ws[z,k,r,s,c],   z ascending from ws[0,k,r,s,c]
//
// for c < C: the channels-last partial sums of the splits of
// conv2d_bwd_filter_v13_igemm_pipe, ws (splits,K,R,S,Cp), into dw
// (K,C,R,S), adding in the fixed order of conv2d_bwd_filter_v2_reduce. One
// weight a thread in (k, r, s, c) order, so that a warp reads 32
// consecutive channels of each split.
//
// Launch: 1-D over K·R·S·C.
extern "C" __global__ void conv2d_bwd_filter_v13_reduce(const float* ws, float* dw, int splits,
                                                        int K, int C, int RS, int Cp) {
  // ws is (splits,K,R,S,Cp), dw is (K,C,R,S)
  int i = global_index();
  if (i >= K * RS * C) return;
  int krs = i / C, c = i - krs * C;
  int k = krs / RS, rs = krs - k * RS;
  const int n = K * RS * Cp;
  const float* p = ws + krs * Cp + c;
  float s = p[0];
  for (int z = 1; z < splits; z++) s = s + p[z * n];
  dw[(k * C + c) * RS + rs] = s;
}
