//go:build cuda

package gpu

import (
	"math"
	"unsafe"

	"github.com/samgo/samgo/bindings"
	"github.com/samgo/samgo/sam/nn"
)

// attnPadDims are the head dims a head is zero-padded to when
// samk_attention has no kernel for it (bindings.AttentionSupports: e.g. 12,
// or d ≠ dv): the smallest of them that holds max(d, dv).
var attnPadDims = []int{16, 32, 64, 80, 128}

// Attention: q (B, Nq, heads·d), k (B, Nk, heads·d), v (B, Nk, heads·dv) →
// (B, Nq, heads·dv), per head softmax(q·kᵀ/√d + bias)·v with the decomposed
// relative-position bias when rel != nil: one fused samk_attention.
func (b *Backend) Attention(q, k, v nn.Tensor, heads int, rel *nn.RelPos) nn.Tensor {
	const op = "Attention"
	c := b.begin(op)
	defer c.end()
	qt, kt, vt := c.input("q", q), c.input("k", k), c.input("v", v)
	B, Nq, Nk, d, dv := nn.AttentionShape(qt.shape, kt.shape, vt.shape, heads)
	Cq, Cv := heads*d, heads*dv
	relH, relW := c.relTables(rel, Nq, Nk, d)
	out := c.out(B, Nq, Cv)
	c.attention(attnArgs{
		B: B, Nq: Nq, Nk: Nk, heads: heads, d: d, dv: dv,
		q: qt.ptr(), k: kt.ptr(), v: vt.ptr(), qRow: Cq, kRow: Cq, vRow: Cv,
		relH: relH, relW: relW, rel: rel, out: out.ptr(),
	})
	return out
}

// AttentionQKV is Attention on a packed projection qkv (B, N, 3·heads·d)
// with channels [q | k | v], read in place through the kernel's strides.
func (b *Backend) AttentionQKV(qkv nn.Tensor, heads int, rel *nn.RelPos) nn.Tensor {
	const op = "AttentionQKV"
	c := b.begin(op)
	defer c.end()
	x := c.input("qkv", qkv)
	B, N, d := nn.AttentionQKVShape(x.shape, heads)
	C := heads * d // (B, N, 3·C): [q | k | v]
	C3 := 3 * C
	relH, relW := c.relTables(rel, N, N, d)
	out := c.out(B, N, C)
	c.attention(attnArgs{
		B: B, Nq: N, Nk: N, heads: heads, d: d, dv: d,
		q: x.ptr(), k: x.at(int64(C)), v: x.at(int64(2 * C)), qRow: C3, kRow: C3, vRow: C3,
		relH: relH, relW: relW, rel: rel, out: out.ptr(),
	})
	return out
}

// AttentionQKVBias is AttentionQKV with TinyViT's offset bias
// (samk_attention's bias_table): windows of N = WS² tokens, the logit of
// query i and key j gains Table[h, |Δy|·WS + |Δx|] after the scale.
func (b *Backend) AttentionQKVBias(qkv nn.Tensor, heads int, bias *nn.OffsetBias) nn.Tensor {
	const op = "AttentionQKVBias"
	c := b.begin(op)
	defer c.end()
	x := c.input("qkv", qkv)
	B, N, d := nn.AttentionQKVShape(x.shape, heads)
	if bias == nil {
		nn.Fail(op, nn.ErrShape, "nil bias")
	}
	tab := c.input("bias.Table", bias.Table)
	nn.OffsetBiasShape(op, bias, tab.shape, N, heads)
	C := heads * d
	C3 := 3 * C
	out := c.out(B, N, C)
	c.attention(attnArgs{
		B: B, Nq: N, Nk: N, heads: heads, d: d, dv: d,
		q: x.ptr(), k: x.at(int64(C)), v: x.at(int64(2 * C)), qRow: C3, kRow: C3, vRow: C3,
		tab: tab, ws: bias.WS, out: out.ptr(),
	})
	return out
}

// relTables validates rel against Nq = Nk = QH·QW and head dim d
// (nn.RelPosShape) and returns its tables (nil, nil without rel).
func (c *call) relTables(rel *nn.RelPos, Nq, Nk, d int) (h, w *Tensor) {
	if rel == nil {
		return nil, nil
	}
	h, w = c.input("rel.H", rel.H), c.input("rel.W", rel.W)
	nn.RelPosShape(c.op, rel, h.shape, w.shape, Nq, Nk, d)
	return h, w
}

// attnArgs locate q, k, v (token t of batch b at ptr + (b·N + t)·row),
// the rel-pos tables and the dense output (B, Nq, heads·dv).
type attnArgs struct {
	B, Nq, Nk, heads, d, dv int
	q, k, v                 unsafe.Pointer
	qRow, kRow, vRow        int
	relH, relW              *Tensor
	rel                     *nn.RelPos
	tab                     *Tensor // offset bias (heads, ws²), or nil
	ws                      int
	out                     unsafe.Pointer
}

func (c *call) attention(a attnArgs) {
	if a.B == 0 || a.Nq == 0 {
		return
	}
	es := c.b.dtype.Size()
	if a.Nk == 0 { // torch: softmax over no keys is empty, and empty·v is 0
		c.memset(a.out, int64(a.B*a.Nq*a.heads*a.dv)*es)
		return
	}
	scale := float32(1 / math.Sqrt(float64(a.d)))
	p := bindings.AttentionParams{
		DType: c.b.dtype, Batch: a.B, Heads: a.heads, NQ: a.Nq, NK: a.Nk,
		HeadDim: a.d, HeadDimV: a.dv,
		Q: a.q, QBatchStride: int64(a.Nq * a.qRow), QRowStride: int64(a.qRow),
		K: a.k, KBatchStride: int64(a.Nk * a.kRow), KRowStride: int64(a.kRow),
		V: a.v, VBatchStride: int64(a.Nk * a.vRow), VRowStride: int64(a.vRow),
		Out: a.out, OutBatchStride: int64(a.Nq * a.heads * a.dv), OutRowStride: int64(a.heads * a.dv),
		Scale: scale,
	}
	if a.rel != nil {
		p.RelH, p.RelW, p.QH, p.QW = a.relH.ptr(), a.relW.ptr(), a.rel.QH, a.rel.QW
	}
	if a.tab != nil {
		p.BiasTable, p.BiasWS = a.tab.ptr(), a.ws
	}
	// The padded path is chosen up front from the kernel's own list, so
	// that any error of the launch itself (a shared memory or grid limit)
	// is reported, not retried with padding.
	if !bindings.AttentionSupports(a.d, a.dv) {
		dp := paddedHeadDim(max(a.d, a.dv))
		if dp == 0 {
			nn.Fail(c.op, nn.ErrShape, "head dims %d/%d: no attention kernel (largest %d)", a.d, a.dv, attnPadDims[len(attnPadDims)-1])
		}
		c.attentionPadded(a, p, dp)
		return
	}
	c.check(bindings.Attention(&p, c.s))
}

// paddedHeadDim returns the smallest supported padded head dim ≥ d (0 if
// none).
func paddedHeadDim(d int) int {
	for _, s := range attnPadDims {
		if s >= d && bindings.AttentionSupports(s, s) {
			return s
		}
	}
	return 0
}

// attentionPadded runs the attention with every head zero-padded to dp
// channels (head dims without a kernel, such as 12, and d ≠ dv). Zero
// channels add nothing to q·k or to the rel-pos terms, and
// the padded output channels are zero and dropped; the scale stays
// 1/√d of the real head dim. q, k, v and the tables are gathered into
// padded scratch with one strided copy per head.
func (c *call) attentionPadded(a attnArgs, p bindings.AttentionParams, dp int) {
	es := c.b.dtype.Size()
	pad := func(src unsafe.Pointer, row, rows, d int) unsafe.Pointer {
		dst := c.scratchBytes(int64(rows*a.heads*dp) * es)
		c.memset(dst, int64(rows*a.heads*dp)*es)
		for h := range a.heads {
			c.copy2D(unsafe.Add(dst, int64(h*dp)*es), int64(a.heads*dp)*es,
				unsafe.Add(src, int64(h*d)*es), int64(row)*es, int64(d)*es, int64(rows))
		}
		return dst
	}
	padTable := func(t *Tensor) unsafe.Pointer {
		rows := t.shape[0]
		dst := c.scratchBytes(int64(rows*dp) * es)
		c.memset(dst, int64(rows*dp)*es)
		c.copy2D(dst, int64(dp)*es, t.ptr(), int64(a.d)*es, int64(a.d)*es, int64(rows))
		return dst
	}
	row := a.heads * dp
	p.HeadDim, p.HeadDimV = dp, dp
	p.Q, p.QBatchStride, p.QRowStride = pad(a.q, a.qRow, a.B*a.Nq, a.d), int64(a.Nq*row), int64(row)
	p.K, p.KBatchStride, p.KRowStride = pad(a.k, a.kRow, a.B*a.Nk, a.d), int64(a.Nk*row), int64(row)
	p.V, p.VBatchStride, p.VRowStride = pad(a.v, a.vRow, a.B*a.Nk, a.dv), int64(a.Nk*row), int64(row)
	out := c.scratchBytes(int64(a.B*a.Nq*row) * es)
	p.Out, p.OutBatchStride, p.OutRowStride = out, int64(a.Nq*row), int64(row)
	if a.rel != nil {
		p.RelH, p.RelW = padTable(a.relH), padTable(a.relW)
	}
	c.check(bindings.Attention(&p, c.s))
	for h := range a.heads { // (B·Nq, heads, dp) → (B·Nq, heads, dv)
		c.copy2D(unsafe.Add(a.out, int64(h*a.dv)*es), int64(a.heads*a.dv)*es,
			unsafe.Add(out, int64(h*dp)*es), int64(row)*es, int64(a.dv)*es, int64(a.B*a.Nq))
	}
}
