// conv_igemm_bf16.cu: implicit-GEMM convolution on BF16 tensor cores
// (mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32) over channels-last
// operands, fed by a 3-stage cp.async pipeline and ldmatrix; sm_80 and newer.
// gen-ptx: target sm_80
//
// Shape letters as in conv.cu: x is (N,C,H,W), w is (K,C,R,S), b is (K),
// y is (N,K,P,Q), all float32 in the caller's buffers. The tensor cores
// read bfloat16 copies in channels-last order with the channels padded
// with zeros to Cp, a multiple of 8 (one 16-byte chunk = 8 channels):
//
//	xh is (N,H,W,Cp) = bf16(x) (NHWC),  wh is (K,R,S,Cp) = bf16(w) (KRSC)
//
// so that the GEMM's reduction index k = (r·S + s)·Cp + c runs along
// contiguous memory in both operands and every loader copy is 16 bytes.
//
// Versions:
//
//	pack_nhwc_bf16_v1         x (N,C,H,W) float32 → xh (N,H,W,Cp) bfloat16, the channels
//	                          past C zero; packs w (K,C,R,S) as (K,R,S,Cp) too (N=K, H·W=R·S).
//	conv2d_fwd_v7_igemm_bf16  forward pass on xh and wh: M = N·P·Q, N = K, K = R·S·Cp;
//	                          128×128×32 block tiles, 4 warps of 64×64, 3-stage cp.async
//	                          pipeline, ldmatrix fragments, XOR-swizzled shared tiles;
//	                          bias and optional ReLU fused.
//	conv2d_fwd_v7_igemm_bf16y conv2d_fwd_v7_igemm_bf16 storing y as bfloat16.
//
// Numerics: every operand is rounded to bfloat16 once, when packed
// (cvt.rn.bf16x2.f32: to nearest, ties to even; cpuref.RoundBF16). The
// products of two bfloat16 are exact in float32 and the tensor cores
// accumulate them in float32, one m16n8k16 step (16 products) at a time,
// k-tiles in ascending order; the bias is added in float32 at the end.
// Integers below 2⁸ in magnitude are exact in bfloat16, so with small
// integers the result is exact. No atomics.
//
// Shared memory: per stage an A tile (128 output pixels × 32 k) and a B
// tile (128 filters × 32 k) of bfloat16, 64-byte rows of four 16-byte
// chunks; chunk c of row r lives at chunk position c ^ ((r >> 1) & 3). The
// 8 rows an ldmatrix phase reads (rows 8j…8j+7, one chunk column) then
// fall into 8 distinct 16-byte bank groups: no bank conflicts, and the
// cp.async writes of 8 lanes (two rows, four chunks) fill one 128-byte line.
//
// Pipeline: tile t is copied into stage t mod 3 two k-tiles ahead of its
// use; per k-tile a thread waits for its own copies of the tile
// (cp.async.wait_group 1), one barrier publishes every thread's copies
// and retires the stage read in the previous k-tile, the copies of tile
// t+2 are issued into that stage, then the warp computes: 2 k16 steps of
// 4 + 4 ldmatrix.x4 and 32 mma each.

#include "common.cuh"

#define __launch_bounds__(n, m) __attribute__((launch_bounds(n, m)))

#define kBM 128      // block tile rows (output pixels)
#define kBN 128      // block tile columns (filters)
#define kBK 32       // k-tile depth (bfloat16 elements)
#define kThreads 128 // 4 warps, 2×2 warp tiles of 64×64
#define kStages 3
#define kTileBytes (kBM * kBK * 2)  // one A or B tile of a stage: 8 KiB

// pack_nhwc_bf16_v1 writes xh[n,hw,c] = bf16(x[n,c,hw]) for c < C and 0
// for C ≤ c < Cp, two channels per thread (one 32-bit store).
//
// x is (N,C,HW) float32, xh is (N,HW,Cp) bfloat16 as N·HW·Cp/2 words;
// Cp is even. Launch: 1-D over N·HW·Cp/2.
extern "C" __global__ void pack_nhwc_bf16_v1(const float* x, unsigned* xh, int N, int C, int HW,
                                             int Cp) {
  int i = global_index();
  int half = Cp >> 1;
  if (i >= N * HW * half) return;
  int c = 2 * (i % half);
  int pix = i / half;
  int n = pix / HW;
  int hw = pix - n * HW;
  const float* xs = x + (n * C + c) * HW + hw;
  float lo = c < C ? xs[0] : 0.0f;
  float hi = c + 1 < C ? xs[HW] : 0.0f;
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  xh[i] = r;
}

// swz is the byte offset of chunk c of row r in a 64-byte-row tile.
static __device__ __forceinline__ unsigned swz(int r, int c) {
  return (unsigned)(r * 64 + ((c ^ ((r >> 1) & 3)) << 4));
}

// cp_async16 copies 16 bytes from global src to shared dst, or writes 16
// zero bytes when ok is false (src-size 0; src is then not read).
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

static __device__ __forceinline__ void mma_bf16(float* c, const unsigned* a, unsigned b0,
                                                unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// store_y stores one output value: as it is to a float32 y, rounded to
// bfloat16 (cvt.rn.bf16x2.f32's low half) to a bfloat16 y.
static __device__ __forceinline__ void store_y(float* p, float v) { *p = v; }
static __device__ __forceinline__ void store_y(unsigned short* p, float v) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(0.0f), "f"(v));
  *p = (unsigned short)r;
}

// conv2d_fwd_v7_igemm_bf16 computes
//
//	y[n,k,p,q] = act(b[k] + Σ_r Σ_s Σ_c wh[k,r,s,c] · xh[n, p·sh − ph + r, q·sw − pw + s, c])
//
// with bfloat16 operands and float32 accumulation (b may be null; act =
// ReLU when relu ≠ 0: NaN propagates, −0 becomes +0). xh is (N,H,W,Cp) and
// wh is (K,R,S,Cp) bfloat16 from pack_nhwc_bf16_v1, 16-byte aligned, Cp a
// multiple of 8; y is (N,K,P,Q) float32.
//
// Launch: grid = (⌈N·P·Q/128⌉, ⌈K/128⌉), block.x = 128.
//
// conv_fwd_v7<TY> is its body, storing y as TY: float, or unsigned short
// for conv2d_fwd_v7_igemm_bf16y (store_y).
template <typename TY>
static __device__ __forceinline__ void conv_fwd_v7(const unsigned short* xh, const unsigned short* wh,
                                                   const float* b, TY* y, int N, int C, int H, int W, int K,
                                                   int R, int S, int P, int Q, int sh, int sw, int ph, int pw,
                                                   int relu, int Cp) {
  // xh is (N,H,W,Cp), wh is (K,R,S,Cp), b is (K) or null, y is (N,K,P,Q)
  __shared__ __attribute__((aligned(128))) unsigned char smem[kStages * 2 * kTileBytes];
  unsigned long long sgen;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(sgen) : "l"(smem));
  const unsigned sbase = (unsigned)sgen;  // stage s: A at sbase + 2s·kTileBytes, B after it

  const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBN;
  const int PQ = P * Q, M = N * PQ, Kg = R * S * Cp;
  const int ktiles = (Kg + kBK - 1) / kBK;

  // Loader: thread tid copies chunk lc of rows lr + 32·i (i < 4) of both tiles.
  const int lc = tid & 3, lr = tid >> 2;
  int pixBase[4], h0[4], w0[4];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    int m = m0 + lr + 32 * i;
    int n = m / PQ, pq = m - n * PQ;
    int p = pq / Q, q = pq - p * Q;
    pixBase[i] = n * H * W;
    h0[i] = m < M ? p * sh - ph : -(1 << 30);  // an invalid row never passes the h test
    w0[i] = q * sw - pw;
  }
  // The k index of this thread's chunk in the next tile to load, as (r, s, c).
  int kk = 8 * lc, lrr = 0, lss = 0, lcc = 8 * lc;
  while (lcc >= Cp) {
    lcc -= Cp;
    if (++lss == S) lss = 0, ++lrr;
  }

  auto load = [&](int stage) {
    unsigned sa = sbase + (unsigned)(2 * stage * kTileBytes);
    unsigned sb = sa + kTileBytes;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int row = lr + 32 * i;
      int h = h0[i] + lrr, v = w0[i] + lss;
      bool ok = lrr < R && (unsigned)h < (unsigned)H && (unsigned)v < (unsigned)W;
      const unsigned short* src = ok ? xh + (pixBase[i] + h * W + v) * Cp + lcc : xh;
      cp_async16(sa + swz(row, lc), src, ok);
      int kf = n0 + row;
      bool okb = kf < K && kk < Kg;
      cp_async16(sb + swz(row, lc), okb ? wh + kf * Kg + kk : wh, okb);
    }
    kk += kBK;
    lcc += kBK;
    while (lcc >= Cp) {
      lcc -= Cp;
      if (++lss == S) lss = 0, ++lrr;
    }
  };

  // Warp tile: rows wm … wm+63, columns wn … wn+63 as 4×8 m16n8 tiles.
  const int wm = 64 * (warp & 1), wn = 64 * (warp >> 1);
  float acc[4][8][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

  // Prologue: tiles 0 and 1 in flight, one group each (empty past the end).
#pragma unroll
  for (int s = 0; s < kStages - 1; s++) {
    if (s < ktiles) load(s);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; kt++) {
    cp_async_wait1();  // this thread's copies of tile kt have landed
    __syncthreads();   // everyone's have, and stage (kt−1) mod 3 is free
    if (kt + kStages - 1 < ktiles) load((kt + kStages - 1) % kStages);
    cp_async_commit();
    unsigned sa = sbase + (unsigned)(2 * (kt % kStages) * kTileBytes);
    unsigned sb = sa + kTileBytes;
#pragma unroll
    for (int ks = 0; ks < 2; ks++) {
      unsigned af[4][4], bf[8][2];
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
        ldsm_x4(sa + swz(wm + 16 * mt + (lane & 15), 2 * ks + (lane >> 4)), af[mt][0], af[mt][1],
                af[mt][2], af[mt][3]);
#pragma unroll
      for (int np = 0; np < 4; np++)
        ldsm_x4(sb + swz(wn + 16 * np + (lane & 7) + ((lane >> 4) << 3), 2 * ks + ((lane >> 3) & 1)),
                bf[2 * np][0], bf[2 * np][1], bf[2 * np + 1][0], bf[2 * np + 1][1]);
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 8; nt++) mma_bf16(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
    }
  }

  // Epilogue: acc[mt][nt][e] is row wm + 16·mt + gid + 8·(e/2), column
  // wn + 8·nt + 2·tig + e%2 (gid = lane/4, tig = lane%4).
  const int gid = lane >> 2, tig = lane & 3;
#pragma unroll
  for (int mt = 0; mt < 4; mt++)
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
      int m = m0 + wm + 16 * mt + gid + 8 * hh;
      if (m >= M) continue;
      int n = m / PQ, pq = m - n * PQ;
      TY* yo = y + n * K * PQ + pq;
#pragma unroll
      for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          int k = n0 + wn + 8 * nt + 2 * tig + e;
          if (k >= K) continue;
          float v = acc[mt][nt][2 * hh + e];
          if (b != 0) v = v + b[k];
          if (relu) v = (v > 0.0f || v != v) ? v : 0.0f;
          store_y(yo + k * PQ, v);
        }
    }
}

extern "C" __global__ void __launch_bounds__(kThreads, 2)
    conv2d_fwd_v7_igemm_bf16(const unsigned short* xh, const unsigned short* wh, const float* b,
                             float* y, int N, int C, int H, int W, int K, int R, int S, int P,
                             int Q, int sh, int sw, int ph, int pw, int relu, int Cp) {
  conv_fwd_v7(xh, wh, b, y, N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, relu, Cp);
}

// conv2d_fwd_v7_igemm_bf16y is conv2d_fwd_v7_igemm_bf16 storing y (N,K,P,Q)
// as bfloat16, each value rounded to nearest, ties to even
// (cvt.rn.bf16x2.f32; cpuref.BF16Bits) after the bias and the ReLU: half
// the bytes of a float32 y, for a batch norm after the convolution that
// reads it as bfloat16 (norm.cu's _bf16x kernels), as PyTorch's bf16
// autocast stores a convolution's output. A thread's two rows 8 apart
// (hh) fill a 32-byte sector of 16 pixels between them. Launch: as
// conv2d_fwd_v7_igemm_bf16.
extern "C" __global__ void __launch_bounds__(kThreads, 2)
    conv2d_fwd_v7_igemm_bf16y(const unsigned short* xh, const unsigned short* wh, const float* b,
                              unsigned short* y, int N, int C, int H, int W, int K, int R, int S, int P,
                              int Q, int sh, int sw, int ph, int pw, int relu, int Cp) {
  conv_fwd_v7(xh, wh, b, y, N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, relu, Cp);
}
