// Package kernels holds the project's GPU kernels: the CUDA C sources
// (*.cu), the PTX that scripts/gen-ptx.sh generates from them with clang-19
// (*.ptx, checked in and embedded here), and the table of every entry point
// with its parameter list.
//
// The PTX targets sm_70 (PTX ISA 6.0), so the driver JIT-compiles it for
// Volta and every newer GPU, except the files whose source asks for sm_80
// (conv_igemm_tf32.ptx: the TF32 tensor-core kernels, PTX ISA 7.0), which
// package gpu loads only on compute capability 8.0 and newer (see
// Kernel.Target). The PTX simulator in gpu/ runs the very same text.
// Kernel versions live side by side (conv2d_fwd_v1_direct,
// conv2d_fwd_v2_igemm, conv2d_fwd_v3_igemm_tf32, …); a shipped version is
// never edited.
//
// Every v1 kernel runs with block.x = BlockSize; the implicit-GEMM
// kernels run 256-thread blocks on the 2-D or 3-D grid stated in their
// Doc. "1-D over T" means grid.x = ceil(T/BlockSize) and one thread per
// element, index blockIdx.x·blockDim.x + threadIdx.x. The per-kernel launch shape is in
// each Kernel's Doc and in the comment above the kernel in its .cu file.
// Integer parameters are int32 and every tensor has fewer than 2^31
// elements; pointer parameters are device addresses (8 bytes).
package kernels

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
)

//go:embed *.ptx
var ptxFS embed.FS

// BlockSize is block.x of every v1 kernel (kBlock in common.cuh). The block
// reductions (conv2d_bwd_filter_v1_direct, conv2d_bwd_bias_v1,
// reduce_sum_v1, count_correct_v1) require exactly this many threads.
const BlockSize = 256

// Parameter types of Param.Type.
const (
	TypePtr = "ptr" // a device pointer (.u64 in PTX)
	TypeI32 = "i32" // int (.u32 in PTX)
	TypeF32 = "f32" // float (.f32 in PTX)
)

// Param is one kernel parameter: its name in the .cu source and its type
// (TypePtr, TypeI32 or TypeF32).
type Param struct {
	Name string
	Type string
}

// Kernel describes one entry point: its name, the embedded PTX file that
// holds it, its parameters in order, the minimum target it needs and what it
// computes and how it is launched.
type Kernel struct {
	Name   string
	File   string // e.g. "conv.ptx"
	Params []Param
	// Target is the PTX target of the kernel's file: "sm_70" (loads on
	// every supported GPU) or "sm_80" (tensor-core kernels; loads on
	// compute capability 8.0 and newer only).
	Target string
	Doc    string
}

// params builds a parameter list from alternating names and types.
func params(nameType ...string) []Param {
	ps := make([]Param, 0, len(nameType)/2)
	for i := 0; i+1 < len(nameType); i += 2 {
		ps = append(ps, Param{Name: nameType[i], Type: nameType[i+1]})
	}
	return ps
}

const (
	ptr = TypePtr
	i32 = TypeI32
	f32 = TypeF32
)

// All lists every kernel in the embedded PTX, grouped by file in a stable
// order.
var All = []Kernel{
	{
		Name: "conv2d_fwd_v1_direct", File: "conv.ptx", Target: "sm_70",
		Params: params("x", ptr, "w", ptr, "b", ptr, "y", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32),
		Doc: "y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s w[k,c,r,s]·x[n,c,p·sh−ph+r,q·sw−pw+s] (zero padding; " +
			"sum from 0 over c,r,s ascending, b[k] added last; b may be null). 1-D over N·K·P·Q.",
	},
	{
		Name: "conv2d_bwd_data_v1_direct", File: "conv.ptx", Target: "sm_70",
		Params: params("dy", ptr, "w", ptr, "dx", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32),
		Doc: "dx[n,c,h,v] = Σ_k Σ_r Σ_s w[k,c,r,s]·dy[n,k,(h+ph−r)/sh,(v+pw−s)/sw] over exact, " +
			"in-range divisions (gather, sum from 0 over k,r,s ascending). 1-D over N·C·H·W.",
	},
	{
		Name: "conv2d_bwd_filter_v1_direct", File: "conv.ptx", Target: "sm_70",
		Params: params("x", ptr, "dy", ptr, "dw", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32),
		Doc: "dw[k,c,r,s] = Σ_n Σ_p Σ_q dy[n,k,p,q]·x[n,c,p·sh−ph+r,q·sw−pw+s]; one block per dw " +
			"element, thread t sums terms t, t+256, … then a fixed shared-memory tree. " +
			"grid.x = K·C·R·S, block.x = 256.",
	},
	{
		Name: "conv2d_bwd_bias_v1", File: "conv.ptx", Target: "sm_70",
		Params: params("dy", ptr, "db", ptr, "N", i32, "K", i32, "PQ", i32),
		Doc: "db[k] = Σ_n Σ_pq dy[n,k,pq]; one block per k, strided per-thread sums then a fixed " +
			"shared-memory tree. grid.x = K, block.x = 256.",
	},
	{
		Name: "conv2d_fwd_v2_igemm", File: "conv_igemm.ptx", Target: "sm_70",
		Params: params("x", ptr, "w", ptr, "b", ptr, "y", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32,
			"relu", i32),
		Doc: "y = act(b[k] + Σ_c,r,s w[k,c,r,s]·x[n,c,p·sh−ph+r,q·sw−pw+s]) as an FP32 implicit GEMM " +
			"(M = N·P·Q, N = K, K = C·R·S; 128×64×8 tiles, FFMA chain from 0, b[k] added last; b may " +
			"be null; act = ReLU when relu ≠ 0). grid = (⌈N·P·Q/128⌉, ⌈K/64⌉), block.x = 256.",
	},
	{
		Name: "conv2d_bwd_data_v2_igemm", File: "conv_igemm.ptx", Target: "sm_70",
		Params: params("dy", ptr, "w", ptr, "dx", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32),
		Doc: "dx as conv2d_bwd_data_v1_direct, as an FP32 implicit GEMM (M = N·H·W, N = C, " +
			"K = K·R·S). grid = (⌈N·H·W/128⌉, ⌈C/64⌉), block.x = 256.",
	},
	{
		Name: "conv2d_bwd_filter_v2_igemm", File: "conv_igemm.ptx", Target: "sm_70",
		Params: params("x", ptr, "dy", ptr, "ws", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32,
			"tilesPerSplit", i32),
		Doc: "split z of dw: ws[z,k,c,r,s] = Σ over j = (n·P+p)·Q+q in [8·tilesPerSplit·z, " +
			"8·tilesPerSplit·(z+1)) of dy·x, an FP32 implicit GEMM (M = C·R·S, N = K, K = N·P·Q). " +
			"grid = (⌈C·R·S/128⌉, ⌈K/64⌉, splits), block.x = 256.",
	},
	{
		Name: "conv2d_bwd_filter_v2_reduce", File: "conv_igemm.ptx", Target: "sm_70",
		Params: params("ws", ptr, "dw", ptr, "splits", i32, "n", i32),
		Doc:    "dw[i] = Σ_z ws[z·n+i], z ascending from ws[i] (fixed order). 1-D over n.",
	},
	{
		Name: "conv2d_bwd_data_v4_igemm_strided", File: "conv_igemm.ptx", Target: "sm_70",
		Params: params("dy", ptr, "w", ptr, "dx", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32),
		Doc: "dx as conv2d_bwd_data_v2_igemm, decomposed by stride phase (one dense FP32 GEMM per " +
			"(h mod sh, w mod sw): M = N·⌈H/sh⌉·⌈W/sw⌉, N = C, K = K·⌈R/sh⌉·⌈S/sw⌉ at most; no zero terms). " +
			"grid = (⌈N·⌈H/sh⌉·⌈W/sw⌉/128⌉, ⌈C/64⌉, sh·sw), block.x = 256.",
	},
	{
		Name: "conv2d_fwd_v6_igemm_wide", File: "conv_igemm_wide.ptx", Target: "sm_70",
		Params: params("x", ptr, "w", ptr, "b", ptr, "y", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32,
			"relu", i32),
		Doc: "conv2d_fwd_v2_igemm (same bits) with 128×128×8 tiles, 8×8 outputs per thread. " +
			"grid = (⌈N·P·Q/128⌉, ⌈K/128⌉), block.x = 256.",
	},
	{
		Name: "conv2d_bwd_data_v6_igemm_wide", File: "conv_igemm_wide.ptx", Target: "sm_70",
		Params: params("dy", ptr, "w", ptr, "dx", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32),
		Doc: "conv2d_bwd_data_v2_igemm (same bits) with 128×128×8 tiles. " +
			"grid = (⌈N·H·W/128⌉, ⌈C/128⌉), block.x = 256.",
	},
	{
		Name: "conv2d_bwd_data_v6_igemm_wide_strided", File: "conv_igemm_wide.ptx", Target: "sm_70",
		Params: params("dy", ptr, "w", ptr, "dx", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32),
		Doc: "conv2d_bwd_data_v4_igemm_strided (same bits) with 128×128×8 tiles. " +
			"grid = (⌈N·⌈H/sh⌉·⌈W/sw⌉/128⌉, ⌈C/128⌉, sh·sw), block.x = 256.",
	},
	{
		Name: "conv2d_bwd_filter_v6_igemm_wide", File: "conv_igemm_wide.ptx", Target: "sm_70",
		Params: params("x", ptr, "dy", ptr, "ws", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32,
			"tilesPerSplit", i32),
		Doc: "conv2d_bwd_filter_v2_igemm (same splits, same bits) with 128×128×8 tiles. " +
			"grid = (⌈C·R·S/128⌉, ⌈K/128⌉, splits), block.x = 256.",
	},
	{
		Name: "conv2d_fwd_v3_igemm_tf32", File: "conv_igemm_tf32.ptx", Target: "sm_80",
		Params: params("x", ptr, "w", ptr, "b", ptr, "y", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32,
			"relu", i32),
		Doc: "conv2d_fwd_v2_igemm on TF32 tensor cores (mma.sync m16n8k8; operands rounded to TF32 " +
			"with cvt.rna, float32 accumulation). grid = (⌈N·P·Q/128⌉, ⌈K/64⌉), block.x = 256.",
	},
	{
		Name: "conv2d_bwd_data_v3_igemm_tf32", File: "conv_igemm_tf32.ptx", Target: "sm_80",
		Params: params("dy", ptr, "w", ptr, "dx", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32),
		Doc: "conv2d_bwd_data_v2_igemm on TF32 tensor cores. grid = (⌈N·H·W/128⌉, ⌈C/64⌉), " +
			"block.x = 256.",
	},
	{
		Name: "conv2d_bwd_filter_v3_igemm_tf32", File: "conv_igemm_tf32.ptx", Target: "sm_80",
		Params: params("x", ptr, "dy", ptr, "ws", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32,
			"tilesPerSplit", i32),
		Doc: "conv2d_bwd_filter_v2_igemm on TF32 tensor cores (same splits; the second pass is " +
			"conv2d_bwd_filter_v2_reduce). grid = (⌈C·R·S/128⌉, ⌈K/64⌉, splits), block.x = 256.",
	},
	{
		Name: "conv2d_bwd_data_v5_igemm_strided_tf32", File: "conv_igemm_tf32.ptx", Target: "sm_80",
		Params: params("dy", ptr, "w", ptr, "dx", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"K", i32, "R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32, "ph", i32, "pw", i32),
		Doc: "conv2d_bwd_data_v4_igemm_strided on TF32 tensor cores. " +
			"grid = (⌈N·⌈H/sh⌉·⌈W/sw⌉/128⌉, ⌈C/64⌉, sh·sw), block.x = 256.",
	},
	{
		Name: "relu_fwd_v1", File: "activation.ptx", Target: "sm_70",
		Params: params("x", ptr, "y", ptr, "n", i32),
		Doc:    "y = x > 0 ? x : 0, NaN propagates. 1-D over n.",
	},
	{
		Name: "relu_bwd_v1", File: "activation.ptx", Target: "sm_70",
		Params: params("x", ptr, "dy", ptr, "dx", ptr, "n", i32),
		Doc:    "dx = x > 0 ? dy : 0 (x the forward input). 1-D over n.",
	},
	{
		Name: "maxpool_fwd_v1", File: "pool.ptx", Target: "sm_70",
		Params: params("x", ptr, "y", ptr, "argmax", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32),
		Doc: "y = first maximum of each R×S window in row-major order (strict >, a NaN wins); " +
			"argmax = its flat index into x (int32). 1-D over N·C·P·Q.",
	},
	{
		Name: "maxpool_bwd_v1", File: "pool.ptx", Target: "sm_70",
		Params: params("dy", ptr, "argmax", ptr, "dx", ptr, "N", i32, "C", i32, "H", i32, "W", i32,
			"R", i32, "S", i32, "P", i32, "Q", i32, "sh", i32, "sw", i32),
		Doc: "dx[i] = Σ dy over the windows (p,q ascending) containing i whose argmax == i " +
			"(gather, no atomics). 1-D over N·C·H·W.",
	},
	{
		Name: "dense_fwd_v1", File: "dense.ptx", Target: "sm_70",
		Params: params("x", ptr, "w", ptr, "b", ptr, "y", ptr, "N", i32, "In", i32, "Out", i32),
		Doc: "y[n,o] = b[o] + Σ_i x[n,i]·w[o,i], w is (Out,In); sum from 0 over i ascending, " +
			"b[o] added last; b may be null. 1-D over N·Out.",
	},
	{
		Name: "dense_bwd_data_v1", File: "dense.ptx", Target: "sm_70",
		Params: params("dy", ptr, "w", ptr, "dx", ptr, "N", i32, "In", i32, "Out", i32),
		Doc:    "dx[n,i] = Σ_o dy[n,o]·w[o,i] (o ascending). 1-D over N·In.",
	},
	{
		Name: "dense_bwd_weight_v1", File: "dense.ptx", Target: "sm_70",
		Params: params("x", ptr, "dy", ptr, "dw", ptr, "N", i32, "In", i32, "Out", i32),
		Doc:    "dw[o,i] = Σ_n dy[n,o]·x[n,i] (n ascending). 1-D over Out·In.",
	},
	{
		Name: "reduce_cols_v1", File: "dense.ptx", Target: "sm_70",
		Params: params("a", ptr, "out", ptr, "rows", i32, "cols", i32),
		Doc:    "out[j] = Σ_i a[i,j] (i ascending; the dense bias gradient). 1-D over cols.",
	},
	{
		Name: "softmax_ce_v1", File: "loss.ptx", Target: "sm_70",
		Params: params("logits", ptr, "labels", ptr, "loss_rows", ptr, "dlogits", ptr, "N", i32, "classes", i32),
		Doc: "per row: stable log-softmax; loss_rows[n] = −log softmax[label]; dlogits[n,:] = " +
			"(softmax − onehot)/N (dlogits may be null); a label outside [0,classes) gives a NaN " +
			"loss and a NaN dlogits row. 1-D over N.",
	},
	{
		Name: "mse_v1", File: "loss.ptx", Target: "sm_70",
		Params: params("y", ptr, "t", ptr, "loss_rows", ptr, "dy", ptr, "N", i32, "D", i32),
		Doc:    "loss_rows[n] = ½ Σ_d (t−y)²; dy = (y−t)/N (dy may be null). 1-D over N.",
	},
	{
		Name: "reduce_sum_v1", File: "loss.ptx", Target: "sm_70",
		Params: params("a", ptr, "out", ptr, "n", i32, "scale", f32),
		Doc: "out[0] = scale·Σ a: strided per-thread sums, then a fixed shared-memory tree. " +
			"grid.x = 1, block.x = 256.",
	},
	{
		Name: "count_correct_v1", File: "loss.ptx", Target: "sm_70",
		Params: params("logits", ptr, "labels", ptr, "acc", ptr, "N", i32, "classes", i32),
		Doc: "acc[0] += number of rows whose first-largest logit is the label (integer count, " +
			"fixed reduction, one float add). grid.x = 1, block.x = 256.",
	},
	{
		Name: "accumulate_v1", File: "optim.ptx", Target: "sm_70",
		Params: params("dst", ptr, "src", ptr, "n", i32),
		Doc:    "dst += src. 1-D over n.",
	},
	{
		Name: "sgd_momentum_v1", File: "optim.ptx", Target: "sm_70",
		Params: params("p", ptr, "g", ptr, "v", ptr, "n", i32, "lr", f32, "momentum", f32, "weight_decay", f32),
		Doc:    "v = momentum·v + (g + weight_decay·p); p = p − lr·v. 1-D over n.",
	},
	{
		Name: "sgd_nesterov_v1", File: "optim_v2.ptx", Target: "sm_70",
		Params: params("p", ptr, "g", ptr, "v", ptr, "n", i32, "lr", f32, "momentum", f32, "weight_decay", f32),
		Doc: "d = g + weight_decay·p; v = momentum·v + d; p = p − lr·(d + momentum·v) (Nesterov). " +
			"1-D over n.",
	},
	{
		Name: "adam_v1", File: "optim_v2.ptx", Target: "sm_70",
		Params: params("p", ptr, "g", ptr, "m", ptr, "v", ptr, "n", i32, "beta1", f32, "one_minus_beta1", f32,
			"beta2", f32, "one_minus_beta2", f32, "step_size", f32, "bc2_sqrt", f32, "eps", f32, "l2", f32,
			"decay", f32, "decoupled", i32),
		Doc: "Adam/AdamW step: p = p·decay (decoupled) or g = g + l2·p (else, l2 ≠ 0); m = beta1·m + " +
			"one_minus_beta1·g; v = beta2·v + (one_minus_beta2·g)·g; p = p − step_size·m/(√v/bc2_sqrt + eps) " +
			"(div.rn, sqrt.rn; scalars from geom.AdamCoefficients). 1-D over n.",
	},
	{
		Name: "gather_rows_f32_v1", File: "data.ptx", Target: "sm_70",
		Params: params("src", ptr, "idx", ptr, "dst", ptr, "rows", i32, "rowLen", i32),
		Doc:    "dst[r,:] = src[idx[r],:] (float32; the host validates idx). 1-D over rows·rowLen.",
	},
	{
		Name: "gather_rows_i32_v1", File: "data.ptx", Target: "sm_70",
		Params: params("src", ptr, "idx", ptr, "dst", ptr, "rows", i32, "rowLen", i32),
		Doc:    "dst[r,:] = src[idx[r],:] (int32; the host validates idx). 1-D over rows·rowLen.",
	},
	{
		Name: "fill_f32_v1", File: "data.ptx", Target: "sm_70",
		Params: params("p", ptr, "n", i32, "v", f32),
		Doc:    "p[i] = v. 1-D over n.",
	},
}

// PTX returns the embedded PTX text of file (one of Files(), e.g.
// "conv.ptx"). The error wraps fs.ErrNotExist when there is no such file.
func PTX(file string) (string, error) {
	b, err := ptxFS.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("kernels: PTX file %q: %w", file, fs.ErrNotExist)
	}
	return string(b), nil
}

// Files returns the name of every embedded PTX file, sorted.
func Files() []string {
	entries, err := ptxFS.ReadDir(".")
	if err != nil {
		return nil // unreachable: the root of an embed.FS always exists
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// Lookup returns the kernel named name and whether it exists.
func Lookup(name string) (Kernel, bool) {
	for _, k := range All {
		if k.Name == name {
			return k, true
		}
	}
	return Kernel{}, false
}
