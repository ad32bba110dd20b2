package nn

import (
	"fmt"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/ckpt/onnx"
)

// Dropout drops each element with probability p in training and scales the
// kept ones by 1/(1−p) (PyTorch's inverted dropout); in evaluation
// (Batch.Eval) it passes its input through. Spec text dropout<P>, p = P/100
// (dropout50: p = 0.5). The masks come from a counter-based generator
// keyed by the model's dropout seed, the layer's number and the step
// (Model.SetDropoutSeed, Steps), so the CPU and the GPU draw the same mask
// bit for bit and a resumed run draws the masks of the straight one; the
// backward pass draws its mask again instead of storing it. It exports as
// nothing (an Identity).
const Dropout LayerKind = 16

func init() {
	register(&kindModule{
		kind: Dropout, name: "dropout", form: "dropout<P> (p = P/100, below 100), e.g. dropout50",
		parse: func(p *specParser, l *LayerSpec) error {
			v, err := p.number("drop probability in hundredths P", 0)
			if err != nil {
				return err
			}
			if v >= 100 {
				return p.bad("drop probability %d/100 must be below 1", v)
			}
			l.Drop = float32(v) / 100
			return nil
		},
		format:   func(l LayerSpec) string { return fmt.Sprintf("dropout%d", int(l.Drop*100+0.5)) },
		describe: func(l LayerSpec) string { return fmt.Sprintf("dropout %g", l.Drop) },
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) {
			if !(l.Drop >= 0 && l.Drop < 1) {
				return LayerInfo{}, fmt.Errorf("drop probability %g must be in [0, 1)", l.Drop)
			}
			return LayerInfo{Out: in}, nil
		},
		forward: func(b *Batch, n *node) error {
			p := n.info.Spec.Drop
			if b.Eval {
				p = 0 // the identity: y = x·1·1
			}
			return b.be.DropoutForward(dropoutKey(b, n), p, b.acts[n.in], b.acts[n.out])
		},
		backward: func(b *Batch, n *node) error {
			if !n.needDX {
				return nil
			}
			return b.be.DropoutBackward(dropoutKey(b, n), n.info.Spec.Drop, b.grads[n.out], b.dx(n))
		},
		export: func(e *exporter, n *node) error {
			e.node(onnx.Identity(e.out(n), e.in(n), e.out(n)))
			return nil
		},
	})
}

// dropoutKey is the mask of node n at the model's current step.
func dropoutKey(b *Batch, n *node) backend.DropoutKey {
	return backend.DropoutKey{Seed: b.m.dropoutSeed, Stream: uint32(n.layer), Step: uint64(b.m.steps), At: b.m.at}
}
