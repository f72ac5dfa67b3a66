// Package cpu is the pure-Go float32 implementation of nn.Backend: the
// executable specification of every op that the GPU backend is checked
// against. It is written for clarity first (each op is a plain loop nest
// over documented layouts) and speed second: every op runs in parallel over
// all cores, matrix products go through package sgemm, and the transcendental
// functions the model spends its time in (exp in softmax, erf in GELU) have
// fast float32-accurate implementations (mathf.go).
//
// With WithBF16 (nn.Options{Precision: "bf16"}) on a CPU with
// AVX512_BF16, the large products round their inputs to bf16 (weights.go);
// every other op is the same float32 code.
//
// Numerics follow the official PyTorch float32 code: float32 storage and
// products, with float64 where it is cheap and removes a failure mode
// (layernorm statistics, softmax sums, the polynomial evaluations of exp and
// erf).
//
// A Backend has no mutable state apart from a buffer free list guarded by a
// mutex, so it is safe for concurrent use by several goroutines.
//
// Files: cpu.go (backend, tensors, upload/download/reshape/release),
// pool.go (the free list), parallel.go (parallel-for), mathf.go (exp, erf,
// GELU), gemm.go (Linear, MatMulT, Conv2D, ConvTranspose2D), weights.go
// (the bf16 precision, weights packed once for the products; offheap_*.go,
// pageout_*.go), norm.go (LayerNorm), attention.go,
// layout.go (window partition, elementwise, concat/slice/repeat/transpose),
// mask.go (MaskDownsample, UpscaleMasks).
// The shape rules every op validates its arguments by are package nn's
// (sam/nn/shapes.go), shared with the GPU backend. Each op's tests compare it with a float64 loop written from its
// definition (*_test.go).
package cpu

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu/sgemm"
)

// ErrTensor marks a tensor argument that this backend cannot use: nil where
// a tensor is required, a tensor of another backend, or a tensor used after
// Release.
var ErrTensor = errors.New("invalid tensor")

// Backend is the CPU implementation of nn.Backend.
type Backend struct {
	threads int
	bf16    bool // bf16 products (weights.go)
	pool    *pool
	mem     *memStats // shared with forks
}

// memStats counts the bytes of live tensors the backend allocated (weights
// wrapped by UploadWeight are the caller's and not counted).
type memStats struct {
	inUse, peak atomic.Int64
}

func (m *memStats) alloc(n int64) {
	v := m.inUse.Add(n)
	for {
		p := m.peak.Load()
		if v <= p || m.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

var (
	_ nn.Backend         = (*Backend)(nil)
	_ nn.IntoDownloader  = (*Backend)(nil)
	_ nn.MaskThresholder = (*Backend)(nil)
)

// Option configures New.
type Option func(*Backend)

// WithThreads fixes the number of worker goroutines an op uses (n ≤ 0:
// GOMAXPROCS at New). With one thread every op, matrix products included,
// runs on the calling goroutine; otherwise a product too small to share
// out by rows runs as one sgemm.Gemm, which uses GOMAXPROCS goroutines.
func WithThreads(n int) Option {
	return func(b *Backend) {
		if n > 0 {
			b.threads = n
		}
	}
}

// WithoutPool disables the recycling of released buffers (every op then
// allocates fresh memory and the garbage collector reclaims it).
func WithoutPool() Option {
	return func(b *Backend) { b.pool = nil }
}

// WithBF16 makes the backend's large products bf16 (see weights.go) where the
// CPU has AVX512_BF16; elsewhere it has no effect (Precision says which).
func WithBF16() Option {
	return func(b *Backend) { b.bf16 = sgemm.HasBF16() }
}

// Precision is "bf16" when the backend's products run in bf16, else "fp32".
func (b *Backend) Precision() string {
	if b.bf16 {
		return "bf16"
	}
	return "fp32"
}

// New returns a CPU backend that runs each op on up to GOMAXPROCS
// goroutines.
func New(opts ...Option) *Backend {
	b := &Backend{threads: runtime.GOMAXPROCS(0), pool: newPool(), mem: &memStats{}}
	for _, o := range opts {
		o(b)
	}
	return b
}

func init() {
	nn.Register("cpu", func(dev int, opts nn.Options) (nn.Backend, error) {
		if dev != 0 {
			return nil, fmt.Errorf("cpu: device index %d: the CPU backend has only device 0", dev)
		}
		switch p := strings.ToLower(opts.Precision); p {
		case "", "fp32":
			return New(WithThreads(opts.Threads)), nil
		case "bf16":
			// Where the CPU lacks AVX512_BF16 this is the fp32 backend;
			// its Precision and Name say so.
			return New(WithThreads(opts.Threads), WithBF16()), nil
		default:
			return nil, fmt.Errorf("cpu: precision %q is not supported (fp32 or bf16)", opts.Precision)
		}
	})
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// MemoryInUse is the size in bytes of the live tensors the backend's ops,
// Upload and Reshape views hold (UploadWeight data excluded).
func (b *Backend) MemoryInUse() int64 { return b.mem.inUse.Load() }

// PeakMemory is the largest MemoryInUse since New or ResetPeakMemory.
func (b *Backend) PeakMemory() int64 { return b.mem.peak.Load() }

// ResetPeakMemory restarts the peak at the current use.
func (b *Backend) ResetPeakMemory() { b.mem.peak.Store(b.mem.inUse.Load()) }

// Fork returns a backend that accepts this one's tensors (host memory is
// shared) with its own thread count (0: the same) and the same memory
// statistics: the CPU's counterpart of a second stream on one GPU.
func (b *Backend) Fork(threads int) nn.Backend {
	f := *b
	if threads > 0 {
		f.threads = threads
	}
	return &f
}

// Threads returns the number of worker goroutines an op uses.
func (b *Backend) Threads() int { return b.threads }

// Tensor is a dense row-major float32 array in host memory.
type Tensor struct {
	shape []int
	data  []float32 // len(data) == nn.Numel(shape); nil after Release
	buf   *buffer   // the allocation data lives in (shared by views); nil for UploadWeight data
	// packed is a weight's packing for the products (weights.go), made
	// on first use.
	packed atomic.Pointer[weightPack]
	// released is set by Release; a second Release is a no-op.
	released atomic.Bool
}

var _ nn.Tensor = (*Tensor)(nil)

// Shape returns the dimensions; callers must not modify the slice.
func (t *Tensor) Shape() []int { return t.shape }

func (t *Tensor) String() string {
	return fmt.Sprintf("cpu.Tensor%s", nn.ShapeString(t.shape))
}

// tensor unwraps an argument of op, failing with ErrTensor on nil, foreign
// and released tensors.
func tensor(op, name string, t nn.Tensor) *Tensor {
	ct, ok := t.(*Tensor)
	if !ok || ct == nil {
		if t == nil {
			nn.Fail(op, ErrTensor, "%s is nil", name)
		}
		nn.Fail(op, ErrTensor, "%s is a %T, not a tensor of the cpu backend", name, t)
	}
	if ct.released.Load() {
		nn.Fail(op, ErrTensor, "%s %s used after Release", name, nn.ShapeString(ct.shape))
	}
	return ct
}

// optTensor is tensor for optional arguments: nil stays nil.
func optTensor(op, name string, t nn.Tensor) *Tensor {
	if t == nil {
		return nil
	}
	if ct, ok := t.(*Tensor); ok && ct == nil {
		return nil
	}
	return tensor(op, name, t)
}

// newTensor allocates a tensor of the given shape. Its contents are
// undefined (a recycled buffer): every op writes every element.
func (b *Backend) newTensor(shape ...int) *Tensor {
	n := nn.Numel(shape)
	t := &Tensor{shape: append([]int(nil), shape...)}
	t.data, t.buf = b.pool.get(n)
	if t.buf == nil {
		// Small or unpooled: a buffer all the same, so that views count
		// references and the memory statistics see the release.
		t.buf = &buffer{data: t.data}
		t.buf.refs.Store(1)
	}
	b.mem.alloc(4 * int64(n))
	return t
}

// newZeroTensor is newTensor with every element zero.
func (b *Backend) newZeroTensor(shape ...int) *Tensor {
	t := b.newTensor(shape...)
	clear(t.data)
	return t
}

// Upload copies host data into a new tensor.
func (b *Backend) Upload(data []float32, shape ...int) nn.Tensor {
	nn.UploadShape("Upload", len(data), shape)
	t := b.newTensor(shape...)
	b.parallelFor(len(data), copyGrain, func(_, lo, hi int) { copy(t.data[lo:hi], data[lo:hi]) })
	return t
}

// UploadWeight wraps data without copying: the caller promises never to
// modify it again (it may be a read-only memory-mapped checkpoint; no op
// writes into its inputs).
func (b *Backend) UploadWeight(data []float32, shape ...int) nn.Tensor {
	nn.UploadShape("UploadWeight", len(data), shape)
	return &Tensor{shape: append([]int(nil), shape...), data: data[:len(data):len(data)]}
}

// Download copies a tensor to host memory.
func (b *Backend) Download(t nn.Tensor) []float32 {
	x := tensor("Download", "t", t)
	out := make([]float32, len(x.data))
	b.parallelFor(len(out), copyGrain, func(_, lo, hi int) { copy(out[lo:hi], x.data[lo:hi]) })
	return out
}

// DownloadInto copies a tensor into dst (nn.IntoDownloader).
func (b *Backend) DownloadInto(dst []float32, t nn.Tensor) {
	x := tensor("DownloadInto", "t", t)
	if len(dst) != len(x.data) {
		nn.Fail("DownloadInto", nn.ErrShape, "%d values for %s", len(dst), nn.ShapeString(x.shape))
	}
	b.parallelFor(len(dst), copyGrain, func(_, lo, hi int) { copy(dst[lo:hi], x.data[lo:hi]) })
}

// Reshape returns a view of t with a new shape and the same element count;
// it shares t's memory (the buffer is recycled only once t and all its
// views are released).
func (b *Backend) Reshape(t nn.Tensor, shape ...int) nn.Tensor {
	x := tensor("Reshape", "t", t)
	nn.ReshapeShape(x.shape, shape)
	v := &Tensor{shape: append([]int(nil), shape...), data: x.data, buf: x.buf}
	v.buf.retain()
	return v
}

// Release marks tensors as no longer used. Their memory goes back to the
// free list once every view of it is released; later use of a released
// tensor fails with ErrTensor. nil tensors and tensors of other backends
// are ignored, and releasing twice is harmless.
func (b *Backend) Release(ts ...nn.Tensor) {
	for _, t := range ts {
		x, ok := t.(*Tensor)
		if !ok || x == nil || !x.released.CompareAndSwap(false, true) {
			continue
		}
		if x.buf != nil && x.buf.release() {
			b.mem.inUse.Add(-4 * int64(len(x.buf.data)))
			if len(x.buf.data) >= minPooled {
				b.pool.put(x.buf)
			}
		}
		x.data, x.buf = nil, nil
	}
}
