package dist

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"
)

// sequentialSum is the reference of SumInRankOrder written as one process
// accumulating micro-batch gradients: the buffer takes micro-batch 0's
// gradient, then each later one is added in turn.
func sequentialSum(parts [][]float32) []float32 {
	acc := append([]float32(nil), parts[0]...)
	for _, p := range parts[1:] {
		for i, v := range p {
			acc[i] += v
		}
	}
	return acc
}

// orderSensitiveParts returns p parts of n values whose float32 sum depends
// on the order of the additions: magnitudes spread over 2^±20, both signs.
func orderSensitiveParts(seed int64, p, n int) [][]float32 {
	rng := rand.New(rand.NewSource(seed))
	parts := make([][]float32, p)
	for r := range parts {
		parts[r] = make([]float32, n)
		for i := range parts[r] {
			parts[r][i] = float32(rng.NormFloat64() * math.Ldexp(1, rng.Intn(41)-20))
		}
	}
	return parts
}

func TestSumInRankOrder(t *testing.T) {
	for _, tc := range []struct{ p, n int }{{1, 1}, {1, 7}, {2, 5}, {3, 1000}, {5, 33}, {8, 257}} {
		t.Run(fmt.Sprintf("P=%d,n=%d", tc.p, tc.n), func(t *testing.T) {
			parts := orderSensitiveParts(int64(tc.p*1000+tc.n), tc.p, tc.n)
			flat := make([]float32, 0, tc.p*tc.n)
			for _, part := range parts {
				flat = append(flat, part...)
			}
			before := append([]float32(nil), flat...)
			dst := make([]float32, tc.n)
			for i := range dst {
				dst[i] = float32(math.NaN())
			}
			if err := SumInRankOrder(dst, flat); err != nil {
				t.Fatalf("SumInRankOrder: %v", err)
			}
			want := sequentialSum(parts)
			for i := range dst {
				if math.Float32bits(dst[i]) != math.Float32bits(want[i]) {
					t.Fatalf("dst[%d] = %g (%#08x), want %g (%#08x)", i, dst[i], math.Float32bits(dst[i]), want[i], math.Float32bits(want[i]))
				}
			}
			for i := range flat {
				if math.Float32bits(flat[i]) != math.Float32bits(before[i]) {
					t.Fatalf("parts[%d] modified: %g, was %g", i, flat[i], before[i])
				}
			}
		})
	}
}

// TestOrderSensitiveParts proves that the data of the ordered-sum tests can
// tell the orders apart: for P ≥ 3, summing in reverse rank order gives
// other bits somewhere (for P = 2 float addition is commutative).
func TestOrderSensitiveParts(t *testing.T) {
	for _, p := range []int{3, 5} {
		parts := orderSensitiveParts(int64(p), p, 1000)
		rev := make([][]float32, p)
		for r := range parts {
			rev[r] = parts[p-1-r]
		}
		fwd, bwd := sequentialSum(parts), sequentialSum(rev)
		differ := 0
		for i := range fwd {
			if math.Float32bits(fwd[i]) != math.Float32bits(bwd[i]) {
				differ++
			}
		}
		if differ == 0 {
			t.Errorf("P=%d: rank order and reverse order agree on all 1000 sums; the data cannot detect a wrong order", p)
		}
		t.Logf("P=%d: %d of 1000 sums differ between rank order and reverse order", p, differ)
	}
}

func TestSumInRankOrderErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dst, parts int
		want       string
	}{
		{"dst=3,parts=7", 3, 7, "not a positive multiple"},
		{"dst=3,parts=0", 3, 0, "not a positive multiple"},
		{"dst=3,parts=2", 3, 2, "not a positive multiple"},
		{"dst=0,parts=2", 0, 2, "empty destination"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]float32, tc.dst)
			for i := range dst {
				dst[i] = 42
			}
			err := SumInRankOrder(dst, make([]float32, tc.parts))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SumInRankOrder = %v, want an error containing %q", err, tc.want)
			}
			for i, v := range dst {
				if v != 42 {
					t.Fatalf("dst[%d] = %g after an error, want it untouched (42)", i, v)
				}
			}
		})
	}
	if err := SumInRankOrder(nil, nil); err != nil {
		t.Errorf("SumInRankOrder(nil, nil) = %v, want nil", err)
	}
}
