package sam

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
)

func TestPresets(t *testing.T) {
	for _, c := range []struct {
		names          []string
		dim, depth, hd int
		global         []int
	}{
		{[]string{"vit_b", "b", "vit-b", "ViT_B"}, 768, 12, 64, []int{2, 5, 8, 11}},
		{[]string{"vit_l", "l"}, 1024, 24, 64, []int{5, 11, 17, 23}},
		{[]string{"vit_h", "h"}, 1280, 32, 80, []int{7, 15, 23, 31}},
	} {
		for _, n := range c.names {
			p, ok := Preset(n)
			require.True(t, ok, n)
			require.Equal(t, c.dim, p.EncoderEmbedDim, n)
			require.Equal(t, c.depth, p.EncoderDepth, n)
			require.Equal(t, c.hd, p.EncoderHeadDim(), n)
			require.Equal(t, c.global, p.EncoderGlobalAttnIndexes, n)
			require.Equal(t, 4*c.dim, p.EncoderMLPDim, n)
			require.Equal(t, 64, p.GridSize())
			require.Equal(t, 256, p.LowResSize())
			require.NoError(t, p.Validate())
		}
	}
	_, ok := Preset("vit_x")
	require.False(t, ok)
	// Presets are copies: editing one does not touch the package value.
	p, _ := Preset("b")
	p.EncoderGlobalAttnIndexes[0] = 99
	require.Equal(t, 2, VitB.EncoderGlobalAttnIndexes[0])
}

func TestParseConfigFormats(t *testing.T) {
	// The demo's short spelling (mlp_ratio, encoder_layernorm_eps,
	// attention_downsample_rate) and the fixtures' long one.
	demo := fixtureConfig(t, "demo")
	require.Equal(t, 128, demo.EncoderEmbedDim)
	require.Equal(t, 512, demo.EncoderMLPDim)
	require.Equal(t, 4, demo.DecoderNumHeads)
	require.Equal(t, []int{1, 3}, demo.EncoderGlobalAttnIndexes)
	require.Equal(t, float32(1e-6), demo.EncoderLayerNormEps)
	tiny := fixtureConfig(t, "tiny")
	require.Equal(t, 3, tiny.EncoderWindowSize)
	require.Equal(t, 16, tiny.EncoderHeadDim())
	require.Equal(t, float32(1e-5), tiny.DecoderLayerNormEps)
	dec := fixtureConfig(t, "vitb_decoder")
	require.False(t, dec.HasImageEncoder)
	require.Equal(t, 256, dec.PromptEmbedDim)
}

func TestParseConfigRejects(t *testing.T) {
	for name, js := range map[string]string{
		"not json":           `{`,
		"bgr":                `{"image_format": "BGR"}`,
		"tanh gelu":          `{"encoder_act": "gelu_tanh"}`,
		"embedding size":     `{"img_size": 1024, "patch_size": 16, "image_embedding_size": [32, 32]}`,
		"pixel mean":         `{"pixel_mean": [1, 2]}`,
		"zero std":           `{"pixel_std": [0, 1, 1]}`,
		"patch":              `{"img_size": 1000, "patch_size": 16}`,
		"heads":              `{"encoder_embed_dim": 100, "encoder_num_heads": 3}`,
		"decoder heads":      `{"decoder_num_heads": 7}`,
		"global index":       `{"encoder_depth": 4, "encoder_global_attn_indexes": [4]}`,
		"out_chans mismatch": `{"out_chans": 128, "prompt_embed_dim": 256}`,
		"pe feats":           `{"pe_num_pos_feats": 64}`,
	} {
		_, err := ParseConfig([]byte(js))
		require.ErrorIs(t, err, ErrConfig, name)
	}
}

func TestParseHuggingFaceConfig(t *testing.T) {
	// The shape of facebook/sam-vit-huge's config.json (abridged).
	js := `{"architectures": ["SamModel"], "model_type": "sam",
	  "vision_config": {"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16,
	    "global_attn_indexes": [7, 15, 23, 31], "output_channels": 256, "image_size": 1024, "patch_size": 16,
	    "window_size": 14, "mlp_ratio": 4.0, "hidden_act": "gelu", "layer_norm_eps": 1e-06, "qkv_bias": true},
	  "prompt_encoder_config": {"hidden_size": 256, "mask_input_channels": 16, "layer_norm_eps": 1e-06},
	  "mask_decoder_config": {"hidden_size": 256, "mlp_dim": 2048, "num_hidden_layers": 2, "num_attention_heads": 8,
	    "attention_downsample_rate": 2, "num_multimask_outputs": 3, "iou_head_depth": 3, "iou_head_hidden_dim": 256,
	    "layer_norm_eps": 1e-06}}`
	c, err := ParseConfig([]byte(js))
	require.NoError(t, err)
	want := VitH
	want.Name = "huggingface"
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("want the official ViT-H, eps values included (-want +got):\n%s", diff)
	}
	_, err = ParseConfig([]byte(`{"vision_config": {"hidden_act": "relu"}}`))
	require.ErrorIs(t, err, ErrConfig)
}
