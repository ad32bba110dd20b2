package cpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

func (be *cpuBackend) ActivationForward(act backend.Activation, param float32, x, y backend.Tensor) error {
	s, err := be.slices([]string{"x", "y"}, x, y)
	if err != nil {
		return err
	}
	xs, ys := s[0], s[1]
	switch act {
	case backend.LeakyReLU:
		err = cpuref.LeakyReLUForward(xs, ys, param)
	case backend.Sigmoid:
		err = cpuref.SigmoidForward(xs, ys)
	case backend.Tanh:
		err = cpuref.TanhForward(xs, ys)
	case backend.SiLU:
		err = cpuref.SiLUForward(xs, ys)
	case backend.GELUErf:
		err = cpuref.GELUForward(xs, ys, cpuref.GELUErf)
	case backend.GELUTanh:
		err = cpuref.GELUForward(xs, ys, cpuref.GELUTanh)
	default:
		err = fmt.Errorf("unknown activation %v: %w", act, geom.ErrGeometry)
	}
	return wrap(act.String()+" forward", err)
}

func (be *cpuBackend) ActivationBackward(act backend.Activation, param float32, x, y, dy, dx backend.Tensor) error {
	s, err := be.slices([]string{"x", "y", "dy", "dx"}, x, y, dy, dx)
	if err != nil {
		return err
	}
	xs, ys, dys, dxs := s[0], s[1], s[2], s[3]
	switch act {
	case backend.LeakyReLU:
		err = cpuref.LeakyReLUBackward(xs, dys, dxs, param)
	case backend.Sigmoid:
		err = cpuref.SigmoidBackward(ys, dys, dxs)
	case backend.Tanh:
		err = cpuref.TanhBackward(ys, dys, dxs)
	case backend.SiLU:
		err = cpuref.SiLUBackward(xs, dys, dxs)
	case backend.GELUErf:
		err = cpuref.GELUBackward(xs, dys, dxs, cpuref.GELUErf)
	case backend.GELUTanh:
		err = cpuref.GELUBackward(xs, dys, dxs, cpuref.GELUTanh)
	default:
		err = fmt.Errorf("unknown activation %v: %w", act, geom.ErrGeometry)
	}
	return wrap(act.String()+" backward", err)
}

// mask draws the dropout mask of key for n elements into the backend's
// reused buffer.
func (be *cpuBackend) mask(key backend.DropoutKey, p float32, n int) ([]uint8, error) {
	if key.At != nil {
		return nil, fmt.Errorf("host: dropout: key with a per-step values tensor: %w", backend.ErrNoGraphs)
	}
	if cap(be.maskBuf) < n {
		be.maskBuf = make([]uint8, n)
	}
	m := be.maskBuf[:n]
	return m, cpuref.DropoutMask(cpuref.DropoutKey{Seed: key.Seed, Stream: key.Stream, Step: key.Step}, p, m)
}

func (be *cpuBackend) DropoutForward(key backend.DropoutKey, p float32, x, y backend.Tensor) error {
	s, err := be.slices([]string{"x", "y"}, x, y)
	if err != nil {
		return err
	}
	m, err := be.mask(key, p, len(s[0]))
	if err == nil {
		err = cpuref.DropoutForward(p, m, s[0], s[1])
	}
	return wrap("dropout forward", err)
}

func (be *cpuBackend) DropoutBackward(key backend.DropoutKey, p float32, dy, dx backend.Tensor) error {
	s, err := be.slices([]string{"dy", "dx"}, dy, dx)
	if err != nil {
		return err
	}
	m, err := be.mask(key, p, len(s[0]))
	if err == nil {
		err = cpuref.DropoutBackward(p, m, s[0], s[1])
	}
	return wrap("dropout backward", err)
}

// Add is cpuref.AddForward split over the backend's goroutines
// (cpu_parallel.go).
func (be *cpuBackend) Add(a, b, y backend.Tensor) error {
	s, err := be.addSlices(a, b, y)
	if err != nil {
		return err
	}
	return wrap("add", be.add(s[0], s[1], s[2]))
}

var addNames = []string{"a", "b", "y"}

// addSlices is slices for a residual add's a, b and y, one of a and b
// possibly a bfloat16 tensor (a batch norm's output stored so), as the
// GPU reads one.
func (be *cpuBackend) addSlices(a, b, y backend.Tensor) ([][]float32, error) {
	s, is, err := be.slicesBF16(addNames, 1|2, a, b, y)
	if err == nil && is == 1|2 {
		err = fmt.Errorf("host: add: a and b are both bfloat16 tensors: at most one may be: %w", backend.ErrTensor)
	}
	return s, err
}

// AddReLU is cpuref.AddReLUForward split over the backend's goroutines:
// one pass, the bits of Add and then ReLUForward.
func (be *cpuBackend) AddReLU(a, b, y backend.Tensor) error {
	s, err := be.addSlices(a, b, y)
	if err != nil {
		return err
	}
	return wrap("add+relu", be.addOp(opAddReLU, s[0], s[1], s[2]))
}

// add sets y = a + b elementwise on up to threads goroutines, after
// AddForward's checks of the lengths.
func (be *cpuBackend) add(a, b, y []float32) error { return be.addOp(opAdd, a, b, y) }

// AddReLUKeep is AddReLU: the CPU backend keeps nothing for a
// convolution (ConvKeepLen 0).
func (be *cpuBackend) AddReLUKeep(a, b, y backend.Tensor, _ []backend.ConvKeep) error {
	return be.AddReLU(a, b, y)
}

// addOp runs op (opAdd or opAddReLU) over a, b and y on up to threads
// goroutines, after AddForward's checks of the lengths (AddReLUForward's
// are the same).
func (be *cpuBackend) addOp(op parOp, a, b, y []float32) error {
	if len(b) != len(a) || len(y) != len(a) || len(a) == 0 {
		// The serial form's error, before any work.
		if op == opAddReLU {
			return cpuref.AddReLUForward(a, b, y)
		}
		return cpuref.AddForward(a, b, y)
	}
	p := &be.par
	p.a, p.b, p.y = a, b, y
	err := p.run(op, len(a), len(a))
	p.a, p.b, p.y = nil, nil, nil
	return err
}

func (be *cpuBackend) ConcatForward(n, hw int, cs []int, xs []backend.Tensor, y backend.Tensor) error {
	ys, err := be.f32("y", y, -1)
	if err != nil {
		return err
	}
	in, err := be.slices(be.concatNames(len(xs), "x"), xs...)
	if err != nil {
		return err
	}
	return wrap("concat forward", cpuref.ConcatForward(n, hw, cs, in, ys))
}

func (be *cpuBackend) ConcatBackward(n, hw int, cs []int, dy backend.Tensor, dxs []backend.Tensor) error {
	dys, err := be.f32("dy", dy, -1)
	if err != nil {
		return err
	}
	out, err := be.slices(be.concatNames(len(dxs), "dx"), dxs...)
	if err != nil {
		return err
	}
	return wrap("concat backward", cpuref.ConcatBackward(n, hw, cs, dys, out))
}

type nameKey struct {
	what string
	n    int
}

// concatNames are the names of n concatenated tensors for errors, x[0],
// x[1], …, made once per count.
func (be *cpuBackend) concatNames(n int, what string) []string {
	key := nameKey{what, n}
	names, ok := be.names[key]
	if !ok {
		names = make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("%s[%d]", what, i)
		}
		if be.names == nil {
			be.names = make(map[nameKey][]string)
		}
		be.names[key] = names
	}
	return names
}
