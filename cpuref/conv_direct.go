package cpuref

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Float is the element type of the generic reference operations: float32
// for the training path, float64 for gradient checks.
type Float interface{ ~float32 | ~float64 }

// checkConv validates g and the lengths of the buffers named in lens
// (name, got, want), before any work.
func checkConv(op string, g geom.ConvGeom, lens ...lenCheck) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("cpuref: %s: %w", op, err)
	}
	return checkLens(func() string { return op + " " + g.String() }, lens...)
}

// lenCheck is one buffer whose length must equal want.
type lenCheck struct {
	name      string
	got, want int
}

// checkLens returns an error naming the operation described by op for the
// first length that differs. op is called only then, so that a check
// allocates nothing.
func checkLens(op func() string, lens ...lenCheck) error {
	for _, l := range lens {
		if l.got != l.want {
			return fmt.Errorf("cpuref: %s: len(%s) = %d, want %d: %w", op(), l.name, l.got, l.want, geom.ErrGeometry)
		}
	}
	return nil
}

// Conv2DForwardDirect computes the convolution (cross-correlation) of x with
// w plus the bias b, straight from its definition:
//
//	y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s w[k,c,r,s] · x[n,c, p·sh − ph + r, q·sw − pw + s]
//
// where x outside 0 ≤ h < H, 0 ≤ w < W is the zero padding. b may be nil
// (no bias). y is overwritten.
//
// The sum for one output runs over c, then r, then s, in increasing order.
// An error wrapping geom.ErrGeometry is returned, before any work, when g is
// invalid or a length differs from the shapes below.
func Conv2DForwardDirect[T Float](g geom.ConvGeom, x, w, b, y []T) error {
	// x is (N,C,H,W), w is (K,C,R,S), b is (K) or nil, y is (N,K,P,Q)
	bLen := g.K
	if b == nil {
		bLen = 0
	}
	if err := checkConv("Conv2DForwardDirect", g,
		lenCheck{"x", len(x), g.XLen()}, lenCheck{"w", len(w), g.WLen()},
		lenCheck{"b", len(b), bLen}, lenCheck{"y", len(y), g.YLen()}); err != nil {
		return err
	}
	N, C, H, W, K, R, S := g.N, g.C, g.H, g.W, g.K, g.R, g.S
	P, Q := g.P(), g.Q()
	for n := 0; n < N; n++ {
		for k := 0; k < K; k++ {
			for p := 0; p < P; p++ {
				for q := 0; q < Q; q++ {
					var sum T
					for c := 0; c < C; c++ {
						for r := 0; r < R; r++ {
							h := p*g.StrideH - g.PadH + r
							if h < 0 || h >= H {
								continue
							}
							for s := 0; s < S; s++ {
								v := q*g.StrideW - g.PadW + s
								if v < 0 || v >= W {
									continue
								}
								sum += w[((k*C+c)*R+r)*S+s] * x[((n*C+c)*H+h)*W+v]
							}
						}
					}
					if b != nil {
						sum += b[k]
					}
					y[((n*K+k)*P+p)*Q+q] = sum
				}
			}
		}
	}
	return nil
}

// Conv2DBackwardDataDirect overwrites dx with the gradient of the loss with
// respect to the input of the convolution, ∂E/∂x, given dy = ∂E/∂y:
//
//	dx[n,c,h,v] = Σ_k Σ_r Σ_s w[k,c,r,s] · dy[n,k,p,q]
//	              over p = (h + ph − r)/sh, q = (v + pw − s)/sw
//	              where those divisions are exact and 0 ≤ p < P, 0 ≤ q < Q.
//
// With stride 1 this is the full convolution of dy with w rotated by 180°.
// Every dx element is a gather (no scatter), summed over k, then r, then s.
// An error wrapping geom.ErrGeometry is returned, before any work, when g is
// invalid or a length differs from the shapes below.
func Conv2DBackwardDataDirect[T Float](g geom.ConvGeom, dy, w, dx []T) error {
	// dy is (N,K,P,Q), w is (K,C,R,S), dx is (N,C,H,W)
	if err := checkConv("Conv2DBackwardDataDirect", g,
		lenCheck{"dy", len(dy), g.YLen()}, lenCheck{"w", len(w), g.WLen()},
		lenCheck{"dx", len(dx), g.XLen()}); err != nil {
		return err
	}
	N, C, H, W, K, R, S := g.N, g.C, g.H, g.W, g.K, g.R, g.S
	P, Q := g.P(), g.Q()
	for n := 0; n < N; n++ {
		for c := 0; c < C; c++ {
			for h := 0; h < H; h++ {
				for v := 0; v < W; v++ {
					var sum T
					for k := 0; k < K; k++ {
						for r := 0; r < R; r++ {
							ph := h + g.PadH - r
							if ph < 0 || ph%g.StrideH != 0 || ph/g.StrideH >= P {
								continue
							}
							p := ph / g.StrideH
							for s := 0; s < S; s++ {
								qw := v + g.PadW - s
								if qw < 0 || qw%g.StrideW != 0 || qw/g.StrideW >= Q {
									continue
								}
								q := qw / g.StrideW
								sum += w[((k*C+c)*R+r)*S+s] * dy[((n*K+k)*P+p)*Q+q]
							}
						}
					}
					dx[((n*C+c)*H+h)*W+v] = sum
				}
			}
		}
	}
	return nil
}

// Conv2DBackwardFilterDirect overwrites dw with the gradient of the loss with
// respect to the weights, ∂E/∂w (the weight-gradient reduction):
//
//	dw[k,c,r,s] = Σ_n Σ_p Σ_q dy[n,k,p,q] · x[n,c, p·sh − ph + r, q·sw − pw + s]
//
// where x in the padding is zero. The sum runs over n, then p, then q.
// An error wrapping geom.ErrGeometry is returned, before any work, when g is
// invalid or a length differs from the shapes below.
func Conv2DBackwardFilterDirect[T Float](g geom.ConvGeom, x, dy, dw []T) error {
	// x is (N,C,H,W), dy is (N,K,P,Q), dw is (K,C,R,S)
	if err := checkConv("Conv2DBackwardFilterDirect", g,
		lenCheck{"x", len(x), g.XLen()}, lenCheck{"dy", len(dy), g.YLen()},
		lenCheck{"dw", len(dw), g.WLen()}); err != nil {
		return err
	}
	N, C, H, W, K, R, S := g.N, g.C, g.H, g.W, g.K, g.R, g.S
	P, Q := g.P(), g.Q()
	for k := 0; k < K; k++ {
		for c := 0; c < C; c++ {
			for r := 0; r < R; r++ {
				for s := 0; s < S; s++ {
					var sum T
					for n := 0; n < N; n++ {
						for p := 0; p < P; p++ {
							h := p*g.StrideH - g.PadH + r
							if h < 0 || h >= H {
								continue
							}
							for q := 0; q < Q; q++ {
								v := q*g.StrideW - g.PadW + s
								if v < 0 || v >= W {
									continue
								}
								sum += dy[((n*K+k)*P+p)*Q+q] * x[((n*C+c)*H+h)*W+v]
							}
						}
					}
					dw[((k*C+c)*R+r)*S+s] = sum
				}
			}
		}
	}
	return nil
}

// Conv2DBackwardBias overwrites db with the gradient of the loss with respect
// to the bias:
//
//	db[k] = Σ_n Σ_p Σ_q dy[n,k,p,q]
//
// summed over n, then p, then q. An error wrapping geom.ErrGeometry is returned,
// before any work, when g is invalid or a length differs from the shapes
// below.
func Conv2DBackwardBias[T Float](g geom.ConvGeom, dy, db []T) error {
	// dy is (N,K,P,Q), db is (K)
	if err := checkConv("Conv2DBackwardBias", g,
		lenCheck{"dy", len(dy), g.YLen()}, lenCheck{"db", len(db), g.K}); err != nil {
		return err
	}
	K, PQ := g.K, g.P()*g.Q()
	for k := 0; k < K; k++ {
		var sum T
		for n := 0; n < g.N; n++ {
			for _, v := range dy[(n*K+k)*PQ : (n*K+k+1)*PQ] {
				sum += v
			}
		}
		db[k] = sum
	}
	return nil
}
