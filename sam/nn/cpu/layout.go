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
	d := nn.WindowPartitionShape(xt.shape, win)
	B, H, W, C, nh, nw := d.B, d.H, d.W, d.C, d.NH, d.NW
	out := b.newTensor(d.Windows()...)
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
	d := nn.WindowUnpartitionShape(xt.shape, win, h, w)
	B, C, nh, nw := d.B, d.C, d.NH, d.NW
	out := b.newTensor(d.Map()...)
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
	// b's leading 1s are broadcast: element i of a meets element i mod |b|
	// of b.
	out := b.newTensor(nn.AddShape(at.shape, bt.shape)...)
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
	nn.CheckAct(op, act)
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
	xs := make([]*Tensor, len(ts))
	shapes := make([][]int, len(ts))
	for i, t := range ts {
		xs[i] = tensor(op, "tensor", t)
		shapes[i] = xs[i].shape
	}
	out := b.newTensor(nn.ConcatShape(axis, shapes...)...)
	// View each tensor as (outer, chunk) with outer = Π dims before axis;
	// an output row is the tensors' chunks side by side.
	outer := nn.Numel(out.shape[:axis])
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
	out := b.newTensor(nn.SliceShape(xt.shape, axis, start, end)...)
	dim := xt.shape[axis]
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
	out := b.newTensor(nn.RepeatShape(xt.shape, n)...)
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
	shape, M, N := nn.TransposeShape(xt.shape)
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
