//go:build cuda

package gpu

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
)

// onNewThread runs f on a goroutine locked to a fresh OS thread that no CUDA
// context was ever made current on (the goroutine exits locked, so Go ends
// the thread), as happens when the runtime moves a goroutine.
func onNewThread(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer close(done)
		f()
	}()
	<-done
}

// allocOn allocates n bytes of device memory through call.
func allocOn(call func(func()), drv driver, n int64) (DevicePtr, error) {
	var p DevicePtr
	var err error
	call(func() { p, err = drv.MemAlloc(n) })
	return p, err
}

// TestCUDADriverMock runs the cu adapter against gpu/testdata/mocklibcuda.c,
// a test-only libcuda.so.1 that models one device with host memory and
// checks that a live context is current on the calling thread for every
// call, and that every launch, copy and event record goes to a created
// non-blocking stream (the legacy stream and the synchronous copies fail
// there). scripts/ci-cuda.sh builds the mock and runs this test with
// CONVTRAIN_MOCK_LIBCUDA=1; elsewhere (a real GPU) it skips: the
// conformance suite covers the adapter there.
func TestCUDADriverMock(t *testing.T) {
	if os.Getenv("CONVTRAIN_MOCK_LIBCUDA") != "1" {
		t.Skip("needs the mock libcuda of gpu/testdata (scripts/ci-cuda.sh sets CONVTRAIN_MOCK_LIBCUDA=1)")
	}
	const mib = 1 << 20

	if _, err := openCUDA(1); err == nil || !strings.Contains(err.Error(), "gpu: no CUDA device: ordinal 1 asked, the driver reports 1 device(s)") {
		t.Errorf("openCUDA(1) error = %v, want gpu: no CUDA device: ordinal 1 asked, the driver reports 1 device(s) ...", err)
	}
	var drv driver
	var err error
	onNewThread(func() { drv, err = openCUDA(0) })
	if err != nil {
		t.Fatalf("openCUDA(0): %v", err)
	}

	// Every call below runs on a thread of its own: the adapter must make
	// its context current wherever it runs (the mock fails otherwise).
	call := func(f func()) { onNewThread(f) }

	var info DeviceInfo
	call(func() { info, err = drv.Info() })
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	want := DeviceInfo{Name: "convtrain mock GPU", ComputeMajor: 8, ComputeMinor: 6, SMs: 84,
		TotalMemoryBytes: 1024 * mib, FreeMemoryBytes: 1024 * mib, MaxThreadsPerBlk: 1024, MaxSharedPerBlock: 48 << 10}
	if info != want {
		t.Errorf("Info() = %+v, want %+v", info, want)
	}

	// Memory: allocate, copy up, device to device, copy down.
	const n = 4 * mib
	var a, b DevicePtr
	call(func() { a, err = drv.MemAlloc(n) })
	if err != nil {
		t.Fatalf("MemAlloc(%d): %v", n, err)
	}
	call(func() { b, err = drv.MemAlloc(n) })
	if err != nil {
		t.Fatalf("MemAlloc(%d): %v", n, err)
	}
	src := make([]byte, n)
	for i := range src {
		src[i] = byte(i*7 + 3)
	}
	got := make([]byte, n)
	call(func() {
		if err = drv.MemcpyHtoD(a, src); err == nil {
			if err = drv.MemcpyDtoD(b, a, n); err == nil {
				err = drv.MemcpyDtoH(got, b)
			}
		}
	})
	if err != nil {
		t.Fatalf("copies: %v", err)
	}
	for i := range got {
		if got[i] != src[i] {
			t.Fatalf("round trip byte %d = %d, want %d", i, got[i], src[i])
		}
	}
	// Host memory inside an allocation that holds Go pointers (an array
	// field beside a pointer), which cgo's pointer check refuses to see
	// passed to C; and copies longer than the staging buffer, in chunks.
	holder := &struct {
		next *int
		buf  [3*stageBytes/2 + 5]byte
	}{next: new(int)}
	call(func() {
		if err = drv.MemcpyDtoH(holder.buf[:n], b); err == nil {
			err = drv.MemcpyHtoD(a, holder.buf[:n])
		}
	})
	if err != nil || !bytes.Equal(holder.buf[:n], src) {
		t.Fatalf("copies through memory beside a Go pointer: %v (equal: %v)", err, bytes.Equal(holder.buf[:n], src))
	}
	big, err := allocOn(call, drv, int64(len(holder.buf)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range holder.buf {
		holder.buf[i] = byte(i*13 + 1)
	}
	back := make([]byte, len(holder.buf))
	call(func() {
		if err = drv.MemcpyHtoD(big, holder.buf[:]); err == nil {
			err = drv.MemcpyDtoH(back, big)
		}
	})
	if err != nil || !bytes.Equal(back, holder.buf[:]) {
		t.Fatalf("a %d-byte round trip in chunks of %d: %v (equal: %v)", len(back), stageBytes, err, bytes.Equal(back, holder.buf[:]))
	}
	call(func() { err = drv.MemFree(big) })
	if err != nil {
		t.Fatal(err)
	}

	// onStream (Device.OnStream, for NCCL): the driver's created stream
	// and its completion test, called with the context current on a
	// thread of its own (the mock's cuStreamQuery checks both).
	var stream uintptr
	var done bool
	call(func() {
		err = drv.(*cuDriver).onStream(func(s uintptr, query func() (bool, error)) error {
			stream = s
			var qerr error
			done, qerr = query()
			return qerr
		})
	})
	if err != nil || stream == 0 || !done {
		t.Errorf("onStream: stream %#x, done %v, error %v; want a created stream, done, no error", stream, done, err)
	}

	// Out of memory: the error says how much was asked and is free.
	call(func() { _, err = drv.MemAlloc(2048 * mib) })
	if err == nil || !strings.Contains(err.Error(), "gpu: out of device memory: asked 2048.0 MiB, 1016.0 MiB free of 1024.0 MiB") {
		t.Errorf("MemAlloc(2 GiB) error = %v, want gpu: out of device memory: asked 2048.0 MiB, 1016.0 MiB free of 1024.0 MiB", err)
	}
	call(func() { _, err = drv.MemAlloc(0) })
	if err == nil {
		t.Errorf("MemAlloc(0): no error")
	}

	// Module load: a JIT failure carries the log.
	call(func() { _, err = drv.LoadModule(".version 7.0\n.target sm_70\nmock_bad_ptx;\n") })
	if err == nil || !strings.Contains(err.Error(), "gpu: PTX JIT failed: InvalidPtx (CUDA error 218)") ||
		!strings.Contains(err.Error(), "JIT log:\nptxas application ptx input, line 1; error   : mock_bad_ptx is not a PTX instruction") {
		t.Errorf("LoadModule(bad PTX) error = %v, want the CUDA error and the JIT log", err)
	}
	var mod module
	call(func() { mod, err = drv.LoadModule(".version 7.0\n.target sm_70\n") })
	if err != nil {
		t.Fatalf("LoadModule: %v", err)
	}
	call(func() { _, err = mod.Function("no_such_kernel") })
	if err == nil || !strings.Contains(err.Error(), `gpu: kernel "no_such_kernel" not in module`) {
		t.Errorf("Function(no_such_kernel) error = %v, want kernel not in module", err)
	}
	var echo, fill function
	call(func() {
		if echo, err = mod.Function("mock_echo"); err == nil {
			fill, err = mod.Function("mock_fill")
		}
	})
	if err != nil {
		t.Fatalf("Function: %v", err)
	}
	if echo.Name() != "mock_echo" {
		t.Errorf("Name() = %q, want mock_echo", echo.Name())
	}

	// Launch: every argument arrives as the 8 bytes the launcher packed.
	neg := int32(-7)
	vals := []uint64{uint64(int64(neg)), uint64(math.Float32bits(2.5)), uint64(b), math.MaxUint64, 0}
	args := append([]uint64{uint64(a), uint64(len(vals))}, vals...)
	grid, block := Dim3{3, 2, 1}, Dim3{128, 1, 1}
	call(func() {
		if err = drv.Launch(echo, grid, block, 1024, args); err == nil {
			if err = drv.Synchronize(); err == nil {
				err = drv.MemcpyDtoH(got[:8*(8+len(vals))], a)
			}
		}
	})
	if err != nil {
		t.Fatalf("launch mock_echo: %v", err)
	}
	wantEcho := append([]uint64{3, 2, 1, 128, 1, 1, 1024, uint64(len(vals))}, vals...)
	for i, w := range wantEcho {
		if g := binary.LittleEndian.Uint64(got[8*i:]); g != w {
			t.Errorf("mock_echo word %d = %#x, want %#x", i, g, w)
		}
	}

	// A kernel reading 4-byte .s32 and .f32 parameters from 8-byte values.
	const nf = 5
	poison := make([]byte, 4*(nf+1))
	for i := 0; i < nf+1; i++ {
		binary.LittleEndian.PutUint32(poison[4*i:], math.Float32bits(float32(math.NaN())))
	}
	call(func() {
		if err = drv.MemcpyHtoD(b, poison); err == nil {
			if err = drv.Launch(fill, Dim3{1, 1, 1}, Dim3{32, 1, 1}, 0,
				[]uint64{uint64(b), uint64(int64(int32(nf))), uint64(math.Float32bits(-1.25))}); err == nil {
				err = drv.MemcpyDtoH(got[:len(poison)], b)
			}
		}
	})
	if err != nil {
		t.Fatalf("launch mock_fill: %v", err)
	}
	for i := 0; i < nf+1; i++ {
		g := math.Float32frombits(binary.LittleEndian.Uint32(got[4*i:]))
		if i < nf && g != -1.25 {
			t.Errorf("mock_fill out[%d] = %g, want -1.25", i, g)
		}
		if i == nf && !math.IsNaN(float64(g)) {
			t.Errorf("mock_fill out[%d] = %g, want NaN (past n: untouched)", i, g)
		}
	}

	// A graph: a launch and a device-to-device copy recorded (not run)
	// from different threads, host copies and synchronisation refused
	// while recording, then the graph replayed twice.
	call(func() {
		if err = drv.MemcpyHtoD(b, make([]byte, 4*(nf+1))); err == nil {
			err = drv.BeginCapture()
		}
	})
	if err != nil {
		t.Fatalf("begin capture: %v", err)
	}
	call(func() {
		err = drv.Launch(fill, Dim3{1, 1, 1}, Dim3{32, 1, 1}, 0,
			[]uint64{uint64(b), uint64(int64(int32(nf))), uint64(math.Float32bits(3.5))})
	})
	if err != nil {
		t.Fatalf("launch mock_fill while capturing: %v", err)
	}
	call(func() { err = drv.MemcpyDtoD(b+4*nf, b, 4) })
	if err != nil {
		t.Fatalf("copy on device while capturing: %v", err)
	}
	for name, f := range map[string]func() error{
		"MemcpyHtoD":  func() error { return drv.MemcpyHtoD(b, got[:4]) },
		"MemcpyDtoH":  func() error { return drv.MemcpyDtoH(got[:4], b) },
		"Synchronize": drv.Synchronize,
	} {
		call(func() { err = f() })
		if err == nil || !strings.Contains(err.Error(), "CUDA error 900") {
			t.Errorf("%s while capturing: error = %v, want CUDA error 900 (capture unsupported)", name, err)
		}
	}
	var gr graph
	call(func() { gr, err = drv.EndCapture() })
	if err != nil {
		t.Fatalf("end capture: %v", err)
	}
	call(func() { err = drv.MemcpyDtoH(got[:4*(nf+1)], b) })
	if err != nil {
		t.Fatalf("download after capture: %v", err)
	}
	for i := 0; i < nf+1; i++ {
		if g := math.Float32frombits(binary.LittleEndian.Uint32(got[4*i:])); g != 0 {
			t.Errorf("after capture, before launch: out[%d] = %g, want 0 (recorded, not run)", i, g)
		}
	}
	for rep := range 2 {
		call(func() {
			if err = drv.MemcpyHtoD(b, make([]byte, 4*(nf+1))); err == nil {
				if err = gr.Launch(); err == nil {
					err = drv.MemcpyDtoH(got[:4*(nf+1)], b)
				}
			}
		})
		if err != nil {
			t.Fatalf("graph launch %d: %v", rep+1, err)
		}
		for i := 0; i < nf+1; i++ {
			if g := math.Float32frombits(binary.LittleEndian.Uint32(got[4*i:])); g != 3.5 {
				t.Errorf("graph launch %d: out[%d] = %g, want 3.5 (fill of %d, then the copy of out[0] to out[%d])", rep+1, i, g, nf, nf)
			}
		}
	}
	call(func() { err = gr.Destroy() })
	if err != nil {
		t.Errorf("destroy graph: %v", err)
	}

	call(func() { err = drv.Launch(echo, Dim3{0, 1, 1}, block, 0, args) })
	if err == nil || !strings.Contains(err.Error(), "gpu: launch mock_echo: bad configuration") {
		t.Errorf("Launch(grid 0) error = %v, want bad configuration", err)
	}

	// Events.
	var e1, e2 event
	var ms float32
	call(func() {
		if e1, err = drv.NewEvent(); err == nil {
			if e2, err = drv.NewEvent(); err == nil {
				if err = e1.Record(); err == nil {
					if err = e2.Record(); err == nil {
						ms, err = e2.ElapsedMs(e1)
					}
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	if ms != 0.5 {
		t.Errorf("ElapsedMs = %g, want 0.5 (the mock's 0.5 ms per record)", ms)
	}

	call(func() {
		for _, f := range []func() error{e1.Destroy, e2.Destroy, func() error { return drv.MemFree(a) },
			func() error { return drv.MemFree(b) }, mod.Unload} {
			if err = f(); err != nil {
				return
			}
		}
		info, err = drv.Info()
	})
	if err != nil {
		t.Fatalf("release: %v", err)
	}
	if info.FreeMemoryBytes != 1024*mib {
		t.Errorf("free memory after MemFree = %d, want %d", info.FreeMemoryBytes, 1024*mib)
	}

	// A second driver on the same device shares the primary context (the
	// mock refuses a stream of another context): memory allocated by one
	// is used by the other, and closing one leaves the other working.
	var drv2 driver
	onNewThread(func() { drv2, err = openCUDA(0) })
	if err != nil {
		t.Fatalf("second openCUDA(0): %v", err)
	}
	var shared DevicePtr
	call(func() {
		if shared, err = drv.MemAlloc(16); err == nil {
			if err = drv2.MemcpyHtoD(shared, src[:16]); err == nil {
				err = drv.MemcpyDtoH(got[:16], shared)
			}
		}
	})
	if err != nil || !bytes.Equal(got[:16], src[:16]) {
		t.Fatalf("memory shared by two drivers of one device: %v (equal: %v)", err, bytes.Equal(got[:16], src[:16]))
	}
	if err := drv2.Close(); err != nil {
		t.Fatalf("Close of the second driver: %v", err)
	}
	call(func() {
		if err = drv.MemcpyDtoH(got[:16], shared); err == nil {
			err = drv.MemFree(shared)
		}
	})
	if err != nil {
		t.Fatalf("the first driver after the second closed: %v", err)
	}

	if err := drv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := drv.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if _, err := drv.MemAlloc(16); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("MemAlloc after Close error = %v, want closed", err)
	}
}
