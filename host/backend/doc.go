// Package backend is the contract between the model (package nn) and the
// machines that run it, as database/sql/driver is between database/sql and
// its drivers: the Tensor handle, the Backend interface of every operation
// of a training step, and the checks and error kinds every backend shares.
// The CPU backend (package cpubackend, over cpuref) and the GPU backend
// (package gpubackend, over gpu) implement it; the model never sees which.
//
// Shape letters, as in cpuref: N batch, C channels, H×W size, K filters,
// R×S kernel, P×Q output size; tensors are row-major NCHW float32.
package backend
