package nn

import (
	"fmt"
	"strings"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/ckpt/onnx"
)

// Concat is a block of branches from one input whose outputs are
// concatenated along the channels, as torch.cat(dim=1) (an Inception
// module, a DenseNet layer): spec text cat(<layers>|<layers>…), an empty
// branch the identity, e.g. cat(conv8x1x1|conv8x3x3p1|) gives 16 channels
// more than its input. Every branch must keep the image's height and
// width. Its layers are numbered after it, branch by branch.
const Concat LayerKind = 17

func init() {
	register(&kindModule{
		kind: Concat, name: "cat", in: imageInput,
		form: "cat(<layers>|<layers>…) (an empty branch is the identity), e.g. cat(conv8x1x1|conv8x3x3p1|)",
		format: func(l LayerSpec) string {
			parts := make([]string, len(l.Branches))
			for i, br := range l.Branches {
				parts[i] = FormatSpec(br)
			}
			return "cat(" + strings.Join(parts, "|") + ")"
		},
		describe: func(l LayerSpec) string { return fmt.Sprintf("cat (%d branches)", len(l.Branches)) },
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) {
			if len(l.Branches) == 0 {
				return LayerInfo{}, fmt.Errorf("a concatenation needs at least one branch")
			}
			return LayerInfo{Out: in}, nil
		},
	})
}

// checkConcat appends the infos of a concatenation's branches (the block's
// own is already last in *infos) and returns the block's output.
func checkConcat(l LayerSpec, in Shape, depth int, infos *[]LayerInfo) (Shape, error) {
	n := len(*infos)
	out := Shape{H: in.H, W: in.W}
	for i, br := range l.Branches {
		s, err := checkLayers(br, in, depth+1, infos)
		if err != nil {
			return in, err
		}
		if s.Flat || s.H != in.H || s.W != in.W {
			return in, fmt.Errorf("host: layer %d (%v) on input %v: branch %d gives %v: every branch must keep the %d×%d image (pad its convolutions): %w",
				n, l, in, i+1, s, in.H, in.W, ErrSpec)
		}
		out.C += s.C
	}
	if out.Len() > maxLayerElems {
		return in, fmt.Errorf("host: layer %d (%v) on input %v: output %v has more than %d elements per image: %w", n, l, in, out, maxLayerElems, ErrSpec)
	}
	return out, nil
}

// catModule is the node that closes a concatenation.
var catModule = &kindModule{
	name: "concat",
	forward: func(b *Batch, n *node) error {
		return b.be.ConcatForward(b.N, n.hw, n.cs, b.catX[n.id], b.acts[n.out])
	},
	backward: func(b *Batch, n *node) error {
		if err := b.be.ConcatBackward(b.N, n.hw, n.cs, b.grads[n.out], b.catDX[n.id]); err != nil {
			return err
		}
		for i, t := range n.ins {
			if n.needIns[i] && n.insAcc[i] {
				if err := b.be.Accumulate(b.grads[t], b.scratch[t]); err != nil {
					return err
				}
			}
		}
		return nil
	},
	export: func(e *exporter, n *node) error {
		ins := make([]string, len(n.ins))
		for i, t := range n.ins {
			ins[i] = e.names[t]
		}
		e.node(onnx.Concat(e.out(n), ins, e.out(n), 1))
		return nil
	},
}

// catTensors fills a batch's per-node lists of a concatenation's inputs
// and of where their gradients go (nil where not needed).
func (b *Batch) catTensors(n *node) {
	b.catX[n.id] = make([]backend.Tensor, len(n.ins))
	b.catDX[n.id] = make([]backend.Tensor, len(n.ins))
	for i, t := range n.ins {
		b.catX[n.id][i] = b.acts[t]
		switch {
		case !n.needIns[i]:
		case n.insAcc[i]:
			b.catDX[n.id][i] = b.scratch[t]
		default:
			b.catDX[n.id][i] = b.grads[t]
		}
	}
}
