// conv_igemm_tf32.cu: implicit-GEMM convolution on TF32 tensor cores
// (mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32), sm_80 and newer.
// gen-ptx: target sm_80
//
// Shape letters as in conv.cu: x is (N,C,H,W), w is (K,C,R,S), b is (K),
// y is (N,K,P,Q). Same GEMM views, tiles, loaders and double-buffered main
// loop as the FP32 versions (igemm.cuh); only the arithmetic differs.
//
// Versions:
//
//	conv2d_fwd_v3_igemm_tf32         conv2d_fwd_v2_igemm on tensor cores (bias and optional ReLU fused).
//	conv2d_bwd_data_v3_igemm_tf32    conv2d_bwd_data_v2_igemm on tensor cores.
//	conv2d_bwd_filter_v3_igemm_tf32  conv2d_bwd_filter_v2_igemm on tensor cores (same split-K; the
//	                                 splits are added by conv2d_bwd_filter_v2_reduce).
//	conv2d_bwd_data_v5_igemm_strided_tf32  conv2d_bwd_data_v4_igemm_strided on tensor cores.
//	                                 splits are added by conv2d_bwd_filter_v2_reduce).
//
// Numerics: every operand is rounded to TF32 (cvt.rna.tf32.f32: 10
// explicit mantissa bits, to nearest, ties away from zero) as it enters
// shared memory; the tensor cores multiply TF32 exactly and accumulate in
// float32, one m16n8k8 step (8 products) at a time, k-tiles in ascending
// order. Integer-valued operands below 2¹¹ are exact in TF32, so with
// small integers the result is still exact. No atomics.
//
// Warp tiling: the 8 warps of a block cover the 128×64 tile as 4×2 warp
// tiles of 32×32; per 8-wide k-step a warp loads two 16×8 A fragments and
// four 8×8 B fragments from shared memory (16 scalar loads per thread) and
// issues 8 mma. sA rows are 136 floats apart and sB rows 72: both ≡ 8 mod
// 32, so a fragment load (lanes at row tig, column gid: bank 8·tig + gid)
// touches 32 distinct banks.
//
// Launch: block.x = 256; grid = (⌈M/128⌉, ⌈N/64⌉, 1), and for
// bwd-filter grid.z = the number of splits.

#include "igemm.cuh"

#define kLdA 136  // sA row stride in floats (kBM + 8)
#define kLdB 72   // sB row stride in floats (kBN + 8)

// MMA is the TF32 warp tile: warp w covers rows m0 + 32·(w%4) … + 31 and
// columns n0 + 32·(w/4) … + 31 as 2×4 m16n8 tiles. acc[mt][nt][e] is the
// mma C fragment: e = 0,1 at row gid, e = 2,3 at row gid + 8, column
// 2·tig + (e&1), with gid = lane/4, tig = lane%4.
struct MMA {
  float acc[2][4][4];
  int wm, wn, gid, tig;
  __device__ __forceinline__ void init() {
    int warp = (int)threadIdx.x >> 5, lane = (int)threadIdx.x & 31;
    wm = 32 * (warp & 3);
    wn = 32 * (warp >> 2);
    gid = lane >> 2;
    tig = lane & 3;
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;
  }
  __device__ __forceinline__ void tile(const float* sA, const float* sB) {
    const unsigned* a = (const unsigned*)sA;
    const unsigned* b = (const unsigned*)sB;
    unsigned af[2][4], bf[4][2];
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
      int m = wm + 16 * mt + gid;
      af[mt][0] = a[tig * kLdA + m];
      af[mt][1] = a[tig * kLdA + m + 8];
      af[mt][2] = a[(tig + 4) * kLdA + m];
      af[mt][3] = a[(tig + 4) * kLdA + m + 8];
    }
#pragma unroll
    for (int nt = 0; nt < 4; nt++) {
      int n = wn + 8 * nt + gid;
      bf[nt][0] = b[tig * kLdB + n];
      bf[nt][1] = b[(tig + 4) * kLdB + n];
    }
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
      for (int nt = 0; nt < 4; nt++) {
        float* c = acc[mt][nt];
        asm volatile(
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
            "{%8, %9}, {%0, %1, %2, %3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(af[mt][0]), "r"(af[mt][1]), "r"(af[mt][2]), "r"(af[mt][3]), "r"(bf[nt][0]),
              "r"(bf[nt][1]));
      }
  }
  // epilogue: scalar stores; for a fixed register the lanes write 8
  // consecutive rows (gid) of 4 column pairs (tig), 4 sectors per request.
  template <class O>
  __device__ __forceinline__ void epilogue(const O& o, int m0, int n0) const {
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
      for (int hh = 0; hh < 2; hh++) {
        int m = m0 + wm + 16 * mt + gid + 8 * hh;
        if (m >= o.M) continue;
        int ro = o.row(m);
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
          for (int e = 0; e < 2; e++) {
            int n = n0 + wn + 8 * nt + 2 * tig + e;
            if (n < o.Nn) o.out[ro + n * o.cstride] = o.fix(acc[mt][nt][2 * hh + e], n);
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
  MMA c;
  c.init();
  mainloop<true, kLdA, kLdB>(a, b, (Kg + kBK - 1) / kBK, sA, sB, c);
  c.epilogue(o, m0, n0);
}

// conv2d_fwd_v3_igemm_tf32 computes, with TF32 products,
//
//	y[n,k,p,q] = act(b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[n,c, p·sh − ph + r, q·sw − pw + s])
//
// as conv2d_fwd_v2_igemm (b may be null; act = ReLU when relu ≠ 0).
//
// Launch: grid = (⌈N·P·Q/128⌉, ⌈K/64⌉), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_fwd_v3_igemm_tf32(const float* x, const float* w, const float* b, float* y, int N,
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

// conv2d_bwd_data_v3_igemm_tf32 overwrites dx with ∂E/∂x as
// conv2d_bwd_data_v2_igemm, with TF32 products.
//
// Launch: grid = (⌈N·H·W/128⌉, ⌈C/64⌉), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_bwd_data_v3_igemm_tf32(const float* dy, const float* w, float* dx, int N, int C,
                                  int H, int W, int K, int R, int S, int P, int Q, int sh, int sw,
                                  int ph, int pw) {
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
  MMA c;
  c.init();
  mainloop<true, kLdA, kLdB>(a, b, (Kg + kBK - 1) / kBK, sA, sB, c);
  c.epilogue(o, m0, n0);
}

// conv2d_bwd_filter_v3_igemm_tf32 computes split z of the weight gradient
// as conv2d_bwd_filter_v2_igemm (same splits, same workspace layout), with
// TF32 products.
//
// Launch: grid = (⌈C·R·S/128⌉, ⌈K/64⌉, splits), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_bwd_filter_v3_igemm_tf32(const float* x, const float* dy, float* ws, int N, int C,
                                    int H, int W, int K, int R, int S, int P, int Q, int sh,
                                    int sw, int ph, int pw, int tilesPerSplit) {
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
  MMA c;
  c.init();
  mainloop<true, kLdA, kLdB>(a, b, ntiles, sA, sB, c);
  c.epilogue(o, m0, n0);
}

// conv2d_bwd_data_v5_igemm_strided_tf32 is conv2d_bwd_data_v4_igemm_strided
// (phase-decomposed, no zero work for strides > 1) with TF32 products.
//
// Launch: grid = (⌈N·⌈H/sh⌉·⌈W/sw⌉/128⌉, ⌈C/64⌉, sh·sw), block.x = 256.
extern "C" __global__ void __launch_bounds__(kThreads)
    conv2d_bwd_data_v5_igemm_strided_tf32(const float* dy, const float* w, float* dx, int N,
                                          int C, int H, int W, int K, int R, int S, int P, int Q,
                                          int sh, int sw, int ph, int pw) {
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
  MMA c;
  c.init();
  int Kg = K * f.Ru * f.Sv;
  mainloop<true, kLdA, kLdB>(a, b, (Kg + kBK - 1) / kBK, sA, sB, c);
  c.epilogue(o, m0, n0);
}
