package nn

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/ckpt/onnx"
)

// Conv is a 2-D convolution with bias:
//
//	y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[n,c, p·sh − ph + r, q·sw − pw + s]
//
// Spec text conv<K>x<R>x<S>[s<stride>][p<pad>][nobias]; parameters
// layer<i>.weight (K,C,R,S) and layer<i>.bias (K, absent with nobias),
// initialised with fan_in = C·R·S and fan_out = K·R·S (see NewModel).
const Conv LayerKind = 1

// ConvLayer is a Conv of k filters of r×s with stride 1 and no padding.
func ConvLayer(k, r, s int) LayerSpec {
	return LayerSpec{Kind: Conv, Filters: k, KernelH: r, KernelW: s}
}

func init() {
	register(&kindModule{
		kind: Conv, name: "conv", in: imageInput,
		form: "conv<K>x<R>x<S>[s<stride>][p<pad>][nobias], e.g. conv16x5x5 or conv32x3x3s2p1nobias",
		parse: func(p *specParser, l *LayerSpec) error {
			var err error
			if l.Filters, err = p.number("number of filters K", 1); err != nil {
				return err
			}
			if !p.peekWord("x") {
				return p.bad("missing \"x\" and the kernel size after the number of filters")
			}
			p.pos++
			if l.KernelH, l.KernelW, err = p.dims("kernel height R", "kernel width S"); err != nil {
				return err
			}
			if err := p.options(l, true); err != nil {
				return err
			}
			l.NoBias = p.flag("nobias")
			if l.StrideH == 1 {
				l.StrideH = 0
			}
			if l.StrideW == 1 {
				l.StrideW = 0
			}
			return nil
		},
		format: func(l LayerSpec) string {
			s := fmt.Sprintf("conv%dx%dx%d", l.Filters, l.KernelH, l.KernelW)
			if sh, sw := strideOr(l.StrideH, 1), strideOr(l.StrideW, 1); sh != 1 || sw != 1 {
				s += formatPair("s", sh, sw)
			}
			if l.PadH != 0 || l.PadW != 0 {
				s += formatPair("p", l.PadH, l.PadW)
			}
			if l.NoBias {
				s += "nobias"
			}
			return s
		},
		describe: func(l LayerSpec) string {
			sh, sw := strideOr(l.StrideH, 1), strideOr(l.StrideW, 1)
			s := fmt.Sprintf("conv %d %d×%d stride %d×%d pad %d×%d", l.Filters, l.KernelH, l.KernelW, sh, sw, l.PadH, l.PadW)
			if l.NoBias {
				s += " no bias"
			}
			return s
		},
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) {
			g := geom.ConvGeom{N: 1, C: in.C, H: in.H, W: in.W, K: l.Filters, R: l.KernelH, S: l.KernelW,
				StrideH: strideOr(l.StrideH, 1), StrideW: strideOr(l.StrideW, 1), PadH: l.PadH, PadW: l.PadW}
			if l.KernelH > in.H+2*l.PadH || l.KernelW > in.W+2*l.PadW {
				return LayerInfo{}, fmt.Errorf("the %d×%d window is larger than its %d×%d input padded by %d×%d", l.KernelH, l.KernelW, in.H, in.W, l.PadH, l.PadW)
			}
			if err := g.Validate(); err != nil {
				return LayerInfo{}, err
			}
			params := g.WLen() + g.K
			if l.NoBias {
				params = g.WLen()
			}
			return LayerInfo{Conv: g, Out: Shape{C: g.K, H: g.P(), W: g.Q()}, Params: params}, nil
		},
		params: func(info LayerInfo) []paramSpec {
			g := info.Conv
			ps := []paramSpec{{suffix: "weight", shape: []int{g.K, g.C, g.R, g.S}, fanIn: g.C * g.R * g.S, fanOut: g.K * g.R * g.S}}
			if !info.Spec.NoBias {
				ps = append(ps, paramSpec{suffix: "bias", shape: []int{g.K}})
			}
			return ps
		},
		export: func(e *exporter, n *node) error {
			g := n.info.Conv
			w, b, err := e.weightBias(n)
			if err != nil {
				return err
			}
			e.node(onnx.Conv(e.out(n), e.in(n), w, b, e.out(n), onnx.NewWindow(g.R, g.S, g.StrideH, g.StrideW, g.PadH, g.PadW)))
			return nil
		},
		forward: func(b *Batch, n *node) error {
			g := convOf(n, b.N)
			// With a ReLU epilogue (plan.go) the output is the ReLU's.
			if xk := b.keep[n.id]; xk != nil {
				return b.be.Conv2DForwardKeep(g, b.acts[n.in], n.params[0].Value, n.bias(), b.acts[n.y], n.epilogue, xk)
			}
			return b.be.Conv2DForward(g, b.acts[n.in], n.params[0].Value, n.bias(), b.acts[n.y], n.epilogue)
		},
		backward: func(b *Batch, n *node) error {
			g := convOf(n, b.N)
			w := n.params[0]
			if n.bwdBoth {
				var dx backend.Tensor
				if n.needDX {
					dx = b.dx(n)
				}
				return b.be.Conv2DBackward(g, b.acts[n.in], b.grads[n.out], w.Value, w.Grad, n.biasGrad(), dx, b.keep[n.id])
			}
			if err := b.be.Conv2DBackwardFilter(g, b.acts[n.in], b.grads[n.out], w.Grad, n.biasGrad()); err != nil || !n.needDX {
				return err
			}
			return b.be.Conv2DBackwardData(g, b.grads[n.out], w.Value, b.dx(n))
		},
	})
}

// formatPair writes prefix and n, or n×m when the two differ: "s2", "p3x0".
func formatPair(prefix string, a, b int) string {
	if a == b {
		return fmt.Sprintf("%s%d", prefix, a)
	}
	return fmt.Sprintf("%s%dx%d", prefix, a, b)
}
