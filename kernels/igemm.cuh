// igemm.cuh: the implicit-GEMM convolution machinery shared by
// conv_igemm.cu (exact FP32, FFMA, sm_70) and conv_igemm_tf32.cu (TF32
// tensor cores, mma.sync m16n8k8, sm_80).
//
// Shape letters as in conv.cu: x is (N,C,H,W), w is (K,C,R,S), y is
// (N,K,P,Q). Each conv pass is a GEMM D[m,n] = Σ_k A[m,k]·B[k,n] whose
// operands are never formed in memory (CUTLASS's implicit GEMM
// convolution index maps):
//
//	pass        M (rows, kBM)   N (cols, kBN)   K (reduction)   A[m,k]                 B[k,n]
//	forward     N·P·Q  (n,p,q)  K               C·R·S (c,r,s)   x[n,c,p·sh−ph+r,…]     w[n,c,r,s]
//	bwd-data    N·H·W  (n,h,v)  C               K·R·S (k,r,s)   dy[n,k,(h+ph−r)/sh,…]  w[k,n,r,s]
//	bwd-filter  C·R·S  (c,r,s)  K               N·P·Q (n,p,q)   x[n,c,p·sh−ph+r,…]     dy[n,k,p,q]
//
// (bwd-data's A term is zero unless the divisions are exact and in range.)
// The M side is always the one that is contiguous in the output, so the
// epilogue writes along m.
//
// Block tile kBM×kBN = 128×64, reduction tile kBK = 8, 256 threads.
// Each k-tile the loaders read their share of A (kBK×kBM, 4 elements per
// thread) and B (kBK×kBN, 2 per thread, or 4 with 16-byte loads) from
// global memory into registers while the block computes on the other
// shared-memory buffer (double buffering, one barrier per k-tile).
// Shared tiles are stored k-major, sA[k][m] and sB[k][n], each row padded
// (kPadFP32 or kPadTF32 floats) so that neither the loaders' stores nor the
// hot loop's reads conflict on a bank.
//
// The loaders never divide in the loop: each thread decomposes its k index
// once (k → (c,r,s) or (n,p,q)) and then moves by kBK with precomputed
// deltas and at most one carry per digit; bwd-data's exact division by the
// stride is a multiply-high by a reciprocal computed once.
//
// Every kernel guards its rows and columns; out-of-range elements of a
// tile are loaded as 0 and never stored.

#ifndef CONVTRAIN_KERNELS_IGEMM_CUH
#define CONVTRAIN_KERNELS_IGEMM_CUH

#include "common.cuh"

// __launch_bounds__(n): at most n threads per block (PTX .maxntid), so
// ptxas may use up to 255 registers per thread.
#define __launch_bounds__(n) __attribute__((launch_bounds(n)))

#define kBM 128
#define kBN 64
#define kBK 8
#define kThreads 256

// A row (an m) or a k index that is out of range gets this offset in its
// h/row coordinate, so that the bounds check fails without a flag.
#define kFar (-0x40000000)

// Geom is the convolution geometry of a launch.
struct Geom {
  int N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw;
};

static __device__ __forceinline__ bool aligned16(const void* p) {
  return ((unsigned long long)p & 15ull) == 0;
}

// f4 is a 16-byte vector load or store (ld/st .v4.f32).
struct f4 {
  float x, y, z, w;
} __attribute__((aligned(16)));

// ---------------------------------------------------------------------------
// Loaders. Each has kRegs registers per thread, init (once), load (global →
// registers, the current k-tile), store (registers → a shared tile whose
// rows are ld floats apart) and advance (to the next k-tile). kTF32 stores
// round each value to TF32 (cvt.rna) on the way into shared memory.

template <bool kTF32>
static __device__ __forceinline__ float to_tile(float v) {
  if (kTF32) {
    unsigned u;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(v));
    return __builtin_bit_cast(float, u);
  }
  return v;
}

// KCRS walks a reduction index k over (c, r, s) (or (k, r, s)): k = (c·R
// + r)·S + s, moved by kBK per tile with one carry per digit.
struct KCRS {
  int k, r, s, dc, dr, ds;
  __device__ __forceinline__ void init(int k0, int R, int S) {
    int RS = R * S;
    k = k0;
    int c = k0 / RS;
    int rs = k0 - c * RS;
    r = rs / S;
    s = rs - r * S;
    dc = kBK / RS;
    int rem = kBK - dc * RS;
    dr = rem / S;
    ds = rem - dr * S;
  }
};

// FwdA: forward A[m,k] = x[n,c,p·sh−ph+r,q·sw−pw+s], m = (n·P + p)·Q + q,
// k = (c·R + r)·S + s. Thread t owns k column t/32 and rows t%32 + 32i:
// a warp reads 32 consecutive q (coalesced when sw = 1).
struct FwdA {
  static const int kRegs = 4;
  const float* x;
  int H, W, S, R, HW, Kg;
  int base[4], h0[4], w0[4];  // per row
  KCRS kc;
  int koff;            // c·H·W + r·W + s of the current column
  int dkoff;           // koff step of one tile without carries
  int col, row;        // this thread's position in the tile
  __device__ __forceinline__ void init(const Geom& g, const float* x_, int m0, int k0) {
    x = x_;
    H = g.H;
    W = g.W;
    S = g.S;
    R = g.R;
    HW = g.H * g.W;
    Kg = g.C * g.R * g.S;
    int PQ = g.P * g.Q, M = g.N * PQ;
    col = (int)threadIdx.x >> 5;
    row = (int)threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int m = m0 + row + 32 * i;
      int n = m / PQ;
      int pq = m - n * PQ;
      int p = pq / g.Q;
      int q = pq - p * g.Q;
      int h = p * g.sh - g.ph;
      w0[i] = q * g.sw - g.pw;
      base[i] = n * g.C * HW + h * W + w0[i];
      h0[i] = m < M ? h : kFar;
    }
    kc.init(k0 + col, R, S);
    int c = kc.k / (R * S);
    koff = c * HW + kc.r * W + kc.s;
    dkoff = kc.dc * HW + kc.dr * W + kc.ds;
  }
  __device__ __forceinline__ void load(float (&v)[4]) const {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int h = h0[i] + kc.r, w = w0[i] + kc.s;
      v[i] = (kc.k < Kg && (unsigned)h < (unsigned)H && (unsigned)w < (unsigned)W) ? x[base[i] + koff]
                                                                                    : 0.0f;
    }
  }
  template <bool kTF32>
  __device__ __forceinline__ void store(float* sA, int ld, const float (&v)[4]) const {
#pragma unroll
    for (int i = 0; i < 4; i++) sA[col * ld + row + 32 * i] = to_tile<kTF32>(v[i]);
  }
  __device__ __forceinline__ void advance() {
    kc.k += kBK;
    kc.s += kc.ds;
    kc.r += kc.dr;
    koff += dkoff;
    if (kc.s >= S) {
      kc.s -= S;
      kc.r++;
      koff += W - S;
    }
    if (kc.r >= R) {
      kc.r -= R;
      koff += HW - R * W;
    }
  }
};

// FwdA1x1: FwdA for 1×1 kernels, stride 1, no padding and P·Q a multiple
// of 4 (so 4 consecutive m lie in one image and are contiguous in x), with
// x 16-byte aligned: A[m,c] = x[n,c,pq], one 16-byte load per thread.
// Thread t owns column t/32 and rows 4·(t%32) … 4·(t%32)+3.
struct FwdA1x1 {
  static const int kRegs = 4;
  const float* x;
  int Kg, HW, k;
  int base;  // n·C·HW + pq of the thread's first row, or kFar
  int col, row;
  __device__ __forceinline__ void init(const Geom& g, const float* x_, int m0, int k0) {
    x = x_;
    Kg = g.C;
    HW = g.H * g.W;  // = P·Q
    col = (int)threadIdx.x >> 5;
    row = 4 * ((int)threadIdx.x & 31);
    int m = m0 + row;
    int n = m / HW;
    base = m < g.N * HW ? n * g.C * HW + (m - n * HW) : kFar;
    k = k0 + col;
  }
  __device__ __forceinline__ void load(float (&v)[4]) const {
    if (base != kFar && k < Kg) {
      f4 t = *(const f4*)(x + base + k * HW);
      v[0] = t.x;
      v[1] = t.y;
      v[2] = t.z;
      v[3] = t.w;
    } else {
      v[0] = v[1] = v[2] = v[3] = 0.0f;
    }
  }
  template <bool kTF32>
  __device__ __forceinline__ void store(float* sA, int ld, const float (&v)[4]) const {
    f4 t = {to_tile<kTF32>(v[0]), to_tile<kTF32>(v[1]), to_tile<kTF32>(v[2]), to_tile<kTF32>(v[3])};
    *(f4*)(sA + col * ld + row) = t;
  }
  __device__ __forceinline__ void advance() { k += kBK; }
};

// RowB: B[k,n] = p[n·ld + k] for a row-major (Nn, Kg) matrix read along k
// (forward: the weights w as (K, C·R·S)). Thread t owns column t%8 and
// rows t/8 and t/8 + 32: 8 consecutive k per row, 32 bytes.
template <int kN>
struct RowBN {
  static const int kJ = kN / 32;
  static const int kRegs = kJ;
  const float* p;
  int Kg, k;
  int off[kJ];  // n·ld, or kFar·… when n is out of range
  bool ok[kJ];
  int col, row;
  __device__ __forceinline__ void init(const float* p_, int Nn, int ld, int n0, int k0, int Kg_) {
    p = p_;
    Kg = Kg_;
    col = (int)threadIdx.x & 7;
    row = (int)threadIdx.x >> 3;
#pragma unroll
    for (int j = 0; j < kJ; j++) {
      int n = n0 + row + 32 * j;
      ok[j] = n < Nn;
      off[j] = n * ld;
    }
    k = k0 + col;
  }
  __device__ __forceinline__ void load(float (&v)[kJ]) const {
#pragma unroll
    for (int j = 0; j < kJ; j++) v[j] = (ok[j] && k < Kg) ? p[off[j] + k] : 0.0f;
  }
  template <bool kTF32>
  __device__ __forceinline__ void store(float* sB, int ld, const float (&v)[kJ]) const {
#pragma unroll
    for (int j = 0; j < kJ; j++) sB[col * ld + row + 32 * j] = to_tile<kTF32>(v[j]);
  }
  __device__ __forceinline__ void advance() { k += kBK; }
};
typedef RowBN<kBN> RowB;

// RowB4 is RowB with 16-byte loads, for Kg a multiple of 4 and p 16-byte
// aligned: threads t < 128 own k columns 4·(t%2) … 4·(t%2)+3 of row t/2.
template <int kN>
struct RowB4N {
  static const int kRegs = 4;
  const float* p;
  int Kg, k, off, col, row;
  bool ok;
  __device__ __forceinline__ void init(const float* p_, int Nn, int ld, int n0, int k0, int Kg_) {
    p = p_;
    Kg = Kg_;
    col = 4 * ((int)threadIdx.x & 1);
    row = (int)threadIdx.x >> 1;
    ok = row < kN && n0 + row < Nn;
    off = (n0 + row) * ld;
    k = k0 + col;
  }
  __device__ __forceinline__ void load(float (&v)[4]) const {
    if (ok && k < Kg) {
      f4 t = *(const f4*)(p + off + k);
      v[0] = t.x;
      v[1] = t.y;
      v[2] = t.z;
      v[3] = t.w;
    } else {
      v[0] = v[1] = v[2] = v[3] = 0.0f;
    }
  }
  template <bool kTF32>
  __device__ __forceinline__ void store(float* sB, int ld, const float (&v)[4]) const {
    if (row < kN) {
#pragma unroll
      for (int j = 0; j < 4; j++) sB[(col + j) * ld + row] = to_tile<kTF32>(v[j]);
    }
  }
  __device__ __forceinline__ void advance() { k += kBK; }
};
typedef RowB4N<kBN> RowB4;

// DgradA: bwd-data A[m,k] = dy[n,k',p,q] with m = (n·H + h)·W + v,
// k = (k'·R + r)·S + s, p = (h+ph−r)/sh, q = (v+pw−s)/sw when both
// divisions are exact and in range, else 0. The quotient is the
// multiply-high of the dividend by ⌈2³²/sh⌉, exact for dividends below
// 2³²/sh. Thread t owns column t/32 and rows t%32 + 32i (consecutive v).
struct DgradA {
  static const int kRegs = 4;
  const float* dy;
  int P, Q, R, S, PQ, Kg, sh, sw;
  unsigned mh, mw;  // ⌈2³²/sh⌉, ⌈2³²/sw⌉ (unused for a stride of 1)
  int hb[4], wb[4], nb[4];
  KCRS kc;
  int koff, dkoff;  // k'·P·Q
  int col, row;
  __device__ __forceinline__ void init(const Geom& g, const float* dy_, int m0, int k0) {
    dy = dy_;
    P = g.P;
    Q = g.Q;
    R = g.R;
    S = g.S;
    PQ = g.P * g.Q;
    Kg = g.K * g.R * g.S;
    sh = g.sh;
    sw = g.sw;
    mh = sh > 1 ? 0xffffffffu / (unsigned)sh + 1u : 0u;
    mw = sw > 1 ? 0xffffffffu / (unsigned)sw + 1u : 0u;
    int HW = g.H * g.W, M = g.N * HW;
    col = (int)threadIdx.x >> 5;
    row = (int)threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int m = m0 + row + 32 * i;
      int n = m / HW;
      int hw = m - n * HW;
      int h = hw / g.W;
      hb[i] = m < M ? h + g.ph : kFar;
      wb[i] = hw - h * g.W + g.pw;
      nb[i] = n * g.K * PQ;
    }
    kc.init(k0 + col, R, S);
    koff = kc.k / (R * S) * PQ;
    dkoff = kc.dc * PQ;
  }
  __device__ __forceinline__ void load(float (&v)[4]) const {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int hp = hb[i] - kc.r, wq = wb[i] - kc.s;
      int p = sh == 1 ? hp : (int)__nvvm_mulhi_ui((unsigned)hp, mh);
      int q = sw == 1 ? wq : (int)__nvvm_mulhi_ui((unsigned)wq, mw);
      bool ok = kc.k < Kg && hp >= 0 && wq >= 0 && (unsigned)p * (unsigned)sh == (unsigned)hp &&
                (unsigned)q * (unsigned)sw == (unsigned)wq && p < P && q < Q;
      v[i] = ok ? dy[nb[i] + koff + p * Q + q] : 0.0f;
    }
  }
  template <bool kTF32>
  __device__ __forceinline__ void store(float* sA, int ld, const float (&v)[4]) const {
#pragma unroll
    for (int i = 0; i < 4; i++) sA[col * ld + row + 32 * i] = to_tile<kTF32>(v[i]);
  }
  __device__ __forceinline__ void advance() {
    kc.k += kBK;
    kc.s += kc.ds;
    kc.r += kc.dr;
    koff += dkoff;
    if (kc.s >= S) {
      kc.s -= S;
      kc.r++;
    }
    if (kc.r >= R) {
      kc.r -= R;
      koff += PQ;
    }
  }
};

// DgradB: bwd-data B[k,c] = w[k',c,r,s] with k = k'·R·S + rs: the offset
// k'·C·R·S + rs + c·R·S, 8 consecutive rs per row. Thread t owns column
// t%8 and rows (channels) t/8 and t/8 + 32.
template <int kN>
struct DgradBN {
  static const int kJ = kN / 32;
  static const int kRegs = kJ;
  const float* w;
  int Kg, RS, CRS, k, rs, koff, drs, dkoff;
  int coff[kJ];
  bool ok[kJ];
  int col, row;
  __device__ __forceinline__ void init(const Geom& g, const float* w_, int n0, int k0) {
    w = w_;
    RS = g.R * g.S;
    CRS = g.C * RS;
    Kg = g.K * RS;
    col = (int)threadIdx.x & 7;
    row = (int)threadIdx.x >> 3;
#pragma unroll
    for (int j = 0; j < kJ; j++) {
      int c = n0 + row + 32 * j;
      ok[j] = c < g.C;
      coff[j] = c * RS;
    }
    k = k0 + col;
    int kk = k / RS;
    rs = k - kk * RS;
    koff = kk * CRS + rs;
    int dk = kBK / RS;
    drs = kBK - dk * RS;
    dkoff = dk * CRS + drs;
  }
  __device__ __forceinline__ void load(float (&v)[kJ]) const {
#pragma unroll
    for (int j = 0; j < kJ; j++) v[j] = (ok[j] && k < Kg) ? w[koff + coff[j]] : 0.0f;
  }
  template <bool kTF32>
  __device__ __forceinline__ void store(float* sB, int ld, const float (&v)[kJ]) const {
#pragma unroll
    for (int j = 0; j < kJ; j++) sB[col * ld + row + 32 * j] = to_tile<kTF32>(v[j]);
  }
  __device__ __forceinline__ void advance() {
    k += kBK;
    rs += drs;
    koff += dkoff;
    if (rs >= RS) {
      rs -= RS;
      koff += CRS - RS;
    }
  }
};
typedef DgradBN<kBN> DgradB;

// NPQ walks a reduction index j over (n, p, q): j = (n·P + p)·Q + q,
// moved by kBK per tile with one carry per digit.
struct NPQ {
  int j, n, p, q, dn, dp, dq;
  __device__ __forceinline__ void init(int j0, int P, int Q) {
    j = j0;
    int PQ = P * Q;
    n = j0 / PQ;
    int pq = j0 - n * PQ;
    p = pq / Q;
    q = pq - p * Q;
    dn = kBK / PQ;
    int rem = kBK - dn * PQ;
    dp = rem / Q;
    dq = rem - dp * Q;
  }
};

// WgradA: bwd-filter A[m,j] = x[n,c,p·sh−ph+r,q·sw−pw+s] with m = (c·R +
// r)·S + s and j = (n·P + p)·Q + q. Thread t owns column j = t%8 and rows
// t/8 + 32i: 8 consecutive q per row (32 bytes when sw = 1).
struct WgradA {
  static const int kRegs = 4;
  const float* x;
  int H, W, P, Q, sh, sw, Kg;
  int xoff[4], r[4], s[4];  // per row: c·H·W + r·W + s, r (kFar when out of range), s
  NPQ jc;
  int hbase, wbase, jbase;  // p·sh − ph, q·sw − pw, n·C·H·W + hbase·W + wbase
  int CHW, djbase;
  int col, row;
  __device__ __forceinline__ void init(const Geom& g, const float* x_, int m0, int j0) {
    x = x_;
    H = g.H;
    W = g.W;
    P = g.P;
    Q = g.Q;
    sh = g.sh;
    sw = g.sw;
    Kg = g.N * g.P * g.Q;
    CHW = g.C * g.H * g.W;
    int RS = g.R * g.S, CRS = g.C * RS;
    col = (int)threadIdx.x & 7;
    row = (int)threadIdx.x >> 3;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int m = m0 + row + 32 * i;
      int c = m / RS;
      int rs = m - c * RS;
      int rr = rs / g.S;
      s[i] = rs - rr * g.S;
      r[i] = m < CRS ? rr : kFar;
      xoff[i] = c * g.H * g.W + rr * g.W + s[i];
    }
    jc.init(j0 + col, P, Q);
    hbase = jc.p * sh - g.ph;
    wbase = jc.q * sw - g.pw;
    jbase = jc.n * CHW + hbase * W + wbase;
    djbase = jc.dn * CHW + jc.dp * sh * W + jc.dq * sw;
  }
  __device__ __forceinline__ void load(float (&v)[4]) const {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int h = hbase + r[i], w = wbase + s[i];
      v[i] = (jc.j < Kg && (unsigned)h < (unsigned)H && (unsigned)w < (unsigned)W) ? x[jbase + xoff[i]]
                                                                                    : 0.0f;
    }
  }
  template <bool kTF32>
  __device__ __forceinline__ void store(float* sA, int ld, const float (&v)[4]) const {
#pragma unroll
    for (int i = 0; i < 4; i++) sA[col * ld + row + 32 * i] = to_tile<kTF32>(v[i]);
  }
  __device__ __forceinline__ void advance() {
    jc.j += kBK;
    jc.q += jc.dq;
    jc.p += jc.dp;
    hbase += jc.dp * sh;
    wbase += jc.dq * sw;
    jbase += djbase;
    if (jc.q >= Q) {
      jc.q -= Q;
      jc.p++;
      wbase -= Q * sw;
      hbase += sh;
      jbase += sh * W - Q * sw;
    }
    if (jc.p >= P) {
      jc.p -= P;
      hbase -= P * sh;
      jbase += CHW - P * sh * W;
    }
  }
};

// WgradB: bwd-filter B[j,k] = dy[n,k,pq] with j = n·P·Q + pq. Thread t
// owns column j = t%8 and rows (filters) t/8 and t/8 + 32.
template <int kN>
struct WgradBN {
  static const int kJ = kN / 32;
  static const int kRegs = kJ;
  const float* dy;
  int Kg, PQ, KPQ, j, pq, jbase, dpq, djbase;
  int koff[kJ];
  bool ok[kJ];
  int col, row;
  __device__ __forceinline__ void init(const Geom& g, const float* dy_, int n0, int j0) {
    dy = dy_;
    PQ = g.P * g.Q;
    KPQ = g.K * PQ;
    Kg = g.N * PQ;
    col = (int)threadIdx.x & 7;
    row = (int)threadIdx.x >> 3;
#pragma unroll
    for (int i = 0; i < kJ; i++) {
      int k = n0 + row + 32 * i;
      ok[i] = k < g.K;
      koff[i] = k * PQ;
    }
    j = j0 + col;
    int n = j / PQ;
    pq = j - n * PQ;
    jbase = n * KPQ + pq;
    int dn = kBK / PQ;
    dpq = kBK - dn * PQ;
    djbase = dn * KPQ + dpq;
  }
  __device__ __forceinline__ void load(float (&v)[kJ]) const {
#pragma unroll
    for (int i = 0; i < kJ; i++) v[i] = (ok[i] && j < Kg) ? dy[jbase + koff[i]] : 0.0f;
  }
  template <bool kTF32>
  __device__ __forceinline__ void store(float* sB, int ld, const float (&v)[kJ]) const {
#pragma unroll
    for (int i = 0; i < kJ; i++) sB[col * ld + row + 32 * i] = to_tile<kTF32>(v[i]);
  }
  __device__ __forceinline__ void advance() {
    j += kBK;
    pq += dpq;
    jbase += djbase;
    if (pq >= PQ) {
      pq -= PQ;
      jbase += KPQ - PQ;
    }
  }
};
typedef WgradBN<kBN> WgradB;

// ---------------------------------------------------------------------------
// Output: D[m,n] goes to out[(m / G)·gstride + m % G + n·cstride] (forward:
// G = P·Q, gstride = K·P·Q, cstride = P·Q; bwd-data: H·W, C·H·W, H·W;
// bwd-filter: G = cstride = C·R·S, one group). Forward adds bias[n] (when
// not null) and applies ReLU (when relu ≠ 0; NaN propagates, −0 → +0).
struct Out {
  float* out;
  const float* bias;
  int M, Nn, G, gstride, cstride, relu;
  __device__ __forceinline__ int row(int m) const {
    int g = m / G;
    return g * gstride + (m - g * G);
  }
  __device__ __forceinline__ float fix(float v, int n) const {
    if (bias != 0) v = v + bias[n];
    if (relu) v = (v > 0.0f || v != v) ? v : 0.0f;
    return v;
  }
  // vec4 reports whether 4 consecutive rows from a multiple of 4 are
  // contiguous and 16-byte aligned in out.
  __device__ __forceinline__ bool vec4() const {
    return G % 4 == 0 && cstride % 4 == 0 && aligned16(out);
  }
};

// ---------------------------------------------------------------------------
// Phase-decomposed backward-data (CUTLASS's strided dgrad): for a stride
// sh×sw > 1 most (k,r,s) terms of an input pixel are zero. Pixels h = a +
// sh·i, v = b + sw·j of one phase (a,b) (blockIdx.z = a·sw + b) receive
// exactly the taps r = r0 + sh·u, s = s0 + sw·t with r0 = (a + ph) mod sh,
// s0 = (b + pw) mod sw, from p = i + ta − u, q = j + tb − t with ta = (a +
// ph − r0)/sh, tb = (b + pw − s0)/sw: a dense GEMM per phase,
//
//	M = N·Ha·Wb (n,i,j), N = C, K = K·Ru·Sv (k,u,t)
//
// with Ha = ⌈(H−a)/sh⌉, Wb = ⌈(W−b)/sw⌉, Ru = ⌈(R−r0)/sh⌉, Sv = ⌈(S−s0)/sw⌉.
// A phase with no taps (Ru·Sv = 0, e.g. a 1×1 kernel) writes zeros.

// Phase is the geometry of one phase.
struct Phase {
  int a, b, r0, s0, ta, tb, Ha, Wb, Ru, Sv;
  __device__ __forceinline__ void init(const Geom& g, int z) {
    a = z / g.sw;
    b = z - a * g.sw;
    r0 = (a + g.ph) % g.sh;
    s0 = (b + g.pw) % g.sw;
    ta = (a + g.ph - r0) / g.sh;
    tb = (b + g.pw - s0) / g.sw;
    Ha = a < g.H ? (g.H - a + g.sh - 1) / g.sh : 0;
    Wb = b < g.W ? (g.W - b + g.sw - 1) / g.sw : 0;
    Ru = r0 < g.R ? (g.R - r0 + g.sh - 1) / g.sh : 0;
    Sv = s0 < g.S ? (g.S - s0 + g.sw - 1) / g.sw : 0;
  }
};

// DgradSA: A[m,(k,u,t)] = dy[n,k,i+ta−u,j+tb−t] (0 outside 0 ≤ p < P,
// 0 ≤ q < Q). Thread t owns column t/32 and rows t%32 + 32i.
struct DgradSA {
  static const int kRegs = 4;
  const float* dy;
  int P, Q, PQ, Kg, Ru, Sv;
  int pb[4], qb[4], nb[4];
  KCRS kc;  // (k, u, t) as (c, r, s)
  int koff, dkoff;
  int col, row;
  __device__ __forceinline__ void init(const Geom& g, const Phase& ph, const float* dy_, int m0) {
    dy = dy_;
    P = g.P;
    Q = g.Q;
    PQ = g.P * g.Q;
    Ru = ph.Ru > 0 ? ph.Ru : 1;  // (no taps: Kg = 0, nothing is loaded)
    Sv = ph.Sv > 0 ? ph.Sv : 1;
    Kg = g.K * ph.Ru * ph.Sv;
    int HW = ph.Ha * ph.Wb, M = g.N * HW;
    col = (int)threadIdx.x >> 5;
    row = (int)threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int m = m0 + row + 32 * i;
      int n = HW > 0 ? m / HW : 0;
      int ij = m - n * HW;
      int ii = ph.Wb > 0 ? ij / ph.Wb : 0;
      pb[i] = m < M ? ii + ph.ta : kFar;
      qb[i] = ij - ii * ph.Wb + ph.tb;
      nb[i] = n * g.K * PQ;
    }
    kc.init(col, Ru, Sv);
    koff = kc.k / (Ru * Sv) * PQ;
    dkoff = kc.dc * PQ;
  }
  __device__ __forceinline__ void load(float (&v)[4]) const {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int p = pb[i] - kc.r, q = qb[i] - kc.s;
      v[i] = (kc.k < Kg && (unsigned)p < (unsigned)P && (unsigned)q < (unsigned)Q)
                 ? dy[nb[i] + koff + p * Q + q]
                 : 0.0f;
    }
  }
  template <bool kTF32>
  __device__ __forceinline__ void store(float* sA, int ld, const float (&v)[4]) const {
#pragma unroll
    for (int i = 0; i < 4; i++) sA[col * ld + row + 32 * i] = to_tile<kTF32>(v[i]);
  }
  __device__ __forceinline__ void advance() {
    kc.k += kBK;
    kc.s += kc.ds;
    kc.r += kc.dr;
    koff += dkoff;
    if (kc.s >= Sv) {
      kc.s -= Sv;
      kc.r++;
    }
    if (kc.r >= Ru) {
      kc.r -= Ru;
      koff += PQ;
    }
  }
};

// DgradSB: B[(k,u,t),c] = w[k,c,r0+sh·u,s0+sw·t]. Thread t owns column
// t%8 and rows (channels) t/8 and t/8 + 32.
template <int kN>
struct DgradSBN {
  static const int kJ = kN / 32;
  static const int kRegs = kJ;
  const float* w;
  int Kg, Ru, Sv, CRS, dS, sw;  // dS = sh·S: the offset of u + 1
  KCRS kc;
  int koff, dkoff;
  int coff[kJ];
  bool ok[kJ];
  int col, row;
  __device__ __forceinline__ void init(const Geom& g, const Phase& ph, const float* w_, int n0) {
    w = w_;
    int RS = g.R * g.S;
    CRS = g.C * RS;
    Ru = ph.Ru > 0 ? ph.Ru : 1;
    Sv = ph.Sv > 0 ? ph.Sv : 1;
    Kg = g.K * ph.Ru * ph.Sv;
    dS = g.sh * g.S;
    sw = g.sw;
    col = (int)threadIdx.x & 7;
    row = (int)threadIdx.x >> 3;
#pragma unroll
    for (int j = 0; j < kJ; j++) {
      int c = n0 + row + 32 * j;
      ok[j] = c < g.C;
      coff[j] = c * RS;
    }
    kc.init(col, Ru, Sv);
    koff = kc.k / (Ru * Sv) * CRS + ph.r0 * g.S + ph.s0 + kc.r * dS + kc.s * sw;
    dkoff = kc.dc * CRS + kc.dr * dS + kc.ds * sw;
  }
  __device__ __forceinline__ void load(float (&v)[kJ]) const {
#pragma unroll
    for (int j = 0; j < kJ; j++) v[j] = (ok[j] && kc.k < Kg) ? w[koff + coff[j]] : 0.0f;
  }
  template <bool kTF32>
  __device__ __forceinline__ void store(float* sB, int ld, const float (&v)[kJ]) const {
#pragma unroll
    for (int j = 0; j < kJ; j++) sB[col * ld + row + 32 * j] = to_tile<kTF32>(v[j]);
  }
  __device__ __forceinline__ void advance() {
    kc.k += kBK;
    kc.s += kc.ds;
    kc.r += kc.dr;
    koff += dkoff;
    if (kc.s >= Sv) {
      kc.s -= Sv;
      kc.r++;
      koff += dS - Sv * sw;
    }
    if (kc.r >= Ru) {
      kc.r -= Ru;
      koff += CRS - Ru * dS;
    }
  }
};
typedef DgradSBN<kBN> DgradSB;

// OutPhase: D[m,c] of phase (a,b) goes to dx[n,c,a+sh·i,b+sw·j], m = (n·Ha
// + i)·Wb + j (scalar stores: the rows of a phase are not contiguous).
struct OutPhase {
  float* out;
  int M, Nn, cstride;  // cstride = H·W
  int HW, CHW, W, Wb, a, b, sh, sw;
  __device__ __forceinline__ int row(int m) const {
    int n = m / HW;
    int ij = m - n * HW;
    int i = ij / Wb;
    int j = ij - i * Wb;
    return n * CHW + (a + sh * i) * W + b + sw * j;
  }
  __device__ __forceinline__ float fix(float v, int) const { return v; }
  __device__ __forceinline__ bool vec4() const { return false; }
};

// ---------------------------------------------------------------------------
// The main loop: double-buffered shared tiles, one barrier per k-tile.
// Compute is the per-precision inner product over one k-tile.

template <bool kTF32, int kLdA, int kLdB, class AL, class BL, class Compute>
static __device__ __forceinline__ void mainloop(AL& a, BL& b, int ntiles, float* sA, float* sB,
                                                Compute& comp) {
  float ra[AL::kRegs], rb[BL::kRegs];
  a.load(ra);
  b.load(rb);
  a.template store<kTF32>(sA, kLdA, ra);
  b.template store<kTF32>(sB, kLdB, rb);
  __syncthreads();
  for (int t = 0; t < ntiles; t++) {
    int cur = t & 1;
    bool more = t + 1 < ntiles;
    if (more) {
      a.advance();
      b.advance();
      a.load(ra);
      b.load(rb);
    }
    comp.tile(sA + cur * kBK * kLdA, sB + cur * kBK * kLdB);
    if (more) {
      a.template store<kTF32>(sA + (cur ^ 1) * kBK * kLdA, kLdA, ra);
      b.template store<kTF32>(sB + (cur ^ 1) * kBK * kLdB, kLdB, rb);
    }
    __syncthreads();
  }
}

#endif  // CONVTRAIN_KERNELS_IGEMM_CUH
