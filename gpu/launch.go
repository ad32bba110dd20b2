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

// conv2DForward launches conv2d_fwd_v1_direct, 1-D over N·K·P·Q (see
// Conv2DForward).
func (d *Device) conv2DForward(g geom.ConvGeom, x, w, b, y *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, g.XLen()); err != nil {
		return err
	}
	if err := d.need("w", w, Float32, g.WLen()); err != nil {
		return err
	}
	if err := d.needOpt("b", b, Float32, g.K); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, g.YLen()); err != nil {
		return err
	}
	grid, block := linear(g.YLen())
	return d.launch(kConvFwd, grid, block, 0, argPtr(x), argPtr(w), argPtr(b), argPtr(y),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.K), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(g.PadH), argI32(g.PadW))
}

// conv2DBackwardData launches conv2d_bwd_data_v1_direct, 1-D over
// N·C·H·W (see Conv2DBackwardData).
func (d *Device) conv2DBackwardData(g geom.ConvGeom, dy, w, dx *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("w", w, Float32, g.WLen()); err != nil {
		return err
	}
	if err := d.need("dx", dx, Float32, g.XLen()); err != nil {
		return err
	}
	grid, block := linear(g.XLen())
	return d.launch(kConvBwdData, grid, block, 0, argPtr(dy), argPtr(w), argPtr(dx),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.K), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(g.PadH), argI32(g.PadW))
}

// conv2DBackwardFilter launches conv2d_bwd_filter_v1_direct, one
// 256-thread block per weight: fixed strided partial sums and a fixed
// tree (see Conv2DBackwardFilter).
func (d *Device) conv2DBackwardFilter(g geom.ConvGeom, x, dy, dw *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, g.XLen()); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("dw", dw, Float32, g.WLen()); err != nil {
		return err
	}
	grid, block := perBlock(g.WLen())
	return d.launch(kConvBwdFilter, grid, block, 0, argPtr(x), argPtr(dy), argPtr(dw),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.K), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(g.PadH), argI32(g.PadW))
}

// Conv2DBackwardBias overwrites db with ∂E/∂b[k] = Σ_n Σ_p Σ_q dy[n,k,p,q].
// dy is (N,K,P,Q), db is (K). Kernel conv2d_bwd_bias_v1, grid K.
func (d *Device) Conv2DBackwardBias(g geom.ConvGeom, dy, db *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.conv2DBackwardBias(g, dy, db); err != nil {
		return launchErr(kConvBwdBias, g, err)
	}
	return nil
}

func (d *Device) conv2DBackwardBias(g geom.ConvGeom, dy, db *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("db", db, Float32, g.K); err != nil {
		return err
	}
	grid, block := perBlock(g.K)
	return d.launch(kConvBwdBias, grid, block, 0, argPtr(dy), argPtr(db),
		argI32(g.N), argI32(g.K), argI32(g.P()*g.Q()))
}

// ReLUForward computes y = x > 0 ? x : 0 elementwise (NaN propagates); x
// and y have equal lengths and may be the same buffer. Kernel relu_fwd_v1.
func (d *Device) ReLUForward(x, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reluForward(x, y); err != nil {
		return launchErr(kReLUFwd, elemShape{lenOf(x)}, err)
	}
	return nil
}

func (d *Device) reluForward(x, y *Buffer) error {
	if x == nil {
		return fmt.Errorf("x is nil: %w", geom.ErrGeometry)
	}
	n := x.n
	if err := d.need("x", x, Float32, n); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, n); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kReLUFwd, grid, block, 0, argPtr(x), argPtr(y), argI32(n))
}

// ReLUBackward computes dx = x > 0 ? dy : 0 elementwise; x, dy, dx have
// equal lengths. Kernel relu_bwd_v1.
func (d *Device) ReLUBackward(x, dy, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reluBackward(x, dy, dx); err != nil {
		return launchErr(kReLUBwd, elemShape{lenOf(x)}, err)
	}
	return nil
}

func (d *Device) reluBackward(x, dy, dx *Buffer) error {
	if x == nil {
		return fmt.Errorf("x is nil: %w", geom.ErrGeometry)
	}
	n := x.n
	if err := d.need("x", x, Float32, n); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, n); err != nil {
		return err
	}
	if err := d.need("dx", dx, Float32, n); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kReLUBwd, grid, block, 0, argPtr(x), argPtr(dy), argPtr(dx), argI32(n))
}

// MaxPoolForward writes the maximum of each R×S window (stride sh×sw, no
// padding) to y and the flat index into x of its first maximum, in
// row-major window order, to argmax; a NaN input wins. x is (N,C,H,W), y
// (float32) and argmax (int32) are (N,C,P,Q). Kernel maxpool_fwd_v1, 1-D
// over N·C·P·Q.
func (d *Device) MaxPoolForward(g geom.PoolGeom, x, y, argmax *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.maxPoolForward(g, x, y, argmax); err != nil {
		return launchErr(kMaxPoolFwd, g, err)
	}
	return nil
}

func (d *Device) maxPoolForward(g geom.PoolGeom, x, y, argmax *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, g.XLen()); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("argmax", argmax, Int32, g.YLen()); err != nil {
		return err
	}
	grid, block := linear(g.YLen())
	return d.launch(kMaxPoolFwd, grid, block, 0, argPtr(x), argPtr(y), argPtr(argmax),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW))
}

// MaxPoolBackward overwrites dx (N,C,H,W) with dy (N,C,P,Q) routed to the
// positions argmax (int32, (N,C,P,Q)) names, summing where windows overlap:
//
//	dx[i] = Σ_{(p,q) : argmax[n,c,p,q] = i} dy[n,c,p,q]
//
// argmax must come from MaxPoolForward with the same geometry (each entry
// indexes its own window). Kernel maxpool_bwd_v1, 1-D over N·C·H·W.
func (d *Device) MaxPoolBackward(g geom.PoolGeom, dy, argmax, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.maxPoolBackward(g, dy, argmax, dx); err != nil {
		return launchErr(kMaxPoolBwd, g, err)
	}
	return nil
}

func (d *Device) maxPoolBackward(g geom.PoolGeom, dy, argmax, dx *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("argmax", argmax, Int32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("dx", dx, Float32, g.XLen()); err != nil {
		return err
	}
	grid, block := linear(g.XLen())
	return d.launch(kMaxPoolBwd, grid, block, 0, argPtr(dy), argPtr(argmax), argPtr(dx),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW))
}

// DenseForward computes y = x·wᵀ + b:
//
//	y[n,o] = b[o] + Σ_i x[n,i] · w[o,i]
//
// x is (N,In), w is (Out,In), b is (Out) or nil, y is (N,Out). Kernel
// dense_fwd_v1, 1-D over N·Out.
func (d *Device) DenseForward(n, in, out int, x, w, b, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.denseForward(n, in, out, x, w, b, y); err != nil {
		return launchErr(kDenseFwd, denseShape{n, in, out}, err)
	}
	return nil
}

func (d *Device) denseForward(n, in, out int, x, w, b, y *Buffer) error {
	if err := dims([]int{n, in, out}, []int{n, in}, []int{out, in}, []int{n, out}); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, n*in); err != nil {
		return err
	}
	if err := d.need("w", w, Float32, out*in); err != nil {
		return err
	}
	if err := d.needOpt("b", b, Float32, out); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, n*out); err != nil {
		return err
	}
	grid, block := linear(n * out)
	return d.launch(kDenseFwd, grid, block, 0, argPtr(x), argPtr(w), argPtr(b), argPtr(y),
		argI32(n), argI32(in), argI32(out))
}

// DenseBackwardData overwrites dx (N,In) with dy·w: dx[n,i] = Σ_o dy[n,o] ·
// w[o,i]; dy is (N,Out), w is (Out,In). Kernel dense_bwd_data_v1, 1-D over
// N·In.
func (d *Device) DenseBackwardData(n, in, out int, dy, w, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.denseBackwardData(n, in, out, dy, w, dx); err != nil {
		return launchErr(kDenseBwdData, denseShape{n, in, out}, err)
	}
	return nil
}

func (d *Device) denseBackwardData(n, in, out int, dy, w, dx *Buffer) error {
	if err := dims([]int{n, in, out}, []int{n, in}, []int{out, in}, []int{n, out}); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, n*out); err != nil {
		return err
	}
	if err := d.need("w", w, Float32, out*in); err != nil {
		return err
	}
	if err := d.need("dx", dx, Float32, n*in); err != nil {
		return err
	}
	grid, block := linear(n * in)
	return d.launch(kDenseBwdData, grid, block, 0, argPtr(dy), argPtr(w), argPtr(dx),
		argI32(n), argI32(in), argI32(out))
}

// DenseBackwardWeight overwrites dw (Out,In) with dyᵀ·x: dw[o,i] = Σ_n
// dy[n,o] · x[n,i]; x is (N,In), dy is (N,Out). Kernel dense_bwd_weight_v1,
// 1-D over Out·In.
func (d *Device) DenseBackwardWeight(n, in, out int, x, dy, dw *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.denseBackwardWeight(n, in, out, x, dy, dw); err != nil {
		return launchErr(kDenseBwdWeight, denseShape{n, in, out}, err)
	}
	return nil
}

func (d *Device) denseBackwardWeight(n, in, out int, x, dy, dw *Buffer) error {
	if err := dims([]int{n, in, out}, []int{n, in}, []int{out, in}, []int{n, out}); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, n*in); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, n*out); err != nil {
		return err
	}
	if err := d.need("dw", dw, Float32, out*in); err != nil {
		return err
	}
	grid, block := linear(out * in)
	return d.launch(kDenseBwdWeight, grid, block, 0, argPtr(x), argPtr(dy), argPtr(dw),
		argI32(n), argI32(in), argI32(out))
}

// ReduceCols overwrites out (cols) with the column sums of a (rows,cols):
// out[j] = Σ_i a[i,j] (the dense bias gradient). Kernel reduce_cols_v1, 1-D
// over cols.
func (d *Device) ReduceCols(rows, cols int, a, out *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reduceCols(rows, cols, a, out); err != nil {
		return launchErr(kReduceCols, rowShape{rows, cols}, err)
	}
	return nil
}

func (d *Device) reduceCols(rows, cols int, a, out *Buffer) error {
	if err := dims([]int{rows, cols}, []int{rows, cols}); err != nil {
		return err
	}
	if err := d.need("a", a, Float32, rows*cols); err != nil {
		return err
	}
	if err := d.need("out", out, Float32, cols); err != nil {
		return err
	}
	grid, block := linear(cols)
	return d.launch(kReduceCols, grid, block, 0, argPtr(a), argPtr(out), argI32(rows), argI32(cols))
}

// SoftmaxCrossEntropy computes, per row of logits (N,Classes) with int32
// labels (N), the loss and its gradient for the batch mean:
//
//	lossRows[n]  = −log softmax(logits[n,:])[labels[n]]
//	dlogits[n,c] = (softmax(logits[n,:])[c] − [c = labels[n]]) / N
//
// lossRows is (N), dlogits is (N,Classes) or nil (loss only). A kernel cannot return an error:
// a label outside [0, Classes) makes that row's loss and gradient NaN.
// Kernel softmax_ce_v1, 1-D over N.
func (d *Device) SoftmaxCrossEntropy(n, classes int, logits, labels, lossRows, dlogits *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.softmaxCE(n, classes, logits, labels, lossRows, dlogits); err != nil {
		return launchErr(kSoftmaxCE, rowShape{n, classes}, err)
	}
	return nil
}

func (d *Device) softmaxCE(n, classes int, logits, labels, lossRows, dlogits *Buffer) error {
	if err := dims([]int{n, classes}, []int{n, classes}); err != nil {
		return err
	}
	if err := d.need("logits", logits, Float32, n*classes); err != nil {
		return err
	}
	if err := d.need("labels", labels, Int32, n); err != nil {
		return err
	}
	if err := d.need("lossRows", lossRows, Float32, n); err != nil {
		return err
	}
	if err := d.needOpt("dlogits", dlogits, Float32, n*classes); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kSoftmaxCE, grid, block, 0, argPtr(logits), argPtr(labels), argPtr(lossRows), argPtr(dlogits),
		argI32(n), argI32(classes))
}

// MSE computes, for y and t (N,Dim), lossRows[n] = ½ Σ_d (t[n,d] − y[n,d])²
// and dy = (y − t)/N; dy may be nil (loss only). Kernel mse_v1, 1-D over N.
func (d *Device) MSE(n, dim int, y, t, lossRows, dy *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.mse(n, dim, y, t, lossRows, dy); err != nil {
		return launchErr(kMSE, rowShape{n, dim}, err)
	}
	return nil
}

func (d *Device) mse(n, dim int, y, t, lossRows, dy *Buffer) error {
	if err := dims([]int{n, dim}, []int{n, dim}); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, n*dim); err != nil {
		return err
	}
	if err := d.need("t", t, Float32, n*dim); err != nil {
		return err
	}
	if err := d.need("lossRows", lossRows, Float32, n); err != nil {
		return err
	}
	if err := d.needOpt("dy", dy, Float32, n*dim); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kMSE, grid, block, 0, argPtr(y), argPtr(t), argPtr(lossRows), argPtr(dy),
		argI32(n), argI32(dim))
}

// ReduceSum writes out[0] = scale · Σ_i a[i] over all of a, in a fixed
// order (256 strided partial sums, then a fixed tree). out must hold at
// least one element; only out[0] is written. Kernel reduce_sum_v1, one
// block.
func (d *Device) ReduceSum(a, out *Buffer, scale float32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reduceSum(a, out, scale); err != nil {
		return launchErr(kReduceSum, elemShape{lenOf(a)}, err)
	}
	return nil
}

func (d *Device) reduceSum(a, out *Buffer, scale float32) error {
	if a == nil {
		return fmt.Errorf("a is nil: %w", geom.ErrGeometry)
	}
	if err := d.need("a", a, Float32, a.n); err != nil {
		return err
	}
	if err := d.needAtLeast("out", out, Float32, 1); err != nil {
		return err
	}
	grid, block := perBlock(1)
	return d.launch(kReduceSum, grid, block, 0, argPtr(a), argPtr(out), argI32(a.n), argF32(scale))
}

// CountCorrect adds to acc[0] the number of rows of logits (N,Classes)
// whose first largest logit is at the label (int32, (N)). acc must hold at
// least one element. Kernel count_correct_v1, one block.
func (d *Device) CountCorrect(n, classes int, logits, labels, acc *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.countCorrect(n, classes, logits, labels, acc); err != nil {
		return launchErr(kCountCorrect, rowShape{n, classes}, err)
	}
	return nil
}

func (d *Device) countCorrect(n, classes int, logits, labels, acc *Buffer) error {
	if err := dims([]int{n, classes}, []int{n, classes}); err != nil {
		return err
	}
	if err := d.need("logits", logits, Float32, n*classes); err != nil {
		return err
	}
	if err := d.need("labels", labels, Int32, n); err != nil {
		return err
	}
	if err := d.needAtLeast("acc", acc, Float32, 1); err != nil {
		return err
	}
	grid, block := perBlock(1)
	return d.launch(kCountCorrect, grid, block, 0, argPtr(logits), argPtr(labels), argPtr(acc),
		argI32(n), argI32(classes))
}

// Accumulate adds src to dst elementwise: dst += src (equal lengths).
// Kernel accumulate_v1.
func (d *Device) Accumulate(dst, src *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.accumulate(dst, src); err != nil {
		return launchErr(kAccumulate, elemShape{lenOf(dst)}, err)
	}
	return nil
}

func (d *Device) accumulate(dst, src *Buffer) error {
	if dst == nil {
		return fmt.Errorf("dst is nil: %w", geom.ErrGeometry)
	}
	n := dst.n
	if err := d.need("dst", dst, Float32, n); err != nil {
		return err
	}
	if err := d.need("src", src, Float32, n); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kAccumulate, grid, block, 0, argPtr(dst), argPtr(src), argI32(n))
}

// SGDMomentum updates p and v in place, elementwise (PyTorch's form):
//
//	v ← momentum·v + (g + weightDecay·p);  p ← p − lr·v
//
// p, g, v have equal lengths. Kernel sgd_momentum_v1.
func (d *Device) SGDMomentum(p, g, v *Buffer, lr, momentum, weightDecay float32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.sgdMomentum(p, g, v, lr, momentum, weightDecay); err != nil {
		return launchErr(kSGDMomentum, elemShape{lenOf(p)}, err)
	}
	return nil
}

func (d *Device) sgdMomentum(p, g, v *Buffer, lr, momentum, weightDecay float32) error {
	if p == nil {
		return fmt.Errorf("p is nil: %w", geom.ErrGeometry)
	}
	n := p.n
	if err := d.need("p", p, Float32, n); err != nil {
		return err
	}
	if err := d.need("g", g, Float32, n); err != nil {
		return err
	}
	if err := d.need("v", v, Float32, n); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kSGDMomentum, grid, block, 0, argPtr(p), argPtr(g), argPtr(v), argI32(n),
		argF32(lr), argF32(momentum), argF32(weightDecay))
}

// GatherRows copies rows: dst[r,:] = src[idx[r],:] for r < idx.Len(), rows
// of rowLen elements. src and dst are both float32 or both int32, idx is
// int32 and dst has idx.Len()·rowLen elements. The kernel cannot check idx:
// the caller guarantees 0 ≤ idx[r] < src.Len()/rowLen (an index out of
// range reads out of bounds). Kernels gather_rows_f32_v1, gather_rows_i32_v1,
// 1-D over rows·rowLen.
func (d *Device) GatherRows(rowLen int, src, idx, dst *Buffer) error {
	id := kGatherF32
	if src != nil && src.dtype == Int32 {
		id = kGatherI32
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.gatherRows(id, rowLen, src, idx, dst); err != nil {
		return launchErr(id, rowShape{lenOf(idx), rowLen}, err)
	}
	return nil
}

func (d *Device) gatherRows(id kernelID, rowLen int, src, idx, dst *Buffer) error {
	if src == nil || idx == nil {
		return fmt.Errorf("src or idx is nil: %w", geom.ErrGeometry)
	}
	rows := idx.n
	if rowLen < 1 || src.n%rowLen != 0 {
		return fmt.Errorf("src of %d elements is not whole rows of %d: %w", src.n, rowLen, geom.ErrGeometry)
	}
	if err := dims([]int{rows, rowLen}, []int{rows, rowLen}); err != nil {
		return err
	}
	if err := d.need("src", src, src.dtype, src.n); err != nil {
		return err
	}
	if err := d.need("idx", idx, Int32, rows); err != nil {
		return err
	}
	if err := d.need("dst", dst, src.dtype, rows*rowLen); err != nil {
		return err
	}
	grid, block := linear(rows * rowLen)
	return d.launch(id, grid, block, 0, argPtr(src), argPtr(idx), argPtr(dst), argI32(rows), argI32(rowLen))
}

// Fill sets every element of the float32 buffer p to v. Kernel fill_f32_v1.
func (d *Device) Fill(p *Buffer, v float32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fill(p, v); err != nil {
		return launchErr(kFill, elemShape{lenOf(p)}, err)
	}
	return nil
}

func (d *Device) fill(p *Buffer, v float32) error {
	if p == nil {
		return fmt.Errorf("p is nil: %w", geom.ErrGeometry)
	}
	if err := d.need("p", p, Float32, p.n); err != nil {
		return err
	}
	return d.fillLocked(p.ptr, p.n, v)
}

// fillLocked writes v to n float32 words at ptr; the caller holds d.mu.
func (d *Device) fillLocked(ptr DevicePtr, n int, v float32) error {
	grid, block := linear(n)
	return d.launch(kFill, grid, block, 0, uint64(ptr), argI32(n), argF32(v))
}

func lenOf(b *Buffer) int {
	if b == nil {
		return 0
	}
	return b.n
}
