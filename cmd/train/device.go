package main

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/convtrain/convtrain/gpu"
	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/cpubackend"
	"github.com/convtrain/convtrain/host/gpubackend"
)

// devices lists the values -device accepts, in the order the usage shows.
var devices = []string{"cpu", "gpu", "sim"}

// precisions lists the values -precision accepts.
var precisions = []string{"fp32", "tf32", "bf16"}

// deviceOptions are the flags that choose the backend, shared by train and
// its subcommands.
type deviceOptions struct {
	device    string // cpu, gpu or sim
	gpu       int    // CUDA device ordinal (-device gpu)
	precision string // fp32, tf32 or bf16
	threads   int    // CPU threads; the simulator's workers
	graph     bool   // record the training step once and replay it (gpu, sim)
	// simCounters makes the simulator collect its per-kernel counters
	// (train bench); not a flag.
	simCounters bool
}

// register defines -device (default def), -gpu, -precision and -threads on
// fs.
func (d *deviceOptions) register(fs *flag.FlagSet, def string) {
	fs.StringVar(&d.device, "device", def, "device: "+strings.Join(devices, ", ")+" (sim: the PTX simulator, slow)")
	fs.IntVar(&d.gpu, "gpu", 0, "CUDA device ordinal for -device gpu")
	fs.StringVar(&d.precision, "precision", "fp32", "GPU arithmetic: fp32, tf32 or bf16 (bf16: the convolutions, forward and backward, on BF16 tensor cores)")
	fs.IntVar(&d.threads, "threads", runtime.NumCPU(), "CPU threads (sets GOMAXPROCS; the simulator's workers)")
	fs.BoolVar(&d.graph, "graph", true, "record the training step once and replay it: a CUDA graph on gpu, the recorded launches on sim (-graph=false: issue every launch; cpu: ignored)")
}

// check validates the parsed device flags; its errors are usage errors.
func (d *deviceOptions) check() error {
	switch {
	case !slices.Contains(devices, d.device):
		return usagef("-device %q: want one of %s", d.device, strings.Join(devices, ", "))
	case d.gpu < 0:
		return usagef("-gpu %d: want ≥ 0", d.gpu)
	case !slices.Contains(precisions, d.precision):
		return usagef("-precision %q: want fp32, tf32 or bf16", d.precision)
	case d.precision != "fp32" && d.device == "cpu":
		return usagef("-precision %s needs -device gpu or sim (the CPU backend computes in fp32)", d.precision)
	case d.threads < 1 || d.threads > 4096:
		return usagef("-threads %d: want 1 to 4096", d.threads)
	}
	return nil
}

// deviceBackend is a backend.Backend together with the gpu.Device under it
// (nil on the CPU); Close closes the backend, then the device.
type deviceBackend struct {
	backend.Backend
	dev *gpu.Device
}

func (b *deviceBackend) Close() error {
	err := b.Backend.Close()
	if b.dev != nil {
		err = errors.Join(err, b.dev.Close())
	}
	return err
}

// newBackend returns the backend that d names: the CPU backend on
// d.threads threads, gpu.Open(d.gpu) or the simulator with d.threads
// workers under gpubackend.NewGPUBackend. Its errors say what is missing: a
// binary built without the cuda tag (with the build line), no driver or no
// such device, an unsupported precision.
func newBackend(d deviceOptions) (*deviceBackend, error) {
	if d.device == "cpu" {
		be, err := cpubackend.NewCPUBackend(d.threads)
		if err != nil {
			return nil, err
		}
		return &deviceBackend{Backend: be}, nil
	}
	var dev *gpu.Device
	var err error
	switch d.device {
	case "gpu":
		dev, err = gpu.Open(d.gpu)
		if errors.Is(err, gpu.ErrNoDevice) {
			err = fmt.Errorf("-device gpu: %w (use -device cpu, or -device sim to run the kernels on the simulator)", err)
		}
	case "sim":
		dev, err = gpu.OpenSim(gpu.SimOptions{Workers: d.threads, Counters: d.simCounters})
	default:
		return nil, fmt.Errorf("-device %q: unknown device", d.device)
	}
	if err != nil {
		return nil, err
	}
	if err := setPrecision(dev, d.precision); err != nil {
		return nil, errors.Join(err, dev.Close())
	}
	be, err := gpubackend.NewGPUBackend(dev)
	if err != nil {
		return nil, errors.Join(err, dev.Close())
	}
	return &deviceBackend{Backend: be, dev: dev}, nil
}

// setPrecision selects the arithmetic of dev's convolutions; TF32 needs
// compute capability 8.0 or newer (the simulator reports 9.0).
func setPrecision(dev *gpu.Device, precision string) error {
	p, err := gpu.ParsePrecision(precision)
	if err != nil {
		return err
	}
	if err := dev.SetPrecision(p); err != nil {
		return fmt.Errorf("-precision %s: %w", precision, err)
	}
	return nil
}

// describe is one line about be's device for a run's header: the
// device's name, compute capability, SMs and memory; "" on the CPU.
func (b *deviceBackend) describe() string {
	if b.dev == nil {
		return ""
	}
	info := b.dev.Info()
	kind := "GPU"
	if b.dev.IsSim() {
		kind = "simulated by ptxsim; SMs are its workers"
	}
	return fmt.Sprintf("%s, compute capability %d.%d, %d SMs, %s memory (%s free) [%s]",
		info.Name, info.ComputeMajor, info.ComputeMinor, info.SMs,
		gib(info.TotalMemoryBytes), gib(info.FreeMemoryBytes), kind)
}

// gib formats a byte count in GiB.
func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }
