package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launcher of softmax_ce_mean_v1 (kernels/loss_v2.cu): the softmax
// cross-entropy's mean loss and its gradient in one launch.

// SoftmaxCEMeanMaxRows is the most rows for which SoftmaxCrossEntropyMean
// is the better choice: its one block runs at most 4 rows a thread; past
// that the two launches of SoftmaxCrossEntropy and ReduceSum spread the
// rows over more blocks.
const SoftmaxCEMeanMaxRows = 4 * blockSize

// SoftmaxCrossEntropyMean writes into loss[0] the mean over the n rows of
// the softmax cross-entropy of logits (N,classes) against labels (int32,
// N) and, when dlogits is not nil, its gradient dlogits = (softmax −
// onehot)/N: the same bits as SoftmaxCrossEntropy into per-row losses
// followed by ReduceSum of them with scale 1/N (float32(1/N)), in one
// launch of softmax_ce_mean_v1 (grid 1, block 256). A label outside
// [0, classes) makes the loss and its dlogits row NaN.
func (d *Device) SoftmaxCrossEntropyMean(n, classes int, logits, labels, loss, dlogits *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.softmaxCEMean(n, classes, logits, labels, loss, dlogits); err != nil {
		return launchErr(kSoftmaxCEMean, rowShape{n, classes}, err)
	}
	return nil
}

func (d *Device) softmaxCEMean(n, classes int, logits, labels, loss, dlogits *Buffer) error {
	if err := dims([]int{n, classes}, []int{n, classes}); err != nil {
		return err
	}
	if err := d.need("logits", logits, Float32, n*classes); err != nil {
		return err
	}
	if err := d.need("labels", labels, Int32, n); err != nil {
		return err
	}
	if err := d.needAtLeast("loss", loss, Float32, 1); err != nil {
		return err
	}
	if err := d.needOpt("dlogits", dlogits, Float32, n*classes); err != nil {
		return err
	}
	grid, block := perBlock(1)
	return d.launch(kSoftmaxCEMean, grid, block, 0, argPtr(logits), argPtr(labels), argPtr(loss), argPtr(dlogits),
		argI32(n), argI32(classes), argF32(float32(1/float64(n))))
}

// SoftmaxCrossEntropyMetrics is SoftmaxCrossEntropyMean followed by
// Accumulate(lossSum, loss) and CountCorrect(n, classes, logits, labels,
// correct), the same bits, in one launch of softmax_ce_metrics_v1 (grid 1,
// block 256), for n ≤ SoftmaxCEMeanMaxRows: the step's loss, its
// gradient and the running sums of the loss and of the correct answers.
func (d *Device) SoftmaxCrossEntropyMetrics(n, classes int, logits, labels, loss, dlogits, lossSum, correct *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.softmaxCEMetrics(n, classes, logits, labels, loss, dlogits, lossSum, correct); err != nil {
		return launchErr(kSoftmaxCEMetrics, rowShape{n, classes}, err)
	}
	return nil
}

func (d *Device) softmaxCEMetrics(n, classes int, logits, labels, loss, dlogits, lossSum, correct *Buffer) error {
	if err := dims([]int{n, classes}, []int{n, classes}); err != nil {
		return err
	}
	if n > SoftmaxCEMeanMaxRows {
		return fmt.Errorf("%d rows, at most %d in one block: %w", n, SoftmaxCEMeanMaxRows, geom.ErrGeometry)
	}
	if err := d.need("logits", logits, Float32, n*classes); err != nil {
		return err
	}
	if err := d.need("labels", labels, Int32, n); err != nil {
		return err
	}
	for _, b := range []struct {
		name string
		b    *Buffer
	}{{"loss", loss}, {"lossSum", lossSum}, {"correct", correct}} {
		if err := d.needAtLeast(b.name, b.b, Float32, 1); err != nil {
			return err
		}
	}
	if err := d.needOpt("dlogits", dlogits, Float32, n*classes); err != nil {
		return err
	}
	grid, block := perBlock(1)
	return d.launch(kSoftmaxCEMetrics, grid, block, 0, argPtr(logits), argPtr(labels), argPtr(loss), argPtr(dlogits),
		argPtr(lossSum), argPtr(correct), argI32(n), argI32(classes), argF32(float32(1/float64(n))))
}
