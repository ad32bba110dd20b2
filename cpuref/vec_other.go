//go:build !amd64

package cpuref

import "unsafe"

// useVec reports whether the kernels of vec.go and BatchNorm32's channel
// kernels run their assembly forms: off amd64 there are none. Should a
// test set it, the names below run the Go forms.
var useVec = false

func addAVX(y, a, b *float32, n int) {
	addGo(unsafe.Slice(y, n), unsafe.Slice(a, n), unsafe.Slice(b, n))
}

func addReLUAVX(y, a, b *float32, n int) {
	addReLUGo(unsafe.Slice(y, n), unsafe.Slice(a, n), unsafe.Slice(b, n))
}

func reluAVX(y, x *float32, n int) {
	reluGo(unsafe.Slice(y, n), unsafe.Slice(x, n))
}

func reluBackwardAVX(dx, x, dy *float32, n int) {
	reluBackward32(unsafe.Slice(x, n), unsafe.Slice(dy, n), unsafe.Slice(dx, n))
}

func roundBF16AVX(dst, src *float32, n int) {
	d := unsafe.Slice(dst, n)
	for i, v := range unsafe.Slice(src, n) {
		d[i] = RoundBF16(v)
	}
}

func roundTF32AVX(dst, src *float32, n int) {
	d := unsafe.Slice(dst, n)
	for i, v := range unsafe.Slice(src, n) {
		d[i] = RoundTF32(v)
	}
}

// chanLen is the extent of n segments of hw floats, stride apart.
func chanLen(n, hw, stride int) int { return (n-1)*stride + hw }

func laneTreeAVX(lanes *float32) float32 {
	return laneTree((*[bnLanes]float32)(unsafe.Pointer(lanes)))
}

func chanSumAVX(lanes, x *float32, n, hw, stride int) {
	chanSumGo((*[bnLanes]float32)(unsafe.Pointer(lanes)), unsafe.Slice(x, chanLen(n, hw, stride)), n, hw, stride)
}

func chanSumSqDevAVX(lanes, x *float32, n, hw, stride int, mean float32) {
	chanSumSqDevGo((*[bnLanes]float32)(unsafe.Pointer(lanes)), unsafe.Slice(x, chanLen(n, hw, stride)), n, hw, stride, mean)
}

func chanSumBackwardAVX(lanes, lanes2, dy, x *float32, n, hw, stride int, mean, invStd float32) {
	l := chanLen(n, hw, stride)
	chanSumBackwardGo((*[bnLanes]float32)(unsafe.Pointer(lanes)), (*[bnLanes]float32)(unsafe.Pointer(lanes2)),
		unsafe.Slice(dy, l), unsafe.Slice(x, l), n, hw, stride, mean, invStd)
}

func chanNormalizeAVX(y, x *float32, n, hw, stride int, mean, invStd, gamma, beta float32) {
	l := chanLen(n, hw, stride)
	chanNormalizeGo(unsafe.Slice(y, l), unsafe.Slice(x, l), n, hw, stride, mean, invStd, gamma, beta, false)
}

func chanNormalizeReLUAVX(y, x *float32, n, hw, stride int, mean, invStd, gamma, beta float32) {
	l := chanLen(n, hw, stride)
	chanNormalizeGo(unsafe.Slice(y, l), unsafe.Slice(x, l), n, hw, stride, mean, invStd, gamma, beta, true)
}

func chanBackwardAVX(dx, x, dy *float32, n, hw, stride int, mean, invStd, gamma, mdy, mdyx float32) {
	l := chanLen(n, hw, stride)
	chanBackwardGo(unsafe.Slice(dx, l), unsafe.Slice(x, l), unsafe.Slice(dy, l), n, hw, stride, mean, invStd, gamma, mdy, mdyx)
}

func chanSumBackwardReLUAVX(lanes, lanes2, dy, x, y *float32, n, hw, stride int, mean, invStd float32) {
	l := chanLen(n, hw, stride)
	chanSumBackwardReLUGo((*[bnLanes]float32)(unsafe.Pointer(lanes)), (*[bnLanes]float32)(unsafe.Pointer(lanes2)),
		unsafe.Slice(dy, l), unsafe.Slice(x, l), unsafe.Slice(y, l), n, hw, stride, mean, invStd)
}

func chanBackwardReLUAVX(dx, x, dy, y *float32, n, hw, stride int, mean, invStd, gamma, mdy, mdyx float32) {
	l := chanLen(n, hw, stride)
	chanBackwardReLUGo(unsafe.Slice(dx, l), unsafe.Slice(x, l), unsafe.Slice(dy, l), unsafe.Slice(y, l), n, hw, stride, mean, invStd, gamma, mdy, mdyx)
}
