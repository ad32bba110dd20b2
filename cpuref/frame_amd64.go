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

// transpose8x8 writes the transpose of the 8×8 block at src (row stride
// lds floats) to dst (row stride ldd): dst[j·ldd + i] = src[i·lds + j]
// (see frame_amd64.s); only called where gemmKernelsRun.
//
//go:noescape
func transpose8x8(dst *float32, ldd int, src *float32, lds int)

// transposeRows writes dst[p·ldd + k] = src[k·lds + p] for k < rows and
// p < cols: 8×8 blocks where rows is a multiple of 8, the rest in Go.
func transposeRows(dst []float32, ldd int, src []float32, lds, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	_ = dst[(cols-1)*ldd+rows-1]
	_ = src[(rows-1)*lds+cols-1]
	k0 := 0
	if gemmKernelsRun {
		for ; k0+8 <= rows; k0 += 8 {
			p := 0
			for ; p+8 <= cols; p += 8 {
				transpose8x8(&dst[p*ldd+k0], ldd, &src[k0*lds+p], lds)
			}
			for k := k0; k < k0+8; k++ {
				for q := p; q < cols; q++ {
					dst[q*ldd+k] = src[k*lds+q]
				}
			}
		}
	}
	transposeRowsGo(dst, ldd, src[k0*lds:], lds, rows-k0, cols, k0)
}

// gatherRows and scatterRows copy rows strided on one side (see
// frame_amd64.s): gatherRows dst[r·ldd + k] = src[r·lds + k·stride],
// scatterRows dst[r·ldd + k·stride] = src[r·lds + k], for r < rows,
// k < n; plain copies, with no vector instructions.
//
//go:noescape
func gatherRows(dst *float32, ldd int, src *float32, lds int, rows, n, stride int)

//go:noescape
func scatterRows(dst *float32, ldd int, src *float32, lds int, rows, n, stride int)

// copyRows copies rows strided on one side: dst[r·ldd + k·ds] =
// src[r·lds + k·ss] for r < rows, k < n, one of ds and ss being 1.
func copyRows(dst []float32, ldd, ds int, src []float32, lds, ss, rows, n int) {
	if rows == 0 || n == 0 {
		return
	}
	_ = dst[(rows-1)*ldd+(n-1)*ds]
	_ = src[(rows-1)*lds+(n-1)*ss]
	if ds == 1 {
		gatherRows(&dst[0], ldd, &src[0], lds, rows, n, ss)
	} else {
		scatterRows(&dst[0], ldd, &src[0], lds, rows, n, ds)
	}
}
