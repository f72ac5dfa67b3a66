package sam

import (
	"context"
	"fmt"
	"math"

	"github.com/samgo/samgo/sam/nn"
)

// tinyViT is MobileSAM's image encoder, TinyViT (mobile_sam/modeling/
// tiny_vit_sam.py), distilled to SAM's embedding space so that SAM's prompt
// encoder and mask decoder run on its output unchanged:
//
//	patch_embed   Conv2d_BN 3×3/2 → GELU → Conv2d_BN 3×3/2         (B, S/4, S/4, D0)
//	layers[0]     ConvLayer: MBConv × depths[0], then PatchMerging
//	layers[1…]    BasicLayer: TinyViTBlock × depths[i], then PatchMerging (not after the last)
//	neck          conv 1×1 → LayerNorm2d → conv 3×3 → LayerNorm2d   (B, g, g, C)
//
// Feature maps are channels-last (B, H, W, C) throughout: the official
// NCHW maps permuted, and also the official (B, L, C) token sequences,
// L = H·W row-major, which is the same memory. Every Conv2d_BN has its
// BatchNorm folded into the conv at load (foldBatchNorm); the classifier
// head (norm_head, head) is not loaded: forward never calls it.
type tinyViT struct {
	cfg      *Config
	pe0, pe2 convBN // patch_embed.seq.0, seq.2
	stages   []tvStage
	neck     neck // as ImageEncoderViT's, from D_last
}

// tvStage is one of TinyViT.layers: its blocks (MBConv in stage 0,
// TinyViTBlock after) and the PatchMerging that follows (nil for the last).
type tvStage struct {
	blocks []tvBlockForward
	merge  *patchMerging
}

// tvBlockForward is a block of a stage: (B, H, W, D) → (B, H, W, D).
type tvBlockForward interface {
	forward(b nn.Backend, x nn.Tensor) nn.Tensor
}

// batchNormEps is torch.nn.BatchNorm2d's default eps, which Conv2d_BN
// keeps.
const batchNormEps = 1e-5

// convBN is Conv2d_BN (a bias-free conv followed by BatchNorm2d) with the
// BatchNorm folded in: one conv with bias, run by ConvAct with the
// activation that follows it fused.
type convBN struct {
	w, b nn.Tensor // (out, in/groups, k, k), (out)
	p    nn.Conv   // stride, pad, depthwise (groups = channels) or full
}

// forward is act(conv(x)) on x (B, H, W, in) → (B, OH, OW, out).
func (c convBN) forward(b nn.Backend, x nn.Tensor, act nn.Act) nn.Tensor {
	p := c.p
	p.Act = act
	return b.ConvAct(x, c.w, c.b, p)
}

// convBN loads the Conv2d_BN at prefix (prefix.c.weight, prefix.bn.*) with
// its BatchNorm folded (foldBatchNorm). Depthwise convs have groups equal
// to the channels (weights (C, 1, k, k)); the others groups = 1.
func (w *weights) convBN(prefix string, stride, pad int, depthwise bool) convBN {
	cw := w.host(prefix + ".c.weight")
	gamma := w.host(prefix + ".bn.weight")
	beta := w.host(prefix + ".bn.bias")
	mean := w.host(prefix + ".bn.running_mean")
	vr := w.host(prefix + ".bn.running_var")
	c := convBN{p: nn.Conv{Stride: stride, Pad: pad, Depthwise: depthwise}}
	if w.err != nil {
		return c
	}
	shape := w.shapeOf(prefix + ".c.weight")
	fw, fb := foldBatchNorm(cw, gamma, beta, mean, vr, batchNormEps)
	c.w = w.b.UploadWeight(fw, shape...)
	c.b = w.b.UploadWeight(fb, shape[0])
	return c
}

// foldBatchNorm folds an eval-mode BatchNorm2d into the bias-free conv
// before it. The conv then BatchNorm compute, per output channel o,
//
//	y = (conv(x; w)[o] − mean[o]) / √(var[o] + eps) · γ[o] + β[o]
//	  = conv(x; w')[o] + b'[o],  w'[o,…] = w[o,…]·γ[o]/√(var[o]+eps),
//	                             b'[o]   = β[o] − mean[o]·γ[o]/√(var[o]+eps)
//
// (Conv2d_BN.fuse). Computed in float64 and rounded once to float32, so the
// folded weights are the exact ones to float32 precision. w is (out, …)
// with len(w)/out values per output channel.
func foldBatchNorm(w, gamma, beta, mean, vr []float32, eps float64) (fw, fb []float32) {
	out := len(gamma)
	per := len(w) / out
	fw = make([]float32, len(w))
	fb = make([]float32, out)
	for o := range out {
		s := float64(gamma[o]) / math.Sqrt(float64(vr[o])+eps)
		for i := o * per; i < (o+1)*per; i++ {
			fw[i] = float32(float64(w[i]) * s)
		}
		fb[o] = float32(float64(beta[o]) - float64(mean[o])*s)
	}
	return fw, fb
}

// permuteQKV reorders the output rows of TinyViT's qkv Linear for
// nn.AttentionQKVBias. TinyViT's Attention views its qkv output (B, N, 3D)
// per head, qkv.view(B, N, heads, 3·hd).split([hd, hd, hd], dim=3): the
// channels are [q_0 k_0 v_0 | q_1 k_1 v_1 | …], each hd wide. The op takes
// [q | k | v] over all heads, [q_0 q_1 … | k_0 k_1 … | v_0 v_1 …], as SAM's
// ViT qkv. So row h·3hd + p·hd + i (p = 0, 1, 2 for q, k, v) moves to
// p·D + h·hd + i. v is (3D, cols) row-major: the weight (3D, D) with
// cols = D, or the bias (3D) with cols = 1.
func permuteQKV(v []float32, heads, hd, cols int) []float32 {
	D := heads * hd
	out := make([]float32, len(v))
	for h := range heads {
		for p := range 3 {
			for i := range hd {
				src := (h*3*hd + p*hd + i) * cols
				dst := (p*D + h*hd + i) * cols
				copy(out[dst:dst+cols], v[src:src+cols])
			}
		}
	}
	return out
}

// mbConv is MBConv: x → conv1 1×1 GELU → conv2 depthwise 3×3 GELU →
// conv3 1×1 → + x → GELU.
type mbConv struct{ conv1, conv2, conv3 convBN }

func (m *mbConv) forward(b nn.Backend, x nn.Tensor) nn.Tensor {
	s := nn.NewScope(b)
	defer s.Close()
	h := m.conv1.forward(s, x, nn.ActGELU) // (B, H, W, hidden)
	h = m.conv2.forward(s, h, nn.ActGELU)  // (B, H, W, hidden)
	h = m.conv3.forward(s, h, nn.ActNone)  // (B, H, W, D)
	h = s.Add(h, x)                        // x += shortcut
	return s.Keep(s.Activation(h, nn.ActGELU))
}

// patchMerging is PatchMerging: conv1 1×1 GELU → conv2 depthwise 3×3
// (stride 1 or 2, pad 1) GELU → conv3 1×1; (B, H, W, dim) →
// (B, H/stride, W/stride, out_dim). The official flatten(2).transpose(1, 2)
// to (B, L, out_dim) is this channels-last map as it is.
type patchMerging struct{ conv1, conv2, conv3 convBN }

func (m *patchMerging) forward(b nn.Backend, x nn.Tensor) nn.Tensor {
	s := nn.NewScope(b)
	defer s.Close()
	h := m.conv1.forward(s, x, nn.ActGELU) // (B, H, W, out)
	h = m.conv2.forward(s, h, nn.ActGELU)  // (B, H/s, W/s, out)
	return s.Keep(m.conv3.forward(s, h, nn.ActNone))
}

// tvBlock is TinyViTBlock:
//
//	x = x + attn(x)           windowed attention with its own LayerNorm
//	x = local_conv(x)         Conv2d_BN depthwise k×k, pad k/2, no activation
//	x = x + mlp(x)            LayerNorm → fc1 → GELU → fc2
type tvBlock struct {
	attnNorm  norm      // Attention.norm (eps 1e-5)
	qkv, proj linear    // qkv (3D, D), rows permuted to [q | k | v] (permuteQKV)
	biases    nn.Tensor // attention_biases (heads, ws²)
	heads, ws int
	localConv convBN
	mlpNorm   norm
	fc1, fc2  linear
}

// forward runs the block on x (B, H, W, D) (the official (B, L, C) with
// L = H·W).
func (blk *tvBlock) forward(b nn.Backend, x nn.Tensor) nn.Tensor {
	s := nn.NewScope(b)
	defer s.Close()
	sh := x.Shape()
	B, H, W, D := sh[0], sh[1], sh[2], sh[3]
	ws := blk.ws

	// Windows: when the map is one window, the tokens as they are;
	// otherwise zero-padded bottom/right to multiples of ws (F.pad) and
	// cut into windows (view → transpose → reshape), all BEFORE the
	// attention's LayerNorm: a padded token is zero there and leaves it as
	// the LayerNorm's bias, and takes part as a key (no mask), as in the
	// official code.
	var t nn.Tensor
	if H == ws && W == ws {
		t = s.Reshape(x, B, H*W, D) // (B, ws², D)
	} else {
		t = s.WindowPartition(x, ws) // (B·nH·nW, ws², D)
	}
	// Attention.forward: x = norm(x); qkv = qkv(x); per head
	// softmax(q·kᵀ·hd^-0.5 + attention_biases[h, attention_bias_idxs])·v;
	// proj.
	h := blk.attnNorm.forward(s, t)                                                    // (B', ws², D)
	qkv := blk.qkv.forward(s, h, nn.ActNone)                                           // (B', ws², 3D): [q | k | v]
	a := s.AttentionQKVBias(qkv, blk.heads, &nn.OffsetBias{Table: blk.biases, WS: ws}) // (B', ws², D)
	a = blk.proj.forward(s, a, nn.ActNone)                                             // (B', ws², D)
	if H == ws && W == ws {
		a = s.Reshape(a, B, H, W, D)
	} else {
		a = s.WindowUnpartition(a, ws, H, W) // window reverse, padding cropped: (B, H, W, D)
	}
	x = s.Add(x, a) // res_x + attn(x)

	// local_conv on the (B, C, H, W) view: depthwise, BatchNorm folded.
	x = blk.localConv.forward(s, x, nn.ActNone) // (B, H, W, D)

	// x + mlp(x): Mlp.norm → fc1 → GELU → fc2.
	m := blk.mlpNorm.forward(s, x)        // (B, H, W, D)
	m = blk.fc1.forward(s, m, nn.ActGELU) // (B, H, W, hidden)
	m = blk.fc2.forward(s, m, nn.ActNone) // (B, H, W, D)
	return s.Keep(s.Add(x, m))
}

// newTinyViT loads a TinyViT encoder (cfg.TinyViT) from the weights under
// image_encoder.
func newTinyViT(w *weights, cfg *Config) *tinyViT {
	t := &cfg.TinyViT
	e := &tinyViT{cfg: cfg}
	p := "image_encoder."
	// PatchEmbed.seq: Conv2d_BN(in, D0/2, 3, 2, 1), GELU, Conv2d_BN(D0/2, D0, 3, 2, 1).
	e.pe0 = w.convBN(p+"patch_embed.seq.0", 2, 1, false)
	e.pe2 = w.convBN(p+"patch_embed.seq.2", 2, 1, false)
	eps := cfg.EncoderLayerNormEps
	for i, D := range t.EmbedDims {
		l := fmt.Sprintf("%slayers.%d.", p, i)
		var st tvStage
		for j := range t.Depths[i] {
			b := fmt.Sprintf("%sblocks.%d.", l, j)
			if i == 0 {
				st.blocks = append(st.blocks, &mbConv{
					conv1: w.convBN(b+"conv1", 1, 0, false),
					conv2: w.convBN(b+"conv2", 1, 1, true),
					conv3: w.convBN(b+"conv3", 1, 0, false),
				})
				continue
			}
			heads := t.NumHeads[i]
			blk := &tvBlock{
				attnNorm: w.norm(b+"attn.norm", eps),
				proj:     w.linear(b + "attn.proj"),
				biases:   w.get(b + "attn.attention_biases"),
				heads:    heads,
				ws:       t.WindowSizes[i],
				mlpNorm:  w.norm(b+"mlp.norm", eps),
				fc1:      w.linear(b + "mlp.fc1"),
				fc2:      w.linear(b + "mlp.fc2"),
			}
			blk.qkv = w.tinyViTQKV(b+"attn.qkv", heads, D)
			k := t.LocalConvSize
			blk.localConv = w.convBN(b+"local_conv", 1, k/2, true)
			st.blocks = append(st.blocks, blk)
		}
		if i+1 < len(t.EmbedDims) {
			st.merge = &patchMerging{
				conv1: w.convBN(l+"downsample.conv1", 1, 0, false),
				conv2: w.convBN(l+"downsample.conv2", t.PatchMergingStrides[i], 1, true),
				conv3: w.convBN(l+"downsample.conv3", 1, 0, false),
			}
		}
		e.stages = append(e.stages, st)
	}
	e.neck = w.neck(p+"neck", cfg.NeckLayerNorm2dEps)
	return e
}

// tinyViTQKV loads TinyViT's qkv Linear (weight (3D, D), bias (3D)) with
// its rows in the order nn.AttentionQKVBias reads (permuteQKV).
func (w *weights) tinyViTQKV(prefix string, heads, D int) linear {
	wv, bv := w.host(prefix+".weight"), w.host(prefix+".bias")
	if w.err != nil {
		return linear{}
	}
	hd := D / heads
	return linear{
		w: w.b.UploadWeight(permuteQKV(wv, heads, hd, D), 3*D, D),
		b: w.b.UploadWeight(permuteQKV(bv, heads, hd, 1), 3*D),
	}
}

// forwardCtx maps the normalised, padded image x (B, S, S, 3) to the image
// embedding (B, g, g, C), as TinyViT.forward_features. trace, if not nil,
// receives the patch embedding, every block's output and every stage's
// output (after its PatchMerging) under the names tinyViTTrace gives.
// Cancellation is checked between blocks.
func (e *tinyViT) forwardCtx(ctx context.Context, b nn.Backend, x nn.Tensor, trace func(name string, t nn.Tensor)) (nn.Tensor, error) {
	defer nn.Range(b, "image encoder")()
	s := nn.NewScope(b)
	defer s.Close()
	if trace == nil {
		trace = func(string, nn.Tensor) {}
	}

	// PatchEmbed: (B, S, S, 3) → (B, S/2, S/2, D0/2) → (B, S/4, S/4, D0).
	h := func() nn.Tensor {
		ps := nn.NewScope(s)
		defer ps.Close()
		h := e.pe0.forward(ps, x, nn.ActGELU)
		return ps.Keep(e.pe2.forward(ps, h, nn.ActNone))
	}()
	trace("patch_embed", h)

	n := 0 // blocks so far, all stages
	for i, st := range e.stages {
		for j, blk := range st.blocks {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			end := nn.Range(s, fmt.Sprintf("encoder block %d", n))
			h2 := blk.forward(s, h) // (B, H, W, D): each block's scope frees its intermediates
			end()
			s.Release(h)
			h = h2
			n++
			trace(fmt.Sprintf("layers.%d.blocks.%d", i, j), h)
		}
		if st.merge != nil {
			end := nn.Range(s, fmt.Sprintf("patch merging %d", i))
			h2 := st.merge.forward(s, h) // (B, H/stride, W/stride, D_{i+1})
			end()
			s.Release(h)
			h = h2
		}
		trace(fmt.Sprintf("layers.%d", i), h)
	}

	// The neck on the (B, g, g, D_last) map (the official
	// x.view(B, 64, 64, C).permute(0, 3, 1, 2)).
	return s.Keep(e.neck.forward(s, h, trace)), nil
}
