package gpu

import (
	"errors"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// TestGraphSim records launches on the simulator and replays them: nothing
// runs while recording, a replay runs the recorded launches with the
// arguments they had (reading what device memory holds when it runs), it
// counts as one launch, and what a graph cannot hold is refused while
// recording.
func TestGraphSim(t *testing.T) {
	d := openSim(t)
	const n = 37
	a, err := d.NewFloat32(n)
	mustNil(t, err)
	b, err := d.NewFloat32(n)
	mustNil(t, err)
	y, err := d.NewFloat32(n)
	mustNil(t, err)
	z, err := d.NewFloat32(n)
	mustNil(t, err)
	ha, hb := make([]float32, n), make([]float32, n)
	for i := range ha {
		ha[i], hb[i] = float32(i), float32(2*i+1)
	}
	mustNil(t, a.Upload(ha))
	mustNil(t, b.Upload(hb))

	mustNil(t, d.BeginCapture())
	if err := d.BeginCapture(); !errors.Is(err, ErrCapturing) {
		t.Errorf("second BeginCapture error = %v, want ErrCapturing", err)
	}
	mustNil(t, d.Add(a, b, y)) // y = a + b
	mustNil(t, z.CopyFrom(y))  // z = y
	mustNil(t, d.Add(z, b, y)) // y = a + 2b
	for name, err := range map[string]error{
		"Upload":      a.Upload(ha),
		"Download":    a.Download(ha),
		"Synchronize": d.Synchronize(),
		"NewFloat32": func() error {
			_, err := d.NewFloat32(n)
			return err
		}(),
	} {
		if !errors.Is(err, ErrCapturing) {
			t.Errorf("%s while capturing: error = %v, want ErrCapturing", name, err)
		}
	}
	before := d.Launches()
	g, err := d.EndCapture()
	mustNil(t, err)
	defer g.Destroy()
	if g.Launches() != 2 {
		t.Errorf("graph holds %d launches, want 2", g.Launches())
	}
	got := make([]float32, n)
	mustNil(t, y.Download(got))
	for i, v := range got {
		if v != 0 {
			t.Fatalf("after recording y[%d] = %g, want 0 (nothing runs while recording)", i, v)
		}
	}
	for rep := range 3 {
		// New inputs before each replay: the graph reads them.
		for i := range ha {
			ha[i] = float32(i * (rep + 2))
		}
		mustNil(t, a.Upload(ha))
		mustNil(t, g.Launch())
		mustNil(t, y.Download(got))
		for i, v := range got {
			if want := ha[i] + 2*hb[i]; v != want {
				t.Fatalf("replay %d: y[%d] = %g, want %g", rep+1, i, v, want)
			}
		}
	}
	if l := d.Launches() - before; l != 3 {
		t.Errorf("3 replays counted as %d launches, want 3", l)
	}
	if gl := d.GraphLaunches(); gl != 3 {
		t.Errorf("GraphLaunches = %d, want 3", gl)
	}
	mustNil(t, g.Destroy())
	if err := g.Launch(); err == nil {
		t.Errorf("Launch after Destroy: no error")
	}
	mustNil(t, d.BeginCapture())
	if _, err := d.EndCapture(); err == nil {
		t.Errorf("EndCapture of an empty recording: no error")
	}
	if _, err := d.EndCapture(); err == nil {
		t.Errorf("EndCapture without BeginCapture: no error")
	}
}

// mustNil fails the test (or benchmark) at once on an error.
func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestGraphKeepsWorkspace records a split-K weight gradient, whose partial
// sums go to a workspace from the buffer cache: the graph keeps that
// workspace (a buffer made after recording never gets it, which a replay
// would overwrite) until it is destroyed, and the replay gives the eager
// result.
func TestGraphKeepsWorkspace(t *testing.T) {
	d := openSim(t)
	var g geom.ConvGeom
	found := false
	for _, n := range []int{2, 4, 8, 16} {
		g = cg(n, 8, 12, 12, 16, 5, 5, 1, 1, 0, 0)
		if s, _ := wgradSplits(g); s > 1 && wgradKernel(d.convAlgoFor(ConvBwdFilter, g), g) != kConvBwdFilter {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("no split-K shape among the candidates")
	}
	rng := newRand(t.Name())
	x, dy := uniform(rng, g.XLen()), uniform(rng, g.YLen())
	bx, err := d.NewFloat32(g.XLen())
	mustNil(t, err)
	mustNil(t, bx.Upload(x))
	bdy, err := d.NewFloat32(g.YLen())
	mustNil(t, err)
	mustNil(t, bdy.Upload(dy))
	eager, err := d.NewFloat32(g.WLen())
	mustNil(t, err)
	dw, err := d.NewFloat32(g.WLen())
	mustNil(t, err)
	mustNil(t, d.Conv2DBackwardFilter(g, bx, bdy, eager))

	mustNil(t, d.BeginCapture())
	mustNil(t, d.Conv2DBackwardFilter(g, bx, bdy, dw))
	gr, err := d.EndCapture()
	mustNil(t, err)
	if len(gr.held) != 1 {
		t.Fatalf("the graph holds %d workspaces, want 1", len(gr.held))
	}
	ws := gr.held[0]
	// Buffers of the workspace's size made now never get it.
	var made []*Buffer
	for range 3 {
		b, err := d.NewFloat32(int(ws.size / 4))
		mustNil(t, err)
		if b.ptr == ws.p {
			t.Errorf("a buffer made after recording got the graph's workspace %#x", uint64(ws.p))
		}
		made = append(made, b)
	}
	mustNil(t, gr.Launch())
	want, got := make([]float32, g.WLen()), make([]float32, g.WLen())
	mustNil(t, eager.Download(want))
	mustNil(t, dw.Download(got))
	checkSameBits(t, "dw replayed", got, want)
	mustNil(t, gr.Destroy())
	inPool := false
	for _, p := range d.pool[ws.size] {
		inPool = inPool || p == ws.p
	}
	if !inPool {
		t.Errorf("after Destroy the workspace is not back in the cache")
	}
	for _, b := range made {
		mustNil(t, b.Free())
	}
}
