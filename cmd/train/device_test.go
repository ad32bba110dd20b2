package main

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/data"
)

// smallDir writes a synthetic 28×28 data set of nTrain training and nTest
// test images in MNIST's file layout and returns its directory: small
// enough for the simulator, which runs a conv pass on a few images in a
// few tens of milliseconds.
func smallDir(t *testing.T, nTrain, nTest int) string {
	t.Helper()
	train, err := data.Synthetic(nTrain, 28, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	test, err := data.Synthetic(nTest, 28, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := data.WriteDir(dir, train, test, false); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRunSim trains one short epoch on the simulator and on the CPU from
// the same seed through the whole command: the simulator's run prints its
// device and reports the CPU's numbers. Both backends compute in float32
// and differ only in summation order (a few ulp per operation, ≈ 4e-7
// relative after 4 steps measured by train compare), so the epoch's mean
// loss agrees within 1e-5 relative; the accuracies (counts of 8 and 4 images)
// are equal unless a logit comparison is decided by those last bits.
// (8 training images in batches of 4 and 4 test images: the simulator is
// slow.)
func TestRunSim(t *testing.T) {
	dir := smallDir(t, 8, 4)
	epoch := regexp.MustCompile(`(?m)^epoch 1/1  loss (\S+)  train (\S+)%  test (\S+)%`)
	var results [2][]string
	for i, device := range []string{"sim", "cpu"} {
		var stdout, stderr bytes.Buffer
		args := []string{"-device", device, "-data", dir, "-epochs", "1", "-batch", "4", "-threads", "2", "-seed", "3"}
		if err := run(args, &stdout, &stderr); err != nil {
			t.Fatalf("run(%q) = %v; stderr:\n%s", args, err, stderr.String())
		}
		out := stdout.String()
		results[i] = epoch.FindStringSubmatch(out)
		if results[i] == nil {
			t.Fatalf("run(%q) printed no line for epoch 1/1:\n%s", args, out)
		}
		if device == "sim" {
			for _, want := range []string{`(?m)^backend  sim \(ptxsim, 2 workers\)$`,
				`(?m)^device   ptxsim, compute capability \d+\.\d, 2 SMs, 4\.0 GiB memory`} {
				if !regexp.MustCompile(want).MatchString(out) {
					t.Errorf("run(%q) output does not match %s:\n%s", args, want, out)
				}
			}
		}
	}
	sim, cpu := results[0], results[1]
	ls, _ := strconv.ParseFloat(sim[1], 64)
	lc, _ := strconv.ParseFloat(cpu[1], 64)
	if !(math.Abs(ls-lc) <= 1e-5*math.Abs(lc)) || lc == 0 {
		t.Errorf("epoch loss on sim %g, on cpu %g: want equal within 1e-5 relative", ls, lc)
	}
	if sim[2] != cpu[2] || sim[3] != cpu[3] {
		t.Errorf("accuracies on sim: train %s%% test %s%%, on cpu: train %s%% test %s%%, want equal", sim[2], sim[3], cpu[2], cpu[3])
	}
}

func TestDeviceFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"cmd=train,case=precision", []string{"-precision", "fp16"}, 2, `-precision "fp16": want fp32, tf32 or bf16`},
		{"cmd=train,case=precision-cpu", []string{"-precision", "tf32"}, 2, "-precision tf32 needs -device gpu or sim"},
		{"cmd=train,case=gpu-ordinal", []string{"-device", "gpu", "-gpu", "-1"}, 2, "-gpu -1: want a device ordinal ≥ 0, or auto"},
		{"cmd=train,case=gpu-word", []string{"-device", "gpu", "-gpu", "first"}, 2, "-gpu first: want a device ordinal ≥ 0, or auto"},
		{"cmd=train,case=threads", []string{"-threads", "0"}, 2, "-threads 0: want 1 to 4096"},
		{"cmd=compare,case=precision", []string{"compare", "-precision", "fp16"}, 2, `-precision "fp16": want fp32, tf32 or bf16`},
		{"cmd=bench,case=device", []string{"bench", "-device", "tpu"}, 2, `-device "tpu": want one of cpu, gpu, sim`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tc.args, &stdout, &stderr)
			if got := exitCode(err); got != tc.code {
				t.Errorf("run(%q): exit code %d (error %v), want %d", tc.args, got, err, tc.code)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error with %q", tc.args, err, tc.want)
			}
		})
	}
}

// TestPickGPU: -gpu's choice of device from the launcher's environment, a
// pure function of the flag, the environment and the device count.
func TestPickGPU(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		name      string
		spec      string
		exclusive bool
		env       func(string) string
		devices   int
		want      int
		why, err  string // substrings of the choice's why, or of the error
	}{
		{"ordinal", "3", true, env("OMPI_COMM_WORLD_LOCAL_RANK", "1"), 0, 3, "-gpu 3", ""},
		{"ordinal-bad", "x", false, env(), 1, 0, "", "-gpu x: want a device ordinal"},
		{"no-launcher", "auto", true, env(), 4, 0, "no local rank in the environment", ""},
		{"openmpi", "auto", true, env("OMPI_COMM_WORLD_LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "2"), 4, 1,
			"local rank 1 (OMPI_COMM_WORLD_LOCAL_RANK) of 2, 4 devices", ""},
		{"mvapich", "auto", true, env("MV2_COMM_WORLD_LOCAL_RANK", "2", "MV2_COMM_WORLD_LOCAL_SIZE", "4"), 4, 2, "(MV2_COMM_WORLD_LOCAL_RANK) of 4", ""},
		{"hydra", "auto", true, env("MPI_LOCALRANKID", "3", "MPI_LOCALNRANKS", "4"), 4, 3, "(MPI_LOCALRANKID) of 4", ""},
		{"slurm", "auto", true, env("SLURM_LOCALID", "1"), 2, 1, "local rank 1 (SLURM_LOCALID), 2 devices", ""},
		{"order", "auto", true, env("SLURM_LOCALID", "0", "OMPI_COMM_WORLD_LOCAL_RANK", "1"), 2, 1, "(OMPI_COMM_WORLD_LOCAL_RANK)", ""},
		// More ranks than devices: NCCL refuses; the host path shares.
		{"nccl-beyond", "auto", true, env("SLURM_LOCALID", "2"), 2, 0, "", "local ranks 0 and 2 would share device 0"},
		{"nccl-size", "auto", true, env("OMPI_COMM_WORLD_LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "3"), 2, 0, "",
			"3 local ranks (OMPI_COMM_WORLD_LOCAL_SIZE) and 2 CUDA devices on this node: local ranks 0 and 2 would share device 0"},
		{"nccl-one-gpu", "auto", true, env("OMPI_COMM_WORLD_LOCAL_RANK", "0", "OMPI_COMM_WORLD_LOCAL_SIZE", "2"), 1, 0, "",
			"start at most 1 rank per node, or give -nccl=false"},
		{"host-one-gpu", "auto", false, env("OMPI_COMM_WORLD_LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "2"), 1, 0,
			"local ranks 0 and 1 share device 0 (allowed", ""},
		{"host-modulo", "auto", false, env("MPI_LOCALRANKID", "5", "MPI_LOCALNRANKS", "6"), 4, 1, "local ranks 1 and 5 share device 1", ""},
		{"fits", "auto", true, env("OMPI_COMM_WORLD_LOCAL_RANK", "3", "OMPI_COMM_WORLD_LOCAL_SIZE", "4"), 8, 3, "of 4, 8 devices", ""},
		// Malformed environments.
		{"bad-rank", "auto", true, env("OMPI_COMM_WORLD_LOCAL_RANK", "one"), 2, 0, "", `OMPI_COMM_WORLD_LOCAL_RANK="one": want an integer ≥ 0`},
		{"negative", "auto", true, env("SLURM_LOCALID", "-1"), 2, 0, "", `SLURM_LOCALID="-1"`},
		{"rank-past-size", "auto", true, env("OMPI_COMM_WORLD_LOCAL_RANK", "2", "OMPI_COMM_WORLD_LOCAL_SIZE", "2"), 4, 0, "", "local rank 2 (OMPI_COMM_WORLD_LOCAL_RANK) of 2"},
		{"no-devices", "auto", true, env(), 0, 0, "", "-gpu auto: 0 CUDA devices"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickGPU(tc.spec, tc.exclusive, tc.env, tc.devices)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("pickGPU(%q, exclusive %v, %d devices) = %+v, %v; want an error with %q", tc.spec, tc.exclusive, tc.devices, got, err, tc.err)
				}
				return
			}
			if err != nil || got.ordinal != tc.want || !strings.Contains(got.why, tc.why) || got.auto != (tc.spec == "auto") {
				t.Fatalf("pickGPU(%q, exclusive %v, %d devices) = %+v, %v; want device %d, why with %q", tc.spec, tc.exclusive, tc.devices, got, err, tc.want, tc.why)
			}
		})
	}
}

// TestGPUDefault: -gpu left out is auto with -dist and device 0 without;
// only auto asks the driver for its devices (so an ordinal needs none).
func TestGPUDefault(t *testing.T) {
	t.Setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
	for _, tc := range []struct {
		d    deviceOptions
		want string
	}{
		{deviceOptions{}, "-gpu 0"},
		{deviceOptions{gpu: "2", dist: true}, "-gpu 2"},
	} {
		got, err := tc.d.chooseGPU()
		if err != nil || got.why != tc.want {
			t.Errorf("chooseGPU(%+v) = %+v, %v; want %q", tc.d, got, err, tc.want)
		}
	}
	// With -dist, auto: the driver is asked (without the cuda build, its
	// error; on the mock libcuda, one device).
	got, err := (&deviceOptions{dist: true}).chooseGPU()
	if err == nil && !strings.Contains(got.why, "-gpu auto: local rank 1 (OMPI_COMM_WORLD_LOCAL_RANK)") {
		t.Errorf("chooseGPU(-dist) = %+v, want auto from OMPI_COMM_WORLD_LOCAL_RANK", got)
	}
	if _, cerr := gpu.DeviceCount(); (err == nil) != (cerr == nil) {
		t.Errorf("chooseGPU(-dist) = %v, gpu.DeviceCount = %v: want auto to ask the driver", err, cerr)
	}
}

// TestRunBF16CPU trains one short epoch on the CPU with -precision bf16
// (the convolutions' operands rounded to bfloat16, emulated) and with
// fp32 from the same seed: the banner names the emulation, and the
// epoch's loss differs from fp32's (the rounding happens) by less than
// 1 % (bfloat16 keeps 8 significant bits; a few steps drift little).
func TestRunBF16CPU(t *testing.T) {
	dir := smallDir(t, 64, 16)
	epoch := regexp.MustCompile(`(?m)^epoch 1/1  loss (\S+)  `)
	var loss [2]float64
	for i, precision := range []string{"bf16", "fp32"} {
		var stdout, stderr bytes.Buffer
		args := []string{"-data", dir, "-epochs", "1", "-batch", "16", "-threads", "2", "-seed", "3", "-precision", precision}
		if err := run(args, &stdout, &stderr); err != nil {
			t.Fatalf("run(%q) = %v; stderr:\n%s", args, err, stderr.String())
		}
		out := stdout.String()
		m := epoch.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("run(%q) printed no line for epoch 1/1:\n%s", args, out)
		}
		loss[i], _ = strconv.ParseFloat(m[1], 64)
		banner := regexp.MustCompile(`(?m)^backend  cpu \(2 threads, bf16 convolutions emulated\)$`)
		if got := banner.MatchString(out); got != (precision == "bf16") {
			t.Errorf("run(%q): banner names the bf16 emulation: %v, want %v:\n%s", args, got, precision == "bf16", out)
		}
	}
	if loss[0] == loss[1] || !(math.Abs(loss[0]-loss[1]) < 0.01*loss[1]) {
		t.Errorf("epoch loss with bf16 %g, with fp32 %g: want different, within 1 %%", loss[0], loss[1])
	}
}
