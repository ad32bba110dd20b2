// conv_igemm_bf16_bwd.cu: the backward passes of the BF16 tensor-core
// pipeline (conv_igemm_bf16.cu): mma.sync m16n8k16 bf16 with float32
// accumulation, a 3-stage cp.async pipeline of 16-byte copies, ldmatrix
// fragments from XOR-swizzled shared tiles; sm_80 and newer. The bodies
// are in pipe_bwd.cuh (shared with conv_igemm_tf32_bwd.cu).
// gen-ptx: target sm_80
//
// Versions:
//
//	pack_crsk_flip_bf16_v1        w (K,C,R,S) float32 → wt (C,R,S,Kp) bfloat16, taps flipped
//	                              (wt[c,r,s,k] = bf16(w[k,c,R−1−r,S−1−s])), filters past K zero.
//	conv2d_bwd_data_v9_igemm_bf16 dx from dyh (N,P,Q,Kp) and wt: M = N·H·W, N = C, K = R·S·Kp;
//	                              128×128×32 tiles, 4 warps of 64×64; any stride (the loader
//	                              zero-fills the taps that the stride skips).
//	conv2d_bwd_data_v9_igemm_bf16dx  conv2d_bwd_data_v9_igemm_bf16 storing dx as bfloat16.
//	conv2d_bwd_filter_v10_igemm_bf16  dw from dyh and xh (N,H,W,Cp): M = K, N = R·S·Cp, K =
//	                              N·P·Q split over gridDim.z (fixed order, no atomics);
//	                              ldmatrix.trans fragments from k-major tiles.
//
// Numerics: dy, w and x rounded to bfloat16 once (cvt.rn: to nearest, ties
// to even; cpuref.RoundBF16), exact products, float32 sums.

#define __launch_bounds__(n, m) __attribute__((launch_bounds(n, m)))

#define kBM 128      // block tile rows
#define kBN 128      // block tile columns
#define kBK 32       // k-tile depth (bfloat16 elements)
#define kThreads 128 // 4 warps, 2×2 warp tiles of 64×64
#define kStages 3

#include "pipe_bwd.cuh"

// pack_crsk_flip_bf16_v1: see pipe::pack_crsk_flip. w is (K,C,RS) float32,
// wt is (C,RS,Kp) bfloat16 as C·RS·Kp/2 words; Kp is even. Launch: 1-D
// over C·RS·Kp/2.
extern "C" __global__ void pack_crsk_flip_bf16_v1(const float* w, unsigned* wt, int K, int C,
                                                  int RS, int Kp) {
  pipe::pack_crsk_flip<8>(w, wt, K, C, RS, Kp);
}

// conv2d_bwd_data_v9_igemm_bf16 overwrites dx with
//
//	dx[n,c,h,w] = Σ_k Σ_r Σ_s bf16(dy[n,k,p,q]) · bf16(w[k,c,r,s]),
//	p = (h + ph − r)/sh, q = (w + pw − s)/sw when divisible and in range,
//
// summed in float32. dyh is (N,P,Q,Kp) from pack_nhwc_bf16_v1 (C = K), wt
// is (C,R,S,Kp) from pack_crsk_flip_bf16_v1, both 16-byte aligned, Kp a
// multiple of 8; dx is (N,C,H,W) float32.
//
// Launch: grid = (⌈N·H·W/128⌉, ⌈C/128⌉), block.x = 128.
extern "C" __global__ void __launch_bounds__(kThreads, 2)
    conv2d_bwd_data_v9_igemm_bf16(const unsigned short* dyh, const unsigned short* wt, float* dx,
                                  int N, int C, int H, int W, int K, int R, int S, int P, int Q,
                                  int sh, int sw, int ph, int pw, int Kp) {
  // dyh is (N,P,Q,Kp), wt is (C,R,S,Kp), dx is (N,C,H,W)
  __shared__ __attribute__((aligned(128))) unsigned char smem[kStages * 2 * kBM * 64];
  pipe::dgrad<8>(dyh, wt, dx, N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, Kp, smem);
}

// conv2d_bwd_data_v9_igemm_bf16dx is conv2d_bwd_data_v9_igemm_bf16 storing
// dx (N,C,H,W) as bfloat16: each float32 sum rounded once (cvt.rn, to
// nearest, ties to even; cpuref.RoundBF16), the bits of v9's dx rounded.
// For a dx whose only reader is the backward pass of the batch norm before
// the convolution (the _bf16xdy kernels of norm.cu and norm_pack.cu), as
// bf16 autocast stores it: half the bytes written, and read twice.
//
// Launch: as conv2d_bwd_data_v9_igemm_bf16.
extern "C" __global__ void __launch_bounds__(kThreads, 2)
    conv2d_bwd_data_v9_igemm_bf16dx(const unsigned short* dyh, const unsigned short* wt,
                                    unsigned short* dx, int N, int C, int H, int W, int K, int R,
                                    int S, int P, int Q, int sh, int sw, int ph, int pw, int Kp) {
  __shared__ __attribute__((aligned(128))) unsigned char smem[kStages * 2 * kBM * 64];
  pipe::dgrad<8>(dyh, wt, dx, N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, Kp, smem);
}

// conv2d_bwd_filter_v10_igemm_bf16 writes, for split z = blockIdx.z,
//
//	ws[z,k,c,r,s] = Σ_j bf16(dy[n,k,p,q]) · bf16(x[n,c, p·sh − ph + r, q·sw − pw + s])
//
// over j = (n·P + p)·Q + q from 32·z·tps to min(32·(z+1)·tps, N·P·Q) − 1
// (tps = tilesPerSplit), summed in float32, k-tiles ascending; ws is dw
// itself with one split, else conv2d_bwd_filter_v2_reduce adds the splits
// in order. dyh is (N,P,Q,Kp), xh is (N,H,W,Cp), both from
// pack_nhwc_bf16_v1, 16-byte aligned.
//
// Launch: grid = (⌈K/128⌉, ⌈R·S·Cp/128⌉, splits), block.x = 128.
extern "C" __global__ void __launch_bounds__(kThreads, 2)
    conv2d_bwd_filter_v10_igemm_bf16(const unsigned short* dyh, const unsigned short* xh,
                                     float* ws, int N, int C, int H, int W, int K, int R, int S,
                                     int P, int Q, int sh, int sw, int ph, int pw, int Kp, int Cp,
                                     int tilesPerSplit) {
  // dyh is (N,P,Q,Kp), xh is (N,H,W,Cp), ws is (splits,K,C,R,S)
  __shared__ __attribute__((aligned(128))) unsigned char smem[kStages * 2 * kBK * 256];
  pipe::wgrad<8>(dyh, xh, ws, N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, Kp, Cp, tilesPerSplit,
                 smem);
}
