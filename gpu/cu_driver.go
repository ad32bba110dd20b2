//go:build cuda

// This file is the only code of convtrain that imports gorgonia.org/cu: the
// driver of a real NVIDIA GPU. Build it with -tags cuda and the wrapper
// header first on the include path (see cu_driver_nocuda.go for the line).
//
// Threads and the context. A CUDA context is current per OS thread, and Go
// moves goroutines between threads. cu offers Ctx, which runs every call on
// one goroutine locked to an OS thread, fed over channels; each call then
// costs two goroutine hand-offs to a locked thread (an OS-thread wake-up,
// microseconds, as long as a small kernel), Ctx.NewContext panics on error,
// and its methods keep errors in a field the next call overwrites. Instead,
// every method here locks the calling goroutine to its thread for the
// duration of the call and makes our context current (cuCtxSetCurrent, a
// thread-local store in the driver) before calling cu's package functions:
// no hand-off, every error returned. The Device serialises calls, so no two
// driver calls run at once.
//
// The context and the stream. The driver uses the device's primary
// context (cuDevicePrimaryCtxRetain: the one the CUDA runtime and NCCL use
// too, so device pointers pass between them) and one stream created
// non-blocking (CU_STREAM_NON_BLOCKING) for all its work: launches, copies
// and event records. Nothing goes to the legacy stream, so a copy never
// waits for other work on the device, and the whole step can be captured.
// Copies are asynchronous on that stream: an upload returns once the
// driver has taken the host bytes (the staging buffer is pageable memory,
// which cuMemcpyHtoDAsync stages before it returns), a download waits for
// the stream (cuStreamSynchronize) before it reads the staging buffer.
//
// Note: cu's package init calls cuInit and exits the process when it fails
// (no driver, or libcuda.so.1 not found at load time), before openCUDA can
// report anything; openCUDA reports a driver without devices or a missing
// ordinal.

package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"unsafe"

	"gorgonia.org/cu"
)

var (
	_ driver   = (*cuDriver)(nil)
	_ module   = (*cuModule)(nil)
	_ function = (*cuFunction)(nil)
	_ event    = (*cuEvent)(nil)
)

// cuDriver is the driver of one CUDA device: its primary context and a
// stream of its own.
type cuDriver struct {
	ordinal int
	dev     cu.Device
	ctx     cu.CUContext // the primary context, retained
	stream  cu.Stream    // non-blocking, created on ctx
	closed  bool

	params []unsafe.Pointer // launch argument pointers, reused
	stage  []byte           // host copies pass through it (stageBytes)
}

// countCUDA returns the number of CUDA devices the driver reports (≥ 1).
func countCUDA() (int, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return 0, fmt.Errorf("gpu: %w: counting devices: %s", ErrNoDevice, cuErr(err))
	}
	if n == 0 {
		return 0, fmt.Errorf("gpu: %w: the driver reports none", ErrNoDevice)
	}
	return n, nil
}

// openCUDA retains the primary context of the CUDA device with the given
// ordinal and creates the driver's stream on it.
func openCUDA(ordinal int) (driver, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("gpu: %w: counting devices: %s", ErrNoDevice, cuErr(err))
	}
	if n == 0 {
		return nil, fmt.Errorf("gpu: %w: the driver reports none", ErrNoDevice)
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("gpu: %w: ordinal %d asked, the driver reports %d device(s) (0..%d)", ErrNoDevice, ordinal, n, n-1)
	}
	dev, err := cu.GetDevice(ordinal)
	if err != nil {
		return nil, fmt.Errorf("gpu: %w: device %d: %s", ErrNoDevice, ordinal, cuErr(err))
	}

	// Retaining does not make the context current on this thread; every
	// call makes it current itself.
	ctx, err := dev.RetainPrimaryCtx()
	if err != nil {
		return nil, fmt.Errorf("gpu: retain the primary context of device %d: %s", ordinal, cuErr(err))
	}
	d := &cuDriver{ordinal: ordinal, dev: dev, ctx: ctx}
	err = d.call("create stream", func() error {
		var err error
		if d.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
			return fmt.Errorf("gpu: create a stream on device %d: %s", ordinal, cuErr(err))
		}
		return nil
	})
	if err != nil {
		dev.ReleasePrimaryCtx()
		return nil, err
	}
	return d, nil
}

// call runs f on the calling goroutine's OS thread with the context current.
func (d *cuDriver) call(op string, f func() error) error {
	if d.closed {
		return fmt.Errorf("gpu: %s: CUDA device %d is closed", op, d.ordinal)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		return fmt.Errorf("gpu: %s: make context current: %s", op, cuErr(err))
	}
	return f()
}

func (d *cuDriver) Info() (DeviceInfo, error) {
	var info DeviceInfo
	err := d.call("device info", func() error {
		var err error
		if info.Name, err = d.dev.Name(); err != nil {
			return fmt.Errorf("gpu: device %d name: %s", d.ordinal, cuErr(err))
		}
		attrs, err := d.dev.Attributes(cu.ComputeCapabilityMajor, cu.ComputeCapabilityMinor,
			cu.MultiprocessorCount, cu.MaxThreadsPerBlock, cu.MaxSharedMemoryPerBlock)
		if err != nil {
			return fmt.Errorf("gpu: device %d attributes: %s", d.ordinal, cuErr(err))
		}
		info.ComputeMajor, info.ComputeMinor = attrs[0], attrs[1]
		info.SMs, info.MaxThreadsPerBlk, info.MaxSharedPerBlock = attrs[2], attrs[3], attrs[4]
		free, total, err := cu.MemInfo()
		if err != nil {
			return fmt.Errorf("gpu: device %d memory info: %s", d.ordinal, cuErr(err))
		}
		info.FreeMemoryBytes, info.TotalMemoryBytes = free, total
		return nil
	})
	return info, err
}

func (d *cuDriver) MemAlloc(n int64) (DevicePtr, error) {
	if n <= 0 {
		return 0, fmt.Errorf("gpu: allocate %d bytes: size must be positive", n)
	}
	var p cu.DevicePtr
	err := d.call("allocate", func() error {
		var err error
		p, err = cu.MemAlloc(n)
		if err == nil {
			return nil
		}
		if errors.Is(err, cu.OutOfMemory) {
			free, total, ierr := cu.MemInfo()
			if ierr != nil {
				return fmt.Errorf("gpu: out of device memory: asked %s, free unknown (%s): %w", mib(n), cuErr(ierr), err)
			}
			return fmt.Errorf("gpu: out of device memory: asked %s, %s free of %s: %w", mib(n), mib(free), mib(total), err)
		}
		return fmt.Errorf("gpu: allocate %s: %s", mib(n), cuErr(err))
	})
	if err != nil {
		return 0, err
	}
	return DevicePtr(p), nil
}

func (d *cuDriver) MemFree(p DevicePtr) error {
	return d.call("free", func() error {
		if err := cu.MemFree(cu.DevicePtr(p)); err != nil {
			return fmt.Errorf("gpu: free %#x: %s", uint64(p), cuErr(err))
		}
		return nil
	})
}

// stageBytes bounds the staging buffer that host copies pass through.
//
// cgo's pointer check (on by default) looks at the whole Go allocation
// around a pointer passed to C, and panics when that allocation holds Go
// pointers: a caller's []float32 may be an array field of a struct with
// pointers (as a Trainer's one-element download buffer was). So the
// adapter never hands C a caller's memory: copies go through d.stage, a
// []byte of its own, in chunks of at most stageBytes. The extra host
// memcpy is small beside the transfer itself.
const stageBytes = 4 << 20

// staging returns d's staging buffer, at least min(n, stageBytes) long.
func (d *cuDriver) staging(n int) []byte {
	n = min(n, stageBytes)
	if len(d.stage) < n {
		d.stage = make([]byte, n)
	}
	return d.stage
}

func (d *cuDriver) MemcpyHtoD(dst DevicePtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	return d.call("copy to device", func() error {
		st := d.staging(len(src))
		for off := 0; off < len(src); {
			k := copy(st, src[off:])
			if err := cu.MemcpyHtoDAsync(cu.DevicePtr(dst)+cu.DevicePtr(off), unsafe.Pointer(&st[0]), int64(k), d.stream); err != nil {
				return fmt.Errorf("gpu: copy %d bytes to device %#x: %s", len(src), uint64(dst), cuErr(err))
			}
			off += k
		}
		return nil
	})
}

func (d *cuDriver) MemcpyDtoH(dst []byte, src DevicePtr) error {
	if len(dst) == 0 {
		return nil
	}
	return d.call("copy to host", func() error {
		st := d.staging(len(dst))
		for off := 0; off < len(dst); {
			k := min(len(st), len(dst)-off)
			if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&st[0]), cu.DevicePtr(src)+cu.DevicePtr(off), int64(k), d.stream); err != nil {
				return fmt.Errorf("gpu: copy %d bytes from device %#x: %s", len(dst), uint64(src), cuErr(err))
			}
			if err := d.stream.Synchronize(); err != nil {
				return fmt.Errorf("gpu: copy %d bytes from device %#x: wait for the stream: %s", len(dst), uint64(src), cuErr(err))
			}
			off += copy(dst[off:], st[:k])
		}
		return nil
	})
}

func (d *cuDriver) MemcpyDtoD(dst, src DevicePtr, n int64) error {
	if n < 0 {
		return fmt.Errorf("gpu: copy %d bytes on device: negative size", n)
	}
	if n == 0 {
		return nil
	}
	return d.call("copy on device", func() error {
		if err := cu.MemcpyDtoDAsync(cu.DevicePtr(dst), cu.DevicePtr(src), n, d.stream); err != nil {
			return fmt.Errorf("gpu: copy %d bytes on device %#x -> %#x: %s", n, uint64(src), uint64(dst), cuErr(err))
		}
		return nil
	})
}

// jitLogBytes is the size of the JIT error log buffer.
const jitLogBytes = 32 << 10

// LoadModule JIT-compiles PTX for this device (cuModuleLoadDataEx) with an
// error log buffer; on failure the log is in the error.
func (d *cuDriver) LoadModule(ptx string) (module, error) {
	var m cu.Module
	err := d.call("load module", func() error {
		errLog := make([]byte, jitLogBytes)
		var err error
		m, err = cu.LoadDataEx(ptx, &cu.JITErrorLogBuffer{Buffer: errLog})
		if err == nil {
			return nil
		}
		log := errLog
		if i := bytes.IndexByte(log, 0); i >= 0 {
			log = log[:i]
		}
		msg := fmt.Sprintf("gpu: PTX JIT failed: %s", cuErr(err))
		if code, ok := cuCode(err); ok && code == 222 { // CUDA_ERROR_UNSUPPORTED_PTX_VERSION
			msg += " (the PTX ISA version is newer than this driver supports: update the driver)"
		}
		if s := string(bytes.TrimSpace(log)); s != "" {
			msg += "\nJIT log:\n" + s
		}
		return errors.New(msg)
	})
	if err != nil {
		return nil, err
	}
	return &cuModule{d: d, m: m}, nil
}

func (d *cuDriver) Launch(fn function, grid, block Dim3, sharedBytes int, args []uint64) error {
	f, ok := fn.(*cuFunction)
	if !ok || f.d != d {
		return fmt.Errorf("gpu: launch: function %T does not belong to CUDA device %d", fn, d.ordinal)
	}
	if grid.X < 1 || grid.Y < 1 || grid.Z < 1 || block.X < 1 || block.Y < 1 || block.Z < 1 || sharedBytes < 0 {
		return fmt.Errorf("gpu: launch %s: bad configuration grid=%v block=%v shared=%d", f.name, grid, block, sharedBytes)
	}
	err := d.call("launch", func() error {
		d.params = cuKernelParams(d.params, args)
		err := f.fn.Launch(grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedBytes, d.stream, d.params)
		clear(d.params) // keep no pointer into the caller's args
		if err != nil {
			return fmt.Errorf("gpu: launch %s grid=%v block=%v shared=%d: %s", f.name, grid, block, sharedBytes, cuErr(err))
		}
		return nil
	})
	runtime.KeepAlive(args)
	return err
}

func (d *cuDriver) Synchronize() error {
	return d.call("synchronize", func() error {
		if err := d.stream.Synchronize(); err != nil {
			return fmt.Errorf("gpu: synchronize: %s", cuErr(err))
		}
		return nil
	})
}

// onStream calls f on this goroutine's OS thread, locked, with the
// context current, giving it the driver's stream and a test of the
// stream's completion (cuStreamQuery: CUDA_SUCCESS is done,
// CUDA_ERROR_NOT_READY not yet, anything else an error).
func (d *cuDriver) onStream(f func(stream uintptr, done func() (bool, error)) error) error {
	return d.call("run on the stream", func() error {
		done := func() (bool, error) {
			switch err := d.stream.Query(); err {
			case nil:
				return true, nil
			case cu.NotReady:
				return false, nil
			default:
				return false, fmt.Errorf("gpu: query the stream: %s", cuErr(err))
			}
		}
		return f(uintptr(unsafe.Pointer(d.stream.C())), done)
	})
}

func (d *cuDriver) NewEvent() (event, error) {
	var ev cu.Event
	err := d.call("create event", func() error {
		var err error
		if ev, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
			return fmt.Errorf("gpu: create event: %s", cuErr(err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &cuEvent{d: d, ev: ev}, nil
}

// Close waits for the stream, destroys it and releases the primary
// context (the driver destroys it, and with it every allocation, module
// and event made on it, when no one else holds it). Closing twice is not
// an error.
func (d *cuDriver) Close() error {
	if d.closed {
		return nil
	}
	err := d.call("destroy stream", func() error {
		if err := d.stream.Synchronize(); err != nil {
			return fmt.Errorf("gpu: close device %d: wait for the stream: %s", d.ordinal, cuErr(err))
		}
		if err := d.stream.Destroy(); err != nil {
			return fmt.Errorf("gpu: close device %d: destroy the stream: %s", d.ordinal, cuErr(err))
		}
		return nil
	})
	d.closed = true
	if rerr := d.dev.ReleasePrimaryCtx(); rerr != nil {
		return errors.Join(err, fmt.Errorf("gpu: release the primary context of device %d: %s", d.ordinal, cuErr(rerr)))
	}
	return err
}

type cuModule struct {
	d *cuDriver
	m cu.Module
}

func (m *cuModule) Function(name string) (function, error) {
	var fn cu.Function
	err := m.d.call("find kernel", func() error {
		var err error
		if fn, err = m.m.Function(name); err != nil {
			return fmt.Errorf("gpu: kernel %q not in module: %s", name, cuErr(err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &cuFunction{d: m.d, name: name, fn: fn}, nil
}

func (m *cuModule) Unload() error {
	return m.d.call("unload module", func() error {
		if err := m.m.Unload(); err != nil {
			return fmt.Errorf("gpu: unload module: %s", cuErr(err))
		}
		return nil
	})
}

type cuFunction struct {
	d    *cuDriver
	name string
	fn   cu.Function
}

func (f *cuFunction) Name() string { return f.name }

type cuEvent struct {
	d  *cuDriver
	ev cu.Event
}

func (e *cuEvent) Record() error {
	return e.d.call("record event", func() error {
		if err := e.ev.Record(e.d.stream); err != nil {
			return fmt.Errorf("gpu: record event: %s", cuErr(err))
		}
		return nil
	})
}

func (e *cuEvent) ElapsedMs(start event) (float32, error) {
	s, ok := start.(*cuEvent)
	if !ok || s.d != e.d {
		return 0, fmt.Errorf("gpu: elapsed time: start event %T does not belong to CUDA device %d", start, e.d.ordinal)
	}
	var ms float64
	err := e.d.call("elapsed time", func() error {
		// Wait for this (the later) event, so a caller that did not
		// synchronise gets the time rather than CUDA_ERROR_NOT_READY.
		if err := e.ev.Synchronize(); err != nil {
			return fmt.Errorf("gpu: elapsed time: wait for event: %s", cuErr(err))
		}
		var err error
		if ms, err = s.ev.Elapsed(e.ev); err != nil {
			return fmt.Errorf("gpu: elapsed time: %s", cuErr(err))
		}
		return nil
	})
	return float32(ms), err
}

func (e *cuEvent) Destroy() error {
	return e.d.call("destroy event", func() error {
		if err := cu.DestroyEvent(&e.ev); err != nil {
			return fmt.Errorf("gpu: destroy event: %s", cuErr(err))
		}
		return nil
	})
}

// cuErr formats an error from cu with its CUDA result code, e.g.
// "OutOfMemory (CUDA error 2)"; cu's names alone miss codes newer than it.
func cuErr(err error) string {
	if code, ok := cuCode(err); ok {
		return fmt.Sprintf("%v (CUDA error %d)", err, code)
	}
	return err.Error()
}

// cuCode returns the CUresult of an error from cu (an unexported integer
// type in cu, hence reflection).
func cuCode(err error) (int64, bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Int && v.Type().PkgPath() == "gorgonia.org/cu" {
			return v.Int(), true
		}
	}
	return 0, false
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
