package sam

import (
	"context"
	"fmt"

	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn"
)

// PreprocessShape is ResizeLongestSide.get_preprocess_shape.
func PreprocessShape(h, w, longSide int) (int, int) { return imgproc.PreprocessShape(h, w, longSide) }

// Preprocess resizes, normalises and pads an image as SamPredictor.set_image:
// the encoder input (S, S, 3) channels-last, and the resized size. An image
// without pixels, or over imgproc.DefaultMaxPixels, is an error.
func (m *Model) Preprocess(img *imgproc.RGB) (input []float32, h, w int, err error) {
	if err := img.Validate(); err != nil {
		return nil, 0, 0, fmt.Errorf("preprocess: %w", err)
	}
	S := m.Config.ImgSize
	r := imgproc.ResizeLongestSide(img, S)
	input, err = imgproc.Normalize(r, S, m.Config.PixelMean, m.Config.PixelStd)
	return input, r.H, r.W, err
}

// EncodeImage runs the image encoder on one image.
func (m *Model) EncodeImage(ctx context.Context, img *imgproc.RGB) (*Embedding, error) {
	es, err := m.EncodeImages(ctx, []*imgproc.RGB{img})
	if err != nil {
		return nil, err
	}
	return es[0], nil
}

// EncodeImages runs the image encoder on a batch of images in one pass.
// Each embedding's Model is the model's EncoderIdentity.
func (m *Model) EncodeImages(ctx context.Context, imgs []*imgproc.RGB) ([]*Embedding, error) {
	done, err := m.use()
	if err != nil {
		return nil, err
	}
	defer done()
	if m.enc == nil {
		return nil, ErrNoEncoder
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("encode: no images")
	}
	S := m.Config.ImgSize
	in := make([]float32, 0, len(imgs)*S*S*3)
	es := make([]*Embedding, len(imgs))
	for i, img := range imgs {
		x, h, w, err := m.Preprocess(img)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		in = append(in, x...)
		es[i] = &Embedding{ImgSize: S, OriginalH: img.H, OriginalW: img.W, InputH: h, InputW: w}
	}
	feats, err := m.encodeInput(ctx, in, len(imgs), nil)
	if err != nil {
		return nil, err
	}
	for i, f := range feats {
		es[i].Features, es[i].C, es[i].G, es[i].Model = f.Features, f.C, f.G, f.Model
	}
	return es, nil
}

// EncodeInput runs the image encoder on already preprocessed input
// (B, S, S, 3) channels-last and returns each image's features and Model
// (the image sizes unset). Trace, if set, receives the patch embedding and
// each block's output (B, g, g, D) as the reference names them. Input or
// output holding NaN/Inf is an error (ErrNonFinite).
func (m *Model) EncodeInput(ctx context.Context, input []float32, batch int, tr Trace) ([]*Embedding, error) {
	done, err := m.use()
	if err != nil {
		return nil, err
	}
	defer done()
	return m.encodeInput(ctx, input, batch, tr)
}

// encodeInput is EncodeInput inside a use of m.
func (m *Model) encodeInput(ctx context.Context, input []float32, batch int, tr Trace) (out []*Embedding, err error) {
	if m.enc == nil {
		return nil, ErrNoEncoder
	}
	S := m.Config.ImgSize
	if batch <= 0 || len(input)/batch/(S*S*3) != 1 || len(input) != batch*S*S*3 {
		return nil, fmt.Errorf("encode: %d values for %d images of %d×%d×3", len(input), batch, S, S)
	}
	if i := nonFinite(input); i >= 0 {
		return nil, fmt.Errorf("encode: %w: input value %d is %v", ErrNonFinite, i, input[i])
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	defer nn.Catch(&err)
	b := m.backend
	x := b.Upload(input, batch, S, S, 3)
	var trace func(string, nn.Tensor)
	if tr != nil {
		trace = func(name string, t nn.Tensor) { tr(name, t.Shape(), b.Download(t)) }
	}
	emb, err := m.enc.forwardCtx(ctx, b, x, trace) // (B, g, g, C)
	b.Release(x)
	if err != nil {
		return nil, err
	}
	host := b.Download(emb)
	b.Release(emb)
	if i := nonFinite(host); i >= 0 {
		return nil, fmt.Errorf("encode: %w: the image encoder computed %v (do the weights hold NaN/Inf?)", ErrNonFinite, host[i])
	}
	C, g := m.Config.PromptEmbedDim, m.Config.GridSize()
	for i := range batch {
		e := embeddingFromTokens(host[i*g*g*C:(i+1)*g*g*C], C, g)
		e.Model = m.encID
		out = append(out, e)
	}
	return out, nil
}

// DensePE returns get_dense_pe(): the image positional encoding (C, g, g);
// nil once the model is closed.
func (m *Model) DensePE() []float32 {
	done, err := m.use()
	if err != nil {
		return nil
	}
	defer done()
	tok := m.backend.Download(m.pe.densePE)
	return embeddingFromTokens(tok, m.Config.PromptEmbedDim, m.Config.GridSize()).Features
}
