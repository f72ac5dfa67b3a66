package cpu

import (
	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu/sgemm"
)

// The GEMM-based ops: Linear, MatMulT, Conv2D (im2col), ConvTranspose2D.
//
// They share one pattern (gemmRows): the m output rows are cut into blocks
// of about gemmBlockRows rows; each block is one single-threaded product
// (sgemm.GemmSerial) followed by its epilogue (bias, activation, scatter)
// while the block is still in cache, and blocks run in parallel. Products
// with too few rows to share out run as a single block with the parallel
// sgemm.Gemm instead.

// gemmFunc is the signature of sgemm.Gemm and sgemm.GemmSerial.
type gemmFunc func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

const (
	// gemmBlockRows is the preferred row block. Each block repacks the
	// whole right-hand matrix, so blocks must be tall enough for that to
	// be cheap (1/512 of the product's work) and short enough for the
	// block's output to be in cache (L2/L3) for the epilogue. On the
	// ViT-B MLP (BenchmarkLinear) 512 rows match one parallel sgemm.Gemm
	// followed by a separate bias+GELU pass; 256 rows are ~5% slower.
	gemmBlockRows = 512
	// gemmMinRows is the shortest block worth a goroutine of its own;
	// below it one parallel product does better.
	gemmMinRows = 64
)

// gemmRows runs fn over row blocks [lo, hi) of an m-row product. fn
// computes its rows' product, on all cores when par is set (a single block)
// and on its own goroutine otherwise (blocks run concurrently), and applies
// its epilogue; w identifies the worker for per-worker scratch.
func (b *Backend) gemmRows(m int, fn func(w, lo, hi int, par bool)) {
	if m <= 0 {
		return
	}
	if b.threads == 1 {
		for lo := 0; lo < m; lo += gemmBlockRows {
			fn(0, lo, min(lo+gemmBlockRows, m), false)
		}
		return
	}
	rows := gemmBlockRows
	if m < 2*b.threads*rows { // too few blocks to keep every thread busy
		rows = (m + 2*b.threads - 1) / (2 * b.threads)
	}
	if rows < gemmMinRows {
		fn(0, 0, m, true)
		return
	}
	b.parallelChunks(m, rows, func(w, lo, hi int) { fn(w, lo, hi, false) })
}

// fp32Gemm is the float32 product for gemmRows' par.
func fp32Gemm(par bool) gemmFunc {
	if par {
		return sgemm.Gemm
	}
	return sgemm.GemmSerial
}

// biasAct applies out[r, :] = act(out[r, :] + bias) to rows [lo, hi) of an
// n-column matrix (bias may be nil).
func biasAct(out []float32, n, lo, hi int, bias []float32, act nn.Act) {
	if bias == nil && act == nn.ActNone {
		return
	}
	for r := lo; r < hi; r++ {
		row := out[r*n : (r+1)*n]
		if bias != nil {
			addInto(row, bias)
		}
		applyAct(row, act)
	}
}

// Linear: x (..., K), w (N, K) torch layout, bias (N) or nil →
// (..., N) = act(x·wᵀ + bias), the activation applied per row block right
// after its product.
func (b *Backend) Linear(x, w, bias nn.Tensor, act nn.Act) nn.Tensor {
	const op = "Linear"
	xt, wt, bt := tensor(op, "x", x), tensor(op, "w", w), optTensor(op, "b", bias)
	nn.CheckAct(op, act)
	shape, M, K, N := nn.LinearShape(xt.shape, wt.shape)
	var bd []float32
	if bt != nil {
		nn.CheckShape(op, "b", bt.shape, N)
		bd = bt.data
	}
	out := b.newTensor(shape...)
	b.linear(xt.data, M, K, wt, N, bd, act, out.data)
	return out
}

// linear computes c (M, N) = act(a (M, K) · w (N, K)ᵀ + bias), w packed
// once (weights.go; in bf16 on a bf16 backend).
func (b *Backend) linear(a []float32, M, K int, wt *Tensor, N int, bias []float32, act nn.Act, c []float32) {
	if N == 0 {
		return
	}
	w := b.weightRHS(wt, false, func() []float32 { return wt.data }, K, N)
	b.gemmRows(M, func(_, lo, hi int, par bool) {
		w.mul(par, hi-lo, a[lo*K:], K, c[lo*N:], N)
		biasAct(c, N, lo, hi, bias, act)
	})
}

// MatMulT: a (B, M, K), b (B, N, K) → (B, M, N) = a·bᵀ per batch.
func (b *Backend) MatMulT(a, bm nn.Tensor) nn.Tensor {
	const op = "MatMulT"
	at, bt := tensor(op, "a", a), tensor(op, "b", bm)
	shape, B, M, N, K := nn.MatMulTShape(at.shape, bt.shape)
	out := b.newTensor(shape...)
	if M == 0 || N == 0 {
		return out
	}
	if M < gemmMinRows && B >= b.threads {
		// Many small products (e.g. the mask decoder's hypernetwork
		// output): one per goroutine.
		b.parallelFor(B, grain(2*M*N*K), func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				sgemm.GemmSerial(false, true, M, N, K, 1, at.data[i*M*K:], K, bt.data[i*N*K:], K, 0, out.data[i*M*N:], N)
			}
		})
		return out
	}
	for i := range B {
		ai, bi, ci := at.data[i*M*K:], bt.data[i*N*K:], out.data[i*M*N:]
		b.gemmRows(M, func(_, lo, hi int, par bool) {
			fp32Gemm(par)(false, true, hi-lo, N, K, 1, ai[lo*K:], K, bi, K, 0, ci[lo*N:], N)
		})
	}
	return out
}

// Conv2D: x (B, H, W, Cin) channels-last, w (Cout, Cin, k, k) torch layout,
// bias (Cout) or nil, stride, zero padding pad →
// (B, OH, OW, Cout), OH = (H + 2·pad − k)/stride + 1 (likewise OW), with
//
//	out[b, oy, ox, o] = bias[o] + Σ_{c,p,q} x[b, oy·stride+p−pad, ox·stride+q−pad, c]·w[o, c, p, q]
//
// (x outside the map is 0), computed as im2col + GEMM: each output pixel's
// receptive field is gathered into a row (p, q, c) of a per-worker block and
// multiplied by the weight reordered to (Cout, k, k, Cin). A 1×1 stride-1
// convolution is a plain Linear on the pixels.
func (b *Backend) Conv2D(x, w, bias nn.Tensor, stride, pad int) nn.Tensor {
	const op = "Conv2D"
	xt, wt, bt := tensor(op, "x", x), tensor(op, "w", w), optTensor(op, "b", bias)
	_, Cout, k := nn.Conv2DShape(xt.shape, wt.shape, stride, pad) // conv2d allocates the result
	var bd []float32
	if bt != nil {
		nn.CheckShape(op, "b", bt.shape, Cout)
		bd = bt.data
	}
	return b.conv2d(xt, wt, Cout, k, bd, stride, pad, nn.ActNone)
}

// conv2d is Conv2D on validated arguments (w in torch layout), with an
// activation fused into the epilogue.
func (b *Backend) conv2d(x *Tensor, wt *Tensor, Cout, k int, bias []float32, stride, pad int, act nn.Act) *Tensor {
	B, H, W, Cin := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	OH := (H+2*pad-k)/stride + 1
	OW := (W+2*pad-k)/stride + 1
	out := b.newTensor(B, OH, OW, Cout)
	M := B * OH * OW
	if k == 1 && stride == 1 && pad == 0 {
		b.linear(x.data, M, Cin, wt, Cout, bias, act, out.data) // (B·H·W, Cin)·wᵀ
		return out
	}
	// Weight (Cout, Cin, k, k) → (Cout, k, k, Cin): the order in which an
	// im2col row holds a channels-last receptive field.
	Kd := k * k * Cin
	reorder := func() []float32 {
		w := wt.data
		if Cin == 1 {
			return w
		}
		wr := make([]float32, len(w))
		for o := range Cout {
			for c := range Cin {
				for pq := range k * k {
					wr[o*Kd+pq*Cin+c] = w[(o*Cin+c)*k*k+pq]
				}
			}
		}
		return wr
	}
	wr := b.weightRHS(wt, true, reorder, Kd, Cout)
	sc := newScratch(b.threads)
	b.gemmRows(M, func(wk, lo, hi int, par bool) {
		cols := sc.get(wk, (hi-lo)*Kd) // (rows, k, k, Cin)
		for r := lo; r < hi; r++ {
			bi, oy, ox := r/(OH*OW), r/OW%OH, r%OW
			row := cols[(r-lo)*Kd : (r-lo+1)*Kd]
			for p := range k {
				iy := oy*stride + p - pad
				dst := row[p*k*Cin : (p+1)*k*Cin]
				if iy < 0 || iy >= H {
					clear(dst)
					continue
				}
				for q := range k {
					ix := ox*stride + q - pad
					seg := dst[q*Cin : (q+1)*Cin]
					if ix < 0 || ix >= W {
						clear(seg)
					} else {
						copy(seg, x.data[((bi*H+iy)*W+ix)*Cin:])
					}
				}
			}
		}
		wr.mul(par, hi-lo, cols, Kd, out.data[lo*Cout:], Cout)
		biasAct(out.data, Cout, lo, hi, bias, act)
	})
	return out
}

// ConvTranspose2D with kernel == stride == k: x (B, H, W, Cin),
// w (Cin, Cout, k, k) torch layout, bias (Cout) or nil → (B, H·k, W·k, Cout),
//
//	out[b, i·k+p, j·k+q, o] = bias[o] + Σ_c x[b, i, j, c]·w[c, o, p, q].
//
// Each pixel's outputs are one row of the product x (B·H·W, Cin) ·
// w' (Cin, k·k·Cout) (w reordered to (Cin, k, k, Cout)), scattered to its
// k×k output patch.
func (b *Backend) ConvTranspose2D(x, w, bias nn.Tensor, k int) nn.Tensor {
	const op = "ConvTranspose2D"
	xt, wt, bt := tensor(op, "x", x), tensor(op, "w", w), optTensor(op, "b", bias)
	_, Cout := nn.ConvTranspose2DShape(xt.shape, wt.shape, k) // convTranspose2d allocates the result
	var bd []float32
	if bt != nil {
		nn.CheckShape(op, "b", bt.shape, Cout)
		bd = bt.data
	}
	return b.convTranspose2d(xt, wt.data, Cout, k, bd)
}

func (b *Backend) convTranspose2d(x *Tensor, w []float32, Cout, k int, bias []float32) *Tensor {
	B, H, W, Cin := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	out := b.newTensor(B, H*k, W*k, Cout)
	Nd := k * k * Cout
	wr := make([]float32, len(w)) // (Cin, k, k, Cout)
	for c := range Cin {
		for o := range Cout {
			for pq := range k * k {
				wr[c*Nd+pq*Cout+o] = w[(c*Cout+o)*k*k+pq]
			}
		}
	}
	sc := newScratch(b.threads)
	b.gemmRows(B*H*W, func(wk, lo, hi int, par bool) {
		y := sc.get(wk, (hi-lo)*Nd) // (rows, k, k, Cout)
		fp32Gemm(par)(false, false, hi-lo, Nd, Cin, 1, x.data[lo*Cin:], Cin, wr, Nd, 0, y, Nd)
		for r := lo; r < hi; r++ {
			bi, i, j := r/(H*W), r/W%H, r%W
			for p := range k {
				for q := range k {
					src := y[(r-lo)*Nd+(p*k+q)*Cout : (r-lo)*Nd+(p*k+q+1)*Cout]
					dst := out.data[((bi*H*k+i*k+p)*W*k+j*k+q)*Cout:][:Cout]
					if bias == nil {
						copy(dst, src)
					} else {
						for o, v := range src {
							dst[o] = v + bias[o]
						}
					}
				}
			}
		}
	})
	return out
}
