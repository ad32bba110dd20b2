// loss.cu: softmax cross-entropy and mean-squared error (per-row loss and
// gradient), the block-wide sum that turns per-row losses into the batch
// mean, and the count of correct predictions.
//
// Shape letters: N batch (rows), classes logits per row, D values per row;
// row-major
//
//	logits and dlogits are (N,classes), labels and loss_rows are (N),
//	y, t and dy are (N,D).
//
// Versions:
//
//	softmax_ce_v1     one thread per row: max, Σ exp, log, then the gradient row.
//	mse_v1            one thread per row.
//	reduce_sum_v1     one block of 256: fixed strided per-thread sums, then a fixed shared-memory tree.
//	count_correct_v1  one block of 256: per-thread integer counts over strided rows, then an integer tree.
//
// Numerics: exp and log are mathf_expf and mathf_logf (mathf.cuh), built
// from add/mul/fma/div.rn only, so GPU and simulator agree bit for bit.
// Every other product and sum is rounded separately; sums start from 0 and
// run in increasing index order, or in the fixed tree of block_sum_f32. No
// atomics anywhere.
//
// Launch shapes (kBlock = 256 threads per block) are stated at each kernel;
// every kernel guards its index and never writes out of range.

#include "common.cuh"
#include "mathf.cuh"

// softmax_ce_v1 computes, for each row n with z = logits[n,:] and
// l = labels[n], the stable log-softmax
//
//	m = max_j z_j,  Σ = Σ_j e^(z_j − m)  (j ascending),
//	loss_rows[n]  = ln Σ − (z_l − m)            = −ln softmax(z)_l,
//	dlogits[n,j]  = (e^(z_j − m)/Σ − [j = l]) / N,
//
// so that the mean loss is Σ_n loss_rows[n] / N (reduce_sum_v1 with scale
// 1/N) and dlogits is its gradient. m is the first largest logit (a NaN
// logit makes the row NaN through Σ). dlogits may be null (loss only). A
// label outside [0, classes) makes loss_rows[n] and the whole dlogits row
// NaN (MATHF_NAN).
//
// Launch: 1-D over N (grid.x = ceil(N/256), block.x = 256).
extern "C" __global__ void softmax_ce_v1(const float* logits, const int* labels, float* loss_rows,
                                         float* dlogits, int N, int classes) {
  // logits is (N,classes), labels is (N), loss_rows is (N), dlogits is (N,classes) or null
  int n = global_index();
  if (n >= N) return;
  const float* z = logits + n * classes;
  float* d = dlogits != 0 ? dlogits + n * classes : 0;
  int l = labels[n];
  if (l < 0 || l >= classes) {
    loss_rows[n] = MATHF_NAN;
    if (d != 0) {
      for (int j = 0; j < classes; j++) d[j] = MATHF_NAN;
    }
    return;
  }
  float m = z[0];
  for (int j = 1; j < classes; j++) {
    if (z[j] > m) m = z[j];
  }
  float sum = 0.0f;
  for (int j = 0; j < classes; j++) sum = sum + mathf_expf(z[j] - m);
  loss_rows[n] = mathf_logf(sum) - (z[l] - m);
  if (d != 0) {
    float fn = (float)N;
    for (int j = 0; j < classes; j++) {
      float prob = mathf_expf(z[j] - m) / sum;
      if (j == l) prob = prob - 1.0f;
      d[j] = prob / fn;
    }
  }
}

// mse_v1 computes, for each row n,
//
//	loss_rows[n] = ½ · Σ_d (t[n,d] − y[n,d])²   (d ascending, the sum from 0),
//	dy[n,d]      = (y[n,d] − t[n,d]) / N,
//
// so that the mean loss (1/N)·Σ_n ½·Σ_d (t − y)² is reduce_sum_v1 of
// loss_rows with scale 1/N and dy is its gradient. dy may be null.
//
// Launch: 1-D over N (grid.x = ceil(N/256), block.x = 256).
extern "C" __global__ void mse_v1(const float* y, const float* t, float* loss_rows, float* dy,
                                  int N, int D) {
  // y is (N,D), t is (N,D), loss_rows is (N), dy is (N,D) or null
  int n = global_index();
  if (n >= N) return;
  const float* yr = y + n * D;
  const float* tr = t + n * D;
  float fn = (float)N;
  float acc = 0.0f;
  for (int d = 0; d < D; d++) {
    float e = tr[d] - yr[d];
    acc = acc + e * e;
  }
  loss_rows[n] = 0.5f * acc;
  if (dy != 0) {
    float* dr = dy + n * D;
    for (int d = 0; d < D; d++) dr[d] = (yr[d] - tr[d]) / fn;
  }
}

// reduce_sum_v1 computes out[0] = scale · Σ_i a[i]. Thread t sums
// a[t], a[t+256], … in that order from 0, then block_sum_f32 adds the 256
// partial sums in its fixed tree order, and thread 0 multiplies by scale.
//
// Launch: grid.x = 1, block.x = 256 (exactly).
extern "C" __global__ void reduce_sum_v1(const float* a, float* out, int n, float scale) {
  // a is (n), out is (1)
  __shared__ float buf[kBlock];
  if (blockIdx.x != 0) return;  // uniform over the block
  float acc = 0.0f;
  for (int i = (int)threadIdx.x; i < n; i += kBlock) acc = acc + a[i];
  float sum = block_sum_f32(acc, buf);
  if (threadIdx.x == 0) out[0] = scale * sum;
}

// count_correct_v1 adds to acc[0] the number of rows n whose prediction,
// the first largest logit of logits[n,:] (strictly greater replaces), equals
// labels[n]. Thread t counts rows t, t+256, … as an integer, block_sum_i32
// adds the counts exactly, and thread 0 does acc[0] = acc[0] + count (one
// float add, exact while the total stays below 2^24). A label out of range
// never matches.
//
// Launch: grid.x = 1, block.x = 256 (exactly).
extern "C" __global__ void count_correct_v1(const float* logits, const int* labels, float* acc,
                                            int N, int classes) {
  // logits is (N,classes), labels is (N), acc is (1)
  __shared__ int buf[kBlock];
  if (blockIdx.x != 0) return;  // uniform over the block
  int count = 0;
  for (int n = (int)threadIdx.x; n < N; n += kBlock) {
    const float* z = logits + n * classes;
    int best = 0;
    float bestv = z[0];
    for (int j = 1; j < classes; j++) {
      if (z[j] > bestv) {
        bestv = z[j];
        best = j;
      }
    }
    if (best == labels[n]) count++;
  }
  int total = block_sum_i32(count, buf);
  if (threadIdx.x == 0) acc[0] = acc[0] + (float)total;
}
