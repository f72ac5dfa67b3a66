//go:build cuda

package gpu

import (
	"github.com/samgo/samgo/bindings"
	"github.com/samgo/samgo/sam/nn"
)

// LayerNorm over the last dim: x (..., C), w (C), b (C) →
// (x − mean)/sqrt(var + eps)·w + b per row (biased variance, statistics in
// fp32): samk_layernorm. On channels-last maps this is also LayerNorm2d.
func (b *Backend) LayerNorm(x, w, bias nn.Tensor, eps float32) nn.Tensor {
	const op = "LayerNorm"
	c := b.begin(op)
	defer c.end()
	xt := c.input("x", x)
	wt, bt := c.normParams(xt, w, bias)
	out := c.out(xt.shape...)
	c.layerNorm(xt, nil, nil, out, wt, bt, eps)
	return out
}

// AddLayerNorm: sum = x + r; norm = LayerNorm(sum), both from one
// samk_layernorm pass.
func (b *Backend) AddLayerNorm(x, r, w, bias nn.Tensor, eps float32) (sum, norm nn.Tensor) {
	const op = "AddLayerNorm"
	c := b.begin(op)
	defer c.end()
	xt, rt := c.input("x", x), c.input("r", r)
	nn.CheckSameShape(op, "x", xt.shape, "r", rt.shape)
	wt, bt := c.normParams(xt, w, bias)
	s, n := c.out(xt.shape...), c.out(xt.shape...)
	c.layerNorm(xt, rt, s, n, wt, bt, eps)
	return s, n
}

// normParams validates x (..., C), w (C), b (C) (nn.LayerNormShape).
func (c *call) normParams(x *Tensor, w, bias nn.Tensor) (wt, bt *Tensor) {
	wt, bt = c.input("w", w), c.input("b", bias)
	nn.LayerNormShape(c.op, x.shape, wt.shape, bt.shape)
	return wt, bt
}

// layerNorm runs samk_layernorm: out = LN(x + residual), the sum written
// to sum (residual and sum may be nil).
func (c *call) layerNorm(x, residual, sum, out, w, bias *Tensor, eps float32) {
	C := x.shape[len(x.shape)-1]
	rows := int64(x.numel() / C)
	if rows == 0 {
		return
	}
	c.check(bindings.LayerNorm(&bindings.LayerNormParams{
		DType: c.b.dtype, Rows: rows, Cols: C,
		X: x.ptr(), Residual: optPtr(residual), Sum: optPtr(sum), Out: out.ptr(),
		Weight: w.ptr(), Bias: bias.ptr(), Eps: eps,
	}, c.s))
}
