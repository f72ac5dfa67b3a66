//go:build cuda

package gpu

import (
	"unsafe"

	"github.com/samgo/samgo/bindings"
	"github.com/samgo/samgo/cuda"
	"github.com/samgo/samgo/sam/nn"
)

// Data movement and elementwise ops.

// WindowPartition: x (B, H, W, C), zero-padded bottom/right to multiples of
// win, cut into win×win windows row-major → (B·nh·nw, win·win, C):
// samk_window.
func (b *Backend) WindowPartition(x nn.Tensor, win int) nn.Tensor {
	const op = "WindowPartition"
	c := b.begin(op)
	defer c.end()
	xt := c.input("x", x)
	d := nn.WindowPartitionShape(xt.shape, win)
	out := c.out(d.Windows()...)
	if out.numel() == 0 {
		return out
	}
	c.check(bindings.Window(&bindings.WindowParams{
		DType: b.dtype, In: xt.ptr(), Out: out.ptr(), Batch: d.B, H: d.H, W: d.W, C: d.C, Win: win,
	}, c.s))
	return out
}

// WindowUnpartition inverts WindowPartition for an h×w map: x (B·nh·nw,
// win·win, C) → (B, h, w, C), the padding dropped: samk_window reversed.
func (b *Backend) WindowUnpartition(x nn.Tensor, win, h, w int) nn.Tensor {
	const op = "WindowUnpartition"
	c := b.begin(op)
	defer c.end()
	xt := c.input("x", x)
	d := nn.WindowUnpartitionShape(xt.shape, win, h, w)
	out := c.out(d.Map()...)
	if out.numel() == 0 {
		return out
	}
	c.check(bindings.Window(&bindings.WindowParams{
		DType: b.dtype, In: xt.ptr(), Out: out.ptr(), Batch: d.B, H: h, W: w, C: d.C, Win: win, Reverse: true,
	}, c.s))
	return out
}

// Add: a + b, where b has a's shape or a's shape with leading dimensions
// dropped or set to 1 (broadcast): samk_add with out[i] = a[i] + b[i mod |b|].
func (b *Backend) Add(a, bm nn.Tensor) nn.Tensor {
	const op = "Add"
	c := b.begin(op)
	defer c.end()
	at, bt := c.input("a", a), c.input("b", bm)
	out := c.out(nn.AddShape(at.shape, bt.shape)...)
	n, nb := at.numel(), bt.numel()
	if n == 0 || nb == 0 {
		return out
	}
	c.check(bindings.Add(b.dtype, at.ptr(), bt.ptr(), out.ptr(), int64(n), int64(nb), c.s))
	return out
}

// Activation applies act elementwise: a copy, then samk_bias_act in place.
func (b *Backend) Activation(x nn.Tensor, act nn.Act) nn.Tensor {
	const op = "Activation"
	c := b.begin(op)
	defer c.end()
	xt := c.input("x", x)
	ka := c.kernelAct(act)
	out := c.out(xt.shape...)
	n := xt.numel()
	if n == 0 {
		return out
	}
	c.check(cuda.MemcpyAsync(out.ptr(), xt.ptr(), int64(n)*b.dtype.Size(), cuda.DeviceToDevice, b.stream))
	c.actInPlace(out, ka)
	return out
}

// actInPlace applies act to every element of t.
func (c *call) actInPlace(t *Tensor, act bindings.Act) {
	n := t.numel()
	if n == 0 || act == bindings.ActNone {
		return
	}
	cols := 1
	if len(t.shape) > 0 {
		cols = t.shape[len(t.shape)-1]
	}
	if cols > 1<<24 { // keep the kernel's column count an ordinary int
		cols = 1
	}
	c.check(bindings.BiasAct(c.b.dtype, t.ptr(), nil, int64(n/cols), cols, act, c.s))
}

// Concat joins tensors along axis; all other dims equal. Viewing each
// input as (outer, chunk) with outer the product of the dims before axis,
// each is one cudaMemcpy2DAsync into its columns of the (outer, row) output.
func (b *Backend) Concat(axis int, ts ...nn.Tensor) nn.Tensor {
	const op = "Concat"
	c := b.begin(op)
	defer c.end()
	xs := make([]*Tensor, len(ts))
	shapes := make([][]int, len(ts))
	for i, t := range ts {
		xs[i] = c.input("tensor", t)
		shapes[i] = xs[i].shape
	}
	out := c.out(nn.ConcatShape(axis, shapes...)...)
	outer := nn.Numel(out.shape[:axis])
	if out.numel() == 0 || outer == 0 {
		return out
	}
	es := b.dtype.Size()
	row := int64(out.numel()/outer) * es
	var off int64
	for _, x := range xs {
		chunk := int64(x.numel()/outer) * es
		c.copy2D(unsafe.Add(out.ptr(), off), row, x.ptr(), chunk, chunk, int64(outer))
		off += chunk
	}
	return out
}

// Slice copies x[..., start:end, ...] along axis: one cudaMemcpy2DAsync of
// outer rows.
func (b *Backend) Slice(x nn.Tensor, axis, start, end int) nn.Tensor {
	const op = "Slice"
	c := b.begin(op)
	defer c.end()
	xt := c.tensor("x", x) // any precision: a copy keeps it
	out := c.newTensor(xt.dtype, nn.SliceShape(xt.shape, axis, start, end)...)
	if out.numel() == 0 {
		return out
	}
	dim := xt.shape[axis]
	es := xt.dtype.Size()
	outer := int64(nn.Numel(xt.shape[:axis]))
	inner := int64(nn.Numel(xt.shape[axis+1:]))
	n := int64(end-start) * inner * es
	c.copy2D(out.ptr(), n, xt.at(int64(start)*inner), int64(dim)*inner*es, n, outer)
	return out
}

// Repeat tiles x (1, ...) n times along the leading dim → (n, ...): one
// copy, then copies that double the filled part.
func (b *Backend) Repeat(x nn.Tensor, n int) nn.Tensor {
	const op = "Repeat"
	c := b.begin(op)
	defer c.end()
	xt := c.tensor("x", x)
	out := c.newTensor(xt.dtype, nn.RepeatShape(xt.shape, n)...)
	m := int64(xt.numel()) * xt.dtype.Size()
	if n == 0 || m == 0 {
		return out
	}
	c.check(cuda.MemcpyAsync(out.ptr(), xt.ptr(), m, cuda.DeviceToDevice, b.stream))
	for have := int64(1); have < int64(n); {
		k := min(have, int64(n)-have)
		c.check(cuda.MemcpyAsync(unsafe.Add(out.ptr(), have*m), out.ptr(), k*m, cuda.DeviceToDevice, b.stream))
		have += k
	}
	return out
}

// Transpose swaps the last two dims: (..., M, N) → (..., N, M):
// samk_transpose.
func (b *Backend) Transpose(x nn.Tensor) nn.Tensor {
	const op = "Transpose"
	c := b.begin(op)
	defer c.end()
	xt := c.input("x", x)
	shape, M, N := nn.TransposeShape(xt.shape)
	out := c.out(shape...)
	if out.numel() == 0 {
		return out
	}
	c.check(bindings.Transpose(b.dtype, xt.ptr(), out.ptr(), xt.numel()/(M*N), M, N, c.s))
	return out
}
