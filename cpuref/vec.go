package cpuref

// The elementwise kernels of the float32 passes that run on every element
// of an activation: ReLU forward and backward, addition, and addition
// followed by ReLU. Each is
// written twice: in Go (the …Go functions, one scalar operation after
// another) and, on amd64 with AVX2, in assembly (vec_amd64.s) eight
// elements at a time with the same operations: one rounded float32
// operation per element and step, no fused multiply-add. The two give the
// same bits (TestVecKernels); useVec chooses, and the assembly covers the
// largest multiple of 8 elements, Go the rest. BatchNorm32's channel kernels follow the same
// rules (batchnorm_fast.go, bnvec_amd64.s).
//
// Bits of NaNs: where both operands of an x86 addition or multiplication
// are NaNs, the result is the first operand's, quieted. Go leaves the
// order of a commutative operation to its compiler, so the assembly takes
// the operands in the order the compiler gives the Go code it stands for
// in the ordinary build (Go 1.26; TestVecKernels and TestBatchNorm32
// check it, NaN payloads included; the race detector's build orders some
// of them otherwise).

// vecAdd sets y[i] = a[i] + b[i] for i < len(y); a and b have at least
// len(y) elements. y may be the same slice as a or b.
func vecAdd(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	if m := len(y) &^ 7; useVec && m > 0 {
		addAVX(&y[0], &a[0], &b[0], m)
		y, a, b = y[m:], a[m:], b[m:]
	}
	addGo(y, a, b)
}

func addGo(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	for i := range y {
		y[i] = a[i] + b[i]
	}
}

// vecAddReLU sets y[i] = max(a[i] + b[i], 0) for i < len(y)
// (AddReLUForward: vecAdd, then vecReLU). y may be the same slice as a or
// b.
func vecAddReLU(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	if m := len(y) &^ 7; useVec && m > 0 {
		addReLUAVX(&y[0], &a[0], &b[0], m)
		y, a, b = y[m:], a[m:], b[m:]
	}
	addReLUGo(y, a, b)
}

func addReLUGo(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	for i := range y {
		y[i] = max(a[i]+b[i], 0)
	}
}

// vecReLU sets y[i] = max(x[i], 0) for i < len(y) (ReLUForward). y may be
// the same slice as x.
func vecReLU(y, x []float32) {
	x = x[:len(y)]
	if m := len(y) &^ 7; useVec && m > 0 {
		reluAVX(&y[0], &x[0], m)
		y, x = y[m:], x[m:]
	}
	reluGo(y, x)
}

func reluGo(y, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] = max(v, 0) // branch-free; max propagates NaN and max(−0, 0) = 0
	}
}

// vecReLUBackward sets dx[i] = dy[i] where x[i] > 0, else 0, for
// i < len(dx) (ReLUBackward). dx may be the same slice as dy.
func vecReLUBackward(dx, x, dy []float32) {
	x, dy = x[:len(dx)], dy[:len(dx)]
	if m := len(dx) &^ 7; useVec && m > 0 {
		reluBackwardAVX(&dx[0], &x[0], &dy[0], m)
		dx, x, dy = dx[m:], x[m:], dy[m:]
	}
	reluBackward32(x, dy, dx)
}
