//go:build cuda

package gpu

import (
	"github.com/samgo/samgo/bindings"
	"github.com/samgo/samgo/sam/nn"
)

// The GEMM-based ops. samk_gemm is row-major C = op(A)·op(B) (+ bias, act):
// a torch weight (N, K) is B with TransB.

// im2colLimit bounds the im2col scratch of one Conv2D step; larger inputs
// are convolved a few images at a time.
const im2colLimit = 512 << 20

// Linear: x (..., K), w (N, K), bias (N) or nil → (..., N) =
// act(x·wᵀ + bias): one samk_gemm with the bias and activation in its
// epilogue.
func (b *Backend) Linear(x, w, bias nn.Tensor, act nn.Act) nn.Tensor {
	const op = "Linear"
	c := b.begin(op)
	defer c.end()
	xt, wt, bt := c.input("x", x), c.input("w", w), c.optInput("b", bias)
	ka := c.kernelAct(act)
	shape, M, K, N := nn.LinearShape(xt.shape, wt.shape)
	if bt != nil {
		nn.CheckShape(op, "b", bt.shape, N)
	}
	out := c.out(shape...)
	if M == 0 || N == 0 {
		return out
	}
	c.gemm(bindings.GemmParams{
		M: int64(M), N: int64(N), K: int64(K),
		A: xt.ptr(), LDA: int64(K),
		B: wt.ptr(), LDB: int64(K), TransB: true,
		C: out.ptr(), LDC: int64(N),
		Bias: optPtr(bt), Act: ka, Alpha: 1,
	})
	return out
}

// MatMulT: a (B, M, K), b (B, N, K) → (B, M, N) = a·bᵀ per batch, one
// strided batched samk_gemm.
func (b *Backend) MatMulT(a, bm nn.Tensor) nn.Tensor {
	const op = "MatMulT"
	c := b.begin(op)
	defer c.end()
	at, bt := c.input("a", a), c.input("b", bm)
	shape, B, M, N, K := nn.MatMulTShape(at.shape, bt.shape)
	out := c.out(shape...)
	if B == 0 || M == 0 || N == 0 {
		return out
	}
	c.gemm(bindings.GemmParams{
		M: int64(M), N: int64(N), K: int64(K), Batch: B,
		A: at.ptr(), LDA: int64(K), StrideA: int64(M * K),
		B: bt.ptr(), LDB: int64(K), StrideB: int64(N * K), TransB: true,
		C: out.ptr(), LDC: int64(N), StrideC: int64(M * N),
		Alpha: 1,
	})
	return out
}

// Conv2D: x (B, H, W, Cin) channels-last, w (Cout, Cin, k, k) torch layout,
// bias (Cout) or nil → (B, OH, OW, Cout), OH = (H + 2·pad − k)/stride + 1,
// as samk_im2col (columns ordered (c, ky, kx), the order of the flattened
// torch weight) followed by samk_gemm with the weight as (Cout, Cin·k·k)ᵀ.
// A 1×1 stride-1 convolution is a Linear on the pixels.
func (b *Backend) Conv2D(x, w, bias nn.Tensor, stride, pad int) nn.Tensor {
	const op = "Conv2D"
	c := b.begin(op)
	defer c.end()
	xt, wt, bt := c.input("x", x), c.input("w", w), c.optInput("b", bias)
	_, Cout, _ := nn.Conv2DShape(xt.shape, wt.shape, stride, pad) // conv2d allocates the result
	if bt != nil {
		nn.CheckShape(op, "b", bt.shape, Cout)
	}
	return c.conv2d(xt, wt, bt, stride, pad, bindings.ActNone)
}

// ConvAct: the full form is Conv2D with the activation in the GEMM's
// epilogue (samk_im2col + samk_gemm); the depthwise form is
// samk_depthwise_conv. See nn.Backend.
func (b *Backend) ConvAct(x, w, bias nn.Tensor, p nn.Conv) nn.Tensor {
	const op = "ConvAct"
	c := b.begin(op)
	defer c.end()
	xt, wt, bt := c.input("x", x), c.input("w", w), c.optInput("b", bias)
	shape, Cout, k := nn.ConvActShape(xt.shape, wt.shape, p)
	if bt != nil {
		nn.CheckShape(op, "b", bt.shape, Cout)
	}
	act := c.kernelAct(p.Act)
	if !p.Depthwise {
		return c.conv2d(xt, wt, bt, p.Stride, p.Pad, act)
	}
	out := c.out(shape...)
	if out.numel() == 0 {
		return out
	}
	c.check(bindings.DepthwiseConv(&bindings.DepthwiseParams{
		DType: c.b.dtype, In: xt.ptr(), W: wt.ptr(), Bias: optPtr(bt), Out: out.ptr(),
		Batch: xt.shape[0], H: xt.shape[1], Win: xt.shape[2], C: xt.shape[3],
		K: k, Stride: p.Stride, Pad: p.Pad, Act: act,
	}, c.s))
	return out
}

// conv2d is Conv2D on validated arguments in the backend's precision, with
// act fused into the GEMM's epilogue.
func (c *call) conv2d(x, w, bias *Tensor, stride, pad int, act bindings.Act) *Tensor {
	B, H, W, Cin := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	Cout, k := w.shape[0], w.shape[2]
	OH := (H+2*pad-k)/stride + 1
	OW := (W+2*pad-k)/stride + 1
	out := c.out(B, OH, OW, Cout)
	if out.numel() == 0 {
		return out
	}
	Kd := Cin * k * k
	if k == 1 && stride == 1 && pad == 0 {
		M := B * H * W
		c.gemm(bindings.GemmParams{
			M: int64(M), N: int64(Cout), K: int64(Cin),
			A: x.ptr(), LDA: int64(Cin),
			B: w.ptr(), LDB: int64(Cin), TransB: true,
			C: out.ptr(), LDC: int64(Cout),
			Bias: optPtr(bias), Act: act, Alpha: 1,
		})
		return out
	}
	es := c.b.dtype.Size()
	perImage := int64(OH*OW*Kd) * es
	step := int(max(1, min(int64(B), im2colLimit/max(perImage, 1))))
	cols := c.scratchBytes(int64(step) * perImage)
	for i := 0; i < B; i += step {
		nb := min(step, B-i)
		c.check(bindings.Im2col(&bindings.Im2colParams{
			DType: c.b.dtype, In: x.at(int64(i * H * W * Cin)), Out: cols,
			Batch: nb, H: H, W: W, C: Cin, K: k, Stride: stride, Pad: pad,
		}, c.s))
		c.gemm(bindings.GemmParams{
			M: int64(nb * OH * OW), N: int64(Cout), K: int64(Kd),
			A: cols, LDA: int64(Kd),
			B: w.ptr(), LDB: int64(Kd), TransB: true,
			C: out.at(int64(i * OH * OW * Cout)), LDC: int64(Cout),
			Bias: optPtr(bias), Act: act, Alpha: 1,
		})
	}
	return out
}

// ConvTranspose2D with kernel == stride == k: x (B, H, W, Cin),
// w (Cin, Cout, k, k) torch layout, bias (Cout) or nil → (B, H·k, W·k, Cout):
// the GEMM g (B·H·W, Cout·k·k) = x · w (w read as the (Cin, Cout·k·k)
// matrix it is), then samk_convt_scatter adds the bias and moves each
// pixel's k×k patch into place.
func (b *Backend) ConvTranspose2D(x, w, bias nn.Tensor, k int) nn.Tensor {
	const op = "ConvTranspose2D"
	c := b.begin(op)
	defer c.end()
	xt, wt, bt := c.input("x", x), c.input("w", w), c.optInput("b", bias)
	shape, Cout := nn.ConvTranspose2DShape(xt.shape, wt.shape, k)
	if bt != nil {
		nn.CheckShape(op, "b", bt.shape, Cout)
	}
	out := c.out(shape...) // (B, H·k, W·k, Cout)
	B, H, W, Cin := xt.shape[0], xt.shape[1], xt.shape[2], xt.shape[3]
	if out.numel() == 0 {
		return out
	}
	Nd := Cout * k * k
	M := B * H * W
	g := c.scratchBytes(int64(M*Nd) * c.b.dtype.Size()) // (B·H·W, Cout·k·k)
	c.gemm(bindings.GemmParams{
		M: int64(M), N: int64(Nd), K: int64(Cin),
		A: xt.ptr(), LDA: int64(Cin),
		B: wt.ptr(), LDB: int64(Nd),
		C: g, LDC: int64(Nd),
		Alpha: 1,
	})
	c.check(bindings.ConvTScatter(&bindings.ConvTScatterParams{
		DType: c.b.dtype, In: g, Bias: optPtr(bt), Out: out.ptr(),
		Batch: B, H: H, W: W, Cout: Cout, K: k, Act: bindings.ActNone,
	}, c.s))
	return out
}
