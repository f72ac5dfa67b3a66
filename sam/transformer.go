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
	qp := a.q.forward(b, q, nn.ActNone)
	kp := a.k.forward(b, k, nn.ActNone)
	vp := a.v.forward(b, v, nn.ActNone)
	o := b.Attention(qp, kp, vp, a.heads, nil)
	b.Release(qp, kp, vp)
	out := a.out.forward(b, o, nn.ActNone)
	b.Release(o)
	return out
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
	queries, keys = tokens, image
	// drop releases what the layers made (not the inputs).
	drop := func() {
		if queries != tokens {
			b.Release(queries)
		}
		if keys != image {
			b.Release(keys)
		}
	}
	for _, l := range t.layers {
		if err := ctx.Err(); err != nil {
			drop()
			return nil, nil, err
		}
		q2, k2 := l.forward(b, queries, keys, tokens, imagePE)
		drop()
		queries, keys = q2, k2
	}
	if err := ctx.Err(); err != nil {
		drop()
		return nil, nil, err
	}
	// Final token → image attention.
	q := b.Add(queries, tokens)
	k := b.Add(keys, imagePE)
	a := t.final.forward(b, q, k, keys)
	b.Release(q, k)
	out := t.normFinal.addForward(b, queries, a)
	b.Release(a)
	if queries != tokens {
		b.Release(queries)
	}
	return out, keys, nil
}

// forward runs one block. queryPE is the original token tensor, keyPE the
// image PE; both are added before every attention but never to values.
func (l *twoWayBlock) forward(b nn.Backend, queries, keys, queryPE, keyPE nn.Tensor) (nn.Tensor, nn.Tensor) {
	// (1) Self-attention. Layer 0 has neither PE nor residual.
	if l.skipFirstPE {
		a := l.selfAttn.forward(b, queries, queries, queries)
		queries = l.norm1.forward(b, a)
		b.Release(a)
	} else {
		q := b.Add(queries, queryPE)
		a := l.selfAttn.forward(b, q, q, queries)
		b.Release(q)
		queries = l.norm1.addForward(b, queries, a)
		b.Release(a)
	}

	// (2) Tokens attend to the image.
	q := b.Add(queries, queryPE)
	k := b.Add(keys, keyPE)
	a := l.t2i.forward(b, q, k, keys)
	b.Release(q)
	q2 := l.norm2.addForward(b, queries, a)
	b.Release(a, queries)
	queries = q2

	// (3) MLP on the tokens.
	m := l.lin1.forward(b, queries, nn.ActReLU)
	m2 := l.lin2.forward(b, m, nn.ActNone)
	b.Release(m)
	q3 := l.norm3.addForward(b, queries, m2)
	b.Release(m2, queries)
	queries = q3

	// (4) The image attends to the tokens.
	q = b.Add(queries, queryPE)
	a = l.i2t.forward(b, k, q, queries)
	b.Release(q, k)
	keys = l.norm4.addForward(b, keys, a)
	b.Release(a)
	return queries, keys
}
