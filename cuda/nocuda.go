//go:build !cuda

package cuda

// Available reports whether this build has CUDA support and a device.
func Available() bool { return false }
