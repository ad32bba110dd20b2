package gpu

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
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

// BenchmarkConvPeer times, on a GPU, the three passes of every peerShapes
// shape with the kernel the dispatcher picks (Conv2DForward,
// Conv2DBackwardData, Conv2DBackwardFilter at the default FP32 precision),
// measured as benchGPU says and as scripts/torch-gpu-bench.py measures
// cuDNN on the same shapes: random data rotated through more than twice
// the L2, a warm-up, events around each launch, the median. The kernel's
// name is the last element of the benchmark's name; scripts/gpu-check.sh
// puts the two sides in one table. It is skipped on the simulator
// (BenchmarkConvSuite gives its figures).
//
//	go test -tags cuda -run '^$' -bench ConvPeer -benchtime 50x ./gpu
func BenchmarkConvPeer(b *testing.B) {
	d, err := Open(0)
	if err != nil {
		b.Skipf("no GPU: %v", err)
	}
	b.Cleanup(func() { d.Close() })
	b.Logf("device: %v", d)
	for _, s := range peerShapes {
		g := s.g
		// The buffers are allocated inside the shape's benchmark, so only
		// for the shapes -test.bench selects.
		b.Run("shape="+s.name, func(b *testing.B) {
			c := newConvBufs(b, d, g)
			defer c.free()
			runs := [numConvPasses]func(i int) error{
				ConvFwd:       func(i int) error { x, y := c.at(i); return d.Conv2DForward(g, x, c.w, c.bias, y) },
				ConvBwdData:   func(i int) error { dx, dy := c.at(i); return d.Conv2DBackwardData(g, dy, c.w, dx) },
				ConvBwdFilter: func(i int) error { x, dy := c.at(i); return d.Conv2DBackwardFilter(g, x, dy, c.w) },
			}
			for p, run := range runs {
				name := fmt.Sprintf("pass=%s/kernel=%s", peerPassNames[p], d.ConvKernelFor(ConvPass(p), g))
				b.Run(name, func(b *testing.B) { benchLaunch(b, d, g.FLOPs(), run) })
			}
		})
	}
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
