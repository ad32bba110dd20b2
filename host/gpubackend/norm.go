package gpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
)

// The batch-norm and average-pool operations over the kernels of
// kernels/norm.cu and kernels/avgpool.cu (gpu/launch_norm.go,
// gpu/launch_avgpool.go): the same bits as the CPU backend, which runs
// cpuref's float32 forms.

// checkNCHW checks the sizes of a per-channel operation op: n, c, hw ≥ 1
// and N·C·HW below backend.MaxTensorElems, so that the tensor lengths
// computed from them cannot overflow.
func checkNCHW(op string, n, c, hw int) error {
	if n < 1 || c < 1 || hw < 1 || !geom.FitsProduct([]int{n, c, hw}) {
		return fmt.Errorf("host: %s: N=%d C=%d HW=%d: %w", op, n, c, hw, geom.ErrGeometry)
	}
	return nil
}

// BatchNormForward runs bn_train_fwd_v1 (train: batch statistics, saveMean
// and saveInvStd written, runMean and runVar updated when given) or
// bn_eval_fwd_v1 (evaluation with runMean and runVar; saveMean and
// saveInvStd unused); with EpilogueReLU their v2, the ReLU before the
// store. One launch.
func (be *gpuBackend) BatchNormForward(train bool, n, c, hw int, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, y backend.Tensor, ep backend.Epilogue, momentum, eps float64) error {
	op := "batch norm forward"
	if !train {
		op = "batch norm forward (evaluation)"
	}
	if ep != backend.NoEpilogue && ep != backend.EpilogueReLU {
		return fmt.Errorf("host: %s: unknown epilogue %v: %w", op, ep, geom.ErrGeometry)
	}
	relu := ep == backend.EpilogueReLU
	if err := checkNCHW(op, n, c, hw); err != nil {
		return err
	}
	L := n * c * hw
	xb, err := be.f32("x", x, L)
	if err != nil {
		return err
	}
	gb, err := be.f32("gamma", gamma, c)
	if err != nil {
		return err
	}
	bb, err := be.f32("beta", beta, c)
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, L)
	if err != nil {
		return err
	}
	if !train {
		rm, err := be.f32("running mean", runMean, c)
		if err != nil {
			return err
		}
		rv, err := be.f32("running var", runVar, c)
		if err != nil {
			return err
		}
		return gpuWrap(op, be.dev.BatchNormEvalForward(n, c, hw, xb, gb, bb, rm, rv, yb, eps, relu))
	}
	rm, err := be.optF32("running mean", runMean, c)
	if err != nil {
		return err
	}
	rv, err := be.optF32("running var", runVar, c)
	if err != nil {
		return err
	}
	sm, err := be.optF32("saved mean", saveMean, c)
	if err != nil {
		return err
	}
	si, err := be.optF32("saved inverse std", saveInvStd, c)
	if err != nil {
		return err
	}
	return gpuWrap(op, be.dev.BatchNormTrainForward(n, c, hw, xb, gb, bb, yb, sm, si, rm, rv, momentum, eps, relu))
}

// BatchNormBackward runs bn_bwd_v1: dgamma, dbeta and, when dx is not nil,
// dx in one launch.
func (be *gpuBackend) BatchNormBackward(n, c, hw int, x, gamma, saveMean, saveInvStd, dy, dx, dgamma, dbeta backend.Tensor) error {
	const op = "batch norm backward"
	if err := checkNCHW(op, n, c, hw); err != nil {
		return err
	}
	L := n * c * hw
	xb, err := be.f32("x", x, L)
	if err != nil {
		return err
	}
	gb, err := be.f32("gamma", gamma, c)
	if err != nil {
		return err
	}
	sm, err := be.f32("saved mean", saveMean, c)
	if err != nil {
		return err
	}
	si, err := be.f32("saved inverse std", saveInvStd, c)
	if err != nil {
		return err
	}
	dyb, err := be.f32("dy", dy, L)
	if err != nil {
		return err
	}
	dgb, err := be.f32("dgamma", dgamma, c)
	if err != nil {
		return err
	}
	dbb, err := be.f32("dbeta", dbeta, c)
	if err != nil {
		return err
	}
	dxb, err := be.optF32("dx", dx, L)
	if err != nil {
		return err
	}
	return gpuWrap(op, be.dev.BatchNormBackward(n, c, hw, xb, gb, sm, si, dyb, dxb, dgb, dbb))
}

func (be *gpuBackend) AvgPoolForward(g geom.AvgPoolGeom, x, y backend.Tensor) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("host: average pool forward: %w", err)
	}
	xb, err := be.f32("x", x, g.XLen())
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, g.YLen())
	if err != nil {
		return err
	}
	return gpuWrap("average pool forward", be.dev.AvgPoolForward(g, xb, yb))
}

func (be *gpuBackend) AvgPoolBackward(g geom.AvgPoolGeom, dy, dx backend.Tensor) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("host: average pool backward: %w", err)
	}
	dyb, err := be.f32("dy", dy, g.YLen())
	if err != nil {
		return err
	}
	dxb, err := be.f32("dx", dx, g.XLen())
	if err != nil {
		return err
	}
	return gpuWrap("average pool backward", be.dev.AvgPoolBackward(g, dyb, dxb))
}

func (be *gpuBackend) GlobalAvgPoolForward(n, c, hw int, x, y backend.Tensor) error {
	const op = "global average pool forward"
	if err := checkNCHW(op, n, c, hw); err != nil {
		return err
	}
	xb, err := be.f32("x", x, n*c*hw)
	if err != nil {
		return err
	}
	yb, err := be.f32("y", y, n*c)
	if err != nil {
		return err
	}
	return gpuWrap(op, be.dev.GlobalAvgPoolForward(n, c, hw, xb, yb))
}

func (be *gpuBackend) GlobalAvgPoolBackward(n, c, hw int, dy, dx backend.Tensor) error {
	const op = "global average pool backward"
	if err := checkNCHW(op, n, c, hw); err != nil {
		return err
	}
	dyb, err := be.f32("dy", dy, n*c)
	if err != nil {
		return err
	}
	dxb, err := be.f32("dx", dx, n*c*hw)
	if err != nil {
		return err
	}
	return gpuWrap(op, be.dev.GlobalAvgPoolBackward(n, c, hw, dyb, dxb))
}
