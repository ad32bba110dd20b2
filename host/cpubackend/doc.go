// Package cpubackend runs the operations of a training step on the CPU:
// the convolutions through cpuref's im2col and FMA GEMM kernels, the
// elementwise and pooling passes split over goroutines, every result
// bit-identical whatever the thread count. It implements backend.Backend.
package cpubackend
