package cpu

import (
	"github.com/samgo/samgo/sam/nn"
)

// MaskDownsample: masks (B, H, W) → (B, H/4, W/4, C), the prompt encoder's
// mask_downscaling stack on a one-channel map:
//
//	conv 2×2/2 → LayerNorm2d → GELU → conv 2×2/2 → LayerNorm2d → GELU → conv 1×1
//
// (LayerNorm2d normalises over channels; GELU is fused into its output pass).
func (b *Backend) MaskDownsample(masks nn.Tensor, p *nn.MaskDownsampler) nn.Tensor {
	const op = "MaskDownsample"
	m := tensor(op, "masks", masks)
	if p == nil {
		nn.Fail(op, ErrTensor, "no weights")
	}
	w := func(name string, t nn.Tensor) *Tensor { return tensor(op, name, t) }
	c1w, c1b, ln1w, ln1b := w("Conv1W", p.Conv1W), w("Conv1B", p.Conv1B), w("LN1W", p.LN1W), w("LN1B", p.LN1B)
	c2w, c2b, ln2w, ln2b := w("Conv2W", p.Conv2W), w("Conv2B", p.Conv2B), w("LN2W", p.LN2W), w("LN2B", p.LN2B)
	c3w, c3b := w("Conv3W", p.Conv3W), w("Conv3B", p.Conv3B)
	_, c1, c2, C := nn.MaskDownsampleShape(m.shape, nn.MaskDownsamplerShapes{
		Conv1W: c1w.shape, Conv1B: c1b.shape, LN1W: ln1w.shape, LN1B: ln1b.shape,
		Conv2W: c2w.shape, Conv2B: c2b.shape, LN2W: ln2w.shape, LN2B: ln2b.shape,
		Conv3W: c3w.shape, Conv3B: c3b.shape,
	})
	B, H, W := m.shape[0], m.shape[1], m.shape[2]

	x := &Tensor{shape: []int{B, H, W, 1}, data: m.data}      // (B, H, W, 1)
	h1 := b.conv2d(x, c1w, c1, 2, c1b.data, 2, 0, nn.ActNone) // (B, H/2, W/2, c1)
	b.layerNorm(h1.data, ln1w.data, ln1b.data, p.Eps, nn.ActGELU, h1.data)
	h2 := b.conv2d(h1, c2w, c2, 2, c2b.data, 2, 0, nn.ActNone) // (B, H/4, W/4, c2)
	b.Release(h1)
	b.layerNorm(h2.data, ln2w.data, ln2b.data, p.Eps, nn.ActGELU, h2.data)
	out := b.conv2d(h2, c3w, C, 1, c3b.data, 1, 0, nn.ActNone) // (B, H/4, W/4, C)
	b.Release(h2)
	return out
}

// UpscaleMasks: logits (B, M, h, w) → (B, M, OutH, OutW), SAM's
// postprocess_masks as two bilinear resizes with F.interpolate(mode=
// "bilinear", align_corners=False) semantics: (h, w) → (Pad, Pad), crop to
// [:InH, :InW], then → (OutH, OutW). The first resize is evaluated only
// where the crop keeps it.
func (b *Backend) UpscaleMasks(logits nn.Tensor, p nn.MaskUpscale) nn.Tensor {
	const op = "UpscaleMasks"
	x := tensor(op, "logits", logits)
	shape := nn.UpscaleMasksShape(x.shape, p)
	B, M, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	planes := B * M
	mid := b.newTensor(planes, p.InH, p.InW) // (B·M, InH, InW)
	b.resize(x.data, planes, h, w, mid.data, p.InH, p.InW, linearTable(h, p.Pad), linearTable(w, p.Pad))
	out := b.newTensor(shape...) // (B, M, OutH, OutW)
	b.resize(mid.data, planes, p.InH, p.InW, out.data, p.OutH, p.OutW, linearTable(p.InH, p.OutH), linearTable(p.InW, p.OutW))
	b.Release(mid)
	return out
}

// UpscaleMasksThreshold is UpscaleMasks followed by out > threshold into
// dst (nn.MaskThresholder): the second resize is evaluated a row at a time
// and thresholded there, so no full-size float32 plane exists.
func (b *Backend) UpscaleMasksThreshold(logits nn.Tensor, p nn.MaskUpscale, threshold float32, dst []bool) {
	const op = "UpscaleMasksThreshold"
	x := tensor(op, "logits", logits)
	shape := nn.UpscaleMasksShape(x.shape, p)
	if len(dst) != nn.Numel(shape) {
		nn.Fail(op, nn.ErrShape, "%d mask values for %s", len(dst), nn.ShapeString(shape))
	}
	B, M, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	planes := B * M
	mid := b.newTensor(planes, p.InH, p.InW) // (B·M, InH, InW)
	b.resize(x.data, planes, h, w, mid.data, p.InH, p.InW, linearTable(h, p.Pad), linearTable(w, p.Pad))
	rows, cols := linearTable(p.InH, p.OutH), linearTable(p.InW, p.OutW)
	b.parallelFor(planes*p.OutH, grain(8*p.OutW), func(_, lo, hi int) {
		row := make([]float32, p.OutW)
		for r := lo; r < hi; r++ {
			pl, y := r/p.OutH, r%p.OutH
			resizeRow(mid.data[pl*p.InH*p.InW:], p.InW, rows[y], cols, row)
			d := dst[r*p.OutW : (r+1)*p.OutW]
			for i, v := range row {
				d[i] = v > threshold
			}
		}
	})
	b.Release(mid)
}

// linearTap is one output index of a linear resize: out = l0·in[i0] + l1·in[i1].
type linearTap struct {
	i0, i1 int
	l0, l1 float32
}

// linearTable returns the taps of a 1-D linear resize from in to out
// samples, align_corners=False, as PyTorch computes them
// (aten/src/ATen/native/UpSample.h: area_pixel_compute_scale,
// area_pixel_compute_source_index, guard_index_and_lambda), in float32:
//
//	scale = in/out; src = max(scale·(i + 0.5) − 0.5, 0)
//	i0 = min(⌊src⌋, in−1); i1 = i0 + (1 if i0 < in−1); l1 = clamp(src − i0, 0, 1); l0 = 1 − l1
func linearTable(in, out int) []linearTap {
	t := make([]linearTap, out)
	scale := float32(in) / float32(out)
	for i := range t {
		src := max(scale*(float32(i)+0.5)-0.5, 0)
		i0 := min(int(src), in-1) // src ≥ 0: truncation is floor
		i1 := i0
		if i0 < in-1 {
			i1++
		}
		l1 := min(max(src-float32(i0), 0), 1)
		t[i] = linearTap{i0: i0, i1: i1, l0: 1 - l1, l1: l1}
	}
	return t
}

// resize computes, per plane, the bilinear resize of src (inH × inW) at the
// output positions rows × cols (the first len(rows) / len(cols) entries of
// the tables, so a crop of the resized image costs only its own pixels):
//
//	out[y, x] = ly0·(lx0·s[y0, x0] + lx1·s[y0, x1]) + ly1·(lx0·s[y1, x0] + lx1·s[y1, x1])
//
// (the evaluation order of PyTorch's CPU kernel). dst is (planes, outH, outW).
func (b *Backend) resize(src []float32, planes, inH, inW int, dst []float32, outH, outW int, rows, cols []linearTap) {
	rows, cols = rows[:outH], cols[:outW]
	b.parallelFor(planes*outH, grain(8*outW), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			pl, y := r/outH, r%outH
			resizeRow(src[pl*inH*inW:], inW, rows[y], cols, dst[r*outW:(r+1)*outW])
		}
	})
}

// resizeRow computes one output row d (len(cols) values) of a bilinear
// resize of the plane src (rows of inW values) at vertical tap ty.
func resizeRow(src []float32, inW int, ty linearTap, cols []linearTap, d []float32) {
	s0 := src[ty.i0*inW:][:inW]
	s1 := src[ty.i1*inW:][:inW]
	for x, tx := range cols {
		top := tx.l0*s0[tx.i0] + tx.l1*s0[tx.i1]
		bot := tx.l0*s1[tx.i0] + tx.l1*s1[tx.i1]
		d[x] = ty.l0*top + ty.l1*bot
	}
}
