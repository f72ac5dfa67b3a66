//go:build cuda

package gpu

import (
	"unsafe"

	"github.com/samgo/samgo/bindings"
	"github.com/samgo/samgo/sam/nn"
)

// MaskDownsample: masks (B, H, W) → (B, H/4, W/4, C), the prompt encoder's
// mask_downscaling stack
//
//	conv 2×2/2 → LayerNorm2d → GELU → conv 2×2/2 → LayerNorm2d → GELU → conv 1×1
//
// fused in samk_mask_downsample when H and W are multiples of 4 (SAM's
// 4g×4g mask inputs always are); other sizes run the same stack as
// separate ops (im2col + GEMM, layernorm, GELU), which floors H/2 and H/4
// as the convolutions do.
func (b *Backend) MaskDownsample(masks nn.Tensor, p *nn.MaskDownsampler) nn.Tensor {
	const op = "MaskDownsample"
	c := b.begin(op)
	defer c.end()
	m := c.input("masks", masks)
	if p == nil {
		nn.Fail(op, ErrTensor, "no weights")
	}
	c1w, c1b, ln1w, ln1b := c.input("Conv1W", p.Conv1W), c.input("Conv1B", p.Conv1B), c.input("LN1W", p.LN1W), c.input("LN1B", p.LN1B)
	c2w, c2b, ln2w, ln2b := c.input("Conv2W", p.Conv2W), c.input("Conv2B", p.Conv2B), c.input("LN2W", p.LN2W), c.input("LN2B", p.LN2B)
	c3w, c3b := c.input("Conv3W", p.Conv3W), c.input("Conv3B", p.Conv3B)
	shape, c1, c2, C := nn.MaskDownsampleShape(m.shape, nn.MaskDownsamplerShapes{
		Conv1W: c1w.shape, Conv1B: c1b.shape, LN1W: ln1w.shape, LN1B: ln1b.shape,
		Conv2W: c2w.shape, Conv2B: c2b.shape, LN2W: ln2w.shape, LN2B: ln2b.shape,
		Conv3W: c3w.shape, Conv3B: c3b.shape,
	})
	B, H, W := m.shape[0], m.shape[1], m.shape[2]

	if H%4 != 0 || W%4 != 0 || B == 0 {
		return c.maskDownsampleUnfused(m, c1w, c1b, ln1w, ln1b, c2w, c2b, ln2w, ln2b, c3w, c3b, p.Eps)
	}
	out := c.out(shape...) // (B, H/4, W/4, C)
	kp := bindings.MaskDownsampleParams{
		DType: b.dtype, Mask: m.ptr(), Out: out.ptr(),
		Batch: B, H: H, W: W, C1: c1, C2: c2, C: C,
		Conv1W: c1w.ptr(), Conv1B: c1b.ptr(), LN1W: ln1w.ptr(), LN1B: ln1b.ptr(),
		Conv2W: c2w.ptr(), Conv2B: c2b.ptr(), LN2W: ln2w.ptr(), LN2B: ln2b.ptr(),
		Conv3W: c3w.ptr(), Conv3B: c3b.ptr(), Eps: p.Eps,
	}
	wsBytes, err := bindings.MaskDownsampleWorkspaceBytes(&kp)
	c.check(err)
	ws := c.scratchBytes(wsBytes)
	c.check(bindings.MaskDownsample(&kp, ws, wsBytes, c.s))
	return out
}

// maskDownsampleUnfused is the stack as separate ops (sizes the fused
// kernel does not take).
func (c *call) maskDownsampleUnfused(m, c1w, c1b, ln1w, ln1b, c2w, c2b, ln2w, ln2b, c3w, c3b *Tensor, eps float32) *Tensor {
	B, H, W := m.shape[0], m.shape[1], m.shape[2]
	x := &Tensor{shape: []int{B, H, W, 1}, dtype: m.dtype, dev: m.dev, buf: m.buf} // (B, H, W, 1), a view
	h1 := c.conv2d(x, c1w, c1b, 2, 0, bindings.ActNone)                            // (B, H/2, W/2, c1)
	c.layerNorm(h1, nil, nil, h1, ln1w, ln1b, eps)
	c.actInPlace(h1, bindings.ActGELU)
	h2 := c.conv2d(h1, c2w, c2b, 2, 0, bindings.ActNone) // (B, H/4, W/4, c2)
	c.layerNorm(h2, nil, nil, h2, ln2w, ln2b, eps)
	c.actInPlace(h2, bindings.ActGELU)
	out := c.conv2d(h2, c3w, c3b, 1, 0, bindings.ActNone) // (B, H/4, W/4, C)
	// h1 and h2 are intermediates, not results: hand them back now (the
	// stream orders their reuse after the convolutions that read them).
	c.outs = c.outs[:len(c.outs)-3]
	c.outs = append(c.outs, out)
	c.b.releaseTensor(h1)
	c.b.releaseTensor(h2)
	return out
}

// UpscaleMasks: logits (B, M, h, w) → (B, M, OutH, OutW) float32 (in both
// precisions), SAM's postprocess_masks: bilinear to Pad×Pad, crop to
// InH×InW, bilinear to OutH×OutW, fused in samk_upscale_masks.
func (b *Backend) UpscaleMasks(logits nn.Tensor, p nn.MaskUpscale) nn.Tensor {
	const op = "UpscaleMasks"
	c := b.begin(op)
	defer c.end()
	x := c.tensor("logits", logits) // the kernel reads either precision
	out := c.newTensor(bindings.F32, nn.UpscaleMasksShape(x.shape, p)...)
	if out.numel() > 0 {
		c.upscale(x, p, out.ptr(), 0, 0)
	}
	return out
}

// UpscaleMasksThreshold is UpscaleMasks followed by logit > threshold,
// straight into dst (nn.MaskThresholder): samk_upscale_masks' uint8
// output, one byte a pixel on the device and over the bus instead of a
// float32 plane, copied into dst's memory (the kernel writes 0 or 1, Go's
// representation of false and true).
func (b *Backend) UpscaleMasksThreshold(logits nn.Tensor, p nn.MaskUpscale, threshold float32, dst []bool) {
	const op = "UpscaleMasksThreshold"
	c := b.begin(op)
	defer c.end()
	x := c.tensor("logits", logits)
	n := nn.Numel(nn.UpscaleMasksShape(x.shape, p))
	if len(dst) != n {
		nn.Fail(op, nn.ErrShape, "%d mask pixels for %d", len(dst), n)
	}
	if n == 0 {
		return
	}
	out := c.scratchBytes(int64(n))
	c.upscale(x, p, out, 1, threshold)
	c.check(b.stage.download(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), n), out, b.stream))
}

// upscale runs samk_upscale_masks from x into out: float32 logits
// (mode 0) or uint8 logit > threshold (mode 1).
func (c *call) upscale(x *Tensor, p nn.MaskUpscale, out unsafe.Pointer, mode int, threshold float32) {
	B, M, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	kp := bindings.UpscaleParams{
		DType: x.dtype, In: x.ptr(), Out: out,
		Planes: B * M, H: h, W: w, Pad: p.Pad, InH: p.InH, InW: p.InW, OutH: p.OutH, OutW: p.OutW,
		OutMode: mode, Threshold: threshold,
	}
	wsBytes, err := bindings.UpscaleMasksWorkspaceBytes(&kp)
	c.check(err)
	ws := c.scratchBytes(wsBytes)
	c.check(bindings.UpscaleMasks(&kp, ws, wsBytes, c.s))
}
