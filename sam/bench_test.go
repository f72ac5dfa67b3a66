package sam

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/samgo/samgo/sam/nn/cpu"
)

// BenchmarkEncoderViTB times the full-size ViT-B image encoder (random
// weights) on one 1024×1024 input.
func BenchmarkEncoderViTB(b *testing.B) {
	m, err := NewRandom(VitB, cpu.New(), 1)
	if err != nil {
		b.Fatal(err)
	}
	S := m.Config.ImgSize
	in := make([]float32, S*S*3)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range in {
		in[i] = float32(rng.NormFloat64())
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.EncodeInput(context.Background(), in, 1, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkDecoder(b *testing.B, prompts int) {
	cfg := VitB
	cfg.HasImageEncoder = false
	m, err := NewRandom(cfg, cpu.New(), 1)
	if err != nil {
		b.Fatal(err)
	}
	g, C, S := cfg.GridSize(), cfg.PromptEmbedDim, cfg.ImgSize
	rng := rand.New(rand.NewPCG(2, 2))
	f := make([]float32, C*g*g)
	for i := range f {
		f[i] = float32(rng.NormFloat64() * 0.5)
	}
	p := NewPredictor(m)
	if err := p.SetEmbedding(&Embedding{Features: f, C: C, G: g, ImgSize: S, OriginalH: S, OriginalW: S, InputH: S, InputW: S}); err != nil {
		b.Fatal(err)
	}
	ps := make([]Prompt, prompts)
	for i := range ps {
		ps[i] = Prompt{Points: []Point{{X: rng.Float64() * float64(S), Y: rng.Float64() * float64(S), Label: 1}}}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.PredictBatch(context.Background(), ps); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/float64(prompts), "ms/prompt")
}

// BenchmarkDecoder times prompt encoder + mask decoder + upsampling to
// 1024×1024 from a cached ViT-B-size embedding, multimask.
func BenchmarkDecoder1(b *testing.B)  { benchmarkDecoder(b, 1) }
func BenchmarkDecoder64(b *testing.B) { benchmarkDecoder(b, 64) }
