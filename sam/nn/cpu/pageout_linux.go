package cpu

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// pageOut tells the kernel that the pages wholly inside data will not be
// needed soon (MADV_PAGEOUT, Linux 5.4+). A bf16 weight's float32 values
// are read once, to pack them; when they are pages of the memory-mapped
// checkpoint (the usual case: sam.Load maps safetensors files) the kernel
// drops them from memory and would read them back from the file if they
// were touched again, so the process does not hold the weights twice (0.18
// GB for ViT-B). The advice never changes the data: heap memory stays (or
// goes to swap), and kernels without MADV_PAGEOUT refuse it harmlessly.
func pageOut(data []float32) {
	if len(data) == 0 {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*len(data))
	ps := uintptr(unix.Getpagesize())
	addr := uintptr(unsafe.Pointer(&b[0]))
	lo := int((ps - addr%ps) % ps)                // first page boundary inside
	hi := len(b) - int((addr+uintptr(len(b)))%ps) // last one
	if hi-lo < int(ps) {
		return
	}
	_ = unix.Madvise(b[lo:hi], unix.MADV_PAGEOUT)
}
