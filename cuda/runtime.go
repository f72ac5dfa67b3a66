//go:build cuda

package cuda

/*
// The toolkit's include and library paths come from the Makefile
// (CUDA_HOME: CPATH, CGO_LDFLAGS), the same toolkit CMake builds the
// kernels with.
#cgo LDFLAGS: -lcudart

#include <cuda_runtime_api.h>
#include <string.h>

// Every helper takes the device and makes it current in the same cgo call
// as the work (a goroutine may move to another OS thread between two cgo
// calls, and the current device is per thread), and clears the thread's
// last-error state when it fails, so that a later launcher's
// cudaGetLastError() does not report our stale, non-sticky error.
static cudaError_t sg_ret(cudaError_t e) {
	if (e != cudaSuccess) (void)cudaGetLastError();
	return e;
}
#define SG_SET(dev) do { cudaError_t _e = cudaSetDevice(dev); if (_e != cudaSuccess) return sg_ret(_e); } while (0)

static cudaError_t sg_device_count(int *n) { return sg_ret(cudaGetDeviceCount(n)); }
static cudaError_t sg_set_device(int dev) { return sg_ret(cudaSetDevice(dev)); }
static cudaError_t sg_get_device(int *dev) { return sg_ret(cudaGetDevice(dev)); }

// cudaGetDeviceProperties is a macro for a versioned symbol in CUDA 12+, and
// CUDA 13 dropped some fields; only long-standing fields are read here.
static cudaError_t sg_props(int dev, char *name, size_t name_len, size_t *total, int *major, int *minor,
                            int *sms, int *domain, int *bus, int *device) {
	struct cudaDeviceProp p;
	cudaError_t e = cudaGetDeviceProperties(&p, dev);
	if (e != cudaSuccess) return sg_ret(e);
	strncpy(name, p.name, name_len - 1);
	name[name_len - 1] = 0;
	*total = p.totalGlobalMem;
	*major = p.major;
	*minor = p.minor;
	*sms = p.multiProcessorCount;
	*domain = p.pciDomainID;
	*bus = p.pciBusID;
	*device = p.pciDeviceID;
	return cudaSuccess;
}
static cudaError_t sg_pci_bus_id(int dev, char *buf, int len) { return sg_ret(cudaDeviceGetPCIBusId(buf, len, dev)); }
static cudaError_t sg_mem_info(int dev, size_t *free_b, size_t *total) { SG_SET(dev); return sg_ret(cudaMemGetInfo(free_b, total)); }
static cudaError_t sg_versions(int *runtime, int *driver) {
	cudaError_t e = cudaRuntimeGetVersion(runtime);
	if (e != cudaSuccess) return sg_ret(e);
	return sg_ret(cudaDriverGetVersion(driver));
}
static cudaError_t sg_device_sync(int dev) { SG_SET(dev); return sg_ret(cudaDeviceSynchronize()); }

static cudaError_t sg_malloc(int dev, void **p, size_t n) { SG_SET(dev); return sg_ret(cudaMalloc(p, n)); }
static cudaError_t sg_free(int dev, void *p) { SG_SET(dev); return sg_ret(cudaFree(p)); }
static cudaError_t sg_malloc_host(void **p, size_t n) { return sg_ret(cudaMallocHost(p, n)); }
static cudaError_t sg_free_host(void *p) { return sg_ret(cudaFreeHost(p)); }

static cudaError_t sg_memcpy_async(int dev, void *dst, const void *src, size_t n, int kind, cudaStream_t s) {
	SG_SET(dev);
	return sg_ret(cudaMemcpyAsync(dst, src, n, (enum cudaMemcpyKind)kind, s));
}
static cudaError_t sg_memcpy2d_async(int dev, void *dst, size_t dpitch, const void *src, size_t spitch,
                                     size_t width, size_t height, int kind, cudaStream_t s) {
	SG_SET(dev);
	return sg_ret(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, (enum cudaMemcpyKind)kind, s));
}
static cudaError_t sg_memset_async(int dev, void *dst, int value, size_t n, cudaStream_t s) {
	SG_SET(dev);
	return sg_ret(cudaMemsetAsync(dst, value, n, s));
}

static cudaError_t sg_stream_create(int dev, cudaStream_t *s) {
	SG_SET(dev);
	return sg_ret(cudaStreamCreateWithFlags(s, cudaStreamNonBlocking));
}
static cudaError_t sg_stream_destroy(int dev, cudaStream_t s) { SG_SET(dev); return sg_ret(cudaStreamDestroy(s)); }
static cudaError_t sg_stream_sync(int dev, cudaStream_t s) { SG_SET(dev); return sg_ret(cudaStreamSynchronize(s)); }
static cudaError_t sg_stream_query(int dev, cudaStream_t s) {
	SG_SET(dev);
	cudaError_t e = cudaStreamQuery(s);
	return e == cudaErrorNotReady ? e : sg_ret(e);
}
static cudaError_t sg_stream_wait(int dev, cudaStream_t s, cudaEvent_t ev) {
	SG_SET(dev);
	return sg_ret(cudaStreamWaitEvent(s, ev, 0));
}

static cudaError_t sg_event_create(int dev, cudaEvent_t *ev, int timing) {
	SG_SET(dev);
	return sg_ret(cudaEventCreateWithFlags(ev, timing ? cudaEventDefault : cudaEventDisableTiming));
}
static cudaError_t sg_event_destroy(int dev, cudaEvent_t ev) { SG_SET(dev); return sg_ret(cudaEventDestroy(ev)); }
static cudaError_t sg_event_record(int dev, cudaEvent_t ev, cudaStream_t s) { SG_SET(dev); return sg_ret(cudaEventRecord(ev, s)); }
static cudaError_t sg_event_sync(int dev, cudaEvent_t ev) { SG_SET(dev); return sg_ret(cudaEventSynchronize(ev)); }
static cudaError_t sg_event_query(int dev, cudaEvent_t ev) {
	SG_SET(dev);
	cudaError_t e = cudaEventQuery(ev);
	return e == cudaErrorNotReady ? e : sg_ret(e);
}
static cudaError_t sg_event_elapsed(int dev, float *ms, cudaEvent_t a, cudaEvent_t b) {
	SG_SET(dev);
	return sg_ret(cudaEventElapsedTime(ms, a, b));
}

static const char *sg_error_name(int e) { return cudaGetErrorName((cudaError_t)e); }
static const char *sg_error_string(int e) { return cudaGetErrorString((cudaError_t)e); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// check turns a cudaError_t into an *Error (nil on cudaSuccess).
func check(op string, e C.cudaError_t) error {
	if e == C.cudaSuccess {
		return nil
	}
	code := int(e)
	return &Error{
		Op:   op,
		Code: code,
		Name: C.GoString(C.sg_error_name(C.int(code))),
		Msg:  C.GoString(C.sg_error_string(C.int(code))),
		oom:  code == codeMemoryAllocation,
	}
}

// Available reports whether this build has CUDA support and at least one
// device is usable (a driver is loaded and sees a GPU).
func Available() bool {
	n, err := DeviceCount()
	return err == nil && n > 0
}

// DeviceCount returns the number of CUDA devices. Without a driver or a
// GPU it returns an error that wraps ErrNoDevice and carries CUDA's reason.
func DeviceCount() (int, error) {
	var n C.int
	if err := check("cudaGetDeviceCount", C.sg_device_count(&n)); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: cudaGetDeviceCount found none", ErrNoDevice)
	}
	return int(n), nil
}

// SetDevice makes dev the calling OS thread's current device. A goroutine
// can move to another thread between calls: callers that launch work that
// depends on the current device (kernels, cuBLASLt) must hold the thread
// with runtime.LockOSThread from SetDevice to their last launch. The
// package's own functions do not rely on it: each sets its device itself.
func SetDevice(dev int) error {
	return check(fmt.Sprintf("cudaSetDevice(%d)", dev), C.sg_set_device(C.int(dev)))
}

// CurrentDevice returns the calling thread's current device.
func CurrentDevice() (int, error) {
	var d C.int
	err := check("cudaGetDevice", C.sg_get_device(&d))
	return int(d), err
}

// Versions returns the CUDA runtime version this program is linked with and
// the newest CUDA version the installed driver supports, as "12.4".
func Versions() (runtime, driver string, err error) {
	var r, d C.int
	if err := check("cudaRuntimeGetVersion", C.sg_versions(&r, &d)); err != nil {
		return "", "", err
	}
	return versionString(int(r)), versionString(int(d)), nil
}

func versionString(v int) string {
	if v <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

// props are cudart's device properties that DeviceInfo reports.
type props struct {
	name                   string
	total                  int64
	major, minor, sms      int
	pciBusID               string
	domain, bus, pciDevice int
}

func deviceProps(dev int) (props, error) {
	var name [256]C.char
	var total C.size_t
	var major, minor, sms, domain, bus, device C.int
	if err := check(fmt.Sprintf("cudaGetDeviceProperties(%d)", dev),
		C.sg_props(C.int(dev), &name[0], C.size_t(len(name)), &total, &major, &minor, &sms, &domain, &bus, &device)); err != nil {
		return props{}, err
	}
	p := props{name: C.GoString(&name[0]), total: int64(total), major: int(major), minor: int(minor), sms: int(sms),
		domain: int(domain), bus: int(bus), pciDevice: int(device)}
	var id [64]C.char
	if err := check("cudaDeviceGetPCIBusId", C.sg_pci_bus_id(C.int(dev), &id[0], C.int(len(id)))); err == nil {
		p.pciBusID = C.GoString(&id[0])
	}
	return p, nil
}

// MemInfo returns the free and total memory of dev as the driver sees it
// (this creates dev's context if it has none).
func MemInfo(dev int) (free, total int64, err error) {
	var f, t C.size_t
	if err := check("cudaMemGetInfo", C.sg_mem_info(C.int(dev), &f, &t)); err != nil {
		return 0, 0, err
	}
	return int64(f), int64(t), nil
}

// Synchronize waits for all work on dev.
func Synchronize(dev int) error {
	return check("cudaDeviceSynchronize", C.sg_device_sync(C.int(dev)))
}

// Malloc allocates n bytes on dev (cudaMalloc). Out of memory is an error
// that wraps nn.ErrOutOfMemory.
func Malloc(dev int, n int64) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	if err := check(fmt.Sprintf("cudaMalloc(%d bytes)", n), C.sg_malloc(C.int(dev), &p, C.size_t(n))); err != nil {
		return nil, err
	}
	return p, nil
}

// Free releases memory from Malloc (cudaFree; it synchronises the device).
func Free(dev int, p unsafe.Pointer) error {
	if p == nil {
		return nil
	}
	return check("cudaFree", C.sg_free(C.int(dev), p))
}

// HostBuffer is page-locked host memory (cudaMallocHost): copies between it
// and the device run asynchronously at full bus speed.
type HostBuffer struct {
	p unsafe.Pointer
	n int64
}

// MallocHost allocates n bytes of pinned host memory.
func MallocHost(n int64) (*HostBuffer, error) {
	var p unsafe.Pointer
	if err := check(fmt.Sprintf("cudaMallocHost(%d bytes)", n), C.sg_malloc_host(&p, C.size_t(max(n, 1)))); err != nil {
		return nil, err
	}
	return &HostBuffer{p: p, n: n}, nil
}

// Ptr returns the buffer's address.
func (h *HostBuffer) Ptr() unsafe.Pointer { return h.p }

// Len returns the size in bytes.
func (h *HostBuffer) Len() int64 { return h.n }

// Bytes views the buffer as a byte slice (valid until Free).
func (h *HostBuffer) Bytes() []byte { return unsafe.Slice((*byte)(h.p), h.n) }

// Float32s views the buffer as float32s (valid until Free).
func (h *HostBuffer) Float32s() []float32 { return unsafe.Slice((*float32)(h.p), h.n/4) }

// Free releases the buffer; no copy may still be using it.
func (h *HostBuffer) Free() error {
	if h == nil || h.p == nil {
		return nil
	}
	err := check("cudaFreeHost", C.sg_free_host(h.p))
	h.p, h.n = nil, 0
	return err
}

// MemcpyKind is the direction of a copy (cudaMemcpyKind).
type MemcpyKind int

const (
	HostToDevice   MemcpyKind = C.cudaMemcpyHostToDevice
	DeviceToHost   MemcpyKind = C.cudaMemcpyDeviceToHost
	DeviceToDevice MemcpyKind = C.cudaMemcpyDeviceToDevice
)

func (k MemcpyKind) String() string {
	switch k {
	case HostToDevice:
		return "HtoD"
	case DeviceToHost:
		return "DtoH"
	case DeviceToDevice:
		return "DtoD"
	}
	return fmt.Sprintf("MemcpyKind(%d)", int(k))
}

// MemcpyAsync copies n bytes on stream s (cudaMemcpyAsync). Host memory
// may be pinned (the copy is then asynchronous: keep it alive and
// unchanged until the stream has passed the copy) or ordinary Go memory
// without Go pointers (the runtime stages it before returning for host →
// device, and finishes device → host copies before returning).
func MemcpyAsync(dst, src unsafe.Pointer, n int64, kind MemcpyKind, s *Stream) error {
	if n == 0 {
		return nil
	}
	return check(fmt.Sprintf("cudaMemcpyAsync(%s, %d bytes)", kind, n),
		C.sg_memcpy_async(C.int(s.dev), dst, src, C.size_t(n), C.int(kind), s.h))
}

// Memcpy2DAsync copies height rows of width bytes from src (rows spitch
// bytes apart) to dst (dpitch apart) on stream s: slices, concatenations
// and strided gathers in one call (cudaMemcpy2DAsync).
func Memcpy2DAsync(dst unsafe.Pointer, dpitch int64, src unsafe.Pointer, spitch, width, height int64, kind MemcpyKind, s *Stream) error {
	if width == 0 || height == 0 {
		return nil
	}
	return check(fmt.Sprintf("cudaMemcpy2DAsync(%s, %d×%d bytes, pitches %d/%d)", kind, height, width, dpitch, spitch),
		C.sg_memcpy2d_async(C.int(s.dev), dst, C.size_t(dpitch), src, C.size_t(spitch), C.size_t(width), C.size_t(height), C.int(kind), s.h))
}

// MemsetAsync sets n bytes at dst to value on stream s.
func MemsetAsync(dst unsafe.Pointer, value byte, n int64, s *Stream) error {
	if n == 0 {
		return nil
	}
	return check("cudaMemsetAsync", C.sg_memset_async(C.int(s.dev), dst, C.int(value), C.size_t(n), s.h))
}

// Stream is a CUDA stream on one device, created non-blocking (it does
// not synchronise with the legacy default stream).
type Stream struct {
	h   C.cudaStream_t
	dev int
}

// NewStream creates a stream on dev.
func NewStream(dev int) (*Stream, error) {
	s := &Stream{dev: dev}
	if err := check("cudaStreamCreateWithFlags", C.sg_stream_create(C.int(dev), &s.h)); err != nil {
		return nil, err
	}
	return s, nil
}

// Handle returns the cudaStream_t for C code (the kernels' samk_stream).
func (s *Stream) Handle() unsafe.Pointer { return unsafe.Pointer(s.h) }

// Device returns the stream's device.
func (s *Stream) Device() int { return s.dev }

// Synchronize waits for the stream's work; errors of earlier asynchronous
// work (a kernel fault) surface here.
func (s *Stream) Synchronize() error {
	return check("cudaStreamSynchronize", C.sg_stream_sync(C.int(s.dev), s.h))
}

// Done reports whether all work queued on the stream has completed.
func (s *Stream) Done() (bool, error) {
	e := C.sg_stream_query(C.int(s.dev), s.h)
	if e == C.cudaErrorNotReady {
		return false, nil
	}
	return e == C.cudaSuccess, check("cudaStreamQuery", e)
}

// Wait makes later work on s wait for ev (cudaStreamWaitEvent).
func (s *Stream) Wait(ev *Event) error {
	return check("cudaStreamWaitEvent", C.sg_stream_wait(C.int(s.dev), s.h, ev.h))
}

// Destroy releases the stream (queued work still completes).
func (s *Stream) Destroy() error {
	if s == nil || s.h == nil {
		return nil
	}
	err := check("cudaStreamDestroy", C.sg_stream_destroy(C.int(s.dev), s.h))
	s.h = nil
	return err
}

// Event is a CUDA event: a marker in a stream, for ordering and timing.
type Event struct {
	h   C.cudaEvent_t
	dev int
}

// NewEvent creates an event on dev; timing events can measure elapsed time.
func NewEvent(dev int, timing bool) (*Event, error) {
	ev := &Event{dev: dev}
	t := C.int(0)
	if timing {
		t = 1
	}
	if err := check("cudaEventCreateWithFlags", C.sg_event_create(C.int(dev), &ev.h, t)); err != nil {
		return nil, err
	}
	return ev, nil
}

// Record places the event in s's queue.
func (ev *Event) Record(s *Stream) error {
	return check("cudaEventRecord", C.sg_event_record(C.int(ev.dev), ev.h, s.h))
}

// Synchronize waits until the work before the event's last Record is done.
func (ev *Event) Synchronize() error {
	return check("cudaEventSynchronize", C.sg_event_sync(C.int(ev.dev), ev.h))
}

// Done reports whether the work before the last Record has completed.
func (ev *Event) Done() (bool, error) {
	e := C.sg_event_query(C.int(ev.dev), ev.h)
	if e == C.cudaErrorNotReady {
		return false, nil
	}
	return e == C.cudaSuccess, check("cudaEventQuery", e)
}

// Elapsed returns the time between two recorded, completed timing events
// in milliseconds (resolution about half a microsecond).
func Elapsed(start, end *Event) (float32, error) {
	var ms C.float
	if err := check("cudaEventElapsedTime", C.sg_event_elapsed(C.int(start.dev), &ms, start.h, end.h)); err != nil {
		return 0, err
	}
	return float32(ms), nil
}

// Destroy releases the event.
func (ev *Event) Destroy() error {
	if ev == nil || ev.h == nil {
		return nil
	}
	err := check("cudaEventDestroy", C.sg_event_destroy(C.int(ev.dev), ev.h))
	ev.h = nil
	return err
}

// deviceSource backs a Pool with cudaMalloc/cudaFree on one device.
type deviceSource struct{ dev int }

func (d deviceSource) allocChunk(n int64) (any, error) { return Malloc(d.dev, n) }
func (d deviceSource) freeChunk(mem any) error {
	p, _ := mem.(unsafe.Pointer)
	return Free(d.dev, p)
}

// PoolOptions configure NewPool.
type PoolOptions struct {
	// ChunkBytes is the size of the shared chunks requested from the
	// driver (0: 64 MiB); larger allocations get a chunk of their own.
	ChunkBytes int64
	// Exact gives every allocation its own cudaMalloc, freed at once:
	// slower, but compute-sanitizer's memcheck then sees the bounds of each
	// allocation (inside a shared chunk an overrun goes unnoticed). The
	// environment variable SAMGO_CUDA_POOL=exact sets it for every pool.
	Exact bool
}

// NewPool creates a memory pool on dev.
func NewPool(dev int, opts PoolOptions) *Pool {
	return newPool(deviceSource{dev}, opts.ChunkBytes, opts.Exact || poolExactFromEnv())
}
