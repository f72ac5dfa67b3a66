//go:build !cuda

package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCudaDeviceInCPUBuild: asking a CPU-only build for the GPU says how
// to get one.
func TestCudaDeviceInCPUBuild(t *testing.T) {
	code, _, stderr := samCLI("predict", "-checkpoint", filepath.Join(testdata, "tiny", "model.safetensors"),
		"-image", filepath.Join(testdata, "tiny", "image_0.png"), "-point", "1,1", "-out", t.TempDir(), "-device", "cuda")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "built without CUDA support")
}
