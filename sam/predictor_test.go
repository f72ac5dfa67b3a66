package sam

import (
	"context"
	"math"
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
	nan, inf := math.NaN(), math.Inf(1)
	nanMask := make([]float32, n*n)
	nanMask[7] = float32(nan)
	for _, c := range []struct {
		name      string
		pr        Prompt
		nonFinite bool
	}{
		{"empty", Prompt{}, false},
		{"label", Prompt{Points: []Point{{X: 1, Y: 1, Label: 2}}}, false},
		{"box reversed", Prompt{Box: &Box{X0: 10, Y0: 0, X1: 5, Y1: 5}}, false},
		{"mask size", Prompt{MaskInput: make([]float32, n*n-1)}, false},
		{"single and multi", Prompt{Points: []Point{{X: 1, Y: 1, Label: 1}}, SingleMask: true, Multimask: true}, false},
		{"too many points", Prompt{Points: make([]Point, MaxPoints+1)}, false},
		{"point far out", Prompt{Points: []Point{{X: 1e300, Y: 1, Label: 1}}}, false},
		{"point NaN", Prompt{Points: []Point{{X: nan, Y: 1, Label: 1}}}, true},
		{"point Inf", Prompt{Points: []Point{{X: 1, Y: -inf, Label: 1}}}, true},
		{"box NaN", Prompt{Box: &Box{X0: 0, Y0: 0, X1: nan, Y1: 5}}, true},
		{"box Inf", Prompt{Box: &Box{X0: -inf, Y0: 0, X1: 5, Y1: 5}}, true},
		{"mask NaN", Prompt{MaskInput: nanMask}, true},
	} {
		_, err := p.Predict(context.Background(), c.pr)
		require.ErrorIs(t, err, ErrPrompt, c.name)
		if c.nonFinite {
			require.ErrorIs(t, err, ErrNonFinite, c.name)
		}
	}
	// On the edges is inside; a mask alone is a prompt; three masks are
	// the default, as multimask_output=True is SamPredictor's.
	_, err = p.Predict(context.Background(), Prompt{Points: []Point{{X: 40, Y: 30, Label: 0}}, Box: &Box{X0: 0, Y0: 0, X1: 40, Y1: 30}})
	require.NoError(t, err)
	r, err := p.Predict(context.Background(), Prompt{MaskInput: make([]float32, n*n)})
	require.NoError(t, err)
	require.Len(t, r.Masks, 3)
	require.Equal(t, 40*30, len(r.Masks[0].Pix))
	require.Nil(t, r.Logits)
	r, err = p.Predict(context.Background(), Prompt{MaskInput: make([]float32, n*n), SingleMask: true})
	require.NoError(t, err)
	require.Len(t, r.Masks, 1)

	_, err = p.PredictBatch(context.Background(), []Prompt{{Points: []Point{{X: 1, Y: 1, Label: 1}}}, {}})
	require.ErrorContains(t, err, "prompt 1")
	_, err = p.PredictBatch(context.Background(), make([]Prompt, MaxPrompts+1))
	require.ErrorIs(t, err, ErrPrompt)
	_, err = p.PredictPoints(context.Background(), make([][2]float64, MaxPrompts+1), true)
	require.ErrorIs(t, err, ErrPrompt)
	_, err = p.PredictPoints(context.Background(), [][2]float64{{nan, 1}}, true)
	require.ErrorIs(t, err, ErrNonFinite)
}

// TestPromptsOutsideTheImage: SamPredictor only transforms coordinates, so
// boxes and points partly or wholly outside the image are prompts like any
// other (the boxes on a 640×480 image).
func TestPromptsOutsideTheImage(t *testing.T) {
	p := tinyPredictor(t)
	img, err := imgproc.Load(fixture("tiny", "image_0.png"))
	require.NoError(t, err)
	big := imgproc.Resize(img, 640, 480)
	require.NoError(t, p.SetImage(context.Background(), big))
	for _, pr := range []Prompt{
		{Box: &Box{X0: -100, Y0: -100, X1: 50, Y1: 50}},
		{Box: &Box{X0: 0, Y0: 0, X1: 641, Y1: 481}},
		{Box: &Box{X0: 700, Y0: 500, X1: 800, Y1: 900}},
		{Points: []Point{{X: -5, Y: 10, Label: 1}, {X: 650, Y: 490, Label: 0}}},
	} {
		r, err := p.Predict(context.Background(), pr)
		require.NoError(t, err, "%+v", pr)
		require.Len(t, r.Masks, 3)
		require.Equal(t, 640*480, len(r.Masks[0].Pix))
	}
}

// TestPredictBatchMatchesSingle: mixed prompt structures in one batch give
// the same answers, in input order, as one call each.
func TestPredictBatchMatchesSingle(t *testing.T) {
	p := tinyPredictor(t)
	img, err := imgproc.Load(fixture("tiny", "image_0.png"))
	require.NoError(t, err)
	require.NoError(t, p.SetImage(context.Background(), img))
	prompts := []Prompt{
		{Points: []Point{{X: 50, Y: 80, Label: 1}}},
		{Box: &Box{X0: 10, Y0: 10, X1: 90, Y1: 70}, SingleMask: true},
		{Points: []Point{{X: 20, Y: 30, Label: 1}}},
		{Points: []Point{{X: 20, Y: 30, Label: 1}, {X: 60, Y: 60, Label: 0}}, SingleMask: true},
		{Box: &Box{X0: 100, Y0: 50, X1: 160, Y1: 118}, SingleMask: true},
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
	require.Equal(t, p.Model().EncoderIdentity(), back.Model, "the file keeps the encoder's identity")

	pr := Prompt{Points: []Point{{X: 30, Y: 20, Label: 1}}}
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
	m, err := Load(fixtureModel(t, "vitb_decoder"), cpu.New(), LoadOptions{Config: &cfg})
	require.NoError(t, err)
	defer m.Close()
	require.False(t, m.HasImageEncoder())
	_, err = m.EncodeImage(context.Background(), imgproc.NewRGB(4, 4))
	require.ErrorIs(t, err, ErrNoEncoder)
}
