package gpu

import (
	"math"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// An analytic time model for the simulated convolution suite
// (BenchmarkConvSuite/impl=sim reports it as est-us-h100): a pass takes at
// least as long as each of
//
//	issue    warp instructions / (SMs · 4 schedulers · clock): one warp
//	         instruction per scheduler per cycle
//	math     FLOPs / the peak of its arithmetic (FFMA, or the dense TF32 or
//	         BF16 tensor rate when the pass ran mma.sync)
//	memory   32-byte sectors the SMs requested / DRAM bandwidth (every
//	         sector a miss: an upper bound on traffic, L2 hits ignored)
//
// and the estimate is their maximum: a roofline over the simulator's
// counters, whose instructions are the PTX's (ptxas issues fewer: the SASS
// mix in kernels/RESOURCES.md), in which latency,
// occupancy, tail effects and launch overhead are ignored, so it is a
// lower bound that ranks kernels, not a prediction. The constants are the
// H100 SXM5's published figures.
const (
	h100SMs      = 132
	h100Clock    = 1.98e9   // boost, Hz
	h100FP32     = 67e12    // FFMA FLOP/s
	h100TF32     = 494.7e12 // dense tensor FLOP/s
	h100BF16     = 989.4e12 // dense tensor FLOP/s
	h100DRAMBW   = 3.35e12  // bytes/s
	warpSize     = 32
	schedulersSM = 4
)

// estimateH100 returns the model's time in seconds of a pass of flops
// FLOPs that executed threadInstr thread instructions (lanes of full
// warps), touched sectors global sectors and ran on tensor cores of
// precision p when tensor is true.
func estimateH100(flops float64, threadInstr, sectors int64, tensor bool, p Precision) float64 {
	issue := float64(threadInstr) / warpSize / (h100SMs * schedulersSM * h100Clock)
	peak := h100FP32
	if tensor {
		peak = h100TF32
		if p == BF16 {
			peak = h100BF16
		}
	}
	return max(issue, flops/peak, float64(sectors)*32/h100DRAMBW)
}

func TestEstimateH100(t *testing.T) {
	const flops = 2e12 // 1e12 FMA
	for _, c := range []struct {
		name          string
		instr, sector int64
		tensor        bool
		p             Precision
		want          float64
	}{
		// 1 instruction per FMA: issue-bound, 1e12/32 warp instructions at 1.045e12/s.
		{"ffma-issue", 1e12, 0, false, FP32, 1e12 / 32 / (132 * 4 * 1.98e9)},
		// Few instructions: the FP32 rate bounds it.
		{"ffma-math", 1e9, 0, false, FP32, flops / 67e12},
		{"bf16-math", 1e9, 0, true, BF16, flops / 989.4e12},
		{"tf32-math", 1e9, 0, true, TF32, flops / 494.7e12},
		// 1e10 sectors = 320 GB: memory-bound.
		{"memory", 1e9, 1e10, true, BF16, 320e9 / 3.35e12},
	} {
		t.Run("case="+c.name, func(t *testing.T) {
			got := estimateH100(flops, c.instr, c.sector, c.tensor, c.p)
			if math.Abs(got-c.want) > 1e-12*c.want {
				t.Errorf("estimateH100 = %g s, want %g s", got, c.want)
			}
		})
	}
}

// modelPeer is the analytic model's time in seconds of kernel id on g, its
// packing and split-K reduce launches included, on the H100 SXM5 of the
// constants above: the dispatcher's cost model (cost.go: issue slots, the
// occupancy, the fill of h100SMs SMs) made a time and bounded by the
// tensor or FFMA rate and by DRAM bandwidth. Over the blocks of its
// busiest SM (waves · min(occupancy, ⌈blocks/SMs⌉)) the kernel takes the
// longest of
//
//	issue    their warp instructions (cost.go's slots) / (4 schedulers · clock)
//	math     their padded tiles' multiply-adds · 2 / the SM's share of the
//	         peak (FFMA, dense TF32 or dense BF16); the direct kernels: the
//	         pass's FLOPs / the FFMA peak
//	memory   modelBytes / DRAM bandwidth, over the whole device
//
// plus the other launches (packing, the direct forward's ReLU) and the
// split-K reduce in cost.go's slots at the same rate. It leaves out
// latency, pipeline fill and L2 misses beyond one read of each operand,
// so it is a lower bound; BenchmarkConvPeer reports it beside each
// measured pass (model-us) so that a GPU session checks it.
func modelPeer(id kernelID, g geom.ConvGeom) float64 {
	m := modelParts(id, g)
	return max(m.issue, m.math, m.memory) + m.launches
}

// modelTime is modelPeer's bounds of one pass, in seconds: issue, math
// and memory, of which the longest is the kernel's time, and launches,
// the other launches' and the split-K reduce's.
type modelTime struct{ issue, math, memory, launches float64 }

// bound names the longest of m's three bounds.
func (m modelTime) bound() string {
	switch {
	case m.memory >= m.issue && m.memory >= m.math:
		return "memory"
	case m.math >= m.issue:
		return "math"
	}
	return "issue"
}

// trainedPass is pass p of convs[i], g.
type trainedPass struct {
	i int
	p ConvPass
	g geom.ConvGeom
}

// trainedPasses lists, for each of convs (a network's, the first the
// stem), the passes a training step runs: all three but the stem's
// bwd-data.
func trainedPasses(convs []geom.ConvGeom) []trainedPass {
	var ps []trainedPass
	for i, g := range convs {
		for _, p := range []ConvPass{ConvFwd, ConvBwdData, ConvBwdFilter} {
			if i > 0 || p != ConvBwdData {
				ps = append(ps, trainedPass{i, p, g})
			}
		}
	}
	return ps
}

// savedBy is what a pass modelled as m saves by reading bytes fewer (a
// float32 operand it packed) in one launch fewer: its time
// max(issue, math, memory) + launches, less that time with those gone.
func (m modelTime) savedBy(bytes float64) float64 {
	return m.fewerBytes(bytes) + launchSlots/(schedulersSM*h100Clock)
}

// fewerBytes is what a pass modelled as m saves by moving bytes fewer,
// its launches the same.
func (m modelTime) fewerBytes(bytes float64) float64 {
	less := m
	less.memory -= bytes / h100DRAMBW
	return max(m.issue, m.math, m.memory) - max(less.issue, less.math, less.memory)
}

// modelParts is modelPeer's bounds of kernel id on g.
func modelParts(id kernelID, g geom.ConvGeom) modelTime {
	v, _ := variantOf(id)
	c := convCost(id, g)
	perSlot := 1 / (schedulersSM * h100Clock)
	busiest := float64(c.waves(h100SMs) * min(c.perSM, ceilDiv(c.blocks, h100SMs)))
	peak := h100FP32
	switch {
	case v.precision == TF32:
		peak = h100TF32
	case v.precision == BF16:
		peak = h100BF16
	}
	math := g.FLOPs() / peak
	if v.algo != ConvDirect {
		fmas := float64(v.tile.M * v.tile.N * v.tile.K * c.kTiles)
		math = busiest * fmas * 2 / (peak / h100SMs)
	}
	return modelTime{issue: busiest * c.blockSlots * perSlot, math: math, memory: modelBytes(id, g) / h100DRAMBW,
		launches: (c.reduce + float64(c.launches)*launchSlots) * perSlot}
}

// modelBytes is the DRAM traffic modelPeer charges kernel id on g: each
// float32 operand read once and the output written once; a packed
// kernel's channels-last copies written and read once more each (packed
// elements: channels padded to the kernel's chunk); split-K partial sums
// written and read once; the direct forward's ReLU pass over y.
func modelBytes(id kernelID, g geom.ConvGeom) float64 {
	v, _ := variantOf(id)
	var in1, in2, out int
	switch v.pass {
	case ConvFwd:
		in1, in2, out = g.XLen(), g.WLen(), g.YLen()
	case ConvBwdData:
		in1, in2, out = g.YLen(), g.WLen(), g.XLen()
	default:
		in1, in2, out = g.XLen(), g.YLen(), g.WLen()
	}
	bytes := 4 * float64(in1+in2+out)
	c := convCost(id, g)
	if pc, packed := packedConvs[id]; packed {
		cp, kp := packedChans(g.C, pc.chanAlign), packedChans(g.K, pc.chanAlign)
		hw, pq, rs := g.H*g.W, g.P()*g.Q(), g.R*g.S
		var elems int
		switch v.pass {
		case ConvFwd:
			elems = g.N*hw*cp + g.K*rs*cp
		case ConvBwdData:
			elems = g.N*pq*kp + g.C*rs*kp
		default:
			elems = g.N*pq*kp + g.N*hw*cp
		}
		bytes += 2 * float64(elems*pc.elemBytes)
		if c.splits > 1 && id == kConvBwdFilterPipe {
			out = g.K * rs * cp
		}
	}
	if c.splits > 1 {
		bytes += 2 * 4 * float64(c.splits*out)
	}
	if v.algo == ConvDirect && v.pass == ConvFwd {
		bytes += 2 * 4 * float64(g.YLen())
	}
	return bytes
}

// TestModelPeer checks modelPeer against two estimates worked by hand on
// ResNet-50's 3×3 128-channel layer at N = 64 (M = 64·28·28 = 50176 rows,
// K = 128, L = 9·128 = 1152; 392 blocks of 128×128; the two packing
// launches, 2·14336 slots, 3.62 µs).
func TestModelPeer(t *testing.T) {
	g := cg(64, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1)
	const launches = 2 * 14336 / (4 * 1.98e9)
	// v12: one block an SM, 3 on the busiest SM, 72 k-tiles of 16 each:
	// issue-bound at 1.32 instructions a multiply-add (math 223 µs,
	// memory 31 µs).
	fp32 := 3*(128*128*16*72)*1.32/32/(4*1.98e9) + launches
	// v7: two blocks an SM, 4 on the busiest SM, 36 k-tiles of 32 each:
	// math 20.2 µs; memory-bound: x and y in float32 (2·25.69 MB), w (0.59
	// MB), the bfloat16 copies of x and w written and read (2·25.98 MB).
	bf16Math := 4 * (128 * 128 * 32 * 36) * 2 / (989.4e12 / 132)
	bf16 := (2*4*64*128*784+4*128*128*9+2*2*(64*784*128+128*9*128))/3.35e12 + launches
	if bf16Math+launches >= bf16 {
		t.Fatalf("the bf16 case is meant to be memory-bound: math %g s", bf16Math)
	}
	for _, c := range []struct {
		name string
		id   kernelID
		want float64
	}{{"fp32-v12-issue", kConvFwdPipe, fp32}, {"bf16-v7-memory", kConvFwdBF16, bf16}} {
		if got := modelPeer(c.id, g); math.Abs(got-c.want) > 1e-9*c.want {
			t.Errorf("%s: modelPeer(%s) = %.4g µs, want %.4g µs", c.name, kernelTable[c.id].name, got*1e6, c.want*1e6)
		}
	}
}

// The layer a ResNet-50 conv reads (resnet50Convs).
const (
	readsImage = iota // the stem
	readsBN           // a batch norm's ReLU: a bottleneck's second and third conv
	readsAdd          // a block's output, the residual add's ReLU: the next block's first conv and shortcut
	readsPool         // the stem's max-pool: the first block's first conv and shortcut
)

// resnet50Convs are the 53 convolutions of ResNet-50 (torchvision's
// layout: the stride on each stage's first 3×3) at N images of 224×224,
// in forward order, and the layer each reads (readsImage, readsBN,
// readsAdd or readsPool); blockOut is the element count of each of the 16
// blocks' outputs, the residual sums.
func resnet50Convs(n int) (convs []geom.ConvGeom, reads []int, blockOut []int) {
	add := func(c, h, k, r, s, from int) int {
		g := cg(n, c, h, h, k, r, r, s, s, (r-1)/2, (r-1)/2)
		convs, reads = append(convs, g), append(reads, from)
		return g.P()
	}
	h := (add(3, 224, 64, 7, 2, readsImage)+2-3)/2 + 1 // the stem, then its 3×3 stride-2 max-pool
	in, from := 64, readsPool
	for _, st := range []struct{ w, blocks, stride int }{{64, 3, 1}, {128, 4, 2}, {256, 6, 2}, {512, 3, 2}} {
		for b := range st.blocks {
			s := 1
			if b == 0 {
				s = st.stride
			}
			add(in, h, st.w, 1, 1, from)
			h2 := add(st.w, h, st.w, 3, s, readsBN)
			add(st.w, h2, 4*st.w, 1, 1, readsBN)
			if b == 0 {
				add(in, h, 4*st.w, 1, s, from)
			}
			in, h, from = 4*st.w, h2, readsAdd
			blockOut = append(blockOut, n*in*h*h)
		}
	}
	return convs, reads, blockOut
}

// TestResNet50Convs checks resnet50Convs against ResNet-50's known
// counts: 53 convolutions, 32 after a batch norm, 18 reading a block's
// output (15 first convs and 3 shortcuts), 2 the max-pool's, 16 blocks of
// 56²·256, 28²·512, 14²·1024 and 7²·2048 outputs, and 4.087 G multiply-adds an
// image (torchvision's v1.5 layout; the stride on the first 1×1 instead,
// v1, would give 3.86 G).
func TestResNet50Convs(t *testing.T) {
	convs, reads, blockOut := resnet50Convs(1)
	count, flops := map[int]int{}, 0.0
	for i, g := range convs {
		flops += g.FLOPs()
		count[reads[i]]++
	}
	if len(convs) != 53 || count[readsBN] != 32 || count[readsAdd] != 18 || count[readsPool] != 2 || count[readsImage] != 1 ||
		math.Abs(flops/2-4.087e9) > 0.001e9 {
		t.Errorf("%d convs, %d after a batch norm, %d after an add, %d after the pool, %d after the image, %.4g G multiply-adds an image; "+
			"want 53, 32, 18, 2, 1, 4.087 G", len(convs), count[readsBN], count[readsAdd], count[readsPool], count[readsImage], flops/2/1e9)
	}
	want := []int{}
	for _, st := range [][2]int{{56 * 56 * 256, 3}, {28 * 28 * 512, 4}, {14 * 14 * 1024, 6}, {7 * 7 * 2048, 3}} {
		for range st[1] {
			want = append(want, st[0])
		}
	}
	if !slices.Equal(blockOut, want) {
		t.Errorf("block outputs %v, want %v", blockOut, want)
	}
}

// BenchmarkModelBatchNormKeep reports, without a GPU, what the batch
// norms and residual adds writing the convs' copies save in the analytic
// model on ResNet-50 at N = 64 and BF16. Forward (BatchNormForwardKeep):
// each conv after a batch norm that keeps its input's copy (ConvKeepLen >
// 0; convs-kept) reads its input in float32 once fewer (saved-MB) and
// launches one packing fewer, its forward pass's modelParts less those
// (saved-us); likewise each conv after a residual add+ReLU
// (AddReLUKeep; convs-add, add-saved-MB, add-saved-us). Backward
// (BatchNormBackwardKeep): each conv with dx whose two backward kernels
// share dy's copy (ConvDyCopyLen > 0; convs-dy; every conv of ResNet-50
// feeds a batch norm) reads dy in float32 once fewer (bwd-saved-MB),
// charged to its bwd-data pass with one launch (bwd-saved-us); ResNet-50's
// convs have no bias, so the batch norm writes that copy alone
// (BatchNormBackwardCopy), not dy's float32 values: as many bytes written
// fewer in the batch norm's pass (dx-saved-MB, dx-saved-us at the DRAM
// bandwidth; outside the convs' model-ms). model-ms
// and fwd-model-ms are the modelled time of the step's conv passes (the
// stem's bwd-data left out, as training runs it not) and of the forward
// ones, each pass charged its own packing. Outside the convs, the add and
// ReLU in one pass (add_relu_v1 or add_relu_pack_bf16_v1 instead of
// add_v1 then relu_fwd_v1 in place) read and write each block's output
// once fewer in float32 and launch once fewer (addrelu-saved-MB,
// addrelu-saved-us); and each BatchNorm+ReLU pair feeding a conv
// (bnrelu-pairs) masks the ReLU's gradient inside the batch norm's
// backward pass (bn_bwd_relu_v1, bn_bwd_relu_pack_v1: the mask recomputed
// from x, which that pass reads anyway) instead of relu_bwd_v1 reading y
// and dy and writing the masked gradient: 12 bytes an element and a
// launch fewer (relubwd-saved-MB, relubwd-saved-us). At TF32, which
// keeps no copy, each conv after a batch norm, and the first after each
// add, whose packed forward kernel reads x's TF32 copy (ConvXCopyLen > 0;
// tf32-convs-copied) gets it from that layer (bn_apply_pack_tf32_v1,
// add_relu_pack_tf32_v1) and reads x in float32 once fewer
// (tf32-saved-MB), its forward pass's modelParts less that read and a
// launch (tf32-saved-us), of tf32-model-ms, the TF32 step's conv passes
// as model-ms counts them. At BF16 each conv whose output is stored as
// bfloat16 for its batch norm (ConvOutputBF16; bf16y-convs) writes 2
// bytes an element fewer (bf16y-conv-saved-MB; its forward pass's
// modelParts less that store, bf16y-conv-saved-us), and its batch norm
// reads that output five times at 2 bytes fewer: the statistics' two
// passes, the normalisation and the backward pass's two
// (bf16y-bn-saved-MB, bf16y-bn-saved-us at the DRAM bandwidth; outside
// model-ms). The batch norm before each kept conv writes that copy alone
// (BatchNormForwardCopy): its output, which only the conv reads, through
// the copy, is not written (yonly-saved-MB, yonly-saved-us at the DRAM
// bandwidth; outside model-ms). Run:
//
//	go test -run '^$' -bench ModelBatchNormKeep -benchtime 1x ./gpu
func BenchmarkModelBatchNormKeep(b *testing.B) {
	d, err := OpenSim(SimOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := d.SetPrecision(BF16); err != nil {
		b.Fatal(err)
	}
	convs, reads, blockOut := resnet50Convs(64)
	var total, fwd, bwdSaved, bwdBytes float64
	var saved, bytes [readsPool + 1]float64
	var kept [readsPool + 1]int
	dyMade := 0
	for range b.N {
		total, fwd, bwdSaved, bwdBytes, saved, bytes, kept, dyMade = 0, 0, 0, 0, [readsPool + 1]float64{}, [readsPool + 1]float64{},
			[readsPool + 1]int{}, 0
		for _, c := range trainedPasses(convs) {
			i, p, g := c.i, c.p, c.g
			m := modelParts(d.peerKernel(p, g), g)
			tm := max(m.issue, m.math, m.memory) + m.launches
			total += tm
			// what the pass does no more: read its input (x, or dy
			// in bwd-data) in float32 to pack it, in one launch
			var read float64
			switch {
			case p == ConvFwd:
				fwd += tm
				if (reads[i] == readsBN || reads[i] == readsAdd) && d.ConvKeepLen(g) > 0 {
					kept[reads[i]]++
					read = 4 * float64(g.XLen())
					bytes[reads[i]] += read
				}
			case p == ConvBwdData && d.ConvDyCopyLen(g) > 0:
				dyMade++
				read = 4 * float64(g.YLen())
				bwdBytes += read
			}
			if read == 0 {
				continue
			}
			s := m.savedBy(read)
			if p == ConvFwd {
				saved[reads[i]] += s
			} else {
				bwdSaved += s
			}
		}
	}
	// BF16: each conv's output stored as bfloat16 for its batch norm
	// (ConvOutputBF16, conv2d_fwd_v7_igemm_bf16y): the conv's store
	// halved, and the batch norm's five reads of it (the statistics' two,
	// the normalisation, the backward pass's sums and its dx) at 2 bytes.
	yConvs := 0
	var yConvBytes, yConvSaved, yBNBytes float64
	for _, c := range trainedPasses(convs) {
		if c.p != ConvFwd || !d.ConvOutputBF16(c.g) {
			continue
		}
		yConvs++
		half := 2 * float64(c.g.YLen())
		yConvBytes += half
		yConvSaved += modelParts(d.peerKernel(c.p, c.g), c.g).fewerBytes(half)
		yBNBytes += 5 * half
	}
	// BF16: each conv's input gradient that only the batch norm (and
	// ReLU) before it reads, whose input is the conv before's bfloat16
	// output, stored as bfloat16 (ConvInputGradBF16,
	// conv2d_bwd_data_v9_igemm_bf16dx): the pass's store halved, and the
	// batch norm's backward pass's two reads of it (the sums, then the
	// copy for the conv before) at 2 bytes.
	dxConvs := 0
	var dxConvBytes, dxConvSaved, dxBNBytes float64
	for _, c := range trainedPasses(convs) {
		if c.p != ConvBwdData || reads[c.i] != readsBN || !d.ConvOutputBF16(convs[c.i-1]) || !d.ConvInputGradBF16(c.g) {
			continue
		}
		dxConvs++
		half := 2 * float64(c.g.XLen())
		dxConvBytes += half
		dxConvSaved += modelParts(d.peerKernel(c.p, c.g), c.g).fewerBytes(half)
		dxBNBytes += 2 * half
	}
	var addBytes, dxBytes, reluBytes float64
	reluPairs := 0
	for i, g := range convs {
		if i > 0 && d.ConvDyCopyLen(g) > 0 { // the stem has no dx: its batch norm makes no copy
			dxBytes += 4 * float64(g.YLen()) // bn_bwd_pack_v1: dx not written
		}
		if reads[i] == readsBN { // x is a BatchNorm+ReLU's output: relu_bwd_v1 read y and dy and wrote dy masked
			reluBytes += 3 * 4 * float64(g.XLen())
			reluPairs++
		}
	}
	// BF16: each block's last batch norm (the branch's, where a
	// projection's batch norm is the add's other input: the add reads one
	// bfloat16 input) stores its output, which only the residual add
	// reads, as bfloat16 (bn_train_fwd_bf16xy_v1, add_relu_pack_bf16_bf16b_v1):
	// its store and the add's read of it at 2 bytes.
	var bnAddBytes float64
	for _, n := range blockOut {
		addBytes += 2 * 4 * float64(n) // relu_fwd_v1 in place: y read and written
		bnAddBytes += 2 * 2 * float64(n)
	}
	// TF32: the forward copy a batch norm or the add makes for the conv
	// after it (ConvXCopyLen), not kept. The add makes the first conv's
	// only: a stage's projection (K > C here) reads its output second.
	if err := d.SetPrecision(TF32); err != nil {
		b.Fatal(err)
	}
	var tfTotal, tfBytes, tfSaved float64
	tfMade := 0
	for _, c := range trainedPasses(convs) {
		i, p, g := c.i, c.p, c.g
		m := modelParts(d.peerKernel(p, g), g)
		tfTotal += max(m.issue, m.math, m.memory) + m.launches
		if p != ConvFwd || !(reads[i] == readsBN || reads[i] == readsAdd && g.K <= g.C) || d.ConvXCopyLen(g) == 0 {
			continue
		}
		tfMade++
		read := 4 * float64(g.XLen())
		tfBytes += read
		tfSaved += m.savedBy(read)
	}
	b.ReportMetric(float64(tfMade), "tf32-convs-copied")
	b.ReportMetric(tfBytes/1e6, "tf32-saved-MB")
	b.ReportMetric(tfSaved*1e6, "tf32-saved-us")
	b.ReportMetric(tfTotal*1e3, "tf32-model-ms")
	b.ReportMetric(float64(kept[readsBN]), "convs-kept")
	b.ReportMetric(bytes[readsBN]/1e6, "saved-MB")
	b.ReportMetric(saved[readsBN]*1e6, "saved-us")
	b.ReportMetric(float64(kept[readsAdd]), "convs-add")
	b.ReportMetric(bytes[readsAdd]/1e6, "add-saved-MB")
	b.ReportMetric(saved[readsAdd]*1e6, "add-saved-us")
	b.ReportMetric(float64(dyMade), "convs-dy")
	b.ReportMetric(bwdBytes/1e6, "bwd-saved-MB")
	b.ReportMetric(bwdSaved*1e6, "bwd-saved-us")
	b.ReportMetric(dxBytes/1e6, "dx-saved-MB")
	b.ReportMetric(dxBytes/h100DRAMBW*1e6, "dx-saved-us")
	b.ReportMetric(float64(reluPairs), "bnrelu-pairs")
	b.ReportMetric(reluBytes/1e6, "relubwd-saved-MB")
	b.ReportMetric((reluBytes/h100DRAMBW+float64(reluPairs)*launchSlots/(schedulersSM*h100Clock))*1e6, "relubwd-saved-us")
	b.ReportMetric(addBytes/1e6, "addrelu-saved-MB")
	b.ReportMetric((addBytes/h100DRAMBW+float64(len(blockOut))*launchSlots/(schedulersSM*h100Clock))*1e6, "addrelu-saved-us")
	// The batch norm+ReLU before each of those kept convs writes the copy
	// alone (BatchNormForwardCopy): y, read by that conv only, through the
	// copy, is not written (as many bytes as saved-MB reads).
	b.ReportMetric(bytes[readsBN]/1e6, "yonly-saved-MB")
	b.ReportMetric(bytes[readsBN]/h100DRAMBW*1e6, "yonly-saved-us")
	b.ReportMetric(float64(yConvs), "bf16y-convs")
	b.ReportMetric(yConvBytes/1e6, "bf16y-conv-saved-MB")
	b.ReportMetric(yConvSaved*1e6, "bf16y-conv-saved-us")
	b.ReportMetric(yBNBytes/1e6, "bf16y-bn-saved-MB")
	b.ReportMetric(yBNBytes/h100DRAMBW*1e6, "bf16y-bn-saved-us")
	b.ReportMetric(float64(dxConvs), "bf16dx-convs")
	b.ReportMetric(dxConvBytes/1e6, "bf16dx-conv-saved-MB")
	b.ReportMetric(dxConvSaved*1e6, "bf16dx-conv-saved-us")
	b.ReportMetric(dxBNBytes/1e6, "bf16dx-bn-saved-MB")
	b.ReportMetric(dxBNBytes/h100DRAMBW*1e6, "bf16dx-bn-saved-us")
	b.ReportMetric(float64(len(blockOut)), "bf16bnadd-outputs")
	b.ReportMetric(bnAddBytes/1e6, "bf16bnadd-saved-MB")
	b.ReportMetric(bnAddBytes/h100DRAMBW*1e6, "bf16bnadd-saved-us")
	b.ReportMetric(total*1e3, "model-ms")
	b.ReportMetric(fwd*1e3, "fwd-model-ms")
}
