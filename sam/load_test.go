package sam

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/checkpoint"
	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu"
)

const testdata = "../tests/testdata"

func fixture(parts ...string) string { return filepath.Join(append([]string{testdata}, parts...)...) }

// fixtureModel is a fixture set's model.safetensors; vitb_decoder keeps
// none (tests/ regenerates its weights): a BF16 checkpoint of its
// config.json's keys and shapes, written under t.TempDir(), stands in.
func fixtureModel(t testing.TB, set string) string {
	t.Helper()
	if set != "vitb_decoder" {
		return fixture(set, "model.safetensors")
	}
	cfg := fixtureConfig(t, set)
	shapes := cfg.StateDictShapes()
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	var ws []checkpoint.WriteTensor
	for k, n := range names {
		v := make([]float32, nn.Numel(shapes[n]))
		for i := range v {
			v[i] = float32((i+k)%7-3) / 8 // exact in bfloat16, never all zero
		}
		ws = append(ws, checkpoint.WriteTensor{Name: n, DType: checkpoint.BF16, Shape: shapes[n], F32: v})
	}
	path := filepath.Join(t.TempDir(), "vitb_decoder.safetensors")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, checkpoint.WriteSafetensors(f, ws, nil))
	require.NoError(t, f.Close())
	return path
}

func fixtureConfig(t testing.TB, set string) Config {
	t.Helper()
	c, err := ReadConfig(fixture(set, "config.json"))
	require.NoError(t, err)
	return c
}

// encodeRandom runs the encoder on a fixed random input.
func encodeRandom(t testing.TB, m *Model) []float32 {
	t.Helper()
	S := m.Config.ImgSize
	rng := rand.New(rand.NewPCG(1, 2))
	in := make([]float32, S*S*3)
	for i := range in {
		in[i] = float32(rng.NormFloat64())
	}
	es, err := m.EncodeInput(context.Background(), in, 1, nil)
	require.NoError(t, err)
	return es[0].Features
}

// decodeFixed runs the decoder on a fixed embedding and prompt.
func decodeFixed(t testing.TB, m *Model) ([]float32, []float32) {
	t.Helper()
	C, g := m.Config.PromptEmbedDim, m.Config.GridSize()
	rng := rand.New(rand.NewPCG(3, 4))
	f := make([]float32, C*g*g)
	for i := range f {
		f[i] = float32(rng.NormFloat64())
	}
	S := m.Config.ImgSize
	p := NewPredictor(m)
	require.NoError(t, p.SetEmbedding(&Embedding{Features: f, C: C, G: g, ImgSize: S, OriginalH: S, OriginalW: S, InputH: S, InputW: S}))
	r, err := p.Predict(context.Background(), Prompt{Points: []Point{{X: float64(S) / 3, Y: float64(S) / 2, Label: 1}}, Box: &Box{X0: 1, Y0: 2, X1: float64(S) / 2, Y1: float64(S) / 2}})
	require.NoError(t, err)
	var low []float32
	for _, l := range r.LowResLogits {
		low = append(low, l...)
	}
	return low, r.IoU
}

// TestPthAndSafetensorsGiveIdenticalModels: the same weights through both
// containers give bit-identical encoder and decoder outputs.
func TestPthAndSafetensorsGiveIdenticalModels(t *testing.T) {
	for _, set := range []string{"tiny"} { // the only fixture shipped with a .pth

		cfg := fixtureConfig(t, set)
		a, err := Load(fixture(set, "model.pth"), cpu.New(), LoadOptions{Config: &cfg})
		require.NoError(t, err)
		defer a.Close()
		b, err := Load(fixture(set, "model.safetensors"), cpu.New(), LoadOptions{Config: &cfg})
		require.NoError(t, err)
		defer b.Close()
		require.Equal(t, checkpoint.FormatPth, a.Format)
		require.Equal(t, checkpoint.FormatSafetensors, b.Format)
		require.Equal(t, encodeRandom(t, a), encodeRandom(t, b), set)
		la, ia := decodeFixed(t, a)
		lb, ib := decodeFixed(t, b)
		require.Equal(t, la, lb, set)
		require.Equal(t, ia, ib, set)
	}
}

// rewrite copies a fixture checkpoint into a new safetensors file, renaming
// keys with rename (nil drops the tensor) and storing them as dtype.
func rewrite(t testing.TB, src string, dtype checkpoint.DType, rename func(string) string, extra ...checkpoint.WriteTensor) string {
	t.Helper()
	f, err := checkpoint.Open(src)
	require.NoError(t, err)
	defer f.Close()
	var out []checkpoint.WriteTensor
	for _, n := range f.Names() {
		name := n
		if rename != nil {
			if name = rename(n); name == "" {
				continue
			}
		}
		x, _ := f.Tensor(n)
		v, err := x.Float32()
		require.NoError(t, err)
		out = append(out, checkpoint.WriteTensor{Name: name, DType: dtype, Shape: x.Shape, F32: append([]float32(nil), v...)})
	}
	out = append(out, extra...)
	path := filepath.Join(t.TempDir(), "model.safetensors")
	fh, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, checkpoint.WriteSafetensors(fh, out, nil))
	require.NoError(t, fh.Close())
	return path
}

// TestHuggingFaceLayoutAndHalfPrecision: a checkpoint with HF key names in
// BF16 equals the official names in BF16, bit for bit, and its config is
// inferred the same; F16 loads too.
func TestHuggingFaceLayoutAndHalfPrecision(t *testing.T) {
	cfg := fixtureConfig(t, "tiny")
	src := fixture("tiny", "model.safetensors")
	official := rewrite(t, src, checkpoint.BF16, nil)
	hf := rewrite(t, src, checkpoint.BF16, func(n string) string {
		if n == "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix" {
			// HF files store the tied matrix under its SamModel name.
			return "shared_image_embedding.positional_embedding"
		}
		return toHF(n)
	})

	a, err := Load(official, cpu.New(), LoadOptions{Config: &cfg})
	require.NoError(t, err)
	defer a.Close()
	b, err := Load(hf, cpu.New(), LoadOptions{Config: &cfg})
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, "official", a.Layout)
	require.Equal(t, "huggingface", b.Layout)
	require.Equal(t, encodeRandom(t, a), encodeRandom(t, b))
	la, _ := decodeFixed(t, a)
	lb, _ := decodeFixed(t, b)
	require.Equal(t, la, lb)

	infoA, err := Inspect(official, nil) // a temporary folder: no config.json beside
	require.NoError(t, err)
	infoB, err := Inspect(hf, nil)
	require.NoError(t, err)
	if diff := cmp.Diff(infoA.Config, infoB.Config); diff != "" {
		t.Errorf("config inferred from HF names (-official +huggingface):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"BF16": infoB.Tensors}, infoB.DTypes); diff != "" {
		t.Errorf("dtypes (-want +got):\n%s", diff)
	}

	f16 := rewrite(t, src, checkpoint.F16, nil)
	c, err := Load(f16, cpu.New(), LoadOptions{Config: &cfg})
	require.NoError(t, err)
	defer c.Close()
	require.Len(t, encodeRandom(t, c), cfg.PromptEmbedDim*cfg.GridSize()*cfg.GridSize())
}

// TestInferConfigMatchesFixtures: what shapes tell equals each fixture's
// config.json; only the decoder's head count is invisible in shapes.
func TestInferConfigMatchesFixtures(t *testing.T) {
	for _, set := range []string{"tiny", "small", "vitb_decoder", "demo"} {
		want := fixtureConfig(t, set)
		info, err := InspectWith(fixtureModel(t, set), LoadOptions{NoConfigFile: true})
		require.NoError(t, err, set)
		require.Equal(t, "shapes", info.ConfigSource, set)
		got := info.Config
		require.Equal(t, 8, got.DecoderNumHeads, "%s: shapes cannot tell the decoder heads; the official 8 stands", set)
		wantAssumed := []string{"decoder_num_heads=8"}
		if !want.HasImageEncoder {
			wantAssumed = append(wantAssumed, "img_size=1024", "patch_size=16")
		}
		require.Equal(t, wantAssumed, info.Assumed, set)
		got.DecoderNumHeads = want.DecoderNumHeads
		got.Name = want.Name
		if !want.HasImageEncoder {
			// A decoder-only file says nothing about the encoder.
			got.EncoderEmbedDim, got.EncoderDepth, got.EncoderNumHeads, got.EncoderMLPDim = want.EncoderEmbedDim, want.EncoderDepth, want.EncoderNumHeads, want.EncoderMLPDim
			got.EncoderGlobalAttnIndexes, got.EncoderWindowSize = want.EncoderGlobalAttnIndexes, want.EncoderWindowSize
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: inferred config (-config.json +inferred):\n%s", set, diff)
		}
	}
}

func TestLoadErrorsNameFileAndTensor(t *testing.T) {
	cfg := fixtureConfig(t, "tiny")
	src := fixture("tiny", "model.safetensors")
	const qkv = "image_encoder.blocks.0.attn.qkv.weight"

	truncated := filepath.Join(t.TempDir(), "truncated.safetensors")
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(truncated, data[:len(data)/2], 0o644))

	cases := []struct {
		name, path string
		cfg        *Config
		want       []string
	}{
		{"truncated", truncated, &cfg, []string{truncated, "truncated"}},
		{"missing tensor", rewrite(t, src, checkpoint.F32, func(n string) string {
			if n == qkv {
				return ""
			}
			return n
		}), &cfg, []string{"missing tensor", qkv}},
		{"unexpected tensor", rewrite(t, src, checkpoint.F32, nil, checkpoint.WriteTensor{Name: "image_encoder.extra", DType: checkpoint.F32, Shape: []int{1}, F32: []float32{1}}),
			&cfg, []string{"unexpected tensor", "image_encoder.extra"}},
		{"wrong shape", rewrite(t, src, checkpoint.F32, func(n string) string {
			if n == "image_encoder.blocks.0.mlp.lin1.bias" {
				return "image_encoder.blocks.0.mlp.lin2.bias"
			} else if n == "image_encoder.blocks.0.mlp.lin2.bias" {
				return "image_encoder.blocks.0.mlp.lin1.bias"
			}
			return n
		}), &cfg, []string{"image_encoder.blocks.0.mlp.lin1.bias", "has shape [64], want [256]"}},
		{"config mismatch", src, func() *Config { c := cfg; c.EncoderEmbedDim = 96; c.EncoderNumHeads = 6; return &c }(),
			[]string{src, "image_encoder.blocks.0.attn.proj.bias", "has shape [64], want [96]", "and 36 more"}},
		{"not a checkpoint", fixture("tiny", "config.json"), nil, []string{"config.json", "checkpoint"}},
		{"no such file", filepath.Join(t.TempDir(), "nope.pth"), nil, []string{"nope.pth"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.path, cpu.New(), LoadOptions{Config: c.cfg})
			require.Error(t, err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}

	// An integer tensor where a weight belongs: the dtype is named.
	ints := filepath.Join(t.TempDir(), "ints.safetensors")
	f, err := checkpoint.Open(src)
	require.NoError(t, err)
	var ws []checkpoint.WriteTensor
	for _, n := range f.Names() {
		x, _ := f.Tensor(n)
		v, _ := x.Float32()
		w := checkpoint.WriteTensor{Name: n, DType: checkpoint.F32, Shape: x.Shape, F32: v}
		if n == "prompt_encoder.no_mask_embed.weight" {
			w = checkpoint.WriteTensor{Name: n, DType: checkpoint.U8, Shape: x.Shape, Bytes: make([]byte, len(v))}
		}
		ws = append(ws, w)
	}
	fh, err := os.Create(ints)
	require.NoError(t, err)
	require.NoError(t, checkpoint.WriteSafetensors(fh, ws, nil))
	require.NoError(t, fh.Close())
	f.Close()
	_, err = Load(ints, cpu.New(), LoadOptions{Config: &cfg})
	require.ErrorIs(t, err, checkpoint.ErrDType)
	require.Contains(t, err.Error(), "prompt_encoder.no_mask_embed.weight")
}

func TestNewRandomPresetsHaveOfficialShapes(t *testing.T) {
	// Tensor counts: 3 + 14·depth + 5 in the encoder, 138 in the prompt
	// encoder and decoder (the tiny fixture's 202 = 64 + 138). Parameter
	// counts: ×4 bytes, they sit ~316 bytes per tensor below the official
	// file sizes (sam_vit_b_01ec64.pth 375042383, sam_vit_l_0b3195.pth
	// 1249524607, sam_vit_h_4b8939.pth 2564550879 bytes), the zip+pickle
	// overhead of one entry.
	for _, c := range []struct {
		cfg     Config
		tensors int
		params  int64
	}{
		{VitB, 3 + 14*12 + 5 + 138, 93735728},
		{VitL, 3 + 14*24 + 5 + 138, 312343088},
		{VitH, 3 + 14*32 + 5 + 138, 641090864},
	} {
		shapes := c.cfg.StateDictShapes()
		var n int64
		for _, s := range shapes {
			p := int64(1)
			for _, d := range s {
				p *= int64(d)
			}
			n += p
		}
		require.Equal(t, c.tensors, len(shapes), c.cfg.Name)
		require.Equal(t, c.params, n, c.cfg.Name)
		inferred, err := InferConfig(shapes)
		require.NoError(t, err)
		inferred.Name = c.cfg.Name
		if diff := cmp.Diff(c.cfg, inferred); diff != "" {
			t.Errorf("%s: config inferred from StateDictShapes (-preset +inferred):\n%s", c.cfg.Name, diff)
		}
	}
}

// TestLoadErrorNamesFileOnce: a broken checkpoint's error names the file
// once ("load: F: truncated file", not "load F: F: ...").
func TestLoadErrorNamesFileOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trunc.safetensors")
	data, err := os.ReadFile(fixture("tiny", "model.safetensors"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data[:100], 0o644))
	_, err = Load(path, cpu.New(), LoadOptions{})
	require.Error(t, err)
	require.Equal(t, 1, strings.Count(err.Error(), path), err.Error())
}
