// Package gpu is the device runtime of convtrain: a Device (a real NVIDIA GPU
// reached through the CUDA driver API, or the PTX simulator), typed float32,
// int32 and uint8 device buffers with a caching allocator, the embedded PTX
// modules of package kernels loaded once per device, and one typed launcher
// per kernel.
//
// Shape letters, as everywhere in convtrain:
//
//	N batch, C channels, H×W input size, K filters, R×S kernel, P×Q output
//	size; In/Out the widths of a dense layer.
//
// Every launcher validates sizes and buffer lengths on the host, computes
// the grid, block and shared memory of its kernel in one place, passes each
// argument as one 8-byte value (device pointers, int32 sign-extended,
// float32 as math.Float32bits) in the exact parameter order of the kernel,
// and wraps every error as
//
//	gpu: launch KERNEL (SHAPE): cause
//
// Launches on a real GPU are asynchronous: a fault inside a kernel is
// reported by the next Synchronize or download. On the simulator every
// launch runs to completion before the launcher returns.
//
// A Device serialises every call with a mutex; it may be used from several
// goroutines, but work on it is never concurrent.
package gpu

import (
	"errors"
	"fmt"
	"sync"

	"github.com/convtrain/convtrain/gpu/ptxsim"
	"github.com/convtrain/convtrain/kernels"
)

// ErrClosed is wrapped by errors about a closed Device or a freed Buffer.
var ErrClosed = errors.New("closed or freed")

// ErrNoDevice is wrapped by Open's error when there is no CUDA device to
// open (no device at all, or the ordinal is out of range). Any other Open
// error (a PTX JIT failure, a missing kernel) is a real failure.
var ErrNoDevice = errors.New("no CUDA device")

// Device is one GPU (or the simulator) with every kernel of package kernels
// loaded and resolved.
type Device struct {
	mu     sync.Mutex
	drv    driver
	sim    *simDriver // nil on a real GPU
	info   DeviceInfo
	mods   []module
	fns    [numKernels]function // nil for a kernel whose Target the device cannot run
	closed bool

	precision Precision // of the convolution passes, see SetPrecision

	args [maxArgs]uint64 // argument staging, reused by every launch

	pool  map[int64][]DevicePtr // freed allocations by rounded size, reused before allocating
	stats MemStats

	launches      int64 // kernels and graphs launched (Launches)
	graphLaunches int64 // graphs launched (GraphLaunches)
	capturing     bool  // between BeginCapture and EndCapture
	captured      int   // launches recorded since BeginCapture
	// held are the workspaces that launches recorded since BeginCapture
	// use: not back in the cache while a graph may replay them.
	held []heldScratch

	dispatchCache map[dispatchKey]dispatchChoice // bestKernel's answers

	// kept maps a buffer of Conv2DForwardKeep's to the copy of x it holds
	// (conv_keep.go).
	kept map[DevicePtr]keptPack
	// dyMade is the copy of a conv's dy that BatchNormBackwardKeep made
	// last, for the next Conv2DBackward (bn_keep.go).
	dyMade madeCopy
	// xMade is the TF32 copy of a conv's x that BatchNormForwardKeep or
	// AddReLUKeep made last, for the next conv forward pass (x_made.go).
	xMade madeCopy
	// dyOnly holds the dys whose float32 values BatchNormBackwardCopy left
	// unwritten (only their copies made), each until a Conv2DBackward
	// reads its copy; a Conv2DBackward that would read dy's values is
	// refused.
	dyOnly map[DevicePtr]*Buffer
	// xOnly holds the batch norms' outputs whose float32 values
	// BatchNormForwardCopy left unwritten (only the conv's kept copy
	// made), each until a batch norm writes it again; a conv pass that
	// would read x's values is refused.
	xOnly map[DevicePtr]*Buffer
}

// heldScratch is a workspace (scratchLocked) that a graph keeps.
type heldScratch struct {
	p    DevicePtr
	size int64
}

// Launches returns the number of kernels launched on the device since
// Open or OpenSim, on a GPU as on the simulator: the launches of a
// training step are the difference across it. A graph's replay counts
// once (Graph.Launch); the launches recorded into a graph do not count.
func (d *Device) Launches() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.launches
}

// MemStats counts the device memory traffic of the caching allocator.
type MemStats struct {
	// Allocs and Frees count driver allocations and releases; in a
	// steady-state training loop they stay constant.
	Allocs, Frees int64
	// Reuses counts buffers served from the cache without a driver call.
	Reuses int64
	// BytesInUse is held by live buffers; BytesCached by freed buffers kept
	// for reuse.
	BytesInUse, BytesCached int64
	// HtoDBytes, DtoHBytes and DtoDBytes count the bytes copied by Upload,
	// Download and CopyFrom.
	HtoDBytes, DtoHBytes, DtoDBytes int64
	// HtoDCopies and DtoHCopies count the uploads and downloads.
	HtoDCopies, DtoHCopies int64
}

// SimOptions configures the PTX simulator behind OpenSim.
type SimOptions struct {
	// Workers is the number of goroutines that run blocks in parallel;
	// 0 means runtime.GOMAXPROCS(0).
	Workers int
	// CheckRaces reports two threads of a block touching the same shared
	// address between barriers with at least one write.
	CheckRaces bool
	// CheckUninitShared reports reads of shared memory no thread wrote in
	// this launch.
	CheckUninitShared bool
	// Counters collects instruction, global-memory and bank-conflict
	// counters per launch, read with (*Device).LastStats.
	Counters bool
	// MaxInstructionsPerThread stops a runaway launch with an error; 0 means
	// the simulator's default.
	MaxInstructionsPerThread int64
	// MemoryBytes is the simulated device memory; 0 means 4 GiB.
	MemoryBytes int64
}

// SimStats are the counters of one simulated launch.
type SimStats = ptxsim.Stats

// Open opens the CUDA device with the given ordinal, loads every embedded
// PTX module (a JIT failure's log is in the error) and resolves every kernel
// of kernels.All. It fails with a clear error when the binary was built
// without -tags cuda, when there is no driver or no such device.
func Open(ordinal int) (*Device, error) {
	drv, err := openCUDA(ordinal)
	if err != nil {
		return nil, err // already "gpu: …" and specific (no cuda tag, no driver, no device)
	}
	return newDevice(drv, nil)
}

// DeviceCount returns the number of CUDA devices (at least 1), or the
// error Open would give: a binary built without -tags cuda, no driver, or
// no device (ErrNoDevice).
func DeviceCount() (int, error) { return countCUDA() }

// OpenSim opens a simulated device: the same PTX, run by package ptxsim on
// the CPU.
func OpenSim(opts SimOptions) (*Device, error) {
	sd, err := newSimDriver(opts)
	if err != nil {
		return nil, fmt.Errorf("gpu: open simulator: %w", err)
	}
	return newDevice(sd, sd)
}

func newDevice(drv driver, sim *simDriver) (*Device, error) {
	d := &Device{drv: drv, sim: sim, pool: make(map[int64][]DevicePtr)}
	info, err := drv.Info()
	if err != nil {
		drv.Close()
		return nil, fmt.Errorf("gpu: device info: %w", err)
	}
	d.info = info
	if err := d.loadKernels(); err != nil {
		for _, m := range d.mods {
			m.Unload()
		}
		drv.Close()
		return nil, err
	}
	return d, nil
}

// loadKernels loads each embedded PTX file once, resolves every kernel of
// kernels.All and resolves every kernel the launchers name (kernelTable).
func (d *Device) loadKernels() error {
	fns := make(map[string]function)
	byFile := make(map[string]module)
	// A file is loaded when the device runs the target of its kernels
	// (kernels.Kernel.Target: the sm_80 tensor-core kernels are not loaded
	// on an older GPU, whose JIT would refuse them).
	fileOK := make(map[string]bool)
	for _, k := range kernels.All {
		fileOK[k.File] = d.targetOK(k.Target)
	}
	for _, file := range kernels.Files() {
		if ok, listed := fileOK[file]; listed && !ok {
			continue
		}
		src, err := kernels.PTX(file)
		if err != nil {
			return fmt.Errorf("gpu: kernels %s: %w", file, err)
		}
		m, err := d.drv.LoadModule(src)
		if err != nil {
			return fmt.Errorf("gpu: load module %s: %w", file, err)
		}
		d.mods = append(d.mods, m)
		byFile[file] = m
	}
	skipped := make(map[string]bool)
	for _, k := range kernels.All {
		if !d.targetOK(k.Target) {
			skipped[k.Name] = true
			continue
		}
		m, ok := byFile[k.File]
		if !ok {
			return fmt.Errorf("gpu: kernel %s: file %s is not embedded", k.Name, k.File)
		}
		fn, err := m.Function(k.Name)
		if err != nil {
			return fmt.Errorf("gpu: kernel %s in %s: %w", k.Name, k.File, err)
		}
		fns[k.Name] = fn
	}
	if kernelTableErr != nil {
		return kernelTableErr
	}
	for id := kernelID(0); id < numKernels; id++ {
		name := kernelTable[id].name
		if skipped[name] {
			continue // d.fns[id] stays nil; its launcher refuses
		}
		fn, ok := fns[name]
		if !ok {
			return fmt.Errorf("gpu: kernel %s is not in kernels.All", name)
		}
		d.fns[id] = fn
	}
	return nil
}

// Info describes the device; FreeMemoryBytes is queried now (as of the
// last successful query if the device is closed or the query fails).
func (d *Device) Info() DeviceInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		if info, err := d.drv.Info(); err == nil {
			d.info = info
		}
	}
	return d.info
}

// IsSim reports whether the device is the PTX simulator.
func (d *Device) IsSim() bool { return d.sim != nil }

// String names the device, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)";
// the simulator counts its workers as SMs.
func (d *Device) String() string {
	d.mu.Lock()
	info := d.info
	d.mu.Unlock()
	return fmt.Sprintf("%s (sm_%d%d, %d SMs)", info.Name, info.ComputeMajor, info.ComputeMinor, info.SMs)
}

// LastStats returns the counters of the last launch on a simulated device
// (collected only with SimOptions.Counters); ok is false on a real GPU or
// before the first launch.
func (d *Device) LastStats() (s SimStats, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sim == nil || d.sim.last == nil {
		return SimStats{}, false
	}
	return *d.sim.last, true
}

// KernelStats returns, on a simulated device, the counters of each kernel
// (by name) summed over its launches since Open or the last
// ResetKernelStats; the memory counters are filled only with
// SimOptions.Counters. It returns nil on a real GPU.
func (d *Device) KernelStats() map[string]KernelStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sim == nil {
		return nil
	}
	out := make(map[string]KernelStats, len(d.sim.totals))
	for name, t := range d.sim.totals {
		c := *t
		c.Instructions = make(map[string]int64, len(t.Instructions))
		for k, v := range t.Instructions {
			c.Instructions[k] = v
		}
		out[name] = c
	}
	return out
}

// ResetKernelStats zeroes the per-kernel counters of a simulated device.
func (d *Device) ResetKernelStats() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sim != nil {
		clear(d.sim.totals)
	}
}

// MemStats returns the allocator's counters.
func (d *Device) MemStats() MemStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Synchronize waits for every queued launch and copy and returns the first
// error among them.
func (d *Device) Synchronize() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("gpu: synchronize: device %w", ErrClosed)
	}
	if err := d.notCapturing("synchronize"); err != nil {
		return err
	}
	if err := d.drv.Synchronize(); err != nil {
		return fmt.Errorf("gpu: synchronize: %w", err)
	}
	return nil
}

// streamDriver is implemented by a driver with a CUDA stream (the cu
// adapter; the simulator has none).
type streamDriver interface {
	onStream(f func(stream uintptr, done func() (bool, error)) error) error
}

// OnStream calls f with the device's stream (a CUstream) and done, which
// reports whether everything queued on the stream so far has completed
// (cuStreamQuery), on an OS thread locked to the calling goroutine with the
// device's context current, holding the device: for a library that
// enqueues its own work on the device's stream and must be called so
// (NCCL). f's error is returned as it is. On the simulator, which has no
// CUDA stream, it returns an error and does not call f.
func (d *Device) OnStream(f func(stream uintptr, done func() (bool, error)) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("gpu: run on the stream: device %w", ErrClosed)
	}
	s, ok := d.drv.(streamDriver)
	if !ok {
		return fmt.Errorf("gpu: run on the stream: %v has no CUDA stream; a library that enqueues its own work there (NCCL) needs a CUDA device", d)
	}
	return s.onStream(f)
}

// ReleaseCached returns the memory of freed buffers, kept for reuse, to the
// driver.
func (d *Device) ReleaseCached() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.releaseCachedLocked()
}

func (d *Device) releaseCachedLocked() error {
	var first error
	for size, ptrs := range d.pool {
		for _, p := range ptrs {
			if err := d.drv.MemFree(p); err != nil && first == nil {
				first = fmt.Errorf("gpu: free %d bytes: %w", size, err)
			}
			d.stats.Frees++
			d.stats.BytesCached -= size
		}
		delete(d.pool, size)
	}
	return first
}

// Close unloads the modules and releases the device. Buffers still alive
// become unusable; their memory goes with the context (simulator: with the
// machine). Close is idempotent.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	first := d.releaseCachedLocked()
	for _, m := range d.mods {
		if err := m.Unload(); err != nil && first == nil {
			first = fmt.Errorf("gpu: unload module: %w", err)
		}
	}
	d.mods = nil
	if err := d.drv.Close(); err != nil && first == nil {
		first = fmt.Errorf("gpu: close: %w", err)
	}
	d.closed = true
	return first
}

// Event is a marker in the device's launch stream, used for timing.
type Event struct {
	d *Device
	e event
}

// NewEvent creates a timing event.
func (d *Device) NewEvent() (*Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("gpu: new event: device %w", ErrClosed)
	}
	e, err := d.drv.NewEvent()
	if err != nil {
		return nil, fmt.Errorf("gpu: new event: %w", err)
	}
	return &Event{d: d, e: e}, nil
}

// Record places the event after all work queued so far.
func (e *Event) Record() error {
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	if err := e.d.notCapturing("record event"); err != nil {
		return err
	}
	if err := e.e.Record(); err != nil {
		return fmt.Errorf("gpu: record event: %w", err)
	}
	return nil
}

// ElapsedMs is the time in milliseconds between start and e; call
// Synchronize first so that both have completed.
func (e *Event) ElapsedMs(start *Event) (float32, error) {
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	ms, err := e.e.ElapsedMs(start.e)
	if err != nil {
		return 0, fmt.Errorf("gpu: event elapsed time: %w", err)
	}
	return ms, nil
}

// Destroy releases the event.
func (e *Event) Destroy() error {
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	if err := e.e.Destroy(); err != nil {
		return fmt.Errorf("gpu: destroy event: %w", err)
	}
	return nil
}
