// augment.cu: the training augmentation of a batch (backend.Ops.AugmentBatch).
//
// Versions:
//
//	augment_batch_v1  one thread per output element: the gather of image
//	                  rows[i], its random crop with zero padding and flip.
//
// Launch: 1-D over the output (grid.x = ceil(N·C·H·W/256), block.x = 256);
// the kernel guards its index and never writes out of range. The host
// validates rows (0 ≤ rows[i] < images of src) and pad (0 to 64) before
// launching.
//
// The draw is host/data's counter-based one, bit for bit: each thread
// recomputes r = Hash3(seed, step, rows[i]) (SplitMix64's finaliser
// three times, 64-bit integer arithmetic modulo 2^64) and from it the crop
// offset (dy, dx) in [0, 2·pad] and the flip bit, exactly as
// data.Augment.Draw. The output is a copy of a source value or 0, so it
// equals the CPU's bits.

#include "common.cuh"

// mix64 is SplitMix64's finaliser (data.Mix64).
static __device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// hash3 is data.Hash3: mix64(mix64(mix64(a + γ) + b + γ) + c + γ).
static __device__ __forceinline__ unsigned long long hash3(unsigned long long a,
                                                           unsigned long long b,
                                                           unsigned long long c) {
  const unsigned long long golden = 0x9e3779b97f4a7c15ULL;
  return mix64(mix64(mix64(a + golden) + b + golden) + c + golden);
}

// augment_batch_v1 writes dst[i,c,y,x] = src[rows[i], c, y+dy−pad, x'+dx−pad]
// (x' = W−1−x when the image's flip bit is set and flip ≠ 0, else x), 0
// where that position is outside the image, for the draw (dy, dx, flip bit)
// of data.Augment.Draw(seed, step, rows[i]). The 64-bit seed and step come
// as the bit patterns of their 32-bit halves (seed = (unsigned)seed_hi·2^32
// + (unsigned)seed_lo).
//
// Launch: 1-D over N·C·H·W.
extern "C" __global__ void augment_batch_v1(const float* src, const int* rows, float* dst, int N,
                                            int C, int H, int W, int pad, int flip,
                                            int seed_lo, int seed_hi, int step_lo, int step_hi) {
  // src is (?,C,H,W), rows is (N), dst is (N,C,H,W)
  int i = global_index();
  if (i >= N * C * H * W) return;
  int x = i % W;
  int y = (i / W) % H;
  int ch = (i / (W * H)) % C;
  int n = i / (W * H * C);
  int row = rows[n];
  unsigned long long seed = ((unsigned long long)(unsigned)seed_hi << 32) | (unsigned)seed_lo;
  unsigned long long step = ((unsigned long long)(unsigned)step_hi << 32) | (unsigned)step_lo;
  unsigned long long r = hash3(seed, step, (unsigned long long)(long long)row);
  unsigned long long s = (unsigned long long)(2 * pad + 1);
  int dy = (int)(((r & 0xffffffffULL) * s) >> 32);
  int dx = (int)((((r >> 32) & 0x7fffffffULL) * s) >> 31);
  int xs = (flip != 0 && (r >> 63) == 1) ? W - 1 - x : x;
  xs += dx - pad;
  int ys = y + dy - pad;
  float v = 0.0f;
  if (ys >= 0 && ys < H && xs >= 0 && xs < W) v = src[((row * C + ch) * H + ys) * W + xs];
  dst[i] = v;
}
