// data.cu: batch assembly and buffer initialisation.
//
// Versions:
//
//	gather_rows_f32_v1  one thread per output element: dst[r,:] = src[idx[r],:].
//	gather_rows_i32_v1  the same for int32 rows (labels).
//	fill_f32_v1         one thread per element: p[i] = v.
//	gather_batch_at_v1  gather_rows of a batch's images and labels in one
//	                    launch, the batch's offset into the order read from
//	                    device memory (a recorded step's per-step value).
//
// Launch: 1-D over the output (grid.x = ceil(total/256), block.x = 256);
// every kernel guards its index and never writes out of range. The host
// validates idx (0 ≤ idx[r] < rows of src) before launching.

#include "common.cuh"

// gather_rows_f32_v1 copies dst[r,j] = src[idx[r],j] for r < rows, j < rowLen.
//
// Launch: 1-D over rows·rowLen.
extern "C" __global__ void gather_rows_f32_v1(const float* src, const int* idx, float* dst,
                                              int rows, int rowLen) {
  // src is (?,rowLen), idx is (rows), dst is (rows,rowLen)
  int i = global_index();
  if (i >= rows * rowLen) return;
  int j = i % rowLen;
  int r = i / rowLen;
  dst[i] = src[idx[r] * rowLen + j];
}

// gather_rows_i32_v1 copies dst[r,j] = src[idx[r],j] for int32 data.
//
// Launch: 1-D over rows·rowLen.
extern "C" __global__ void gather_rows_i32_v1(const int* src, const int* idx, int* dst, int rows,
                                              int rowLen) {
  // src is (?,rowLen), idx is (rows), dst is (rows,rowLen)
  int i = global_index();
  if (i >= rows * rowLen) return;
  int j = i % rowLen;
  int r = i / rowLen;
  dst[i] = src[idx[r] * rowLen + j];
}

// fill_f32_v1 sets p[i] = v for i < n.
//
// Launch: 1-D over n.
extern "C" __global__ void fill_f32_v1(float* p, int n, float v) {
  // p is (n)
  int i = global_index();
  if (i >= n) return;
  p[i] = v;
}

// gather_batch_at_v1 gathers a batch of rows and, when labels is not NULL,
// their labels, in one launch, from the rows order[off .. off+rows) of the
// epoch's order, off read from device memory when the kernel runs (at[0];
// 0 when at is NULL), so that a recorded step gathers a new batch each time
// it is replayed:
//
//	dx[r,j]      = x[order[off+r], j]      r < rows, j < rowLen
//	dlabels[r]   = labels[order[off+r]]    r < rows (labels not NULL)
//
// The values are copied as 32-bit words (float or int, bits unchanged).
// The host cannot check a value it has not written yet, so the kernel
// does: when off < 0 or off + rows > orderLen nothing is written, and a
// row whose index lies outside [0, srcRows) is not written.
//
// Launch: 1-D over rows·rowLen + rows (the labels after the rows; + 0
// when labels is NULL).
extern "C" __global__ void gather_batch_at_v1(const int* x, const int* labels, const int* order,
                                              const int* at, int* dx, int* dlabels, int rows,
                                              int rowLen, int orderLen, int srcRows) {
  // x is (srcRows,rowLen), labels is (srcRows), order is (orderLen), at is (1),
  // dx is (rows,rowLen), dlabels is (rows)
  int i = global_index();
  int off = at != 0 ? at[0] : 0;
  if (off < 0 || off > orderLen - rows) return;
  int body = rows * rowLen;
  if (i < body) {
    int r = i / rowLen;
    int j = i - r * rowLen;
    int row = order[off + r];
    if (row < 0 || row >= srcRows) return;
    dx[i] = x[row * rowLen + j];
    return;
  }
  if (labels == 0 || i >= body + rows) return;
  int r = i - body;
  int row = order[off + r];
  if (row < 0 || row >= srcRows) return;
  dlabels[r] = labels[row];
}
