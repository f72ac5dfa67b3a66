package sam

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn/cpu"
)

func tinyPredictor(t *testing.T) *Predictor {
	t.Helper()
	cfg := fixtureConfig(t, "tiny")
	m, err := Load(fixture("tiny", "model.safetensors"), cpu.New(), LoadOptions{Config: &cfg})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return NewPredictor(m)
}

func TestPromptValidation(t *testing.T) {
	p := tinyPredictor(t)
	_, err := p.Predict(context.Background(), Prompt{Points: []Point{{X: 1, Y: 1, Label: 1}}})
	require.ErrorIs(t, err, ErrNoImage)

	img := imgproc.NewRGB(40, 30)
	require.NoError(t, p.SetImage(context.Background(), img))
	n := p.Model().Config.LowResSize()
	for name, pr := range map[string]Prompt{
		"empty":         {},
		"label":         {Points: []Point{{X: 1, Y: 1, Label: 2}}},
		"point outside": {Points: []Point{{X: 41, Y: 1, Label: 1}}},
		"negative":      {Points: []Point{{X: -1, Y: 1, Label: 1}}},
		"box outside":   {Box: &Box{X0: 0, Y0: 0, X1: 10, Y1: 31}},
		"box reversed":  {Box: &Box{X0: 10, Y0: 0, X1: 5, Y1: 5}},
		"mask size":     {MaskInput: make([]float32, n*n-1)},
	} {
		_, err := p.Predict(context.Background(), pr)
		require.ErrorIs(t, err, ErrPrompt, name)
	}
	// On the edges is inside; a mask alone is a prompt.
	_, err = p.Predict(context.Background(), Prompt{Points: []Point{{X: 40, Y: 30, Label: 0}}, Box: &Box{X0: 0, Y0: 0, X1: 40, Y1: 30}})
	require.NoError(t, err)
	r, err := p.Predict(context.Background(), Prompt{MaskInput: make([]float32, n*n), Multimask: true})
	require.NoError(t, err)
	require.Len(t, r.Masks, 3)
	require.Equal(t, 40*30, len(r.Masks[0].Pix))
	require.Nil(t, r.Logits)

	_, err = p.PredictBatch(context.Background(), []Prompt{{Points: []Point{{X: 1, Y: 1, Label: 1}}}, {}})
	require.ErrorContains(t, err, "prompt 1")
}

// TestPredictBatchMatchesSingle: mixed prompt structures in one batch give
// the same answers, in input order, as one call each.
func TestPredictBatchMatchesSingle(t *testing.T) {
	p := tinyPredictor(t)
	img, err := imgproc.Load(fixture("tiny", "image_0.png"))
	require.NoError(t, err)
	require.NoError(t, p.SetImage(context.Background(), img))
	prompts := []Prompt{
		{Points: []Point{{X: 50, Y: 80, Label: 1}}, Multimask: true},
		{Box: &Box{X0: 10, Y0: 10, X1: 90, Y1: 70}},
		{Points: []Point{{X: 20, Y: 30, Label: 1}}, Multimask: true},
		{Points: []Point{{X: 20, Y: 30, Label: 1}, {X: 60, Y: 60, Label: 0}}},
		{Box: &Box{X0: 100, Y0: 50, X1: 160, Y1: 118}},
	}
	batch, err := p.PredictBatch(context.Background(), prompts)
	require.NoError(t, err)
	for i, pr := range prompts {
		one, err := p.Predict(context.Background(), pr)
		require.NoError(t, err)
		require.Equal(t, len(one.Masks), len(batch[i].Masks), i)
		require.InDeltaSlice(t, one.IoU, batch[i].IoU, 1e-5, i)
		for j := range one.LowResLogits {
			require.InDeltaSlice(t, one.LowResLogits[j], batch[i].LowResLogits[j], 1e-4, "%d/%d", i, j)
		}
	}
}

func TestEmbeddingRoundTrip(t *testing.T) {
	p := tinyPredictor(t)
	img, err := imgproc.Load(fixture("tiny", "image_1.png"))
	require.NoError(t, err)
	require.NoError(t, p.SetImage(context.Background(), img))
	e := p.Embedding()
	path := filepath.Join(t.TempDir(), "e.safetensors")
	require.NoError(t, e.Save(path))
	back, err := LoadEmbedding(path)
	require.NoError(t, err)
	require.Equal(t, e, back)

	pr := Prompt{Points: []Point{{X: 30, Y: 20, Label: 1}}, Multimask: true}
	a, err := p.Predict(context.Background(), pr)
	require.NoError(t, err)
	q := NewPredictor(p.Model())
	require.NoError(t, q.SetEmbedding(back))
	b, err := q.Predict(context.Background(), pr)
	require.NoError(t, err)
	require.Equal(t, a.IoU, b.IoU)
	require.Equal(t, a.LowResLogits, b.LowResLogits)

	bad := *back
	bad.G = 7
	require.ErrorIs(t, q.SetEmbedding(&bad), ErrEmbedding)
	bad = *back
	bad.InputW++
	require.ErrorIs(t, q.SetEmbedding(&bad), ErrEmbedding)
	_, err = LoadEmbedding(fixture("tiny", "model.safetensors"))
	require.ErrorIs(t, err, ErrEmbedding)
}

func TestDecoderOnlyModel(t *testing.T) {
	cfg := fixtureConfig(t, "vitb_decoder")
	m, err := Load(fixture("vitb_decoder", "model.safetensors"), cpu.New(), LoadOptions{Config: &cfg})
	require.NoError(t, err)
	defer m.Close()
	require.False(t, m.HasImageEncoder())
	_, err = m.EncodeImage(context.Background(), imgproc.NewRGB(4, 4))
	require.ErrorIs(t, err, ErrNoEncoder)
}
