package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

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
// conv layers: GFLOP/s (2·N·K·P·Q·C·R·S per pass) on a GPU, measured as
// benchGPU says (random data rotated beyond L2, warm-up, events, median);
// on the simulator, simulated-kernel throughput and the counters of one
// launch (thread instructions, 32-byte sectors per warp request, shared
// bank conflicts). The simulator uses batch 4, the GPU batch 64.
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
				c := newConvBufs(b, d, g)
				passes := []struct {
					name string
					run  func(i int) error
				}{
					{"fwd", func(i int) error { x, y := c.at(i); return d.Conv2DForward(g, x, c.w, c.bias, y) }},
					{"bwd_data", func(i int) error { dx, dy := c.at(i); return d.Conv2DBackwardData(g, dy, c.w, dx) }},
					{"bwd_filter", func(i int) error { x, dy := c.at(i); return d.Conv2DBackwardFilter(g, x, dy, c.w) }},
				}
				for _, p := range passes {
					b.Run(fmt.Sprintf("pass=%s/shape=%s/N=%d", p.name, s.name, g.N), func(b *testing.B) {
						benchLaunch(b, d, g.FLOPs(), p.run)
					})
				}
				c.free()
			}
		})
	}
}

// benchRotateBytes is how much activation data a GPU conv benchmark
// rotates through: its copies of x and y together exceed it, more than
// twice the L2 of an H100 or H200 (50 MB), so that no launch finds its
// operands in L2 from the launches before it. scripts/torch-gpu-bench.py
// rotates cuDNN's inputs through the same amount.
const benchRotateBytes = 128 << 20

// convBufs are the buffers of a conv benchmark on geometry g: the weights
// and bias, and copies of x (also dx) and y (also dy), all random in
// [−1, 1), as many copies as benchRotateBytes asks for on a GPU and one
// on the simulator.
type convBufs struct {
	w, bias    *Buffer
	xs, ys     []*Buffer // views of xAll and yAll
	xAll, yAll *Buffer
}

func newConvBufs(b *testing.B, d *Device, g geom.ConvGeom) *convBufs {
	b.Helper()
	copies := 1
	if !d.IsSim() {
		copies = max(1, ceilDiv(benchRotateBytes, 4*(g.XLen()+g.YLen())))
	}
	rng := newRand("bench/" + g.String())
	c := &convBufs{w: randomBuf(b, d, g.WLen(), rng), bias: randomBuf(b, d, g.K, rng)}
	c.xAll = randomBuf(b, d, copies*g.XLen(), rng)
	c.yAll = randomBuf(b, d, copies*g.YLen(), rng)
	for i := range copies {
		x, err := c.xAll.Slice(i*g.XLen(), g.XLen())
		if err != nil {
			b.Fatal(err)
		}
		y, err := c.yAll.Slice(i*g.YLen(), g.YLen())
		if err != nil {
			b.Fatal(err)
		}
		c.xs, c.ys = append(c.xs, x), append(c.ys, y)
	}
	return c
}

// at returns the i-th launch's copy of x (or dx) and y (or dy).
func (c *convBufs) at(i int) (x, y *Buffer) {
	return c.xs[i%len(c.xs)], c.ys[i%len(c.ys)]
}

// free frees the buffers and empties the device's cache of freed memory,
// so that a suite of shapes needs the memory of its largest shape only.
func (c *convBufs) free() {
	for _, buf := range []*Buffer{c.w, c.bias, c.xAll, c.yAll} {
		buf.Free()
	}
	c.w.Device().ReleaseCached()
}

// randomBuf returns a buffer of n values uniform in [−1, 1): a random
// slab of at most 2²² values uploaded over it piece by piece.
func randomBuf(b *testing.B, d *Device, n int, rng *rand.Rand) *Buffer {
	b.Helper()
	buf, err := d.NewFloat32(n)
	if err != nil {
		b.Fatal(err)
	}
	slab := uniform(rng, min(n, 1<<22))
	for off := 0; off < n; off += len(slab) {
		m := min(len(slab), n-off)
		v, err := buf.Slice(off, m)
		if err == nil {
			err = v.Upload(slab[:m])
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return buf
}

// benchLaunch runs launch(i) b.N times, i counting the launches (so that
// the caller rotates its buffers), and reports GFLOP/s: benchGPU on a GPU;
// on the simulator the wall-clock throughput and the counters of the last
// launch.
func benchLaunch(b *testing.B, d *Device, flops float64, launch func(i int) error) {
	if !d.IsSim() {
		benchGPU(b, d, flops, launch)
		return
	}
	if err := launch(0); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := launch(i); err != nil {
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
}

// Measurement on a GPU (benchGPU), the same as scripts/torch-gpu-bench.py's
// for cuDNN:
const (
	benchWarmup  = 10      // untimed launches first (module load, clocks, caches)
	benchChunk   = 256     // launches queued between synchronisations
	benchScratch = 1 << 24 // floats of the blocker's buffer (64 MiB)
)

// benchGPU times launch(i) on a GPU, b.N times (use -benchtime Nx for a
// fixed count), and reports the median launch: gpu-ns/op (the median
// time between the events around one launch), GFLOP/s at that median, and
// host-µs/launch (the host's time to queue one launch and its event).
//
// After benchWarmup untimed launches, the launches are queued in chunks of
// at most benchChunk, an event recorded after each, so launch i's time is
// the interval between the event before it and the one after it, with no
// synchronisation in between. In front of each chunk the GPU is kept busy
// by fills of a 64 MiB scratch buffer, enough of them (from the host's
// measured queueing time and the fill's measured time) to outlast the
// queueing of the chunk: the GPU then runs the chunk's launches back to
// back, and an interval measures the kernel, not the host's launch cost.
func benchGPU(b *testing.B, d *Device, flops float64, launch func(i int) error) {
	ev := make([]*Event, benchChunk+1)
	for i := range ev {
		e, err := d.NewEvent()
		if err != nil {
			b.Fatal(err)
		}
		defer e.Destroy()
		ev[i] = e
	}
	scratch, err := d.NewFloat32(benchScratch)
	if err != nil {
		b.Fatal(err)
	}
	defer scratch.Free()
	check := func(err error) {
		if err != nil {
			b.Helper()
			b.Fatal(err)
		}
	}
	i := 0
	// queue queues n launches, each followed by an event (ev[0] first).
	queue := func(n int) {
		check(ev[0].Record())
		for k := range n {
			check(launch(i))
			i++
			check(ev[k+1].Record())
		}
	}
	// Warm-up, then the host's queueing time per launch.
	queue(benchWarmup)
	check(d.Synchronize())
	t0 := time.Now()
	queue(benchWarmup)
	hostMs := float64(time.Since(t0).Nanoseconds()) / 1e6 / benchWarmup
	check(d.Synchronize())
	// One fill's time.
	check(ev[0].Record())
	for range 4 {
		check(d.Fill(scratch, 0))
	}
	check(ev[1].Record())
	check(d.Synchronize())
	fill4, err := ev[1].ElapsedMs(ev[0])
	check(err)
	fillMs := max(float64(fill4)/4, 1e-3)

	times := make([]float64, 0, b.N)
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchChunk, b.N-done)
		fills := min(4096, max(1, int(math.Ceil(1.5*float64(n)*hostMs/fillMs))))
		for range fills {
			check(d.Fill(scratch, 0))
		}
		queue(n)
		check(d.Synchronize())
		for k := range n {
			ms, err := ev[k+1].ElapsedMs(ev[k])
			check(err)
			times = append(times, float64(ms))
		}
		done += n
	}
	b.StopTimer()
	slices.Sort(times)
	med := times[len(times)/2]
	if len(times)%2 == 0 {
		med = (times[len(times)/2-1] + med) / 2
	}
	b.ReportMetric(med*1e6, "gpu-ns/op")
	b.ReportMetric(flops/(med/1e3)/1e9, "GFLOP/s")
	b.ReportMetric(hostMs*1e3, "host-µs/launch")
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
// (direct v1, igemm v2/v4/v6/v11/v12/v13, igemm_tf32 v3/v5/v8/v9/v10, igemm_bf16
// v7/v9/v10) on the
// suite, for the three passes, with the kernels of the conv variant table
// (variants.go): as algo=A the kernel the dispatcher picks for the shape,
// and as algo=A-vN_… (the variant's name without its conv2d_<pass>_
// prefix) every other variant of the pass whose tile is no wider and whose
// stride handling is no more specialised than the picked one's
// (benchAlternatives): the 128×64 tiles beside the 128×128 ones, the plain
// bwd-data beside the phase-decomposed one on a strided shape, the TF32
// pipeline (v8, v9, v10) and v3/v5 beside each other, FP32's pipeline
// (v11, v12, v13) beside v2/v4/v6.
//
// On a GPU (-tags cuda): the median launch and GFLOP/s as benchGPU
// measures them, MNIST shapes at batch 64 and 512, ResNet at 64.
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
// simulated half is skipped on a machine with a GPU.
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
					c := newConvBufs(b, d, g)
					for _, a := range d.ConvAlgos() {
						for p := ConvPass(0); p < numConvPasses; p++ {
							name := fmt.Sprintf("shape=%s/N=%d/pass=%v/algo=%v", s.name, n, p, a)
							pick, _ := variantOf(d.kernelFor(a, p, g))
							benchConvCase(b, d, name, pick, g, c, false)
							for _, v := range benchAlternatives(pick, g) {
								if d.fns[v.id] != nil { // FP32's v11/v12/v13 need sm_80
									benchConvCase(b, d, name+"-"+v.version(), v, g, c, true)
								}
							}
						}
					}
					c.free()
				}
			}
		})
	}
}

// benchAlternatives are the variants of pick's algorithm and pass that
// BenchmarkConvSuite runs beside pick, the dispatcher's kernel for g: the
// others whose tile is no wider (wide only if pick is, or if the pass's N
// side suits the 128×128 tiles, useWide, where the SM fill may have
// chosen the 128×64 ones) and whose stride handling is no more
// specialised (strided only if pick is), in table order.
func benchAlternatives(pick convVariant, g geom.ConvGeom) []convVariant {
	var out []convVariant
	_, n := passGEMM(pick.pass, g)
	for _, v := range variantsOf(pick.algo, pick.pass) {
		if v.id != pick.id && (!v.wide || pick.wide || useWide(n)) && (!v.strided || pick.strided) {
			out = append(out, v)
		}
	}
	return out
}

// version is v's name without its conv2d_<pass>_ prefix: v2_igemm,
// v4_igemm_strided, v8_igemm_tf32.
func (v convVariant) version() string {
	if i := strings.Index(v.name, "_v"); i >= 0 {
		return v.name[i+1:]
	}
	return v.name
}

// benchConvCase benchmarks variant v of its pass on g: through the
// dispatching entry point of its algorithm (the dispatcher picks v), or,
// when direct, by launching v itself.
func benchConvCase(b *testing.B, d *Device, name string, v convVariant, g geom.ConvGeom, c *convBufs, direct bool) {
	b.Run(name, func(b *testing.B) {
		if d.IsSim() && v.algo == ConvDirect && v.pass == ConvBwdFilter && g.WLen()*blockSize > 1<<24 {
			b.Skipf("direct bwd-filter would run %d simulated threads", g.WLen()*blockSize)
		}
		a, p, id := v.algo, v.pass, v.id
		var run func(i int) error
		switch {
		case p == ConvFwd && direct:
			run = func(i int) error { x, y := c.at(i); return d.runFwd(id, g, x, c.w, c.bias, y, false) }
		case p == ConvFwd:
			run = func(i int) error { x, y := c.at(i); return d.runConv(a, p, g, x, c.w, c.bias, y, false) }
		case p == ConvBwdData && direct:
			run = func(i int) error { dx, dy := c.at(i); return d.runDgrad(id, g, dy, c.w, dx) }
		case p == ConvBwdData:
			run = func(i int) error { dx, dy := c.at(i); return d.runConv(a, p, g, dy, c.w, nil, dx, false) }
		case direct:
			run = func(i int) error { x, dy := c.at(i); return d.runWgrad(id, g, x, dy, c.w) }
		default:
			run = func(i int) error { x, dy := c.at(i); return d.runConv(a, p, g, x, dy, nil, c.w, false) }
		}
		benchConvPass(b, d, g.FLOPs(), v.precision, run)
	})
}

// benchConvPass times run (GPU) or reports the simulator's efficiency
// proxies summed over every kernel the pass launches, and the analytic
// model's time on an H100 (estimateH100, model_test.go) as est-us-h100.
func benchConvPass(b *testing.B, d *Device, flops float64, prec Precision, run func(i int) error) {
	if !d.IsSim() {
		benchLaunch(b, d, flops, run)
		return
	}
	d.ResetKernelStats()
	b.ResetTimer()
	for i := range b.N {
		if err := run(i); err != nil {
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
