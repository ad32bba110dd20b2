package cpuref

// useVec reports whether the kernels of vec.go and BatchNorm32's channel
// kernels run their assembly forms: the CPU has AVX2 (hasAVX2FMA, whose
// FMA requirement they do not need but every AVX2 CPU meets). Tests
// switch it to compare the two forms.
var useVec = hasAVX2FMA()

// The AVX2 kernels of vec.go (vec_amd64.s); n is a multiple of 8, the
// pointers address at least n floats.

//go:noescape
func addAVX(y, a, b *float32, n int)

//go:noescape
func addReLUAVX(y, a, b *float32, n int)

//go:noescape
func reluAVX(y, x *float32, n int)

//go:noescape
func reluBackwardAVX(dx, x, dy *float32, n int)

//go:noescape
func roundBF16AVX(dst, src *float32, n int)

//go:noescape
func roundTF32AVX(dst, src *float32, n int)

// The channel kernels of BatchNorm32 (bnvec_amd64.s): x (and dy, y, dx)
// address the first of n segments of hw ≥ 1 floats, stride floats apart;
// lanes and lanes2 address 256 floats.

//go:noescape
func laneTreeAVX(lanes *float32) float32

//go:noescape
func chanSumAVX(lanes, x *float32, n, hw, stride int)

//go:noescape
func chanSumSqDevAVX(lanes, x *float32, n, hw, stride int, mean float32)

//go:noescape
func chanSumBackwardAVX(lanes, lanes2, dy, x *float32, n, hw, stride int, mean, invStd float32)

//go:noescape
func chanNormalizeAVX(y, x *float32, n, hw, stride int, mean, invStd, gamma, beta float32)

//go:noescape
func chanNormalizeReLUAVX(y, x *float32, n, hw, stride int, mean, invStd, gamma, beta float32)

//go:noescape
func chanBackwardAVX(dx, x, dy *float32, n, hw, stride int, mean, invStd, gamma, mdy, mdyx float32)

//go:noescape
func chanSumBackwardReLUAVX(lanes, lanes2, dy, x, y *float32, n, hw, stride int, mean, invStd float32)

//go:noescape
func chanBackwardReLUAVX(dx, x, dy, y *float32, n, hw, stride int, mean, invStd, gamma, mdy, mdyx float32)
