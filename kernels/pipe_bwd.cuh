// pipe_bwd.cuh: the backward passes of the channels-last tensor-core
// pipeline (conv_igemm_bf16.cu, conv_igemm_tf32_pipe.cu), written once for
// both operand types and instantiated by conv_igemm_bf16_bwd.cu (BF16,
// m16n8k16) and conv_igemm_tf32_bwd.cu (TF32, m16n8k8). The including
// source defines the tile constants (kBM, kBN, kBK, kThreads, kStages)
// before it includes this header.
//
// Shape letters as in conv.cu: x is (N,C,H,W), w is (K,C,R,S), dy is
// (N,K,P,Q). The packed operands (the element type T: bfloat16 as unsigned
// short, or TF32 as 32-bit words; CE elements per 16-byte chunk) are
//
//	dyh is (N,P,Q,Kp) = round(dy)           (pack_nhwc_*_v1 with C = K, HW = P·Q)
//	xh  is (N,H,W,Cp) = round(x)            (pack_nhwc_*_v1)
//	wt  is (C,R,S,Kp): wt[c,r,s,k] = round(w[k,c,R−1−r,S−1−s])   (pack_crsk_flip_*_v1)
//
// with Kp and Cp the channel counts rounded up to CE (zeros past K, C).
//
// Backward-data as an implicit GEMM over dy (M = N·H·W, N = C, K = R·S·Kp):
//
//	dx[n,c,h,w] = Σ_r Σ_s Σ_k wt[c,r,s,k] · dyd[n, h + ph − (R−1) + r, w + pw − (S−1) + s, k]
//
// where dyd is dy dilated by the stride (dyd[n,u,v,k] = dy[n,u/sh,v/sw,k]
// when sh | u and sw | v and the quotients are in range, else 0): at stride
// 1 exactly the forward kernel's loop over the flipped, transposed filters
// with padding R−1−ph; at a larger stride the loader zero-fills the taps
// that do not divide (their products are zero, as in
// conv2d_bwd_data_v3_igemm_tf32). The loader tracks each row's
// coordinates as quotient and remainder of the stride, so the main loop
// divides nothing.
//
// Backward-filter as an implicit GEMM over the batch (M = K, N = R·S·Cp, K =
// N·P·Q), split-K over gridDim.z:
//
//	dw[k,c,r,s] = Σ_j dyh[j,k] · xh[n, p·sh − ph + r, q·sw − pw + s, c],   j = (n·P + p)·Q + q
//
// Both shared tiles hold kBK reduction rows of 128 columns (filters;
// (r,s,c) columns), 16-byte chunk c of row r at chunk c ^ sw(r): the
// fragments are read across rows, with ldmatrix.trans for bfloat16; for
// TF32 (ldmatrix.trans moves 16-bit elements) the A fragments by 64-bit
// shared loads of two adjacent filters (MMA rows gid and gid + 8 are
// assigned to them) and the B fragments by 32-bit loads. Each loader
// thread copies four chunks of one reduction row, so it tracks one
// (n, p, q) a k-tile and its columns' offsets are loop-invariant.
//
// Numerics: every operand rounded once, when packed; products summed in
// float32 by the tensor cores, k-tiles in ascending order; no atomics
// (split-K partial sums go to a workspace that conv2d_bwd_filter_v2_reduce
// adds in a fixed order).

#ifndef CONVTRAIN_KERNELS_PIPE_BWD_CUH
#define CONVTRAIN_KERNELS_PIPE_BWD_CUH

#include "common.cuh"

namespace pipe {

// swz64 is the byte offset of chunk c of row r in a 64-byte-row tile (as
// conv_igemm_bf16.cu's swz).
static __device__ __forceinline__ unsigned swz64(int r, int c) {
  return (unsigned)(r * 64 + ((c ^ ((r >> 1) & 3)) << 4));
}

static __device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src),
               "r"(ok ? 16 : 0)
               : "memory");
}

static __device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}

static __device__ __forceinline__ void cp_async_wait1() {
  asm volatile("cp.async.wait_group 1;" ::: "memory");
}

static __device__ __forceinline__ void ldsm_x4(unsigned addr, unsigned& r0, unsigned& r1,
                                               unsigned& r2, unsigned& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr)
               : "memory");
}

static __device__ __forceinline__ void ldsm_x4_t(unsigned addr, unsigned& r0, unsigned& r1,
                                                 unsigned& r2, unsigned& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr)
               : "memory");
}

static __device__ __forceinline__ void lds64(unsigned addr, unsigned& a, unsigned& b) {
  asm volatile("ld.shared.v2.b32 {%0, %1}, [%2];" : "=r"(a), "=r"(b) : "r"(addr) : "memory");
}

static __device__ __forceinline__ unsigned lds32(unsigned addr) {
  unsigned v;
  asm volatile("ld.shared.b32 %0, [%1];" : "=r"(v) : "r"(addr) : "memory");
  return v;
}

// mma is one tensor-core step on the fragments: m16n8k16 bf16 (CE = 8) or
// m16n8k8 tf32 (CE = 4), float32 accumulators.
template <int CE>
static __device__ __forceinline__ void mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
  if constexpr (CE == 8) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// floordivmod splits v into sh·q + r with 0 ≤ r < sh (v may be negative).
static __device__ __forceinline__ void floordivmod(int v, int sh, int& q, int& r) {
  q = v >= 0 ? v / sh : -((sh - 1 - v) / sh);
  r = v - q * sh;
}

// pack_crsk_flip writes wt[c,rs,k] = round(w[k,c,RS−1−rs]) for k < K and 0
// for K ≤ k < Kp (RS−1−rs is the tap (R−1−r, S−1−s)), one 32-bit word per
// thread: two bfloat16 (CE = 8) or one TF32 (CE = 4). w is (K,C,RS)
// float32, wt (C,RS,Kp). Launch: 1-D over the C·RS·Kp·CE/32 words.
template <int CE>
static __device__ __forceinline__ void pack_crsk_flip(const float* w, unsigned* wt, int K, int C,
                                                      int RS, int Kp) {
  int i = global_index();
  constexpr int per = CE / 4;  // elements per word
  int words = Kp / per;
  if (i >= C * RS * words) return;
  int k = per * (i % words);
  int crs = i / words;
  int c = crs / RS, rs = crs - c * RS;
  const float* ws = w + (k * C + c) * RS + (RS - 1 - rs);
  float lo = k < K ? ws[0] : 0.0f;
  unsigned r;
  if constexpr (CE == 8) {
    float hi = k + 1 < K ? ws[C * RS] : 0.0f;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  } else {
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(lo));
  }
  wt[i] = r;
}

// store_dx stores one input-gradient value: as it is to a float32 dx,
// rounded to bfloat16 (cvt.rn.bf16x2.f32's low half: to nearest, ties to
// even) to a bfloat16 dx.
static __device__ __forceinline__ void store_dx(float* p, float v) { *p = v; }
static __device__ __forceinline__ void store_dx(unsigned short* p, float v) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(0.0f), "f"(v));
  *p = (unsigned short)r;
}

// dgrad is the backward-data kernel body (see the header): dyh (N,P,Q,Kp),
// wt (C,R,S,Kp) packed, dx (N,C,H,W) overwritten, float32 or (O unsigned
// short) bfloat16, each sum rounded once as it is stored (store_dx). T is
// the packed element (CE of them in 16 bytes). Launch: grid =
// (⌈N·H·W/kBM⌉, ⌈C/kBN⌉), block.x = kThreads = 128.
template <int CE, typename T, typename O = float>
static __device__ __forceinline__ void dgrad(const T* dyh, const T* wt, O* dx, int N, int C,
                                             int H, int W, int K, int R, int S, int P, int Q,
                                             int sh, int sw, int ph, int pw, int Kp,
                                             unsigned char* smem) {
  constexpr int kTileBytes = kBM * 64;  // 128 rows of 64 bytes (4 chunks)
  unsigned long long sgen;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(sgen) : "l"(smem));
  const unsigned sbase = (unsigned)sgen;

  const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBN;
  const int HW = H * W, M = N * HW, Kg = R * S * Kp;
  const int ktiles = (Kg + kBK - 1) / kBK;

  // Loader: thread tid copies chunk lc of rows lr + 32·i (i < 4) of both
  // tiles. Row i's dilated coordinates at tap (0, 0) are hd = sh·ah + bh,
  // wd = sw·aw + bw.
  const int lc = tid & 3, lr = tid >> 2;
  int pixBase[4], ah[4], bh[4], aw[4], bw[4];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    int m = m0 + lr + 32 * i;
    int n = m / HW, hw = m - n * HW;
    int h = hw / W, v = hw - h * W;
    pixBase[i] = n * P * Q;
    floordivmod(h + ph - (R - 1), sh, ah[i], bh[i]);
    floordivmod(v + pw - (S - 1), sw, aw[i], bw[i]);
    if (m >= M) ah[i] = -(1 << 29);  // an invalid row never passes the p test
  }
  // The k index of this thread's chunk in the next tile, as tap (r, s) and
  // filter kc, with r = sh·ar + br and s = sw·as + bs. aoff[i] is row i's
  // element offset into dyh at the current tap (filter 0), −1 where the
  // tap skips the row; it changes only when the tap does (retap), so the
  // per-tile loader adds kc and copies.
  int kk = CE * lc, lrr = 0, lss = 0, lcc = CE * lc, ar = 0, br = 0, as_ = 0, bs = 0;
  int aoff[4];
  auto retap = [&]() {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int th = bh[i] + br, tw = bw[i] + bs;
      int p = ah[i] + ar + (th >= sh), q = aw[i] + as_ + (tw >= sw);
      bool ok = lrr < R && (th == 0 || th == sh) && (tw == 0 || tw == sw) &&
                (unsigned)p < (unsigned)P && (unsigned)q < (unsigned)Q;
      aoff[i] = ok ? (pixBase[i] + p * Q + q) * Kp : -1;
    }
  };
  auto advance = [&](int by) {
    lcc += by;
    if (lcc < Kp) return;
    do {
      lcc -= Kp;
      ++lss;
      if (++bs == sw) bs = 0, ++as_;
      if (lss == S) {
        lss = 0, as_ = 0, bs = 0;
        ++lrr;
        if (++br == sh) br = 0, ++ar;
      }
    } while (lcc >= Kp);
    retap();
  };
  retap();
  advance(0);

  auto load = [&](int stage) {
    unsigned sa = sbase + (unsigned)(2 * stage * kTileBytes);
    unsigned sb = sa + kTileBytes;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int row = lr + 32 * i;
      bool ok = aoff[i] >= 0;
      const T* src = ok ? dyh + aoff[i] + lcc : dyh;
      cp_async16(sa + swz64(row, lc), src, ok);
      int c = n0 + row;
      bool okb = c < C && kk < Kg;
      cp_async16(sb + swz64(row, lc), okb ? wt + c * Kg + kk : wt, okb);
    }
    kk += kBK;
    advance(kBK);
  };

  const int wm = 64 * (warp & 1), wn = 64 * (warp >> 1);
  float acc[4][8][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

#pragma unroll
  for (int s = 0; s < kStages - 1; s++) {
    if (s < ktiles) load(s);
    cp_async_commit();
  }
  // rd is the stage of k-tile kt (kt mod kStages), wr that of kt + 2,
  // rotated without a division.
  for (int kt = 0, rd = 0, wr = kStages - 1; kt < ktiles; kt++) {
    cp_async_wait1();
    __syncthreads();
    if (kt + kStages - 1 < ktiles) load(wr);
    cp_async_commit();
    unsigned sa = sbase + (unsigned)(2 * rd * kTileBytes);
    unsigned sb = sa + kTileBytes;
    rd = rd == kStages - 1 ? 0 : rd + 1;
    wr = wr == kStages - 1 ? 0 : wr + 1;
#pragma unroll
    for (int ks = 0; ks < 2; ks++) {
      unsigned af[4][4], bf[8][2];
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
        ldsm_x4(sa + swz64(wm + 16 * mt + (lane & 15), 2 * ks + (lane >> 4)), af[mt][0], af[mt][1],
                af[mt][2], af[mt][3]);
#pragma unroll
      for (int np = 0; np < 4; np++)
        ldsm_x4(sb + swz64(wn + 16 * np + (lane & 7) + ((lane >> 4) << 3), 2 * ks + ((lane >> 3) & 1)),
                bf[2 * np][0], bf[2 * np][1], bf[2 * np + 1][0], bf[2 * np + 1][1]);
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 8; nt++) mma<CE>(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
    }
  }

  // Epilogue: acc[mt][nt][e] is pixel m0 + wm + 16·mt + gid + 8·(e/2),
  // channel n0 + wn + 8·nt + 2·tig + e%2.
  const int gid = lane >> 2, tig = lane & 3;
#pragma unroll
  for (int mt = 0; mt < 4; mt++)
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
      int m = m0 + wm + 16 * mt + gid + 8 * hh;
      if (m >= M) continue;
      int n = m / HW, hw = m - n * HW;
      O* xo = dx + n * C * HW + hw;
#pragma unroll
      for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          int c = n0 + wn + 8 * nt + 2 * tig + e;
          if (c < C) store_dx(xo + c * HW, acc[mt][nt][2 * hh + e]);
        }
    }
}

static __device__ __forceinline__ void lds128(unsigned addr, float& a, float& b, float& c,
                                              float& d) {
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(a), "=f"(b), "=f"(c), "=f"(d)
               : "r"(addr)
               : "memory");
}

// dgrad_ffma is dgrad's implicit GEMM on FP32 SIMT cores: float32 dyh
// (N,P,Q,Kp) and wt (C,R,S,Kp) (pack_transpose_f32_v2, Kp a multiple of
// 16), 64-byte tile rows (kBK = 16 floats, 4 chunks), 256 threads of 8×8
// outputs: thread (tm, tn) = (tid % 16, tid / 16) owns pixels tm + 16·i
// and channels tn + 16·j; per 4-float chunk of k it reads 8 + 8 float4
// and issues 128 FFMA. Each output is an FFMA chain from 0 over k = (r,
// s, kf) ascending (the flipped taps). Launch: grid = (⌈N·H·W/128⌉,
// ⌈C/128⌉), block.x = kThreads = 256.
//
// The dy tile (A) is XOR-swizzled (swzA): the 8 lanes of a phase read 8
// consecutive rows. Its loader copies chunks h and h + 2 (h = tid % 2) of
// one row, tid / 2: one pixel a thread, so the tap bookkeeping (retap) is
// done for one row, and the two lanes of a row read whole 32-byte sectors
// in each copy. With Kp a multiple of 16 a k-tile lies in one tap, so
// both chunks do, and the tap advances at most once a tile. The filter
// tile (B) is not swizzled: a phase reads one row (a broadcast), and its
// loader (chunk tid % 4 of rows tid / 4 and + 64) stores 128 contiguous
// bytes a phase; so its 32 float4 reads a k-tile are one base address
// plus constants.
static __device__ __forceinline__ void dgrad_ffma(const float* dyh, const float* wt, float* dx,
                                                  int N, int C, int H, int W, int K, int R, int S,
                                                  int P, int Q, int sh, int sw, int ph, int pw,
                                                  int Kp, unsigned char* smem) {
  constexpr int kTileBytes = kBM * 64;
  unsigned long long sgen;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(sgen) : "l"(smem));
  const unsigned sbase = (unsigned)sgen;
  // swzA is the byte offset of chunk c of row r in the dy tile: chunk c ^
  // g((r >> 1) & 3) with g(u) = 2·(u & 1) + (u >> 1), a bijection, so the
  // 8 rows a phase reads (r & 1 and (r >> 1) & 3 all different) fall into
  // distinct 16-byte bank groups; and the loader's phases (rows 4q … 4q +
  // 3, chunks {0, 1} or {2, 3}) too, since rows r and r + 2 differ in bit 1
  // of g.
  auto swzA = [](int r, int c) -> unsigned {
    int u = (r >> 1) & 3;
    return (unsigned)(r * 64 + ((c ^ (((u & 1) << 1) | (u >> 1))) << 4));
  };

  const int tid = (int)threadIdx.x;
  const int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBN;
  const int HW = H * W, M = N * HW, Kg = R * S * Kp;
  const int ktiles = Kg / kBK;

  // A loader: row ar, chunks ah and ah + 2; the row's dilated
  // coordinates at tap (0, 0) are hd = sh·ah0 + bh, wd = sw·aw0 + bw.
  const int ar = tid >> 1, ah = tid & 1;
  int pixBase, ah0, bh, aw0, bw;
  {
    int m = m0 + ar;
    int n = m / HW, hw = m - n * HW;
    int h = hw / W, v = hw - h * W;
    pixBase = n * P * Q;
    floordivmod(h + ph - (R - 1), sh, ah0, bh);
    floordivmod(v + pw - (S - 1), sw, aw0, bw);
    if (m >= M) ah0 = -(1 << 29);  // an invalid row never passes the p test
  }
  // The k index of the row's first chunk in the next tile as tap (r, s)
  // and filter lcc, with r = sh·tr + br and s = sw·ts + bs. aok tells
  // whether the current tap reads the row and aoff is then the row's
  // element offset into dyh at filter 0 (else 0: the chunks are not
  // copied, and their source stays in the buffer); they change only when
  // the tap does (retap).
  int lrr = 0, lss = 0, lcc = 4 * ah, tr = 0, br = 0, ts = 0, bs = 0;
  int aoff;
  bool aok;
  auto retap = [&]() {
    int th = bh + br, tw = bw + bs;
    int p = ah0 + tr + (th >= sh), q = aw0 + ts + (tw >= sw);
    aok = lrr < R && (th == 0 || th == sh) && (tw == 0 || tw == sw) &&
          (unsigned)p < (unsigned)P && (unsigned)q < (unsigned)Q;
    aoff = aok ? (pixBase + p * Q + q) * Kp : 0;
  };
  // advance moves to the next k-tile: the next tap when the filters of
  // this one are done (Kp a multiple of kBK: never more than one).
  auto advance = [&]() {
    lcc += kBK;
    if (lcc < Kp) return;
    lcc -= Kp;
    ++lss;
    if (++bs == sw) bs = 0, ++ts;
    if (lss == S) {
      lss = 0, ts = 0, bs = 0;
      ++lrr;
      if (++br == sh) br = 0, ++tr;
    }
    retap();
  };
  retap();
  // B loader: chunk lc of rows lr and lr + 64 (channels n0 + lr, + 64)
  // at element offsets wo0, wo1 into wt in the next tile (Kg is a
  // multiple of kBK: every chunk of a row is in range). A chunk that is
  // not copied (src-size 0) reads nothing; its source is the buffer's
  // first element all the same.
  const int lc = tid & 3, lr = tid >> 2;
  const bool okc0 = n0 + lr < C, okc1 = n0 + lr + 64 < C;
  int wo0 = (n0 + lr) * Kg + 4 * lc, wo1 = wo0 + 64 * Kg;

  auto load = [&](int stage) {
    unsigned sa = sbase + (unsigned)(2 * stage * kTileBytes);
    unsigned sb = sa + kTileBytes;
    const float* src = dyh + (unsigned)(aoff + lcc);
    cp_async16(sa + swzA(ar, ah), src, aok);
    cp_async16(sa + swzA(ar, ah + 2), src + 8, aok);
    cp_async16(sb + (unsigned)(lr * 64 + lc * 16), wt + (unsigned)(okc0 ? wo0 : 0), okc0);
    cp_async16(sb + (unsigned)((lr + 64) * 64 + lc * 16), wt + (unsigned)(okc1 ? wo1 : 0), okc1);
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
    cp_async_commit();
  }
  // rd is the stage of k-tile kt (kt mod kStages), wr that of kt + 2,
  // rotated without a division.
  for (int kt = 0, rd = 0, wr = kStages - 1; kt < ktiles; kt++) {
    cp_async_wait1();
    __syncthreads();
    if (kt + kStages - 1 < ktiles) load(wr);
    cp_async_commit();
    unsigned sa = sbase + (unsigned)(2 * rd * kTileBytes);
    unsigned sb = sa + kTileBytes + (unsigned)(tn * 64);
    rd = rd == kStages - 1 ? 0 : rd + 1;
    wr = wr == kStages - 1 ? 0 : wr + 1;
#pragma unroll
    for (int kc = 0; kc < 4; kc++) {
      float a[8][4], b[8][4];
#pragma unroll
      for (int i = 0; i < 8; i++) lds128(sa + swzA(tm + 16 * i, kc), a[i][0], a[i][1], a[i][2], a[i][3]);
#pragma unroll
      for (int j = 0; j < 8; j++) lds128(sb + (unsigned)(1024 * j + 16 * kc), b[j][0], b[j][1], b[j][2], b[j][3]);
#pragma unroll
      for (int e = 0; e < 4; e++)
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
          for (int j = 0; j < 8; j++) acc[i][j] = __builtin_fmaf(a[i][e], b[j][e], acc[i][j]);
    }
  }

#pragma unroll
  for (int i = 0; i < 8; i++) {
    int m = m0 + tm + 16 * i;
    if (m >= M) continue;
    int n = m / HW, hw = m - n * HW;
    float* xo = dx + n * C * HW + hw;
#pragma unroll
    for (int j = 0; j < 8; j++) {
      int c = n0 + tn + 16 * j;
      if (c < C) xo[c * HW] = acc[i][j];
    }
  }
}

// wgrad is the backward-filter kernel body (see the header): dyh
// (N,P,Q,Kp), xh (N,H,W,Cp) packed; split z = blockIdx.z sums the
// reduction rows j of k-tiles z·tps … (z+1)·tps − 1 (kBK rows each, j <
// N·P·Q) and writes out[z][k][c][r][s] (KCRS float32; out is dw itself
// when gridDim.z = 1). Launch: grid = (⌈K/kBM⌉, ⌈R·S·Cp/kBN⌉, splits),
// block.x = kThreads = 128.
template <int CE, typename T>
static __device__ __forceinline__ void wgrad(const T* dyh, const T* xh, float* out, int N, int C,
                                             int H, int W, int K, int R, int S, int P, int Q,
                                             int sh, int sw, int ph, int pw, int Kp, int Cp,
                                             int tilesPerSplit, unsigned char* smem) {
  // A tile: kBK rows × 128 filters; B tile: kBK rows × 128 (r,s,c)
  // columns; a row is 256 bytes (BF16) or 512 (TF32), CPR chunks.
  constexpr int kRowBytes = kBM * 16 / CE;
  constexpr int CPR = kRowBytes / 16;
  constexpr int kTileBytes = kBK * kRowBytes;
  unsigned long long sgen;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(sgen) : "l"(smem));
  const unsigned sbase = (unsigned)sgen;
  // Chunk c of row r lives at chunk c ^ (r & 7) (BF16: the 8 rows an
  // ldmatrix phase reads) or c ^ 2·(r & 3) (TF32: the 4 rows × 2 chunks a
  // 32-bit fragment load reads): no bank conflicts.
  auto swz = [](int r, int c) -> unsigned {
    int x = CE == 8 ? (r & 7) : ((r & 3) << 1);
    return (unsigned)(r * kRowBytes + ((c ^ x) << 4));
  };

  const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBN;
  const int PQ = P * Q, NPQ = N * PQ, RS = R * S, Ng = RS * Cp;
  const int t0 = (int)blockIdx.z * tilesPerSplit;
  const int jEnd = NPQ < (t0 + tilesPerSplit) * kBK ? NPQ : (t0 + tilesPerSplit) * kBK;
  const int ktiles = (jEnd - t0 * kBK + kBK - 1) / kBK;

  // Loader: thread tid copies chunks lc + TPR·i (i < 4) of one reduction
  // row lr of both tiles, so that it tracks one j = (n, p, q) a tile and
  // the columns' offsets are loop-invariant. A: filters m0 + CE·(lc +
  // TPR·i); B: columns n0 + CE·(lc + TPR·i) = (r,s,c). The 8 lanes of a
  // quarter-warp store 8 consecutive chunks of one row (TF32) or 4 of rows
  // r and r ^ 4 (BF16: the rows of lane groups 2q, 2q + 1 differ in bit 2,
  // so their XOR-swizzled chunks fall into different halves of 128 bytes).
  constexpr int TPR = CPR / 4;  // threads per row
  static_assert(kThreads / TPR == kBK, "one row per thread per tile");
  const int lc = tid % TPR, lrl = tid / TPR;
  const int lr = CE == 8 ? (lrl & ~7) | ((lrl >> 1) & 3) | ((lrl & 1) << 2) : lrl;
  bool okA[4], okB[4];
  int rr[4], ss[4], colOff[4];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    okA[i] = m0 + CE * (lc + TPR * i) < Kp;
    int col = n0 + CE * (lc + TPR * i);
    okB[i] = col < Ng;
    int rs = col / Cp, cc = col - rs * Cp;
    rr[i] = rs / S;
    ss[i] = rs - rr[i] * S;
    colOff[i] = (rr[i] * W + ss[i]) * Cp + cc;  // xh offset of (r, s, c) from pixel (0, 0)
  }
  const T* const dyc = dyh + m0 + CE * lc;
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

  auto load = [&](int stage) {
    unsigned sa = sbase + (unsigned)(2 * stage * kTileBytes);
    unsigned sb = sa + kTileBytes;
    const bool in = j < jEnd;
    const T* ar = dyc + j * Kp;
    const int hb = qp * sh - ph, vb = qq * sw - pw;
    const T* br = xh + ((qn * H + hb) * W + vb) * Cp;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      bool oka = in && okA[i];
      cp_async16(sa + swz(lr, lc + TPR * i), oka ? ar + CE * TPR * i : dyh, oka);
      bool okb = in && okB[i] && (unsigned)(hb + rr[i]) < (unsigned)H &&
                 (unsigned)(vb + ss[i]) < (unsigned)W;
      cp_async16(sb + swz(lr, lc + TPR * i), okb ? br + colOff[i] : xh, okb);
    }
    j += kBK;
    qq += dq;
    qp += dp;
    qn += dn;
    if (qq >= Q) qq -= Q, ++qp;
    if (qp >= P) qp -= P, ++qn;
  };

  const int wm = 64 * (warp & 1), wn = 64 * (warp >> 1);
  const int gid = lane >> 2, tig = lane & 3;
  float acc[4][8][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int jj = 0; jj < 8; jj++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][jj][e] = 0.0f;

#pragma unroll
  for (int st = 0; st < kStages - 1; st++) {
    if (st < ktiles) load(st);
    cp_async_commit();
  }
  // rd is the stage of k-tile kt (kt mod kStages), wr that of kt + 2,
  // rotated without a division.
  for (int kt = 0, rd = 0, wr = kStages - 1; kt < ktiles; kt++) {
    cp_async_wait1();
    __syncthreads();
    if (kt + kStages - 1 < ktiles) load(wr);
    cp_async_commit();
    unsigned sa = sbase + (unsigned)(2 * rd * kTileBytes);
    unsigned sb = sa + kTileBytes;
    rd = rd == kStages - 1 ? 0 : rd + 1;
    wr = wr == kStages - 1 ? 0 : wr + 1;
#pragma unroll
    for (int ks = 0; ks < 2; ks++) {
      unsigned af[4][4], bf[8][2];
      if constexpr (CE == 8) {
        // Rows 16·ks … 16·ks + 15. Lane l addresses row 16·ks + 8·(matrix
        // bit) + l%8 of matrix l/8. A (m16×k16 from [k][m]): matrices
        // (k0, m0) = (0,0), (0,8), (8,0), (8,8) give a0…a3. B (k16×n8
        // pairs from [k][n]): (0, n), (8, n), (0, n+8), (8, n+8).
        const int mi = lane >> 3, rr = lane & 7;
#pragma unroll
        for (int mt = 0; mt < 4; mt++)
          ldsm_x4_t(sa + swz(16 * ks + 8 * (mi >> 1) + rr, (wm + 16 * mt + 8 * (mi & 1)) >> 3),
                    af[mt][0], af[mt][1], af[mt][2], af[mt][3]);
#pragma unroll
        for (int np = 0; np < 4; np++)
          ldsm_x4_t(sb + swz(16 * ks + 8 * (mi & 1) + rr, (wn + 16 * np + 8 * (mi >> 1)) >> 3),
                    bf[2 * np][0], bf[2 * np][1], bf[2 * np + 1][0], bf[2 * np + 1][1]);
      } else {
        // m16n8k8 tf32: a0 = A[gid][tig], a1 = A[gid+8][tig], a2 =
        // A[gid][tig+4], a3 = A[gid+8][tig+4]; b0 = B[tig][gid], b1 =
        // B[tig+4][gid]; the tiles hold A[m][k] at row k, column m.
        // MMA rows gid and gid + 8 of m-tile mt are the adjacent filters
        // wm + 16·mt + 2·gid and + 1 (the epilogue maps them back), so
        // that a0, a1 (row k0) and a2, a3 (row k0 + 4) are one 64-bit
        // load each.
        const int k0 = 8 * ks + tig;
#pragma unroll
        for (int mt = 0; mt < 4; mt++) {
          int c0 = wm + 16 * mt + 2 * gid;
          lds64(sa + swz(k0, c0 >> 2) + 4 * (c0 & 3), af[mt][0], af[mt][1]);
          lds64(sa + swz(k0 + 4, c0 >> 2) + 4 * (c0 & 3), af[mt][2], af[mt][3]);
        }
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
          int c0 = wn + 8 * nt + gid;
          bf[nt][0] = lds32(sb + swz(k0, c0 >> 2) + 4 * (c0 & 3));
          bf[nt][1] = lds32(sb + swz(k0 + 4, c0 >> 2) + 4 * (c0 & 3));
        }
      }
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 8; nt++) mma<CE>(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
    }
  }

  // Epilogue: acc[mt][nt][e] is filter m0 + wm + 16·mt + gid + 8·(e/2)
  // (BF16) or m0 + wm + 16·mt + 2·gid + e/2 (TF32, see the fragment
  // loads), column n0 + wn + 8·nt + 2·tig + e%2 = (r,s,c); only c < C is
  // written.
  float* o = out + (int)blockIdx.z * K * C * RS;  // the host keeps splits·K·C·R·S < 2³¹
#pragma unroll
  for (int nt = 0; nt < 8; nt++)
#pragma unroll
    for (int e = 0; e < 2; e++) {
      int cl = n0 + wn + 8 * nt + 2 * tig + e;
      int crs = cl / Cp, c = cl - crs * Cp;
      if (cl >= Ng || c >= C) continue;
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
          int k = m0 + wm + 16 * mt + (CE == 8 ? gid + 8 * hh : 2 * gid + hh);
          if (k < K) o[(k * C + c) * RS + crs] = acc[mt][nt][2 * hh + e];
        }
    }
}

}  // namespace pipe

#endif  // CONVTRAIN_KERNELS_PIPE_BWD_CUH
