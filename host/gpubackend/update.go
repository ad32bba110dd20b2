package gpubackend

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
)

// paramTableCache is the device table of the last UpdateParams' tensors
// (gpu.ParamTable), rebuilt only when the tensors change: a model passes
// the same ones every step, so a step uploads nothing.
type paramTableCache struct {
	key   []backend.ParamState
	table *gpu.ParamTable
}

// matches reports whether ps are the cached tensors, in order.
func (c *paramTableCache) matches(ps []backend.ParamState) bool {
	if c.table == nil || len(ps) != len(c.key) {
		return false
	}
	for i := range ps {
		if ps[i] != c.key[i] {
			return false
		}
	}
	return true
}

// free releases the cached table.
func (c *paramTableCache) free() error {
	if c.table == nil {
		return nil
	}
	err := c.table.Free()
	c.key, c.table = nil, nil
	return err
}

// UpdateParams checks every tensor, then runs one launch of
// sgd_momentum_multi_v1, sgd_nesterov_multi_v1 or adam_multi_v1 over the
// device table of ps (built on the first call and whenever the tensors
// change), with Adam's step scalars from geom.AdamCoefficients as in
// AdamStep: the same bits as the per-tensor operations. With u.At, the
// _at_v1 kernel of the rule, reading the scalars from the per-step values
// (SetStepVals writes them as the eager launch passes them).
func (be *gpuBackend) UpdateParams(ps []backend.ParamState, u backend.Update) error {
	if err := backend.CheckUpdate(ps, u); err != nil {
		return err
	}
	for i, p := range ps {
		if err := be.checkParam(p, u.IsAdam()); err != nil {
			return fmt.Errorf("host: update params: parameter %d: %w", i, err)
		}
	}
	// The lengths, every step: the cached table (whose build checks them
	// again, gpu.NewParamTable) holds the tensors' addresses, not their
	// handles.
	if err := backend.CheckParamLengths(ps, u); err != nil {
		return err
	}
	if !be.params.matches(ps) {
		if err := be.params.free(); err != nil {
			return fmt.Errorf("host: update params: %w", err)
		}
		sets := make([]gpu.ParamSet, len(ps))
		for i, p := range ps {
			sets[i] = gpu.ParamSet{P: p.Value.(*gpuTensor).buf, G: p.Grad.(*gpuTensor).buf, M: p.Vel.(*gpuTensor).buf}
			if u.IsAdam() {
				sets[i].V = p.Sq.(*gpuTensor).buf
			}
		}
		t, err := be.dev.NewParamTable(sets)
		if err != nil {
			return fmt.Errorf("host: update params: %w", err)
		}
		be.params.key, be.params.table = append([]backend.ParamState(nil), ps...), t
	}
	if u.At != nil {
		w, err := be.atWord(u.At, valUpdate)
		if err != nil {
			return fmt.Errorf("host: update params: %w", err)
		}
		switch u.Rule {
		case backend.RuleSGD:
			return gpuWrap("update params", be.dev.SGDMomentumMultiAt(be.params.table, w))
		case backend.RuleNesterov:
			return gpuWrap("update params", be.dev.SGDNesterovMultiAt(be.params.table, w))
		}
		return gpuWrap("update params", be.dev.AdamMultiAt(be.params.table, w))
	}
	switch u.Rule {
	case backend.RuleSGD:
		return gpuWrap("update params", be.dev.SGDMomentumMulti(be.params.table, u.LR, u.Momentum, u.WeightDecay))
	case backend.RuleNesterov:
		return gpuWrap("update params", be.dev.SGDNesterovMulti(be.params.table, u.LR, u.Momentum, u.WeightDecay))
	}
	c, err := geom.AdamCoefficients(float64(u.LR), float64(u.Beta1), float64(u.Beta2), float64(u.Eps),
		float64(u.WeightDecay), u.Step, u.Rule == backend.RuleAdamW)
	if err != nil {
		return fmt.Errorf("host: update params: %w", err)
	}
	return gpuWrap("update params", be.dev.AdamMulti(be.params.table, c))
}

var paramNames = [...]string{"value", "grad", "vel", "sq"}

// checkParam checks one parameter's tensor handles: live float32 tensors
// of this backend, Sq when adam.
func (be *gpuBackend) checkParam(p backend.ParamState, adam bool) error {
	ts := [...]backend.Tensor{p.Value, p.Grad, p.Vel, p.Sq}
	n := len(ts)
	if !adam {
		n--
	}
	for i, t := range ts[:n] {
		if _, err := be.f32(paramNames[i], t, -1); err != nil {
			return err
		}
	}
	return nil
}

// checkTableCache is the device table of the last FirstNonFinite's
// tensors, rebuilt only when they change.
type checkTableCache struct {
	key   []backend.Tensor
	table *gpu.CheckTable
}

func (c *checkTableCache) matches(ts []backend.Tensor) bool {
	if c.table == nil || len(ts) != len(c.key) {
		return false
	}
	for i := range ts {
		if ts[i] != c.key[i] {
			return false
		}
	}
	return true
}

func (c *checkTableCache) free() error {
	if c.table == nil {
		return nil
	}
	err := c.table.Free()
	c.key, c.table = nil, nil
	return err
}

// FirstNonFinite runs fill_f32_v1 and nonfinite_first_v1 over the device
// table of ts (built on the first call and whenever the tensors change):
// nothing is copied to the host.
func (be *gpuBackend) FirstNonFinite(ts []backend.Tensor, out backend.Tensor) error {
	if err := backend.CheckFinite(ts); err != nil {
		return err
	}
	o, err := be.f32("out", out, -1)
	if err != nil {
		return fmt.Errorf("host: first non-finite: %w", err)
	}
	for i, t := range ts {
		if _, err := be.f32("tensor", t, -1); err != nil {
			return fmt.Errorf("host: first non-finite: tensor %d: %w", i, err)
		}
	}
	if !be.checks.matches(ts) {
		if err := be.checks.free(); err != nil {
			return fmt.Errorf("host: first non-finite: %w", err)
		}
		bufs := make([]*gpu.Buffer, len(ts))
		for i, t := range ts {
			bufs[i] = t.(*gpuTensor).buf
		}
		tab, err := be.dev.NewCheckTable(bufs)
		if err != nil {
			return fmt.Errorf("host: first non-finite: %w", err)
		}
		be.checks.key, be.checks.table = append([]backend.Tensor(nil), ts...), tab
	}
	return gpuWrap("first non-finite", be.dev.FirstNonFinite(be.checks.table, o))
}
