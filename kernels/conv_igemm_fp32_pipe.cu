// conv_igemm_fp32_pipe.cu: FP32 (FFMA) backward-data on the packed cp.async
// pipeline of the tensor-core kernels; sm_80 and newer (cp.async). The
// body is pipe_bwd.cuh's dgrad_ffma.
// gen-ptx: target sm_80
//
// Versions:
//
//	conv2d_bwd_data_v11_igemm_pipe  dx from float32 dyh (N,P,Q,Kp) and wt (C,R,S,Kp) (flipped
//	                                taps), both from pack_transpose_f32_v2 (Kp a multiple of 16:
//	                                a k-tile lies in one tap): M = N·H·W, N = C, K = R·S·Kp;
//	                                128×128×16 tiles, 256 threads of 8×8 outputs, 3-stage cp.async
//	                                pipeline of 16-byte copies (dy: two of one pixel a thread),
//	                                float4 shared reads from an XOR-swizzled dy tile and a
//	                                broadcast filter tile; any stride.
//
// Numerics: exact float32 FFMA chains from 0 over k = (r, s, kf) ascending
// (the flipped taps; the zero terms of Kp and of the stride add exactly
// zero, since a chain from +0 is never −0): with integer inputs the
// result equals the direct kernel's, else it is within (m+1)·u·Σ|terms|. Its order differs from v2/v4/v6's, so
// the dispatcher does not run it (FP32's default bits stay those of
// v2/v4/v6); it is the FP32 kernel of the pipeline, measured beside them.

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
