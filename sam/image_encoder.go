package sam

import (
	"context"
	"fmt"

	"github.com/samgo/samgo/sam/nn"
)

// imageEncoder is ImageEncoderViT (segment_anything/modeling/image_encoder.py):
// patch embedding, absolute position embedding, a stack of ViT blocks with
// windowed or global attention and decomposed relative-position bias, and a
// convolutional neck that maps to the prompt dimension C.
type imageEncoder struct {
	cfg            *Config
	patchW, patchB nn.Tensor // (D, 3, p, p), (D)
	posEmbed       nn.Tensor // (1, g, g, D) or nil
	blocks         []*vitBlock
	neck           neck
}

// vitBlock is Block: x = x + attn(norm1(x)); x = x + mlp(norm2(x)).
type vitBlock struct {
	norm1, norm2 norm
	qkv, proj    linear // qkv (3D, D): output channels [q | k | v]
	relH, relW   nn.Tensor
	lin1, lin2   linear
	heads        int
	window       int // 0: global attention over the whole g×g grid
}

func newImageEncoder(w *weights, cfg *Config) *imageEncoder {
	e := &imageEncoder{cfg: cfg}
	p := "image_encoder."
	e.patchW, e.patchB = w.get(p+"patch_embed.proj.weight"), w.get(p+"patch_embed.proj.bias")
	if cfg.EncoderUseAbsPos {
		e.posEmbed = w.get(p + "pos_embed")
	}
	eps := cfg.EncoderLayerNormEps
	for i := range cfg.EncoderDepth {
		bp := fmt.Sprintf("%sblocks.%d.", p, i)
		blk := &vitBlock{
			norm1: w.norm(bp+"norm1", eps),
			norm2: w.norm(bp+"norm2", eps),
			qkv:   linear{w: w.get(bp + "attn.qkv.weight")},
			proj:  w.linear(bp + "attn.proj"),
			lin1:  w.linear(bp + "mlp.lin1"),
			lin2:  w.linear(bp + "mlp.lin2"),
			heads: cfg.EncoderNumHeads,
		}
		if cfg.EncoderQKVBias {
			blk.qkv.b = w.get(bp + "attn.qkv.bias")
		}
		n := cfg.GridSize()
		if !cfg.IsGlobal(i) {
			blk.window = cfg.EncoderWindowSize
			n = blk.window
		}
		if cfg.EncoderUseRelPos {
			blk.relH = relPosTable(w, bp+"attn.rel_pos_h", n)
			blk.relW = relPosTable(w, bp+"attn.rel_pos_w", n)
		}
		e.blocks = append(e.blocks, blk)
	}
	e.neck = w.neck(p+"neck", cfg.NeckLayerNorm2dEps)
	return e
}

// relPosTable uploads a rel_pos table for an n×n attention grid, resized to
// 2n−1 rows as get_rel_pos does (F.interpolate, mode="linear",
// align_corners=False) when the stored length differs.
func relPosTable(w *weights, name string, n int) nn.Tensor {
	v := w.host(name)
	if v == nil {
		return nil
	}
	shape := w.shapeOf(name) // (L, head_dim)
	L, d := shape[0], shape[1]
	want := 2*n - 1
	if L != want {
		v = interpolateLinear(v, L, d, want)
	}
	return w.b.UploadWeight(v, want, d)
}

// interpolateLinear resizes the rows of an (L, d) table to (out, d) with
// PyTorch's 1-D linear interpolation (align_corners=False).
func interpolateLinear(v []float32, L, d, out int) []float32 {
	res := make([]float32, out*d)
	scale := float32(L) / float32(out)
	for i := range out {
		src := max(scale*(float32(i)+0.5)-0.5, 0)
		i0 := min(int(src), L-1)
		i1 := min(i0+1, L-1)
		l1 := src - float32(i0)
		l0 := 1 - l1
		for c := range d {
			res[i*d+c] = l0*v[i0*d+c] + l1*v[i1*d+c]
		}
	}
	return res
}

// forwardCtx maps the normalised, padded image x (B, S, S, 3) to the image
// embedding (B, g, g, C). Each block's output goes to trace if non-nil
// (tests compare them with the reference). Cancellation is checked between
// blocks. Every intermediate lives in the scope s (freed on every return);
// the block outputs are released as soon as the next block has run, so
// that no more than two of them are alive.
func (e *imageEncoder) forwardCtx(ctx context.Context, b nn.Backend, x nn.Tensor, trace func(name string, t nn.Tensor)) (nn.Tensor, error) {
	defer nn.Range(b, "image encoder")()
	s := nn.NewScope(b)
	defer s.Close()
	if trace == nil {
		trace = func(string, nn.Tensor) {}
	}
	h := s.Conv2D(x, e.patchW, e.patchB, e.cfg.PatchSize, 0) // (B, g, g, D)
	if e.posEmbed != nil {
		conv := h
		h = s.Add(conv, e.posEmbed)
		s.Release(conv)
	}
	trace("patch_embed", h)
	for i, blk := range e.blocks {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := nn.Range(s, fmt.Sprintf("encoder block %d", i))
		next := blk.forward(s, h) // (B, g, g, D)
		end()
		s.Release(h)
		h = next
		trace(fmt.Sprintf("block_%d", i), h)
	}
	return s.Keep(e.neck.forward(s, h, nil)), nil
}

// neck is the image encoders' convolutional neck (ImageEncoderViT.neck;
// MobileSAM's TinyViT has the same): conv1×1 → LayerNorm2d → conv3×3
// (pad 1) → LayerNorm2d, no biases, from the last feature map (B, g, g, D)
// to the embedding (B, g, g, C).
type neck struct {
	w0, w2   nn.Tensor // (C, D, 1, 1), (C, C, 3, 3)
	ln1, ln3 norm
}

// neck loads prefix.0 … prefix.3.
func (w *weights) neck(prefix string, eps float32) neck {
	return neck{
		w0: w.get(prefix + ".0.weight"), ln1: w.norm(prefix+".1", eps),
		w2: w.get(prefix + ".2.weight"), ln3: w.norm(prefix+".3", eps),
	}
}

// forward maps h (B, g, g, D) to (B, g, g, C); trace, if not nil, receives
// the three intermediates as neck_0, neck_1, neck_2.
func (n *neck) forward(b nn.Backend, h nn.Tensor, trace func(string, nn.Tensor)) nn.Tensor {
	defer nn.Range(b, "encoder neck")()
	s := nn.NewScope(b)
	defer s.Close()
	if trace == nil {
		trace = func(string, nn.Tensor) {}
	}
	x := s.Conv2D(h, n.w0, nil, 1, 0)
	trace("neck_0", x)
	x = n.ln1.forward(s, x)
	trace("neck_1", x)
	x = s.Conv2D(x, n.w2, nil, 1, 1)
	trace("neck_2", x)
	return s.Keep(n.ln3.forward(s, x))
}

// forward runs one block on x (B, H, W, D), as Block.forward:
//
//	x = x + attn(norm1(x))    windowed or global, with rel-pos
//	x = x + mlp(norm2(x))     lin1 → GELU → lin2
//
// (the second line's add and norm2 fused in AddLayerNorm).
func (blk *vitBlock) forward(b nn.Backend, x nn.Tensor) nn.Tensor {
	s := nn.NewScope(b)
	defer s.Close()
	a := blk.attention(s, x)                                              // (B, H, W, D)
	x, h := s.AddLayerNorm(x, a, blk.norm2.w, blk.norm2.b, blk.norm2.eps) // x + attn, norm2(x + attn)
	s.Release(a)                                                          // (the MLP's peak: keep only x, h and its hidden)
	m := blk.lin1.forward(s, h, nn.ActGELU)                               // (B, H, W, mlp)
	s.Release(h)
	m2 := blk.lin2.forward(s, m, nn.ActNone) // (B, H, W, D)
	s.Release(m)
	return s.Keep(s.Add(x, m2))
}

// attention is attn(norm1(x)) on x (B, H, W, D): (B, H, W, D). The
// windowed blocks pad after the LayerNorm (padded tokens are zeros: their k
// and v are the qkv bias, and they take part in attention unmasked) and
// drop the padding after the projection.
func (blk *vitBlock) attention(b nn.Backend, x nn.Tensor) nn.Tensor {
	s := nn.NewScope(b)
	defer s.Close()
	sh := x.Shape()
	B, H, W, D := sh[0], sh[1], sh[2], sh[3]
	h := blk.norm1.forward(s, x)
	tokens, gh, gw := s.Reshape(h, B, H*W, D), H, W // (B, H·W, D)
	if blk.window > 0 {
		tokens, gh, gw = s.WindowPartition(h, blk.window), blk.window, blk.window // (B·nWin, win², D)
	}
	s.Release(h)
	qkv := blk.qkv.forward(s, tokens, nn.ActNone) // (B', N, 3D): [q | k | v]
	s.Release(tokens)
	var rel *nn.RelPos
	if blk.relH != nil {
		rel = &nn.RelPos{H: blk.relH, W: blk.relW, QH: gh, QW: gw}
	}
	o := s.AttentionQKV(qkv, blk.heads, rel) // (B', N, D)
	s.Release(qkv)
	a := blk.proj.forward(s, o, nn.ActNone)
	s.Release(o)
	if blk.window > 0 {
		return s.Keep(s.WindowUnpartition(a, blk.window, H, W)) // (B, H, W, D)
	}
	return s.Keep(s.Reshape(a, B, H, W, D))
}
