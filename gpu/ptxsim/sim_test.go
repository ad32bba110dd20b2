package ptxsim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

func putI32(m *Machine, tb testing.TB, v []int32) uint64 {
	tb.Helper()
	p, err := m.Alloc(int64(4 * len(v)))
	if err != nil {
		tb.Fatal(err)
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		le.PutUint32(b[4*i:], uint32(x))
	}
	if err := m.Write(p, b); err != nil {
		tb.Fatal(err)
	}
	return p
}

func getI32(m *Machine, tb testing.TB, p uint64, n int) []int32 {
	tb.Helper()
	b := make([]byte, 4*n)
	if err := m.Read(p, b); err != nil {
		tb.Fatal(err)
	}
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(le.Uint32(b[4*i:]))
	}
	return v
}

func nanSlice(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

func checked() Options { return Options{CheckRaces: true, CheckUninitShared: true, Counters: true} }

func kernel(tb testing.TB, mod *Module, name string) *Kernel {
	tb.Helper()
	k, err := mod.Kernel(name)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestSaxpy(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "saxpy")
	for _, n := range []int{1, 31, 32, 33, 1000} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			m := New(checked())
			xs, ys := make([]float32, n+8), make([]float32, n+8)
			for i := range xs {
				xs[i], ys[i] = float32(i%17-8), float32(i%5)
			}
			for i := n; i < n+8; i++ { // guard band past n
				ys[i] = float32(math.NaN())
			}
			x, y := putF32(m, t, xs), putF32(m, t, ys)
			if _, err := m.Launch(k, [3]int{(n + 63) / 64, 1, 1}, [3]int{64, 1, 1}, 0,
				[]uint64{uint64(n), uint64(math.Float32bits(3)), x, y}); err != nil {
				t.Fatal(err)
			}
			got := getF32(m, t, y, n+8)
			for i := 0; i < n; i++ {
				if want := 3*xs[i] + ys[i]; got[i] != want {
					t.Fatalf("y[%d] = %g, want %g", i, got[i], want)
				}
			}
			for i := n; i < n+8; i++ {
				if !math.IsNaN(float64(got[i])) {
					t.Fatalf("guard y[%d] = %g, want NaN (written past n)", i, got[i])
				}
			}
		})
	}
}

// TestReduceShuffleBarrier runs a block reduction: grid-stride loop,
// shfl.sync.down, dynamic shared memory, bar.sync. Integer-valued inputs
// make every summation order exact.
func TestReduceShuffleBarrier(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "reduce_sum")
	for _, c := range []struct{ n, blocks, threads int }{{1, 1, 32}, {1000, 3, 128}, {4097, 8, 256}, {50, 2, 1024}} {
		t.Run(fmt.Sprintf("n=%d,blocks=%d,threads=%d", c.n, c.blocks, c.threads), func(t *testing.T) {
			m := New(checked())
			xs := make([]float32, c.n)
			for i := range xs {
				xs[i] = float32(i%11 - 5)
			}
			x := putF32(m, t, xs)
			out := putF32(m, t, nanSlice(c.blocks))
			st, err := m.Launch(k, [3]int{c.blocks, 1, 1}, [3]int{c.threads, 1, 1}, 4*c.threads/32, []uint64{x, out, uint64(c.n)})
			if err != nil {
				t.Fatal(err)
			}
			got := getF32(m, t, out, c.blocks)
			stride := c.blocks * c.threads
			for b := 0; b < c.blocks; b++ {
				var want float32
				for i := range xs {
					if i%stride/c.threads == b {
						want += xs[i]
					}
				}
				if got[b] != want {
					t.Errorf("out[%d] = %g, want %g", b, got[b], want)
				}
			}
			if st.Instructions["warp"] == 0 || st.Barriers != int64(c.blocks) {
				t.Errorf("stats %v: want warp instructions and %d barriers", st, c.blocks)
			}
		})
	}
}

func convRef(x, w []float32, N, C, H, W, K, R, S, sh, sw, ph, pw int) []float32 {
	P, Q := (H+2*ph-R)/sh+1, (W+2*pw-S)/sw+1
	y := make([]float32, N*K*P*Q)
	for n := 0; n < N; n++ {
		for k := 0; k < K; k++ {
			for p := 0; p < P; p++ {
				for q := 0; q < Q; q++ {
					var acc float32
					for c := 0; c < C; c++ {
						for r := 0; r < R; r++ {
							for s := 0; s < S; s++ {
								h, ww := p*sh-ph+r, q*sw-pw+s
								if h >= 0 && h < H && ww >= 0 && ww < W {
									acc += w[((k*C+c)*R+r)*S+s] * x[((n*C+c)*H+h)*W+ww]
								}
							}
						}
					}
					y[((n*K+k)*P+p)*Q+q] = acc
				}
			}
		}
	}
	return y
}

func TestConvDirect(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "conv_direct")
	rng := rand.New(rand.NewPCG(5, 6))
	for _, g := range [][11]int{
		{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
		{2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1},
		{1, 2, 9, 9, 3, 3, 2, 2, 3, 0, 2},
		{3, 1, 6, 11, 2, 1, 4, 3, 2, 2, 1},
	} {
		N, C, H, W, K, R, S, sh, sw, ph, pw := g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10]
		P, Q := (H+2*ph-R)/sh+1, (W+2*pw-S)/sw+1
		t.Run(fmt.Sprintf("N=%d,C=%d,H=%d,W=%d,K=%d,R=%d,S=%d,stride=%dx%d,pad=%dx%d", N, C, H, W, K, R, S, sh, sw, ph, pw), func(t *testing.T) {
			m := New(checked())
			xs := make([]float32, N*C*H*W)
			ws := make([]float32, K*C*R*S)
			for i := range xs {
				xs[i] = float32(rng.IntN(7) - 3)
			}
			for i := range ws {
				ws[i] = float32(rng.IntN(5) - 2)
			}
			x, w := putF32(m, t, xs), putF32(m, t, ws)
			y := putF32(m, t, nanSlice(N*K*P*Q))
			total := N * K * P * Q
			args := []uint64{x, w, y, uint64(N), uint64(C), uint64(H), uint64(W), uint64(K), uint64(R), uint64(S),
				uint64(sh), uint64(sw), uint64(ph), uint64(pw), uint64(P), uint64(Q)}
			if _, err := m.Launch(k, [3]int{(total + 31) / 32, 1, 1}, [3]int{32, 1, 1}, 0, args); err != nil {
				t.Fatal(err)
			}
			got := getF32(m, t, y, total)
			want := convRef(xs, ws, N, C, H, W, K, R, S, sh, sw, ph, pw)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("y[%d] = %g, want %g (integer inputs: exact)", i, got[i], want[i])
				}
			}
		})
	}
}

func TestTransposeCounters(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "transpose")
	for _, c := range []struct{ rows, cols int }{{1, 1}, {32, 32}, {45, 70}} {
		t.Run(fmt.Sprintf("rows=%d,cols=%d", c.rows, c.cols), func(t *testing.T) {
			m := New(checked())
			in := make([]float32, c.rows*c.cols)
			for i := range in {
				in[i] = float32(i)
			}
			pi := putF32(m, t, in)
			po := putF32(m, t, nanSlice(len(in)))
			st, err := m.Launch(k, [3]int{(c.cols + 31) / 32, (c.rows + 31) / 32, 1}, [3]int{32, 32, 1}, 0,
				[]uint64{pi, po, uint64(c.rows), uint64(c.cols)})
			if err != nil {
				t.Fatal(err)
			}
			got := getF32(m, t, po, len(in))
			for r := 0; r < c.rows; r++ {
				for cc := 0; cc < c.cols; cc++ {
					if got[cc*c.rows+r] != in[r*c.cols+cc] {
						t.Fatalf("out[%d][%d] = %g, want %g", cc, r, got[cc*c.rows+r], in[r*c.cols+cc])
					}
				}
			}
			// The 33-float row pitch makes both the row-wise store and the
			// column-wise load of the tile conflict-free.
			if st.SharedBankConflicts != 0 {
				t.Errorf("SharedBankConflicts = %d, want 0 with a padded tile", st.SharedBankConflicts)
			}
		})
	}
}

func TestDivergence(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "diverge")
	m := New(checked())
	n := 3 * 96
	out := putI32(m, t, make([]int32, n))
	if _, err := m.Launch(k, [3]int{3, 1, 1}, [3]int{96, 1, 1}, 0, []uint64{out}); err != nil {
		t.Fatal(err)
	}
	got := getI32(m, t, out, n)
	for i := 0; i < n; i++ {
		acc := int32(0)
		for j := 0; j < i%7; j++ {
			acc += int32(j * i)
		}
		if i&1 != 0 {
			acc = -acc
		} else {
			acc += 1000
		}
		if got[i] != acc {
			t.Errorf("out[%d] = %d, want %d", i, got[i], acc)
		}
	}
}

func TestWarpOps(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "warp_ops")
	m := New(checked())
	in := make([]int32, 32)
	for i := range in {
		in[i] = int32((i * 7) % 23)
	}
	pin := putI32(m, t, in)
	out := putI32(m, t, make([]int32, 8*32))
	if _, err := m.Launch(k, [3]int{1, 1, 1}, [3]int{32, 1, 1}, 0, []uint64{pin, out}); err != nil {
		t.Fatal(err)
	}
	got := getI32(m, t, out, 8*32)
	var ballot uint32
	any7, sum := int32(0), int32(0)
	for l, v := range in {
		if v > 10 {
			ballot |= 1 << l
		}
		if v == 7 {
			any7 = 1
		}
		sum += v
	}
	for l := 0; l < 32; l++ {
		up := in[l]
		if l >= 3 {
			up = in[l-3]
		}
		down := in[l]
		if l+3 < 32 {
			down = in[l+3]
		}
		want := []int32{in[5], up, down, in[l^6], int32(ballot), any7, 1, sum}
		for j, w := range want {
			if got[8*l+j] != w {
				t.Errorf("lane %d result %d = %d, want %d", l, j, got[8*l+j], w)
			}
		}
	}
}

func TestAtomics(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "atomics")
	const n = 64
	m := New(checked())
	g := putI32(m, t, []int32{0, -100, 1000, 0, 0, 0, 0})
	u := putI32(m, t, []int32{0})
	f := putF32(m, t, []float32{0})
	if _, err := m.Launch(k, [3]int{2, 1, 1}, [3]int{n, 1, 1}, 0, []uint64{g, u, f}); err != nil {
		t.Fatal(err)
	}
	got := getI32(m, t, g, 7)
	cas := got[3]
	want := []int32{2 * n * (n - 1) / 2, 3*(n-1) - 40, 100 - (n - 1), cas, 9, 2 * n, n - 1}
	if cas < 1 || cas > n {
		t.Errorf("cas result %d, want a thread index + 1 in [1,%d]", cas, n)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("g[%d] = %d, want %d", i, got[i], want[i])
		}
	}
	// atom.inc wraps to 0 when the old value reaches 10: 128 increments.
	if gu := getI32(m, t, u, 1)[0]; gu != 128%11 {
		t.Errorf("atom.inc result %d, want %d", gu, 128%11)
	}
	if gf := getF32(m, t, f, 1)[0]; gf != 64 {
		t.Errorf("atom.add.f32 result %g, want 64", gf)
	}
}

func TestMathKernel(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "mathops")
	const n = 8
	m := New(checked())
	xs := []float32{0.25, 2, 2.5, 3.5, -1.5, 9, 100, 0.75}
	ds := []float64{0.5, 2, 1e10, -3.7, 4, 16, 1e-3, 2.25}
	x := putF32(m, t, xs)
	dp, _ := m.Alloc(8 * n)
	db := make([]byte, 8*n)
	for i, d := range ds {
		le.PutUint64(db[8*i:], math.Float64bits(d))
	}
	m.Write(dp, db)
	yf := putF32(m, t, nanSlice(8*n))
	yi := putI32(m, t, make([]int32, 4*n))
	yd, _ := m.Alloc(16 * n)
	yu := putI32(m, t, make([]int32, 4*n))
	if _, err := m.Launch(k, [3]int{1, 1, 1}, [3]int{n, 1, 1}, 0, []uint64{x, dp, yf, yi, yd, yu}); err != nil {
		t.Fatal(err)
	}
	gf := getF32(m, t, yf, 8*n)
	gi := getI32(m, t, yi, 4*n)
	gu := getI32(m, t, yu, 4*n)
	gdb := make([]byte, 16*n)
	m.Read(yd, gdb)
	for i, v := range xs {
		wantF := []float32{float32(math.Sqrt(float64(v))), float32(math.Exp2(float64(v))), 1 / v, max(v, 0.5),
			float32(math.RoundToEven(float64(v))), float32(math.Floor(float64(v))), float32(ds[i]), float32(math.Log2(float64(v)))}
		for j, w := range wantF {
			g := gf[8*i+j]
			if math.IsNaN(float64(w)) && math.IsNaN(float64(g)) {
				continue
			}
			// ex2/lg2 are approximate (2 ulp); everything else is exact.
			tol := float32(0)
			if j == 1 || j == 7 {
				tol = 2 * (math.Nextafter32(float32(math.Abs(float64(w))), float32(math.Inf(1))) - float32(math.Abs(float64(w))))
			}
			if d := g - w; d > tol || d < -tol {
				t.Errorf("x=%g result %d = %g, want %g", v, j, g, w)
			}
		}
		tt := i
		div := tt - 3
		if div == 0 {
			div = 1
		}
		h := int32(uint32(tt)*2654435761>>7) / int32(div)
		wantI := []int32{int32(v), int32(math.RoundToEven(float64(v))), int32(int64(ds[i])), h}
		for j, w := range wantI {
			if gi[4*i+j] != w {
				t.Errorf("t=%d int result %d = %d, want %d", i, j, gi[4*i+j], w)
			}
		}
		wantD := []float64{ds[i]*2.5 + math.Sqrt(ds[i]), float64(tt) / 3}
		for j, w := range wantD {
			g := math.Float64frombits(le.Uint64(gdb[16*i+8*j:]))
			if g != w && !(math.IsNaN(g) && math.IsNaN(w)) {
				t.Errorf("t=%d f64 result %d = %g, want %g", i, j, g, w)
			}
		}
		uu := uint32(tt) * 2654435761
		wantU := []uint32{uint32(popcount(uu)), uint32(clz32(uu | 1)), reverse32(uu), uint32(uint64(uu) * 0x9E3779B97F4A7C15 >> 40)}
		for j, w := range wantU {
			if uint32(gu[4*i+j]) != w {
				t.Errorf("t=%d bit result %d = %#x, want %#x", i, j, uint32(gu[4*i+j]), w)
			}
		}
	}
}

func popcount(x uint32) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

func clz32(x uint32) int {
	n := 0
	for i := 31; i >= 0 && x>>i&1 == 0; i-- {
		n++
	}
	return n
}

func reverse32(x uint32) uint32 {
	var r uint32
	for i := 0; i < 32; i++ {
		r |= (x >> i & 1) << (31 - i)
	}
	return r
}

func TestCallAndLocal(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "call_local")
	m := New(checked())
	ys := make([]float32, 8*4)
	for i := range ys {
		ys[i] = float32(i)
	}
	y := putF32(m, t, ys)
	if _, err := m.Launch(k, [3]int{1, 1, 1}, [3]int{4, 1, 1}, 0, []uint64{y, 13}); err != nil {
		t.Fatal(err)
	}
	got := getF32(m, t, y, 8*4)
	for tt := 0; tt < 4; tt++ {
		if want := 2*ys[tt*8+5] + 1; got[tt*8] != want {
			t.Errorf("y[%d] = %g, want %g", tt*8, got[tt*8], want)
		}
	}
}

func TestDeterminism(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "reduce_sum")
	var prev []float32
	rng := rand.New(rand.NewPCG(7, 8))
	xs := make([]float32, 10000)
	for i := range xs {
		xs[i] = rng.Float32()
	}
	for run := 0; run < 3; run++ {
		m := New(Options{Workers: 2})
		x := putF32(m, t, xs)
		out := putF32(m, t, nanSlice(16))
		if _, err := m.Launch(k, [3]int{16, 1, 1}, [3]int{128, 1, 1}, 16, []uint64{x, out, uint64(len(xs))}); err != nil {
			t.Fatal(err)
		}
		got := getF32(m, t, out, 16)
		for i := range prev {
			if math.Float32bits(got[i]) != math.Float32bits(prev[i]) {
				t.Fatalf("run %d: out[%d] = %x, previous run %x", run, i, math.Float32bits(got[i]), math.Float32bits(prev[i]))
			}
		}
		prev = got
	}
}

// faultKernels are planted bugs that the checks must catch.
const faultPTX = `.version 7.0
.target sm_70
.address_size 64

.visible .entry oob(
	.param .u64 oob_param_0,
	.param .u32 oob_param_1
)
{
	.reg .b32 	%r<4>;
	.reg .b64 	%rd<4>;

	ld.param.u64 	%rd1, [oob_param_0];
	mov.u32 	%r1, %tid.x;
	mul.wide.u32 	%rd2, %r1, 4;
	add.s64 	%rd3, %rd1, %rd2;
	st.global.u32 	[%rd3], %r1;
	ret;
}

.visible .entry race(
	.param .u64 race_param_0
)
{
	.reg .b32 	%r<4>;
	.reg .b64 	%rd<4>;
	.shared .align 4 .b8 s[128];

	mov.u32 	%r1, %tid.x;
	shr.u32 	%r2, %r1, 1;
	mul.wide.u32 	%rd1, %r2, 4;
	mov.u64 	%rd2, s;
	add.s64 	%rd3, %rd2, %rd1;
	st.shared.u32 	[%rd3], %r1;
	ret;
}

.visible .entry uninit(
	.param .u64 uninit_param_0
)
{
	.reg .b32 	%r<4>;
	.reg .b64 	%rd<4>;
	.shared .align 4 .b8 s[128];

	mov.u32 	%r1, %tid.x;
	mul.wide.u32 	%rd1, %r1, 4;
	mov.u64 	%rd2, s;
	add.s64 	%rd3, %rd2, %rd1;
	setp.eq.u32 	%p1, %r1, 5;
	@%p1 bra 	$L__skip;
	st.shared.u32 	[%rd3], %r1;
$L__skip:
	bar.sync 	0;
	ld.shared.u32 	%r2, [%rd3];
	ld.param.u64 	%rd1, [uninit_param_0];
	st.global.u32 	[%rd1], %r2;
	ret;
}

.visible .entry misaligned(
	.param .u64 misaligned_param_0
)
{
	.reg .b64 	%rd<4>;

	ld.param.u64 	%rd1, [misaligned_param_0];
	st.global.u32 	[%rd1+2], 7;
	ret;
}

.visible .entry spin(
	.param .u64 spin_param_0
)
{
$L__top:
	bra.uni 	$L__top;
}

.visible .entry deadlock(
	.param .u64 deadlock_param_0
)
{
	.reg .pred 	%p<2>;
	.reg .b32 	%r<2>;

	mov.u32 	%r1, %tid.x;
	setp.lt.u32 	%p1, %r1, 16;
	@%p1 bra 	$L__other;
	bar.sync 	0;
	ret;
$L__other:
	bar.sync 	1;
	ret;
}

.visible .entry shflexited(
	.param .u64 shflexited_param_0
)
{
	.reg .pred 	%p<2>;
	.reg .b32 	%r<4>;

	mov.u32 	%r1, %tid.x;
	setp.gt.u32 	%p1, %r1, 20;
	@%p1 bra 	$L__done;
	shfl.sync.down.b32 	%r2, %r1, 16, 31, -1;
$L__done:
	ret;
}
`

func TestPlantedFaults(t *testing.T) {
	// fix the uninit kernel's missing predicate declaration
	src := strings.Replace(faultPTX, "\t.reg .b32 \t%r<4>;\n\t.reg .b64 \t%rd<4>;\n\t.shared .align 4 .b8 s[128];\n\n\tmov.u32 \t%r1, %tid.x;\n\tmul.wide",
		"\t.reg .pred \t%p<2>;\n\t.reg .b32 \t%r<4>;\n\t.reg .b64 \t%rd<4>;\n\t.shared .align 4 .b8 s[128];\n\n\tmov.u32 \t%r1, %tid.x;\n\tmul.wide", 1)
	mod, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kernel  string
		grid    int
		block   int
		bufSize int64
		opts    Options
		want    []string
	}{
		{"oob", 2, 33, 4 * 32, checked(), []string{"kernel oob", "line 17", "st.global.u32", "block (0,0,0) thread (32,0,0)",
			"out-of-bounds 4-byte global access", "byte offset 128 of the 128-byte allocation", "(4 bytes past its end)"}},
		{"race", 1, 64, 4, checked(), []string{"kernel race", "shared-memory race", "thread (1,0,0)", "written", "thread (0,0,0)", "st.shared.u32"}},
		{"uninit", 1, 32, 4, checked(), []string{"kernel uninit", "uninitialised shared memory", "thread (5,0,0)", "shared address 0x14", "ld.shared.u32"}},
		{"misaligned", 1, 1, 16, checked(), []string{"misaligned 4-byte global access", "thread (0,0,0)"}},
		{"spin", 1, 1, 4, Options{MaxInstructionsPerThread: 1000}, []string{"instruction limit of 1000", "bra.uni"}},
		{"deadlock", 1, 32, 4, Options{}, []string{"deadlock", "bar.sync"}},
		{"shflexited", 1, 32, 4, Options{}, []string{"shfl.sync.down: lane 5 reads lane 21, which has exited", "thread (5,0,0)"}},
	} {
		t.Run("kernel="+c.kernel, func(t *testing.T) {
			m := New(c.opts)
			buf, _ := m.Alloc(c.bufSize)
			args := []uint64{buf}
			if c.kernel == "oob" {
				args = append(args, 0)
			}
			_, err := m.Launch(kernel(t, mod, c.kernel), [3]int{c.grid, 1, 1}, [3]int{c.block, 1, 1}, 0, args)
			if err == nil {
				t.Fatalf("Launch(%s) = nil error, want a fault", c.kernel)
			}
			if !errors.Is(err, ErrFault) {
				t.Errorf("error %v does not wrap ErrFault", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Without the checks, the racy and uninitialised kernels run.
	m := New(Options{})
	buf, _ := m.Alloc(4)
	for _, name := range []string{"race", "uninit"} {
		if _, err := m.Launch(kernel(t, mod, name), [3]int{1, 1, 1}, [3]int{32, 1, 1}, 0, []uint64{buf}); err != nil {
			t.Errorf("Launch(%s) without checks = %v, want nil", name, err)
		}
	}
}

func TestUnsupportedAtLoad(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"\tmul24.lo.s32 %r1, %r2, %r3;", `line 19: unsupported instruction mul24.lo.s32: "mul24.lo.s32 %r1, %r2, %r3;"`},
		{"\tadd.f16 %h1, %h2, %h3;", "line 19: unsupported instruction add.f16"},
		{"\tvote.any.pred %p1, %p2;", "line 19: only vote.sync is supported"},
		{"\tbra $L__nowhere;", "unknown label $L__nowhere"},
		{"\tadd.s32 %r1, %r2, %q1;", "undeclared register %q1"},
		{"\ttex.1d.v4.f32.s32 {%f1,%f2,%f3,%f4}, [%rd1, {%r1}];", "line 19"},
		// integer modifiers
		{"\tshr.u32.bogus %r1, %r2, %r3;", `line 19: unsupported modifier .bogus of shr: "shr.u32.bogus %r1, %r2, %r3;"`},
		{"\tshl.wrap.b32 %r1, %r2, %r3;", "line 19: unsupported modifier .wrap of shl"},
		{"\tmad.lo.cc.u32 %r1, %r2, %r3, %r4;", "line 19: unsupported modifier .cc of mad"},
		{"\tmul.lo.cc.u32 %r1, %r2, %r3;", "line 19: unsupported modifier .cc of mul"},
		{"\tmul.hi.sat.s32 %r1, %r2, %r3;", "line 19: unsupported modifier .sat of mul"},
		{"\tmad.lo.sat.s32 %r1, %r2, %r3, %r4;", ".sat is only defined for mad.hi.s32"},
		{"\tmad.hi.sat.u32 %r1, %r2, %r3, %r4;", ".sat is only defined for mad.hi.s32"},
		{"\tmad.wide.sat.s32 %rd1, %r2, %r3, %rd4;", ".sat is only defined for mad.hi.s32"},
		{"\tmad.hi.lo.sat.s32 %r1, %r2, %r3, %r4;", "line 19: unsupported modifier .lo of mad"},
		{"\tmul.hi.lo.s32 %r1, %r2, %r3;", "line 19: conflicting modifiers .hi and .lo of mul"},
		{"\tmul.s32 %r1, %r2, %r3;", "line 19: mul.s32 needs a mode"},
		{"\tmul.lo.b32 %r1, %r2, %r3;", "line 19: unsupported type .b32 of mul"},
		{"\tpopc.sat.b32 %r1, %r2;", "line 19: unsupported modifier .sat of popc"},
		{"\tclz.bogus.b32 %r1, %r2;", "line 19: unsupported modifier .bogus of clz"},
		{"\tbrev.shiftamt.b32 %r1, %r2;", "line 19: unsupported modifier .shiftamt of brev"},
		{"\tbfind.bogus.u32 %r1, %r2;", "line 19: unsupported modifier .bogus of bfind"},
		{"\tbfe.clamp.u32 %r1, %r2, %r3, %r4;", "line 19: unsupported modifier .clamp of bfe"},
		{"\tbfi.wrap.b32 %r1, %r2, %r3, %r4, %r5;", "line 19: unsupported modifier .wrap of bfi"},
		{"\tabs.u32 %r1, %r2;", "line 19: unsupported type .u32 of abs"},
		{"\tadd.pred %p1, %p2, %p3;", "line 19: unsupported instruction add.pred"},
		{"\tshf.l.b32 %r1, %r2, %r3, %r4;", "line 19: shf.l.b32 needs a mode"},
		{"\tshf.l.r.wrap.b32 %r1, %r2, %r3, %r4;", "line 19: conflicting modifiers .l and .r of shf"},
		{"\tlop3.or.b32 %r1, %r2, %r3, %r4, 0x96;", "line 19: unsupported modifier .or of lop3"},
		{"\tprmt.b32.f4e.b4e %r1, %r2, %r3, %r4;", "line 19: conflicting modifiers .f4e and .b4e of prmt"},
		// comparisons and selection
		{"\tsetp.lt.bogus.s32 %p1, %r1, %r2;", "line 19: unsupported modifier .bogus of setp"},
		{"\tsetp.lt.eq.s32 %p1, %r1, %r2;", "line 19: conflicting modifiers .eq and .lt of setp"},
		{"\tsetp.s32 %p1, %r1, %r2;", "line 19: setp.s32 needs a comparison"},
		{"\tsetp.lo.s32 %p1, %r1, %r2;", "line 19: comparison .lo is not defined for .s32"},
		{"\tsetp.lt.b32 %p1, %r1, %r2;", "line 19: comparison .lt is not defined for .b32"},
		{"\tsetp.ltu.u32 %p1, %r1, %r2;", "line 19: comparison .ltu is not defined for .u32"},
		{"\tsetp.hi.f32 %p1, %f1, %f2;", "line 19: comparison .hi is not defined for .f32"},
		{"\tsetp.eq.ftz.s32 %p1, %r1, %r2;", "line 19: .ftz of setp applies to .f32 only"},
		{"\tsetp.lt.and.or.s32 %p1, %r1, %r2, %p2;", "line 19: conflicting modifiers .and and .or of setp"},
		{"\tset.lt.and.u32.s32 %r1, %r2, %r3, %p1;", "line 19: unsupported modifier .and of set"},
		{"\tselp.rn.b32 %r1, %r2, %r3, %p1;", "line 19: unsupported modifier .rn of selp"},
		{"\tslct.ftz.s32.s32 %r1, %r2, %r3, %r4;", "line 19: unsupported modifier .ftz of slct"},
		// moves and address conversions
		{"\tmov.sat.u32 %r1, %r2;", "line 19: unsupported modifier .sat of mov"},
		{"\tcvta.to.param.u64 %rd1, %rd2;", "line 19: unsupported modifier .param of cvta"},
		{"\tcvta.to.shared::cluster.u64 %rd1, %rd2;", "line 19: unsupported modifier .shared::cluster of cvta"},
		{"\tcvta.global.shared.u64 %rd1, %rd2;", "line 19: conflicting modifiers .global and .shared of cvta"},
		{"\tcvta.to.shared.u32 %r1, %r2;", "line 19: unsupported type .u32 of cvta"},
		{"\tisspacep.const %p1, %rd1;", "line 19: unsupported modifier .const of isspacep"},
		// memory, synchronisation, warp-level and float
		{"\tld.global.L2::cache_hint.u32 %r1, [%rd30], %rd2;", "line 19: unsupported modifier .L2::cache_hint of ld"},
		{"\tld.global.shared.u32 %r1, [%rd30];", "line 19: conflicting modifiers .global and .shared of ld"},
		{"\tatom.global.add.min.u32 %r1, [%rd30], 1;", "line 19: conflicting modifiers .add and .min of atom"},
		{"\tadd.L1::evict_last.s32 %r1, %r2, %r3;", "line 19: unsupported modifier .L1::evict_last of add"},
		{"\tfence.proxy.alias;", "line 19: unsupported modifier .proxy of fence"},
		{"\tmembar.bogus;", "line 19: unsupported modifier .bogus of membar"},
		{"\texit.bogus;", "line 19: unsupported modifier .bogus of exit"},
		{"\tbar.red.popc.bogus.u32 %r1, 0, %p1;", "line 19: unsupported modifier .bogus of bar"},
		{"\tbar.warp.sync.bogus -1;", "line 19: unsupported modifier .bogus of bar"},
		{"\tvote.sync.any.all.pred %p1, %p2, -1;", "line 19: conflicting modifiers .any and .all of vote"},
		{"\tvote.sync.any.b32 %r1, %p2, -1;", "line 19: unsupported type .b32 of vote"},
		{"\tredux.sync.add.b32 %r1, %r2, -1;", "line 19: unsupported type .b32 of redux"},
		{"\tshfl.sync.up.down.b32 %r1, %r2, 1, 0, -1;", "line 19: conflicting modifiers .up and .down of shfl"},
		{"\tadd.rn.rz.f32 %f1, %f2, %f3;", "line 19: conflicting modifiers .rn and .rz of add"},
		{"\ttestp.finite.bogus.f32 %p1, %f1;", "line 19: unsupported modifier .bogus of testp"},
		{"\tcopysign.rn.f32 %f1, %f2, %f3;", "line 19: unsupported modifier .rn of copysign"},
	} {
		t.Run("body="+strings.TrimSpace(c.body), func(t *testing.T) {
			_, err := Load(harness(c.body))
			if err == nil {
				t.Fatalf("Load = nil error, want an error mentioning %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load error %q does not mention %q", err, c.want)
			}
		})
	}
}

// countersPTX loads in[tid·stride] (global) and s[tid·sstride] (shared).
const countersPTX = `.version 7.0
.target sm_70
.address_size 64

.visible .entry access(
	.param .u64 access_param_0,
	.param .u32 access_param_1,
	.param .u32 access_param_2
)
{
	.reg .b32 	%r<8>;
	.reg .f32 	%f<4>;
	.reg .b64 	%rd<8>;
	.shared .align 4 .b8 s[16384];

	ld.param.u64 	%rd1, [access_param_0];
	ld.param.u32 	%r1, [access_param_1];
	ld.param.u32 	%r2, [access_param_2];
	mov.u32 	%r3, %tid.x;
	mul.lo.s32 	%r4, %r3, %r1;
	mul.wide.u32 	%rd2, %r4, 4;
	add.s64 	%rd3, %rd1, %rd2;
	ld.global.f32 	%f1, [%rd3];
	mul.lo.s32 	%r5, %r3, %r2;
	mul.wide.u32 	%rd4, %r5, 4;
	mov.u64 	%rd5, s;
	add.s64 	%rd6, %rd5, %rd4;
	st.shared.f32 	[%rd6], %f1;
	ret;
}
`

func TestCounters(t *testing.T) {
	mod, err := Load(countersPTX)
	if err != nil {
		t.Fatal(err)
	}
	k := kernel(t, mod, "access")
	for _, c := range []struct {
		stride, sstride     int
		sectors, conflicts  int64
		requests, sRequests int64
	}{
		{1, 1, 4 * 2, 0, 2, 2},      // coalesced: 128 bytes = 4 sectors per warp
		{8, 2, 32 * 2, 1 * 2, 2, 2}, // strided: one sector per thread; 2-way bank conflict
		{2, 32, 8 * 2, 31 * 2, 2, 2},
		{0, 0, 1 * 2, 0, 2, 2}, // broadcast: same word, no conflict
	} {
		t.Run(fmt.Sprintf("stride=%d,sharedStride=%d", c.stride, c.sstride), func(t *testing.T) {
			m := New(Options{Counters: true})
			buf, _ := m.Alloc(4 * 64 * 8)
			st, err := m.Launch(k, [3]int{1, 1, 1}, [3]int{64, 1, 1}, 0, []uint64{buf, uint64(c.stride), uint64(c.sstride)})
			if err != nil {
				t.Fatal(err)
			}
			if st.GlobalRequests != c.requests || st.GlobalSectors != c.sectors || st.GlobalLoadBytes != 64*4 {
				t.Errorf("global requests=%d sectors=%d bytes=%d, want %d, %d, %d", st.GlobalRequests, st.GlobalSectors, st.GlobalLoadBytes,
					c.requests, c.sectors, 64*4)
			}
			if st.SharedRequests != c.sRequests || st.SharedBankConflicts != c.conflicts || st.SharedStoreBytes != 64*4 {
				t.Errorf("shared requests=%d conflicts=%d bytes=%d, want %d, %d, %d", st.SharedRequests, st.SharedBankConflicts,
					st.SharedStoreBytes, c.sRequests, c.conflicts, 64*4)
			}
			if st.Instructions["mem.global"] != 64 || st.Instructions["mem.shared"] != 64 || st.ThreadInstructions != 64*14 {
				t.Errorf("instructions %v total %d, want 64 global, 64 shared, %d in all", st.Instructions, st.ThreadInstructions, 64*14)
			}
		})
	}
}

func TestMemoryAPI(t *testing.T) {
	m := New(Options{})
	a, err := m.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	if a == 0 || a%256 != 0 || b%256 != 0 || a == b {
		t.Fatalf("Alloc addresses %#x, %#x: want distinct, non-zero, 256-byte aligned", a, b)
	}
	data := make([]byte, 100)
	for i := range data {
		data[i] = byte(i)
	}
	if err := m.Write(a, data); err != nil {
		t.Fatal(err)
	}
	if err := m.Copy(b+10, a, 90); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 90)
	if err := m.Read(b+10, got); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != byte(i) {
			t.Fatalf("Copy: byte %d = %d, want %d", i, got[i], i)
		}
	}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"write past end", m.Write(a+1, data)},
		{"read past end", m.Read(a, make([]byte, 101))},
		{"copy past end", m.Copy(a, b, 101)},
		{"alloc 0", func() error { _, err := m.Alloc(0); return err }()},
		{"free interior", m.Free(a + 4)},
		{"read null", m.Read(0, make([]byte, 1))},
	} {
		if !errors.Is(c.err, ErrMemory) {
			t.Errorf("%s: error %v, want ErrMemory", c.name, c.err)
		}
	}
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	if err := m.Free(a); !errors.Is(err, ErrMemory) {
		t.Errorf("double free: error %v, want ErrMemory", err)
	}
	if err := m.Read(a, make([]byte, 1)); !errors.Is(err, ErrMemory) {
		t.Errorf("read after free: error %v, want ErrMemory", err)
	}
}

func TestLaunchErrors(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "saxpy")
	m := New(Options{})
	for _, c := range []struct {
		name        string
		grid, block [3]int
		shared      int
		args        []uint64
	}{
		{"too few args", [3]int{1, 1, 1}, [3]int{1, 1, 1}, 0, []uint64{1}},
		{"block too big", [3]int{1, 1, 1}, [3]int{1025, 1, 1}, 0, []uint64{1, 2, 3, 4}},
		{"zero grid", [3]int{0, 1, 1}, [3]int{1, 1, 1}, 0, []uint64{1, 2, 3, 4}},
		{"too much shared", [3]int{1, 1, 1}, [3]int{1, 1, 1}, 1 << 20, []uint64{1, 2, 3, 4}},
	} {
		if _, err := m.Launch(k, c.grid, c.block, c.shared, c.args); !errors.Is(err, ErrLaunch) {
			t.Errorf("%s: error %v, want ErrLaunch", c.name, err)
		}
	}
	if got := k.Params(); len(got) != 4 || got[0].Type != "u32" || got[1].Type != "f32" || got[2].Type != "u64" || got[2].Size != 8 {
		t.Errorf("Params() = %v, want u32, f32, u64, u64", got)
	}
	if names := mod.Kernels(); len(names) != 13 || names[0] != "saxpy" {
		t.Errorf("Kernels() = %v, want 13 kernels starting with saxpy", names)
	}
	if _, err := mod.Kernel("nope"); err == nil {
		t.Error("Kernel(nope) = nil error")
	}
}

func TestWarpSyncSharedRace(t *testing.T) {
	mod := loadTestdata(t)
	in := make([]int32, 64)
	for i := range in {
		in[i] = int32(i*i%13 - 6)
	}
	var want [2]int32
	for i, v := range in {
		want[i/32] += v
	}
	m := New(checked())
	pin := putI32(m, t, in)
	out := putI32(m, t, []int32{-1, -1})
	if _, err := m.Launch(kernel(t, mod, "warp_shared_reduce"), [3]int{1, 1, 1}, [3]int{64, 1, 1}, 0, []uint64{pin, out}); err != nil {
		t.Fatalf("warp_shared_reduce: %v (the __syncwarp-ordered reduction is race-free)", err)
	}
	if got := getI32(m, t, out, 2); got[0] != want[0] || got[1] != want[1] {
		t.Errorf("warp_shared_reduce = %v, want %v", got, want)
	}
	_, err := m.Launch(kernel(t, mod, "warp_shared_racy"), [3]int{1, 1, 1}, [3]int{64, 1, 1}, 0, []uint64{pin, out})
	if err == nil || !strings.Contains(err.Error(), "shared-memory race") {
		t.Errorf("warp_shared_racy: error %v, want a shared-memory race", err)
	}
}

func TestSm80Kernels(t *testing.T) {
	src, err := os.ReadFile("testdata/kernels_sm80.ptx")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := Load(string(src))
	if err != nil {
		t.Fatal(err)
	}
	m := New(checked())
	xs := make([]float32, 256)
	for i := range xs {
		xs[i] = float32(i) + 0.5
	}
	x := putF32(m, t, xs)
	y := putF32(m, t, nanSlice(64))
	st, err := m.Launch(kernel(t, mod, "cp_async_gather"), [3]int{1, 1, 1}, [3]int{64, 1, 1}, 0, []uint64{x, y})
	if err != nil {
		t.Fatal(err)
	}
	got := getF32(m, t, y, 64)
	for i := range got {
		if want := xs[i*5%256]; got[i] != want {
			t.Errorf("cp_async_gather y[%d] = %g, want %g", i, got[i], want)
		}
	}
	if st.GlobalLoadBytes != 64*16 {
		t.Errorf("GlobalLoadBytes = %d, want %d", st.GlobalLoadBytes, 64*16)
	}
	in := make([]int32, 96)
	for i := range in {
		in[i] = int32(i * 3)
	}
	pin := putI32(m, t, in)
	out := putI32(m, t, make([]int32, 3))
	if _, err := m.Launch(kernel(t, mod, "redux_sum"), [3]int{1, 1, 1}, [3]int{96, 1, 1}, 0, []uint64{pin, out}); err != nil {
		t.Fatal(err)
	}
	gotR := getI32(m, t, out, 3)
	for w := 0; w < 3; w++ {
		var want int32
		for _, v := range in[32*w : 32*w+32] {
			want += v
		}
		if gotR[w] != want {
			t.Errorf("redux_sum out[%d] = %d, want %d", w, gotR[w], want)
		}
	}
}

func TestConstAndBarRed(t *testing.T) {
	mod := loadTestdata(t)
	const n = 70
	m := New(checked())
	y := putF32(m, t, nanSlice(n))
	z := putI32(m, t, make([]int32, n))
	if _, err := m.Launch(kernel(t, mod, "consts_barred"), [3]int{1, 1, 1}, [3]int{n, 1, 1}, 0, []uint64{y, z}); err != nil {
		t.Fatal(err)
	}
	ctab := []float32{1.0, 2.5, -3.0, 0.125, 7.0}
	cint := []int32{7, -8, 9}
	gy, gz := getF32(m, t, y, n), getI32(m, t, z, n)
	for i := 0; i < n; i++ {
		if want := ctab[i%5] * float32(cint[i%3]); gy[i] != want {
			t.Errorf("y[%d] = %g, want %g", i, gy[i], want)
		}
		if want := int32(n/2*1000 + 100 + 10 + 0); gz[i] != want {
			t.Errorf("z[%d] = %d, want %d", i, gz[i], want)
		}
	}
}

func matmulRef(A, B, C []float32, K int) []float32 {
	D := make([]float32, 16*8)
	for i := 0; i < 16; i++ {
		for j := 0; j < 8; j++ {
			acc := float64(C[i*8+j])
			for k := 0; k < K; k++ {
				acc += float64(A[i*K+k]) * float64(B[k*8+j])
			}
			D[i*8+j] = float32(acc)
		}
	}
	return D
}

// TestMma runs the tensor-core kernels on small-integer inputs, which every
// input type holds exactly and every summation order adds exactly.
func TestMma(t *testing.T) {
	src, err := os.ReadFile("testdata/kernels_sm80.ptx")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := Load(string(src))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	ints := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.IntN(9) - 4)
		}
		return v
	}
	for _, c := range []struct {
		kernel string
		K      int
		extra  []uint64
	}{
		{"mma_tf32", 8, nil},
		{"mma_16bit", 16, []uint64{0}},
		{"mma_16bit", 16, []uint64{1}},
		{"mma_ldmatrix", 16, nil},
	} {
		t.Run(fmt.Sprintf("kernel=%s,args=%v", c.kernel, c.extra), func(t *testing.T) {
			m := New(checked())
			A, B, C := ints(16*c.K), ints(c.K*8), ints(16*8)
			pa, pb, pc := putF32(m, t, A), putF32(m, t, B), putF32(m, t, C)
			args := append([]uint64{pa, pb, pc}, c.extra...)
			if _, err := m.Launch(kernel(t, mod, c.kernel), [3]int{1, 1, 1}, [3]int{32, 1, 1}, 0, args); err != nil {
				t.Fatal(err)
			}
			got := getF32(m, t, pc, 16*8)
			want := matmulRef(A, B, C, c.K)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("D[%d][%d] = %g, want %g", i/8, i%8, got[i], want[i])
				}
			}
		})
	}
	// mma.sync needs the whole warp.
	m := New(Options{})
	p := putF32(m, t, make([]float32, 256))
	_, err = m.Launch(kernel(t, mod, "mma_tf32"), [3]int{1, 1, 1}, [3]int{16, 1, 1}, 0, []uint64{p, p, p})
	if err == nil || !strings.Contains(err.Error(), "mma.sync needs all 32 lanes") {
		t.Errorf("mma_tf32 with 16 threads: error %v, want a whole-warp error", err)
	}
}

func TestAllocReuse(t *testing.T) {
	m := New(Options{})
	seen := map[uint64]bool{}
	first, _ := m.Alloc(8)
	if err := m.Free(first); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < freeQuarantine+10; i++ {
		p, err := m.Alloc(8)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("allocation %d reuses live address %#x", i, p)
		}
		seen[p] = true
		if i < freeQuarantine && p == first {
			t.Fatalf("allocation %d reuses %#x, freed only %d frees ago", i, p, i+1)
		}
		if err := m.Free(p); err != nil {
			t.Fatal(err)
		}
		delete(seen, p)
	}
	if m.LiveBytes() != 0 {
		t.Errorf("LiveBytes() = %d, want 0", m.LiveBytes())
	}
}

// TestSourceLines checks that .loc/.file line tables (clang -lineinfo or
// -gline-tables-only) load and put the CUDA source position into errors.
func TestSourceLines(t *testing.T) {
	src := strings.Replace(faultPTX, "\tst.global.u32 \t[%rd3], %r1;", "\t.loc\t1 7 3\n\tst.global.u32 \t[%rd3], %r1;", 1) +
		"\t.section\t.debug_loc\t{\t}\n\t.file\t1 \"/src/kernels/oob.cu\"\n"
	src = strings.Replace(src, "\t.reg .b32 \t%r<4>;\n\t.reg .b64 \t%rd<4>;\n\t.shared .align 4 .b8 s[128];\n\n\tmov.u32 \t%r1, %tid.x;\n\tmul.wide",
		"\t.reg .pred \t%p<2>;\n\t.reg .b32 \t%r<4>;\n\t.reg .b64 \t%rd<4>;\n\t.shared .align 4 .b8 s[128];\n\n\tmov.u32 \t%r1, %tid.x;\n\tmul.wide", 1)
	mod, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	m := New(Options{})
	buf, _ := m.Alloc(4)
	_, err = m.Launch(kernel(t, mod, "oob"), [3]int{1, 1, 1}, [3]int{2, 1, 1}, 0, []uint64{buf, 0})
	if err == nil || !strings.Contains(err.Error(), "line 18 (oob.cu:7)") {
		t.Errorf("error %v, want it to name line 18 (oob.cu:7)", err)
	}
}

// TestGlobalVariables runs a kernel with __device__ variables twice: they
// persist between launches on one Machine and start from their initialisers
// on another.
func TestGlobalVariables(t *testing.T) {
	mod := loadTestdata(t)
	k := kernel(t, mod, "last_block_sum")
	xs := make([]float32, 1000)
	var want float32
	for i := range xs {
		xs[i] = float32(i%9 - 4)
	}
	const blocks = 7
	chunk := (len(xs) + blocks - 1) / blocks
	for b := 0; b < blocks; b++ {
		var s float32
		for i := b * chunk; i < len(xs) && i < (b+1)*chunk; i++ {
			s += xs[i]
		}
		want += s
	}
	for _, workers := range []int{1, 2} {
		m := New(Options{Workers: workers})
		x := putF32(m, t, xs)
		out := putF32(m, t, nanSlice(2))
		for launch := 0; launch < 2; launch++ {
			if _, err := m.Launch(k, [3]int{blocks, 1, 1}, [3]int{32, 1, 1}, 0, []uint64{x, out, uint64(len(xs))}); err != nil {
				t.Fatal(err)
			}
			got := getF32(m, t, out, 2)
			if got[0] != want || got[1] != float32(100+launch) {
				t.Errorf("workers=%d launch %d: out = %v, want [%g %d]", workers, launch, got, want, 100+launch)
			}
		}
	}
}

// TestCountersAcrossBarrier counts the requests of reduce_sum with one block
// of 128 threads over n = 1000: each warp makes 8 coalesced loads (4
// sectors, except the last load of warp 3, whose 8 active lanes read one
// sector), then after the barrier thread 0 makes one store.
func TestCountersAcrossBarrier(t *testing.T) {
	mod := loadTestdata(t)
	m := New(Options{Counters: true})
	x := putF32(m, t, make([]float32, 1000))
	out := putF32(m, t, make([]float32, 1))
	st, err := m.Launch(kernel(t, mod, "reduce_sum"), [3]int{1, 1, 1}, [3]int{128, 1, 1}, 16, []uint64{x, out, 1000})
	if err != nil {
		t.Fatal(err)
	}
	if st.GlobalRequests != 33 || st.GlobalSectors != 31*4+1+1 {
		t.Errorf("GlobalRequests = %d, GlobalSectors = %d, want 33 and %d", st.GlobalRequests, st.GlobalSectors, 31*4+1+1)
	}
	// 4 warp stores of one word each, then thread 0 reads the 4 words.
	if st.SharedRequests != 8 || st.SharedBankConflicts != 0 {
		t.Errorf("SharedRequests = %d, SharedBankConflicts = %d, want 8 and 0", st.SharedRequests, st.SharedBankConflicts)
	}
}

// loopBarrierPTX loads in[iter·64 + tid] in a loop of two iterations with a
// bar.sync in the body: the same load instruction runs before and after a
// barrier.
const loopBarrierPTX = `.version 7.0
.target sm_70
.address_size 64

.visible .entry loopbar(
	.param .u64 loopbar_param_0
)
{
	.reg .pred 	%p<2>;
	.reg .b32 	%r<8>;
	.reg .f32 	%f<2>;
	.reg .b64 	%rd<8>;

	ld.param.u64 	%rd1, [loopbar_param_0];
	mov.u32 	%r1, %tid.x;
	mov.u32 	%r2, 0;
$L__loop:
	mad.lo.s32 	%r3, %r2, 64, %r1;
	mul.wide.u32 	%rd2, %r3, 4;
	add.s64 	%rd3, %rd1, %rd2;
	ld.global.f32 	%f1, [%rd3];
	bar.sync 	0;
	add.s32 	%r2, %r2, 1;
	setp.lt.u32 	%p1, %r2, 2;
	@%p1 bra 	$L__loop;
	ret;
}
`

func TestCountersLoopBarrier(t *testing.T) {
	mod, err := Load(loopBarrierPTX)
	if err != nil {
		t.Fatal(err)
	}
	m := New(Options{Counters: true})
	buf := putF32(m, t, make([]float32, 128))
	st, err := m.Launch(kernel(t, mod, "loopbar"), [3]int{1, 1, 1}, [3]int{64, 1, 1}, 0, []uint64{buf})
	if err != nil {
		t.Fatal(err)
	}
	// 2 warps × 2 iterations, each a coalesced 128-byte load.
	if st.GlobalRequests != 4 || st.GlobalSectors != 16 {
		t.Errorf("GlobalRequests = %d, GlobalSectors = %d, want 4 and 16", st.GlobalRequests, st.GlobalSectors)
	}
}

func TestKernelInfo(t *testing.T) {
	mod := loadTestdata(t)
	for _, c := range []struct {
		name          string
		shared, local int
	}{
		{"saxpy", 0, 0},
		{"transpose", 32 * 33 * 4, 0},
		{"call_local", 0, 32},
	} {
		k := kernel(t, mod, c.name)
		if k.StaticSharedBytes() != c.shared || k.LocalBytes() != c.local || k.Instructions() == 0 {
			t.Errorf("%s: shared %d, local %d, instructions %d; want %d, %d, > 0", c.name,
				k.StaticSharedBytes(), k.LocalBytes(), k.Instructions(), c.shared, c.local)
		}
		if k.DynamicSharedOffset() < k.StaticSharedBytes() || k.DynamicSharedOffset()%16 != 0 {
			t.Errorf("%s: DynamicSharedOffset() = %d after %d static bytes", c.name, k.DynamicSharedOffset(), k.StaticSharedBytes())
		}
	}
}

// specialRegs are the special registers TestSpecialRegisters records, in
// record order.
var specialRegs = []string{"%tid.x", "%tid.y", "%tid.z", "%ntid.x", "%ntid.y", "%ntid.z",
	"%ctaid.x", "%ctaid.y", "%ctaid.z", "%nctaid.x", "%nctaid.y", "%nctaid.z",
	"%laneid", "%warpid", "%nwarpid", "%lanemask_eq", "%lanemask_lt", "%lanemask_le", "%lanemask_gt", "%lanemask_ge",
	"%smid", "%nsmid"}

// specialRegsPTX has each thread claim a record with an atomic counter (so
// that where it writes depends on no special register) and store every
// register of specialRegs there.
func specialRegsPTX() string {
	var b strings.Builder
	b.WriteString(`.version 7.0
.target sm_70
.address_size 64

.visible .entry sregs(
	.param .u64 sregs_param_0,
	.param .u64 sregs_param_1
)
{
	.reg .b32 	%r<40>;
	.reg .b64 	%rd<8>;

	ld.param.u64 	%rd1, [sregs_param_0];
	ld.param.u64 	%rd2, [sregs_param_1];
	atom.global.add.u32 	%r0, [%rd1], 1;
`)
	fmt.Fprintf(&b, "\tmul.wide.u32 \t%%rd3, %%r0, %d;\n\tadd.s64 \t%%rd4, %%rd2, %%rd3;\n", 4*len(specialRegs))
	for i, r := range specialRegs {
		fmt.Fprintf(&b, "\tmov.u32 \t%%r%d, %s;\n\tst.global.u32 \t[%%rd4+%d], %%r%d;\n", i+1, r, 4*i, i+1)
	}
	b.WriteString("\tret;\n}\n")
	return b.String()
}

// TestSpecialRegisters launches a 3-D grid of 3-D blocks (blocks of 60
// threads: a full warp and a partial one) and checks the special registers
// of every thread against values computed here: the thread's index in its
// block is x + y·ntid.x + z·ntid.x·ntid.y, its lane that index mod 32 and
// its warp the index / 32, as CUDA forms warps.
func TestSpecialRegisters(t *testing.T) {
	mod, err := Load(specialRegsPTX())
	if err != nil {
		t.Fatal(err)
	}
	k := kernel(t, mod, "sregs")
	for _, c := range []struct{ grid, block [3]int }{
		{[3]int{3, 2, 2}, [3]int{5, 3, 4}},
		{[3]int{1, 4, 3}, [3]int{2, 4, 8}},
		{[3]int{2, 1, 1}, [3]int{1, 1, 7}},
	} {
		t.Run(fmt.Sprintf("grid=%v,block=%v", c.grid, c.block), func(t *testing.T) {
			nb := c.block[0] * c.block[1] * c.block[2]
			n := c.grid[0] * c.grid[1] * c.grid[2] * nb
			nr := len(specialRegs)
			m := New(Options{})
			counter := putI32(m, t, []int32{0})
			poison := make([]int32, n*nr)
			for i := range poison {
				poison[i] = -0x21524111 // 0xdeadbeef
			}
			recs := putI32(m, t, poison)
			if _, err := m.Launch(k, c.grid, c.block, 0, []uint64{counter, recs}); err != nil {
				t.Fatal(err)
			}
			if got := getI32(m, t, counter, 1)[0]; int(got) != n {
				t.Fatalf("%d threads ran, want %d", got, n)
			}
			raw := getI32(m, t, recs, n*nr)
			seen := map[[6]int]bool{}
			for i := range n {
				r := make([]uint32, nr)
				for j := range r {
					r[j] = uint32(raw[i*nr+j])
				}
				tid, ctaid := [3]int{int(r[0]), int(r[1]), int(r[2])}, [3]int{int(r[6]), int(r[7]), int(r[8])}
				for d := range 3 {
					if tid[d] >= c.block[d] || ctaid[d] >= c.grid[d] {
						t.Fatalf("record %d: %%tid %v, %%ctaid %v out of block %v, grid %v", i, tid, ctaid, c.block, c.grid)
					}
				}
				key := [6]int{tid[0], tid[1], tid[2], ctaid[0], ctaid[1], ctaid[2]}
				if seen[key] {
					t.Fatalf("record %d: thread %%tid %v of block %%ctaid %v ran twice", i, tid, ctaid)
				}
				seen[key] = true
				lin := tid[0] + tid[1]*c.block[0] + tid[2]*c.block[0]*c.block[1]
				lane := uint32(lin % 32)
				want := map[string]uint32{
					"%ntid.x": uint32(c.block[0]), "%ntid.y": uint32(c.block[1]), "%ntid.z": uint32(c.block[2]),
					"%nctaid.x": uint32(c.grid[0]), "%nctaid.y": uint32(c.grid[1]), "%nctaid.z": uint32(c.grid[2]),
					"%laneid": lane, "%warpid": uint32(lin / 32),
					"%nwarpid":     uint32((nb + 31) / 32), // the simulator's: warps of the block
					"%lanemask_eq": 1 << lane,
					"%lanemask_lt": 1<<lane - 1,
					"%lanemask_le": uint32(uint64(1)<<(lane+1) - 1),
					"%lanemask_gt": ^uint32(uint64(1)<<(lane+1) - 1),
					"%lanemask_ge": ^uint32(1<<lane - 1),
					"%smid":        0, "%nsmid": 1, // one simulated SM
				}
				for j, name := range specialRegs {
					if w, ok := want[name]; ok && r[j] != w {
						t.Errorf("thread %%tid %v of block %%ctaid %v: %s = %#x, want %#x", tid, ctaid, name, r[j], w)
					}
				}
			}
			if len(seen) != n {
				t.Errorf("%d distinct threads, want %d", len(seen), n)
			}
		})
	}
}
