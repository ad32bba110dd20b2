package train

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// rgbSynthetic returns n synthetic 12×12 images of three channels, each
// channel a synthetic set of its own seed with its bytes scaled by
// 1/(c+1), so that every channel has its own standardisation.
func rgbSynthetic(t *testing.T, n int, seed uint64) *data.Dataset {
	t.Helper()
	const size = 12
	d := &data.Dataset{Name: fmt.Sprintf("rgb-%d", seed), N: n, C: 3, H: size, W: size, Classes: 4,
		Images: make([]uint8, n*3*size*size)}
	for c := range 3 {
		s, err := data.Synthetic(n, size, 4, seed+uint64(c)*100)
		backendtest.MustNil(t, err)
		if c == 0 {
			d.Labels = s.Labels
		}
		for i := range n {
			for j := range size * size {
				d.Images[(i*3+c)*size*size+j] = s.Images[i*size*size+j] / uint8(c+1)
			}
		}
	}
	return d
}

// TestPinnedBackends trains a small network on three-channel images for
// two epochs, with and without augmentation, on the CPU backend and on
// the GPU backend on the simulator, and requires each epoch's loss and
// accuracies and the final weights (an FNV-1a hash of their bits) to be
// those that the trainer reported when it uploaded its sets as float32
// and augmented them in a second pass (d78c7bf), on each backend: the
// batches gathered from bytes feed the model the same bits. The
// simulator's values moved once since, with the dispatcher's cost model
// (issue 16): the conv's forward (batch 12, C·R·S = 27, K = 4) runs the
// 128×64 implicit GEMM with the ReLU fused, 10 blocks of 4 k-tiles, where
// the tile-utilisation threshold ran the direct kernel (19 blocks, then a
// ReLU launch): another sum order, the same data path.
func TestPinnedBackends(t *testing.T) {
	trainSet, test := rgbSynthetic(t, 96, 1), rgbSynthetic(t, 20, 2)
	spec := smallSpec(nn.SoftmaxCE, 4)
	spec.C = 3
	want := map[string]string{
		"backend=cpu,augment=none":       "0x3ff6da3700000000 0x3fdaaaaaaaaaaaab 0x3fd279c00ccccccd 0x3feccccccccccccd; 0x3fccd393a0000000 0x3fec555555555555 0x3fa9b960f6666666 0x3fee666666666666; weights 0x96b63d915d367ffc",
		"backend=cpu,augment=crop2,flip": "0x3ffee7b300000000 0x3fceaaaaaaaaaaab 0x3ff7fe1e66666666 0x3fd0000000000000; 0x3ff9b4cf60000000 0x3fd3555555555555 0x3ff4b7751999999a 0x3fd3333333333333; weights 0x62403db3807ce385",
		"backend=sim,augment=none":       "0x3ff6da3720000000 0x3fdaaaaaaaaaaaab 0x3fd279c08ccccccd 0x3feccccccccccccd; 0x3fccd393c0000000 0x3fec555555555555 0x3fa9b96133333333 0x3fee666666666666; weights 0x777153a0f694f160",
		"backend=sim,augment=crop2,flip": "0x3ffee7b320000000 0x3fceaaaaaaaaaaab 0x3ff7fe1e86666666 0x3fd0000000000000; 0x3ff9b4cf60000000 0x3fd3555555555555 0x3ff4b7751999999a 0x3fd3333333333333; weights 0x39d31b5ec801bb4a",
	}
	var got []string
	for _, bk := range []string{"cpu", "sim"} {
		for _, aug := range []data.Augment{{}, {Pad: 2, Flip: true}} {
			name := fmt.Sprintf("backend=%s,augment=%s", bk, aug)
			var be backend.Backend
			if bk == "cpu" {
				be = backendtest.CPU(t)
			} else {
				be, _ = backendtest.Sim(t)
			}
			m, err := nn.NewModel(be, spec, 5)
			backendtest.MustNil(t, err)
			tr, err := NewTrainer(m, trainSet, test, Config{Epochs: 2, Batch: 12, LR: 0.05, Momentum: 0.9, Seed: 3, Augment: aug})
			backendtest.MustNil(t, err)
			ems, err := tr.Run(context.Background())
			backendtest.MustNil(t, err)
			w, err := m.ParamValues()
			backendtest.MustNil(t, err)
			backendtest.MustNil(t, tr.Close())
			backendtest.MustNil(t, m.Close())
			h := fnv.New64a()
			for _, p := range w {
				for _, v := range p {
					b := math.Float32bits(v)
					h.Write([]byte{byte(b), byte(b >> 8), byte(b >> 16), byte(b >> 24)})
				}
			}
			var s strings.Builder
			for _, e := range ems {
				fmt.Fprintf(&s, "%#x %#x %#x %#x; ", math.Float64bits(e.Loss), math.Float64bits(e.TrainAcc), math.Float64bits(e.TestLoss), math.Float64bits(e.TestAcc))
			}
			fmt.Fprintf(&s, "weights %#x", h.Sum64())
			got = append(got, fmt.Sprintf("%q: %q,", name, s.String()))
			if s.String() != want[name] {
				t.Errorf("%s: %s, want %s", name, s.String(), want[name])
			}
		}
	}
	if t.Failed() {
		t.Logf("got:\n%s", strings.Join(got, "\n"))
	}
}
