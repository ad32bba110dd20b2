package data

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	d := randomSet(101, 3, 2, 3, 7, 5)
	d.ClassNames = []string{"a", "b", "c", "d", "e", "f", "g"}
	// Tag each image with its position in its first bytes, so the subsets
	// say where their images came from.
	size := d.C * d.H * d.W
	for i := range d.N {
		d.Images[i*size], d.Images[i*size+1] = byte(i), byte(i>>8)
	}
	orig := slices.Clone(d.Images)
	for _, n := range []int{1, 10, 100} {
		train, val, err := d.Split(n, 42)
		if err != nil {
			t.Fatalf("Split(%d) = %v", n, err)
		}
		if train.N != d.N-n || val.N != n || train.Check() != nil || val.Check() != nil {
			t.Fatalf("Split(%d) = %d and %d images, want %d and %d", n, train.N, val.N, d.N-n, n)
		}
		seen := make([]int, d.N)
		for _, s := range []*Dataset{train, val} {
			prev := -1
			for j := range s.N {
				i := int(s.Images[j*size]) | int(s.Images[j*size+1])<<8
				if i <= prev {
					t.Fatalf("Split(%d) %s: image %d is original %d after %d, want the original order", n, s.Name, j, i, prev)
				}
				prev = i
				seen[i]++
				if !bytes.Equal(s.Images[j*size:(j+1)*size], d.Images[i*size:(i+1)*size]) || s.Labels[j] != d.Labels[i] {
					t.Fatalf("Split(%d) %s image %d differs from original %d", n, s.Name, j, i)
				}
			}
			if !slices.Equal(s.ClassNames, d.ClassNames) || s.Classes != d.Classes {
				t.Errorf("Split %s classes = %d %q, want %d %q", s.Name, s.Classes, s.ClassNames, d.Classes, d.ClassNames)
			}
		}
		for i, k := range seen {
			if k != 1 {
				t.Fatalf("Split(%d): original image %d is in %d subsets, want 1", n, i, k)
			}
		}
		// Deterministic by seed; another seed, another validation set.
		_, again, _ := d.Split(n, 42)
		_, other, _ := d.Split(n, 43)
		if !bytes.Equal(again.Images, val.Images) {
			t.Errorf("Split(%d, 42) twice gave different validation sets", n)
		}
		if n == 10 && bytes.Equal(other.Images, val.Images) {
			t.Errorf("Split(10, 43) = Split(10, 42), want another set")
		}
		// The subsets own their storage.
		train.Images[0]++
		val.Images[0]++
		if !bytes.Equal(d.Images, orig) {
			t.Fatalf("writing the subsets of Split(%d) changed the original", n)
		}
	}
	for _, n := range []int{0, -1, 101} {
		if _, _, err := d.Split(n, 1); err == nil || !strings.Contains(err.Error(), "want 1 to 100") {
			t.Errorf("Split(%d) = %v, want an error saying 1 to 100", n, err)
		}
	}
}

// TestSplitPermutation checks that the documented shuffle is a
// permutation and about uniform: each position holds each value about
// equally often over many seeds.
func TestSplitPermutation(t *testing.T) {
	const n, seeds = 5, 20000
	var count [n][n]int
	for s := range uint64(seeds) {
		p := SplitPermutation(n, s)
		sorted := slices.Sorted(slices.Values(p))
		if !slices.Equal(sorted, []int{0, 1, 2, 3, 4}) {
			t.Fatalf("SplitPermutation(5, %d) = %v, not a permutation", s, p)
		}
		for i, v := range p {
			count[i][v]++
		}
	}
	mean := float64(seeds) / n
	sd := math.Sqrt(mean * (1 - 1.0/n))
	for i := range n {
		for v := range n {
			if math.Abs(float64(count[i][v])-mean) > 6*sd {
				t.Errorf("position %d held %d in %d of %d permutations, want about %.0f", i, v, count[i][v], seeds, mean)
			}
		}
	}
	if p := SplitPermutation(1, 3); !slices.Equal(p, []int{0}) {
		t.Errorf("SplitPermutation(1) = %v, want [0]", p)
	}
}

func TestParseSplitSize(t *testing.T) {
	for _, tc := range []struct {
		in    string
		total int
		want  int
		err   string
	}{
		{"", 100, 0, ""},
		{"0", 100, 0, ""},
		{"5000", 60000, 5000, ""},
		{"10%", 60000, 6000, ""},
		{"12.5%", 10, 1, ""}, // 1.25 rounds to 1
		{"15%", 10, 2, ""},   // 1.5 rounds up
		{"99%", 1000, 990, ""},
		{"60000", 60000, 0, "is 60000 images, want 1 to 59999"},
		{"1%", 10, 0, "is 0 images, want 1 to 9"},
		{"abc", 10, 0, `"abc": not a whole number`},
		{"-3", 10, 0, `"-3": negative`},
		{"100%", 10, 0, "above 0 and below 100"},
		{"0%", 10, 0, "above 0 and below 100"},
		{"x%", 10, 0, `"x" is not a number`},
		{"NaN%", 10, 0, "is not a number"},
	} {
		t.Run("in="+tc.in, func(t *testing.T) {
			var z SplitSize
			err := z.Set(tc.in)
			var got int
			if err == nil {
				got, err = z.Of(tc.total)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), strings.Trim(tc.in, "%")) {
					t.Errorf("SplitSize(%q).Of(%d) = %d, %v; want an error naming the value and saying %s", tc.in, tc.total, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("SplitSize(%q).Of(%d) = %d, %v; want %d", tc.in, tc.total, got, err, tc.want)
			}
			var again SplitSize
			if err := again.Set(z.String()); err != nil || again != z {
				t.Errorf("Set(%q) = %+v, %v; want %+v", z.String(), again, err, z)
			}
		})
	}
}

// TestChannelNorm checks the per-channel statistics against a float64
// two-pass computation, and that for one channel they have the bits of
// Standardisation.
func TestChannelNorm(t *testing.T) {
	d := randomSet(13, 3, 5, 4, 2, 9)
	// Channel 2 constant: Std 1.
	plane := d.H * d.W
	for i := range d.N {
		for p := range plane {
			d.Images[(i*3+2)*plane+p] = 77
		}
	}
	got := d.ChannelNorm()
	if len(got) != 3 {
		t.Fatalf("ChannelNorm = %d entries, want 3", len(got))
	}
	for c := range 3 {
		var sum float64
		for i := range d.N {
			for _, p := range d.Images[(i*3+c)*plane : (i*3+c+1)*plane] {
				sum += float64(p)
			}
		}
		mean := sum / float64(d.N*plane)
		var ss float64
		for i := range d.N {
			for _, p := range d.Images[(i*3+c)*plane : (i*3+c+1)*plane] {
				ss += (float64(p) - mean) * (float64(p) - mean)
			}
		}
		std := math.Sqrt(ss / float64(d.N*plane))
		if c == 2 {
			std = 1
		}
		if math.Abs(got[c].Mean-mean) > 1e-12*mean || math.Abs(got[c].Std-std) > 1e-9*std {
			t.Errorf("ChannelNorm()[%d] = %+v, want mean %g std %g", c, got[c], mean, std)
		}
	}
	for _, seed := range []uint64{1, 2} {
		g, err := Synthetic(300, 28, 10, seed)
		if err != nil {
			t.Fatal(err)
		}
		if cn, st := g.ChannelNorm(), g.Standardisation(); len(cn) != 1 ||
			math.Float64bits(cn[0].Mean) != math.Float64bits(st.Mean) || math.Float64bits(cn[0].Std) != math.Float64bits(st.Std) {
			t.Errorf("ChannelNorm() = %+v, want the bits of Standardisation() %+v", cn, st)
		}
	}
}
