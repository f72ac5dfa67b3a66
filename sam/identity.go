package sam

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"runtime"
	"sort"
	"strings"
	"unsafe"
)

// identityHex is how many hex digits of a SHA-256 an identity keeps: 96
// bits, far beyond any chance collision among the models one person runs,
// and short enough to read in a log line. (Identities guard against
// mistakes, not against forgery.)
const identityHex = 24

// hashSlots bounds the tensors being hashed at once while a model loads.
var hashSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// tensorDigest is SHA-256 over a tensor's name, shape and float32 values
// (little-endian).
func tensorDigest(name string, shape []int, v []float32) []byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	var buf [8]byte
	for _, d := range shape {
		binary.LittleEndian.PutUint64(buf[:], uint64(d))
		h.Write(buf[:])
	}
	h.Write([]byte{0})
	if len(v) > 0 && littleEndian() {
		h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
	} else {
		chunk := make([]byte, 0, 1<<16)
		for _, x := range v {
			chunk = binary.LittleEndian.AppendUint32(chunk, math.Float32bits(x))
			if len(chunk) == cap(chunk) {
				h.Write(chunk)
				chunk = chunk[:0]
			}
		}
		h.Write(chunk)
	}
	return h.Sum(nil)
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// encoderConfig is what of a ViT Config shapes an embedding: preprocessing,
// the ViT and its neck's output width (tinyViTEncoderConfig for TinyViT).
type encoderConfig struct {
	ImgSize, PatchSize, InChans                   int
	EmbedDim, Depth, NumHeads, MLPDim, WindowSize int
	GlobalAttnIndexes                             []int
	QKVBias, UseAbsPos, UseRelPos                 bool
	LayerNormEps, NeckLayerNorm2dEps              float32
	PromptEmbedDim                                int
	PixelMean, PixelStd                           [3]float32
}

// identities returns Identity and EncoderIdentity of a model with config
// cfg whose tensors have the given digests (see Model.Identity).
func identities(cfg *Config, digests map[string][]byte) (model, encoder string) {
	names := make([]string, 0, len(digests))
	for n := range digests {
		names = append(names, n)
	}
	sort.Strings(names)
	sum := func(kind string, conf any, keep func(string) bool) string {
		h := sha256.New()
		h.Write([]byte("samgo " + kind + " identity 1\n"))
		j, _ := json.Marshal(conf) // plain numbers, bools and slices: cannot fail
		h.Write(j)
		h.Write([]byte{'\n'})
		for _, n := range names {
			if keep(n) {
				h.Write([]byte(n + " " + hex.EncodeToString(digests[n]) + "\n"))
			}
		}
		return hex.EncodeToString(h.Sum(nil))[:identityHex]
	}
	c := *cfg
	c.Name = ""
	if len(c.EncoderGlobalAttnIndexes) == 0 {
		c.EncoderGlobalAttnIndexes = nil // [] and null are one config
	}
	model = sum("model", modelIdentityConfig(c), func(string) bool { return true })
	if !cfg.HasImageEncoder {
		return model, ""
	}
	if c.IsTinyViT() {
		encoder = sum("encoder", tinyViTIdentityConfig(&c), func(n string) bool { return strings.HasPrefix(n, "image_encoder.") })
		return model, encoder
	}
	e := encoderConfig{
		ImgSize: c.ImgSize, PatchSize: c.PatchSize, InChans: c.InChans,
		EmbedDim: c.EncoderEmbedDim, Depth: c.EncoderDepth, NumHeads: c.EncoderNumHeads,
		MLPDim: c.EncoderMLPDim, WindowSize: c.EncoderWindowSize, GlobalAttnIndexes: c.EncoderGlobalAttnIndexes,
		QKVBias: c.EncoderQKVBias, UseAbsPos: c.EncoderUseAbsPos, UseRelPos: c.EncoderUseRelPos,
		LayerNormEps: c.EncoderLayerNormEps, NeckLayerNorm2dEps: c.NeckLayerNorm2dEps,
		PromptEmbedDim: c.PromptEmbedDim, PixelMean: c.PixelMean, PixelStd: c.PixelStd,
	}
	encoder = sum("encoder", e, func(n string) bool { return strings.HasPrefix(n, "image_encoder.") })
	return model, encoder
}

// identityConfig is how a Config enters the model identity: its JSON,
// where the encoder family's fields (encoder_type, tiny_vit) are left out
// for the ViT, so that a ViT model's identity is the one it had before the
// family became explicit (embeddings and AMG outputs made then still
// match). The outer fields hide Config's own of the same JSON names.
type identityConfig struct {
	Config
	EncoderType string         `json:"encoder_type,omitempty"`
	TinyViT     *TinyViTConfig `json:"tiny_vit,omitempty"`
}

func modelIdentityConfig(c Config) identityConfig {
	id := identityConfig{Config: c}
	if c.IsTinyViT() {
		id.EncoderType = c.EncoderType
		t := tinyViTCanonical(&c.TinyViT)
		id.TinyViT = &t
	}
	return id
}

// tinyViTCanonical is t with what does not change the computation zeroed:
// the heads and window of stages without attention (stage 0, stages
// without blocks), which the official builder passes but never uses and
// which InferConfig cannot see.
func tinyViTCanonical(t *TinyViTConfig) TinyViTConfig {
	c := t.clone()
	for i := range c.Depths {
		if i == 0 || c.Depths[i] == 0 {
			c.NumHeads[i], c.WindowSizes[i] = 0, 0
		}
	}
	return c
}

// tinyViTEncoderConfig is what of a TinyViT Config shapes an embedding.
type tinyViTEncoderConfig struct {
	EncoderType                      string
	ImgSize, PatchSize, InChans      int
	TinyViT                          TinyViTConfig
	LayerNormEps, NeckLayerNorm2dEps float32
	PromptEmbedDim                   int
	PixelMean, PixelStd              [3]float32
}

func tinyViTIdentityConfig(c *Config) tinyViTEncoderConfig {
	return tinyViTEncoderConfig{
		EncoderType: c.EncoderType, ImgSize: c.ImgSize, PatchSize: c.PatchSize, InChans: c.InChans,
		TinyViT: tinyViTCanonical(&c.TinyViT), LayerNormEps: c.EncoderLayerNormEps, NeckLayerNorm2dEps: c.NeckLayerNorm2dEps,
		PromptEmbedDim: c.PromptEmbedDim, PixelMean: c.PixelMean, PixelStd: c.PixelStd,
	}
}
