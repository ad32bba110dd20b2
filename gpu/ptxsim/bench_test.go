package ptxsim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

func loadTestdata(tb testing.TB) *Module {
	tb.Helper()
	src, err := os.ReadFile("testdata/kernels.ptx")
	if err != nil {
		tb.Fatal(err)
	}
	mod, err := Load(string(src))
	if err != nil {
		tb.Fatal(err)
	}
	return mod
}

func putF32(m *Machine, tb testing.TB, v []float32) uint64 {
	tb.Helper()
	p, err := m.Alloc(int64(4 * len(v)))
	if err != nil {
		tb.Fatal(err)
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		le.PutUint32(b[4*i:], math.Float32bits(x))
	}
	if err := m.Write(p, b); err != nil {
		tb.Fatal(err)
	}
	return p
}

func getF32(m *Machine, tb testing.TB, p uint64, n int) []float32 {
	tb.Helper()
	b := make([]byte, 4*n)
	if err := m.Read(p, b); err != nil {
		tb.Fatal(err)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(le.Uint32(b[4*i:]))
	}
	return v
}

// BenchmarkSim runs the direct-convolution test kernel and reports simulated
// thread-instructions per second.
func BenchmarkSim(b *testing.B) {
	mod := loadTestdata(b)
	k, err := mod.Kernel("conv_direct")
	if err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			m := New(Options{Workers: workers})
			N, C, H, W, K, R, S := 2, 8, 16, 16, 8, 3, 3
			P, Q := H, W
			rng := rand.New(rand.NewPCG(1, 2))
			xs := make([]float32, N*C*H*W)
			for i := range xs {
				xs[i] = float32(rng.IntN(9) - 4)
			}
			ws := make([]float32, K*C*R*S)
			for i := range ws {
				ws[i] = float32(rng.IntN(5) - 2)
			}
			x, w := putF32(m, b, xs), putF32(m, b, ws)
			y := putF32(m, b, make([]float32, N*K*P*Q))
			total := N * K * P * Q
			args := []uint64{x, w, y, uint64(N), uint64(C), uint64(H), uint64(W), uint64(K), uint64(R), uint64(S), 1, 1, 1, 1, uint64(P), uint64(Q)}
			var instr int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st, err := m.Launch(k, [3]int{(total + 127) / 128, 1, 1}, [3]int{128, 1, 1}, 0, args)
				if err != nil {
					b.Fatal(err)
				}
				instr += st.ThreadInstructions
			}
			b.ReportMetric(float64(instr)/b.Elapsed().Seconds()/1e6, "Minstr/s")
		})
	}
}

// BenchmarkLaunchOverhead measures a launch of a one-block kernel with
// 256 threads that do almost nothing.
func BenchmarkLaunchOverhead(b *testing.B) {
	mod := loadTestdata(b)
	k, err := mod.Kernel("saxpy")
	if err != nil {
		b.Fatal(err)
	}
	m := New(Options{Workers: 1})
	x := putF32(m, b, make([]float32, 1))
	_ = x
	for i := 0; i < b.N; i++ {
		if _, err := m.Launch(k, [3]int{1, 1, 1}, [3]int{256, 1, 1}, 0, []uint64{0, 0, x, x}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProjectConvFwd runs the project's conv2d_fwd_v1_direct kernel
// (../../kernels/conv.ptx) on an MNIST-sized layer, N=8, C=8, 14×14, K=16,
// 3×3, pad 1, and reports simulated thread-instructions per second.
func BenchmarkProjectConvFwd(b *testing.B) {
	src, err := os.ReadFile("../../kernels/conv.ptx")
	if err != nil {
		b.Fatal(err)
	}
	mod, err := Load(string(src))
	if err != nil {
		b.Fatal(err)
	}
	k, err := mod.Kernel("conv2d_fwd_v1_direct")
	if err != nil {
		b.Fatal(err)
	}
	N, C, H, W, K, R, S := 8, 8, 14, 14, 16, 3, 3
	P, Q := H, W
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			m := New(Options{Workers: workers})
			x := putF32(m, b, make([]float32, N*C*H*W))
			w := putF32(m, b, make([]float32, K*C*R*S))
			bias := putF32(m, b, make([]float32, K))
			y := putF32(m, b, make([]float32, N*K*P*Q))
			total := N * K * P * Q
			args := []uint64{x, w, bias, y, uint64(N), uint64(C), uint64(H), uint64(W), uint64(K), uint64(R), uint64(S),
				uint64(P), uint64(Q), 1, 1, 1, 1}
			var instr int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st, err := m.Launch(k, [3]int{(total + 255) / 256, 1, 1}, [3]int{256, 1, 1}, 0, args)
				if err != nil {
					b.Fatal(err)
				}
				instr += st.ThreadInstructions
			}
			b.ReportMetric(float64(instr)/b.Elapsed().Seconds()/1e6, "Minstr/s")
		})
	}
}
