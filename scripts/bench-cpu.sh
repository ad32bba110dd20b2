#!/bin/sh
# bench-cpu.sh — CPU training throughput of convtrain against PyTorch on the
# same network (conv 1→8 5×5, ReLU, max-pool 2, conv 8→16 5×5, ReLU,
# max-pool 2, dense 256→10, softmax-CE, SGD momentum 0.9, batch 64) with
# the same number of threads.
#
#	scripts/bench-cpu.sh [threads [rounds [steps]]]     defaults: 2 5 200
#
# Each round runs `go test -bench TrainStep` (GOMAXPROCS = threads, one
# step = load by index, forward, loss, backward, SGD update) and then
# scripts/torch-cpu-train.py (torch.set_num_threads(threads), Debian's
# /usr/bin/python3 with python3-torch), alternating so that both see the
# same machine load; it prints every round, then the median and the best
# images/s of each and their ratios convtrain / PyTorch. On a machine
# shared with other work the best of several rounds is the closer estimate
# of the idle-machine figure (PyTorch's OpenMP threads slow down far more
# than Go's goroutines when the cores are oversubscribed).
set -eu
threads=${1:-2}
rounds=${2:-5}
steps=${3:-200}
cd "$(dirname "$0")/.."

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go test -c -o "$bin/host.test" ./host

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

: >"$bin/go.txt"
: >"$bin/torch.txt"
i=1
while [ "$i" -le "$rounds" ]; do
	g=$("$bin/host.test" -test.run '^$' -test.bench 'TrainStep/backend=cpu/model=default/batch=64$' \
		-test.benchtime "${steps}x" -test.cpu "$threads" |
		awk '/images\/s/ {for (j = 1; j < NF; j++) if ($(j+1) == "images/s") print $j}')
	t=$(/usr/bin/python3 scripts/torch-cpu-train.py --threads "$threads" --steps "$steps" |
		sed -n 's/.*images\/s=\([0-9.]*\).*/\1/p')
	echo "round $i: convtrain $g images/s, pytorch $t images/s"
	echo "$g" >>"$bin/go.txt"
	echo "$t" >>"$bin/torch.txt"
	i=$((i + 1))
done
g=$(median <"$bin/go.txt")
t=$(median <"$bin/torch.txt")
gb=$(sort -n "$bin/go.txt" | tail -1)
tb=$(sort -n "$bin/torch.txt" | tail -1)
echo "threads=$threads batch=64 steps=$steps rounds=$rounds load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "median: convtrain-cpu images/s=$g pytorch-cpu images/s=$t" \
	"ratio=$(awk -v g="$g" -v t="$t" 'BEGIN {printf "%.3f", g / t}')"
echo "best:   convtrain-cpu images/s=$gb pytorch-cpu images/s=$tb" \
	"ratio=$(awk -v g="$gb" -v t="$tb" 'BEGIN {printf "%.3f", g / t}')"
