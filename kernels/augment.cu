// augment.cu: the training augmentation of a batch (backend.Ops.AugmentBatch,
// backend.Ops.GatherImages).
//
// Versions:
//
//	augment_batch_v1  one thread per output element: the gather of image
//	                  rows[i], its random crop with zero padding and flip.
//	augment_batch_v2  v1 from a uint8 data set: each byte read is
//	                  standardised through its channel's 256-entry table
//	                  (a quarter of the memory of a float32 set); pad 0 and
//	                  no flip make it the plain gather, without the draw.
//	augment_batch_at_v1  v2 and the batch's labels in one launch, the rows
//	                  taken at an offset into the epoch's order and the
//	                  draw's step read from device memory when given (a
//	                  recorded step's per-step values).
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
// data.Augment.Draw. The output is a copy of a source value (v2: of a
// table entry) or 0, so it equals the CPU's bits.

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

// augment_batch_v2 writes dst[i,c,y,x] = lut[c·256 + src[rows[i], c, ys, xs]]
// at the source position (ys, xs) that augment_batch_v1 reads, 0 where
// that position is outside the image (the padding is 0 after
// standardisation, as in v1). The table holds each channel's standardised
// value of every byte, computed on the host as the CPU backend computes
// it, so the output is a copy of a table entry: the CPU's bits with no
// arithmetic on the device. With pad = 0 and flip = 0 the draw is skipped
// (its offsets would be 0 and no flip): a plain gather and standardisation.
//
// Launch: 1-D over N·C·H·W.
extern "C" __global__ void augment_batch_v2(const unsigned char* src, const float* lut,
                                            const int* rows, float* dst, int N, int C, int H, int W,
                                            int pad, int flip, int seed_lo, int seed_hi,
                                            int step_lo, int step_hi) {
  // src is (?,C,H,W) bytes, lut is (C,256), rows is (N), dst is (N,C,H,W)
  int i = global_index();
  if (i >= N * C * H * W) return;
  int x = i % W;
  int y = (i / W) % H;
  int ch = (i / (W * H)) % C;
  int n = i / (W * H * C);
  int row = rows[n];
  int xs = x;
  int ys = y;
  if (pad != 0 || flip != 0) {
    unsigned long long seed = ((unsigned long long)(unsigned)seed_hi << 32) | (unsigned)seed_lo;
    unsigned long long step = ((unsigned long long)(unsigned)step_hi << 32) | (unsigned)step_lo;
    unsigned long long r = hash3(seed, step, (unsigned long long)(long long)row);
    unsigned long long s = (unsigned long long)(2 * pad + 1);
    int dy = (int)(((r & 0xffffffffULL) * s) >> 32);
    int dx = (int)((((r >> 32) & 0x7fffffffULL) * s) >> 31);
    if (flip != 0 && (r >> 63) == 1) xs = W - 1 - x;
    xs += dx - pad;
    ys += dy - pad;
  }
  float v = 0.0f;
  if (ys >= 0 && ys < H && xs >= 0 && xs < W) {
    v = lut[ch * 256 + src[((row * C + ch) * H + ys) * W + xs]];
  }
  dst[i] = v;
}

// augment_batch_at_v1 writes, in one launch, the images of augment_batch_v2
// (the same operations, the same bits) and, when labels is not null, their
// labels, for the rows row(i) = order[off + i], i < N:
//
//	dst[i,c,y,x] = as augment_batch_v2 with rows[i] = row(i)
//	dlabels[i]   = labels[row(i)]
//
// off is at[0] when at is not null (read when the kernel runs), else 0;
// the draw's step is (astep[0], astep[1]) (low, high 32 bits) when astep
// is not null, else (step_lo, step_hi). The host cannot check values it
// has not written yet, so the kernel does: when off < 0 or off + N >
// orderLen nothing is written, and an image or label whose row lies
// outside [0, srcRows) is not written.
//
// Launch: 1-D over N·C·H·W + N (the labels after the images; + 0 when
// labels is null).
extern "C" __global__ void augment_batch_at_v1(const unsigned char* src, const float* lut,
                                               const int* labels, const int* order, const int* at,
                                               const int* astep, float* dst, int* dlabels, int N,
                                               int C, int H, int W, int pad, int flip, int seed_lo,
                                               int seed_hi, int step_lo, int step_hi, int orderLen,
                                               int srcRows) {
  // src is (srcRows,C,H,W) bytes, lut is (C,256), labels is (srcRows), order is
  // (orderLen), at is (1), astep is (2), dst is (N,C,H,W), dlabels is (N)
  int i = global_index();
  int off = at != 0 ? at[0] : 0;
  if (off < 0 || off > orderLen - N) return;
  int body = N * C * H * W;
  if (i >= body) {
    if (labels == 0 || i >= body + N) return;
    int r = order[off + i - body];
    if (r < 0 || r >= srcRows) return;
    dlabels[i - body] = labels[r];
    return;
  }
  int x = i % W;
  int y = (i / W) % H;
  int ch = (i / (W * H)) % C;
  int n = i / (W * H * C);
  int row = order[off + n];
  if (row < 0 || row >= srcRows) return;
  if (astep != 0) {
    step_lo = astep[0];
    step_hi = astep[1];
  }
  int xs = x;
  int ys = y;
  if (pad != 0 || flip != 0) {
    unsigned long long seed = ((unsigned long long)(unsigned)seed_hi << 32) | (unsigned)seed_lo;
    unsigned long long step = ((unsigned long long)(unsigned)step_hi << 32) | (unsigned)step_lo;
    unsigned long long r = hash3(seed, step, (unsigned long long)(long long)row);
    unsigned long long s = (unsigned long long)(2 * pad + 1);
    int dy = (int)(((r & 0xffffffffULL) * s) >> 32);
    int dx = (int)((((r >> 32) & 0x7fffffffULL) * s) >> 31);
    if (flip != 0 && (r >> 63) == 1) xs = W - 1 - x;
    xs += dx - pad;
    ys += dy - pad;
  }
  float v = 0.0f;
  if (ys >= 0 && ys < H && xs >= 0 && xs < W) {
    v = lut[ch * 256 + src[((row * C + ch) * H + ys) * W + xs]];
  }
  dst[i] = v;
}
