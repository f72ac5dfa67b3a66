// Package cuda is the Go side of the GPU runtime: devices (enumerated
// through cudart, described through go-nvml), streams, events, device
// buffers, a device memory pool with statistics, pinned host buffers, and
// the cuBLASLt handle with its workspace. Errors are Go errors carrying the
// CUDA message (*Error: the call, the error's name and description); an
// out-of-memory error matches nn.ErrOutOfMemory under errors.Is, and the
// absence of a driver or GPU matches ErrNoDevice.
//
// Everything that needs cgo and the CUDA toolkit is behind the `cuda` build
// tag; without it the package offers Available (false), DeviceCount and
// Devices (errors wrapping ErrNoDevice), and the pool's allocator logic,
// which is plain Go (arena.go) and tested on any machine.
//
// # Devices
//
// Devices lists the GPUs in cudart's order — the index of "cuda:N",
// SetDevice and every function here. Name, compute capability, SM count
// and total memory come from cudart; utilisation, used/free memory, the
// UUID and the driver version from NVML, which go-nvml loads with dlopen
// (libnvidia-ml.so.1) and which is matched to cudart's devices by PCI bus
// id. Without NVML (containers without the library, some MIG setups) the
// cudart fields remain, free memory comes from cudaMemGetInfo, utilisation
// is -1, and DeviceInfo.Note says why.
//
// # The current device
//
// CUDA's current device is per OS thread, and a goroutine may move to
// another thread at any call into the Go runtime. Every function of this
// package that touches a device therefore takes the device (or an object
// that knows it: Stream, Event, Pool, Lt) and makes it current inside the
// same cgo call as the work, so it is right on any thread and from any
// goroutine. Code that launches kernels through other C libraries (package
// bindings, cuBLASLt), which use the thread's current device, must pin its
// goroutine with runtime.LockOSThread, call SetDevice, and launch before
// unpinning; sam/nn/gpu does this around every op.
//
// # Memory
//
// Pool (arena.go, pool.go) sub-allocates large cudaMalloc chunks with a
// best-fit free list, merges freed neighbours, and reports in-use, peak,
// reserved and allocation counts; Trim returns unused chunks, Reset frees
// everything at once, and an allocation the device cannot satisfy (after a
// Trim and a retry) is an error, never a crash. A pool is stream-ordered
// for one stream: memory freed on the host may be reused by the next
// allocation because work on the same stream runs in order. With
// SAMGO_CUDA_POOL=exact every allocation is its own cudaMalloc, for
// compute-sanitizer runs.
//
// HostBuffer is pinned host memory (cudaMallocHost) for asynchronous
// transfers; MemcpyAsync, Memcpy2DAsync and MemsetAsync queue copies on a
// Stream.
package cuda
