#!/usr/bin/env bash
# gpu-check.sh gives the verdict of a GPU machine in one call: on a machine
# with an NVIDIA GPU, its driver, the CUDA toolkit (compute-sanitizer) and
# python3 with torch, but no Go and no network, it runs what
# scripts/gpu-build.sh built into build/gpu/ (or what scripts/gpu-session.sh
# packed into build/gpu.tar.xz, unpacked here) within a total time budget,
# most important first, each step with its own slice:
#
#   step  slice  what
#   1     25 %   the machine (nvidia-smi, driver, CUDA, BUILDINFO) and GPU
#                conformance: the cuda-tagged tests only (-test.run 'CUDA$':
#                every kernel version against cpuref on its shape sweep, the
#                golden vector, the GPU against the simulator bit for bit,
#                the optimisers, the GPU backend against the CPU backend:
#                TestGPUBackendCUDA); the simulator's own tests run in CI
#   2     16 %   train compare fp32, tf32, bf16 (the GPU backend against the CPU
#                backend, step by step) and one MNIST epoch of the default
#                network on the GPU, fp32 and bf16: epoch time, images/s,
#                accuracy
#   3     25 %   the conv shape suite on the GPU (BenchmarkConvPeer: the
#                dispatcher's kernels at fp32, tf32 and bf16, and FP32's
#                packed-pipeline kernels v11-v13 as fp32pipe) beside
#                PyTorch/cuDNN on the same shapes at the same precisions
#                (torch-gpu-bench.py --part conv), both measured the same
#                way: one table of time, the analytic model's estimate,
#                cuDNN's time, the speed ratio, GFLOP/s and % of the FP32
#                peak per shape, precision and pass, then the targets
#                (FP32 suite % of peak, median speed vs cuDNN per precision)
#   4      9 %   the MNIST epoch of step 2 against PyTorch eager on the same
#                GPU (same network, batch, optimiser, schedule, data on the
#                device: torch-gpu-bench.py --part mnist)
#   5     19 %   compute-sanitizer memcheck, racecheck, synccheck and
#                initcheck over TestSanitizeCUDA (every kernel on one small
#                shape), a quarter of what is left of the slice each
#   6     rest   only if time is left: train bench fp32/bf16/tf32, PyTorch's
#                random-data training steps, BenchmarkConvBackwardShared
#                (a conv's three passes apart and with the shared and kept
#                copies), BenchmarkBatchNormKeep (a batch norm or a residual
#                add+ReLU beside a conv, the conv's copy made by the conv or
#                by the layer beside it),
#                BenchmarkConvSuite and BenchmarkConv2D on the
#                GPU (every algorithm); running out of
#                time here is not a failure
#
# A step may use what the steps before it left of their slices, never the
# slices of the steps after it: step n ends by the time the slices 1..n add
# up to. The report is written step by step, and the summary JSON rewritten
# after each step, so that when the call is cut off (or a step overruns its
# slice) everything finished before is complete under $OUT.
#
# Usage: scripts/gpu-check.sh            (from anywhere; paths are the repo's)
# Output: $OUT (default build/): gpu-report.md, gpu-summary.json (every
# figure, machine-readable; scripts/gpu-report.py record turns it into the
# rows of BENCHMARKS.md) and gpu-report-logs/ (each command's full log).
# Environment:
#   CHECK_BUDGET     total seconds (default 480; at least 12)
#   GPU_BUILD_DIR    the binaries (default build/gpu; build/gpu.tar.xz is
#                    unpacked into it unless it came from there)
#   PEER_REPS        timed launches per conv pass in step 3 (default 50)
#   GPU_CHECK_MOCK   folder of the test-only mock libcuda.so.1 (see
#                    scripts/ci-cuda.sh): a dry run on a machine without a
#                    GPU. Every step runs its commands on tiny sizes through
#                    the mock's no-op kernels (PyTorch on the CPU) so that the
#                    script, the binaries' flags and the parsers are tested;
#                    steps that need real hardware report "skipped: mock"
#   PYTHON           the python3 with torch (default: the first of python3
#                    and /usr/bin/python3 that imports torch)
#   STEP_SLEEP       N:SECONDS: step N first sleeps that long inside its
#                    slice (a test knob: a step that overruns)
# Exit status: 0 when steps 1-5 passed or were skipped, 1 when one failed or
# ran out of time, 2 for a usage or setup error.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
budget=${CHECK_BUDGET:-480}
[[ $budget =~ ^[0-9]+$ ]] && ((budget >= 12)) || { echo "gpu-check: CHECK_BUDGET=$budget: want whole seconds, at least 12" >&2; exit 2; }
reps=${PEER_REPS:-50}
[[ $reps =~ ^[0-9]+$ ]] && ((reps >= 1)) || { echo "gpu-check: PEER_REPS=$reps: want a whole number ≥ 1" >&2; exit 2; }
sleep_step=0 sleep_secs=0
if [[ -n "${STEP_SLEEP:-}" ]]; then
	[[ $STEP_SLEEP =~ ^([1-6]):([0-9]+)$ ]] || { echo "gpu-check: STEP_SLEEP=$STEP_SLEEP: want N:SECONDS with N in 1..6" >&2; exit 2; }
	sleep_step=${BASH_REMATCH[1]} sleep_secs=${BASH_REMATCH[2]}
fi
mock=${GPU_CHECK_MOCK:-}
if [[ -n "$mock" ]]; then
	[[ -e "$mock/libcuda.so.1" ]] || { echo "gpu-check: GPU_CHECK_MOCK=$mock has no libcuda.so.1 (scripts/ci-cuda.sh builds it)" >&2; exit 2; }
	mock=$(cd "$mock" && pwd)
	export LD_LIBRARY_PATH="$mock${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" CONVTRAIN_MOCK_NOOP_KERNELS=1
fi

bin=${GPU_BUILD_DIR:-build/gpu}
archive=""
if [[ -f "$bin.tar.xz" ]]; then
	archive="$bin.tar.xz, $(du -m "$bin.tar.xz" | cut -f1) MiB"
	# Unpacked unless the folder is the one it came from or was unpacked
	# from (same checksum; scripts/gpu-session.sh records it after packing).
	sum=$(sha256sum <"$bin.tar.xz" | cut -c1-64)
	if [[ ! -d "$bin" || "$(cat "$bin/.archive-sha256" 2>/dev/null)" != "$sum" ]]; then
		rm -rf "$bin"
		mkdir -p "$(dirname "$bin")"
		xz -dc "$bin.tar.xz" | tar -C "$(dirname "$bin")" -xf - || { echo "gpu-check: cannot unpack $bin.tar.xz" >&2; exit 2; }
		echo "$sum" >"$bin/.archive-sha256"
	fi
fi
bin=$(cd "$bin" 2>/dev/null && pwd) || { echo "gpu-check: $bin not found: run scripts/gpu-session.sh on a machine with Go first" >&2; exit 2; }
[[ -f "$bin/gpu-tests.tsv" ]] || { echo "gpu-check: $bin/gpu-tests.tsv not found: run scripts/gpu-build.sh first" >&2; exit 2; }

if [[ -n "${OUT:-}" ]]; then
	mkdir -p "$OUT"
	dir=$(cd "$OUT" && pwd)
else
	mkdir -p build
	dir=$root/build
fi
report=$dir/gpu-report.md
logs=$dir/gpu-report-logs
rm -rf "$logs" "$dir/gpu-summary.json"
mkdir -p "$logs"
: >"$report"
printf '%s\n' "$budget" >"$logs/budget.txt"
cmdline="scripts/gpu-check.sh"
for v in CHECK_BUDGET PEER_REPS STEP_SLEEP; do
	[[ -n "${!v:-}" ]] && cmdline="$v=${!v} $cmdline"
done
[[ -n "$mock" ]] && cmdline="GPU_CHECK_MOCK=… $cmdline"
printf '%s\n' "$cmdline" >"$logs/command.txt"
[[ -n "$mock" ]] && : >"$logs/mock"
cp "$bin/BUILDINFO" "$logs/buildinfo.txt" 2>/dev/null
# PyTorch: $PYTHON, else the first python3 on the PATH or /usr/bin/python3
# (Debian's python3-torch, as CI installs it) that imports torch.
py="" torch=no
for p in ${PYTHON:-$(command -v python3) /usr/bin/python3}; do
	[[ -x "$p" ]] || continue
	[[ -n "$py" ]] || py=$p
	if "$p" -c 'import torch' >/dev/null 2>&1; then
		py=$p torch=yes
		break
	fi
done
torchdev=cuda
[[ -n "$mock" ]] && torchdev=cpu

md() { printf '%s\n' "$@" >>"$report"; }
fence() { # fence FILE [N]: the last N lines (default 40) of FILE in a code block
	md '```'
	tail -n "${2:-40}" "$1" >>"$report"
	md '```'
}

# The steps' deadlines: step n ends when the slices 1..n (percent of the
# budget) have passed since the start; step 6 at the budget.
pct=(0 25 16 25 9 19 6)
step_n=0 step_t0=0 step_deadline=0 step_slice=0 step_status=ok step_note="" failed=0
begin_step() { # begin_step N TITLE
	local cum=0 i
	for ((i = 1; i <= $1; i++)); do cum=$((cum + pct[i])); done
	step_n=$1 step_t0=$SECONDS step_status=ok step_note=""
	step_slice=$((budget * pct[$1] / 100))
	step_deadline=$((budget * cum / 100))
	((step_n == 6)) && step_deadline=$budget step_slice=$((budget - budget * (cum - pct[6]) / 100))
	md "## $1. $2" "" "Started at ${SECONDS}s of the ${budget}s budget; slice ${step_slice}s, $((step_deadline - SECONDS))s with what the steps before left (ends by ${step_deadline}s)." ""
	if ((sleep_step == step_n)); then
		tcmd "$logs/sleep.log" "$root" sleep "$sleep_secs" || mark $?
		md "STEP_SLEEP: slept in this step ($(status_of "$step_status"))." ""
	fi
}
left() { echo $((step_deadline - SECONDS)); }
# tcmd LOG DIR CMD...: runs CMD in DIR with output appended to LOG, limited
# to what is left of the step's slice (or to $cap seconds, if smaller);
# returns CMD's status, 124 when it ran out of time.
tcmd() {
	local log=$1 wd=$2 l
	shift 2
	l=$(left)
	[[ -n "${cap:-}" ]] && ((cap < l)) && l=$cap
	if ((l < 1)); then
		echo "gpu-check: no time left in step $step_n's slice for: $*" >>"$log"
		return 124
	fi
	local t0=$SECONDS rc
	(cd "$wd" && exec timeout -k 5 "$l" "$@") </dev/null >>"$log" 2>&1
	rc=$?
	# 137: killed 5 s after the TERM of the time limit, or by something
	# else (the OOM killer) before it.
	((rc == 137 && SECONDS - t0 >= l)) && rc=124
	return $rc
}
# mark RC: folds a command's status into the step's.
mark() {
	if [[ $1 == 124 ]]; then
		step_status=TIMEOUT
	elif [[ $1 != 0 && $step_status != TIMEOUT ]]; then
		step_status=FAIL
	fi
}
status_of() { if [[ $1 == 0 || $1 == ok ]]; then echo ok; elif [[ $1 == 124 || $1 == TIMEOUT ]]; then echo "TIMEOUT (slice spent)"; elif [[ $1 =~ ^[0-9]+$ ]]; then echo "FAIL (exit $1)"; else echo "$1"; fi; }
# skip_step REASON: the step's result when nothing failed.
skip_step() { [[ $step_status == ok ]] && step_status="skipped: $1"; }
end_step() { # end_step NAME
	local secs=$((SECONDS - step_t0))
	if ((step_n == 6)) && [[ $step_status == TIMEOUT ]]; then
		step_status="partial: budget spent"
	fi
	case $step_status in FAIL | TIMEOUT) failed=1 ;; esac
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$step_n" "$1" "$step_status" "$secs" "$step_slice" "$step_note" >>"$logs/steps.tsv"
	md "**Step $step_n: $(status_of "$step_status")** in ${secs}s.${step_note:+ $step_note}" ""
	summary
}
summary() {
	[[ -n "$py" ]] && "$py" scripts/gpu-report.py summary "$dir" >/dev/null 2>>"$logs/summary.log"
}
on_mock() { [[ -n "$mock" ]]; }

md "# GPU check report" ""
md "Generated by \`$cmdline\` on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ); budget ${budget}s." ""
if on_mock; then
	md "**Dry run on the test-only mock libcuda ($mock): every kernel is a no-op and every event 0.5 ms apart; no figure below means anything.**" ""
fi

# 1. The machine and GPU conformance.
begin_step 1 "Machine and GPU conformance"
if command -v nvidia-smi >/dev/null 2>&1; then
	# Device 0, the one the tests and benchmarks open.
	timeout 30 nvidia-smi --id=0 --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit \
		--format=csv,noheader 2>&1 | head -n 1 >"$logs/machine.csv"
	timeout 30 nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1 >"$logs/cuda-version.txt"
	md "| GPU | driver | memory | max SM clock | max memory clock | power limit |" "| --- | --- | --- | --- | --- | --- |"
	md "| $(sed 's/, */ | /g' "$logs/machine.csv") |" "" "CUDA (driver): $(cat "$logs/cuda-version.txt")" ""
else
	md "nvidia-smi not found." ""
fi
md "Build (\`BUILDINFO\`)${archive:+, carried as $archive}:" '```'
cat "$bin/BUILDINFO" >>"$report" 2>/dev/null || md "(no BUILDINFO)"
md '```' ""
md "| binary | package | result | tests | passed | failed | skipped | seconds |" "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"
ran=0
while IFS=$'\t' read -r test pkgdir; do
	[[ -n "$test" ]] || continue
	log=$logs/test-${test%.test}.log
	t=$SECONDS
	if on_mock; then
		# The mock's kernels do nothing: list the tests this step would run.
		tcmd "$log" "$root/$pkgdir" "$bin/$test" -test.list 'CUDA$'
		rc=$?
		sed -i '/^TestCUDADriverMock$\|^TestSanitizeCUDA$/d' "$log"
		n=$(grep -c '^Test' "$log")
		res="listed (mock)"
		((n == 0)) && res="no test matches 'CUDA\$'"
		((rc == 0)) || res=$(status_of $rc)
		md "| $test | $pkgdir | $res | $(grep '^Test' "$log" | tr '\n' ' ') | | | | $((SECONDS - t)) |"
	else
		tcmd "$log" "$root/$pkgdir" "$bin/$test" -test.v -test.count=1 -test.run 'CUDA$' \
			-test.skip '^(TestCUDADriverMock|TestSanitizeCUDA)$' -test.timeout="$(($(left) + 30))s"
		rc=$?
		n=$(grep -c -- '^--- \(PASS\|FAIL\|SKIP\)' "$log")
		res=$(status_of $rc)
		((n == 0 && rc == 0)) && res="ok: no test matches 'CUDA\$'"
		# On a GPU machine a skipped CUDA test is a failure of this check.
		if grep -q -- '^--- SKIP: Test' "$log"; then
			res="$res, CUDA TESTS SKIPPED"
			((rc == 0)) && rc=1
		fi
		tests=$(grep -o -- '^--- [A-Z]*: Test[A-Za-z0-9_]*' "$log" | sed 's/^--- //' | tr '\n' ' ')
		md "| $test | $pkgdir | $res | $tests | $(grep -c -- '^ *--- PASS' "$log") | $(grep -c -- '^ *--- FAIL' "$log") | $(grep -c -- '^ *--- SKIP' "$log") | $((SECONDS - t)) |"
	fi
	ran=$((ran + n))
	mark $rc
done <"$bin/gpu-tests.tsv"
md ""
if ((ran == 0)); then
	md "No cuda-tagged test matched -test.run 'CUDA\$': the binaries were built without -tags cuda, or the tests were renamed." ""
	mark 1
fi
for log in "$logs"/test-*.log; do
	[[ -e "$log" ]] || continue
	if grep -q -- '--- FAIL\|^panic' "$log"; then
		md "Failures in $(basename "$log" .log):" '```'
		grep -B2 -A12 -- '--- FAIL\|^panic' "$log" | head -n 120 >>"$report"
		md '```' ""
	elif [[ $step_status != ok ]]; then
		md "Last lines of $(basename "$log" .log):"
		fence "$log" 20
		md ""
	fi
	if grep -q -- '--- SKIP' "$log"; then
		md "Skipped in $(basename "$log" .log):" '```'
		grep -A2 -- '--- SKIP' "$log" | head -n 30 >>"$report"
		md '```' ""
	fi
done
on_mock && skip_step "mock (the selected tests listed, not run)"
end_step "machine and conformance"

# 2. train compare fp32, tf32 and bf16; one MNIST epoch in fp32 and one in bf16.
begin_step 2 "train compare and one MNIST epoch"
train=$bin/train
if [[ ! -x "$train" ]]; then
	md "Skipped: $train was not built (cmd/train missing at build time)." ""
	mark 1
else
	# compare fp32: 12 steps of 64 (2.5e-7 on the simulator; longer runs at
	# this learning rate amplify rounding past the tolerance, see go doc
	# ./cmd/train). compare tf32 and bf16: 2 steps against a CPU that
	# rounds each convolution's operands as the device's kernel does
	# (4.5e-6 and 2.7e-7 on the simulator; a float32 reference differs by
	# 3.3e-2 and 6.3e-2): -tol 1e-3 leaves room for the tensor cores'
	# truncating accumulation.
	specs=("compare-fp32|compare -device gpu -steps 12 -batch 64"
		"compare-tf32|compare -device gpu -precision tf32 -steps 2 -tol 1e-3"
		"compare-bf16|compare -device gpu -precision bf16 -steps 2 -tol 1e-3"
		"epoch|-device gpu -epochs 1"
		"epoch-bf16|-device gpu -epochs 1 -precision bf16")
	for spec in "${specs[@]}"; do
		key=${spec%%|*}
		args=(${spec#*|} -data "$bin/mnist")
		log=$logs/train-$key.log
		# On the mock the GPU's losses are 0 (no-op kernels): compare runs
		# with a tolerance that passes anything, to walk the command and
		# the parsing of its result.
		on_mock && [[ $key == compare-* ]] && args+=(-tol 1e9)
		on_mock && args+=(-limit 1280)
		t=$SECONDS
		tcmd "$log" "$root" "$train" "${args[@]}"
		rc=$?
		md "### train $key: $(status_of $rc) ($((SECONDS - t))s)" "" "\`train ${args[*]}\`" ""
		fence "$log" 30
		md ""
		mark $rc
	done
	on_mock && skip_step "mock (no-op kernels; compare with -tol 1e9)"
fi
end_step "train"

# 3. The conv shape suite: ours beside cuDNN.
begin_step 3 "Conv passes on the GPU beside PyTorch/cuDNN"
shapes=.
benchtime=${reps}x
torchargs=(--reps "$reps" --warmup 10)
if on_mock; then
	shapes='^mnist-conv[12]-b64$'
	benchtime=3x
	torchargs=(--reps 2 --warmup 1)
fi
gpu_test=$(awk -F '\t' '$2 == "gpu" {print $1}' "$bin/gpu-tests.tsv")
if [[ -z "$gpu_test" ]]; then
	md "Skipped: no gpu test binary in gpu-tests.tsv." ""
	mark 1
else
	# Ours first, with at most half of what is left, one process per
	# precision (a kernel that faults loses its own precision's figures
	# only), each with an equal share of what ours has left; cuDNN then.
	t=$SECONDS
	ours_end=$((SECONDS + $(left) / 2))
	precs=(fp32 bf16 tf32 fp32pipe)
	rc=0
	for i in "${!precs[@]}"; do
		prec=${precs[i]}
		t1=$SECONDS
		cap=$(((ours_end - SECONDS) / (${#precs[@]} - i))) tcmd "$logs/conv-ours.log" "$root/gpu" "$bin/$gpu_test" \
			-test.run '^$' -test.v -test.bench "^BenchmarkConvPeer\$/^shape=(${shapes#^})/^prec=$prec\$" \
			-test.benchtime "$benchtime" -test.count=1
		r=$?
		if ! grep -q "^BenchmarkConvPeer/.*/prec=$prec/" "$logs/conv-ours.log" && ((r == 0)); then
			r=1
			echo "gpu-check: BenchmarkConvPeer reported nothing at prec=$prec" >>"$logs/conv-ours.log"
		fi
		md "- Ours at $prec: \`$gpu_test -test.bench 'BenchmarkConvPeer//prec=$prec' -test.benchtime $benchtime\`: $(status_of $r) ($((SECONDS - t1))s)."
		((r == 0)) || rc=$r
		mark $r
	done
	md ""
	((rc == 0)) || fence "$logs/conv-ours.log" 20
fi
if [[ $torch == no ]]; then
	md "cuDNN: skipped: needs python3 with torch." ""
	step_note="PyTorch missing."
else
	t=$SECONDS
	tcmd "$logs/conv-torch.log" "$root" "$py" scripts/torch-gpu-bench.py --part conv --device "$torchdev" \
		--shapes "$shapes" --json "$logs/conv-torch.json" "${torchargs[@]}"
	rc=$?
	md "cuDNN: \`torch-gpu-bench.py --part conv ${torchargs[*]}\`: $(status_of $rc) ($((SECONDS - t))s); $(grep -m1 '^- device' "$logs/conv-torch.log" | sed 's/^- //')" ""
	((rc == 0)) || fence "$logs/conv-torch.log" 20
	mark $rc
fi
if [[ -n "$py" ]]; then
	"$py" scripts/gpu-report.py conv-table "$dir" >>"$report" 2>>"$logs/summary.log" || mark 1
	md ""
fi
on_mock && skip_step "mock (walked: the mock's fake event times; PyTorch on the CPU)"
end_step "conv vs cudnn"

# 4. The MNIST epoch against PyTorch eager.
begin_step 4 "MNIST epoch against PyTorch eager"
if [[ $torch == no ]]; then
	md "Skipped: needs python3 with torch." ""
	skip_step "needs python3 with torch"
elif [[ ! -d "$bin/mnist" ]]; then
	md "Skipped: $bin/mnist is missing (scripts/gpu-build.sh copies it from the Go module cache)." ""
	mark 1
else
	t=$SECONDS
	margs=(--part mnist --mnist "$bin/mnist" --device "$torchdev" --json "$logs/mnist-torch.json")
	on_mock && margs+=(--limit 1280)
	tcmd "$logs/mnist-torch.log" "$root" "$py" scripts/torch-gpu-bench.py "${margs[@]}"
	rc=$?
	md "\`torch-gpu-bench.py ${margs[*]}\`: $(status_of $rc) ($((SECONDS - t))s)" ""
	((rc == 0)) || fence "$logs/mnist-torch.log" 20
	mark $rc
	"$py" scripts/gpu-report.py net-table "$dir" >>"$report" 2>>"$logs/summary.log" || mark 1
	md ""
	on_mock && skip_step "mock (walked: PyTorch on the CPU, 1280 images)"
fi
end_step "epoch vs pytorch"

# 5. compute-sanitizer over the reduced run.
begin_step 5 "compute-sanitizer"
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer 2>/dev/null | head -n 1)
if on_mock; then
	# The test the tools would run must exist.
	tcmd "$logs/sanitizer-list.log" "$root/gpu" "$bin/$gpu_test" -test.list '^TestSanitizeCUDA$'
	rc=$?
	grep -q '^TestSanitizeCUDA$' "$logs/sanitizer-list.log" || rc=1
	md "Skipped: mock (compute-sanitizer needs a GPU); $gpu_test -test.list '^TestSanitizeCUDA\$': $(status_of $rc)." ""
	mark $rc
	skip_step mock
elif [[ -z "$sanitizer" ]]; then
	md "Skipped: compute-sanitizer not found (it comes with the CUDA toolkit)." ""
	skip_step "compute-sanitizer not found"
elif [[ -z "$gpu_test" ]]; then
	md "Skipped: no gpu test binary." ""
	mark 1
else
	md "\`compute-sanitizer --tool TOOL --error-exitcode 1 $gpu_test -test.run '^TestSanitizeCUDA\$' -test.skip '^TestSanitizeCUDA/large\$'\`" "" \
		"| tool | result | errors | subtests passed | failed | seconds |" "| --- | --- | ---: | ---: | ---: | ---: |"
	tools=(memcheck racecheck synccheck initcheck)
	for i in "${!tools[@]}"; do
		tool=${tools[i]}
		log=$logs/sanitizer-$tool.log
		t=$SECONDS
		cap=$(($(left) / (${#tools[@]} - i))) tcmd "$log" "$root/gpu" "$sanitizer" --tool "$tool" --error-exitcode 1 \
			"$bin/$gpu_test" -test.run '^TestSanitizeCUDA$' -test.skip '^TestSanitizeCUDA/large$' -test.count=1 -test.v
		rc=$?
		errs=$(grep -oE '(ERROR|RACECHECK) SUMMARY: [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)
		md "| $tool | $(status_of $rc) | ${errs:-?} | $(grep -c -- '^ *--- PASS' "$log") | $(grep -c -- '^ *--- FAIL' "$log") | $((SECONDS - t)) |"
		mark $rc
	done
	md ""
	for tool in "${tools[@]}"; do
		if grep -qE '^========= (Invalid|Program hit|Race|Barrier|Uninitialized|Error)' "$logs/sanitizer-$tool.log"; then
			md "$tool, first reports:" '```'
			grep -E -A4 '^========= (Invalid|Program hit|Race|Barrier|Uninitialized|Error)' "$logs/sanitizer-$tool.log" | head -n 40 >>"$report"
			md '```' ""
		fi
	done
fi
end_step "compute-sanitizer"

# 6. Whatever time remains: the full benchmarks.
begin_step 6 "Remaining benchmarks (only if time is left)"
if (($(left) < 5)); then
	md "No time left." ""
	step_status="partial: budget spent"
else
	bsteps=50 bbench='ConvBackwardShared|BatchNormKeep|ConvSuite/impl=gpu|Conv2D/impl=gpu' bbtime=20x
	on_mock && bsteps=5 bbench='Conv2D/impl=gpu|ConvBackwardShared/shape=resnet-3x3-512x7|BatchNormKeep/shape=resnet-(3x3-512x7|1x1-2048to512x7)' bbtime=2x
	for prec in fp32 bf16 tf32; do
		[[ -x "$train" ]] || break
		t=$SECONDS
		tcmd "$logs/extra-train-bench-$prec.log" "$root" "$train" bench -device gpu -precision "$prec" -batch 64 -steps "$bsteps"
		rc=$?
		md "### train bench -precision $prec: $(status_of $rc) ($((SECONDS - t))s)" ""
		fence "$logs/extra-train-bench-$prec.log" 45
		md ""
		mark $rc
	done
	if [[ $torch == yes ]]; then
		t=$SECONDS
		nargs=(--part net --device "$torchdev" --json "$logs/extra-torch-net.json")
		on_mock && nargs+=(--limit 640 --reps 2 --warmup 1)
		tcmd "$logs/extra-torch-net.log" "$root" "$py" scripts/torch-gpu-bench.py "${nargs[@]}"
		rc=$?
		md "### PyTorch, default network on random data: $(status_of $rc) ($((SECONDS - t))s)" ""
		((rc == 0)) && sed -n '/^## /,$p' "$logs/extra-torch-net.log" >>"$report"
		md ""
		mark $rc
	fi
	if [[ -n "$gpu_test" ]]; then
		t=$SECONDS
		tcmd "$logs/extra-bench.log" "$root/gpu" "$bin/$gpu_test" -test.run '^$' -test.bench "$bbench" -test.benchtime "$bbtime" -test.count=1
		rc=$?
		md "### Go benchmarks ($bbench, $bbtime): $(status_of $rc) ($((SECONDS - t))s)" '```'
		grep -E '^(Benchmark|FAIL|ok|---)' "$logs/extra-bench.log" >>"$report"
		md '```' ""
		mark $rc
	fi
	on_mock && skip_step "mock (walked on no-op kernels)"
fi
end_step "remaining benchmarks"

md "## Summary" "" "| step | what | result | seconds | slice |" "| ---: | --- | --- | ---: | ---: |"
while IFS=$'\t' read -r n name st secs slice _; do
	md "| $n | $name | $st | $secs | $slice |"
done <"$logs/steps.tsv"
md ""
if [[ -n "$py" && -f "$dir/gpu-summary.json" ]]; then
	md "Every figure, machine-readable: \`gpu-summary.json\` beside this report; on the machine with the repository," \
		"\`scripts/gpu-report.py record gpu-summary.json\` adds its rows to BENCHMARKS.md."
else
	md "No gpu-summary.json: $( [[ -z "$py" ]] && echo "python3 not found" || echo "see gpu-report-logs/summary.log")."
	[[ -n "$py" ]] && failed=1
fi
md "" "Result: $( ((failed == 0)) && echo "steps 1-5 passed or were skipped." || echo "FAILURES above.") Total ${SECONDS}s of ${budget}s."
if ((failed == 0)); then
	echo "gpu-check: ok in ${SECONDS}s -> $report"
else
	echo "gpu-check: FAIL in ${SECONDS}s -> $report (logs: $logs)"
fi
exit "$failed"
