package sam

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn/cpu"
)

// The backend's peak tensor memory (cpu.Backend.PeakMemory, bytes above
// what it held before the call) of the two cases the scope refactor was
// measured on, as they were before it (git 7913220, every intermediate
// released by hand right after its last use):
//
//	encoder: ViT-B, random weights, one 1024×1024 input              96.0 MiB (100 663 296 B)
//	decoder: ViT-B, 64 one-point prompts, multimask, 1024×1024 image,
//	         on a random embedding                                   240.3 MiB (251 940 864 B)
//
// After it (nn.Scope, Done at the last use of the image-sized tensors):
// the encoder's is the same to the byte, the decoder's 312 KiB (0.13%)
// higher (token-sized sums with the query PE live to their block's end).
// The count is exact (the bytes of live tensors, not the Go heap) and
// deterministic for a graph, so the guard's margin only absorbs small
// changes (a few token-sized tensors); an intermediate kept one op too
// long in the encoder costs 12 MiB (a (1, 64, 64, 768) map) and fails it.
const (
	encoderPeakVitB   = 100663296
	decoderPeak64     = 251940864
	peakMarginPercent = 1
)

// peakEncoderVitB runs the ViT-B encoder with random weights on one random
// 1024×1024 input and returns the backend's peak above its use before.
func peakEncoderVitB(t *testing.T) (peak int64, el time.Duration) {
	b := cpu.New()
	m, err := NewRandom(VitB, b, 1)
	require.NoError(t, err)
	defer m.Close()
	S := m.Config.ImgSize
	rng := rand.New(rand.NewPCG(1, 2))
	in := make([]float32, S*S*3)
	for i := range in {
		in[i] = float32(rng.NormFloat64())
	}
	base := b.MemoryInUse()
	b.ResetPeakMemory()
	t0 := time.Now()
	_, err = m.EncodeInput(context.Background(), in, 1, nil)
	el = time.Since(t0)
	require.NoError(t, err)
	require.Equal(t, base, b.MemoryInUse(), "the encoder releases every intermediate")
	return b.PeakMemory() - base, el
}

// peakDecoder64 runs 64 one-point prompts, multimask, on a random ViT-B
// embedding of a 1024×1024 image (TestPeakMemory's decoder case) and
// returns the backend's peak above its use before (the embedding).
func peakDecoder64(t *testing.T) (peak int64, el time.Duration) {
	m, b, f, rng := randomVitBDecoder(t)
	g, C, S := m.Config.GridSize(), m.Config.PromptEmbedDim, m.Config.ImgSize
	ps := randomPointPrompts(rng, 64, S)
	p := NewPredictor(m)
	require.NoError(t, p.SetEmbedding(&Embedding{Features: f, C: C, G: g, ImgSize: S, OriginalH: S, OriginalW: S, InputH: S, InputW: S}))
	base := b.MemoryInUse()
	b.ResetPeakMemory()
	t0 := time.Now()
	res, err := p.PredictBatch(context.Background(), ps)
	el = time.Since(t0)
	require.NoError(t, err)
	require.Len(t, res, len(ps))
	require.Equal(t, base, b.MemoryInUse(), "the decoder releases every intermediate")
	return b.PeakMemory() - base, el
}

// TestPeakMemoryDoesNotGrow guards the peaks above (about 10 s on two
// cores, so it runs when asked):
//
//	SAM_MEMORY=guard go test -count=1 -run TestPeakMemoryDoesNotGrow -v ./sam
func TestPeakMemoryDoesNotGrow(t *testing.T) {
	if os.Getenv("SAM_MEMORY") != "guard" {
		t.Skip("set SAM_MEMORY=guard to check the ViT-B encoder's and the 64-prompt decoder's peak backend memory")
	}
	for _, c := range []struct {
		name string
		run  func(*testing.T) (int64, time.Duration)
		was  int64
	}{
		{"encoder", peakEncoderVitB, encoderPeakVitB},
		{"decoder", peakDecoder64, decoderPeak64},
	} {
		t.Run(c.name, func(t *testing.T) {
			peak, el := c.run(t)
			t.Logf("backend peak %d B (%.1f MiB), %v; before the scopes %d B", peak, float64(peak)/(1<<20), el.Round(time.Millisecond), c.was)
			require.LessOrEqual(t, peak, c.was+c.was*peakMarginPercent/100, "peak memory grew")
		})
	}
}

// TestMemoryReturnsToTheWeights: after an encode and predictions through
// every path of the graph (points, a box, a mask input, single and
// multimask), and after calls cancelled midway through the encoder and
// the decoder, the backend holds the weights and the predictor's
// embedding and nothing else; after Reset, the weights alone.
func TestMemoryReturnsToTheWeights(t *testing.T) {
	b := cpu.New()
	m := tinyModel(t, b)
	defer m.Close()
	weights := b.MemoryInUse()
	cfg := &m.Config
	emb := int64(4 * cfg.PromptEmbedDim * cfg.GridSize() * cfg.GridSize()) // the predictor's (1, g·g, C) tokens

	p := NewPredictor(m)
	require.NoError(t, p.SetImage(context.Background(), loadImage(t, "tiny", "image_1.png")))
	require.Equal(t, weights+emb, b.MemoryInUse(), "after the encoder")
	res, err := p.PredictBatch(context.Background(), []Prompt{
		{Points: []Point{{X: 30, Y: 20, Label: 1}, {X: 5, Y: 9, Label: 0}}},
		{Points: []Point{{X: 12, Y: 40, Label: 1}}},
	})
	require.NoError(t, err)
	require.Equal(t, weights+emb, b.MemoryInUse(), "after points, multimask")
	_, err = p.Predict(context.Background(), Prompt{
		Box:        &Box{X0: 4, Y0: 6, X1: 50, Y1: 40},
		MaskInput:  res[0].LowResLogits[res[0].Best()],
		SingleMask: true,
	})
	require.NoError(t, err)
	require.Equal(t, weights+emb, b.MemoryInUse(), "after a box with a mask input, single mask")

	// Cancelled in the encoder after its first block, and in the decoder
	// before its first layer (the prompt encoder's trace cancels).
	ctx, cancel := context.WithCancel(context.Background())
	S := cfg.ImgSize
	_, err = m.EncodeInput(ctx, make([]float32, S*S*3), 1, func(name string, _ []int, _ []float32) {
		if name == "block_0" {
			cancel()
		}
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, weights+emb, b.MemoryInUse(), "after a cancelled encode")
	ctx, cancel = context.WithCancel(context.Background())
	p.Trace = func(name string, _ []int, _ []float32) {
		if name == "sparse" {
			cancel()
		}
	}
	_, err = p.Predict(ctx, Prompt{Points: []Point{{X: 30, Y: 20, Label: 1}}, MaskInput: res[1].LowResLogits[0]})
	require.ErrorIs(t, err, context.Canceled)
	p.Trace = nil
	require.Equal(t, weights+emb, b.MemoryInUse(), "after a cancelled decode")

	p.Reset()
	require.Equal(t, weights, b.MemoryInUse(), "after Reset")
}
