//go:build !cuda

package gpu

import "errors"

// errNoCUDABuild is the error of openCUDA in a binary built without the cuda
// tag.
var errNoCUDABuild = errors.New(`gpu: this binary was built without CUDA support (no "cuda" build tag); ` +
	`use -device sim, or rebuild on a machine with the CUDA toolkit, from the repository root:
  CGO_CFLAGS="-I$PWD/gpu/cudacompat -I/usr/local/cuda/include" CGO_LDFLAGS="-L/usr/local/cuda/lib64/stubs" go build -tags cuda ./cmd/train
(or scripts/gpu-build.sh, which needs no GPU and writes build/gpu/)`)

// openCUDA fails: the cu adapter is compiled only with -tags cuda.
func openCUDA(ordinal int) (driver, error) {
	return nil, errNoCUDABuild
}

// countCUDA fails: the cu adapter is compiled only with -tags cuda.
func countCUDA() (int, error) { return 0, errNoCUDABuild }
