package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/nntest"
)

// TinyViT's ops against straightforward float64 loops on odd shapes.

// refConv is a convolution of x (B, H, W, Cin) with w in torch layout,
// full (Cout, Cin, k, k) or depthwise (C, 1, k, k), plus bias and act.
func refConv(x []float32, B, H, W, Cin int, w []float32, Cout, k int, bias []float32, p nn.Conv) (out []float64, OH, OW int) {
	OH, OW = (H+2*p.Pad-k)/p.Stride+1, (W+2*p.Pad-k)/p.Stride+1
	out = make([]float64, B*OH*OW*Cout)
	for n := range B {
		for i := range OH {
			for j := range OW {
				for o := range Cout {
					s := 0.0
					if bias != nil {
						s = float64(bias[o])
					}
					cins := []int{o}
					if !p.Depthwise {
						cins = cins[:0]
						for c := range Cin {
							cins = append(cins, c)
						}
					}
					for ci, c := range cins {
						for ky := range k {
							for kx := range k {
								iy, ix := i*p.Stride+ky-p.Pad, j*p.Stride+kx-p.Pad
								if iy < 0 || iy >= H || ix < 0 || ix >= W {
									continue
								}
								wi := ((o*len(cins)+ci)*k+ky)*k + kx
								if p.Depthwise {
									wi = (o*k+ky)*k + kx
								}
								s += float64(x[((n*H+iy)*W+ix)*Cin+c]) * float64(w[wi])
							}
						}
					}
					switch p.Act {
					case nn.ActGELU:
						s = 0.5 * s * (1 + math.Erf(s/math.Sqrt2))
					case nn.ActReLU:
						s = max(s, 0)
					}
					out[((n*OH+i)*OW+j)*Cout+o] = s
				}
			}
		}
	}
	return out, OH, OW
}

func TestConvAct(t *testing.T) {
	cases := []struct {
		B, H, W, Cin, Cout, k int
		p                     nn.Conv
		bias                  bool
	}{
		{1, 9, 11, 3, 8, 3, nn.Conv{Stride: 2, Pad: 1, Act: nn.ActGELU}, true}, // patch_embed.seq.0
		{2, 7, 5, 6, 10, 1, nn.Conv{Stride: 1, Act: nn.ActGELU}, true},         // MBConv conv1
		{1, 13, 9, 12, 12, 3, nn.Conv{Stride: 1, Pad: 1, Depthwise: true, Act: nn.ActGELU}, true},
		{2, 12, 10, 7, 7, 3, nn.Conv{Stride: 2, Pad: 1, Depthwise: true, Act: nn.ActGELU}, true}, // PatchMerging conv2
		{1, 8, 8, 5, 5, 3, nn.Conv{Stride: 1, Pad: 1, Depthwise: true}, true},                    // local_conv: no act
		{1, 6, 7, 4, 4, 5, nn.Conv{Stride: 1, Pad: 2, Depthwise: true, Act: nn.ActReLU}, false},
		{1, 3, 3, 2, 2, 3, nn.Conv{Stride: 3, Pad: 0, Depthwise: true}, true},
	}
	forBackends(t, func(t *testing.T, b *Backend) {
		for i, c := range cases {
			t.Run(fmt.Sprintf("%dx%dx%d→%d k%d %+v", c.H, c.W, c.Cin, c.Cout, c.k, c.p), func(t *testing.T) {
				rng := newRNG(uint64(40 + i))
				wc := c.Cin
				if c.p.Depthwise {
					wc = 1
				}
				x, xd := randTensor(b, rng, c.B, c.H, c.W, c.Cin)
				w, wd := randTensor(b, rng, c.Cout, wc, c.k, c.k)
				var bias nn.Tensor
				var bd []float32
				if c.bias {
					bias, bd = randTensor(b, rng, c.Cout)
				}
				want, OH, OW := refConv(xd, c.B, c.H, c.W, c.Cin, wd, c.Cout, c.k, bd, c.p)
				got := download(t, b, b.ConvAct(x, w, bias, c.p), c.B, OH, OW, c.Cout)
				requireClose(t, want, got, 1e-5)
			})
		}
	})
}

func TestConvActValidate(t *testing.T) {
	b := New()
	up := func(shape ...int) nn.Tensor { return b.Upload(make([]float32, nn.Numel(shape)), shape...) }
	x := up(1, 5, 5, 4)
	nntest.RequireFails(t, nn.ErrShape, func() { b.ConvAct(x, up(4, 2, 3, 3), nil, nn.Conv{Stride: 1, Depthwise: true}) })
	nntest.RequireFails(t, nn.ErrShape, func() { b.ConvAct(x, up(3, 1, 3, 3), nil, nn.Conv{Stride: 1, Depthwise: true}) })
	nntest.RequireFails(t, nn.ErrShape, func() { b.ConvAct(x, up(4, 1, 3, 3), nil, nn.Conv{Stride: 0, Depthwise: true}) })
	nntest.RequireFails(t, nn.ErrShape, func() { b.ConvAct(x, up(4, 1, 3, 3), up(3), nn.Conv{Stride: 1, Depthwise: true}) })
	nntest.RequireFails(t, nn.ErrShape, func() { b.ConvAct(x, up(4, 4, 3, 3), nil, nn.Conv{Stride: 1, Act: nn.Act(9)}) })
}

// TestAttentionQKVBias: the packed projection with TinyViT's offset bias
// against refAttention with bias Table[h, |Δy|·WS + |Δx|].
func TestAttentionQKVBias(t *testing.T) {
	cases := []struct{ B, heads, d, ws int }{
		{3, 2, 16, 7},  // vit_t stage 1: 7×7 windows
		{1, 5, 32, 14}, // stage 2: 14×14
		{2, 3, 5, 3},   // odd head dim, tiny window
		{1, 1, 8, 1},   // one token
	}
	forBackends(t, func(t *testing.T, b *Backend) {
		for i, c := range cases {
			t.Run(fmt.Sprintf("B%d h%d d%d ws%d", c.B, c.heads, c.d, c.ws), func(t *testing.T) {
				rng := newRNG(uint64(60 + i))
				N, C := c.ws*c.ws, c.heads*c.d
				q, k, v := randData(rng, c.B*N*C), randData(rng, c.B*N*C), randData(rng, c.B*N*C)
				tab := randData(rng, c.heads*N)
				for j := range tab {
					tab[j] *= 3 // biases that move the softmax
				}
				packed := make([]float32, 0, 3*len(q))
				for n := range c.B * N {
					packed = append(packed, q[n*C:(n+1)*C]...)
					packed = append(packed, k[n*C:(n+1)*C]...)
					packed = append(packed, v[n*C:(n+1)*C]...)
				}
				bias := &nn.OffsetBias{Table: b.Upload(tab, c.heads, N), WS: c.ws}
				got := download(t, b, b.AttentionQKVBias(b.Upload(packed, c.B, N, 3*C), c.heads, bias), c.B, N, C)
				abs := func(a int) int {
					if a < 0 {
						return -a
					}
					return a
				}
				want, maxLogit := refAttention(q, k, v, c.B, N, N, c.heads, c.d, c.d, nil, nil, 0, 0, func(h, i, j int) float64 {
					return float64(tab[h*N+abs(i/c.ws-j/c.ws)*c.ws+abs(i%c.ws-j%c.ws)])
				})
				requireClose(t, want, got, 1e-5+2e-7*maxLogit)
			})
		}
	})
	b := New()
	qkv := b.Upload(make([]float32, 2*49*3*8), 2, 49, 24)
	nntest.RequireFails(t, nn.ErrShape, func() {
		b.AttentionQKVBias(qkv, 2, &nn.OffsetBias{Table: b.Upload(make([]float32, 2*36), 2, 36), WS: 6})
	})
	nntest.RequireFails(t, nn.ErrShape, func() {
		b.AttentionQKVBias(qkv, 2, &nn.OffsetBias{Table: b.Upload(make([]float32, 3*49), 3, 49), WS: 7})
	})
	nntest.RequireFails(t, nn.ErrShape, func() { b.AttentionQKVBias(qkv, 2, nil) })
}
