package gpu

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// openSim opens a simulator with both shared-memory checks on, closed at
// the end of the test.
func openSim(t *testing.T) *Device {
	t.Helper()
	d, err := OpenSim(SimOptions{CheckRaces: true, CheckUninitShared: true, Counters: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d
}

// TestConformanceSim runs every kernel on the PTX simulator against cpuref,
// its heavy sweeps spread over one simulated device per core.
func TestConformanceSim(t *testing.T) {
	t.Parallel()
	devs := []*Device{openSim(t)}
	for len(devs) < runtime.GOMAXPROCS(0) {
		devs = append(devs, openSim(t))
	}
	runConformance(t, devs...)
}

// TestSimLaunchError checks that a fault inside a kernel comes back
// wrapped with the kernel's name and shape: a gather index past the end of
// src (which the launcher cannot see, it is on the device) makes the
// simulator stop the launch on an out-of-bounds read.
func TestSimLaunchError(t *testing.T) {
	d := openSim(t)
	src, err := d.NewFloat32(8)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := d.NewInt32(1)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := d.NewFloat32(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.UploadInt32([]int32{1 << 20}); err != nil {
		t.Fatal(err)
	}
	err = d.GatherRows(1, src, idx, dst)
	if err == nil {
		t.Fatalf("gather with index 2²⁰ from 8 rows: no error")
	}
	const want = "gpu: launch gather_rows_f32_v1 (rows=1,cols=1): "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

// TestSimCounters checks that the counters of the last launch are exposed.
func TestSimCounters(t *testing.T) {
	d := openSim(t)
	if _, ok := d.LastStats(); ok {
		// NewFloat32 zeroes with a launch; nothing launched yet at Open.
		t.Errorf("LastStats before any launch: ok = true")
	}
	x, err := d.NewFloat32(1000)
	if err != nil {
		t.Fatal(err)
	}
	y, err := d.NewFloat32(1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ReLUForward(x, y); err != nil {
		t.Fatal(err)
	}
	s, ok := d.LastStats()
	if !ok {
		t.Fatalf("LastStats after a launch: ok = false")
	}
	// relu_fwd_v1 over 1000 elements: 4 blocks of 256 threads, each live
	// thread loads and stores 4 bytes.
	if s.Threads != 1024 || s.Blocks != 4 {
		t.Errorf("LastStats: %d blocks, %d threads, want 4, 1024", s.Blocks, s.Threads)
	}
	if s.GlobalLoadBytes != 4000 || s.GlobalStoreBytes != 4000 {
		t.Errorf("LastStats: %d bytes loaded, %d stored, want 4000, 4000", s.GlobalLoadBytes, s.GlobalStoreBytes)
	}
}

// TestSimOutOfMemory checks the out-of-memory message: how much was asked
// and how much is free.
func TestSimOutOfMemory(t *testing.T) {
	d, err := OpenSim(SimOptions{MemoryBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.NewFloat32(1 << 20)
	if err == nil {
		t.Fatalf("allocating 4 MiB on a 1 MiB device: no error")
	}
	for _, s := range []string{"out of device memory", "asked 4194304 bytes", "1048576 of 1048576 free"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if errors.Is(err, ErrClosed) {
		t.Errorf("error %q wraps ErrClosed", err)
	}
}

// TestSimKernelStats checks the per-kernel counters summed over launches,
// their reset, and that Info reports the memory in use.
func TestSimKernelStats(t *testing.T) {
	d := openSim(t)
	free0 := d.Info().FreeMemoryBytes
	x, err := d.NewFloat32(1000)
	if err != nil {
		t.Fatal(err)
	}
	if got := free0 - d.Info().FreeMemoryBytes; got != 4096 {
		t.Errorf("free memory fell by %d bytes after a 1000-element buffer, want 4096 (rounded to 256)", got)
	}
	d.ResetKernelStats()
	l0 := d.Launches()
	for range 2 {
		if err := d.ReLUForward(x, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Fill(x, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.ReLUForward(x, nil); err == nil {
		t.Fatal("ReLUForward into a nil buffer: no error")
	}
	if got := d.Launches() - l0; got != 3 {
		t.Errorf("Launches rose by %d over 3 launches and a refused one, want 3", got)
	}
	ks := d.KernelStats()
	relu, fill := ks["relu_fwd_v1"], ks["fill_f32_v1"]
	if len(ks) != 2 || relu.Launches != 2 || fill.Launches != 1 {
		t.Fatalf("KernelStats = %v, want relu_fwd_v1 launched twice and fill_f32_v1 once", ks)
	}
	if relu.Threads != 2*1024 || relu.GlobalStoreBytes != 2*4000 || relu.ThreadInstructions <= 0 {
		t.Errorf("relu_fwd_v1 totals: %d threads, %d bytes stored, %d instructions; want 2048, 8000, > 0",
			relu.Threads, relu.GlobalStoreBytes, relu.ThreadInstructions)
	}
	d.ResetKernelStats()
	if ks := d.KernelStats(); len(ks) != 0 {
		t.Errorf("KernelStats after reset = %v, want empty", ks)
	}
}

// TestUint8BufferSim checks uint8 buffers: n bytes of device memory (the
// allocator's 256-byte rounding, a quarter of a float32 buffer's), round
// trips, views at byte offsets and device copies; typed copies refuse them.
func TestUint8BufferSim(t *testing.T) {
	d := openSim(t)
	before := d.MemStats().BytesInUse
	b, err := d.NewUint8(1000)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.MemStats().BytesInUse - before; got != 1024 {
		t.Errorf("a uint8 buffer of 1000 elements holds %d bytes, want 1024", got)
	}
	if b.DType() != Uint8 || b.Len() != 1000 {
		t.Errorf("buffer %v, want uint8[1000]", b)
	}
	src := make([]uint8, 1000)
	for i := range src {
		src[i] = uint8(i * 7)
	}
	if err := b.UploadUint8(src); err != nil {
		t.Fatal(err)
	}
	v, err := b.Slice(3, 5)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]uint8, 5)
	if err := v.DownloadUint8(got); err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		if g != src[3+i] {
			t.Errorf("view [3:8] element %d = %d, want %d", i, g, src[3+i])
		}
	}
	c, err := d.NewUint8(1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CopyFrom(b); err != nil {
		t.Fatal(err)
	}
	all := make([]uint8, 1000)
	if err := c.DownloadUint8(all); err != nil {
		t.Fatal(err)
	}
	for i := range all {
		if all[i] != src[i] {
			t.Fatalf("copy element %d = %d, want %d", i, all[i], src[i])
		}
	}
	if err := b.Upload(make([]float32, 1000)); !errors.Is(err, geom.ErrGeometry) {
		t.Errorf("float32 upload into a uint8 buffer: error %v, want one wrapping geom.ErrGeometry", err)
	}
	for _, x := range []*Buffer{b, c} {
		if err := x.Free(); err != nil {
			t.Fatal(err)
		}
	}
}
