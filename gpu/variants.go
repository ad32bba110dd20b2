package gpu

import "strconv"

// The conv variant table: every convolution kernel version with what
// selects it. The launchers (launch_igemm.go), the dispatcher
// (dispatch.go: ConvAlgoFor, ConvKernelFor), the benchmarks and the
// conformance suite all read it; adding a version is a kernelID below, a
// row of convVariants and the kernel's .cu (its PTX and kernels/table_gen.go
// are generated, its doc goes into kernels/docs.go). Tests tie the table
// to the CUDA side: every tile to the source's #defines (kBM, kBN or kBNW,
// kBK), every minimum compute capability to the kernel's PTX target, every
// kernel of kernels.All to a conformance case.

// The convolution variants' kernelIDs follow the plain kernels'.
const (
	kConvFwd kernelID = numPlainKernels + iota
	kConvBwdData
	kConvBwdFilter
	kConvFwdIGemm
	kConvBwdDataIGemm
	kConvBwdFilterIGemm
	kConvBwdDataStrided
	kConvFwdWide
	kConvBwdDataWide
	kConvBwdDataWideStrided
	kConvBwdFilterWide
	kConvFwdTF32
	kConvBwdDataTF32
	kConvBwdFilterTF32
	kConvBwdDataStridedTF32
	kConvFwdBF16
	kConvFwdTF32Pipe
	kConvBwdDataBF16
	kConvBwdFilterBF16
	kConvBwdDataTF32Pipe
	kConvBwdFilterTF32Pipe
	kConvBwdDataPipe
	kConvFwdPipe
	kConvBwdFilterPipe
	numKernels
)

// tileShape is the block tile of an implicit GEMM: M rows × N columns of
// the output, K reduction terms per step (kBM × kBN × kBK in the CUDA
// source). The direct kernels have none (zero).
type tileShape struct{ M, N, K int }

func (t tileShape) String() string {
	if t == (tileShape{}) {
		return "none"
	}
	return strconv.Itoa(t.M) + "×" + strconv.Itoa(t.N) + "×" + strconv.Itoa(t.K)
}

// Tile shape of the implicit-GEMM kernels (kBM, kBN, kBK, kThreads in
// igemm.cuh; kBNW in conv_igemm_wide.cu). TestConvVariantTiles checks them
// against the CUDA sources.
const (
	igemmBM      = 128
	igemmBN      = 64
	igemmBK      = 8
	igemmThreads = 256
	// igemmBNWide is the N side of the wide (v6) tiles.
	igemmBNWide = 128
)

var (
	tile128x64  = tileShape{igemmBM, igemmBN, igemmBK}
	tile128x128 = tileShape{igemmBM, igemmBNWide, igemmBK}
)

// convVariant is one convolution kernel version.
type convVariant struct {
	id   kernelID
	name string // the entry point in kernels/*.cu
	pass ConvPass
	algo ConvAlgo
	tile tileShape // zero for the direct kernels
	// wide marks the 128×128 tiles, which the FP32 implicit GEMM runs
	// where their modelled cost is less than the 128×64 tiles' (cost.go):
	// the same bits.
	wide bool
	// strided marks the phase-decomposed bwd-data kernels, one dense GEMM
	// per stride phase (grid.z = sh·sw), which the dispatcher runs for a
	// stride > 1; they are correct for every stride.
	strided   bool
	precision Precision
	minCC     int // minimum compute capability, 10·major + minor
}

// convVariants lists every convolution kernel version. Each row: id, name,
// pass, algo, tile, wide, strided, precision, minCC.
var convVariants = []convVariant{
	{kConvFwd, "conv2d_fwd_v1_direct", ConvFwd, ConvDirect, tileShape{}, false, false, FP32, 70},
	{kConvBwdData, "conv2d_bwd_data_v1_direct", ConvBwdData, ConvDirect, tileShape{}, false, false, FP32, 70},
	{kConvBwdFilter, "conv2d_bwd_filter_v1_direct", ConvBwdFilter, ConvDirect, tileShape{}, false, false, FP32, 70},
	{kConvFwdIGemm, "conv2d_fwd_v2_igemm", ConvFwd, ConvIGemm, tile128x64, false, false, FP32, 70},
	{kConvBwdDataIGemm, "conv2d_bwd_data_v2_igemm", ConvBwdData, ConvIGemm, tile128x64, false, false, FP32, 70},
	{kConvBwdFilterIGemm, "conv2d_bwd_filter_v2_igemm", ConvBwdFilter, ConvIGemm, tile128x64, false, false, FP32, 70},
	{kConvBwdDataStrided, "conv2d_bwd_data_v4_igemm_strided", ConvBwdData, ConvIGemm, tile128x64, false, true, FP32, 70},
	{kConvFwdWide, "conv2d_fwd_v6_igemm_wide", ConvFwd, ConvIGemm, tile128x128, true, false, FP32, 70},
	{kConvBwdDataWide, "conv2d_bwd_data_v6_igemm_wide", ConvBwdData, ConvIGemm, tile128x128, true, false, FP32, 70},
	{kConvBwdDataWideStrided, "conv2d_bwd_data_v6_igemm_wide_strided", ConvBwdData, ConvIGemm, tile128x128, true, true, FP32, 70},
	{kConvBwdFilterWide, "conv2d_bwd_filter_v6_igemm_wide", ConvBwdFilter, ConvIGemm, tile128x128, true, false, FP32, 70},
	{kConvFwdTF32, "conv2d_fwd_v3_igemm_tf32", ConvFwd, ConvIGemmTF32, tile128x64, false, false, TF32, 80},
	{kConvBwdDataTF32, "conv2d_bwd_data_v3_igemm_tf32", ConvBwdData, ConvIGemmTF32, tile128x64, false, false, TF32, 80},
	{kConvBwdFilterTF32, "conv2d_bwd_filter_v3_igemm_tf32", ConvBwdFilter, ConvIGemmTF32, tile128x64, false, false, TF32, 80},
	{kConvBwdDataStridedTF32, "conv2d_bwd_data_v5_igemm_strided_tf32", ConvBwdData, ConvIGemmTF32, tile128x64, false, true, TF32, 80},
	{kConvFwdBF16, "conv2d_fwd_v7_igemm_bf16", ConvFwd, ConvIGemmBF16, tile128x128x32, false, false, BF16, 80},
	{kConvFwdTF32Pipe, "conv2d_fwd_v8_igemm_tf32", ConvFwd, ConvIGemmTF32, tile128x128x16, false, false, TF32, 80},
	{kConvBwdDataBF16, "conv2d_bwd_data_v9_igemm_bf16", ConvBwdData, ConvIGemmBF16, tile128x128x32, false, false, BF16, 80},
	{kConvBwdFilterBF16, "conv2d_bwd_filter_v10_igemm_bf16", ConvBwdFilter, ConvIGemmBF16, tile128x128x32, false, false, BF16, 80},
	{kConvBwdDataTF32Pipe, "conv2d_bwd_data_v9_igemm_tf32", ConvBwdData, ConvIGemmTF32, tile128x128x16, false, false, TF32, 80},
	{kConvBwdFilterTF32Pipe, "conv2d_bwd_filter_v10_igemm_tf32", ConvBwdFilter, ConvIGemmTF32, tile128x128x16, false, false, TF32, 80},
	{kConvBwdDataPipe, "conv2d_bwd_data_v11_igemm_pipe", ConvBwdData, ConvIGemm, tile128x128x16, false, false, FP32, 80},
	{kConvFwdPipe, "conv2d_fwd_v12_igemm_pipe", ConvFwd, ConvIGemm, tile128x128x16, false, false, FP32, 80},
	{kConvBwdFilterPipe, "conv2d_bwd_filter_v13_igemm_pipe", ConvBwdFilter, ConvIGemm, tile128x128x16, false, false, FP32, 80},
}

// variantIndex is the index into convVariants of each kernelID, −1 for
// the plain kernels.
var variantIndex = indexVariants()

func indexVariants() [numKernels]int {
	var idx [numKernels]int
	for i := range idx {
		idx[i] = -1
	}
	for i, v := range convVariants {
		if v.id >= 0 && v.id < numKernels {
			idx[v.id] = i
		}
	}
	return idx
}

// variantOf returns the variant of kernel id and whether it is one.
func variantOf(id kernelID) (convVariant, bool) {
	if id < 0 || id >= numKernels || variantIndex[id] < 0 {
		return convVariant{}, false
	}
	return convVariants[variantIndex[id]], true
}

// convVariantFor returns the kernel of pass p of algorithm a with the
// tile width (wide) and stride handling (strided) asked for; where a has
// no such variant it drops wide, then strided, then both: the 128×64
// tiles, then the unphased kernel, then the basic one.
func convVariantFor(a ConvAlgo, p ConvPass, wide, strided bool) kernelID {
	for _, want := range [...][2]bool{{wide, strided}, {false, strided}, {wide, false}, {false, false}} {
		for i := range convVariants {
			v := &convVariants[i]
			if v.algo == a && v.pass == p && v.wide == want[0] && v.strided == want[1] {
				return v.id
			}
		}
	}
	return -1
}

// variantsOf lists the variants of pass p of algorithm a, in table order:
// the candidates a conformance suite or a benchmark runs.
func variantsOf(a ConvAlgo, p ConvPass) []convVariant {
	var out []convVariant
	for _, v := range convVariants {
		if v.algo == a && v.pass == p {
			out = append(out, v)
		}
	}
	return out
}

// basicKernel is the basic kernel (128×64 tiles, unphased) of pass p of
// algorithm a, −1 where a has no kernel for p.
func basicKernel(a ConvAlgo, p ConvPass) kernelID { return convVariantFor(a, p, false, false) }

// precisionMinCC is the minimum compute capability of the variants of
// precision p (0 when it has none).
func precisionMinCC(p Precision) int {
	cc := 0
	for _, v := range convVariants {
		if v.precision == p {
			cc = max(cc, v.minCC)
		}
	}
	return cc
}
