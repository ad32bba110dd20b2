// Package geom is the leaf that the CPU reference (cpuref) and the GPU
// runtime (gpu) share: the geometry of every operation, the limits every
// implementation enforces, the error kinds they wrap, and the scalars of
// an Adam step, which both compute the same way.
//
// Shape letters, used in every doc comment:
//
//	N batch, C input channels, H×W input size, K filters (output channels),
//	R×S kernel size, P×Q output size.
//
// Tensors are row-major NCHW, weights KCRS. Convolution is cross-correlation
// over a window with stride and zero padding per axis:
//
//	y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[n,c, p·sh − ph + r, q·sw − pw + s]
//	P = (H + 2ph − R)/sh + 1,  Q = (W + 2pw − S)/sw + 1
//
// Invalid geometry is an error returned before any work.
package geom

import (
	"errors"
	"fmt"
	"math"
)

// ErrGeometry is wrapped by every error about sizes, strides, padding or
// buffer lengths.
var ErrGeometry = errors.New("invalid geometry")

// MaxElems bounds every tensor's element count so that int32 indexing in
// the GPU kernels can never overflow.
const MaxElems = math.MaxInt32

// ConvGeom is the geometry of one 2-D convolution.
type ConvGeom struct {
	N, C, H, W       int // input: batch, channels, height, width
	K, R, S          int // filters and kernel height, width
	StrideH, StrideW int // ≥ 1
	PadH, PadW       int // ≥ 0 zero padding on each side
}

// P is the output height (H + 2·PadH − R)/StrideH + 1.
func (g ConvGeom) P() int { return outSize(g.H, g.PadH, g.R, g.StrideH) }

// Q is the output width (W + 2·PadW − S)/StrideW + 1.
func (g ConvGeom) Q() int { return outSize(g.W, g.PadW, g.S, g.StrideW) }

func outSize(in, pad, k, stride int) int {
	if stride < 1 {
		return 0
	}
	d := in + 2*pad - k
	if d < 0 {
		return 0
	}
	return d/stride + 1
}

// XLen is N·C·H·W, WLen K·C·R·S, YLen N·K·P·Q.
func (g ConvGeom) XLen() int { return g.N * g.C * g.H * g.W }

// WLen is the number of weights, K·C·R·S.
func (g ConvGeom) WLen() int { return g.K * g.C * g.R * g.S }

// YLen is the number of outputs, N·K·P·Q.
func (g ConvGeom) YLen() int { return g.N * g.K * g.P() * g.Q() }

// FLOPs of one pass (forward, backward-data or backward-filter):
// 2·N·K·P·Q·C·R·S.
func (g ConvGeom) FLOPs() float64 {
	return 2 * float64(g.N) * float64(g.K) * float64(g.P()) * float64(g.Q()) *
		float64(g.C) * float64(g.R) * float64(g.S)
}

// String gives the key=value form used in test and benchmark names.
func (g ConvGeom) String() string {
	return fmt.Sprintf("N=%d,C=%d,H=%d,W=%d,K=%d,R=%d,S=%d,stride=%dx%d,pad=%dx%d",
		g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.StrideH, g.StrideW, g.PadH, g.PadW)
}

// Validate reports whether the geometry is usable: every size ≥ 1, strides
// ≥ 1, padding ≥ 0, P and Q ≥ 1, and every
// tensor's element count below 2³¹.
func (g ConvGeom) Validate() error {
	switch {
	case g.N < 1 || g.C < 1 || g.H < 1 || g.W < 1 || g.K < 1 || g.R < 1 || g.S < 1:
		return fmt.Errorf("geom: conv %v: sizes must be ≥ 1: %w", g, ErrGeometry)
	case g.StrideH < 1 || g.StrideW < 1:
		return fmt.Errorf("geom: conv %v: strides must be ≥ 1: %w", g, ErrGeometry)
	case g.PadH < 0 || g.PadW < 0:
		return fmt.Errorf("geom: conv %v: padding must be ≥ 0: %w", g, ErrGeometry)
	}
	for _, d := range []int{g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.StrideH, g.StrideW, g.PadH, g.PadW} {
		if d > MaxElems {
			return fmt.Errorf("geom: conv %v: dimension too large: %w", g, ErrGeometry)
		}
	}
	if g.P() < 1 || g.Q() < 1 {
		return fmt.Errorf("geom: conv %v: output %d×%d is empty: %w", g, g.P(), g.Q(), ErrGeometry)
	}
	for _, dims := range [][]int{{g.N, g.C, g.H, g.W}, {g.K, g.C, g.R, g.S}, {g.N, g.K, g.P(), g.Q()}, {g.C, g.R, g.S, g.P(), g.Q()}} {
		if !FitsProduct(dims) {
			return fmt.Errorf("geom: conv %v: a tensor has 2³¹ elements or more: %w", g, ErrGeometry)
		}
	}
	return nil
}

// PoolGeom is the geometry of a max-pool without padding.
type PoolGeom struct {
	N, C, H, W       int // input
	R, S             int // window height, width
	StrideH, StrideW int
}

// P is the output height (H − R)/StrideH + 1.
func (g PoolGeom) P() int { return outSize(g.H, 0, g.R, g.StrideH) }

// Q is the output width (W − S)/StrideW + 1.
func (g PoolGeom) Q() int { return outSize(g.W, 0, g.S, g.StrideW) }

// XLen is N·C·H·W.
func (g PoolGeom) XLen() int { return g.N * g.C * g.H * g.W }

// YLen is N·C·P·Q.
func (g PoolGeom) YLen() int { return g.N * g.C * g.P() * g.Q() }

// String gives the key=value form used in test and benchmark names.
func (g PoolGeom) String() string {
	return fmt.Sprintf("N=%d,C=%d,H=%d,W=%d,R=%d,S=%d,stride=%dx%d",
		g.N, g.C, g.H, g.W, g.R, g.S, g.StrideH, g.StrideW)
}

// Validate reports whether the pooling geometry is usable: sizes and strides
// ≥ 1, an output of at least 1×1, and element counts below 2³¹.
func (g PoolGeom) Validate() error {
	switch {
	case g.N < 1 || g.C < 1 || g.H < 1 || g.W < 1 || g.R < 1 || g.S < 1:
		return fmt.Errorf("geom: pool %v: sizes must be ≥ 1: %w", g, ErrGeometry)
	case g.StrideH < 1 || g.StrideW < 1:
		return fmt.Errorf("geom: pool %v: strides must be ≥ 1: %w", g, ErrGeometry)
	case g.P() < 1 || g.Q() < 1:
		return fmt.Errorf("geom: pool %v: output is empty: %w", g, ErrGeometry)
	case !FitsProduct([]int{g.N, g.C, g.H, g.W}):
		return fmt.Errorf("geom: pool %v: input has 2³¹ elements or more: %w", g, ErrGeometry)
	}
	return nil
}

// FitsProduct reports whether the product of positive dims is below 2³¹.
func FitsProduct(dims []int) bool {
	p := 1
	for _, d := range dims {
		if d < 1 || p > MaxElems/d {
			return false
		}
		p *= d
	}
	return p <= MaxElems
}
