//go:build cuda

package gpu

import (
	"errors"
	"testing"
)

// openCUDAT opens CUDA device 0, skipping the test, with the reason, only
// when there is no device; any other failure to open (a PTX JIT error, a
// missing kernel) fails the test.
func openCUDAT(t *testing.T) *Device {
	t.Helper()
	d, err := Open(0)
	if errors.Is(err, ErrNoDevice) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("Open(0): %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	t.Logf("device: %v", d)
	return d
}

// TestConformanceCUDA runs the kernel conformance suite on CUDA device 0.
func TestConformanceCUDA(t *testing.T) {
	runConformance(t, openCUDAT(t))
}

// TestConv2DBackwardCUDA is TestConv2DBackward on CUDA device 0: dy's
// copy shared by the two backward passes gives the bits of the two calls.
func TestConv2DBackwardCUDA(t *testing.T) { testConv2DBackward(t, openCUDAT(t)) }

// TestConvKeepCUDA is TestConvKeep on CUDA device 0: x's bfloat16 copy
// kept from the forward pass gives the bits of packing it again.
func TestConvKeepCUDA(t *testing.T) { testConvKeep(t, openCUDAT(t)) }

// TestBatchNormKeepCUDA is TestBatchNormKeep on CUDA device 0: y's
// bfloat16 copy written by the batch norm gives the bits of the
// convolution packing y itself.
func TestBatchNormKeepCUDA(t *testing.T) { testBatchNormKeep(t, openCUDAT(t)) }

// TestBatchNormBackwardKeepCUDA is TestBatchNormBackwardKeep on CUDA
// device 0: dy's channels-last copy written by the batch norm's backward
// pass gives the bits of the conv packing dy itself.
func TestBatchNormBackwardKeepCUDA(t *testing.T) { testBatchNormBackwardKeep(t, openCUDAT(t)) }

// TestBatchNormBackwardReLUCUDA is TestBatchNormBackwardReLU on CUDA
// device 0: the ReLU's mask recomputed inside the batch norm's backward
// pass gives the bits of ReLUBackward and the plain forms.
func TestBatchNormBackwardReLUCUDA(t *testing.T) { testBatchNormBackwardReLU(t, openCUDAT(t)) }

// TestBatchNormForwardCopyCUDA is TestBatchNormForwardCopy on CUDA device
// 0: the batch norm writing only the conv's kept copy gives the bits of
// BatchNormForwardKeep's run.
func TestBatchNormForwardCopyCUDA(t *testing.T) { testBatchNormForwardCopy(t, openCUDAT(t)) }

// TestConvOutputBF16CUDA is TestConvOutputBF16 on CUDA device 0: a BF16
// conv's output stored as bfloat16 and read by the batch norm gives the
// bits of a float32 output rounded on the host.
func TestConvOutputBF16CUDA(t *testing.T) { testConvOutputBF16(t, openCUDAT(t)) }

// TestConvInputGradBF16CUDA is TestConvInputGradBF16 on CUDA device 0: a
// BF16 conv's input gradient stored as bfloat16 and read by the batch
// norm's backward pass gives the bits of a float32 one rounded on the
// host.
func TestConvInputGradBF16CUDA(t *testing.T) { testConvInputGradBF16(t, openCUDAT(t)) }

// TestAddReLUKeepCUDA is TestAddReLUKeep on CUDA device 0: y's bfloat16
// copies written by the residual add's pass give the bits of the
// convolutions packing y themselves.
func TestAddReLUKeepCUDA(t *testing.T) { testAddReLUKeep(t, openCUDAT(t)) }

// TestSimMatchesCUDA runs the same launches on the simulator and on the
// GPU: the same PTX must give the same bits (the kernels use only correctly
// rounded operations, their own exp and log, and no atomics).
func TestSimMatchesCUDA(t *testing.T) {
	gpu := openCUDAT(t)
	sim := openSim(t)
	for _, c := range bitCases() {
		t.Run("kernel="+c.name, func(t *testing.T) {
			sameBits(t, "gpu vs simulator", runBits(t, gpu, c), runBits(t, sim, c))
		})
	}
}
