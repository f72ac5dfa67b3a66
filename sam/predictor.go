package sam

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn"
)

// Point is a prompt point in original-image pixel coordinates (x right, y
// down, as SamPredictor takes them). Label 1 marks foreground, 0 background.
type Point struct {
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
	Label int     `json:"label"`
}

// Box is a prompt box [X0, Y0, X1, Y1] in original-image pixels.
type Box struct {
	X0 float64 `json:"x0"`
	Y0 float64 `json:"y0"`
	X1 float64 `json:"x1"`
	Y1 float64 `json:"y1"`
}

// Prompt is one SamPredictor.predict call's input.
type Prompt struct {
	Points []Point `json:"points,omitempty"`
	Box    *Box    `json:"box,omitempty"`
	// MaskInput is a low-resolution logit mask (4g×4g, row-major), usually
	// a previous Prediction's LowResLogits[i], or nil.
	MaskInput []float32 `json:"-"`
	// Multimask returns the 3 multimask outputs instead of the single mask.
	Multimask bool `json:"multimask"`
	// ReturnLogits also returns the full-resolution logits.
	ReturnLogits bool `json:"-"`
}

// Mask is a binary mask at the original image size, row-major.
type Mask struct {
	W, H int
	Pix  []bool
}

// Area counts the mask's pixels.
func (m Mask) Area() int {
	n := 0
	for _, v := range m.Pix {
		if v {
			n++
		}
	}
	return n
}

// Prediction is SamPredictor.predict's output for one prompt: M masks (3
// with Multimask, else 1).
type Prediction struct {
	Masks []Mask
	IoU   []float32 // predicted IoU per mask (not clamped)
	// LowResLogits are the decoder's logits (M × LowRes·LowRes), to feed
	// back as a MaskInput.
	LowResLogits [][]float32
	LowRes       int
	// Logits are the upscaled logits (M × H·W), with ReturnLogits only.
	Logits [][]float32
	W, H   int
}

// Best returns the index of the mask with the highest predicted IoU.
func (p *Prediction) Best() int {
	best := 0
	for i, s := range p.IoU {
		if s > p.IoU[best] {
			best = i
		}
	}
	return best
}

// ErrPrompt marks an invalid prompt; ErrNoImage a Predict before SetImage.
var (
	ErrPrompt  = errors.New("invalid prompt")
	ErrNoImage = errors.New("no image set: call SetImage or SetEmbedding first")
)

// Trace receives intermediate tensors under the reference fixtures' names
// (for tests and debugging). Data is a host copy in the backend's layout.
// A Predictor reports coords_in, box_in (the prompts in the resized-input
// frame), sparse, dense (B, C, g, g; no_mask_embed broadcast when there is
// no mask input), transformer_queries, transformer_keys and upscaled;
// EncodeInput reports patch_embed and block_<i>.
type Trace func(name string, shape []int, data []float32)

// Predictor is SamPredictor: encode an image once, then prompt it many
// times. A Predictor is not safe for concurrent use; create one per
// goroutine (they can share a Model and an Embedding).
type Predictor struct {
	m      *Model
	emb    *Embedding
	tokens nn.Tensor // emb as image tokens (1, g·g, C) on the backend
	// Trace, when set, receives intermediate tensors.
	Trace Trace
}

// NewPredictor returns a predictor for m.
func NewPredictor(m *Model) *Predictor { return &Predictor{m: m} }

// Model returns the predictor's model.
func (p *Predictor) Model() *Model { return p.m }

// SetImage encodes img (RGB, any size) and caches the embedding.
func (p *Predictor) SetImage(ctx context.Context, img *imgproc.RGB) error {
	e, err := p.m.EncodeImage(ctx, img)
	if err != nil {
		return err
	}
	return p.SetEmbedding(e)
}

// SetEmbedding uses a precomputed embedding (see Embedding, LoadEmbedding).
func (p *Predictor) SetEmbedding(e *Embedding) (err error) {
	if err := e.Check(&p.m.Config); err != nil {
		return err
	}
	defer nn.Catch(&err)
	p.Reset()
	p.tokens = e.upload(p.m.backend)
	p.emb = e
	return nil
}

// Embedding returns the current embedding (nil before SetImage).
func (p *Predictor) Embedding() *Embedding { return p.emb }

// Reset forgets the image.
func (p *Predictor) Reset() {
	if p.tokens != nil {
		p.m.backend.Release(p.tokens)
	}
	p.tokens, p.emb = nil, nil
}

// Predict answers one prompt.
func (p *Predictor) Predict(ctx context.Context, pr Prompt) (*Prediction, error) {
	res, err := p.PredictBatch(ctx, []Prompt{pr})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// maxBatch bounds how many prompts share one decoder pass.
const maxBatch = 64

// PredictBatch answers many prompts on the same image. Prompts with the
// same structure (number of points, box or not, mask input or not,
// multimask or not) share decoder passes (SamPredictor.predict_torch with a
// batch); results come back in input order.
func (p *Predictor) PredictBatch(ctx context.Context, prompts []Prompt) ([]*Prediction, error) {
	if p.emb == nil {
		return nil, ErrNoImage
	}
	for i := range prompts {
		if err := p.checkPrompt(&prompts[i]); err != nil {
			if len(prompts) > 1 {
				return nil, fmt.Errorf("prompt %d: %w", i, err)
			}
			return nil, err
		}
	}
	type key struct {
		points          int
		box, mask, mult bool
	}
	groups := map[key][]int{}
	var order []key
	for i, pr := range prompts {
		k := key{len(pr.Points), pr.Box != nil, pr.MaskInput != nil, pr.Multimask}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	out := make([]*Prediction, len(prompts))
	for _, k := range order {
		idx := groups[k]
		for start := 0; start < len(idx); start += maxBatch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			chunk := idx[start:min(start+maxBatch, len(idx))]
			batch := make([]Prompt, len(chunk))
			for j, i := range chunk {
				batch[j] = prompts[i]
			}
			res, err := p.predictSame(batch)
			if err != nil {
				return nil, err
			}
			for j, i := range chunk {
				out[i] = res[j]
			}
		}
	}
	return out, nil
}

func (p *Predictor) checkPrompt(pr *Prompt) error {
	e := p.emb
	W, H := float64(e.OriginalW), float64(e.OriginalH)
	inside := func(x, y float64) bool {
		return !math.IsNaN(x) && !math.IsNaN(y) && x >= 0 && y >= 0 && x <= W && y <= H
	}
	if len(pr.Points) == 0 && pr.Box == nil && pr.MaskInput == nil {
		return fmt.Errorf("%w: no points, box or mask", ErrPrompt)
	}
	for i, pt := range pr.Points {
		if pt.Label != 0 && pt.Label != 1 {
			return fmt.Errorf("%w: point %d has label %d (1 foreground, 0 background)", ErrPrompt, i, pt.Label)
		}
		if !inside(pt.X, pt.Y) {
			return fmt.Errorf("%w: point %d (%g, %g) lies outside the %d×%d image", ErrPrompt, i, pt.X, pt.Y, e.OriginalW, e.OriginalH)
		}
	}
	if b := pr.Box; b != nil {
		if !inside(b.X0, b.Y0) || !inside(b.X1, b.Y1) {
			return fmt.Errorf("%w: box (%g, %g, %g, %g) lies outside the %d×%d image", ErrPrompt, b.X0, b.Y0, b.X1, b.Y1, e.OriginalW, e.OriginalH)
		}
		if b.X1 < b.X0 || b.Y1 < b.Y0 {
			return fmt.Errorf("%w: box (%g, %g, %g, %g) has x1 < x0 or y1 < y0", ErrPrompt, b.X0, b.Y0, b.X1, b.Y1)
		}
	}
	if pr.MaskInput != nil {
		n := p.m.Config.LowResSize()
		if len(pr.MaskInput) != n*n {
			return fmt.Errorf("%w: mask input has %d values, want %d×%d", ErrPrompt, len(pr.MaskInput), n, n)
		}
	}
	return nil
}

// toInput is apply_coords: original-image pixels to the resized-input
// frame, in float64 (x·(w/W), y·(h/H)), then cast to float32, as
// SamPredictor.predict hands them to the prompt encoder.
func (p *Predictor) toInput(x, y float64) (float32, float32) {
	e := p.emb
	sx := float64(e.InputW) / float64(e.OriginalW)
	sy := float64(e.InputH) / float64(e.OriginalH)
	return float32(x * sx), float32(y * sy)
}

// inputPoints maps a prompt to normalised prompt-encoder points as
// SamPredictor.predict does: apply_coords (toInput), then +0.5 and /S in
// float32; a padding point when there is no box.
func (p *Predictor) inputPoints(pr *Prompt) []point {
	S := float32(p.emb.ImgSize)
	norm := func(x, y float64) (float32, float32) {
		xi, yi := p.toInput(x, y)
		return (xi + 0.5) / S, (yi + 0.5) / S
	}
	var pts []point
	for _, pt := range pr.Points {
		x, y := norm(pt.X, pt.Y)
		pts = append(pts, point{x, y, pt.Label})
	}
	if pr.Box != nil {
		x0, y0 := norm(pr.Box.X0, pr.Box.Y0)
		x1, y1 := norm(pr.Box.X1, pr.Box.Y1)
		pts = append(pts, point{x0, y0, 2}, point{x1, y1, 3})
	} else if len(pts) > 0 {
		pts = append(pts, point{0, 0, -1})
	}
	return pts
}

// traceInputs reports B prompts of one structure in the resized-input
// frame, as the prompt encoder receives them (before its +0.5):
// "coords_in" (B, P, 2) for the points and "box_in" (B, 4) for the boxes.
func (p *Predictor) traceInputs(prompts []Prompt) {
	var coords, boxes []float32
	for _, pr := range prompts {
		for _, pt := range pr.Points {
			x, y := p.toInput(pt.X, pt.Y)
			coords = append(coords, x, y)
		}
		if b := pr.Box; b != nil {
			x0, y0 := p.toInput(b.X0, b.Y0)
			x1, y1 := p.toInput(b.X1, b.Y1)
			boxes = append(boxes, x0, y0, x1, y1)
		}
	}
	B := len(prompts)
	if coords != nil {
		p.Trace("coords_in", []int{B, len(coords) / (2 * B), 2}, coords)
	}
	if boxes != nil {
		p.Trace("box_in", []int{B, 4}, boxes)
	}
}

// predictSame runs one decoder pass for prompts of identical structure.
func (p *Predictor) predictSame(prompts []Prompt) (res []*Prediction, err error) {
	defer nn.Catch(&err)
	b, cfg := p.m.backend, &p.m.Config
	pts := make([][]point, len(prompts))
	var masks []float32
	for i := range prompts {
		pts[i] = p.inputPoints(&prompts[i])
		masks = append(masks, prompts[i].MaskInput...)
	}
	if p.Trace != nil {
		p.traceInputs(prompts)
	}
	low, scores := p.decode(pts, masks, prompts[0].Multimask)
	B := len(prompts)
	e := p.emb
	M := low.Shape()[1]
	lr := cfg.LowResSize()
	lowHost, iouHost := b.Download(low), b.Download(scores)
	b.Release(scores)
	H, W := e.OriginalH, e.OriginalW
	up := nn.MaskUpscale{Pad: cfg.ImgSize, InH: e.InputH, InW: e.InputW, OutH: H, OutW: W}
	res = make([]*Prediction, B)
	defer nn.Range(b, "mask postprocessing")()
	for i := range B {
		// Upscale one prompt's masks at a time: M full-size planes instead
		// of B·M keeps memory flat for large batches.
		li := b.Slice(low, 0, i, i+1) // (1, M, 4g, 4g)
		ui := b.UpscaleMasks(li, up)  // (1, M, H, W)
		logits := b.Download(ui)
		b.Release(li, ui)
		pr := &Prediction{W: W, H: H, LowRes: lr, IoU: iouHost[i*M : (i+1)*M]}
		for j := range M {
			k := i*M + j
			pr.LowResLogits = append(pr.LowResLogits, lowHost[k*lr*lr:(k+1)*lr*lr])
			lj := logits[j*H*W : (j+1)*H*W]
			mask := Mask{W: W, H: H, Pix: make([]bool, H*W)}
			for q, v := range lj {
				mask.Pix[q] = v > cfg.MaskThreshold
			}
			pr.Masks = append(pr.Masks, mask)
			if prompts[i].ReturnLogits {
				pr.Logits = append(pr.Logits, lj)
			}
		}
		res[i] = pr
	}
	b.Release(low)
	return res, nil
}

// decode runs the prompt encoder and mask decoder for B prompts of the
// same structure: pts[i] are prompt i's normalised points (N each), masks
// the B low-res mask inputs back to back (nil for none). It returns the
// selected low-res logits (B, M, 4g, 4g) and IoU predictions (B, M).
func (p *Predictor) decode(pts [][]point, masks []float32, multimask bool) (low, scores nn.Tensor) {
	m, b, cfg := p.m, p.m.backend, &p.m.Config
	B, C, g := len(pts), cfg.PromptEmbedDim, cfg.GridSize()
	N := len(pts[0])
	endPE := nn.Range(b, "prompt encoder")
	sparseHost := make([]float32, B*N*C)
	for i := range pts {
		m.pe.sparse(pts[i], sparseHost[i*N*C:(i+1)*N*C])
	}
	sparse := b.Upload(sparseHost, B, N, C)
	p.trace("sparse", sparse)
	var dense nn.Tensor
	if masks != nil {
		lr := cfg.LowResSize()
		mt := b.Upload(masks, B, lr, lr)
		dense = m.pe.dense(b, mt)
		b.Release(mt)
		p.traceNCHW("dense", dense, g)
	} else if p.Trace != nil {
		// Without a mask the decoder adds no_mask_embed (C) to every token
		// itself; the trace gets it materialised as the reference stores
		// it, broadcast to (B, C, g, g).
		nm := b.Download(m.pe.noMask)
		out := make([]float32, 0, B*C*g*g)
		for range B {
			for _, v := range nm {
				for range g * g {
					out = append(out, v)
				}
			}
		}
		p.Trace("dense", []int{B, C, g, g}, out)
	}
	var tr func(string, nn.Tensor)
	if p.Trace != nil {
		tr = func(name string, t nn.Tensor) {
			if name == "upscaled" {
				p.traceNCHW(name, t, 4*g)
			} else {
				p.trace(name, t)
			}
		}
	}
	endPE()
	endDec := nn.Range(b, "mask decoder")
	defer endDec()
	all, iou := m.dec.forward(b, p.tokens, m.pe.densePE, sparse, dense, m.pe.noMask, g, tr)
	b.Release(sparse)
	if dense != nil {
		b.Release(dense)
	}
	low, scores = m.dec.selectOutputs(b, all, iou, multimask)
	b.Release(all, iou)
	return low, scores
}

// LowResBatch is the decoder output for a batch of prompts: B prompts × M
// masks of LowRes×LowRes logits, and their IoU predictions.
type LowResBatch struct {
	B, M, LowRes int
	Logits       []float32 // (B, M, LowRes, LowRes)
	IoU          []float32 // (B, M)
}

// PredictPoints is the automatic mask generator's decoder call
// (SamAutomaticMaskGenerator._process_batch → predict_torch): one positive
// point per prompt, in original-image pixels. The coordinate transform
// stays in float64 through apply_coords, +0.5 and /S, as the official
// generator passes float64 arrays, and is cast to float32 only before the
// positional encoding. Returns low-res logits; see UpscaleLogits.
func (p *Predictor) PredictPoints(ctx context.Context, xy [][2]float64, multimask bool) (res *LowResBatch, err error) {
	if p.emb == nil {
		return nil, ErrNoImage
	}
	if len(xy) == 0 {
		return nil, fmt.Errorf("%w: no points", ErrPrompt)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e := p.emb
	sx := float64(e.InputW) / float64(e.OriginalW)
	sy := float64(e.InputH) / float64(e.OriginalH)
	S := float64(e.ImgSize)
	pts := make([][]point, len(xy))
	for i, q := range xy {
		x, y := q[0]*sx, q[1]*sy
		pts[i] = []point{{float32((x + 0.5) / S), float32((y + 0.5) / S), 1}, {0, 0, -1}}
	}
	defer nn.Catch(&err)
	b := p.m.backend
	low, scores := p.decode(pts, nil, multimask)
	res = &LowResBatch{B: len(xy), M: low.Shape()[1], LowRes: p.m.Config.LowResSize(), Logits: b.Download(low), IoU: b.Download(scores)}
	b.Release(low, scores)
	return res, nil
}

// UpscaleLogits is postprocess_masks on n low-res logit planes (n, 4g, 4g):
// it returns (n, H, W) logits at the original image size.
func (p *Predictor) UpscaleLogits(low []float32, n int) (out []float32, err error) {
	if p.emb == nil {
		return nil, ErrNoImage
	}
	lr := p.m.Config.LowResSize()
	if n <= 0 || len(low) != n*lr*lr {
		return nil, fmt.Errorf("upscale: %d values for %d planes of %d×%d", len(low), n, lr, lr)
	}
	defer nn.Catch(&err)
	b, e := p.m.backend, p.emb
	defer nn.Range(b, "mask postprocessing")()
	t := b.Upload(low, 1, n, lr, lr)
	u := b.UpscaleMasks(t, nn.MaskUpscale{Pad: e.ImgSize, InH: e.InputH, InW: e.InputW, OutH: e.OriginalH, OutW: e.OriginalW})
	out = b.Download(u)
	b.Release(t, u)
	return out, nil
}

func (p *Predictor) trace(name string, t nn.Tensor) {
	if p.Trace != nil {
		p.Trace(name, t.Shape(), p.m.backend.Download(t))
	}
}

// traceNCHW reports a (B, g·g, C) token tensor as (B, C, g, g), the
// reference's layout.

func (p *Predictor) traceNCHW(name string, t nn.Tensor, g int) {
	if p.Trace == nil {
		return
	}
	sh := t.Shape()
	B, C := sh[0], sh[2]
	v := p.m.backend.Download(t)
	out := make([]float32, len(v))
	for b := range B {
		for i := range g * g {
			for c := range C {
				out[(b*C+c)*g*g+i] = v[(b*g*g+i)*C+c]
			}
		}
	}
	p.Trace(name, []int{B, C, g, g}, out)
}

// PreprocessShape is ResizeLongestSide.get_preprocess_shape.
func PreprocessShape(h, w, longSide int) (int, int) { return imgproc.PreprocessShape(h, w, longSide) }

// Preprocess resizes, normalises and pads an image as SamPredictor.set_image:
// the encoder input (S, S, 3) channels-last, and the resized size.
func (m *Model) Preprocess(img *imgproc.RGB) (input []float32, h, w int, err error) {
	if img == nil || img.W <= 0 || img.H <= 0 {
		return nil, 0, 0, fmt.Errorf("preprocess: empty image")
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
func (m *Model) EncodeImages(ctx context.Context, imgs []*imgproc.RGB) ([]*Embedding, error) {
	if m.enc == nil {
		return nil, ErrNoEncoder
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
	feats, err := m.EncodeInput(ctx, in, len(imgs), nil)
	if err != nil {
		return nil, err
	}
	for i, f := range feats {
		es[i].Features, es[i].C, es[i].G = f.Features, f.C, f.G
	}
	return es, nil
}

// EncodeInput runs the image encoder on already preprocessed input
// (B, S, S, 3) channels-last and returns each image's features (sizes
// unset). Trace, if set, receives the patch embedding and each block's
// output (B, g, g, D) as the reference names them.
func (m *Model) EncodeInput(ctx context.Context, input []float32, batch int, tr Trace) (out []*Embedding, err error) {
	if m.enc == nil {
		return nil, ErrNoEncoder
	}
	S := m.Config.ImgSize
	if batch <= 0 || len(input) != batch*S*S*3 {
		return nil, fmt.Errorf("encode: %d values for %d images of %d×%d×3", len(input), batch, S, S)
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
	C, g := m.Config.PromptEmbedDim, m.Config.GridSize()
	for i := range batch {
		out = append(out, embeddingFromTokens(host[i*g*g*C:(i+1)*g*g*C], C, g))
	}
	return out, nil
}

// DensePE returns get_dense_pe(): the image positional encoding (C, g, g).
func (m *Model) DensePE() []float32 {
	tok := m.backend.Download(m.pe.densePE)
	return embeddingFromTokens(tok, m.Config.PromptEmbedDim, m.Config.GridSize()).Features
}
