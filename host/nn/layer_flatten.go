package nn

import "github.com/convtrain/convtrain/host/ckpt/onnx"

// Flatten views an image (C,H,W) as a vector (C·H·W); spec text flatten
// (implicit before a dense layer on an image). No data moves: its output
// and gradient are its input's.
const Flatten LayerKind = 4

func init() {
	register(&kindModule{
		kind: Flatten, name: "flatten", form: "flatten", flattens: true,
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) {
			return LayerInfo{Out: Shape{C: in.Len(), H: 1, W: 1, Flat: true}}, nil
		},
		export: func(e *exporter, n *node) error {
			e.node(onnx.Flatten(e.out(n), e.in(n), e.out(n)))
			return nil
		},
		forward:  func(b *Batch, n *node) error { return nil },
		backward: func(b *Batch, n *node) error { return nil },
	})
}
