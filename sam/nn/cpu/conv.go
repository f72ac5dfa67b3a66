package cpu

import "github.com/samgo/samgo/sam/nn"

// ConvAct: a convolution with bias and activation fused (nn.Backend). The
// full form is conv2d with the activation in its GEMM epilogue; the
// depthwise form is direct: for every output row (n, i), the k·k taps are
// accumulated over whole rows of channels,
//
//	out[n, i, j, c] = act(b[c] + Σ_{ky,kx} x[n, i·s+ky−pad, j·s+kx−pad, c]·w[c, 0, ky, kx])
//
// taps in the order ky, kx (the straightforward sum), padding taps skipped,
// with the weights transposed once per call to (k·k, C) so that the inner
// loop runs over contiguous channels of both operands.
func (b *Backend) ConvAct(x, w, bias nn.Tensor, p nn.Conv) nn.Tensor {
	const op = "ConvAct"
	xt, wt, bt := tensor(op, "x", x), tensor(op, "w", w), optTensor(op, "b", bias)
	_, Cout, k := nn.ConvActShape(xt.shape, wt.shape, p)
	var bd []float32
	if bt != nil {
		nn.CheckShape(op, "b", bt.shape, Cout)
		bd = bt.data
	}
	if !p.Depthwise {
		return b.conv2d(xt, wt, Cout, k, bd, p.Stride, p.Pad, p.Act)
	}
	return b.depthwise(xt, wt.data, k, bd, p)
}

func (b *Backend) depthwise(x *Tensor, w []float32, k int, bias []float32, p nn.Conv) *Tensor {
	B, H, W, C := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	s, pad := p.Stride, p.Pad
	OH, OW := (H+2*pad-k)/s+1, (W+2*pad-k)/s+1
	out := b.newTensor(B, OH, OW, C)
	wt := make([]float32, k*k*C) // (k·k, C)
	for c := range C {
		for t := range k * k {
			wt[t*C+c] = w[c*k*k+t]
		}
	}
	b.parallelFor(B*OH, grain(OW*C*k*k*2), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			n, i := r/OH, r%OH
			row := out.data[r*OW*C : (r+1)*OW*C] // (OW, C)
			for j := range OW {
				o := row[j*C : (j+1)*C]
				if bias != nil {
					copy(o, bias)
				} else {
					clear(o)
				}
			}
			for ky := range k {
				iy := i*s + ky - pad
				if iy < 0 || iy >= H {
					continue
				}
				in := x.data[(n*H+iy)*W*C : (n*H+iy+1)*W*C]
				for kx := range k {
					wk := wt[(ky*k+kx)*C : (ky*k+kx+1)*C]
					for j := range OW {
						ix := j*s + kx - pad
						if ix < 0 || ix >= W {
							continue
						}
						mulAdd(row[j*C:(j+1)*C], in[ix*C:(ix+1)*C], wk)
					}
				}
			}
			applyAct(row, p.Act)
		}
	})
	return out
}
