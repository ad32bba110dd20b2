package dist

import "fmt"

// SumInRankOrder writes into dst the sum of P parts, taken in rank order
// and added left to right in float32:
//
//	dst[i] = (…((parts[0·n+i] + parts[1·n+i]) + parts[2·n+i]) + …) + parts[(P−1)·n+i]
//
// where n = len(dst) and parts holds P = len(parts)/n slices of n values,
// rank 0's first (the layout of Allgather). It is the reduction of
// MPI.OrderedSum, and the sum that one process forms when it computes the
// gradient of micro-batch 0 into a buffer and adds micro-batches 1…P−1 to
// it in turn, so P ranks and one process give the same bits for any P.
// (A buffer that starts at +0 and adds all P parts differs only where
// rank 0's value is −0 and the whole sum is zero: +0 + −0 is +0.)
//
// It returns an error, touching nothing, when len(parts) is not a positive
// multiple of len(dst) (len(dst) = 0 with empty parts is a no-op).
func SumInRankOrder(dst, parts []float32) error {
	n := len(dst)
	if n == 0 {
		if len(parts) != 0 {
			return fmt.Errorf("dist: SumInRankOrder: %d parts values for an empty destination", len(parts))
		}
		return nil
	}
	if len(parts) < n || len(parts)%n != 0 {
		return fmt.Errorf("dist: SumInRankOrder: %d parts values are not a positive multiple of the %d destination values", len(parts), n)
	}
	copy(dst, parts[:n])
	for off := n; off < len(parts); off += n {
		p := parts[off : off+n]
		for i := range dst {
			dst[i] += p[i]
		}
	}
	return nil
}
