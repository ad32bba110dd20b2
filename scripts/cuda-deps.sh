#!/usr/bin/env bash
# cuda-deps.sh installs the NVIDIA wheels pinned in scripts/cuda-pins.txt into
# a cache outside the repository and prints one KEY=absolute-path line each:
#
#   CUDA12_INCLUDE=…/include   CUDA 12.9 cuda.h
#   CUDA13_INCLUDE=…/include   CUDA 13.0 cuda.h
#   PTXAS12=…/ptxas            ptxas 12.9 (sm_70 and up)
#   PTXAS13=…/ptxas            ptxas 13.0 (sm_75 and up)
#   CUOBJDUMP=…/cuobjdump      cuobjdump 13.2 (SASS of sm_75 and up; runs nvdisasm)
#   NVDISASM=…/nvdisasm        nvdisasm 13.2
#   CUDA_COMPAT_INCLUDE=…      the repository's wrapper header folder (put it first)
#   CONVTRAIN_CUDA_CACHE=…     the cache folder
#
# Use it as:  eval "$(scripts/cuda-deps.sh)"
#
# Cache: $CONVTRAIN_CUDA_CACHE, default $HOME/.cache/convtrain-cuda. Each pin
# goes into its own folder named package-version and is reused when present
# (a .complete marker is written after a successful install), so a warm cache
# needs no network. Needs python3 with pip and access to PyPI on a cold cache.
# Exit status 3 when something could not be installed (the message on stderr
# says what was needed); nothing is printed on stdout then.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pins="$root/scripts/cuda-pins.txt"
cache=${CONVTRAIN_CUDA_CACHE:-$HOME/.cache/convtrain-cuda}
mkdir -p "$cache/wheels"

pip_cmd=()
if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
	pip_cmd=(python3 -m pip)
elif command -v pip3 >/dev/null 2>&1; then
	pip_cmd=(pip3)
fi

out=()
while read -r key spec path; do
	case "$key" in '' | '#'*) continue ;; esac
	name=${spec%%==*}
	version=${spec#*==}
	dir="$cache/wheels/$name-$version"
	if [[ ! -f "$dir/.complete" ]]; then
		if [[ ${#pip_cmd[@]} -eq 0 ]]; then
			echo "cuda-deps: need python3 with pip to install $spec (PyPI)" >&2
			exit 3
		fi
		rm -rf "$dir" "$dir.tmp"
		if ! "${pip_cmd[@]}" install --quiet --no-deps --no-compile \
			--disable-pip-version-check --root-user-action=ignore \
			--target "$dir.tmp" "$spec" >"$cache/pip-$name.log" 2>&1; then
			echo "cuda-deps: pip install $spec failed (needs PyPI); log: $cache/pip-$name.log" >&2
			tail -n 3 "$cache/pip-$name.log" >&2 || true
			rm -rf "$dir.tmp"
			exit 3
		fi
		mv "$dir.tmp" "$dir"
		touch "$dir/.complete"
	fi
	if [[ ! -e "$dir/$path" ]]; then
		echo "cuda-deps: $spec installed but $path is missing in $dir" >&2
		exit 3
	fi
	out+=("$key=$dir/$path")
done <"$pins"

printf '%s\n' "${out[@]}"
echo "CUDA_COMPAT_INCLUDE=$root/gpu/cudacompat"
echo "CONVTRAIN_CUDA_CACHE=$cache"
