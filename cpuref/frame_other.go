//go:build !amd64

package cpuref

// addTo adds src to dst elementwise: dst[i] += src[i], len(dst) ≥ len(src).
func addTo(dst, src []float32) { addToGo(dst, src) }

// transposeRows writes dst[p·ldd + k] = src[k·lds + p] for k < rows and
// p < cols.
func transposeRows(dst []float32, ldd int, src []float32, lds, rows, cols int) {
	transposeRowsGo(dst, ldd, src, lds, rows, cols, 0)
}

// copyRows copies rows strided on one side: dst[r·ldd + k·ds] =
// src[r·lds + k·ss] for r < rows, k < n.
func copyRows(dst []float32, ldd, ds int, src []float32, lds, ss, rows, n int) {
	copyRowsGo(dst, ldd, ds, src, lds, ss, rows, n)
}
