package backend

import "fmt"

// Graphs is implemented by a backend that can record the operations of a
// training step once and replay them (the GPU backend: a CUDA graph on a
// GPU; on the simulator the recorded launches run again). A replay runs
// the recorded operations with exactly the tensors and scalars they were
// recorded with; what changes from step to step is read, when the
// operations run, from a per-step values tensor (NewStepVals) that the
// host rewrites with one upload before each replay (SetStepVals):
//
//	the batch's offset into the epoch's order    an IndexViewAt of it
//	the augmentation's step (the epoch)          GatherBatch through it
//	the step of the dropout keys                 DropoutKey.At
//	the optimiser's learning rate and scalars    Update.At (Adam's bias
//	                                             corrections from its step)
//
// While recording, a backend refuses what a graph cannot hold (creating
// tensors, copies between host and device, Sync) with an error; the
// caller records a step only after an eager one has built what the step
// needs (the optimiser's and the loss's tables).
type Graphs interface {
	// NewStepVals allocates a per-step values tensor.
	NewStepVals() (Tensor, error)
	// SetStepVals writes v into vals with one upload, in order with the
	// queued work: the operations queued before it read the values
	// before, those queued after it the new ones.
	SetStepVals(vals Tensor, v StepVals) error
	// IndexViewAt is IndexView with the offset read from vals (v.Offset)
	// when an operation using the view runs, not when it is queued; the
	// offset must lie in [0, idx.Len()−n] (SetStepVals checks it). Only
	// Gather and GatherBatch read through such a view.
	IndexViewAt(idx, vals Tensor, n int) (Tensor, error)
	// BeginCapture starts recording the operations issued until
	// EndCapture, which are then not run.
	BeginCapture() error
	// EndCapture ends the recording and returns it, ready to replay. It
	// ends the recording even when it fails.
	EndCapture() (Replay, error)
}

// Replay is a recorded sequence of operations (Graphs).
type Replay interface {
	// Launch queues one run of the recorded operations.
	Launch() error
	// Kernels is the number of kernel launches recorded.
	Kernels() int
	// Free releases the recording.
	Free() error
}

// StepVals are the values of one step that a recorded step reads from
// device memory (Graphs).
type StepVals struct {
	// Offset is the batch's first element in the order that an
	// IndexViewAt views.
	Offset int
	// AugmentStep is the Step of the augmentation draws of a GatherBatch
	// through an IndexViewAt.
	AugmentStep uint64
	// DropoutStep is the Step of the dropout keys that carry At.
	DropoutStep uint64
	// Update is the update of the UpdateParams that carries At: its rule
	// must be the recorded one; its hyperparameters and Step are this
	// step's.
	Update Update
}

// ErrNoGraphs is wrapped by the error of an operation given a per-step
// values tensor (DropoutKey.At, Update.At) by a backend that runs every
// operation as it is queued.
var ErrNoGraphs = fmt.Errorf("per-step values tensors need a backend that records steps (Graphs)")
