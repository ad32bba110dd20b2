// add_pack.cu: the residual add with the ReLU after it, writing the
// bfloat16 channels-last copy of its output that the convolutions reading
// it keep; sm_80 and newer (cvt.rn.bf16x2).
// gen-ptx: target sm_80
//
// At BF16 a convolution's forward and bwd-filter kernels read x as a
// bfloat16 channels-last copy (N,H,W,Cp) that pack_transpose_bf16_v2
// makes from x (conv_keep.go). In a residual network the block's output,
// y = max(a + b, 0), is read by the next block's first convolution and,
// at a stage's first block, by its projection shortcut too: two packing
// passes over y after the add wrote it. add_relu_pack_bf16_v1 writes the
// copy, once or twice (one for each convolution's buffer), while it writes
// y, as norm_pack.cu's bn_apply_pack_bf16_v1 does for a batch norm. y
// and each copy are the bits of add_relu_v1 followed by
// pack_transpose_bf16_v2 on y (rows = C, cols = HW, rowsP = Cp, rev = 1).
//
// Versions:
//
//	add_relu_pack_bf16_v1  y = max(a + b, 0) and y's bfloat16 channels-last copy in one or two
//	                       buffers, a 32×32 tile (32 channels × 32 values of a plane) a block.
//	add_relu_pack_tf32_v1  add_relu_pack_bf16_v1 with the copies in TF32 words (a TF32 forward pass's).
//	add_relu_pack_bf16_bf16b_v1  add_relu_pack_bf16_v1 reading b as bfloat16 (a batch norm's output stored so).

#include "pack.cuh"

// add_load is b[e] as a float: a float32 b as it is, a bfloat16 b widened
// (exact).
static __device__ __forceinline__ float add_load(const float* b, int e) { return b[e]; }
static __device__ __forceinline__ float add_load(const unsigned short* b, int e) {
  return __builtin_bit_cast(float, (unsigned)b[e] << 16);
}

// add_relu_pack<kTF32> is add_relu_pack_bf16_v1 (kTF32 = 0) and
// add_relu_pack_tf32_v1 (kTF32 = 1: the copies in TF32 words); TB is b's
// element type (add_load).
template <int kTF32, typename TB = float>
static __device__ __forceinline__ void add_relu_pack(const float* a, const TB* b, float* y, unsigned* dst,
                                                     unsigned* dst2, int N, int C, int HW, int Cp) {
  __shared__ float t[kTile][kTile + 1];
  const int j0 = (int)blockIdx.x * kTile, i0 = (int)blockIdx.y * kTile;
  const int base = (int)blockIdx.z * C * HW, tx = (int)threadIdx.x, ty = (int)threadIdx.y;
#pragma unroll
  for (int k = 0; k < kTile; k += 8) {
    int i = i0 + ty + k, j = j0 + tx;
    float v = 0.0f;
    if (i < C && j < HW) {
      int e = base + i * HW + j;
      v = a[e] + add_load(b, e);
      v = (v > 0.0f || v != v) ? v : 0.0f;
      y[e] = v;
    }
    t[ty + k][tx] = v;
  }
  __syncthreads();
  store_tile(t, dst, HW, Cp, 1, i0, j0, kTF32);
  if (dst2 != nullptr) {
    store_tile(t, dst2, HW, Cp, 1, i0, j0, kTF32);
  }
}

// add_relu_pack_bf16_v1 computes, for a, b and y (N,C,HW),
//
//	y = max(a + b, 0)                         (add_relu_v1's bits: NaN propagates, −0 becomes +0)
//	dst[n, j, c] = bf16(y[n, c, j]) for c < C, 0 for C ≤ c < Cp
//
// and the same words in dst2 when it is not null. dst and dst2 are
// (N, HW, Cp) bfloat16 as N·HW·Cp/2 words, Cp even. A block of 32×8
// threads reads a 32×32 tile of a and b (channels i0…, values j0… of image
// blockIdx.z) along the planes, writes y there and keeps it in shared
// memory, then writes the tile's copy as pack_transpose_bf16_v2 does
// (store_tile_bf16). y may be a or b (each element is read by the thread
// that writes it).
//
// Launch: grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).
extern "C" __global__ void add_relu_pack_bf16_v1(const float* a, const float* b, float* y, unsigned* dst,
                                                 unsigned* dst2, int N, int C, int HW, int Cp) {
  add_relu_pack<0>(a, b, y, dst, dst2, N, C, HW, Cp);
}

// add_relu_pack_tf32_v1 is add_relu_pack_bf16_v1 writing the copies in
// TF32 words (cvt.rna.tf32.f32, store_tile_tf32): dst and dst2 are (N, HW,
// Cp) words, pack_transpose_tf32_v2's bits on y, for a TF32 forward pass
// (which keeps nothing: the caller's one buffer serves each layer and the
// convolution after it in turn). Launch: as add_relu_pack_bf16_v1.
extern "C" __global__ void add_relu_pack_tf32_v1(const float* a, const float* b, float* y, unsigned* dst,
                                                 unsigned* dst2, int N, int C, int HW, int Cp) {
  add_relu_pack<1>(a, b, y, dst, dst2, N, C, HW, Cp);
}

// add_relu_pack_bf16_bf16b_v1 is add_relu_pack_bf16_v1 with b (N,C,HW)
// bfloat16, widened exactly as it is read (a batch norm's output stored
// so: bn_train_fwd_bf16xy_v1): its bits on b widened; y float32, never b.
// Launch: as add_relu_pack_bf16_v1.
extern "C" __global__ void add_relu_pack_bf16_bf16b_v1(const float* a, const unsigned short* b, float* y,
                                                       unsigned* dst, unsigned* dst2, int N, int C, int HW,
                                                       int Cp) {
  add_relu_pack<0>(a, b, y, dst, dst2, N, C, HW, Cp);
}
