#!/usr/bin/env bash
# gpu-session.sh prepares, on this machine (Go, network, no GPU), everything
# a lent GPU machine needs (it has the CUDA toolkit and python3 with torch,
# but no Go and no network), so that a session gets its results in two
# device calls:
#
#   here:      scripts/gpu-session.sh
#              builds build/gpu/ (scripts/gpu-build.sh: the cuda-tagged test
#              binaries, train, MNIST) and packs it into build/gpu.tar.xz,
#              small enough to carry (the folder itself is near the 64 MiB
#              a call carries with the working tree)
#   device 1:  command "scripts/gpu-check.sh", carry ["build/gpu.tar.xz"],
#              timeout_s 600 (gpu-check.sh unpacks the archive into
#              build/gpu/, runs every check and writes $OUT/gpu-report.md
#              with the logs beside it; GPU_BENCH=none or GPU_TEST_RUN=...
#              shorten it, STEP_TIMEOUT bounds each step)
#   device 2:  a rerun of what failed or timed out, with the same carry
#
# Then record the figures of the report in BENCHMARKS.md (date, GPU,
# command, commit).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/gpu-build.sh "$@"
out=${GPU_BUILD_OUT:-build/gpu}
tar -C "$(dirname "$out")" -cf - "$(basename "$out")" | xz -T0 -6 >"$out.tar.xz.tmp"
mv "$out.tar.xz.tmp" "$out.tar.xz"
echo "gpu-session: $out.tar.xz, $(du -m "$out.tar.xz" | cut -f1) MiB: carry it and run scripts/gpu-check.sh on the device"
