package nn

import (
	"fmt"
	"strings"
)

// Residual is a residual block, y = f(x) + s(x): its main branch f and its
// shortcut s are sequences of layers from the block's input, the shortcut
// the identity when absent. Spec text res(<layers>[|<shortcut layers>]),
// e.g. res(conv16x3x3p1,relu,conv16x3x3p1) or, where the shape changes,
// res(conv32x3x3s2p1,relu,conv32x3x3p1|conv32x1x1s2). Both branches must
// give the same shape. Its layers are numbered after it, main branch
// first, and name their parameters by those numbers. The backward pass
// sends ∂E/∂y into both branches and sums what they return for x.
const Residual LayerKind = 6

func init() {
	register(&kindModule{
		kind: Residual, name: "res",
		form: "res(<layers>[|<shortcut layers>]), e.g. res(conv16x3x3p1,relu,conv16x3x3p1) or res(conv32x3x3s2p1,relu,conv32x3x3p1|conv32x1x1s2)",
		format: func(l LayerSpec) string {
			parts := make([]string, len(l.Branches))
			for i, br := range l.Branches {
				parts[i] = FormatSpec(br)
			}
			return "res(" + strings.Join(parts, "|") + ")"
		},
		describe: func(l LayerSpec) string {
			if len(l.Branches) > 1 && len(l.Branches[1]) > 0 {
				return "res (main, then shortcut)"
			}
			return "res (identity shortcut)"
		},
		// The block's output is its branches' (checkResidual); nothing runs
		// for the block itself: the graph holds its layers and an add.
		infer: func(l LayerSpec, in Shape) (LayerInfo, error) {
			if len(l.Branches) == 0 || len(l.Branches) > 2 || len(l.Branches[0]) == 0 {
				return LayerInfo{}, fmt.Errorf("a residual block has a main branch of at least one layer and at most one shortcut, not %d branches", len(l.Branches))
			}
			return LayerInfo{Out: in}, nil
		},
	})
}

// checkResidual appends the infos of a residual block's branches (the
// block's own is already last in *infos) and returns the block's output.
func checkResidual(l LayerSpec, in Shape, depth int, infos *[]LayerInfo) (Shape, error) {
	n := len(*infos)
	main, err := checkLayers(l.Branches[0], in, depth+1, infos)
	if err != nil {
		return in, err
	}
	short := in
	if len(l.Branches) > 1 {
		if short, err = checkLayers(l.Branches[1], in, depth+1, infos); err != nil {
			return in, err
		}
	}
	if main != short {
		what := "the shortcut (the identity)"
		if len(l.Branches) > 1 && len(l.Branches[1]) > 0 {
			what = "the shortcut"
		}
		return in, fmt.Errorf("host: layer %d (%v) on input %v: the main branch gives %v but %s %v: both must give the same shape (a shortcut such as conv%dx1x1s<stride> matches channels and size): %w",
			n, l, in, main, what, short, main.C, ErrSpec)
	}
	return main, nil
}
