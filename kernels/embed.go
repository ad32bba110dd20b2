// Package kernels holds the project's GPU kernels: the CUDA C sources
// (*.cu), the PTX that scripts/gen-ptx.sh generates from them with clang-19
// (*.ptx, checked in and embedded here), and the table of every entry point
// with its parameter list (All, generated from the .cu sources into
// table_gen.go by kernels/internal/gentable, which scripts/gen-ptx.sh runs;
// the docs are hand-written in docs.go).
//
// The PTX targets sm_70 (PTX ISA 6.0), so the driver JIT-compiles it for
// Volta and every newer GPU, except the files whose source asks for sm_80
// ("// gen-ptx: target sm_80": the TF32 and BF16 tensor-core kernels, the
// cp.async pipelines and the kernels that write the bfloat16 and TF32
// copies they read; PTX ISA 7.0), which
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
//
// Adding a kernel version takes three hand-edited files:
//
//  1. the kernel in a .cu file (a new one, or beside its family), as
//     extern "C" __global__ void name_vN_…(…), listed in the file's header
//     comment; then scripts/gen-ptx.sh writes its .ptx and table_gen.go;
//  2. its Doc in docs.go;
//  3. in package gpu, a convolution version is a kernelID and a row of the
//     conv variant table (gpu/variants.go: pass, algorithm, tile, wide,
//     stride handling, precision, minimum compute capability), which the
//     launchers, the dispatcher and the conformance suite read; any other
//     kernel is a kernelID and name in gpu/kernel_table.go, its launcher
//     and its cases in the conformance suite and in TestLaunchers.
//
// Forgetting a step fails a test: a stale table (TestTableUpToDate, and
// scripts/gen-ptx.sh --check in CI), a kernel without a Doc or a Doc
// without a kernel (TestDocs), a kernel without a kernelID, a conformance
// case or a launcher test (gpu's TestKernelTable, TestConformanceCoverage,
// TestLaunchers), a tile that differs from the source's #defines or a
// minimum compute capability that differs from the PTX target
// (TestConvVariantTable), arguments that do not match the parameters (every
// launch checks them against the table).
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

// Param is one kernel parameter: its name and C type in the .cu source
// and its kind (TypePtr, TypeI32 or TypeF32).
type Param struct {
	Name  string
	Type  string
	CType string // e.g. "const float*", "int", "float"
}

// Kernel describes one entry point: its name, the embedded PTX file that
// holds it, its parameters in order, the minimum target it needs and what it
// computes and how it is launched.
type Kernel struct {
	Name   string
	File   string // e.g. "conv.ptx"
	Source string // e.g. "conv.cu"
	Params []Param
	// Target is the PTX target of the kernel's file: "sm_70" (loads on
	// every supported GPU) or "sm_80" (tensor-core kernels; loads on
	// compute capability 8.0 and newer only).
	Target string
	Doc    string
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

// Define returns the value of the integer #define constant name (kBlock,
// kBM, kBN, kBK, kThreads, …) as source (e.g. "conv_igemm.cu") sees it,
// from the source or a local header it includes, and whether it exists.
// Go code that must agree with the CUDA side (tile sizes, block sizes) is
// tested against these values.
func Define(source, name string) (int, bool) {
	v, ok := defines[source][name]
	return v, ok
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
