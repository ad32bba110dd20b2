package cpubackend

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/data"
)

// TestAugmentBatch checks AugmentBatch against host/data's reference:
// image i of the output is the training image rows[i] augmented by its
// own draw (so a repeated row gets the same crop), for several sizes,
// paddings and steps; dst is poisoned with NaN first, so that an element
// left unwritten fails.
func TestAugmentBatch(t *testing.T) {
	be := newCPU(t)
	for _, tc := range []struct {
		m, c, h, w int
		rows       []int32
		aug        data.Augment
		step       uint64
	}{
		{5, 1, 1, 1, []int32{0, 4}, data.Augment{Pad: 1, Flip: true}, 0},
		{7, 3, 5, 4, []int32{6, 0, 3, 3, 1}, data.Augment{Pad: 2, Flip: true}, 3},
		{7, 3, 5, 4, []int32{2, 2}, data.Augment{Pad: 4}, 1},
		{4, 2, 6, 7, []int32{1, 3, 0}, data.Augment{Flip: true}, 9},
		{4, 2, 6, 7, []int32{1, 3, 0}, data.Augment{}, 9},
	} {
		t.Run(fmt.Sprintf("M=%d,C=%d,H=%d,W=%d,N=%d,aug=%v,step=%d", tc.m, tc.c, tc.h, tc.w, len(tc.rows), tc.aug, tc.step), func(t *testing.T) {
			size := tc.c * tc.h * tc.w
			srcV := make([]float32, tc.m*size)
			for i := range srcV {
				srcV[i] = float32(i%97) - 40
			}
			src, _ := be.NewTensor(len(srcV))
			rows, _ := be.NewIndexTensor(len(tc.rows))
			dst, _ := be.NewTensor(len(tc.rows) * size)
			mustNil(t, be.Upload(src, srcV))
			mustNil(t, be.UploadIndex(rows, tc.rows))
			mustNil(t, be.Fill(dst, float32(math.NaN())))
			const seed = 11
			p := backend.AugmentParams{Pad: tc.aug.Pad, Flip: tc.aug.Flip, Seed: seed, Step: tc.step}
			mustNil(t, be.AugmentBatch(p, len(tc.rows), tc.c, tc.h, tc.w, src, rows, dst))
			got := make([]float32, dst.Len())
			mustNil(t, be.Download(got, dst))
			gathered := make([]float32, 0, len(got))
			index := make([]int, len(tc.rows))
			for i, r := range tc.rows {
				gathered = append(gathered, srcV[int(r)*size:(int(r)+1)*size]...)
				index[i] = int(r)
			}
			want := make([]float32, len(got))
			mustNil(t, tc.aug.Batch(want, gathered, len(tc.rows), tc.c, tc.h, tc.w, seed, tc.step, index))
			if !slices.Equal(got, want) {
				t.Errorf("AugmentBatch = %v, want %v", got, want)
			}
			if tc.aug == (data.Augment{}) && !slices.Equal(got, gathered) {
				t.Errorf("AugmentBatch without augmentation = %v, want the gathered images %v", got, gathered)
			}
		})
	}
}

// TestAugmentBatchErrors checks that bad arguments are errors that say
// what is wrong, before any work.
func TestAugmentBatchErrors(t *testing.T) {
	be := newCPU(t)
	src, _ := be.NewTensor(3 * 4)
	rows, _ := be.NewIndexTensor(2)
	dst, _ := be.NewTensor(2 * 4)
	mustNil(t, be.UploadIndex(rows, []int32{0, 2}))
	bad, _ := be.NewIndexTensor(2)
	mustNil(t, be.UploadIndex(bad, []int32{0, 3}))
	p := backend.AugmentParams{Pad: 1, Flip: true}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"pad=65", be.AugmentBatch(backend.AugmentParams{Pad: 65}, 2, 1, 2, 2, src, rows, dst), "padding 65"},
		{"n=0", be.AugmentBatch(p, 0, 1, 2, 2, src, rows, dst), "N=0"},
		{"rows=outside", be.AugmentBatch(p, 2, 1, 2, 2, src, bad, dst), "rows[1] = 3 is outside [0, 3)"},
		{"dst=short", be.AugmentBatch(p, 2, 1, 2, 3, src, rows, dst), "dst has 8 elements, want 12"},
		{"dst=src", be.AugmentBatch(p, 2, 1, 2, 2, dst, rows, dst), "dst is src"},
		{"rows=float", be.AugmentBatch(p, 2, 1, 2, 2, src, dst, dst), "rows is a float32 tensor"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: AugmentBatch = %v, want an error containing %q", tc.name, tc.err, tc.want)
		}
	}
}
