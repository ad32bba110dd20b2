package cpuref

// addFloats adds src to dst elementwise, n elements, with AVX2 (see
// frame_amd64.s); only called where gemmKernelsRun.
//
//go:noescape
func addFloats(dst, src *float32, n int)

// addTo adds src to dst elementwise: dst[i] += src[i], len(dst) ≥ len(src).
func addTo(dst, src []float32) {
	if len(src) == 0 {
		return
	}
	dst = dst[:len(src)]
	if !gemmKernelsRun {
		addToGo(dst, src)
		return
	}
	addFloats(&dst[0], &src[0], len(src))
}
