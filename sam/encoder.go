package sam

import (
	"context"

	"github.com/samgo/samgo/sam/nn"
)

// encoder is an image encoder: the one extension point between SAM's
// image side and everything downstream of it. SAM's prompt encoder and
// mask decoder only see the embedding, (B, g, g, C) with C =
// Config.PromptEmbedDim and g = Config.GridSize(), so an encoder distilled
// to SAM's embedding space (MobileSAM's TinyViT) plugs in here and the
// Predictor, the automatic mask generator, the Engine and saved embeddings
// work with it unchanged.
//
// Adding an encoder family:
//  1. Config: a new EncoderType value and the family's hyper-parameters
//     (a sub-struct as TinyViT), with Validate, the JSON keys (config.go),
//     a preset if there is an official one, and GridSize right for it
//     (PatchSize is the encoder's total stride).
//  2. StateDictShapes and InferConfig (statedict.go): the official keys and
//     shapes, and how to recognise and read them.
//  3. The module (a file per official module, as image_encoder.go and
//     tiny_vit.go): a constructor from *weights that uploads (and, where
//     the official model folds or reorders, converts) the weights, and
//     forwardCtx written against nn ops with a scope per block.
//  4. newEncoder below; the config fields that shape an embedding in
//     identities (identity.go); the memory estimates (engine.go:
//     EncoderBytesPerImage, WeightBytes); random weights (random.go).
//  5. Parity fixtures from the official code, in tests/.
type encoder interface {
	// forwardCtx maps the normalised, padded images x (B, S, S, 3) to the
	// image embedding (B, g, g, C). trace, if not nil, receives named
	// intermediates (the reference fixtures' names). It returns
	// ctx.Err() when cancelled (checked between blocks).
	forwardCtx(ctx context.Context, b nn.Backend, x nn.Tensor, trace func(name string, t nn.Tensor)) (nn.Tensor, error)
}

// newEncoder loads the image encoder cfg describes.
func newEncoder(w *weights, cfg *Config) encoder {
	if cfg.IsTinyViT() {
		return newTinyViT(w, cfg)
	}
	return newImageEncoder(w, cfg)
}

var (
	_ encoder = (*imageEncoder)(nil)
	_ encoder = (*tinyViT)(nil)
)
