//go:build !amd64

package cpuref

// addTo adds src to dst elementwise: dst[i] += src[i], len(dst) ≥ len(src).
func addTo(dst, src []float32) { addToGo(dst, src) }
