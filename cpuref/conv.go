package cpuref

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/convtrain/convtrain/cpuref/geom"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Conv2D is the fast float32 CPU convolution. It computes the same
// functions as Conv2DForwardDirect, Conv2DBackwardDataDirect,
// Conv2DBackwardFilterDirect and Conv2DBackwardBias, with a different
// summation order, as GEMMs over the patch matrix
//
//	col[(c,r,s), (n,p,q)] = x[n,c, p·sh − ph + r, q·sw − pw + s]   (0 in the padding)
//	forward:         Y[K, P·Q]     = W[K, C·R·S] · col
//	backward-data:   dcol[C·R·S, P·Q] = Wᵀ · dY[K, P·Q],  then col2im
//	backward-filter: dW[K, C·R·S]  = Σ_n dY_n · col_nᵀ
//	                 (and db = Σ_n Σ_(p,q) dY[k, (n,p,q)])
//
// on one of two engines, chosen when the Conv2D is made:
//
// FMA path (amd64 CPUs with AVX2 and FMA; see gemm.go). One GEMM per image
// on the register-blocked FMA micro-kernels, which read the weights, dy and
// im2col's matrix where they lie. For a stride-1-across, unpadded
// convolution col is never formed: the forward pass (when Q is a multiple
// of 8) reads each 8-wide vector of a row of col straight from x through a
// table of offsets (implicit GEMM), the backward-data pass (when also
// C·R·S is a multiple of 4) adds each tile of dcol straight into dx, and
// the backward-filter pass computes dWᵀ = col · dYᵀ with the four rows of a
// tile of col read from x as P runs of Q inputs. Every other convolution
// (padded or strided, as a ResNet's) reads a zero-framed copy of each
// image, split into phases when strided, in which every row of col is a
// contiguous run, in the same three ways, on AVX-512 micro-kernels where
// the CPU has them (the frame path, frame.go; the same bits as forming
// col), except that the backward-data pass of a stride-1 one there, when
// C is a multiple of 8, is the forward pass of the transposed convolution:
// each dx element one chain of fused multiply-adds over (k, r', s') in
// order, r' = R−1−r, s' = S−1−s (transposedData). Each output of the
// forward GEMM, and each dcol value, is one chain of fused multiply-adds
// over (c, r, s), resp. k, in order (then + b; dx sums its dcol values in
// (c, r, s, p, q) order after col2im, or in tile order when added in place,
// see backwardDataImplicit); each dW[k,c,r,s] of a reduction slot (below)
// is one chain over the slot's images in order and, within an image, over
// (p, q) in order; each db[k] of a group is summed in 8 lanes (sumLanes).
//
// gonum path (other CPUs and architectures). im2col (or col2im) and one
// gonum blas32 Sgemm per group of G consecutive images, G fixed by the
// geometry, the GEMM's columns being the G·P·Q outputs of the group. When
// C·R·S ≥ 128 the forward pass stores col transposed, one row per output
// pixel, so that gonum computes Y with dot products of length C·R·S, which
// run faster than its axpys; the choice depends on the geometry only.
// gonum's Sgemm skips the terms of a zero weight in the axpy-based
// products, so there a NaN or Inf input that meets only zero weights gives
// a finite result where the direct forms give NaN.
//
// Both paths cut the batch into groups of G images and run the groups on
// up to GOMAXPROCS goroutines. Every output element and every partial sum
// is computed by one goroutine in an order fixed by the geometry: the
// weight gradients of the groups are dealt round-robin to at most 16
// slots, each slot sums its groups in order, and the slots are summed in
// order. The results are therefore bit-for-bit the same whatever the
// number of threads (on one CPU; the two paths differ in the last bits,
// and agree exactly where every partial sum is an integer below 2²⁴).
// gonum's Sgemm is deterministic for given sizes, and it runs serially
// here (see sgemm).
//
// A Conv2D owns its workspace (gonum path: about (C·R·S + K)·G·P·Q floats
// per thread; FMA path: about (C·R·S + 24)·P·Q, or on the frame path two
// frames of about sh·sw·C·Hf·F floats and (2·K + 16)·P·F) plus
// 16·K·(C·R·S + 1):
// after the first call with a given GOMAXPROCS no call allocates. It is not
// safe for concurrent use.
type Conv2D struct {
	g        geom.ConvGeom
	p, q, pq int
	crs      int
	group    int  // G, images per GEMM
	fwdDot   bool // forward with col transposed (C·R·S ≥ 128), gonum path
	fma      bool // the FMA GEMM of gemm.go rather than gonum's Sgemm
	// implicit: the FMA forward pass reads x in place (stride 1 across,
	// no padding, Q a multiple of 8), B[(c,r,s), (p,q)] at
	// x[p·sh·W + q + boff[(c,r,s)]], boff[(c,r,s)] = (c·H + r)·W + s.
	implicit bool
	// implicitF: the FMA backward-filter pass reads x in place too
	// (stride 1 across, no padding; any Q), A[(c,r,s), (p,q)] at
	// x[boff[(c,r,s)] + p·sh·W + q].
	implicitF bool
	// implicitD: the FMA backward-data pass adds each tile of dcol
	// straight into dx, row (c,r,s) at dx[boff[(c,r,s)] + p·sh·W + q]
	// (implicit, and C·R·S a multiple of 4).
	implicitD bool
	boff      []int32
	// frame: the FMA passes of a convolution that the implicit ones do
	// not serve (padded or strided ones) run on a zero-framed copy of the
	// image instead of col (see frame.go); fr describes it.
	frame bool
	fr    convFrame
	// tr is the transposed convolution whose forward pass is this one's
	// backward-data pass where transposedData says so (made at the first
	// call), wT its weights.
	tr *Conv2D
	wT []float32
	// rows[r] = [p0, p1): the outputs whose input row p·sh − ph + r is in
	// the image; cols[s] = [q0, q1) likewise; taps[q] = [s0, s1): the
	// kernel columns of output column q that are in the image.
	rows, cols, taps [][2]int
	ngroups          int
	nslots           int          // reduction slots of the weight gradient
	workers          []convWorker // workers[0]: a pass on the calling goroutine alone
	partW, partB     []float32    // per slot: K·C·R·S (C·R·S×K on the FMA path) and K partial sums

	// The units of the pass in flight are claimed under mu (see run):
	// next is the next to take (of end), busy are taken and not yet done;
	// the caller waits on wake when waiting. free are the workspaces not
	// in use, nworkers those made for it.
	mu              sync.Mutex
	next, end, busy int
	waiting         bool
	wake            chan struct{}
	task            func() // c.claim, made once
	free            []*convWorker
	nworkers        int

	// Arguments of the pass in flight, read by the workers.
	op                 convOp
	x, w, b, y, dy, dx []float32
	wantDB             bool // backward-filter: db is wanted (the FMA path skips its sums otherwise)
}

type convOp int

const (
	opForward convOp = iota
	opBackwardData
	opBackwardFilter
)

// convWorker is the private workspace of one goroutine.
type convWorker struct {
	col []float32 // C·R·S × G·P·Q
	tmp []float32 // K × G·P·Q, gathered dY or the forward output
	// FMA path: dYᵀ of one image packed as the B operand of the
	// backward-filter GEMM, and the GEMM's edge panels.
	bp []float32
	gs *gemmScratch
	// Frame path (see frame.go): the framed image (its zeros written once),
	// the framed dx, the framed dy (its gap columns zero), the framed
	// output, and a block of dcol rows.
	xf, dxf, dyf, yf, dcol []float32
}

// reduceSlots bounds the number of partial weight gradients that the
// backward-filter pass keeps (and so the threads it can use): the groups
// are dealt to the slots round-robin, whatever the number of threads.
const reduceSlots = 16

// groupCols is the target width G·P·Q of the GEMMs: wide enough that the
// SSE kernels of gonum run long rows, small enough that col stays in L2.
const groupCols = 512

// NewConv2D returns a Conv2D for the geometry g, or an error wrapping
// geom.ErrGeometry when g is invalid.
func NewConv2D(g geom.ConvGeom) (*Conv2D, error) {
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("cpuref: NewConv2D: %w", err)
	}
	c := &Conv2D{g: g, p: g.P(), q: g.Q(), crs: g.C * g.R * g.S}
	c.pq = c.p * c.q
	c.fma = useFMAGEMM
	c.fwdDot = c.crs >= 128 && !c.fma
	c.implicitF = c.fma && g.StrideW == 1 && g.PadH == 0 && g.PadW == 0 &&
		geom.FitsProduct([]int{g.C, g.H, g.W}) && g.C*g.H*g.W <= 1<<31-1
	c.implicit = c.implicitF && c.q%8 == 0
	c.implicitD = c.implicit && c.crs%gemmMR == 0
	if c.fma && useConvFrame && !c.implicit {
		c.fr, c.frame = newConvFrame(g, c.p, c.q)
	}
	if c.implicitF {
		for ch := 0; ch < g.C; ch++ {
			for r := 0; r < g.R; r++ {
				for s := 0; s < g.S; s++ {
					c.boff = append(c.boff, int32((ch*g.H+r)*g.W+s))
				}
			}
		}
	}
	for r := 0; r < g.R; r++ {
		p0, p1 := validRange(c.p, g.StrideH, g.PadH, r, g.H)
		c.rows = append(c.rows, [2]int{p0, p1})
	}
	for s := 0; s < g.S; s++ {
		q0, q1 := validRange(c.q, g.StrideW, g.PadW, s, g.W)
		c.cols = append(c.cols, [2]int{q0, q1})
	}
	for q := 0; q < c.q; q++ {
		s0, s1 := validRange(g.S, 1, g.PadW-q*g.StrideW, 0, g.W)
		c.taps = append(c.taps, [2]int{s0, s1})
	}
	c.group = min(g.N, max(1, (groupCols+c.pq-1)/c.pq))
	// The workspace of one worker is (C·R·S + K)·G·P·Q; keep it below 2³¹.
	for c.group > 1 && !geom.FitsProduct([]int{c.crs + g.K, c.group, c.pq}) {
		c.group /= 2
	}
	if !geom.FitsProduct([]int{c.crs + g.K, c.group, c.pq}) {
		return nil, fmt.Errorf("cpuref: NewConv2D %v: workspace has 2³¹ elements or more: %w", g, geom.ErrGeometry)
	}
	c.ngroups = (g.N + c.group - 1) / c.group
	c.nslots = min(c.ngroups, reduceSlots)
	if !geom.FitsProduct([]int{c.nslots, g.K, c.crs + 1}) {
		return nil, fmt.Errorf("cpuref: NewConv2D %v: workspace has 2³¹ elements or more: %w", g, geom.ErrGeometry)
	}
	return c, nil
}

// Geom returns the geometry the Conv2D was made for.
func (c *Conv2D) Geom() geom.ConvGeom { return c.g }

// Forward computes y = conv(x, w) + b (see Conv2DForwardDirect); b may be
// nil. y is overwritten. An error wrapping geom.ErrGeometry is returned, before
// any work, when a length differs from the shapes below.
func (c *Conv2D) Forward(x, w, b, y []float32) error {
	// x is (N,C,H,W), w is (K,C,R,S), b is (K) or nil, y is (N,K,P,Q)
	g := c.g
	bLen := g.K
	if b == nil {
		bLen = 0
	}
	if err := checkLens(func() string { return "Conv2D.Forward " + g.String() },
		lenCheck{"x", len(x), g.XLen()}, lenCheck{"w", len(w), g.WLen()},
		lenCheck{"b", len(b), bLen}, lenCheck{"y", len(y), g.YLen()}); err != nil {
		return err
	}
	c.op, c.x, c.w, c.b, c.y = opForward, x, w, b, y
	c.run()
	c.x, c.w, c.b, c.y = nil, nil, nil, nil
	return nil
}

// BackwardData overwrites dx with ∂E/∂x given dy = ∂E/∂y (see
// Conv2DBackwardDataDirect). An error wrapping geom.ErrGeometry is returned,
// before any work, when a length differs from the shapes below.
func (c *Conv2D) BackwardData(dy, w, dx []float32) error {
	// dy is (N,K,P,Q), w is (K,C,R,S), dx is (N,C,H,W)
	g := c.g
	if err := checkLens(func() string { return "Conv2D.BackwardData " + g.String() },
		lenCheck{"dy", len(dy), g.YLen()}, lenCheck{"w", len(w), g.WLen()},
		lenCheck{"dx", len(dx), g.XLen()}); err != nil {
		return err
	}
	if c.transposedData() {
		return c.backwardDataTransposed(dy, w, dx)
	}
	c.op, c.dy, c.w, c.dx = opBackwardData, dy, w, dx
	c.run()
	c.dy, c.w, c.dx = nil, nil, nil
	return nil
}

// BackwardFilter overwrites dw with ∂E/∂w and, when db is not nil, db with
// ∂E/∂b, given the forward input x and dy = ∂E/∂y (see
// Conv2DBackwardFilterDirect and Conv2DBackwardBias). An error wrapping
// geom.ErrGeometry is returned, before any work, when a length differs from the
// shapes below.
func (c *Conv2D) BackwardFilter(x, dy, dw, db []float32) error {
	// x is (N,C,H,W), dy is (N,K,P,Q), dw is (K,C,R,S), db is (K) or nil
	g := c.g
	bLen := g.K
	if db == nil {
		bLen = 0
	}
	if err := checkLens(func() string { return "Conv2D.BackwardFilter " + g.String() },
		lenCheck{"x", len(x), g.XLen()}, lenCheck{"dy", len(dy), g.YLen()},
		lenCheck{"dw", len(dw), g.WLen()}, lenCheck{"db", len(db), bLen}); err != nil {
		return err
	}
	c.op, c.x, c.dy, c.wantDB = opBackwardFilter, x, dy, db != nil
	c.run()
	c.x, c.dy = nil, nil

	// Sum the per-slot partials in slot order.
	kcrs, K := g.K*c.crs, g.K
	if c.fma { // partials are dWᵀ (C·R·S, K)
		for k := 0; k < K; k++ {
			dwk := dw[k*c.crs : (k+1)*c.crs]
			for j := range dwk {
				dwk[j] = c.partW[j*K+k]
			}
			for i := 1; i < c.nslots; i++ {
				part := c.partW[i*kcrs : (i+1)*kcrs]
				for j := range dwk {
					dwk[j] += part[j*K+k]
				}
			}
		}
	} else {
		copy(dw, c.partW[:kcrs])
		for i := 1; i < c.nslots; i++ {
			for j, v := range c.partW[i*kcrs : (i+1)*kcrs] {
				dw[j] += v
			}
		}
	}
	if db != nil {
		copy(db, c.partB[:K])
		for i := 1; i < c.nslots; i++ {
			for j, v := range c.partB[i*K : (i+1)*K] {
				db[j] += v
			}
		}
	}
	return nil
}

// run executes the pass in c.op over its units (groups; reduction slots
// for the backward-filter pass) on up to GOMAXPROCS goroutines: the
// calling one and the others it starts take the units one at a time, each
// with a workspace of its own, and the caller waits for the units taken,
// never for a goroutine that has not started (one can take tens of
// microseconds to run on a busy or virtual machine): a late one finds no
// unit left and returns. Every unit is computed the same way whoever
// takes it, so the results do not depend on the threads.
func (c *Conv2D) run() {
	units := c.ngroups
	if c.op == opBackwardFilter {
		units = c.nslots
	}
	nw := min(runtime.GOMAXPROCS(0), units)
	c.grow(nw)
	if nw == 1 {
		ws := &c.workers[0]
		for u := range units {
			c.unit(ws, u)
		}
		return
	}
	c.mu.Lock()
	c.next, c.end = 0, units
	c.mu.Unlock()
	for range nw - 1 {
		convPool.run(c.task)
	}
	c.claim()
	c.mu.Lock()
	for c.busy > 0 || c.next < c.end {
		c.waiting = true
		c.mu.Unlock()
		<-c.wake
		c.mu.Lock()
	}
	c.mu.Unlock()
}

// convPool is the goroutines that help the calling goroutine with the
// passes of every Conv2D: started as needed (up to GOMAXPROCS − 1), kept
// for the life of the program, each running the claim functions sent to
// it, so that a pass starts no goroutine (and allocates none).
var convPool workerPool

type workerPool struct {
	mu      sync.Mutex
	workers int
	tasks   chan func()
}

// run hands task to an idle worker of the pool, starting one if fewer than
// GOMAXPROCS − 1 run; when all are busy the task waits in the queue (it
// finds nothing left to do when its pass is over).
func (p *workerPool) run(task func()) {
	p.mu.Lock()
	if p.tasks == nil {
		p.tasks = make(chan func(), 256)
	}
	if p.workers < runtime.GOMAXPROCS(0)-1 {
		p.workers++
		go func() {
			for t := range p.tasks {
				t()
			}
		}()
	}
	p.mu.Unlock()
	select {
	case p.tasks <- task:
	default: // the queue is full of stale tasks: the caller does the work
	}
}

// claim takes units of the pass in flight until none is left, with a
// workspace from the free list (grown if a straggler of an earlier pass
// holds one too).
func (c *Conv2D) claim() {
	var ws *convWorker
	done := false
	for {
		c.mu.Lock()
		if done {
			c.busy--
			if c.busy == 0 && c.next == c.end && c.waiting {
				c.waiting = false
				c.wake <- struct{}{}
			}
		}
		if c.next == c.end {
			if ws != nil {
				c.free = append(c.free, ws)
			}
			c.mu.Unlock()
			return
		}
		u := c.next
		c.next++
		c.busy++
		if ws == nil {
			if len(c.free) == 0 {
				c.free = append(c.free, c.newWorker())
			}
			ws = c.free[len(c.free)-1]
			c.free = c.free[:len(c.free)-1]
		}
		c.mu.Unlock()
		c.unit(ws, u)
		done = true
	}
}

// grow makes sure the workspace serves nw workers: workers[0] for a pass
// on the calling goroutine alone, and nw + 1 on the free list (one for a
// straggler of the pass before, which may take a unit of this one).
func (c *Conv2D) grow(nw int) {
	if c.partW == nil {
		c.partW = make([]float32, c.nslots*c.g.K*c.crs)
		c.partB = make([]float32, c.nslots*c.g.K)
		c.wake = make(chan struct{}, 1)
		c.task = c.claim
		c.workers = []convWorker{*c.newWorker()}
	}
	if nw > 1 {
		c.mu.Lock()
		for c.nworkers < nw+1 {
			c.free = append(c.free, c.newWorker())
			c.nworkers++
		}
		c.mu.Unlock()
	}
}

// newWorker returns a new workspace.
func (c *Conv2D) newWorker() *convWorker {
	cols := c.group * c.pq
	ws := new(convWorker)
	if c.fma {
		if c.frame {
			c.fr.alloc(ws, c.g)
		} else {
			ws.col = make([]float32, c.crs*c.pq)
		}
		ws.bp = make([]float32, packedBLen(c.pq, c.g.K))
		ws.gs = new(gemmScratch)
	} else {
		ws.col = make([]float32, c.crs*cols)
		ws.tmp = make([]float32, c.g.K*cols)
	}
	return ws
}

// unit runs unit u of the pass in flight on workspace ws: group u of the
// forward and backward-data passes, or reduction slot u of the
// backward-filter pass, which accumulates groups u, u+nslots,
// u+2·nslots, … in that order, so that every partial sum has an order
// fixed by the geometry alone.
func (c *Conv2D) unit(ws *convWorker, u int) {
	if c.op == opBackwardFilter {
		for grp := u; grp < c.ngroups; grp += c.nslots {
			n0 := grp * c.group
			c.backwardFilterGroup(ws, u, grp == u, n0, min(n0+c.group, c.g.N))
		}
		return
	}
	n0 := u * c.group
	n1 := min(n0+c.group, c.g.N)
	switch c.op {
	case opForward:
		c.forwardGroup(ws, n0, n1)
	case opBackwardData:
		c.backwardDataGroup(ws, n0, n1)
	}
}

// forwardGroup computes y for images n0 ≤ n < n1.
func (c *Conv2D) forwardGroup(ws *convWorker, n0, n1 int) {
	// col is (C·R·S, G·P·Q), tmp is (K, G·P·Q)
	g, pq, K := c.g, c.pq, c.g.K
	chw := g.C * g.H * g.W
	if c.fma {
		// per image: y[n] (K, P·Q) = W (K, C·R·S) · col (C·R·S, P·Q), then + b
		for n := n0; n < n1; n++ {
			yn := c.y[n*K*pq : (n+1)*K*pq]
			switch {
			case c.implicit:
				c.forwardImplicit(c.x[n*chw:(n+1)*chw], yn, ws.gs)
			case c.frame:
				c.forwardFrame(ws, c.x[n*chw:(n+1)*chw], yn)
			default:
				c.im2col(c.x[n*chw:(n+1)*chw], ws.col, pq, 0)
				gemm(K, pq, c.crs, rowMajorA(c.w, c.crs), rowMajorB(ws.col, pq), 0, yn, pq, ws.gs)
			}
			if c.b != nil {
				for k, bk := range c.b {
					row := yn[k*pq : (k+1)*pq]
					for j := range row {
						row[j] += bk
					}
				}
			}
		}
		return
	}
	ld := (n1 - n0) * pq
	out, ldo := ws.tmp, ld
	if n1-n0 == 1 {
		out, ldo = c.y[n0*K*pq:(n0+1)*K*pq], pq // write y[n0] in place
	}
	switch {
	case c.fwdDot:
		for n := n0; n < n1; n++ {
			c.im2colT(c.x[n*chw:(n+1)*chw], ws.col[(n-n0)*pq*c.crs:])
		}
		sgemm(false, true, K, ld, c.crs, c.w, c.crs, ws.col, c.crs, 0, out, ldo)
	default:
		for n := n0; n < n1; n++ {
			c.im2col(c.x[n*chw:(n+1)*chw], ws.col, ld, (n-n0)*pq)
		}
		sgemm(false, false, K, ld, c.crs, c.w, c.crs, ws.col, ld, 0, out, ldo)
	}
	for n := n0; n < n1; n++ {
		for k := 0; k < K; k++ {
			dst := c.y[(n*K+k)*pq : (n*K+k+1)*pq]
			if n1-n0 > 1 {
				copy(dst, ws.tmp[k*ld+(n-n0)*pq:])
			}
			if c.b != nil {
				bk := c.b[k]
				for j := range dst {
					dst[j] += bk
				}
			}
		}
	}
}

// forwardImplicit computes y (K, P·Q) = W (K, C·R·S) · col (C·R·S, P·Q)
// for one image x (C,H,W) without forming col: the implicit-GEMM kernels
// read each 8-wide vector of a row of col, 8 consecutive outputs of one
// output row, straight from x (see Conv2D.implicit). The summation order is
// gemm's: one chain of fused multiply-adds over (c, r, s) per output.
func (c *Conv2D) forwardImplicit(x, y []float32, s *gemmScratch) {
	step, Q := c.g.StrideH*c.g.W, c.q
	c.forwardOff(c.boff, y, c.pq, c.pq, s, func(jv int) *float32 {
		return &x[jv/Q*step+jv%Q] // output (jv/Q, jv%Q … jv%Q+7)
	})
}

// forwardOff computes y (K, n) = W (K, C·R·S) · B (C·R·S, n), row stride
// ldy, on the implicit-GEMM kernels, with B[(c,r,s), j … j+7] read at
// vec(j) + boff[(c,r,s)] for every j a multiple of 8 (n is one too). The
// summation order is gemm's: one chain of fused multiply-adds over
// (c, r, s) per output.
func (c *Conv2D) forwardOff(boff []int32, y []float32, n, ldy int, s *gemmScratch, vec func(j int) *float32) {
	K, crs := c.g.K, c.crs
	for p0 := 0; p0 < crs; p0 += gemmKC {
		kc := min(gemmKC, crs-p0)
		load := p0 > 0
		for j := 0; j < n; j += gemmNR {
			w := min(gemmNR, n-j) // a multiple of 8
			var b [3]*float32
			for v := range w / 8 {
				b[v] = vec(j + 8*v)
			}
			kern := gemmKernelOff24
			switch w {
			case 8:
				kern = gemmKernelOff8
			case 16:
				kern = gemmKernelOff16
			}
			for i := 0; i < K; i += gemmMR {
				h := min(gemmMR, K-i)
				if h == gemmMR {
					_ = y[(i+gemmMR-1)*ldy+j+w-1]
					kern(kc, &c.w[i*crs+p0], crs, 1, b[0], b[1], b[2], &boff[p0], &y[i*ldy+j], ldy, load)
					continue
				}
				clear(s.a[:kc*gemmMR])
				for ii := range h {
					for p, v := range c.w[(i+ii)*crs+p0 : (i+ii)*crs+p0+kc] {
						s.a[p*gemmMR+ii] = v
					}
				}
				t := s.c[:]
				if load {
					for ii := range h {
						copy(t[ii*gemmNR:ii*gemmNR+w], y[(i+ii)*ldy+j:])
					}
				}
				kern(kc, &s.a[0], 1, gemmMR, b[0], b[1], b[2], &boff[p0], &t[0], gemmNR, load)
				for ii := range h {
					copy(y[(i+ii)*ldy+j:(i+ii)*ldy+j+w], t[ii*gemmNR:])
				}
			}
		}
	}
}

// filterImplicit computes dWᵀ (C·R·S, K) = load·dWᵀ + col (C·R·S, P·Q) ·
// dYᵀ (P·Q, K) for one image x (C,H,W) and its dy (K, P·Q), dYᵀ packed
// in bp, without forming col: the row-walking kernels read row
// (c,r,s) of col as P runs of Q consecutive inputs of x from boff[(c,r,s)]
// on (see Conv2D.implicitF). The order is gemm's: one chain of fused
// multiply-adds over the outputs (p, q) per element, continuing the chain
// in dWᵀ when load.
func (c *Conv2D) filterImplicit(x []float32, boff []int32, step int, dy, bp []float32, load bool, dWT []float32, s *gemmScratch) {
	K, pq, crs := c.g.K, c.pq, c.crs
	jump := step - c.q
	// dYᵀ: packB's layout, or for K ≤ 16 one row of K (rounded up to 8)
	// floats per output, which is all the 8- and 16-wide kernels read.
	brow := gemmNR
	if K <= 16 {
		brow = (K + 7) / 8 * 8
		for k := range brow {
			if k >= K {
				for p := range pq {
					bp[p*brow+k] = 0
				}
				continue
			}
			for p, v := range dy[k*pq : k*pq+pq] {
				bp[p*brow+k] = v
			}
		}
	} else {
		packB(true, pq, K, dy, pq, bp)
	}
	if brow == 8 {
		// K ≤ 8: 8×8 tiles, 8 chains in flight rather than 4.
		for i := 0; i < crs; i += 8 {
			h := min(8, crs-i)
			var a [8]*float32
			for ii := range a {
				a[ii] = &x[boff[i+min(ii, h-1)]] // rows past crs repeat the last; discarded
			}
			if h == 8 && K == 8 {
				_ = dWT[(i+7)*K+7]
				gemmKernelRows8x8(c.p, &a, c.q, 4*jump, &bp[0], &dWT[i*K], K, load)
				continue
			}
			t := s.c[:64]
			if load {
				for ii := range h {
					copy(t[ii*8:ii*8+K], dWT[(i+ii)*K:])
				}
			}
			gemmKernelRows8x8(c.p, &a, c.q, 4*jump, &bp[0], &t[0], 8, load)
			for ii := range h {
				copy(dWT[(i+ii)*K:(i+ii)*K+K], t[ii*8:])
			}
		}
		return
	}
	for j := 0; j < K; j += gemmNR {
		w := min(gemmNR, K-j)
		kern, width := gemmKernelRows24, gemmNR
		switch {
		case w <= 8:
			kern, width = gemmKernelRows8, 8
		case w <= 16:
			kern, width = gemmKernelRows16, 16
		}
		b := bp[j*pq : j*pq+(pq-1)*brow+width]
		for i := 0; i < crs; i += gemmMR {
			h := min(gemmMR, crs-i)
			var a [gemmMR]*float32
			for ii := range gemmMR {
				a[ii] = &x[boff[i+min(ii, h-1)]] // rows past crs repeat the last; discarded
			}
			if h == gemmMR && w == width {
				_ = dWT[(i+gemmMR-1)*K+j+width-1]
				kern(c.p, a[0], a[1], a[2], a[3], c.q, jump, &b[0], brow, &dWT[i*K+j], K, load)
				continue
			}
			t := s.c[:]
			if load {
				for ii := range h {
					copy(t[ii*gemmNR:ii*gemmNR+w], dWT[(i+ii)*K+j:])
				}
			}
			kern(c.p, a[0], a[1], a[2], a[3], c.q, jump, &b[0], brow, &t[0], gemmNR, load)
			for ii := range h {
				copy(dWT[(i+ii)*K+j:(i+ii)*K+j+w], t[ii*gemmNR:])
			}
		}
	}
}

// backwardDataImplicit overwrites dx (C,H,W) of one image with the col2im
// of dcol (C·R·S, P·Q) = Wᵀ · dy (K, P·Q) without forming dcol: the
// scatter-add kernels add each 4×W tile of dcol, 8 outputs of one output
// row per vector, into dx at the inputs they were read from (see
// Conv2D.implicitD). Each dcol value is one chain of fused multiply-adds
// over k in order; each dx element is the sum of its dcol values in the
// order of the tiles (outputs in blocks of 24, then (c, r, s) in blocks of
// 4), the rows of a tile in order.
func (c *Conv2D) backwardDataImplicit(dy, dx []float32) {
	g, K, pq, Q, crs := c.g, c.g.K, c.pq, c.q, c.crs
	step := g.StrideH * g.W
	clear(dx)
	_ = c.w[(K-1)*crs+crs-1]
	for j := 0; j < pq; j += gemmNR {
		w := min(gemmNR, pq-j) // a multiple of 8
		var d [3]*float32
		for v := range w / 8 {
			jv := j + 8*v // output (jv/Q, jv%Q … jv%Q+7)
			d[v] = &dx[jv/Q*step+jv%Q]
		}
		kern := gemmKernelAdd24
		switch w {
		case 8:
			kern = gemmKernelAdd8
		case 16:
			kern = gemmKernelAdd16
		}
		_ = dy[(K-1)*pq+j+w-1]
		for i := 0; i < crs; i += gemmMR { // crs is a multiple of 4
			kern(K, &c.w[i], 1, crs, &dy[j], pq, d[0], d[1], d[2], &c.boff[i])
		}
	}
}

// sumLanes returns the sum of the rows s[off + i·stride : … + n], i < rows,
// in 8 lanes: element j of every row goes to lane j mod 8, each lane sums
// in order, and the lanes are summed pairwise, ((l0+l1)+(l2+l3)) +
// ((l4+l5)+(l6+l7)). The order is fixed by the sizes alone, and the 8
// independent chains run about 8 times faster than one.
func sumLanes(s []float32, off, rows, stride, n int) float32 {
	var l [8]float32
	for i := range rows {
		row := s[off+i*stride : off+i*stride+n]
		j := 0
		for ; j+8 <= n; j += 8 {
			r := row[j : j+8 : j+8]
			l[0] += r[0]
			l[1] += r[1]
			l[2] += r[2]
			l[3] += r[3]
			l[4] += r[4]
			l[5] += r[5]
			l[6] += r[6]
			l[7] += r[7]
		}
		for ; j < n; j++ {
			l[j%8] += row[j]
		}
	}
	return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

// gatherDY returns dY (K, G·P·Q) for images n0 ≤ n < n1 and its row stride:
// dy itself when the group is one image, else a copy in ws.tmp.
func (c *Conv2D) gatherDY(ws *convWorker, n0, n1 int) ([]float32, int) {
	pq, K := c.pq, c.g.K
	if n1-n0 == 1 {
		return c.dy[n0*K*pq : (n0+1)*K*pq], pq
	}
	ld := (n1 - n0) * pq
	for n := n0; n < n1; n++ {
		for k := 0; k < K; k++ {
			copy(ws.tmp[k*ld+(n-n0)*pq:k*ld+(n-n0+1)*pq], c.dy[(n*K+k)*pq:(n*K+k+1)*pq])
		}
	}
	return ws.tmp, ld
}

// backwardDataGroup computes dx for images n0 ≤ n < n1.
func (c *Conv2D) backwardDataGroup(ws *convWorker, n0, n1 int) {
	// dY is (K, G·P·Q), dcol is (C·R·S, G·P·Q)
	g, pq := c.g, c.pq
	chw := g.C * g.H * g.W
	if c.fma {
		// per image: dcol (C·R·S, P·Q) = Wᵀ · dy[n] (K, P·Q), then col2im
		for n := n0; n < n1; n++ {
			dyn := c.dy[n*g.K*pq : (n+1)*g.K*pq]
			if c.implicitD {
				c.backwardDataImplicit(dyn, c.dx[n*chw:(n+1)*chw])
				continue
			}
			if c.frame {
				c.backwardDataFrame(ws, dyn, c.dx[n*chw:(n+1)*chw])
				continue
			}
			gemm(c.crs, pq, g.K, transA(c.w, c.crs), rowMajorB(dyn, pq), 0, ws.col, pq, ws.gs)
			c.col2im(ws.col, pq, 0, c.dx[n*chw:(n+1)*chw])
		}
		return
	}
	dY, ld := c.gatherDY(ws, n0, n1)
	sgemm(true, false, c.crs, ld, g.K, c.w, c.crs, dY, ld, 0, ws.col, ld)
	for n := n0; n < n1; n++ {
		c.col2im(ws.col, ld, (n-n0)*pq, c.dx[n*chw:(n+1)*chw])
	}
}

// backwardFilterGroup adds the dw and db of images n0 ≤ n < n1 to the
// partial sums of slot sl, or sets them when first.
func (c *Conv2D) backwardFilterGroup(ws *convWorker, sl int, first bool, n0, n1 int) {
	// col is (C·R·S, G·P·Q), dY is (K, G·P·Q), dW_g is (K, C·R·S)
	g, pq, K := c.g, c.pq, c.g.K
	chw := g.C * g.H * g.W
	dW := c.partW[sl*K*c.crs : (sl+1)*K*c.crs]
	var beta float32 = 1
	if first {
		beta = 0
	}
	if c.fma {
		// per image: dWᵀ (C·R·S, K) += col (C·R·S, P·Q) · dy[n]ᵀ (P·Q, K)
		for n := n0; n < n1; n++ {
			dyn := c.dy[n*K*pq : (n+1)*K*pq]
			switch {
			case c.implicitF:
				c.filterImplicit(c.x[n*chw:(n+1)*chw], c.boff, g.StrideH*g.W, dyn, ws.bp, beta != 0, dW, ws.gs)
			case c.frame && c.fr.z && K%16 == 0:
				c.fr.load(ws.xf, c.x[n*chw:(n+1)*chw], g)
				c.filterFrameZ(ws.xf, dyn, ws.bp, beta != 0, dW, ws.gs)
			case c.frame:
				c.fr.load(ws.xf, c.x[n*chw:(n+1)*chw], g)
				c.filterImplicit(ws.xf, c.fr.off, c.fr.f, dyn, ws.bp, beta != 0, dW, ws.gs)
			default:
				packB(true, pq, K, dyn, pq, ws.bp)
				c.im2col(c.x[n*chw:(n+1)*chw], ws.col, pq, 0)
				gemm(c.crs, K, pq, rowMajorA(ws.col, pq), packedB(ws.bp, pq), beta, dW, K, ws.gs)
			}
			beta = 1
		}
		for k := 0; k < K && c.wantDB; k++ {
			sum := sumLanes(c.dy, (n0*K+k)*pq, n1-n0, K*pq, pq)
			if first {
				c.partB[sl*K+k] = sum
			} else {
				c.partB[sl*K+k] += sum
			}
		}
		return
	}
	ld := (n1 - n0) * pq
	for n := n0; n < n1; n++ {
		c.im2col(c.x[n*chw:(n+1)*chw], ws.col, ld, (n-n0)*pq)
	}
	dY, ldy := c.gatherDY(ws, n0, n1)
	sgemm(false, true, K, c.crs, ld, dY, ldy, ws.col, ld, beta, dW, c.crs)
	for k := 0; k < K; k++ {
		var sum float32
		for _, v := range dY[k*ldy : k*ldy+ld] {
			sum += v
		}
		if first {
			c.partB[sl*K+k] = sum
		} else {
			c.partB[sl*K+k] += sum
		}
	}
}

// im2col writes the patches of one image x (C,H,W) into the columns
// off ≤ j < off+P·Q of col (C·R·S rows, row stride ld):
//
//	col[(c·R + r)·S + s, off + p·Q + q] = x[c, p·sh − ph + r, q·sw − pw + s], 0 in the padding
func (c *Conv2D) im2col(x, col []float32, ld, off int) {
	g := c.g
	H, W, P, Q, sh, sw := g.H, g.W, c.p, c.q, g.StrideH, g.StrideW
	row := 0
	for ch := 0; ch < g.C; ch++ {
		xc := x[ch*H*W : (ch+1)*H*W]
		for r := 0; r < g.R; r++ {
			// Outputs p0 ≤ p < p1 read input rows inside the image.
			p0, p1 := c.rows[r][0], c.rows[r][1]
			for s := 0; s < g.S; s++ {
				dst := col[row*ld+off : row*ld+off+P*Q]
				row++
				q0, q1 := c.cols[s][0], c.cols[s][1]
				if q0 >= q1 || p0 >= p1 {
					clear(dst)
					continue
				}
				clear(dst[:p0*Q])
				clear(dst[p1*Q:])
				edges := q0 > 0 || q1 < Q
				if !edges && sw == 1 {
					// Whole output rows from one input row each: the
					// common case, with the index arithmetic hoisted.
					si, step := (p0*sh-g.PadH+r)*W-g.PadW+s, sh*W
					for p := p0; p < p1; p++ {
						d, sv := dst[p*Q:p*Q+Q], xc[si:si+Q]
						if Q <= 16 { // shorter than a memmove call is worth
							for j := range d {
								d[j] = sv[j]
							}
						} else {
							copy(d, sv)
						}
						si += step
					}
					continue
				}
				for p := p0; p < p1; p++ {
					d := dst[p*Q : (p+1)*Q]
					if edges {
						clear(d[:q0])
						clear(d[q1:])
					}
					// x[c, h, q·sw − pw + s] for q0 ≤ q < q1
					src := xc[(p*sh-g.PadH+r)*W+q0*sw-g.PadW+s:]
					d = d[q0:q1]
					if sw == 1 {
						copy(d, src)
					} else {
						for j := range d {
							d[j] = src[j*sw]
						}
					}
				}
			}
		}
	}
}

// im2colT writes the patches of one image x (C,H,W) as the rows of colT
// (P·Q rows of C·R·S), the transpose of im2col's layout:
//
//	colT[p·Q + q, (c·R + r)·S + s] = x[c, p·sh − ph + r, q·sw − pw + s], 0 in the padding
func (c *Conv2D) im2colT(x, colT []float32) {
	g := c.g
	H, W, P, Q, R, S := g.H, g.W, c.p, c.q, g.R, g.S
	for p := 0; p < P; p++ {
		for q := 0; q < Q; q++ {
			dst := colT[(p*Q+q)*c.crs : (p*Q+q+1)*c.crs]
			s0, s1 := c.taps[q][0], c.taps[q][1] // taps inside the row
			v0 := q*g.StrideW - g.PadW
			full := s0 == 0 && s1 == S
			for ch := 0; ch < g.C; ch++ {
				for r := 0; r < R; r++ {
					d := dst[(ch*R+r)*S : (ch*R+r+1)*S]
					h := p*g.StrideH - g.PadH + r
					if h < 0 || h >= H || s0 >= s1 {
						clear(d)
						continue
					}
					base := (ch*H+h)*W + v0 // x[c, h, v0 + s] for s0 ≤ s < s1
					if full {
						src := x[base : base+S]
						for j := range d {
							d[j] = src[j]
						}
						continue
					}
					clear(d[:s0])
					clear(d[s1:])
					for j, v := range x[base+s0 : base+s1] {
						d[s0+j] = v
					}
				}
			}
		}
	}
}

// col2im overwrites one image dx (C,H,W) with the sum of the columns
// off ≤ j < off+P·Q of dcol scattered back to the input positions they were
// read from (the adjoint of im2col), in (c, r, s, p, q) order.
func (c *Conv2D) col2im(dcol []float32, ld, off int, dx []float32) {
	g := c.g
	H, W, P, Q, sh, sw := g.H, g.W, c.p, c.q, g.StrideH, g.StrideW
	clear(dx)
	row := 0
	for ch := 0; ch < g.C; ch++ {
		xc := dx[ch*H*W : (ch+1)*H*W]
		for r := 0; r < g.R; r++ {
			p0, p1 := c.rows[r][0], c.rows[r][1]
			for s := 0; s < g.S; s++ {
				src := dcol[row*ld+off : row*ld+off+P*Q]
				row++
				q0, q1 := c.cols[s][0], c.cols[s][1]
				if q0 >= q1 {
					continue
				}
				if sw == 1 && q0 == 0 && q1 == Q {
					// Whole output rows into one input row each: the
					// common case, with the index arithmetic hoisted.
					di, step := (p0*sh-g.PadH+r)*W-g.PadW+s, sh*W
					for p := p0; p < p1; p++ {
						d, dst := src[p*Q:p*Q+Q], xc[di:di+Q]
						for j, v := range d {
							dst[j] += v
						}
						di += step
					}
					continue
				}
				for p := p0; p < p1; p++ {
					d := src[p*Q+q0 : p*Q+q1]
					dst := xc[(p*sh-g.PadH+r)*W+q0*sw-g.PadW+s:]
					if sw == 1 {
						dst = dst[:len(d)]
						for j, v := range d {
							dst[j] += v
						}
					} else {
						for j, v := range d {
							dst[j*sw] += v
						}
					}
				}
			}
		}
	}
}

// validRange returns the outputs q0 ≤ q < q1 (of Q) whose input index
// q·stride − pad + s lies in [0, W); it serves rows and columns alike.
func validRange(Q, stride, pad, s, W int) (q0, q1 int) {
	// q·stride ≥ pad − s  and  q·stride ≤ W − 1 + pad − s
	lo := pad - s
	if lo > 0 {
		q0 = (lo + stride - 1) / stride
	}
	hi := W - 1 + pad - s
	if hi < 0 {
		return 0, 0
	}
	q1 = min(Q, hi/stride+1)
	if q0 > q1 {
		q0 = q1
	}
	return q0, q1
}

// sgemm computes C = op(A)·op(B) + beta·C with gonum's Sgemm, cut into
// pieces of at most 64 rows × 192 columns of C so that gonum runs each piece
// serially (it goes parallel from four 64×64 blocks): the parallelism is
// ours, across groups of images. Each element of C is computed the same way
// as in one whole call.
func sgemm(tA, tB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	const mb, nb = 64, 192
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	impl := blas32.Implementation()
	for i := 0; i < m; i += mb {
		mi := min(mb, m-i)
		var ai []float32
		if tA {
			ai = a[i:]
		} else {
			ai = a[i*lda:]
		}
		for j := 0; j < n; j += nb {
			nj := min(nb, n-j)
			var bj []float32
			if tB {
				bj = b[j*ldb:]
			} else {
				bj = b[j:]
			}
			impl.Sgemm(ta, tb, mi, nj, k, 1, ai, lda, bj, ldb, beta, c[i*ldc+j:], ldc)
		}
	}
}
