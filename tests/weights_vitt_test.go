package tests

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/checkpoint"
	"github.com/samgo/samgo/sam/float16"
	"github.com/samgo/samgo/sam/imgproc"
)

// The full vit_t (MobileSAM) shape, testdata/vit_t (README.md there): its
// 10M weights are not stored but regenerated here from a counter-based
// PRNG that testdata/gen/gen_tinyvit.py implements identically
// (splitmixUniform, vittRule; reference.json's sha256 checks the match),
// written as a BF16 safetensors checkpoint and loaded through sam.Load.
// The reference holds subsampled outputs of the official MobileSAM on
// these weights.

// tolVitT is the embedding (and trace) tolerance on the full vit_t shape
// (max/std): the reference's own fp32 error is larger there (issue 11).
const tolVitT = 3e-4

// fnv1a64 is 64-bit FNV-1a of s.
func fnv1a64(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}

// splitmixUniform returns n values in [-1, 1): SplitMix64 seeded with
// fnv1a64(name), value i = mix(seed + (i+1)·γ) >> 11 times 2⁻⁵³ (u in
// [0, 1)), times 2, minus 1; all exact in float64.
func splitmixUniform(name string, n int) []float64 {
	seed := fnv1a64(name)
	out := make([]float64, n)
	for i := range n {
		z := seed + uint64(i+1)*0x9e3779b97f4a7c15
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		u := float64(z>>11) * (1.0 / (1 << 53))
		out[i] = u*2 - 1
	}
	return out
}

// vittRule is gen_tinyvit.py's vitt_rule: value = offset + scale·U.
func vittRule(name string, shape []int) (scale, offset float64) {
	switch {
	case strings.HasSuffix(name, "running_var"):
		return 0.5, 1
	case strings.HasSuffix(name, "running_mean"):
		return 0.2, 0
	case strings.HasSuffix(name, "attention_biases"):
		return 1, 0
	case strings.HasSuffix(name, "positional_encoding_gaussian_matrix"):
		return 1.7, 0
	}
	for _, s := range []string{"point_embeddings", "not_a_point_embed", "no_mask_embed", "iou_token", "mask_tokens"} {
		if strings.Contains(name, s) {
			return 1.7, 0
		}
	}
	if len(shape) == 1 {
		if strings.HasSuffix(name, "weight") {
			return 0.2, 1
		}
		return 0.1, 0
	}
	fanIn := 1
	for _, d := range shape[1:] {
		fanIn *= d
	}
	if strings.Contains(name, "output_upscaling") && len(shape) == 4 {
		fanIn = shape[0] // ConvTranspose2d (in, out, 2, 2)
	}
	return math.Sqrt(3 / float64(fanIn)), 0
}

// vittTensor is one weight: float32 values that are exact bfloat16s.
func vittTensor(name string, shape []int) []float32 {
	n := 1
	for _, d := range shape {
		n *= d
	}
	scale, offset := vittRule(name, shape)
	u := splitmixUniform(name, n)
	out := make([]float32, n)
	for i, v := range u {
		x := float64(scale*v) + offset // the explicit conversion forbids a fused multiply-add
		b := float16.ToBF16(float32(x))
		out[i] = math.Float32frombits(uint32(b) << 16)
	}
	return out
}

type vittReference struct {
	Weights struct {
		SHA256    string `json:"sha256"`
		NumParams int    `json:"num_params"`
	} `json:"weights"`
	Tensors []struct {
		Name  string `json:"name"`
		Shape []int  `json:"shape"`
	} `json:"tensors"`
	Image        string `json:"image"`
	OriginalSize [2]int `json:"original_size"`
	InputSize    [2]int `json:"input_size"`
	PredictA     struct {
		PointCoords  [][2]float64 `json:"point_coords"`
		LowResStride int          `json:"low_res_stride"`
	} `json:"predict_a"`
	Traces map[string]struct {
		StrideHW int   `json:"stride_hw"`
		StrideC  int   `json:"stride_c"`
		Shape    []int `json:"shape"`
	} `json:"traces"`
}

// writeVitTCheckpoint regenerates the vit_t weights, checks them against
// the reference's hash, and writes them as BF16 safetensors under dir.
func writeVitTCheckpoint(t testing.TB, ref *vittReference, dir string) string {
	t.Helper()
	shapes := map[string][]int{}
	for _, e := range ref.Tensors {
		shapes[e.Name] = e.Shape
	}
	path := filepath.Join(dir, "mobile_sam_prng.safetensors")
	writePRNGCheckpoint(t, shapes, ref.Weights.NumParams, ref.Weights.SHA256, path)
	return path
}

// writePRNGCheckpoint regenerates every tensor of shapes with vittTensor,
// checks the parameter count and the generator's sha256 (each tensor in
// name order: its name, then its bfloat16 bits little-endian), and writes
// them as a BF16 safetensors checkpoint at path.
func writePRNGCheckpoint(t testing.TB, shapes map[string][]int, numParams int, sha string, path string) {
	t.Helper()
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	var wts []checkpoint.WriteTensor
	params := 0
	for _, n := range names {
		v := vittTensor(n, shapes[n])
		params += len(v)
		h.Write([]byte(n))
		h.Write(bf16Bytes(v))
		wts = append(wts, checkpoint.WriteTensor{Name: n, DType: checkpoint.BF16, Shape: shapes[n], F32: v})
	}
	require.Equal(t, numParams, params)
	require.Equal(t, sha, hex.EncodeToString(h.Sum(nil)), "the Go PRNG weights differ from the generator's (testdata/gen)")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, checkpoint.WriteSafetensors(f, wts, nil))
	require.NoError(t, f.Close())
}

// bf16Bytes is v (exact bfloat16s) as little-endian bfloat16 bits.
func bf16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(math.Float32bits(x)>>16))
	}
	return b
}

// vitb_decoder (testdata/FIXTURES.md): the real-size SAM prompt encoder
// and mask decoder. Its weights (vittRule, as vit_t's) and its embedding
// are not stored but regenerated here; predict.json's "prng" gives the
// generator's hashes (testdata/gen/gen_vitb_decoder.py).

// vitbDecoderPRNG is predict.json's "prng" section.
type vitbDecoderPRNG struct {
	PRNG struct {
		WeightsSHA256   string `json:"weights_sha256"`
		NumTensors      int    `json:"num_tensors"`
		NumParams       int    `json:"num_params"`
		EmbeddingSHA256 string `json:"embedding_sha256"`
	} `json:"prng"`
}

// vitbDecoderEmbedding is gen_vitb_decoder.py's embedding_values: (1, 256,
// 64, 64) ≈ 0.5·N(0,1), value i = (((U[4i]+U[4i+1])+U[4i+2])+U[4i+3])·√3/4
// with U = splitmixUniform("embedding", 4n), rounded to bfloat16.
func vitbDecoderEmbedding() []float32 {
	const n = 256 * 64 * 64
	u := splitmixUniform("embedding", 4*n)
	c := math.Sqrt(3) / 4
	out := make([]float32, n)
	for i := range out {
		s := u[4*i] + u[4*i+1]
		s += u[4*i+2]
		s += u[4*i+3]
		x := float64(s * c)
		b := float16.ToBF16(float32(x))
		out[i] = math.Float32frombits(uint32(b) << 16)
	}
	return out
}

// vitbDecoderFiles regenerates vitb_decoder's weights (written as a BF16
// safetensors checkpoint under t.TempDir(), the keys and shapes of its
// config.json) and its embedding, each checked against predict.json's
// sha256.
func vitbDecoderFiles(t testing.TB) (checkpointPath string, embedding []float32) {
	t.Helper()
	var ref vitbDecoderPRNG
	readJSON(t, fixturePath("vitb_decoder", "predict.json"), &ref)
	cfg, err := sam.ReadConfig(fixturePath("vitb_decoder", "config.json"))
	require.NoError(t, err)
	require.False(t, cfg.HasImageEncoder)
	shapes := cfg.StateDictShapes()
	require.Len(t, shapes, ref.PRNG.NumTensors)
	checkpointPath = filepath.Join(t.TempDir(), "vitb_decoder_prng.safetensors")
	writePRNGCheckpoint(t, shapes, ref.PRNG.NumParams, ref.PRNG.WeightsSHA256, checkpointPath)
	embedding = vitbDecoderEmbedding()
	e := sha256.Sum256(bf16Bytes(embedding))
	require.Equal(t, ref.PRNG.EmbeddingSHA256, hex.EncodeToString(e[:]), "the Go PRNG embedding differs from gen_vitb_decoder.py's")
	return checkpointPath, embedding
}

// subsample is x (1, H, W, C) at [:, ::s, ::s, ::sc], row-major.
func subsample(x []float32, H, W, C, s, sc int) []float32 {
	var out []float32
	for i := 0; i < H; i += s {
		for j := 0; j < W; j += s {
			for c := 0; c < C; c += sc {
				out = append(out, x[(i*W+j)*C+c])
			}
		}
	}
	return out
}

// TestVitTParity loads the full vit_t shape (shapes alone: the config is
// sam.VitT) from regenerated bf16 weights and compares the official
// MobileSAM's outputs, subsampled: every trace tensor, the embedding, and
// one point prompt's IoU and low-res logits.
func TestVitTParity(t *testing.T) {
	if testing.Short() {
		t.Skip("the full vit_t encoder on a 1024×1024 input")
	}
	var ref vittReference
	readJSON(t, fixturePath("vit_t", "reference.json"), &ref)
	rt := openTensors(t, fixturePath("vit_t", "reference.safetensors"))

	// StateDictShapes of the preset is the official state dict's key set
	// (less the classifier and BatchNorm counters the loader ignores).
	want := map[string][]int{}
	for _, e := range ref.Tensors {
		want[e.Name] = e.Shape
	}
	require.Equal(t, want, sam.VitT.StateDictShapes())

	ck := writeVitTCheckpoint(t, &ref, t.TempDir())
	m, err := sam.Load(ck, newBackend(t), sam.LoadOptions{})
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, "shapes", m.ConfigSource)
	require.ElementsMatch(t, []string{"decoder_num_heads=8", "img_size=1024", "tiny_vit.patch_merging_strides=[2,2,1]"}, m.Assumed)
	cfg := m.Config
	cfg.Name = sam.VitT.Name
	require.Equal(t, sam.VitT, cfg)

	img, err := imgproc.Load(fixturePath("vit_t", ref.Image))
	require.NoError(t, err)
	require.Equal(t, ref.OriginalSize, [2]int{img.H, img.W})
	input, h, w, err := m.Preprocess(img)
	require.NoError(t, err)
	require.Equal(t, ref.InputSize, [2]int{h, w})
	got := map[string][]float32{}
	shapes := map[string][]int{}
	embs, err := m.EncodeInput(context.Background(), input, 1, func(name string, shape []int, data []float32) {
		got[name] = slices.Clone(data)
		shapes[name] = slices.Clone(shape)
	})
	require.NoError(t, err)

	// Traces in encoder order.
	for _, name := range tinyViTTraceNames(&m.Config) {
		n := "trace." + name
		tr, ok := ref.Traces[name]
		require.True(t, ok && rt.has(n), "reference trace %q", name)
		v, ok := got[name]
		require.True(t, ok, "our encoder traced no %q", name)
		require.Equal(t, tr.Shape, shapes[name], name)
		s := tr.Shape
		requireClose(t, name, subsample(v, s[1], s[2], s[3], tr.StrideHW, tr.StrideC), first(rt.get(t, n)), tolVitT)
	}
	// embedding (C, g, g) at [::4, ::4, ::4].
	C, g := m.Config.PromptEmbedDim, m.Config.GridSize()
	feat := embs[0].Features
	var sub []float32
	for c := 0; c < C; c += 4 {
		for i := 0; i < g; i += 4 {
			for j := 0; j < g; j += 4 {
				sub = append(sub, feat[(c*g+i)*g+j])
			}
		}
	}
	requireClose(t, "embedding (subsampled)", sub, first(rt.get(t, "embedding_sub")), tolVitT)
	// Per-channel mean and std of the whole embedding.
	means, stds := make([]float32, C), make([]float32, C)
	for c := range C {
		var s, s2 float64
		for _, v := range feat[c*g*g : (c+1)*g*g] {
			s += float64(v)
		}
		mu := s / float64(g*g)
		for _, v := range feat[c*g*g : (c+1)*g*g] {
			s2 += (float64(v) - mu) * (float64(v) - mu)
		}
		means[c], stds[c] = float32(mu), float32(math.Sqrt(s2/float64(g*g)))
	}
	requireAbs(t, "embedding channel means", means, first(rt.get(t, "embedding_channel_mean")), 1e-4)
	requireAbs(t, "embedding channel stds", stds, first(rt.get(t, "embedding_channel_std")), 1e-4)

	// One point, multimask, decoder from our embedding.
	p := sam.NewPredictor(m)
	e := *embs[0]
	e.ImgSize, e.OriginalH, e.OriginalW, e.InputH, e.InputW = m.Config.ImgSize, img.H, img.W, h, w
	require.NoError(t, p.SetEmbedding(&e))
	pc := ref.PredictA.PointCoords[0]
	res, err := p.Predict(context.Background(), sam.Prompt{Points: []sam.Point{{X: pc[0], Y: pc[1], Label: 1}}})
	require.NoError(t, err)
	requireAbs(t, "a.iou", res.IoU, first(rt.get(t, "a.iou")), 1e-4)
	L, st := res.LowRes, ref.PredictA.LowResStride
	var low []float32
	for _, l := range res.LowResLogits {
		for i := 0; i < L; i += st {
			for j := 0; j < L; j += st {
				low = append(low, l[i*L+j])
			}
		}
	}
	requireClose(t, "a.low_res_logits (subsampled)", low, first(rt.get(t, "a.low_res_logits_sub")), tolLogits)
}
