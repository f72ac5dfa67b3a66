package sam_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn/cpu"
)

// The demo model (tests/testdata/demo: a small SAM trained on synthetic
// shapes) and its scenes stand in for an official checkpoint and a photo.
const (
	demoModel = "../tests/testdata/demo/model.safetensors"
	demoScene = "../tests/testdata/demo/scene_2.png"
)

// The README's example: load, encode once, prompt, refine, batch, and keep
// the embedding.
func Example() {
	ctx := context.Background()
	m, err := sam.Load(demoModel, cpu.New(), sam.LoadOptions{}) // reads config.json beside it, if there is one
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, err := imgproc.Load(demoScene) // PNG/JPEG/GIF/BMP/TIFF/WebP, converted as PIL's convert("RGB")
	if err != nil {
		log.Fatal(err)
	}

	p := sam.NewPredictor(m)
	if err := p.SetImage(ctx, img); err != nil { // runs the encoder once
		log.Fatal(err)
	}
	res, err := p.Predict(ctx, sam.Prompt{
		Points: []sam.Point{{X: 178, Y: 204, Label: 1}}, // 3 masks, as multimask_output=True
	})
	if err != nil {
		log.Fatal(err)
	}
	best := res.Masks[res.Best()] // Mask{W, H, Pix []bool}; best.Image() is an *image.Gray
	fmt.Printf("IoU %.3f; best %d: %d pixels\n", res.IoU, res.Best(), best.Area())

	// Refine with the previous logits, or answer many prompts in one decoder pass:
	res2, err := p.Predict(ctx, sam.Prompt{
		Points:     []sam.Point{{X: 178, Y: 204, Label: 1}, {X: 165, Y: 190, Label: 1}},
		MaskInput:  res.LowResLogits[res.Best()],
		SingleMask: true, // one mask: the prompt is not ambiguous
	})
	if err != nil {
		log.Fatal(err)
	}
	batch, err := p.PredictBatch(ctx, []sam.Prompt{
		{Box: &sam.Box{X0: 157, Y0: 180, X1: 200, Y1: 228}, SingleMask: true},
		{Box: &sam.Box{X0: 202, Y0: 207, X1: 229, Y1: 242}, SingleMask: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("refined IoU %.3f; boxes %.3f %.3f\n", res2.IoU[0], batch[0].IoU[0], batch[1].IoU[0])

	// The embedding is a value: save it, load it elsewhere, prompt it there.
	dir, err := os.MkdirTemp("", "sam-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "scene_2.safetensors")
	if err := p.Embedding().Save(path); err != nil {
		log.Fatal(err)
	}
	e, err := sam.LoadEmbedding(path)
	if err != nil {
		log.Fatal(err)
	}
	q := sam.NewPredictor(m)
	if err := q.SetEmbedding(e); err != nil { // refused if another model encoded it
		log.Fatal(err)
	}

	// Every object in the image: SamAutomaticMaskGenerator.
	opts := amg.DefaultOptions()
	opts.PointsPerSide, opts.PredIoUThresh, opts.StabilityScoreThresh = 8, 0.5, 0.7
	g, err := amg.New(m, opts)
	if err != nil {
		log.Fatal(err)
	}
	recs, err := g.Generate(ctx, img)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d masks; the largest covers %d pixels\n", len(recs), recs[0].Area)
	// Output:
	// IoU [0.793 0.609 0.020]; best 0: 2879 pixels
	// refined IoU 0.835; boxes 0.822 0.737
	// 3 masks; the largest covers 60267 pixels
}

// Load settles the config as the CLI does: the config.json beside the
// checkpoint, else what the tensor shapes tell, saying what it assumed.
func ExampleLoad() {
	m, err := sam.Load(demoModel, cpu.New(), sam.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fmt.Println(m.ConfigSource, m.Config.DecoderNumHeads, m.Assumed)
	fmt.Println("encoder", m.EncoderIdentity())

	inferred, err := sam.Load(demoModel, cpu.New(), sam.LoadOptions{NoConfigFile: true})
	if err != nil {
		log.Fatal(err)
	}
	defer inferred.Close()
	fmt.Println(inferred.ConfigSource, inferred.Config.DecoderNumHeads, inferred.Assumed)
	fmt.Println("same encoder:", inferred.EncoderIdentity() == m.EncoderIdentity(), "same model:", inferred.Identity() == m.Identity())
	// Output:
	// ../tests/testdata/demo/config.json 4 []
	// encoder eae24c4e384df0258a995bf1
	// shapes 8 [decoder_num_heads=8]
	// same encoder: true same model: false
}

// A Predictor encodes an image once and answers prompts on it.
func ExamplePredictor() {
	ctx := context.Background()
	m, err := sam.Load(demoModel, cpu.New(), sam.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, err := imgproc.Load(demoScene)
	if err != nil {
		log.Fatal(err)
	}
	p := sam.NewPredictor(m)
	if err := p.SetImage(ctx, img); err != nil {
		log.Fatal(err)
	}
	res, err := p.Predict(ctx, sam.Prompt{Box: &sam.Box{X0: 157, Y0: 180, X1: 200, Y1: 228}, SingleMask: true})
	if err != nil {
		log.Fatal(err)
	}
	mask := res.Masks[0]
	var buf bytes.Buffer
	if err := png.Encode(&buf, mask.Image()); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d×%d mask, %d pixels, predicted IoU %.3f\n", mask.W, mask.H, mask.Area(), res.IoU[0])
	// Output:
	// 256×256 mask, 1932 pixels, predicted IoU 0.822
}

// PredictBatch answers many prompts in shared decoder passes: here a box
// per object of the scene, the official predictor's reference prompts.
func ExamplePredictor_PredictBatch() {
	ctx := context.Background()
	m, err := sam.Load(demoModel, cpu.New(), sam.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, err := imgproc.Load(demoScene)
	if err != nil {
		log.Fatal(err)
	}
	p := sam.NewPredictor(m)
	if err := p.SetImage(ctx, img); err != nil {
		log.Fatal(err)
	}
	var prompts []sam.Prompt
	for _, b := range [][4]float64{{95, 205, 108, 217}, {144, 59, 159, 76}, {202, 207, 229, 242}, {131, 154, 180, 211}, {157, 180, 200, 228}} {
		prompts = append(prompts, sam.Prompt{Box: &sam.Box{X0: b[0], Y0: b[1], X1: b[2], Y1: b[3]}, SingleMask: true})
	}
	res, err := p.PredictBatch(ctx, prompts)
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range res {
		fmt.Printf("box %d: IoU %.3f, %d pixels\n", i, r.IoU[0], r.Masks[0].Area())
	}
	// Output:
	// box 0: IoU 0.597, 88 pixels
	// box 1: IoU 0.635, 209 pixels
	// box 2: IoU 0.737, 460 pixels
	// box 3: IoU 0.720, 2065 pixels
	// box 4: IoU 0.822, 1932 pixels
}

// The automatic mask generator (package sam/amg) segments everything.
func Example_automaticMaskGenerator() {
	m, err := sam.Load(demoModel, cpu.New(), sam.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, err := imgproc.Load(demoScene)
	if err != nil {
		log.Fatal(err)
	}
	opts := amg.DefaultOptions()
	opts.PointsPerSide, opts.PredIoUThresh, opts.StabilityScoreThresh = 16, 0.5, 0.7
	g, err := amg.New(m, opts)
	if err != nil {
		log.Fatal(err)
	}
	recs, err := g.Generate(context.Background(), img)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs[:3] {
		fmt.Printf("area %d, bbox %v, predicted IoU %.3f\n", r.Area, r.BBox, r.PredictedIoU)
	}
	// Output:
	// area 60264, bbox [0 0 255 255], predicted IoU 1.128
	// area 2401, bbox [144 174 85 58], predicted IoU 0.828
	// area 2693, bbox [130 156 97 76], predicted IoU 0.804
}

// An Engine encodes many images across devices (here two CPU workers);
// the embeddings come back in input order.
func ExampleEngine() {
	e, err := sam.NewEngine(demoModel, sam.EngineOptions{Devices: []string{"cpu", "cpu"}, Threads: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	var imgs []*imgproc.RGB
	for _, name := range []string{"scene_0.png", "scene_1.png", "scene_2.png"} {
		img, err := imgproc.Load(filepath.Join("../tests/testdata/demo", name))
		if err != nil {
			log.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	embs, err := e.Encode(context.Background(), imgs)
	if err != nil {
		log.Fatal(err)
	}
	for _, emb := range embs {
		fmt.Printf("%d×%d image → %d×%d×%d embedding (input %d×%d)\n", emb.OriginalW, emb.OriginalH, emb.C, emb.G, emb.G, emb.InputW, emb.InputH)
	}
	// Output:
	// 640×480 image → 64×16×16 embedding (input 256×192)
	// 300×420 image → 64×16×16 embedding (input 183×256)
	// 256×256 image → 64×16×16 embedding (input 256×256)
}

// TestReadmeQuotesExample: the README's Go API snippet is Example's body
// (one tab less), so the README's code compiles and runs as written.
func TestReadmeQuotesExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	start := strings.Index(s, "func Example() {\n") + len("func Example() {\n")
	end := strings.Index(s[start:], "\t// Output:")
	var body []string
	for _, l := range strings.Split(strings.TrimRight(s[start:start+end], "\n"), "\n") {
		body = append(body, strings.TrimPrefix(l, "\t"))
	}
	if !strings.Contains(string(readme), strings.Join(body, "\n")) {
		t.Error("README.md's Go API section does not quote Example's body; copy it from sam/example_test.go")
	}
}
