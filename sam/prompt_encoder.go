package sam

import (
	"math"

	"github.com/samgo/samgo/sam/nn"
)

// promptEncoder is PromptEncoder (segment_anything/modeling/prompt_encoder.py).
// Points and boxes become sparse tokens: a random-Fourier positional encoding
// of their coordinates plus a learned embedding per kind. They are a few
// hundred floats per prompt, so they are computed on the host in float32
// and uploaded; the mask input goes through the backend's fused
// downsampler.
type promptEncoder struct {
	C, S, g   int
	gauss     []float32    // (2, C/2): row 0 multiplies x, row 1 y
	pointEmb  [4][]float32 // 0 negative point, 1 positive point, 2 box top-left, 3 box bottom-right
	notAPoint []float32    // (C) for padding points (label −1)
	noMask    nn.Tensor    // (C): the dense embedding when no mask is given
	down      *nn.MaskDownsampler
	densePE   nn.Tensor // (1, g·g, C): get_dense_pe(), channels-last tokens
}

// twoPi is 2·π as float32, the constant torch multiplies a float32 tensor by.
const twoPi = float32(2 * math.Pi)

func newPromptEncoder(w *weights, cfg *Config) *promptEncoder {
	p := "prompt_encoder."
	pe := &promptEncoder{C: cfg.PromptEmbedDim, S: cfg.ImgSize, g: cfg.GridSize()}
	pe.gauss = w.host(p + "pe_layer.positional_encoding_gaussian_matrix")
	for i := range pe.pointEmb {
		pe.pointEmb[i] = w.host(p + "point_embeddings." + string(rune('0'+i)) + ".weight")
	}
	pe.notAPoint = w.host(p + "not_a_point_embed.weight")
	if nm := w.host(p + "no_mask_embed.weight"); nm != nil {
		pe.noMask = w.b.UploadWeight(nm, pe.C)
	}
	md := p + "mask_downscaling."
	pe.down = &nn.MaskDownsampler{
		Conv1W: w.get(md + "0.weight"), Conv1B: w.get(md + "0.bias"),
		LN1W: w.get(md + "1.weight"), LN1B: w.get(md + "1.bias"),
		Conv2W: w.get(md + "3.weight"), Conv2B: w.get(md + "3.bias"),
		LN2W: w.get(md + "4.weight"), LN2B: w.get(md + "4.bias"),
		Conv3W: w.get(md + "6.weight"), Conv3B: w.get(md + "6.bias"),
		Eps: cfg.PromptLayerNorm2dEps,
	}
	if w.err == nil {
		pe.densePE = w.b.UploadWeight(pe.densePEHost(), 1, pe.g*pe.g, pe.C)
	}
	return pe
}

// encode writes the positional encoding of a point with coordinates already
// normalised to [0, 1] (x/S, y/S) into out (C): [sin(2π·((2c−1)·G)), cos(…)],
// sine half first (PositionEmbeddingRandom._pe_encoding).
func (pe *promptEncoder) encode(x, y float32, out []float32) {
	half := pe.C / 2
	x, y = 2*x-1, 2*y-1
	for j := range half {
		v := twoPi * (x*pe.gauss[j] + y*pe.gauss[half+j])
		out[j] = float32(math.Sin(float64(v)))
		out[half+j] = float32(math.Cos(float64(v)))
	}
}

// densePEHost is get_dense_pe(): token (i, j) at ((j+0.5)/g, (i+0.5)/g),
// returned channels-last as (g·g, C).
func (pe *promptEncoder) densePEHost() []float32 {
	g, C := pe.g, pe.C
	out := make([]float32, g*g*C)
	for i := range g {
		y := (float32(i) + 0.5) / float32(g)
		for j := range g {
			x := (float32(j) + 0.5) / float32(g)
			pe.encode(x, y, out[(i*g+j)*C:(i*g+j+1)*C])
		}
	}
	return out
}

// point is a prompt coordinate already normalised by S (+0.5 applied), and
// its label: 1 foreground, 0 background, −1 padding, 2/3 box corners.
type point struct {
	x, y  float32
	label int
}

// sparse returns the sparse tokens (n, C) of one prompt: its points (plus a
// padding point when there is no box), then the box corners
// (PromptEncoder._embed_points / _embed_boxes).
func (pe *promptEncoder) sparse(pts []point, out []float32) {
	C := pe.C
	for i, p := range pts {
		o := out[i*C : (i+1)*C]
		if p.label == -1 {
			// The padding point's encoding is zeroed and replaced.
			copy(o, pe.notAPoint)
			continue
		}
		pe.encode(p.x, p.y, o)
		var emb []float32
		switch p.label {
		case 0:
			emb = pe.pointEmb[0]
		case 1:
			emb = pe.pointEmb[1]
		case 2:
			emb = pe.pointEmb[2]
		case 3:
			emb = pe.pointEmb[3]
		}
		for c := range o {
			o[c] += emb[c]
		}
	}
}

// dense returns the dense prompt embedding (B, g·g, C) for mask inputs
// (B, 4g, 4g), or nil when there are none (the caller adds noMask instead).
func (pe *promptEncoder) dense(b nn.Backend, masks nn.Tensor) nn.Tensor {
	if masks == nil {
		return nil
	}
	d := b.MaskDownsample(masks, pe.down) // (B, g, g, C)
	B := d.Shape()[0]
	return view(b, d, B, pe.g*pe.g, pe.C)
}
