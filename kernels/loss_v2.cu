// loss_v2.cu: the softmax cross-entropy's mean loss and gradient in one
// launch (loss.cu's softmax_ce_v1 and reduce_sum_v1 take two).
//
// Shape letters as in loss.cu: logits and dlogits are (N,classes), labels
// is (N), loss is (1).
//
// Versions:
//
//	softmax_ce_mean_v1  one block of 256: softmax_ce_v1's rows, strided, and reduce_sum_v1's sum of them.
//	softmax_ce_metrics_v1  softmax_ce_mean_v1, then accumulate_v1 of the loss
//	                    into a running sum and count_correct_v1 into a
//	                    running count, in the same launch (the step's metrics).
//	maxpool_dense_softmax_v1  maxpool_dense_fwd_v1 (a block per image), each
//	                    block then its row of softmax_ce_metrics_v1, and the
//	                    last block to finish (an integer ticket) the mean and
//	                    the metrics in softmax_ce_metrics_v1's order.
//
// Numerics: the same operations in the same order as softmax_ce_v1 followed
// by reduce_sum_v1 with scale 1/N: each row's loss and gradient by the same
// code (mathf_expf, mathf_logf), thread t sums the losses of rows t,
// t+256, … from 0 in that order, block_sum_f32 adds the 256 partial sums
// in its fixed tree, thread 0 multiplies by scale. So the result is the
// same bits as the two launches. No atomics.
//
// Launch: grid.x = 1, block.x = 256 (exactly). For a large N the two
// launches of loss.cu spread the rows over more blocks; the host chooses.

#include "common.cuh"
#include "mathf.cuh"
#include "pooldense.cuh"

// softmax_ce_row is one row's loss ln Σ_j e^(z_j − m) − (z_l − m) (m the
// first largest z_j) and, when d is not null, its gradient row
// d[j] = (e^(z_j − m)/Σ − [j = l]) / N: softmax_ce_v1's operations in its
// order. A label outside [0, classes) gives NaN for both.
static __device__ __forceinline__ float softmax_ce_row(const float* z, float* d, int l, int classes, int N) {
  if (l < 0 || l >= classes) {
    if (d != 0) {
      for (int j = 0; j < classes; j++) d[j] = MATHF_NAN;
    }
    return MATHF_NAN;
  }
  float m = z[0];
  for (int j = 1; j < classes; j++) {
    if (z[j] > m) m = z[j];
  }
  float sum = 0.0f;
  for (int j = 0; j < classes; j++) sum = sum + mathf_expf(z[j] - m);
  float row = mathf_logf(sum) - (z[l] - m);
  if (d != 0) {
    float fn = (float)N;
    for (int j = 0; j < classes; j++) {
      float prob = mathf_expf(z[j] - m) / sum;
      if (j == l) prob = prob - 1.0f;
      d[j] = prob / fn;
    }
  }
  return row;
}

// first_argmax is the index of the first largest of z[0..classes), as
// count_correct_v1 picks it.
static __device__ __forceinline__ int first_argmax(const float* z, int classes) {
  int best = 0;
  float bestv = z[0];
  for (int j = 1; j < classes; j++) {
    if (z[j] > bestv) {
      bestv = z[j];
      best = j;
    }
  }
  return best;
}

// softmax_ce_mean_v1 writes loss[0] = scale · Σ_n (ln Σ_j e^(z_j − m) −
// (z_l − m)) over the rows n of logits (z = logits[n,:], l = labels[n], m
// the first largest z_j) and, when dlogits is not null, dlogits[n,j] =
// (e^(z_j − m)/Σ − [j = l]) / N; a label outside [0, classes) makes its row's
// loss, hence loss[0], and its dlogits row NaN (as softmax_ce_v1).
extern "C" __global__ void softmax_ce_mean_v1(const float* logits, const int* labels, float* loss,
                                              float* dlogits, int N, int classes, float scale) {
  // logits is (N,classes), labels is (N), loss is (1), dlogits is (N,classes) or null
  __shared__ float buf[kBlock];
  if (blockIdx.x != 0) return;  // uniform over the block
  float acc = 0.0f;
  for (int n = (int)threadIdx.x; n < N; n += kBlock) {
    const float* z = logits + n * classes;
    float* d = dlogits != 0 ? dlogits + n * classes : 0;
    acc = acc + softmax_ce_row(z, d, labels[n], classes, N);
  }
  float total = block_sum_f32(acc, buf);
  if (threadIdx.x == 0) loss[0] = scale * total;
}

// softmax_ce_metrics_v1 is softmax_ce_mean_v1 followed, in the same launch,
// by what accumulate_v1 (n = 1) and count_correct_v1 do after it:
//
//	loss[0]      = as softmax_ce_mean_v1 (dlogits too)
//	loss_sum[0]  = loss_sum[0] + loss[0]
//	correct[0]   = correct[0] + (float)#{n : argmax_j logits[n,j] = labels[n]}
//
// the argmax the first largest, as count_correct_v1 (a label out of range
// never counts). Each value is computed by the same operations in the same
// order as in those kernels, so the bits are theirs.
//
// Launch: grid.x = 1, block.x = 256 (exactly).
extern "C" __global__ void softmax_ce_metrics_v1(const float* logits, const int* labels, float* loss,
                                                 float* dlogits, float* loss_sum, float* correct, int N,
                                                 int classes, float scale) {
  // logits is (N,classes), labels is (N), loss, loss_sum and correct are (1),
  // dlogits is (N,classes) or null
  __shared__ float buf[kBlock];
  __shared__ int ibuf[kBlock];
  if (blockIdx.x != 0) return;  // uniform over the block
  float acc = 0.0f;
  int count = 0;
  for (int n = (int)threadIdx.x; n < N; n += kBlock) {
    const float* z = logits + n * classes;
    float* d = dlogits != 0 ? dlogits + n * classes : 0;
    int l = labels[n];
    if (first_argmax(z, classes) == l) count++;
    acc = acc + softmax_ce_row(z, d, l, classes, N);
  }
  float total = block_sum_f32(acc, buf);
  int hits = block_sum_i32(count, ibuf);
  if (threadIdx.x == 0) {
    float mean = scale * total;
    loss[0] = mean;
    loss_sum[0] = loss_sum[0] + mean;
    correct[0] = correct[0] + (float)hits;
  }
}

// maxpool_dense_softmax_v1 runs, in one launch, maxpool_fwd_v1, dense_fwd_v1
// on its output flattened (In = C·P·Q) and softmax_ce_metrics_v1 on the
// dense output z (the logits), the same bits:
//
//	block n:  y, argmax and z of image n as maxpool_dense_fwd_v1; then
//	          thread 0 computes row n as a thread of softmax_ce_metrics_v1
//	          does (its loss, its dlogits row, whether its argmax is its
//	          label) and stores the loss in rows[n] and the hit in
//	          rows[N + n] (0 or 1);
//	the last block to finish (ticket[0], an integer counter that it sets
//	back to 0): thread t adds rows[t], rows[t + 256], … from 0 in that
//	order and counts the hits, block_sum_f32 and block_sum_i32 as in
//	softmax_ce_metrics_v1, then loss[0] = scale·total,
//	loss_sum[0] += loss[0], correct[0] += hits.
//
// The row sums and the tree are softmax_ce_metrics_v1's, so the result is
// its bits whichever block finishes last. No floating-point atomics; the
// ticket is an integer atomic add after a memory fence (membar.gl).
//
// Launch: grid.x = N, block.x = 256 (exactly); rows holds 2N + 1 words,
// the last (the ticket, int) 0 before the launch (and after it).
extern "C" __global__ void maxpool_dense_softmax_v1(const float* x, float* y, int* argmax, const float* w,
                                                    const float* b, float* z, const int* labels,
                                                    float* loss, float* dlogits, float* loss_sum,
                                                    float* correct, float* rows, int N,
                                                    int C, int H, int W, int R, int S, int P, int Q, int sh,
                                                    int sw, int Out, float scale) {
  // x is (N,C,H,W), y and argmax are (N,C,P,Q), w is (Out,C·P·Q), b is (Out) or null,
  // z and dlogits are (N,Out), labels is (N), rows is (2N + 1), loss, loss_sum, correct are (1)
  __shared__ float buf[kBlock];
  int* ticket = (int*)(rows + 2 * N);  // rows' last word
  __shared__ int ibuf[kBlock];
  __shared__ int last;
  int n = (int)blockIdx.x;
  if (n >= N) return;  // uniform over the block
  maxpool_dense_image(x, y, argmax, w, b, z, n, C, H, W, R, S, P, Q, sh, sw, Out);
  __syncthreads();
  if (threadIdx.x == 0) {
    int classes = Out;
    const float* zr = z + n * classes;
    float* d = dlogits != 0 ? dlogits + n * classes : 0;
    int l = labels[n];
    rows[n] = softmax_ce_row(zr, d, l, classes, N);
    rows[N + n] = first_argmax(zr, classes) == l ? 1.0f : 0.0f;
    __nvvm_membar_gl();  // __threadfence: the row before the ticket
    int done = __nvvm_atom_add_gen_i(ticket, 1);
    last = done == N - 1;
  }
  __syncthreads();
  if (!last) return;  // uniform over the block
  __nvvm_membar_gl();
  float acc = 0.0f;
  int count = 0;
  for (int r = (int)threadIdx.x; r < N; r += kBlock) {
    acc = acc + rows[r];
    if (rows[N + r] != 0.0f) count++;
  }
  float total = block_sum_f32(acc, buf);
  int hits = block_sum_i32(count, ibuf);
  if (threadIdx.x == 0) {
    float mean = scale * total;
    loss[0] = mean;
    loss_sum[0] = loss_sum[0] + mean;
    correct[0] = correct[0] + (float)hits;
    ticket[0] = 0;
  }
}
