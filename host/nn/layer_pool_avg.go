package nn

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/ckpt/onnx"
)

// AvgPool is the mean over R×S windows with a stride and zero padding,
// the padded zeros counted (PyTorch's AvgPool2d with its default
// count_include_pad); spec text avgpool<R>[x<S>][s<stride>][p<pad>] (the
// stride defaults to the window). PyTorch allows padding up to half the
// window.
const AvgPool LayerKind = 8

// GlobalAvgPool is the mean of each channel over the image, (C,H,W) →
// (C,1,1), as PyTorch's AdaptiveAvgPool2d(1); spec text gap.
const GlobalAvgPool LayerKind = 9

func init() {
	register(&kindModule{
		kind: AvgPool, name: "avgpool", in: imageInput,
		form:   "avgpool<R>[x<S>][s<stride>][p<pad>], e.g. avgpool2 or avgpool3s1p1",
		parse:  func(p *specParser, l *LayerSpec) error { return p.window(l, true) },
		format: func(l LayerSpec) string { return formatWindow("avgpool", l) },
		describe: func(l LayerSpec) string {
			sh, sw := strideOr(l.StrideH, l.KernelH), strideOr(l.StrideW, l.KernelW)
			return fmt.Sprintf("avgpool %d×%d stride %d×%d pad %d×%d", l.KernelH, l.KernelW, sh, sw, l.PadH, l.PadW)
		},
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) {
			g := avgGeom(l, in)
			if l.KernelH > in.H+2*l.PadH || l.KernelW > in.W+2*l.PadW {
				return LayerInfo{}, fmt.Errorf("the %d×%d window is larger than its %d×%d input padded by %d×%d", l.KernelH, l.KernelW, in.H, in.W, l.PadH, l.PadW)
			}
			if err := g.Validate(); err != nil {
				return LayerInfo{}, err
			}
			return LayerInfo{Out: Shape{C: g.C, H: g.P(), W: g.Q()}}, nil
		},
		forward: func(b *Batch, n *node) error {
			g := avgGeom(n.info.Spec, n.info.In)
			g.N = b.N
			return b.be.AvgPoolForward(g, b.acts[n.in], b.acts[n.out])
		},
		backward: func(b *Batch, n *node) error {
			if !n.needDX {
				return nil
			}
			g := avgGeom(n.info.Spec, n.info.In)
			g.N = b.N
			return b.be.AvgPoolBackward(g, b.grads[n.out], b.dx(n))
		},
		export: func(e *exporter, n *node) error {
			g := avgGeom(n.info.Spec, n.info.In)
			e.node(onnx.AveragePool(e.out(n), e.in(n), e.out(n), onnx.NewWindow(g.R, g.S, g.StrideH, g.StrideW, g.PadH, g.PadW)))
			return nil
		},
	})
	register(&kindModule{
		kind: GlobalAvgPool, name: "gap", form: "gap", in: imageInput,
		describe: func(l LayerSpec) string { return "global avgpool" },
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) {
			return LayerInfo{Out: Shape{C: in.C, H: 1, W: 1}}, nil
		},
		forward: func(b *Batch, n *node) error {
			in := n.info.In
			return b.be.GlobalAvgPoolForward(b.N, in.C, in.H*in.W, b.acts[n.in], b.acts[n.out])
		},
		backward: func(b *Batch, n *node) error {
			if !n.needDX {
				return nil
			}
			in := n.info.In
			return b.be.GlobalAvgPoolBackward(b.N, in.C, in.H*in.W, b.grads[n.out], b.dx(n))
		},
		export: func(e *exporter, n *node) error {
			e.node(onnx.GlobalAveragePool(e.out(n), e.in(n), e.out(n)))
			return nil
		},
	})
}

// avgGeom is the geometry of an AvgPool layer l on input in, with N = 1.
func avgGeom(l LayerSpec, in Shape) geom.AvgPoolGeom {
	return geom.AvgPoolGeom{N: 1, C: in.C, H: in.H, W: in.W, R: l.KernelH, S: l.KernelW,
		StrideH: strideOr(l.StrideH, l.KernelH), StrideW: strideOr(l.StrideW, l.KernelW), PadH: l.PadH, PadW: l.PadW}
}
