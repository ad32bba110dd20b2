package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
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
	gpu       string // -gpu: a CUDA device ordinal, "auto", or "" (auto with -dist, else 0)
	precision string // fp32, tf32 or bf16
	threads   int    // CPU threads; the simulator's workers
	graph     bool   // record the training step once and replay it (gpu, sim)
	// simCounters makes the simulator collect its per-kernel counters
	// (train bench); not a flag.
	simCounters bool
	// dist and exclusiveGPU are the run's data parallelism as -gpu auto
	// needs it (set by train from -dist and -nccl; not flags): auto is the
	// default with dist, and with exclusiveGPU (NCCL) two ranks of a node
	// may not share a device.
	dist, exclusiveGPU bool
}

// register defines -device (default def), -gpu, -precision and -threads on
// fs.
func (d *deviceOptions) register(fs *flag.FlagSet, def string) {
	fs.StringVar(&d.device, "device", def, "device: "+strings.Join(devices, ", ")+" (sim: the PTX simulator, slow)")
	fs.StringVar(&d.gpu, "gpu", "", "CUDA device for -device gpu: an ordinal, or auto: the local rank's (from the launcher) modulo the devices (default auto with -dist, else 0)")
	fs.StringVar(&d.precision, "precision", "fp32", "arithmetic: fp32, tf32 or bf16 (bf16: the convolutions, forward and backward, on BF16 tensor cores; on cpu emulated)")
	fs.IntVar(&d.threads, "threads", runtime.NumCPU(), "CPU threads (sets GOMAXPROCS; the simulator's workers)")
	fs.BoolVar(&d.graph, "graph", true, "record the training step once and replay it: a CUDA graph on gpu, the recorded launches on sim (-graph=false: issue every launch; cpu: ignored)")
}

// check validates the parsed device flags; its errors are usage errors.
func (d *deviceOptions) check() error {
	switch {
	case !slices.Contains(devices, d.device):
		return usagef("-device %q: want one of %s", d.device, strings.Join(devices, ", "))
	case d.gpu != "" && d.gpu != "auto" && !isOrdinal(d.gpu):
		return usagef("-gpu %s: want a device ordinal ≥ 0, or auto", d.gpu)
	case !slices.Contains(precisions, d.precision):
		return usagef("-precision %q: want fp32, tf32 or bf16", d.precision)
	case d.precision == "tf32" && d.device == "cpu":
		return usagef("-precision tf32 needs -device gpu or sim (the CPU backend computes in fp32, or emulates bf16)")
	case d.threads < 1 || d.threads > 4096:
		return usagef("-threads %d: want 1 to 4096", d.threads)
	}
	return nil
}

// deviceBackend is a backend.Backend together with the gpu.Device under it
// (nil on the CPU); Close closes the backend, then the device.
type deviceBackend struct {
	backend.Backend
	dev    *gpu.Device
	choice string // how -gpu auto chose the device, for the device line; "" otherwise
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
		newCPU := cpubackend.NewCPUBackend
		if d.precision == "bf16" {
			newCPU = cpubackend.NewCPUBackendBF16
		}
		be, err := newCPU(d.threads)
		if err != nil {
			return nil, err
		}
		return &deviceBackend{Backend: be}, nil
	}
	var dev *gpu.Device
	var err error
	var choice gpuChoice
	switch d.device {
	case "gpu":
		choice, err = d.chooseGPU()
		if err == nil {
			dev, err = gpu.Open(choice.ordinal)
		}
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
	db := &deviceBackend{Backend: be, dev: dev}
	if choice.auto {
		db.choice = choice.why
	}
	return db, nil
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
	if b.choice != "" {
		kind += "; " + b.choice
	}
	return fmt.Sprintf("%s, compute capability %d.%d, %d SMs, %s memory (%s free) [%s]",
		info.Name, info.ComputeMajor, info.ComputeMinor, info.SMs,
		gib(info.TotalMemoryBytes), gib(info.FreeMemoryBytes), kind)
}

// gib formats a byte count in GiB.
func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

// isOrdinal reports whether s is a decimal integer ≥ 0.
func isOrdinal(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0
}

// localRankVars are the environment variables in which launchers give a
// process its rank among the processes on its node, read in this order:
// Open MPI's mpirun, MVAPICH2, MPICH's and Intel MPI's Hydra, Slurm's srun.
var localRankVars = []string{"OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}

// localSizeVars are those that give the number of processes on the node
// (Slurm gives none in a simple form).
var localSizeVars = []string{"OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"}

// gpuChoice is the CUDA device of this process and how it was chosen.
type gpuChoice struct {
	ordinal int
	auto    bool   // chosen by -gpu auto
	why     string // "-gpu 1", "-gpu auto: local rank 1 (OMPI_COMM_WORLD_LOCAL_RANK) of 2, 4 devices"
}

// chooseGPU applies -gpu with the environment and the driver's count of
// devices (asked only for auto).
func (d *deviceOptions) chooseGPU() (gpuChoice, error) {
	spec := d.gpu
	if spec == "" {
		spec = "0"
		if d.dist {
			spec = "auto"
		}
	}
	count := 0
	if spec == "auto" {
		var err error
		if count, err = gpu.DeviceCount(); err != nil {
			return gpuChoice{}, err
		}
	}
	return pickGPU(spec, d.exclusiveGPU, os.Getenv, count)
}

// pickGPU returns the CUDA device of this process for -gpu spec: an
// ordinal as given (several processes may name the same one: asked for),
// or for auto the local rank (the first of localRankVars set; none: 0, a
// process alone on its node) modulo devices (≥ 1). Under auto, local ranks
// share a device when the node has more of them than devices (the first
// of localSizeVars set, or this rank's own number ≥ devices); with
// exclusive (the ranks reduce with NCCL, which refuses two ranks of one
// communicator on one GPU) that is an error saying how many ranks fit and
// how to share instead; without (the host-staged reduction, -nccl=false)
// it is allowed and said in why. A malformed variable is an error naming
// it.
func pickGPU(spec string, exclusive bool, getenv func(string) string, devices int) (gpuChoice, error) {
	if spec != "auto" {
		n, err := strconv.Atoi(spec)
		if err != nil || n < 0 {
			return gpuChoice{}, fmt.Errorf("-gpu %s: want a device ordinal ≥ 0, or auto", spec)
		}
		return gpuChoice{ordinal: n, why: "-gpu " + spec}, nil
	}
	if devices < 1 {
		return gpuChoice{}, fmt.Errorf("-gpu auto: %d CUDA devices", devices)
	}
	lookup := func(vars []string) (name string, v int, err error) {
		for _, name := range vars {
			s := getenv(name)
			if s == "" {
				continue
			}
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 {
				return name, 0, fmt.Errorf("-gpu auto: %s=%q: want an integer ≥ 0", name, s)
			}
			return name, v, nil
		}
		return "", 0, nil
	}
	rankVar, local, err := lookup(localRankVars)
	if err != nil {
		return gpuChoice{}, err
	}
	sizeVar, size, err := lookup(localSizeVars)
	if err != nil {
		return gpuChoice{}, err
	}
	if sizeVar != "" && (size < 1 || local >= size) {
		return gpuChoice{}, fmt.Errorf("-gpu auto: local rank %d (%s) of %d (%s): want the rank below the size", local, rankVar, size, sizeVar)
	}
	ordinal := local % devices
	if rankVar == "" {
		return gpuChoice{ordinal: 0, auto: true, why: fmt.Sprintf("-gpu auto: no local rank in the environment (%s), device 0 of %d", strings.Join(localRankVars, ", "), devices)}, nil
	}
	of := ""
	if sizeVar != "" {
		of = fmt.Sprintf(" of %d", size)
	}
	why := fmt.Sprintf("-gpu auto: local rank %d (%s)%s, %s", local, rankVar, of, plural(devices, "device"))
	if size > devices || local >= devices {
		ranks := "more local ranks than devices"
		if sizeVar != "" {
			ranks = fmt.Sprintf("%d local ranks (%s)", size, sizeVar)
		}
		// Two ranks that get one device: this one and the first on its
		// device, or (this one alone on its device) ranks 0 and devices.
		a, b := ordinal, local
		if local < devices {
			a, b = 0, devices
		}
		if exclusive {
			return gpuChoice{}, fmt.Errorf("-gpu auto: %s and %s on this node: local ranks %d and %d would share device %d, and NCCL refuses two ranks of one communicator on one GPU; start at most %s per node, or give -nccl=false to reduce the gradients through the host (MPI), where ranks may share a GPU",
				ranks, plural(devices, "CUDA device"), a, b, a, plural(devices, "rank"))
		}
		why += fmt.Sprintf("; local ranks %d and %d share device %d (allowed: the gradients are reduced through the host)", a, b, a)
	}
	return gpuChoice{ordinal: ordinal, auto: true, why: why}, nil
}
