// Package cudatest has the helpers the CUDA-tagged tests of every package
// share: skipping where no GPU is present (or failing, on a machine that
// must have one) and telling the GPU simulator from a GPU.
package cudatest

import (
	"os"
	"testing"

	"github.com/samgo/samgo/cuda"
)

// RequireGPUEnv is the environment variable that turns "no CUDA device"
// skips into failures: a GPU machine whose driver is older than the CUDA
// runtime, or whose device is hidden, would otherwise report PASS with
// nothing run. make gpu-check sets it.
const RequireGPUEnv = "SAMGO_REQUIRE_GPU"

// RequireGPU reports whether SAMGO_REQUIRE_GPU=1.
func RequireGPU() bool { return os.Getenv(RequireGPUEnv) == "1" }

// SkipWithoutDevice skips t, with CUDA's reason, when no CUDA device is
// usable (a CPU machine, a build without the cuda tag) — or fails it when
// SAMGO_REQUIRE_GPU=1.
func SkipWithoutDevice(t testing.TB) {
	t.Helper()
	if _, err := cuda.DeviceCount(); err != nil {
		if RequireGPU() {
			t.Fatalf("%s=1 but %v", RequireGPUEnv, err)
		}
		t.Skip(err.Error()) // "no CUDA device: <CUDA's reason>"
	}
}

// Simulated reports whether cuda:0 is the GPU simulator (make test-sim),
// which computes what a GPU computes but about 10^5 warp instructions per
// second, never fails a cudaMalloc, has no cuBLASLt and no meaningful
// timings. False where there is no device.
func Simulated() bool {
	info, err := cuda.DeviceProperties(0)
	return err == nil && info.Simulated()
}

// SkipOnSimulator skips t under the GPU simulator, saying why (a size that
// takes hours there, a behaviour it does not model). Its code paths must
// also run at a simulation size elsewhere, or the reason must say why not.
func SkipOnSimulator(t testing.TB, why string) {
	t.Helper()
	if Simulated() {
		t.Skip("GPU simulator: " + why)
	}
}

// SanitizerEnv is set to 1 by make test-gpu SANITIZE=1 for the test
// binaries it runs under compute-sanitizer.
const SanitizerEnv = "SAMGO_SANITIZER"

// CanFailAllocations reports whether a test may make cudaMalloc fail on
// purpose (to check that out of memory is an error): not under the GPU
// simulator, whose cudaMalloc never fails, nor under compute-sanitizer,
// which reports the failed call as an error and fails the run.
func CanFailAllocations() bool {
	return !Simulated() && os.Getenv(SanitizerEnv) != "1"
}
