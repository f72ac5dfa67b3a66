//go:build !linux

package cpu

// pageOut is a no-op where MADV_PAGEOUT does not exist (pageout_linux.go).
func pageOut([]float32) {}
