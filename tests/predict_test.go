package tests

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/imgproc"
)

// predictCase is one entry of image_K.predict.json.
type predictCase struct {
	PointCoords     [][2]float64 `json:"point_coords"`
	PointLabels     []int        `json:"point_labels"`
	Box             *[4]float64  `json:"box"`
	Boxes           [][4]float64 `json:"boxes"`
	MultimaskOutput bool         `json:"multimask_output"`
	NumMasks        int          `json:"num_masks"`
	BestMask        int          `json:"best_mask"`
	Stored          []string     `json:"stored"`

	bestOfA int // case a's best mask, whose logits case e feeds back
}

type predictFile struct {
	Image        *string                `json:"image"`
	OriginalSize [2]int                 `json:"original_size"`
	InputSize    [2]int                 `json:"input_size"`
	Cases        map[string]predictCase `json:"cases"`
}

// prompts turns a case into Prompts (several for the batch case).
func (c predictCase) prompts(t testing.TB, ref tensors, name string) []sam.Prompt {
	if c.Boxes != nil {
		var ps []sam.Prompt
		for _, b := range c.Boxes {
			ps = append(ps, sam.Prompt{Box: &sam.Box{X0: b[0], Y0: b[1], X1: b[2], Y1: b[3]}, SingleMask: !c.MultimaskOutput, ReturnLogits: true})
		}
		return ps
	}
	p := sam.Prompt{SingleMask: !c.MultimaskOutput, ReturnLogits: true}
	for i, xy := range c.PointCoords {
		p.Points = append(p.Points, sam.Point{X: xy[0], Y: xy[1], Label: c.PointLabels[i]})
	}
	if c.Box != nil {
		p.Box = &sam.Box{X0: c.Box[0], Y0: c.Box[1], X1: c.Box[2], Y1: c.Box[3]}
	}
	if name == "e" {
		// mask_input = a.low_res_logits[0, a.best_mask] (the reference's own).
		a, shape := ref.get(t, "a.low_res_logits")
		n := shape[2] * shape[3]
		p.MaskInput = a[c.bestOfA*n : (c.bestOfA+1)*n]
	}
	return []sam.Prompt{p}
}

// TestPredictParity runs every SamPredictor case of every fixture set,
// decoder-only from the stored embedding, and compares every stored
// tensor of each case (the stored lists of predict.json): the prompts in
// the resized-input frame, the mask input, the sparse and dense prompt
// embeddings, the decoder's intermediates (tiny), low-res logits, IoU,
// upscaled logits and masks.
func TestPredictParity(t *testing.T) {
	type fixture struct{ set, json, tensors, embedding string }
	var fixtures []fixture
	for _, set := range parity.sets {
		for _, k := range parity.imagesOf(set) {
			fixtures = append(fixtures, fixture{set,
				fmt.Sprintf("image_%d.predict.json", k), fmt.Sprintf("image_%d.predict.safetensors", k),
				fmt.Sprintf("image_%d.encoder.safetensors", k)})
		}
	}
	if parity.vitbDecoder {
		// Weights and embedding regenerated (vitbDecoderFiles).
		fixtures = append(fixtures, fixture{"vitb_decoder", "predict.json", "predict.safetensors", ""})
	}

	for _, fx := range fixtures {
		t.Run(fx.set+"/"+fx.json, func(t *testing.T) {
			ms, feat := predictInputs(t, fx.set, fx.embedding, newBackend(t))
			m := ms[0]
			var pf predictFile
			readJSON(t, fixturePath(fx.set, fx.json), &pf)
			ref := openTensors(t, fixturePath(fx.set, fx.tensors))

			C, g := m.Config.PromptEmbedDim, m.Config.GridSize()
			emb := &sam.Embedding{Features: feat, C: C, G: g, ImgSize: m.Config.ImgSize,
				OriginalH: pf.OriginalSize[0], OriginalW: pf.OriginalSize[1], InputH: pf.InputSize[0], InputW: pf.InputSize[1]}
			p := sam.NewPredictor(m)
			require.NoError(t, p.SetEmbedding(emb))
			for _, name := range []string{"a", "b", "c", "d", "e", "batch"} {
				c, ok := pf.Cases[name]
				require.True(t, ok, "case %s", name)
				c.bestOfA = pf.Cases["a"].BestMask
				t.Run(name, func(t *testing.T) { checkCase(t, p, c, ref, name, pf.OriginalSize) })
			}
		})
	}
}

func checkCase(t *testing.T, p *sam.Predictor, c predictCase, ref tensors, name string, orig [2]int) {
	traced := map[string][]float32{}
	p.Trace = func(n string, shape []int, data []float32) { traced[n] = append(traced[n], data...) }
	defer func() { p.Trace = nil }()
	prompts := c.prompts(t, ref, name)
	res, err := p.PredictBatch(context.Background(), prompts)
	require.NoError(t, err)

	key := func(s string) string { return name + "." + s }
	// The prompts in the resized-input frame: coords_in and box_in are
	// SamPredictor.predict's apply_coords (float64, then float32), as
	// ours, so they match bit for bit. batch.boxes_in is apply_boxes_torch
	// on a float32 tensor, computed in float32, while PredictBatch maps
	// every prompt as predict does: up to 1 ulp apart.
	for _, n := range []string{"coords_in", "box_in"} {
		if ref.has(key(n)) {
			require.Equal(t, first(ref.get(t, key(n))), traced[n], key(n))
		}
	}
	if ref.has(key("boxes_in")) {
		requireULP(t, key("boxes_in"), traced["box_in"], first(ref.get(t, key("boxes_in"))), 1)
	}
	if ref.has(key("mask_input")) {
		// Case e feeds a.low_res_logits[best], which must be what the
		// reference fed.
		var fed []float32
		for _, pr := range prompts {
			fed = append(fed, pr.MaskInput...)
		}
		require.Equal(t, first(ref.get(t, key("mask_input"))), fed, key("mask_input"))
	}
	requireClose(t, key("sparse"), traced["sparse"], first(ref.get(t, key("sparse"))), tolSparse)
	if ref.has(key("dense")) {
		// a: no_mask_embed broadcast; e: the downsampled mask input.
		requireClose(t, key("dense"), traced["dense"], first(ref.get(t, key("dense"))), tolDense)
	}
	for _, n := range []string{"transformer_queries", "transformer_keys", "upscaled"} {
		if ref.has(key(n)) {
			requireClose(t, key(n), traced[n], first(ref.get(t, key(n))), tolLogits)
		}
	}

	var low, iou, logits []float32
	var masks []bool
	for _, r := range res {
		require.Len(t, r.Masks, c.NumMasks)
		iou = append(iou, r.IoU...)
		for j := range r.Masks {
			low = append(low, r.LowResLogits[j]...)
			logits = append(logits, r.Logits[j]...)
			masks = append(masks, r.Masks[j].Pix...)
			require.Equal(t, orig[1], r.Masks[j].W)
			require.Equal(t, orig[0], r.Masks[j].H)
		}
	}
	requireAbs(t, key("iou"), iou, first(ref.get(t, key("iou"))), tolIoU)
	if ref.has(key("low_res_logits")) {
		requireClose(t, key("low_res_logits"), low, first(ref.get(t, key("low_res_logits"))), tolLogits)
	}
	if ref.has(key("logits")) {
		requireClose(t, key("logits"), logits, first(ref.get(t, key("logits"))), tolLogits)
	}
	if ref.has(key("masks")) {
		refMasks, _ := ref.get(t, key("masks"))
		flips := 0
		for i, v := range refMasks {
			if (v != 0) != masks[i] {
				flips++
			}
		}
		share := float64(flips) / float64(len(refMasks))
		require.LessOrEqual(t, share, tolFlipShare, "%s: %d of %d mask pixels differ", key("masks"), flips, len(refMasks))
		t.Logf("%-28s %d of %d pixels flipped", key("masks"), flips, len(refMasks))
	}
}

// TestEndToEnd runs image → embedding → prompts for tiny and small, with
// our own embedding, and checks the logits and masks of every case.
func TestEndToEnd(t *testing.T) {
	for _, set := range parity.sets {
		for _, k := range parity.imagesOf(set) {
			t.Run(fmt.Sprintf("%s/image_%d", set, k), func(t *testing.T) {
				m := loadModel(t, set, "model.safetensors")
				var pf predictFile
				readJSON(t, fixturePath(set, fmt.Sprintf("image_%d.predict.json", k)), &pf)
				ref := openTensors(t, fixturePath(set, fmt.Sprintf("image_%d.predict.safetensors", k)))
				img, err := imgproc.Load(fixturePath(set, fmt.Sprintf("image_%d.png", k)))
				require.NoError(t, err)
				p := sam.NewPredictor(m)
				require.NoError(t, p.SetImage(context.Background(), img))
				e := p.Embedding()
				require.Equal(t, pf.OriginalSize, [2]int{e.OriginalH, e.OriginalW})
				require.Equal(t, pf.InputSize, [2]int{e.InputH, e.InputW})
				for _, name := range []string{"a", "b", "c", "d", "e", "batch"} {
					c := pf.Cases[name]
					c.bestOfA = pf.Cases["a"].BestMask
					t.Run(name, func(t *testing.T) { checkCase(t, p, c, ref, name, pf.OriginalSize) })
				}
			})
		}
	}
}

// requireULP asserts that every got[i] is within n float32 steps of ref[i].
func requireULP(t testing.TB, name string, got, ref []float32, n int) {
	t.Helper()
	require.Equal(t, len(ref), len(got), "%s: length", name)
	worst := 0
	for i, r := range ref {
		if math.IsNaN(float64(got[i])) {
			require.Failf(t, "NaN", "%s[%d] = NaN, want %v", name, i, r)
		}
		lo, hi, steps := r, r, 0
		for got[i] < lo || got[i] > hi {
			if steps++; steps > n {
				require.Failf(t, "too far", "%s[%d] = %v, want %v within %d ulp", name, i, got[i], r, n)
			}
			lo, hi = math.Nextafter32(lo, float32(math.Inf(-1))), math.Nextafter32(hi, float32(math.Inf(1)))
		}
		worst = max(worst, steps)
	}
	t.Logf("%-28s max %d ulp", name, worst)
}
