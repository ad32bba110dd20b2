package cpuref

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// AvgPoolForward computes the average of each R×S window over the input
// padded with zeros, as PyTorch's AvgPool2d with count_include_pad=True and
// ceil_mode=False:
//
//	y[n,c,p,q] = (Σ_{r<R} Σ_{s<S} x[n,c, p·sh − ph + r, q·sw − pw + s]) / (R·S)
//
// where x outside 0 ≤ h < H, 0 ≤ w < W is 0 and still counts in R·S. The
// sum starts at +0 and adds the window's values in row-major order (r, then
// s, ascending; the padded zeros change nothing and are skipped), each
// addition rounded to T; the quotient by T(R·S) is rounded once. The GPU's
// float32 kernel performs the same operations. A NaN in a window makes its
// output NaN. y is overwritten. An error wrapping geom.ErrGeometry is
// returned, before any work, when g is invalid or a length differs from the
// shapes below.
func AvgPoolForward[T Float](g geom.AvgPoolGeom, x, y []T) error {
	// x is (N,C,H,W), y is (N,C,P,Q)
	if err := checkAvgPool("AvgPoolForward", g, lenCheck{"x", len(x), g.XLen()}, lenCheck{"y", len(y), g.YLen()}); err != nil {
		return err
	}
	if x32, ok := any(x).([]float32); ok && isAvgPool2x2(g) {
		avgPool2x2Forward32(g, x32, any(y).([]float32))
		return nil
	}
	avgPoolForward(g, x, y)
	return nil
}

// avgPoolForward is the readable form of AvgPoolForward, straight from the
// definition.
func avgPoolForward[T Float](g geom.AvgPoolGeom, x, y []T) {
	H, W, P, Q := g.H, g.W, g.P(), g.Q()
	div := T(g.R * g.S)
	for nc := 0; nc < g.N*g.C; nc++ {
		plane, yo := x[nc*H*W:(nc+1)*H*W], y[nc*P*Q:(nc+1)*P*Q]
		for p := 0; p < P; p++ {
			for q := 0; q < Q; q++ {
				var sum T
				for r := 0; r < g.R; r++ {
					h := p*g.StrideH - g.PadH + r
					if h < 0 || h >= H {
						continue
					}
					for s := 0; s < g.S; s++ {
						if w := q*g.StrideW - g.PadW + s; w >= 0 && w < W {
							sum += plane[h*W+w]
						}
					}
				}
				yo[p*Q+q] = sum / div
			}
		}
	}
}

// isAvgPool2x2 reports a 2×2 window with stride 2 and no padding, the
// shape of the fast forms.
func isAvgPool2x2(g geom.AvgPoolGeom) bool {
	return g.R == 2 && g.S == 2 && g.StrideH == 2 && g.StrideW == 2 && g.PadH == 0 && g.PadW == 0
}

// avgPool2x2Forward32 is AvgPoolForward for float32, 2×2 windows, stride 2
// and no padding, with the same operations in the same order (so the same
// bits) without the bounds tests of the general loop.
func avgPool2x2Forward32(g geom.AvgPoolGeom, x, y []float32) {
	H, W, P, Q := g.H, g.W, g.P(), g.Q()
	for nc := 0; nc < g.N*g.C; nc++ {
		plane, yo := x[nc*H*W:(nc+1)*H*W], y[nc*P*Q:(nc+1)*P*Q]
		for p := 0; p < P; p++ {
			r0, r1 := plane[2*p*W:(2*p+1)*W], plane[(2*p+1)*W:(2*p+2)*W]
			yp := yo[p*Q : (p+1)*Q]
			for q := range yp {
				var sum float32 // +0 first, as in the general form (−0 + +0 is +0)
				sum += r0[2*q]
				sum += r0[2*q+1]
				sum += r1[2*q]
				sum += r1[2*q+1]
				yp[q] = sum / 4
			}
		}
	}
}

// AvgPoolBackward overwrites dx with the gradient of AvgPoolForward:
//
//	dx[n,c,h,w] = (Σ_{(p,q) whose window covers (h,w)} dy[n,c,p,q]) / (R·S)
//
// the sum starting at +0 and taking the windows in row-major (p, then q)
// ascending order, each addition rounded to T, and the quotient by T(R·S)
// rounded once; an input that no window covers gets +0. The GPU's float32
// kernel (one thread per input element, no atomics) performs the same
// operations. An error wrapping geom.ErrGeometry is returned, before any
// work, when g is invalid or a length differs from the shapes below.
func AvgPoolBackward[T Float](g geom.AvgPoolGeom, dy, dx []T) error {
	// dy is (N,C,P,Q), dx is (N,C,H,W)
	if err := checkAvgPool("AvgPoolBackward", g, lenCheck{"dy", len(dy), g.YLen()}, lenCheck{"dx", len(dx), g.XLen()}); err != nil {
		return err
	}
	if dy32, ok := any(dy).([]float32); ok && isAvgPool2x2(g) {
		avgPool2x2Backward32(g, dy32, any(dx).([]float32))
		return nil
	}
	avgPoolBackward(g, dy, dx)
	return nil
}

// avgPoolBackward is the readable form of AvgPoolBackward: it scatters each
// dy into the sums of its window's inputs in (p, q) order, so that each
// input's sum receives its terms in that order, then divides.
func avgPoolBackward[T Float](g geom.AvgPoolGeom, dy, dx []T) {
	H, W, P, Q := g.H, g.W, g.P(), g.Q()
	clear(dx)
	for nc := 0; nc < g.N*g.C; nc++ {
		plane, d := dx[nc*H*W:(nc+1)*H*W], dy[nc*P*Q:(nc+1)*P*Q]
		for p := 0; p < P; p++ {
			for q := 0; q < Q; q++ {
				for r := 0; r < g.R; r++ {
					h := p*g.StrideH - g.PadH + r
					if h < 0 || h >= H {
						continue
					}
					for s := 0; s < g.S; s++ {
						if w := q*g.StrideW - g.PadW + s; w >= 0 && w < W {
							plane[h*W+w] += d[p*Q+q]
						}
					}
				}
			}
		}
	}
	div := T(g.R * g.S)
	for i := range dx {
		dx[i] /= div
	}
}

// avgPool2x2Backward32 is AvgPoolBackward for float32, 2×2 windows, stride
// 2 and no padding: each input has at most one window, so its value is
// (+0 + dy)/4, the same bits as the general form; inputs past the last
// window (odd H or W) get +0.
func avgPool2x2Backward32(g geom.AvgPoolGeom, dy, dx []float32) {
	H, W, P, Q := g.H, g.W, g.P(), g.Q()
	clear(dx)
	for nc := 0; nc < g.N*g.C; nc++ {
		plane, d := dx[nc*H*W:(nc+1)*H*W], dy[nc*P*Q:(nc+1)*P*Q]
		for p := 0; p < P; p++ {
			r0, r1 := plane[2*p*W:(2*p+1)*W], plane[(2*p+1)*W:(2*p+2)*W]
			for q, v := range d[p*Q : (p+1)*Q] {
				var z float32
				v = (z + v) / 4
				r0[2*q], r0[2*q+1], r1[2*q], r1[2*q+1] = v, v, v, v
			}
		}
	}
}

func checkAvgPool(op string, g geom.AvgPoolGeom, lens ...lenCheck) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("cpuref: %s: %w", op, err)
	}
	return checkLens(func() string { return op + " " + g.String() }, lens...)
}

// GlobalAvgPoolForward averages each channel plane,
//
//	y[n,c] = (Σ_{h,w} x[n,c,h,w]) / (H·W)
//
// the sum starting at +0 over h·W+w ascending, each addition rounded to T,
// and the quotient by T(H·W) rounded once (the GPU's float32 kernel, one
// thread per (n,c), performs the same operations). y is overwritten. An
// error wrapping geom.ErrGeometry is returned, before any work, when a size
// is < 1, a tensor has 2³¹ elements or more, or a length differs from the
// shapes below.
func GlobalAvgPoolForward[T Float](n, c, hw int, x, y []T) error {
	// x is (N,C,H·W), y is (N,C)
	op := func() string { return fmt.Sprintf("GlobalAvgPoolForward N=%d,C=%d,HW=%d", n, c, hw) }
	if err := checkN(op, []int{n, c, hw}, []int{n, c, hw}); err != nil {
		return err
	}
	if err := checkLens(op, lenCheck{"x", len(x), n * c * hw}, lenCheck{"y", len(y), n * c}); err != nil {
		return err
	}
	div := T(hw)
	for i := range y {
		var sum T
		for _, v := range x[i*hw : (i+1)*hw] {
			sum += v
		}
		y[i] = sum / div
	}
	return nil
}

// GlobalAvgPoolBackward overwrites dx with the gradient of
// GlobalAvgPoolForward, dx[n,c,h,w] = dy[n,c] / T(H·W) (one rounded
// quotient). An error wrapping geom.ErrGeometry is
// returned, before any work, when a size is < 1, a tensor has 2³¹
// elements or more, or a length differs from the shapes below.
func GlobalAvgPoolBackward[T Float](n, c, hw int, dy, dx []T) error {
	// dy is (N,C), dx is (N,C,H·W)
	op := func() string { return fmt.Sprintf("GlobalAvgPoolBackward N=%d,C=%d,HW=%d", n, c, hw) }
	if err := checkN(op, []int{n, c, hw}, []int{n, c, hw}); err != nil {
		return err
	}
	if err := checkLens(op, lenCheck{"dy", len(dy), n * c}, lenCheck{"dx", len(dx), n * c * hw}); err != nil {
		return err
	}
	div := T(hw)
	for i, d := range dy {
		v := d / div
		for j := i * hw; j < (i+1)*hw; j++ {
			dx[j] = v
		}
	}
	return nil
}
