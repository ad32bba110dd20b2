package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the activation kernels of kernels/activation_v2.cu and the
// element-wise kernels of kernels/elementwise.cu (dropout, add, the
// channel copy of concatenation), bit for bit cpuref's float32 forms.

// Activation selects the function of ActivationForward and
// ActivationBackward; the values are the kernels' kAct* codes.
type Activation int

// The activations (PyTorch's definitions, cpuref's float32 forms).
const (
	ActLeakyReLU Activation = 1 // x > 0 ? x : param·x
	ActSigmoid   Activation = 2 // 1/(1 + e^−x)
	ActTanh      Activation = 3 // tanh x
	ActSiLU      Activation = 4 // x·σ(x)
	ActGELUErf   Activation = 5 // x·Φ(x)
	ActGELUTanh  Activation = 6 // x·σ(2·√(2/π)·(x + 0.044715·x³))
)

func (a Activation) String() string {
	switch a {
	case ActLeakyReLU:
		return "leaky-relu"
	case ActSigmoid:
		return "sigmoid"
	case ActTanh:
		return "tanh"
	case ActSiLU:
		return "silu"
	case ActGELUErf:
		return "gelu-erf"
	case ActGELUTanh:
		return "gelu-tanh"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// fromOutput reports the activations whose backward pass reads the
// forward output y instead of the input x.
func (a Activation) fromOutput() bool { return a == ActSigmoid || a == ActTanh }

// actShape names an activation launch in errors.
type actShape struct {
	act Activation
	n   int
}

func (s actShape) String() string { return fmt.Sprintf("act=%v,n=%d", s.act, s.n) }

func checkAct(act Activation) error {
	if act < ActLeakyReLU || act > ActGELUTanh {
		return fmt.Errorf("unknown activation %v: %w", act, geom.ErrHyperparameter)
	}
	return nil
}

// ActivationForward computes y = act(x) elementwise (param: the leaky
// ReLU's negative slope, unused otherwise); x and y have equal lengths
// and may be the same buffer. Kernel act_fwd_v1, 1-D over n. An error
// wrapping geom.ErrGeometry is returned for a nil, mistyped or
// wrong-length buffer, one wrapping geom.ErrHyperparameter for an unknown
// act.
func (d *Device) ActivationForward(act Activation, param float32, x, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.actForward(act, param, x, y); err != nil {
		return launchErr(kActFwd, actShape{act, lenOf(x)}, err)
	}
	return nil
}

func (d *Device) actForward(act Activation, param float32, x, y *Buffer) error {
	if err := checkAct(act); err != nil {
		return err
	}
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
	return d.launch(kActFwd, grid, block, 0, argPtr(x), argPtr(y), argI32(n), argI32(int(act)), argF32(param))
}

// ActivationBackward computes dx = dy·act'(·) elementwise, from the
// forward input x (leaky ReLU, SiLU, GELU) or the forward output y
// (sigmoid, tanh); the one not read may be nil. dx may be dy. Kernel
// act_bwd_v1, 1-D over n. Errors as ActivationForward.
func (d *Device) ActivationBackward(act Activation, param float32, x, y, dy, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.actBackward(act, param, x, y, dy, dx); err != nil {
		return launchErr(kActBwd, actShape{act, lenOf(dy)}, err)
	}
	return nil
}

func (d *Device) actBackward(act Activation, param float32, x, y, dy, dx *Buffer) error {
	if err := checkAct(act); err != nil {
		return err
	}
	if dy == nil {
		return fmt.Errorf("dy is nil: %w", geom.ErrGeometry)
	}
	n := dy.n
	if err := d.need("dx", dx, Float32, n); err != nil {
		return err
	}
	if act.fromOutput() {
		if err := d.need("y", y, Float32, n); err != nil {
			return err
		}
		if err := d.needOpt("x", x, Float32, n); err != nil {
			return err
		}
	} else {
		if err := d.need("x", x, Float32, n); err != nil {
			return err
		}
		if err := d.needOpt("y", y, Float32, n); err != nil {
			return err
		}
	}
	if err := d.need("dy", dy, Float32, n); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kActBwd, grid, block, 0, argPtr(x), argPtr(y), argPtr(dy), argPtr(dx),
		argI32(n), argI32(int(act)), argF32(param))
}

// DropoutKey selects one dropout mask: the run's seed, the layer (stream)
// and the training step, as cpuref.DropoutKey.
type DropoutKey struct {
	Seed   uint64
	Stream uint32
	Step   uint64
}

// Dropout computes y = (x·mask)·(1/(1−p)) with the keep-mask of key and
// drop probability p (cpuref.DropoutMask and DropoutForward bit for bit);
// the backward pass is the same call on dy and dx with the same key and p.
// x and y have equal lengths and may be the same buffer. Kernel
// dropout_v1, 1-D over ⌈n/4⌉. An error wrapping geom.ErrHyperparameter is
// returned when p is outside [0, 1) or NaN; one wrapping geom.ErrGeometry
// for a nil, mistyped or wrong-length buffer.
func (d *Device) Dropout(key DropoutKey, p float32, x, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.dropout(key, p, x, y); err != nil {
		return launchErr(kDropout, elemShape{lenOf(x)}, err)
	}
	return nil
}

func (d *Device) dropout(key DropoutKey, p float32, x, y *Buffer) error {
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("dropout probability %g must be in [0, 1): %w", p, geom.ErrHyperparameter)
	}
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
	grid, block := linear(ceilDiv(n, 4))
	return d.launch(kDropout, grid, block, 0, argPtr(x), argPtr(y), argI32(n), argF32(p),
		argU32(uint32(key.Seed)), argU32(uint32(key.Seed>>32)), argU32(key.Stream),
		argU32(uint32(key.Step)), argU32(uint32(key.Step>>32)))
}

// argU32 passes the 32 bits of v to an int parameter that the kernel reads
// as unsigned.
func argU32(v uint32) arg { return argI32(int(int32(v))) }

// Add computes y = a + b elementwise (one rounded addition); equal
// lengths, y may be a or b. Kernel add_v1, 1-D over n; with a or b (one of
// them) a BFloat16 buffer, a batch norm's output stored so
// (bn_out_bf16.go), add_bf16b_v1, y float32. An error wrapping
// geom.ErrGeometry is returned for a nil, mistyped or wrong-length buffer.
func (d *Device) Add(a, b, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.addKernel(kAdd, a, b, y); err != nil {
		return launchErr(kAdd, elemShape{lenOf(a)}, err)
	}
	return nil
}

// AddReLU computes y = max(a + b, 0) elementwise with ReLUForward's rules
// (NaN propagates, −0 becomes +0): the bits of Add then ReLUForward, in
// one pass (cpuref.AddReLUForward). Equal lengths, y may be a or b.
// Kernel add_relu_v1, 1-D over n (a bfloat16 a or b: add_relu_bf16b_v1);
// errors as Add's.
func (d *Device) AddReLU(a, b, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.addKernel(kAddReLU, a, b, y); err != nil {
		return launchErr(kAddReLU, elemShape{lenOf(a)}, err)
	}
	return nil
}

// addKernel checks a, b and y (equal lengths) and launches k (add_v1 or
// add_relu_v1) over them.
func (d *Device) addKernel(k kernelID, a, b, y *Buffer) error {
	if a == nil {
		return fmt.Errorf("a is nil: %w", geom.ErrGeometry)
	}
	a, b = addOperands(a, b) // a bfloat16 input as b (bn_out_bf16.go)
	k = addKernelFor(k, b)
	n := a.n
	if err := d.needABY(a, b, y, n, bTypeFor(k)); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(k, grid, block, 0, argPtr(a), argPtr(b), argPtr(y), argI32(n))
}

// needABY checks a, b and y: buffers of n elements, b of type bt (a
// bfloat16 batch norm output for the _bf16b kernels), a and y float32.
func (d *Device) needABY(a, b, y *Buffer, n int, bt DType) error {
	for _, c := range [...]struct {
		name string
		b    *Buffer
		t    DType
	}{{"a", a, Float32}, {"b", b, bt}, {"y", y, Float32}} {
		if err := d.need(c.name, c.b, c.t, n); err != nil {
			return err
		}
	}
	return nil
}

// copyShape names a channel copy in errors.
type copyShape struct{ n, c, hw, srcC, srcOff, dstC, dstOff int }

func (s copyShape) String() string {
	return fmt.Sprintf("N=%d,C=%d,HW=%d,src=%d@%d,dst=%d@%d", s.n, s.c, s.hw, s.srcC, s.srcOff, s.dstC, s.dstOff)
}

// ChannelCopy copies channels [srcOff, srcOff+c) of src, an (N,srcC,HW)
// tensor, into channels [dstOff, dstOff+c) of dst, an (N,dstC,HW) tensor,
// bits unchanged; the other channels of dst are left as they are. It is
// concatenation's forward pass (src an input, dst the output at the
// input's offset) and backward pass (src the output's gradient, dst an
// input's). src and dst must not overlap. Kernel channel_copy_v1, 1-D over
// N·c·HW. An error wrapping geom.ErrGeometry is returned when a size is
// < 1, a channel range lies outside its tensor, a tensor has 2³¹ elements
// or more, or a buffer has the wrong length.
func (d *Device) ChannelCopy(n, c, hw int, src *Buffer, srcC, srcOff int, dst *Buffer, dstC, dstOff int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.channelCopy(n, c, hw, src, srcC, srcOff, dst, dstC, dstOff); err != nil {
		return launchErr(kChannelCopy, copyShape{n, c, hw, srcC, srcOff, dstC, dstOff}, err)
	}
	return nil
}

func (d *Device) channelCopy(n, c, hw int, src *Buffer, srcC, srcOff int, dst *Buffer, dstC, dstOff int) error {
	if err := dims([]int{n, c, hw, srcC, dstC}, []int{n, srcC, hw}, []int{n, dstC, hw}); err != nil {
		return err
	}
	if srcOff < 0 || srcOff > srcC-c || dstOff < 0 || dstOff > dstC-c {
		return fmt.Errorf("channels [%d, %d) of %d or [%d, %d) of %d out of range: %w",
			srcOff, srcOff+c, srcC, dstOff, dstOff+c, dstC, geom.ErrGeometry)
	}
	if err := d.need("src", src, Float32, n*srcC*hw); err != nil {
		return err
	}
	if err := d.need("dst", dst, Float32, n*dstC*hw); err != nil {
		return err
	}
	grid, block := linear(n * c * hw)
	return d.launch(kChannelCopy, grid, block, 0, argPtr(src), argPtr(dst), argI32(n), argI32(c), argI32(hw),
		argI32(srcC), argI32(srcOff), argI32(dstC), argI32(dstOff))
}
