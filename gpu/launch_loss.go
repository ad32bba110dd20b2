package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the loss and metric kernels of kernels/loss.cu.

// SoftmaxCrossEntropy computes, per row of logits (N,Classes) with int32
// labels (N), the loss and its gradient for the batch mean:
//
//	lossRows[n]  = −log softmax(logits[n,:])[labels[n]]
//	dlogits[n,c] = (softmax(logits[n,:])[c] − [c = labels[n]]) / N
//
// lossRows is (N), dlogits is (N,Classes) or nil (loss only). A kernel cannot return an error:
// a label outside [0, Classes) makes that row's loss and gradient NaN.
// Kernel softmax_ce_v1, 1-D over N.
func (d *Device) SoftmaxCrossEntropy(n, classes int, logits, labels, lossRows, dlogits *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.softmaxCE(n, classes, logits, labels, lossRows, dlogits); err != nil {
		return launchErr(kSoftmaxCE, rowShape{n, classes}, err)
	}
	return nil
}

func (d *Device) softmaxCE(n, classes int, logits, labels, lossRows, dlogits *Buffer) error {
	if err := dims([]int{n, classes}, []int{n, classes}); err != nil {
		return err
	}
	if err := d.need("logits", logits, Float32, n*classes); err != nil {
		return err
	}
	if err := d.need("labels", labels, Int32, n); err != nil {
		return err
	}
	if err := d.need("lossRows", lossRows, Float32, n); err != nil {
		return err
	}
	if err := d.needOpt("dlogits", dlogits, Float32, n*classes); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kSoftmaxCE, grid, block, 0, argPtr(logits), argPtr(labels), argPtr(lossRows), argPtr(dlogits),
		argI32(n), argI32(classes))
}

// MSE computes, for y and t (N,Dim), lossRows[n] = ½ Σ_d (t[n,d] − y[n,d])²
// and dy = (y − t)/N; dy may be nil (loss only). Kernel mse_v1, 1-D over N.
func (d *Device) MSE(n, dim int, y, t, lossRows, dy *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.mse(n, dim, y, t, lossRows, dy); err != nil {
		return launchErr(kMSE, rowShape{n, dim}, err)
	}
	return nil
}

func (d *Device) mse(n, dim int, y, t, lossRows, dy *Buffer) error {
	if err := dims([]int{n, dim}, []int{n, dim}); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, n*dim); err != nil {
		return err
	}
	if err := d.need("t", t, Float32, n*dim); err != nil {
		return err
	}
	if err := d.need("lossRows", lossRows, Float32, n); err != nil {
		return err
	}
	if err := d.needOpt("dy", dy, Float32, n*dim); err != nil {
		return err
	}
	grid, block := linear(n)
	return d.launch(kMSE, grid, block, 0, argPtr(y), argPtr(t), argPtr(lossRows), argPtr(dy),
		argI32(n), argI32(dim))
}

// ReduceSum writes out[0] = scale · Σ_i a[i] over all of a, in a fixed
// order (256 strided partial sums, then a fixed tree). out must hold at
// least one element; only out[0] is written. Kernel reduce_sum_v1, one
// block.
func (d *Device) ReduceSum(a, out *Buffer, scale float32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reduceSum(a, out, scale); err != nil {
		return launchErr(kReduceSum, elemShape{lenOf(a)}, err)
	}
	return nil
}

func (d *Device) reduceSum(a, out *Buffer, scale float32) error {
	if a == nil {
		return fmt.Errorf("a is nil: %w", geom.ErrGeometry)
	}
	if err := d.need("a", a, Float32, a.n); err != nil {
		return err
	}
	if err := d.needAtLeast("out", out, Float32, 1); err != nil {
		return err
	}
	grid, block := perBlock(1)
	return d.launch(kReduceSum, grid, block, 0, argPtr(a), argPtr(out), argI32(a.n), argF32(scale))
}

// CountCorrect adds to acc[0] the number of rows of logits (N,Classes)
// whose first largest logit is at the label (int32, (N)). acc must hold at
// least one element. Kernel count_correct_v1, one block.
func (d *Device) CountCorrect(n, classes int, logits, labels, acc *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.countCorrect(n, classes, logits, labels, acc); err != nil {
		return launchErr(kCountCorrect, rowShape{n, classes}, err)
	}
	return nil
}

func (d *Device) countCorrect(n, classes int, logits, labels, acc *Buffer) error {
	if err := dims([]int{n, classes}, []int{n, classes}); err != nil {
		return err
	}
	if err := d.need("logits", logits, Float32, n*classes); err != nil {
		return err
	}
	if err := d.need("labels", labels, Int32, n); err != nil {
		return err
	}
	if err := d.needAtLeast("acc", acc, Float32, 1); err != nil {
		return err
	}
	grid, block := perBlock(1)
	return d.launch(kCountCorrect, grid, block, 0, argPtr(logits), argPtr(labels), argPtr(acc),
		argI32(n), argI32(classes))
}
