#!/usr/bin/env bash
# ci-cuda.sh proves, without a GPU, that the CUDA side builds and assembles
# (issue 7). One summary line per check:
#
#   stub        scripts/gen-libcuda-stub.sh: the link-only libcuda stub
#   wrapper     gpu/cudacompat/shim_test.c compiled and run against both
#               headers: the wrapper is inert on 12.9; on 13.0 each of the
#               five names reaches its shim, which calls the 13.0 function
#               with the arguments cu meant (recorders stand in for libcuda)
#   build-12.9  go vet + go build -tags cuda ./... against CUDA 12.9 cuda.h
#   build-13.0  the same against CUDA 13.0 (proves gpu/cudacompat/cuda.h)
#   link        scripts/gpu-build.sh: the cuda-tagged test binaries and train,
#               linked against the generated libcuda stub (build/gpu/)
#   driver      gpu/cu_driver.go run against gpu/testdata/mocklibcuda.c, a
#               test-only libcuda.so.1 (one modelled device, host memory,
#               a context check on every call): TestCUDADriverMock, with
#               binaries built against both headers
#   train       build/gpu/train -device gpu against the mock with no-op
#               kernels: one short epoch with a checkpoint, then train eval
#               of it: every path of the binary through the cu adapter
#               (uploads, launches, downloads, events) runs under cgo's
#               pointer checks; the numbers are meaningless
#   overhead    build/gpu/train bench -device gpu against the mock with
#               CONVTRAIN_MOCK_NOOP_KERNELS=1 (every kernel a no-op): the
#               host's time to issue a training step of the default network
#               through the real cu adapter, the driver's own cost excluded,
#               launch by launch (queued) and as a replay of the recorded
#               step (graphed: the upload of the step's values and one
#               cuGraphLaunch) (figures, not thresholds: it fails only if
#               the run fails)
#   dryrun      scripts/gpu-dryrun.sh: scripts/gpu-check.sh from the packed
#               archive (scripts/gpu-session.sh, at most 30 MiB) against the
#               mock: all six steps walked, the summary recorded into a copy
#               of BENCHMARKS.md; cut off (SIGKILL) in step 3 and overrunning
#               step 2's slice, the report of the earlier steps is complete
#   ptxas       every kernels/*.ptx assembles with ptxas for sm_70/80/90 (at
#               or above its .target); the report kernels/RESOURCES.md is
#               regenerated and must equal the committed one; spills flagged;
#               it includes the SASS mix of each kernel's main loop
#               (cuobjdump -sass of the sm_80/sm_90 cubins, kernels/internal/sassmix)
#   nccl        host/dist's NCCL binding (dlopen): testdata/nccl_abi_check.c
#               proves host/dist/nccl_abi.h against the pinned wheel's nccl.h
#               and calls its libnccl.so.2; go test -tags cuda -run NCCL
#               ./host/dist: a mock libnccl (missing library, missing symbol,
#               old version, a peer that never joins or dies: aborted, no
#               hang; groups: the bits of the calls one by one, a failure
#               or a hang inside a group aborted) and the wheel's
#               libnccl.so.2 (no GPU needed)
#   nccl-train  cmd/train's choice of reduction in the cuda build (NCCL for
#               -dist -device gpu; a missing libnccl an error naming it):
#               TestNCCLDeviceCommChoice on the mock libcuda; the trainer's
#               NCCL reduction through the cu adapter, a step's tensors as
#               one group, on the mock libcuda and the mock libnccl:
#               TestNCCLGradsMock
#
# Usage: scripts/ci-cuda.sh [--update]    (--update rewrites RESOURCES.md)
#
# Build line (wrapper header folder first; never -include):
#   CGO_CFLAGS="-I$PWD/gpu/cudacompat -I<cuda include>" CGO_LDFLAGS="-L<libcuda dir>" go build -tags cuda ./...
#
# Headers and ptxas come from NVIDIA's PyPI wheels pinned in
# scripts/cuda-pins.txt, installed by scripts/cuda-deps.sh into
# $CONVTRAIN_CUDA_CACHE (default $HOME/.cache/convtrain-cuda) and reused.
# When they cannot be installed (no network, no pip), every check says what
# it needs; the script then fails only in CI (CI=true) and exits 0 elsewhere.
# Logs of each check: build/ci-cuda/.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2

update=no
for arg in "$@"; do
	case "$arg" in
	--update) update=yes ;;
	*) echo "usage: scripts/ci-cuda.sh [--update]" >&2; exit 2 ;;
	esac
done

logs=build/ci-cuda
mkdir -p "$logs"
t_all=$SECONDS
failed=0

line() { printf 'ci-cuda: %-10s %s\n' "$1:" "$2"; }
# run NAME LOG CMD...: runs CMD with output to LOG; on failure prints LOG's tail.
run() {
	local log=$1
	shift
	if "$@" >"$log" 2>&1; then
		return 0
	fi
	sed 's/^/    /' "$log" | tail -n 25
	return 1
}

t=$SECONDS
if ! deps=$(scripts/cuda-deps.sh 2>"$logs/deps.log"); then
	need=$(head -n 1 "$logs/deps.log")
	line deps "SKIP: $need"
	for c in stub wrapper build-12.9 build-13.0 link driver train overhead dryrun ptxas; do
		line "$c" "SKIP: needs the pinned NVIDIA wheels (scripts/cuda-pins.txt) from PyPI with python3 -m pip"
	done
	if [[ "${CI:-}" == "true" ]]; then
		echo "ci-cuda: FAIL (CI=true and the CUDA wheels could not be installed)"
		exit 1
	fi
	echo "ci-cuda: skipped (not in CI)"
	exit 0
fi
eval "$deps"
line deps "ok ($(awk '$1 !~ /^#/ && NF {printf "%s%s", sep, $2; sep=" "}' scripts/cuda-pins.txt); cache $CONVTRAIN_CUDA_CACHE) [$((SECONDS - t))s]"

t=$SECONDS
stub_ok=yes
if stub=$(scripts/gen-libcuda-stub.sh 2>"$logs/stub.log"); then
	eval "$stub"
	line stub "ok ($(wc -l <"$LIBCUDA_STUB_DIR/syms") cu* symbols, link-only, $LIBCUDA_STUB_DIR) [$((SECONDS - t))s]"
else
	stub_ok=no
	sed 's/^/    /' "$logs/stub.log" | tail -n 20
	line stub "FAIL: could not generate the libcuda link stub (scripts/gen-libcuda-stub.sh)"
	failed=1
	LIBCUDA_STUB_DIR=/nonexistent
fi

t=$SECONDS
wrap=ok
for v in 12.9 13.0; do
	if [[ $v == 12.9 ]]; then inc=$CUDA12_INCLUDE; else inc=$CUDA13_INCLUDE; fi
	if ! run "$logs/wrapper-$v.log" bash -c "gcc -std=c99 -Wall -Wextra -Werror -I'$CUDA_COMPAT_INCLUDE' -I'$inc' \
		-o '$logs/shim_test-$v' gpu/cudacompat/shim_test.c && '$logs/shim_test-$v'"; then
		wrap="FAIL (gpu/cudacompat/shim_test.c against cuda.h $v; log $logs/wrapper-$v.log)"
		failed=1
	fi
done
if [[ $wrap == ok ]]; then
	line wrapper "ok (gpu/cudacompat/shim_test.c: inert with cuda.h 12.9; the five shims call the 13.0 functions as cu meant) [$((SECONDS - t))s]"
else
	line wrapper "$wrap [$((SECONDS - t))s]"
fi

export CGO_ENABLED=1
for v in 12.9 13.0; do
	if [[ $v == 12.9 ]]; then inc=$CUDA12_INCLUDE; else inc=$CUDA13_INCLUDE; fi
	t=$SECONDS
	if [[ $stub_ok == no ]]; then
		line "build-$v" "SKIP: needs the libcuda stub"
		continue
	fi
	if run "$logs/build-$v.log" env CGO_CFLAGS="-I$CUDA_COMPAT_INCLUDE -I$inc" CGO_LDFLAGS="-L$LIBCUDA_STUB_DIR" \
		bash -c 'go vet -tags cuda ./... && go build -tags cuda ./...'; then
		line "build-$v" "ok (go vet + go build -tags cuda ./..., cuda.h $v, wrapper first) [$((SECONDS - t))s]"
	else
		line "build-$v" "FAIL (go vet/build -tags cuda ./... against cuda.h $v; log $logs/build-$v.log) [$((SECONDS - t))s]"
		failed=1
	fi
done

t=$SECONDS
link_ok=no
if [[ $stub_ok == no ]]; then
	line link "SKIP: needs the libcuda stub"
elif run "$logs/link.log" scripts/gpu-build.sh "$CUDA13_INCLUDE" "$LIBCUDA_STUB_DIR"; then
	link_ok=yes
	line link "ok ($(tail -n 1 "$logs/link.log" | sed 's/^gpu-build: //')) [$((SECONDS - t))s]"
else
	line link "FAIL (scripts/gpu-build.sh; log $logs/link.log) [$((SECONDS - t))s]"
	failed=1
fi

# driver: the cu adapter against the test-only mock libcuda.
t=$SECONDS
mock=$logs/libcuda-mock-test-only
drv_fail=""
if [[ $stub_ok == no ]]; then
	line driver "SKIP: needs the libcuda stub (its symbol list)"
else
	rm -rf "$mock"
	mkdir -p "$mock"
	if ! run "$logs/driver-mock.log" bash -c "gcc -std=gnu11 -Wall -Wextra -Werror -fPIC -O1 -c -o '$mock/mock.o' gpu/testdata/mocklibcuda.c &&
		nm --defined-only '$mock/mock.o' | awk '\$2 == \"T\" {print \$3}' | sort >'$mock/defined' &&
		comm -23 '$LIBCUDA_STUB_DIR/syms' '$mock/defined' | awk '{print \"int \" \$1 \"(void) { return 34; }\"}' >'$mock/fallback.c' &&
		gcc -shared -fPIC -w -Wl,-soname,libcuda.so.1 -o '$mock/libcuda.so.1' '$mock/mock.o' '$mock/fallback.c'"; then
		drv_fail="could not build gpu/testdata/mocklibcuda.c"
	else
		for v in 12.9 13.0; do
			if [[ $v == 12.9 ]]; then inc=$CUDA12_INCLUDE; else inc=$CUDA13_INCLUDE; fi
			bin=$root/$logs/gpu-$v.test
			if ! run "$logs/driver-$v.log" env CGO_CFLAGS="-I$CUDA_COMPAT_INCLUDE -I$inc" CGO_LDFLAGS="-L$LIBCUDA_STUB_DIR" \
				go test -tags cuda -c -o "$bin" ./gpu; then
				drv_fail="$drv_fail gpu test binary (cuda.h $v) does not build;"
				continue
			fi
			if ! (cd gpu && LD_LIBRARY_PATH=$root/$mock CONVTRAIN_MOCK_LIBCUDA=1 \
				"$bin" -test.run '^TestCUDADriverMock$' -test.v -test.count=1) >"$logs/driver-$v.log" 2>&1 ||
				! grep -q -- '^--- PASS: TestCUDADriverMock' "$logs/driver-$v.log"; then
				sed 's/^/    /' "$logs/driver-$v.log" | tail -n 25
				drv_fail="$drv_fail TestCUDADriverMock (cuda.h $v; log $logs/driver-$v.log);"
			fi
		done
	fi
	if [[ -z "$drv_fail" ]]; then
		line driver "ok (gpu/cu_driver.go against the mock libcuda, built with cuda.h 12.9 and 13.0: TestCUDADriverMock) [$((SECONDS - t))s]"
	else
		line driver "FAIL:${drv_fail%;} [$((SECONDS - t))s]"
		failed=1
	fi
fi

# The train and overhead checks run build/gpu/train on the mock with every
# kernel a no-op; they need the link and driver checks to have passed.
mock_ready=yes
[[ $stub_ok == no || $link_ok == no || -n "$drv_fail" ]] && mock_ready=no
on_mock() { env LD_LIBRARY_PATH="$root/$mock" CONVTRAIN_MOCK_NOOP_KERNELS=1 "$@"; }
mock_skip="SKIP: needs the mock libcuda and build/gpu/train (driver and link checks)"

# train: the cuda-tagged binary end to end on the mock.
t=$SECONDS
if [[ $mock_ready == no ]]; then
	line train "$mock_skip"
elif run "$logs/train-mock.log" on_mock bash -c "
	build/gpu/train -device gpu -data build/gpu/mnist -epochs 1 -limit 1280 -save '$logs/mock.safetensors' &&
	build/gpu/train eval -device gpu -data build/gpu/mnist -load '$logs/mock.safetensors'" &&
	grep -q '^epoch 1/1 ' "$logs/train-mock.log"; then
	line train "ok (train -device gpu, 20 steps, a checkpoint, train eval: through cu to the mock's no-op kernels) [$((SECONDS - t))s]"
else
	line train "FAIL (train -device gpu on the mock libcuda; log $logs/train-mock.log) [$((SECONDS - t))s]"
	failed=1
fi

# overhead: a training step issued through the cu adapter to the mock's
# no-op kernels; the queued line of train bench gives the host's share.
t=$SECONDS
if [[ $mock_ready == no ]]; then
	line overhead "$mock_skip"
elif run "$logs/overhead.log" on_mock build/gpu/train bench -device gpu -batch 64 -steps 2000 &&
	q=$(grep -o 'host [0-9.]* ms per step to issue [0-9]* launches ([0-9.]* µs per launch)' "$logs/overhead.log") &&
	g=$(grep -o 'host [0-9.]* µs per step to issue [0-9]* graph launch(es) and [0-9]* upload(s)' "$logs/overhead.log"); then
	line overhead "ok (default network, batch 64, no-op kernels through cu: eager $q; recorded (-graph) $g; driver cost excluded) [$((SECONDS - t))s]"
else
	line overhead "FAIL (train bench -device gpu on the mock libcuda; log $logs/overhead.log) [$((SECONDS - t))s]"
	failed=1
fi

# dryrun: scripts/gpu-check.sh end to end on the mock, as a device call runs it.
t=$SECONDS
if [[ $mock_ready == no ]]; then
	line dryrun "$mock_skip"
elif run "$logs/dryrun.log" scripts/gpu-dryrun.sh "$root/$mock"; then
	line dryrun "$(tail -n 1 "$logs/dryrun.log" | sed 's/^gpu-dryrun: //') [$((SECONDS - t))s]"
else
	line dryrun "FAIL (scripts/gpu-dryrun.sh; log $logs/dryrun.log, reports in build/gpu-dryrun/) [$((SECONDS - t))s]"
	failed=1
fi

t=$SECONDS
report=kernels/RESOURCES.md
new="$logs/RESOURCES.md"
if ! PTXAS12=$PTXAS12 PTXAS13=$PTXAS13 CUOBJDUMP=$CUOBJDUMP NVDISASM=$NVDISASM scripts/ptx-resources.sh >"$new" 2>"$logs/ptxas.log"; then
	sed 's/^/    /' "$logs/ptxas.log" | tail -n 25
	line ptxas "FAIL (a PTX file does not assemble; log $logs/ptxas.log) [$((SECONDS - t))s]"
	failed=1
else
	nfiles=$(ls kernels/*.ptx 2>/dev/null | wc -l)
	nrows=$(sed '/^# SASS/q' "$new" | grep -cE '^\| .* \| sm_[0-9]+ \|' || true)
	nmix=$(sed -n '/^# SASS/,$p' "$new" | grep -cE '^\| .* \| sm_[0-9]+ \|' || true)
	spills=$(awk -F ' [|] ' '/^\| .*SPILL/ {print $2 "@" $3 "/" $4}' "$new" | sort -u | tr '\n' ' ')
	spillmsg="no spills"
	[[ -n "$spills" ]] && spillmsg="SPILLS: ${spills% }"
	if [[ $update == yes ]]; then
		if ! cp "$new" "$report"; then
			line ptxas "FAIL: could not write $report"
			exit 1
		fi
		line ptxas "ok, $report rewritten ($nfiles files, $nrows kernel×arch×ptxas rows; $spillmsg) [$((SECONDS - t))s]"
	elif [[ ! -f "$report" ]]; then
		line ptxas "FAIL: $report is missing; run scripts/ci-cuda.sh --update and commit it ($spillmsg)"
		failed=1
	elif ! diff -u "$report" "$new" >"$logs/RESOURCES.diff"; then
		sed 's/^/    /' "$logs/RESOURCES.diff" | head -n 40
		line ptxas "FAIL: $report is out of date; run scripts/ci-cuda.sh --update and commit it ($spillmsg) [$((SECONDS - t))s]"
		failed=1
	else
		line ptxas "ok ($nfiles files assemble, $nrows kernel×arch×ptxas rows and $nmix SASS main-loop rows equal to $report; $spillmsg) [$((SECONDS - t))s]"
	fi
fi

# nccl: host/dist's NCCL binding against the pinned nvidia-nccl-cu13 wheel.
t=$SECONDS
nccl_lib=${NCCL_INCLUDE%/include}/lib/libnccl.so.2
if run "$logs/nccl.log" bash -c "gcc -std=c11 -Wall -Wextra -Wconversion -Werror -I'$NCCL_INCLUDE' -I'$CUDA13_INCLUDE' \
	-I'$CUDA13_CRT_INCLUDE' -I'$CUDA13_CCCL_INCLUDE' -o '$logs/nccl_abi_check' host/dist/testdata/nccl_abi_check.c '$nccl_lib' &&
	LD_LIBRARY_PATH='${nccl_lib%/*}' '$logs/nccl_abi_check' &&
	CONVTRAIN_NCCL_LIB='$nccl_lib' go test -tags cuda -count=1 -run NCCL -v ./host/dist" &&
	grep -q -- '^--- PASS: TestNCCLRealLibrary' "$logs/nccl.log"; then
	line nccl "ok (nccl_abi.h equals nccl.h: $(grep -o 'nccl_abi_check: ok (.*)' "$logs/nccl.log" | sed 's/^nccl_abi_check: ok (//; s/)$//'); binding tests on the mock and the wheel's libnccl.so.2) [$((SECONDS - t))s]"
else
	line nccl "FAIL (host/dist NCCL: nccl_abi_check.c or go test -tags cuda -run NCCL ./host/dist; log $logs/nccl.log) [$((SECONDS - t))s]"
	failed=1
fi

# nccl-train: cmd/train's choice of gradient reduction in the cuda build
# (NCCL for -dist on -device gpu; one rank, -nccl=false, the CPU and the
# simulator keep the host path; a missing libnccl an error naming it), on
# the mock libcuda (the binary links libcuda).
t=$SECONDS
if [[ ! -f $mock/libcuda.so.1 ]]; then
	line nccl-train "SKIP: needs the mock libcuda (the driver check)"
elif run "$logs/nccl-train.log" bash -c "CGO_CFLAGS='-I$CUDA_COMPAT_INCLUDE -I$CUDA13_INCLUDE' CGO_LDFLAGS='-L$LIBCUDA_STUB_DIR' \
	go test -tags cuda -c -o '$root/$logs/train-nccl.test' ./cmd/train &&
	cd cmd/train && LD_LIBRARY_PATH='$root/$mock' CONVTRAIN_MOCK_LIBCUDA=1 \
	'$root/$logs/train-nccl.test' -test.run '^(TestNCCLDeviceCommChoice|TestNCCLGradsMock)$' -test.v -test.count=1" &&
	grep -q -- '^--- PASS: TestNCCLDeviceCommChoice' "$logs/nccl-train.log" &&
	grep -q -- '^--- PASS: TestNCCLGradsMock' "$logs/nccl-train.log"; then
	line nccl-train "ok (cmd/train picks NCCL for -dist -device gpu, the host path otherwise; a missing libnccl is an error naming it; a step's reduction is one NCCL group through cu) [$((SECONDS - t))s]"
else
	line nccl-train "FAIL (go test -tags cuda -run 'TestNCCLDeviceCommChoice|TestNCCLGradsMock' ./cmd/train on the mock libcuda; log $logs/nccl-train.log) [$((SECONDS - t))s]"
	failed=1
fi

if [[ $failed != 0 ]]; then
	echo "ci-cuda: FAIL [$((SECONDS - t_all))s]"
	exit 1
fi
echo "ci-cuda: ok [$((SECONDS - t_all))s]"
