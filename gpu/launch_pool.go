package gpu

import "github.com/convtrain/convtrain/cpuref/geom"

// Launchers of the pooling kernels of kernels/pool.cu.

// MaxPoolForward writes the maximum of each R×S window (stride sh×sw, no
// padding) to y and the flat index into x of its first maximum, in
// row-major window order, to argmax; a NaN input wins. x is (N,C,H,W), y
// (float32) and argmax (int32) are (N,C,P,Q). Kernel maxpool_fwd_v1, 1-D
// over N·C·P·Q.
func (d *Device) MaxPoolForward(g geom.PoolGeom, x, y, argmax *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.maxPoolForward(g, x, y, argmax); err != nil {
		return launchErr(kMaxPoolFwd, g, err)
	}
	return nil
}

func (d *Device) maxPoolForward(g geom.PoolGeom, x, y, argmax *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, g.XLen()); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("argmax", argmax, Int32, g.YLen()); err != nil {
		return err
	}
	grid, block := linear(g.YLen())
	return d.launch(kMaxPoolFwd, grid, block, 0, argPtr(x), argPtr(y), argPtr(argmax),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW))
}

// MaxPoolBackward overwrites dx (N,C,H,W) with dy (N,C,P,Q) routed to the
// positions argmax (int32, (N,C,P,Q)) names, summing where windows overlap:
//
//	dx[i] = Σ_{(p,q) : argmax[n,c,p,q] = i} dy[n,c,p,q]
//
// argmax must come from MaxPoolForward with the same geometry (each entry
// indexes its own window). Kernel maxpool_bwd_v1, 1-D over N·C·H·W.
func (d *Device) MaxPoolBackward(g geom.PoolGeom, dy, argmax, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.maxPoolBackward(g, dy, argmax, dx); err != nil {
		return launchErr(kMaxPoolBwd, g, err)
	}
	return nil
}

func (d *Device) maxPoolBackward(g geom.PoolGeom, dy, argmax, dx *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("argmax", argmax, Int32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("dx", dx, Float32, g.XLen()); err != nil {
		return err
	}
	grid, block := linear(g.XLen())
	return d.launch(kMaxPoolBwd, grid, block, 0, argPtr(dy), argPtr(argmax), argPtr(dx),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW))
}

// MaxPoolBackwardReLU is MaxPoolBackward followed by ReLUBackward with the
// pool's input x (N,C,H,W) as the mask, in one launch of
// maxpool_bwd_relu_v1, the same bits: dx[i] = x[i] > 0 ? the routed
// gradient : 0. x is the output of a ReLU (a convolution's epilogue), so
// that dx is the gradient at the ReLU's input.
func (d *Device) MaxPoolBackwardReLU(g geom.PoolGeom, dy, argmax, x, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.maxPoolBackwardReLU(g, dy, argmax, x, dx); err != nil {
		return launchErr(kMaxPoolBwdReLU, g, err)
	}
	return nil
}

func (d *Device) maxPoolBackwardReLU(g geom.PoolGeom, dy, argmax, x, dx *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("argmax", argmax, Int32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, g.XLen()); err != nil {
		return err
	}
	if err := d.need("dx", dx, Float32, g.XLen()); err != nil {
		return err
	}
	grid, block := linear(g.XLen())
	return d.launch(kMaxPoolBwdReLU, grid, block, 0, argPtr(dy), argPtr(argmax), argPtr(x), argPtr(dx),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW))
}

// MaxPoolDenseForward is MaxPoolForward(g, x, y, argmax) and then
// DenseForward(g.N, C·P·Q, out, y, w, b, z) on the pooled images, in one
// launch of maxpool_dense_fwd_v1 (a block per image), the same bits. w is
// (out, C·P·Q), b (out) or nil, z (N, out).
func (d *Device) MaxPoolDenseForward(g geom.PoolGeom, x, y, argmax *Buffer, out int, w, b, z *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.maxPoolDenseForward(g, x, y, argmax, out, w, b, z); err != nil {
		return launchErr(kMaxPoolDenseFwd, g, err)
	}
	return nil
}

func (d *Device) maxPoolDenseForward(g geom.PoolGeom, x, y, argmax *Buffer, out int, w, b, z *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	in := g.C * g.P() * g.Q()
	if err := dims([]int{g.N, in, out}, []int{g.N, out}, []int{out, in}); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, g.XLen()); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("argmax", argmax, Int32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("w", w, Float32, out*in); err != nil {
		return err
	}
	if err := d.needOpt("b", b, Float32, out); err != nil {
		return err
	}
	if err := d.need("z", z, Float32, g.N*out); err != nil {
		return err
	}
	grid, block := perBlock(g.N)
	return d.launch(kMaxPoolDenseFwd, grid, block, 0, argPtr(x), argPtr(y), argPtr(argmax), argPtr(w), argPtr(b), argPtr(z),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(out))
}
