//go:build cuda

package gpu

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/samgo/samgo/bindings"
	"github.com/samgo/samgo/cuda"
	"github.com/samgo/samgo/sam/nn"
)

// Tensor is a dense row-major array in device memory: float32 or bfloat16.
type Tensor struct {
	shape []int
	dtype bindings.DType
	dev   int
	buf   *devBuf // nil for a tensor without elements
	// released is set by Release; a second Release is a no-op.
	released atomic.Bool
}

var _ nn.Tensor = (*Tensor)(nil)

// devBuf is a pool allocation shared by a tensor and its Reshape views;
// it goes back to its pool when the last of them is released.
type devBuf struct {
	mem  cuda.Buffer
	pool *cuda.Pool
	refs atomic.Int32
}

// Shape returns the dimensions; callers must not modify the slice.
func (t *Tensor) Shape() []int { return t.shape }

// DType returns the element type (bindings.F32 or bindings.BF16).
func (t *Tensor) DType() bindings.DType { return t.dtype }

func (t *Tensor) String() string {
	return fmt.Sprintf("gpu.Tensor%s %s cuda:%d", nn.ShapeString(t.shape), t.dtype, t.dev)
}

// ptr returns the device address of element 0 (nil without elements).
func (t *Tensor) ptr() unsafe.Pointer {
	if t.buf == nil {
		return nil
	}
	return t.buf.mem.Ptr()
}

// at returns the address of element i.
func (t *Tensor) at(i int64) unsafe.Pointer {
	return unsafe.Add(t.ptr(), i*t.dtype.Size())
}

func (t *Tensor) numel() int { return nn.Numel(t.shape) }

// tensor unwraps an argument, failing with ErrTensor on nil, foreign,
// other-device and released tensors. Its dtype may differ from the
// backend's (see input).
func (c *call) tensor(name string, t nn.Tensor) *Tensor {
	gt, ok := t.(*Tensor)
	if !ok || gt == nil {
		if t == nil || ok {
			nn.Fail(c.op, ErrTensor, "%s is nil", name)
		}
		nn.Fail(c.op, ErrTensor, "%s is a %T, not a tensor of the cuda backend", name, t)
	}
	if gt.released.Load() {
		nn.Fail(c.op, ErrTensor, "%s %s used after Release", name, nn.ShapeString(gt.shape))
	}
	if gt.dev != c.b.dev {
		nn.Fail(c.op, ErrTensor, "%s lives on cuda:%d, the backend on cuda:%d", name, gt.dev, c.b.dev)
	}
	return gt
}

// input is tensor converted to the backend's precision: a float32 tensor
// given to a bf16 backend (UpscaleMasks' output, say) is converted into a
// temporary for the op, and vice versa.
func (c *call) input(name string, t nn.Tensor) *Tensor {
	x := c.tensor(name, t)
	if x.dtype == c.b.dtype {
		return x
	}
	y := c.b.alloc(c.op, c.b.dtype, x.shape)
	c.temps = append(c.temps, y)
	if n := x.numel(); n > 0 {
		c.check(bindings.Convert(x.ptr(), x.dtype, y.ptr(), y.dtype, int64(n), c.s))
	}
	return y
}

// optInput is input for optional arguments: nil stays nil.
func (c *call) optInput(name string, t nn.Tensor) *Tensor {
	if t == nil {
		return nil
	}
	if gt, ok := t.(*Tensor); ok && gt == nil {
		return nil
	}
	return c.input(name, t)
}

// optPtr returns t's address, nil for a nil tensor.
func optPtr(t *Tensor) unsafe.Pointer {
	if t == nil {
		return nil
	}
	return t.ptr()
}

// newTensor allocates a result of the op; its contents are undefined.
func (c *call) newTensor(dtype bindings.DType, shape ...int) *Tensor {
	t := c.b.alloc(c.op, dtype, shape)
	c.outs = append(c.outs, t)
	return t
}

// out allocates a result in the backend's precision.
func (c *call) out(shape ...int) *Tensor { return c.newTensor(c.b.dtype, shape...) }

// alloc allocates a tensor from the pool, failing op with an error that
// wraps nn.ErrOutOfMemory when the device is full.
func (b *Backend) alloc(op string, dtype bindings.DType, shape []int) *Tensor {
	nn.CheckDims(op, shape)
	t := &Tensor{shape: append([]int(nil), shape...), dtype: dtype, dev: b.dev}
	n := int64(nn.Numel(shape)) * dtype.Size()
	if n == 0 {
		return t
	}
	mem, err := b.pool.Alloc(n)
	if err != nil {
		nn.Fail(op, err, "%s tensor %s", dtype, nn.ShapeString(shape))
	}
	t.buf = &devBuf{mem: mem, pool: b.pool}
	t.buf.refs.Store(1)
	return t
}

// Upload copies host data into a new tensor, converting it to bfloat16 on
// the device in bf16 mode. The copy is asynchronous: data may be reused as
// soon as Upload returns.
func (b *Backend) Upload(data []float32, shape ...int) nn.Tensor {
	return b.upload("Upload", data, shape)
}

// UploadWeight is Upload (device memory is always a copy).
func (b *Backend) UploadWeight(data []float32, shape ...int) nn.Tensor {
	return b.upload("UploadWeight", data, shape)
}

func (b *Backend) upload(op string, data []float32, shape []int) nn.Tensor {
	c := b.begin(op)
	defer c.end()
	nn.UploadShape(op, len(data), shape)
	t := c.out(shape...)
	n := len(data)
	if n == 0 {
		return t
	}
	dst := t.ptr()
	if t.dtype != bindings.F32 {
		dst = c.scratchBytes(4 * int64(n))
	}
	c.check(b.stage.upload(dst, data, b.stream))
	if t.dtype != bindings.F32 {
		c.check(bindings.Convert(dst, bindings.F32, t.ptr(), t.dtype, int64(n), c.s))
	}
	return t
}

// Download copies a tensor to host memory as float32. It waits for the
// stream, so errors of earlier asynchronous work surface here.
func (b *Backend) Download(t nn.Tensor) []float32 {
	c := b.begin("Download")
	defer c.end()
	x := c.tensor("t", t)
	out := make([]float32, x.numel())
	c.download(out, x)
	return out
}

// DownloadInto is Download into dst, which must hold t's elements
// (nn.IntoDownloader).
func (b *Backend) DownloadInto(dst []float32, t nn.Tensor) {
	c := b.begin("DownloadInto")
	defer c.end()
	x := c.tensor("t", t)
	if len(dst) != x.numel() {
		nn.Fail(c.op, nn.ErrShape, "%d values for %s", len(dst), nn.ShapeString(x.shape))
	}
	c.download(dst, x)
}

// download copies x to dst as float32 (converted on the device from bf16)
// and waits.
func (c *call) download(dst []float32, x *Tensor) {
	n := x.numel()
	if n == 0 {
		return
	}
	src := x.ptr()
	if x.dtype != bindings.F32 {
		src = c.scratchBytes(4 * int64(n))
		c.check(bindings.Convert(x.ptr(), x.dtype, src, bindings.F32, int64(n), c.s))
	}
	c.check(c.b.stage.download(asBytes(dst), src, c.b.stream))
}

// Reshape returns a view of t with a new shape and the same element count,
// sharing t's memory (freed once t and all its views are released).
func (b *Backend) Reshape(t nn.Tensor, shape ...int) nn.Tensor {
	const op = "Reshape"
	c := b.begin(op)
	defer c.end()
	x := c.tensor("t", t)
	nn.ReshapeShape(x.shape, shape)
	v := &Tensor{shape: append([]int(nil), shape...), dtype: x.dtype, dev: x.dev, buf: x.buf}
	if v.buf != nil {
		v.buf.refs.Add(1)
	}
	return v
}

// Release marks tensors as no longer used; their memory returns to the
// pool once every view of it is released (it may be reused by the next op
// at once: the stream runs ops in order). Later use of a released tensor
// fails with ErrTensor. nil tensors and tensors of other backends are
// ignored, and releasing twice is harmless.
func (b *Backend) Release(ts ...nn.Tensor) {
	for _, t := range ts {
		if x, ok := t.(*Tensor); ok && x != nil {
			b.releaseTensor(x)
		}
	}
}

func (b *Backend) releaseTensor(x *Tensor) {
	if !x.released.CompareAndSwap(false, true) {
		return
	}
	if u := x.buf; u != nil && u.refs.Add(-1) == 0 {
		u.pool.Free(u.mem) // a no-op once the pool is closed
	}
}

// staging is a pair of pinned host buffers for transfers: an upload copies
// a piece of Go memory into one buffer and queues its copy to the device,
// then fills the other while the first copy runs; each buffer's event says
// when its last copy has finished. Downloads go through the first buffer
// and wait for the stream. All copies run on the backend's stream, so a
// download can never overtake an upload that still reads a buffer.
type staging struct {
	bufs   [2]*cuda.HostBuffer
	events [2]*cuda.Event
	queued [2]bool // a copy from the buffer may still be running
	next   int
}

func newStaging(dev int, size int64) (s *staging, err error) {
	s = &staging{}
	defer func() {
		if err != nil {
			s.free()
		}
	}()
	for i := range s.bufs {
		if s.bufs[i], err = cuda.MallocHost(size); err != nil {
			return nil, err
		}
		if s.events[i], err = cuda.NewEvent(dev, false); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *staging) free() error {
	var first error
	for i := range s.bufs {
		if err := s.events[i].Destroy(); err != nil && first == nil {
			first = err
		}
		if err := s.bufs[i].Free(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func asBytes(d []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), 4*len(d))
}

// upload queues the copy of src to dst (device memory, 4·len(src) bytes).
func (s *staging) upload(dst unsafe.Pointer, src []float32, st *cuda.Stream) error {
	data := asBytes(src)
	size := s.bufs[0].Len()
	for off := int64(0); off < int64(len(data)); off += size {
		i := s.next
		s.next ^= 1
		if s.queued[i] {
			if err := s.events[i].Synchronize(); err != nil {
				return err
			}
			s.queued[i] = false
		}
		n := min(size, int64(len(data))-off)
		copy(s.bufs[i].Bytes()[:n], data[off:off+n])
		if err := cuda.MemcpyAsync(unsafe.Add(dst, off), s.bufs[i].Ptr(), n, cuda.HostToDevice, st); err != nil {
			return err
		}
		if err := s.events[i].Record(st); err != nil {
			return err
		}
		s.queued[i] = true
	}
	return nil
}

// download copies src (device memory, len(data) bytes) into data and waits.
func (s *staging) download(data []byte, src unsafe.Pointer, st *cuda.Stream) error {
	size := s.bufs[0].Len()
	for off := int64(0); off < int64(len(data)); off += size {
		n := min(size, int64(len(data))-off)
		if err := cuda.MemcpyAsync(s.bufs[0].Ptr(), unsafe.Add(src, off), n, cuda.DeviceToHost, st); err != nil {
			return err
		}
		if err := st.Synchronize(); err != nil {
			return err
		}
		s.queued = [2]bool{} // the stream is idle: every upload is done
		copy(data[off:off+n], s.bufs[0].Bytes()[:n])
	}
	return nil
}
