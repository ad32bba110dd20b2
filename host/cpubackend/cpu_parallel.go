package cpubackend

import (
	"fmt"
	"math"
	"sync"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

// The CPU backend splits the elementwise and pooling passes into
// contiguous chunks (of elements, or of whole images for pooling) run on
// up to `threads` goroutines; cpuref's Conv2D and BatchNorm32 parallelise
// themselves. Every output element is computed by one goroutine with the
// same arithmetic as the serial cpuref call, so results do not depend on
// the thread count. The tasks are built once, so a pass allocates
// nothing.

// parOp is the pass that the workers run.
type parOp int

const (
	opReLUForward parOp = iota
	opReLUBackward
	opAdd
	opAddReLU
	opPoolForward
	opPoolCheck
	opPoolBackward
	opRoundBF16
	opRoundTF32
)

// minChunk is the least work per goroutine: elements for ReLU, addition
// and rounding, output elements for pooling. Below it a pass runs on the calling goroutine.
const minChunk = 1 << 14

// parallel holds the worker tasks and the arguments of the pass in flight.
type parallel struct {
	threads int
	tasks   []func()
	errs    []error
	wg      sync.WaitGroup

	op           parOp
	units, nw    int
	x, y, dy, dx []float32
	a, b         []float32 // opAdd, opAddReLU: y = a + b, max(a + b, 0)
	am           []int32
	pg           geom.PoolGeom
}

// run executes op over units split into nw ≤ threads chunks and returns
// the first chunk's error.
func (p *parallel) run(op parOp, units, work int) error {
	nw := max(1, min(p.threads, units, work/minChunk))
	for len(p.tasks) < nw {
		i := len(p.tasks)
		p.tasks = append(p.tasks, func() {
			p.errs[i] = p.chunk(i)
			p.wg.Done()
		})
		p.errs = append(p.errs, nil)
	}
	p.op, p.units, p.nw = op, units, nw
	if nw == 1 {
		p.errs[0] = p.chunk(0)
	} else {
		p.wg.Add(nw - 1)
		for i := 1; i < nw; i++ {
			go p.tasks[i]()
		}
		p.errs[0] = p.chunk(0)
		p.wg.Wait()
	}
	for _, err := range p.errs[:nw] {
		if err != nil {
			return err
		}
	}
	return nil
}

// chunk runs the pass on chunk i of nw: units [lo, hi).
func (p *parallel) chunk(i int) error {
	lo, hi := i*p.units/p.nw, (i+1)*p.units/p.nw
	switch p.op {
	case opReLUForward:
		return cpuref.ReLUForward(p.x[lo:hi], p.y[lo:hi])
	case opReLUBackward:
		return cpuref.ReLUBackward(p.x[lo:hi], p.dy[lo:hi], p.dx[lo:hi])
	case opAdd:
		return cpuref.AddForward(p.a[lo:hi], p.b[lo:hi], p.y[lo:hi])
	case opAddReLU:
		return cpuref.AddReLUForward(p.a[lo:hi], p.b[lo:hi], p.y[lo:hi])
	case opRoundBF16:
		cpuref.RoundBF16Slice(p.y[lo:hi], p.x[lo:hi])
		return nil
	case opRoundTF32:
		cpuref.RoundTF32Slice(p.y[lo:hi], p.x[lo:hi])
		return nil
	}
	// Pooling: units are images.
	g := p.pg
	chw, cpq := g.C*g.H*g.W, g.C*g.P()*g.Q()
	switch p.op {
	case opPoolForward:
		sub := g
		sub.N = hi - lo
		am := p.am[lo*cpq : hi*cpq]
		if g.R == 2 && g.S == 2 && g.StrideH == 2 && g.StrideW == 2 {
			maxPool2x2(sub, p.x[lo*chw:hi*chw], p.y[lo*cpq:hi*cpq], am, int32(lo*chw))
			return nil
		}
		if err := cpuref.MaxPoolForward(sub, p.x[lo*chw:hi*chw], p.y[lo*cpq:hi*cpq], am); err != nil {
			return err
		}
		// cpuref indexes the chunk; make the indices flat indices into x.
		off := int32(lo * chw)
		for j := range am {
			am[j] += off
		}
	case opPoolCheck:
		// Each (n,c) plane's outputs must point into the same plane of x.
		hw, pq := g.H*g.W, g.P()*g.Q()
		for plane := lo * g.C; plane < hi*g.C; plane++ {
			a0, a1 := int32(plane*hw), int32((plane+1)*hw)
			for o, a := range p.am[plane*pq : (plane+1)*pq] {
				if a < a0 || a >= a1 {
					return fmt.Errorf("host: max-pool backward %v: argmax[%d] = %d outside [%d, %d): %w",
						g, plane*pq+o, a, a0, a1, geom.ErrGeometry)
				}
			}
		}
	case opPoolBackward:
		// dx[i] = Σ_{o: argmax[o] = i} dy[o], in increasing o as cpuref;
		// the windows of chunk i's outputs lie in chunk i's images.
		clear(p.dx[lo*chw : hi*chw])
		for o := lo * cpq; o < hi*cpq; o++ {
			p.dx[p.am[o]] += p.dy[o]
		}
	}
	return nil
}

// maxPool2x2 is cpuref.MaxPoolForward for 2×2 windows with stride 2 on
// the planes of the chunk x, with argmax offset by off, written to avoid
// data-dependent branches: the maximum m of a window comes from the max
// builtin and its first occurrence from integer compares of bit patterns
// (conditional moves). When m is ±0 or NaN (rare) the window takes
// cpuref's rules exactly: the first element not less than the others under
// float ordering (so −0 and +0 tie and the first wins), or the first NaN.
func maxPool2x2(g geom.PoolGeom, x, y []float32, am []int32, off int32) {
	H, W, P, Q := g.H, g.W, g.P(), g.Q()
	planes := len(y) / (P * Q)
	w := int32(W)
	for pl := range planes {
		xp := x[pl*H*W : (pl+1)*H*W]
		for p := range P {
			yr, ar := y[(pl*P+p)*Q:(pl*P+p+1)*Q], am[(pl*P+p)*Q:(pl*P+p+1)*Q]
			r0 := xp[2*p*W : 2*p*W+W]
			r1 := xp[(2*p+1)*W : (2*p+1)*W+W]
			base := off + int32(pl*H*W+2*p*W)
			for q := range yr {
				a, b, c, d := r0[2*q], r0[2*q+1], r1[2*q], r1[2*q+1]
				m := max(max(a, b), max(c, d))
				var k int32 // window offset of the winner: 0, 1, W or W+1
				if m == 0 || m != m {
					k, m = firstMax4(a, b, c, d, w)
				} else {
					mb := math.Float32bits(m)
					k = w + 1
					if math.Float32bits(c) == mb {
						k = w
					}
					if math.Float32bits(b) == mb {
						k = 1
					}
					if math.Float32bits(a) == mb {
						k = 0
					}
				}
				ar[q] = base + int32(2*q) + k
				yr[q] = m
			}
		}
	}
}

// firstMax4 is cpuref's scan over the window a, b, c, d (offsets 0, 1, w,
// w+1): the first element greater than all before it wins, and a NaN wins
// over any number.
func firstMax4(a, b, c, d float32, w int32) (int32, float32) {
	k, m := int32(0), a
	for i, v := range [3]float32{b, c, d} {
		if v > m || (v != v && m == m) {
			k, m = [3]int32{1, w, w + 1}[i], v
		}
	}
	return k, m
}
