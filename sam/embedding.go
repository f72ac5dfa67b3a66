package sam

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/samgo/samgo/sam/checkpoint"
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
}

// ErrEmbedding marks an embedding that does not fit the model or is corrupt.
var ErrEmbedding = errors.New("bad embedding")

// Check verifies that the embedding fits model config c.
func (e *Embedding) Check(c *Config) error {
	switch {
	case e.C != c.PromptEmbedDim || e.G != c.GridSize() || e.ImgSize != c.ImgSize:
		return fmt.Errorf("%w: embedding is %d×%d×%d for input %d, model wants %d×%d×%d for input %d",
			ErrEmbedding, e.C, e.G, e.G, e.ImgSize, c.PromptEmbedDim, c.GridSize(), c.GridSize(), c.ImgSize)
	case len(e.Features) != e.C*e.G*e.G:
		return fmt.Errorf("%w: %d values for %d×%d×%d", ErrEmbedding, len(e.Features), e.C, e.G, e.G)
	case e.OriginalH <= 0 || e.OriginalW <= 0:
		return fmt.Errorf("%w: original size %d×%d", ErrEmbedding, e.OriginalW, e.OriginalH)
	}
	h, w := PreprocessShape(e.OriginalH, e.OriginalW, e.ImgSize)
	if h != e.InputH || w != e.InputW {
		return fmt.Errorf("%w: input size %d×%d does not follow from original %d×%d at %d (want %d×%d)",
			ErrEmbedding, e.InputW, e.InputH, e.OriginalW, e.OriginalH, e.ImgSize, w, h)
	}
	return nil
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
// (1, C, G, G) plus the sizes as metadata.
func (e *Embedding) WriteTo(w io.Writer) (int64, error) {
	meta := map[string]string{
		"format":     embeddingFormat,
		"img_size":   strconv.Itoa(e.ImgSize),
		"original_h": strconv.Itoa(e.OriginalH), "original_w": strconv.Itoa(e.OriginalW),
		"input_h": strconv.Itoa(e.InputH), "input_w": strconv.Itoa(e.InputW),
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

// Save writes the embedding to path (see WriteTo).
func (e *Embedding) Save(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := e.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("save embedding %s: %w", path, err)
	}
	return f.Close()
}

// LoadEmbedding reads an embedding written by Save.
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

func embeddingFromFile(f *checkpoint.File) (*Embedding, error) {
	if f.Metadata["format"] != embeddingFormat {
		return nil, fmt.Errorf("%w: not a %s file", ErrEmbedding, embeddingFormat)
	}
	t, ok := f.Tensor("embedding")
	if !ok || len(t.Shape) != 4 || t.Shape[0] != 1 || t.Shape[2] != t.Shape[3] {
		return nil, fmt.Errorf("%w: tensor \"embedding\" (1, C, G, G) missing or misshaped", ErrEmbedding)
	}
	v, err := t.Float32()
	if err != nil {
		return nil, err
	}
	e := &Embedding{Features: append([]float32(nil), v...), C: t.Shape[1], G: t.Shape[2]}
	for key, dst := range map[string]*int{
		"img_size": &e.ImgSize, "original_h": &e.OriginalH, "original_w": &e.OriginalW,
		"input_h": &e.InputH, "input_w": &e.InputW,
	} {
		n, err := strconv.Atoi(f.Metadata[key])
		if err != nil {
			return nil, fmt.Errorf("%w: metadata %q: %q", ErrEmbedding, key, f.Metadata[key])
		}
		*dst = n
	}
	return e, nil
}

// upload puts the embedding on backend b as image tokens (1, G·G, C).
func (e *Embedding) upload(b nn.Backend) nn.Tensor {
	return b.Upload(e.tokens(), 1, e.G*e.G, e.C)
}
