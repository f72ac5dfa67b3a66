package sam

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/checkpoint"
)

func TestOfficialKey(t *testing.T) {
	tests := []struct {
		kind, hf, official string
	}{
		{"patch embed", "vision_encoder.patch_embed.projection.weight", "image_encoder.patch_embed.proj.weight"},
		{"pos embed", "vision_encoder.pos_embed", "image_encoder.pos_embed"},
		{"encoder block norm", "vision_encoder.layers.0.layer_norm1.weight", "image_encoder.blocks.0.norm1.weight"},
		{"encoder block norm", "vision_encoder.layers.31.layer_norm2.bias", "image_encoder.blocks.31.norm2.bias"},
		{"encoder block attn", "vision_encoder.layers.11.attn.qkv.weight", "image_encoder.blocks.11.attn.qkv.weight"},
		{"encoder block attn", "vision_encoder.layers.2.attn.proj.bias", "image_encoder.blocks.2.attn.proj.bias"},
		{"encoder block rel pos", "vision_encoder.layers.7.attn.rel_pos_h", "image_encoder.blocks.7.attn.rel_pos_h"},
		{"encoder block rel pos", "vision_encoder.layers.7.attn.rel_pos_w", "image_encoder.blocks.7.attn.rel_pos_w"},
		{"encoder block mlp", "vision_encoder.layers.3.mlp.lin1.weight", "image_encoder.blocks.3.mlp.lin1.weight"},
		{"encoder block mlp", "vision_encoder.layers.3.mlp.lin2.bias", "image_encoder.blocks.3.mlp.lin2.bias"},
		{"neck", "vision_encoder.neck.conv1.weight", "image_encoder.neck.0.weight"},
		{"neck", "vision_encoder.neck.layer_norm1.bias", "image_encoder.neck.1.bias"},
		{"neck", "vision_encoder.neck.conv2.weight", "image_encoder.neck.2.weight"},
		{"neck", "vision_encoder.neck.layer_norm2.weight", "image_encoder.neck.3.weight"},
		{"prompt pe", "shared_image_embedding.positional_embedding", "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"},
		{"prompt points", "prompt_encoder.point_embed.0.weight", "prompt_encoder.point_embeddings.0.weight"},
		{"prompt points", "prompt_encoder.point_embed.3.weight", "prompt_encoder.point_embeddings.3.weight"},
		{"prompt points", "prompt_encoder.not_a_point_embed.weight", "prompt_encoder.not_a_point_embed.weight"},
		{"prompt mask", "prompt_encoder.no_mask_embed.weight", "prompt_encoder.no_mask_embed.weight"},
		{"prompt mask", "prompt_encoder.mask_embed.conv1.weight", "prompt_encoder.mask_downscaling.0.weight"},
		{"prompt mask", "prompt_encoder.mask_embed.layer_norm1.bias", "prompt_encoder.mask_downscaling.1.bias"},
		{"prompt mask", "prompt_encoder.mask_embed.conv2.bias", "prompt_encoder.mask_downscaling.3.bias"},
		{"prompt mask", "prompt_encoder.mask_embed.layer_norm2.weight", "prompt_encoder.mask_downscaling.4.weight"},
		{"prompt mask", "prompt_encoder.mask_embed.conv3.weight", "prompt_encoder.mask_downscaling.6.weight"},
		{"decoder tokens", "mask_decoder.iou_token.weight", "mask_decoder.iou_token.weight"},
		{"decoder tokens", "mask_decoder.mask_tokens.weight", "mask_decoder.mask_tokens.weight"},
		{"decoder layer attn", "mask_decoder.transformer.layers.0.self_attn.q_proj.weight", "mask_decoder.transformer.layers.0.self_attn.q_proj.weight"},
		{"decoder layer attn", "mask_decoder.transformer.layers.1.cross_attn_token_to_image.out_proj.bias", "mask_decoder.transformer.layers.1.cross_attn_token_to_image.out_proj.bias"},
		{"decoder layer attn", "mask_decoder.transformer.layers.1.cross_attn_image_to_token.v_proj.weight", "mask_decoder.transformer.layers.1.cross_attn_image_to_token.v_proj.weight"},
		{"decoder layer norm", "mask_decoder.transformer.layers.0.layer_norm1.weight", "mask_decoder.transformer.layers.0.norm1.weight"},
		{"decoder layer norm", "mask_decoder.transformer.layers.1.layer_norm4.bias", "mask_decoder.transformer.layers.1.norm4.bias"},
		{"decoder layer mlp", "mask_decoder.transformer.layers.0.mlp.lin2.weight", "mask_decoder.transformer.layers.0.mlp.lin2.weight"},
		{"final attn", "mask_decoder.transformer.final_attn_token_to_image.k_proj.weight", "mask_decoder.transformer.final_attn_token_to_image.k_proj.weight"},
		{"final attn", "mask_decoder.transformer.layer_norm_final_attn.bias", "mask_decoder.transformer.norm_final_attn.bias"},
		{"upscaling", "mask_decoder.upscale_conv1.weight", "mask_decoder.output_upscaling.0.weight"},
		{"upscaling", "mask_decoder.upscale_layer_norm.bias", "mask_decoder.output_upscaling.1.bias"},
		{"upscaling", "mask_decoder.upsacle_layer_norm.weight", "mask_decoder.output_upscaling.1.weight"},
		{"upscaling", "mask_decoder.upscale_conv2.bias", "mask_decoder.output_upscaling.3.bias"},
		{"hypernetworks", "mask_decoder.output_hypernetworks_mlps.0.proj_in.weight", "mask_decoder.output_hypernetworks_mlps.0.layers.0.weight"},
		{"hypernetworks", "mask_decoder.output_hypernetworks_mlps.2.layers.0.bias", "mask_decoder.output_hypernetworks_mlps.2.layers.1.bias"},
		{"hypernetworks", "mask_decoder.output_hypernetworks_mlps.3.proj_out.weight", "mask_decoder.output_hypernetworks_mlps.3.layers.2.weight"},
		{"iou head", "mask_decoder.iou_prediction_head.proj_in.bias", "mask_decoder.iou_prediction_head.layers.0.bias"},
		{"iou head", "mask_decoder.iou_prediction_head.layers.0.weight", "mask_decoder.iou_prediction_head.layers.1.weight"},
		{"iou head", "mask_decoder.iou_prediction_head.proj_out.weight", "mask_decoder.iou_prediction_head.layers.2.weight"},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+tc.hf, func(t *testing.T) {
			got, ok := OfficialKey(tc.hf)
			require.True(t, ok)
			require.Equal(t, tc.official, got)
		})
	}

	ignored := []string{
		"prompt_encoder.shared_embedding.positional_embedding", // tied alias
		"image_encoder.blocks.0.norm1.weight",                  // already official
		"vision_encoder.layers.01.layer_norm1.weight",          // index with a leading zero
		"vision_encoder.layers.0.layer_norm3.weight",
		"vision_encoder.pos_embed.weight",
		"mask_decoder.iou_prediction_head.layers.1.weight", // a 4-layer head: not SAM
		"mask_decoder.upscale_conv1.weight.extra",
		"lm_head.weight",
		"",
	}
	for _, k := range ignored {
		got, ok := OfficialKey(k)
		require.False(t, ok, "%q mapped to %q", k, got)
	}
}

// toHF renames an official key the way transformers' convert_sam_to_hf.py
// does (KEYS_TO_MODIFY_MAPPING applied in order as substring replacements,
// then replace_keys' hypernetwork renaming): an independent spelling of the
// mapping to check OfficialKey against.
func toHF(key string) string {
	mapping := [][2]string{
		{"iou_prediction_head.layers.0", "iou_prediction_head.proj_in"},
		{"iou_prediction_head.layers.1", "iou_prediction_head.layers.0"},
		{"iou_prediction_head.layers.2", "iou_prediction_head.proj_out"},
		{"mask_decoder.output_upscaling.0", "mask_decoder.upscale_conv1"},
		{"mask_decoder.output_upscaling.1", "mask_decoder.upscale_layer_norm"},
		{"mask_decoder.output_upscaling.3", "mask_decoder.upscale_conv2"},
		{"mask_downscaling.0", "mask_embed.conv1"},
		{"mask_downscaling.1", "mask_embed.layer_norm1"},
		{"mask_downscaling.3", "mask_embed.conv2"},
		{"mask_downscaling.4", "mask_embed.layer_norm2"},
		{"mask_downscaling.6", "mask_embed.conv3"},
		{"point_embeddings", "point_embed"},
		{"pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"},
		{"image_encoder", "vision_encoder"},
		{"neck.0", "neck.conv1"},
		{"neck.1", "neck.layer_norm1"},
		{"neck.2", "neck.conv2"},
		{"neck.3", "neck.layer_norm2"},
		{"patch_embed.proj", "patch_embed.projection"},
		{".norm", ".layer_norm"},
		{"blocks", "layers"},
	}
	for _, m := range mapping {
		key = strings.ReplaceAll(key, m[0], m[1])
	}
	hyper := regexp.MustCompile(`.*.output_hypernetworks_mlps.(\d+).layers.(\d+).*`)
	if m := hyper.FindStringSubmatch(key); m != nil {
		switch m[2] {
		case "0":
			key = strings.ReplaceAll(key, "layers.0", "proj_in")
		case "1":
			key = strings.ReplaceAll(key, "layers.1", "layers.0")
		case "2":
			key = strings.ReplaceAll(key, "layers.2", "proj_out")
		}
	}
	return key
}

// Every key of real official state_dicts (the fixtures), renamed to the HF
// layout as transformers does it, must map back.
func TestOfficialKeyRoundTrip(t *testing.T) {
	for _, fixture := range []string{"tiny", "small", "vitb_decoder"} {
		t.Run(fixture, func(t *testing.T) {
			f, err := checkpoint.Open(fixtureModel(t, fixture))
			require.NoError(t, err)
			defer f.Close()
			official := f.Names()
			require.False(t, IsHFLayout(official))

			var hf []string
			seen := map[string]string{}
			for _, k := range official {
				h := toHF(k)
				if h == "prompt_encoder.shared_embedding.positional_embedding" {
					// replace_keys also stores it under the canonical name.
					hf = append(hf, "shared_image_embedding.positional_embedding")
				}
				hf = append(hf, h)
			}
			require.True(t, IsHFLayout(hf))
			for _, h := range hf {
				got, ok := OfficialKey(h)
				if h == "prompt_encoder.shared_embedding.positional_embedding" {
					require.False(t, ok, "the tied alias must be ignored")
					continue
				}
				require.True(t, ok, "%q has no official key", h)
				require.NotContains(t, seen, got, "%q and %q both map to %q", seen[got], h, got)
				seen[got] = h
			}
			require.Len(t, seen, len(official))
			for _, k := range official {
				require.Contains(t, seen, k)
			}
		})
	}
}

func TestIsHFLayout(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		want  bool
	}{
		{"empty", nil, false},
		{"shared names only", []string{"mask_decoder.iou_token.weight", "mask_decoder.mask_tokens.weight"}, false},
		{"hf encoder", []string{"vision_encoder.pos_embed", "mask_decoder.iou_token.weight"}, true},
		{"hf decoder only", []string{"mask_decoder.upscale_conv1.weight", "mask_decoder.iou_token.weight"}, true},
		{"official", []string{"image_encoder.pos_embed", "mask_decoder.iou_token.weight"}, false},
		{"mixed", []string{"vision_encoder.pos_embed", "image_encoder.pos_embed"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, IsHFLayout(tc.names))
		})
	}
}
