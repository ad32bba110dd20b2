// dense.cu: fully connected layer y = x·wᵀ + b, forward and backward, and
// the column sum used for its bias gradient.
//
// Shape letters: N batch, In inputs, Out outputs; row-major
//
//	x is (N,In), w is (Out,In), b is (Out), y is (N,Out).
//
// Versions:
//
//	dense_fwd_v1         one thread per output y[n,o]: a dot product over In.
//	dense_bwd_data_v1    one thread per input gradient dx[n,i]: a dot product over Out.
//	dense_bwd_weight_v1  one thread per weight gradient dw[o,i]: a dot product over N.
//	reduce_cols_v1       one thread per column: a sum over rows.
//	dense_bwd_v2         the whole backward pass in one launch: the blocks of
//	                     dense_bwd_weight_v1 (dw), then of reduce_cols_v1 over
//	                     dy (db, when db is not null), then of
//	                     dense_bwd_data_v1 (dx, when dx is not null), each
//	                     thread computing one element exactly as there.
//	dense_bwd_pool_relu_v1  dense_bwd_v2's dw and db, and for its input, a
//	                     max-pool's output flattened, the gradient carried on
//	                     through the pool and the ReLU before it
//	                     (maxpool_bwd_relu_v1), the dense dx never stored.
//
// Numerics: every product and every sum is rounded separately (mul.rn,
// add.rn), each sum starts from 0 and runs in increasing index order, so
// the result does not depend on the launch. No atomics.
//
// Launch: 1-D over the output (grid.x = ceil(total/256), block.x = 256);
// every kernel guards its index and never writes out of range.

#include "common.cuh"

// dense_fwd_v1 computes
//
//	y[n,o] = b[o] + Σ_i x[n,i] · w[o,i]
//
// summing over i ascending from 0 and adding b[o] last; b may be null.
//
// Launch: 1-D over N·Out.
extern "C" __global__ void dense_fwd_v1(const float* x, const float* w, const float* b, float* y,
                                        int N, int In, int Out) {
  // x is (N,In), w is (Out,In), b is (Out) or null, y is (N,Out)
  int idx = global_index();
  if (idx >= N * Out) return;
  int o = idx % Out;
  int n = idx / Out;
  const float* xrow = x + n * In;
  const float* wrow = w + o * In;
  float acc = 0.0f;
  for (int i = 0; i < In; i++) acc = acc + xrow[i] * wrow[i];
  if (b != 0) acc = acc + b[o];
  y[idx] = acc;
}

// dense_bwd_data_v1 overwrites dx with ∂E/∂x:
//
//	dx[n,i] = Σ_o dy[n,o] · w[o,i]
//
// summing over o ascending from 0.
//
// Launch: 1-D over N·In.
extern "C" __global__ void dense_bwd_data_v1(const float* dy, const float* w, float* dx, int N,
                                             int In, int Out) {
  // dy is (N,Out), w is (Out,In), dx is (N,In)
  int idx = global_index();
  if (idx >= N * In) return;
  int i = idx % In;
  int n = idx / In;
  const float* dyrow = dy + n * Out;
  float acc = 0.0f;
  for (int o = 0; o < Out; o++) acc = acc + dyrow[o] * w[o * In + i];
  dx[idx] = acc;
}

// dense_bwd_weight_v1 overwrites dw with ∂E/∂w:
//
//	dw[o,i] = Σ_n dy[n,o] · x[n,i]
//
// summing over n ascending from 0.
//
// Launch: 1-D over Out·In.
extern "C" __global__ void dense_bwd_weight_v1(const float* x, const float* dy, float* dw, int N,
                                               int In, int Out) {
  // x is (N,In), dy is (N,Out), dw is (Out,In)
  int idx = global_index();
  if (idx >= Out * In) return;
  int i = idx % In;
  int o = idx / In;
  float acc = 0.0f;
  for (int n = 0; n < N; n++) acc = acc + dy[n * Out + o] * x[n * In + i];
  dw[idx] = acc;
}

// reduce_cols_v1 overwrites out with the column sums of a:
//
//	out[j] = Σ_i a[i,j]
//
// summing over i ascending from 0 (the dense bias gradient, a = dy).
//
// Launch: 1-D over cols.
extern "C" __global__ void reduce_cols_v1(const float* a, float* out, int rows, int cols) {
  // a is (rows,cols), out is (cols)
  int j = global_index();
  if (j >= cols) return;
  float acc = 0.0f;
  for (int i = 0; i < rows; i++) acc = acc + a[i * cols + j];
  out[j] = acc;
}

// dense_bwd_v2 computes the three gradients of dense_bwd_weight_v1,
// reduce_cols_v1 (on dy) and dense_bwd_data_v1 in one launch, each element
// by one thread with the same operations in the same order, so the bits
// are those of the three launches:
//
//	dw[o,i] = Σ_n dy[n,o]·x[n,i]     blocks [0, bw)
//	db[o]   = Σ_n dy[n,o]            blocks [bw, bw+bb)      (db not null)
//	dx[n,i] = Σ_o dy[n,o]·w[o,i]     blocks [bw+bb, …)        (dx not null)
//
// with bw = ceil(Out·In/256), bb = ceil(Out/256) (0 when db is null).
//
// Launch: grid.x = bw + bb + ceil(N·In/256) (that term 0 when dx is null),
// block.x = 256.
extern "C" __global__ void dense_bwd_v2(const float* x, const float* w, const float* dy, float* dx,
                                        float* dw, float* db, int N, int In, int Out) {
  // x is (N,In), w is (Out,In), dy is (N,Out), dx is (N,In), dw is (Out,In), db is (Out)
  int bw = (Out * In + kBlock - 1) / kBlock;
  int bb = db != 0 ? (Out + kBlock - 1) / kBlock : 0;
  int b = (int)blockIdx.x;
  if (b < bw) {
    int idx = b * kBlock + (int)threadIdx.x;
    if (idx >= Out * In) return;
    int i = idx % In;
    int o = idx / In;
    float acc = 0.0f;
    for (int n = 0; n < N; n++) acc = acc + dy[n * Out + o] * x[n * In + i];
    dw[idx] = acc;
    return;
  }
  if (b < bw + bb) {
    int o = (b - bw) * kBlock + (int)threadIdx.x;
    if (o >= Out) return;
    float acc = 0.0f;
    for (int n = 0; n < N; n++) acc = acc + dy[n * Out + o];
    db[o] = acc;
    return;
  }
  if (dx == 0) return;
  int idx = (b - bw - bb) * kBlock + (int)threadIdx.x;
  if (idx >= N * In) return;
  int i = idx % In;
  int n = idx / In;
  const float* dyrow = dy + n * Out;
  float acc = 0.0f;
  for (int o = 0; o < Out; o++) acc = acc + dyrow[o] * w[o * In + i];
  dx[idx] = acc;
}

// dense_bwd_pool_relu_v1 computes dw and db as dense_bwd_v2 and, instead of
// dx, the gradient at the input of the ReLU before the max-pool whose
// output (flattened, In = C·P·Q) the layer reads: for each element i of the
// pool's input xr (N,C,H,W), as maxpool_bwd_relu_v1 over dense_bwd_data_v1's
// dx:
//
//	g[n,j]  = Σ_o dy[n,o]·w[o,j]                 (dense_bwd_data_v1's sum)
//	dxr[i]  = xr[i] > 0 ? 0 + Σ g[j] over the windows j containing i whose argmax is i : 0
//
// the window sum from 0 over p, then q, ascending (maxpool_bwd_v1). Each
// value by the same operations in the same order: the bits of dense_bwd_v2,
// then maxpool_bwd_relu_v1 (g is recomputed where it is needed, never
// stored).
//
// Launch: grid.x = ceil(Out·In/256) + ceil(Out/256) (that term 0 when db is
// null) + ceil(N·C·H·W/256) (0 when dxr is null), block.x = 256.
extern "C" __global__ void dense_bwd_pool_relu_v1(const float* x, const float* w, const float* dy,
                                                  float* dw, float* db, const int* argmax,
                                                  const float* xr, float* dxr, int N, int Out, int C,
                                                  int H, int W, int R, int S, int P, int Q, int sh,
                                                  int sw) {
  // x is (N,In), w is (Out,In), dy is (N,Out), dw is (Out,In), db is (Out),
  // argmax is (N,C,P,Q) = (N,In), xr and dxr are (N,C,H,W); In = C·P·Q
  int In = C * P * Q;
  int bw = (Out * In + kBlock - 1) / kBlock;
  int bb = db != 0 ? (Out + kBlock - 1) / kBlock : 0;
  int b = (int)blockIdx.x;
  if (b < bw) {
    int idx = b * kBlock + (int)threadIdx.x;
    if (idx >= Out * In) return;
    int i = idx % In;
    int o = idx / In;
    float acc = 0.0f;
    for (int n = 0; n < N; n++) acc = acc + dy[n * Out + o] * x[n * In + i];
    dw[idx] = acc;
    return;
  }
  if (b < bw + bb) {
    int o = (b - bw) * kBlock + (int)threadIdx.x;
    if (o >= Out) return;
    float acc = 0.0f;
    for (int n = 0; n < N; n++) acc = acc + dy[n * Out + o];
    db[o] = acc;
    return;
  }
  if (dxr == 0) return;
  int i = (b - bw - bb) * kBlock + (int)threadIdx.x;
  if (i >= N * C * H * W) return;
  int v = i % W;
  int t = i / W;
  int h = t % H;
  int nc = t / H;  // n·C + c
  int n = nc / C;
  int p0 = h < R ? 0 : (h - R) / sh + 1;
  int p1 = h / sh;
  if (p1 > P - 1) p1 = P - 1;
  int q0 = v < S ? 0 : (v - S) / sw + 1;
  int q1 = v / sw;
  if (q1 > Q - 1) q1 = Q - 1;
  const float* dyrow = dy + n * Out;
  float acc = 0.0f;
  for (int p = p0; p <= p1; p++) {
    for (int q = q0; q <= q1; q++) {
      int j = (nc * P + p) * Q + q;
      if (argmax[j] == i) {
        int jj = j - n * In;  // the dense input index within the row
        float g = 0.0f;
        for (int o = 0; o < Out; o++) g = g + dyrow[o] * w[o * In + jj];
        acc = acc + g;
      }
    }
  }
  dxr[i] = xr[i] > 0.0f ? acc : 0.0f;
}
