package cpu

import (
	"github.com/samgo/samgo/sam/nn"
)

// Data movement and elementwise ops.

// WindowPartition: x (B, H, W, C) is zero-padded bottom/right to
// Hp×Wp (multiples of win) and cut into win×win windows, row-major →
// (B·nh·nw, win·win, C), nh = Hp/win, nw = Wp/win:
//
//	out[(b·nh + i)·nw + j, p·win + q, c] = x[b, i·win+p, j·win+q, c]  (0 outside x)
func (b *Backend) WindowPartition(x nn.Tensor, win int) nn.Tensor {
	const op = "WindowPartition"
	xt := tensor(op, "x", x)
	checkRank(op, "x", xt, 4)
	if win < 1 {
		nn.Fail(op, nn.ErrShape, "window %d", win)
	}
	B, H, W, C := xt.shape[0], xt.shape[1], xt.shape[2], xt.shape[3]
	nh, nw := (H+win-1)/win, (W+win-1)/win
	out := b.newTensor(B*nh*nw, win*win, C)
	// One index per window row: (b, i, j, p).
	b.parallelFor(B*nh*nw*win, grain(win*C), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			wi, p := r/win, r%win // window index, row within it
			bi, i, j := wi/(nh*nw), wi/nw%nh, wi%nw
			dst := out.data[r*win*C : (r+1)*win*C]
			y := i*win + p
			if y >= H {
				clear(dst)
				continue
			}
			x0 := j * win
			n := min(win, W-x0) // valid columns
			copy(dst[:n*C], xt.data[((bi*H+y)*W+x0)*C:])
			clear(dst[n*C:])
		}
	})
	return out
}

// WindowUnpartition inverts WindowPartition for an h×w map: x (B·nh·nw,
// win·win, C), nh = ⌈h/win⌉, nw = ⌈w/win⌉ → (B, h, w, C), the padding dropped.
func (b *Backend) WindowUnpartition(x nn.Tensor, win, h, w int) nn.Tensor {
	const op = "WindowUnpartition"
	xt := tensor(op, "x", x)
	checkRank(op, "x", xt, 3)
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
	out := b.newTensor(B, h, w, C)
	// One index per output row (b, y).
	b.parallelFor(B*h, grain(w*C), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			bi, y := r/h, r%h
			i, p := y/win, y%win
			for j := range nw {
				n := min(win, w-j*win)
				src := xt.data[(((bi*nh+i)*nw+j)*win*win+p*win)*C:][:n*C]
				copy(out.data[((bi*h+y)*w+j*win)*C:], src)
			}
		}
	})
	return out
}

// Add: a + b, where b has a's shape or a's shape with leading dimensions
// dropped or set to 1; b is broadcast over them.
func (b *Backend) Add(a, bm nn.Tensor) nn.Tensor {
	const op = "Add"
	at, bt := tensor(op, "a", a), tensor(op, "b", bm)
	// b = (1, …, 1, t…) where t is a's trailing dims: b's leading 1s are
	// broadcast, then element i of a meets element i mod |b| of b.
	f := 0
	for f < len(bt.shape) && bt.shape[f] == 1 {
		f++
	}
	off := len(at.shape) - len(bt.shape)
	if off < 0 || !nn.SameShape(bt.shape[f:], at.shape[off+f:]) {
		nn.Fail(op, nn.ErrShape, "b %s does not broadcast to a %s", shapeString(bt.shape), shapeString(at.shape))
	}
	out := b.newTensor(at.shape...)
	inner := len(bt.data)
	if inner == 0 {
		return out
	}
	b.parallelFor(len(at.data), minWork, func(_, lo, hi int) {
		for i := lo; i < hi; {
			j := i % inner
			n := min(hi-i, inner-j)
			ad, od, bd := at.data[i:i+n], out.data[i:i+n], bt.data[j:j+n]
			for t := range od {
				od[t] = ad[t] + bd[t]
			}
			i += n
		}
	})
	return out
}

// Activation applies act elementwise.
func (b *Backend) Activation(x nn.Tensor, act nn.Act) nn.Tensor {
	const op = "Activation"
	xt := tensor(op, "x", x)
	checkAct(op, act)
	out := b.newTensor(xt.shape...)
	b.parallelFor(len(xt.data), grain(actCost(act)), func(_, lo, hi int) {
		copy(out.data[lo:hi], xt.data[lo:hi])
		applyAct(out.data[lo:hi], act)
	})
	return out
}

// Concat joins tensors along axis (0 ≤ axis < rank); all other dims equal.
func (b *Backend) Concat(axis int, ts ...nn.Tensor) nn.Tensor {
	const op = "Concat"
	if len(ts) == 0 {
		nn.Fail(op, nn.ErrShape, "no tensors")
	}
	xs := make([]*Tensor, len(ts))
	for i, t := range ts {
		xs[i] = tensor(op, "tensor", t)
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
	out := b.newTensor(shape...)
	// View each tensor as (outer, chunk) with outer = Π dims before axis;
	// an output row is the tensors' chunks side by side.
	outer := nn.Numel(ref[:axis])
	row := len(out.data) / max(outer, 1)
	b.parallelFor(outer, grain(row), func(_, lo, hi int) {
		for o := lo; o < hi; o++ {
			off := o * row
			for _, x := range xs {
				chunk := len(x.data) / outer
				copy(out.data[off:off+chunk], x.data[o*chunk:(o+1)*chunk])
				off += chunk
			}
		}
	})
	return out
}

// Slice copies x[..., start:end, ...] along axis (0 ≤ start ≤ end ≤ dim).
func (b *Backend) Slice(x nn.Tensor, axis, start, end int) nn.Tensor {
	const op = "Slice"
	xt := tensor(op, "x", x)
	if axis < 0 || axis >= len(xt.shape) {
		nn.Fail(op, nn.ErrShape, "axis %d of %s", axis, shapeString(xt.shape))
	}
	dim := xt.shape[axis]
	if start < 0 || start > end || end > dim {
		nn.Fail(op, nn.ErrShape, "[%d, %d) of axis %d of %s", start, end, axis, shapeString(xt.shape))
	}
	shape := append([]int(nil), xt.shape...)
	shape[axis] = end - start
	out := b.newTensor(shape...)
	outer := nn.Numel(xt.shape[:axis])
	inner := nn.Numel(xt.shape[axis+1:])
	n := (end - start) * inner
	b.parallelFor(outer, grain(n), func(_, lo, hi int) {
		for o := lo; o < hi; o++ {
			copy(out.data[o*n:(o+1)*n], xt.data[(o*dim+start)*inner:])
		}
	})
	return out
}

// Repeat tiles x (1, ...) n times along the leading dim → (n, ...).
func (b *Backend) Repeat(x nn.Tensor, n int) nn.Tensor {
	const op = "Repeat"
	xt := tensor(op, "x", x)
	if len(xt.shape) < 1 || xt.shape[0] != 1 || n < 0 {
		nn.Fail(op, nn.ErrShape, "x %s, n %d: want x (1, ...) and n ≥ 0", shapeString(xt.shape), n)
	}
	shape := append([]int{n}, xt.shape[1:]...)
	out := b.newTensor(shape...)
	m := len(xt.data)
	b.parallelFor(n, grain(m), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(out.data[i*m:(i+1)*m], xt.data)
		}
	})
	return out
}

// Transpose swaps the last two dims: (..., M, N) → (..., N, M).
func (b *Backend) Transpose(x nn.Tensor) nn.Tensor {
	const op = "Transpose"
	xt := tensor(op, "x", x)
	r := len(xt.shape)
	if r < 2 {
		nn.Fail(op, nn.ErrShape, "x %s has fewer than two dims", shapeString(xt.shape))
	}
	M, N := xt.shape[r-2], xt.shape[r-1]
	shape := append([]int(nil), xt.shape...)
	shape[r-2], shape[r-1] = N, M
	out := b.newTensor(shape...)
	if M == 0 || N == 0 {
		return out
	}
	// Tiles of tile×tile keep both the reads and the writes in cache lines.
	const tile = 32
	batches := len(xt.data) / (M * N)
	tm := (M + tile - 1) / tile
	b.parallelFor(batches*tm, grain(tile*N), func(_, lo, hi int) {
		for it := lo; it < hi; it++ {
			bi, i0 := it/tm, it%tm*tile
			src, dst := xt.data[bi*M*N:(bi+1)*M*N], out.data[bi*M*N:(bi+1)*M*N]
			for j0 := 0; j0 < N; j0 += tile {
				for i := i0; i < min(i0+tile, M); i++ {
					for j := j0; j < min(j0+tile, N); j++ {
						dst[j*M+i] = src[i*N+j]
					}
				}
			}
		}
	})
	return out
}
