package cpubackend

import (
	"fmt"
	"testing"

	"github.com/convtrain/convtrain/host/backend"
)

// TestCountCorrectAndGather checks the two host-side helpers of the CPU
// backend on hand-made cases: ties go to the first maximum.
func TestCountCorrectAndGather(t *testing.T) {
	be := newCPU(t)
	logits, _ := be.NewTensor(8)
	labels, _ := be.NewIndexTensor(4)
	acc, _ := be.NewTensor(1)
	mustNil(t, be.Upload(logits, []float32{1, 2, 5, 5, 3, 3, -1, -2}))
	mustNil(t, be.UploadIndex(labels, []int32{1, 1, 0, 0}))
	mustNil(t, be.Fill(acc, 10))
	mustNil(t, be.CountCorrect(4, 2, logits, labels, acc))
	got := make([]float32, 1)
	mustNil(t, be.Download(got, acc))
	if got[0] != 13 { // row 0 right, row 1 tie → 0 wrong, row 2 tie → 0 right, row 3 right
		t.Errorf("CountCorrect added to 10 = %g, want 13", got[0])
	}
	src, _ := be.NewIndexTensor(6)
	idx, _ := be.NewIndexTensor(2)
	dst, _ := be.NewIndexTensor(4)
	mustNil(t, be.UploadIndex(src, []int32{10, 11, 20, 21, 30, 31}))
	mustNil(t, be.UploadIndex(idx, []int32{2, 0}))
	mustNil(t, be.Gather(2, src, idx, dst))
	ct := dst.(*cpuTensor)
	if fmt.Sprint(ct.i) != "[30 31 10 11]" {
		t.Errorf("Gather = %v, want [30 31 10 11]", ct.i)
	}
}

func newCPU(t testing.TB) backend.Backend {
	t.Helper()
	be, err := NewCPUBackend(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}
