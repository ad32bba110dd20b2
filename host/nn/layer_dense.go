package nn

import (
	"fmt"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/ckpt/onnx"
)

// Dense is a fully connected layer with bias, y = x·wᵀ + b; spec text
// dense<units>[nobias]. Parameters layer<i>.weight (Out,In) and
// layer<i>.bias (Out, absent with nobias), initialised with fan_in = In and
// fan_out = Out.
const Dense LayerKind = 5

// DenseLayer is a Dense of the given width.
func DenseLayer(units int) LayerSpec { return LayerSpec{Kind: Dense, Units: units} }

func init() {
	register(&kindModule{
		kind: Dense, name: "dense", in: flatInput, flattens: true,
		form: "dense<units>[nobias], e.g. dense10",
		parse: func(p *specParser, l *LayerSpec) error {
			var err error
			l.Units, err = p.number("number of units", 1)
			l.NoBias = p.flag("nobias")
			return err
		},
		format: func(l LayerSpec) string {
			if l.NoBias {
				return fmt.Sprintf("dense%dnobias", l.Units)
			}
			return fmt.Sprintf("dense%d", l.Units)
		},
		describe: func(l LayerSpec) string {
			if l.NoBias {
				return fmt.Sprintf("dense %d no bias", l.Units)
			}
			return fmt.Sprintf("dense %d", l.Units)
		},
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) {
			// The output, an activation, is bounded as every layer's; the
			// weights only by what one tensor can hold (PyTorch's MNIST
			// example has 9216×128 of them).
			if l.Units < 1 || in.C > maxTensorElems/l.Units {
				return LayerInfo{}, fmt.Errorf("%d units on %d inputs: the weights (units×inputs) must number below 2³¹", l.Units, in.C)
			}
			params := l.Units*in.C + l.Units
			if l.NoBias {
				params = l.Units * in.C
			}
			return LayerInfo{Out: Shape{C: l.Units, H: 1, W: 1, Flat: true}, Params: params}, nil
		},
		params: func(info LayerInfo) []paramSpec {
			in, out := info.In.C, info.Out.C
			ps := []paramSpec{{suffix: "weight", shape: []int{out, in}, fanIn: in, fanOut: out}}
			if !info.Spec.NoBias {
				ps = append(ps, paramSpec{suffix: "bias", shape: []int{out}})
			}
			return ps
		},
		export: func(e *exporter, n *node) error {
			w, b, err := e.weightBias(n)
			if err != nil {
				return err
			}
			e.node(onnx.Gemm(e.out(n), e.in(n), w, b, e.out(n)))
			return nil
		},
		forward: func(b *Batch, n *node) error {
			return b.be.DenseForward(b.N, n.info.In.C, n.info.Out.C, b.acts[n.in], n.params[0].Value, n.bias(), b.acts[n.out])
		},
		backward: func(b *Batch, n *node) error {
			var dx = b.dx(n)
			if !n.needDX {
				dx = nil
			}
			w := n.params[0]
			if p := n.bwdPool; p != nil { // through the max-pool and the ReLU before it (plan.go)
				g := p.info.Pool
				g.N = b.N
				var dxr backend.Tensor
				if r := p.maskReLU; r.needDX {
					dxr = b.dx(r)
				}
				return b.be.DenseBackwardPoolReLU(g, n.info.Out.C, b.acts[n.in], w.Value, b.grads[n.out], w.Grad, n.biasGrad(),
					b.argmax[p.id], b.acts[p.in], dxr)
			}
			return b.be.DenseBackward(b.N, n.info.In.C, n.info.Out.C, b.acts[n.in], w.Value, b.grads[n.out], dx, w.Grad, n.biasGrad())
		},
	})
}
