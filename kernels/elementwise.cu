// elementwise.cu: dropout (Philox4x32-10 masks), the residual add and the
// channel-slice copy of concatenation, bit for bit cpuref/dropout.go and
// cpuref/merge.go.
//
// Versions:
//
//	dropout_v1       one thread per 4 consecutive elements (one Philox call); forward and backward alike.
//	dropout_at_v1    dropout_v1 with the step of the key read from device memory (a recorded step's per-step value).
//	add_v1           one thread per element.
//	add_relu_v1      add_v1 and relu_fwd_v1 in one pass, one thread per element.
//	add_bf16b_v1     add_v1 reading b as bfloat16 (a batch norm's output stored so).
//	add_relu_bf16b_v1  add_relu_v1 reading b as bfloat16.
//	channel_copy_v1  one thread per copied element: a channel range of one (N,C,HW) tensor into another.
//
// Launch shapes (kBlock = 256 threads per block) are stated at each kernel;
// every kernel guards its index and never writes out of range. In-place use
// (y == x, y == a or b) is allowed: each thread reads its elements before
// writing them.

#include "common.cuh"

// philox4x32_10 is Random123's Philox4x32-10 (cpuref.Philox4x32): ten
// rounds of (hi0, lo0) = M0·c0, (hi1, lo1) = M1·c2,
// c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0), the key bumped between
// rounds.
static __device__ __forceinline__ void philox4x32_10(unsigned c[4], unsigned k0, unsigned k1) {
#pragma unroll
  for (int round = 0; round < 10; round++) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    unsigned long long p0 = (unsigned long long)0xD2511F53u * c[0];  // mul.wide.u32
    unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c[2];
    unsigned n0 = (unsigned)(p1 >> 32) ^ c[1] ^ k0;
    unsigned n2 = (unsigned)(p0 >> 32) ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = (unsigned)p1;
    c[2] = n2;
    c[3] = (unsigned)p0;
  }
}

// dropout_v1 applies the dropout keep-mask of cpuref.DropoutMask with
// drop probability p to x (PyTorch's inverted dropout):
//
//	key      = (seed_lo, seed_hi);  counter = (i/4, stream, step_lo, step_hi)
//	r        = Philox4x32-10(counter, key)[i mod 4]
//	mask[i]  = float(r >> 8)·2^−24 ≥ p ? 1 : 0
//	y[i]     = (x[i]·mask[i])·s,   s = 1/(1 − p)
//
// each product and s rounded to float. The same kernel computes the
// backward pass (x = dy, y = dx) with the same key. The 32-bit values
// travel as int and are read as unsigned.
//
// Launch: 1-D over ceil(n/4) (grid.x = ceil(ceil(n/4)/256), block.x = 256).
extern "C" __global__ void dropout_v1(const float* x, float* y, int n, float p, int seed_lo,
                                      int seed_hi, int stream, int step_lo, int step_hi) {
  // x is (n), y is (n)
  int j = global_index();
  if (j >= (n + 3) / 4) return;
  unsigned c[4] = {(unsigned)j, (unsigned)stream, (unsigned)step_lo, (unsigned)step_hi};
  philox4x32_10(c, (unsigned)seed_lo, (unsigned)seed_hi);
  float s = __nvvm_div_rn_f(1.0f, 1.0f - p);
#pragma unroll
  for (int w = 0; w < 4; w++) {
    int i = 4 * j + w;
    if (i >= n) break;
    float u = (float)(c[w] >> 8) * 0x1p-24f;
    float m = u >= p ? 1.0f : 0.0f;
    y[i] = (x[i] * m) * s;
  }
}

// dropout_at_v1 is dropout_v1 with the key's step read from device memory
// when the kernel runs, step[0] its low and step[1] its high 32 bits, so
// that a recorded step draws a new mask each time it is replayed; the
// rest as dropout_v1, bit for bit.
//
// Launch: as dropout_v1.
extern "C" __global__ void dropout_at_v1(const float* x, float* y, int n, float p, int seed_lo,
                                         int seed_hi, int stream, const int* step) {
  // x is (n), y is (n), step is (2)
  int j = global_index();
  if (j >= (n + 3) / 4) return;
  unsigned c[4] = {(unsigned)j, (unsigned)stream, (unsigned)step[0], (unsigned)step[1]};
  philox4x32_10(c, (unsigned)seed_lo, (unsigned)seed_hi);
  float s = __nvvm_div_rn_f(1.0f, 1.0f - p);
#pragma unroll
  for (int w = 0; w < 4; w++) {
    int i = 4 * j + w;
    if (i >= n) break;
    float u = (float)(c[w] >> 8) * 0x1p-24f;
    float m = u >= p ? 1.0f : 0.0f;
    y[i] = (x[i] * m) * s;
  }
}

// add_v1 computes y[i] = a[i] + b[i] (one rounded addition).
//
// Launch: 1-D over n (grid.x = ceil(n/256), block.x = 256).
extern "C" __global__ void add_v1(const float* a, const float* b, float* y, int n) {
  // a, b and y are (n)
  int i = global_index();
  if (i >= n) return;
  y[i] = a[i] + b[i];
}

// add_relu_v1 computes y[i] = max(a[i] + b[i], 0) with relu_fwd_v1's
// rules (NaN propagates, −0 becomes +0): the bits of add_v1 then
// relu_fwd_v1, a residual block's add and the ReLU after it in one pass
// (cpuref.AddReLUForward).
//
// Launch: 1-D over n (grid.x = ceil(n/256), block.x = 256).
extern "C" __global__ void add_relu_v1(const float* a, const float* b, float* y, int n) {
  // a, b and y are (n)
  int i = global_index();
  if (i >= n) return;
  float v = a[i] + b[i];
  y[i] = (v > 0.0f || v != v) ? v : 0.0f;
}

// add_bf16b_v1 and add_relu_bf16b_v1 are add_v1 and add_relu_v1 with b
// (n) bfloat16, widened exactly as it is read (a batch norm's output
// stored so: bn_train_fwd_bf16xy_v1); y stays float32, so y is never b.
//
// Launch: 1-D over n (grid.x = ceil(n/256), block.x = 256).
extern "C" __global__ void add_bf16b_v1(const float* a, const unsigned short* b, float* y, int n) {
  // a, b and y are (n)
  int i = global_index();
  if (i >= n) return;
  y[i] = a[i] + __builtin_bit_cast(float, (unsigned)b[i] << 16);
}

extern "C" __global__ void add_relu_bf16b_v1(const float* a, const unsigned short* b, float* y, int n) {
  // a, b and y are (n)
  int i = global_index();
  if (i >= n) return;
  float v = a[i] + __builtin_bit_cast(float, (unsigned)b[i] << 16);
  y[i] = (v > 0.0f || v != v) ? v : 0.0f;
}

// channel_copy_v1 copies channels [src_off, src_off + C) of src, an
// (N,src_C,HW) tensor, to channels [dst_off, dst_off + C) of dst, an
// (N,dst_C,HW) tensor:
//
//	dst[n, dst_off + c, j] = src[n, src_off + c, j]
//
// (bits unchanged): concatenation's forward pass (src an input, dst the
// output at the input's channel offset) and its backward pass (src the
// output's gradient at the offset, dst the input's gradient).
//
// Launch: 1-D over N·C·HW (grid.x = ceil(N·C·HW/256), block.x = 256).
extern "C" __global__ void channel_copy_v1(const float* src, float* dst, int N, int C, int HW,
                                           int src_C, int src_off, int dst_C, int dst_off) {
  // src is (N,src_C,HW), dst is (N,dst_C,HW)
  int i = global_index();
  if (i >= N * C * HW) return;
  int j = i % HW;
  int t = i / HW;
  int c = t % C;
  int n = t / C;
  dst[(n * dst_C + dst_off + c) * HW + j] = src[(n * src_C + src_off + c) * HW + j];
}
