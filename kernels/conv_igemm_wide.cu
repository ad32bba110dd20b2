// conv_igemm_wide.cu: implicit-GEMM convolution in exact FP32 (FFMA) with
// 128×128 block tiles, sm_70, for layers with 128 or more filters
// (forward, bwd-filter) or channels (bwd-data).
//
// Shape letters as in conv.cu: x is (N,C,H,W), w is (K,C,R,S), b is (K),
// y is (N,K,P,Q). The GEMM views, loaders and main loop are those of
// igemm.cuh with a 128-wide N side; the arithmetic and every sum order are
// those of conv_igemm.cu, so results are the same bits as the v2 kernels.
//
// Versions:
//
//	conv2d_fwd_v6_igemm_wide                 conv2d_fwd_v2_igemm with a 128×128×8 tile, 8×8 outputs per thread.
//	conv2d_bwd_data_v6_igemm_wide            conv2d_bwd_data_v2_igemm with a 128×128×8 tile.
//	conv2d_bwd_data_v6_igemm_wide_strided    conv2d_bwd_data_v4_igemm_strided with a 128×128×8 tile.
//	conv2d_bwd_filter_v6_igemm_wide          conv2d_bwd_filter_v2_igemm with a 128×128×8 tile (same split
//	                                         workspace layout; conv2d_bwd_filter_v2_reduce adds the splits).
//
// Per thread (256 threads, tm = t%16, tn = t/16) the hot loop reads, per
// reduction step, two 16-byte A vectors (rows 4·tm …, 64 + 4·tm …) and two
// 16-byte B vectors (cols 4·tn …, 64 + 4·tn …) and issues 64 FFMA: half
// the shared-memory and loader work per FMA of the 128×64 tile. Both
// shared tiles have rows of 132 floats (conflict-free stores and reads).
//
// Launch: block.x = 256; grid = (⌈M/128⌉, ⌈N/128⌉, z) with z = 1, the
// number of phases sh·sw (strided bwd-data) or of splits (bwd-filter).

#include "igemm.cuh"

#define kBNW 128  // the N side of the tile
#define kLdA 132
#define kLdB 132

// FFMA88 is the thread tile: acc[i][j] for rows m0 + 4·tm + i (i < 4),
// m0 + 64 + 4·tm + i − 4 (i ≥ 4) and columns n0 + 4·tn + j (j < 4),
// n0 + 64 + 4·tn + j − 4 (j ≥ 4).
struct FFMA88 {
  float acc[8][8];
  int tm, tn;
  __device__ __forceinline__ void init() {
    tm = (int)threadIdx.x & 15;
    tn = (int)threadIdx.x >> 4;
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
      for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;
  }
  __device__ __forceinline__ void tile(const float* sA, const float* sB) {
#pragma unroll
    for (int k = 0; k < kBK; k++) {
      f4 a0 = *(const f4*)(sA + k * kLdA + 4 * tm);
      f4 a1 = *(const f4*)(sA + k * kLdA + 64 + 4 * tm);
      f4 b0 = *(const f4*)(sB + k * kLdB + 4 * tn);
      f4 b1 = *(const f4*)(sB + k * kLdB + 64 + 4 * tn);
      float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = __builtin_fmaf(av[i], bv[j], acc[i][j]);
    }
  }
  template <class O>
  __device__ __forceinline__ void epilogue(const O& o, int m0, int n0) const {
    bool vec = o.vec4();
#pragma unroll
    for (int h = 0; h < 2; h++) {
      int mb = m0 + 64 * h + 4 * tm;
      if (mb >= o.M) continue;
#pragma unroll
      for (int jj = 0; jj < 8; jj++) {
        int n = n0 + 64 * (jj >> 2) + 4 * tn + (jj & 3);
        if (n >= o.Nn) continue;
        if (vec) {
          f4 v = {o.fix(acc[4 * h][jj], n), o.fix(acc[4 * h + 1][jj], n), o.fix(acc[4 * h + 2][jj], n),
                  o.fix(acc[4 * h + 3][jj], n)};
          *(f4*)(o.out + o.row(mb) + n * o.cstride) = v;
        } else {
#pragma unroll
          for (int i = 0; i < 4; i++)
            if (mb + i < o.M) o.out[o.row(mb + i) + n * o.cstride] = o.fix(acc[4 * h + i][jj], n);
        }
      }
    }
  }
};

template <class AL, class BL>
static __device__ __forceinline__ void fwd(const Geom& g, const float* x, const float* w,
                                           const Out& o, float* sA, float* sB) {
  int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBNW;
  int Kg = g.C * g.R * g.S;
  AL a;
  a.init(g, x, m0, 0);
  BL b;
  b.init(w, g.K, Kg, n0, 0, Kg);
  FFMA88 c;
  c.init();
  mainloop<false, kLdA, kLdB>(a, b, (Kg + kBK - 1) / kBK, sA, sB, c);
  c.epilogue(o, m0, n0);
}

// conv2d_fwd_v6_igemm_wide computes
//
//	y[n,k,p,q] = act(b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[n,c, p·sh − ph + r, q·sw − pw + s])
//
// exactly as conv2d_fwd_v2_igemm (same loads, same order, same bits).
//
// Launch: grid = (⌈N·P·Q/128⌉, ⌈K/128⌉), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_fwd_v6_igemm_wide(const float* x, const float* w, const float* b, float* y, int N,
                             int C, int H, int W, int K, int R, int S, int P, int Q, int sh,
                             int sw, int ph, int pw, int relu) {
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
      fwd<FwdA1x1, RowB4N<kBNW> >(g, x, w, o, sA, sB);
    else
      fwd<FwdA1x1, RowBN<kBNW> >(g, x, w, o, sA, sB);
  } else {
    if (vb)
      fwd<FwdA, RowB4N<kBNW> >(g, x, w, o, sA, sB);
    else
      fwd<FwdA, RowBN<kBNW> >(g, x, w, o, sA, sB);
  }
}

// conv2d_bwd_data_v6_igemm_wide overwrites dx with ∂E/∂x exactly as
// conv2d_bwd_data_v2_igemm.
//
// Launch: grid = (⌈N·H·W/128⌉, ⌈C/128⌉), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_bwd_data_v6_igemm_wide(const float* dy, const float* w, float* dx, int N, int C,
                                  int H, int W, int K, int R, int S, int P, int Q, int sh, int sw,
                                  int ph, int pw) {
  // dy is (N,K,P,Q), w is (K,C,R,S), dx is (N,C,H,W)
  __shared__ __attribute__((aligned(16))) float sA[2 * kBK * kLdA];
  __shared__ __attribute__((aligned(16))) float sB[2 * kBK * kLdB];
  Geom g = {N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw};
  Out o = {dx, 0, N * H * W, C, H * W, C * H * W, H * W, 0};
  int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBNW;
  int Kg = K * R * S;
  DgradA a;
  a.init(g, dy, m0, 0);
  DgradBN<kBNW> b;
  b.init(g, w, n0, 0);
  FFMA88 c;
  c.init();
  mainloop<false, kLdA, kLdB>(a, b, (Kg + kBK - 1) / kBK, sA, sB, c);
  c.epilogue(o, m0, n0);
}

// conv2d_bwd_data_v6_igemm_wide_strided overwrites dx with ∂E/∂x exactly
// as conv2d_bwd_data_v4_igemm_strided (one GEMM per stride phase).
//
// Launch: grid = (⌈N·⌈H/sh⌉·⌈W/sw⌉/128⌉, ⌈C/128⌉, sh·sw), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_bwd_data_v6_igemm_wide_strided(const float* dy, const float* w, float* dx, int N,
                                          int C, int H, int W, int K, int R, int S, int P, int Q,
                                          int sh, int sw, int ph, int pw) {
  // dy is (N,K,P,Q), w is (K,C,R,S), dx is (N,C,H,W)
  __shared__ __attribute__((aligned(16))) float sA[2 * kBK * kLdA];
  __shared__ __attribute__((aligned(16))) float sB[2 * kBK * kLdB];
  Geom g = {N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw};
  Phase f;
  f.init(g, (int)blockIdx.z);
  int M = N * f.Ha * f.Wb;
  int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBNW;
  if (m0 >= M) return;  // uniform over the block: this phase has fewer rows
  OutPhase o = {dx, M, C, H * W, f.Ha * f.Wb, C * H * W, W, f.Wb, f.a, f.b, sh, sw};
  DgradSA a;
  a.init(g, f, dy, m0);
  DgradSBN<kBNW> b;
  b.init(g, f, w, n0);
  FFMA88 c;
  c.init();
  int Kg = K * f.Ru * f.Sv;
  mainloop<false, kLdA, kLdB>(a, b, (Kg + kBK - 1) / kBK, sA, sB, c);
  c.epilogue(o, m0, n0);
}

// conv2d_bwd_filter_v6_igemm_wide computes split z of the weight gradient
// exactly as conv2d_bwd_filter_v2_igemm (same splits of j = (n·P + p)·Q +
// q, same workspace layout (splits,K,C,R,S); with one split ws is dw).
//
// Launch: grid = (⌈C·R·S/128⌉, ⌈K/128⌉, splits), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_bwd_filter_v6_igemm_wide(const float* x, const float* dy, float* ws, int N, int C,
                                    int H, int W, int K, int R, int S, int P, int Q, int sh,
                                    int sw, int ph, int pw, int tilesPerSplit) {
  // x is (N,C,H,W), dy is (N,K,P,Q), ws is (splits,K,C,R,S)
  __shared__ __attribute__((aligned(16))) float sA[2 * kBK * kLdA];
  __shared__ __attribute__((aligned(16))) float sB[2 * kBK * kLdB];
  Geom g = {N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw};
  int CRS = C * R * S;
  int z = (int)blockIdx.z;
  Out o = {ws + z * K * CRS, 0, CRS, K, CRS, 0, CRS, 0};
  int m0 = (int)blockIdx.x * kBM, n0 = (int)blockIdx.y * kBNW;
  int tiles = (N * P * Q + kBK - 1) / kBK;
  int t0 = z * tilesPerSplit;
  int ntiles = tiles - t0 < tilesPerSplit ? tiles - t0 : tilesPerSplit;
  WgradA a;
  a.init(g, x, m0, t0 * kBK);
  WgradBN<kBNW> b;
  b.init(g, dy, n0, t0 * kBK);
  FFMA88 c;
  c.init();
  mainloop<false, kLdA, kLdB>(a, b, ntiles, sA, sB, c);
  c.epilogue(o, m0, n0);
}
