#!/usr/bin/env bash
# docker-entrypoint.sh is the entry point of Dockerfile.cuda:
#   (no arguments)    go test -tags cuda -count=1 ./...   (the GPU tests)
#   train [flags]     the cuda-tagged train, -device gpu unless -device is given
#   check             scripts/gpu-check.sh (report in $OUT or build/)
#   anything else     run as a command
set -euo pipefail
cd /src
if [[ $# -eq 0 ]]; then
	exec go test -tags cuda -count=1 ./...
fi
case "$1" in
train)
	shift
	[[ -x /usr/local/bin/train ]] || { echo "docker-entrypoint: train was not built into this image" >&2; exit 1; }
	for a in "$@"; do
		case "$a" in -device | -device=* | --device | --device=*) exec /usr/local/bin/train "$@" ;; esac
	done
	exec /usr/local/bin/train -device gpu "$@"
	;;
check)
	shift
	exec scripts/gpu-check.sh "$@"
	;;
*)
	exec "$@"
	;;
esac
