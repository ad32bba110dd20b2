package nn

import (
	"errors"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/backendtest"
)

// TestIndexView runs the rules of Backend.IndexView on the CPU backend and
// on the GPU backend (simulator): a view gathers the rows its part of the
// index tensor names, sees what is uploaded to that tensor later, refuses
// writes and Free, and dies with the tensor it views. On the GPU the range
// checked before a gather is the viewed tensor's current one.
func TestIndexView(t *testing.T) {
	gpuBE, _ := backendtest.Sim(t)
	for _, be := range []backend.Backend{backendtest.CPU(t), gpuBE} {
		t.Run(be.Name(), func(t *testing.T) {
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			src, err := be.NewTensor(5 * 2) // rows r = (10r, 10r+1)
			must(err)
			must(be.Upload(src, []float32{0, 1, 10, 11, 20, 21, 30, 31, 40, 41}))
			order, err := be.NewIndexTensor(6)
			must(err)
			must(be.UploadIndex(order, []int32{4, 0, 3, 1, 2, 2}))
			v, err := be.IndexView(order, 2, 3) // 3, 1, 2
			must(err)
			vv, err := be.IndexView(v, 1, 2) // a view of a view: 1, 2
			must(err)
			dst, err := be.NewTensor(3 * 2)
			must(err)
			gather := func(idx backend.Tensor, want []float32) {
				t.Helper()
				d, err := be.NewTensor(len(want))
				must(err)
				must(be.Gather(2, src, idx, d))
				got := make([]float32, len(want))
				must(be.Download(got, d))
				must(be.Free(d))
				if !slices.Equal(got, want) {
					t.Errorf("gather through a view: got %v, want %v", got, want)
				}
			}
			gather(v, []float32{30, 31, 10, 11, 20, 21})
			gather(vv, []float32{10, 11, 20, 21})
			// A later upload to the viewed tensor is what the view reads.
			must(be.UploadIndex(order, []int32{0, 0, 4, 4, 0, 1}))
			gather(v, []float32{40, 41, 40, 41, 0, 1})
			// A value past the source's rows, uploaded to the viewed tensor
			// after the view was made, is refused before any work.
			must(be.UploadIndex(order, []int32{0, 0, 9, 1, 2, 3}))
			if err := be.Gather(2, src, v, dst); !errors.Is(err, backend.ErrTensor) {
				t.Errorf("gather through a view with an index past the rows: %v, want ErrTensor", err)
			}
			must(be.UploadIndex(order, []int32{0, 1, 2, 3, 4, 0}))

			labels, err := be.NewIndexTensor(3)
			must(err)
			x, err := be.NewTensor(4 * 4)
			must(err)
			y, err := be.NewTensor(4)
			must(err)
			pool := geom.PoolGeom{N: 1, C: 1, H: 4, W: 4, R: 2, S: 2, StrideH: 2, StrideW: 2}
			am, err := be.IndexView(order, 0, 4)
			must(err)
			cases := []struct {
				name string
				err  error
			}{
				{"upload into a view", be.UploadIndex(v, []int32{0, 0, 0})},
				{"gather into a view", be.Gather(1, labels, v, v)},
				{"argmax into a view", be.MaxPoolForward(pool, x, y, am)},
				{"free a view", be.Free(v)},
				{"view past the end", func() error { _, err := be.IndexView(order, 4, 3); return err }()},
				{"view of no elements", func() error { _, err := be.IndexView(order, 0, 0); return err }()},
				{"view at a negative offset", func() error { _, err := be.IndexView(order, -1, 2); return err }()},
				{"view of a float32 tensor", func() error { _, err := be.IndexView(src, 0, 2); return err }()},
			}
			for _, c := range cases {
				if !errors.Is(c.err, backend.ErrTensor) {
					t.Errorf("%s: %v, want an error wrapping ErrTensor", c.name, c.err)
				}
			}
			// Still intact after the refused calls.
			gather(v, []float32{20, 21, 30, 31, 40, 41})

			must(be.Free(order))
			if err := be.Gather(2, src, v, dst); !errors.Is(err, backend.ErrTensor) {
				t.Errorf("gather through a view of a freed tensor: %v, want ErrTensor", err)
			}
			if err := be.Gather(2, src, vv, dstOf(t, be, 2*2)); !errors.Is(err, backend.ErrTensor) {
				t.Errorf("gather through a view of a view of a freed tensor: %v, want ErrTensor", err)
			}
		})
	}
}

func dstOf(t *testing.T, be backend.Backend, n int) backend.Tensor {
	t.Helper()
	d, err := be.NewTensor(n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
