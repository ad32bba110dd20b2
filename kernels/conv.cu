// conv.cu: 2-D convolution (cross-correlation, no kernel flip): forward,
// backward-data (delta propagation), backward-filter (weight-gradient
// reduction) and the bias gradient.
//
// Shape letters: N batch, C input channels, H×W input, K filters, R×S kernel,
// P×Q output, sh/sw stride, ph/pw zero padding; tensors are row-major
//
//	x is (N,C,H,W), w is (K,C,R,S), b is (K), y is (N,K,P,Q),
//	P = (H + 2·ph − R)/sh + 1,  Q = (W + 2·pw − S)/sw + 1.
//
// Versions:
//
//	conv2d_fwd_v1_direct         one thread per output y[n,k,p,q], reading x and w straight from global memory.
//	conv2d_bwd_data_v1_direct    one thread per input gradient dx[n,c,h,w], gathering the dy terms that reach it (no atomics).
//	conv2d_bwd_filter_v1_direct  one block per weight gradient dw[k,c,r,s]: fixed strided per-thread sums, then a fixed shared-memory tree.
//	conv2d_bwd_bias_v1           one block per filter k, with the same deterministic block reduction over n and p·q.
//	conv2d_bwd_filter_bias_v1    conv2d_bwd_filter_v1_direct's blocks, then conv2d_bwd_bias_v1's: dw and db in one launch.
//	conv2d_bwd_filter_reduce_bias_v1  conv2d_bwd_filter_v2_reduce's blocks (the split-K second pass), then
//	                             conv2d_bwd_bias_v1's: dw and db in one launch.
//
// Numerics: every product and every sum is rounded separately (mul.rn,
// add.rn; the PTX is built with -ffp-contract=off), in the order stated at
// each kernel. The forward and backward-data kernels sum in the same order
// as cpuref's direct forms. The reductions use no atomics, so the same
// inputs give the same bits on every run, on the GPU and on the simulator.
//
// Launch shapes (kBlock = 256 threads per block, see common.cuh) are stated
// at each kernel; every kernel guards its index and never writes out of range.

#include "common.cuh"

// conv2d_fwd_v1_direct computes
//
//	y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[n,c, p·sh − ph + r, q·sw − pw + s]
//
// with x zero outside 0 ≤ h < H, 0 ≤ w < W (those terms are skipped). The sum
// starts from 0, runs over c, r, s ascending, and b[k] is added last; b may
// be null (no bias).
//
// Launch: 1-D over N·K·P·Q (grid.x = ceil(N·K·P·Q/256), block.x = 256).
extern "C" __global__ void conv2d_fwd_v1_direct(const float* x, const float* w, const float* b,
                                                float* y, int N, int C, int H, int W, int K, int R,
                                                int S, int P, int Q, int sh, int sw, int ph,
                                                int pw) {
  // x is (N,C,H,W), w is (K,C,R,S), b is (K) or null, y is (N,K,P,Q)
  int i = global_index();
  if (i >= N * K * P * Q) return;
  int q = i % Q;
  int t = i / Q;
  int p = t % P;
  t /= P;
  int k = t % K;
  int n = t / K;
  float acc = 0.0f;
  for (int c = 0; c < C; c++) {
    for (int r = 0; r < R; r++) {
      int h = p * sh - ph + r;
      if (h < 0 || h >= H) continue;
      const float* xrow = x + ((n * C + c) * H + h) * W;
      const float* wrow = w + ((k * C + c) * R + r) * S;
      for (int s = 0; s < S; s++) {
        int v = q * sw - pw + s;
        if (v < 0 || v >= W) continue;
        acc = acc + wrow[s] * xrow[v];
      }
    }
  }
  if (b != 0) acc = acc + b[k];
  y[i] = acc;
}

// conv2d_bwd_data_v1_direct overwrites dx with ∂E/∂x given dy = ∂E/∂y:
//
//	dx[n,c,h,v] = Σ_k Σ_r Σ_s w[k,c,r,s] · dy[n,k,p,q]
//	              over p = (h + ph − r)/sh, q = (v + pw − s)/sw
//	              where the divisions are exact and 0 ≤ p < P, 0 ≤ q < Q.
//
// The sum starts from 0 and runs over k, r, s ascending (a gather: each
// thread owns one dx element, so there are no atomics).
//
// Launch: 1-D over N·C·H·W (grid.x = ceil(N·C·H·W/256), block.x = 256).
extern "C" __global__ void conv2d_bwd_data_v1_direct(const float* dy, const float* w, float* dx,
                                                     int N, int C, int H, int W, int K, int R,
                                                     int S, int P, int Q, int sh, int sw, int ph,
                                                     int pw) {
  // dy is (N,K,P,Q), w is (K,C,R,S), dx is (N,C,H,W)
  int i = global_index();
  if (i >= N * C * H * W) return;
  int v = i % W;
  int t = i / W;
  int h = t % H;
  t /= H;
  int c = t % C;
  int n = t / C;
  float acc = 0.0f;
  for (int k = 0; k < K; k++) {
    for (int r = 0; r < R; r++) {
      int hp = h + ph - r;
      if (hp < 0 || hp % sh != 0) continue;
      int p = hp / sh;
      if (p >= P) continue;
      const float* dyrow = dy + ((n * K + k) * P + p) * Q;
      const float* wrow = w + ((k * C + c) * R + r) * S;
      for (int s = 0; s < S; s++) {
        int vq = v + pw - s;
        if (vq < 0 || vq % sw != 0) continue;
        int q = vq / sw;
        if (q >= Q) continue;
        acc = acc + wrow[s] * dyrow[q];
      }
    }
  }
  dx[i] = acc;
}

// conv2d_bwd_filter_v1_direct overwrites dw with ∂E/∂w (the weight-gradient
// reduction):
//
//	dw[k,c,r,s] = Σ_n Σ_p Σ_q dy[n,k,p,q] · x[n,c, p·sh − ph + r, q·sw − pw + s]
//
// with the padding terms skipped. Block b computes dw[b], b = ((k·C + c)·R
// + r)·S + s. The N·P·Q terms are numbered j = (n·P + p)·Q + q; thread t sums
// the terms j = t, t+256, t+512, … in that order starting from 0, then
// block_sum_f32 adds the 256 partial sums in its fixed tree order.
//
// Launch: grid.x = K·C·R·S, block.x = 256 (exactly).
extern "C" __global__ void conv2d_bwd_filter_v1_direct(const float* x, const float* dy, float* dw,
                                                       int N, int C, int H, int W, int K, int R,
                                                       int S, int P, int Q, int sh, int sw,
                                                       int ph, int pw) {
  // x is (N,C,H,W), dy is (N,K,P,Q), dw is (K,C,R,S)
  __shared__ float buf[kBlock];
  int b = (int)blockIdx.x;
  if (b >= K * C * R * S) return;  // uniform over the block
  int s = b % S;
  int t = b / S;
  int r = t % R;
  t /= R;
  int c = t % C;
  int k = t / C;
  int PQ = P * Q;
  int total = N * PQ;
  float acc = 0.0f;
  for (int j = (int)threadIdx.x; j < total; j += kBlock) {
    int n = j / PQ;
    int pq = j - n * PQ;
    int p = pq / Q;
    int q = pq - p * Q;
    int h = p * sh - ph + r;
    int v = q * sw - pw + s;
    if (h < 0 || h >= H || v < 0 || v >= W) continue;
    acc = acc + dy[((n * K + k) * P + p) * Q + q] * x[((n * C + c) * H + h) * W + v];
  }
  float sum = block_sum_f32(acc, buf);
  if (threadIdx.x == 0) dw[b] = sum;
}

// conv2d_bwd_bias_v1 overwrites db with ∂E/∂b:
//
//	db[k] = Σ_n Σ_pq dy[n,k,pq]
//
// Block k sums the N·PQ terms j = n·PQ + pq: thread t takes j = t, t+256, …
// in order from 0, then block_sum_f32's fixed tree.
//
// Launch: grid.x = K, block.x = 256 (exactly).
extern "C" __global__ void conv2d_bwd_bias_v1(const float* dy, float* db, int N, int K, int PQ) {
  // dy is (N,K,PQ), db is (K)
  __shared__ float buf[kBlock];
  int k = (int)blockIdx.x;
  if (k >= K) return;  // uniform over the block
  int total = N * PQ;
  float acc = 0.0f;
  for (int j = (int)threadIdx.x; j < total; j += kBlock) {
    int n = j / PQ;
    int pq = j - n * PQ;
    acc = acc + dy[(n * K + k) * PQ + pq];
  }
  float sum = block_sum_f32(acc, buf);
  if (threadIdx.x == 0) db[k] = sum;
}

// bias_block is conv2d_bwd_bias_v1's block for filter k: db[k] = Σ_j dy[n,k,pq]
// over j = n·PQ + pq, thread t taking j = t, t+256, … from 0, then
// block_sum_f32's fixed tree (the same operations in the same order).
static __device__ __forceinline__ void bias_block(const float* dy, float* db, int N, int K, int PQ,
                                                  int k, float* buf) {
  int total = N * PQ;
  float acc = 0.0f;
  for (int j = (int)threadIdx.x; j < total; j += kBlock) {
    int n = j / PQ;
    int pq = j - n * PQ;
    acc = acc + dy[(n * K + k) * PQ + pq];
  }
  float sum = block_sum_f32(acc, buf);
  if (threadIdx.x == 0) db[k] = sum;
}

// conv2d_bwd_filter_bias_v1 computes dw as conv2d_bwd_filter_v1_direct
// (blocks b < K·C·R·S, the same operations) and db as conv2d_bwd_bias_v1
// (blocks K·C·R·S + k, k < K), in one launch: the bits of the two.
//
// Launch: grid.x = K·C·R·S + K, block.x = 256 (exactly).
extern "C" __global__ void conv2d_bwd_filter_bias_v1(const float* x, const float* dy, float* dw, float* db,
                                                     int N, int C, int H, int W, int K, int R, int S,
                                                     int P, int Q, int sh, int sw, int ph, int pw) {
  // x is (N,C,H,W), dy is (N,K,P,Q), dw is (K,C,R,S), db is (K)
  __shared__ float buf[kBlock];
  int b = (int)blockIdx.x;
  int KCRS = K * C * R * S;
  int PQ = P * Q;
  if (b >= KCRS) {  // uniform over the block
    int k = b - KCRS;
    if (k < K) bias_block(dy, db, N, K, PQ, k, buf);
    return;
  }
  int s = b % S;
  int t = b / S;
  int r = t % R;
  t /= R;
  int c = t % C;
  int k = t / C;
  int total = N * PQ;
  float acc = 0.0f;
  for (int j = (int)threadIdx.x; j < total; j += kBlock) {
    int n = j / PQ;
    int pq = j - n * PQ;
    int p = pq / Q;
    int q = pq - p * Q;
    int h = p * sh - ph + r;
    int v = q * sw - pw + s;
    if (h < 0 || h >= H || v < 0 || v >= W) continue;
    acc = acc + dy[((n * K + k) * P + p) * Q + q] * x[((n * C + c) * H + h) * W + v];
  }
  float sum = block_sum_f32(acc, buf);
  if (threadIdx.x == 0) dw[b] = sum;
}

// conv2d_bwd_filter_reduce_bias_v1 computes dw as
// conv2d_bwd_filter_v2_reduce (blocks b < ceil(n/256): dw[i] = ((ws[0,i] +
// ws[1,i]) + …) + ws[splits−1,i]) and db as conv2d_bwd_bias_v1 from dy
// (blocks ceil(n/256) + k, k < K), in one launch: the bits of the two.
//
// Launch: grid.x = ceil(n/256) + K, block.x = 256 (exactly).
extern "C" __global__ void conv2d_bwd_filter_reduce_bias_v1(const float* ws, float* dw, const float* dy,
                                                            float* db, int splits, int n, int N, int K,
                                                            int PQ) {
  // ws is (splits, n), dw is (n), dy is (N,K,PQ), db is (K)
  __shared__ float buf[kBlock];
  int rb = (n + kBlock - 1) / kBlock;
  int b = (int)blockIdx.x;
  if (b >= rb) {  // uniform over the block
    int k = b - rb;
    if (k < K) bias_block(dy, db, N, K, PQ, k, buf);
    return;
  }
  int i = b * kBlock + (int)threadIdx.x;
  if (i >= n) return;
  float acc = ws[i];
  for (int z = 1; z < splits; z++) acc = acc + ws[z * n + i];
  dw[i] = acc;
}
