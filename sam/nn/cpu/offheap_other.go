//go:build !unix

package cpu

// offHeap is make on systems without anonymous mmap here.
func offHeap[T uint32 | float32](n int, _ *weightPack) []T { return make([]T, n) }
