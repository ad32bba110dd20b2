// Package nn holds the network: the specification of its layers (Spec,
// parsed from text such as "conv8x5x5,relu,maxpool2,dense10"), the Model
// with its parameters on a backend.Backend, the batches that hold every
// activation and gradient of one batch size, the forward and backward
// passes and the optimisers' updates.
//
// Shape letters, as in cpuref: N batch, C channels, H×W size, K filters,
// R×S kernel, P×Q output size; tensors are row-major NCHW float32.
//
// The pieces, in the order a training run uses them:
//
//	Spec, DefaultSpec, Check      the layers and loss; every layer's shape, or an error naming the layer
//	NewModel                      parameters, gradients and velocities on the backend, initialised from a seed
//	Model.Upload                  a data.Dataset onto the backend as bytes, with its standardisation table (a DeviceSet)
//	Model.NewBatch                every activation and gradient of one batch size
//	Model.Load, LoadIndexed       a batch gathered (standardised) on the backend from row indices
//	Model.LoadAugmented           the same, each image cropped and flipped as it is gathered
//	Model.TrainStep               Forward (with loss and metrics), Backward, Update
//	Model.RecordStep, StepGraph   a whole step recorded once and replayed (backend.Graphs: the GPU backend),
//	                              the step's changing values read from device memory
//
// Everything a step touches lives on the backend and is allocated before
// the first step, so a step allocates nothing and, on a GPU, copies
// nothing; the loss and the count of correct answers are accumulated on
// the backend and read only when reported. A fixed seed gives
// bit-identical weights from run to run on the same backend.
package nn
