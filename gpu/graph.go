package gpu

import (
	"errors"
	"fmt"
)

// Graph is a recorded sequence of launches and device-to-device copies,
// replayed as one unit (Launch): on a GPU a CUDA graph (stream capture,
// cuGraphInstantiate, cuGraphLaunch), on the simulator the recorded
// launches run again in order, with the same arguments.
//
// A replay runs with exactly the arguments recorded: the addresses and
// scalars of every launch are fixed. What must change from one replay to
// the next (a learning rate, a step number, an offset into an index
// buffer) is read by the kernels from device memory, which the host
// updates with an upload between replays (uploads are not part of a
// graph).
type Graph struct {
	d        *Device
	g        graph
	launches int // kernel launches recorded
	done     bool
	held     []heldScratch // workspaces the recorded launches use, released by Destroy
}

// BeginCapture starts recording: until EndCapture, launches and
// device-to-device copies are recorded instead of run. While recording,
// what cannot be part of a graph is refused with an error wrapping
// ErrCapturing: creating a buffer (its zeroing is a launch), uploading,
// downloading, synchronising and recording events. A failed call leaves
// the recording going; EndCapture ends it either way. Workspaces that
// recorded launches take from the buffer cache stay with the graph until
// it is destroyed.
func (d *Device) BeginCapture() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("gpu: begin capture: device %w", ErrClosed)
	}
	if d.capturing {
		return fmt.Errorf("gpu: begin capture: %w", ErrCapturing)
	}
	if err := d.drv.BeginCapture(); err != nil {
		return fmt.Errorf("gpu: begin capture: %w", err)
	}
	d.capturing, d.captured = true, 0
	return nil
}

// EndCapture ends the recording begun by BeginCapture and returns the
// graph of what was recorded, ready to Launch. An empty recording is an
// error.
func (d *Device) EndCapture() (*Graph, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.capturing {
		return nil, fmt.Errorf("gpu: end capture: not capturing")
	}
	d.capturing = false
	held := d.held
	d.held = nil
	g, err := d.drv.EndCapture()
	if err != nil {
		d.releaseHeldLocked(held)
		return nil, fmt.Errorf("gpu: end capture: %w", err)
	}
	if d.captured == 0 {
		d.releaseHeldLocked(held)
		return nil, errors.Join(fmt.Errorf("gpu: end capture: nothing was recorded"), g.Destroy())
	}
	return &Graph{d: d, g: g, launches: d.captured, held: held}, nil
}

// Capturing reports whether a recording is going on.
func (d *Device) Capturing() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.capturing
}

// ErrCapturing is wrapped by the errors of the calls a recording refuses.
var ErrCapturing = errors.New("not allowed while a graph is being recorded")

// notCapturing returns an error wrapping ErrCapturing while recording. The
// caller holds d.mu.
func (d *Device) notCapturing(op string) error {
	if d.capturing {
		return fmt.Errorf("gpu: %s: %w", op, ErrCapturing)
	}
	return nil
}

// Launches is the number of kernel launches the graph holds.
func (g *Graph) Launches() int { return g.launches }

// Launch queues one replay of the graph. It counts as one launch in
// Device.Launches (one call issued by the host).
func (g *Graph) Launch() error {
	d := g.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if g.done {
		return fmt.Errorf("gpu: graph launch: graph destroyed")
	}
	if d.closed {
		return fmt.Errorf("gpu: graph launch: device %w", ErrClosed)
	}
	if err := d.notCapturing("graph launch"); err != nil {
		return err
	}
	if err := g.g.Launch(); err != nil {
		return fmt.Errorf("gpu: graph launch (%d kernels): %w", g.launches, err)
	}
	d.launches++
	d.graphLaunches++
	return nil
}

// Destroy releases the graph; destroying twice is not an error.
func (g *Graph) Destroy() error {
	d := g.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if g.done || d.closed {
		g.done = true
		return nil
	}
	g.done = true
	err := g.g.Destroy()
	// The graph launches queued before are stream-ordered before any later
	// use of the workspaces.
	d.releaseHeldLocked(g.held)
	g.held = nil
	if err != nil {
		return fmt.Errorf("gpu: destroy graph: %w", err)
	}
	return nil
}

// releaseHeldLocked returns a graph's workspaces to the cache; the caller
// holds d.mu.
func (d *Device) releaseHeldLocked(held []heldScratch) {
	for _, h := range held {
		d.pool[h.size] = append(d.pool[h.size], h.p)
		d.stats.BytesInUse -= h.size
		d.stats.BytesCached += h.size
	}
}

// GraphLaunches is the number of graph replays queued since Open or
// OpenSim (each also counted once in Launches).
func (d *Device) GraphLaunches() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.graphLaunches
}
