// Package gpubackend runs the operations of a training step on a device of
// package gpu: a CUDA GPU (binaries built with -tags cuda) or the PTX
// simulator. Every tensor lives on the device for its whole life; nothing
// is copied to the host unless Download is called. A data set stays on
// the device as bytes (byte tensors, a quarter of float32's memory), and
// GatherImages standardises, crops and flips a batch of it in one kernel
// (augment_batch_v2). It implements backend.Backend.
package gpubackend
