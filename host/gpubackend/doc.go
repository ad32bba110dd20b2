// Package gpubackend runs the operations of a training step on a device of
// package gpu: a CUDA GPU (binaries built with -tags cuda) or the PTX
// simulator. Every tensor lives on the device for its whole life; nothing
// is copied to the host unless Download is called. It implements
// backend.Backend.
package gpubackend
