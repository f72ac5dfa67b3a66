//go:build cuda

package gpu

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/bindings"
	"github.com/samgo/samgo/cuda"
	"github.com/samgo/samgo/sam/nn"
)

// Tests of the backend's host logic: they run without a GPU.

func TestParsePrecision(t *testing.T) {
	for in, want := range map[string]bindings.DType{"": bindings.F32, "fp32": bindings.F32, "FP32": bindings.F32, "bf16": bindings.BF16, " bfloat16 ": bindings.BF16} {
		got, _, err := parsePrecision(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, _, err := parsePrecision("fp16")
	require.ErrorContains(t, err, "use bf16")
	_, _, err = parsePrecision("int8")
	require.Error(t, err)
}

func TestPaddedHeadDim(t *testing.T) {
	for d, want := range map[int]int{1: 16, 4: 16, 16: 16, 17: 32, 48: 64, 72: 80, 80: 80, 96: 128, 128: 128, 129: 0} {
		require.Equal(t, want, paddedHeadDim(d), "d = %d", d)
	}
}

func TestRegisteredWithoutDevice(t *testing.T) {
	if cuda.Available() {
		t.Skip("a device is present: TestNewErrors covers nn.Open")
	}
	_, err := nn.Open("cuda:0", nn.Options{})
	require.ErrorIs(t, err, cuda.ErrNoDevice)
	require.ErrorContains(t, err, "no CUDA device")
	devs, err := nn.Devices("cuda")
	require.NoError(t, err)
	require.Empty(t, devs)
}

func TestGEMMFromEnv(t *testing.T) {
	for env, want := range map[string]string{"": GEMMCuBLASLt, "cublaslt": GEMMCuBLASLt, " Reference ": GEMMReference} {
		t.Setenv("SAMGO_GEMM", env)
		got, err := gemmFromEnv()
		require.NoError(t, err, env)
		require.Equal(t, want, got, env)
	}
	t.Setenv("SAMGO_GEMM", "cublas")
	_, err := gemmFromEnv()
	require.ErrorContains(t, err, `"reference"`)
}

func TestAttentionKernelHeadDims(t *testing.T) {
	for _, d := range []int{4, 8, 16, 32, 64, 80, 128} {
		require.True(t, bindings.AttentionSupports(d, d), "d = %d", d)
	}
	for _, d := range [][2]int{{12, 12}, {16, 32}, {96, 96}, {0, 0}, {-1, -1}} {
		require.False(t, bindings.AttentionSupports(d[0], d[1]), "d = %v", d)
	}
}

// TestKernelOutOfMemoryIsErrOutOfMemory: a launcher's out-of-memory status
// (a launch failing with cudaErrorMemoryAllocation, cuBLASLt's
// ALLOC_FAILED) fails the op with nn.ErrOutOfMemory, which the engine
// answers by splitting its batch instead of retiring the device.
func TestKernelOutOfMemoryIsErrOutOfMemory(t *testing.T) {
	c := &call{op: "Linear"}
	var err error
	func() {
		defer nn.Catch(&err)
		c.check(&bindings.Error{Op: "samk_gemm", Status: bindings.ErrOutOfMemory,
			Detail: "samk_gemm: cublasLtMatmul: CUBLAS_STATUS_ALLOC_FAILED"})
	}()
	require.ErrorIs(t, err, nn.ErrOutOfMemory)
	require.ErrorIs(t, err, bindings.ErrOutOfMemory)
	require.ErrorContains(t, err, "ALLOC_FAILED")
	// Other kernel errors stay what they are.
	func() {
		defer nn.Catch(&err)
		c.check(&bindings.Error{Op: "samk_attention", Status: bindings.ErrCUDA, Detail: "cudaErrorIllegalAddress"})
	}()
	require.NotErrorIs(t, err, nn.ErrOutOfMemory)
}
