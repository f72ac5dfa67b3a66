//go:build cuda

package gpu

import (
	"errors"

	"github.com/samgo/samgo/cuda"
	"github.com/samgo/samgo/sam/nn"
)

var (
	_ nn.Forker         = (*Backend)(nil)
	_ nn.MemoryReporter = (*Backend)(nil)
)

func init() { nn.RegisterEnumerator("cuda", Devices) }

// Devices lists the CUDA devices for nn.Devices("cuda"): cudart's index
// and properties, with NVML's utilisation and free memory when NVML can be
// loaded (Note says when it cannot). A machine without a GPU or driver has
// none (an empty list, no error).
func Devices() ([]nn.DeviceInfo, error) {
	devs, err := cuda.Devices()
	if errors.Is(err, cuda.ErrNoDevice) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]nn.DeviceInfo, len(devs))
	for i, d := range devs {
		util := float64(d.Utilization)
		if d.Utilization < 0 {
			util = -1
		}
		cudaVer := d.CUDADriver
		if d.CUDARuntime != "" {
			cudaVer += " (runtime " + d.CUDARuntime + ")"
		}
		out[i] = nn.DeviceInfo{
			Kind: "cuda", Index: d.Index, Name: d.Name, UUID: d.UUID,
			ComputeCapability: d.ComputeCapability(),
			MemoryTotal:       d.MemoryTotal, MemoryFree: max(d.MemoryFree, 0),
			Utilization: util, Driver: d.Driver, CUDA: cudaVer, Note: d.Note,
		}
	}
	return out, nil
}
