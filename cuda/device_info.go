package cuda

import (
	"fmt"
	"strings"
)

// DeviceInfo describes one CUDA device (see Devices).
type DeviceInfo struct {
	Index    int    `json:"index"` // cudart's device index ("cuda:<Index>")
	Name     string `json:"name"`
	UUID     string `json:"uuid,omitempty"`
	PCIBusID string `json:"pci_bus_id,omitempty"`
	// Major.Minor is the compute capability (9.0 for Hopper).
	Major int `json:"cc_major"`
	Minor int `json:"cc_minor"`
	SMs   int `json:"multiprocessors"`
	// Memory in bytes; Free and Used are -1 when unknown.
	MemoryTotal int64 `json:"memory_total_bytes"`
	MemoryFree  int64 `json:"memory_free_bytes"`
	MemoryUsed  int64 `json:"memory_used_bytes"`
	// Utilization and MemoryUtilization are NVML's percentages over the
	// last sample period, -1 when unknown.
	Utilization       int `json:"utilization_percent"`
	MemoryUtilization int `json:"memory_utilization_percent"`
	// Driver is the NVIDIA driver version ("550.54.15"; NVML only),
	// CUDADriver the newest CUDA version the driver supports and
	// CUDARuntime the cudart this program uses ("12.4").
	Driver      string `json:"driver_version,omitempty"`
	CUDADriver  string `json:"cuda_driver_version,omitempty"`
	CUDARuntime string `json:"cuda_runtime_version,omitempty"`
	// NVML reports whether the NVML fields are filled in; Note says what
	// is missing and why.
	NVML bool   `json:"nvml"`
	Note string `json:"note,omitempty"`
}

// ComputeCapability returns "9.0".
func (d DeviceInfo) ComputeCapability() string { return fmt.Sprintf("%d.%d", d.Major, d.Minor) }

// Simulated reports whether the device is GPGPU-Sim's (make test-sim):
// the simulator names its device "GPGPU-Sim_v…".
func (d DeviceInfo) Simulated() bool { return strings.HasPrefix(d.Name, "GPGPU-Sim") }
