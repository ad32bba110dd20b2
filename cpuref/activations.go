package cpuref

import (
	"fmt"
	"math"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Activations as PyTorch defines them (torch.nn.LeakyReLU, Sigmoid, Tanh,
// SiLU, GELU). Every operation works elementwise on a tensor of any shape,
// (L) below.
//
// Numerics. float64 (and any element type other than float32) evaluates
// the formulas in float64 with Go's math package. float32 evaluates the
// libm-free float32 functions of mathf.go (exp from kernels/mathf.cuh's
// twin; expm1, tanh, sigmoid, erf and erfc from documented polynomials),
// which the GPU kernels reproduce bit for bit: cpuref/testdata/actf_check.cc
// is their C form over kernels/mathf.cuh, compared with the Go functions
// bit for bit by TestMathfTwinsAgainstC, ready for a kernel to include.
//
// Backward passes take the forward input x (leaky ReLU, SiLU, GELU) or the
// forward output y (sigmoid, tanh), as PyTorch saves them, and compute
// dx = dy·g with g the derivative rounded to the element type, then the
// product rounded, unless stated otherwise.

// GELUApprox selects the form of GELU, as torch.nn.GELU's approximate
// argument.
type GELUApprox int

const (
	// GELUErf is the exact form x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (approximate='none').
	GELUErf GELUApprox = iota
	// GELUTanh is 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (approximate='tanh').
	GELUTanh
)

// String is the name PyTorch gives the form: "none" or "tanh".
func (a GELUApprox) String() string {
	switch a {
	case GELUErf:
		return "none"
	case GELUTanh:
		return "tanh"
	}
	return fmt.Sprintf("GELUApprox(%d)", int(a))
}

// mapUnary sets y[i] = f(x[i]): f32 when T is float32, else f64 in float64
// rounded to T.
func mapUnary[T Float](x, y []T, f32 func(float32) float32, f64 func(float64) float64) {
	y = y[:len(x)]
	if x32, ok := any(x).([]float32); ok {
		y32 := any(y).([]float32)
		for i, v := range x32 {
			y32[i] = f32(v)
		}
		return
	}
	for i, v := range x {
		y[i] = T(f64(float64(v)))
	}
}

// mapGrad sets dx[i] = dy[i]·g(x[i]) with g rounded to T first: g32 when T
// is float32, else g64 in float64.
func mapGrad[T Float](x, dy, dx []T, g32 func(float32) float32, g64 func(float64) float64) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	if x32, ok := any(x).([]float32); ok {
		dy32, dx32 := any(dy).([]float32), any(dx).([]float32)
		for i, v := range x32 {
			dx32[i] = dy32[i] * g32(v)
		}
		return
	}
	for i, v := range x {
		dx[i] = dy[i] * T(g64(float64(v)))
	}
}

// LeakyReLUForward computes, elementwise, with slope the negative slope
// (PyTorch's default 0.01),
//
//	y[i] = x[i] if x[i] > 0, else slope·x[i]
//
// (one rounded product; a NaN stays NaN). x and y may be the same slice.
// An error wrapping geom.ErrGeometry is returned, before any work, when x
// is empty or has 2³¹ elements or more, or the lengths differ.
func LeakyReLUForward[T Float](x, y []T, slope T) error {
	// x and y are (L)
	if err := checkElementwise("LeakyReLUForward", len(x), lenCheck{"y", len(y), len(x)}); err != nil {
		return err
	}
	y = y[:len(x)]
	for i, v := range x {
		if v > 0 {
			y[i] = v
		} else {
			y[i] = slope * v
		}
	}
	return nil
}

// LeakyReLUBackward computes, elementwise, given the forward input x,
//
//	dx[i] = dy[i] if x[i] > 0, else slope·dy[i]
//
// (the derivative at 0 is taken as slope, and a NaN x gives slope·dy,
// as PyTorch does). dx may be the
// same slice as dy. Errors are those of LeakyReLUForward.
func LeakyReLUBackward[T Float](x, dy, dx []T, slope T) error {
	// x, dy and dx are (L)
	if err := checkElementwise("LeakyReLUBackward", len(x),
		lenCheck{"dy", len(dy), len(x)}, lenCheck{"dx", len(dx), len(x)}); err != nil {
		return err
	}
	dy, dx = dy[:len(x)], dx[:len(x)]
	for i, v := range x {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = slope * dy[i]
		}
	}
	return nil
}

// sigmoidParts64 is sigmoidParts in float64.
func sigmoidParts64(z float64) (s, sp, e, d float64) {
	e = math.Exp(-math.Abs(z))
	d = 1 + e
	r := e / d
	if z >= 0 {
		s = 1 / d
	} else {
		s = r
	}
	return s, r / d, e, d
}

func sigmoid64(x float64) float64 {
	s, _, _, _ := sigmoidParts64(x)
	return s
}

func timesSigmoid64(x, z float64) float64 {
	_, _, e, d := sigmoidParts64(z)
	if z >= 0 {
		return x / d
	}
	return x * e / d
}

// SigmoidForward computes, elementwise,
//
//	y[i] = σ(x[i]) = 1/(1 + e^−x[i])
//
// as 1/(1 + e^−x) for x ≥ 0 and e^x/(1 + e^x) below (sigmoidParts), so that
// neither tail loses relative accuracy; float32 with sigmoidf32. A NaN
// stays NaN. x and y may be the same slice. An error wrapping
// geom.ErrGeometry is returned, before any work, when x is empty or has 2³¹
// elements or more, or the lengths differ.
func SigmoidForward[T Float](x, y []T) error {
	// x and y are (L)
	if err := checkElementwise("SigmoidForward", len(x), lenCheck{"y", len(y), len(x)}); err != nil {
		return err
	}
	mapUnary(x, y, sigmoidf32, sigmoid64)
	return nil
}

// SigmoidBackward computes, elementwise, given the forward output y, as
// PyTorch does,
//
//	dx[i] = (dy[i]·(1 − y[i]))·y[i]
//
// every operation rounded to T in that order. dx may be the same slice as
// dy. Errors are those of SigmoidForward.
func SigmoidBackward[T Float](y, dy, dx []T) error {
	// y, dy and dx are (L)
	if err := checkElementwise("SigmoidBackward", len(y),
		lenCheck{"dy", len(dy), len(y)}, lenCheck{"dx", len(dx), len(y)}); err != nil {
		return err
	}
	dy, dx = dy[:len(y)], dx[:len(y)]
	for i, v := range y {
		dx[i] = T(dy[i]*(1-v)) * v
	}
	return nil
}

// TanhForward computes, elementwise, y[i] = tanh(x[i]): math.Tanh in
// float64, tanhf32 in float32 (em/(em + 2) with em = e^(2|x|) − 1, the sign
// put back). A NaN stays NaN. x and y may be the same slice. An error
// wrapping geom.ErrGeometry is returned, before any work, when x is empty
// or has 2³¹ elements or more, or the lengths differ.
func TanhForward[T Float](x, y []T) error {
	// x and y are (L)
	if err := checkElementwise("TanhForward", len(x), lenCheck{"y", len(y), len(x)}); err != nil {
		return err
	}
	mapUnary(x, y, tanhf32, math.Tanh)
	return nil
}

// TanhBackward computes, elementwise, given the forward output y, as
// PyTorch does,
//
//	dx[i] = dy[i]·(1 − y[i]·y[i])
//
// every operation rounded to T in that order. dx may be the same slice as
// dy. Errors are those of TanhForward.
func TanhBackward[T Float](y, dy, dx []T) error {
	// y, dy and dx are (L)
	if err := checkElementwise("TanhBackward", len(y),
		lenCheck{"dy", len(dy), len(y)}, lenCheck{"dx", len(dx), len(y)}); err != nil {
		return err
	}
	dy, dx = dy[:len(y)], dx[:len(y)]
	for i, v := range y {
		dx[i] = dy[i] * (1 - T(v*v))
	}
	return nil
}

// SiLUForward computes, elementwise, the SiLU (swish)
//
//	y[i] = x[i]·σ(x[i])
//
// as x/(1 + e^−x) for x ≥ 0 and (x·e^x)/(1 + e^x) below (timesSigmoidf32 in
// float32). A NaN stays NaN. x and y may be the same slice. An error
// wrapping geom.ErrGeometry is returned, before any work, when x is empty
// or has 2³¹ elements or more, or the lengths differ.
func SiLUForward[T Float](x, y []T) error {
	// x and y are (L)
	if err := checkElementwise("SiLUForward", len(x), lenCheck{"y", len(y), len(x)}); err != nil {
		return err
	}
	mapUnary(x, y, siluf32, func(v float64) float64 { return timesSigmoid64(v, v) })
	return nil
}

// SiLUBackward computes, elementwise, given the forward input x,
//
//	dx[i] = dy[i]·(σ(x) + x·σ'(x)),   σ'(x) = e/(1 + e)², e = e^−|x|
//
// (siluGradf32 in float32). dx may be the same slice as dy. Errors are
// those of SiLUForward.
func SiLUBackward[T Float](x, dy, dx []T) error {
	// x, dy and dx are (L)
	if err := checkElementwise("SiLUBackward", len(x),
		lenCheck{"dy", len(dy), len(x)}, lenCheck{"dx", len(dx), len(x)}); err != nil {
		return err
	}
	mapGrad(x, dy, dx, siluGradf32, func(v float64) float64 {
		s, sp, _, _ := sigmoidParts64(v)
		return s + v*sp
	})
	return nil
}

// geluErf64 is x·Φ(x) with Φ(x) = ½·erfc(−x/√2) (erfc keeps the negative
// tail accurate).
func geluErf64(x float64) float64 { return x * 0.5 * math.Erfc(-x/math.Sqrt2) }

// geluErfGrad64 is Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
func geluErfGrad64(x float64) float64 {
	return 0.5*math.Erfc(-x/math.Sqrt2) + x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
}

// geluTanhZ64 is z = 2·√(2/π)·(x + 0.044715·x³) in float64.
func geluTanhZ64(x float64) float64 { return geluK * (x + geluC*x*x*x) }

func geluTanh64(x float64) float64 { return timesSigmoid64(x, geluTanhZ64(x)) }

func geluTanhGrad64(x float64) float64 {
	s, sp, _, _ := sigmoidParts64(geluTanhZ64(x))
	if math.Abs(x) > 1e100 { // z' overflows: the gradient is σ(z), 0 or 1
		return s
	}
	return s + x*sp*geluK*(1+gelu3C*x*x)
}

// checkGELU validates approx.
func checkGELU(op string, approx GELUApprox) error {
	if approx != GELUErf && approx != GELUTanh {
		return fmt.Errorf("cpuref: %s: unknown GELU form %v, want GELUErf or GELUTanh: %w", op, approx, geom.ErrHyperparameter)
	}
	return nil
}

// GELUForward computes, elementwise, the GELU of PyTorch's
// torch.nn.GELU(approximate=approx.String()):
//
//	GELUErf:  y = x·Φ(x) = ½·x·erfc(−x/√2)
//	GELUTanh: y = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) = x·σ(z),
//	          z = 2·√(2/π)·(x + 0.044715·x³)
//
// the tanh form evaluated as x·σ(z) (timesSigmoidf32 in float32, which
// avoids the cancellation of 1 + tanh for negative x), the erf form with
// erfc (geluErff32 in float32: Taylor erf near 0, e^(−a²)·t·Q(t) beyond). A NaN stays NaN. x and y may be
// the same slice. An error wrapping geom.ErrGeometry is returned, before
// any work, when x is empty or has 2³¹ elements or more, or the lengths
// differ; one wrapping geom.ErrHyperparameter for an unknown approx.
func GELUForward[T Float](x, y []T, approx GELUApprox) error {
	// x and y are (L)
	if err := checkGELU("GELUForward", approx); err != nil {
		return err
	}
	if err := checkElementwise("GELUForward", len(x), lenCheck{"y", len(y), len(x)}); err != nil {
		return err
	}
	if approx == GELUTanh {
		mapUnary(x, y, geluTanhf32, geluTanh64)
	} else {
		mapUnary(x, y, geluErff32, geluErf64)
	}
	return nil
}

// GELUBackward computes, elementwise, given the forward input x,
//
//	GELUErf:  dx = dy·(Φ(x) + x·φ(x)),  φ(x) = e^(−x²/2)/√(2π)
//	GELUTanh: dx = dy·(σ(z) + x·σ'(z)·z'),  z' = 2·√(2/π)·(1 + 3·0.044715·x²)
//
// (geluTanhGradf32 and geluErfGradf32 in float32). dx may be the same slice as dy. Errors are those of
// GELUForward.
func GELUBackward[T Float](x, dy, dx []T, approx GELUApprox) error {
	// x, dy and dx are (L)
	if err := checkGELU("GELUBackward", approx); err != nil {
		return err
	}
	if err := checkElementwise("GELUBackward", len(x),
		lenCheck{"dy", len(dy), len(x)}, lenCheck{"dx", len(dx), len(x)}); err != nil {
		return err
	}
	if approx == GELUTanh {
		mapGrad(x, dy, dx, geluTanhGradf32, geluTanhGrad64)
	} else {
		mapGrad(x, dy, dx, geluErfGradf32, geluErfGrad64)
	}
	return nil
}
