package sam

import (
	"regexp"
	"strconv"
	"strings"
)

// Hugging Face transformers' SamModel (facebook/sam-vit-base, -large, -huge,
// SlimSAM, ...) holds the same tensors as segment-anything's Sam under other
// names. The mapping below is the inverse of the one transformers uses to
// convert the official checkpoints:
//
//   - src/transformers/models/sam/convert_sam_to_hf.py: KEYS_TO_MODIFY_MAPPING
//     (ordered substring replacements: image_encoder→vision_encoder,
//     blocks→layers, ".norm"→".layer_norm", neck.0/1/2/3→conv1/layer_norm1/
//     conv2/layer_norm2, patch_embed.proj→patch_embed.projection,
//     mask_downscaling.0/1/3/4/6→mask_embed.conv1/layer_norm1/conv2/
//     layer_norm2/conv3, point_embeddings→point_embed,
//     pe_layer.positional_encoding_gaussian_matrix→
//     shared_embedding.positional_embedding, output_upscaling.0/1/3→
//     upscale_conv1/upscale_layer_norm/upscale_conv2, iou_prediction_head.
//     layers.0/1/2→proj_in/layers.0/proj_out) and replace_keys (the same
//     proj_in/layers.0/proj_out renaming for output_hypernetworks_mlps.N,
//     and a copy of the positional matrix to
//     shared_image_embedding.positional_embedding);
//   - src/transformers/models/sam/modeling_sam.py: the module attributes
//     those names come from (SamVisionEncoder, SamVisionLayer,
//     SamVisionNeck, SamPromptEncoder, SamMaskEmbedding, SamMaskDecoder,
//     SamTwoWayTransformer, SamTwoWayAttentionBlock, SamFeedForward, and
//     SamModel._tied_weights_keys).
//
// Every tensor keeps its shape and layout: qkv stays fused in both, the conv
// and transposed-conv weights are stored the same way, HF's
// positional_embedding buffer is the official (2, C/2) Gaussian matrix. So a
// rename is all a loader needs.
//
// Keys without an official counterpart (OfficialKey reports ok=false):
//
//   - prompt_encoder.shared_embedding.positional_embedding: HF registers the
//     one SamPositionalEmbedding module twice (SamModel.shared_image_embedding
//     and SamPromptEncoder.shared_embedding) and lists the second name in
//     _tied_weights_keys, so it is the same tensor as
//     shared_image_embedding.positional_embedding, which every HF file
//     carries (save_pretrained drops the tied alias; the converter writes
//     the canonical name explicitly). Mapping both would hand a loader two
//     sources for one official key.
//   - anything that is not a SAM parameter name.
//
// The other way round, the official state_dict has nothing HF lacks:
// pixel_mean and pixel_std are non-persistent buffers in segment-anything
// (constants of the preprocessing; replace_keys drops them in case an old
// checkpoint has them).
//
// The MLP heads (iou_prediction_head, output_hypernetworks_mlps.N) map
// official layers.0 → proj_in, layers.i → layers.(i-1), layers.(L-1) →
// proj_out. L is not part of a name; SAM's heads all have 3 layers (as the
// converter assumes), so proj_out is taken as official layers.2.

// hfIndex matches a module index without leading zeros, so that a key has
// exactly one spelling and official → HF → official round-trips.
const hfIndex = `(0|[1-9][0-9]*)`

const hfParam = `(weight|bias)`

var hfRules = func() []struct {
	re   *regexp.Regexp
	repl string
} {
	rules := [][2]string{
		// Image encoder (SamVisionEncoder).
		{`vision_encoder\.patch_embed\.projection\.` + hfParam, `image_encoder.patch_embed.proj.$1`},
		{`vision_encoder\.pos_embed`, `image_encoder.pos_embed`},
		{`vision_encoder\.layers\.` + hfIndex + `\.layer_norm([12])\.` + hfParam, `image_encoder.blocks.$1.norm$2.$3`},
		{`vision_encoder\.layers\.` + hfIndex + `\.attn\.(qkv|proj)\.` + hfParam, `image_encoder.blocks.$1.attn.$2.$3`},
		{`vision_encoder\.layers\.` + hfIndex + `\.attn\.(rel_pos_h|rel_pos_w)`, `image_encoder.blocks.$1.attn.$2`},
		{`vision_encoder\.layers\.` + hfIndex + `\.mlp\.(lin1|lin2)\.` + hfParam, `image_encoder.blocks.$1.mlp.$2.$3`},
		{`vision_encoder\.neck\.conv1\.` + hfParam, `image_encoder.neck.0.$1`},
		{`vision_encoder\.neck\.layer_norm1\.` + hfParam, `image_encoder.neck.1.$1`},
		{`vision_encoder\.neck\.conv2\.` + hfParam, `image_encoder.neck.2.$1`},
		{`vision_encoder\.neck\.layer_norm2\.` + hfParam, `image_encoder.neck.3.$1`},

		// Prompt encoder (SamPositionalEmbedding, SamPromptEncoder, SamMaskEmbedding).
		{`shared_image_embedding\.positional_embedding`, `prompt_encoder.pe_layer.positional_encoding_gaussian_matrix`},
		{`prompt_encoder\.point_embed\.` + hfIndex + `\.weight`, `prompt_encoder.point_embeddings.$1.weight`},
		{`prompt_encoder\.(not_a_point_embed|no_mask_embed)\.weight`, `prompt_encoder.$1.weight`},
		{`prompt_encoder\.mask_embed\.conv1\.` + hfParam, `prompt_encoder.mask_downscaling.0.$1`},
		{`prompt_encoder\.mask_embed\.layer_norm1\.` + hfParam, `prompt_encoder.mask_downscaling.1.$1`},
		{`prompt_encoder\.mask_embed\.conv2\.` + hfParam, `prompt_encoder.mask_downscaling.3.$1`},
		{`prompt_encoder\.mask_embed\.layer_norm2\.` + hfParam, `prompt_encoder.mask_downscaling.4.$1`},
		{`prompt_encoder\.mask_embed\.conv3\.` + hfParam, `prompt_encoder.mask_downscaling.6.$1`},

		// Mask decoder (SamMaskDecoder, SamTwoWayTransformer, SamTwoWayAttentionBlock).
		{`mask_decoder\.(iou_token|mask_tokens)\.weight`, `mask_decoder.$1.weight`},
		{`mask_decoder\.transformer\.layers\.` + hfIndex + `\.(self_attn|cross_attn_token_to_image|cross_attn_image_to_token)\.(q_proj|k_proj|v_proj|out_proj)\.` + hfParam,
			`mask_decoder.transformer.layers.$1.$2.$3.$4`},
		{`mask_decoder\.transformer\.layers\.` + hfIndex + `\.layer_norm([1-4])\.` + hfParam, `mask_decoder.transformer.layers.$1.norm$2.$3`},
		{`mask_decoder\.transformer\.layers\.` + hfIndex + `\.mlp\.(lin1|lin2)\.` + hfParam, `mask_decoder.transformer.layers.$1.mlp.$2.$3`},
		{`mask_decoder\.transformer\.final_attn_token_to_image\.(q_proj|k_proj|v_proj|out_proj)\.` + hfParam,
			`mask_decoder.transformer.final_attn_token_to_image.$1.$2`},
		{`mask_decoder\.transformer\.layer_norm_final_attn\.` + hfParam, `mask_decoder.transformer.norm_final_attn.$1`},
		{`mask_decoder\.upscale_conv1\.` + hfParam, `mask_decoder.output_upscaling.0.$1`},
		// "upsacle" is how a pre-release modeling_sam.py spelled the
		// attribute; accepted so that exports made with it still load.
		{`mask_decoder\.(?:upscale|upsacle)_layer_norm\.` + hfParam, `mask_decoder.output_upscaling.1.$1`},
		{`mask_decoder\.upscale_conv2\.` + hfParam, `mask_decoder.output_upscaling.3.$1`},
	}
	out := make([]struct {
		re   *regexp.Regexp
		repl string
	}, len(rules))
	for i, r := range rules {
		out[i].re = regexp.MustCompile(`^` + r[0] + `$`)
		// $1.norm$2 would read as group "1" then ".norm", but "$2_" would
		// not; braces make every reference unambiguous.
		out[i].repl = regexp.MustCompile(`\$([0-9])`).ReplaceAllString(r[1], `$${$1}`)
	}
	return out
}()

// hfHead matches SamFeedForward layers: mask_decoder.<head>.<proj_in |
// layers.i | proj_out>.<param>.
var hfHead = regexp.MustCompile(`^mask_decoder\.(iou_prediction_head|output_hypernetworks_mlps\.` + hfIndex + `)\.(proj_in|proj_out|layers\.` + hfIndex + `)\.` + hfParam + `$`)

// samHeadLayers is the depth of every SAM MLP head (iou_head_depth and the
// hypernetwork MLPs), see the comment at the top of the file.
const samHeadLayers = 3

// OfficialKey maps a Hugging Face SamModel state-dict key to the official
// segment-anything key; ok=false for keys that have no official counterpart
// (the tied alias prompt_encoder.shared_embedding.positional_embedding, and
// names that are not SAM parameters: see the comment at the top of this
// file for why they can be ignored).
func OfficialKey(hf string) (official string, ok bool) {
	for _, r := range hfRules {
		if m := r.re.FindStringSubmatchIndex(hf); m != nil {
			return string(r.re.ExpandString(nil, r.repl, hf, m)), true
		}
	}
	if m := hfHead.FindStringSubmatch(hf); m != nil {
		head, layer, param := m[1], m[3], m[5]
		var i int
		switch layer {
		case "proj_in":
			i = 0
		case "proj_out":
			i = samHeadLayers - 1
		default:
			n, err := strconv.Atoi(m[4])
			if err != nil || n+1 >= samHeadLayers-1 {
				return "", false // hidden layer of a deeper head than SAM's
			}
			i = n + 1
		}
		return "mask_decoder." + head + ".layers." + strconv.Itoa(i) + "." + param, true
	}
	return "", false
}

// IsHFLayout reports whether names look like the HF layout: at least one
// name exists only in HF's naming and none only in the official one (names
// common to both, such as mask_decoder.iou_token.weight, do not count, so a
// decoder-only checkpoint is judged by its decoder names).
func IsHFLayout(names []string) bool {
	hf := false
	for _, n := range names {
		switch {
		case hasAnyPrefix(n, officialOnlyPrefixes):
			return false
		case hasAnyPrefix(n, hfOnlyPrefixes):
			hf = true
		}
	}
	return hf
}

var hfOnlyPrefixes = []string{
	"vision_encoder.",
	"shared_image_embedding.",
	"prompt_encoder.shared_embedding.",
	"prompt_encoder.mask_embed.",
	"prompt_encoder.point_embed.",
	"mask_decoder.upscale_",
	"mask_decoder.upsacle_",
	"mask_decoder.iou_prediction_head.proj_",
	"mask_decoder.transformer.layer_norm_final_attn.",
}

var officialOnlyPrefixes = []string{
	"image_encoder.",
	"prompt_encoder.pe_layer.",
	"prompt_encoder.mask_downscaling.",
	"prompt_encoder.point_embeddings.",
	"mask_decoder.output_upscaling.",
	"mask_decoder.transformer.norm_final_attn.",
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
