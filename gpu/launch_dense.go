package gpu

import "github.com/convtrain/convtrain/cpuref/geom"

// Launchers of the dense-layer kernels of kernels/dense.cu.

// DenseForward computes y = x·wᵀ + b:
//
//	y[n,o] = b[o] + Σ_i x[n,i] · w[o,i]
//
// x is (N,In), w is (Out,In), b is (Out) or nil, y is (N,Out). Kernel
// dense_fwd_v1, 1-D over N·Out.
func (d *Device) DenseForward(n, in, out int, x, w, b, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.denseForward(n, in, out, x, w, b, y); err != nil {
		return launchErr(kDenseFwd, denseShape{n, in, out}, err)
	}
	return nil
}

func (d *Device) denseForward(n, in, out int, x, w, b, y *Buffer) error {
	if err := dims([]int{n, in, out}, []int{n, in}, []int{out, in}, []int{n, out}); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, n*in); err != nil {
		return err
	}
	if err := d.need("w", w, Float32, out*in); err != nil {
		return err
	}
	if err := d.needOpt("b", b, Float32, out); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, n*out); err != nil {
		return err
	}
	grid, block := linear(n * out)
	return d.launch(kDenseFwd, grid, block, 0, argPtr(x), argPtr(w), argPtr(b), argPtr(y),
		argI32(n), argI32(in), argI32(out))
}

// DenseBackwardData overwrites dx (N,In) with dy·w: dx[n,i] = Σ_o dy[n,o] ·
// w[o,i]; dy is (N,Out), w is (Out,In). Kernel dense_bwd_data_v1, 1-D over
// N·In.
func (d *Device) DenseBackwardData(n, in, out int, dy, w, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.denseBackwardData(n, in, out, dy, w, dx); err != nil {
		return launchErr(kDenseBwdData, denseShape{n, in, out}, err)
	}
	return nil
}

func (d *Device) denseBackwardData(n, in, out int, dy, w, dx *Buffer) error {
	if err := dims([]int{n, in, out}, []int{n, in}, []int{out, in}, []int{n, out}); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, n*out); err != nil {
		return err
	}
	if err := d.need("w", w, Float32, out*in); err != nil {
		return err
	}
	if err := d.need("dx", dx, Float32, n*in); err != nil {
		return err
	}
	grid, block := linear(n * in)
	return d.launch(kDenseBwdData, grid, block, 0, argPtr(dy), argPtr(w), argPtr(dx),
		argI32(n), argI32(in), argI32(out))
}

// DenseBackwardWeight overwrites dw (Out,In) with dyᵀ·x: dw[o,i] = Σ_n
// dy[n,o] · x[n,i]; x is (N,In), dy is (N,Out). Kernel dense_bwd_weight_v1,
// 1-D over Out·In.
func (d *Device) DenseBackwardWeight(n, in, out int, x, dy, dw *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.denseBackwardWeight(n, in, out, x, dy, dw); err != nil {
		return launchErr(kDenseBwdWeight, denseShape{n, in, out}, err)
	}
	return nil
}

func (d *Device) denseBackwardWeight(n, in, out int, x, dy, dw *Buffer) error {
	if err := dims([]int{n, in, out}, []int{n, in}, []int{out, in}, []int{n, out}); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, n*in); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, n*out); err != nil {
		return err
	}
	if err := d.need("dw", dw, Float32, out*in); err != nil {
		return err
	}
	grid, block := linear(out * in)
	return d.launch(kDenseBwdWeight, grid, block, 0, argPtr(x), argPtr(dy), argPtr(dw),
		argI32(n), argI32(in), argI32(out))
}

// ReduceCols overwrites out (cols) with the column sums of a (rows,cols):
// out[j] = Σ_i a[i,j] (the dense bias gradient). Kernel reduce_cols_v1, 1-D
// over cols.
func (d *Device) ReduceCols(rows, cols int, a, out *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reduceCols(rows, cols, a, out); err != nil {
		return launchErr(kReduceCols, rowShape{rows, cols}, err)
	}
	return nil
}

func (d *Device) reduceCols(rows, cols int, a, out *Buffer) error {
	if err := dims([]int{rows, cols}, []int{rows, cols}); err != nil {
		return err
	}
	if err := d.need("a", a, Float32, rows*cols); err != nil {
		return err
	}
	if err := d.need("out", out, Float32, cols); err != nil {
		return err
	}
	grid, block := linear(cols)
	return d.launch(kReduceCols, grid, block, 0, argPtr(a), argPtr(out), argI32(rows), argI32(cols))
}

// DenseBackward computes, in one launch of dense_bwd_v2, what
// DenseBackwardWeight, ReduceCols (on dy) and DenseBackwardData compute,
// with the same bits:
//
//	dw[o,i] = Σ_n dy[n,o]·x[n,i],  db[o] = Σ_n dy[n,o],  dx[n,i] = Σ_o dy[n,o]·w[o,i]
//
// x is (N,In), w is (Out,In), dy is (N,Out), dw (Out,In); db (Out) and dx
// (N,In) are skipped when nil (w is then unused and may be nil).
func (d *Device) DenseBackward(n, in, out int, x, w, dy, dx, dw, db *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.denseBackward(n, in, out, x, w, dy, dx, dw, db); err != nil {
		return launchErr(kDenseBwd, denseShape{n, in, out}, err)
	}
	return nil
}

func (d *Device) denseBackward(n, in, out int, x, w, dy, dx, dw, db *Buffer) error {
	if err := dims([]int{n, in, out}, []int{n, in}, []int{out, in}, []int{n, out}); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, n*in); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, n*out); err != nil {
		return err
	}
	if err := d.need("dw", dw, Float32, out*in); err != nil {
		return err
	}
	if err := d.needOpt("db", db, Float32, out); err != nil {
		return err
	}
	blocks := ceilDiv(out*in, blockSize)
	if db != nil {
		blocks += ceilDiv(out, blockSize)
	}
	if dx != nil {
		if err := d.need("w", w, Float32, out*in); err != nil {
			return err
		}
		if err := d.need("dx", dx, Float32, n*in); err != nil {
			return err
		}
		blocks += ceilDiv(n*in, blockSize)
	}
	return d.launch(kDenseBwd, Dim3{blocks, 1, 1}, Dim3{blockSize, 1, 1}, 0, argPtr(x), argPtr(w), argPtr(dy),
		argPtr(dx), argPtr(dw), argPtr(db), argI32(n), argI32(in), argI32(out))
}

// DenseBackwardPoolReLU computes dw and db (when not nil) as DenseBackward
// for a dense layer of out outputs whose input x is the output of the
// max-pool g (flattened: In = C·P·Q, N = g.N) and, when dxr is not nil,
// instead of dx, the gradient at the input of the ReLU before the pool:
// MaxPoolBackwardReLU(g, dx, argmax, xr, dxr) of the dx DenseBackward
// would give, the same bits, in one launch of dense_bwd_pool_relu_v1
// (dx is never stored). argmax is the pool's, xr (N,C,H,W) its input
// (the ReLU's output).
func (d *Device) DenseBackwardPoolReLU(g geom.PoolGeom, out int, x, w, dy, dw, db, argmax, xr, dxr *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.denseBackwardPoolReLU(g, out, x, w, dy, dw, db, argmax, xr, dxr); err != nil {
		return launchErr(kDenseBwdPoolReLU, g, err)
	}
	return nil
}

func (d *Device) denseBackwardPoolReLU(g geom.PoolGeom, out int, x, w, dy, dw, db, argmax, xr, dxr *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	n, in := g.N, g.C*g.P()*g.Q()
	if err := dims([]int{n, in, out}, []int{n, in}, []int{out, in}, []int{n, out}); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, n*in); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, n*out); err != nil {
		return err
	}
	if err := d.need("dw", dw, Float32, out*in); err != nil {
		return err
	}
	if err := d.needOpt("db", db, Float32, out); err != nil {
		return err
	}
	blocks := ceilDiv(out*in, blockSize)
	if db != nil {
		blocks += ceilDiv(out, blockSize)
	}
	if dxr != nil {
		if err := d.need("w", w, Float32, out*in); err != nil {
			return err
		}
		if err := d.need("argmax", argmax, Int32, g.YLen()); err != nil {
			return err
		}
		if err := d.need("xr", xr, Float32, g.XLen()); err != nil {
			return err
		}
		if err := d.need("dxr", dxr, Float32, g.XLen()); err != nil {
			return err
		}
		blocks += ceilDiv(g.XLen(), blockSize)
	}
	return d.launch(kDenseBwdPoolReLU, Dim3{blocks, 1, 1}, Dim3{blockSize, 1, 1}, 0, argPtr(x), argPtr(w), argPtr(dy),
		argPtr(dw), argPtr(db), argPtr(argmax), argPtr(xr), argPtr(dxr), argI32(n), argI32(out), argI32(g.C),
		argI32(g.H), argI32(g.W), argI32(g.R), argI32(g.S), argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW))
}
