// pool.cu: 2-D max pooling, forward and backward.
//
// Shape letters: N batch, C channels, H×W input, R×S window, P×Q output,
// sh/sw stride, no padding; tensors are row-major
//
//	x is (N,C,H,W), y and argmax are (N,C,P,Q),
//	P = (H − R)/sh + 1,  Q = (W − S)/sw + 1,
//
// so every window lies inside the input.
//
// Versions:
//
//	maxpool_fwd_v1  one thread per output, scanning its window in row-major order.
//	maxpool_bwd_v1  one thread per input gradient, gathering dy over the windows whose argmax is that input (no atomics).
//	maxpool_bwd_relu_v1  maxpool_bwd_v1 and then relu_bwd_v1 masking with the
//	                pool's input (a ReLU's output), in one launch.
//	maxpool_dense_fwd_v1  maxpool_fwd_v1 and then dense_fwd_v1 on the pooled
//	                image (a flatten between them), one block per image.
//
// Launch shapes (kBlock = 256 threads per block) are stated at each kernel;
// every kernel guards its index and never writes out of range.

#include "common.cuh"
#include "pooldense.cuh"

// maxpool_fwd_v1 computes y[n,c,p,q] = max over r < R, s < S of
// x[n,c, p·sh + r, q·sw + s] and argmax[n,c,p,q] = the flat index into x
// ((n·C + c)·H + h)·W + w of the element chosen. The window is scanned in
// row-major order (r, then s) and an element replaces the current maximum
// only when it is strictly greater, so the first maximum wins. A NaN wins
// over any number (the first NaN in the window is chosen), so NaN propagates.
//
// Launch: 1-D over N·C·P·Q (grid.x = ceil(N·C·P·Q/256), block.x = 256).
extern "C" __global__ void maxpool_fwd_v1(const float* x, float* y, int* argmax, int N, int C,
                                          int H, int W, int R, int S, int P, int Q, int sh,
                                          int sw) {
  // x is (N,C,H,W), y is (N,C,P,Q), argmax is (N,C,P,Q)
  int i = global_index();
  if (i >= N * C * P * Q) return;
  int q = i % Q;
  int t = i / Q;
  int p = t % P;
  int nc = t / P;  // n·C + c
  int base = nc * H * W;
  int h0 = p * sh;
  int w0 = q * sw;
  int best_i = h0 * W + w0;
  float best = x[base + best_i];
  for (int r = 0; r < R; r++) {
    for (int s = 0; s < S; s++) {
      int j = (h0 + r) * W + (w0 + s);
      float v = x[base + j];
      // v != v: v is NaN; best == best: best is not NaN.
      if (v > best || (v != v && best == best)) {
        best = v;
        best_i = j;
      }
    }
  }
  y[i] = best;
  argmax[i] = base + best_i;
}

// maxpool_bwd_v1 overwrites dx with the max-pool gradient:
//
//	dx[i] = Σ dy[n,c,p,q] over the windows (p,q) that contain input i and
//	        whose argmax[n,c,p,q] == i,
//
// i the flat index ((n·C + c)·H + h)·W + w. The windows containing (h,w) are
// p from max(0, ⌈(h − R + 1)/sh⌉) to min(P − 1, ⌊h/sh⌋), and likewise for q;
// the sum starts from 0 and runs over p, then q, ascending (a gather, no
// atomics). argmax comes from maxpool_fwd_v1 with the same geometry.
//
// Launch: 1-D over N·C·H·W (grid.x = ceil(N·C·H·W/256), block.x = 256).
extern "C" __global__ void maxpool_bwd_v1(const float* dy, const int* argmax, float* dx, int N,
                                          int C, int H, int W, int R, int S, int P, int Q,
                                          int sh, int sw) {
  // dy is (N,C,P,Q), argmax is (N,C,P,Q), dx is (N,C,H,W)
  int i = global_index();
  if (i >= N * C * H * W) return;
  int v = i % W;
  int t = i / W;
  int h = t % H;
  int nc = t / H;  // n·C + c
  int p0 = h < R ? 0 : (h - R) / sh + 1;
  int p1 = h / sh;
  if (p1 > P - 1) p1 = P - 1;
  int q0 = v < S ? 0 : (v - S) / sw + 1;
  int q1 = v / sw;
  if (q1 > Q - 1) q1 = Q - 1;
  float acc = 0.0f;
  for (int p = p0; p <= p1; p++) {
    for (int q = q0; q <= q1; q++) {
      int j = (nc * P + p) * Q + q;
      if (argmax[j] == i) acc = acc + dy[j];
    }
  }
  dx[i] = acc;
}

// maxpool_bwd_relu_v1 is maxpool_bwd_v1 followed by relu_bwd_v1 with the
// pool's input x as the mask, in one launch (x the output of a ReLU that a
// convolution ran in its epilogue: x > 0 exactly where the ReLU's input
// was), the same bits:
//
//	dx[i] = x[i] > 0 ? Σ dy[n,c,p,q] over the windows containing i whose argmax is i : 0
//
// the sum as in maxpool_bwd_v1 (0 also where x[i] is NaN).
//
// Launch: 1-D over N·C·H·W (grid.x = ceil(N·C·H·W/256), block.x = 256).
extern "C" __global__ void maxpool_bwd_relu_v1(const float* dy, const int* argmax, const float* x,
                                               float* dx, int N, int C, int H, int W, int R, int S,
                                               int P, int Q, int sh, int sw) {
  // dy is (N,C,P,Q), argmax is (N,C,P,Q), x is (N,C,H,W), dx is (N,C,H,W)
  int i = global_index();
  if (i >= N * C * H * W) return;
  int v = i % W;
  int t = i / W;
  int h = t % H;
  int nc = t / H;  // n·C + c
  int p0 = h < R ? 0 : (h - R) / sh + 1;
  int p1 = h / sh;
  if (p1 > P - 1) p1 = P - 1;
  int q0 = v < S ? 0 : (v - S) / sw + 1;
  int q1 = v / sw;
  if (q1 > Q - 1) q1 = Q - 1;
  float acc = 0.0f;
  for (int p = p0; p <= p1; p++) {
    for (int q = q0; q <= q1; q++) {
      int j = (nc * P + p) * Q + q;
      if (argmax[j] == i) acc = acc + dy[j];
    }
  }
  dx[i] = x[i] > 0.0f ? acc : 0.0f;
}

// maxpool_dense_fwd_v1 runs maxpool_fwd_v1 and then dense_fwd_v1 on its
// output flattened (In = C·P·Q), one block per image n, each value by the
// operations of those kernels in their order, so the bits are theirs:
//
//	y[n,c,p,q], argmax[n,c,p,q]   as maxpool_fwd_v1 (threads t, t+256, … of the image)
//	z[n,o] = (Σ_i y[n,i]·w[o,i]) + b[o]   as dense_fwd_v1, the sum from 0 over i
//	                                      ascending, + b[o] when b is not null
//
// The block writes its image's pooled values to y, waits for all its
// threads (__syncthreads: the block's global writes are then visible to
// it), then threads o, o+256, … compute z[n,o].
//
// Launch: grid.x = N, block.x = 256 (exactly).
extern "C" __global__ void maxpool_dense_fwd_v1(const float* x, float* y, int* argmax, const float* w,
                                                const float* b, float* z, int N, int C, int H, int W,
                                                int R, int S, int P, int Q, int sh, int sw, int Out) {
  // x is (N,C,H,W), y and argmax are (N,C,P,Q), w is (Out,C·P·Q), b is (Out) or null, z is (N,Out)
  int n = (int)blockIdx.x;
  if (n >= N) return;  // uniform over the block
  maxpool_dense_image(x, y, argmax, w, b, z, n, C, H, W, R, S, P, Q, sh, sw, Out);
}
