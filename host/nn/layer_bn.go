package nn

import (
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/ckpt/onnx"
)

// BatchNorm is batch normalisation per channel, as PyTorch's BatchNorm2d
// (momentum 0.1, eps 1e-5, affine): in training each channel is
// normalised with the batch's mean and biased variance over N·H·W and the
// running mean and (unbiased) variance are updated; in evaluation
// (Batch.Eval) the running statistics normalise. Spec text bn.
// Parameters layer<i>.weight (γ, C; ones) and layer<i>.bias (β, C; zeros);
// running statistics layer<i>.running_mean (zeros) and
// layer<i>.running_var (ones), as in a PyTorch state_dict.
const BatchNorm LayerKind = 7

// The constants of BatchNorm, PyTorch's defaults.
const (
	bnMomentum = 0.1
	bnEps      = 1e-5
)

func init() {
	register(&kindModule{
		kind: BatchNorm, name: "bn", form: "bn", in: imageInput,
		describe: func(l LayerSpec) string { return "batchnorm" },
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) {
			return LayerInfo{Out: in, Params: 2 * in.C}, nil
		},
		params: func(info LayerInfo) []paramSpec {
			c := []int{info.In.C}
			return []paramSpec{
				{suffix: "weight", shape: c, fill: 1},
				{suffix: "bias", shape: c},
				{suffix: "running_mean", shape: c, buffer: true},
				{suffix: "running_var", shape: c, fill: 1, buffer: true},
			}
		},
		// The batch's μ and 1/√(σ²+ε) per channel, for the backward pass.
		scratch: func(info *LayerInfo, n int) []int { return []int{info.In.C, info.In.C} },
		forward: func(b *Batch, n *node) error {
			if s := b.m.bnSync; s != nil && !b.Eval {
				return bnSyncForward(b, n, s)
			}
			in := n.info.In
			p, tmp := n.params, b.tmp[n.id]
			// With a ReLU epilogue (plan.go) the output is the ReLU's; with
			// keepFor the conv after it reads its copy of it (plan.go): the
			// copy it keeps, or the one its forward pass alone reads (xIn).
			// copyOnly (plan.go): the copy alone where the conv keeps it.
			if c := n.keepFor; c != nil && b.xIn[c.id] != nil {
				copyOnly := n.copyOnly && b.xIn[c.id] == b.keep[c.id]
				return b.be.BatchNormForwardKeep(!b.Eval, b.N, in.C, in.H*in.W, b.acts[n.in], p[0].Value, p[1].Value, p[2].Value, p[3].Value,
					tmp[0], tmp[1], b.acts[n.y], n.epilogue, bnMomentum, bnEps, convOf(c, b.N), b.xIn[c.id], copyOnly)
			}
			return b.be.BatchNormForward(!b.Eval, b.N, in.C, in.H*in.W, b.acts[n.in], p[0].Value, p[1].Value, p[2].Value, p[3].Value,
				tmp[0], tmp[1], b.acts[n.y], n.epilogue, bnMomentum, bnEps)
		},
		backward: func(b *Batch, n *node) error {
			r := n.reluBwd // the ReLU after it, whose backward pass runs here (plan.go)
			if s := b.m.bnSync; s != nil {
				if r != nil { // unfused: the synchronised pass reads the masked gradient
					if err := r.mod.backward(b, r); err != nil {
						return err
					}
				}
				return bnSyncBackward(b, n, s)
			}
			in := n.info.In
			p, tmp := n.params, b.tmp[n.id]
			dy, relu := b.grads[n.out], backend.BNReLU{}
			if r != nil { // masked by the ReLU as its gradient is read
				dy, relu = b.grads[r.out], backend.BNReLU{Beta: p[1].Value, Y: b.acts[r.out]}
			}
			if c := n.dyFor; c != nil && c.needDX && b.dyk != nil {
				// the conv's copy of its dy made here (plan.go); dx, the
				// conv's dy and read by it alone, is wanted only as that
				// copy where the conv has no bias gradient and its backward
				// pass is the next (the device keeps one copy)
				copyOnly := c.biasGrad() == nil && !n.dxAcc && c.id+1 == n.id
				return b.be.BatchNormBackwardKeep(b.N, in.C, in.H*in.W, b.acts[n.in], p[0].Value, tmp[0], tmp[1], dy, b.dx(n),
					p[0].Grad, p[1].Grad, convOf(c, b.N), b.dyk, copyOnly, relu)
			}
			if r != nil {
				return b.be.BatchNormBackwardReLU(b.N, in.C, in.H*in.W, b.acts[n.in], p[0].Value, p[1].Value, tmp[0], tmp[1],
					b.acts[r.out], dy, b.dx(n), p[0].Grad, p[1].Grad)
			}
			return b.be.BatchNormBackward(b.N, in.C, in.H*in.W, b.acts[n.in], p[0].Value, tmp[0], tmp[1], b.grads[n.out], b.dx(n), p[0].Grad, p[1].Grad)
		},
		export: func(e *exporter, n *node) error {
			var names [4]string
			for i := range names {
				var err error
				if names[i], err = e.param(n, i); err != nil {
					return err
				}
			}
			// ONNX's momentum weighs the old running value: PyTorch's 0.1 is 0.9.
			e.node(onnx.BatchNormalization(e.out(n), e.in(n), names[0], names[1], names[2], names[3], e.out(n), bnEps, 1-bnMomentum))
			return nil
		},
	})
}
