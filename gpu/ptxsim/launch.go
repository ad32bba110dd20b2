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

	// inflight counts, per shared byte, the cp.async copies in flight to
	// it; inflightN is their total (0: nothing to check).
	inflight  []uint8
	inflightN int

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
