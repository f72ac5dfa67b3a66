package cpu

import (
	"math"

	"github.com/samgo/samgo/sam/nn"
)

// LayerNorm over the last dim: x (..., C), w (C), b (C) →
// (x − mean)/sqrt(var + eps)·w + b per row, var the biased variance. On
// channels-last maps this is also LayerNorm2d.
func (b *Backend) LayerNorm(x, w, bias nn.Tensor, eps float32) nn.Tensor {
	const op = "LayerNorm"
	xt := tensor(op, "x", x)
	wd, bd := normParams(op, xt, w, bias)
	out := b.newTensor(xt.shape...)
	b.layerNorm(xt.data, wd, bd, eps, nn.ActNone, out.data)
	return out
}

// AddLayerNorm: sum = x + r; norm = LayerNorm(sum) (x and r of one shape).
func (b *Backend) AddLayerNorm(x, r, w, bias nn.Tensor, eps float32) (sum, norm nn.Tensor) {
	const op = "AddLayerNorm"
	xt, rt := tensor(op, "x", x), tensor(op, "r", r)
	nn.CheckSameShape(op, "x", xt.shape, "r", rt.shape)
	wd, bd := normParams(op, xt, w, bias)
	s := b.newTensor(xt.shape...)
	C := len(wd)
	b.parallelFor(len(xt.data)/max(C, 1), grain(4*C), func(_, lo, hi int) {
		for i := lo * C; i < hi*C; i++ {
			s.data[i] = xt.data[i] + rt.data[i]
		}
	})
	n := b.newTensor(xt.shape...)
	b.layerNorm(s.data, wd, bd, eps, nn.ActNone, n.data)
	return s, n
}

// normParams validates x (..., C), w (C), b (C) (nn.LayerNormShape) and
// returns w and b.
func normParams(op string, x *Tensor, w, bias nn.Tensor) (wd, bd []float32) {
	wt, bt := tensor(op, "w", w), tensor(op, "b", bias)
	nn.LayerNormShape(op, x.shape, wt.shape, bt.shape)
	return wt.data, bt.data
}

// layerNorm normalises the rows of x (rows of len(w)) into out, applying
// act afterwards (the LayerNorm2d → GELU of the mask downsampler). The
// statistics are computed in float64, two-pass (mean, then the mean squared
// deviation), so a large common offset costs no precision.
func (b *Backend) layerNorm(x, w, bias []float32, eps float32, act nn.Act, out []float32) {
	C := len(w)
	rows := len(x) / C
	b.parallelFor(rows, grain((6+actCost(act))*C), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, or := x[r*C:(r+1)*C], out[r*C:(r+1)*C]
			layerNormRow(or, xr, w, bias, eps)
			applyAct(or, act)
		}
	})
}

// layerNormRowGo is one row of layerNorm in scalar Go: statistics and
// normalisation in float64.
func layerNormRowGo(or, xr, w, bias []float32, eps float32) {
	C := len(xr)
	var sum float64
	for _, v := range xr {
		sum += float64(v)
	}
	mean := sum / float64(C)
	var ss float64
	for _, v := range xr {
		d := float64(v) - mean
		ss += d * d
	}
	rstd := 1 / math.Sqrt(ss/float64(C)+float64(eps))
	for c, v := range xr {
		or[c] = float32((float64(v)-mean)*rstd)*w[c] + bias[c]
	}
}
