package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestBenchSim runs train bench on the simulator with a batch of 2: every
// kernel of a training step of the default network gets a row with its
// launches and counters. A conv pass reads and writes global memory, so
// its bytes per FLOP are positive, and a warp access touches 1 to 32
// sectors.
func TestBenchSim(t *testing.T) {
	args := []string{"bench", "-device", "sim", "-batch", "2", "-threads", "2"}
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q) = %v; stderr:\n%s", args, err, stderr.String())
	}
	out := stdout.String()
	// operation (may be empty on a kernel's second row), kernel, launches,
	// ms, thread instructions, MB, bytes/FLOP, sectors/request, conflicts,
	// the three largest instruction classes.
	row := regexp.MustCompile(`(?m)^ *(.*?) +([a-z0-9_]+_v\d\w*) +(\d+) +([0-9.]+) +(\d+) +([0-9.]+) +(\S+) +(\S+) +(\d+)  ((?:[a-z0-9.]+ \d+% ?){1,3})$`)
	mixPart := regexp.MustCompile(`[a-z0-9.]+ (\d+)%`)
	rows := row.FindAllStringSubmatch(out, -1)
	launches := map[string]int{} // by kernel family: the name up to _v<version>
	family := regexp.MustCompile(`_v\d.*$`)
	for _, r := range rows {
		kernel := r[2]
		n, _ := strconv.Atoi(r[3])
		launches[family.ReplaceAllString(kernel, "")] += n
		if instr, _ := strconv.ParseInt(r[5], 10, 64); instr <= 0 {
			t.Errorf("row %q: %d thread instructions, want > 0", r[0], instr)
		}
		if gemmKernel(kernel) {
			if bpf, err := strconv.ParseFloat(r[7], 64); err != nil || !(bpf > 0) {
				t.Errorf("row %q: bytes/FLOP %q, want > 0", r[0], r[7])
			}
		} else if r[7] != "-" {
			t.Errorf("row %q: bytes/FLOP %q for a kernel without FLOPs, want -", r[0], r[7])
		}
		if spr, err := strconv.ParseFloat(r[8], 64); err != nil || spr < 1 || spr > 32 {
			t.Errorf("row %q: sectors/request %q, want 1 to 32", r[0], r[8])
		}
		// Shares in decreasing order, summing to at most 100 % (rounded).
		sum, prev := 0, 101
		for _, m := range mixPart.FindAllStringSubmatch(r[10], -1) {
			p, _ := strconv.Atoi(m[1])
			if p > prev {
				t.Errorf("row %q: instruction mix %q not in decreasing order", r[0], r[10])
			}
			sum, prev = sum+p, p
		}
		if sum < 1 || sum > 102 {
			t.Errorf("row %q: instruction mix %q sums to %d%%", r[0], r[10], sum)
		}
		if gemmKernel(kernel) && strings.HasPrefix(kernel, "conv2d_fwd_v2") && !strings.HasPrefix(r[10], "fp32 ") {
			t.Errorf("row %q: an implicit-GEMM conv whose largest instruction class is not fp32: %q", r[0], r[10])
		}
	}
	// One training step of the default network: 2 conv layers (the first
	// needs no input gradient), 2 pools, 2 ReLUs, 1 dense, the loss and
	// one SGD update of all 6 parameters, after gathering the images (from
	// the set's bytes, standardised on the way: augment_batch_v2) and the
	// labels. (The dispatcher picks a conv kernel version per shape with
	// its cost model; at batch 2 both weight gradients run the direct
	// kernel, conv2's 3200 blocks (30720 modelled slots) being cheaper than
	// its implicit GEMM in 2 splits and the reduce (46592), each with its
	// bias gradient in the same launch, conv2d_bwd_filter_bias_v1.) Each
	// conv runs with its ReLU as one operation:
	// one implicit-GEMM launch with the ReLU in its epilogue, or the direct
	// kernel and then relu_fwd.
	direct := 0
	for _, r := range rows {
		if strings.HasPrefix(r[2], "conv2d_fwd_v1_direct") {
			n, _ := strconv.Atoi(r[3])
			direct += n
		}
	}
	if n := len(regexp.MustCompile(`(?m)^ *conv\+relu fwd N=2,`).FindAllString(out, -1)); n != 2 {
		t.Errorf("%d conv+relu fwd operations, want 2", n)
	}
	if regexp.MustCompile(`(?m)^ *relu fwd `).MatchString(out) {
		t.Errorf("a relu fwd operation of its own: every ReLU follows a conv and runs with it")
	}
	for kernel, want := range map[string]int{
		"conv2d_fwd": 2, "conv2d_bwd_filter": 0, "conv2d_bwd_filter_bias": 2, "conv2d_bwd_filter_reduce_bias": 0, "conv2d_bwd_data": 1,
		"conv2d_bwd_bias": 0, "maxpool_fwd": 1, "maxpool_dense_fwd": 0, "maxpool_dense_softmax": 1, "maxpool_bwd": 0, "maxpool_bwd_relu": 1, "relu_fwd": direct, "relu_bwd": 0,
		"dense_fwd": 0, "dense_bwd_data": 0, "dense_bwd_weight": 0, "dense_bwd": 0, "dense_bwd_pool_relu": 1, "reduce_cols": 0, "softmax_ce": 0, "softmax_ce_mean": 0, "softmax_ce_metrics": 0, "count_correct": 0, "accumulate": 0,
		"sgd_momentum": 0, "sgd_momentum_multi": 1, "gather_rows_f32": 0, "augment_batch": 0, "augment_batch_at": 1, "gather_rows_i32": 0,
	} {
		if launches[kernel] != want {
			t.Errorf("kernel %s: %d launches in the table, want %d", kernel, launches[kernel], want)
		}
	}
	// The queued steps launch what the table lists.
	total := 0
	for _, n := range launches {
		total += n
	}
	if m := regexp.MustCompile(`(?m)^queued   1 step\(s\): (\d+) launches per step \(on the simulator`).FindStringSubmatch(out); m == nil {
		t.Errorf("no queued line")
	} else if n, _ := strconv.Atoi(m[1]); n != total {
		t.Errorf("queued: %d launches per step, the table lists %d", n, total)
	}
	// -graph (the default): the step recorded and replayed, one launch and
	// one upload per step, the recording holding the table's launches.
	if m := regexp.MustCompile(`(?m)^graphed  1 step\(s\): 1 launch\(es\) and 1 upload\(s\) per step, replaying the (\d+) kernel launches recorded$`).FindStringSubmatch(out); m == nil {
		t.Errorf("no graphed line")
	} else if n, _ := strconv.Atoi(m[1]); n != total {
		t.Errorf("graphed: %d kernel launches recorded, the table lists %d", n, total)
	}
	for _, re := range []string{
		`(?m)^bench    1 timed steps \(after 1 warm-up\) of 2 synthetic 28×28 images, 10 classes, seed 1$`,
		`(?m)^step     [0-9.]+ ms \(median of 1; operations [0-9.]+ ms\), \d+ images/s$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("run(%q) output does not match %s:\n%s", args, re, out)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestBenchSimTF32: with -precision tf32 the second conv layer of the
// default network (16 filters over 8×5×5 inputs, wide enough for the
// implicit GEMM) runs on the TF32 tensor-core kernels.
func TestBenchSimTF32(t *testing.T) {
	args := []string{"bench", "-device", "sim", "-precision", "tf32", "-batch", "2", "-threads", "2"}
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q) = %v; stderr:\n%s", args, err, stderr.String())
	}
	out := stdout.String()
	re := regexp.MustCompile(`(?m)^ *conv\+relu fwd N=2,C=8,H=12,W=12,K=16,R=5,S=5\S* +(conv2d_fwd_\w*tf32\w*) +1 `)
	if !re.MatchString(out) {
		t.Errorf("run(%q): no row of a TF32 kernel for the second conv's forward pass:\n%s", args, out)
	}
}

// TestBenchCPU: on the CPU, bench times each operation and reports the
// GFLOP/s of the conv and dense passes and the images/s of a step.
func TestBenchCPU(t *testing.T) {
	args := []string{"bench", "-device", "cpu", "-batch", "8", "-steps", "3", "-threads", "2"}
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q) = %v; stderr:\n%s", args, err, stderr.String())
	}
	out := stdout.String()
	row := regexp.MustCompile(`(?m)^ *((conv|dense|relu|maxpool|update|gather|softmax-ce|accumulate|count correct)\b.*?) +(\d+) +([0-9.]+) +(\S+) +([0-9.]+)$`)
	rows := row.FindAllStringSubmatch(out, -1)
	// 18: the images and labels gathered by one operation, the loss with
	// its metrics by one.
	if len(rows) != 18 {
		t.Errorf("%d operation rows, want 18 (the operations of a step of the default network)", len(rows))
	}
	for _, r := range rows {
		flops := r[2] == "conv" || r[2] == "dense"
		if g, err := strconv.ParseFloat(r[5], 64); flops && (err != nil || !(g > 0)) || !flops && r[5] != "-" {
			t.Errorf("row %q: GFLOP/s %q", r[0], r[5])
		}
	}
	if !regexp.MustCompile(`(?m)^step     [0-9.]+ ms \(median of 3; operations [0-9.]+ ms\), \d+ images/s$`).MatchString(out) {
		t.Errorf("no step line in the output")
	}
	if t.Failed() || strings.Contains(out, "NaN") {
		t.Errorf("output:\n%s", out)
	}
}

func TestBenchErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"case=batch", []string{"-batch", "0"}, "-batch 0: want 1 to 4096"},
		{"case=steps", []string{"-steps", "-1"}, "-steps -1: want 0 to 100000"},
		{"case=size", []string{"-size", "3"}, "-size 3: want 4 to 256"},
		{"case=classes", []string{"-classes", "1"}, "-classes 1: want 2 to 256"},
		{"case=extra-arg", []string{"x"}, `bench: unexpected arguments ["x"]`},
		{"case=model", []string{"-device", "cpu", "-model", "pool2"}, `-model pool2: host: model spec: layer 1 "pool2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"bench"}, tc.args...)
			var stdout, stderr bytes.Buffer
			err := run(args, &stdout, &stderr)
			if got := exitCode(err); got != 2 {
				t.Errorf("run(%q): exit code %d (error %v), want 2", args, got, err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error with %q", args, err, tc.want)
			}
		})
	}
}
