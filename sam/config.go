package sam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
)

// Config holds every hyper-parameter of a SAM model. The official presets are
// VitB, VitL, VitH and VitT (MobileSAM); other sizes come from a JSON file
// (ReadConfig) and/or from the tensor shapes of a checkpoint (InferConfig).
//
// The image encoder is one of a family (EncoderType): SAM's ViT
// (ImageEncoderViT, the Encoder* fields) or MobileSAM's TinyViT (the
// TinyViT fields). The fields of the other family are zero. ImgSize,
// PatchSize, InChans, NeckLayerNorm2dEps, EncoderLayerNormEps and
// PromptEmbedDim (the neck's output width) belong to every encoder.
type Config struct {
	Name string `json:"name"`

	// Image encoder. HasImageEncoder is false for decoder-only checkpoints;
	// such a model needs embeddings from elsewhere.
	HasImageEncoder bool `json:"has_image_encoder"`
	// EncoderType is EncoderViT ("vit"; "" means the same) or
	// EncoderTinyViT ("tiny_vit").
	EncoderType string `json:"encoder_type"`
	ImgSize     int    `json:"img_size"` // S: the padded square input
	// PatchSize is the encoder's total stride S/g: the ViT's patch size; for
	// TinyViT 4 (the patch embedding's two stride-2 convs) times the
	// patch-merging strides (16 for MobileSAM).
	PatchSize int `json:"patch_size"`
	InChans   int `json:"in_chans"`

	// ViT (ImageEncoderViT).
	EncoderEmbedDim          int   `json:"encoder_embed_dim"`
	EncoderDepth             int   `json:"encoder_depth"`
	EncoderNumHeads          int   `json:"encoder_num_heads"`
	EncoderMLPDim            int   `json:"encoder_mlp_dim"`
	EncoderWindowSize        int   `json:"encoder_window_size"`
	EncoderGlobalAttnIndexes []int `json:"encoder_global_attn_indexes"`
	EncoderQKVBias           bool  `json:"encoder_qkv_bias"`
	EncoderUseAbsPos         bool  `json:"encoder_use_abs_pos"`
	EncoderUseRelPos         bool  `json:"encoder_use_rel_pos"`

	// TinyViT (MobileSAM's mobile_sam/modeling/tiny_vit_sam.py).
	TinyViT TinyViTConfig `json:"tiny_vit,omitzero"`

	// Every encoder: its LayerNorms' eps (ViT 1e-6 as build_sam sets it;
	// TinyViT nn.LayerNorm's 1e-5) and the neck's LayerNorm2d eps.
	EncoderLayerNormEps float32 `json:"encoder_layer_norm_eps"`
	NeckLayerNorm2dEps  float32 `json:"neck_layer_norm2d_eps"`

	// Prompt encoder. PromptEmbedDim (C) is also the encoder's out_chans.
	PromptEmbedDim       int     `json:"prompt_embed_dim"`
	MaskInChans          int     `json:"mask_in_chans"`
	PromptLayerNorm2dEps float32 `json:"prompt_layer_norm2d_eps"`

	// Mask decoder (MaskDecoder + TwoWayTransformer).
	DecoderDepth                   int     `json:"decoder_depth"`
	DecoderNumHeads                int     `json:"decoder_num_heads"`
	DecoderMLPDim                  int     `json:"decoder_mlp_dim"`
	DecoderAttentionDownsampleRate int     `json:"decoder_attention_downsample_rate"`
	DecoderLayerNormEps            float32 `json:"decoder_layer_norm_eps"`
	NumMultimaskOutputs            int     `json:"num_multimask_outputs"`
	IoUHeadDepth                   int     `json:"iou_head_depth"`
	IoUHeadHiddenDim               int     `json:"iou_head_hidden_dim"`
	UpscalingLayerNorm2dEps        float32 `json:"upscaling_layer_norm2d_eps"`

	// Sam: preprocessing constants (non-persistent buffers, not in the
	// state dict) and the mask threshold.
	PixelMean     [3]float32 `json:"pixel_mean"`
	PixelStd      [3]float32 `json:"pixel_std"`
	MaskThreshold float32    `json:"mask_threshold"`
}

// The encoder families (Config.EncoderType).
const (
	EncoderViT     = "vit"      // SAM's ImageEncoderViT
	EncoderTinyViT = "tiny_vit" // MobileSAM's TinyViT
)

// IsTinyViT reports whether the image encoder is TinyViT.
func (c *Config) IsTinyViT() bool { return c.EncoderType == EncoderTinyViT }

// TinyViTConfig holds TinyViT's hyper-parameters, named as the arguments of
// TinyViT(...) in tiny_vit_sam.py (img_size is Config.ImgSize). Stage 0 is a
// ConvLayer of MBConv blocks, stages 1… BasicLayers of TinyViTBlocks; a
// PatchMerging follows every stage but the last. NumHeads[0] and
// WindowSizes[0] are not used (stage 0 has no attention) but kept as the
// official builder passes them.
type TinyViTConfig struct {
	EmbedDims         []int   `json:"embed_dims"`
	Depths            []int   `json:"depths"`
	NumHeads          []int   `json:"num_heads"`
	WindowSizes       []int   `json:"window_sizes"`
	MLPRatio          float64 `json:"mlp_ratio"`
	MBConvExpandRatio float64 `json:"mbconv_expand_ratio"`
	LocalConvSize     int     `json:"local_conv_size"`
	// PatchMergingStrides are the strides of the PatchMergings' depthwise
	// convs, one per stage but the last. The official code hard-codes them
	// (PatchMerging: 1 when out_dim is 320, 448 or 576, else 2); a config
	// may set them (a reduced test model), and they are always filled in.
	PatchMergingStrides []int `json:"patch_merging_strides"`
}

// officialMergingStride is PatchMerging's rule in tiny_vit_sam.py: stride
// 1 when out_dim is 320, 448 or 576 (the last merge of every released
// TinyViT), else 2.
func officialMergingStride(outDim int) int {
	if outDim == 320 || outDim == 448 || outDim == 576 {
		return 1
	}
	return 2
}

// officialMergingStrides applies officialMergingStride to every merge of
// a TinyViT with these stage widths.
func officialMergingStrides(dims []int) []int {
	var s []int
	for i := 1; i < len(dims); i++ {
		s = append(s, officialMergingStride(dims[i]))
	}
	return s
}

// Stride is TinyViT's total stride: 4 (the patch embedding) times the
// merging strides.
func (t *TinyViTConfig) Stride() int {
	s := 4
	for _, m := range t.PatchMergingStrides {
		s *= m
	}
	return s
}

// Resolutions are the side of each stage's feature map for an S×S input:
// S/4 at stage 0, then divided by each merging stride (the official
// input_resolution; Validate makes S a multiple of Stride, so the convs'
// ceil and the official floor agree).
func (t *TinyViTConfig) Resolutions(S int) []int {
	r := []int{S / 4}
	for _, m := range t.PatchMergingStrides {
		r = append(r, r[len(r)-1]/m)
	}
	return r
}

// MLPHidden is stage i's MLP width, int(dim·mlp_ratio) as Mlp is built.
func (t *TinyViTConfig) MLPHidden(i int) int { return int(float64(t.EmbedDims[i]) * t.MLPRatio) }

// MBConvHidden is MBConv's hidden width, int(dim·expand_ratio).
func (t *TinyViTConfig) MBConvHidden() int {
	return int(float64(t.EmbedDims[0]) * t.MBConvExpandRatio)
}

// clone returns a deep copy (the slices too).
func (t TinyViTConfig) clone() TinyViTConfig {
	t.EmbedDims = slices.Clone(t.EmbedDims)
	t.Depths = slices.Clone(t.Depths)
	t.NumHeads = slices.Clone(t.NumHeads)
	t.WindowSizes = slices.Clone(t.WindowSizes)
	t.PatchMergingStrides = slices.Clone(t.PatchMergingStrides)
	return t
}

// GridSize is g: the image embedding is g×g tokens.
func (c *Config) GridSize() int { return c.ImgSize / c.PatchSize }

// EncoderHeadDim is the ViT's per-head channel count.
func (c *Config) EncoderHeadDim() int { return c.EncoderEmbedDim / c.EncoderNumHeads }

// LowResSize is the side of the decoder's mask logits (4g).
func (c *Config) LowResSize() int { return 4 * c.GridSize() }

// NumMaskTokens is the decoder's mask-token count (multimask outputs + 1).
func (c *Config) NumMaskTokens() int { return c.NumMultimaskOutputs + 1 }

// IsGlobal reports whether encoder block i uses global attention.
func (c *Config) IsGlobal(i int) bool {
	return c.EncoderWindowSize == 0 || slices.Contains(c.EncoderGlobalAttnIndexes, i)
}

// base is what every official SAM shares (segment_anything/build_sam.py).
func base() Config {
	return Config{
		HasImageEncoder:                true,
		EncoderType:                    EncoderViT,
		ImgSize:                        1024,
		PatchSize:                      16,
		InChans:                        3,
		EncoderWindowSize:              14,
		EncoderQKVBias:                 true,
		EncoderUseAbsPos:               true,
		EncoderUseRelPos:               true,
		EncoderLayerNormEps:            1e-6,
		NeckLayerNorm2dEps:             1e-6,
		PromptEmbedDim:                 256,
		MaskInChans:                    16,
		PromptLayerNorm2dEps:           1e-6,
		DecoderDepth:                   2,
		DecoderNumHeads:                8,
		DecoderMLPDim:                  2048,
		DecoderAttentionDownsampleRate: 2,
		DecoderLayerNormEps:            1e-5,
		NumMultimaskOutputs:            3,
		IoUHeadDepth:                   3,
		IoUHeadHiddenDim:               256,
		UpscalingLayerNorm2dEps:        1e-6,
		PixelMean:                      [3]float32{123.675, 116.28, 103.53},
		PixelStd:                       [3]float32{58.395, 57.12, 57.375},
		MaskThreshold:                  0,
	}
}

func preset(name string, dim, depth, heads int, global []int) Config {
	c := base()
	c.Name = name
	c.EncoderEmbedDim, c.EncoderDepth, c.EncoderNumHeads = dim, depth, heads
	c.EncoderMLPDim = 4 * dim
	c.EncoderGlobalAttnIndexes = global
	return c
}

// tinyViTPreset is a SAM with a TinyViT encoder (mobile_sam/build_sam.py,
// build_sam_vit_t): SAM's prompt encoder and mask decoder unchanged.
func tinyViTPreset(name string, t TinyViTConfig) Config {
	c := base()
	c.Name = name
	c.EncoderType = EncoderTinyViT
	c.clearViT()
	c.EncoderLayerNormEps = 1e-5 // nn.LayerNorm's default
	c.TinyViT = t
	c.PatchSize = t.Stride()
	return c
}

// clearViT zeroes the ViT-only fields.
func (c *Config) clearViT() {
	c.EncoderEmbedDim, c.EncoderDepth, c.EncoderNumHeads, c.EncoderMLPDim, c.EncoderWindowSize = 0, 0, 0, 0, 0
	c.EncoderGlobalAttnIndexes = nil
	c.EncoderQKVBias, c.EncoderUseAbsPos, c.EncoderUseRelPos = false, false, false
}

// The official presets (build_sam.py: build_sam_vit_b / _l / _h; MobileSAM's
// build_sam_vit_t, TinyViT-5M).
var (
	VitB = preset("vit_b", 768, 12, 12, []int{2, 5, 8, 11})
	VitL = preset("vit_l", 1024, 24, 16, []int{5, 11, 17, 23})
	VitH = preset("vit_h", 1280, 32, 16, []int{7, 15, 23, 31})
	VitT = tinyViTPreset("vit_t", TinyViTConfig{
		EmbedDims:           []int{64, 128, 160, 320},
		Depths:              []int{2, 2, 6, 2},
		NumHeads:            []int{2, 4, 5, 10},
		WindowSizes:         []int{7, 7, 14, 7},
		MLPRatio:            4,
		MBConvExpandRatio:   4,
		LocalConvSize:       3,
		PatchMergingStrides: officialMergingStrides([]int{64, 128, 160, 320}), // 2, 2, 1
	})
)

// PresetNames lists the official presets Preset knows.
var PresetNames = []string{"vit_b", "vit_l", "vit_h", "vit_t"}

// Preset returns an official preset by name (vit_b, vit_l, vit_h, vit_t;
// "b", "l", "h", "t" and "vit-b" spellings accepted; "mobile_sam" is
// vit_t).
func Preset(name string) (Config, bool) {
	n := strings.ToLower(strings.ReplaceAll(name, "-", "_"))
	n = strings.TrimPrefix(n, "vit_")
	var c Config
	switch n {
	case "b":
		c = VitB
	case "l":
		c = VitL
	case "h":
		c = VitH
	case "t", "mobile_sam", "mobilesam":
		c = VitT
	default:
		return Config{}, false
	}
	c.EncoderGlobalAttnIndexes = slices.Clone(c.EncoderGlobalAttnIndexes)
	c.TinyViT = c.TinyViT.clone()
	return c, true
}

// ErrConfig marks an invalid or inconsistent configuration.
var ErrConfig = errors.New("invalid config")

// Validate checks the config for values the model cannot be built with.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.ImgSize <= 0 || c.PatchSize <= 0 || c.ImgSize%c.PatchSize != 0 {
		return bad("img_size %d must be a positive multiple of patch_size %d", c.ImgSize, c.PatchSize)
	}
	if c.PromptEmbedDim <= 0 || c.PromptEmbedDim%8 != 0 {
		return bad("prompt_embed_dim %d must be a positive multiple of 8", c.PromptEmbedDim)
	}
	switch c.EncoderType {
	case "", EncoderViT:
		if !reflect.ValueOf(c.TinyViT).IsZero() {
			return bad("tiny_vit hyper-parameters set, but encoder_type is %q (want %q)", c.EncoderType, EncoderTinyViT)
		}
	case EncoderTinyViT:
		if !c.HasImageEncoder {
			return bad("encoder_type %q without an image encoder", c.EncoderType)
		}
	default:
		return bad("encoder_type %q: want %q or %q", c.EncoderType, EncoderViT, EncoderTinyViT)
	}
	if c.HasImageEncoder && c.InChans != 3 {
		return bad("in_chans %d: only RGB (3) images are supported", c.InChans)
	}
	if c.IsTinyViT() {
		if err := c.validateTinyViT(); err != nil {
			return err
		}
	} else if c.HasImageEncoder {
		if c.EncoderEmbedDim <= 0 || c.EncoderDepth <= 0 || c.EncoderNumHeads <= 0 || c.EncoderEmbedDim%c.EncoderNumHeads != 0 {
			return bad("encoder embed dim %d / heads %d / depth %d", c.EncoderEmbedDim, c.EncoderNumHeads, c.EncoderDepth)
		}
		if c.EncoderMLPDim <= 0 {
			return bad("encoder_mlp_dim %d", c.EncoderMLPDim)
		}
		if c.EncoderWindowSize < 0 {
			return bad("encoder_window_size %d", c.EncoderWindowSize)
		}
		for _, i := range c.EncoderGlobalAttnIndexes {
			if i < 0 || i >= c.EncoderDepth {
				return bad("global attention index %d outside depth %d", i, c.EncoderDepth)
			}
		}
	}
	if c.HasImageEncoder && !(c.EncoderLayerNormEps > 0 && c.NeckLayerNorm2dEps > 0) {
		return bad("encoder layer-norm eps %g, neck eps %g: want > 0", c.EncoderLayerNormEps, c.NeckLayerNorm2dEps)
	}
	if c.DecoderNumHeads <= 0 || c.DecoderAttentionDownsampleRate <= 0 ||
		c.PromptEmbedDim%c.DecoderNumHeads != 0 ||
		c.PromptEmbedDim%c.DecoderAttentionDownsampleRate != 0 ||
		(c.PromptEmbedDim/c.DecoderAttentionDownsampleRate)%c.DecoderNumHeads != 0 {
		return bad("decoder heads %d / downsample rate %d do not divide prompt_embed_dim %d", c.DecoderNumHeads, c.DecoderAttentionDownsampleRate, c.PromptEmbedDim)
	}
	if c.DecoderDepth <= 0 || c.DecoderMLPDim <= 0 || c.NumMultimaskOutputs < 1 || c.IoUHeadDepth < 1 || c.IoUHeadHiddenDim <= 0 {
		return bad("decoder depth %d, mlp dim %d, multimask outputs %d, iou head %d×%d", c.DecoderDepth, c.DecoderMLPDim, c.NumMultimaskOutputs, c.IoUHeadDepth, c.IoUHeadHiddenDim)
	}
	if c.MaskInChans <= 0 || c.MaskInChans%4 != 0 {
		return bad("mask_in_chans %d must be a positive multiple of 4", c.MaskInChans)
	}
	for i := range 3 {
		if !(c.PixelStd[i] > 0) {
			return bad("pixel_std %v", c.PixelStd)
		}
	}
	return nil
}

// validateTinyViT checks a tiny_vit config: list lengths, widths that the
// heads divide, odd local convs, ViT fields zero, and an input size that
// every stage divides exactly (so the convs' output sizes are the official
// input_resolution).
func (c *Config) validateTinyViT() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: tiny_vit: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.EncoderEmbedDim != 0 || c.EncoderDepth != 0 || c.EncoderNumHeads != 0 || c.EncoderMLPDim != 0 || c.EncoderWindowSize != 0 ||
		len(c.EncoderGlobalAttnIndexes) != 0 || c.EncoderQKVBias || c.EncoderUseAbsPos || c.EncoderUseRelPos {
		return bad("the ViT fields (encoder_embed_dim, encoder_depth, …) must be zero for encoder_type %q", EncoderTinyViT)
	}
	t := &c.TinyViT
	L := len(t.Depths)
	if L == 0 {
		return bad("depths is empty")
	}
	if len(t.EmbedDims) != L || len(t.NumHeads) != L || len(t.WindowSizes) != L {
		return bad("embed_dims %v, depths %v, num_heads %v, window_sizes %v: want one value per stage", t.EmbedDims, t.Depths, t.NumHeads, t.WindowSizes)
	}
	if len(t.PatchMergingStrides) != L-1 {
		return bad("patch_merging_strides %v: want %d (one per stage but the last)", t.PatchMergingStrides, L-1)
	}
	for i, d := range t.EmbedDims {
		if d < 2 || t.Depths[i] < 0 {
			return bad("stage %d: embed dim %d, depth %d", i, d, t.Depths[i])
		}
		if i == 0 || t.Depths[i] == 0 {
			continue
		}
		if h := t.NumHeads[i]; h <= 0 || d%h != 0 {
			return bad("stage %d: %d heads do not divide embed dim %d", i, h, d)
		}
		if t.WindowSizes[i] <= 0 {
			return bad("stage %d: window size %d", i, t.WindowSizes[i])
		}
		if t.MLPHidden(i) <= 0 {
			return bad("stage %d: mlp_ratio %g gives no hidden units", i, t.MLPRatio)
		}
	}
	if t.Depths[0] > 0 && t.MBConvHidden() <= 0 {
		return bad("mbconv_expand_ratio %g gives no hidden units", t.MBConvExpandRatio)
	}
	if k := t.LocalConvSize; k < 1 || k%2 == 0 {
		return bad("local_conv_size %d: want odd ≥ 1 (the conv pads k/2 and keeps the size)", k)
	}
	for _, s := range t.PatchMergingStrides {
		if s < 1 {
			return bad("patch_merging_strides %v: want ≥ 1", t.PatchMergingStrides)
		}
	}
	if c.PatchSize != t.Stride() {
		return bad("patch_size %d: TinyViT's total stride is %d (4 × patch_merging_strides %v)", c.PatchSize, t.Stride(), t.PatchMergingStrides)
	}
	return nil
}

// jsonConfig lists every key a config file may use. It accepts the fixtures'
// config.json as written, the shorter spelling of the demo model's
// config.json, and the official builder's argument names.
type jsonConfig struct {
	Name                     *string      `json:"name"`
	HasImageEncoder          *bool        `json:"has_image_encoder"`
	ImgSize                  *int         `json:"img_size"`
	ImageSize                *int         `json:"image_size"`
	PatchSize                *int         `json:"patch_size"`
	InChans                  *int         `json:"in_chans"`
	EncoderEmbedDim          *int         `json:"encoder_embed_dim"`
	EncoderDepth             *int         `json:"encoder_depth"`
	EncoderNumHeads          *int         `json:"encoder_num_heads"`
	EncoderHeadDim           *int         `json:"encoder_head_dim"`
	EncoderMLPDim            *int         `json:"encoder_mlp_dim"`
	EncoderMLPRatio          *float64     `json:"encoder_mlp_ratio"`
	MLPRatio                 *float64     `json:"mlp_ratio"`
	EncoderWindowSize        *int         `json:"encoder_window_size"`
	EncoderGlobalAttnIndexes *[]int       `json:"encoder_global_attn_indexes"`
	EncoderQKVBias           *bool        `json:"encoder_qkv_bias"`
	EncoderUseAbsPos         *bool        `json:"encoder_use_abs_pos"`
	EncoderUseRelPos         *bool        `json:"encoder_use_rel_pos"`
	EncoderLayerNormEps      *float32     `json:"encoder_layer_norm_eps"`
	EncoderLayernormEps      *float32     `json:"encoder_layernorm_eps"`
	EncoderAct               *string      `json:"encoder_act"`
	OutChans                 *int         `json:"out_chans"`
	NeckLayerNorm2dEps       *float32     `json:"neck_layer_norm2d_eps"`
	PromptEmbedDim           *int         `json:"prompt_embed_dim"`
	ImageEmbeddingSize       *[]int       `json:"image_embedding_size"`
	InputImageSize           *[]int       `json:"input_image_size"`
	MaskInputSize            *[]int       `json:"mask_input_size"`
	MaskInChans              *int         `json:"mask_in_chans"`
	PromptLayerNorm2dEps     *float32     `json:"prompt_layer_norm2d_eps"`
	PromptMaskAct            *string      `json:"prompt_mask_act"`
	PENumPosFeats            *int         `json:"pe_num_pos_feats"`
	DecoderDepth             *int         `json:"decoder_depth"`
	DecoderNumHeads          *int         `json:"decoder_num_heads"`
	DecoderMLPDim            *int         `json:"decoder_mlp_dim"`
	DecoderMLPAct            *string      `json:"decoder_mlp_act"`
	DecoderDownsample        *int         `json:"decoder_attention_downsample_rate"`
	AttentionDownsample      *int         `json:"attention_downsample_rate"`
	DecoderSelfHeadDim       *int         `json:"decoder_self_attn_head_dim"`
	DecoderCrossHeadDim      *int         `json:"decoder_cross_attn_head_dim"`
	DecoderLayerNormEps      *float32     `json:"decoder_layer_norm_eps"`
	NumMultimaskOutputs      *int         `json:"num_multimask_outputs"`
	NumMaskTokens            *int         `json:"num_mask_tokens"`
	IoUHeadDepth             *int         `json:"iou_head_depth"`
	IoUHeadHiddenDim         *int         `json:"iou_head_hidden_dim"`
	HypernetworkMLPDepth     *int         `json:"hypernetwork_mlp_depth"`
	UpscalingLayerNorm2dEps  *float32     `json:"upscaling_layer_norm2d_eps"`
	UpscalingAct             *string      `json:"upscaling_act"`
	PixelMean                *[]float32   `json:"pixel_mean"`
	PixelStd                 *[]float32   `json:"pixel_std"`
	MaskThreshold            *float32     `json:"mask_threshold"`
	ImageFormat              *string      `json:"image_format"`
	EncoderType              *string      `json:"encoder_type"`
	TinyViT                  *jsonTinyViT `json:"tiny_vit"`
}

// jsonTinyViT is a config file's "tiny_vit" object: the arguments of
// TinyViT(...) in tiny_vit_sam.py. A key it does not list is an error.
type jsonTinyViT struct {
	ImgSize             *int     `json:"img_size"`
	InChans             *int     `json:"in_chans"`
	EmbedDims           *[]int   `json:"embed_dims"`
	Depths              *[]int   `json:"depths"`
	NumHeads            *[]int   `json:"num_heads"`
	WindowSizes         *[]int   `json:"window_sizes"`
	MLPRatio            *float64 `json:"mlp_ratio"`
	MBConvExpandRatio   *float64 `json:"mbconv_expand_ratio"`
	LocalConvSize       *int     `json:"local_conv_size"`
	PatchMergingStrides *[]int   `json:"patch_merging_strides"`

	// The other arguments of TinyViT(...): the classifier (whose weights the
	// loader ignores: SAM uses the features) and training-only settings
	// (dropout, stochastic depth, checkpointing, learning-rate decay), which
	// do not change what the encoder computes in eval mode.
	NumClasses    *int     `json:"num_classes"`
	DropRate      *float64 `json:"drop_rate"`
	DropPathRate  *float64 `json:"drop_path_rate"`
	UseCheckpoint *bool    `json:"use_checkpoint"`
	LayerLRDecay  *float64 `json:"layer_lr_decay"`
}

// vitOnlyKeys are the config keys of the ViT encoder alone; a tiny_vit
// config may hold them only with zero values (as Config writes them).
var vitOnlyKeys = []string{
	"encoder_embed_dim", "encoder_depth", "encoder_num_heads", "encoder_head_dim", "encoder_mlp_dim",
	"encoder_mlp_ratio", "mlp_ratio", "encoder_window_size", "encoder_global_attn_indexes",
	"encoder_qkv_bias", "encoder_use_abs_pos", "encoder_use_rel_pos",
}

// ReadConfig reads a JSON config: this package's format (the field names of
// Config, which are also the fixtures' config.json keys, with the demo
// model's shorter aliases), or a Hugging Face SamConfig config.json
// (vision_config / prompt_encoder_config / mask_decoder_config). In this
// package's format a key it does not know is an error naming it (a
// misspelt "decoder_num_head" would otherwise leave the default standing);
// the fixtures' descriptive keys ("init", "embedding_scale") are allowed
// and ignored. A Hugging Face file is read leniently: transformers writes
// dozens of keys that do not shape the model. Keys it lists but cannot
// honour (another activation, a BGR image format) are errors. Values not
// in the file keep the official defaults (ViT-B); Load checks the result
// against the checkpoint's shapes.
func ReadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig is ReadConfig on bytes.
func ParseConfig(b []byte) (Config, error) {
	c, _, err := parseConfig(b)
	return c, err
}

// parseConfig is ParseConfig that also returns which of the keys that no
// tensor shape shows (invisibleKeys) the file gave.
func parseConfig(b []byte) (Config, map[string]bool, error) {
	c := VitB
	c.Name = ""
	c.EncoderGlobalAttnIndexes = nil
	given, err := c.applyJSON(b)
	if err != nil {
		return Config{}, nil, err
	}
	return c, given, c.Validate()
}

// invisibleKeys are the hyper-parameters of c that no tensor shape shows
// and CheckShapes therefore cannot check: the decoder's head count; an
// encoder's heads, window and global blocks when it has no rel-pos tables
// (whose lengths and widths tell them otherwise); the input and patch size
// of a decoder-only model.
func invisibleKeys(c *Config) []string {
	keys := []string{"decoder_num_heads"}
	switch {
	case c.IsTinyViT():
		// TinyViT's shapes show no resolution, nor the merging strides
		// (InferConfig applies the official rule).
		keys = append(keys, "img_size", "tiny_vit.patch_merging_strides")
	case !c.HasImageEncoder:
		keys = append(keys, "img_size", "patch_size")
	case !c.EncoderUseRelPos:
		keys = append(keys, "encoder_num_heads", "encoder_window_size", "encoder_global_attn_indexes")
	}
	return keys
}

// configValue formats the value of one of invisibleKeys.
func configValue(c *Config, key string) string {
	var v any
	switch key {
	case "decoder_num_heads":
		v = c.DecoderNumHeads
	case "img_size":
		v = c.ImgSize
	case "patch_size":
		v = c.PatchSize
	case "encoder_num_heads":
		v = c.EncoderNumHeads
	case "encoder_window_size":
		v = c.EncoderWindowSize
	case "encoder_global_attn_indexes":
		v = c.EncoderGlobalAttnIndexes
	case "tiny_vit.patch_merging_strides":
		v = c.TinyViT.PatchMergingStrides
	}
	j, _ := json.Marshal(v)
	return string(j)
}

// inferConfig is InferConfig that also lists what it assumed.
func inferConfig(shapes map[string][]int) (Config, []string, error) {
	c, err := InferConfig(shapes)
	if err != nil {
		return c, nil, err
	}
	var assumed []string
	for _, k := range invisibleKeys(&c) {
		assumed = append(assumed, k+"="+configValue(&c, k))
	}
	return c, assumed, nil
}

// setFrom sets *dst to the last non-nil source.
func setFrom[T any](dst *T, srcs ...*T) {
	for _, s := range srcs {
		if s != nil {
			*dst = *s
		}
	}
}

// hfConfig is the part of a Hugging Face SamConfig config.json
// (transformers' configuration_sam.py) that shapes the model.
type hfConfig struct {
	Vision *struct {
		HiddenSize        *int     `json:"hidden_size"`
		OutputChannels    *int     `json:"output_channels"`
		NumHiddenLayers   *int     `json:"num_hidden_layers"`
		NumAttentionHeads *int     `json:"num_attention_heads"`
		NumChannels       *int     `json:"num_channels"`
		ImageSize         *int     `json:"image_size"`
		PatchSize         *int     `json:"patch_size"`
		LayerNormEps      *float32 `json:"layer_norm_eps"`
		QKVBias           *bool    `json:"qkv_bias"`
		MLPRatio          *float64 `json:"mlp_ratio"`
		MLPDim            *int     `json:"mlp_dim"`
		UseAbsPos         *bool    `json:"use_abs_pos"`
		UseRelPos         *bool    `json:"use_rel_pos"`
		WindowSize        *int     `json:"window_size"`
		GlobalAttn        *[]int   `json:"global_attn_indexes"`
		HiddenAct         *string  `json:"hidden_act"`
	} `json:"vision_config"`
	Prompt *struct {
		HiddenSize        *int `json:"hidden_size"`
		MaskInputChannels *int `json:"mask_input_channels"`
	} `json:"prompt_encoder_config"`
	Decoder *struct {
		HiddenSize          *int `json:"hidden_size"`
		MLPDim              *int `json:"mlp_dim"`
		NumHiddenLayers     *int `json:"num_hidden_layers"`
		NumAttentionHeads   *int `json:"num_attention_heads"`
		AttentionDownsample *int `json:"attention_downsample_rate"`
		NumMultimaskOutputs *int `json:"num_multimask_outputs"`
		IoUHeadDepth        *int `json:"iou_head_depth"`
		IoUHeadHiddenDim    *int `json:"iou_head_hidden_dim"`
	} `json:"mask_decoder_config"`
}

// applyHF reads a Hugging Face SamConfig. Its layer-norm eps values are
// not taken: HF's mask decoder uses 1e-6 where the official two-way
// transformer (and the trained weights) use nn.LayerNorm's 1e-5, and this
// implementation follows the official model.
func (c *Config) applyHF(h *hfConfig, given map[string]bool) error {
	set := setFrom[int]
	if v := h.Vision; v != nil {
		given["encoder_num_heads"] = v.NumAttentionHeads != nil
		given["encoder_window_size"] = v.WindowSize != nil
		given["encoder_global_attn_indexes"] = v.GlobalAttn != nil
		given["img_size"] = v.ImageSize != nil
		given["patch_size"] = v.PatchSize != nil
		set(&c.EncoderEmbedDim, v.HiddenSize)
		set(&c.PromptEmbedDim, v.OutputChannels)
		set(&c.EncoderDepth, v.NumHiddenLayers)
		set(&c.EncoderNumHeads, v.NumAttentionHeads)
		set(&c.InChans, v.NumChannels)
		set(&c.ImgSize, v.ImageSize)
		set(&c.PatchSize, v.PatchSize)
		set(&c.EncoderWindowSize, v.WindowSize)
		ratio := 4.0
		if v.MLPRatio != nil {
			ratio = *v.MLPRatio
		}
		c.EncoderMLPDim = int(float64(c.EncoderEmbedDim) * ratio)
		set(&c.EncoderMLPDim, v.MLPDim)
		setFrom(&c.EncoderQKVBias, v.QKVBias)
		setFrom(&c.EncoderUseAbsPos, v.UseAbsPos)
		setFrom(&c.EncoderUseRelPos, v.UseRelPos)
		if v.GlobalAttn != nil {
			c.EncoderGlobalAttnIndexes = slices.Clone(*v.GlobalAttn)
		}
		if v.HiddenAct != nil && *v.HiddenAct != "gelu" {
			return fmt.Errorf("%w: vision_config.hidden_act %q is not supported (SAM uses exact gelu)", ErrConfig, *v.HiddenAct)
		}
	}
	if p := h.Prompt; p != nil {
		set(&c.PromptEmbedDim, p.HiddenSize)
		set(&c.MaskInChans, p.MaskInputChannels)
	}
	if d := h.Decoder; d != nil {
		if d.HiddenSize != nil && *d.HiddenSize != c.PromptEmbedDim {
			return fmt.Errorf("%w: mask_decoder_config.hidden_size %d differs from the prompt dim %d", ErrConfig, *d.HiddenSize, c.PromptEmbedDim)
		}
		set(&c.DecoderMLPDim, d.MLPDim)
		set(&c.DecoderDepth, d.NumHiddenLayers)
		set(&c.DecoderNumHeads, d.NumAttentionHeads)
		given["decoder_num_heads"] = d.NumAttentionHeads != nil
		set(&c.DecoderAttentionDownsampleRate, d.AttentionDownsample)
		set(&c.NumMultimaskOutputs, d.NumMultimaskOutputs)
		set(&c.IoUHeadDepth, d.IoUHeadDepth)
		set(&c.IoUHeadHiddenDim, d.IoUHeadHiddenDim)
	}
	return nil
}

// descriptiveKeys may appear in a config file of this package's format
// and are ignored: they describe how a fixture was made.
var descriptiveKeys = []string{
	"init",            // the fixtures' initialisation recipe
	"embedding_scale", // vitb_decoder: the scale of its random embedding
}

// configKeys are the keys of this package's config format.
var configKeys = func() []string {
	var keys []string
	t := reflect.TypeFor[jsonConfig]()
	for i := range t.NumField() {
		keys = append(keys, strings.Split(t.Field(i).Tag.Get("json"), ",")[0])
	}
	return append(keys, descriptiveKeys...)
}()

// checkKeys refuses keys that configKeys does not list, naming each (and
// the known key it is closest to).
func checkKeys(b []byte) (map[string]bool, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	given := map[string]bool{}
	var unknown []string
	for k := range raw {
		given[k] = true
		if !slices.Contains(configKeys, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return given, nil
	}
	slices.Sort(unknown)
	var msgs []string
	for _, k := range unknown {
		m := fmt.Sprintf("unknown key %q", k)
		if s := closestKey(k); s != "" {
			m += fmt.Sprintf(" (did you mean %q?)", s)
		}
		msgs = append(msgs, m)
	}
	return nil, fmt.Errorf("%w: %s", ErrConfig, strings.Join(msgs, "; "))
}

// closestKey is the known key within a small edit distance of k, or "".
func closestKey(k string) string {
	best, bestD := "", 4
	for _, c := range configKeys {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// applyJSON overwrites the fields the JSON names and returns which of
// invisibleKeys it gave.
func (c *Config) applyJSON(b []byte) (map[string]bool, error) {
	given := map[string]bool{}
	var h hfConfig
	if err := json.Unmarshal(b, &h); err == nil && (h.Vision != nil || h.Decoder != nil || h.Prompt != nil) {
		if c.Name == "" {
			c.Name = "huggingface"
		}
		return given, c.applyHF(&h, given)
	}
	keys, err := checkKeys(b)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"decoder_num_heads", "encoder_window_size", "encoder_global_attn_indexes", "patch_size"} {
		given[k] = keys[k]
	}
	given["img_size"] = keys["img_size"] || keys["image_size"]
	given["encoder_num_heads"] = keys["encoder_num_heads"] || keys["encoder_head_dim"]
	if err := c.applyJSONConfig(b); err != nil {
		return nil, err
	}
	if c.IsTinyViT() {
		var raw struct {
			T map[string]json.RawMessage `json:"tiny_vit"`
		}
		_ = json.Unmarshal(b, &raw) // parsed once already
		_, ok := raw.T["img_size"]
		given["img_size"] = given["img_size"] || ok
		_, given["tiny_vit.patch_merging_strides"] = raw.T["patch_merging_strides"]
	}
	return given, nil
}

// applyJSONConfig reads this package's format.
func (c *Config) applyJSONConfig(b []byte) error {
	var j jsonConfig
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	setI, setF, setB := setFrom[int], setFrom[float32], setFrom[bool]
	if j.Name != nil {
		c.Name = *j.Name
	}
	setB(&c.HasImageEncoder, j.HasImageEncoder)
	setI(&c.ImgSize, j.ImageSize, j.ImgSize)
	setI(&c.PatchSize, j.PatchSize)
	setI(&c.InChans, j.InChans)
	setI(&c.EncoderEmbedDim, j.EncoderEmbedDim)
	setI(&c.EncoderDepth, j.EncoderDepth)
	setI(&c.EncoderNumHeads, j.EncoderNumHeads)
	if j.EncoderHeadDim != nil && j.EncoderNumHeads == nil && *j.EncoderHeadDim > 0 {
		c.EncoderNumHeads = c.EncoderEmbedDim / *j.EncoderHeadDim
	}
	// The MLP width: explicit, else ratio × dim (the official default ratio 4).
	ratio := 4.0
	if j.MLPRatio != nil {
		ratio = *j.MLPRatio
	}
	if j.EncoderMLPRatio != nil {
		ratio = *j.EncoderMLPRatio
	}
	c.EncoderMLPDim = int(float64(c.EncoderEmbedDim) * ratio)
	setI(&c.EncoderMLPDim, j.EncoderMLPDim)
	setI(&c.EncoderWindowSize, j.EncoderWindowSize)
	if j.EncoderGlobalAttnIndexes != nil {
		c.EncoderGlobalAttnIndexes = slices.Clone(*j.EncoderGlobalAttnIndexes)
	}
	setB(&c.EncoderQKVBias, j.EncoderQKVBias)
	setB(&c.EncoderUseAbsPos, j.EncoderUseAbsPos)
	setB(&c.EncoderUseRelPos, j.EncoderUseRelPos)
	setF(&c.EncoderLayerNormEps, j.EncoderLayernormEps, j.EncoderLayerNormEps)
	setF(&c.NeckLayerNorm2dEps, j.NeckLayerNorm2dEps)
	setI(&c.PromptEmbedDim, j.OutChans, j.PromptEmbedDim)
	if j.OutChans != nil && j.PromptEmbedDim != nil && *j.OutChans != *j.PromptEmbedDim {
		return bad("out_chans %d differs from prompt_embed_dim %d (SAM feeds the encoder output to the decoder directly)", *j.OutChans, *j.PromptEmbedDim)
	}
	setI(&c.MaskInChans, j.MaskInChans)
	setF(&c.PromptLayerNorm2dEps, j.PromptLayerNorm2dEps)
	setI(&c.DecoderDepth, j.DecoderDepth)
	setI(&c.DecoderNumHeads, j.DecoderNumHeads)
	setI(&c.DecoderMLPDim, j.DecoderMLPDim)
	setI(&c.DecoderAttentionDownsampleRate, j.AttentionDownsample, j.DecoderDownsample)
	setF(&c.DecoderLayerNormEps, j.DecoderLayerNormEps)
	setI(&c.NumMultimaskOutputs, j.NumMultimaskOutputs)
	if j.NumMaskTokens != nil && j.NumMultimaskOutputs == nil {
		c.NumMultimaskOutputs = *j.NumMaskTokens - 1
	}
	setI(&c.IoUHeadDepth, j.IoUHeadDepth)
	setI(&c.IoUHeadHiddenDim, j.IoUHeadHiddenDim)
	setF(&c.UpscalingLayerNorm2dEps, j.UpscalingLayerNorm2dEps)
	setF(&c.MaskThreshold, j.MaskThreshold)
	if err := c.applyTinyViTJSON(b, &j); err != nil {
		return err
	}
	for _, p := range []struct {
		dst *[3]float32
		src *[]float32
		key string
	}{{&c.PixelMean, j.PixelMean, "pixel_mean"}, {&c.PixelStd, j.PixelStd, "pixel_std"}} {
		if p.src == nil {
			continue
		}
		if len(*p.src) != 3 {
			return bad("%s must have 3 values, got %d", p.key, len(*p.src))
		}
		copy(p.dst[:], *p.src)
	}

	// Keys that only restate derived values must agree with them.
	g := 0
	if c.PatchSize > 0 {
		g = c.ImgSize / c.PatchSize
	}
	checks := []struct {
		key  string
		got  *[]int
		want []int
	}{
		{"image_embedding_size", j.ImageEmbeddingSize, []int{g, g}},
		{"input_image_size", j.InputImageSize, []int{c.ImgSize, c.ImgSize}},
		{"mask_input_size", j.MaskInputSize, []int{4 * g, 4 * g}},
	}
	for _, ck := range checks {
		if ck.got != nil && !slices.Equal(*ck.got, ck.want) {
			return bad("%s %v does not match img_size %d / patch_size %d (want %v)", ck.key, *ck.got, c.ImgSize, c.PatchSize, ck.want)
		}
	}
	if j.PENumPosFeats != nil && 2**j.PENumPosFeats != c.PromptEmbedDim {
		return bad("pe_num_pos_feats %d is not prompt_embed_dim/2 = %d", *j.PENumPosFeats, c.PromptEmbedDim/2)
	}
	if j.HypernetworkMLPDepth != nil && *j.HypernetworkMLPDepth != 3 {
		return bad("hypernetwork_mlp_depth %d: SAM's hypernetwork MLPs have 3 layers", *j.HypernetworkMLPDepth)
	}
	if j.DecoderSelfHeadDim != nil && c.DecoderNumHeads > 0 && *j.DecoderSelfHeadDim*c.DecoderNumHeads != c.PromptEmbedDim {
		return bad("decoder_self_attn_head_dim %d × heads %d ≠ %d", *j.DecoderSelfHeadDim, c.DecoderNumHeads, c.PromptEmbedDim)
	}
	if j.DecoderCrossHeadDim != nil && c.DecoderNumHeads > 0 && c.DecoderAttentionDownsampleRate > 0 &&
		*j.DecoderCrossHeadDim*c.DecoderNumHeads*c.DecoderAttentionDownsampleRate != c.PromptEmbedDim {
		return bad("decoder_cross_attn_head_dim %d does not match prompt_embed_dim / downsample / heads", *j.DecoderCrossHeadDim)
	}
	for _, a := range []struct {
		key  string
		val  *string
		want string
	}{
		{"encoder_act", j.EncoderAct, "gelu_erf"},
		{"prompt_mask_act", j.PromptMaskAct, "gelu_erf"},
		{"upscaling_act", j.UpscalingAct, "gelu_erf"},
		{"decoder_mlp_act", j.DecoderMLPAct, "relu"},
		{"image_format", j.ImageFormat, "RGB"},
	} {
		if a.val != nil && *a.val != a.want {
			return bad("%s %q is not supported (SAM uses %q)", a.key, *a.val, a.want)
		}
	}
	return nil
}

// applyTinyViTJSON settles the encoder family of a config file and reads
// its "tiny_vit" object. A tiny_vit config starts from VitT's encoder (the
// keys it does not give keep MobileSAM's values), may hold the ViT-only
// keys only with zero values, and gets patch_size from the merging
// strides (which, when the file does not give them, follow the official
// rule for its embed_dims).
func (c *Config) applyTinyViTJSON(b []byte, j *jsonConfig) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	typ := c.EncoderType
	if j.EncoderType != nil {
		typ = *j.EncoderType
	} else if j.TinyViT != nil {
		typ = EncoderTinyViT // a tiny_vit object says which encoder it is
	}
	switch typ {
	case "", EncoderViT:
		if j.TinyViT != nil {
			return bad("a tiny_vit object with encoder_type %q", typ)
		}
		c.EncoderType = EncoderViT
		return nil
	case EncoderTinyViT:
	default:
		return bad("encoder_type %q: want %q or %q", typ, EncoderViT, EncoderTinyViT)
	}

	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return bad("%v", err)
	}
	for _, k := range vitOnlyKeys {
		if v, ok := raw[k]; ok && !zeroJSON(v) {
			return bad("%s is a ViT key; encoder_type %q does not use it", k, EncoderTinyViT)
		}
	}
	if !c.IsTinyViT() {
		eps := c.EncoderLayerNormEps
		c.EncoderType = EncoderTinyViT
		c.clearViT()
		c.TinyViT = VitT.TinyViT.clone()
		c.TinyViT.PatchMergingStrides = nil
		if j.EncoderLayerNormEps == nil && j.EncoderLayernormEps == nil {
			eps = VitT.EncoderLayerNormEps
		}
		c.EncoderLayerNormEps = eps
	}
	t := &c.TinyViT
	stridesGiven := false
	if jt := j.TinyViT; jt != nil {
		dec := json.NewDecoder(bytes.NewReader(raw["tiny_vit"]))
		dec.DisallowUnknownFields()
		var strict jsonTinyViT
		if err := dec.Decode(&strict); err != nil {
			return bad("tiny_vit: %v", err)
		}
		if jt.ImgSize != nil {
			if (j.ImgSize != nil && *j.ImgSize != *jt.ImgSize) || (j.ImageSize != nil && *j.ImageSize != *jt.ImgSize) {
				return bad("tiny_vit.img_size %d differs from img_size %d", *jt.ImgSize, c.ImgSize)
			}
			c.ImgSize = *jt.ImgSize
		}
		if jt.InChans != nil {
			if j.InChans != nil && *j.InChans != *jt.InChans {
				return bad("tiny_vit.in_chans %d differs from in_chans %d", *jt.InChans, c.InChans)
			}
			c.InChans = *jt.InChans
		}
		for _, l := range []struct {
			dst *[]int
			src *[]int
		}{{&t.EmbedDims, jt.EmbedDims}, {&t.Depths, jt.Depths}, {&t.NumHeads, jt.NumHeads}, {&t.WindowSizes, jt.WindowSizes}, {&t.PatchMergingStrides, jt.PatchMergingStrides}} {
			if l.src != nil {
				*l.dst = slices.Clone(*l.src)
			}
		}
		stridesGiven = jt.PatchMergingStrides != nil
		setFrom(&t.MLPRatio, jt.MLPRatio)
		setFrom(&t.MBConvExpandRatio, jt.MBConvExpandRatio)
		setFrom(&t.LocalConvSize, jt.LocalConvSize)
	}
	if !stridesGiven && t.PatchMergingStrides == nil {
		t.PatchMergingStrides = officialMergingStrides(t.EmbedDims)
	}
	if j.PatchSize == nil {
		c.PatchSize = t.Stride()
	}
	return nil
}

// zeroJSON reports whether a JSON value is 0, false, null or [].
func zeroJSON(v json.RawMessage) bool {
	var x any
	if json.Unmarshal(v, &x) != nil {
		return false
	}
	switch x := x.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	}
	return false
}
