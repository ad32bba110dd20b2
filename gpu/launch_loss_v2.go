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

// MaxPoolDenseSoftmax runs MaxPoolDenseForward (a max-pool and the dense
// layer of out = classes outputs after its flatten) and then
// SoftmaxCrossEntropyMetrics on the dense output z, the same bits, in one
// launch of maxpool_dense_softmax_v1 (a block per image, the last block to
// finish reducing), for g.N ≤ SoftmaxCEMeanMaxRows. rows (2·N + 1
// float32) is scratch whose last word (the blocks' ticket) must be 0
// before the launch, and is 0 after it (a new buffer is).
func (d *Device) MaxPoolDenseSoftmax(g geom.PoolGeom, x, y, argmax *Buffer, out int, w, b, z, labels, loss, dlogits, lossSum, correct, rows *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.maxPoolDenseSoftmax(g, x, y, argmax, out, w, b, z, labels, loss, dlogits, lossSum, correct, rows); err != nil {
		return launchErr(kMaxPoolDenseSoftmax, g, err)
	}
	return nil
}

func (d *Device) maxPoolDenseSoftmax(g geom.PoolGeom, x, y, argmax *Buffer, out int, w, b, z, labels, loss, dlogits, lossSum, correct, rows *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	in := g.C * g.P() * g.Q()
	if err := dims([]int{g.N, in, out}, []int{g.N, out}, []int{out, in}, []int{2, g.N}); err != nil {
		return err
	}
	if g.N > SoftmaxCEMeanMaxRows {
		return fmt.Errorf("%d rows, at most %d: %w", g.N, SoftmaxCEMeanMaxRows, geom.ErrGeometry)
	}
	for _, c := range []struct {
		name string
		b    *Buffer
		t    DType
		n    int
	}{{"x", x, Float32, g.XLen()}, {"y", y, Float32, g.YLen()}, {"argmax", argmax, Int32, g.YLen()},
		{"w", w, Float32, out * in}, {"z", z, Float32, g.N * out}, {"labels", labels, Int32, g.N},
		{"rows", rows, Float32, 2*g.N + 1}} {
		if err := d.need(c.name, c.b, c.t, c.n); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		name string
		b    *Buffer
	}{{"loss", loss}, {"lossSum", lossSum}, {"correct", correct}} {
		if err := d.needAtLeast(c.name, c.b, Float32, 1); err != nil {
			return err
		}
	}
	if err := d.needOpt("b", b, Float32, out); err != nil {
		return err
	}
	if err := d.needOpt("dlogits", dlogits, Float32, g.N*out); err != nil {
		return err
	}
	grid, block := perBlock(g.N)
	return d.launch(kMaxPoolDenseSoftmax, grid, block, 0, argPtr(x), argPtr(y), argPtr(argmax), argPtr(w), argPtr(b),
		argPtr(z), argPtr(labels), argPtr(loss), argPtr(dlogits), argPtr(lossSum), argPtr(correct), argPtr(rows),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(out), argF32(float32(1/float64(g.N))))
}
