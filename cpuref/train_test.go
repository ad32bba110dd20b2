package cpuref

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// tinyNet is conv 1→4 3×3 pad 1, ReLU, max-pool 2, dense 64→2,
// softmax-CE, on 8×8 images, trained with the float32 path (Conv2D).
type tinyNet struct {
	conv       *Conv2D
	cg         geom.ConvGeom
	pg         geom.PoolGeom
	w, b       []float32 // conv (4,1,3,3), (4)
	dw, db     []float32
	fw, fb     []float32 // dense (2,64), (2)
	dfw, dfb   []float32
	vel        [][]float32
	y, r, p    []float32
	arg        []int32
	logits, dl []float32
	dp, dr, dy []float32
}

func newTinyNet(t *testing.T, n int, rng *rand.Rand) *tinyNet {
	cg := geom.ConvGeom{N: n, C: 1, H: 8, W: 8, K: 4, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	pg := geom.PoolGeom{N: n, C: 4, H: 8, W: 8, R: 2, S: 2, StrideH: 2, StrideW: 2}
	conv, err := NewConv2D(cg)
	must(t, err)
	he := func(fanIn, size int) []float32 {
		s := make([]float32, size)
		for i := range s {
			s[i] = float32(rng.NormFloat64() * math.Sqrt(2/float64(fanIn)))
		}
		return s
	}
	m := &tinyNet{conv: conv, cg: cg, pg: pg,
		w: he(9, 36), b: make([]float32, 4), dw: make([]float32, 36), db: make([]float32, 4),
		fw: he(64, 128), fb: make([]float32, 2), dfw: make([]float32, 128), dfb: make([]float32, 2),
		y: make([]float32, cg.YLen()), r: make([]float32, cg.YLen()), p: make([]float32, pg.YLen()),
		arg: make([]int32, pg.YLen()), logits: make([]float32, 2*n), dl: make([]float32, 2*n),
		dp: make([]float32, pg.YLen()), dr: make([]float32, cg.YLen()), dy: make([]float32, cg.YLen()),
	}
	for _, p := range [][]float32{m.w, m.b, m.fw, m.fb} {
		m.vel = append(m.vel, make([]float32, len(p)))
	}
	return m
}

// step runs one SGD step on the batch x (N,1,8,8) and returns the loss.
func (m *tinyNet) step(t *testing.T, x []float32, labels []int32) float32 {
	n := m.cg.N
	must(t, m.conv.Forward(x, m.w, m.b, m.y))
	must(t, ReLUForward(m.y, m.r))
	must(t, MaxPoolForward(m.pg, m.r, m.p, m.arg))
	must(t, DenseForward(n, 64, 2, m.p, m.fw, m.fb, m.logits))
	loss, err := SoftmaxCrossEntropy(n, 2, m.logits, labels, m.dl)
	must(t, err)
	must(t, DenseBackward(n, 64, 2, m.p, m.fw, m.dl, m.dp, m.dfw, m.dfb))
	must(t, MaxPoolBackward(m.pg, m.dp, m.arg, m.dr))
	must(t, ReLUBackward(m.y, m.dr, m.dy))
	must(t, m.conv.BackwardFilter(x, m.dy, m.dw, m.db))
	for i, pg := range [][2][]float32{{m.w, m.dw}, {m.b, m.db}, {m.fw, m.dfw}, {m.fb, m.dfb}} {
		must(t, SGDStep(pg[0], pg[1], m.vel[i], 0.05, 0.9, 1e-4))
	}
	return loss
}

// barImages returns n noisy 8×8 images: label 0 has a horizontal bar, label
// 1 a vertical one, at a random position.
func barImages(rng *rand.Rand, n int) ([]float32, []int32) {
	x, labels := make([]float32, n*64), make([]int32, n)
	for i := range n {
		img := x[i*64 : (i+1)*64]
		for j := range img {
			img[j] = float32(0.3 * rng.NormFloat64())
		}
		labels[i] = int32(rng.IntN(2))
		at := rng.IntN(8)
		for j := range 8 {
			if labels[i] == 0 {
				img[at*8+j] += 1
			} else {
				img[j*8+at] += 1
			}
		}
	}
	return x, labels
}

// train runs 300 SGD steps of batch 16 from a fixed seed and returns the
// mean loss of the first and last 20 steps and the final weights.
func trainTiny(t *testing.T) (first, last float64, weights []float32) {
	rng := newRand(42)
	const n, steps = 16, 300
	m := newTinyNet(t, n, rng)
	for s := range steps {
		x, labels := barImages(rng, n)
		loss := float64(m.step(t, x, labels))
		if s < 20 {
			first += loss / 20
		}
		if s >= steps-20 {
			last += loss / 20
		}
	}
	return first, last, slices.Concat(m.w, m.b, m.fw, m.fb)
}

// TestTrainingReducesLoss trains a tiny conv net on a synthetic problem:
// the loss must fall by a factor of 10 (from about ln 2), and two runs
// from the same seed must give bit-identical weights.
func TestTrainingReducesLoss(t *testing.T) {
	first, last, w1 := trainTiny(t)
	t.Logf("mean loss: first 20 steps %.4g, last 20 steps %.4g", first, last)
	if !(last < first/10) {
		t.Errorf("mean loss of the last 20 steps = %.4g, want < %.4g (a tenth of the first 20 steps', %.4g)", last, first/10, first)
	}
	_, _, w2 := trainTiny(t)
	checkClose(t, "weights of a second run", w2, w1, 0, 0)
}
