package host

import (
	"fmt"
	"sync"

	"github.com/convtrain/convtrain/cpuref"
)

// The CPU backend splits the elementwise and pooling passes into
// contiguous chunks (of elements, or of whole images for pooling) run on
// up to `threads` goroutines; cpuref's Conv2D parallelises itself. Every
// output element is computed by one goroutine with the same arithmetic as
// the serial cpuref call, so results do not depend on the thread count.
// The tasks are built once, so a pass allocates nothing.

// parOp is the pass that the workers run.
type parOp int

const (
	opReLUForward parOp = iota
	opReLUBackward
	opPoolForward
	opPoolCheck
	opPoolBackward
)

// minChunk is the least work per goroutine: elements for ReLU, output
// elements for pooling. Below it a pass runs on the calling goroutine.
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
	am           []int32
	pg           cpuref.PoolGeom
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
	}
	// Pooling: units are images.
	g := p.pg
	chw, cpq := g.C*g.H*g.W, g.C*g.P()*g.Q()
	switch p.op {
	case opPoolForward:
		sub := g
		sub.N = hi - lo
		am := p.am[lo*cpq : hi*cpq]
		if err := cpuref.MaxPoolForward(sub, p.x[lo*chw:hi*chw], p.y[lo*cpq:hi*cpq], am); err != nil {
			return err
		}
		// cpuref indexes the chunk; make the indices flat indices into x.
		off := int32(lo * chw)
		for j := range am {
			am[j] += off
		}
	case opPoolCheck:
		hw, pq := g.H*g.W, g.P()*g.Q()
		for o := lo * cpq; o < hi*cpq; o++ {
			plane := o / pq
			if a := int(p.am[o]); a < plane*hw || a >= (plane+1)*hw {
				return fmt.Errorf("host: max-pool backward %v: argmax[%d] = %d outside [%d, %d): %w",
					g, o, a, plane*hw, (plane+1)*hw, cpuref.ErrGeometry)
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
