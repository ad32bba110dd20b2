package nn

import (
	"fmt"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/ckpt/onnx"
)

// The activations besides ReLU, elementwise, as PyTorch defines them and
// as cpuref computes them in float32 (the bits every backend gives):
//
//	leakyrelu[<N>]  LeakyReLU: x if x > 0, else slope·x; slope N/100 (default 1: 0.01)
//	sigmoid         1/(1 + e^−x)
//	tanh            tanh x
//	silu            x·sigmoid(x)
//	gelu            x·Φ(x) (GELU, approximate='none')
//	gelutanh        GELU, approximate='tanh'
const (
	LeakyReLU LayerKind = 10
	Sigmoid   LayerKind = 11
	Tanh      LayerKind = 12
	SiLU      LayerKind = 13
	GELU      LayerKind = 14
	GELUTanh  LayerKind = 15
)

func init() {
	for _, a := range []struct {
		kind LayerKind
		name string
		act  backend.Activation
		onnx func(e *exporter, x, y string) []onnx.Node
	}{
		{LeakyReLU, "leakyrelu", backend.LeakyReLU, nil},
		{Sigmoid, "sigmoid", backend.Sigmoid, func(e *exporter, x, y string) []onnx.Node { return []onnx.Node{onnx.Sigmoid(y, x, y)} }},
		{Tanh, "tanh", backend.Tanh, func(e *exporter, x, y string) []onnx.Node { return []onnx.Node{onnx.Tanh(y, x, y)} }},
		{SiLU, "silu", backend.SiLU, func(e *exporter, x, y string) []onnx.Node { return onnx.SiLU(y, x, y) }},
		{GELU, "gelu", backend.GELUErf, func(e *exporter, x, y string) []onnx.Node { return onnx.Gelu(y, x, y, false, e.opset) }},
		{GELUTanh, "gelutanh", backend.GELUTanh, func(e *exporter, x, y string) []onnx.Node { return onnx.Gelu(y, x, y, true, e.opset) }},
	} {
		m := &kindModule{
			kind: a.kind, name: a.name, form: a.name,
			infer: func(l LayerSpec, in Shape) (LayerInfo, error) { return LayerInfo{Out: in}, nil },
			forward: func(b *Batch, n *node) error {
				return b.be.ActivationForward(a.act, slope(n.info.Spec), b.acts[n.in], b.acts[n.out])
			},
			backward: func(b *Batch, n *node) error {
				if !n.needDX {
					return nil
				}
				return b.be.ActivationBackward(a.act, slope(n.info.Spec), b.acts[n.in], b.acts[n.out], b.grads[n.out], b.dx(n))
			},
		}
		if a.onnx != nil {
			m.export = func(e *exporter, n *node) error {
				e.node(a.onnx(e, e.in(n), e.out(n))...)
				return nil
			}
		}
		if a.kind == LeakyReLU {
			m.form = "leakyrelu[<N>] (slope N/100; leakyrelu is 0.01), e.g. leakyrelu or leakyrelu20"
			m.parse = func(p *specParser, l *LayerSpec) error {
				if p.pos < len(p.toks) && p.toks[p.pos].isNum {
					v, err := p.number("slope in hundredths", 0)
					if err != nil {
						return err
					}
					l.Slope = float32(v) / 100
				}
				return nil
			}
			m.format = func(l LayerSpec) string {
				if l.Slope == 0 || l.Slope == 0.01 {
					return "leakyrelu"
				}
				return fmt.Sprintf("leakyrelu%d", int(l.Slope*100+0.5))
			}
			m.describe = func(l LayerSpec) string { return fmt.Sprintf("leaky relu %g", slope(l)) }
			m.export = func(e *exporter, n *node) error {
				e.node(onnx.LeakyRelu(e.out(n), e.in(n), e.out(n), slope(n.info.Spec)))
				return nil
			}
		}
		register(m)
	}
}

// slope is a LeakyReLU's negative slope.
func slope(l LayerSpec) float32 {
	if l.Slope == 0 {
		return 0.01
	}
	return l.Slope
}
