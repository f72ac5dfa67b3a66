package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/nntest"
)

// naiveResize is F.interpolate(bilinear, align_corners=False) of one plane,
// each output pixel straight from the formula (PyTorch's UpSample.h),
// float32 as PyTorch evaluates it.
func naiveResize(src []float32, inH, inW, outH, outW int) []float32 {
	out := make([]float32, outH*outW)
	axis := func(o, in, out int) (int, int, float32, float32) {
		scale := float32(in) / float32(out)
		s := scale*(float32(o)+0.5) - 0.5
		if s < 0 {
			s = 0
		}
		i0 := int(math.Floor(float64(s)))
		if i0 > in-1 {
			i0 = in - 1
		}
		i1 := i0
		if i0 < in-1 {
			i1 = i0 + 1
		}
		l1 := s - float32(i0)
		l1 = float32(math.Min(math.Max(float64(l1), 0), 1))
		return i0, i1, 1 - l1, l1
	}
	for y := range outH {
		y0, y1, ly0, ly1 := axis(y, inH, outH)
		for x := range outW {
			x0, x1, lx0, lx1 := axis(x, inW, outW)
			out[y*outW+x] = ly0*(lx0*src[y0*inW+x0]+lx1*src[y0*inW+x1]) + ly1*(lx0*src[y1*inW+x0]+lx1*src[y1*inW+x1])
		}
	}
	return out
}

// naiveUpscale is postprocess_masks for one plane: resize to Pad×Pad, crop,
// resize to the output.
func naiveUpscale(src []float32, h, w int, p nn.MaskUpscale) []float32 {
	padded := naiveResize(src, h, w, p.Pad, p.Pad)
	crop := make([]float32, 0, p.InH*p.InW)
	for y := range p.InH {
		crop = append(crop, padded[y*p.Pad:y*p.Pad+p.InW]...)
	}
	return naiveResize(crop, p.InH, p.InW, p.OutH, p.OutW)
}

func TestUpscaleMasks(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		rng := newRNG(20)
		for _, tc := range []struct {
			B, M, h, w int
			p          nn.MaskUpscale
		}{
			{1, 1, 4, 4, nn.MaskUpscale{Pad: 4, InH: 4, InW: 4, OutH: 4, OutW: 4}},            // identity
			{2, 3, 32, 32, nn.MaskUpscale{Pad: 128, InH: 95, InW: 128, OutH: 119, OutW: 161}}, // tiny image_0
			{1, 3, 32, 32, nn.MaskUpscale{Pad: 128, InH: 82, InW: 128, OutH: 45, OutW: 70}},   // tiny image_1: shrinks
			{3, 1, 64, 64, nn.MaskUpscale{Pad: 256, InH: 256, InW: 164, OutH: 100, OutW: 64}}, // small image_1
			{1, 1, 256, 256, nn.MaskUpscale{Pad: 1024, InH: 1024, InW: 768, OutH: 1365, OutW: 1024}},
			{1, 2, 5, 7, nn.MaskUpscale{Pad: 9, InH: 1, InW: 9, OutH: 3, OutW: 1}}, // non-square input, 1-pixel crop
		} {
			t.Run(fmt.Sprintf("%dx%d->%+v", tc.h, tc.w, tc.p), func(t *testing.T) {
				x, xd := randTensor(b, rng, tc.B, tc.M, tc.h, tc.w)
				for i := range xd {
					xd[i] *= 20 // logits
				}
				x = b.Upload(xd, tc.B, tc.M, tc.h, tc.w)
				got := download(t, b, b.UpscaleMasks(x, tc.p), tc.B, tc.M, tc.p.OutH, tc.p.OutW)
				var want []float64
				for pl := range tc.B * tc.M {
					want = append(want, f64(naiveUpscale(xd[pl*tc.h*tc.w:(pl+1)*tc.h*tc.w], tc.h, tc.w, tc.p))...)
				}
				// Same formula, same float32 operations: equal up to the
				// last bit on amd64 (where Go fuses no multiply-adds).
				requireClose(t, want, got, 1e-6)
			})
		}
	})
}

func TestUpscaleMasksValidate(t *testing.T) {
	b := New()
	x := b.Upload(make([]float32, 2*16), 1, 2, 4, 4)
	ok := nn.MaskUpscale{Pad: 16, InH: 16, InW: 12, OutH: 20, OutW: 15}
	require.NoError(t, nntest.OpError(t, func() { b.UpscaleMasks(x, ok) }))
	for _, p := range []nn.MaskUpscale{
		{Pad: 16, InH: 17, InW: 12, OutH: 20, OutW: 15},
		{Pad: 16, InH: 16, InW: 0, OutH: 20, OutW: 15},
		{Pad: 16, InH: 16, InW: 12, OutH: 0, OutW: 15},
		{Pad: 0, InH: 0, InW: 0, OutH: 1, OutW: 1},
	} {
		nntest.RequireFails(t, nn.ErrShape, func() { b.UpscaleMasks(x, p) }, p)
	}
	nntest.RequireFails(t, nn.ErrShape, func() { b.UpscaleMasks(b.Upload(make([]float32, 16), 1, 4, 4), ok) })
	nntest.RequireFails(t, nn.ErrShape, func() { b.UpscaleMasks(b.Upload(nil, 1, 1, 0, 4), ok) })
	nntest.RequireFails(t, ErrTensor, func() { b.UpscaleMasks(nil, ok) })
}

// maskDownsampler makes random weights for c1, c2, C channels.
func maskDownsampler(b *Backend, seed uint64, c1, c2, C int) (*nn.MaskDownsampler, map[string][]float32) {
	rng := newRNG(seed)
	host := map[string][]float32{}
	mk := func(name string, shape ...int) nn.Tensor {
		t, d := randTensor(b, rng, shape...)
		host[name] = d
		return t
	}
	p := &nn.MaskDownsampler{
		Conv1W: mk("c1w", c1, 1, 2, 2), Conv1B: mk("c1b", c1),
		LN1W: mk("ln1w", c1), LN1B: mk("ln1b", c1),
		Conv2W: mk("c2w", c2, c1, 2, 2), Conv2B: mk("c2b", c2),
		LN2W: mk("ln2w", c2), LN2B: mk("ln2b", c2),
		Conv3W: mk("c3w", C, c2, 1, 1), Conv3B: mk("c3b", C),
		Eps: 1e-6,
	}
	return p, host
}

func TestMaskDownsample(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		for _, tc := range []struct{ B, H, W, c1, c2, C int }{
			{1, 4, 4, 1, 1, 1},
			{2, 32, 32, 4, 16, 32}, // tiny: 4g = 32, mask_in_chans 16
			{1, 64, 40, 4, 16, 64}, // non-square
			{3, 13, 10, 2, 3, 5},   // not multiples of 4: convs floor
		} {
			t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
				p, w := maskDownsampler(b, 30, tc.c1, tc.c2, tc.C)
				md := randData(newRNG(31), tc.B*tc.H*tc.W)
				for i := range md {
					md[i] *= 10
				}
				// The reference: the composition of the reference loops.
				gelu := func(x []float64) []float64 {
					for i, v := range x {
						x[i] = refGELU(v)
					}
					return x
				}
				f32 := func(x []float64) []float32 {
					out := make([]float32, len(x))
					for i, v := range x {
						out[i] = float32(v)
					}
					return out
				}
				h1, s1 := refConv2D(md, tc.B, tc.H, tc.W, 1, w["c1w"], tc.c1, 2, w["c1b"], 2, 0)
				h1 = gelu(refLayerNorm(h1, tc.c1, w["ln1w"], w["ln1b"], 1e-6))
				h2, s2 := refConv2D(f32(h1), s1[0], s1[1], s1[2], tc.c1, w["c2w"], tc.c2, 2, w["c2b"], 2, 0)
				h2 = gelu(refLayerNorm(h2, tc.c2, w["ln2w"], w["ln2b"], 1e-6))
				want, shape := refConv2D(f32(h2), s2[0], s2[1], s2[2], tc.c2, w["c3w"], tc.C, 1, w["c3b"], 1, 0)
				require.Equal(t, []int{tc.B, tc.H / 4, tc.W / 4, tc.C}, shape)
				got := download(t, b, b.MaskDownsample(b.Upload(md, tc.B, tc.H, tc.W), p), shape...)
				requireClose(t, want, got, 1e-5)
			})
		}
	})
}

func TestMaskDownsampleValidate(t *testing.T) {
	b := New()
	p, _ := maskDownsampler(b, 1, 4, 16, 32)
	m := b.Upload(make([]float32, 2*16*16), 2, 16, 16)
	require.NoError(t, nntest.OpError(t, func() { b.MaskDownsample(m, p) }))
	up := func(shape ...int) nn.Tensor { return b.Upload(make([]float32, nn.Numel(shape)), shape...) }
	for name, mod := range map[string]func(q *nn.MaskDownsampler){
		"conv1 in":   func(q *nn.MaskDownsampler) { q.Conv1W = up(4, 2, 2, 2) },
		"conv1 k":    func(q *nn.MaskDownsampler) { q.Conv1W = up(4, 1, 3, 3) },
		"conv1 b":    func(q *nn.MaskDownsampler) { q.Conv1B = up(5) },
		"ln1 w":      func(q *nn.MaskDownsampler) { q.LN1W = up(16) },
		"conv2 in":   func(q *nn.MaskDownsampler) { q.Conv2W = up(16, 3, 2, 2) },
		"ln2 b":      func(q *nn.MaskDownsampler) { q.LN2B = up(4) },
		"conv3 k":    func(q *nn.MaskDownsampler) { q.Conv3W = up(32, 16, 2, 2) },
		"conv3 rank": func(q *nn.MaskDownsampler) { q.Conv3W = up(32, 16) },
		"conv3 b":    func(q *nn.MaskDownsampler) { q.Conv3B = up(16) },
	} {
		q := *p
		mod(&q)
		nntest.RequireFails(t, nn.ErrShape, func() { b.MaskDownsample(m, &q) }, name)
	}
	nntest.RequireFails(t, nn.ErrShape, func() { b.MaskDownsample(up(2, 16, 16, 1), p) }, "rank")
	nntest.RequireFails(t, nn.ErrShape, func() { b.MaskDownsample(up(2, 3, 16), p) }, "too small")
	nntest.RequireFails(t, ErrTensor, func() { b.MaskDownsample(m, nil) }, "nil p")
	q := *p
	q.LN2W = nil
	nntest.RequireFails(t, ErrTensor, func() { b.MaskDownsample(m, &q) }, "nil weight")
}

// TestUpscaleMasksThreshold: the fused op is UpscaleMasks then > threshold,
// bit for bit, on odd shapes and several planes; DownloadInto is Download.
func TestUpscaleMasksThreshold(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		for _, tc := range []struct {
			B, M, h, w int
			p          nn.MaskUpscale
			thr        float32
		}{
			{1, 1, 8, 8, nn.MaskUpscale{Pad: 32, InH: 32, InW: 24, OutH: 97, OutW: 130}, 0},
			{2, 3, 16, 16, nn.MaskUpscale{Pad: 64, InH: 41, InW: 64, OutH: 59, OutW: 93}, 0.25},
			{1, 2, 5, 7, nn.MaskUpscale{Pad: 20, InH: 20, InW: 11, OutH: 3, OutW: 2}, -0.5},
		} {
			t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
				x := b.Upload(randData(newRNG(40), tc.B*tc.M*tc.h*tc.w), tc.B, tc.M, tc.h, tc.w)
				u := b.UpscaleMasks(x, tc.p)
				ref := b.Download(u)
				into := make([]float32, len(ref))
				b.DownloadInto(into, u)
				require.Equal(t, ref, into)
				want := make([]bool, len(ref))
				for i, v := range ref {
					want[i] = v > tc.thr
				}
				got := make([]bool, len(ref))
				b.UpscaleMasksThreshold(x, tc.p, tc.thr, got)
				require.Equal(t, want, got)
			})
		}
	})
	b := New()
	x := b.Upload(make([]float32, 16), 1, 1, 4, 4)
	p := nn.MaskUpscale{Pad: 8, InH: 8, InW: 8, OutH: 5, OutW: 5}
	nntest.RequireFails(t, nn.ErrShape, func() { b.UpscaleMasksThreshold(x, p, 0, make([]bool, 24)) })
	nntest.RequireFails(t, nn.ErrShape, func() { b.DownloadInto(make([]float32, 15), x) })
	nntest.RequireFails(t, ErrTensor, func() { b.UpscaleMasksThreshold(nil, p, 0, nil) })
}
