// data.cu: batch assembly and buffer initialisation.
//
// Versions:
//
//	gather_rows_f32_v1  one thread per output element: dst[r,:] = src[idx[r],:].
//	gather_rows_i32_v1  the same for int32 rows (labels).
//	fill_f32_v1         one thread per element: p[i] = v.
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
