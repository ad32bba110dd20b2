package gpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
)

// The activations, dropout, the residual add and concatenation over the
// kernels of kernels/activation_v2.cu and kernels/elementwise.cu
// (gpu/launch_elementwise.go): the same bits as the CPU backend.

// gpuAct is the gpu package's code of act.
func gpuAct(act backend.Activation) (gpu.Activation, error) {
	switch act {
	case backend.LeakyReLU:
		return gpu.ActLeakyReLU, nil
	case backend.Sigmoid:
		return gpu.ActSigmoid, nil
	case backend.Tanh:
		return gpu.ActTanh, nil
	case backend.SiLU:
		return gpu.ActSiLU, nil
	case backend.GELUErf:
		return gpu.ActGELUErf, nil
	case backend.GELUTanh:
		return gpu.ActGELUTanh, nil
	}
	return 0, fmt.Errorf("host: unknown activation %v: %w", act, geom.ErrGeometry)
}

// ActivationForward runs act_fwd_v1.
func (be *gpuBackend) ActivationForward(act backend.Activation, param float32, x, y backend.Tensor) error {
	a, err := gpuAct(act)
	if err != nil {
		return err
	}
	b, err := be.bufs(xyArgs, x, y)
	if err != nil {
		return err
	}
	xb, yb := b[0], b[1]
	return gpuWrap(act.String()+" forward", be.dev.ActivationForward(a, param, xb, yb))
}

// ActivationBackward runs act_bwd_v1, which reads x or y (the other may
// be nil) as the activation needs.
func (be *gpuBackend) ActivationBackward(act backend.Activation, param float32, x, y, dy, dx backend.Tensor) error {
	a, err := gpuAct(act)
	if err != nil {
		return err
	}
	b, err := be.bufs(actBackwardArgs, x, y, dy, dx)
	if err != nil {
		return err
	}
	xb, yb, dyb, dxb := b[0], b[1], b[2], b[3]
	return gpuWrap(act.String()+" backward", be.dev.ActivationBackward(a, param, xb, yb, dyb, dxb))
}

// actBackwardArgs: ActivationBackward reads x or y as the activation needs
// (the launcher checks that the one it reads is given).
var actBackwardArgs = []arg{{"x", true}, {"y", true}, {"dy", false}, {"dx", false}}

// dropout runs dropout_v1 on in and out (args names them): the forward and
// the backward pass are the same mask applied to x or dy.
func (be *gpuBackend) dropout(op string, key backend.DropoutKey, p float32, args []arg, in, out backend.Tensor) error {
	b, err := be.bufs(args, in, out)
	if err != nil {
		return err
	}
	k := gpu.DropoutKey{Seed: key.Seed, Stream: key.Stream, Step: key.Step}
	if key.At != nil {
		w, err := be.atWord(key.At, valDropout)
		if err != nil {
			return fmt.Errorf("host: %s: key: %w", op, err)
		}
		return gpuWrap(op, be.dev.DropoutAt(k, p, b[0], b[1], w))
	}
	return gpuWrap(op, be.dev.Dropout(k, p, b[0], b[1]))
}

// DropoutForward runs dropout_v1 on x.
func (be *gpuBackend) DropoutForward(key backend.DropoutKey, p float32, x, y backend.Tensor) error {
	return be.dropout("dropout forward", key, p, xyArgs, x, y)
}

// DropoutBackward runs dropout_v1 on dy with the same key: the mask is
// drawn again.
func (be *gpuBackend) DropoutBackward(key backend.DropoutKey, p float32, dy, dx backend.Tensor) error {
	return be.dropout("dropout backward", key, p, dyDxArgs, dy, dx)
}

var addArgs = []arg{{"a", false}, {"b", false}, {"y", false}}

// Add runs add_v1.
func (be *gpuBackend) Add(a, b, y backend.Tensor) error {
	t, err := be.addBufs(a, b, y)
	if err != nil {
		return err
	}
	return gpuWrap("add", be.dev.Add(t[0], t[1], t[2]))
}

// AddReLU runs add_relu_v1: y = max(a + b, 0) in one launch, the bits of
// Add then ReLUForward.
func (be *gpuBackend) AddReLU(a, b, y backend.Tensor) error {
	t, err := be.addBufs(a, b, y)
	if err != nil {
		return err
	}
	return gpuWrap("add+relu", be.dev.AddReLU(t[0], t[1], t[2]))
}

// AddReLUKeep runs gpu.Device.AddReLUKeep: AddReLU's bits, and for each of
// keeps (at most two) whose convolution keeps y's bfloat16 copy
// (ConvKeepLen(k.G) > 0), that copy made in k.XK as y is written
// (add_relu_pack_bf16_v1, one launch for both), for Conv2DForwardKeep(k.G,
// y, …, k.XK) to read; at TF32, where keeps[0]'s forward kernel reads y's
// TF32 copy (ConvXCopyLen), that copy in keeps[0].XK
// (add_relu_pack_tf32_v1) for that forward pass, next.
func (be *gpuBackend) AddReLUKeep(a, b, y backend.Tensor, keeps []backend.ConvKeep) error {
	t, err := be.addBufs(a, b, y)
	if err != nil {
		return err
	}
	var ks [2]gpu.ConvKeep
	if len(keeps) > len(ks) {
		return fmt.Errorf("host: add+relu: %d convolutions keep its output, at most %d: %w", len(keeps), len(ks), geom.ErrGeometry)
	}
	for i, k := range keeps {
		xk, err := be.optF32("xk", k.XK, -1)
		if err != nil {
			return err
		}
		ks[i] = gpu.ConvKeep{G: k.G, XK: xk}
	}
	return gpuWrap("add+relu", be.dev.AddReLUKeep(t[0], t[1], t[2], ks[:len(keeps)]...))
}

// concatChannels checks a concatenation of len(cs) tensors (count given)
// of cs[i] channels and returns the total channel count.
func concatChannels(op string, n, hw int, cs []int, count int) (int, error) {
	if n < 1 || hw < 1 || len(cs) == 0 || len(cs) != count {
		return 0, fmt.Errorf("host: %s: N=%d HW=%d, %d channel counts for %d tensors: %w", op, n, hw, len(cs), count, geom.ErrGeometry)
	}
	total := 0
	for i, c := range cs {
		if c < 1 || c > backend.MaxTensorElems-total {
			return 0, fmt.Errorf("host: %s: input %d has %d channels: %w", op, i, c, geom.ErrGeometry)
		}
		total += c
	}
	if !geom.FitsProduct([]int{n, total, hw}) {
		return 0, fmt.Errorf("host: %s: N=%d C=%d HW=%d has 2³¹ elements or more: %w", op, n, total, hw, geom.ErrGeometry)
	}
	return total, nil
}

// ConcatForward runs channel_copy_v1 once per input, into its channels of
// y. Every input's length is checked before the first copy (and again by
// its own): a refused call copies nothing. y is checked by each copy.
func (be *gpuBackend) ConcatForward(n, hw int, cs []int, xs []backend.Tensor, y backend.Tensor) error {
	const op = "concat forward"
	total, err := concatChannels(op, n, hw, cs, len(xs))
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, -1)
	if err != nil {
		return err
	}
	for i, c := range cs { // every input checked before the first launch
		xb, err := be.f32("concatenated input", xs[i], -1)
		if err != nil {
			return fmt.Errorf("host: %s: input %d: %w", op, i, err)
		}
		if xb.Len() != n*c*hw {
			return fmt.Errorf("host: %s: input %d has %d elements, want %d: %w", op, i, xb.Len(), n*c*hw, geom.ErrGeometry)
		}
	}
	off := 0
	for i, c := range cs {
		xb, _ := be.f32("concatenated input", xs[i], -1)
		if err := be.dev.ChannelCopy(n, c, hw, xb, c, 0, yb, total, off); err != nil {
			return gpuWrap(op, err)
		}
		off += c
	}
	return nil
}

// ConcatBackward runs channel_copy_v1 once per non-nil dxs[i], from its
// channels of dy, every gradient's length checked before the first copy.
func (be *gpuBackend) ConcatBackward(n, hw int, cs []int, dy backend.Tensor, dxs []backend.Tensor) error {
	const op = "concat backward"
	total, err := concatChannels(op, n, hw, cs, len(dxs))
	if err != nil {
		return err
	}
	dyb, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	for i, c := range cs { // every gradient checked before the first launch
		dxb, err := be.optF32("concatenated input's gradient", dxs[i], -1)
		if err != nil {
			return fmt.Errorf("host: %s: input %d: %w", op, i, err)
		}
		if dxb != nil && dxb.Len() != n*c*hw {
			return fmt.Errorf("host: %s: input %d's gradient has %d elements, want %d: %w", op, i, dxb.Len(), n*c*hw, geom.ErrGeometry)
		}
	}
	off := 0
	for i, c := range cs {
		if dxb, _ := be.optF32("concatenated input's gradient", dxs[i], -1); dxb != nil {
			if err := be.dev.ChannelCopy(n, c, hw, dyb, total, off, dxb, c, 0); err != nil {
				return gpuWrap(op, err)
			}
		}
		off += c
	}
	return nil
}

// addBufs is bufs for a residual add's a, b and y, one of a and b
// possibly a bfloat16 tensor (a batch norm's output stored so: the
// _bf16b kernels read it).
func (be *gpuBackend) addBufs(a, b, y backend.Tensor) ([]*gpu.Buffer, error) {
	t, is, err := be.bufsBF16(addArgs, 1|2, a, b, y)
	if err == nil && is == 1|2 {
		err = fmt.Errorf("host: add: a and b are both bfloat16 tensors: at most one may be: %w", backend.ErrTensor)
	}
	return t, err
}
