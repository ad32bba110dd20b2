package gpu

import "unsafe"

// cuKernelParams returns, in dst[:0] grown as needed, one pointer to each
// element of args: the kernelParams of a launch through gorgonia.org/cu.
//
// cu's Function.Launch copies exactly 8 bytes from each kernelParams pointer
// into C memory before calling cuLaunchKernel, and the driver then reads from
// each copy as many bytes as the kernel parameter's PTX type has (4 for .u32,
// .s32 and .f32, 8 for .u64 and pointers), the low-order bytes on a
// little-endian host. So every argument must be an 8-byte value whose low
// bytes are the parameter: a DevicePtr, an integer sign- or zero-extended to
// 64 bits, or uint64(math.Float32bits(x)). A pointer to a 4-byte Go value
// would make cu read 4 bytes past it.
//
// The pointers point into args, which must stay unchanged until the launch
// call returns (cu copies the values before cuLaunchKernel; nothing is read
// later).
func cuKernelParams(dst []unsafe.Pointer, args []uint64) []unsafe.Pointer {
	dst = dst[:0]
	for i := range args {
		dst = append(dst, unsafe.Pointer(&args[i]))
	}
	return dst
}
