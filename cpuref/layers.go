package cpuref

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// checkN reports an error wrapping geom.ErrGeometry unless every size is ≥ 1 and
// the product of each group of sizes in prods is below 2³¹.
func checkN(op func() string, sizes []int, prods ...[]int) error {
	for _, s := range sizes {
		if s < 1 {
			return fmt.Errorf("cpuref: %s: sizes must be ≥ 1: %w", op(), geom.ErrGeometry)
		}
	}
	for _, p := range prods {
		if !geom.FitsProduct(p) {
			return fmt.Errorf("cpuref: %s: a tensor has 2³¹ elements or more: %w", op(), geom.ErrGeometry)
		}
	}
	return nil
}

// ReLUForward computes, elementwise,
//
//	y[i] = max(x[i], 0)
//
// and a NaN in x stays NaN in y. x and y may be the same slice. An error
// wrapping geom.ErrGeometry is returned, before any work, when x is empty or the
// lengths differ.
func ReLUForward[T Float](x, y []T) error {
	// x and y are (L)
	if err := checkElementwise("ReLUForward", len(x), lenCheck{"y", len(y), len(x)}); err != nil {
		return err
	}
	y = y[:len(x)]
	if x32, ok := any(x).([]float32); ok {
		vecReLU(any(y).([]float32), x32)
		return nil
	}
	for i, v := range x {
		y[i] = max(v, 0) // branch-free; max propagates NaN and max(−0, 0) = 0
	}
	return nil
}

// ReLUBackward computes, elementwise, given the forward input x,
//
//	dx[i] = dy[i] if x[i] > 0, else 0
//
// (the derivative at 0 is taken as 0). dx may be the same slice as dy. An
// error wrapping geom.ErrGeometry is returned, before any work, when x is empty
// or the lengths differ.
func ReLUBackward[T Float](x, dy, dx []T) error {
	// x, dy and dx are (L)
	if err := checkElementwise("ReLUBackward", len(x),
		lenCheck{"dy", len(dy), len(x)}, lenCheck{"dx", len(dx), len(x)}); err != nil {
		return err
	}
	if x32, ok := any(x).([]float32); ok {
		vecReLUBackward(any(dx).([]float32), x32, any(dy).([]float32))
		return nil
	}
	for i, v := range x {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = 0
		}
	}
	return nil
}

// reluBackward32 is ReLUBackward for float32 without branches, which the
// signs of x, random in training, would mispredict half the time. For
// b = bits(x) as an int32, x > 0 exactly when 1 ≤ b ≤ bits(+Inf); with
// t = b − 1 that is t ≥ 0 and t − bits(+Inf) < 0, read off the sign bits.
func reluBackward32(x, dy, dx []float32) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	const inf = 0x7f800000
	for i, v := range x {
		t := int32(math.Float32bits(v)) - 1
		mask := uint32(^(t >> 31) & ((t - inf) >> 31))
		dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & mask)
	}
}

func checkElementwise(op string, n int, lens ...lenCheck) error {
	if n < 1 || n > geom.MaxElems {
		return fmt.Errorf("cpuref: %s: length %d must be in [1, 2³¹): %w", op, n, geom.ErrGeometry)
	}
	return checkLens(func() string { return op }, lens...)
}

// MaxPoolForward computes the maximum of each R×S window, without padding,
//
//	y[n,c,p,q] = max_{r<R, s<S} x[n,c, p·sh + r, q·sw + s]
//
// and argmax[n,c,p,q] = the flat index (n·C + c)·H·W + h·W + v into x of the
// first maximum in row-major window order. A NaN wins over any number (the
// first NaN of the window), as in PyTorch. y and argmax are overwritten. An
// error wrapping geom.ErrGeometry is returned, before any work, when g is invalid
// or a length differs from the shapes below.
func MaxPoolForward[T Float](g geom.PoolGeom, x, y []T, argmax []int32) error {
	// x is (N,C,H,W), y and argmax are (N,C,P,Q)
	if err := g.Validate(); err != nil {
		return fmt.Errorf("cpuref: MaxPoolForward: %w", err)
	}
	if err := checkLens(func() string { return "MaxPoolForward " + g.String() }, lenCheck{"x", len(x), g.XLen()},
		lenCheck{"y", len(y), g.YLen()}, lenCheck{"argmax", len(argmax), g.YLen()}); err != nil {
		return err
	}
	if x32, ok := any(x).([]float32); ok && g.R == 2 && g.S == 2 {
		maxPool2x2Float32(g, x32, any(y).([]float32), argmax)
		return nil
	}
	H, W, P, Q, R, S := g.H, g.W, g.P(), g.Q(), g.R, g.S
	HW, PQ := H*W, P*Q
	for nc := 0; nc < g.N*g.C; nc++ {
		plane := x[nc*HW : (nc+1)*HW]
		yo, ao := y[nc*PQ:(nc+1)*PQ], argmax[nc*PQ:(nc+1)*PQ]
		for p := 0; p < P; p++ {
			for q := 0; q < Q; q++ {
				base := p*g.StrideH*W + q*g.StrideW // window origin in the plane
				best, m := base, plane[base]
				for r := 0; r < R; r++ {
					for i := base + r*W; i < base+r*W+S; i++ {
						if v := plane[i]; v > m || (v != v && m == m) {
							best, m = i, v
						}
					}
				}
				yo[p*Q+q] = m
				ao[p*Q+q] = int32(nc*HW + best)
			}
		}
	}
	return nil
}

// maxPool2x2Float32 is MaxPoolForward for float32 and 2×2 windows, with
// the same results. It compares integer keys that order like the floats,
// which the compiler turns into conditional moves, where the float
// comparisons would be branches that random data mispredicts.
func maxPool2x2Float32(g geom.PoolGeom, x, y []float32, argmax []int32) {
	// x is (N,C,H,W), y and argmax are (N,C,P,Q)
	H, W, P, Q := g.H, g.W, g.P(), g.Q()
	HW, PQ := H*W, P*Q
	for nc := 0; nc < g.N*g.C; nc++ {
		plane := x[nc*HW : (nc+1)*HW]
		yo, ao := y[nc*PQ:(nc+1)*PQ], argmax[nc*PQ:(nc+1)*PQ]
		for p := 0; p < P; p++ {
			h := p * g.StrideH
			r0, r1 := plane[h*W:(h+1)*W], plane[(h+1)*W:(h+2)*W]
			for q := 0; q < Q; q++ {
				v := q * g.StrideW
				// The first of the four keys that is strictly largest.
				k0, k1, k2, k3 := orderKey(r0[v]), orderKey(r0[v+1]), orderKey(r1[v]), orderKey(r1[v+1])
				bk, bi := k0, h*W+v
				if k1 > bk {
					bk, bi = k1, h*W+v+1
				}
				if k2 > bk {
					bk, bi = k2, (h+1)*W+v
				}
				if k3 > bk {
					bi = (h+1)*W + v + 1
				}
				yo[p*Q+q] = plane[bi]
				ao[p*Q+q] = int32(nc*HW + bi)
			}
		}
	}
}

// orderKey maps a float32 to an int32 with the order of the floats: −0 and
// +0 have the same key (v + 0 is +0 for both), negative floats have their
// magnitude bits flipped, and every NaN has the largest key, so that a NaN
// wins and the first NaN of a window is kept.
func orderKey(v float32) int32 {
	b := int32(math.Float32bits(v + 0))
	k := b ^ (b>>31)&0x7fffffff
	if b&0x7fffffff > 0x7f800000 {
		k = math.MaxInt32
	}
	return k
}

// MaxPoolBackward overwrites dx with the gradient routed back through the
// maxima recorded by MaxPoolForward:
//
//	dx[i] = Σ_{o : argmax[o] = i} dy[o]
//
// summed in increasing o (overlapping windows may pick the same input). An
// error wrapping geom.ErrGeometry is returned, before any work, when g is invalid,
// a length differs from the shapes below, or an argmax entry lies outside
// the (n,c) plane of its output.
func MaxPoolBackward[T Float](g geom.PoolGeom, dy []T, argmax []int32, dx []T) error {
	// dy and argmax are (N,C,P,Q), dx is (N,C,H,W)
	if err := g.Validate(); err != nil {
		return fmt.Errorf("cpuref: MaxPoolBackward: %w", err)
	}
	if err := checkLens(func() string { return "MaxPoolBackward " + g.String() }, lenCheck{"dy", len(dy), g.YLen()},
		lenCheck{"argmax", len(argmax), g.YLen()}, lenCheck{"dx", len(dx), g.XLen()}); err != nil {
		return err
	}
	HW, PQ := g.H*g.W, g.P()*g.Q()
	for nc := 0; nc < g.N*g.C; nc++ {
		lo, hi := int32(nc*HW), int32((nc+1)*HW)
		for o, a := range argmax[nc*PQ : (nc+1)*PQ] {
			if a < lo || a >= hi {
				return fmt.Errorf("cpuref: MaxPoolBackward %v: argmax[%d] = %d outside [%d, %d): %w",
					g, nc*PQ+o, a, lo, hi, geom.ErrGeometry)
			}
		}
	}
	clear(dx)
	for o, a := range argmax {
		dx[a] += dy[o]
	}
	return nil
}

// DenseForward computes the fully connected layer
//
//	y[n,o] = b[o] + Σ_i x[n,i] · w[o,i]      (y = x·wᵀ + b)
//
// summed over i in increasing order; b may be nil (no bias). y is
// overwritten. An error wrapping geom.ErrGeometry is returned, before any work,
// when a size is < 1, a tensor has 2³¹ elements or more, or a length
// differs from the shapes below.
func DenseForward[T Float](n, in, out int, x, w, b, y []T) error {
	// x is (N,In), w is (Out,In), b is (Out) or nil, y is (N,Out)
	op := func() string { return fmt.Sprintf("DenseForward N=%d,In=%d,Out=%d", n, in, out) }
	if err := checkN(op, []int{n, in, out}, []int{n, in}, []int{out, in}, []int{n, out}); err != nil {
		return err
	}
	bLen := out
	if b == nil {
		bLen = 0
	}
	if err := checkLens(op, lenCheck{"x", len(x), n * in}, lenCheck{"w", len(w), out * in},
		lenCheck{"b", len(b), bLen}, lenCheck{"y", len(y), n * out}); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		xi := x[i*in : (i+1)*in]
		for o := 0; o < out; o++ {
			var sum T
			for j, wv := range w[o*in : (o+1)*in] {
				sum += xi[j] * wv
			}
			if b != nil {
				sum += b[o]
			}
			y[i*out+o] = sum
		}
	}
	return nil
}

// DenseBackward computes the gradients of the fully connected layer, given
// its input x, weights w and dy = ∂E/∂y:
//
//	dw[o,i] = Σ_n dy[n,o] · x[n,i]     (dw = dyᵀ·x)
//	db[o]   = Σ_n dy[n,o]
//	dx[n,i] = Σ_o dy[n,o] · w[o,i]     (dx = dy·w)
//
// each summed in increasing index order. dw and db are overwritten; dx is
// overwritten when not nil (skip it for the first layer) and db may be nil
// too. An error wrapping geom.ErrGeometry is returned, before any work, when a
// size is < 1, a tensor has 2³¹ elements or more, or a length differs from
// the shapes below.
func DenseBackward[T Float](n, in, out int, x, w, dy, dx, dw, db []T) error {
	// x is (N,In), w is (Out,In), dy is (N,Out), dx is (N,In) or nil,
	// dw is (Out,In), db is (Out) or nil
	op := func() string { return fmt.Sprintf("DenseBackward N=%d,In=%d,Out=%d", n, in, out) }
	if err := checkN(op, []int{n, in, out}, []int{n, in}, []int{out, in}, []int{n, out}); err != nil {
		return err
	}
	dxLen, dbLen := n*in, out
	if dx == nil {
		dxLen = 0
	}
	if db == nil {
		dbLen = 0
	}
	if err := checkLens(op, lenCheck{"x", len(x), n * in}, lenCheck{"w", len(w), out * in},
		lenCheck{"dy", len(dy), n * out}, lenCheck{"dx", len(dx), dxLen},
		lenCheck{"dw", len(dw), out * in}, lenCheck{"db", len(db), dbLen}); err != nil {
		return err
	}
	clear(dw)
	for i := 0; i < n; i++ {
		xi := x[i*in : (i+1)*in]
		for o := 0; o < out; o++ {
			d := dy[i*out+o]
			dwo := dw[o*in : (o+1)*in]
			for j, xv := range xi {
				dwo[j] += d * xv
			}
		}
	}
	if db != nil {
		for o := 0; o < out; o++ {
			var sum T
			for i := 0; i < n; i++ {
				sum += dy[i*out+o]
			}
			db[o] = sum
		}
	}
	if dx != nil {
		clear(dx)
		for i := 0; i < n; i++ {
			dxi := dx[i*in : (i+1)*in]
			for o := 0; o < out; o++ {
				d := dy[i*out+o]
				for j, wv := range w[o*in : (o+1)*in] {
					dxi[j] += d * wv
				}
			}
		}
	}
	return nil
}
