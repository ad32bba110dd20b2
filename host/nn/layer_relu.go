package nn

import "github.com/convtrain/convtrain/host/ckpt/onnx"

// ReLU is y = max(x, 0), elementwise; spec text relu. Its backward pass
// passes the gradient where x > 0. The step plan may run it inside the
// convolution, batch norm or residual add before it (an epilogue: the
// backward pass then masks with y, since y > 0 exactly when x > 0), after
// the max-pool that follows it, or its backward pass inside the batch
// norm's before it (see plan.go).
const ReLU LayerKind = 2

func init() {
	register(&kindModule{
		kind: ReLU, name: "relu", form: "relu",
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) { return LayerInfo{Out: in}, nil },
		export: func(e *exporter, n *node) error {
			e.node(onnx.Relu(e.out(n), e.in(n), e.out(n)))
			return nil
		},
		forward: func(b *Batch, n *node) error {
			return b.be.ReLUForward(b.acts[n.in], b.acts[n.out])
		},
		backward: func(b *Batch, n *node) error {
			if !n.needDX {
				return nil
			}
			x := b.acts[n.in]
			if n.maskOut {
				x = b.acts[n.out] // the output masks as the input would: y > 0 ⇔ x > 0
			}
			return b.be.ReLUBackward(x, b.grads[n.out], b.dx(n))
		},
	})
}
