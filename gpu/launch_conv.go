package gpu

import "github.com/convtrain/convtrain/cpuref/geom"

// Launchers of the direct convolution kernels of kernels/conv.cu
// (conv2d_*_v1_direct, conv2d_bwd_bias_v1); the dispatching entry points
// and the implicit-GEMM kernels are in launch_igemm.go.

// conv2DForward launches conv2d_fwd_v1_direct, 1-D over N·K·P·Q (see
// Conv2DForward).
func (d *Device) conv2DForward(g geom.ConvGeom, x, w, b, y *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, g.XLen()); err != nil {
		return err
	}
	if err := d.need("w", w, Float32, g.WLen()); err != nil {
		return err
	}
	if err := d.needOpt("b", b, Float32, g.K); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, g.YLen()); err != nil {
		return err
	}
	grid, block := linear(g.YLen())
	return d.launch(kConvFwd, grid, block, 0, argPtr(x), argPtr(w), argPtr(b), argPtr(y),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.K), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(g.PadH), argI32(g.PadW))
}

// conv2DBackwardData launches conv2d_bwd_data_v1_direct, 1-D over
// N·C·H·W (see Conv2DBackwardData).
func (d *Device) conv2DBackwardData(g geom.ConvGeom, dy, w, dx *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("w", w, Float32, g.WLen()); err != nil {
		return err
	}
	if err := d.need("dx", dx, Float32, g.XLen()); err != nil {
		return err
	}
	grid, block := linear(g.XLen())
	return d.launch(kConvBwdData, grid, block, 0, argPtr(dy), argPtr(w), argPtr(dx),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.K), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(g.PadH), argI32(g.PadW))
}

// conv2DBackwardFilter launches conv2d_bwd_filter_v1_direct, one
// 256-thread block per weight: fixed strided partial sums and a fixed
// tree (see Conv2DBackwardFilter).
func (d *Device) conv2DBackwardFilter(g geom.ConvGeom, x, dy, dw *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, g.XLen()); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("dw", dw, Float32, g.WLen()); err != nil {
		return err
	}
	grid, block := perBlock(g.WLen())
	return d.launch(kConvBwdFilter, grid, block, 0, argPtr(x), argPtr(dy), argPtr(dw),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.K), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(g.PadH), argI32(g.PadW))
}

// conv2DBackwardFilterBias launches conv2d_bwd_filter_bias_v1: dw as
// conv2d_bwd_filter_v1_direct and db as conv2d_bwd_bias_v1, in one launch.
func (d *Device) conv2DBackwardFilterBias(g geom.ConvGeom, x, dy, dw, db *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, g.XLen()); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("dw", dw, Float32, g.WLen()); err != nil {
		return err
	}
	if err := d.need("db", db, Float32, g.K); err != nil {
		return err
	}
	grid, block := perBlock(g.WLen() + g.K)
	return d.launch(kConvBwdFilterBias, grid, block, 0, argPtr(x), argPtr(dy), argPtr(dw), argPtr(db),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.K), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(g.PadH), argI32(g.PadW))
}

// Conv2DBackwardBias overwrites db with ∂E/∂b[k] = Σ_n Σ_p Σ_q dy[n,k,p,q].
// dy is (N,K,P,Q), db is (K). Kernel conv2d_bwd_bias_v1, grid K.
func (d *Device) Conv2DBackwardBias(g geom.ConvGeom, dy, db *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.conv2DBackwardBias(g, dy, db); err != nil {
		return launchErr(kConvBwdBias, g, err)
	}
	return nil
}

func (d *Device) conv2DBackwardBias(g geom.ConvGeom, dy, db *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("db", db, Float32, g.K); err != nil {
		return err
	}
	grid, block := perBlock(g.K)
	return d.launch(kConvBwdBias, grid, block, 0, argPtr(dy), argPtr(db),
		argI32(g.N), argI32(g.K), argI32(g.P()*g.Q()))
}
