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
