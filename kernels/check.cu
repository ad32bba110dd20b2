// check.cu: finiteness checks on the device, so that the host learns that
// training diverged without downloading the tensors.
//
// Versions:
//
//	nonfinite_first_v1  the index of the first tensor of a table that holds a NaN or an infinity.
//
// The table (device memory, built once by the host) holds, for each tensor
// e < count, kCheckWords 64-bit words:
//
//	table[3e+0] x      the tensor (const float*)
//	table[3e+1] n      elements, 1 ≤ n < 2^31
//	table[3e+2] first  the first block of the tensor: first(0) = 0,
//	                   first(e+1) = first(e) + ceil(n(e)/kCheckChunk)
//
// Block b checks elements [(b − first(e))·kCheckChunk, …+kCheckChunk) of the
// tensor e with first(e) ≤ b < first(e+1) (binary search), and when one of
// them is not finite (exponent bits all ones: the test is on the bits, so no
// compiler or device flag can change it) lowers out[0] to e with an integer
// atomic minimum on its bits. out[0] holds a float32 ≥ 0 set by the host
// before the launch (to count: "all finite"); for floats ≥ 0 the order of
// the bit patterns as integers is the order of the values, and a minimum
// does not depend on the order the blocks run in, so the result is
// deterministic: the smallest e whose tensor is not finite, or count.
//
// Launch: grid.x = first(count−1) + ceil(n(count−1)/kCheckChunk), block.x = 256.

#include "common.cuh"

#define kCheckWords 3
// kCheckChunk is the number of elements one block checks: 8 per thread.
#define kCheckChunk (8 * kBlock)

extern "C" __global__ void nonfinite_first_v1(const long long* table, int count, float* out) {
  // table is (count, 3), out is (1)
  __shared__ int buf[kBlock];
  long long b = blockIdx.x;
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (table[kCheckWords * mid + 2] <= b) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const long long* t = table + kCheckWords * lo;
  const unsigned* x = (const unsigned*)t[0];
  int n = (int)t[1];
  int start = (int)((b - t[2]) * kCheckChunk);
  int bad = 0;
  for (int k = 0; k < kCheckChunk; k += kBlock) {
    int i = start + k + (int)threadIdx.x;
    if (i < n && (x[i] & 0x7f800000u) == 0x7f800000u) bad = 1;
  }
  int any = block_sum_i32(bad, buf);
  if (threadIdx.x == 0 && any > 0) {
    __nvvm_atom_min_gen_i((int*)out, __builtin_bit_cast(int, (float)lo));
  }
}
