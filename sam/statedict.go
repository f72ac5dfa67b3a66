package sam

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// StateDictShapes lists every key of the official state dict of a model with
// this config, with its shape: exactly what `Sam.state_dict()` holds (the
// pixel_mean/pixel_std buffers are non-persistent and absent), except, for
// TinyViT, the tensors the loader ignores (IgnoredTensor: BatchNorm's
// num_batches_tracked, the unused classifier head).
func (c *Config) StateDictShapes() map[string][]int {
	s := map[string][]int{}
	C := c.PromptEmbedDim
	if c.HasImageEncoder && c.IsTinyViT() {
		c.tinyViTShapes(s)
	} else if c.HasImageEncoder {
		D, g, p := c.EncoderEmbedDim, c.GridSize(), c.PatchSize
		e := "image_encoder."
		s[e+"patch_embed.proj.weight"] = []int{D, c.InChans, p, p}
		s[e+"patch_embed.proj.bias"] = []int{D}
		if c.EncoderUseAbsPos {
			s[e+"pos_embed"] = []int{1, g, g, D}
		}
		for i := range c.EncoderDepth {
			b := fmt.Sprintf("%sblocks.%d.", e, i)
			s[b+"norm1.weight"], s[b+"norm1.bias"] = []int{D}, []int{D}
			s[b+"attn.qkv.weight"] = []int{3 * D, D}
			if c.EncoderQKVBias {
				s[b+"attn.qkv.bias"] = []int{3 * D}
			}
			s[b+"attn.proj.weight"], s[b+"attn.proj.bias"] = []int{D, D}, []int{D}
			if c.EncoderUseRelPos {
				n := c.EncoderWindowSize
				if c.IsGlobal(i) {
					n = g
				}
				s[b+"attn.rel_pos_h"] = []int{2*n - 1, c.EncoderHeadDim()}
				s[b+"attn.rel_pos_w"] = []int{2*n - 1, c.EncoderHeadDim()}
			}
			s[b+"norm2.weight"], s[b+"norm2.bias"] = []int{D}, []int{D}
			s[b+"mlp.lin1.weight"], s[b+"mlp.lin1.bias"] = []int{c.EncoderMLPDim, D}, []int{c.EncoderMLPDim}
			s[b+"mlp.lin2.weight"], s[b+"mlp.lin2.bias"] = []int{D, c.EncoderMLPDim}, []int{D}
		}
		s[e+"neck.0.weight"] = []int{C, D, 1, 1}
		s[e+"neck.1.weight"], s[e+"neck.1.bias"] = []int{C}, []int{C}
		s[e+"neck.2.weight"] = []int{C, C, 3, 3}
		s[e+"neck.3.weight"], s[e+"neck.3.bias"] = []int{C}, []int{C}
	}

	pe := "prompt_encoder."
	s[pe+"pe_layer.positional_encoding_gaussian_matrix"] = []int{2, C / 2}
	for i := range 4 {
		s[fmt.Sprintf("%spoint_embeddings.%d.weight", pe, i)] = []int{1, C}
	}
	s[pe+"not_a_point_embed.weight"] = []int{1, C}
	s[pe+"no_mask_embed.weight"] = []int{1, C}
	m, m4 := c.MaskInChans, c.MaskInChans/4
	md := pe + "mask_downscaling."
	s[md+"0.weight"], s[md+"0.bias"] = []int{m4, 1, 2, 2}, []int{m4}
	s[md+"1.weight"], s[md+"1.bias"] = []int{m4}, []int{m4}
	s[md+"3.weight"], s[md+"3.bias"] = []int{m, m4, 2, 2}, []int{m}
	s[md+"4.weight"], s[md+"4.bias"] = []int{m}, []int{m}
	s[md+"6.weight"], s[md+"6.bias"] = []int{C, m, 1, 1}, []int{C}

	d := "mask_decoder."
	attn := func(prefix string, internal int) {
		for _, n := range []string{"q_proj", "k_proj", "v_proj"} {
			s[prefix+n+".weight"], s[prefix+n+".bias"] = []int{internal, C}, []int{internal}
		}
		s[prefix+"out_proj.weight"], s[prefix+"out_proj.bias"] = []int{C, internal}, []int{C}
	}
	norm := func(prefix string, n int) { s[prefix+".weight"], s[prefix+".bias"] = []int{n}, []int{n} }
	cross := C / c.DecoderAttentionDownsampleRate
	for i := range c.DecoderDepth {
		l := fmt.Sprintf("%stransformer.layers.%d.", d, i)
		attn(l+"self_attn.", C)
		attn(l+"cross_attn_token_to_image.", cross)
		attn(l+"cross_attn_image_to_token.", cross)
		for _, n := range []string{"norm1", "norm2", "norm3", "norm4"} {
			norm(l+n, C)
		}
		s[l+"mlp.lin1.weight"], s[l+"mlp.lin1.bias"] = []int{c.DecoderMLPDim, C}, []int{c.DecoderMLPDim}
		s[l+"mlp.lin2.weight"], s[l+"mlp.lin2.bias"] = []int{C, c.DecoderMLPDim}, []int{C}
	}
	attn(d+"transformer.final_attn_token_to_image.", cross)
	norm(d+"transformer.norm_final_attn", C)
	T := c.NumMaskTokens()
	s[d+"iou_token.weight"] = []int{1, C}
	s[d+"mask_tokens.weight"] = []int{T, C}
	s[d+"output_upscaling.0.weight"], s[d+"output_upscaling.0.bias"] = []int{C, C / 4, 2, 2}, []int{C / 4}
	norm(d+"output_upscaling.1", C/4)
	s[d+"output_upscaling.3.weight"], s[d+"output_upscaling.3.bias"] = []int{C / 4, C / 8, 2, 2}, []int{C / 8}
	mlp := func(prefix string, in, hidden, out, depth int) {
		for j := range depth {
			i, o := hidden, hidden
			if j == 0 {
				i = in
			}
			if j == depth-1 {
				o = out
			}
			s[fmt.Sprintf("%slayers.%d.weight", prefix, j)] = []int{o, i}
			s[fmt.Sprintf("%slayers.%d.bias", prefix, j)] = []int{o}
		}
	}
	for i := range T {
		mlp(fmt.Sprintf("%soutput_hypernetworks_mlps.%d.", d, i), C, C, C/8, 3)
	}
	mlp(d+"iou_prediction_head.", C, c.IoUHeadHiddenDim, T, c.IoUHeadDepth)
	return s
}

// tinyViTShapes adds the image encoder of a TinyViT config (tiny_vit_sam.py)
// to s. Every Conv2d_BN holds c.weight (out, in/groups, k, k) and its
// BatchNorm2d's weight, bias, running_mean and running_var (out).
func (c *Config) tinyViTShapes(s map[string][]int) {
	t := &c.TinyViT
	e := "image_encoder."
	convBN := func(prefix string, out, inPerGroup, k int) {
		s[prefix+".c.weight"] = []int{out, inPerGroup, k, k}
		for _, n := range []string{"weight", "bias", "running_mean", "running_var"} {
			s[prefix+".bn."+n] = []int{out}
		}
	}
	vec := func(prefix string, n int) { s[prefix+".weight"], s[prefix+".bias"] = []int{n}, []int{n} }
	lin := func(prefix string, out, in int) {
		s[prefix+".weight"], s[prefix+".bias"] = []int{out, in}, []int{out}
	}
	D0 := t.EmbedDims[0]
	convBN(e+"patch_embed.seq.0", D0/2, c.InChans, 3)
	convBN(e+"patch_embed.seq.2", D0, D0/2, 3)
	for i, D := range t.EmbedDims {
		l := fmt.Sprintf("%slayers.%d.", e, i)
		for j := range t.Depths[i] {
			b := fmt.Sprintf("%sblocks.%d.", l, j)
			if i == 0 { // MBConv
				hid := t.MBConvHidden()
				convBN(b+"conv1", hid, D, 1)
				convBN(b+"conv2", hid, 1, 3)
				convBN(b+"conv3", D, hid, 1)
				continue
			}
			ws, hid := t.WindowSizes[i], t.MLPHidden(i)
			s[b+"attn.attention_biases"] = []int{t.NumHeads[i], ws * ws}
			vec(b+"attn.norm", D)
			lin(b+"attn.qkv", 3*D, D)
			lin(b+"attn.proj", D, D)
			vec(b+"mlp.norm", D)
			lin(b+"mlp.fc1", hid, D)
			lin(b+"mlp.fc2", D, hid)
			convBN(b+"local_conv", D, 1, t.LocalConvSize)
		}
		if i+1 < len(t.EmbedDims) {
			out := t.EmbedDims[i+1]
			convBN(l+"downsample.conv1", out, D, 1)
			convBN(l+"downsample.conv2", out, 1, 3)
			convBN(l+"downsample.conv3", out, out, 1)
		}
	}
	C, Dl := c.PromptEmbedDim, t.EmbedDims[len(t.EmbedDims)-1]
	s[e+"neck.0.weight"] = []int{C, Dl, 1, 1}
	vec(e+"neck.1", C)
	s[e+"neck.2.weight"] = []int{C, C, 3, 3}
	vec(e+"neck.3", C)
}

// IgnoredTensor reports the tensors of an official MobileSAM state dict
// that the loader leaves out: BatchNorm2d's num_batches_tracked (a training
// counter), TinyViT's classifier (image_encoder.norm_head, .head: SAM
// uses the features, forward never calls it) and, in checkpoints that
// saved it, the attention_bias_idxs buffer (non-persistent in
// tiny_vit_sam.py; the loader checks that it holds |Δy|·ws + |Δx|).
func IgnoredTensor(name string) bool {
	return strings.HasSuffix(name, ".num_batches_tracked") ||
		strings.HasPrefix(name, "image_encoder.norm_head.") ||
		strings.HasPrefix(name, "image_encoder.head.") ||
		strings.HasSuffix(name, ".attn.attention_bias_idxs")
}

// tinyViTKey marks an official TinyViT image encoder.
const tinyViTKey = "image_encoder.patch_embed.seq.0.c.weight"

var (
	reTVLayer = regexp.MustCompile(`^image_encoder\.layers\.(\d+)\.`)
	reTVBlock = regexp.MustCompile(`^image_encoder\.layers\.(\d+)\.blocks\.(\d+)\.`)
)

// inferTinyViT reads a TinyViT encoder's hyper-parameters from the shapes
// (see InferConfig) into c, whose prompt side is settled.
func inferTinyViT(c *Config, shapes map[string][]int) (Config, error) {
	get := func(key string, rank int) []int {
		if sh, ok := shapes[key]; ok && len(sh) == rank {
			return sh
		}
		return nil
	}
	need := func(key string, rank int) ([]int, error) {
		if sh := get(key, rank); sh != nil {
			return sh, nil
		}
		if sh, ok := shapes[key]; ok {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, want rank %d", ErrConfig, key, sh, rank)
		}
		return nil, fmt.Errorf("%w: tensor %q missing", ErrConfig, key)
	}
	c.EncoderType = EncoderTinyViT
	c.HasImageEncoder = true
	c.clearViT()
	c.EncoderLayerNormEps = VitT.EncoderLayerNormEps
	e := "image_encoder."
	p0, err := need(e+"patch_embed.seq.0.c.weight", 4)
	if err != nil {
		return *c, err
	}
	p2, err := need(e+"patch_embed.seq.2.c.weight", 4)
	if err != nil {
		return *c, err
	}
	c.InChans = p0[1]
	L := 0
	depths := map[int]int{}
	for k := range shapes {
		if m := reTVLayer.FindStringSubmatch(k); m != nil {
			i, _ := strconv.Atoi(m[1])
			L = max(L, i+1)
		}
		if m := reTVBlock.FindStringSubmatch(k); m != nil {
			i, _ := strconv.Atoi(m[1])
			j, _ := strconv.Atoi(m[2])
			depths[i] = max(depths[i], j+1)
		}
	}
	if L == 0 {
		return *c, fmt.Errorf("%w: no image_encoder.layers.* tensors", ErrConfig)
	}
	// Stage widths: the patch embedding's output, then each merge's.
	t := TinyViTConfig{EmbedDims: []int{p2[0]}, MLPRatio: VitT.TinyViT.MLPRatio, MBConvExpandRatio: VitT.TinyViT.MBConvExpandRatio, LocalConvSize: VitT.TinyViT.LocalConvSize}
	for i := range L - 1 {
		m, err := need(fmt.Sprintf("%slayers.%d.downsample.conv1.c.weight", e, i), 4)
		if err != nil {
			return *c, err
		}
		t.EmbedDims = append(t.EmbedDims, m[0])
	}
	official := func(l []int, i, def int) int {
		if i < len(l) {
			return l[i]
		}
		return def
	}
	mlpRead := false
	for i := range L {
		t.Depths = append(t.Depths, depths[i])
		D := t.EmbedDims[i]
		// Stage 0 has no attention; stages without blocks show none either:
		// MobileSAM's values (or one head over 7×7 windows) stand there.
		heads, ws := official(VitT.TinyViT.NumHeads, i, 1), official(VitT.TinyViT.WindowSizes, i, 7)
		b := fmt.Sprintf("%slayers.%d.blocks.0.", e, i)
		if i == 0 && depths[0] > 0 {
			if h := get(b+"conv1.c.weight", 4); h != nil && D > 0 {
				t.MBConvExpandRatio = float64(h[0]) / float64(D)
			}
		}
		if i > 0 && depths[i] > 0 {
			ab, err := need(b+"attn.attention_biases", 2)
			if err != nil {
				return *c, err
			}
			heads = ab[0]
			ws = int(math.Round(math.Sqrt(float64(ab[1]))))
			if ws*ws != ab[1] {
				return *c, fmt.Errorf("%w: %sattn.attention_biases has %d offsets, not a square window's", ErrConfig, b, ab[1])
			}
			if h := get(b+"mlp.fc1.weight", 2); h != nil && D > 0 && !mlpRead {
				// One ratio for every stage: CheckShapes checks the others.
				t.MLPRatio, mlpRead = float64(h[0])/float64(D), true
			}
			if k := get(b+"local_conv.c.weight", 4); k != nil {
				t.LocalConvSize = k[2]
			}
		}
		t.NumHeads = append(t.NumHeads, heads)
		t.WindowSizes = append(t.WindowSizes, ws)
	}
	t.PatchMergingStrides = officialMergingStrides(t.EmbedDims)
	c.TinyViT = t
	c.PatchSize = t.Stride()
	c.ImgSize = VitT.ImgSize // no shape shows it (Assumed)
	neck, err := need(e+"neck.0.weight", 4)
	if err != nil {
		return *c, err
	}
	if neck[0] != c.PromptEmbedDim {
		return *c, fmt.Errorf("%w: encoder out_chans %d differs from prompt_embed_dim %d", ErrConfig, neck[0], c.PromptEmbedDim)
	}
	return *c, c.Validate()
}

var (
	reBlock = regexp.MustCompile(`^image_encoder\.blocks\.(\d+)\.`)
	reLayer = regexp.MustCompile(`^mask_decoder\.transformer\.layers\.(\d+)\.`)
	reIoU   = regexp.MustCompile(`^mask_decoder\.iou_prediction_head\.layers\.(\d+)\.weight$`)
)

// InferConfig reads the hyper-parameters that the tensor shapes of an
// official-layout state dict determine: encoder width and depth, head dim
// (from rel_pos), window size and global blocks (from the rel_pos table
// lengths), patch and image size, MLP widths, prompt dim, mask_in_chans,
// decoder depth and widths, attention downsample rate, mask tokens and IoU
// head. What shapes cannot tell keeps the official value: decoder heads (8),
// layer-norm eps values, pixel mean/std, and — for encoders without rel_pos
// — the head count (dim/64) and window size (14).
//
// An official MobileSAM state dict (image_encoder.patch_embed.seq…,
// image_encoder.layers.N.blocks…, image_encoder.neck…) gives a TinyViT
// config: stage widths from the patch embedding and the PatchMerging convs,
// depths from the block counts, heads and windows from each stage's
// attention_biases (heads, ws²), the MLP and MBConv ratios and the local
// conv size from their weights. Its input size (1024) and merging strides
// (the official rule on the widths) show in no shape and are assumed.
func InferConfig(shapes map[string][]int) (Config, error) {
	c := VitB
	c.Name = "inferred"
	c.EncoderGlobalAttnIndexes = nil
	get := func(key string, rank int) ([]int, error) {
		sh, ok := shapes[key]
		if !ok {
			return nil, fmt.Errorf("%w: tensor %q missing", ErrConfig, key)
		}
		if len(sh) != rank {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, want rank %d", ErrConfig, key, sh, rank)
		}
		return sh, nil
	}
	count := func(re *regexp.Regexp) int {
		n := -1
		for k := range shapes {
			if m := re.FindStringSubmatch(k); m != nil {
				i, _ := strconv.Atoi(m[1])
				n = max(n, i)
			}
		}
		return n + 1
	}

	// Prompt side: C from the Fourier matrix (2, C/2).
	pe, err := get("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", 2)
	if err != nil {
		return c, err
	}
	C := 2 * pe[1]
	c.PromptEmbedDim = C
	if md, err := get("prompt_encoder.mask_downscaling.3.weight", 4); err == nil {
		c.MaskInChans = md[0]
	} else {
		return c, err
	}

	c.DecoderDepth = count(reLayer)
	if c.DecoderDepth == 0 {
		return c, fmt.Errorf("%w: no mask_decoder.transformer.layers.* tensors", ErrConfig)
	}
	if l1, err := get("mask_decoder.transformer.layers.0.mlp.lin1.weight", 2); err == nil {
		c.DecoderMLPDim = l1[0]
	} else {
		return c, err
	}
	if kp, err := get("mask_decoder.transformer.layers.0.cross_attn_token_to_image.k_proj.weight", 2); err == nil {
		if kp[0] <= 0 || C%kp[0] != 0 {
			return c, fmt.Errorf("%w: cross-attention width %d does not divide %d", ErrConfig, kp[0], C)
		}
		c.DecoderAttentionDownsampleRate = C / kp[0]
	} else {
		return c, err
	}
	if mt, err := get("mask_decoder.mask_tokens.weight", 2); err == nil {
		c.NumMultimaskOutputs = mt[0] - 1
	} else {
		return c, err
	}
	c.IoUHeadDepth = count(reIoU)
	if h, err := get("mask_decoder.iou_prediction_head.layers.0.weight", 2); err == nil {
		c.IoUHeadHiddenDim = h[0]
	} else {
		return c, err
	}
	// The decoder's head count is not visible in any shape; keep the
	// official 8 unless it does not divide the widths.
	for c.DecoderNumHeads > 1 && (C%c.DecoderNumHeads != 0 || (C/c.DecoderAttentionDownsampleRate)%c.DecoderNumHeads != 0) {
		c.DecoderNumHeads /= 2
	}

	// Image encoder, if present.
	if _, ok := shapes[tinyViTKey]; ok {
		return inferTinyViT(&c, shapes)
	}
	pw, ok := shapes["image_encoder.patch_embed.proj.weight"]
	c.HasImageEncoder = ok
	if !ok {
		// Decoder-only: img_size cannot be read from the weights; the
		// official 1024 stands unless a config says otherwise.
		return c, c.Validate()
	}
	if len(pw) != 4 || pw[2] != pw[3] {
		return c, fmt.Errorf("%w: tensor %q has shape %v, want (dim, 3, p, p)", ErrConfig, "image_encoder.patch_embed.proj.weight", pw)
	}
	D := pw[0]
	c.EncoderEmbedDim, c.InChans, c.PatchSize = D, pw[1], pw[2]
	c.EncoderDepth = count(reBlock)
	if c.EncoderDepth == 0 {
		return c, fmt.Errorf("%w: no image_encoder.blocks.* tensors", ErrConfig)
	}
	pos, hasPos := shapes["image_encoder.pos_embed"]
	c.EncoderUseAbsPos = hasPos
	_, c.EncoderQKVBias = shapes["image_encoder.blocks.0.attn.qkv.bias"]
	if l1, err := get("image_encoder.blocks.0.mlp.lin1.weight", 2); err == nil {
		c.EncoderMLPDim = l1[0]
	} else {
		return c, err
	}
	neck, err := get("image_encoder.neck.0.weight", 4)
	if err != nil {
		return c, err
	}
	if neck[0] != C {
		return c, fmt.Errorf("%w: encoder out_chans %d differs from prompt_embed_dim %d", ErrConfig, neck[0], C)
	}

	// Rel-pos tables: (2n−1, head_dim) with n the window (windowed blocks)
	// or the grid (global blocks).
	_, c.EncoderUseRelPos = shapes["image_encoder.blocks.0.attn.rel_pos_h"]
	lens := make([]int, c.EncoderDepth)
	if c.EncoderUseRelPos {
		for i := range c.EncoderDepth {
			rh, err := get(fmt.Sprintf("image_encoder.blocks.%d.attn.rel_pos_h", i), 2)
			if err != nil {
				return c, err
			}
			if rh[0]%2 != 1 || rh[1] <= 0 || D%rh[1] != 0 {
				return c, fmt.Errorf("%w: block %d rel_pos_h shape %v", ErrConfig, i, rh)
			}
			lens[i] = (rh[0] + 1) / 2
			if i == 0 {
				c.EncoderNumHeads = D / rh[1]
			}
		}
	} else {
		c.EncoderNumHeads = max(1, D/64)
	}

	// Grid size g: from pos_embed, else the largest rel_pos table (a
	// global block), else the official 64.
	g := 64
	switch {
	case hasPos && len(pos) == 4:
		g = pos[1]
	case c.EncoderUseRelPos:
		g = slices.Max(lens)
	}
	c.ImgSize = g * c.PatchSize
	if c.EncoderUseRelPos {
		c.EncoderWindowSize = 0
		for i, n := range lens {
			if n == g {
				c.EncoderGlobalAttnIndexes = append(c.EncoderGlobalAttnIndexes, i)
			} else if c.EncoderWindowSize == 0 {
				c.EncoderWindowSize = n
			} else if c.EncoderWindowSize != n {
				return c, fmt.Errorf("%w: blocks use different window sizes (%d and %d)", ErrConfig, c.EncoderWindowSize, n)
			}
		}
		if c.EncoderWindowSize == 0 {
			c.EncoderWindowSize = 14 // every block global; the window is never used
		}
	} else {
		c.EncoderGlobalAttnIndexes = slices.Clone(VitB.EncoderGlobalAttnIndexes)
	}
	sort.Ints(c.EncoderGlobalAttnIndexes)
	return c, c.Validate()
}

// CheckShapes compares a checkpoint's shapes with what cfg expects and
// returns an error listing every missing, unexpected or mis-shaped tensor
// (at most a dozen named, with a count of the rest).
func (c *Config) CheckShapes(shapes map[string][]int) error {
	want := c.StateDictShapes()
	var problems []string
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, ok := shapes[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing tensor %q (want shape %v)", k, want[k]))
		case !slices.Equal(got, want[k]):
			problems = append(problems, fmt.Sprintf("tensor %q has shape %v, want %v", k, got, want[k]))
		}
	}
	var extra []string
	for k := range shapes {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		problems = append(problems, fmt.Sprintf("unexpected tensor %q (shape %v)", k, shapes[k]))
	}
	if len(problems) == 0 {
		return nil
	}
	const show = 12
	msg := ""
	for i, p := range problems {
		if i == show {
			msg += fmt.Sprintf("; and %d more", len(problems)-show)
			break
		}
		if i > 0 {
			msg += "; "
		}
		msg += p
	}
	return fmt.Errorf("%w: checkpoint does not match config %q: %s", ErrConfig, c.Name, msg)
}
