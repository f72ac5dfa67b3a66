package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/atomicfile"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/npy"
)

func init() {
	register(&command{
		name: "predict",
		args: "-checkpoint F [-config C] (-image I | -embedding E) [-point X,Y[,LABEL]]... [-box X0,Y0,X1,Y1]... [-mask-input M.npy[:INDEX]] [-multimask=false] [-logits] -out DIR",
		summary: "segment with point/box/mask prompts (SamPredictor); writes mask_<i>.png, low_res_logits.npy, iou.npy, overlay.png (with -image), " +
			"result.json, and with -logits the full-size logits.npy. Several -box flags make a batch (one prompt per box, sharing the points and mask input).",
		run: runPredict,
	})
}

// parseFloats parses the comma-separated numbers of a flag whose form is
// want ("X,Y[,LABEL]"): n of them, or n−1 with optional.
func parseFloats(s, want string, n int, optional bool) ([]float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) != n && !(optional && len(parts) == n-1) {
		return nil, fmt.Errorf("%q: want %s", s, want)
	}
	out := make([]float64, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: want %s (%q is not a number)", s, want, strings.TrimSpace(p))
		}
		out[i] = v
	}
	return out, nil
}

// parsePrompts turns the flags into prompts: one per -box, or one in all.
func parsePrompts(points, boxes []string, mask []float32, multimask bool) ([]sam.Prompt, error) {
	var pts []sam.Point
	for _, s := range points {
		v, err := parseFloats(s, "X,Y[,LABEL]", 3, true)
		if err != nil {
			return nil, fmt.Errorf("-point %w", err)
		}
		label := 1
		if len(v) == 3 {
			if v[2] != 0 && v[2] != 1 {
				return nil, fmt.Errorf("-point %q: LABEL must be 1 (foreground) or 0 (background)", s)
			}
			label = int(v[2])
		}
		pts = append(pts, sam.Point{X: v[0], Y: v[1], Label: label})
	}
	base := sam.Prompt{Points: pts, MaskInput: mask, SingleMask: !multimask}
	if len(boxes) == 0 {
		return []sam.Prompt{base}, nil
	}
	var ps []sam.Prompt
	for _, s := range boxes {
		v, err := parseFloats(s, "X0,Y0,X1,Y1", 4, false)
		if err != nil {
			return nil, fmt.Errorf("-box %w", err)
		}
		p := base
		p.Box = &sam.Box{X0: v[0], Y0: v[1], X1: v[2], Y1: v[3]}
		ps = append(ps, p)
	}
	return ps, nil
}

// maskInput is -mask-input FILE[:INDEX] read.
type maskInput struct {
	spec   string
	values []float32
	h, w   int
}

// readMaskInput reads -mask-input FILE[:INDEX]: a float32 .npy of low-res
// logits shaped (h,w), (1,h,w), (M,h,w) or (B,M,h,w), the last two what
// predict writes as low_res_logits.npy. INDEX picks one of the h×w planes
// in file order, which for predict's own output is prompt·M + mask, the i
// of mask_<i>.png; without INDEX the file must hold a single plane.
func readMaskInput(spec string) (*maskInput, error) {
	path, index := spec, -1
	if _, err := os.Stat(spec); err != nil {
		if i := strings.LastIndexByte(spec, ':'); i > 0 {
			if n, err := strconv.Atoi(spec[i+1:]); err == nil && n >= 0 {
				path, index = spec[:i], n
			}
		}
	}
	v, shape, err := npy.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-mask-input %w", err)
	}
	if len(shape) < 2 || len(shape) > 4 {
		return nil, fmt.Errorf("-mask-input %s: shape %v, want (h,w), (1,h,w), (M,h,w) or (B,M,h,w)", path, shape)
	}
	h, w := shape[len(shape)-2], shape[len(shape)-1]
	planes := 1
	for _, d := range shape[:len(shape)-2] {
		planes *= d
	}
	switch {
	case planes == 0 || h == 0 || w == 0:
		return nil, fmt.Errorf("-mask-input %s: shape %v is empty", path, shape)
	case index < 0 && planes > 1:
		return nil, fmt.Errorf("-mask-input %s: shape %v holds %d masks; pick one with -mask-input %s:INDEX (0…%d, the i of mask_<i>.png; "+
			"result.json's \"best\" names each prompt's best mask)", path, shape, planes, path, planes-1)
	case index >= planes:
		return nil, fmt.Errorf("-mask-input %s: index %d, but shape %v holds %d mask(s) (0…%d)", path, index, shape, planes, planes-1)
	}
	if index < 0 {
		index = 0
	}
	return &maskInput{spec: spec, values: v[index*h*w : (index+1)*h*w], h: h, w: w}, nil
}

// predictOutputs reports whether name is one of the files predict writes
// (what an earlier run may have left in -out).
func predictOutputs(name string) bool {
	switch name {
	case "logits.npy", "low_res_logits.npy", "iou.npy", "overlay.png", "result.json":
		return true
	}
	return numberedName(name, "mask_", ".png")
}

type maskRecord struct {
	File   string  `json:"file"`
	Prompt int     `json:"prompt"`
	Index  int     `json:"index"`
	IoU    float32 `json:"iou"`
	Area   int     `json:"area"`
	// BBox is [x, y, w, h] of the mask's pixels with SAM's inclusive
	// corners (w = x1 − x0, as the automatic generator's records give it);
	// [0, 0, 0, 0] for an empty mask.
	BBox [4]int `json:"bbox"`
	Best bool   `json:"best"` // the prompt's mask with the highest predicted IoU
}

// maxHeldOutputs bounds the bytes of full-size outputs (masks, and logits
// with -logits) predict holds at once: prompts are decoded in groups that
// fit, and each group's outputs are written and dropped before the next.
// A variable for the tests.
var maxHeldOutputs int64 = 256 << 20

func runPredict(args []string, stdout, stderr io.Writer) error {
	c := commands["predict"]
	fs := newFlags(c, stderr)
	var mf modelFlags
	mf.register(fs)
	var image, embPath, maskIn, outDir string
	onceVar(fs, &image, "image", "", "input image `FILE` (one; for several use 'sam embed' and one predict per embedding)")
	onceVar(fs, &embPath, "embedding", "", "a saved embedding `FILE` (.safetensors from 'sam embed') instead of -image")
	var points, boxes listFlag
	fs.Var(&points, "point", "prompt point `X,Y[,LABEL]` in image pixels; LABEL 1 foreground (default), 0 background; repeatable")
	fs.Var(&boxes, "box", "prompt box `X0,Y0,X1,Y1` in image pixels; repeat for a batch of box prompts")
	onceVar(fs, &maskIn, "mask-input", "", "low-res mask logits from a previous prediction: `FILE[:INDEX]`, a float32 .npy shaped (h,w), (1,h,w), (M,h,w) or (B,M,h,w) "+
		"(low_res_logits.npy); INDEX picks a mask, the i of mask_<i>.png, and is needed when the file holds several")
	multimask := fs.Bool("multimask", true, "return 3 masks per prompt (the official multimask_output=True default); -multimask=false returns 1")
	logits := fs.Bool("logits", false, "also write logits.npy, the float32 logits at the image's full size (4·M·H·W bytes: 1 GB for 3 masks of a 9000×9000 image)")
	onceVar(fs, &outDir, "out", "", "output `DIR` (created); files of an earlier predict that this run does not write are removed")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (image == "") == (embPath == "") {
		return usageErr(fs, "give exactly one of -image and -embedding")
	}
	if outDir == "" {
		return usageErr(fs, "-out is required")
	}
	var mask *maskInput
	if maskIn != "" {
		var err error
		if mask, err = readMaskInput(maskIn); err != nil {
			return err
		}
	}
	var maskValues []float32
	if mask != nil {
		maskValues = mask.values
	}
	prompts, err := parsePrompts(points, boxes, maskValues, *multimask)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	lopts, err := mf.loadOptions()
	if err != nil {
		return err
	}
	if err := checkWritable(outDir); err != nil {
		return err
	}
	ctx, stop := notifyContext(context.Background())
	defer stop()

	t0 := time.Now()
	var img *imgproc.RGB
	var emb *sam.Embedding
	if image != "" {
		if img, err = imgproc.Load(image); err != nil {
			return err
		}
	} else if emb, err = loadEmbedding(embPath); err != nil {
		return err
	}
	m, err := mf.loadWith(lopts, mf.device, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	if lr := m.Config.LowResSize(); mask != nil && (mask.h != lr || mask.w != lr) {
		return fmt.Errorf("-mask-input %s: %d×%d logits, the model takes %d×%d (a previous predict's low_res_logits.npy)", mask.spec, mask.w, mask.h, lr, lr)
	}
	p := sam.NewPredictor(m)
	tLoad := time.Since(t0)
	t1 := time.Now()
	if img != nil {
		err = p.SetImage(ctx, img)
	} else {
		err = p.SetEmbedding(emb)
	}
	if err != nil {
		return interrupted(ctx, err)
	}
	tEnc := time.Since(t1)

	// Remove the completion marker first: a run that fails part-way must
	// not leave an earlier result.json describing a mix of files.
	if err := os.Remove(filepath.Join(outDir, "result.json")); err != nil && !os.IsNotExist(err) {
		return err
	}
	e := p.Embedding()
	B, H, W := len(prompts), e.OriginalH, e.OriginalW
	M := 1
	if *multimask {
		M = m.Config.NumMultimaskOutputs
	}
	lr := m.Config.LowResSize()
	lead := []int{}
	if B > 1 {
		lead = []int{B}
	}
	shape := func(dims ...int) []int { return append(append([]int{}, lead...), dims...) }
	shapes := map[string][]int{"low_res_logits": shape(M, lr, lr), "iou": shape(M)}
	written := map[string]bool{}
	lowF, err := createAtomic(filepath.Join(outDir, "low_res_logits.npy"))
	if err != nil {
		return err
	}
	defer lowF.Abort()
	lowW, err := npy.NewWriter(lowF.W, shapes["low_res_logits"]...)
	if err != nil {
		return err
	}
	var logF *atomicfile.File
	var logW *npy.Writer
	if *logits {
		shapes["logits"] = shape(M, H, W)
		if logF, err = createAtomic(filepath.Join(outDir, "logits.npy")); err != nil {
			return err
		}
		defer logF.Abort()
		if logW, err = npy.NewWriter(logF.W, shapes["logits"]...); err != nil {
			return err
		}
	}
	var paint *painter
	if img != nil {
		paint = newPainter(img, 0.5)
	}

	// Decode in groups whose full-size outputs fit maxHeldOutputs; write
	// each prediction's files as it comes.
	per := int64(M) * int64(H) * int64(W)
	if *logits {
		per *= 5 // bool mask + float32 logits
	}
	group := int(max(1, min(int64(B), int64(sam.MaxPrompts), maxHeldOutputs/max(per, 1))))
	var records []maskRecord
	ious := make([][]float32, B)
	best := make([]int, B)
	var tPred, tWrite time.Duration
	for start := 0; start < B; start += group {
		batch := append([]sam.Prompt(nil), prompts[start:min(start+group, B)]...)
		for i := range batch {
			batch[i].ReturnLogits = *logits
		}
		t := time.Now()
		res, err := p.PredictBatch(ctx, batch)
		if err != nil {
			if group < B { // the library numbers prompts within the group
				err = fmt.Errorf("prompts %d…%d: %w", start, start+len(batch)-1, err)
			}
			return interrupted(ctx, err)
		}
		tPred += time.Since(t)
		t = time.Now()
		for k, r := range res {
			b := start + k
			ious[b], best[b] = r.IoU, r.Best()
			for j := range r.Masks {
				if err := lowW.Write(r.LowResLogits[j]); err != nil {
					return err
				}
				if logW != nil {
					if err := logW.Write(r.Logits[j]); err != nil {
						return err
					}
				}
				name := fmt.Sprintf("mask_%d.png", b*M+j)
				pix := r.Masks[j].Pix
				if err := writeAtomic(filepath.Join(outDir, name), func(w io.Writer) error { return imgproc.MaskPNG(w, pix, W, H) }); err != nil {
					return err
				}
				written[name] = true
				rec := maskRecord{File: name, Prompt: b, Index: j, IoU: r.IoU[j], Best: j == best[b]}
				if box, area, ok := r.Masks[j].Box(); ok {
					rec.Area, rec.BBox = area, [4]int{box[0], box[1], box[2] - box[0], box[3] - box[1]}
				}
				records = append(records, rec)
				if paint != nil && j == best[b] {
					bx := [4]int{0, 0, W - 1, H - 1}
					if rec.Area > 0 {
						bx = [4]int{rec.BBox[0], rec.BBox[1], rec.BBox[0] + rec.BBox[2], rec.BBox[1] + rec.BBox[3]}
					}
					paint.mask(pix, imgproc.MaskColor(b), true, bx)
				}
			}
		}
		tWrite += time.Since(t)
	}

	t3 := time.Now()
	if err := lowW.Close(); err != nil {
		return err
	}
	if err := lowF.Commit(); err != nil {
		return err
	}
	written["low_res_logits.npy"] = true
	if logW != nil {
		if err := logW.Close(); err != nil {
			return err
		}
		if err := logF.Commit(); err != nil {
			return err
		}
		written["logits.npy"] = true
	}
	var iouFlat []float32
	for _, v := range ious {
		iouFlat = append(iouFlat, v...)
	}
	if err := npy.WriteFile(filepath.Join(outDir, "iou.npy"), iouFlat, shapes["iou"]...); err != nil {
		return err
	}
	written["iou.npy"] = true
	if paint != nil {
		// Boxes and points on top of the masks: boxes in their prompt's
		// colour, points green (foreground) or red (background).
		r, lw := markerSize(W, H)
		for b, pr := range prompts {
			if pr.Box != nil {
				paint.rect(pr.Box.X0, pr.Box.Y0, pr.Box.X1, pr.Box.Y1, imgproc.MaskColor(b), lw)
			}
		}
		for _, pt := range prompts[0].Points {
			c := positiveColor
			if pt.Label == 0 {
				c = negativeColor
			}
			paint.disc(pt.X, pt.Y, r, c, ringColor)
		}
		if err := writeAtomic(filepath.Join(outDir, "overlay.png"), func(w io.Writer) error { return imgproc.WritePNG(w, paint.out) }); err != nil {
			return err
		}
		written["overlay.png"] = true
	}
	written["result.json"] = true
	removed, err := removeStale(outDir, predictOutputs, written)
	if err != nil {
		return err
	}
	if len(removed) > 0 {
		fmt.Fprintf(stderr, "sam predict: removed %d file(s) of an earlier run from %s (%s)\n", len(removed), outDir, strings.Join(removed, ", "))
	}
	tWrite += time.Since(t3)

	result := map[string]any{
		"image": image, "embedding": embPath,
		"original_size": []int{H, W}, "input_size": []int{e.InputH, e.InputW},
		"device": m.Backend().Name(), "model": m.Identity(),
		"prompts": prompts, "masks": records, "iou": ious, "best": best,
		"shapes":     shapes,
		"timings_ms": map[string]float64{"load": ms(tLoad), "encode": ms(tEnc), "predict": ms(tPred), "write": ms(tWrite)},
	}
	if mask != nil {
		result["mask_input"] = mask.spec
	}
	if err := writeJSONFile(filepath.Join(outDir, "result.json"), result); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "sam predict: %d prompt(s), %d mask(s) each → %s (encode %s, predict %s)\n",
		B, M, outDir, tEnc.Round(time.Millisecond), tPred.Round(time.Millisecond))
	return writeJSON(stdout, result)
}

// loadEmbedding reads a -embedding file, saying what to do with the .npy
// that 'sam embed -out E.npy' writes (features only, no image sizes).
func loadEmbedding(path string) (*sam.Embedding, error) {
	e, err := sam.LoadEmbedding(path)
	if err != nil && strings.HasSuffix(strings.ToLower(path), ".npy") {
		return nil, fmt.Errorf("%w\n(a .npy holds the features only, without the image sizes predict needs: "+
			"write the embedding with 'sam embed -out E.safetensors', or to a directory)", err)
	}
	return e, err
}

// interrupted turns an error of a cancelled ctx (Ctrl-C) into
// errInterrupted.
func interrupted(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return errInterrupted
	}
	return err
}
