//go:build !amd64

package cpuref

// addTo adds src to dst elementwise: dst[i] += src[i], len(dst) ≥ len(src).
func addTo(dst, src []float32) { addToGo(dst, src) }

// transposeRows writes dst[p·ldd + k] = src[k·lds + p] for k < rows and
// p < cols.
func transposeRows(dst []float32, ldd int, src []float32, lds, rows, cols int) {
	transposeRowsGo(dst, ldd, src, lds, rows, cols, 0)
}
