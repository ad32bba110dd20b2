package gpu

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/kernels"
)

// kernelID indexes the kernels this runtime launches.
type kernelID int

const (
	kConvFwd kernelID = iota
	kConvBwdData
	kConvBwdFilter
	kConvBwdBias
	kReLUFwd
	kReLUBwd
	kMaxPoolFwd
	kMaxPoolBwd
	kDenseFwd
	kDenseBwdData
	kDenseBwdWeight
	kReduceCols
	kSoftmaxCE
	kMSE
	kReduceSum
	kCountCorrect
	kAccumulate
	kSGDMomentum
	kGatherF32
	kGatherI32
	kFill
	kConvFwdIGemm
	kConvBwdDataIGemm
	kConvBwdFilterIGemm
	kConvBwdFilterReduce
	kConvFwdTF32
	kConvBwdDataTF32
	kConvBwdFilterTF32
	kConvBwdDataStrided
	kConvBwdDataStridedTF32
	kConvFwdWide
	kConvBwdDataWide
	kConvBwdDataWideStrided
	kConvBwdFilterWide
	kSGDNesterov // launch_optim.go
	kAdam        // launch_optim.go
	numKernels
)

// kernelSpec is what a launcher passes: the kernel's name and one letter
// per parameter, in order: p a device pointer, i an int32, f a float32.
type kernelSpec struct {
	name string
	sig  string
}

// convSig is the 13 int32 geometry parameters N,C,H,W,K,R,S,P,Q,sh,sw,ph,pw.
const convSig = "iiiiiiiiiiiii"

// poolSig is the 10 int32 parameters N,C,H,W,R,S,P,Q,sh,sw.
const poolSig = "iiiiiiiiii"

var kernelSpecs = [numKernels]kernelSpec{
	kConvFwd:        {"conv2d_fwd_v1_direct", "pppp" + convSig},
	kConvBwdData:    {"conv2d_bwd_data_v1_direct", "ppp" + convSig},
	kConvBwdFilter:  {"conv2d_bwd_filter_v1_direct", "ppp" + convSig},
	kConvBwdBias:    {"conv2d_bwd_bias_v1", "ppiii"},
	kReLUFwd:        {"relu_fwd_v1", "ppi"},
	kReLUBwd:        {"relu_bwd_v1", "pppi"},
	kMaxPoolFwd:     {"maxpool_fwd_v1", "ppp" + poolSig},
	kMaxPoolBwd:     {"maxpool_bwd_v1", "ppp" + poolSig},
	kDenseFwd:       {"dense_fwd_v1", "ppppiii"},
	kDenseBwdData:   {"dense_bwd_data_v1", "pppiii"},
	kDenseBwdWeight: {"dense_bwd_weight_v1", "pppiii"},
	kReduceCols:     {"reduce_cols_v1", "ppii"},
	kSoftmaxCE:      {"softmax_ce_v1", "ppppii"},
	kMSE:            {"mse_v1", "ppppii"},
	kReduceSum:      {"reduce_sum_v1", "ppif"},
	kCountCorrect:   {"count_correct_v1", "pppii"},
	kAccumulate:     {"accumulate_v1", "ppi"},
	kSGDMomentum:    {"sgd_momentum_v1", "pppifff"},
	kGatherF32:      {"gather_rows_f32_v1", "pppii"},
	kGatherI32:      {"gather_rows_i32_v1", "pppii"},
	kFill:           {"fill_f32_v1", "pif"},

	kConvFwdIGemm:        {"conv2d_fwd_v2_igemm", "pppp" + convSig + "i"},
	kConvBwdDataIGemm:    {"conv2d_bwd_data_v2_igemm", "ppp" + convSig},
	kConvBwdFilterIGemm:  {"conv2d_bwd_filter_v2_igemm", "ppp" + convSig + "i"},
	kConvBwdFilterReduce: {"conv2d_bwd_filter_v2_reduce", "ppii"},
	kConvFwdTF32:         {"conv2d_fwd_v3_igemm_tf32", "pppp" + convSig + "i"},
	kConvBwdDataTF32:     {"conv2d_bwd_data_v3_igemm_tf32", "ppp" + convSig},
	kConvBwdFilterTF32:   {"conv2d_bwd_filter_v3_igemm_tf32", "ppp" + convSig + "i"},

	kConvBwdDataStrided:     {"conv2d_bwd_data_v4_igemm_strided", "ppp" + convSig},
	kConvBwdDataStridedTF32: {"conv2d_bwd_data_v5_igemm_strided_tf32", "ppp" + convSig},
	kConvFwdWide:            {"conv2d_fwd_v6_igemm_wide", "pppp" + convSig + "i"},
	kConvBwdDataWide:        {"conv2d_bwd_data_v6_igemm_wide", "ppp" + convSig},
	kConvBwdDataWideStrided: {"conv2d_bwd_data_v6_igemm_wide_strided", "ppp" + convSig},
	kConvBwdFilterWide:      {"conv2d_bwd_filter_v6_igemm_wide", "ppp" + convSig + "i"},

	kSGDNesterov: {"sgd_nesterov_v1", "pppifff"},
	kAdam:        {"adam_v1", "ppppifffffffffi"},
}

// maxArgs bounds the parameter count of every kernel.
const maxArgs = 24

// check compares the launcher's argument list with the parameters declared
// in package kernels.
func (s kernelSpec) check() error {
	k, ok := kernels.Lookup(s.name)
	if !ok {
		return fmt.Errorf("gpu: kernel %s is not listed in package kernels", s.name)
	}
	if len(k.Params) != len(s.sig) || len(s.sig) > maxArgs {
		return fmt.Errorf("gpu: kernel %s declares %d parameters, its launcher passes %d", s.name, len(k.Params), len(s.sig))
	}
	for i, p := range k.Params {
		want := map[byte]string{'p': "ptr", 'i': "i32", 'f': "f32"}[s.sig[i]]
		if p.Type != want {
			return fmt.Errorf("gpu: kernel %s parameter %d (%s) is %s, its launcher passes %s", s.name, i, p.Name, p.Type, want)
		}
	}
	return nil
}

// blockSize is the block of every 1-D and block-reduction launch; the
// block reductions require exactly this many threads.
const blockSize = kernels.BlockSize

// maxElems bounds element counts so that the kernels' int32 index math
// cannot overflow.
const maxElems = math.MaxInt32

// ceilDiv is ⌈a/b⌉ for a ≥ 0, b > 0.
func ceilDiv(a, b int) int { return (a + b - 1) / b }

// linear is the launch shape of a 1-D kernel over total elements:
// grid.x = ⌈total/256⌉, block.x = 256.
func linear(total int) (grid, block Dim3) {
	return Dim3{ceilDiv(total, blockSize), 1, 1}, Dim3{blockSize, 1, 1}
}

// perBlock is the launch shape of a kernel with one 256-thread block per
// output element (the block reductions).
func perBlock(blocks int) (grid, block Dim3) {
	return Dim3{blocks, 1, 1}, Dim3{blockSize, 1, 1}
}

// Argument packing: every kernel argument travels as one 8-byte value; the
// driver reads as many low-order bytes as the PTX parameter has.

// argPtr is b's device address, or 0 (a null pointer) for a nil b where a
// kernel accepts one.
func argPtr(b *Buffer) uint64 {
	if b == nil {
		return 0
	}
	return uint64(b.ptr)
}

// argI32 sign-extends v to 64 bits; v has been checked to fit in int32.
func argI32(v int) uint64 { return uint64(int64(int32(v))) }

func argF32(v float32) uint64 { return uint64(math.Float32bits(v)) }

// launch stages args and launches kernel id; the caller holds d.mu and has
// validated every size.
func (d *Device) launch(id kernelID, grid, block Dim3, shared int, args ...uint64) error {
	if d.closed {
		return fmt.Errorf("device %w", ErrClosed)
	}
	if len(args) != len(kernelSpecs[id].sig) {
		return fmt.Errorf("launcher passes %d arguments, kernel has %d parameters", len(args), len(kernelSpecs[id].sig))
	}
	n := copy(d.args[:], args)
	if err := d.drv.Launch(d.fns[id], grid, block, shared, d.args[:n]); err != nil {
		return err
	}
	d.launches++
	return nil
}

// launchErr wraps err with the kernel's name and the launch's shape.
func launchErr(id kernelID, shape any, err error) error {
	return fmt.Errorf("gpu: launch %s (%v): %w", kernelSpecs[id].name, shape, err)
}

// Shapes named in launch errors.
type (
	elemShape  struct{ n int }
	denseShape struct{ n, in, out int }
	rowShape   struct{ rows, cols int }
)

func (s elemShape) String() string  { return fmt.Sprintf("n=%d", s.n) }
func (s denseShape) String() string { return fmt.Sprintf("N=%d,In=%d,Out=%d", s.n, s.in, s.out) }
func (s rowShape) String() string   { return fmt.Sprintf("rows=%d,cols=%d", s.rows, s.cols) }

// need checks that b is a live buffer of this device with type t and
// exactly n elements.
func (d *Device) need(name string, b *Buffer, t DType, n int) error {
	if b == nil {
		return fmt.Errorf("%s is nil: %w", name, geom.ErrGeometry)
	}
	if b.d != d {
		return fmt.Errorf("%s is a buffer of another device", name)
	}
	if err := b.live(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if b.dtype != t {
		return fmt.Errorf("%s holds %s, want %s: %w", name, b.dtype, t, geom.ErrGeometry)
	}
	if b.n != n {
		return fmt.Errorf("%s has %d elements, want %d: %w", name, b.n, n, geom.ErrGeometry)
	}
	return nil
}

// needOpt is need for optional buffers: nil is allowed.
func (d *Device) needOpt(name string, b *Buffer, t DType, n int) error {
	if b == nil {
		return nil
	}
	return d.need(name, b, t, n)
}

// needAtLeast is need for scalar outputs: b must hold at least n elements.
func (d *Device) needAtLeast(name string, b *Buffer, t DType, n int) error {
	if b != nil && b.n > n {
		return d.need(name, b, t, b.n)
	}
	return d.need(name, b, t, n)
}

// dims checks that every size is ≥ 1 and that the products of the given
// groups stay below 2³¹.
func dims(sizes []int, groups ...[]int) error {
	for _, s := range sizes {
		if s < 1 {
			return fmt.Errorf("sizes must be ≥ 1: %w", geom.ErrGeometry)
		}
	}
	for _, g := range groups {
		p := 1
		for _, s := range g {
			if s < 1 || p > maxElems/s {
				return fmt.Errorf("a tensor has 2³¹ elements or more: %w", geom.ErrGeometry)
			}
			p *= s
		}
	}
	return nil
}

func lenOf(b *Buffer) int {
	if b == nil {
		return 0
	}
	return b.n
}
