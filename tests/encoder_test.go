package tests

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/imgproc"
)

// Fixture tolerances (FIXTURES.md, "Tolerances"), fp32.
const (
	tolBlocks    = 1e-4 // encoder blocks, embedding: max/std
	tolDensePE   = 5e-5 // abs
	tolSparse    = 5e-5 // max/std
	tolDense     = 5e-5 // max/std
	tolLogits    = 3e-4 // low_res_logits, logits: max/std
	tolIoU       = 1e-5 // abs
	tolFlipShare = 1e-3 // mask pixels flipped
)

// TestEncoderParity runs preprocessing and the image encoder on both
// fixture images of every set (tiny, small, tinyvit) and compares every
// stored tensor.
func TestEncoderParity(t *testing.T) {
	for _, set := range parity.sets {
		m := loadModel(t, set, "model.safetensors")
		for _, k := range parity.imagesOf(set) {
			t.Run(fmt.Sprintf("%s/image_%d", set, k), func(t *testing.T) {
				ref := openTensors(t, fixturePath(set, fmt.Sprintf("image_%d.encoder.safetensors", k)))
				img, err := imgproc.Load(fixturePath(set, fmt.Sprintf("image_%d.png", k)))
				require.NoError(t, err)

				// Preprocessing is bit-exact: (1,3,S,S) reference vs our (S,S,3).
				input, h, w, err := m.Preprocess(img)
				require.NoError(t, err)
				S := m.Config.ImgSize
				_, rs := ref.get(t, "resized_uint8")
				require.Equal(t, []int{rs[0], rs[1]}, []int{h, w})
				refIn, _ := ref.get(t, "input")
				require.Equal(t, refIn, nhwcToNCHW(input, 1, S, S, 3), "input tensor must match bit for bit")

				got := map[string][]float32{}
				embs, err := m.EncodeInput(context.Background(), input, 1, func(name string, shape []int, data []float32) {
					got[name] = data
				})
				require.NoError(t, err)
				if m.Config.IsTinyViT() {
					checkTinyViTTrace(t, m, ref, got)
				} else {
					requireClose(t, "patch_embed", got["patch_embed"], first(ref.get(t, "patch_embed")), tolBlocks)
					for i := range m.Config.EncoderDepth {
						name := fmt.Sprintf("block_%d", i)
						requireClose(t, name, got[name], first(ref.get(t, name)), tolBlocks)
					}
				}
				requireClose(t, "embedding", embs[0].Features, first(ref.get(t, "embedding")), tolBlocks)
				requireAbs(t, "dense_pe", m.DensePE(), first(ref.get(t, "dense_pe")), tolDensePE)
			})
		}
	}
}

func first[A, B any](a A, _ B) A { return a }
