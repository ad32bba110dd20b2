package gpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"unsafe"
)

// cuCopyParams does what gorgonia.org/cu's Function.Launch does with its
// kernelParams before cuLaunchKernel (execution.go, v0.9.6):
//
//	argv[i] = *((*uint64)(kernelParams[i]))
//
// i.e. it copies 8 bytes from each pointer.
func cuCopyParams(params []unsafe.Pointer) []uint64 {
	argv := make([]uint64, len(params))
	for i := range params {
		argv[i] = *((*uint64)(params[i]))
	}
	return argv
}

// TestCuKernelParams checks the argument rule of the cu adapter: each kernel
// argument is one 8-byte value, cu copies 8 bytes from each pointer, and the
// low-order bytes of each copy, read as the parameter's PTX type, give back
// the value the launcher meant (device pointer, int32, uint32, float32).
// Exact comparisons: these are bit copies.
func TestCuKernelParams(t *testing.T) {
	if !littleEndian() {
		t.Fatalf("the cu adapter assumes a little-endian host (as CUDA does)")
	}
	const ptr = DevicePtr(0x7f12_3456_7800)
	ints := []int32{0, 1, -1, math.MinInt32, math.MaxInt32, 28 * 28}
	floats := []float32{0, 1, -2.5, 1e-30, float32(math.Inf(-1)), math.Float32frombits(0x7fc0_0001)}
	uints := []uint32{0, 1, math.MaxUint32}

	for _, n := range []int{0, 1, 3, 8, 20} {
		t.Run(fmt.Sprintf("nargs=%d", n), func(t *testing.T) {
			// A mixed list in the launchers' encoding: pointer, int32
			// sign-extended, float32 bits, uint32 zero-extended, ...
			args := make([]uint64, n)
			type want struct {
				kind string
				ptr  DevicePtr
				i    int32
				f    float32
				u    uint32
			}
			wants := make([]want, n)
			for i := range args {
				switch i % 4 {
				case 0:
					p := ptr + DevicePtr(256*i)
					args[i], wants[i] = uint64(p), want{kind: "ptr", ptr: p}
				case 1:
					v := ints[i%len(ints)]
					args[i], wants[i] = uint64(int64(v)), want{kind: "s32", i: v}
				case 2:
					v := floats[i%len(floats)]
					args[i], wants[i] = uint64(math.Float32bits(v)), want{kind: "f32", f: v}
				case 3:
					v := uints[i%len(uints)]
					args[i], wants[i] = uint64(v), want{kind: "u32", u: v}
				}
			}
			saved := append([]uint64(nil), args...)

			// A dst with stale entries and too little room: both must
			// not matter.
			var other uint64
			stale := []unsafe.Pointer{unsafe.Pointer(&other)}
			params := cuKernelParams(stale, args)
			if len(params) != n {
				t.Fatalf("len(cuKernelParams) = %d, want %d", len(params), n)
			}
			argv := cuCopyParams(params)
			for i := range argv {
				if params[i] != unsafe.Pointer(&args[i]) {
					t.Errorf("param %d points to %p, want &args[%d] = %p", i, params[i], i, &args[i])
				}
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], argv[i])
				lo32 := binary.LittleEndian.Uint32(b[:4])
				w := wants[i]
				switch w.kind {
				case "ptr":
					if got := DevicePtr(argv[i]); got != w.ptr {
						t.Errorf("param %d (.u64 pointer) = %#x, want %#x", i, got, w.ptr)
					}
				case "s32":
					if got := int32(lo32); got != w.i {
						t.Errorf("param %d (.s32) = %d, want %d", i, got, w.i)
					}
					// Sign extension: the whole 8 bytes read as .s64
					// give the same value.
					if got := int64(argv[i]); got != int64(w.i) {
						t.Errorf("param %d (.s32 sign-extended, read as .s64) = %d, want %d", i, got, w.i)
					}
				case "f32":
					if got := math.Float32frombits(lo32); math.Float32bits(got) != math.Float32bits(w.f) {
						t.Errorf("param %d (.f32) = %g (bits %#x), want %g (bits %#x)", i, got, math.Float32bits(got), w.f, math.Float32bits(w.f))
					}
					if hi := argv[i] >> 32; hi != 0 {
						t.Errorf("param %d (.f32) high bytes = %#x, want 0", i, hi)
					}
				case "u32":
					if lo32 != w.u || argv[i]>>32 != 0 {
						t.Errorf("param %d (.u32) = %#x, want %#x zero-extended", i, argv[i], w.u)
					}
				}
			}
			for i := range args {
				if args[i] != saved[i] {
					t.Errorf("args[%d] changed to %#x, want %#x", i, args[i], saved[i])
				}
			}
		})
	}
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
