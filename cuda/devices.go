//go:build cuda

package cuda

import (
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Devices lists the CUDA devices in cudart's order (the index that
// SetDevice, the backends and "cuda:N" use). Names, compute capability and
// total memory come from cudart; utilisation, used/free memory, the UUID
// and the driver version from NVML (libnvidia-ml, loaded with dlopen by
// go-nvml), matched to cudart's devices by PCI bus id. Without NVML the
// list still has cudart's fields, free memory comes from cudaMemGetInfo
// (which creates a context on each device), utilisation is -1, and Note
// says why. Without a driver or a GPU the error wraps ErrNoDevice.
func Devices() ([]DeviceInfo, error) {
	n, err := DeviceCount()
	if err != nil {
		return nil, err
	}
	devs := make([]DeviceInfo, n)
	for i := range devs {
		if devs[i], err = DeviceProperties(i); err != nil {
			return nil, err
		}
	}
	if err := nvmlFill(devs); err != nil {
		for i := range devs {
			d := &devs[i]
			d.Note = "NVML unavailable (" + err.Error() + "): memory from cudaMemGetInfo, no utilisation"
			if free, total, err := MemInfo(i); err == nil {
				d.MemoryFree, d.MemoryUsed = free, total-free
			}
		}
	}
	return devs, nil
}

// DeviceProperties returns cudart's fields of one device (name, compute
// capability, multiprocessors, total memory, PCI bus id, versions) without
// NVML and without creating a context; the NVML fields are -1 or empty.
func DeviceProperties(dev int) (DeviceInfo, error) {
	p, err := deviceProps(dev)
	if err != nil {
		return DeviceInfo{}, err
	}
	rt, drv, _ := Versions()
	return DeviceInfo{
		Index: dev, Name: p.name, PCIBusID: p.pciBusID,
		Major: p.major, Minor: p.minor, SMs: p.sms,
		MemoryTotal: p.total, MemoryFree: -1, MemoryUsed: -1,
		Utilization: -1, MemoryUtilization: -1,
		CUDARuntime: rt, CUDADriver: drv,
	}, nil
}

// nvmlFill adds NVML's fields to devs; an error means NVML could not be
// used at all (per-device gaps are noted on the device).
func nvmlFill(devs []DeviceInfo) (err error) {
	defer func() {
		// go-nvml panics rather than erroring in a few corner cases of a
		// broken installation; treat that as "NVML unavailable".
		if r := recover(); r != nil {
			err = fmt.Errorf("NVML: %v", r)
		}
	}()
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvmlInit: %v", nvml.ErrorString(ret))
	}
	defer nvml.Shutdown()
	driver, ret := nvml.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		driver = ""
	}
	cudaDrv, ret := nvml.SystemGetCudaDriverVersion()
	for i := range devs {
		d := &devs[i]
		d.Driver = driver
		if ret == nvml.SUCCESS {
			d.CUDADriver = versionString(cudaDrv)
		}
		var notes []string
		h, r := nvml.DeviceGetHandleByPciBusId(d.PCIBusID)
		if r != nvml.SUCCESS {
			notes = append(notes, "NVML has no device at "+d.PCIBusID+": "+nvml.ErrorString(r))
			if free, total, err := MemInfo(i); err == nil {
				d.MemoryFree, d.MemoryUsed = free, total-free
			}
			d.Note = strings.Join(notes, "; ")
			continue
		}
		d.NVML = true
		if uuid, r := h.GetUUID(); r == nvml.SUCCESS {
			d.UUID = uuid
		}
		if m, r := h.GetMemoryInfo(); r == nvml.SUCCESS {
			d.MemoryFree, d.MemoryUsed = int64(m.Free), int64(m.Used)
		} else {
			notes = append(notes, "memory: "+nvml.ErrorString(r))
		}
		if u, r := h.GetUtilizationRates(); r == nvml.SUCCESS {
			d.Utilization, d.MemoryUtilization = int(u.Gpu), int(u.Memory)
		} else {
			notes = append(notes, "utilisation: "+nvml.ErrorString(r)) // e.g. MIG instances
		}
		d.Note = strings.Join(notes, "; ")
	}
	return nil
}
