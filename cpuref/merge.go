package cpuref

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// AddForward computes the residual merge of two branches, elementwise,
//
//	y[i] = a[i] + b[i]
//
// one rounded addition (a NaN stays NaN). Its backward pass sends dy
// unchanged into both branches (AddBackward), and where one tensor feeds
// two branches its gradient is the sum of theirs, which AddForward also
// computes. y may be the same slice as a or b. An error wrapping
// geom.ErrGeometry is returned, before any work, when a is empty, has 2³¹
// elements or more, or the lengths differ.
func AddForward[T Float](a, b, y []T) error {
	// a, b and y are (L)
	if err := checkElementwise("AddForward", len(a), lenCheck{"b", len(b), len(a)}, lenCheck{"y", len(y), len(a)}); err != nil {
		return err
	}
	b, y = b[:len(a)], y[:len(a)]
	if a32, ok := any(a).([]float32); ok {
		vecAdd(any(y).([]float32), a32, any(b).([]float32))
		return nil
	}
	for i, v := range a {
		y[i] = v + b[i]
	}
	return nil
}

// AddReLUForward computes a residual merge followed by a ReLU,
// elementwise,
//
//	y[i] = max(a[i] + b[i], 0)
//
// with the bits of AddForward and then ReLUForward in one pass: one
// rounded addition, then ReLUForward's rules (a NaN stays NaN, −0 becomes
// +0). y may be the same slice as a or b. An error wrapping
// geom.ErrGeometry is returned, before any work, when a is empty, has 2³¹
// elements or more, or the lengths differ.
func AddReLUForward[T Float](a, b, y []T) error {
	// a, b and y are (L)
	if err := checkElementwise("AddReLUForward", len(a), lenCheck{"b", len(b), len(a)}, lenCheck{"y", len(y), len(a)}); err != nil {
		return err
	}
	b, y = b[:len(a)], y[:len(a)]
	if a32, ok := any(a).([]float32); ok {
		vecAddReLU(any(y).([]float32), a32, any(b).([]float32))
		return nil
	}
	for i, v := range a {
		y[i] = max(v+b[i], 0)
	}
	return nil
}

// AddBackward copies dy, the gradient of y = a + b, into da and db, each
// of which may be nil (a branch that needs no gradient):
//
//	da[i] = dy[i],  db[i] = dy[i]
//
// An error wrapping geom.ErrGeometry is returned, before any work, when dy
// is empty, has 2³¹ elements or more, or a non-nil length differs.
func AddBackward[T Float](dy, da, db []T) error {
	// dy, da and db are (L)
	if err := checkElementwise("AddBackward", len(dy), lenCheck{"da", len(da), optLen(da, len(dy))},
		lenCheck{"db", len(db), optLen(db, len(dy))}); err != nil {
		return err
	}
	copy(da, dy)
	copy(db, dy)
	return nil
}

// concatOp validates a concatenation along channels of len(cs) inputs of
// cs[i] channels each and returns the output's channel count.
func concatOp(name string, n, hw int, cs []int, xlens []int, nils []bool, ylen int) (int, error) {
	op := func() string { return fmt.Sprintf("%s N=%d,HW=%d,C=%v", name, n, hw, cs) }
	if len(cs) < 1 || len(xlens) != len(cs) {
		return 0, fmt.Errorf("cpuref: %s: %d inputs for %d channel counts, want at least one and as many: %w",
			op(), len(xlens), len(cs), geom.ErrGeometry)
	}
	total := 0
	for _, c := range cs {
		if c < 1 || total > geom.MaxElems-c {
			return 0, fmt.Errorf("cpuref: %s: channel counts must be ≥ 1 and their sum below 2³¹: %w", op(), geom.ErrGeometry)
		}
		total += c
	}
	if err := checkN(op, []int{n, hw}, []int{n, total, hw}); err != nil {
		return 0, err
	}
	lens := []lenCheck{{"y", ylen, n * total * hw}}
	for i, c := range cs {
		want := n * c * hw
		if nils[i] {
			want = 0
		}
		lens = append(lens, lenCheck{fmt.Sprintf("input %d", i), xlens[i], want})
	}
	return total, checkLens(op, lens...)
}

// ConcatForward concatenates the inputs xs along channels: input i, of
// cs[i] channels, fills channels [c_i, c_i + cs[i]) of y, where c_i is the
// sum of the counts before it:
//
//	y[n, c_i + c, h, w] = xs[i][n, c, h, w]
//
// (copies, bits unchanged). An error wrapping geom.ErrGeometry is returned,
// before any work, when there is no input, a size or channel count is < 1,
// y has 2³¹ elements or more, or a length differs from the shapes below.
func ConcatForward[T Float](n, hw int, cs []int, xs [][]T, y []T) error {
	// xs[i] is (N,cs[i],H·W), y is (N,Σcs,H·W)
	xlens, nils := make([]int, len(xs)), make([]bool, len(xs))
	for i, x := range xs {
		xlens[i] = len(x)
	}
	total, err := concatOp("ConcatForward", n, hw, cs, xlens, nils, len(y))
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		off := i * total * hw
		for j, x := range xs {
			l := cs[j] * hw
			copy(y[off:off+l], x[i*l:(i+1)*l])
			off += l
		}
	}
	return nil
}

// ConcatBackward splits dy, the gradient of ConcatForward's output, into
// the gradients of its inputs: dxs[i] receives channels [c_i, c_i + cs[i])
// of dy (copies); a nil dxs[i] is skipped. Errors are those of
// ConcatForward.
func ConcatBackward[T Float](n, hw int, cs []int, dy []T, dxs [][]T) error {
	// dy is (N,Σcs,H·W), dxs[i] is (N,cs[i],H·W) or nil
	xlens, nils := make([]int, len(dxs)), make([]bool, len(dxs))
	for i, d := range dxs {
		xlens[i], nils[i] = len(d), d == nil
	}
	total, err := concatOp("ConcatBackward", n, hw, cs, xlens, nils, len(dy))
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		off := i * total * hw
		for j, d := range dxs {
			l := cs[j] * hw
			if d != nil {
				copy(d[i*l:(i+1)*l], dy[off:off+l])
			}
			off += l
		}
	}
	return nil
}
