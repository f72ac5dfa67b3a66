//go:build cuda

package gpu

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/cuda"
	"github.com/samgo/samgo/cuda/cudatest"
	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu"
)

// Full-size models with random weights (sam.NewRandom): the shapes of the
// official checkpoints (ViT-B/H encoders at 1024×1024, the 256-channel
// decoder) on the GPU in both precisions against the CPU (ViT-B) or the
// GPU's fp32 (ViT-H, too slow on the CPU for a test).
//
// Tolerances, as max |Δ| / std(reference) (FIXTURES.md's measure):
// fp32 as the fixture suite (embedding 1e-4, logits 3e-4). bf16: the
// fixtures' 0.1 (embedding) and 0.8 (logits) were measured on 2–4-block
// encoders; the 12 and 32 blocks here accumulate more rounding, so the
// embedding is held to 0.2 (ViT-B) and 0.3 (ViT-H) plus an NMSE bound
// of 2e-3 that a systematic error would exceed. These bf16 bounds are
// first estimates: the tests log the measured values so they can be
// tightened once they have run on a GPU.

func randomInput(S int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	in := make([]float32, S*S*3)
	for i := range in {
		in[i] = float32(rng.NormFloat64())
	}
	return in
}

// encodeRandom builds cfg with random weights (seed 1) on b and encodes in.
func encodeRandom(t *testing.T, b nn.Backend, cfg sam.Config, in []float32) []float32 {
	t.Helper()
	m, err := sam.NewRandom(cfg, b, 1)
	require.NoError(t, err)
	defer m.Close()
	embs, err := m.EncodeInput(context.Background(), in, 1, nil)
	require.NoError(t, err)
	return embs[0].Features
}

// maxOverStd is max |got − ref| / std(ref) (NaN counts as +Inf).
func maxOverStd(ref, got []float32) float64 {
	var mean float64
	for _, r := range ref {
		mean += float64(r)
	}
	mean /= float64(len(ref))
	var v, m float64
	for i, r := range ref {
		d := float64(r) - mean
		v += d * d
		e := math.Abs(float64(got[i]) - float64(r))
		if math.IsNaN(e) {
			return math.Inf(1)
		}
		m = max(m, e)
	}
	return m / math.Sqrt(v/float64(len(ref)))
}

func requireMaxStd(t *testing.T, name string, ref, got []float32, tol float64) {
	t.Helper()
	require.Len(t, got, len(ref), name)
	d := maxOverStd(ref, got)
	t.Logf("%-32s max/std %.3g (tolerance %g), NMSE %.3g", name, d, tol, nmseOf(ref, got))
	require.LessOrEqual(t, d, tol, name)
}

func TestViTBEncoderRandomWeights(t *testing.T) {
	if testing.Short() {
		t.Skip("full-size ViT-B on the CPU and the GPU (about 30 s): skipped with -short")
	}
	fullSize(t, true)
	g32, g16 := gpuOrSkip(t, "fp32"), gpuOrSkip(t, "bf16")
	in := randomInput(sam.VitB.ImgSize, 1)
	ref := encodeRandom(t, cpu.New(), sam.VitB, in)
	e32 := encodeRandom(t, g32, sam.VitB, in)
	requireMaxStd(t, "vit_b embedding fp32 vs cpu", ref, e32, 1e-4)
	e16 := encodeRandom(t, g16, sam.VitB, in)
	requireMaxStd(t, "vit_b embedding bf16 vs cpu", ref, e16, 0.2)
	require.LessOrEqual(t, nmseOf(ref, e16), 2e-3)
}

func TestViTHEncoderRandomWeights(t *testing.T) {
	if testing.Short() {
		t.Skip("full-size ViT-H on the GPU in two precisions: skipped with -short")
	}
	fullSize(t, true)
	g32, g16 := gpuOrSkip(t, "fp32"), gpuOrSkip(t, "bf16")
	in := randomInput(sam.VitH.ImgSize, 2)
	e32 := encodeRandom(t, g32, sam.VitH, in)
	e16 := encodeRandom(t, g16, sam.VitH, in)
	requireMaxStd(t, "vit_h embedding bf16 vs fp32", e32, e16, 0.3)
	require.LessOrEqual(t, nmseOf(e32, e16), 2e-3)
}

// decodeRandom runs the full-size decoder (random weights, seed 1) for
// prompts point prompts on a random embedding and returns the low-res
// logits and IoU predictions of every prompt, back to back.
func decodeRandom(t *testing.T, b nn.Backend, prompts int) (low, iou []float32) {
	t.Helper()
	cfg := sam.VitB
	cfg.HasImageEncoder = false
	m, err := sam.NewRandom(cfg, b, 1)
	require.NoError(t, err)
	defer m.Close()
	g, C, S := cfg.GridSize(), cfg.PromptEmbedDim, cfg.ImgSize
	rng := rand.New(rand.NewPCG(5, 5))
	f := make([]float32, C*g*g)
	for i := range f {
		f[i] = float32(rng.NormFloat64() * 0.5)
	}
	p := sam.NewPredictor(m)
	require.NoError(t, p.SetEmbedding(&sam.Embedding{Features: f, C: C, G: g, ImgSize: S, OriginalH: 768, OriginalW: 1024, InputH: 768, InputW: 1024}))
	ps := make([]sam.Prompt, prompts)
	for i := range ps {
		ps[i] = sam.Prompt{Points: []sam.Point{{X: rng.Float64() * 1024, Y: rng.Float64() * 768, Label: 1}}, Multimask: true}
	}
	res, err := p.PredictBatch(context.Background(), ps)
	require.NoError(t, err)
	for _, r := range res {
		iou = append(iou, r.IoU...)
		for _, l := range r.LowResLogits {
			low = append(low, l...)
		}
	}
	return low, iou
}

func TestDecoderRandomWeights(t *testing.T) {
	if testing.Short() {
		t.Skip("full-size decoder on the CPU and the GPU: skipped with -short")
	}
	fullSize(t, true)
	g32, g16 := gpuOrSkip(t, "fp32"), gpuOrSkip(t, "bf16")
	low, iou := decodeRandom(t, cpu.New(), 16)
	low32, iou32 := decodeRandom(t, g32, 16)
	requireMaxStd(t, "decoder low-res logits fp32", low, low32, 3e-4)
	requireMaxStd(t, "decoder iou fp32", iou, iou32, 1e-4)
	low16, iou16 := decodeRandom(t, g16, 16)
	requireMaxStd(t, "decoder low-res logits bf16", low, low16, 0.8)
	requireMaxStd(t, "decoder iou bf16", iou, iou16, 0.2)
}

// TestMemoryReturnsToBaseline: after a forward pass every intermediate is
// back in the pool: in-use memory equals what the weights held before.
func TestMemoryReturnsToBaseline(t *testing.T) {
	for _, prec := range []string{"fp32", "bf16"} {
		t.Run(prec, func(t *testing.T) {
			g := gpuOrSkip(t, prec)
			cfg := sam.VitB
			if testing.Short() || cudatest.Simulated() {
				cfg = tinyConfig(t)
			}
			m, err := sam.NewRandom(cfg, g, 1)
			require.NoError(t, err)
			defer m.Close()
			base := g.MemoryInUse()
			require.Positive(t, base, "the weights")
			g.ResetPeakMemory()
			in := randomInput(cfg.ImgSize, 3)
			emb, err := m.EncodeInput(context.Background(), in, 1, nil)
			require.NoError(t, err)
			require.Equal(t, base, g.MemoryInUse(), "encoder: every intermediate released")
			// EncodeInput leaves the image sizes to the caller: the input
			// is a whole S×S image.
			e := emb[0]
			e.ImgSize, e.OriginalH, e.OriginalW, e.InputH, e.InputW = cfg.ImgSize, cfg.ImgSize, cfg.ImgSize, cfg.ImgSize, cfg.ImgSize
			p := sam.NewPredictor(m)
			require.NoError(t, p.SetEmbedding(e))
			_, err = p.PredictBatch(context.Background(), []sam.Prompt{
				{Points: []sam.Point{{X: 10, Y: 20, Label: 1}}, Multimask: true},
				{Points: []sam.Point{{X: 30, Y: 5, Label: 1}}, Multimask: true},
			})
			require.NoError(t, err)
			p.Reset()
			require.Equal(t, base, g.MemoryInUse(), "decoder: every intermediate released")
			st := g.PoolStats()
			t.Logf("%s: weights %s, peak %s, reserved %s (peak %s), %d allocations, %d chunk allocations",
				cfg.Name, fmtBytes(base), fmtBytes(st.Peak), fmtBytes(st.Reserved), fmtBytes(st.PeakReserved), st.Allocs, st.ChunkAllocs)
			require.Greater(t, g.PeakMemory(), base)
		})
	}
}

func fmtBytes(n int64) string { return cuda.FormatBytes(n) }

// tinyConfig is the tiny fixture's model (tests/testdata/tiny: 128×128
// input, 4 blocks of 64 channels, a 32-channel decoder) for -short and
// simulator runs.
func tinyConfig(t *testing.T) sam.Config {
	cfg, err := sam.ReadConfig("../../../tests/testdata/tiny/config.json")
	require.NoError(t, err)
	return cfg
}
