//go:build cuda

// CUDA graphs through our own cgo: gorgonia.org/cu (kept unmodified) has no
// stream capture, and its graph API cannot set kernel parameters. The
// driver records the launches and copies issued on its stream between
// BeginCapture and EndCapture (cuStreamBeginCapture in relaxed mode: the
// Device itself refuses allocations, host copies, synchronisation and
// event records while recording, so no unsafe call reaches the driver;
// relaxed mode lets the recording span calls made from different OS
// threads, as Go schedules them), instantiates the graph
// (cuGraphInstantiateWithFlags) and replays it with cuGraphLaunch on the
// same stream.

package gpu

/*
#cgo LDFLAGS: -lcuda
#include <cuda.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

var _ graph = (*cuGraph)(nil)

// cuGraph is an instantiated CUDA graph and the graph it came from.
type cuGraph struct {
	d    *cuDriver
	g    C.CUgraph
	exec C.CUgraphExec
}

// cuResult turns a CUresult into an error naming op, nil for CUDA_SUCCESS.
func cuResult(op string, r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return fmt.Errorf("%s: CUDA error %d", op, int(r))
}

// cstream is the driver's stream as a C handle of this package.
func (d *cuDriver) cstream() C.CUstream {
	return C.CUstream(unsafe.Pointer(d.stream.C()))
}

func (d *cuDriver) BeginCapture() error {
	return d.call("begin capture", func() error {
		return cuResult("gpu: cuStreamBeginCapture", C.cuStreamBeginCapture(d.cstream(), C.CU_STREAM_CAPTURE_MODE_RELAXED))
	})
}

func (d *cuDriver) EndCapture() (graph, error) {
	g := &cuGraph{d: d}
	err := d.call("end capture", func() error {
		if err := cuResult("gpu: cuStreamEndCapture", C.cuStreamEndCapture(d.cstream(), &g.g)); err != nil {
			return err
		}
		if err := cuResult("gpu: cuGraphInstantiateWithFlags", C.cuGraphInstantiateWithFlags(&g.exec, g.g, 0)); err != nil {
			return errors.Join(err, cuResult("gpu: cuGraphDestroy", C.cuGraphDestroy(g.g)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (g *cuGraph) Launch() error {
	return g.d.call("graph launch", func() error {
		return cuResult("gpu: cuGraphLaunch", C.cuGraphLaunch(g.exec, g.d.cstream()))
	})
}

func (g *cuGraph) Destroy() error {
	return g.d.call("destroy graph", func() error {
		return errors.Join(cuResult("gpu: cuGraphExecDestroy", C.cuGraphExecDestroy(g.exec)),
			cuResult("gpu: cuGraphDestroy", C.cuGraphDestroy(g.g)))
	})
}
