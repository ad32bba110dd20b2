// Package backend is the contract between the model (package nn) and the
// machines that run it, as database/sql/driver is between database/sql and
// its drivers: the Tensor handle, the Backend interface of every operation
// of a training step, and the checks and error kinds every backend shares.
// The CPU backend (package cpubackend, over cpuref) and the GPU backend
// (package gpubackend, over gpu) implement it; the model never sees which.
//
// Shape letters, as in cpuref: N batch, C channels, H×W size, K filters,
// R×S kernel, P×Q output size; tensors are row-major NCHW float32.
//
// # Who checks what
//
// Every argument is checked once, before any work, by the one layer that
// can:
//
//   - The backend checks the tensor handles (live, its own, float32,
//     int32 or uint8 as the operation wants; an index tensor written to is not a
//     view) and what only it knows: the values of index tensors (the CPU
//     backend reads them; the GPU backend checks the range it recorded
//     when the tensor was filled: gather indices, labels, augmentation
//     rows), the copies' host slices (CheckCopy), and the sizes of the
//     passes it runs itself (the CPU backend's ReLU and max-pool chunks,
//     CountCorrect, Accumulate, Gather, AugmentBatch, GatherImages; the loss it writes:
//     where a chunk is handed to cpuref, cpuref's check of it holds by
//     construction).
//   - The layer below checks the sizes, the geometry and every length
//     against them: cpuref (checkConv, checkLens, checkN; for the CPU
//     backend's convolutions, dense layers, losses, optimiser steps,
//     batch norm, average pools, activations, dropout, add, concatenation)
//     and package gpu's launchers (Device.need, needConv, dims; for every
//     GPU operation). The backends pass the tensors through unmeasured,
//     so a wrong length is reported by that layer, naming the argument.
//     gpu's checks cannot move up: they keep every launch of its public
//     API in bounds, whoever calls it.
//   - This package checks what spans several tensors or calls and needs no
//     backend: CheckUpdate and CheckParamLengths (UpdateParams: rule,
//     moments, every parameter's lengths before any is updated) and
//     CheckFinite.
//
// Three kinds of check are made twice, on purpose. Where one GPU operation is
// several launches, the GPU backend checks the lengths of the arguments
// that only a later launch reads before the first (conv backward filter's
// db; dense backward's w, dx and db; the two-launch losses' loss and row
// count, before their scratch buffer; every input of a concatenation), so
// that a refused call does no work; the later launch checks them again.
// UpdateParams' lengths are checked by CheckParamLengths for all
// parameters first, then by cpuref's step of each parameter (CPU) or by
// gpu.NewParamTable when the device table is built (GPU). And a
// copy's length is checked by CheckCopy in both backends, so that it is the
// same error on both, and again by gpu.Buffer's Upload and Download,
// which keep every copy of package gpu's public API in bounds.
//
// Errors: a wrong size or a length that does not fit the sizes wraps
// geom.ErrGeometry, a bad hyperparameter geom.ErrHyperparameter, a bad
// handle ErrTensor; the message names the operation and the argument.
package backend
