package nn

import (
	"errors"
	"fmt"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/host/backend"
)

// BNSync synchronises BatchNorm over the ranks of a data-parallel world
// (Model.SetBatchNormSync): in training mode every BatchNorm layer
// normalises with the statistics of the images of all the ranks' batches
// together, as PyTorch's SyncBatchNorm.
type BNSync struct {
	// World is the number of ranks, each running a batch of the same size.
	World int
	// Sum sums buf over the ranks in place, every rank getting the same
	// bits (a fixed order: dist.MPI's OrderedSum).
	Sum func(buf []float32) error
}

// SetBatchNormSync makes every BatchNorm layer synchronise its training
// statistics through s (nil: per-batch statistics, the default); set
// before NewBatch (at BF16 a batch may store a batch norm's output as
// bfloat16, which the synchronised pass cannot upload: an error). A
// synchronised layer runs host-staged on any backend: its input (and, in
// the backward pass, its gradient) is downloaded, the split lane-sum form
// of cpuref (BatchNormSums32 … BatchNormBackwardFinish32) runs on the
// host, and the results are uploaded. Per channel and step:
//
//	forward:  Σx over the ranks (s.Sum), μ = Σx/M; Σ(x−μ)² over the ranks; M = World·N·H·W
//	backward: Σdy and Σdy·x̂ over the ranks, for dx; dγ and dβ stay this rank's own
//
// dγ and dβ are the rank's own sums (PyTorch's SyncBatchNorm too): the
// trainer sums every gradient over the ranks and divides by their number.
// With World = 1 and Sum the identity the results are the backend's
// BatchNormForward and BatchNormBackward bits (cpuref's lane form, which
// the GPU kernels reproduce); with more ranks each sum is the ranks'
// lane sums added in rank order: a few float32 ulps from the lane sum of
// one process holding the whole batch. A ReLU fused after the layer (the
// step plan's BN+ReLU) is applied on the host too (cpuref.ReLUForward, the
// backends' epilogue). Evaluation (Batch.Eval) is not synchronised: it
// uses the running statistics.
func (m *Model) SetBatchNormSync(s *BNSync) error {
	if s != nil && (s.World < 1 || s.Sum == nil) {
		return fmt.Errorf("host: batch norm sync over %d ranks: want ≥ 1 rank and a sum", s.World)
	}
	if s != nil && m.bf16BNOuts {
		return fmt.Errorf("host: batch norm sync: set it before NewBatch: a batch already stores a batch norm's output as " +
			"bfloat16 (BF16), which the synchronised pass cannot write")
	}
	m.bnSync = s
	return nil
}

// bnHost is the host memory of a synchronised BatchNorm node for one
// batch size, allocated at its first step.
type bnHost struct {
	x, y, dy        []float32 // (N,C,H·W)
	gamma, beta     []float32 // (C)
	runMean, runVar []float32
	mean, invStd    []float32
	sums            []float32 // (2C): Σx then Σ(x−μ)², or Σdy and Σdy·x̂
	local           []float32 // (2C): this rank's Σdy and Σdy·x̂
}

func (b *Batch) bnHostOf(n *node) *bnHost {
	if b.bnHost == nil {
		b.bnHost = map[int]*bnHost{}
	}
	h := b.bnHost[n.id]
	if h == nil {
		in := n.info.In
		L, c := b.N*in.C*in.H*in.W, in.C
		h = &bnHost{x: make([]float32, L), y: make([]float32, L), dy: make([]float32, L)}
		for _, s := range []*[]float32{&h.gamma, &h.beta, &h.runMean, &h.runVar, &h.mean, &h.invStd} {
			*s = make([]float32, c)
		}
		h.sums, h.local = make([]float32, 2*c), make([]float32, 2*c)
		b.bnHost[n.id] = h
	}
	return h
}

// bnSyncForward is the training-mode forward pass of BatchNorm node n
// synchronised by s (see SetBatchNormSync).
func bnSyncForward(b *Batch, n *node, s *BNSync) error {
	in, be := n.info.In, b.be
	c, hw := in.C, in.H*in.W
	p, tmp, h := n.params, b.tmp[n.id], b.bnHostOf(n)
	M := s.World * b.N * hw
	err := errors.Join(be.Download(h.x, b.acts[n.in]), be.Download(h.gamma, p[0].Value), be.Download(h.beta, p[1].Value),
		be.Download(h.runMean, p[2].Value), be.Download(h.runVar, p[3].Value))
	if err != nil {
		return err
	}
	sum, sq := h.sums[:c], h.sums[c:]
	if err := cpuref.BatchNormSums32(b.N, c, hw, h.x, nil, sum); err != nil {
		return err
	}
	if err := s.Sum(sum); err != nil {
		return fmt.Errorf("batch norm sync (Σx): %w", err)
	}
	if err := cpuref.BatchNormMean32(M, sum, h.mean); err != nil {
		return err
	}
	if err := cpuref.BatchNormSums32(b.N, c, hw, h.x, h.mean, sq); err != nil {
		return err
	}
	if err := s.Sum(sq); err != nil {
		return fmt.Errorf("batch norm sync (Σ(x−μ)²): %w", err)
	}
	if err := cpuref.BatchNormFinish32(b.N, c, hw, M, h.x, h.gamma, h.beta, h.y, h.mean, sq, h.mean, h.invStd, h.runMean, h.runVar, bnMomentum, bnEps); err != nil {
		return err
	}
	if n.epilogue == backend.EpilogueReLU { // the ReLU after it, fused (plan.go): its output
		if err := cpuref.ReLUForward(h.y, h.y); err != nil {
			return err
		}
	}
	return errors.Join(be.Upload(b.acts[n.y], h.y), be.Upload(tmp[0], h.mean), be.Upload(tmp[1], h.invStd),
		be.Upload(p[2].Value, h.runMean), be.Upload(p[3].Value, h.runVar))
}

// bnSyncBackward is the backward pass of BatchNorm node n synchronised by
// s: dγ and dβ this rank's sums, dx with the sums over the ranks.
func bnSyncBackward(b *Batch, n *node, s *BNSync) error {
	in, be := n.info.In, b.be
	c, hw := in.C, in.H*in.W
	p, tmp, h := n.params, b.tmp[n.id], b.bnHostOf(n)
	err := errors.Join(be.Download(h.x, b.acts[n.in]), be.Download(h.dy, b.grads[n.out]), be.Download(h.gamma, p[0].Value),
		be.Download(h.mean, tmp[0]), be.Download(h.invStd, tmp[1]))
	if err != nil {
		return err
	}
	sdy, sdyx := h.local[:c], h.local[c:]
	if err := cpuref.BatchNormBackwardSums32(b.N, c, hw, h.x, h.mean, h.invStd, h.dy, sdy, sdyx); err != nil {
		return err
	}
	if err := errors.Join(be.Upload(p[0].Grad, sdyx), be.Upload(p[1].Grad, sdy)); err != nil {
		return err
	}
	dx := b.dx(n)
	if dx == nil {
		return nil
	}
	copy(h.sums, h.local)
	if err := s.Sum(h.sums); err != nil {
		return fmt.Errorf("batch norm sync (Σdy, Σdy·x̂): %w", err)
	}
	if err := cpuref.BatchNormBackwardFinish32(b.N, c, hw, s.World*b.N*hw, h.x, h.gamma, h.mean, h.invStd, h.dy, h.sums[:c], h.sums[c:], h.y); err != nil {
		return err
	}
	return be.Upload(dx, h.y)
}
