package gpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
)

// The batch-norm and average-pool operations over the kernels of
// kernels/norm.cu and kernels/avgpool.cu (gpu/launch_norm.go,
// gpu/launch_avgpool.go): the same bits as the CPU backend, which runs
// cpuref's float32 forms. The launchers check the sizes and lengths.

// BatchNormForward runs bn_train_fwd_v1 (train: batch statistics, saveMean
// and saveInvStd written, runMean and runVar updated when given) or
// bn_eval_fwd_v1 (evaluation with runMean and runVar; saveMean and
// saveInvStd unused); with EpilogueReLU their v2, the ReLU before the
// store. One launch.
func (be *gpuBackend) BatchNormForward(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y backend.Tensor, ep backend.Epilogue, momentum, eps float64) error {
	return be.BatchNormForwardKeep(train, n, c, hw, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y, ep, momentum, eps, geom.ConvGeom{}, nil, false)
}

// BatchNormForwardKeep runs gpu.Device.BatchNormForwardKeep:
// BatchNormForward's bits, and where the convolution g after it keeps
// y's bfloat16 copy (ConvKeepLen(g) > 0) and xk is given, that copy made
// in xk as y is written (bn_train_stats_v1 and bn_apply_pack_bf16_v1),
// for Conv2DForwardKeep(g, y, …, xk) to read; at TF32, where g's forward
// kernel reads y's TF32 copy (ConvXCopyLen), that copy in xk
// (bn_apply_pack_tf32_v1) for g's forward pass, next. With copyOnly
// gpu.Device.BatchNormForwardCopy: where the BF16 copy is made, it alone
// (bn_pack_bf16_v1), y's values not written.
func (be *gpuBackend) BatchNormForwardKeep(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y backend.Tensor, ep backend.Epilogue, momentum, eps float64, g geom.ConvGeom, xk backend.Tensor, copyOnly bool) error {
	op := "batch norm forward"
	if !train {
		op = "batch norm forward (evaluation)"
	}
	if ep != backend.NoEpilogue && ep != backend.EpilogueReLU {
		return fmt.Errorf("host: %s: unknown epilogue %v: %w", op, ep, geom.ErrGeometry)
	}
	relu := ep == backend.EpilogueReLU
	// x may be bfloat16 (a BF16 conv's output), and y too where x is (a
	// batch norm's output that only a residual add reads)
	b, is, err := be.bufsBF16(bnForwardArgs(train), 1|1<<7, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y)
	if err != nil {
		return err
	}
	if is == 1<<7 {
		return fmt.Errorf("host: %s: y is a bfloat16 tensor, which a batch norm writes only from a bfloat16 x: %w", op, backend.ErrTensor)
	}
	xkb, err := be.optF32("xk", xk, -1)
	if err != nil {
		return err
	}
	run := be.dev.BatchNormForwardKeep
	if copyOnly {
		run = be.dev.BatchNormForwardCopy
	}
	return gpuWrap(op, run(train, n, c, hw, b[0], b[1], b[2], b[7], b[5], b[6], b[3], b[4], momentum, eps, relu, g, xkb))
}

// bnForwardArgs are BatchNormForward's tensors: in training the running
// and saved statistics are optional, in evaluation the running ones are
// needed and the saved ones unused.
func bnForwardArgs(train bool) []arg {
	if train {
		return bnTrainArgs
	}
	return bnEvalArgs
}

var (
	bnTrainArgs = []arg{{"x", false}, {"gamma", false}, {"beta", false}, {"running mean", true},
		{"running var", true}, {"saved mean", true}, {"saved inverse std", true}, {"y", false}}
	bnEvalArgs = []arg{{"x", false}, {"gamma", false}, {"beta", false}, {"running mean", false},
		{"running var", false}, {"saved mean", true}, {"saved inverse std", true}, {"y", false}}
	bnBackwardArgs = []arg{{"x", false}, {"gamma", false}, {"saved mean", false}, {"saved inverse std", false},
		{"dy", false}, {"dx", true}, {"dgamma", false}, {"dbeta", false}}
)

// BatchNormBackward runs bn_bwd_v1: dgamma, dbeta and, when dx is not nil,
// dx in one launch.
func (be *gpuBackend) BatchNormBackward(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta backend.Tensor) error {
	return be.BatchNormBackwardKeep(n, c, hw, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta, geom.ConvGeom{}, nil, false, backend.BNReLU{})
}

// BatchNormBackwardKeep runs gpu.Device.BatchNormBackwardKeep:
// BatchNormBackward's bits (with relu BatchNormBackwardReLU's), and where
// the convolution g before it reads one channels-last copy of its dy in
// both backward kernels (ConvDyCopyLen(g) > 0) and dyk is given, that
// copy made in dyk as dx is written (bn_bwd_v1's sums, then
// bn_bwd_apply_pack_v1; with relu their bn_bwd_relu_ forms), for
// Conv2DBackward on g to read; with copyOnly
// gpu.Device.BatchNormBackwardCopy, the copy alone (bn_bwd_pack_v1 or
// bn_bwd_relu_pack_v1), dx's values not written. relu.Y is checked but
// not read: the mask is recomputed from x, γ and relu.Beta.
func (be *gpuBackend) BatchNormBackwardKeep(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta backend.Tensor, g geom.ConvGeom, dyk backend.Tensor, copyOnly bool, relu backend.BNReLU) error {
	var a [10]backend.Tensor
	op, args, ts := "batch norm backward", bnBackwardArgs, append(a[:0], x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta)
	if relu.On() {
		op, args = "batch norm+relu backward", bnBackwardReLUArgs
		ts = append(ts, relu.Beta, relu.Y)
	}
	// x and dy may be bfloat16 (a BF16 convolution's output and input
	// gradient); dy only with x, as the kernels read them
	b, is, err := be.bufsBF16(args, 1|1<<4, ts...)
	if err != nil {
		return err
	}
	if is == 1<<4 {
		return fmt.Errorf("host: %s: dy is a bfloat16 tensor, which a batch norm reads only with a bfloat16 x: %w", op, backend.ErrTensor)
	}
	var beta *gpu.Buffer
	if relu.On() {
		if err := be.reluOutput(n, c, hw, b[9]); err != nil {
			return fmt.Errorf("host: %s: %w", op, err)
		}
		beta = b[8]
	}
	dykb, err := be.optF32("dyk", dyk, -1)
	if err != nil {
		return err
	}
	run := be.dev.BatchNormBackwardKeep
	if copyOnly {
		run = be.dev.BatchNormBackwardCopy
	}
	return gpuWrap(op, run(n, c, hw, b[0], b[1], beta, b[2], b[3], b[4], b[5], b[6], b[7], g, dykb))
}

// reluOutput checks the ReLU's output y that BatchNormBackwardReLU is
// given but does not read: N·C·HW elements (a valid geometry is left to
// the launcher).
func (be *gpuBackend) reluOutput(n, c, hw int, y *gpu.Buffer) error {
	if n > 0 && c > 0 && hw > 0 && n <= geom.MaxElems/c/hw && y.Len() != n*c*hw {
		return fmt.Errorf("y has %d elements, want %d: %w", y.Len(), n*c*hw, geom.ErrGeometry)
	}
	return nil
}

// ConvDyCopyLen is gpu.Device.ConvDyCopyLen: dy's channels-last copy at
// TF32 and BF16 where the two backward kernels share it, else 0.
func (be *gpuBackend) ConvDyCopyLen(g geom.ConvGeom) int { return be.dev.ConvDyCopyLen(g) }

var bnBackwardReLUArgs = append(bnBackwardArgs[:len(bnBackwardArgs):len(bnBackwardArgs)], arg{"beta", false}, arg{"y", false})

// BatchNormBackwardReLU runs bn_bwd_relu_v1: dgamma, dbeta and, when dx is
// not nil, dx in one launch, dy read where γ·x̂ + β > 0 (the ReLU's mask,
// recomputed from x as the forward pass computed it), neither y read nor
// a masked copy written.
func (be *gpuBackend) BatchNormBackwardReLU(n, c, hw int, x, gamma, beta, saveMean, saveInvStd, y, dy, dx, dgamma, dbeta backend.Tensor) error {
	return be.BatchNormBackwardKeep(n, c, hw, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta, geom.ConvGeom{}, nil, false, backend.BNReLU{Beta: beta, Y: y})
}

var xyArgs, dyDxArgs = []arg{{"x", false}, {"y", false}}, []arg{{"dy", false}, {"dx", false}}

func (be *gpuBackend) AvgPoolForward(g geom.AvgPoolGeom, x, y backend.Tensor) error {
	b, err := be.bufs(xyArgs, x, y)
	if err != nil {
		return err
	}
	return gpuWrap("average pool forward", be.dev.AvgPoolForward(g, b[0], b[1]))
}

func (be *gpuBackend) AvgPoolBackward(g geom.AvgPoolGeom, dy, dx backend.Tensor) error {
	b, err := be.bufs(dyDxArgs, dy, dx)
	if err != nil {
		return err
	}
	return gpuWrap("average pool backward", be.dev.AvgPoolBackward(g, b[0], b[1]))
}

func (be *gpuBackend) GlobalAvgPoolForward(n, c, hw int, x, y backend.Tensor) error {
	b, err := be.bufs(xyArgs, x, y)
	if err != nil {
		return err
	}
	return gpuWrap("global average pool forward", be.dev.GlobalAvgPoolForward(n, c, hw, b[0], b[1]))
}

func (be *gpuBackend) GlobalAvgPoolBackward(n, c, hw int, dy, dx backend.Tensor) error {
	b, err := be.bufs(dyDxArgs, dy, dx)
	if err != nil {
		return err
	}
	return gpuWrap("global average pool backward", be.dev.GlobalAvgPoolBackward(n, c, hw, b[0], b[1]))
}

// arg names a float32 tensor argument of an operation, optional (nil
// allowed) or not.
type arg struct {
	name string
	opt  bool
}

// bufs returns the buffers of the float32 tensors ts, args[i] naming
// ts[i] (a nil optional tensor gives a nil buffer), in a reused slice: the
// handles checked, their lengths left to the launcher.
func (be *gpuBackend) bufs(args []arg, ts ...backend.Tensor) ([]*gpu.Buffer, error) {
	out, _, err := be.bufsBF16(args, 0, ts...)
	return out, err
}

// bufsBF16 is bufs where the tensors at the positions i with bit 1<<i
// set in may can be bfloat16 tensors too (a batch norm's x, a BF16
// convolution's output; its backward pass's dy, a BF16 convolution's
// input gradient); is has the bits of those that are.
func (be *gpuBackend) bufsBF16(args []arg, may uint, ts ...backend.Tensor) (out []*gpu.Buffer, is uint, err error) {
	if cap(be.bl) < len(ts) {
		be.bl = make([]*gpu.Buffer, len(ts))
	}
	out = be.bl[:len(ts)]
	for i, t := range ts {
		switch {
		case args[i].opt && t == nil:
			out[i] = nil
		case may&(1<<i) != 0:
			if out[i], err = be.f32x(args[i].name, t, -1); err == nil && out[i].DType() == gpu.BFloat16 {
				is |= 1 << i
			}
		default:
			out[i], err = be.f32(args[i].name, t, -1)
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return out, is, nil
}
