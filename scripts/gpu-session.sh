#!/usr/bin/env bash
# gpu-session.sh prepares, on this machine (Go, network, no GPU), everything
# a lent GPU machine needs (it has the CUDA toolkit and python3 with torch,
# but no Go and no network), so that a session gets its results in one
# device call:
#
#   here:    scripts/gpu-session.sh
#            builds build/gpu/ (scripts/gpu-build.sh: the cuda-tagged test
#            binaries, train, MNIST) and packs what the GPU machine runs
#            into build/gpu.tar.xz: the test binaries of gpu-tests.tsv
#            (packages with cuda-tagged tests), train, MNIST, BUILDINFO;
#            at most 30 MiB (it fails above, saying the size)
#   device:  command "scripts/gpu-check.sh", carry ["build/gpu.tar.xz"],
#            timeout_s 600: gpu-check.sh unpacks the archive into
#            build/gpu/ and gives its verdict within CHECK_BUDGET (default
#            480 s), writing $OUT/gpu-report.md, $OUT/gpu-summary.json and
#            the logs beside them, step by step
#   here:    scripts/gpu-report.py record <files_at>/gpu-summary.json
#            adds the session's dated rows to BENCHMARKS.md
#
# Usage: scripts/gpu-session.sh [CUDA_INCLUDE_DIR [LIBCUDA_DIR]]   (as gpu-build.sh)
#   GPU_SESSION_PACK_ONLY=1  pack an existing build/gpu/ without rebuilding
#   XZ_LEVEL=N               xz's level (default 6; the dry run's 1 is 3.5×
#                            faster and about 20 % larger)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[[ ${XZ_LEVEL:-6} =~ ^[0-9]$ ]] || { echo "gpu-session: XZ_LEVEL=$XZ_LEVEL: want 0 to 9" >&2; exit 2; }
if [[ -z "${GPU_SESSION_PACK_ONLY:-}" ]]; then
	scripts/gpu-build.sh "$@"
fi
out=${GPU_BUILD_OUT:-build/gpu}
[[ -f "$out/gpu-tests.tsv" ]] || { echo "gpu-session: $out/gpu-tests.tsv not found: run scripts/gpu-build.sh" >&2; exit 2; }
name=$(basename "$out")
files=("$name/BUILDINFO" "$name/tests.tsv" "$name/gpu-tests.tsv")
while IFS=$'\t' read -r test _; do
	[[ -n "$test" ]] && files+=("$name/$test")
done <"$out/gpu-tests.tsv"
[[ -x "$out/train" ]] && files+=("$name/train")
[[ -d "$out/mnist" ]] && files+=("$name/mnist")
tar -C "$(dirname "$out")" -cf - "${files[@]}" | xz -T0 "-${XZ_LEVEL:-6}" >"$out.tar.xz.tmp"
mv "$out.tar.xz.tmp" "$out.tar.xz"
# gpu-check.sh unpacks an archive unless the folder holds its checksum.
sha256sum <"$out.tar.xz" | cut -c1-64 >"$out/.archive-sha256"
bytes=$(stat -c %s "$out.tar.xz")
mib=$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}')
if ((bytes > 30 * 1048576)); then
	echo "gpu-session: $out.tar.xz is $mib MiB, more than the 30 MiB a device call may carry with the tree; pack less" >&2
	exit 1
fi
echo "gpu-session: $out.tar.xz, $mib MiB (${files[*]#"$name"/}): carry it and run scripts/gpu-check.sh on the device"
