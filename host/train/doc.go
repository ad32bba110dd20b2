// Package train trains an nn.Model: epochs of shuffled batches gathered on
// the backend, the learning-rate schedule, the evaluation after each
// epoch, progress and metrics callbacks, divergence checks, and the
// position (TrainState) that a checkpoint saves so that a resumed run
// continues bit-identically.
package train
