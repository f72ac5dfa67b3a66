package nn

// Marker is implemented by backends that can show named ranges of work to
// a profiler: the CUDA backend emits NVTX ranges, which Nsight Systems
// draws on its timeline above the kernels they contain (make profile).
// StartRange opens a range and returns the function that ends it; ranges
// are process-wide (not tied to an OS thread, which a goroutine may leave)
// and may nest.
type Marker interface {
	StartRange(name string) (end func())
}

// Range opens a range named name on b when b is a Marker and returns the
// function that ends it, for `defer nn.Range(b, "image encoder")()`. On
// other backends it does nothing.
func Range(b Backend, name string) (end func()) {
	if m, ok := b.(Marker); ok {
		return m.StartRange(name)
	}
	return func() {}
}
