// Package host trains sequential convolutional networks on a Backend: the
// CPU (NewCPUBackend, over cpuref) or a GPU. It holds the model, the
// training loop and the data loading; cmd/train is its command line.
//
// Shape letters, as in cpuref: N batch, C channels, H×W size, K filters,
// R×S kernel, P×Q output size; tensors are row-major NCHW float32.
//
// The pieces, in the order a training run uses them:
//
//	LoadMNIST, LoadDir, ReadIDX   IDX files (raw or gzip) → Dataset (bytes in host memory)
//	Synthetic                     a deterministic, learnable Dataset for tests
//	Spec, DefaultSpec, Check      the layers and loss; every layer's shape, or an error naming the layer
//	NewModel                      parameters, gradients and velocities on the backend, initialised from a seed
//	Model.Upload                  a Dataset standardised onto the backend (a DeviceSet)
//	Model.NewBatch                every activation and gradient of one batch size
//	Model.Load                    a batch gathered on the backend from row indices
//	Model.TrainStep               Forward (with loss and metrics), Backward, Update
//	NewTrainer, Trainer.Run       epochs of shuffled batches, schedule, evaluation, metrics
//	Trainer.State, Restore        the position to checkpoint and resume bit-identically
//
// Everything a step touches lives on the backend and is allocated before
// the first step, so a step allocates nothing and, on a GPU, copies
// nothing but the batch's row indices to the device; the loss and the
// count of correct answers are accumulated on the backend and read only
// when reported. A fixed seed gives bit-identical weights from run to run
// on the same backend.
package host
