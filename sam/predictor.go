package sam

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"sync"

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
//
// Coordinates are only transformed, as SamPredictor does: points and boxes
// may lie partly or wholly outside the image (a box -100,-100,50,50 is a
// box whose visible part is the top-left corner). They must be finite, and
// a box must not be reversed (X1 < X0 or Y1 < Y0: the official code takes
// it and answers for a box with its corners swapped, which is never meant).
type Prompt struct {
	Points []Point `json:"points,omitempty"`
	Box    *Box    `json:"box,omitempty"`
	// MaskInput is a low-resolution logit mask (4g×4g, row-major), usually
	// a previous Prediction's LowResLogits[i], or nil.
	MaskInput []float32 `json:"-"`
	// SingleMask returns the single-mask output alone. The default, as
	// SamPredictor.predict's multimask_output=True, is the 3 multimask
	// outputs (pick one with Prediction.Best); the official advice is one
	// mask for unambiguous prompts (several points, a box).
	SingleMask bool `json:"single_mask,omitempty"`
	// Multimask asks for the multimask outputs, which are the default.
	//
	// Deprecated: it changes nothing (it was needed when one mask was the
	// default); setting it together with SingleMask is an error.
	Multimask bool `json:"multimask,omitempty"`
	// ReturnLogits also returns the full-resolution logits (4 bytes per
	// pixel and mask, on top of the masks' 1).
	ReturnLogits bool `json:"-"`
}

// Limits of one call.
const (
	// MaxPoints is the most points one prompt may hold. SAM was trained
	// with a handful of clicks; each point is a token that every layer
	// attends to, so the decoder's work grows with the square of the count.
	MaxPoints = 1024
	// MaxPrompts is the most prompts one PredictBatch or PredictPoints call
	// may hold. Each answer holds 1 or 3 masks of the image's size: split
	// larger work into several calls and keep only what you need.
	MaxPrompts = 1024
)

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

// Box is the mask's inclusive bounding box [x0, y0, x1, y1] (as the
// official batched_mask_to_box) and its area; for an empty mask the box is
// [0, 0, 0, 0] and ok is false.
func (m Mask) Box() (box [4]int, area int, ok bool) {
	x0, y0, x1, y1 := m.W, m.H, -1, -1
	for y := range m.H {
		row := m.Pix[y*m.W : (y+1)*m.W]
		for x, v := range row {
			if v {
				area++
				x0, x1 = min(x0, x), max(x1, x)
				y0, y1 = min(y0, y), max(y1, y)
			}
		}
	}
	if x1 < 0 {
		return [4]int{}, 0, false
	}
	return [4]int{x0, y0, x1, y1}, area, true
}

// Image returns the mask as an 8-bit grayscale image, 255 inside and 0
// outside (what png.Encode writes as a black-and-white PNG). Pixels that
// Pix lacks are outside.
func (m Mask) Image() *image.Gray {
	img := image.NewGray(image.Rect(0, 0, max(m.W, 0), max(m.H, 0)))
	for i := range min(len(m.Pix), len(img.Pix)) {
		if m.Pix[i] {
			img.Pix[i] = 255
		}
	}
	return img
}

// Prediction is SamPredictor.predict's output for one prompt: M masks (3,
// or 1 with SingleMask).
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
// times.
//
// A Predictor is safe for concurrent use: each call takes the predictor's
// lock for as long as it uses the current image, so a call sees one image
// from start to end (a Predict racing a SetImage answers for the old image
// or the new one, never a mix), and calls on one Predictor run one at a
// time. (SetImage runs the encoder before taking the lock.) To prompt
// several images at once, use one Predictor per image: they share a Model
// and its weights.
type Predictor struct {
	mu     sync.Mutex
	m      *Model
	emb    *Embedding
	tokens nn.Tensor // emb as image tokens (1, g·g, C) on the backend
	// Trace, when set, receives intermediate tensors. Set it before the
	// calls that should report, not while they run.
	Trace Trace
}

// NewPredictor returns a predictor for m.
func NewPredictor(m *Model) *Predictor { return &Predictor{m: m} }

// Model returns the predictor's model.
func (p *Predictor) Model() *Model { return p.m }

// SetImage encodes img (RGB, any size up to imgproc.DefaultMaxPixels) and
// caches the embedding.
func (p *Predictor) SetImage(ctx context.Context, img *imgproc.RGB) error {
	e, err := p.m.EncodeImage(ctx, img)
	if err != nil {
		return err
	}
	return p.SetEmbedding(e)
}

// SetEmbedding uses a precomputed embedding (see Embedding, LoadEmbedding).
// It refuses one that does not fit the model's config, holds NaN/Inf, or
// was encoded by another model (Embedding.Model set and not this model's
// EncoderIdentity); an embedding without Model is taken on its shapes, and
// a decoder-only model, which has no encoder identity, takes any.
func (p *Predictor) SetEmbedding(e *Embedding) (err error) {
	done, err := p.m.use()
	if err != nil {
		return err
	}
	defer done()
	if err := e.Check(&p.m.Config); err != nil {
		return err
	}
	if id := p.m.encID; e.Model != "" && id != "" && e.Model != id {
		return fmt.Errorf("%w: the embedding was encoded by model %s, but %s has encoder %s",
			ErrEmbedding, e.Model, p.m.Path, id)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	defer nn.Catch(&err)
	p.reset()
	p.tokens = e.upload(p.m.backend)
	p.emb = e
	return nil
}

// Embedding returns the current embedding (nil before SetImage).
func (p *Predictor) Embedding() *Embedding {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.emb
}

// Reset forgets the image.
func (p *Predictor) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reset()
}

// reset is Reset with p.mu held.
func (p *Predictor) reset() {
	if p.tokens != nil {
		// A closed model's backend may be gone: then there is nothing to
		// hand back.
		if done, err := p.m.use(); err == nil {
			p.m.backend.Release(p.tokens)
			done()
		}
	}
	p.tokens, p.emb = nil, nil
}

// lock takes the predictor's lock and a use of its model, and checks that
// an image is set; unlock undoes it.
func (p *Predictor) lock() (unlock func(), err error) {
	done, err := p.m.use()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.emb == nil {
		p.mu.Unlock()
		done()
		return nil, ErrNoImage
	}
	return func() { p.mu.Unlock(); done() }, nil
}

// Predict answers one prompt.
func (p *Predictor) Predict(ctx context.Context, pr Prompt) (*Prediction, error) {
	res, err := p.PredictBatch(ctx, []Prompt{pr})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// maxBatch bounds how many prompts share one decoder pass; decoderBatch
// lowers it for large models.
const maxBatch = 64

// decoderBudget bounds the activations of one decoder pass (see
// decoderBatch): a quarter of a GiB holds 12 ViT-B-size prompts, which
// keep the CPU backend about as busy as 64 do (measured on 2 cores). On a
// GPU this is not measured yet: make gpu-check's decoder benchmark (1 and
// 64 prompts) will tell whether a larger budget pays off there.
const decoderBudget = 256 << 20

// DecoderBytesPerPrompt estimates the activation memory one prompt of
// tokens sparse tokens (points, box corners, padding) adds to a decoder
// pass, 4 bytes a value: on the image side 5·g²·C, which is the most the
// two-way transformer holds at once (the image tokens with the dense
// prompt, the keys, keys + PE, and the K and V projections of width C/2)
// and as much as the output upscaling holds at its peak (the 4g×4g maps of
// C/8 channels before and after the GELU, 2·g²·C each); on the token side
// the tokens, their attention inputs and outputs and the MLP's hidden
// layer.
func (c *Config) DecoderBytesPerPrompt(tokens int) int64 {
	g, C := int64(c.GridSize()), int64(c.PromptEmbedDim)
	n := int64(tokens + c.NumMaskTokens() + 1)
	return 4 * (5*g*g*C + n*(8*C+int64(c.DecoderMLPDim)))
}

// decoderBatch is how many prompts of tokens sparse tokens share one
// decoder pass: at most maxBatch, and as many as keep
// DecoderBytesPerPrompt within decoderBudget.
func (c *Config) decoderBatch(tokens int) int {
	return int(max(1, min(maxBatch, decoderBudget/max(1, c.DecoderBytesPerPrompt(tokens)))))
}

// PredictBatch answers many prompts on the same image (at most
// MaxPrompts). Prompts with the same structure (number of points, box or
// not, mask input or not, single or multimask) share decoder passes
// (SamPredictor.predict_torch with a batch); results come back in input
// order. Full-size outputs are made one mask at a time, so memory beyond
// the results asked for stays at about two planes of the image's size.
// Cancelling ctx stops the work within one decoder layer and returns
// ctx.Err().
func (p *Predictor) PredictBatch(ctx context.Context, prompts []Prompt) ([]*Prediction, error) {
	unlock, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if len(prompts) > MaxPrompts {
		return nil, fmt.Errorf("%w: %d prompts in one call (at most %d)", ErrPrompt, len(prompts), MaxPrompts)
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
		points            int
		box, mask, single bool
	}
	groups := map[key][]int{}
	var order []key
	for i, pr := range prompts {
		k := key{len(pr.Points), pr.Box != nil, pr.MaskInput != nil, pr.SingleMask}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	out := make([]*Prediction, len(prompts))
	for _, k := range order {
		idx := groups[k]
		per := p.m.Config.decoderBatch(len(p.inputPoints(&prompts[idx[0]])))
		for start := 0; start < len(idx); start += per {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			chunk := idx[start:min(start+per, len(idx))]
			batch := make([]Prompt, len(chunk))
			for j, i := range chunk {
				batch[j] = prompts[i]
			}
			res, err := p.predictSame(ctx, batch)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, err
			}
			for j, i := range chunk {
				out[i] = res[j]
			}
		}
	}
	return out, nil
}

// finite reports whether x is neither NaN nor infinite.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func (p *Predictor) checkPrompt(pr *Prompt) error {
	e := p.emb
	if len(pr.Points) == 0 && pr.Box == nil && pr.MaskInput == nil {
		return fmt.Errorf("%w: no points, box or mask", ErrPrompt)
	}
	if len(pr.Points) > MaxPoints {
		return fmt.Errorf("%w: %d points (at most %d per prompt)", ErrPrompt, len(pr.Points), MaxPoints)
	}
	if pr.SingleMask && pr.Multimask {
		return fmt.Errorf("%w: SingleMask and Multimask both set", ErrPrompt)
	}
	// coord checks one coordinate: finite, and finite in the float32
	// input frame the prompt encoder works in.
	coord := func(what string, x, y float64) error {
		if !finite(x) || !finite(y) {
			return fmt.Errorf("%w: %w: %s (%g, %g)", ErrPrompt, ErrNonFinite, what, x, y)
		}
		if xi, yi := p.toInput(x, y); !finite(float64(xi)) || !finite(float64(yi)) {
			return fmt.Errorf("%w: %s (%g, %g) is too far outside the %d×%d image", ErrPrompt, what, x, y, e.OriginalW, e.OriginalH)
		}
		return nil
	}
	for i, pt := range pr.Points {
		if pt.Label != 0 && pt.Label != 1 {
			return fmt.Errorf("%w: point %d has label %d (1 foreground, 0 background)", ErrPrompt, i, pt.Label)
		}
		if err := coord(fmt.Sprintf("point %d", i), pt.X, pt.Y); err != nil {
			return err
		}
	}
	if b := pr.Box; b != nil {
		if err := coord("box corner", b.X0, b.Y0); err != nil {
			return err
		}
		if err := coord("box corner", b.X1, b.Y1); err != nil {
			return err
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
		if i := nonFinite(pr.MaskInput); i >= 0 {
			return fmt.Errorf("%w: %w: mask input value %d is %v", ErrPrompt, ErrNonFinite, i, pr.MaskInput[i])
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
func (p *Predictor) predictSame(ctx context.Context, prompts []Prompt) (res []*Prediction, err error) {
	defer nn.Catch(&err)
	pts := make([][]point, len(prompts))
	var masks []float32
	for i := range prompts {
		pts[i] = p.inputPoints(&prompts[i])
		masks = append(masks, prompts[i].MaskInput...)
	}
	if p.Trace != nil {
		p.traceInputs(prompts)
	}
	low, iou, M, err := p.decodeHost(ctx, pts, masks, !prompts[0].SingleMask)
	if err != nil {
		return nil, err
	}
	return p.postprocess(ctx, prompts, low, iou, M)
}

// decodeHost runs decode and brings its outputs to the host: low-res
// logits (B, M, 4g, 4g) and IoU predictions (B, M), checked to be finite.
func (p *Predictor) decodeHost(ctx context.Context, pts [][]point, masks []float32, multimask bool) (low, iou []float32, M int, err error) {
	b := p.m.backend
	lt, st, err := p.decode(ctx, pts, masks, multimask)
	if err != nil {
		return nil, nil, 0, err
	}
	M = lt.Shape()[1]
	low, iou = b.Download(lt), b.Download(st)
	b.Release(lt, st)
	for _, out := range []struct {
		name string
		v    []float32
		per  int
	}{{"IoU prediction", iou, M}, {"low-res logit", low, len(low) / len(pts)}} {
		if i := nonFinite(out.v); i >= 0 {
			return nil, nil, 0, fmt.Errorf("%w: the mask decoder computed a %s %v for prompt %d of its batch (weights holding NaN/Inf, or inputs too large for float32)",
				ErrNonFinite, out.name, out.v[i], i/out.per)
		}
	}
	return low, iou, M, nil
}

// postprocess is postprocess_masks and the threshold, one mask at a time:
// each low-res plane is upscaled to the original size and thresholded into
// its Mask, and kept as logits only when the prompt asks for them. Besides
// the outputs, a backend with the fused nn.MaskThresholder (the CPU) holds
// no full-size plane at all; another holds its own plane and one host
// plane, reused.
func (p *Predictor) postprocess(ctx context.Context, prompts []Prompt, low, iou []float32, M int) ([]*Prediction, error) {
	b, cfg, e := p.m.backend, &p.m.Config, p.emb
	lr := cfg.LowResSize()
	H, W := e.OriginalH, e.OriginalW
	up := nn.MaskUpscale{Pad: cfg.ImgSize, InH: e.InputH, InW: e.InputW, OutH: H, OutW: W}
	defer nn.Range(b, "mask postprocessing")()
	var plane []float32 // the host plane, reused while no logits are returned
	res := make([]*Prediction, len(prompts))
	for i := range prompts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pr := &Prediction{W: W, H: H, LowRes: lr, IoU: iou[i*M : (i+1)*M]}
		for j := range M {
			k := i*M + j
			lj := low[k*lr*lr : (k+1)*lr*lr]
			pr.LowResLogits = append(pr.LowResLogits, lj)
			mask := Mask{W: W, H: H, Pix: make([]bool, H*W)}
			t := b.Upload(lj, 1, 1, lr, lr) // (1, 1, 4g, 4g)
			if th, ok := b.(nn.MaskThresholder); ok && !prompts[i].ReturnLogits {
				th.UpscaleMasksThreshold(t, up, cfg.MaskThreshold, mask.Pix)
				b.Release(t)
				pr.Masks = append(pr.Masks, mask)
				continue
			}
			u := b.UpscaleMasks(t, up) // (1, 1, H, W)
			b.Release(t)
			var logits []float32
			if prompts[i].ReturnLogits {
				logits = make([]float32, H*W)
				pr.Logits = append(pr.Logits, logits)
			} else {
				if plane == nil {
					plane = make([]float32, H*W)
				}
				logits = plane
			}
			nn.DownloadInto(b, logits, u)
			b.Release(u)
			for q, v := range logits {
				mask.Pix[q] = v > cfg.MaskThreshold
			}
			pr.Masks = append(pr.Masks, mask)
		}
		res[i] = pr
	}
	return res, nil
}

// decode runs the prompt encoder and mask decoder for B prompts of the
// same structure: pts[i] are prompt i's normalised points (N each), masks
// the B low-res mask inputs back to back (nil for none). It returns the
// selected low-res logits (B, M, 4g, 4g) and IoU predictions (B, M).
func (p *Predictor) decode(ctx context.Context, pts [][]point, masks []float32, multimask bool) (low, scores nn.Tensor, err error) {
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
	all, iou, err := m.dec.forward(ctx, b, p.tokens, m.pe.densePE, sparse, dense, m.pe.noMask, g, tr)
	b.Release(sparse)
	if dense != nil {
		b.Release(dense)
	}
	if err != nil {
		return nil, nil, err
	}
	low, scores = m.dec.selectOutputs(b, all, iou, multimask)
	b.Release(all, iou)
	return low, scores, nil
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
// point per prompt (at most MaxPrompts), in original-image pixels. The
// coordinate transform stays in float64 through apply_coords, +0.5 and /S,
// as the official generator passes float64 arrays, and is cast to float32
// only before the positional encoding. Returns low-res logits; see
// UpscaleLogits.
func (p *Predictor) PredictPoints(ctx context.Context, xy [][2]float64, multimask bool) (res *LowResBatch, err error) {
	unlock, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if len(xy) == 0 {
		return nil, fmt.Errorf("%w: no points", ErrPrompt)
	}
	if len(xy) > MaxPrompts {
		return nil, fmt.Errorf("%w: %d points in one call (at most %d)", ErrPrompt, len(xy), MaxPrompts)
	}
	e := p.emb
	sx := float64(e.InputW) / float64(e.OriginalW)
	sy := float64(e.InputH) / float64(e.OriginalH)
	S := float64(e.ImgSize)
	pts := make([][]point, len(xy))
	for i, q := range xy {
		x, y := float32((q[0]*sx+0.5)/S), float32((q[1]*sy+0.5)/S)
		if !finite(float64(x)) || !finite(float64(y)) {
			return nil, fmt.Errorf("%w: %w: point %d (%g, %g)", ErrPrompt, ErrNonFinite, i, q[0], q[1])
		}
		pts[i] = []point{{x, y, 1}, {0, 0, -1}}
	}
	defer nn.Catch(&err)
	res = &LowResBatch{B: len(xy), LowRes: p.m.Config.LowResSize()}
	per := p.m.Config.decoderBatch(2)
	for start := 0; start < len(pts); start += per {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		low, iou, M, err := p.decodeHost(ctx, pts[start:min(start+per, len(pts))], nil, multimask)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		res.M = M
		res.Logits = append(res.Logits, low...)
		res.IoU = append(res.IoU, iou...)
	}
	return res, nil
}

// UpscaleLogits is postprocess_masks on n low-res logit planes (n, 4g, 4g):
// it returns (n, H, W) logits at the original image size.
func (p *Predictor) UpscaleLogits(low []float32, n int) (out []float32, err error) {
	unlock, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	lr := p.m.Config.LowResSize()
	if n <= 0 || n > MaxPrompts*p.m.Config.NumMaskTokens() || len(low) != n*lr*lr {
		return nil, fmt.Errorf("upscale: %d values for %d planes of %d×%d", len(low), n, lr, lr)
	}
	if i := nonFinite(low); i >= 0 {
		return nil, fmt.Errorf("upscale: %w: value %d is %v", ErrNonFinite, i, low[i])
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
