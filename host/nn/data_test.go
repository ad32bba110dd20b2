package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
)

// TestUploadMemory counts the device memory that UploadChannels takes on
// the GPU backend (on the simulator): the images as bytes, N·C·H·W, the
// table of C·256 float32 and the int32 labels, each rounded up to the
// allocator's 256 bytes: a quarter of what float32 inputs took (4·N·C·H·W
// bytes). The last case has the shape of Fashion-MNIST's (and MNIST's)
// training set.
func TestUploadMemory(t *testing.T) {
	round := func(n int) int64 { return (int64(n) + 255) / 256 * 256 }
	rgb := &data.Dataset{Name: "rgb", N: 50, C: 3, H: 10, W: 10, Classes: 3, Images: make([]uint8, 50*3*10*10), Labels: make([]uint8, 50)}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range rgb.Images {
		rgb.Images[i] = uint8(rng.IntN(256))
	}
	for i := range rgb.Labels {
		rgb.Labels[i] = uint8(i % 3)
	}
	gray, err := data.Synthetic(128, 16, 4, 1)
	backendtest.MustNil(t, err)
	sets := []*data.Dataset{rgb, gray}
	if !testing.Short() {
		fashion, err := data.Synthetic(60000, 28, 10, 1)
		backendtest.MustNil(t, err)
		sets = append(sets, fashion)
	}
	for _, d := range sets {
		t.Run(fmt.Sprintf("N=%d,C=%d,H=%d,W=%d", d.N, d.C, d.H, d.W), func(t *testing.T) {
			be, dev := backendtest.Sim(t)
			spec := Spec{C: d.C, H: d.H, W: d.W, Loss: SoftmaxCE, Layers: []LayerSpec{{Kind: Flatten}, DenseLayer(d.Classes)}}
			m, err := NewModel(be, spec, 1)
			backendtest.MustNil(t, err)
			defer m.Close()
			before := dev.MemStats().BytesInUse
			set, err := m.UploadChannels(d, d.ChannelNorm())
			backendtest.MustNil(t, err)
			got := dev.MemStats().BytesInUse - before
			pixels := d.N * d.C * d.H * d.W
			if want := round(pixels) + round(4*d.C*256) + round(4*d.N); got != want {
				t.Errorf("the set takes %d bytes of device memory, want %d: %d image bytes, %d of the table, %d of the labels",
					got, want, round(pixels), round(4*d.C*256), round(4*d.N))
			}
			if f32 := round(4*pixels) + round(4*d.N); 4*got < f32 {
				t.Errorf("the set takes %d bytes, not a quarter of float32 inputs' %d", got, f32)
			}
			t.Logf("%d images of %d×%d×%d: %d bytes on the device (%d of them the images); float32 inputs would take %d",
				d.N, d.C, d.H, d.W, got, round(pixels), round(4*pixels)+round(4*d.N))
			backendtest.MustNil(t, set.Free(be))
			if after := dev.MemStats().BytesInUse; after != before {
				t.Errorf("%d bytes in use after Free, %d before the upload", after, before)
			}
		})
	}
}
