// Package ptxsim is a PTX interpreter that runs, on the CPU, the PTX that
// clang-19 emits for our CUDA C kernels (PTX ISA 7.x/8.x, sm_70/sm_80), so
// that every kernel is exercised, bit for bit the same PTX, without a GPU.
//
// # Model
//
// Execution follows Volta's independent thread scheduling: every thread runs
// its own pre-decoded instruction stream with its own register file, and
// bar.sync/barrier.sync (and bar.red) and the .sync warp collectives
// (shfl.sync, vote.sync, redux.sync, bar.warp.sync, mma.sync, ldmatrix) are
// rendezvous points among the threads they name, so no reconvergence stack
// is needed. Within a block the scheduler runs each thread, in thread order,
// until it blocks on a barrier or a collective or exits, then resolves the
// rendezvous. Blocks run in parallel on Options.Workers goroutines. Results
// are deterministic for kernels without floating-point atomics (whose
// summation order across blocks follows the goroutine schedule). Atomics on
// global memory are serialised; plain accesses of different blocks to the
// same global bytes are a data race on a GPU and, under go test -race, in Go.
//
// A barrier completes when every thread of the block that has not exited
// has arrived (or its thread count, when given). A collective completes when
// every non-exited lane of its membermask has arrived at a collective of the
// same kind and mask; reading a lane that has exited, is outside the mask or
// does not exist is an error, as is a deadlock. mma.sync and ldmatrix need
// the whole warp.
//
// # Memory
//
// Global memory is a set of separate allocations: allocation i lives at
// address i·2⁴⁰, so an access past the end of a buffer lands in a gap and is
// an error, never silently another buffer. Every global, shared, local,
// const and param access is bounds- and alignment-checked. Generic addresses
// of shared, local and const memory live in windows below 2⁴⁰ (cvta converts).
// Module-level .global variables (__device__) are allocated in a Machine on
// the first launch of a kernel of their module and persist between launches;
// .const variables (__constant__) are read-only data of the module.
// Options.CheckRaces reports two threads of a block touching the same
// shared byte with at least one write and no barrier (or, within a warp, no
// bar.warp.sync) between them; Options.CheckUninitShared reports reading a
// shared byte that no thread of the block wrote in this launch. A runtime
// error stops the launch and names the kernel, PTX line and text, block,
// thread and address.
//
// # Arithmetic
//
// Floating point follows PTX: float32 operations round once (fma.rn.f32 is a
// single rounding, including the halfway cases where float64 FMA followed by
// a float32 conversion would round twice); the directed rounding modes of
// add/sub/mul/fma/div/sqrt/rcp/cvt are exact; .ftz flushes subnormal inputs
// and results to sign-preserving zero; .sat clamps to [0, 1] with NaN → 0;
// min/max return the non-NaN operand (two NaNs, or .NaN, give the canonical
// NaN) and order −0 below +0; float-to-integer conversion saturates and maps
// NaN to 0. Approximate operations (ex2, lg2, rsqrt, sin, cos, tanh,
// div.approx/full, rcp/sqrt.approx) are evaluated in float64 and rounded,
// within their documented error. mma.sync sums exact products in float64 and
// rounds once: tensor cores are not specified to that precision. Integer
// arithmetic wraps (add.sat.s32, sub.sat.s32 and mad.hi.sat.s32 saturate);
// division by zero gives the hardware's all-ones quotient.
//
// # Loading
//
// Load decodes every instruction of a module and checks its modifiers and
// types against the forms the simulator implements: any other instruction,
// modifier (say mad.lo.cc, a carry-chain form), conflicting modifier pair or
// type is a load error naming the line and its text, never silently ignored.
// Cache eviction and prefetch hints of memory instructions (.L1::evict_last,
// .L2::128B, ...) are accepted and have no effect; .shared::cta is .shared;
// membar and fence are no-ops, every access being sequentially consistent.
//
// # Counters
//
// Stats counts thread-instructions by class on every launch; with
// Options.Counters it also groups the global and shared accesses that the
// threads of a warp make at the same instruction and the same dynamic
// occurrence into warp requests, and counts bytes, 32-byte sectors per global
// request (coalescing) and extra wavefronts per shared request (bank
// conflicts).
package ptxsim

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
)

// Options configures a Machine.
type Options struct {
	// Workers is the number of goroutines that run blocks; 0 means GOMAXPROCS.
	Workers int
	// CheckRaces reports two threads of a block touching the same shared
	// byte between barriers with at least one write (atomics excepted).
	CheckRaces bool
	// CheckUninitShared reports reading a shared byte that no thread of
	// the block wrote in this launch.
	CheckUninitShared bool
	// Counters fills the per-launch memory counters of Stats.
	Counters bool
	// MaxInstructionsPerThread stops a launch whose thread runs more
	// instructions than this; 0 means DefaultMaxInstructionsPerThread.
	MaxInstructionsPerThread int64
}

// DefaultMaxInstructionsPerThread is the per-thread instruction limit when
// Options.MaxInstructionsPerThread is 0.
const DefaultMaxInstructionsPerThread = 1 << 28

// Address layout.
const (
	slotShift = 40
	slotMask  = 1<<slotShift - 1
	// sharedWindow is the generic address of shared-space address 0.
	sharedWindow = 1 << 38
	// localWindow is the generic address of local-space address 0.
	localWindow = 1 << 39
	// constWindow is the generic address of const-space address 0.
	constWindow = 1 << 37
	// maxSlots bounds the number of live allocations.
	maxSlots = 1 << 22
	// freeQuarantine is how many freed slots wait before reuse.
	freeQuarantine = 4096
)

// ErrMemory is wrapped by the errors of Alloc, Free, Read, Write and Copy.
var ErrMemory = errors.New("ptxsim: memory")

type allocation struct {
	data []byte
}

// Machine is a simulated device: its global memory and its options. Its
// methods must not be called concurrently with each other.
type Machine struct {
	opts  Options
	slots []*allocation // slot i holds the allocation at address i<<slotShift
	freed []uint64      // freed slots, oldest first
	live  int64
	atom  [64]sync.Mutex
	// workers keep their buffers between launches
	workers []*worker
	// globals holds the addresses of each module's .global variables
	globals map[*globalVarSet][]uint64
}

// New returns a Machine with no memory allocated.
func New(opts Options) *Machine {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.MaxInstructionsPerThread <= 0 {
		opts.MaxInstructionsPerThread = DefaultMaxInstructionsPerThread
	}
	return &Machine{opts: opts, slots: []*allocation{nil}}
}

// Alloc allocates bytes of zeroed global memory and returns its address,
// which is non-zero and 256-byte aligned. Every allocation is bounds-checked
// on its own.
func (m *Machine) Alloc(bytes int64) (uint64, error) {
	if bytes <= 0 || bytes > slotMask {
		return 0, fmt.Errorf("%w: alloc of %d bytes: size must be in [1, 2^40)", ErrMemory, bytes)
	}
	a := &allocation{data: make([]byte, bytes)}
	m.live += bytes
	// Freed slots are reused only after freeQuarantine later frees, so a
	// use after free is caught unless the program frees a great deal.
	if len(m.freed) > freeQuarantine || len(m.slots) >= maxSlots && len(m.freed) > 0 {
		s := m.freed[0]
		m.freed = m.freed[1:]
		m.slots[s] = a
		return s << slotShift, nil
	}
	if len(m.slots) >= maxSlots {
		return 0, fmt.Errorf("%w: alloc: more than %d live allocations", ErrMemory, maxSlots)
	}
	m.slots = append(m.slots, a)
	return uint64(len(m.slots)-1) << slotShift, nil
}

// Free releases the allocation that starts at addr.
func (m *Machine) Free(addr uint64) error {
	s := addr >> slotShift
	if addr&slotMask != 0 || s == 0 || s >= uint64(len(m.slots)) || m.slots[s] == nil {
		return fmt.Errorf("%w: free of 0x%x: not the start of a live allocation", ErrMemory, addr)
	}
	m.live -= int64(len(m.slots[s].data))
	m.slots[s] = nil
	m.freed = append(m.freed, s)
	return nil
}

// LiveBytes is the number of bytes currently allocated.
func (m *Machine) LiveBytes() int64 { return m.live }

// span returns the n bytes of global memory at addr.
func (m *Machine) span(addr uint64, n int64, what string) ([]byte, error) {
	s := addr >> slotShift
	off := addr & slotMask
	if s == 0 || s >= uint64(len(m.slots)) || m.slots[s] == nil {
		return nil, fmt.Errorf("%w: %s of %d bytes at 0x%x: no live allocation there", ErrMemory, what, n, addr)
	}
	d := m.slots[s].data
	if n < 0 || off+uint64(n) > uint64(len(d)) {
		return nil, fmt.Errorf("%w: %s of %d bytes at 0x%x: out of bounds of the %d-byte allocation at 0x%x",
			ErrMemory, what, n, addr, len(d), s<<slotShift)
	}
	return d[off : off+uint64(n)], nil
}

// Write copies src to global memory at addr.
func (m *Machine) Write(addr uint64, src []byte) error {
	d, err := m.span(addr, int64(len(src)), "write")
	if err != nil {
		return err
	}
	copy(d, src)
	return nil
}

// Read copies global memory at addr to dst.
func (m *Machine) Read(addr uint64, dst []byte) error {
	s, err := m.span(addr, int64(len(dst)), "read")
	if err != nil {
		return err
	}
	copy(dst, s)
	return nil
}

// Copy copies n bytes of global memory from src to dst.
func (m *Machine) Copy(dst, src uint64, n int64) error {
	s, err := m.span(src, n, "copy source")
	if err != nil {
		return err
	}
	d, err := m.span(dst, n, "copy destination")
	if err != nil {
		return err
	}
	copy(d, s)
	return nil
}

// Param is a kernel parameter.
type Param struct {
	Name string
	Type string // PTX type without the dot: "u64", "u32", "s32", "f32", "b8[16]", ...
	Size int    // bytes
}

// Stats are the counters of one launch. Instructions are counted per
// thread (a warp instruction executed by 32 threads counts 32), predicated-off
// instructions included. The memory counters are filled only when
// Options.Counters is set.
type Stats struct {
	// Instructions is the number of thread-instructions by class: "fp32",
	// "fp64", "int", "mov", "convert", "mem.global", "mem.shared",
	// "mem.local", "mem.param", "mem.const", "atomic", "control", "sync", "warp",
	// "special".
	Instructions map[string]int64
	// ThreadInstructions is the sum of Instructions.
	ThreadInstructions int64
	Blocks, Threads    int64

	GlobalLoadBytes, GlobalStoreBytes int64
	// GlobalRequests counts warp-level global accesses: the accesses that
	// the threads of a warp make at the same instruction and the same
	// dynamic occurrence form one request (atomics included).
	GlobalRequests int64
	// GlobalSectors counts the distinct 32-byte sectors touched by each
	// request, summed over requests. A fully coalesced float32 warp load
	// touches 4 sectors.
	GlobalSectors int64
	// GlobalAtomics counts thread-level global atomic operations.
	GlobalAtomics int64

	SharedLoadBytes, SharedStoreBytes int64
	// SharedRequests counts warp-level shared accesses.
	SharedRequests int64
	// SharedBankConflicts counts the extra wavefronts of shared requests:
	// with 32 banks of 4 bytes, a request needs as many wavefronts as the
	// largest number of distinct 4-byte words it touches in one bank
	// (threads reading the same word share it), and the ideal is
	// ⌈distinct words/32⌉. 8-byte accesses are served per half-warp and
	// 16-byte ones (ldmatrix: per 8×8 matrix) per quarter-warp, each phase
	// counted on its own.
	SharedBankConflicts int64
	SharedAtomics       int64

	// Barriers counts block-level barrier releases.
	Barriers int64
}

func (s *Stats) add(o *Stats) {
	for k, v := range o.Instructions {
		s.Instructions[k] += v
	}
	s.ThreadInstructions += o.ThreadInstructions
	s.Blocks += o.Blocks
	s.Threads += o.Threads
	s.GlobalLoadBytes += o.GlobalLoadBytes
	s.GlobalStoreBytes += o.GlobalStoreBytes
	s.GlobalRequests += o.GlobalRequests
	s.GlobalSectors += o.GlobalSectors
	s.GlobalAtomics += o.GlobalAtomics
	s.SharedLoadBytes += o.SharedLoadBytes
	s.SharedStoreBytes += o.SharedStoreBytes
	s.SharedRequests += o.SharedRequests
	s.SharedBankConflicts += o.SharedBankConflicts
	s.SharedAtomics += o.SharedAtomics
	s.Barriers += o.Barriers
}

// String formats the stats on one line with instruction classes sorted.
func (s *Stats) String() string {
	keys := make([]string, 0, len(s.Instructions))
	for k := range s.Instructions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	str := fmt.Sprintf("blocks=%d threads=%d instr=%d", s.Blocks, s.Threads, s.ThreadInstructions)
	for _, k := range keys {
		str += fmt.Sprintf(" %s=%d", k, s.Instructions[k])
	}
	str += fmt.Sprintf(" gld=%dB gst=%dB greq=%d gsect=%d sreq=%d sconf=%d",
		s.GlobalLoadBytes, s.GlobalStoreBytes, s.GlobalRequests, s.GlobalSectors, s.SharedRequests, s.SharedBankConflicts)
	return str
}

// MMAs returns the number of warp-level mma.sync instructions: the
// thread-level count of class "mma" over 32.
func (s *Stats) MMAs() int64 { return s.Instructions["mma"] / 32 }

// NonMMAPerMMA returns the thread instructions other than mma.sync per
// mma.sync thread instruction, which for full warps is the warp
// instructions issued beside each warp-level MMA (loaders, address
// arithmetic, control): the simulator's figure for how well a kernel
// feeds its tensor cores. It is 0 when the launch ran no mma.sync.
func (s *Stats) NonMMAPerMMA() float64 {
	mma := s.Instructions["mma"]
	if mma == 0 {
		return 0
	}
	return float64(s.ThreadInstructions-mma) / float64(mma)
}
