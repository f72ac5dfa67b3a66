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
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/npy"
)

func init() {
	register(&command{
		name: "predict",
		args: "-checkpoint F [-config C] (-image I | -embedding E) [-point X,Y[,LABEL]]... [-box X0,Y0,X1,Y1]... [-mask-input M.npy] [-multimask] -out DIR",
		summary: "segment with point/box/mask prompts; writes logits.npy, low_res_logits.npy, iou.npy, mask_<i>.png, overlay.png, result.json. " +
			"Several -box flags make a batch (one prompt per box, sharing the points and mask input).",
		run: runPredict,
	})
}

// parseFloats parses n (or, with optional, n−1) comma-separated numbers.
func parseFloats(s string, n int, optional bool) ([]float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) != n && !(optional && len(parts) == n-1) {
		return nil, fmt.Errorf("%q: want %d comma-separated numbers", s, n)
	}
	out := make([]float64, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", s, err)
		}
		out[i] = v
	}
	return out, nil
}

// parsePrompts turns the flags into prompts: one per -box, or one in all.
func parsePrompts(points, boxes []string, mask []float32, multimask bool) ([]sam.Prompt, error) {
	var pts []sam.Point
	for _, s := range points {
		v, err := parseFloats(s, 3, true)
		if err != nil {
			return nil, fmt.Errorf("-point %w", err)
		}
		label := 1
		if len(v) == 3 {
			if v[2] != 0 && v[2] != 1 {
				return nil, fmt.Errorf("-point %q: label must be 1 (foreground) or 0 (background)", s)
			}
			label = int(v[2])
		}
		pts = append(pts, sam.Point{X: v[0], Y: v[1], Label: label})
	}
	base := sam.Prompt{Points: pts, MaskInput: mask, Multimask: multimask, ReturnLogits: true}
	if len(boxes) == 0 {
		return []sam.Prompt{base}, nil
	}
	var ps []sam.Prompt
	for _, s := range boxes {
		v, err := parseFloats(s, 4, false)
		if err != nil {
			return nil, fmt.Errorf("-box %w", err)
		}
		p := base
		p.Box = &sam.Box{X0: v[0], Y0: v[1], X1: v[2], Y1: v[3]}
		ps = append(ps, p)
	}
	return ps, nil
}

type maskRecord struct {
	File   string  `json:"file"`
	Prompt int     `json:"prompt"`
	Index  int     `json:"index"`
	IoU    float32 `json:"iou"`
	Area   int     `json:"area"`
}

func runPredict(args []string, stdout, stderr io.Writer) error {
	c := commands["predict"]
	fs := newFlags(c, stderr)
	var mf modelFlags
	mf.register(fs)
	image := fs.String("image", "", "input image")
	embPath := fs.String("embedding", "", "a saved embedding (.safetensors from 'sam embed') instead of -image")
	var points, boxes listFlag
	fs.Var(&points, "point", "prompt point X,Y[,LABEL] in image pixels; LABEL 1 foreground (default), 0 background; repeatable")
	fs.Var(&boxes, "box", "prompt box X0,Y0,X1,Y1 in image pixels; repeat for a batch of box prompts")
	maskIn := fs.String("mask-input", "", "low-res mask logits (.npy, shape (1,h,w) or (h,w)) from a previous prediction")
	multimask := fs.Bool("multimask", false, "return 3 masks per prompt instead of 1")
	outDir := fs.String("out", "", "output directory (created)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*image == "") == (*embPath == "") {
		return usageErr(fs, "give exactly one of -image and -embedding")
	}
	if *outDir == "" {
		return usageErr(fs, "-out is required")
	}
	var mask []float32
	if *maskIn != "" {
		v, shape, err := npy.ReadFile(*maskIn)
		if err != nil {
			return err
		}
		if len(shape) < 2 || len(shape) > 3 || (len(shape) == 3 && shape[0] != 1) {
			return fmt.Errorf("-mask-input %s: shape %v, want (1,h,w) or (h,w)", *maskIn, shape)
		}
		mask = v
	}
	prompts, err := parsePrompts(points, boxes, mask, *multimask)
	if err != nil {
		return usageErr(fs, "%v", err)
	}

	t0 := time.Now()
	m, err := mf.load(fs, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	p := sam.NewPredictor(m)
	var img *imgproc.RGB
	if *image != "" {
		if img, err = imgproc.Load(*image); err != nil {
			return err
		}
	}
	tLoad := time.Since(t0)
	ctx := context.Background()
	t1 := time.Now()
	if img != nil {
		err = p.SetImage(ctx, img)
	} else {
		var e *sam.Embedding
		if e, err = sam.LoadEmbedding(*embPath); err == nil {
			err = p.SetEmbedding(e)
		}
	}
	if err != nil {
		return err
	}
	tEnc := time.Since(t1)
	t2 := time.Now()
	res, err := p.PredictBatch(ctx, prompts)
	if err != nil {
		return err
	}
	tPred := time.Since(t2)

	t3 := time.Now()
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	e := p.Embedding()
	B, M, H, W, lr := len(res), len(res[0].Masks), e.OriginalH, e.OriginalW, res[0].LowRes
	var logits, low, iou []float32
	var records []maskRecord
	var overlayMasks []imgproc.Mask
	for b, r := range res {
		iou = append(iou, r.IoU...)
		for j := range r.Masks {
			logits = append(logits, r.Logits[j]...)
			low = append(low, r.LowResLogits[j]...)
			name := fmt.Sprintf("mask_%d.png", b*M+j)
			if err := imgproc.SaveMaskPNG(filepath.Join(*outDir, name), r.Masks[j].Pix, W, H); err != nil {
				return err
			}
			records = append(records, maskRecord{File: name, Prompt: b, Index: j, IoU: r.IoU[j], Area: r.Masks[j].Area()})
		}
		overlayMasks = append(overlayMasks, imgproc.Mask(r.Masks[r.Best()].Pix))
	}
	lead := []int{}
	if B > 1 {
		lead = []int{B}
	}
	shape := func(dims ...int) []int { return append(append([]int{}, lead...), dims...) }
	for _, f := range []struct {
		name  string
		data  []float32
		shape []int
	}{
		{"logits.npy", logits, shape(M, H, W)},
		{"low_res_logits.npy", low, shape(M, lr, lr)},
		{"iou.npy", iou, shape(M)},
	} {
		if err := npy.WriteFile(filepath.Join(*outDir, f.name), f.data, f.shape...); err != nil {
			return err
		}
	}
	if img != nil {
		ov, err := imgproc.Overlay(img, overlayMasks, 0.5)
		if err != nil {
			return err
		}
		if err := imgproc.SavePNG(filepath.Join(*outDir, "overlay.png"), ov); err != nil {
			return err
		}
	}
	tWrite := time.Since(t3)

	ious := make([][]float32, B)
	for b, r := range res {
		ious[b] = r.IoU
	}
	result := map[string]any{
		"image": *image, "embedding": *embPath,
		"original_size": []int{H, W}, "input_size": []int{e.InputH, e.InputW},
		"device":  m.Backend().Name(),
		"prompts": prompts, "masks": records, "iou": ious,
		"shapes": map[string][]int{
			"logits": shape(M, H, W), "low_res_logits": shape(M, lr, lr), "iou": shape(M),
		},
		"timings_ms": map[string]float64{"load": ms(tLoad), "encode": ms(tEnc), "predict": ms(tPred), "write": ms(tWrite)},
	}
	if err := writeJSONFile(filepath.Join(*outDir, "result.json"), result); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "sam predict: %d prompt(s), %d mask(s) each → %s (encode %s, predict %s)\n",
		B, M, *outDir, tEnc.Round(time.Millisecond), tPred.Round(time.Millisecond))
	return writeJSON(stdout, result)
}
