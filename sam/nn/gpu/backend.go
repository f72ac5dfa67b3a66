//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/samgo/samgo/bindings"
	"github.com/samgo/samgo/cuda"
	"github.com/samgo/samgo/sam/nn"
)

// Errors callers may branch on.
var (
	// ErrTensor marks a tensor argument this backend cannot use: nil where
	// a tensor is required, a tensor of another backend or device, or one
	// used after Release.
	ErrTensor = errors.New("invalid tensor")
	// ErrClosed marks an op on a closed backend.
	ErrClosed = errors.New("backend is closed")
)

// minComputeCapability is the oldest GPU generation the kernels are built
// for (CMakeLists.txt: sm_80 and newer; bf16 tensor cores need it too).
const minComputeCapability = 80

// stagingBytes is the size of each of the two pinned host buffers that
// uploads and downloads go through (larger transfers are cut into pieces).
const stagingBytes = 8 << 20

// Backend is the CUDA implementation of nn.Backend on one device (see the
// package documentation for threads, streams and memory).
type Backend struct {
	dev   int
	dtype bindings.DType
	prec  string // "fp32" or "bf16"
	name  string
	gemm  string // "cublaslt" or "reference" (SAMGO_GEMM)

	mu     sync.Mutex // serialises ops; guards closed and the staging buffers
	closed bool
	stream *cuda.Stream
	pool   *cuda.Pool
	lt     *cuda.Lt
	stage  *staging
}

var (
	_ nn.Backend         = (*Backend)(nil)
	_ nn.Marker          = (*Backend)(nil)
	_ nn.IntoDownloader  = (*Backend)(nil)
	_ nn.MaskThresholder = (*Backend)(nil)
)

func init() {
	nn.Register("cuda", func(dev int, opts nn.Options) (nn.Backend, error) {
		b, err := New(dev, opts)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

// parsePrecision maps nn.Options.Precision to a kernel dtype.
func parsePrecision(p string) (bindings.DType, string, error) {
	switch strings.ToLower(strings.TrimSpace(p)) {
	case "", "fp32", "f32", "float32":
		return bindings.F32, "fp32", nil
	case "bf16", "bfloat16":
		return bindings.BF16, "bf16", nil
	case "fp16", "f16", "float16", "half":
		return 0, "", fmt.Errorf("cuda: precision %q is not supported: SAM's activations overflow fp16; use bf16", p)
	}
	return 0, "", fmt.Errorf("cuda: precision %q is not supported (fp32 or bf16)", p)
}

// GEMM implementations, chosen per backend at creation from the
// environment variable SAMGO_GEMM.
const (
	// GEMMCuBLASLt (the default; SAMGO_GEMM unset, "" or "cublaslt") runs
	// every matrix product through cuBLASLt (samk_gemm), which falls back
	// to the reference kernel for problems cuBLASLt refuses.
	GEMMCuBLASLt = "cublaslt"
	// GEMMReference (SAMGO_GEMM=reference) runs every matrix product on
	// the reference kernel (samk_gemm_reference) and never creates a
	// cuBLASLt handle: the GPU simulator cannot run cuBLASLt.
	GEMMReference = "reference"
)

// gemmFromEnv returns the GEMM implementation SAMGO_GEMM asks for.
func gemmFromEnv() (string, error) {
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv("SAMGO_GEMM"))); v {
	case "", GEMMCuBLASLt:
		return GEMMCuBLASLt, nil
	case GEMMReference:
		return GEMMReference, nil
	default:
		return "", fmt.Errorf("cuda: SAMGO_GEMM=%q: want %q (default) or %q", v, GEMMCuBLASLt, GEMMReference)
	}
}

// New creates a backend on CUDA device dev with opts.Precision "fp32"
// (default) or "bf16"; opts.Threads is ignored. The GEMM implementation
// comes from SAMGO_GEMM (GEMMCuBLASLt, GEMMReference). Without a usable
// device the error wraps cuda.ErrNoDevice.
func New(dev int, opts nn.Options) (*Backend, error) {
	dtype, prec, err := parsePrecision(opts.Precision)
	if err != nil {
		return nil, err
	}
	gemm, err := gemmFromEnv()
	if err != nil {
		return nil, err
	}
	n, err := cuda.DeviceCount()
	if err != nil {
		return nil, fmt.Errorf("cuda:%d: %w", dev, err)
	}
	if dev < 0 || dev >= n {
		return nil, fmt.Errorf("cuda:%d: no such device (%d CUDA device(s): cuda:0 … cuda:%d)", dev, n, n-1)
	}
	info, err := cuda.DeviceProperties(dev)
	if err != nil {
		return nil, fmt.Errorf("cuda:%d: %w", dev, err)
	}
	if cc := 10*info.Major + info.Minor; cc < minComputeCapability {
		return nil, fmt.Errorf("cuda:%d: %s has compute capability %s; the kernels need %d.%d or newer",
			dev, info.Name, info.ComputeCapability(), minComputeCapability/10, minComputeCapability%10)
	}
	name := fmt.Sprintf("cuda:%d (%s, %s)", dev, info.Name, prec)
	if gemm == GEMMReference {
		name = fmt.Sprintf("cuda:%d (%s, %s, reference GEMM)", dev, info.Name, prec)
	}
	b := &Backend{dev: dev, dtype: dtype, prec: prec, name: name, gemm: gemm}
	if err := b.open(); err != nil {
		return nil, fmt.Errorf("cuda:%d: %w", dev, err)
	}
	return b, nil
}

// open creates the stream, pool, cuBLASLt handle and staging buffers.
func (b *Backend) open() (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cuda.SetDevice(b.dev); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			b.release()
		}
	}()
	if b.stream, err = cuda.NewStream(b.dev); err != nil {
		return err
	}
	b.pool = cuda.NewPool(b.dev, cuda.PoolOptions{})
	if b.gemm != GEMMReference {
		if b.lt, err = cuda.NewLt(b.dev, bindings.GemmWorkspaceBytes()); err != nil {
			return err
		}
	}
	b.stage, err = newStaging(b.dev, stagingBytes)
	return err
}

// release frees what open created (any of it may be nil).
func (b *Backend) release() error {
	var errs []error
	if b.stage != nil {
		errs = append(errs, b.stage.free())
	}
	if b.lt != nil {
		errs = append(errs, b.lt.Destroy())
	}
	if b.pool != nil {
		errs = append(errs, b.pool.Close())
	}
	if b.stream != nil {
		errs = append(errs, b.stream.Destroy())
	}
	return errors.Join(errs...)
}

// Name returns e.g. "cuda:0 (NVIDIA H200, bf16)".
func (b *Backend) Name() string { return b.name }

// Device returns the CUDA device index.
func (b *Backend) Device() int { return b.dev }

// Precision returns "fp32" or "bf16".
func (b *Backend) Precision() string { return b.prec }

// StartRange opens an NVTX range (nn.Marker): the model marks the image
// encoder, each of its blocks, the prompt encoder, the mask decoder and
// the mask post-processing, so Nsight Systems shows SAM's structure above
// the kernels.
func (b *Backend) StartRange(name string) (end func()) { return cuda.StartRange(name) }

// GEMM returns the GEMM implementation: GEMMCuBLASLt or GEMMReference.
func (b *Backend) GEMM() string { return b.gemm }

// Close waits for queued work and releases the backend's memory pool (every
// tensor it holds), stream, cuBLASLt handle and pinned buffers. Later ops
// fail with ErrClosed; closing twice is harmless. A fork's Close releases
// only the fork's own resources.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return errors.Join(b.stream.Synchronize(), b.release())
}

// Sync waits until every op enqueued so far has finished and returns the
// first error of that asynchronous work.
func (b *Backend) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	return b.stream.Synchronize()
}

// PoolStats returns the memory pool's counters.
func (b *Backend) PoolStats() cuda.PoolStats { return b.pool.Stats() }

// MemoryInUse returns the bytes held by live tensors (and the scratch of an
// op in flight).
func (b *Backend) MemoryInUse() int64 { return b.pool.Stats().InUse }

// PeakMemory returns the most device memory held by tensors and scratch
// since creation or ResetPeakMemory (the pool's high-water mark; the
// cuBLASLt workspace and the CUDA context come on top).
func (b *Backend) PeakMemory() int64 { return b.pool.Stats().Peak }

// ResetPeakMemory starts a new peak measurement.
func (b *Backend) ResetPeakMemory() { b.pool.ResetPeak() }

// Trim returns the pool's unused chunks to the driver (for other processes
// or backends); it synchronises the device.
func (b *Backend) Trim() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	return b.pool.Trim()
}

// Fork returns a backend on the same device with its own stream, memory
// pool, cuBLASLt workspace and staging buffers, which accepts b's tensors
// (nn.Forker): two forks run concurrently on the GPU. The fork sees b's
// tensors as they are when Fork is called (Fork waits for b's queued work,
// uploads included); b must outlive the fork and its tensors must not be
// released while the fork may still use them. Fork fails (an *nn.Error
// panic, as ops do) when the device cannot provide the resources.
func (b *Backend) Fork(threads int) nn.Backend {
	const op = "Fork"
	if err := b.Sync(); err != nil {
		nn.Fail(op, err, "")
	}
	f := &Backend{dev: b.dev, dtype: b.dtype, prec: b.prec, name: b.name, gemm: b.gemm}
	if err := f.open(); err != nil {
		nn.Fail(op, err, "")
	}
	return f
}

// call is one op's critical section: begin locks the backend, pins the
// goroutine to its OS thread and makes the device current; end (deferred)
// returns the op's scratch memory and temporaries to the pool, unpins and
// unlocks. If the op fails (nn.Fail panics), end also releases the tensors
// the op allocated for its results before the panic goes on.
type call struct {
	b       *Backend
	op      string
	s       unsafe.Pointer // the stream handle, for the bindings
	scratch []cuda.Buffer
	temps   []*Tensor // converted inputs
	outs    []*Tensor // results allocated so far
}

func (b *Backend) begin(op string) *call {
	b.mu.Lock()
	runtime.LockOSThread()
	c := &call{b: b, op: op}
	if b.closed {
		c.unlock()
		nn.Fail(op, ErrClosed, "%s", b.name)
	}
	if err := cuda.SetDevice(b.dev); err != nil {
		c.unlock()
		nn.Fail(op, err, "")
	}
	c.s = b.stream.Handle()
	return c
}

func (c *call) unlock() {
	runtime.UnlockOSThread()
	c.b.mu.Unlock()
}

// end must be deferred directly (it calls recover).
func (c *call) end() {
	r := recover()
	if r != nil {
		for _, t := range c.outs {
			c.b.releaseTensor(t)
		}
	}
	for _, t := range c.temps {
		c.b.releaseTensor(t)
	}
	for _, s := range c.scratch {
		c.b.pool.Free(s)
	}
	c.unlock()
	if r != nil {
		panic(r)
	}
}

// check fails the op with err (a CUDA, cuBLASLt or kernel error). A
// kernel's out-of-memory status (a launch that failed with
// cudaErrorMemoryAllocation, cuBLASLt's ALLOC_FAILED) becomes
// nn.ErrOutOfMemory, so that callers split their work instead of giving up
// on the device.
func (c *call) check(err error) {
	if err == nil {
		return
	}
	if errors.Is(err, bindings.ErrOutOfMemory) && !errors.Is(err, nn.ErrOutOfMemory) {
		err = fmt.Errorf("%w: %w", nn.ErrOutOfMemory, err)
	}
	nn.Fail(c.op, err, "")
}

// scratchBytes returns n bytes of device memory for the op's duration.
func (c *call) scratchBytes(n int64) unsafe.Pointer {
	if n <= 0 {
		return nil
	}
	buf, err := c.b.pool.Alloc(n)
	if err != nil {
		nn.Fail(c.op, err, "scratch of %s", cuda.FormatBytes(n))
	}
	c.scratch = append(c.scratch, buf)
	return buf.Ptr()
}

// gemm runs samk_gemm in the backend's precision with its cuBLASLt
// workspace, or samk_gemm_reference (SAMGO_GEMM=reference); p.DType is
// set here.
func (c *call) gemm(p bindings.GemmParams) {
	p.DType = c.b.dtype
	if p.Batch == 0 {
		p.Batch = 1
	}
	if c.b.lt == nil {
		c.check(bindings.GemmReference(&p, c.s))
		return
	}
	ws, wsBytes := c.b.lt.Workspace()
	c.check(bindings.Gemm(c.b.lt.Handle(), ws, wsBytes, &p, c.s))
}

// memset zeroes n bytes at p on the stream.
func (c *call) memset(p unsafe.Pointer, n int64) {
	c.check(cuda.MemsetAsync(p, 0, n, c.b.stream))
}

// copy2D is cudaMemcpy2DAsync device to device on the stream (pitches and
// width in bytes).
func (c *call) copy2D(dst unsafe.Pointer, dpitch int64, src unsafe.Pointer, spitch, width, height int64) {
	if height == 1 {
		c.check(cuda.MemcpyAsync(dst, src, width, cuda.DeviceToDevice, c.b.stream))
		return
	}
	c.check(cuda.Memcpy2DAsync(dst, dpitch, src, spitch, width, height, cuda.DeviceToDevice, c.b.stream))
}

// kernelAct maps an nn activation, failing on unknown ones
// (nn.CheckAct).
func (c *call) kernelAct(act nn.Act) bindings.Act {
	nn.CheckAct(c.op, act)
	switch act {
	case nn.ActGELU:
		return bindings.ActGELU
	case nn.ActReLU:
		return bindings.ActReLU
	}
	return bindings.ActNone
}
