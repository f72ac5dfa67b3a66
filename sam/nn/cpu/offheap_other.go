//go:build !unix

package cpu

// offHeapWords is make on systems without anonymous mmap here.
func offHeapWords(n int, _ *weightPack) []uint32 { return make([]uint32, n) }
