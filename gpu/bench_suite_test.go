package gpu

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// peerShapes is the conv shape suite that scripts/torch-gpu-bench.py times
// in PyTorch/cuDNN (its SHAPES, same names, same order; TestPeerShapes
// holds the two lists equal): the default MNIST network's two convs at
// batch 64 and 512, ResNet-50's 3×3 convs, 1×1 convs, stride-2 convs and
// stem at batch 64.
var peerShapes = []struct {
	name string
	g    geom.ConvGeom
}{
	{"mnist-conv1-b64", cg(64, 1, 28, 28, 8, 5, 5, 1, 1, 0, 0)},
	{"mnist-conv2-b64", cg(64, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0)},
	{"mnist-conv1-b512", cg(512, 1, 28, 28, 8, 5, 5, 1, 1, 0, 0)},
	{"mnist-conv2-b512", cg(512, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0)},
	{"resnet-3x3-64x56", cg(64, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1)},
	{"resnet-3x3-128x28", cg(64, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1)},
	{"resnet-3x3-256x14", cg(64, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1)},
	{"resnet-3x3-512x7", cg(64, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1)},
	{"resnet-1x1-64to256x56", cg(64, 64, 56, 56, 256, 1, 1, 1, 1, 0, 0)},
	{"resnet-1x1-256to64x56", cg(64, 256, 56, 56, 64, 1, 1, 1, 1, 0, 0)},
	{"resnet-1x1-512to128x28", cg(64, 512, 28, 28, 128, 1, 1, 1, 1, 0, 0)},
	{"resnet-1x1-1024to256x14", cg(64, 1024, 14, 14, 256, 1, 1, 1, 1, 0, 0)},
	{"resnet-1x1-2048to512x7", cg(64, 2048, 7, 7, 512, 1, 1, 1, 1, 0, 0)},
	{"resnet-3x3s2-128x56", cg(64, 128, 56, 56, 128, 3, 3, 2, 2, 1, 1)},
	{"resnet-3x3s2-256x28", cg(64, 256, 28, 28, 256, 3, 3, 2, 2, 1, 1)},
	{"resnet-3x3s2-512x14", cg(64, 512, 14, 14, 512, 3, 3, 2, 2, 1, 1)},
	{"resnet-1x1s2-256to512x56", cg(64, 256, 56, 56, 512, 1, 1, 2, 2, 0, 0)},
	{"resnet-1x1s2-512to1024x28", cg(64, 512, 28, 28, 1024, 1, 1, 2, 2, 0, 0)},
	{"resnet-1x1s2-1024to2048x14", cg(64, 1024, 14, 14, 2048, 1, 1, 2, 2, 0, 0)},
	{"resnet-stem-7x7s2", cg(64, 3, 224, 224, 64, 7, 7, 2, 2, 3, 3)},
}

// peerPassNames are the pass names of scripts/torch-gpu-bench.py.
var peerPassNames = [numConvPasses]string{ConvFwd: "fwd", ConvBwdData: "bwd-data", ConvBwdFilter: "bwd-filter"}

// peerPrecisions are the precisions of BenchmarkConvPeer, prec=NAME in
// its names: the dispatcher's kernels at FP32, TF32 and BF16
// (SetPrecision), and fp32pipe, FP32's packed-pipeline kernels (v11, v12,
// v13), which the dispatcher does not run (fp32PipeKernel), launched
// directly so that a GPU session times them beside the dispatched ones.
// scripts/torch-gpu-bench.py times cuDNN at fp32 (TF32 off), tf32 and
// bf16; fp32pipe is compared with cuDNN's fp32.
var peerPrecisions = []struct {
	name string
	p    Precision
	pipe bool
}{{"fp32", FP32, false}, {"fp32pipe", FP32, true}, {"tf32", TF32, false}, {"bf16", BF16, false}}

// fp32PipeKernels are FP32's packed-pipeline kernels by pass.
var fp32PipeKernels = [numConvPasses]kernelID{ConvFwd: kConvFwdPipe, ConvBwdData: kConvBwdDataPipe, ConvBwdFilter: kConvBwdFilterPipe}

// BenchmarkConvPeer times, on a GPU, the three passes of every peerShapes
// shape at every peerPrecisions precision with the kernel the dispatcher
// picks (Conv2DForward, Conv2DBackwardData, Conv2DBackwardFilter after
// SetPrecision), and FP32's packed-pipeline kernels as prec=fp32pipe,
// measured as benchGPU says and as scripts/torch-gpu-bench.py measures
// cuDNN on the same shapes: random data rotated through more than twice
// the L2, a warm-up, events around each launch, the median. A pass's time
// includes the packing launches of a packed kernel (its operands are
// float32 NCHW/KCRS, as the layers hold them) and the split-K reduce. The
// kernel's name is the last element of the benchmark's name;
// scripts/gpu-check.sh puts the two sides in one table. Beside each
// measured pass it reports the analytic model's estimate (modelPeer) as
// model-us, so that a GPU session checks the model.
//
// Without a GPU it reports the model's estimate only (model-us, the
// GFLOP/s it implies, model-GFLOP/s, and which of its bounds sets it,
// model-issue-bound, model-math-bound or model-memory-bound: 1), from the
// simulator's kernel set and dispatcher, without launching anything:
//
//	go test -tags cuda -run '^$' -bench ConvPeer -benchtime 50x ./gpu   (GPU)
//	go test -run '^$' -bench ConvPeer -benchtime 1x ./gpu               (model)
func BenchmarkConvPeer(b *testing.B) {
	d, err := Open(0)
	model := err != nil
	if model {
		noGPU := err
		if d, err = OpenSim(SimOptions{}); err != nil {
			b.Skipf("no GPU (%v) and no simulator: %v", noGPU, err)
		}
		b.Logf("no GPU (%v): the analytic model's estimates on the simulator's kernels and dispatcher, nothing launched", noGPU)
	}
	b.Cleanup(func() { d.Close() })
	b.Logf("device: %v", d)
	for _, s := range peerShapes {
		g := s.g
		// The buffers are allocated inside the shape's benchmark, so only
		// for the shapes -test.bench selects.
		b.Run("shape="+s.name, func(b *testing.B) {
			var c *convBufs
			if !model {
				c = newConvBufs(b, d, g)
				defer c.free()
			}
			for _, pr := range peerPrecisions {
				b.Run("prec="+pr.name, func(b *testing.B) {
					if err := d.SetPrecision(pr.p); err != nil {
						b.Skip(err)
					}
					defer d.SetPrecision(FP32)
					for p := ConvPass(0); p < numConvPasses; p++ {
						id := d.peerKernel(p, g)
						if pr.pipe {
							id = fp32PipeKernels[p]
							if d.fns[id] == nil || !packedFits(p, g, packedConvs[id].chanAlign) {
								continue
							}
						}
						name := fmt.Sprintf("pass=%s/kernel=%s", peerPassNames[p], kernelTable[id].name)
						b.Run(name, func(b *testing.B) {
							est := modelPeer(id, g)
							if model { // nothing to time: b.N is not looped over
								b.ReportMetric(est*1e6, "model-us")
								b.ReportMetric(g.FLOPs()/est/1e9, "model-GFLOP/s")
								// The bound that sets the time: 1 in the
								// column of issue, math or memory.
								bound := modelParts(id, g).bound()
								for _, k := range []string{"issue", "math", "memory"} {
									b.ReportMetric(map[bool]float64{true: 1}[k == bound], "model-"+k+"-bound")
								}
								return
							}
							benchLaunch(b, d, g.FLOPs(), peerRun(d, p, g, c, id, pr.pipe))
							b.ReportMetric(est*1e6, "model-us")
						})
					}
				})
			}
		})
	}
}

// peerKernel is the kernel the dispatching entry point of pass p runs for
// g at the device's precision (ConvKernelFor's kernel).
func (d *Device) peerKernel(p ConvPass, g geom.ConvGeom) kernelID {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.kernelFor(d.convAlgoFor(p, g), p, g)
}

// peerRun is pass p of g on c's buffers: through the dispatching entry
// point, or kernel id itself when direct.
func peerRun(d *Device, p ConvPass, g geom.ConvGeom, c *convBufs, id kernelID, direct bool) func(i int) error {
	switch {
	case p == ConvFwd && direct:
		return func(i int) error { x, y := c.at(i); return d.runFwd(id, g, x, c.w, c.bias, y, false) }
	case p == ConvFwd:
		return func(i int) error { x, y := c.at(i); return d.Conv2DForward(g, x, c.w, c.bias, y) }
	case p == ConvBwdData && direct:
		return func(i int) error { dx, dy := c.at(i); return d.runDgrad(id, g, dy, c.w, dx) }
	case p == ConvBwdData:
		return func(i int) error { dx, dy := c.at(i); return d.Conv2DBackwardData(g, dy, c.w, dx) }
	case direct:
		return func(i int) error { x, dy := c.at(i); return d.runWgrad(id, g, x, dy, c.w) }
	}
	return func(i int) error { x, dy := c.at(i); return d.Conv2DBackwardFilter(g, x, dy, c.w) }
}

// TestPeerShapes checks that peerShapes is the SHAPES list of
// scripts/torch-gpu-bench.py: the same names and geometries in the same
// order, so that the two sides of the peer table measure the same convs.
func TestPeerShapes(t *testing.T) {
	src, err := os.ReadFile("../scripts/torch-gpu-bench.py")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\("([a-z0-9x-]+)", (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+)\)`)
	var got []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		v := make([]int, 9)
		for i := range v {
			v[i], _ = strconv.Atoi(m[i+2])
		}
		got = append(got, m[1]+" "+cg(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[7], v[8], v[8]).String())
	}
	var want []string
	for _, s := range peerShapes {
		want = append(want, s.name+" "+s.g.String())
	}
	if len(got) != len(want) {
		t.Errorf("scripts/torch-gpu-bench.py SHAPES has %d shapes, want %d (gpu peerShapes)", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("scripts/torch-gpu-bench.py SHAPES[%d] = %s, want %s (gpu peerShapes)", i, got[i], want[i])
		}
	}
}

// BenchmarkConvBackwardShared times, on a GPU, what the shared copy of dy
// (Conv2DBackward) and the kept copy of x (Conv2DForwardKeep) save in a
// training step's three passes of a convolution: for each ResNet-50
// shape of peerShapes at TF32 and BF16, mode=apart runs
// Conv2DForwardReLU, Conv2DBackwardFilter and Conv2DBackwardData, and
// mode=shared Conv2DForwardKeep (with a copy of x where ConvKeepLen is not
// 0) and Conv2DBackward: the same kernels and bits, one or two packing
// launches fewer. Measured as benchGPU says (the three passes between two
// events), GFLOP/s over the three passes' FLOPs. scripts/gpu-check.sh
// runs it in step 6, if time is left. Skipped without a GPU (the
// analytic model's figures are in BENCHMARKS.md).
//
//	go test -tags cuda -run '^$' -bench ConvBackwardShared -benchtime 50x ./gpu
func BenchmarkConvBackwardShared(b *testing.B) {
	d, err := Open(0)
	if err != nil {
		b.Skipf("no GPU: %v", err)
	}
	b.Cleanup(func() { d.Close() })
	for _, s := range peerShapes {
		if !strings.HasPrefix(s.name, "resnet-") {
			continue
		}
		g := s.g
		b.Run("shape="+s.name, func(b *testing.B) {
			c := newConvBufs(b, d, g)
			defer c.free()
			dx, dw := randomBuf(b, d, g.XLen(), newRand("dx")), randomBuf(b, d, g.WLen(), newRand("dw"))
			defer dx.Free()
			defer dw.Free()
			for _, prec := range []Precision{TF32, BF16} {
				b.Run("prec="+prec.String(), func(b *testing.B) {
					if err := d.SetPrecision(prec); err != nil {
						b.Skip(err)
					}
					defer d.SetPrecision(FP32)
					var xk *Buffer
					if n := d.ConvKeepLen(g); n > 0 {
						xk = randomBuf(b, d, n, newRand("xk"))
						defer xk.Free()
					}
					// dy is y's buffer: its values do not matter here.
					runs := map[string]func(i int) error{
						"apart": func(i int) error {
							x, y := c.at(i)
							if err := d.Conv2DForwardReLU(g, x, c.w, c.bias, y); err != nil {
								return err
							}
							if err := d.Conv2DBackwardFilter(g, x, y, dw); err != nil {
								return err
							}
							return d.Conv2DBackwardData(g, y, c.w, dx)
						},
						"shared": func(i int) error {
							x, y := c.at(i)
							if err := d.Conv2DForwardKeep(g, x, c.w, c.bias, y, true, xk); err != nil {
								return err
							}
							return d.Conv2DBackward(g, x, y, c.w, dw, nil, dx, xk)
						},
					}
					for _, mode := range []string{"apart", "shared"} {
						b.Run("mode="+mode, func(b *testing.B) { benchLaunch(b, d, 3*g.FLOPs(), runs[mode]) })
					}
				})
			}
		})
	}
}

// bnFedShapes are the ResNet-50 shapes of peerShapes whose input is a
// batch norm's output (its ReLU's): the 3×3 convs (every bottleneck's
// second) and the 1×1 64→256 at 56×56 (the first stage's third).
func bnFedShapes() []string {
	var names []string
	for _, s := range peerShapes {
		if strings.HasPrefix(s.name, "resnet-3x3") || s.name == "resnet-1x1-64to256x56" {
			names = append(names, s.name)
		}
	}
	return names
}

// addFedShapes are the ResNet-50 shapes of peerShapes whose input is a
// block's output, the residual add's ReLU: the 1×1 convs from the block
// width to the bottleneck's (each block's first, 4C → C) and the strided
// 1×1 shortcuts.
func addFedShapes() []string {
	var names []string
	for _, s := range peerShapes {
		if strings.HasPrefix(s.name, "resnet-1x1s2-") || strings.HasPrefix(s.name, "resnet-1x1-") && s.g.C == 4*s.g.K {
			names = append(names, s.name)
		}
	}
	return names
}

// BenchmarkBatchNormKeep times, on a GPU at BF16, a batch norm beside a
// conv with the conv making its channels-last copy and with the batch
// norm making it, for each ResNet-50 shape of peerShapes. Forward, on the
// shapes of bnFedShapes: mode=fwd-apart BatchNormTrainForward (with its
// ReLU) then Conv2DForwardKeep packing y itself, mode=fwd-fused
// BatchNormForwardKeep then Conv2DForwardKeep reading the copy,
// mode=fwd-copy BatchNormForwardCopy (the copy without y's float32
// values) then Conv2DForwardKeep reading it.
// Backward (every ResNet-50 conv feeds a batch norm): mode=bwd-apart
// BatchNormBackward then Conv2DBackward packing dy, mode=bwd-fused
// BatchNormBackwardKeep then Conv2DBackward reading dy's copy, mode=bwd-copy
// BatchNormBackwardCopy (the copy without dy's float32 values) then
// Conv2DBackward reading it (no bias gradient, as in every mode); with a
// ReLU after the batch norm, mode=relu-apart ReLUBackward (the masked
// gradient written) then bwd-copy's calls on it, mode=relu-fused
// BatchNormBackwardCopy masking the gradient as it reads it
// (bn_bwd_relu_v1 and bn_bwd_relu_pack_v1) then the conv. A residual
// add+ReLU before a conv, on the shapes of addFedShapes: mode=add-apart
// AddReLU then Conv2DForwardKeep packing y itself, mode=add-fused
// AddReLUKeep then Conv2DForwardKeep reading the copy. At TF32, on the
// batch norm's shapes: mode=tf32-apart BatchNormTrainForward then
// Conv2DForward packing its TF32 copy of y, mode=tf32-fused
// BatchNormForwardKeep writing that copy (ConvXCopyLen; not kept) then
// Conv2DForward reading it. A conv's output on its round trip through
// the batch norm after it, where ConvOutputBF16: mode=bf16y-apart
// Conv2DForward into a float32 y, BatchNormTrainForward (with its ReLU)
// and BatchNormBackward reading it, mode=bf16y-fused the same into and
// from a bfloat16 y (conv2d_fwd_v7_igemm_bf16y and the _bf16x batch
// norms: y's values rounded, so not the same bits; half the bytes). A
// conv's input gradient on its round trip through the backward pass of
// the batch norm before it (x bfloat16), where ConvInputGradBF16:
// mode=bf16dx-apart Conv2DBackwardData into a float32 dx, then
// BatchNormBackward reading it, mode=bf16dx-fused the same into and from
// a bfloat16 dx (conv2d_bwd_data_v9_igemm_bf16dx, bn_bwd_bf16xdy_v1). A
// batch norm's output on its way to the residual add, where
// ConvOutputBF16 (the batch norm reading the conv's bfloat16 output):
// mode=bnadd-apart BatchNormTrainForward into a float32 z, then AddReLU
// of the skip and z, mode=bnadd-fused the same into and from a bfloat16 z
// (bn_train_fwd_bf16xy_v1, add_relu_bf16b_v1). The
// same bits elsewhere; the
// fused modes read the layer's output once fewer and launch one packing
// fewer (the analytic model's figures are in BENCHMARKS.md, "The batch
// norm writes the convolutions' channels-last copies" and "The residual
// add writes them too"). Measured as benchGPU says, GFLOP/s over the
// conv's FLOPs (the backward's two passes). scripts/gpu-check.sh runs it in step 6, if time
// is left. Skipped without a GPU.
//
//	go test -tags cuda -run '^$' -bench BatchNormKeep -benchtime 50x ./gpu
func BenchmarkBatchNormKeep(b *testing.B) {
	d, err := Open(0)
	if err != nil {
		b.Skipf("no GPU: %v", err)
	}
	b.Cleanup(func() { d.Close() })
	if err := d.SetPrecision(BF16); err != nil {
		b.Skip(err)
	}
	defer d.SetPrecision(FP32)
	fed, addFed := bnFedShapes(), addFedShapes()
	for _, s := range peerShapes {
		if !strings.HasPrefix(s.name, "resnet-") {
			continue
		}
		g := s.g
		b.Run("shape="+s.name, func(b *testing.B) {
			n, dyn, na := d.ConvKeepLen(g), d.ConvDyCopyLen(g), d.ConvKeepLen(g)
			mustNil(b, d.SetPrecision(TF32))
			xl := d.ConvXCopyLen(g) // TF32's forward copy, made by the batch norm
			mustNil(b, d.SetPrecision(BF16))
			if !slices.Contains(fed, s.name) {
				n, xl = 0, 0
			}
			if !slices.Contains(addFed, s.name) {
				na = 0
			}
			yh, dxh := d.ConvOutputBF16(g), d.ConvInputGradBF16(g)
			if n == 0 && dyn == 0 && na == 0 && xl == 0 && !yh && !dxh {
				b.Skipf("no copy to make at BF16 or TF32 on %v", g)
			}
			c := newConvBufs(b, d, g)
			defer c.free()
			rng := newRand("bn-keep")
			xk, dyk := randomBuf(b, d, max(n, na, 1), rng), randomBuf(b, d, max(dyn, 1), rng)
			xt := randomBuf(b, d, max(xl, 1), rng)
			defer xt.Free()
			bnIn, bnY, dx, dw := randomBuf(b, d, g.XLen(), rng), randomBuf(b, d, g.YLen(), rng), randomBuf(b, d, g.XLen(), rng), randomBuf(b, d, g.WLen(), rng)
			// the ReLU's output after the batch norm after the conv, and
			// the masked gradient relu-apart writes
			reluY, masked := randomBuf(b, d, g.YLen(), rng), randomBuf(b, d, g.YLen(), rng)
			for _, buf := range []*Buffer{xk, dyk, bnIn, bnY, dx, dw, reluY, masked} {
				defer buf.Free()
			}
			var st [6]*Buffer // gamma, beta, saved mean and inverse std, running mean and variance (of C and of K channels)
			var sk [5]*Buffer // gamma, saved mean and inverse std, dgamma/dbeta scratch, beta of the batch norm after the conv
			for j := range st {
				st[j] = randomBuf(b, d, g.C, rng)
				defer st[j].Free()
			}
			for j := range sk {
				sk[j] = randomBuf(b, d, g.K, rng)
				defer sk[j].Free()
			}
			hw, pq := g.H*g.W, g.P()*g.Q()
			type run struct {
				name  string
				flops float64
				f     func(i int) error
			}
			var runs []run
			if n > 0 {
				runs = append(runs, run{"fwd-apart", g.FLOPs(), func(i int) error {
					x, y := c.at(i)
					if err := d.BatchNormTrainForward(g.N, g.C, hw, bnIn, st[0], st[1], x, st[2], st[3], st[4], st[5], 0.1, 1e-5, true); err != nil {
						return err
					}
					return d.Conv2DForwardKeep(g, x, c.w, c.bias, y, true, xk)
				}}, run{"fwd-fused", g.FLOPs(), func(i int) error {
					x, y := c.at(i)
					if err := d.BatchNormForwardKeep(true, g.N, g.C, hw, bnIn, st[0], st[1], x, st[2], st[3], st[4], st[5], 0.1, 1e-5, true, g, xk); err != nil {
						return err
					}
					return d.Conv2DForwardKeep(g, x, c.w, c.bias, y, true, xk)
				}}, run{"fwd-copy", g.FLOPs(), func(i int) error {
					x, y := c.at(i)
					if err := d.BatchNormForwardCopy(true, g.N, g.C, hw, bnIn, st[0], st[1], x, st[2], st[3], st[4], st[5], 0.1, 1e-5, true, g, xk); err != nil {
						return err
					}
					return d.Conv2DForwardKeep(g, x, c.w, c.bias, y, true, xk)
				}})
			}
			if dyn > 0 {
				// The batch norm after the conv normalised bnY; its input
				// gradient, the conv's dy, goes to y's buffer.
				runs = append(runs, run{"bwd-apart", 2 * g.FLOPs(), func(i int) error {
					x, dy := c.at(i)
					if err := d.BatchNormBackward(g.N, g.K, pq, bnY, sk[0], sk[1], sk[2], bnY, dy, sk[3], sk[3]); err != nil {
						return err
					}
					return d.Conv2DBackward(g, x, dy, c.w, dw, nil, dx, nil)
				}}, run{"bwd-fused", 2 * g.FLOPs(), func(i int) error {
					x, dy := c.at(i)
					if err := d.BatchNormBackwardKeep(g.N, g.K, pq, bnY, sk[0], nil, sk[1], sk[2], bnY, dy, sk[3], sk[3], g, dyk); err != nil {
						return err
					}
					return d.Conv2DBackward(g, x, dy, c.w, dw, nil, dx, nil)
				}}, run{"bwd-copy", 2 * g.FLOPs(), func(i int) error {
					x, dy := c.at(i)
					if err := d.BatchNormBackwardCopy(g.N, g.K, pq, bnY, sk[0], nil, sk[1], sk[2], bnY, dy, sk[3], sk[3], g, dyk); err != nil {
						return err
					}
					return d.Conv2DBackward(g, x, dy, c.w, dw, nil, dx, nil)
				}}, run{"relu-apart", 2 * g.FLOPs(), func(i int) error {
					x, dy := c.at(i)
					if err := d.ReLUBackward(reluY, bnY, masked); err != nil {
						return err
					}
					if err := d.BatchNormBackwardCopy(g.N, g.K, pq, bnY, sk[0], nil, sk[1], sk[2], masked, dy, sk[3], sk[3], g, dyk); err != nil {
						return err
					}
					return d.Conv2DBackward(g, x, dy, c.w, dw, nil, dx, nil)
				}}, run{"relu-fused", 2 * g.FLOPs(), func(i int) error {
					x, dy := c.at(i)
					if err := d.BatchNormBackwardCopy(g.N, g.K, pq, bnY, sk[0], sk[4], sk[1], sk[2], bnY, dy, sk[3], sk[3], g, dyk); err != nil {
						return err
					}
					return d.Conv2DBackward(g, x, dy, c.w, dw, nil, dx, nil)
				}})
			}
			if na > 0 {
				// The block's output y = max(bnIn + dx, 0), the conv's x.
				runs = append(runs, run{"add-apart", g.FLOPs(), func(i int) error {
					x, y := c.at(i)
					if err := d.AddReLU(bnIn, dx, x); err != nil {
						return err
					}
					return d.Conv2DForwardKeep(g, x, c.w, c.bias, y, true, xk)
				}}, run{"add-fused", g.FLOPs(), func(i int) error {
					x, y := c.at(i)
					if err := d.AddReLUKeep(bnIn, dx, x, ConvKeep{g, xk}); err != nil {
						return err
					}
					return d.Conv2DForwardKeep(g, x, c.w, c.bias, y, true, xk)
				}})
			}
			if xl > 0 {
				runs = append(runs, run{"tf32-apart", g.FLOPs(), func(i int) error {
					x, y := c.at(i)
					if err := d.BatchNormTrainForward(g.N, g.C, hw, bnIn, st[0], st[1], x, st[2], st[3], st[4], st[5], 0.1, 1e-5, true); err != nil {
						return err
					}
					return d.Conv2DForward(g, x, c.w, c.bias, y)
				}}, run{"tf32-fused", g.FLOPs(), func(i int) error {
					x, y := c.at(i)
					if err := d.BatchNormForwardKeep(true, g.N, g.C, hw, bnIn, st[0], st[1], x, st[2], st[3], st[4], st[5], 0.1, 1e-5, true, g, xt); err != nil {
						return err
					}
					return d.Conv2DForward(g, x, c.w, c.bias, y)
				}})
			}
			if yh {
				// as many bfloat16 outputs as c rotates float32 ones
				rot := len(c.ys)
				y16, err := d.NewBFloat16(rot * g.YLen())
				mustNil(b, err)
				defer y16.Free()
				ys := make([]*Buffer, rot)
				for j := range ys {
					ys[j], err = y16.Slice(j*g.YLen(), g.YLen())
					mustNil(b, err)
				}
				trip := func(x, y *Buffer) error {
					if err := d.Conv2DForward(g, x, c.w, nil, y); err != nil {
						return err
					}
					if err := d.BatchNormTrainForward(g.N, g.K, pq, y, sk[0], sk[4], bnY, sk[1], sk[2], nil, nil, 0.1, 1e-5, true); err != nil {
						return err
					}
					return d.BatchNormBackward(g.N, g.K, pq, y, sk[0], sk[1], sk[2], bnY, masked, sk[3], sk[3])
				}
				runs = append(runs, run{"bf16y-apart", g.FLOPs(), func(i int) error {
					x, y := c.at(i)
					return trip(x, y)
				}}, run{"bf16y-fused", g.FLOPs(), func(i int) error {
					x, _ := c.at(i)
					return trip(x, ys[i%rot])
				}})
				// the batch norm after the conv (reading its bfloat16
				// output) writing z, which the residual add+ReLU reads
				// beside the skip (bnY)
				z16, err := d.NewBFloat16(g.YLen())
				mustNil(b, err)
				defer z16.Free()
				addTrip := func(i int, z *Buffer) error {
					_, y := c.at(i)
					if err := d.BatchNormTrainForward(g.N, g.K, pq, ys[i%rot], sk[0], sk[4], z, sk[1], sk[2], nil, nil, 0.1, 1e-5, false); err != nil {
						return err
					}
					return d.AddReLU(bnY, z, y)
				}
				runs = append(runs, run{"bnadd-apart", g.FLOPs(), func(i int) error { return addTrip(i, masked) }},
					run{"bnadd-fused", g.FLOPs(), func(i int) error { return addTrip(i, z16) }})
			}
			if dxh {
				// the conv's input gradient on its round trip through the
				// backward pass of the batch norm before it, whose input
				// is bfloat16 in both modes: as many bfloat16 gradients as
				// c rotates float32 ones
				rot := len(c.xs)
				dz16, err := d.NewBFloat16(rot * g.XLen())
				mustNil(b, err)
				defer dz16.Free()
				x16, err := d.NewBFloat16(g.XLen())
				mustNil(b, err)
				defer x16.Free()
				dzs := make([]*Buffer, rot)
				for j := range dzs {
					dzs[j], err = dz16.Slice(j*g.XLen(), g.XLen())
					mustNil(b, err)
				}
				trip := func(dy, dz *Buffer) error {
					if err := d.Conv2DBackwardData(g, dy, c.w, dz); err != nil {
						return err
					}
					return d.BatchNormBackward(g.N, g.C, hw, x16, st[0], st[2], st[3], dz, dx, st[4], st[5])
				}
				runs = append(runs, run{"bf16dx-apart", g.FLOPs(), func(i int) error {
					x, y := c.at(i)
					return trip(y, x)
				}}, run{"bf16dx-fused", g.FLOPs(), func(i int) error {
					_, y := c.at(i)
					return trip(y, dzs[i%rot])
				}})
			}
			for _, r := range runs {
				b.Run("mode="+r.name, func(b *testing.B) {
					if strings.HasPrefix(r.name, "tf32-") {
						mustNil(b, d.SetPrecision(TF32))
						defer d.SetPrecision(BF16)
					}
					benchLaunch(b, d, r.flops, r.f)
				})
				if r.name == "fwd-copy" { // write the xs' values again, for the modes that read them
					for _, x := range c.xs {
						mustNil(b, d.BatchNormTrainForward(g.N, g.C, hw, bnIn, st[0], st[1], x, st[2], st[3], nil, nil, 0.1, 1e-5, true))
					}
				}
			}
		})
	}
}
