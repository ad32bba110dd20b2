package ckpt

import (
	"math"
	"testing"

	"github.com/convtrain/convtrain/host/backendtest"
	"github.com/convtrain/convtrain/host/data"
)

// TestLoadCommittedCheckpoint loads testdata/v1-default-synthetic.safetensors,
// written by the code before the package split (5749d81) after two epochs
// of the default network on synthetic digits, and requires its position
// and the logits of four test images to be what that code computed, bit
// for bit: checkpoints written by earlier versions keep loading and
// predicting the same.
func TestLoadCommittedCheckpoint(t *testing.T) {
	c, err := LoadCheckpoint("testdata/v1-default-synthetic.safetensors")
	backendtest.MustNil(t, err)
	if c.State.Epoch != 2 || c.State.Step != 36 || c.Config.Batch != 32 {
		t.Errorf("position: epoch %d, step %d, batch %d; want 2, 36, 32", c.State.Epoch, c.State.Step, c.Config.Batch)
	}
	m, err := c.NewModel(backendtest.CPU(t))
	backendtest.MustNil(t, err)
	defer m.Close()
	test, err := data.Synthetic(200, 28, 10, 2)
	backendtest.MustNil(t, err)
	set, err := m.UploadChannels(test, c.Norm)
	backendtest.MustNil(t, err)
	defer set.Free(m.Backend())
	b, err := m.NewBatch(4)
	backendtest.MustNil(t, err)
	defer b.Free(m.Backend())
	backendtest.MustNil(t, m.Load(b, set, []int32{0, 1, 2, 3}))
	backendtest.MustNil(t, m.Forward(b))
	got := make([]float32, 40)
	backendtest.MustNil(t, m.Backend().Download(got, b.Output()))
	want := []uint32{0x4114a4d4, 0xbef72c3d, 0x3eb2f6ff, 0xbf859ad3, 0xbfb10360, 0xc011104b, 0xc02cf2f8, 0xbe856eb1, 0xbf8bdbfe, 0x40bd7087,
		0xbfa805f7, 0x40c10e02, 0x3f3ef88d, 0x3e35aacf, 0xc0a66507, 0xbfde316a, 0xbfeb7186, 0x3f4e6642, 0xbf38ff72, 0x4012158c,
		0x3f4547c4, 0x3ffc5803, 0x40db5907, 0x402086fd, 0xbf4843f1, 0xc084b237, 0xc03047a2, 0xc01f3925, 0xbff91fd2, 0xbfcafe2f,
		0xc0cdd38f, 0xbfd2b4aa, 0x3fdc11d5, 0x40ff5390, 0x40978d65, 0xbfc96f5b, 0xbf1270f7, 0xbf073354, 0xc09afe76, 0xc023d1ae}
	for i, w := range want {
		if math.Float32bits(got[i]) != w {
			t.Fatalf("logit %d (image %d, class %d) = %g, want %g", i, i/10, i%10, got[i], math.Float32frombits(w))
		}
	}
}
