package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// Launchers of the average-pooling kernels of kernels/avgpool.cu, bit for
// bit cpuref.AvgPoolForward/Backward and GlobalAvgPoolForward/Backward in
// float32.

// AvgPoolForward writes the average of each R×S window (stride sh×sw,
// zero padding ph×pw, the padded zeros counted: the divisor is R·S) of x
// (N,C,H,W) to y (N,C,P,Q), each window summed in row-major order from +0.
// Kernel avgpool_fwd_v1, 1-D over N·C·P·Q. An error wrapping
// geom.ErrGeometry is returned when g is invalid or a buffer has the wrong
// length.
func (d *Device) AvgPoolForward(g geom.AvgPoolGeom, x, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.avgPoolForward(g, x, y); err != nil {
		return launchErr(kAvgPoolFwd, g, err)
	}
	return nil
}

func (d *Device) avgPoolForward(g geom.AvgPoolGeom, x, y *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("x", x, Float32, g.XLen()); err != nil {
		return err
	}
	if err := d.need("y", y, Float32, g.YLen()); err != nil {
		return err
	}
	grid, block := linear(g.YLen())
	return d.launch(kAvgPoolFwd, grid, block, 0, argPtr(x), argPtr(y),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(g.PadH), argI32(g.PadW))
}

// AvgPoolBackward overwrites dx (N,C,H,W) with the gradient of
// AvgPoolForward for dy (N,C,P,Q): each input gathers dy over the windows
// that cover it, p then q ascending from +0, divided by R·S; an input no
// window covers gets +0. Kernel avgpool_bwd_v1, 1-D over N·C·H·W. Errors as
// AvgPoolForward.
func (d *Device) AvgPoolBackward(g geom.AvgPoolGeom, dy, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.avgPoolBackward(g, dy, dx); err != nil {
		return launchErr(kAvgPoolBwd, g, err)
	}
	return nil
}

func (d *Device) avgPoolBackward(g geom.AvgPoolGeom, dy, dx *Buffer) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := d.need("dy", dy, Float32, g.YLen()); err != nil {
		return err
	}
	if err := d.need("dx", dx, Float32, g.XLen()); err != nil {
		return err
	}
	grid, block := linear(g.XLen())
	return d.launch(kAvgPoolBwd, grid, block, 0, argPtr(dy), argPtr(dx),
		argI32(g.N), argI32(g.C), argI32(g.H), argI32(g.W), argI32(g.R), argI32(g.S),
		argI32(g.P()), argI32(g.Q()), argI32(g.StrideH), argI32(g.StrideW), argI32(g.PadH), argI32(g.PadW))
}

// gapShape names a global-average-pool launch in errors.
type gapShape struct{ n, c, hw int }

func (s gapShape) String() string { return fmt.Sprintf("N=%d,C=%d,HW=%d", s.n, s.c, s.hw) }

// GlobalAvgPoolForward writes y[n,c] = (Σ_j x[n,c,j])/HW, x (N,C,HW) summed
// in order from +0, y (N,C). Kernel global_avgpool_fwd_v1, 1-D over N·C.
// An error wrapping geom.ErrGeometry is returned when a size is < 1, a
// tensor has 2³¹ elements or more or a buffer has the wrong length.
func (d *Device) GlobalAvgPoolForward(n, c, hw int, x, y *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.globalAvgPool(kGlobalAvgPoolFwd, n, c, hw, "x", x, "y", y); err != nil {
		return launchErr(kGlobalAvgPoolFwd, gapShape{n, c, hw}, err)
	}
	return nil
}

// GlobalAvgPoolBackward overwrites dx (N,C,HW) with dx[n,c,j] = dy[n,c]/HW,
// dy (N,C). Kernel global_avgpool_bwd_v1, 1-D over N·C·HW. Errors as
// GlobalAvgPoolForward.
func (d *Device) GlobalAvgPoolBackward(n, c, hw int, dy, dx *Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.globalAvgPool(kGlobalAvgPoolBwd, n, c, hw, "dy", dy, "dx", dx); err != nil {
		return launchErr(kGlobalAvgPoolBwd, gapShape{n, c, hw}, err)
	}
	return nil
}

// globalAvgPool launches kernel id (the forward or backward global average
// pool) on in and out after checking their lengths.
func (d *Device) globalAvgPool(id kernelID, n, c, hw int, inName string, in *Buffer, outName string, out *Buffer) error {
	if err := dims([]int{n, c, hw}, []int{n, c, hw}); err != nil {
		return err
	}
	big, small := n*c*hw, n*c
	inLen, outLen, total := big, small, small
	if id == kGlobalAvgPoolBwd {
		inLen, outLen, total = small, big, big
	}
	if err := d.need(inName, in, Float32, inLen); err != nil {
		return err
	}
	if err := d.need(outName, out, Float32, outLen); err != nil {
		return err
	}
	grid, block := linear(total)
	return d.launch(id, grid, block, 0, argPtr(in), argPtr(out), argI32(n), argI32(c), argI32(hw))
}
