// conv_igemm_tf32_bwd.cu: the backward passes of the TF32 tensor-core
// pipeline (conv_igemm_tf32_pipe.cu): mma.sync m16n8k8 tf32 with float32
// accumulation, a 3-stage cp.async pipeline of 16-byte copies, XOR-swizzled
// shared tiles; sm_80 and newer. The bodies are in pipe_bwd.cuh (shared
// with conv_igemm_bf16_bwd.cu).
// gen-ptx: target sm_80
//
// Versions:
//
//	pack_crsk_flip_tf32_v1        w (K,C,R,S) float32 → wt (C,R,S,Kp) TF32, taps flipped
//	                              (wt[c,r,s,k] = tf32(w[k,c,R−1−r,S−1−s])), filters past K zero.
//	conv2d_bwd_data_v9_igemm_tf32 dx from dyh (N,P,Q,Kp) and wt: M = N·H·W, N = C, K = R·S·Kp;
//	                              128×128×16 tiles, 4 warps of 64×64, ldmatrix.x4 fragments;
//	                              any stride (the loader zero-fills the taps that the stride
//	                              skips).
//	conv2d_bwd_filter_v10_igemm_tf32  dw from dyh and xh (N,H,W,Cp): M = K, N = R·S·Cp, K =
//	                              N·P·Q split over gridDim.z (fixed order, no atomics); the
//	                              fragments come from k-major tiles by 64-bit (A: two
//	                              adjacent filters) and 32-bit (B) shared loads
//	                              (ldmatrix.trans moves 16-bit elements only).
//
// Numerics as conv2d_bwd_*_v3_igemm_tf32: every operand rounded to TF32
// once (cvt.rna.tf32.f32: to nearest, ties away from zero), here when
// packed; float32 sums.

#define __launch_bounds__(n, m) __attribute__((launch_bounds(n, m)))

#define kBM 128      // block tile rows
#define kBN 128      // block tile columns
#define kBK 16       // k-tile depth (TF32 elements)
#define kThreads 128 // 4 warps, 2×2 warp tiles of 64×64
#define kStages 3

#include "pipe_bwd.cuh"

// pack_crsk_flip_tf32_v1: see pipe::pack_crsk_flip. w is (K,C,RS) float32,
// wt is (C,RS,Kp) TF32 words. Launch: 1-D over C·RS·Kp.
extern "C" __global__ void pack_crsk_flip_tf32_v1(const float* w, unsigned* wt, int K, int C,
                                                  int RS, int Kp) {
  pipe::pack_crsk_flip<4>(w, wt, K, C, RS, Kp);
}

// conv2d_bwd_data_v9_igemm_tf32 overwrites dx with
//
//	dx[n,c,h,w] = Σ_k Σ_r Σ_s tf32(dy[n,k,p,q]) · tf32(w[k,c,r,s]),
//	p = (h + ph − r)/sh, q = (w + pw − s)/sw when divisible and in range,
//
// summed in float32. dyh is (N,P,Q,Kp) from pack_nhwc_tf32_v1 (C = K), wt
// is (C,R,S,Kp) from pack_crsk_flip_tf32_v1, both 16-byte aligned, Kp a
// multiple of 4; dx is (N,C,H,W) float32.
//
// Launch: grid = (⌈N·H·W/128⌉, ⌈C/128⌉), block.x = 128.
extern "C" __global__ void __launch_bounds__(kThreads, 2)
    conv2d_bwd_data_v9_igemm_tf32(const unsigned* dyh, const unsigned* wt, float* dx, int N,
                                  int C, int H, int W, int K, int R, int S, int P, int Q, int sh,
                                  int sw, int ph, int pw, int Kp) {
  // dyh is (N,P,Q,Kp), wt is (C,R,S,Kp), dx is (N,C,H,W)
  __shared__ __attribute__((aligned(128))) unsigned char smem[kStages * 2 * kBM * 64];
  pipe::dgrad<4>(dyh, wt, dx, N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, Kp, smem);
}

// conv2d_bwd_filter_v10_igemm_tf32 writes, for split z = blockIdx.z,
//
//	ws[z,k,c,r,s] = Σ_j tf32(dy[n,k,p,q]) · tf32(x[n,c, p·sh − ph + r, q·sw − pw + s])
//
// over j = (n·P + p)·Q + q from 16·z·tps to min(16·(z+1)·tps, N·P·Q) − 1
// (tps = tilesPerSplit), summed in float32, k-tiles ascending; ws is dw
// itself with one split, else conv2d_bwd_filter_v2_reduce adds the splits
// in order. dyh is (N,P,Q,Kp), xh is (N,H,W,Cp), both from
// pack_nhwc_tf32_v1, 16-byte aligned.
//
// Launch: grid = (⌈K/128⌉, ⌈R·S·Cp/128⌉, splits), block.x = 128.
extern "C" __global__ void __launch_bounds__(kThreads, 2)
    conv2d_bwd_filter_v10_igemm_tf32(const unsigned* dyh, const unsigned* xh, float* ws, int N,
                                     int C, int H, int W, int K, int R, int S, int P, int Q,
                                     int sh, int sw, int ph, int pw, int Kp, int Cp,
                                     int tilesPerSplit) {
  // dyh is (N,P,Q,Kp), xh is (N,H,W,Cp), ws is (splits,K,C,R,S)
  __shared__ __attribute__((aligned(128))) unsigned char smem[kStages * 2 * kBK * 512];
  pipe::wgrad<4>(dyh, xh, ws, N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, Kp, Cp, tilesPerSplit,
                 smem);
}
