package sam

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/samgo/samgo/sam/atomicfile"
	"github.com/samgo/samgo/sam/checkpoint"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn"
)

// Embedding is an encoded image: what SamPredictor.set_image computes once
// and every prompt reuses. It is a plain value: save it, load it, send it
// to another process, and prompt it there.
type Embedding struct {
	// Features is the image embedding (C, G, G), channels first, exactly
	// the official predictor.features[0].
	Features []float32
	C, G     int
	// ImgSize is the model's padded input side S.
	ImgSize int
	// OriginalH/W is the image size; InputH/W the resized size before
	// padding (ResizeLongestSide). Prompts are given in original pixels.
	OriginalH, OriginalW int
	InputH, InputW       int
	// Model is the EncoderIdentity of the model that encoded the image.
	// Predictor.SetEmbedding refuses an embedding whose Model is set and
	// differs from its model's; "" (an embedding made elsewhere, or saved
	// by an older version) is accepted on its shapes alone.
	Model string
}

// ErrEmbedding marks an embedding that does not fit the model or is corrupt.
var ErrEmbedding = errors.New("bad embedding")

// ErrNonFinite marks a NaN or infinite value: in an input (wrapped together
// with ErrPrompt or ErrEmbedding), or in what the model computed (weights
// holding NaN/Inf, or an overflow).
var ErrNonFinite = errors.New("NaN or infinite value")

// MaxEmbeddingPixels bounds the image size an embedding may claim
// (OriginalW·OriginalH), the same bound imgproc puts on decoded images:
// every prediction allocates masks of that size.
const MaxEmbeddingPixels = imgproc.DefaultMaxPixels

// Check verifies that the embedding fits model config c and is sound (see
// check).
func (e *Embedding) Check(c *Config) error {
	if e == nil {
		return fmt.Errorf("%w: nil embedding", ErrEmbedding)
	}
	if e.C != c.PromptEmbedDim || e.G != c.GridSize() || e.ImgSize != c.ImgSize {
		return fmt.Errorf("%w: embedding is %d×%d×%d for input %d, model wants %d×%d×%d for input %d",
			ErrEmbedding, e.C, e.G, e.G, e.ImgSize, c.PromptEmbedDim, c.GridSize(), c.GridSize(), c.ImgSize)
	}
	return e.check()
}

// check verifies what an embedding says of itself: positive sizes, as many
// values as C·G·G, all finite, an image size within MaxEmbeddingPixels and
// an input size that follows from it.
func (e *Embedding) check() error {
	switch {
	case e.C <= 0 || e.G <= 0 || e.ImgSize <= 0:
		return fmt.Errorf("%w: sizes C %d, G %d, input %d", ErrEmbedding, e.C, e.G, e.ImgSize)
	case len(e.Features)/e.C/e.G != e.G || len(e.Features) != e.C*e.G*e.G:
		return fmt.Errorf("%w: %d values for %d×%d×%d", ErrEmbedding, len(e.Features), e.C, e.G, e.G)
	case e.OriginalH <= 0 || e.OriginalW <= 0:
		return fmt.Errorf("%w: original size %d×%d", ErrEmbedding, e.OriginalW, e.OriginalH)
	case e.OriginalH > MaxEmbeddingPixels/e.OriginalW:
		return fmt.Errorf("%w: original size %d×%d is over the limit of %d pixels", ErrEmbedding, e.OriginalW, e.OriginalH, MaxEmbeddingPixels)
	}
	h, w := PreprocessShape(e.OriginalH, e.OriginalW, e.ImgSize)
	if h != e.InputH || w != e.InputW {
		return fmt.Errorf("%w: input size %d×%d does not follow from original %d×%d at %d (want %d×%d)",
			ErrEmbedding, e.InputW, e.InputH, e.OriginalW, e.OriginalH, e.ImgSize, w, h)
	}
	if i := nonFinite(e.Features); i >= 0 {
		return fmt.Errorf("%w: %w: feature %d is %v", ErrEmbedding, ErrNonFinite, i, e.Features[i])
	}
	return nil
}

// nonFinite returns the index of the first NaN or ±Inf in v, or -1.
func nonFinite(v []float32) int {
	for i, x := range v {
		if x-x != 0 { // NaN − NaN and Inf − Inf are NaN
			return i
		}
	}
	return -1
}

// tokens returns the features channels-last, (G·G, C), as the decoder reads them.
func (e *Embedding) tokens() []float32 {
	n := e.G * e.G
	out := make([]float32, n*e.C)
	for c := range e.C {
		row := e.Features[c*n : (c+1)*n]
		for i, v := range row {
			out[i*e.C+c] = v
		}
	}
	return out
}

// embeddingFromTokens builds an Embedding from channels-last tokens (G·G, C).
func embeddingFromTokens(tok []float32, C, G int) *Embedding {
	n := G * G
	f := make([]float32, n*C)
	for i := range n {
		for c := range C {
			f[c*n+i] = tok[i*C+c]
		}
	}
	return &Embedding{Features: f, C: C, G: G}
}

const embeddingFormat = "samgo-embedding/1"

// WriteTo stores the embedding as safetensors: one F32 tensor "embedding"
// (1, C, G, G) plus the sizes and the model identity ("model", omitted when
// empty) as metadata.
func (e *Embedding) WriteTo(w io.Writer) (int64, error) {
	if e == nil {
		return 0, fmt.Errorf("%w: nil embedding", ErrEmbedding)
	}
	if err := e.check(); err != nil {
		return 0, err
	}
	meta := map[string]string{
		"format":     embeddingFormat,
		"img_size":   strconv.Itoa(e.ImgSize),
		"original_h": strconv.Itoa(e.OriginalH), "original_w": strconv.Itoa(e.OriginalW),
		"input_h": strconv.Itoa(e.InputH), "input_w": strconv.Itoa(e.InputW),
	}
	if e.Model != "" {
		meta["model"] = e.Model
	}
	var buf bytes.Buffer
	err := checkpoint.WriteSafetensors(&buf, []checkpoint.WriteTensor{
		{Name: "embedding", DType: checkpoint.F32, Shape: []int{1, e.C, e.G, e.G}, F32: e.Features},
	}, meta)
	if err != nil {
		return 0, err
	}
	return buf.WriteTo(w)
}

// Save writes the embedding to path (see WriteTo). It writes a temporary
// file beside path and renames it, so path never holds a partial file.
func (e *Embedding) Save(path string) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { _, err := e.WriteTo(w); return err }); err != nil {
		return fmt.Errorf("save embedding: %w", err)
	}
	return nil
}

// LoadEmbedding reads an embedding written by Save (or WriteTo) and checks
// it as far as it can without a model: sizes, the pixel limit, finite
// values. The model's own check comes with Predictor.SetEmbedding.
func LoadEmbedding(path string) (*Embedding, error) {
	f, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load embedding: %w", err)
	}
	defer f.Close()
	e, err := embeddingFromFile(f)
	if err != nil {
		return nil, fmt.Errorf("load embedding %s: %w", path, err)
	}
	return e, nil
}

// ParseEmbedding is LoadEmbedding on the bytes WriteTo writes (an
// embedding held in a cache, a Redis value), with the same checks.
func ParseEmbedding(data []byte) (*Embedding, error) {
	f, err := checkpoint.Parse("embedding", data)
	if err != nil {
		return nil, fmt.Errorf("parse embedding: %w", err)
	}
	defer f.Close()
	e, err := embeddingFromFile(f)
	if err != nil {
		return nil, fmt.Errorf("parse embedding: %w", err)
	}
	return e, nil
}

func embeddingFromFile(f *checkpoint.File) (*Embedding, error) {
	if f.Metadata["format"] != embeddingFormat {
		return nil, fmt.Errorf("%w: not a %s file", ErrEmbedding, embeddingFormat)
	}
	e := &Embedding{Model: f.Metadata["model"]}
	for _, m := range []struct {
		key string
		dst *int
	}{
		{"img_size", &e.ImgSize}, {"original_h", &e.OriginalH}, {"original_w", &e.OriginalW},
		{"input_h", &e.InputH}, {"input_w", &e.InputW},
	} {
		n, err := strconv.Atoi(f.Metadata[m.key])
		if err != nil {
			return nil, fmt.Errorf("%w: metadata %q: %q", ErrEmbedding, m.key, f.Metadata[m.key])
		}
		*m.dst = n
	}
	t, ok := f.Tensor("embedding")
	if !ok || len(t.Shape) != 4 || t.Shape[0] != 1 || t.Shape[2] != t.Shape[3] {
		return nil, fmt.Errorf("%w: tensor \"embedding\" (1, C, G, G) missing or misshaped", ErrEmbedding)
	}
	e.C, e.G = t.Shape[1], t.Shape[2]
	v, err := t.Float32()
	if err != nil {
		return nil, err
	}
	e.Features = append([]float32(nil), v...)
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

// upload puts the embedding on backend b as image tokens (1, G·G, C).
func (e *Embedding) upload(b nn.Backend) nn.Tensor {
	return b.Upload(e.tokens(), 1, e.G*e.G, e.C)
}
