//go:build cuda

package gpu

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/bindings"
	"github.com/samgo/samgo/cuda/cudatest"
	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/nntest"
)

// Every op against the CPU backend, on the shapes SAM uses and on odd ones.

func TestLinear(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(1)
		cases := []struct {
			x, w []int
			bias bool
			act  nn.Act
			full bool
		}{
			{x: []int{2, 7, 64}, w: []int{96, 64}, bias: true, act: nn.ActGELU},
			{x: []int{4096, 256}, w: []int{2048, 256}, bias: true, act: nn.ActReLU, full: true}, // decoder MLP
			{x: []int{1, 130, 48}, w: []int{70, 48}, bias: true, act: nn.ActReLU},               // its twin: 3×2 tiles
			{x: []int{1, 97, 80}, w: []int{240, 80}, bias: true, act: nn.ActNone},
			{x: []int{1, 64}, w: []int{96, 64}, bias: true, act: nn.ActReLU}, // M = 1: one prompt's token
			{x: []int{3}, w: []int{5, 3}},
			{x: []int{5, 1}, w: []int{7, 1}, bias: true, act: nn.ActGELU}, // K = 1
			{x: []int{0, 16}, w: []int{8, 16}, bias: true},
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%v×%v/%v", tc.x, tc.w, tc.act), func(t *testing.T) {
				fullSize(t, tc.full)
				ins := []host{rnd(rng, tc.x...), rnd(rng, tc.w...)}
				if tc.bias {
					ins = append(ins, rnd(rng, tc.w[0]))
				}
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					var bias nn.Tensor
					if len(in) > 2 {
						bias = in[2]
					}
					return []nn.Tensor{b.Linear(in[0], in[1], bias, tc.act)}
				}, ins...)
			})
		}
	})
}

func TestMatMulT(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(2)
		for _, s := range [][2][]int{
			{{3, 7, 32}, {3, 4096, 32}}, // tokens × image (decoder)
			{{3, 7, 32}, {3, 300, 32}},  // the same, simulation-sized
			{{2, 4096, 16}, {2, 7, 16}}, // image × tokens
			{{2, 300, 16}, {2, 7, 16}},
			{{8, 4, 32}, {8, 4096, 32}}, // hypernetwork masks
			{{4, 4, 32}, {4, 300, 32}},
			{{1, 1, 3}, {1, 1, 3}},
		} {
			t.Run(fmt.Sprint(s), func(t *testing.T) {
				fullSize(t, s[0][1] == 4096 || s[1][1] == 4096)
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					return []nn.Tensor{b.MatMulT(in[0], in[1])}
				}, rnd(rng, s[0]...), rnd(rng, s[1]...))
			})
		}
	})
}

func TestConv2D(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(3)
		cases := []struct {
			name        string
			x, w        []int
			stride, pad int
			bias        bool
		}{
			{"patch-embed 16/16", []int{1, 64, 48, 3}, []int{32, 3, 16, 16}, 16, 0, true},
			{"3x3 pad 1", []int{2, 9, 11, 20}, []int{24, 20, 3, 3}, 1, 1, false},
			{"1x1 neck", []int{1, 8, 8, 64}, []int{32, 64, 1, 1}, 1, 0, false},
			{"2x2/2 mask", []int{3, 16, 16, 1}, []int{4, 1, 2, 2}, 2, 0, true},
			{"3x3/2 pad 2 odd", []int{1, 7, 5, 3}, []int{5, 3, 3, 3}, 2, 2, true},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ins := []host{rnd(rng, tc.x...), rnd(rng, tc.w...)}
				if tc.bias {
					ins = append(ins, rnd(rng, tc.w[0]))
				}
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					var bias nn.Tensor
					if len(in) > 2 {
						bias = in[2]
					}
					return []nn.Tensor{b.Conv2D(in[0], in[1], bias, tc.stride, tc.pad)}
				}, ins...)
			})
		}
	})
}

func TestConvTranspose2D(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(4)
		for _, tc := range []struct {
			x, w []int
			bias bool
		}{
			{[]int{2, 5, 7, 32}, []int{32, 8, 2, 2}, true},
			{[]int{1, 16, 16, 64}, []int{64, 16, 2, 2}, true}, // output_upscaling.0 of small
			{[]int{1, 3, 3, 4}, []int{4, 3, 3, 3}, false},
		} {
			t.Run(fmt.Sprint(tc.x, tc.w), func(t *testing.T) {
				ins := []host{rnd(rng, tc.x...), rnd(rng, tc.w...)}
				if tc.bias {
					ins = append(ins, rnd(rng, tc.w[1]))
				}
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					var bias nn.Tensor
					if len(in) > 2 {
						bias = in[2]
					}
					return []nn.Tensor{b.ConvTranspose2D(in[0], in[1], bias, tc.w[2])}
				}, ins...)
			})
		}
	})
}

func TestLayerNorm(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(5)
		for _, tc := range []struct {
			shape []int
			off   float32
			eps   float32
			full  bool
		}{
			{shape: []int{3, 17, 96}, eps: 1e-6},
			{shape: []int{2, 8, 8, 1280}, eps: 1e-6},                 // ViT-H width
			{shape: []int{4096, 256}, off: 3, eps: 1e-5, full: true}, // a common offset: two-pass statistics matter
			{shape: []int{300, 256}, off: 3, eps: 1e-5},              // its twin
			{shape: []int{5, 1}, eps: 1e-5},                          // one channel: the output is the bias
		} {
			C := tc.shape[len(tc.shape)-1]
			t.Run(fmt.Sprint(tc.shape), func(t *testing.T) {
				fullSize(t, tc.full)
				ins := []host{scaled(rng, tc.off, 1, tc.shape...), scaled(rng, 1, 0.2, C), rnd(rng, C)}
				checkOp(t, g, 2e-5, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					return []nn.Tensor{b.LayerNorm(in[0], in[1], in[2], tc.eps)}
				}, ins...)
				// With the residual: both the sum and the norm.
				ins = append(ins, rnd(rng, tc.shape...))
				checkOp(t, g, 2e-5, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					s, n := b.AddLayerNorm(in[0], in[3], in[1], in[2], tc.eps)
					return []nn.Tensor{s, n}
				}, ins...)
			})
		}
	})
}

func TestAttention(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(6)
		type tc struct {
			name       string
			B, Nq, Nk  int
			heads, d   int
			dv         int
			qh, qw     int // rel-pos grid (0: none)
			scaleInput float32
			full       bool
		}
		cases := []tc{
			{name: "decoder 7x4096 d32", B: 1, Nq: 7, Nk: 4096, heads: 8, d: 32, dv: 32, full: true},
			{name: "decoder 7x300 d32", B: 1, Nq: 7, Nk: 300, heads: 2, d: 32, dv: 32},
			{name: "decoder 4096x7 d16", B: 2, Nq: 4096, Nk: 7, heads: 8, d: 16, dv: 16, full: true},
			{name: "decoder 300x7 d16", B: 2, Nq: 300, Nk: 7, heads: 2, d: 16, dv: 16},
			{name: "window 14x14 d64 rel", B: 25, Nq: 196, Nk: 196, heads: 12, d: 64, dv: 64, qh: 14, qw: 14, full: true},  // ViT-B
			{name: "global 64x64 d80 rel", B: 1, Nq: 4096, Nk: 4096, heads: 16, d: 80, dv: 80, qh: 64, qw: 64, full: true}, // ViT-H
			{name: "d12 (padded to 16)", B: 1, Nq: 33, Nk: 20, heads: 2, d: 12, dv: 12},
			{name: "rel 4x5 d12 (padded to 16)", B: 1, Nq: 20, Nk: 20, heads: 2, d: 12, dv: 12, qh: 4, qw: 5},
			{name: "d≠dv 16/32 (padded to 32)", B: 1, Nq: 9, Nk: 33, heads: 2, d: 16, dv: 32},
			{name: "large logits", B: 1, Nq: 64, Nk: 64, heads: 2, d: 32, dv: 32, scaleInput: 8},
			{name: "one query one key", B: 2, Nq: 1, Nk: 1, heads: 3, d: 8, dv: 8},
			{name: "rel 3x3 d16 tiny window", B: 2, Nq: 9, Nk: 9, heads: 4, d: 16, dv: 16, qh: 3, qw: 3},
		}
		// Every head dim the kernel has, with odd token counts (a partial
		// query tile and a partial key tile) and with the rel-pos bias on a
		// 7×9 grid (63 tokens: the window of a padded map is square, a
		// global grid need not be).
		for _, d := range []int{4, 8, 16, 32, 64, 80, 128} {
			cases = append(cases,
				tc{name: fmt.Sprintf("37x45 d%d", d), B: 1, Nq: 37, Nk: 45, heads: 2, d: d, dv: d},
				tc{name: fmt.Sprintf("rel 7x9 d%d", d), B: 2, Nq: 63, Nk: 63, heads: 2, d: d, dv: d, qh: 7, qw: 9})
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				fullSize(t, c.full)
				s := max(c.scaleInput, 1)
				ins := []host{
					scaled(rng, 0, s, c.B, c.Nq, c.heads*c.d),
					scaled(rng, 0, s, c.B, c.Nk, c.heads*c.d),
					rnd(rng, c.B, c.Nk, c.heads*c.dv),
				}
				if c.qh > 0 {
					ins = append(ins, scaled(rng, 0, 0.3, 2*c.qh-1, c.d), scaled(rng, 0, 0.3, 2*c.qw-1, c.d))
				}
				rel := func(in []nn.Tensor) *nn.RelPos {
					if c.qh == 0 {
						return nil
					}
					return &nn.RelPos{H: in[3], W: in[4], QH: c.qh, QW: c.qw}
				}
				checkOp(t, g, 2e-5, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					return []nn.Tensor{b.Attention(in[0], in[1], in[2], c.heads, rel(in))}
				}, ins...)
				if c.Nq != c.Nk || c.d != c.dv {
					return
				}
				// The same through the packed projection [q | k | v].
				checkOp(t, g, 2e-5, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					qkv := b.Concat(2, in[0], in[1], in[2])
					defer b.Release(qkv)
					return []nn.Tensor{b.AttentionQKV(qkv, c.heads, rel(in))}
				}, ins...)
			})
		}
		t.Run("no keys", func(t *testing.T) {
			checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
				return []nn.Tensor{b.Attention(in[0], in[1], in[2], 2, nil)}
			}, rnd(rng, 1, 3, 32), host{nil, []int{1, 0, 32}}, host{nil, []int{1, 0, 32}})
		})
	})
}

func TestWindowPartition(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(7)
		for _, tc := range []struct {
			shape []int
			win   int
		}{
			{[]int{2, 16, 16, 24}, 7}, // small: 16 → 21 at the edge
			{[]int{1, 8, 8, 16}, 3},   // tiny: 8 → 9
			{[]int{1, 14, 14, 8}, 14}, // no padding
			{[]int{1, 5, 9, 4}, 4},    // non-square
		} {
			t.Run(fmt.Sprint(tc.shape, tc.win), func(t *testing.T) {
				H, W := tc.shape[1], tc.shape[2]
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					p := b.WindowPartition(in[0], tc.win)
					return []nn.Tensor{p, b.WindowUnpartition(p, tc.win, H, W)}
				}, rnd(rng, tc.shape...))
			})
		}
	})
}

func TestElementwise(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(8)
		for _, s := range [][2][]int{
			{{2, 7, 32}, {2, 7, 32}},
			{{2, 7, 32}, {1, 1, 32}},
			{{2, 7, 32}, {7, 32}},
			{{3, 8, 8, 32}, {1, 8, 8, 32}},       // image embedding + dense prompt, tiny
			{{4, 64, 64, 256}, {1, 64, 64, 256}}, // the same, SAM-sized
		} {
			t.Run(fmt.Sprint("Add", s), func(t *testing.T) {
				fullSize(t, nn.Numel(s[0]) > 1<<20)
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					return []nn.Tensor{b.Add(in[0], in[1])}
				}, rnd(rng, s[0]...), rnd(rng, s[1]...))
			})
		}
		for _, act := range []nn.Act{nn.ActNone, nn.ActGELU, nn.ActReLU} {
			t.Run(fmt.Sprint("Activation ", act), func(t *testing.T) {
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					return []nn.Tensor{b.Activation(in[0], act)}
				}, scaled(rng, 0, 6, 3, 1001))
			})
		}
	})
}

func TestCopies(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(9)
		a, b2, c3 := rnd(rng, 2, 3, 5), rnd(rng, 2, 4, 5), rnd(rng, 2, 1, 5)
		for axis, ins := range [][]host{
			{rnd(rng, 1, 3, 5), rnd(rng, 4, 3, 5)},
			{a, b2, c3},
			{rnd(rng, 2, 3, 1), rnd(rng, 2, 3, 7), rnd(rng, 2, 3, 2)},
		} {
			t.Run(fmt.Sprint("Concat axis ", axis), func(t *testing.T) {
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					return []nn.Tensor{b.Concat(axis, in...)}
				}, ins...)
			})
		}
		x := rnd(rng, 3, 7, 11)
		for _, s := range [][3]int{{0, 1, 3}, {1, 2, 5}, {2, 10, 11}, {1, 3, 3}, {2, 0, 11}} {
			t.Run(fmt.Sprint("Slice ", s), func(t *testing.T) {
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					return []nn.Tensor{b.Slice(in[0], s[0], s[1], s[2])}
				}, x)
			})
		}
		for _, n := range []int{0, 1, 5, 64} {
			t.Run(fmt.Sprint("Repeat ", n), func(t *testing.T) {
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					return []nn.Tensor{b.Repeat(in[0], n)}
				}, rnd(rng, 1, 5, 33))
			})
		}
		for _, s := range [][]int{{3, 7, 4096}, {4096, 7}, {2, 2, 33, 65}} {
			t.Run(fmt.Sprint("Transpose ", s), func(t *testing.T) {
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					return []nn.Tensor{b.Transpose(in[0])}
				}, rnd(rng, s...))
			})
		}
	})
}

func TestMaskDownsample(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(10)
		for _, tc := range []struct {
			B, H, W, c1, c2, C int
		}{
			{2, 32, 32, 4, 16, 32},    // tiny: 4g = 32, C = 32
			{1, 256, 256, 4, 16, 256}, // real SAM: 256×256 → 64×64×256
			{1, 22, 26, 4, 8, 16},     // not multiples of 4: the unfused path
		} {
			t.Run(fmt.Sprint(tc), func(t *testing.T) {
				fullSize(t, tc.H >= 256)
				ins := []host{
					scaled(rng, 0, 8, tc.B, tc.H, tc.W), // logits
					rnd(rng, tc.c1, 1, 2, 2), rnd(rng, tc.c1), scaled(rng, 1, 0.2, tc.c1), rnd(rng, tc.c1),
					rnd(rng, tc.c2, tc.c1, 2, 2), rnd(rng, tc.c2), scaled(rng, 1, 0.2, tc.c2), rnd(rng, tc.c2),
					rnd(rng, tc.C, tc.c2, 1, 1), rnd(rng, tc.C),
				}
				checkOp(t, g, 2e-5, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					p := &nn.MaskDownsampler{
						Conv1W: in[1], Conv1B: in[2], LN1W: in[3], LN1B: in[4],
						Conv2W: in[5], Conv2B: in[6], LN2W: in[7], LN2B: in[8],
						Conv3W: in[9], Conv3B: in[10], Eps: 1e-6,
					}
					return []nn.Tensor{b.MaskDownsample(in[0], p)}
				}, ins...)
			})
		}
	})
}

func TestUpscaleMasks(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(11)
		for _, tc := range []struct {
			shape []int
			p     nn.MaskUpscale
		}{
			{[]int{2, 3, 32, 32}, nn.MaskUpscale{Pad: 128, InH: 95, InW: 128, OutH: 119, OutW: 161}}, // tiny image_0
			{[]int{1, 2, 17, 23}, nn.MaskUpscale{Pad: 100, InH: 77, InW: 100, OutH: 201, OutW: 263}},
			{[]int{1, 1, 64, 64}, nn.MaskUpscale{Pad: 256, InH: 256, InW: 164, OutH: 100, OutW: 64}},        // shrinking
			{[]int{1, 3, 256, 256}, nn.MaskUpscale{Pad: 1024, InH: 1024, InW: 768, OutH: 1365, OutW: 1024}}, // SAM
		} {
			t.Run(fmt.Sprint(tc.shape, tc.p), func(t *testing.T) {
				fullSize(t, tc.p.Pad >= 1024)
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					out := b.UpscaleMasks(in[0], tc.p)
					if gt, ok := out.(*Tensor); ok {
						require.Equal(t, bindings.F32, gt.DType(), "logits are float32 in every precision")
					}
					return []nn.Tensor{out}
				}, scaled(rng, 0, 10, tc.shape...))
			})
		}
	})
}

// TestUploadDownload: fp32 is a bit-exact round trip; bf16 rounds to
// nearest even (relative error ≤ 2⁻⁹), values exactly representable in
// bfloat16 survive, and transfers larger than the staging buffers work.
func TestUploadDownload(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(12)
		n := 3*stagingBytes/4 + 12345 // several staging pieces
		if cudatest.Simulated() && g.prec == "bf16" {
			// The staging is the same for both precisions; only bf16
			// converts on the device, which a simulator does slowly.
			n = 20011
		}
		h := scaled(rng, 0, 100, n)
		x := g.Upload(h.d, n)
		got := g.Download(x)
		g.Release(x)
		for i, v := range h.d {
			if g.prec == "fp32" {
				require.Equal(t, v, got[i], "element %d", i)
			} else {
				require.InDelta(t, v, got[i], float64(abs32(v))/256+1e-30, "element %d", i)
			}
		}
		exact := []float32{0, 1, -2, 0.5, 65536, -1.5, 1024}
		x = g.Upload(exact, 7)
		require.Equal(t, exact, g.Download(x))
		g.Release(x)
		e := g.Upload(nil, 0, 3)
		require.Equal(t, []int{0, 3}, e.Shape())
		require.Empty(t, g.Download(e))
		g.Release(e)
	})
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

// TestMixedPrecisionInputs: a float32 tensor (UpscaleMasks' output) given
// to an op of a bf16 backend is converted, and Slice keeps its precision.
func TestMixedPrecisionInputs(t *testing.T) {
	g := gpuOrSkip(t, "bf16")
	rng := newRNG(13)
	h := rnd(rng, 1, 2, 8, 8)
	x := g.Upload(h.d, h.s...)
	up := g.UpscaleMasks(x, nn.MaskUpscale{Pad: 16, InH: 16, InW: 16, OutH: 16, OutW: 16}) // f32
	s := g.Slice(up, 1, 1, 2)
	require.Equal(t, bindings.F32, s.(*Tensor).DType())
	a := g.Add(up, up) // converted to bf16
	require.Equal(t, bindings.BF16, a.(*Tensor).DType())
	want := g.Download(up)
	got := g.Download(a)
	for i := range want {
		require.InDelta(t, 2*want[i], got[i], float64(0.02*abs32(want[i]))+1e-6)
	}
	g.Release(x, up, s, a)
}

func TestReshapeAndRelease(t *testing.T) {
	g := gpuOrSkip(t, "fp32")
	base := g.MemoryInUse()
	x := g.Upload([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	v := g.Reshape(x, 3, 2)
	w := g.Reshape(v, 6)
	require.Equal(t, []int{6}, w.Shape())
	g.Release(x)
	require.Equal(t, []float32{1, 2, 3, 4, 5, 6}, g.Download(w), "views keep the memory")
	g.Release(v, w, w)
	require.Equal(t, base, g.MemoryInUse(), "the last view returns the memory")
	nntest.RequireFails(t, ErrTensor, func() { g.Download(w) })
	nntest.RequireFails(t, nn.ErrShape, func() { g.Reshape(g.Upload(make([]float32, 6), 6), 4) })
}

func TestErrors(t *testing.T) {
	g := gpuOrSkip(t, "fp32")
	x := g.Upload(make([]float32, 12), 3, 4)
	w := g.Upload(make([]float32, 10), 2, 5)
	nntest.RequireFails(t, nn.ErrShape, func() { g.Linear(x, w, nil, nn.ActNone) })
	nntest.RequireFails(t, nn.ErrShape, func() { g.Upload(make([]float32, 5), 2, 3) })
	nntest.RequireFails(t, nn.ErrShape, func() { g.Activation(x, nn.Act(42)) })
	nntest.RequireFails(t, nn.ErrShape, func() { g.Attention(x, x, x, 0, nil) })
	nntest.RequireFails(t, nn.ErrShape, func() { g.Slice(x, 1, 3, 5) })
	nntest.RequireFails(t, ErrTensor, func() { g.Add(x, foreign{[]int{3, 4}}) })
	nntest.RequireFails(t, ErrTensor, func() { g.Add(x, nil) })
	// Out of memory is an error wrapping nn.ErrOutOfMemory, and the
	// backend stays usable (where an allocation may fail on purpose).
	if cudatest.CanFailAllocations() {
		one := g.Upload(make([]float32, 1<<20), 1, 1<<20)
		nntest.RequireFails(t, nn.ErrOutOfMemory, func() { g.Repeat(one, 1<<22) }) // 16 TiB
		g.Release(one)
	}
	y := g.Activation(x, nn.ActReLU)
	require.Len(t, g.Download(y), 12)
	g.Release(x, w, y)
	require.NoError(t, g.Close())
	nntest.RequireFails(t, ErrClosed, func() { g.Upload([]float32{1}, 1) })
}

func TestNewErrors(t *testing.T) {
	gpuOrSkip(t, "fp32")
	_, err := New(0, nn.Options{Precision: "fp16"})
	require.ErrorContains(t, err, "bf16")
	_, err = New(1<<20, nn.Options{})
	require.ErrorContains(t, err, "no such device")
	b, err := nn.Open("cuda:0", nn.Options{Precision: "bf16"})
	require.NoError(t, err)
	require.Contains(t, b.Name(), "cuda:0 (")
	require.Contains(t, b.Name(), ", bf16")
	require.NoError(t, b.(*Backend).Close())
}

// TestForkAndConcurrency: a fork computes on its parent's tensors on its
// own stream, and goroutines may share a backend.
func TestForkAndConcurrency(t *testing.T) {
	g := gpuOrSkip(t, "fp32")
	rng := newRNG(14)
	M, K, N, iters := 256, 128, 64, 20
	if cudatest.Simulated() {
		M, K, N, iters = 40, 24, 20, 3
	}
	xh, wh := rnd(rng, M, K), rnd(rng, N, K)
	x, w := g.Upload(xh.d, xh.s...), g.Upload(wh.d, wh.s...)
	y0 := g.Linear(x, w, nil, nn.ActGELU)
	want := g.Download(y0)
	g.Release(y0)
	f := g.Fork(0).(*Backend)
	defer f.Close()
	done := make(chan []float32, 8)
	for i := range 8 {
		b := nn.Backend(g)
		if i%2 == 1 {
			b = f
		}
		go func() {
			var out []float32
			var err error
			func() {
				defer nn.Catch(&err)
				for range iters {
					y := b.Linear(x, w, nil, nn.ActGELU)
					out = b.Download(y)
					b.Release(y)
				}
			}()
			if err != nil {
				out = nil
			}
			done <- out
		}()
	}
	for range 8 {
		got := <-done
		require.NotNil(t, got, "an op failed")
		compareTo(t, "fp32", "concurrent Linear", want, got, 1e-6)
	}
	g.Release(x, w)
}

// TestConvAct: TinyViT's convolutions (full with fused GELU, depthwise with
// stride and padding, with and without activation) against the CPU.
func TestConvAct(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(15)
		for _, tc := range []struct {
			name       string
			x          []int
			cout, k    int
			p          nn.Conv
			bias, full bool
		}{
			{name: "patch_embed 3x3/2 gelu", x: []int{1, 17, 15, 3}, cout: 8, k: 3, p: nn.Conv{Stride: 2, Pad: 1, Act: nn.ActGELU}, bias: true},
			{name: "1x1 gelu", x: []int{2, 5, 7, 12}, cout: 20, k: 1, p: nn.Conv{Stride: 1, Act: nn.ActGELU}, bias: true},
			{name: "depthwise 3x3 gelu", x: []int{1, 11, 9, 24}, k: 3, p: nn.Conv{Stride: 1, Pad: 1, Depthwise: true, Act: nn.ActGELU}, bias: true},
			{name: "depthwise 3x3/2 (merging)", x: []int{2, 10, 9, 12}, k: 3, p: nn.Conv{Stride: 2, Pad: 1, Depthwise: true, Act: nn.ActGELU}, bias: true},
			{name: "depthwise local conv", x: []int{1, 7, 7, 16}, k: 3, p: nn.Conv{Stride: 1, Pad: 1, Depthwise: true}, bias: true},
			{name: "depthwise 5x5 relu no bias", x: []int{1, 6, 8, 5}, k: 5, p: nn.Conv{Stride: 1, Pad: 2, Depthwise: true, Act: nn.ActReLU}},
			{name: "vit_t MBConv 256x256x256", x: []int{1, 256, 256, 256}, k: 3, p: nn.Conv{Stride: 1, Pad: 1, Depthwise: true, Act: nn.ActGELU}, bias: true, full: true},
			{name: "vit_t patch_embed 1024", x: []int{1, 1024, 1024, 3}, cout: 32, k: 3, p: nn.Conv{Stride: 2, Pad: 1, Act: nn.ActGELU}, bias: true, full: true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				fullSize(t, tc.full)
				cin := tc.x[3]
				w := []int{tc.cout, cin, tc.k, tc.k}
				if tc.p.Depthwise {
					w = []int{cin, 1, tc.k, tc.k}
				}
				ins := []host{rnd(rng, tc.x...), rnd(rng, w...)}
				if tc.bias {
					ins = append(ins, rnd(rng, w[0]))
				}
				checkOp(t, g, 0, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					var bias nn.Tensor
					if len(in) > 2 {
						bias = in[2]
					}
					return []nn.Tensor{b.ConvAct(in[0], in[1], bias, tc.p)}
				}, ins...)
			})
		}
	})
}

// TestAttentionQKVBias: TinyViT's windowed attention with its offset bias
// against the CPU, on every window size vit_t has and odd ones.
func TestAttentionQKVBias(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(16)
		for _, tc := range []struct {
			name        string
			B, heads, d int
			ws          int
			full        bool
		}{
			{name: "7x7 d32", B: 2, heads: 2, d: 32, ws: 7},
			{name: "14x14 d32", B: 1, heads: 2, d: 32, ws: 14},
			{name: "3x3 d12 (padded to 16)", B: 3, heads: 3, d: 12, ws: 3},
			{name: "5x5 d8", B: 2, heads: 4, d: 8, ws: 5},
			{name: "vit_t stage 2: 14x14, 5 heads, 25 windows", B: 25, heads: 5, d: 32, ws: 14, full: true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				fullSize(t, tc.full)
				N, C := tc.ws*tc.ws, tc.heads*tc.d
				ins := []host{rnd(rng, tc.B, N, 3*C), scaled(rng, 0, 3, tc.heads, N)}
				checkOp(t, g, 2e-5, func(b nn.Backend, in []nn.Tensor) []nn.Tensor {
					return []nn.Tensor{b.AttentionQKVBias(in[0], tc.heads, &nn.OffsetBias{Table: in[1], WS: tc.ws})}
				}, ins...)
			})
		}
		x := g.Upload(make([]float32, 2*49*3*16), 2, 49, 48)
		defer g.Release(x)
		nntest.RequireFails(t, nn.ErrShape, func() {
			g.AttentionQKVBias(x, 2, &nn.OffsetBias{Table: g.Upload(make([]float32, 2*36), 2, 36), WS: 6})
		})
	})
}
