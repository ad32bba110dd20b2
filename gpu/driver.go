package gpu

// DevicePtr is an address in device memory (a CUdeviceptr on a real GPU, an
// address in the simulator's global space otherwise).
type DevicePtr uint64

// Dim3 is a grid or block size.
type Dim3 struct{ X, Y, Z int }

// DeviceInfo describes the device a driver runs on.
type DeviceInfo struct {
	Name              string
	ComputeMajor      int
	ComputeMinor      int
	SMs               int
	TotalMemoryBytes  int64
	FreeMemoryBytes   int64 // at the time of the query
	MaxThreadsPerBlk  int
	MaxSharedPerBlock int
}

// driver is what the runtime needs from a device: the cu adapter (build tag
// cuda) and the PTX simulator implement it. Every method returns an error
// instead of panicking; implementations are used from one goroutine at a
// time (the Device serialises calls).
type driver interface {
	Info() (DeviceInfo, error)

	MemAlloc(bytes int64) (DevicePtr, error)
	MemFree(p DevicePtr) error
	MemcpyHtoD(dst DevicePtr, src []byte) error
	MemcpyDtoH(dst []byte, src DevicePtr) error
	MemcpyDtoD(dst, src DevicePtr, bytes int64) error

	// LoadModule loads PTX text; a JIT/parse failure's log is in the error.
	LoadModule(ptx string) (module, error)

	// Launch runs fn asynchronously. args holds one 8-byte value per kernel
	// parameter: a DevicePtr, an integer sign- or zero-extended to 64 bits, or
	// uint64(math.Float32bits(x)); the driver reads as many low-order bytes as
	// the parameter's PTX type has.
	Launch(fn function, grid, block Dim3, sharedBytes int, args []uint64) error
	// Synchronize waits for every launch and copy and returns the first error.
	Synchronize() error

	NewEvent() (event, error)

	// BeginCapture starts recording the launches and device-to-device
	// copies issued until EndCapture into a graph, instead of running
	// them (CUDA stream capture on a GPU).
	BeginCapture() error
	// EndCapture ends the recording and returns the graph, ready to
	// launch.
	EndCapture() (graph, error)

	Close() error
}

// graph is a recorded sequence of launches and copies.
type graph interface {
	// Launch runs the recorded work once, asynchronously, in order with
	// the other work of the driver.
	Launch() error
	Destroy() error
}

// module is a loaded PTX module.
type module interface {
	Function(name string) (function, error)
	Unload() error
}

// function is a kernel entry point of a loaded module.
type function interface {
	Name() string
}

// event is a marker in the launch stream used for timing.
type event interface {
	Record() error
	// ElapsedMs is the time in milliseconds from start to this event; both
	// must have completed.
	ElapsedMs(start event) (float32, error)
	Destroy() error
}
