package cpuref

import (
	"runtime"
	"sync"
)

// BatchNorm32 computes the float32 batch normalisation of
// BatchNormTrainForward32, BatchNormEvalForward[float32] and
// BatchNormBackward32, with the same bits, faster: the channels, which
// are independent, run on up to GOMAXPROCS goroutines (each takes the
// next channel not yet taken), and each pass over a channel is one call
// of a channel kernel (below), in assembly where the CPU has AVX2
// (bnvec_amd64.s): eight elements at a time, the same operations in the
// same order. The lane sums keep their order: lane t of a channel still
// adds v(t), v(t+256), … in ascending order, eight lanes at a time, and
// the lanes are combined by laneTree's tree, its strides of 8 and more
// eight lanes at a time.
//
// The forward passes can apply ReLU to y in the same pass, with the bits
// of ReLUForward on the normalised y (PyTorch's BatchNorm2d followed by
// ReLU), and the backward pass can take the gradient at that ReLU's
// output, masking it as ReLUBackward would as it reads it (BackwardReLU).
//
// The zero value is ready to use; after the first call no call
// allocates. A BatchNorm32 is used from one goroutine at a time.
type BatchNorm32 struct {
	// The channels of the pass in flight are claimed one at a time under
	// mu, by the calling goroutine and by the others it starts: channel
	// next is the next to claim (of end), busy are claimed and not yet
	// finished. The caller waits for the claimed channels, not for the
	// goroutines: one that starts late, after every channel was claimed,
	// finds nothing to do (a goroutine can take a long time to start on a
	// busy or virtual machine).
	mu              sync.Mutex
	next, end, busy int
	waiting         bool          // the caller waits on wake
	wake            chan struct{} // made once, with room for one signal
	task            func()        // b.work, made once
	a               bnArgs32
}

// bnPass names the pass a BatchNorm32 runs.
type bnPass int

const (
	bnTrain bnPass = iota
	bnEval
	bnBackward
)

// bnArgs32 holds the arguments of the pass in flight.
type bnArgs32 struct {
	pass                                  bnPass
	n, c, hw                              int
	x, y, gamma, beta                     []float32
	saveMean, saveInvStd, runMean, runVar []float32
	dy, dx, dgamma, dbeta                 []float32
	mask                                  []float32 // BackwardReLU's y: dy is read masked by mask > 0
	momentum, eps                         float64
	relu                                  bool
}

// bnMinWork is the least number of values per goroutine: below it a pass
// runs on fewer goroutines, down to the calling one. Tests lower it to
// split small tensors.
var bnMinWork = 1 << 14

// TrainForward is BatchNormTrainForward32, then, with relu,
// y = max(y, 0) as ReLUForward. Arguments, NaN behaviour and errors are
// BatchNormTrainForward32's.
func (b *BatchNorm32) TrainForward(n, c, hw int, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar []float32, momentum, eps float64, relu bool) error {
	// x and y are (N,C,H·W); gamma, beta, saveMean, saveInvStd, runMean and runVar are (C)
	if err := checkBNTrain("BatchNorm32.TrainForward", n, c, hw, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar, momentum, eps); err != nil {
		return err
	}
	b.a = bnArgs32{pass: bnTrain, n: n, c: c, hw: hw, x: x, y: y, gamma: gamma, beta: beta,
		saveMean: saveMean, saveInvStd: saveInvStd, runMean: runMean, runVar: runVar,
		momentum: momentum, eps: eps, relu: relu}
	b.run()
	return nil
}

// EvalForward is BatchNormEvalForward[float32], then, with relu,
// y = max(y, 0) as ReLUForward. Arguments and errors are
// BatchNormEvalForward's.
func (b *BatchNorm32) EvalForward(n, c, hw int, x, gamma, beta, runMean, runVar, y []float32, eps float64, relu bool) error {
	// x and y are (N,C,H·W); gamma, beta, runMean and runVar are (C)
	if err := checkBNEval("BatchNorm32.EvalForward", n, c, hw, x, gamma, beta, runMean, runVar, y, eps); err != nil {
		return err
	}
	b.a = bnArgs32{pass: bnEval, n: n, c: c, hw: hw, x: x, y: y, gamma: gamma, beta: beta,
		runMean: runMean, runVar: runVar, eps: eps, relu: relu}
	b.run()
	return nil
}

// Backward is BatchNormBackward32. Arguments and errors are
// BatchNormBackward32's.
func (b *BatchNorm32) Backward(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta []float32) error {
	// x, dy and dx are (N,C,H·W); gamma, saveMean, saveInvStd, dgamma and dbeta are (C)
	if err := checkBNBackward("BatchNorm32.Backward", n, c, hw, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta); err != nil {
		return err
	}
	b.a = bnArgs32{pass: bnBackward, n: n, c: c, hw: hw, x: x, gamma: gamma,
		saveMean: saveMean, saveInvStd: saveInvStd, dy: dy, dx: dx, dgamma: dgamma, dbeta: dbeta}
	b.run()
	return nil
}

// BackwardReLU is ReLUBackward(y, dy, m) followed by
// BatchNormBackward32 with dy = m, with the same bits, without m: the
// gradient dy at the output y of a ReLU that followed the batch
// normalisation (y = max(bn(x), 0)) is read as ReLUBackward writes it,
//
//	m[i] = dy[i] if y[i] > 0, else +0   (a NaN y masks: NaN > 0 is false)
//
// y is (N,C,H·W). dx may be the same slice as dy (not as y). Arguments
// and errors are otherwise BatchNormBackward32's, and a y of the wrong
// length is an error too, before any work.
func (b *BatchNorm32) BackwardReLU(n, c, hw int, x, gamma, saveMean, saveInvStd, y, dy, dx, dgamma, dbeta []float32) error {
	// x, y, dy and dx are (N,C,H·W); gamma, saveMean, saveInvStd, dgamma and dbeta are (C)
	if err := checkBNBackward("BatchNorm32.BackwardReLU", n, c, hw, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta); err != nil {
		return err
	}
	if err := checkLens(bnOp("BatchNorm32.BackwardReLU", n, c, hw), lenCheck{"y", len(y), n * c * hw}); err != nil {
		return err
	}
	b.a = bnArgs32{pass: bnBackward, n: n, c: c, hw: hw, x: x, gamma: gamma,
		saveMean: saveMean, saveInvStd: saveInvStd, dy: dy, dx: dx, dgamma: dgamma, dbeta: dbeta, mask: y}
	b.run()
	return nil
}

// run executes the pass in b.a over the channels on up to nw goroutines,
// then drops the arguments.
func (b *BatchNorm32) run() {
	a := &b.a
	nw := max(1, min(runtime.GOMAXPROCS(0), a.c, a.n*a.c*a.hw/bnMinWork))
	if b.task == nil {
		b.task, b.wake = b.work, make(chan struct{}, 1)
	}
	b.mu.Lock()
	b.next, b.end = 0, a.c
	b.mu.Unlock()
	for range nw - 1 {
		go b.task()
	}
	b.work()
	b.mu.Lock()
	if b.busy > 0 {
		b.waiting = true
		b.mu.Unlock()
		<-b.wake
	} else {
		b.mu.Unlock()
	}
	b.a = bnArgs32{}
}

// work claims channels of the pass in flight and runs them until none is
// left, then signals the waiting caller if it finished the last one.
func (b *BatchNorm32) work() {
	var lanes, lanes2 [bnLanes]float32
	for {
		b.mu.Lock()
		if b.next >= b.end {
			b.mu.Unlock()
			return
		}
		ch := b.next
		b.next++
		b.busy++
		b.mu.Unlock()

		a := &b.a
		switch a.pass {
		case bnTrain:
			a.train(ch, &lanes)
		case bnEval:
			a.normalize(ch, a.runMean[ch], bnInvStd(a.runVar[ch], float32(a.eps)))
		case bnBackward:
			a.backward(ch, &lanes, &lanes2)
		}

		b.mu.Lock()
		b.busy--
		if b.busy == 0 && b.waiting {
			b.waiting = false
			b.wake <- struct{}{}
		}
		b.mu.Unlock()
	}
}

// train is one channel of BatchNormTrainForward32.
func (a *bnArgs32) train(ch int, lanes *[bnLanes]float32) {
	n, hw, stride := a.n, a.hw, a.c*a.hw
	x := a.x[ch*hw:]
	fM, fM1 := float32(n*hw), float32(n*hw-1)
	clear(lanes[:])
	chanSum(lanes, x, n, hw, stride)
	mean := laneTreeVec(lanes) / fM
	clear(lanes[:])
	chanSumSqDev(lanes, x, n, hw, stride, mean)
	S := laneTreeVec(lanes)
	invStd := bnInvStd(S/fM, float32(a.eps))
	if a.saveMean != nil {
		a.saveMean[ch] = mean
	}
	if a.saveInvStd != nil {
		a.saveInvStd[ch] = invStd
	}
	bnRunning(a.runMean, a.runVar, ch, mean, S/fM1, a.momentum)
	a.normalize(ch, mean, invStd)
}

// normalize is bnNormalize on channel ch, then the ReLU when a.relu.
func (a *bnArgs32) normalize(ch int, mean, invStd float32) {
	off := ch * a.hw
	chanNormalize(a.y[off:], a.x[off:], a.n, a.hw, a.c*a.hw, mean, invStd, a.gamma[ch], a.beta[ch], a.relu)
}

// backward is one channel of BatchNormBackward32, of dy masked by
// a.mask when it is not nil (BackwardReLU).
func (a *bnArgs32) backward(ch int, lanes, lanes2 *[bnLanes]float32) {
	n, hw, stride := a.n, a.hw, a.c*a.hw
	off := ch * hw
	x, dy := a.x[off:], a.dy[off:]
	var y []float32
	if a.mask != nil {
		y = a.mask[off:]
	}
	fM := float32(n * hw)
	mean, invStd := a.saveMean[ch], a.saveInvStd[ch]
	clear(lanes[:])
	clear(lanes2[:])
	chanSumBackward(lanes, lanes2, dy, x, y, n, hw, stride, mean, invStd)
	sdy, sdyx := laneTreeVec(lanes), laneTreeVec(lanes2)
	a.dbeta[ch], a.dgamma[ch] = sdy, sdyx
	if a.dx != nil {
		chanBackward(a.dx[off:], x, dy, y, n, hw, stride, mean, invStd, a.gamma[ch], sdy/fM, sdyx/fM)
	}
}

// laneTreeVec is laneTree (with the assembly of bnvec_amd64.s when
// useVec: each stride's additions lanes[t] += lanes[t+stride], t < stride,
// are independent, so eight run at a time).
func laneTreeVec(lanes *[bnLanes]float32) float32 {
	if useVec {
		return laneTreeAVX(&lanes[0])
	}
	return laneTree(lanes)
}

// The channel kernels: one pass over the values of one channel, the n
// segments x[s·stride : s·stride+hw] (s < n), with the assembly of
// bnvec_amd64.s when useVec, else the …Go form, which is the code of
// batchnorm.go itself: the lane sums start at lane 0.

// chanSum is laneAdd of the channel's values.
func chanSum(lanes *[bnLanes]float32, x []float32, n, hw, stride int) {
	x = x[:(n-1)*stride+hw]
	if useVec {
		chanSumAVX(&lanes[0], &x[0], n, hw, stride)
		return
	}
	chanSumGo(lanes, x, n, hw, stride)
}

func chanSumGo(lanes *[bnLanes]float32, x []float32, n, hw, stride int) {
	t := 0
	for s := range n {
		t = laneAdd(lanes, t, x[s*stride:s*stride+hw])
	}
}

// chanSumSqDev is laneAddSqDev of the channel's values.
func chanSumSqDev(lanes *[bnLanes]float32, x []float32, n, hw, stride int, mean float32) {
	x = x[:(n-1)*stride+hw]
	if useVec {
		chanSumSqDevAVX(&lanes[0], &x[0], n, hw, stride, mean)
		return
	}
	chanSumSqDevGo(lanes, x, n, hw, stride, mean)
}

func chanSumSqDevGo(lanes *[bnLanes]float32, x []float32, n, hw, stride int, mean float32) {
	t := 0
	for s := range n {
		t = laneAddSqDev(lanes, t, x[s*stride:s*stride+hw], mean)
	}
}

// chanSumBackward is laneAddBackward of the channel's values, of dy
// masked by y > 0 (reluMask) when y is not nil.
func chanSumBackward(lanes, lanes2 *[bnLanes]float32, dy, x, y []float32, n, hw, stride int, mean, invStd float32) {
	l := (n-1)*stride + hw
	dy, x = dy[:l], x[:l]
	if y != nil {
		y = y[:l]
		if useVec {
			chanSumBackwardReLUAVX(&lanes[0], &lanes2[0], &dy[0], &x[0], &y[0], n, hw, stride, mean, invStd)
			return
		}
		chanSumBackwardReLUGo(lanes, lanes2, dy, x, y, n, hw, stride, mean, invStd)
		return
	}
	if useVec {
		chanSumBackwardAVX(&lanes[0], &lanes2[0], &dy[0], &x[0], n, hw, stride, mean, invStd)
		return
	}
	chanSumBackwardGo(lanes, lanes2, dy, x, n, hw, stride, mean, invStd)
}

func chanSumBackwardGo(lanes, lanes2 *[bnLanes]float32, dy, x []float32, n, hw, stride int, mean, invStd float32) {
	t := 0
	for s := range n {
		t = laneAddBackward(lanes, lanes2, t, dy[s*stride:s*stride+hw], x[s*stride:s*stride+hw], mean, invStd)
	}
}

// chanNormalize is bnNormalize of the channel's values, then with relu
// y = max(y, 0) as ReLUForward. y may be the same slice as x.
func chanNormalize(y, x []float32, n, hw, stride int, mean, invStd, gamma, beta float32, relu bool) {
	l := (n-1)*stride + hw
	y, x = y[:l], x[:l]
	switch {
	case !useVec:
		chanNormalizeGo(y, x, n, hw, stride, mean, invStd, gamma, beta, relu)
	case relu:
		chanNormalizeReLUAVX(&y[0], &x[0], n, hw, stride, mean, invStd, gamma, beta)
	default:
		chanNormalizeAVX(&y[0], &x[0], n, hw, stride, mean, invStd, gamma, beta)
	}
}

func chanNormalizeGo(y, x []float32, n, hw, stride int, mean, invStd, gamma, beta float32, relu bool) {
	for s := range n {
		ys := y[s*stride : s*stride+hw]
		bnNormalize(1, 1, hw, 0, x[s*stride:s*stride+hw], ys, mean, invStd, gamma, beta)
		if relu {
			reluGo(ys, ys)
		}
	}
}

// chanBackward is bnBackwardChannel of the channel's values, of dy
// masked by y > 0 (reluMask) when y is not nil. dx may be the same slice
// as dy.
func chanBackward(dx, x, dy, y []float32, n, hw, stride int, mean, invStd, gamma, mdy, mdyx float32) {
	l := (n-1)*stride + hw
	dx, x, dy = dx[:l], x[:l], dy[:l]
	if y != nil {
		y = y[:l]
		if useVec {
			chanBackwardReLUAVX(&dx[0], &x[0], &dy[0], &y[0], n, hw, stride, mean, invStd, gamma, mdy, mdyx)
			return
		}
		chanBackwardReLUGo(dx, x, dy, y, n, hw, stride, mean, invStd, gamma, mdy, mdyx)
		return
	}
	if useVec {
		chanBackwardAVX(&dx[0], &x[0], &dy[0], n, hw, stride, mean, invStd, gamma, mdy, mdyx)
		return
	}
	chanBackwardGo(dx, x, dy, n, hw, stride, mean, invStd, gamma, mdy, mdyx)
}

func chanBackwardGo(dx, x, dy []float32, n, hw, stride int, mean, invStd, gamma, mdy, mdyx float32) {
	for s := range n {
		o := s * stride
		bnBackwardChannel(1, 1, hw, 0, x[o:o+hw], dy[o:o+hw], dx[o:o+hw], mean, invStd, gamma, mdy, mdyx)
	}
}

// reluMask is ReLUBackward's value for one element: dy where y > 0, else
// +0 (y NaN included).
func reluMask(y, dy float32) float32 {
	if y > 0 {
		return dy
	}
	return 0
}

// chanSumBackwardReLUGo is chanSumBackwardGo of dy masked by y: the
// masked values, a run of at most bnLanes at a time, go through
// laneAddBackward itself (the compiler's operand order, which decides the
// bits of a NaN, is then the same).
func chanSumBackwardReLUGo(lanes, lanes2 *[bnLanes]float32, dy, x, y []float32, n, hw, stride int, mean, invStd float32) {
	var buf [bnLanes]float32
	t := 0
	for s := range n {
		for o := s * stride; o < s*stride+hw; o += bnLanes {
			k := min(bnLanes, s*stride+hw-o)
			for i := range k {
				buf[i] = reluMask(y[o+i], dy[o+i])
			}
			t = laneAddBackward(lanes, lanes2, t, buf[:k], x[o:o+k], mean, invStd)
		}
	}
}

// chanBackwardReLUGo is chanBackwardGo of dy masked by y, through
// bnBackwardChannel a run of at most bnLanes at a time.
func chanBackwardReLUGo(dx, x, dy, y []float32, n, hw, stride int, mean, invStd, gamma, mdy, mdyx float32) {
	var buf [bnLanes]float32
	for s := range n {
		for o := s * stride; o < s*stride+hw; o += bnLanes {
			k := min(bnLanes, s*stride+hw-o)
			for i := range k {
				buf[i] = reluMask(y[o+i], dy[o+i])
			}
			bnBackwardChannel(1, 1, k, 0, x[o:o+k], buf[:k], dx[o:o+k], mean, invStd, gamma, mdy, mdyx)
		}
	}
}
