// Package cpubackend runs the operations of a training step on the CPU:
// the convolutions through cpuref.Conv2D (implicit GEMM, zero-framed
// images or im2col, on FMA and AVX-512 kernels), batch norm through
// cpuref.BatchNorm32, the elementwise and pooling passes split over
// goroutines, every result bit-identical whatever the thread count. It
// implements backend.Backend; NewCPUBackendBF16 and NewCPUBackendRounding
// emulate the GPU backend's BF16 and TF32 convolutions.
package cpubackend
