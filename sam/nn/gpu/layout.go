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
	c.checkRank("x", xt, 4)
	if win < 1 {
		nn.Fail(op, nn.ErrShape, "window %d", win)
	}
	B, H, W, C := xt.shape[0], xt.shape[1], xt.shape[2], xt.shape[3]
	nh, nw := (H+win-1)/win, (W+win-1)/win
	out := c.out(B*nh*nw, win*win, C)
	if out.numel() == 0 {
		return out
	}
	c.check(bindings.Window(&bindings.WindowParams{
		DType: b.dtype, In: xt.ptr(), Out: out.ptr(), Batch: B, H: H, W: W, C: C, Win: win,
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
	c.checkRank("x", xt, 3)
	if win < 1 || h < 1 || w < 1 {
		nn.Fail(op, nn.ErrShape, "window %d, map %dx%d", win, h, w)
	}
	nh, nw := (h+win-1)/win, (w+win-1)/win
	C := xt.shape[2]
	if xt.shape[1] != win*win || xt.shape[0]%(nh*nw) != 0 {
		nn.Fail(op, nn.ErrShape, "x %s: want (B·%d, %d, C) for window %d of a %dx%d map",
			shapeString(xt.shape), nh*nw, win*win, win, h, w)
	}
	B := xt.shape[0] / (nh * nw)
	out := c.out(B, h, w, C)
	if out.numel() == 0 {
		return out
	}
	c.check(bindings.Window(&bindings.WindowParams{
		DType: b.dtype, In: xt.ptr(), Out: out.ptr(), Batch: B, H: h, W: w, C: C, Win: win, Reverse: true,
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
	f := 0
	for f < len(bt.shape) && bt.shape[f] == 1 {
		f++
	}
	off := len(at.shape) - len(bt.shape)
	if off < 0 || !nn.SameShape(bt.shape[f:], at.shape[off+f:]) {
		nn.Fail(op, nn.ErrShape, "b %s does not broadcast to a %s", shapeString(bt.shape), shapeString(at.shape))
	}
	out := c.out(at.shape...)
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
	if len(ts) == 0 {
		nn.Fail(op, nn.ErrShape, "no tensors")
	}
	xs := make([]*Tensor, len(ts))
	for i, t := range ts {
		xs[i] = c.input("tensor", t)
	}
	ref := xs[0].shape
	if axis < 0 || axis >= len(ref) {
		nn.Fail(op, nn.ErrShape, "axis %d of a rank-%d tensor", axis, len(ref))
	}
	shape := append([]int(nil), ref...)
	shape[axis] = 0
	for _, x := range xs {
		if len(x.shape) != len(ref) {
			nn.Fail(op, nn.ErrShape, "ranks differ: %s and %s", shapeString(ref), shapeString(x.shape))
		}
		for d := range ref {
			if d != axis && x.shape[d] != ref[d] {
				nn.Fail(op, nn.ErrShape, "shapes %s and %s differ outside axis %d", shapeString(ref), shapeString(x.shape), axis)
			}
		}
		shape[axis] += x.shape[axis]
	}
	out := c.out(shape...)
	outer := nn.Numel(ref[:axis])
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
	if axis < 0 || axis >= len(xt.shape) {
		nn.Fail(op, nn.ErrShape, "axis %d of %s", axis, shapeString(xt.shape))
	}
	dim := xt.shape[axis]
	if start < 0 || start > end || end > dim {
		nn.Fail(op, nn.ErrShape, "[%d, %d) of axis %d of %s", start, end, axis, shapeString(xt.shape))
	}
	shape := append([]int(nil), xt.shape...)
	shape[axis] = end - start
	out := c.newTensor(xt.dtype, shape...)
	if out.numel() == 0 {
		return out
	}
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
	if len(xt.shape) < 1 || xt.shape[0] != 1 || n < 0 {
		nn.Fail(op, nn.ErrShape, "x %s, n %d: want x (1, ...) and n ≥ 0", shapeString(xt.shape), n)
	}
	out := c.newTensor(xt.dtype, append([]int{n}, xt.shape[1:]...)...)
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
	r := len(xt.shape)
	if r < 2 {
		nn.Fail(op, nn.ErrShape, "x %s has fewer than two dims", shapeString(xt.shape))
	}
	M, N := xt.shape[r-2], xt.shape[r-1]
	shape := append([]int(nil), xt.shape...)
	shape[r-2], shape[r-1] = N, M
	out := c.out(shape...)
	if out.numel() == 0 {
		return out
	}
	c.check(bindings.Transpose(b.dtype, xt.ptr(), out.ptr(), xt.numel()/(M*N), M, N, c.s))
	return out
}
