// conv_igemm.cu: implicit-GEMM convolution in exact FP32 (FFMA), sm_70.
//
// Shape letters as in conv.cu: x is (N,C,H,W), w is (K,C,R,S), b is (K),
// y is (N,K,P,Q). The GEMM view of each pass, the tiles, the loaders and
// the double-buffered main loop are in igemm.cuh.
//
// Versions:
//
//	conv2d_fwd_v2_igemm          forward as a 128×64×8 implicit GEMM (M = N·P·Q, N = K, K = C·R·S),
//	                             8×4 outputs per thread, bias and optional ReLU in the epilogue.
//	conv2d_bwd_data_v2_igemm     backward-data as the same GEMM over M = N·H·W, N = C, K = K·R·S.
//	conv2d_bwd_filter_v2_igemm   backward-filter over M = C·R·S, N = K, K = N·P·Q, split-K over
//	                             gridDim.z: split z writes its partial sums to its own slice.
//	conv2d_bwd_filter_v2_reduce  the fixed-order second pass: dw = Σ_z ws[z] for z ascending.
//	conv2d_bwd_data_v4_igemm_strided  backward-data decomposed by stride phase (CUTLASS's strided
//	                             dgrad): one dense GEMM per (h mod sh, w mod sw), no zero terms.
//
// Numerics: each output is an FFMA chain acc = fma(a, b, acc) from 0 over
// its reduction index in ascending order (within a split), then + b[k]
// (forward). With integer-valued inputs whose sums stay below 2²⁴ every
// operation is exact, so the result equals the direct kernels bit for bit;
// otherwise it is within the usual (m+1)·u·Σ|terms| of an m-term sum. No
// atomics: the same inputs and the same launch shape give the same bits.
//
// Per thread (256 threads, tm = t%16, tn = t/16) the hot loop reads, per
// reduction step, two 16-byte A vectors (rows 4·tm … and 64 + 4·tm …) and
// one 16-byte B vector (cols 4·tn …) from shared memory and issues 32 FFMA.
// sA rows are 132 floats apart and sB rows 68 (the padding makes the
// loaders' column-wise stores conflict-free; the 16-byte reads are
// conflict-free for any row stride that is a multiple of 4).
//
// Launch: block.x = 256; grid = (⌈M/128⌉, ⌈N/64⌉, 1), and for
// bwd-filter grid.z = the number of splits (see the kernel).

#include "igemm.cuh"

#define kLdA 132  // sA row stride in floats (kBM + 4)
#define kLdB 68   // sB row stride in floats (kBN + 4)

// FFMA is the FP32 thread tile: acc[i][j] for rows m0 + 4·tm + i (i < 4),
// m0 + 64 + 4·tm + i − 4 (i ≥ 4) and columns n0 + 4·tn + j.
struct FFMA {
  float acc[8][4];
  int tm, tn;
  __device__ __forceinline__ void init() {
    tm = (int)threadIdx.x & 15;
    tn = (int)threadIdx.x >> 4;
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
      for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
  }
  __device__ __forceinline__ void tile(const float* sA, const float* sB) {
#pragma unroll
    for (int k = 0; k < kBK; k++) {
      f4 a0 = *(const f4*)(sA + k * kLdA + 4 * tm);
      f4 a1 = *(const f4*)(sA + k * kLdA + 64 + 4 * tm);
      f4 b = *(const f4*)(sB + k * kLdB + 4 * tn);
      float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = __builtin_fmaf(av[i], bv[j], acc[i][j]);
    }
  }
  // epilogue stores the tile: 16-byte stores of 4 consecutive rows when
  // the output layout allows (G and cstride multiples of 4, out aligned),
  // scalar stores otherwise.
  template <class O>
  __device__ __forceinline__ void epilogue(const O& o, int m0, int n0) const {
    bool vec = o.vec4();
#pragma unroll
    for (int h = 0; h < 2; h++) {
      int mb = m0 + 64 * h + 4 * tm;
      if (vec) {
        if (mb >= o.M) continue;
        int ro = o.row(mb);
#pragma unroll
        for (int j = 0; j < 4; j++) {
          int n = n0 + 4 * tn + j;
          if (n >= o.Nn) continue;
          f4 v = {o.fix(acc[4 * h][j], n), o.fix(acc[4 * h + 1][j], n), o.fix(acc[4 * h + 2][j], n),
                  o.fix(acc[4 * h + 3][j], n)};
          *(f4*)(o.out + ro + n * o.cstride) = v;
        }
      } else {
#pragma unroll
        for (int i = 0; i < 4; i++) {
          int m = mb + i;
          if (m >= o.M) continue;
          int ro = o.row(m);
#pragma unroll
          for (int j = 0; j < 4; j++) {
            int n = n0 + 4 * tn + j;
            if (n < o.Nn) o.out[ro + n * o.cstride] = o.fix(acc[4 * h + i][j], n);
          }
        }
      }
    }
  }
};

template <class AL, class BL>
static __device__ __forceinline__ void fwd(const Geom& g, const float* x, const float* w,
                                           const Out& o, float* sA, float* sB) {
  int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBN;
  int Kg = g.C * g.R * g.S;
  AL a;
  a.init(g, x, m0, 0);
  BL b;
  b.init(w, g.K, Kg, n0, 0, Kg);
  FFMA c;
  c.init();
  mainloop<false, kLdA, kLdB>(a, b, (Kg + kBK - 1) / kBK, sA, sB, c);
  c.epilogue(o, m0, n0);
}

// conv2d_fwd_v2_igemm computes
//
//	y[n,k,p,q] = act(b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[n,c, p·sh − ph + r, q·sw − pw + s])
//
// with zero padding, b null for no bias, act = ReLU when relu ≠ 0
// (NaN propagates, −0 → +0) and the identity otherwise. The sum is an
// FFMA chain from 0 over (c,r,s) ascending; b[k] is added last.
// 16-byte loads: w when C·R·S is a multiple of 4 and w is 16-byte
// aligned; x when R = S = 1, stride 1, no padding, P·Q a multiple of 4 and
// x aligned. 16-byte stores when P·Q is a multiple of 4 and y aligned.
//
// Launch: grid = (⌈N·P·Q/128⌉, ⌈K/64⌉), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_fwd_v2_igemm(const float* x, const float* w, const float* b, float* y, int N, int C,
                        int H, int W, int K, int R, int S, int P, int Q, int sh, int sw, int ph,
                        int pw, int relu) {
  // x is (N,C,H,W), w is (K,C,R,S), b is (K) or null, y is (N,K,P,Q)
  __shared__ __attribute__((aligned(16))) float sA[2 * kBK * kLdA];
  __shared__ __attribute__((aligned(16))) float sB[2 * kBK * kLdB];
  Geom g = {N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw};
  Out o = {y, b, N * P * Q, K, P * Q, K * P * Q, P * Q, relu};
  bool va = R == 1 && S == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && (P * Q) % 4 == 0 &&
            aligned16(x);
  bool vb = (C * R * S) % 4 == 0 && aligned16(w);
  if (va) {
    if (vb)
      fwd<FwdA1x1, RowB4>(g, x, w, o, sA, sB);
    else
      fwd<FwdA1x1, RowB>(g, x, w, o, sA, sB);
  } else {
    if (vb)
      fwd<FwdA, RowB4>(g, x, w, o, sA, sB);
    else
      fwd<FwdA, RowB>(g, x, w, o, sA, sB);
  }
}

// conv2d_bwd_data_v2_igemm overwrites dx with ∂E/∂x given dy = ∂E/∂y:
//
//	dx[n,c,h,v] = Σ_k Σ_r Σ_s w[k,c,r,s] · dy[n,k,(h+ph−r)/sh,(v+pw−s)/sw]
//
// over the exact, in-range divisions (the other terms are loaded as 0: a
// stride of sh·sw does sh·sw times the useful work). FFMA chain from 0
// over (k,r,s) ascending. 16-byte stores when H·W is a multiple of 4.
//
// Launch: grid = (⌈N·H·W/128⌉, ⌈C/64⌉), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_bwd_data_v2_igemm(const float* dy, const float* w, float* dx, int N, int C, int H,
                             int W, int K, int R, int S, int P, int Q, int sh, int sw, int ph,
                             int pw) {
  // dy is (N,K,P,Q), w is (K,C,R,S), dx is (N,C,H,W)
  __shared__ __attribute__((aligned(16))) float sA[2 * kBK * kLdA];
  __shared__ __attribute__((aligned(16))) float sB[2 * kBK * kLdB];
  Geom g = {N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw};
  Out o = {dx, 0, N * H * W, C, H * W, C * H * W, H * W, 0};
  int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBN;
  int Kg = K * R * S;
  DgradA a;
  a.init(g, dy, m0, 0);
  DgradB b;
  b.init(g, w, n0, 0);
  FFMA c;
  c.init();
  mainloop<false, kLdA, kLdB>(a, b, (Kg + kBK - 1) / kBK, sA, sB, c);
  c.epilogue(o, m0, n0);
}

// conv2d_bwd_filter_v2_igemm computes split z of the weight gradient
//
//	ws[z,k,c,r,s] = Σ_{j in split z} dy[n,k,p,q] · x[n,c, p·sh − ph + r, q·sw − pw + s]
//
// over j = (n·P + p)·Q + q from z·tps·8 to min((z+1)·tps·8, N·P·Q) − 1
// (tps = tilesPerSplit 8-wide k-tiles; the host picks the split count so
// that no split is empty), as an FFMA chain from 0, j ascending. With one
// split, ws is dw itself; otherwise conv2d_bwd_filter_v2_reduce adds the
// splits in order.
//
// Launch: grid = (⌈C·R·S/128⌉, ⌈K/64⌉, splits), block.x = 256; ws holds
// splits·K·C·R·S floats.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_bwd_filter_v2_igemm(const float* x, const float* dy, float* ws, int N, int C, int H,
                               int W, int K, int R, int S, int P, int Q, int sh, int sw, int ph,
                               int pw, int tilesPerSplit) {
  // x is (N,C,H,W), dy is (N,K,P,Q), ws is (splits,K,C,R,S)
  __shared__ __attribute__((aligned(16))) float sA[2 * kBK * kLdA];
  __shared__ __attribute__((aligned(16))) float sB[2 * kBK * kLdB];
  Geom g = {N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw};
  int CRS = C * R * S;
  int z = (int)blockIdx.z;
  Out o = {ws + z * K * CRS, 0, CRS, K, CRS, 0, CRS, 0};
  int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBN;
  int tiles = (N * P * Q + kBK - 1) / kBK;
  int t0 = z * tilesPerSplit;
  int ntiles = tiles - t0 < tilesPerSplit ? tiles - t0 : tilesPerSplit;
  WgradA a;
  a.init(g, x, m0, t0 * kBK);
  WgradB b;
  b.init(g, dy, n0, t0 * kBK);
  FFMA c;
  c.init();
  mainloop<false, kLdA, kLdB>(a, b, ntiles, sA, sB, c);
  c.epilogue(o, m0, n0);
}

// conv2d_bwd_filter_v2_reduce overwrites dw with the sum of the splits in
// a fixed order:
//
//	dw[i] = ((ws[0,i] + ws[1,i]) + ws[2,i]) + … + ws[splits−1,i]
//
// Launch: 1-D over n = K·C·R·S (grid.x = ⌈n/256⌉, block.x = 256).
extern "C" __global__ void conv2d_bwd_filter_v2_reduce(const float* ws, float* dw, int splits,
                                                       int n) {
  // ws is (splits, n), dw is (n)
  int i = global_index();
  if (i >= n) return;
  float acc = ws[i];
  for (int z = 1; z < splits; z++) acc = acc + ws[z * n + i];
  dw[i] = acc;
}

// conv2d_bwd_data_v4_igemm_strided overwrites dx with ∂E/∂x as
// conv2d_bwd_data_v2_igemm, decomposed by phase (igemm.cuh: one dense GEMM
// per (h mod sh, v mod sw), blockIdx.z = phase), so that a stride of
// sh·sw does no zero work. FFMA chain from 0 over (k, u, t) ascending, that
// is (k, r, s) ascending over the nonzero terms. Scalar stores.
//
// Launch: grid = (⌈N·⌈H/sh⌉·⌈W/sw⌉/128⌉, ⌈C/64⌉, sh·sw), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_bwd_data_v4_igemm_strided(const float* dy, const float* w, float* dx, int N, int C,
                                     int H, int W, int K, int R, int S, int P, int Q, int sh,
                                     int sw, int ph, int pw) {
  // dy is (N,K,P,Q), w is (K,C,R,S), dx is (N,C,H,W)
  __shared__ __attribute__((aligned(16))) float sA[2 * kBK * kLdA];
  __shared__ __attribute__((aligned(16))) float sB[2 * kBK * kLdB];
  Geom g = {N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw};
  Phase f;
  f.init(g, (int)blockIdx.z);
  int M = N * f.Ha * f.Wb;
  int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBN;
  if (m0 >= M) return;  // uniform over the block: this phase has fewer rows
  OutPhase o = {dx, M, C, H * W, f.Ha * f.Wb, C * H * W, W, f.Wb, f.a, f.b, sh, sw};
  DgradSA a;
  a.init(g, f, dy, m0);
  DgradSB b;
  b.init(g, f, w, n0);
  FFMA c;
  c.init();
  int Kg = K * f.Ru * f.Sv;
  mainloop<false, kLdA, kLdB>(a, b, (Kg + kBK - 1) / kBK, sA, sB, c);
  c.epilogue(o, m0, n0);
}
