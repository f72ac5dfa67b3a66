//go:build unix

package cpu

import (
	"runtime"
	"syscall"
	"unsafe"
)

// offHeap returns n zeroed 32-bit values of anonymous memory outside
// the Go heap, unmapped once owner is unreachable. The bf16 weight packings
// live there: they are as large as the model's weights, allocated once and
// kept, and on the heap they would raise the garbage collector's target by
// their size (GOGC=100 lets the heap grow to twice what is live) and be
// scanned by it. Falls back to the heap if the mapping fails.
func offHeap[T uint32 | float32](n int, owner *weightPack) []T {
	if n == 0 {
		return nil
	}
	mem, err := syscall.Mmap(-1, 0, 4*n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]T, n)
	}
	runtime.AddCleanup(owner, func(m []byte) { _ = syscall.Munmap(m) }, mem)
	return unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n)
}
