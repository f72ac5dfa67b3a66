// Package cuda is the Go side of the GPU runtime: devices (enumerated
// through cudart, described through go-nvml), streams, events, device
// buffers, a device memory pool with statistics, pinned host buffers, and
// the cuBLASLt handle with its workspace. Errors are Go errors carrying the
// CUDA message.
//
// Everything that needs cgo and the CUDA toolkit is behind the `cuda` build
// tag; without it the package only offers Available, which reports false.
package cuda
