package ptxsim

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// ErrFault is wrapped by every runtime error of a launch: out-of-bounds or
// misaligned access, shared-memory race, uninitialised shared read,
// instruction limit, deadlock, trap.
var ErrFault = errors.New("ptxsim: fault")

// ErrLaunch is wrapped by errors in the launch configuration.
var ErrLaunch = errors.New("ptxsim: bad launch")

// MaxSharedBytes is the most shared memory (static plus dynamic) a block may use.
const MaxSharedBytes = 227 * 1024

// shadowByte is the race and initialisation state of one shared byte: the
// last writer and reader(s), the block epoch (barrier interval) of the
// access, and the warp epoch (bar.warp.sync interval) of the accessing warp.
type shadowByte struct {
	wTid, rTid int32 // rTid -2: several readers
	wEp, rEp   uint32
	wWep, rWep uint32
	rWarp      int32 // warp of the readers, -1 when they span warps
	wAtomic    bool  // the last write was an atomic
}

type memGroup struct {
	units []uint64 // distinct sectors (global) or words (shared)
}

type worker struct {
	m      *Machine
	k      *Kernel
	slots  []*allocation
	params []byte
	limit  int64

	grid, block [3]int
	nthreads    int
	ctaid       [3]int

	threads []thread
	regs    []uint64
	shared  []byte
	local   []byte
	frames  []byte
	icount  []int64
	live    int

	sharedSize  uint64
	checkShared bool
	checkRaces  bool
	checkUninit bool
	shadow      []shadowByte
	epoch       uint32
	blockEpoch  uint32
	warpEpoch   []uint32

	counters bool
	shTab    occTable
	gl       []memGroup
	sh       []memGroup
	glTab    occTable
	stats    Stats

	runq   []int32
	err    error
	bufs   buffers
	gaddrs []uint64 // addresses of the module's .global variables
}

// Launch runs kernel k over a grid of blocks and waits for it to finish.
// args holds one 8-byte value per kernel parameter; a parameter of Size n
// takes the low n bytes. A runtime error stops the launch; it names the
// kernel, the PTX line and text, the block and thread, and the address, and
// wraps ErrFault. When several blocks fail, the one with the lowest linear
// index is reported.
func (m *Machine) Launch(k *Kernel, grid, block [3]int, dynSharedBytes int, args []uint64) (st *Stats, err error) {
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, fmt.Errorf("%w: kernel %s: internal error: %v", ErrFault, k.name, r)
		}
	}()
	if k == nil {
		return nil, fmt.Errorf("%w: nil kernel", ErrLaunch)
	}
	for i, g := range grid {
		if g < 1 || g > math.MaxInt32 || i > 0 && g > 65535 {
			return nil, fmt.Errorf("%w: kernel %s: grid %v out of range", ErrLaunch, k.name, grid)
		}
	}
	nthreads := block[0] * block[1] * block[2]
	if block[0] < 1 || block[1] < 1 || block[2] < 1 || block[0] > 1024 || block[1] > 1024 || block[2] > 64 || nthreads > 1024 {
		return nil, fmt.Errorf("%w: kernel %s: block %v out of range (at most 1024 threads)", ErrLaunch, k.name, block)
	}
	if dynSharedBytes < 0 || k.dynBase+dynSharedBytes > MaxSharedBytes {
		return nil, fmt.Errorf("%w: kernel %s: %d bytes of dynamic shared memory (+%d static) exceed %d",
			ErrLaunch, k.name, dynSharedBytes, k.dynBase, MaxSharedBytes)
	}
	if len(args) != len(k.params) {
		return nil, fmt.Errorf("%w: kernel %s: %d arguments for %d parameters", ErrLaunch, k.name, len(args), len(k.params))
	}
	params := make([]byte, k.paramSize)
	for i, p := range k.params {
		if p.Size > 8 {
			return nil, fmt.Errorf("%w: kernel %s: parameter %s of %d bytes cannot be passed", ErrLaunch, k.name, p.Name, p.Size)
		}
		var b [8]byte
		le.PutUint64(b[:], args[i])
		copy(params[k.paramOff[i]:], b[:p.Size])
	}
	gaddrs, err := m.globalAddrs(k.globals)
	if err != nil {
		return nil, fmt.Errorf("%w: kernel %s: %v", ErrLaunch, k.name, err)
	}
	nblocks := grid[0] * grid[1] * grid[2]
	nw := min(m.opts.Workers, nblocks)
	sharedSize := k.dynBase + dynSharedBytes
	if dynSharedBytes == 0 {
		sharedSize = k.sharedStatic
	}

	var next atomic.Int64
	var firstErr atomic.Int64
	firstErr.Store(math.MaxInt64)
	var mu sync.Mutex
	errs := map[int64]error{}
	total := &Stats{Instructions: map[string]int64{}}
	for len(m.workers) < nw {
		m.workers = append(m.workers, &worker{})
	}
	work := func(w *worker) {
		*w = worker{m: m, k: k, slots: m.slots, params: params, limit: m.opts.MaxInstructionsPerThread,
			grid: grid, block: block, nthreads: nthreads, sharedSize: uint64(sharedSize),
			checkRaces: m.opts.CheckRaces, checkUninit: m.opts.CheckUninitShared, counters: m.opts.Counters,
			bufs: w.bufs, epoch: w.epoch, gaddrs: gaddrs}
		w.checkShared = w.checkRaces || w.checkUninit
		defer func() {
			if r := recover(); r != nil {
				mu.Lock()
				errs[-1] = fmt.Errorf("%w: kernel %s: internal error: %v", ErrFault, k.name, r)
				mu.Unlock()
				firstErr.Store(-1)
			}
		}()
		w.setup()
		for {
			b := next.Add(1) - 1
			if b >= int64(nblocks) || b > firstErr.Load() {
				break
			}
			w.ctaid = [3]int{int(b) % grid[0], int(b) / grid[0] % grid[1], int(b) / (grid[0] * grid[1])}
			w.runBlock()
			if w.err != nil {
				mu.Lock()
				errs[b] = w.err
				mu.Unlock()
				for {
					cur := firstErr.Load()
					if b >= cur || firstErr.CompareAndSwap(cur, b) {
						break
					}
				}
				break
			}
		}
		w.finishStats()
		mu.Lock()
		total.add(&w.stats)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for wi := 1; wi < nw; wi++ {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			work(w)
		}(m.workers[wi])
	}
	work(m.workers[0])
	wg.Wait()
	if fe := firstErr.Load(); fe != math.MaxInt64 {
		return total, errs[fe]
	}
	return total, nil
}

// buffers are a worker's allocations, kept between launches.
type buffers struct {
	threads   []thread
	regs      []uint64
	shared    []byte
	local     []byte
	frames    []byte
	icount    []int64
	shadow    []shadowByte
	warpEpoch []uint32
	occ       []uint32
	runq      []int32
}

// grow returns s resized to n zeroed elements, reusing its storage.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		s = s[:n]
		clear(s)
		return s
	}
	return make([]T, n)
}

func (w *worker) setup() {
	k := w.k
	b := &w.bufs
	b.threads = grow(b.threads, w.nthreads)
	b.regs = grow(b.regs, w.nthreads*k.nregs)
	b.shared = grow(b.shared, int(w.sharedSize))
	b.local = grow(b.local, w.nthreads*k.localSize)
	b.frames = grow(b.frames, w.nthreads*k.frameSize)
	b.icount = grow(b.icount, len(k.code))
	w.threads, w.regs, w.shared, w.local, w.frames, w.icount = b.threads, b.regs, b.shared, b.local, b.frames, b.icount
	w.stats.Instructions = map[string]int64{}
	if w.checkShared {
		b.shadow = grow(b.shadow, int(w.sharedSize))
		b.warpEpoch = grow(b.warpEpoch, (w.nthreads+31)/32)
		w.shadow, w.warpEpoch = b.shadow, b.warpEpoch
	}
	if w.counters {
		n := (w.nthreads + 31) / 32 * len(k.code)
		w.glTab = occTable{idx: make([][]int32, n)}
		w.shTab = occTable{idx: make([][]int32, n)}
		b.occ = grow(b.occ, w.nthreads*len(k.code))
	}
	for i := range w.threads {
		t := &w.threads[i]
		t.regs = w.regs[i*k.nregs : (i+1)*k.nregs : (i+1)*k.nregs]
		t.local = w.local[i*k.localSize : (i+1)*k.localSize : (i+1)*k.localSize]
		t.frame = w.frames[i*k.frameSize : (i+1)*k.frameSize : (i+1)*k.frameSize]
		t.lin = int32(i)
		if w.counters {
			n := len(k.code)
			t.occ = b.occ[i*n : (i+1)*n : (i+1)*n]
		}
	}
	b.runq = grow(b.runq, w.nthreads)[:0]
	w.runq = b.runq
}

func (w *worker) finishStats() {
	for pc, n := range w.icount {
		if n != 0 {
			w.stats.Instructions[className[w.k.class[pc]]] += n
			w.stats.ThreadInstructions += n
		}
	}
}

func (w *worker) tid(lin int) [3]int {
	return [3]int{lin % w.block[0], lin / w.block[0] % w.block[1], lin / (w.block[0] * w.block[1])}
}

func (w *worker) runBlock() {
	k := w.k
	clear(w.shared)
	clear(w.local)
	w.epoch++
	w.blockEpoch = w.epoch
	nwarps := (w.nthreads + 31) / 32
	for i := range w.threads {
		t := &w.threads[i]
		t.pc, t.state, t.steps = 0, stRun, 0
		t.stack = t.stack[:0]
		clear(t.regs[:k.constBase]) // registers start at zero: deterministic even for undefined reads
		copy(t.regs[k.constBase:], k.consts)
		t.regs[0], t.regs[1] = 1, 0
		tid := w.tid(i)
		lane := uint(i % 32)
		for _, sp := range k.specials {
			var v uint64
			switch sp.kind {
			case spTidX, spTidY, spTidZ:
				v = uint64(tid[sp.kind-spTidX])
			case spNtidX, spNtidY, spNtidZ:
				v = uint64(w.block[sp.kind-spNtidX])
			case spCtaidX, spCtaidY, spCtaidZ:
				v = uint64(w.ctaid[sp.kind-spCtaidX])
			case spNctaidX, spNctaidY, spNctaidZ:
				v = uint64(w.grid[sp.kind-spNctaidX])
			case spLaneid:
				v = uint64(lane)
			case spWarpid:
				v = uint64(i / 32)
			case spNwarpid:
				v = uint64(nwarps)
			case spLanemaskEq:
				v = 1 << lane
			case spLanemaskLt:
				v = 1<<lane - 1
			case spLanemaskLe:
				v = 1<<(lane+1) - 1
			case spLanemaskGt:
				v = ^uint64(1<<(lane+1)-1) & 0xffffffff
			case spLanemaskGe:
				v = ^uint64(1<<lane-1) & 0xffffffff
			case spSmid, spGridid:
				v = 0
			case spNsmid:
				v = 1
			default:
				if sp.kind >= spGlobalVar {
					v = w.gaddrs[sp.kind-spGlobalVar]
				}
			}
			t.regs[sp.slot] = v
		}
		if t.occ != nil {
			clear(t.occ)
		}
	}
	w.live = w.nthreads
	w.stats.Blocks++
	w.stats.Threads += int64(w.nthreads)
	w.runq = w.runq[:0]
	for i := range w.threads {
		w.runq = append(w.runq, int32(i))
	}
	for {
		for _, i := range w.runq {
			w.run(&w.threads[i])
			if w.err != nil {
				return
			}
		}
		w.runq = w.runq[:0]
		if k.usesColl {
			for wp := 0; wp < nwarps; wp++ {
				w.resolveWarp(wp)
				if w.err != nil {
					return
				}
			}
			if len(w.runq) > 0 {
				continue
			}
		}
		if w.live == 0 {
			break
		}
		if !w.resolveBarrier() {
			w.deadlock()
			return
		}
		if w.err != nil {
			return
		}
	}
	if w.counters {
		w.flushCounters()
	}
}

func (w *worker) resolveBarrier() bool {
	// barrier id of each waiting thread, count operand
	var ids [16]int
	var counts [16]int
	for i := range counts {
		counts[i] = -1
	}
	waiting := 0
	for i := range w.threads {
		t := &w.threads[i]
		if t.state != stBar {
			continue
		}
		in := &w.k.code[t.pc]
		id := int(t.regs[in.a])
		if id > 15 {
			w.fault(t, int(t.pc), 0, "barrier id %d out of range 0..15", id)
			return true
		}
		ids[id]++
		waiting++
		if in.b >= 0 {
			c := int(t.regs[in.b])
			if counts[id] >= 0 && counts[id] != c {
				w.fault(t, int(t.pc), 0, "barrier %d used with thread counts %d and %d", id, counts[id], c)
				return true
			}
			counts[id] = c
		}
	}
	if waiting == 0 {
		return false
	}
	released := false
	for id := 0; id < 16; id++ {
		if ids[id] == 0 {
			continue
		}
		need := w.live
		if counts[id] >= 0 {
			need = counts[id]
		}
		if ids[id] < need {
			continue
		}
		released = true
		n0 := len(w.runq)
		popc, all, any := uint64(0), true, false
		for i := range w.threads {
			t := &w.threads[i]
			if t.state == stBar && int(t.regs[w.k.code[t.pc].a]) == id {
				in := &w.k.code[t.pc]
				if in.sub != barPlain {
					p := t.regs[in.c] != 0
					if in.flags&fNegC != 0 {
						p = !p
					}
					if p {
						popc++
						any = true
					} else {
						all = false
					}
				}
				w.runq = append(w.runq, int32(i))
			}
		}
		for _, i := range w.runq[n0:] {
			t := &w.threads[i]
			in := &w.k.code[t.pc]
			switch in.sub {
			case barPopc:
				t.regs[in.d] = popc
			case barAnd:
				t.regs[in.d] = b2u(all)
			case barOr:
				t.regs[in.d] = b2u(any)
			}
			t.state = stRun
			t.pc++
		}
	}
	if released {
		w.epoch++
		w.stats.Barriers++
		if w.counters {
			w.flushCounters()
		}
	}
	return released
}

func (w *worker) deadlock() {
	for i := range w.threads {
		t := &w.threads[i]
		if t.state == stBar || t.state == stColl {
			exited := w.nthreads - w.live
			w.fault(t, int(t.pc), 0, "deadlock: %d threads wait at barriers or warp collectives that can never complete (%d of %d threads exited)",
				w.live, exited, w.nthreads)
			return
		}
	}
	w.fault(&w.threads[0], int(w.threads[0].pc), 0, "deadlock")
}

// activeMask is the mask of the lanes of t's warp that have not exited.
func (w *worker) activeMask(t *thread) uint32 {
	base := int(t.lin) &^ 31
	var m uint32
	for l := 0; l < 32 && base+l < w.nthreads; l++ {
		if w.threads[base+l].state != stExit {
			m |= 1 << l
		}
	}
	return m
}

// collective kinds
const (
	collShflUp = iota
	collShflDown
	collShflBfly
	collShflIdx
	collVoteAny
	collVoteAll
	collVoteUni
	collVoteBallot
	collRedux
	collSyncwarp
	collMma
	collLdmatrix
)

var collNames = [...]string{"shfl.sync.up", "shfl.sync.down", "shfl.sync.bfly", "shfl.sync.idx", "vote.sync.any",
	"vote.sync.all", "vote.sync.uni", "vote.sync.ballot", "redux.sync", "bar.warp.sync", "mma.sync", "ldmatrix.sync"}

func (w *worker) resolveWarp(wp int) {
	base := wp * 32
	n := min(32, w.nthreads-base)
	lanes := w.threads[base : base+n]
	var done uint32
	for l := 0; l < n; l++ {
		t := &lanes[l]
		if t.state != stColl || done&(1<<l) != 0 {
			continue
		}
		in := &w.k.code[t.pc]
		mask := uint32(t.regs[in.v[0]])
		if mask&(1<<l) == 0 {
			w.fault(t, int(t.pc), 0, "%s: membermask 0x%08x does not include the calling lane %d", collNames[in.sub], mask, l)
			return
		}
		// every non-exited lane of mask must wait at a matching collective
		ready := true
		var group uint32
		for j := 0; j < 32; j++ {
			if mask&(1<<j) == 0 {
				continue
			}
			if j >= n || lanes[j].state == stExit {
				continue
			}
			u := &lanes[j]
			if u.state != stColl {
				ready = false
				break
			}
			jin := &w.k.code[u.pc]
			if jin.sub != in.sub || uint32(u.regs[jin.v[0]]) != mask {
				w.fault(u, int(u.pc), 0, "%s with membermask 0x%08x meets %s with membermask 0x%08x of lane %d",
					collNames[jin.sub], uint32(u.regs[jin.v[0]]), collNames[in.sub], mask, l)
				return
			}
			group |= 1 << j
		}
		if !ready {
			continue
		}
		done |= group
		if !w.collective(lanes, base, group, in.sub) {
			return
		}
		for j := 0; j < n; j++ {
			if group&(1<<j) != 0 {
				lanes[j].state = stRun
				lanes[j].pc++
				w.runq = append(w.runq, int32(base+j))
			}
		}
	}
}

// collective computes the results of a complete warp rendezvous.
func (w *worker) collective(lanes []thread, base int, group uint32, kind uint8) bool {
	var res [32]uint64
	var pred [32]bool
	switch kind {
	case collShflUp, collShflDown, collShflBfly, collShflIdx:
		for l := 0; l < 32; l++ {
			if group&(1<<l) == 0 {
				continue
			}
			t := &lanes[l]
			in := &w.k.code[t.pc]
			b := int(t.regs[in.b] & 31)
			c := uint32(t.regs[in.c])
			cval := int(c & 31)
			segmask := int(c >> 8 & 31)
			maxLane := l&segmask | cval&^segmask
			minLane := l & segmask
			var j int
			var ok bool
			switch kind {
			case collShflUp:
				j = l - b
				ok = j >= maxLane
			case collShflDown:
				j = l + b
				ok = j <= maxLane
			case collShflBfly:
				j = l ^ b
				ok = j <= maxLane
			case collShflIdx:
				j = minLane | b&^segmask
				ok = j <= maxLane
			}
			if !ok {
				j = l
			}
			if group&(1<<j) == 0 {
				why := "is not in membermask"
				if base+j >= w.nthreads {
					why = "does not exist (partial warp)"
				} else if lanes[j].state == stExit {
					why = "has exited"
				}
				w.fault(t, int(t.pc), 0, "%s: lane %d reads lane %d, which %s", collNames[kind], l, j, why)
				return false
			}
			u := &lanes[j]
			res[l] = u.regs[w.k.code[u.pc].a] & 0xffffffff
			pred[l] = ok
		}
	case collVoteAny, collVoteAll, collVoteUni, collVoteBallot:
		var ballot uint32
		for l := 0; l < 32; l++ {
			if group&(1<<l) == 0 {
				continue
			}
			t := &lanes[l]
			in := &w.k.code[t.pc]
			p := t.regs[in.a] != 0
			if in.flags&fNegA != 0 {
				p = !p
			}
			if p {
				ballot |= 1 << l
			}
		}
		var r uint64
		switch kind {
		case collVoteAny:
			r = b2u(ballot != 0)
		case collVoteAll:
			r = b2u(ballot == group)
		case collVoteUni:
			r = b2u(ballot == 0 || ballot == group)
		case collVoteBallot:
			r = uint64(ballot)
		}
		for l := range res {
			res[l] = r
		}
	case collRedux:
		var acc uint64
		first := true
		for l := 0; l < 32; l++ {
			if group&(1<<l) == 0 {
				continue
			}
			t := &lanes[l]
			in := &w.k.code[t.pc]
			v := t.regs[in.a] & 0xffffffff
			if first {
				acc, first = v, false
				continue
			}
			signed := in.flags&fSigned != 0
			switch in.sub2 {
			case aAdd:
				acc = (acc + v) & 0xffffffff
			case aMin:
				if signed && int32(v) < int32(acc) || !signed && v < acc {
					acc = v
				}
			case aMax:
				if signed && int32(v) > int32(acc) || !signed && v > acc {
					acc = v
				}
			case aAnd:
				acc &= v
			case aOr:
				acc |= v
			case aXor:
				acc ^= v
			}
		}
		for l := range res {
			res[l] = acc
		}
	case collMma, collLdmatrix:
		if group != 0xffffffff {
			t := &lanes[0]
			w.fault(t, int(t.pc), 0, "%s needs all 32 lanes of the warp (lanes present: 0x%08x)", collNames[kind], group)
			return false
		}
		if kind == collMma {
			w.mma(lanes)
			return true
		}
		return w.ldmatrix(lanes)
	case collSyncwarp:
		if w.warpEpoch != nil {
			w.warpEpoch[base/32]++
		}
		return true
	}
	for l := 0; l < 32; l++ {
		if group&(1<<l) == 0 {
			continue
		}
		t := &lanes[l]
		in := &w.k.code[t.pc]
		t.regs[in.d] = res[l]
		if kind <= collShflIdx && in.e >= 0 {
			t.regs[in.e] = b2u(pred[l])
		}
	}
	return true
}

// fault stops the launch with a runtime error at pc of thread t.
func (w *worker) fault(t *thread, pc int, addr uint64, format string, args ...any) {
	if w.err != nil {
		return
	}
	k := w.k
	tid := w.tid(int(t.lin))
	msg := fmt.Sprintf(format, args...)
	loc := ""
	if pc >= 0 && pc < len(k.code) {
		loc = fmt.Sprintf("line %d: %q: ", k.line[pc], k.text[pc])
		if k.src[pc] != "" {
			loc = fmt.Sprintf("line %d (%s): %q: ", k.line[pc], k.src[pc], k.text[pc])
		}
	}
	w.err = fmt.Errorf("%w: kernel %s: %sblock (%d,%d,%d) thread (%d,%d,%d): %s", ErrFault, k.name, loc,
		w.ctaid[0], w.ctaid[1], w.ctaid[2], tid[0], tid[1], tid[2], msg)
}

func (w *worker) memFault(t *thread, pc int, addr, n uint64, space int) {
	switch space {
	case spGlobal:
		s := addr >> slotShift
		off := addr & slotMask
		switch {
		case addr&(n-1) != 0 && s < uint64(len(w.slots)) && w.slots[s] != nil && off+n <= uint64(len(w.slots[s].data)):
			w.fault(t, pc, addr, "misaligned %d-byte global access at address 0x%x", n, addr)
		case addr == 0 || s == 0:
			w.fault(t, pc, addr, "%d-byte global access at address 0x%x: not a global address (null or not converted from generic?)", n, addr)
		case s >= uint64(len(w.slots)) || w.slots[s] == nil:
			w.fault(t, pc, addr, "%d-byte global access at address 0x%x: no live allocation there (freed or wild pointer)", n, addr)
		default:
			size := uint64(len(w.slots[s].data))
			w.fault(t, pc, addr, "out-of-bounds %d-byte global access at address 0x%x: byte offset %d of the %d-byte allocation at 0x%x (%d bytes past its end)",
				n, addr, off, size, s<<slotShift, off+n-size)
		}
	case spShared:
		if addr&(n-1) != 0 && addr+n <= w.sharedSize {
			w.fault(t, pc, addr, "misaligned %d-byte shared access at shared address 0x%x", n, addr)
		} else {
			w.fault(t, pc, addr, "out-of-bounds %d-byte shared access at shared address 0x%x (block has %d bytes of shared memory: %d static, dynamic from %d)",
				n, addr, w.sharedSize, w.k.sharedStatic, w.k.dynBase)
		}
	case spLocal:
		if addr&(n-1) != 0 && addr+n <= uint64(w.k.localSize) {
			w.fault(t, pc, addr, "misaligned %d-byte local access at local address 0x%x", n, addr)
		} else {
			w.fault(t, pc, addr, "out-of-bounds %d-byte local access at local address 0x%x (%d bytes of local memory per thread)", n, addr, w.k.localSize)
		}
	case spConst:
		w.fault(t, pc, addr, "out-of-bounds or misaligned %d-byte constant access at const address 0x%x (%d bytes of constants)", n, addr, len(w.k.constData))
	default:
		w.fault(t, pc, addr, "%d-byte generic access at address 0x%x: not in global, shared, local or const memory", n, addr)
	}
}

// genericAccess performs ld/st with a generic address.
func (w *worker) genericAccess(t *thread, pc int, in *inst, regs []uint64) bool {
	addr := regs[in.a] + uint64(in.imm)
	n := uint64(in.sz) * uint64(in.nv)
	st := in.op == opStGeneric
	var buf []byte
	switch {
	case addr>>slotShift != 0:
		buf = w.global(addr, n)
		if buf == nil {
			w.memFault(t, pc, addr, n, spGlobal)
			return false
		}
		if w.counters {
			w.countGlobal(t, pc, addr, n, st)
		}
	case addr >= sharedWindow && addr < sharedWindow+w.sharedSize:
		a := addr - sharedWindow
		if a+n > w.sharedSize || a&(n-1) != 0 {
			w.memFault(t, pc, a, n, spShared)
			return false
		}
		if w.checkShared && !w.sharedCheck(t, pc, a, n, st, false) {
			return false
		}
		buf = w.shared[a : a+n]
		if w.counters {
			w.countShared(t, pc, a, n, st)
		}
	case addr >= localWindow && addr < localWindow+uint64(len(t.local)):
		a := addr - localWindow
		if a+n > uint64(len(t.local)) || a&(n-1) != 0 {
			w.memFault(t, pc, a, n, spLocal)
			return false
		}
		buf = t.local[a : a+n]
	case addr >= constWindow && addr < constWindow+uint64(len(w.k.constData)):
		a := addr - constWindow
		if a+n > uint64(len(w.k.constData)) || a&(n-1) != 0 || st {
			w.fault(t, pc, addr, "bad %d-byte generic access to constant memory at address 0x%x", n, addr)
			return false
		}
		loadVals(in, regs, w.k.constData[a:a+n])
		return true
	default:
		w.memFault(t, pc, addr, n, spGeneric)
		return false
	}
	if st {
		storeVals(in, regs, buf)
	} else {
		loadVals(in, regs, buf)
	}
	return true
}

// atomic performs atom/red.
func (w *worker) atomic(t *thread, pc int, in *inst, regs []uint64) bool {
	addr := regs[in.a] + uint64(in.imm)
	n := uint64(in.sz)
	space := int(in.sub2)
	if space == spGeneric {
		switch {
		case addr>>slotShift != 0:
			space = spGlobal
		case addr >= sharedWindow && addr < sharedWindow+w.sharedSize:
			space = spShared
			addr -= sharedWindow
		default:
			w.fault(t, pc, addr, "atomic at generic address 0x%x: not in global or shared memory", addr)
			return false
		}
	}
	var buf []byte
	if space == spGlobal {
		buf = w.global(addr, n)
		if buf == nil {
			w.memFault(t, pc, addr, n, spGlobal)
			return false
		}
		mu := &w.m.atom[addr>>3&63]
		mu.Lock()
		old := load(buf, in.sz)
		store(buf, in.sz, atomCompute(in, old, regs[in.b], regs[in.c]))
		mu.Unlock()
		regs[in.d] = old
		if w.counters {
			w.stats.GlobalAtomics++
			w.countGlobal(t, pc, addr, n, true)
			w.stats.GlobalStoreBytes -= int64(n) // counted as an atomic, not a store
		}
		return true
	}
	if addr+n > w.sharedSize || addr&(n-1) != 0 {
		w.memFault(t, pc, addr, n, spShared)
		return false
	}
	if w.checkShared && !w.sharedCheck(t, pc, addr, n, true, true) {
		return false
	}
	buf = w.shared[addr : addr+n]
	old := load(buf, in.sz)
	store(buf, in.sz, atomCompute(in, old, regs[in.b], regs[in.c]))
	regs[in.d] = old
	if w.counters {
		w.stats.SharedAtomics++
	}
	return true
}

func atomCompute(in *inst, old, b, c uint64) uint64 {
	m := in.mask
	kind := in.td >> 4
	switch in.sub {
	case aAdd:
		switch {
		case in.td == kF<<4|2:
			return ftz32(b32(f32(ftz32(old)) + f32(ftz32(b))))
		case in.td == kF<<4|3:
			return b64(f64(old) + f64(b))
		}
		return (old + b) & m
	case aMin, aMax:
		var less bool
		switch {
		case in.td == kF<<4|2:
			if in.sub == aMin {
				return min32(old, b, false)
			}
			return max32(old, b, false)
		case in.td == kF<<4|3:
			if in.sub == aMin {
				return min64(old, b, false)
			}
			return max64(old, b, false)
		case kind == kS:
			sh := uint8(64 - in.sz*8)
			less = sx(b, sh) < sx(old, sh)
		default:
			less = b&m < old&m
		}
		if less == (in.sub == aMin) {
			return b & m
		}
		return old
	case aAnd:
		return old & b & m
	case aOr:
		return (old | b) & m
	case aXor:
		return (old ^ b) & m
	case aExch:
		return b & m
	case aCas:
		if old&m == b&m {
			return c & m
		}
		return old
	case aInc:
		if old&m >= b&m {
			return 0
		}
		return (old + 1) & m
	case aDec:
		if old&m == 0 || old&m > b&m {
			return b & m
		}
		return (old - 1) & m
	}
	return old
}

// sharedCheck applies the race and uninitialised-read checks to a shared
// access of n bytes at addr by thread t. It reports false after a fault.
// Two accesses are ordered when a barrier separates them (different block
// epochs) or when both threads belong to one warp and a bar.warp.sync of
// that warp separates them.
func (w *worker) sharedCheck(t *thread, pc int, addr, n uint64, write, atomicOp bool) bool {
	tid := t.lin
	warp := tid / 32
	wep := w.warpEpoch[warp]
	ep := w.epoch
	// ordered reports whether an earlier access by thread o at warp epoch oe
	// (same block epoch) happens before this one.
	ordered := func(o int32, oe uint32) bool {
		return o == tid || o >= 0 && o/32 == warp && oe < wep
	}
	for i := addr; i < addr+n; i++ {
		s := &w.shadow[i]
		if atomicOp {
			if w.checkUninit && s.wEp < w.blockEpoch {
				w.fault(t, pc, i, "atomic on uninitialised shared memory at shared address 0x%x (no thread of this block wrote it in this launch)", i)
				return false
			}
			if w.checkRaces && s.wEp == ep && !s.wAtomic && !ordered(s.wTid, s.wWep) {
				w.raceFault(t, pc, i, "atomic", "written", s.wTid, false)
				return false
			}
			if w.checkRaces && s.rEp == ep && s.rTid != tid && !(s.rWarp == warp && s.rWep < wep) {
				w.raceFault(t, pc, i, "atomic", "read", s.rTid, false)
				return false
			}
			s.wEp, s.wTid, s.wWep, s.wAtomic = ep, tid, wep, true
			continue
		}
		if !write {
			if w.checkUninit && s.wEp < w.blockEpoch {
				w.fault(t, pc, i, "read of uninitialised shared memory at shared address 0x%x (no thread of this block wrote it in this launch)", i)
				return false
			}
			if w.checkRaces {
				if s.wEp == ep && !ordered(s.wTid, s.wWep) {
					w.raceFault(t, pc, i, "read", "written", s.wTid, s.wAtomic)
					return false
				}
				switch {
				case s.rEp != ep:
					s.rEp, s.rTid, s.rWarp, s.rWep = ep, tid, warp, wep
				case s.rTid != tid:
					s.rTid = -2
					if s.rWarp != warp {
						s.rWarp = -1
					}
					s.rWep = max(s.rWep, wep)
				}
			}
			continue
		}
		if w.checkRaces {
			if s.wEp == ep && !ordered(s.wTid, s.wWep) {
				w.raceFault(t, pc, i, "write", "written", s.wTid, s.wAtomic)
				return false
			}
			if s.rEp == ep && s.rTid != tid && !(s.rWarp == warp && s.rWep < wep) {
				w.raceFault(t, pc, i, "write", "read", s.rTid, false)
				return false
			}
		}
		s.wEp, s.wTid, s.wWep, s.wAtomic = ep, tid, wep, false
	}
	return true
}

func (w *worker) raceFault(t *thread, pc int, addr uint64, what, other string, otid int32, atomicOp bool) {
	by := "another thread"
	switch {
	case otid >= 0:
		o := w.tid(int(otid))
		by = fmt.Sprintf("thread (%d,%d,%d)", o[0], o[1], o[2])
	case otid == -2:
		by = "several other threads"
	}
	if atomicOp {
		other = "updated with an atomic"
	}
	w.fault(t, pc, addr, "shared-memory race: %s of shared address 0x%x, which %s %s since the last barrier", what, addr, by, other)
}

// occTable maps (warp, pc) to the warp requests of each dynamic occurrence:
// idx[warp·len(code)+pc][occ] is an index into the request list. Threads
// execute the occurrences of a pc in order, so the first thread to reach
// occurrence k of a warp finds k requests already there and appends one.
type occTable struct {
	idx     [][]int32
	touched []int32
}

func (tab *occTable) group(groups *[]memGroup, key int, occ uint32) *memGroup {
	s := tab.idx[key]
	if int(occ) < len(s) {
		return &(*groups)[s[occ]]
	}
	if len(s) == 0 {
		tab.touched = append(tab.touched, int32(key))
	}
	gi := len(*groups)
	if gi < cap(*groups) {
		*groups = (*groups)[:gi+1]
		(*groups)[gi].units = (*groups)[gi].units[:0]
	} else {
		*groups = append(*groups, memGroup{})
	}
	tab.idx[key] = append(s, int32(gi))
	return &(*groups)[gi]
}

func (tab *occTable) reset() {
	for _, k := range tab.touched {
		tab.idx[k] = tab.idx[k][:0]
	}
	tab.touched = tab.touched[:0]
}

// countGlobal records a global access of thread t for warp-level counters.
func (w *worker) countGlobal(t *thread, pc int, addr, n uint64, st bool) {
	if st {
		w.stats.GlobalStoreBytes += int64(n)
	} else {
		w.stats.GlobalLoadBytes += int64(n)
	}
	g := w.glTab.group(&w.gl, int(t.lin/32)*len(w.k.code)+pc, t.occ[pc])
	t.occ[pc]++
	for s := addr >> 5; s <= (addr+n-1)>>5; s++ {
		g.units = addUnique(g.units, s)
	}
}

func (w *worker) countShared(t *thread, pc int, addr, n uint64, st bool) {
	if st {
		w.stats.SharedStoreBytes += int64(n)
	} else {
		w.stats.SharedLoadBytes += int64(n)
	}
	g := w.shTab.group(&w.sh, int(t.lin/32)*len(w.k.code)+pc, t.occ[pc])
	t.occ[pc]++
	for a := addr >> 2; a <= (addr+n-1)>>2; a++ {
		g.units = addUnique(g.units, a)
	}
}

func addUnique(s []uint64, v uint64) []uint64 {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func (w *worker) flushCounters() {
	w.stats.GlobalRequests += int64(len(w.gl))
	for i := range w.gl {
		w.stats.GlobalSectors += int64(len(w.gl[i].units))
	}
	w.stats.SharedRequests += int64(len(w.sh))
	for i := range w.sh {
		var banks [32]int64
		var worst int64
		for _, word := range w.sh[i].units {
			banks[word&31]++
			worst = max(worst, banks[word&31])
		}
		ideal := (int64(len(w.sh[i].units)) + 31) / 32
		w.stats.SharedBankConflicts += worst - ideal
	}
	w.gl = w.gl[:0]
	w.sh = w.sh[:0]
	// Occurrences count from the last barrier, where a warp reconverges.
	n := len(w.k.code)
	for _, tab := range []*occTable{&w.glTab, &w.shTab} {
		for _, key := range tab.touched {
			warp, pc := int(key)/n, int(key)%n
			for l := warp * 32; l < min(warp*32+32, w.nthreads); l++ {
				w.threads[l].occ[pc] = 0
			}
		}
		tab.reset()
	}
}

// cpAsync copies in.sz bytes from global to shared memory (zero-filling
// past the optional source size).
func (w *worker) cpAsync(t *thread, pc int, in *inst, regs []uint64) bool {
	dst := regs[in.a] + uint64(in.imm)
	src := regs[in.b] + regs[in.c]
	n := uint64(in.sz)
	srcN := n
	if in.d >= 0 {
		srcN = min(regs[in.d]&0xffffffff, n)
	}
	if dst+n > w.sharedSize || dst&(n-1) != 0 || dst+n < dst {
		w.memFault(t, pc, dst, n, spShared)
		return false
	}
	var from []byte
	if srcN > 0 {
		if from = w.global(src, n); from == nil {
			w.memFault(t, pc, src, n, spGlobal)
			return false
		}
	}
	if w.checkShared && !w.sharedCheck(t, pc, dst, n, true, false) {
		return false
	}
	to := w.shared[dst : dst+n]
	copy(to, from[:srcN])
	clear(to[srcN:])
	if w.counters {
		w.countGlobal(t, pc, src, n, false)
		w.stats.SharedStoreBytes += int64(n)
	}
	return true
}

// mma computes D = A·B + C for a warp. Products are exact in float64 and
// summed in k order in float64, then rounded once to float32: tensor cores
// are not specified to that precision, so results may differ from a GPU in
// the last bits.
func (w *worker) mma(lanes []thread) {
	in := &w.k.code[lanes[0].pc]
	mi := &w.k.mmas[in.imm]
	K := 8
	if mi.kind == mmaF16k16 || mi.kind == mmaBF16k16 {
		K = 16
	}
	var A [16][16]float64
	var B [16][8]float64
	var C [16][8]float64
	half := func(v uint64) float64 {
		if mi.kind == mmaBF16k16 {
			return float64(f32(v << 16 & 0xffff0000))
		}
		return f16ToF64(v)
	}
	for l := 0; l < 32; l++ {
		r := lanes[l].regs
		g, tg := l>>2, l&3
		switch mi.kind {
		case mmaTF32k8:
			tf := func(s int32) float64 { return float64(f32(r[s] & 0xffffe000)) }
			A[g][tg], A[g+8][tg], A[g][tg+4], A[g+8][tg+4] = tf(mi.a[0]), tf(mi.a[1]), tf(mi.a[2]), tf(mi.a[3])
			B[tg][g], B[tg+4][g] = tf(mi.b[0]), tf(mi.b[1])
		default:
			for j, s := range mi.a {
				row := g + 8*(j&1)
				col := 2*tg + 8*(j>>1)
				A[row][col], A[row][col+1] = half(r[s]&0xffff), half(r[s]>>16&0xffff)
			}
			for j, s := range mi.b {
				k := 2*tg + 8*j
				B[k][g], B[k+1][g] = half(r[s]&0xffff), half(r[s]>>16&0xffff)
			}
		}
		for j, s := range mi.c {
			C[g+8*(j>>1)][2*tg+j&1] = float64(f32(r[s]))
		}
	}
	for l := 0; l < 32; l++ {
		r := lanes[l].regs
		g, tg := l>>2, l&3
		for j, s := range mi.d {
			row, col := g+8*(j>>1), 2*tg+j&1
			acc := C[row][col]
			for k := 0; k < K; k++ {
				acc += A[row][k] * B[k][col]
			}
			r[s] = b32(float32(acc))
		}
	}
}

// ldmatrix loads 8×8 matrices of 16-bit elements from shared memory: lane
// 8i+r supplies the address of row r of matrix i.
func (w *worker) ldmatrix(lanes []thread) bool {
	in := &w.k.code[lanes[0].pc]
	li := &w.k.ldms[in.imm]
	var m [4][8][8]uint64
	for i := 0; i < li.num; i++ {
		for r := 0; r < 8; r++ {
			t := &lanes[8*i+r]
			tin := &w.k.code[t.pc]
			addr := t.regs[tin.a] + t.regs[tin.b]
			if addr+16 > w.sharedSize || addr&15 != 0 {
				w.memFault(t, int(t.pc), addr, 16, spShared)
				return false
			}
			if w.checkShared && !w.sharedCheck(t, int(t.pc), addr, 16, false, false) {
				return false
			}
			for c := 0; c < 8; c++ {
				m[i][r][c] = uint64(le.Uint16(w.shared[addr+uint64(2*c):]))
			}
			if w.counters {
				w.countShared(t, int(t.pc), addr, 16, false)
			}
		}
	}
	for l := 0; l < 32; l++ {
		r := lanes[l].regs
		for i := 0; i < li.num; i++ {
			var lo, hi uint64
			if li.trans {
				lo, hi = m[i][2*(l&3)][l>>2], m[i][2*(l&3)+1][l>>2]
			} else {
				lo, hi = m[i][l>>2][2*(l&3)], m[i][l>>2][2*(l&3)+1]
			}
			r[li.d[i]] = lo | hi<<16
		}
	}
	return true
}

// globalAddrs returns the addresses of a module's .global variables in m,
// allocating and initialising them on first use.
func (m *Machine) globalAddrs(gv *globalVarSet) ([]uint64, error) {
	if gv == nil || len(gv.vars) == 0 {
		return nil, nil
	}
	if a, ok := m.globals[gv]; ok {
		return a, nil
	}
	if m.globals == nil {
		m.globals = map[*globalVarSet][]uint64{}
	}
	var addrs []uint64
	for _, v := range gv.vars {
		p, err := m.Alloc(int64(max(len(v.init), 1)))
		if err != nil {
			return nil, fmt.Errorf("global variable %s: %w", v.name, err)
		}
		if err := m.Write(p, v.init); err != nil {
			return nil, err
		}
		addrs = append(addrs, p)
	}
	m.globals[gv] = addrs
	return addrs, nil
}
