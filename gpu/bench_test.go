package gpu

import (
	"fmt"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
)

// benchDevice opens impl ("sim" or "gpu") for a benchmark, skipping with
// the reason when it cannot.
func benchDevice(b *testing.B, impl string) *Device {
	b.Helper()
	var d *Device
	var err error
	if impl == "sim" {
		d, err = OpenSim(SimOptions{Counters: true})
	} else {
		d, err = Open(0)
	}
	if err != nil {
		b.Skipf("no %s device: %v", impl, err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// BenchmarkConv2D times the three conv passes on the default network's two
// conv layers: GFLOP/s (2·N·K·P·Q·C·R·S per pass) on a GPU, timed with
// events over b.N back-to-back launches after a warm-up; on the simulator,
// simulated-kernel throughput and the counters of one launch (thread
// instructions, 32-byte sectors per warp request, shared bank conflicts).
// The simulator uses batch 4, the GPU batch 64.
//
//	go test -run '^$' -bench Conv2D ./gpu                  (simulator)
//	go test -tags cuda -run '^$' -bench Conv2D ./gpu       (GPU too)
func BenchmarkConv2D(b *testing.B) {
	shapes := []struct {
		name string
		g    cpuref.ConvGeom
	}{
		{"mnist-conv1", cg(0, 1, 28, 28, 8, 5, 5, 1, 1, 0, 0)},
		{"mnist-conv2", cg(0, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0)},
	}
	for _, impl := range []string{"sim", "gpu"} {
		b.Run("impl="+impl, func(b *testing.B) {
			d := benchDevice(b, impl)
			for _, s := range shapes {
				g := s.g
				g.N = 64
				if impl == "sim" {
					g.N = 4
				}
				x, w, bias, y := benchBuf(b, d, g.XLen()), benchBuf(b, d, g.WLen()), benchBuf(b, d, g.K), benchBuf(b, d, g.YLen())
				passes := []struct {
					name string
					run  func() error
				}{
					{"fwd", func() error { return d.Conv2DForward(g, x, w, bias, y) }},
					{"bwd_data", func() error { return d.Conv2DBackwardData(g, y, w, x) }},
					{"bwd_filter", func() error { return d.Conv2DBackwardFilter(g, x, y, w) }},
				}
				for _, p := range passes {
					b.Run(fmt.Sprintf("pass=%s/shape=%s/N=%d", p.name, s.name, g.N), func(b *testing.B) {
						benchLaunch(b, d, g.FLOPs(), p.run)
					})
				}
			}
		})
	}
}

func benchBuf(b *testing.B, d *Device, n int) *Buffer {
	b.Helper()
	buf, err := d.NewFloat32(n)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Fill(buf, 0.5); err != nil {
		b.Fatal(err)
	}
	return buf
}

// benchLaunch runs launch b.N times and reports GFLOP/s.
func benchLaunch(b *testing.B, d *Device, flops float64, launch func() error) {
	if err := launch(); err != nil { // warm-up (and module JIT on a GPU)
		b.Fatal(err)
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
	if d.IsSim() {
		b.ResetTimer()
		for range b.N {
			if err := launch(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		// Counters of the last launch (every launch is the same).
		if s, ok := d.LastStats(); ok {
			b.ReportMetric(float64(s.ThreadInstructions), "instr/op")
			if s.GlobalRequests > 0 {
				b.ReportMetric(float64(s.GlobalSectors)/float64(s.GlobalRequests), "sectors/req")
			}
			b.ReportMetric(float64(s.SharedBankConflicts), "bankconf/op")
		}
		return
	}
	start, err := d.NewEvent()
	if err != nil {
		b.Fatal(err)
	}
	stop, err := d.NewEvent()
	if err != nil {
		b.Fatal(err)
	}
	defer start.Destroy()
	defer stop.Destroy()
	b.ResetTimer()
	if err := start.Record(); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		if err := launch(); err != nil {
			b.Fatal(err)
		}
	}
	if err := stop.Record(); err != nil {
		b.Fatal(err)
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	ms, err := stop.ElapsedMs(start)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(flops*float64(b.N)/(float64(ms)/1e3)/1e9, "GFLOP/s")
	b.ReportMetric(float64(ms)*1e6/float64(b.N), "gpu-ns/op")
}
