package cpu

import (
	"math"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu/sgemm"
)

// Attention, blockwise: the work is cut into items (batch, head, block of
// query rows) that run in parallel. For an item with query rows [r0, r1):
//
//	S    = q[r0:r1]·kᵀ·(1/√d)                         (rows × Nk, GemmSerial)
//	S   += rel_h[:, kh] + rel_w[:, kw] at key kh·QW+kw (if rel != nil)
//	P    = exp(S − rowmax(S))                          (float32, expf)
//	out  = (P·v) / rowsum(P)                           (GemmSerial)
//
// which equals softmax(q·kᵀ/√d + bias)·v; normalising the dv outputs of a
// row instead of its Nk probabilities is the same number up to rounding and
// cheaper. Memory is one rows × Nk block per worker, never Nq × Nk for all
// heads.
//
// The relative-position terms come from two more small products per item:
// Ph = q[r0:r1]·Hᵀ (rows × (2QH−1)) and Pw = q[r0:r1]·Wᵀ (rows × (2QW−1)),
// with the unscaled q; then for query n = qh·QW + qw,
// rel_h[n, kh] = Ph[n, qh − kh + QH − 1] and rel_w[n, kw] =
// Pw[n, qw − kw + QW − 1]. That is about twice the multiply-adds of the
// QH + QW dot products a row needs, but at GEMM speed, and it works for any
// block of rows.

// attnBlockFloats is the target size of a worker's logits block (rows × Nk
// float32s): 2 MB, so that the block stays in the larger caches across its
// three passes (product, softmax, product) while each product is still
// long enough for GemmSerial's packing to pay off.
const attnBlockFloats = 1 << 19

// qkvView locates one of q, k, v in memory: element (b, n, h, c) is
// data[off + (b·N + n)·row + h·hd + c] for N tokens and head width hd.
type qkvView struct {
	data []float32
	off  int // offset of the first element
	row  int // stride between tokens
}

// Attention: q (B, Nq, heads·d), k (B, Nk, heads·d), v (B, Nk, heads·dv) →
// (B, Nq, heads·dv) = per head softmax(q·kᵀ/√d + bias)·v, heads split as
// contiguous channel chunks, bias the decomposed relative-position term when
// rel != nil.
func (b *Backend) Attention(q, k, v nn.Tensor, heads int, rel *nn.RelPos) nn.Tensor {
	const op = "Attention"
	qt, kt, vt := tensor(op, "q", q), tensor(op, "k", k), tensor(op, "v", v)
	B, Nq, Nk, d, dv := nn.AttentionShape(qt.shape, kt.shape, vt.shape, heads)
	Cq, Cv := heads*d, heads*dv
	relH, relW := relTables(op, rel, Nq, Nk, d)
	out := b.newTensor(B, Nq, Cv)
	b.attention(B, Nq, Nk, heads, d, dv,
		qkvView{qt.data, 0, Cq}, qkvView{kt.data, 0, Cq}, qkvView{vt.data, 0, Cv},
		rel, relH, relW, nil, 0, out.data)
	return out
}

// AttentionQKV is Attention on a packed projection qkv (B, N, 3·heads·d)
// whose channels are [q | k | v]; q, k and v are read in place.
func (b *Backend) AttentionQKV(qkv nn.Tensor, heads int, rel *nn.RelPos) nn.Tensor {
	const op = "AttentionQKV"
	x := tensor(op, "qkv", qkv)
	B, N, d := nn.AttentionQKVShape(x.shape, heads)
	C := heads * d // (B, N, 3·C): [q | k | v]
	C3 := 3 * C
	relH, relW := relTables(op, rel, N, N, d)
	out := b.newTensor(B, N, C)
	b.attention(B, N, N, heads, d, d,
		qkvView{x.data, 0, C3}, qkvView{x.data, C, C3}, qkvView{x.data, 2 * C, C3},
		rel, relH, relW, nil, 0, out.data)
	return out
}

// AttentionQKVBias is AttentionQKV with TinyViT's offset bias: the logit of
// query (iy, ix) and key (jy, jx) of a WS×WS window gains
// Table[h, |iy−jy|·WS + |ix−jx|] after the scale.
func (b *Backend) AttentionQKVBias(qkv nn.Tensor, heads int, bias *nn.OffsetBias) nn.Tensor {
	const op = "AttentionQKVBias"
	x := tensor(op, "qkv", qkv)
	B, N, d := nn.AttentionQKVShape(x.shape, heads)
	if bias == nil {
		nn.Fail(op, nn.ErrShape, "nil bias")
	}
	tab := tensor(op, "bias.Table", bias.Table)
	nn.OffsetBiasShape(op, bias, tab.shape, N, heads)
	C := heads * d
	C3 := 3 * C
	out := b.newTensor(B, N, C)
	b.attention(B, N, N, heads, d, d,
		qkvView{x.data, 0, C3}, qkvView{x.data, C, C3}, qkvView{x.data, 2 * C, C3},
		nil, nil, nil, tab.data, bias.WS, out.data)
	return out
}

// relTables validates rel against Nq = Nk = QH·QW and head dim d
// (nn.RelPosShape) and returns its tables (nil, nil without rel).
func relTables(op string, rel *nn.RelPos, Nq, Nk, d int) (h, w []float32) {
	if rel == nil {
		return nil, nil
	}
	ht, wt := tensor(op, "rel.H", rel.H), tensor(op, "rel.W", rel.W)
	nn.RelPosShape(op, rel, ht.shape, wt.shape, Nq, Nk, d)
	return ht.data, wt.data
}

// attention runs the blockwise algorithm above; out is (B, Nq, heads·dv).
// tab (heads, ws·ws), when not nil, is an offset bias (AttentionQKVBias).
func (b *Backend) attention(B, Nq, Nk, heads, d, dv int, q, k, v qkvView, rel *nn.RelPos, relH, relW []float32, tab []float32, ws int, out []float32) {
	if B == 0 || Nq == 0 {
		return
	}
	if Nk == 0 { // torch: softmax over no keys is empty, and empty·v is 0
		clear(out)
		return
	}
	rows := min(Nq, max(16, attnBlockFloats/Nk), 512)
	// Enough items for every thread (and some balance) when the batch and
	// the heads alone do not provide them.
	for rows > 16 && B*heads*((Nq+rows-1)/rows) < 4*b.threads {
		rows = (rows + 1) / 2
	}
	blocks := (Nq + rows - 1) / rows
	items := B * heads * blocks
	scale := float32(1 / math.Sqrt(float64(d)))
	Cout := heads * dv

	var nh, nw int // rel-pos table rows
	if rel != nil {
		nh, nw = 2*rel.QH-1, 2*rel.QW-1
	}
	// Per-worker scratch: the logits block s (rows × Nk), the rows'
	// 1/Σexp, and with rel-pos ph (rows × nh), pw (rows × nw) and rw.
	workers := make([]*attnScratch, b.threads)
	cost := 2*rows*Nk*(d+dv) + 20*rows*Nk
	b.parallelFor(items, grain(cost), func(w, lo, hi int) {
		sc := workers[w]
		if sc == nil {
			sc = &attnScratch{
				s: make([]float32, rows*Nk), inv: make([]float32, rows),
				ph: make([]float32, rows*nh), pw: make([]float32, rows*nw), rw: make([]float32, nw),
			}
			workers[w] = sc
		}
		for it := lo; it < hi; it++ {
			bi, h, blk := it/(heads*blocks), it/blocks%heads, it%blocks
			r0 := blk * rows
			n := min(rows, Nq-r0)
			s, inv := sc.s[:n*Nk], sc.inv[:n]

			qa := q.data[q.off+(bi*Nq+r0)*q.row+h*d:] // (n, d), stride q.row
			ka := k.data[k.off+bi*Nk*k.row+h*d:]      // (Nk, d), stride k.row
			va := v.data[v.off+bi*Nk*v.row+h*dv:]     // (Nk, dv), stride v.row
			// The head's keys (as kᵀ, d×Nk) and values (Nk×dv) are
			// packed once for the consecutive row blocks of one head that
			// a worker's range of items holds (in bf16 on a bf16 backend,
			// where the products round the queries and probabilities).
			if head := bi*heads + h + 1; sc.packed != head {
				if b.bf16 {
					sc.pk.Pack(true, d, Nk, ka, k.row)
					sc.pv.Pack(false, Nk, dv, va, v.row)
				} else {
					sc.fk.Pack(true, d, Nk, ka, k.row)
					sc.fv.Pack(false, Nk, dv, va, v.row)
				}
				sc.packed = head
			}
			if b.bf16 {
				sgemm.GemmBF16Serial(n, scale, qa, q.row, &sc.pk, 0, s, Nk)
			} else {
				sgemm.GemmPackedSerial(n, scale, qa, q.row, &sc.fk, 0, s, Nk)
			}
			if rel != nil {
				QH, QW := rel.QH, rel.QW
				ph, pw := sc.ph[:n*nh], sc.pw[:n*nw]
				sgemm.GemmSerial(false, true, n, nh, d, 1, qa, q.row, relH, d, 0, ph, nh)
				sgemm.GemmSerial(false, true, n, nw, d, 1, qa, q.row, relW, d, 0, pw, nw)
				for i := range n {
					qh, qw := (r0+i)/QW, (r0+i)%QW
					row := s[i*Nk : (i+1)*Nk]
					m := addRelPos(row, QH, QW, ph[i*nh+qh:][:QH], pw[i*nw+qw:][:QW], sc.rw[:QW])
					inv[i] = expRow(row, m)
				}
			} else if tab != nil {
				th := tab[h*ws*ws : (h+1)*ws*ws]
				for i := range n {
					row := s[i*Nk : (i+1)*Nk]
					inv[i] = expRow(row, addOffsetBias(row, (r0+i)/ws, (r0+i)%ws, ws, th))
				}
			} else {
				for i := range n {
					row := s[i*Nk : (i+1)*Nk]
					inv[i] = expRow(row, rowMax(row))
				}
			}
			o := out[(bi*Nq+r0)*Cout+h*dv:] // (n, dv), stride Cout
			if b.bf16 {
				sgemm.GemmBF16Serial(n, 1, s, Nk, &sc.pv, 0, o, Cout)
			} else {
				sgemm.GemmPackedSerial(n, 1, s, Nk, &sc.fv, 0, o, Cout)
			}
			for i := range n {
				row := o[i*Cout : i*Cout+dv]
				for j := range row {
					row[j] *= inv[i]
				}
			}
		}
	})
}

// attnScratch is one worker's memory for attention.
type attnScratch struct {
	s, inv, ph, pw, rw []float32
	// The packed keys and values of head packed−1 (of b·heads + h; 0:
	// none yet): pk, pv in bf16, else fk, fv.
	pk, pv sgemm.PackedBF16
	fk, fv sgemm.PackedF32
	packed int
}

// addRelPos adds the decomposed relative-position bias to the logits row
// of query (qh, qw) (Nk = QH·QW keys) and returns the row's new maximum:
//
//	row[kh·QW+kw] += rel_h[kh] + rel_w[kw]
//	rel_h[kh] = q·H[qh−kh+QH−1] = ph[QH−1−kh],  rel_w[kw] = q·W[qw−kw+QW−1] = pw[QW−1−kw]
//
// where ph = (q·H[j])_{j=qh…qh+QH−1} and pw likewise, in the order
// (s + rel_h) + rel_w that segment_anything's add_decomposed_rel_pos adds
// them. rw is scratch for QW values.
func addRelPos(row []float32, QH, QW int, ph, pw, rw []float32) float32 {
	for kw := range rw {
		rw[kw] = pw[QW-1-kw]
	}
	if haveAVX512 && QH > 0 && QW > 0 {
		_, _ = row[QH*QW-1], ph[QH-1]
		return addRelPosAVX512(&row[0], &ph[0], &rw[0], QH, QW)
	}
	return addRelPosGo(row, QH, QW, ph, rw)
}

// addRelPosGo is addRelPos's loops in Go.
func addRelPosGo(row []float32, QH, QW int, ph, rw []float32) float32 {
	m := float32(math.Inf(-1))
	for kh := range QH {
		bh := ph[QH-1-kh]
		seg := row[kh*QW:][:len(rw)] // same length as rw: no bounds checks below
		for kw, w := range rw {
			v := seg[kw] + bh + w
			seg[kw] = v
			if v > m {
				m = v
			}
		}
	}
	return m
}

// addOffsetBias adds TinyViT's offset bias to the logits row of query
// (iy, ix) of a ws×ws window, row[jy·ws+jx] += th[|iy−jy|·ws + |ix−jx|],
// and returns the row's new maximum.
func addOffsetBias(row []float32, iy, ix, ws int, th []float32) float32 {
	m := float32(math.Inf(-1))
	for jy := range ws {
		dy := iy - jy
		if dy < 0 {
			dy = -dy
		}
		seg := row[jy*ws : (jy+1)*ws]
		for jx := range seg {
			dx := ix - jx
			if dx < 0 {
				dx = -dx
			}
			v := seg[jx] + th[dy*ws+dx]
			seg[jx] = v
			if v > m {
				m = v
			}
		}
	}
	return m
}

// rowMax returns the largest value of a non-empty row.
func rowMax(row []float32) float32 {
	m := row[0]
	for _, v := range row[1:] {
		if v > m {
			m = v
		}
	}
	return m
}

// expRow replaces the logits s by exp(s − m) (m their maximum) and returns
// 1/Σ exp(s − m), the sum accumulated in float64: the softmax's
// numerators and normaliser (expSubSum: AVX-512 or AVX2 where the CPU has them).
func expRow(s []float32, m float32) float32 { return float32(1 / expSubSum(s, m)) }

// expSubSumGo is expSubSum in Go, with expPoly.
func expSubSumGo(s []float32, m float32) float64 {
	// Two elements per step with two partial sums: the additions form
	// two dependency chains instead of one.
	var sum0, sum1 float64
	j := 0
	for ; j+2 <= len(s); j += 2 {
		p := s[j : j+2 : j+2]
		// exp(v − m) for v ≤ m needs only the lower clamp of expf (NaN
		// logits give NaN: the comparison fails).
		x0, x1 := float64(p[0]-m), float64(p[1]-m)
		if x0 < -104 {
			x0 = -104
		}
		if x1 < -104 {
			x1 = -104
		}
		e0, e1 := float32(expPoly(x0)), float32(expPoly(x1))
		p[0], p[1] = e0, e1
		sum0 += float64(e0)
		sum1 += float64(e1)
	}
	if j < len(s) {
		e := expf(s[j] - m)
		s[j] = e
		sum0 += float64(e)
	}
	return sum0 + sum1
}
