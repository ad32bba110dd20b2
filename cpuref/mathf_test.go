package cpuref

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFma32 checks the emulated fused multiply-add against the exact value
// a·b + c computed with math/big and rounded to float32 by it, on random
// operands, operands whose product nearly cancels c, and halfway cases.
func TestFma32(t *testing.T) {
	rng := newRand(50)
	exact := func(a, b, c float32) float32 {
		p := new(big.Float).SetPrec(200).SetFloat64(float64(a))
		p.Mul(p, new(big.Float).SetPrec(200).SetFloat64(float64(b)))
		p.Add(p, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
		f, _ := p.Float32()
		return f
	}
	rnd := func() float32 {
		return math.Float32frombits(uint32(rng.Uint64())&^0x7f800000 | uint32(100+rng.IntN(56))<<23)
	}
	bad := 0
	for i := 0; i < 200000 && bad < 5; i++ {
		a, b := rnd(), rnd()
		var c float32
		switch i % 4 {
		case 0:
			c = rnd()
		case 1: // near cancellation: c ≈ −a·b
			c = -float32(float64(a) * float64(b))
		case 2: // c nudged by an ulp off −a·b
			c = math.Nextafter32(-float32(float64(a)*float64(b)), 0)
		default: // a·b exactly halfway between floats plus tiny c
			a, b = 1+0x1p-23, 1+0x1p-1
			c = float32(rng.IntN(3)-1) * 0x1p-60
		}
		if got, want := fma32(a, b, c), exact(a, b, c); math.Float32bits(got) != math.Float32bits(want) {
			t.Errorf("fma32(%x, %x, %x) = %x, want %x", a, b, c, got, want)
			bad++
		}
	}
	if got := fma32(float32(math.Inf(1)), 0, 1); got == got {
		t.Errorf("fma32(Inf, 0, 1) = %g, want NaN", got)
	}
}

// TestMathfTwinsAgainstC builds testdata/actf_check.cc, the C form of the
// float32 functions on top of kernels/mathf.cuh, with the flags of the
// kernels' own check (-ffp-contract=off, fma through __builtin_fmaf), and
// compares its bits with the Go twins: every 131071st float32 bit pattern,
// 8193 values evenly spaced in [−12, 12], and the special values.
func TestMathfTwinsAgainstC(t *testing.T) {
	var compilers [][]string
	if cc := os.Getenv("CC"); cc != "" {
		compilers = append(compilers, strings.Fields(cc))
	}
	for _, c := range []string{"clang-19", "cc", "gcc", "clang"} {
		if path, err := exec.LookPath(c); err == nil {
			compilers = append(compilers, []string{path})
		}
	}
	if len(compilers) == 0 {
		t.Skip("needs a C compiler (clang-19, cc or gcc; or set CC) to build testdata/actf_check.cc")
	}
	bin := filepath.Join(t.TempDir(), "actf_check")
	var failures []string
	built := false
	for _, cc := range compilers {
		args := append(cc[1:], "-x", "c++", "-std=c++20", "-O2", "-ffp-contract=off", "-fno-fast-math",
			"-o", bin, filepath.Join("testdata", "actf_check.cc"), "-lm")
		out, err := exec.Command(cc[0], args...).CombinedOutput()
		if err == nil {
			built = true
			break
		}
		failures = append(failures, fmt.Sprintf("%s %s: %v\n%s", cc[0], strings.Join(args, " "), err, out))
	}
	if !built {
		t.Fatalf("cannot build testdata/actf_check.cc:\n%s", strings.Join(failures, "\n"))
	}
	out, err := exec.Command(bin, "131071", "8192").Output()
	if err != nil {
		t.Fatalf("actf_check: %v", err)
	}
	twins := map[string]func(float32) float32{
		"expf": expf32, "expm1f": expm1f32, "tanhf": tanhf32, "sigmoidf": sigmoidf32, "siluf": siluf32,
		"silu_gradf": siluGradf32, "gelu_tanhf": geluTanhf32, "gelu_tanh_gradf": geluTanhGradf32,
		"gelu_erff": geluErff32, "gelu_erf_gradf": geluErfGradf32,
	}
	counts := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			t.Fatalf("actf_check: bad line %q", sc.Text())
		}
		fn, ok := twins[f[0]]
		xb, err1 := strconv.ParseUint(f[1], 0, 32)
		yb, err2 := strconv.ParseUint(f[2], 0, 32)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("actf_check: bad line %q", sc.Text())
		}
		x := math.Float32frombits(uint32(xb))
		got := math.Float32bits(fn(x))
		// NaN results: any NaN matches (payloads are not part of the contract).
		if got != uint32(yb) && !(math.IsNaN(float64(fn(x))) && math.IsNaN(float64(math.Float32frombits(uint32(yb))))) {
			if counts[f[0]+" bad"]++; counts[f[0]+" bad"] <= 3 {
				t.Errorf("%s(%g = %#08x) = %#08x in Go, %#08x in C", f[0], x, xb, got, yb)
			}
		}
		counts[f[0]]++
	}
	for name := range twins {
		if counts[name] < 40000 {
			t.Errorf("%s: %d inputs checked, want ≥ 40000", name, counts[name])
		}
	}
}

// TestMathfAccuracy bounds the error of the float32 functions against
// float64 math on the float32 input, over every 65521st bit pattern and a
// dense sweep of [−20, 20]: |got − want| ≤ ulps·(1 + cond(x))·ulp(want) +
// atol. The bounds are the measured maxima rounded up (expf32's documented
// 1 ulp; the others lose up to a few ulp to the extra operations). atol is
// at least 2^−126: a subnormal e^x has fewer significant bits, so results
// below the normal range are bounded absolutely; the gradients cancel near
// their zeros, hence 1e-7 there. GELU's z(x) is rounded (relative 2^−24 of
// up to |z| ≈ 90) before the exponential, which amplifies that error by
// cond(x) = |x·z'(x)·(1 − σ(z))|, GELU's condition number (up to ~250 in
// the negative tail); no float32 evaluation of z avoids it. The exact
// GELU's e^(−x²/2) (inside erfc, and φ) has the same conditioning, x².
func TestMathfAccuracy(t *testing.T) {
	sigmoid := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	z := func(x float64) float64 { return geluK * (x + geluC*x*x*x) }
	geluCond := func(x float64) float64 { return math.Abs(x * geluK * (1 + 3*geluC*x*x) * (1 - sigmoid(z(x)))) }
	for _, c := range []struct {
		name       string
		got        func(float32) float32
		want       func(float64) float64
		ulps, atol float64
		cond       func(x float64) float64 // nil: 0
	}{
		{"expf", expf32, math.Exp, 1, 0, nil},
		{"expm1f", expm1f32, math.Expm1, 2, 0, nil},
		{"tanhf", tanhf32, math.Tanh, 2.5, 0, nil},
		{"sigmoidf", sigmoidf32, sigmoid, 2.5, 0, nil},
		{"siluf", siluf32, func(x float64) float64 { return x * sigmoid(x) }, 3, 0, nil},
		{"silu_gradf", siluGradf32, func(x float64) float64 { s := sigmoid(x); return s * (1 + x*(1-s)) }, 2, 1e-7, nil},
		{"gelu_tanhf", geluTanhf32, func(x float64) float64 { return x * sigmoid(z(x)) }, 2, 0, geluCond},
		{"gelu_tanh_gradf", geluTanhGradf32, func(x float64) float64 {
			s := sigmoid(z(x))
			return s + x*s*(1-s)*geluK*(1+3*geluC*x*x)
		}, 2, 1e-7, nil},
		{"gelu_erff", geluErff32, geluErf64, 4, 0, func(x float64) float64 { return x * x }},
		{"gelu_erf_gradf", geluErfGradf32, geluErfGrad64, 4, 1e-7, func(x float64) float64 { return x * x }},
	} {
		t.Run("func="+c.name, func(t *testing.T) {
			worst, worstX := 0.0, float32(0)
			check := func(x float32) {
				want := c.want(float64(x))
				got := float64(c.got(x))
				if math.IsNaN(want) || math.IsNaN(got) {
					if math.IsNaN(want) != math.IsNaN(got) {
						t.Errorf("%s(%g) = %g, want %g", c.name, x, got, want)
					}
					return
				}
				if math.IsInf(want, 0) || math.Abs(want) > math.MaxFloat32 {
					if got != float64(float32(want)) {
						t.Errorf("%s(%g) = %g, want %g", c.name, x, got, float32(want))
					}
					return
				}
				ulp := math.Max(math.Abs(float64(math.Nextafter32(float32(want), float32(math.Inf(1)))-float32(want))), 0x1p-149)
				bound := c.ulps
				if c.cond != nil {
					bound *= 1 + c.cond(float64(x))
				}
				e := (math.Abs(got-want) - math.Max(c.atol, 0x1p-126)) / ulp / bound
				if e > worst {
					worst, worstX = e, x
				}
			}
			for u := uint64(0); u < 1<<32; u += 65521 {
				check(math.Float32frombits(uint32(u)))
			}
			for k := 0; k <= 40000; k++ {
				check(float32(float64(k)/1000 - 20))
			}
			if worst > 1 {
				t.Errorf("%s: error %.3g × the bound (%g ulp × (1 + cond)) at x = %g (%#08x)", c.name, worst, c.ulps, worstX, math.Float32bits(worstX))
			} else {
				t.Logf("%s: max error %.3g × the bound (%g ulp × (1 + cond)) at x = %g", c.name, worst, c.ulps, worstX)
			}
		})
	}
}
