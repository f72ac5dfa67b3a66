//go:build cuda

package cuda

import (
	"errors"
	"os"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
)

// needDevice skips the test on machines without a usable GPU (fails it
// with SAMGO_REQUIRE_GPU=1; the same rule as cudatest.SkipWithoutDevice,
// which this package's own tests cannot import).
func needDevice(t *testing.T) {
	t.Helper()
	if _, err := DeviceCount(); err != nil {
		if os.Getenv("SAMGO_REQUIRE_GPU") == "1" {
			t.Fatalf("SAMGO_REQUIRE_GPU=1 but %v", err)
		}
		t.Skip(err.Error()) // "no CUDA device: <CUDA's reason>"
	}
}

// onSimulator reports whether cuda:0 is the GPU simulator.
func onSimulator() bool {
	info, err := DeviceProperties(0)
	return err == nil && info.Simulated()
}

func TestNoDeviceError(t *testing.T) {
	if _, err := DeviceCount(); err != nil {
		require.ErrorIs(t, err, ErrNoDevice)
		require.False(t, Available())
		_, err := Devices()
		require.ErrorIs(t, err, ErrNoDevice)
		t.Logf("no device here, as expected on a CPU machine: %v", err)
		return
	}
	require.True(t, Available())
}

func TestDevices(t *testing.T) {
	needDevice(t)
	devs, err := Devices()
	require.NoError(t, err)
	require.NotEmpty(t, devs)
	for _, d := range devs {
		t.Logf("cuda:%d %s cc %s, %d SMs, %s total, %s free, util %d%%, driver %s, CUDA %s (runtime %s), NVML %v %s",
			d.Index, d.Name, d.ComputeCapability(), d.SMs, FormatBytes(d.MemoryTotal), FormatBytes(d.MemoryFree),
			d.Utilization, d.Driver, d.CUDADriver, d.CUDARuntime, d.NVML, d.Note)
		require.NotEmpty(t, d.Name)
		require.Positive(t, d.MemoryTotal)
		require.GreaterOrEqual(t, d.Major, 5)
	}
}

func TestStreamCopyRoundTrip(t *testing.T) {
	needDevice(t)
	s, err := NewStream(0)
	require.NoError(t, err)
	defer s.Destroy()
	p := NewPool(0, PoolOptions{})
	defer p.Close()

	const n = 1 << 20
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(i)
	}
	a, err := p.Alloc(4 * n)
	require.NoError(t, err)
	b, err := p.Alloc(4 * n)
	require.NoError(t, err)
	start, err := NewEvent(0, true)
	require.NoError(t, err)
	defer start.Destroy()
	end, err := NewEvent(0, true)
	require.NoError(t, err)
	defer end.Destroy()

	require.NoError(t, start.Record(s))
	require.NoError(t, MemcpyAsync(a.Ptr(), unsafe.Pointer(&src[0]), 4*n, HostToDevice, s))
	require.NoError(t, MemcpyAsync(b.Ptr(), a.Ptr(), 4*n, DeviceToDevice, s))
	// A 2D copy: every other row of 1 KiB from a into the first half of b.
	require.NoError(t, Memcpy2DAsync(b.Ptr(), 1024, a.Ptr(), 2048, 1024, 2*n/1024, DeviceToDevice, s))
	h, err := MallocHost(4 * n)
	require.NoError(t, err)
	defer h.Free()
	require.NoError(t, MemcpyAsync(h.Ptr(), b.Ptr(), 4*n, DeviceToHost, s))
	require.NoError(t, end.Record(s))
	require.NoError(t, s.Synchronize())
	ms, err := Elapsed(start, end)
	require.NoError(t, err)
	t.Logf("copies took %.3f ms", ms)

	got := h.Float32s()
	for i := range n / 2 { // row r of b's first half is row 2r of a
		r, c := i/256, i%256
		require.Equal(t, float32(2*r*256+c), got[i], "element %d", i)
	}
	for i := n / 2; i < n; i++ {
		require.Equal(t, float32(i), got[i])
	}
	require.NoError(t, p.Free(a))
	require.NoError(t, p.Free(b))
	require.Equal(t, int64(0), p.Stats().InUse)
}

func TestPoolOutOfMemoryIsAnError(t *testing.T) {
	needDevice(t)
	if onSimulator() {
		// The pool's logic for a failing cudaMalloc runs in arena_test.go
		// with a source that fails as cudaMalloc does.
		t.Skip("GPU simulator: its cudaMalloc never fails")
	}
	p := NewPool(0, PoolOptions{})
	defer p.Close()
	_, err := p.Alloc(1 << 50) // 1 PiB
	require.Error(t, err)
	require.ErrorIs(t, err, nn.ErrOutOfMemory)
	var ce *Error
	require.True(t, errors.As(err, &ce))
	t.Log(err)
	// The device is still usable.
	b, err := p.Alloc(1 << 20)
	require.NoError(t, err)
	require.NoError(t, p.Free(b))
}

func TestLt(t *testing.T) {
	needDevice(t)
	if onSimulator() {
		t.Skip("GPU simulator: cuBLASLt needs the real driver (the backend uses SAMGO_GEMM=reference there)")
	}
	l, err := NewLt(0, 32<<20)
	require.NoError(t, err)
	require.NotNil(t, l.Handle())
	ws, n := l.Workspace()
	require.NotNil(t, ws)
	require.Equal(t, int64(32<<20), n)
	require.NoError(t, l.Destroy())
}
