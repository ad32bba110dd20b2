#!/usr/bin/env bash
# gpu-dryrun.sh tests scripts/gpu-check.sh without a GPU, against the
# test-only mock libcuda that scripts/ci-cuda.sh builds (its "dryrun"
# check), so that the script cannot rot between GPU sessions:
#
#   1. pack: scripts/gpu-session.sh packs the existing build/gpu/ (at most
#      30 MiB even at XZ_LEVEL=1, used here for speed; sessions pack at 6)
#      and the check runs from a copy of the archive, unpacked as on a
#      device
#   2. walk: GPU_CHECK_MOCK=MOCK scripts/gpu-check.sh walks all six steps
#      (tiny sizes, PyTorch on the CPU when python3 has torch) and exits 0;
#      gpu-summary.json holds the six steps and the conv passes at the
#      four precisions; scripts/gpu-report.py record
#      adds 1 session row and one row per conv pass to a copy of
#      BENCHMARKS.md, and refuses the mock summary without --allow-mock
#   2b. targets: scripts/gpu-report.py summary on made-up conv figures
#      (two ResNet shapes at four precisions and the stem at fp32, a
#      stand-in H100) gives the FP32 suite's % of peak (dispatched, with
#      the faster of each pass's pipeline kernel, over every pass and over
#      the trained ones), the median speed vs cuDNN per precision and each
#      target's verdict, as worked out by hand
#   3. cut off: with STEP_SLEEP=3:300 the check is killed (SIGKILL, as a
#      device call past its time limit) once step 2 is done: the report and
#      gpu-summary.json hold steps 1 and 2 complete
#   4. overrun: with CHECK_BUDGET=60 and STEP_SLEEP=2:100 step 2 overruns
#      its slice: it is reported TIMEOUT, steps 3-6 still run, exit 1
#
# Usage: scripts/gpu-dryrun.sh MOCK_DIR    (after scripts/gpu-build.sh)
# Work and logs: build/gpu-dryrun/. Last line: one summary; exit 1 on the
# first failed expectation, with what was expected and where to look.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
[[ $# == 1 && -e "$1/libcuda.so.1" ]] || { echo "usage: scripts/gpu-dryrun.sh MOCK_DIR (holding the mock libcuda.so.1)" >&2; exit 2; }
mock=$(cd "$1" && pwd)
work=$root/build/gpu-dryrun
rm -rf "$work"
mkdir -p "$work"
fail() { echo "gpu-dryrun: FAIL: $*" >&2; exit 1; }
py=python3
for p in ${PYTHON:-$(command -v python3) /usr/bin/python3}; do
	if [[ -x "$p" ]] && "$p" -c 'import torch' >/dev/null 2>&1; then py=$p; break; fi
done

# 1. pack
GPU_SESSION_PACK_ONLY=1 XZ_LEVEL=1 scripts/gpu-session.sh >"$work/pack.log" 2>&1 || fail "scripts/gpu-session.sh: $(tail -n 1 "$work/pack.log")"
size=$(grep -o '[0-9.]* MiB' "$work/pack.log" | head -n 1)
cp build/gpu.tar.xz "$work/gpu.tar.xz"
check() { # check NAME [ENV...]: gpu-check.sh from the copied archive, output in $work/NAME
	local name=$1
	shift
	env "$@" GPU_CHECK_MOCK="$mock" GPU_BUILD_DIR="$work/gpu" OUT="$work/$name" PYTHON="$py" scripts/gpu-check.sh
}
steps_of() { cut -f1,3 "$work/$1/gpu-report-logs/steps.tsv" 2>/dev/null | tr '\t\n' ': '; }

# 2. walk, with a stand-in nvidia-smi on the PATH (an H100's answers) so
# that the machine's figures and the % of peak are parsed too.
mkdir -p "$work/bin"
cat >"$work/bin/nvidia-smi" <<'EOF'
#!/bin/sh
case "$*" in
*--query-gpu*) echo "NVIDIA H100 80GB HBM3 (stand-in), 580.65.06, 81559 MiB, 1980 MHz, 2619 MHz, 700.00 W" ;;
*) echo "| NVIDIA-SMI 580.65.06    Driver Version: 580.65.06    CUDA Version: 13.0 |" ;;
esac
EOF
chmod +x "$work/bin/nvidia-smi"
check walk PATH="$work/bin:$PATH" >"$work/walk.log" 2>&1 || fail "the dry run exited $? ($work/walk/gpu-report.md)"
[[ -d "$work/gpu" && -x "$work/gpu/gpu.test" ]] || fail "the archive was not unpacked into $work/gpu"
[[ $(wc -l <"$work/walk/gpu-report-logs/steps.tsv") == 6 ]] || fail "the dry run recorded steps $(steps_of walk), want 1-6"
$py - "$work/walk/gpu-summary.json" <<'EOF' || fail "$work/walk/gpu-summary.json is not the summary of six steps"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["mock"] and s["complete"] and [x["n"] for x in s["steps"]] == [1, 2, 3, 4, 5, 6], s["steps"]
# two shapes × (fp32, fp32pipe, tf32, bf16) × three passes, cuDNN's beside
# each (fp32's beside fp32pipe), the model's estimate with ours
assert len(s["conv"]) == 24 and all(r["ours_ms"] and r["cudnn_ms"] and r["model_ms"] for r in s["conv"]), s["conv"]
assert sorted({r["precision"] for r in s["conv"]}) == ["bf16", "fp32", "fp32pipe", "tf32"], s["conv"]
t = s["conv_targets"]  # the mock's shapes are not ResNet-50's: no suite figure
assert t["fp32_suite"]["gflops"] is None and t["tf32"]["shapes"] == 0 and t["bf16"]["median_vs_model"] > 0, t
assert s["train"]["epoch"]["train_images"] == 1280 and s["train"]["epoch"]["epoch_s"] is not None, s["train"]
c = s["train"]["compare_fp32"]  # no-op kernels: the GPU's losses are 0, 1 relative off the CPU's
assert c["status"] == "ok" and c["max_rel_diff"] == 1 and c["tol"] == 1e9, c
m = s["machine"]  # the stand-in nvidia-smi's clock, the mock's 84 SMs of sm_86
assert m["driver"] == "580.65.06" and m["cuda"] == "13.0" and m["sms"] == 84, m
assert abs(m["fp32_peak_gflops"] - 84 * 128 * 2 * 1.98) < 1e-6, m
assert all(r["peak_pct"] for r in s["conv"]), s["conv"]
EOF
cp BENCHMARKS.md "$work/BENCHMARKS.md"
if $py scripts/gpu-report.py record "$work/walk/gpu-summary.json" --benchmarks "$work/BENCHMARKS.md" >"$work/record.log" 2>&1; then
	fail "gpu-report.py record accepted a mock summary without --allow-mock"
fi
$py scripts/gpu-report.py record "$work/walk/gpu-summary.json" --benchmarks "$work/BENCHMARKS.md" --allow-mock >>"$work/record.log" 2>&1 ||
	fail "gpu-report.py record: $(tail -n 1 "$work/record.log")"
added=$(($(wc -l <"$work/BENCHMARKS.md") - $(wc -l <BENCHMARKS.md)))
((added == 43)) || fail "gpu-report.py record added $added lines to BENCHMARKS.md, want 43 (1 session, 24 conv passes, 18 fusion pairs)"
if $py scripts/gpu-report.py record "$work/walk/gpu-summary.json" --benchmarks "$work/BENCHMARKS.md" --allow-mock >>"$work/record.log" 2>&1; then
	fail "gpu-report.py record added the same session twice"
fi

# 2b. the targets' arithmetic on made-up figures (the mock's shapes are
# not ResNet-50's): two resnet shapes, the stem and one other, 1 GFLOP a
# pass, on a stand-in H100 (132 SMs, 1980 MHz: 66908.16 GFLOP/s).
t=$work/targets/gpu-report-logs
mkdir -p "$t"
echo "NVIDIA H100 (stand-in), 580.65.06, 81559 MiB, 1980 MHz, 2619 MHz, 700.00 W" >"$t/machine.csv"
$py - "$t" <<'EOF2' || fail "gpu-report.py's targets on made-up figures ($work/targets)"
import json, os, subprocess, sys
logs = sys.argv[1]
# ours ms per (shape, precision): fp32 0.05 a pass; fp32pipe 0.025 for
# resnet-a's fwd, 0.1 otherwise; tf32 ratios 1 and 0.5; bf16 2 and 0.9.
# The stem at fp32, its bwd-data (not trained) 1 ms: in the every-pass
# figure only.
ours = {("resnet-a", "fp32"): 0.05, ("resnet-b", "fp32"): 0.05, ("other", "fp32"): 0.001,
        ("resnet-stem-7x7s2", "fp32"): 0.05,
        ("resnet-a", "fp32pipe"): 0.1, ("resnet-b", "fp32pipe"): 0.1,
        ("resnet-a", "tf32"): 0.01, ("resnet-b", "tf32"): 0.02, ("resnet-a", "bf16"): 0.005, ("resnet-b", "bf16"): 1 / 90}
lines, torch = ["device: NVIDIA H100 (stand-in) (sm_90, 132 SMs)"], []
for (shape, prec), ms in ours.items():
    for p in ("fwd", "bwd-data", "bwd-filter"):
        m = {("resnet-a", "fp32pipe", "fwd"): 0.025, ("resnet-stem-7x7s2", "fp32", "bwd-data"): 1.0}.get((shape, prec, p), ms)
        lines.append(f"BenchmarkConvPeer/shape={shape}/prec={prec}/pass={p}/kernel=k-16 \t50\t1 ns/op\t"
                     f"{m * 1e6:.6f} gpu-ns/op\t{1 / m * 1e3:.6f} GFLOP/s\t{m * 1e3 / 2:.6f} model-us")
        if prec != "fp32pipe":
            torch.append({"shape": shape, "precision": prec, "pass": p, "flops": 1e9, "ms": 0.01, "gflops": 1e5})
open(os.path.join(logs, "conv-ours.log"), "w").write("\n".join(lines) + "\n")
json.dump({"conv": torch}, open(os.path.join(logs, "conv-torch.json"), "w"))
out = subprocess.run([sys.executable, "scripts/gpu-report.py", "summary", os.path.dirname(logs)], check=True,
                     capture_output=True, text=True).stdout.strip()
t = json.load(open(out))["conv_targets"]
close = lambda a, b: a is not None and abs(a - b) < 1e-6 * b
peak = 132 * 128 * 2 * 1.98
assert close(t["fp32_suite"]["gflops"], 20000) and close(t["fp32_suite"]["peak_pct"], 100 * 20000 / peak), t
assert close(t["fp32_suite_best"]["gflops"], 8 / 0.375 * 1e3), t
assert close(t["fp32_suite_every_pass"]["gflops"], 9 / 1.4 * 1e3), t
assert t["fp32"]["shapes"] == 3 and close(t["fp32"]["median_speed_vs_cudnn"], 0.2), t
assert t["fp32_met"] is False and close(t["fp32_suite_cudnn"]["gflops"], 1e5), t
assert t["tf32"]["shapes"] == 2 and close(t["tf32"]["median_speed_vs_cudnn"], 0.75) and t["tf32"]["met"] is False, t
assert close(t["bf16"]["median_speed_vs_cudnn"], 1.45) and t["bf16"]["met"] is True, t
assert close(t["fp32"]["median_vs_model"], 2) and t["fp32"]["below_model"] == 0, t
EOF2

# 3. cut off after step 2
setsid env STEP_SLEEP=3:300 GPU_CHECK_MOCK="$mock" GPU_BUILD_DIR="$work/gpu" OUT="$work/cut" PYTHON="$py" \
	scripts/gpu-check.sh >"$work/cut.log" 2>&1 &
pid=$!
for _ in $(seq 240); do # step 3 starts (and sleeps) once step 2's summary is written
	grep -q '^## 3\. ' "$work/cut/gpu-report.md" 2>/dev/null && break
	sleep 0.5
done
sleep 0.5
kill -KILL -- "-$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[[ $(steps_of cut) == "1:skipped: mock"*" 2:skipped: mock"*" " ]] || fail "cut off: steps.tsv holds $(steps_of cut), want steps 1 and 2"
grep -q '^\*\*Step 2: ' "$work/cut/gpu-report.md" && grep -q '^## 3\. ' "$work/cut/gpu-report.md" ||
	fail "cut off: $work/cut/gpu-report.md lacks step 2's result or step 3's start"
$py -c 'import json, sys; s = json.load(open(sys.argv[1])); assert [x["n"] for x in s["steps"]] == [1, 2] and not s["complete"]' \
	"$work/cut/gpu-summary.json" || fail "cut off: $work/cut/gpu-summary.json does not hold steps 1 and 2, incomplete"

# 4. step 2 overruns its slice
check overrun CHECK_BUDGET=60 STEP_SLEEP=2:100 >"$work/overrun.log" 2>&1
rc=$?
got=$(steps_of overrun)
((rc == 1)) && [[ $got == "1:skipped: mock"*" 2:TIMEOUT 3:"*" 6:"* ]] ||
	fail "overrun: exit $rc and steps $got, want exit 1, step 2 TIMEOUT and steps 3-6 run ($work/overrun/gpu-report.md)"

echo "gpu-dryrun: ok (archive $size at xz -1; six steps walked on the mock, 43 rows recorded; cut off in step 3: steps 1-2 complete; step 2 over its slice: TIMEOUT, steps 3-6 ran)"
