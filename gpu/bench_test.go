package gpu

import (
	"fmt"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
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
		g    geom.ConvGeom
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

// convSuite is the named shape suite of issue 5 (batch N is set per run):
// the default MNIST network's two convs and ResNet-50's 3×3 convs (stride
// 1, padding 1), two of its 1×1 convs, its 3×3 stride-2 conv and its 1×1
// stride-2 projection.
var convSuite = []struct {
	name string
	g    geom.ConvGeom
}{
	{"mnist-conv1", cg(0, 1, 28, 28, 8, 5, 5, 1, 1, 0, 0)},
	{"mnist-conv2", cg(0, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0)},
	{"r50-3x3-64-56", cg(0, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1)},
	{"r50-3x3-128-28", cg(0, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1)},
	{"r50-3x3-256-14", cg(0, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1)},
	{"r50-3x3-512-7", cg(0, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1)},
	{"r50-1x1-64to256-56", cg(0, 64, 56, 56, 256, 1, 1, 1, 1, 0, 0)},
	{"r50-1x1-256to64-56", cg(0, 256, 56, 56, 64, 1, 1, 1, 1, 0, 0)},
	{"r50-3x3s2-128-56", cg(0, 128, 56, 56, 128, 3, 3, 2, 2, 1, 1)},
	{"r50-1x1s2-256to512-56", cg(0, 256, 56, 56, 512, 1, 1, 2, 2, 0, 0)},
}

// BenchmarkConvSuite runs every convolution algorithm the device has
// (direct v1, igemm v2, igemm_tf32 v3) on the suite, for the three passes.
//
// On a GPU (-tags cuda): GFLOP/s from events over b.N back-to-back
// launches after a warm-up, MNIST shapes at batch 64 and 512, ResNet at 64.
//
// On the simulator the batch is scaled down to N = 1 (MNIST: N = 4) so
// that the suite finishes, and the figures are the simulator's efficiency
// proxies per pass (all launches of the pass, the split-K second pass
// included), not speeds:
//
//	B/FLOP       32-byte global sectors touched × 32 / FLOPs (traffic between
//	             the SM and L2 if nothing hit in L1)
//	sectors/req  global sectors per warp request (4 is ideal for 4-byte
//	             loads, 16 for 16-byte loads)
//	conf/req     extra shared-memory wavefronts (bank conflicts) per warp request
//	instr/FMA    thread instructions per multiply-add (FLOPs/2); an mma.sync
//	             m16n8k8 counts once per thread and does 1024 multiply-adds
//	             per warp, 32 per thread (m16n8k16: 2048, 64 per thread)
//
// The direct bwd-filter (one 256-thread block per weight) is skipped on
// the simulator where it would run more than 2²⁴ threads, and the whole
// simulated half is skipped on a machine with a GPU. For a stride > 1 the
// implicit-GEMM bwd-data runs the phase-decomposed kernel (the
// dispatcher's choice) and, as algo=…-unphased, the plain one; where the
// FP32 implicit GEMM runs 128×128 tiles (v6), algo=igemm-tile64 is the
// 128×64 tiles (v2/v4) on the same pass.
//
//	go test -run '^$' -bench ConvSuite -benchtime 1x ./gpu                  (simulator)
//	go test -tags cuda -run '^$' -bench 'ConvSuite/impl=gpu' ./gpu          (GPU)
func BenchmarkConvSuite(b *testing.B) {
	for _, impl := range []string{"sim", "gpu"} {
		b.Run("impl="+impl, func(b *testing.B) {
			if impl == "sim" {
				// The simulated suite takes about 15 minutes on 2 cores;
				// scripts/gpu-check.sh should spend its GPU time on the GPU.
				if g, err := Open(0); err == nil {
					g.Close()
					b.Skip("a GPU is present: the simulator's figures are taken on machines without one")
				}
			}
			d := benchDevice(b, impl)
			for _, s := range convSuite {
				batches := []int{64}
				switch {
				case impl == "sim" && s.name[:5] == "mnist":
					batches = []int{4}
				case impl == "sim":
					batches = []int{1}
				case s.name[:5] == "mnist":
					batches = []int{64, 512}
				}
				for _, n := range batches {
					g := s.g
					g.N = n
					x, w, bias, y := benchBuf(b, d, g.XLen()), benchBuf(b, d, g.WLen()), benchBuf(b, d, g.K), benchBuf(b, d, g.YLen())
					for _, a := range d.ConvAlgos() {
						for p := ConvPass(0); p < numConvPasses; p++ {
							if !a.HasPass(p) {
								continue // the BF16 algorithm: forward only
							}
							name := fmt.Sprintf("shape=%s/N=%d/pass=%v/algo=%v", s.name, n, p, a)
							benchConvCase(b, d, name, a, p, g, x, w, bias, y, -1)
							if a == ConvIGemmTF32 && p == ConvFwd {
								// v8, TF32 on the packed cp.async pipeline, beside v3.
								benchConvCase(b, d, name+"-pipe", a, p, g, x, w, bias, y, kConvFwdTF32Pipe)
							}
							if p == ConvBwdData && a != ConvDirect && (g.StrideH > 1 || g.StrideW > 1) {
								// The plain kernel beside the phase-decomposed one.
								benchConvCase(b, d, name+"-unphased", a, p, g, x, w, bias, y, convKernels[a][p])
							}
							if a == ConvIGemm && ((p == ConvBwdData && useWide(g.C)) || (p != ConvBwdData && useWide(g.K))) {
								// The 128×64 tiles beside the 128×128 ones.
								id := convKernels[a][p]
								if p == ConvBwdData && (g.StrideH > 1 || g.StrideW > 1) {
									id = kConvBwdDataStrided
								}
								benchConvCase(b, d, name+"-tile64", a, p, g, x, w, bias, y, id)
							}
						}
					}
					for _, buf := range []*Buffer{x, w, bias, y} {
						buf.Free()
					}
				}
			}
		})
	}
}

// benchConvCase benchmarks pass p of algorithm a on g with the kernel the
// dispatcher picks (id < 0) or kernel id.
func benchConvCase(b *testing.B, d *Device, name string, a ConvAlgo, p ConvPass, g geom.ConvGeom, x, w, bias, y *Buffer, id kernelID) {
	b.Run(name, func(b *testing.B) {
		if d.IsSim() && a == ConvDirect && p == ConvBwdFilter && g.WLen()*blockSize > 1<<24 {
			b.Skipf("direct bwd-filter would run %d simulated threads", g.WLen()*blockSize)
		}
		var run func() error
		switch {
		case p == ConvFwd && id >= 0:
			run = func() error { return d.runFwd(id, g, x, w, bias, y, false) }
		case p == ConvFwd:
			run = func() error { return d.runConv(a, p, g, x, w, bias, y, false) }
		case p == ConvBwdData && id >= 0:
			run = func() error { return d.runDgrad(id, g, y, w, x) }
		case p == ConvBwdData:
			run = func() error { return d.runConv(a, p, g, y, w, nil, x, false) }
		case id >= 0:
			run = func() error { return d.runWgrad(id, g, x, y, w) }
		default:
			run = func() error { return d.runConv(a, p, g, x, y, nil, w, false) }
		}
		benchConvPass(b, d, g.FLOPs(), a, run)
	})
}

// benchConvPass times run (GPU) or reports the simulator's efficiency
// proxies summed over every kernel the pass launches, and the analytic
// model's time on an H100 (estimateH100, model_test.go) as est-us-h100.
func benchConvPass(b *testing.B, d *Device, flops float64, a ConvAlgo, run func() error) {
	if !d.IsSim() {
		benchLaunch(b, d, flops, run)
		return
	}
	d.ResetKernelStats()
	b.ResetTimer()
	for range b.N {
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	t := KernelStats{SimStats: SimStats{Instructions: map[string]int64{}}}
	for _, s := range d.KernelStats() {
		for c, n := range s.Instructions {
			t.Instructions[c] += n
		}
		t.ThreadInstructions += s.ThreadInstructions
		t.GlobalSectors += s.GlobalSectors
		t.GlobalRequests += s.GlobalRequests
		t.SharedRequests += s.SharedRequests
		t.SharedBankConflicts += s.SharedBankConflicts
	}
	ops := float64(b.N)
	b.ReportMetric(float64(t.GlobalSectors)*32/(flops*ops), "B/FLOP")
	if t.GlobalRequests > 0 {
		b.ReportMetric(float64(t.GlobalSectors)/float64(t.GlobalRequests), "sectors/req")
	}
	if t.SharedRequests > 0 {
		b.ReportMetric(float64(t.SharedBankConflicts)/float64(t.SharedRequests), "conf/req")
	} else {
		b.ReportMetric(0, "conf/req")
	}
	b.ReportMetric(float64(t.ThreadInstructions)/(flops/2*ops), "instr/FMA")
	prec := FP32
	for _, v := range variantsOf(a, ConvFwd) {
		prec = v.precision
	}
	est := estimateH100(flops*ops, t.ThreadInstructions, t.GlobalSectors, t.Instructions["mma"] > 0, prec)
	b.ReportMetric(est/ops*1e6, "est-us-h100")
	// The same by class (fp32, int, mov, mem.shared, …): where the
	// instructions that are not FMAs go.
	for c, n := range t.Instructions {
		if n > 0 {
			b.ReportMetric(float64(n)/(flops/2*ops), c+"-instr/FMA")
		}
	}
}
