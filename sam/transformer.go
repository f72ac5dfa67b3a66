package sam

import (
	"context"
	"fmt"

	"github.com/samgo/samgo/sam/nn"
)

// twoWayTransformer is TwoWayTransformer (segment_anything/modeling/transformer.py):
// prompt tokens (queries) and image tokens (keys) attend to each other in
// both directions, depth times, then the tokens attend to the image once more.
type twoWayTransformer struct {
	layers    []*twoWayBlock
	final     *attention // token → image
	normFinal norm
}

// twoWayBlock is TwoWayAttentionBlock: (1) self-attention of the tokens,
// (2) tokens → image cross-attention, (3) MLP on the tokens, (4) image →
// tokens cross-attention; each followed by a LayerNorm.
type twoWayBlock struct {
	selfAttn, t2i, i2t         *attention
	norm1, norm2, norm3, norm4 norm
	lin1, lin2                 linear // MLP with ReLU
	skipFirstPE                bool   // layer 0: no PE and no residual in self-attention
}

// attention is the decoder's Attention: q/k/v projections to an internal
// width (C, or C/2 for the cross attentions), heads, output projection.
type attention struct {
	q, k, v, out linear
	heads        int
}

func newAttention(w *weights, prefix string, heads int) *attention {
	return &attention{
		q: w.linear(prefix + "q_proj"), k: w.linear(prefix + "k_proj"),
		v: w.linear(prefix + "v_proj"), out: w.linear(prefix + "out_proj"),
		heads: heads,
	}
}

// forward: q (B, Nq, C), k and v (B, Nk, C) → (B, Nq, C). Scale 1/√head_dim.
func (a *attention) forward(b nn.Backend, q, k, v nn.Tensor) nn.Tensor {
	s := nn.NewScope(b)
	defer s.Close()
	qp := a.q.forward(s, q, nn.ActNone)
	kp := a.k.forward(s, k, nn.ActNone)
	vp := a.v.forward(s, v, nn.ActNone)
	o := s.Attention(qp, kp, vp, a.heads, nil)
	s.Done(qp, kp, vp) // before the projection: image-sized in the cross attentions
	return s.Keep(a.out.forward(s, o, nn.ActNone))
}

func newTwoWayTransformer(w *weights, cfg *Config) *twoWayTransformer {
	p := "mask_decoder.transformer."
	eps := cfg.DecoderLayerNormEps
	h := cfg.DecoderNumHeads
	t := &twoWayTransformer{}
	for i := range cfg.DecoderDepth {
		lp := fmt.Sprintf("%slayers.%d.", p, i)
		t.layers = append(t.layers, &twoWayBlock{
			selfAttn:    newAttention(w, lp+"self_attn.", h),
			t2i:         newAttention(w, lp+"cross_attn_token_to_image.", h),
			i2t:         newAttention(w, lp+"cross_attn_image_to_token.", h),
			norm1:       w.norm(lp+"norm1", eps),
			norm2:       w.norm(lp+"norm2", eps),
			norm3:       w.norm(lp+"norm3", eps),
			norm4:       w.norm(lp+"norm4", eps),
			lin1:        w.linear(lp + "mlp.lin1"),
			lin2:        w.linear(lp + "mlp.lin2"),
			skipFirstPE: i == 0,
		})
	}
	t.final = newAttention(w, p+"final_attn_token_to_image.", h)
	t.normFinal = w.norm(p+"norm_final_attn", eps)
	return t
}

// forward: image (B, HW, C) (image embedding + dense prompt), imagePE
// (1, HW, C), tokens (B, T, C) → updated tokens (B, T, C) and image (B, HW, C).
// A cancelled ctx stops it between layers with ctx's error (and nothing
// returned).
func (t *twoWayTransformer) forward(ctx context.Context, b nn.Backend, image, imagePE, tokens nn.Tensor) (queries, keys nn.Tensor, err error) {
	s := nn.NewScope(b)
	defer s.Close()
	queries, keys = tokens, image
	for _, l := range t.layers {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		q, k := l.forward(s, queries, keys, tokens, imagePE)
		s.Done(queries, keys) // the previous layer's (not the inputs)
		queries, keys = q, k
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	// Final token → image attention.
	k := s.Add(keys, imagePE)
	a := t.final.forward(s, s.Add(queries, tokens), k, keys)
	s.Done(k)
	return s.Keep(t.normFinal.addForward(s, queries, a)), s.Keep(keys), nil
}

// forward runs one block (TwoWayAttentionBlock). queryPE is the original
// token tensor, keyPE the image PE; both are added before every attention
// but never to values. Tokens are a few KiB; the image-sized tensors
// (B, HW, C) are freed at their last use.
func (l *twoWayBlock) forward(b nn.Backend, queries, keys, queryPE, keyPE nn.Tensor) (nn.Tensor, nn.Tensor) {
	s := nn.NewScope(b)
	defer s.Close()
	// residual is norm(x + y), x and y freed (the inputs excepted).
	residual := func(n norm, x, y nn.Tensor) nn.Tensor {
		out := n.addForward(s, x, y)
		s.Done(x, y)
		return out
	}
	// (1) Self-attention. Layer 0 has neither PE nor residual.
	if l.skipFirstPE {
		queries = l.norm1.forward(s, l.selfAttn.forward(s, queries, queries, queries))
	} else {
		q := s.Add(queries, queryPE)
		queries = residual(l.norm1, queries, l.selfAttn.forward(s, q, q, queries))
	}

	// (2) Tokens attend to the image.
	k := s.Add(keys, keyPE) // (B, HW, C), also the keys of (4)
	queries = residual(l.norm2, queries, l.t2i.forward(s, s.Add(queries, queryPE), k, keys))

	// (3) MLP on the tokens.
	h := l.lin1.forward(s, queries, nn.ActReLU) // (B, T, mlp)
	m := l.lin2.forward(s, h, nn.ActNone)
	s.Done(h)
	queries = residual(l.norm3, queries, m)

	// (4) The image attends to the tokens.
	a := l.i2t.forward(s, k, s.Add(queries, queryPE), queries) // (B, HW, C)
	s.Done(k)
	return s.Keep(queries), s.Keep(residual(l.norm4, keys, a))
}
