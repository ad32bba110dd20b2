package nn

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/ckpt/onnx"
)

// MaxPool is the maximum over R×S windows with a stride and no padding;
// spec text maxpool<R>[x<S>][s<stride>] (the stride defaults to the
// window). Its backward pass routes each gradient to the first maximum of
// its window (argmax, kept per batch).
const MaxPool LayerKind = 3

// window reads a pool's window R[xS] and its options (the stride; the
// padding when pad), a stride equal to the window stored as 0.
func (p *specParser) window(l *LayerSpec, pad bool) error {
	var err error
	if l.KernelH, l.KernelW, err = p.pair("window", 1); err != nil {
		return err
	}
	if err := p.options(l, pad); err != nil {
		return err
	}
	if l.StrideH == l.KernelH {
		l.StrideH = 0
	}
	if l.StrideW == l.KernelW {
		l.StrideW = 0
	}
	return nil
}

// formatWindow writes a pool's canonical text: the name and window, then
// the stride and padding where they differ from their defaults.
func formatWindow(name string, l LayerSpec) string {
	s := formatPair(name, l.KernelH, l.KernelW)
	if sh, sw := strideOr(l.StrideH, l.KernelH), strideOr(l.StrideW, l.KernelW); sh != l.KernelH || sw != l.KernelW {
		s += formatPair("s", sh, sw)
	}
	if l.PadH != 0 || l.PadW != 0 {
		s += formatPair("p", l.PadH, l.PadW)
	}
	return s
}

// PoolLayer is a MaxPool with an r×r window and stride r.
func PoolLayer(r int) LayerSpec { return LayerSpec{Kind: MaxPool, KernelH: r, KernelW: r} }

func init() {
	register(&kindModule{
		kind: MaxPool, name: "maxpool", in: imageInput,
		form:   "maxpool<R>[x<S>][s<stride>], e.g. maxpool2 or maxpool3s2",
		parse:  func(p *specParser, l *LayerSpec) error { return p.window(l, false) },
		format: func(l LayerSpec) string { return formatWindow("maxpool", l) },
		describe: func(l LayerSpec) string {
			sh, sw := strideOr(l.StrideH, l.KernelH), strideOr(l.StrideW, l.KernelW)
			return fmt.Sprintf("maxpool %d×%d stride %d×%d", l.KernelH, l.KernelW, sh, sw)
		},
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) {
			g := geom.PoolGeom{N: 1, C: in.C, H: in.H, W: in.W, R: l.KernelH, S: l.KernelW,
				StrideH: strideOr(l.StrideH, l.KernelH), StrideW: strideOr(l.StrideW, l.KernelW)}
			if l.KernelH > in.H || l.KernelW > in.W {
				return LayerInfo{}, fmt.Errorf("the %d×%d window is larger than its %d×%d input", l.KernelH, l.KernelW, in.H, in.W)
			}
			if err := g.Validate(); err != nil {
				return LayerInfo{}, err
			}
			return LayerInfo{Pool: g, Out: Shape{C: g.C, H: g.P(), W: g.Q()}}, nil
		},
		export: func(e *exporter, n *node) error {
			g := n.info.Pool
			e.node(onnx.MaxPool(e.out(n), e.in(n), e.out(n), onnx.NewWindow(g.R, g.S, g.StrideH, g.StrideW, 0, 0)))
			return nil
		},
		forward: func(b *Batch, n *node) error {
			g := n.info.Pool
			g.N = b.N
			if r := n.relu; r != nil { // the ReLU before runs after the pool (plan.go)
				if err := b.be.MaxPoolForward(g, b.acts[r.in], b.pre[n.id], b.argmax[n.id]); err != nil {
					return err
				}
				return b.be.ReLUForward(b.pre[n.id], b.acts[n.out])
			}
			if d := n.denseFwd; d != nil && n.lossFwd { // the dense layer and the loss run here (plan.go)
				return b.be.MaxPoolDenseSoftmax(g, b.acts[n.in], b.acts[n.out], b.argmax[n.id], d.info.Out.C,
					d.params[0].Value, d.bias(), b.acts[d.out], b.Labels, b.Loss, b.grads[len(b.grads)-1], b.LossSum, b.Correct)
			}
			if d := n.denseFwd; d != nil { // the dense layer after the flatten runs here (plan.go)
				return b.be.MaxPoolDenseForward(g, b.acts[n.in], b.acts[n.out], b.argmax[n.id], d.info.Out.C,
					d.params[0].Value, d.bias(), b.acts[d.out])
			}
			return b.be.MaxPoolForward(g, b.acts[n.in], b.acts[n.out], b.argmax[n.id])
		},
		backward: func(b *Batch, n *node) error {
			g := n.info.Pool
			g.N = b.N
			if r := n.relu; r != nil {
				if !r.needDX {
					return nil
				}
				if err := b.be.ReLUBackward(b.pre[n.id], b.grads[n.out], b.dpre[n.id]); err != nil {
					return err
				}
				return b.be.MaxPoolBackward(g, b.dpre[n.id], b.argmax[n.id], b.dx(r))
			}
			if r := n.maskReLU; r != nil {
				if !r.needDX {
					return nil
				}
				return b.be.MaxPoolBackwardReLU(g, b.grads[n.out], b.argmax[n.id], b.acts[n.in], b.dx(r))
			}
			if !n.needDX {
				return nil
			}
			return b.be.MaxPoolBackward(g, b.grads[n.out], b.argmax[n.id], b.dx(n))
		},
	})
}
