package sam

import (
	"context"
	"fmt"

	"github.com/samgo/samgo/sam/nn"
)

// maskDecoder is MaskDecoder (segment_anything/modeling/mask_decoder.py):
// output tokens (an IoU token and one token per mask) are prepended to the
// prompt tokens, run through the two-way transformer with the image, then
// each mask token's hypernetwork MLP produces weights that are dotted with
// the upscaled image features to give that mask's logits; the IoU token's
// MLP predicts each mask's quality.
type maskDecoder struct {
	C, T         int       // transformer dim, mask tokens
	outTokens    nn.Tensor // (1, 1+T, C): [iou_token, mask_tokens]
	transformer  *twoWayTransformer
	up1W, up1B   nn.Tensor // ConvTranspose2d C → C/4, kernel 2 stride 2
	upNorm       norm      // LayerNorm2d(C/4)
	up2W, up2B   nn.Tensor // ConvTranspose2d C/4 → C/8
	hyper        [][]linear
	iouHead      []linear
	numMultimask int
}

func newMaskDecoder(w *weights, cfg *Config) *maskDecoder {
	p := "mask_decoder."
	d := &maskDecoder{C: cfg.PromptEmbedDim, T: cfg.NumMaskTokens(), numMultimask: cfg.NumMultimaskOutputs}
	iou, masks := w.host(p+"iou_token.weight"), w.host(p+"mask_tokens.weight")
	if w.err == nil {
		d.outTokens = w.b.UploadWeight(append(append([]float32{}, iou...), masks...), 1, 1+d.T, d.C)
	}
	d.transformer = newTwoWayTransformer(w, cfg)
	d.up1W, d.up1B = w.get(p+"output_upscaling.0.weight"), w.get(p+"output_upscaling.0.bias")
	d.upNorm = w.norm(p+"output_upscaling.1", cfg.UpscalingLayerNorm2dEps)
	d.up2W, d.up2B = w.get(p+"output_upscaling.3.weight"), w.get(p+"output_upscaling.3.bias")
	mlp := func(prefix string, depth int) []linear {
		var ls []linear
		for j := range depth {
			ls = append(ls, w.linear(fmt.Sprintf("%slayers.%d", prefix, j)))
		}
		return ls
	}
	for i := range d.T {
		d.hyper = append(d.hyper, mlp(fmt.Sprintf("%soutput_hypernetworks_mlps.%d.", p, i), 3))
	}
	d.iouHead = mlp(p+"iou_prediction_head.", cfg.IoUHeadDepth)
	return d
}

// runMLP is the decoder's MLP: ReLU after every layer but the last.
func runMLP(b nn.Backend, layers []linear, x nn.Tensor) nn.Tensor {
	s := nn.NewScope(b)
	defer s.Close()
	for i, l := range layers {
		act := nn.ActReLU
		if i == len(layers)-1 {
			act = nn.ActNone
		}
		x = l.forward(s, x, act)
	}
	return s.Keep(x)
}

// forward predicts masks for B prompts sharing one image embedding.
//
//	embedding (1, g·g, C) image tokens; densePE (1, g·g, C)
//	sparse (B, N, C) prompt tokens; dense (B, g·g, C) or nil (no mask input)
//
// It returns all T mask logits (B, T, 4g, 4g) and IoU predictions
// (B, T); the caller selects the multimask or single-mask outputs.
//
// trace, if non-nil, receives the transformer outputs and the upscaled
// features under the reference fixtures' names. Cancellation is checked
// between the transformer's layers and before the upscaling.
func (d *maskDecoder) forward(ctx context.Context, b nn.Backend, embedding, densePE, sparse, dense, noMask nn.Tensor, g int, trace func(string, nn.Tensor)) (masks, iou nn.Tensor, err error) {
	s := nn.NewScope(b)
	defer s.Close()
	B := sparse.Shape()[0]
	C := d.C

	// tokens = [iou_token, mask_tokens, sparse]: (B, 1+T+N, C).
	tokens := s.Concat(1, s.Repeat(d.outTokens, B), sparse)

	// src = repeat_interleave(embedding, B) + dense: (B, g·g, C); without a
	// mask input no_mask_embed broadcast over batch and tokens.
	if dense == nil {
		dense = noMask
	}
	rep := s.Repeat(embedding, B) // (1, g·g, C) → (B, g·g, C)
	src := s.Add(rep, dense)
	s.Done(rep)

	hs, keys, err := d.transformer.forward(ctx, s, src, densePE, tokens)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, nil, err
	}
	if keys != src {
		s.Done(src)
	}
	if trace != nil {
		trace("transformer_queries", hs)
		trace("transformer_keys", keys)
	}
	x := s.Reshape(keys, B, g, g, C)
	s.Done(keys)                // x holds the data
	upTokens := d.upscale(s, x) // (B, 4g·4g, C/8)
	if trace != nil {
		trace("upscaled", upTokens)
	}

	// Hypernetworks: mask token i → (B, 1, C/8); stacked (B, T, C/8).
	hyperOut := make([]nn.Tensor, d.T)
	for i := range d.T {
		hyperOut[i] = runMLP(s, d.hyper[i], s.Slice(hs, 1, 1+i, 2+i))
	}
	m := s.MatMulT(s.Concat(1, hyperOut...), upTokens) // (B, T, 16g²)
	masks = s.Keep(s.Reshape(m, B, d.T, 4*g, 4*g))
	iou = s.Keep(s.Reshape(runMLP(s, d.iouHead, s.Slice(hs, 1, 0, 1)), B, d.T)) // from the iou token
	return masks, iou, nil
}

// upscale is output_upscaling on the image tokens x (B, g, g, C), which
// it frees when done with (x must be b's: b is the caller's scope):
// ConvT 2×2/2 → LayerNorm2d → GELU → ConvT 2×2/2 → GELU, (B, 2g, 2g, C/4)
// then (B, 4g, 4g, C/8), returned as tokens (B, 16g², C/8). The maps grow
// 2× per step, so each is freed as soon as the next exists.
func (d *maskDecoder) upscale(b *nn.Scope, x nn.Tensor) nn.Tensor {
	sh := x.Shape()
	B, g, C := sh[0], sh[1], sh[3]
	then := func(prev, next nn.Tensor) nn.Tensor { b.Done(prev); return next }
	u := then(x, b.ConvTranspose2D(x, d.up1W, d.up1B, 2))
	u = then(u, d.upNorm.forward(b, u))
	u = then(u, b.Activation(u, nn.ActGELU))
	u = then(u, b.ConvTranspose2D(u, d.up2W, d.up2B, 2))
	u = then(u, b.Activation(u, nn.ActGELU))
	return b.Reshape(u, B, 16*g*g, C/8)
}

// selectOutputs keeps masks 1..T−1 (multimask) or mask 0, as MaskDecoder.forward.
func (d *maskDecoder) selectOutputs(b nn.Backend, masks, iou nn.Tensor, multimask bool) (nn.Tensor, nn.Tensor) {
	lo, hi := 0, 1
	if multimask {
		lo, hi = 1, d.T
	}
	m := b.Slice(masks, 1, lo, hi)
	s := b.Slice(iou, 1, lo, hi)
	return m, s
}
