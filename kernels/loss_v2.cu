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
    int l = labels[n];
    float row;
    if (l < 0 || l >= classes) {
      row = MATHF_NAN;
      if (d != 0) {
        for (int j = 0; j < classes; j++) d[j] = MATHF_NAN;
      }
    } else {
      float m = z[0];
      for (int j = 1; j < classes; j++) {
        if (z[j] > m) m = z[j];
      }
      float sum = 0.0f;
      for (int j = 0; j < classes; j++) sum = sum + mathf_expf(z[j] - m);
      row = mathf_logf(sum) - (z[l] - m);
      if (d != 0) {
        float fn = (float)N;
        for (int j = 0; j < classes; j++) {
          float prob = mathf_expf(z[j] - m) / sum;
          if (j == l) prob = prob - 1.0f;
          d[j] = prob / fn;
        }
      }
    }
    acc = acc + row;
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
    int best = 0;
    float bestv = z[0];
    for (int j = 1; j < classes; j++) {
      if (z[j] > bestv) {
        bestv = z[j];
        best = j;
      }
    }
    if (best == l) count++;
    float row;
    if (l < 0 || l >= classes) {
      row = MATHF_NAN;
      if (d != 0) {
        for (int j = 0; j < classes; j++) d[j] = MATHF_NAN;
      }
    } else {
      float m = z[0];
      for (int j = 1; j < classes; j++) {
        if (z[j] > m) m = z[j];
      }
      float sum = 0.0f;
      for (int j = 0; j < classes; j++) sum = sum + mathf_expf(z[j] - m);
      row = mathf_logf(sum) - (z[l] - m);
      if (d != 0) {
        float fn = (float)N;
        for (int j = 0; j < classes; j++) {
          float prob = mathf_expf(z[j] - m) / sum;
          if (j == l) prob = prob - 1.0f;
          d[j] = prob / fn;
        }
      }
    }
    acc = acc + row;
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
