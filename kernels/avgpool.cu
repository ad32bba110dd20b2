// avgpool.cu: 2-D average pooling with zero padding (count_include_pad)
// and global average pooling, forward and backward, bit for bit
// cpuref/pool.go's float32 forms.
//
// Shape letters: N batch, C channels, H×W input, R×S window, P×Q output,
// sh/sw stride, ph/pw zero padding on each side (0 ≤ ph ≤ R/2,
// 0 ≤ pw ≤ S/2); HW = H·W; tensors are row-major
//
//	x is (N,C,H,W), y is (N,C,P,Q) (avgpool) or (N,C) (global),
//	P = (H + 2·ph − R)/sh + 1,  Q = (W + 2·pw − S)/sw + 1.
//
// Versions:
//
//	avgpool_fwd_v1         one thread per output, summing its window in row-major order.
//	avgpool_bwd_v1         one thread per input gradient, gathering dy over the windows that cover it (no atomics).
//	global_avgpool_fwd_v1  one thread per (n,c), summing the plane in order.
//	global_avgpool_bwd_v1  one thread per input gradient.
//
// Every sum starts at +0 and each addition, like the final quotient by
// float(R·S) or float(HW), is one IEEE float32 operation (add.rn, div.rn).
//
// Launch shapes (kBlock = 256 threads per block) are stated at each kernel;
// every kernel guards its index and never writes out of range.

#include "common.cuh"

// avgpool_fwd_v1 computes
//
//	y[n,c,p,q] = (Σ_{r<R} Σ_{s<S} x[n,c, p·sh − ph + r, q·sw − pw + s]) / float(R·S)
//
// the sum from +0 over r, then s, ascending, skipping the padded positions
// (zeros), and the divisor R·S whatever the padding (count_include_pad).
//
// Launch: 1-D over N·C·P·Q (grid.x = ceil(N·C·P·Q/256), block.x = 256).
extern "C" __global__ void avgpool_fwd_v1(const float* x, float* y, int N, int C, int H, int W,
                                          int R, int S, int P, int Q, int sh, int sw, int ph,
                                          int pw) {
  // x is (N,C,H,W), y is (N,C,P,Q)
  int i = global_index();
  if (i >= N * C * P * Q) return;
  int q = i % Q;
  int t = i / Q;
  int p = t % P;
  int nc = t / P;  // n·C + c
  const float* plane = x + nc * H * W;
  int h0 = p * sh - ph;
  int w0 = q * sw - pw;
  float sum = 0.0f;
  for (int r = 0; r < R; r++) {
    int h = h0 + r;
    if (h < 0 || h >= H) continue;
    for (int s = 0; s < S; s++) {
      int w = w0 + s;
      if (w >= 0 && w < W) sum = sum + plane[h * W + w];
    }
  }
  y[i] = __nvvm_div_rn_f(sum, (float)(R * S));
}

// avgpool_bwd_v1 overwrites dx with the average-pool gradient
//
//	dx[n,c,h,w] = (Σ dy[n,c,p,q] over the windows covering (h,w)) / float(R·S)
//
// The windows covering h are p from max(0, ⌈(h + ph − R + 1)/sh⌉) to
// min(P − 1, ⌊(h + ph)/sh⌋), likewise q for w; the sum starts at +0 and runs
// over p, then q, ascending (the order of cpuref's scatter); an input no
// window covers gets +0.
//
// Launch: 1-D over N·C·H·W (grid.x = ceil(N·C·H·W/256), block.x = 256).
extern "C" __global__ void avgpool_bwd_v1(const float* dy, float* dx, int N, int C, int H, int W,
                                          int R, int S, int P, int Q, int sh, int sw, int ph,
                                          int pw) {
  // dy is (N,C,P,Q), dx is (N,C,H,W)
  int i = global_index();
  if (i >= N * C * H * W) return;
  int v = i % W;
  int t = i / W;
  int h = t % H;
  int nc = t / H;  // n·C + c
  int hp = h + ph, vp = v + pw;  // coordinates in the padded input, ≥ 0
  int p0 = hp < R ? 0 : (hp - R) / sh + 1;
  int p1 = hp / sh;
  if (p1 > P - 1) p1 = P - 1;
  int q0 = vp < S ? 0 : (vp - S) / sw + 1;
  int q1 = vp / sw;
  if (q1 > Q - 1) q1 = Q - 1;
  const float* d = dy + nc * P * Q;
  float sum = 0.0f;
  for (int p = p0; p <= p1; p++) {
    for (int q = q0; q <= q1; q++) sum = sum + d[p * Q + q];
  }
  dx[i] = __nvvm_div_rn_f(sum, (float)(R * S));
}

// global_avgpool_fwd_v1 computes y[n,c] = (Σ_j x[n,c,j]) / float(HW), the
// sum from +0 over j = h·W + w ascending.
//
// Launch: 1-D over N·C (grid.x = ceil(N·C/256), block.x = 256).
extern "C" __global__ void global_avgpool_fwd_v1(const float* x, float* y, int N, int C, int HW) {
  // x is (N,C,HW), y is (N,C)
  int i = global_index();
  if (i >= N * C) return;
  const float* plane = x + i * HW;
  float sum = 0.0f;
  for (int j = 0; j < HW; j++) sum = sum + plane[j];
  y[i] = __nvvm_div_rn_f(sum, (float)HW);
}

// global_avgpool_bwd_v1 overwrites dx with dx[n,c,j] = dy[n,c] / float(HW).
//
// Launch: 1-D over N·C·HW (grid.x = ceil(N·C·HW/256), block.x = 256).
extern "C" __global__ void global_avgpool_bwd_v1(const float* dy, float* dx, int N, int C,
                                                 int HW) {
  // dy is (N,C), dx is (N,C,HW)
  int i = global_index();
  if (i >= N * C * HW) return;
  dx[i] = __nvvm_div_rn_f(dy[i / HW], (float)HW);
}
