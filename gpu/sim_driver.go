package gpu

import (
	"fmt"
	"runtime"
	"time"

	"github.com/convtrain/convtrain/gpu/ptxsim"
)

// simDriver runs the PTX on the CPU through package ptxsim. Launches run to
// completion before Launch returns, so Synchronize has nothing to wait for;
// events measure wall-clock time.
type simDriver struct {
	m      *ptxsim.Machine
	opts   SimOptions
	limit  int64               // simulated memory size in bytes
	inUse  int64               // bytes held by live allocations
	sizes  map[DevicePtr]int64 // live allocations
	last   *ptxsim.Stats       // counters of the last launch
	totals map[string]*KernelStats
	closed bool
	// rec holds the work recorded since BeginCapture (nil when not
	// recording).
	rec *simGraph
}

// simGraph is a recorded sequence of launches and copies: replayed in
// order, each with the arguments it was recorded with.
type simGraph struct {
	s   *simDriver
	ops []simOp
}

// simOp is one recorded launch (fn non-nil) or device-to-device copy.
type simOp struct {
	fn          *simFunction
	grid, block Dim3
	shared      int
	args        []uint64
	dst, src    DevicePtr
	bytes       int64
}

func (s *simDriver) BeginCapture() error {
	if s.rec != nil {
		return fmt.Errorf("already recording")
	}
	s.rec = &simGraph{s: s}
	return nil
}

func (s *simDriver) EndCapture() (graph, error) {
	if s.rec == nil {
		return nil, fmt.Errorf("not recording")
	}
	g := s.rec
	s.rec = nil
	return g, nil
}

// Launch replays the recorded work; the simulator runs it at once.
func (g *simGraph) Launch() error {
	s := g.s
	if s.closed {
		return fmt.Errorf("simulator closed")
	}
	if s.rec != nil {
		return fmt.Errorf("graph launch while recording")
	}
	for i, op := range g.ops {
		var err error
		if op.fn != nil {
			err = s.Launch(op.fn, op.grid, op.block, op.shared, op.args)
		} else {
			err = s.MemcpyDtoD(op.dst, op.src, op.bytes)
		}
		if err != nil {
			return fmt.Errorf("graph node %d of %d: %w", i+1, len(g.ops), err)
		}
	}
	return nil
}

func (g *simGraph) Destroy() error {
	g.ops = nil
	return nil
}

const defaultSimMemory = 4 << 30

func newSimDriver(opts SimOptions) (*simDriver, error) {
	if opts.Workers < 0 || opts.MaxInstructionsPerThread < 0 || opts.MemoryBytes < 0 {
		return nil, fmt.Errorf("negative option in %+v", opts)
	}
	if opts.Workers == 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	limit := opts.MemoryBytes
	if limit == 0 {
		limit = defaultSimMemory
	}
	m := ptxsim.New(ptxsim.Options{
		Workers:                  opts.Workers,
		CheckRaces:               opts.CheckRaces,
		CheckUninitShared:        opts.CheckUninitShared,
		Counters:                 opts.Counters,
		MaxInstructionsPerThread: opts.MaxInstructionsPerThread,
	})
	return &simDriver{m: m, opts: opts, limit: limit, sizes: make(map[DevicePtr]int64),
		totals: make(map[string]*KernelStats)}, nil
}

func (s *simDriver) Info() (DeviceInfo, error) {
	return DeviceInfo{
		Name:              "ptxsim",
		ComputeMajor:      9, // it runs every target, sm_80's tensor-core kernels included
		ComputeMinor:      0,
		SMs:               s.opts.Workers,
		TotalMemoryBytes:  s.limit,
		FreeMemoryBytes:   s.limit - s.inUse,
		MaxThreadsPerBlk:  1024,
		MaxSharedPerBlock: ptxsim.MaxSharedBytes,
	}, nil
}

func (s *simDriver) MemAlloc(bytes int64) (DevicePtr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("alloc %d bytes: size must be positive", bytes)
	}
	if free := s.limit - s.inUse; bytes > free {
		return 0, fmt.Errorf("out of device memory: asked %d bytes, %d of %d free", bytes, free, s.limit)
	}
	a, err := s.m.Alloc(bytes)
	if err != nil {
		return 0, fmt.Errorf("alloc %d bytes: %w", bytes, err)
	}
	p := DevicePtr(a)
	s.sizes[p] = bytes
	s.inUse += bytes
	return p, nil
}

func (s *simDriver) MemFree(p DevicePtr) error {
	n, ok := s.sizes[p]
	if !ok {
		return fmt.Errorf("free %#x: not a live allocation", uint64(p))
	}
	if err := s.m.Free(uint64(p)); err != nil {
		return fmt.Errorf("free %#x: %w", uint64(p), err)
	}
	delete(s.sizes, p)
	s.inUse -= n
	return nil
}

func (s *simDriver) MemcpyHtoD(dst DevicePtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	return s.m.Write(uint64(dst), src)
}

func (s *simDriver) MemcpyDtoH(dst []byte, src DevicePtr) error {
	if len(dst) == 0 {
		return nil
	}
	return s.m.Read(uint64(src), dst)
}

func (s *simDriver) MemcpyDtoD(dst, src DevicePtr, bytes int64) error {
	if bytes == 0 {
		return nil
	}
	if s.rec != nil {
		s.rec.ops = append(s.rec.ops, simOp{dst: dst, src: src, bytes: bytes})
		return nil
	}
	return s.m.Copy(uint64(dst), uint64(src), bytes)
}

type simModule struct{ m *ptxsim.Module }

type simFunction struct {
	name string
	k    *ptxsim.Kernel
}

func (f *simFunction) Name() string { return f.name }

func (s *simDriver) LoadModule(ptx string) (module, error) {
	m, err := ptxsim.Load(ptx)
	if err != nil {
		return nil, err
	}
	return &simModule{m: m}, nil
}

func (m *simModule) Function(name string) (function, error) {
	k, err := m.m.Kernel(name)
	if err != nil {
		return nil, err
	}
	return &simFunction{name: name, k: k}, nil
}

func (m *simModule) Unload() error { return nil }

func (s *simDriver) Launch(fn function, grid, block Dim3, sharedBytes int, args []uint64) error {
	f, ok := fn.(*simFunction)
	if !ok {
		return fmt.Errorf("function %s was not loaded by the simulator", fn.Name())
	}
	if s.rec != nil {
		s.rec.ops = append(s.rec.ops, simOp{fn: f, grid: grid, block: block, shared: sharedBytes,
			args: append([]uint64(nil), args...)})
		return nil
	}
	start := time.Now()
	st, err := s.m.Launch(f.k, [3]int{grid.X, grid.Y, grid.Z}, [3]int{block.X, block.Y, block.Z}, sharedBytes, args)
	if err != nil {
		return err
	}
	s.last = st
	tot := s.totals[f.name]
	if tot == nil {
		tot = &KernelStats{SimStats: SimStats{Instructions: make(map[string]int64)}}
		s.totals[f.name] = tot
	}
	tot.Launches++
	tot.SimTime += time.Since(start)
	if st != nil {
		tot.add(st)
	}
	return nil
}

// KernelStats are the simulator's counters of one kernel summed over its
// launches since the last ResetKernelStats.
type KernelStats struct {
	Launches int64
	// SimTime is the wall time the simulator spent in the launches (a
	// measure of the simulator, not of any GPU).
	SimTime time.Duration
	SimStats
}

func (t *KernelStats) add(o *ptxsim.Stats) {
	for k, v := range o.Instructions {
		t.Instructions[k] += v
	}
	t.ThreadInstructions += o.ThreadInstructions
	t.Blocks += o.Blocks
	t.Threads += o.Threads
	t.GlobalLoadBytes += o.GlobalLoadBytes
	t.GlobalStoreBytes += o.GlobalStoreBytes
	t.GlobalRequests += o.GlobalRequests
	t.GlobalSectors += o.GlobalSectors
	t.GlobalAtomics += o.GlobalAtomics
	t.SharedLoadBytes += o.SharedLoadBytes
	t.SharedStoreBytes += o.SharedStoreBytes
	t.SharedRequests += o.SharedRequests
	t.SharedBankConflicts += o.SharedBankConflicts
	t.SharedAtomics += o.SharedAtomics
	t.Barriers += o.Barriers
}

func (s *simDriver) Synchronize() error { return nil }

type simEvent struct{ t time.Time }

func (s *simDriver) NewEvent() (event, error) { return &simEvent{}, nil }

func (e *simEvent) Record() error {
	e.t = time.Now()
	return nil
}

func (e *simEvent) ElapsedMs(start event) (float32, error) {
	st, ok := start.(*simEvent)
	if !ok {
		return 0, fmt.Errorf("start event is not a simulator event")
	}
	if st.t.IsZero() || e.t.IsZero() {
		return 0, fmt.Errorf("event not recorded")
	}
	return float32(e.t.Sub(st.t).Seconds() * 1e3), nil
}

func (e *simEvent) Destroy() error { return nil }

func (s *simDriver) Close() error {
	for p := range s.sizes {
		s.m.Free(uint64(p))
		delete(s.sizes, p)
	}
	s.inUse = 0
	s.closed = true
	return nil
}
