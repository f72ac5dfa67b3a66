package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
)

func init() {
	register(&command{
		name: "auto",
		args: "-checkpoint F [-config C] -image I|DIR [-points-per-side 32] [-pred-iou-thresh 0.88] [-stability-score-thresh 0.95] [...] -out DIR",
		summary: "segment everything (SamAutomaticMaskGenerator): writes masks.json (records in the official order, COCO RLE by default) and overlay.png; " +
			"with a directory of images, one output folder per image, resumable (images with a masks.json are skipped)",
		run: runAuto,
	})
}

// autoFlags registers SamAutomaticMaskGenerator's arguments under their
// official names ('-' for '_') with the official defaults.
func autoFlags(fs *flag.FlagSet) (*amg.Options, *string) {
	o := amg.DefaultOptions()
	fs.IntVar(&o.PointsPerSide, "points-per-side", o.PointsPerSide, "points sampled along one side of the image (n² points in all)")
	fs.IntVar(&o.PointsPerBatch, "points-per-batch", o.PointsPerBatch, "points run through the mask decoder together")
	fs.Float64Var(&o.PredIoUThresh, "pred-iou-thresh", o.PredIoUThresh, "keep masks whose predicted IoU is above this (0: off)")
	fs.Float64Var(&o.StabilityScoreThresh, "stability-score-thresh", o.StabilityScoreThresh, "keep masks whose stability score is at least this (0: off)")
	fs.Float64Var(&o.StabilityScoreOffset, "stability-score-offset", o.StabilityScoreOffset, "shift of the mask threshold for the stability score")
	fs.Float64Var(&o.BoxNMSThresh, "box-nms-thresh", o.BoxNMSThresh, "box IoU above which NMS drops duplicate masks within a crop")
	fs.IntVar(&o.CropNLayers, "crop-n-layers", o.CropNLayers, "also run on layers 1..n of 2^i×2^i overlapping crops")
	fs.Float64Var(&o.CropNMSThresh, "crop-nms-thresh", o.CropNMSThresh, "box IoU above which NMS drops duplicate masks between crops")
	fs.Float64Var(&o.CropOverlapRatio, "crop-overlap-ratio", o.CropOverlapRatio, "overlap of the layer-1 crops, as a fraction of the image's short side")
	fs.IntVar(&o.CropNPointsDownscaleFactor, "crop-n-points-downscale-factor", o.CropNPointsDownscaleFactor, "points per side in crop layer i = points-per-side / factor^i")
	fs.IntVar(&o.MinMaskRegionArea, "min-mask-region-area", o.MinMaskRegionArea, "fill holes and remove islands smaller than this many pixels (0: off)")
	mode := fs.String("output-mode", string(amg.CocoRLE), "segmentation format in masks.json: coco_rle, uncompressed_rle or binary_mask")
	return &o, mode
}

// autoJob is one image to segment and where its outputs go.
type autoJob struct{ image, outDir string }

// autoJobs lists the images: one file, or the images of a directory (see
// expandImages), each with its output folder DIR/<base name> (the full file
// name where two images share a base name).
func autoJobs(image, out string) ([]autoJob, bool, error) {
	files, isDir, err := expandImages([]string{image})
	if err != nil {
		return nil, isDir, err
	}
	if !isDir {
		return []autoJob{{image, out}}, false, nil
	}
	stem := func(p string) string { b := filepath.Base(p); return strings.TrimSuffix(b, filepath.Ext(b)) }
	stems := map[string]int{}
	for _, f := range files {
		stems[stem(f)]++
	}
	jobs := make([]autoJob, len(files))
	for i, f := range files {
		name := stem(f)
		if stems[name] > 1 {
			name = filepath.Base(f)
		}
		jobs[i] = autoJob{f, filepath.Join(out, name)}
	}
	return jobs, true, nil
}

// autoImageResult is one image's line in the summary.
type autoImageResult struct {
	Image     string             `json:"image"`
	Out       string             `json:"out"`
	Width     int                `json:"width,omitempty"`
	Height    int                `json:"height,omitempty"`
	Masks     int                `json:"masks"`
	Skipped   bool               `json:"skipped,omitempty"`
	Error     string             `json:"error,omitempty"`
	TimeMS    float64            `json:"time_ms"`
	TimingsMS map[string]float64 `json:"timings_ms,omitempty"`
}

func runAuto(args []string, stdout, stderr io.Writer) error {
	c := commands["auto"]
	fs := newFlags(c, stderr)
	var mf modelFlags
	mf.register(fs)
	image := fs.String("image", "", "input image, or a directory of images")
	outDir := fs.String("out", "", "output directory (created); per image DIR/<name>/ for a directory of images")
	opts, mode := autoFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *image == "" || *outDir == "" {
		return usageErr(fs, "-image and -out are required")
	}
	opts.OutputMode = amg.OutputMode(*mode)
	if *mode != string(amg.CocoRLE) && *mode != string(amg.UncompressedRLE) && *mode != string(amg.BinaryMask) {
		return usageErr(fs, "-output-mode %q: want coco_rle, uncompressed_rle or binary_mask", *mode)
	}
	if err := opts.Validate(); err != nil {
		return usageErr(fs, "%v", err)
	}
	jobs, isDir, err := autoJobs(*image, *outDir)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	t0 := time.Now()
	m, err := mf.load(fs, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	bar := &progressBar{w: stderr, total: len(jobs), dir: isDir}
	o := *opts
	o.Progress = bar.batch
	gen, err := amg.New(m, o)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	tLoad := time.Since(t0)

	results := make([]autoImageResult, 0, len(jobs))
	var total amg.Stats
	failed := 0
	tRun := time.Now()
	for i, j := range jobs {
		res := autoImageResult{Image: j.image, Out: j.outDir}
		bar.image(i, filepath.Base(j.image))
		if isDir {
			if _, err := os.Stat(filepath.Join(j.outDir, "masks.json")); err == nil {
				res.Skipped = true
				results = append(results, res)
				continue
			}
		}
		t := time.Now()
		st, n, err := autoOne(ctx, gen, j)
		res.TimeMS = ms(time.Since(t))
		if err != nil {
			if !isDir || ctx.Err() != nil {
				bar.done()
				return fmt.Errorf("%s: %w", j.image, err)
			}
			failed++
			res.Error = err.Error()
			fmt.Fprintf(stderr, "\nsam auto: %s: %v\n", j.image, err)
		} else {
			res.Width, res.Height, res.Masks = st.ImageW, st.ImageH, n
			res.TimingsMS = stageTimings(st)
			addStats(&total, st)
		}
		results = append(results, res)
	}
	bar.image(len(jobs), "")
	bar.done()
	tGen := time.Since(tRun)

	timings := stageTimings(total)
	timings["load"] = ms(tLoad)
	timings["run"] = ms(tGen)
	summary := map[string]any{
		"device":     m.Backend().Name(),
		"checkpoint": mf.checkpoint,
		"options":    optionsJSON(*opts),
		"images":     results,
		"timings_ms": timings,
	}
	fmt.Fprintf(stderr, "sam auto: %d image(s) in %s (load %s; encode %s, decode %s, masks %s, nms %s, small regions %s)\n",
		len(jobs), tGen.Round(time.Millisecond), tLoad.Round(time.Millisecond), total.Encode.Round(time.Millisecond),
		total.Decode.Round(time.Millisecond), total.Postprocess.Round(time.Millisecond), total.NMS.Round(time.Millisecond),
		total.SmallRegions.Round(time.Millisecond))
	if err := writeJSON(stdout, summary); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(jobs))
	}
	return nil
}

// autoOne segments one image and writes its outputs: overlay.png, then
// masks.json (last, through a rename, so that its presence means done).
func autoOne(ctx context.Context, g *amg.Generator, j autoJob) (amg.Stats, int, error) {
	img, err := imgproc.Load(j.image)
	if err != nil {
		return amg.Stats{}, 0, err
	}
	recs, err := g.Generate(ctx, img)
	if err != nil {
		return amg.Stats{}, 0, err
	}
	if err := os.MkdirAll(j.outDir, 0o755); err != nil {
		return amg.Stats{}, 0, err
	}
	// Overlay: largest masks first so that small ones stay visible.
	order := make([]int, len(recs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return recs[order[a]].Area > recs[order[b]].Area })
	masks := make([]imgproc.Mask, len(recs))
	for k, i := range order {
		mk, err := recs[i].Mask()
		if err != nil {
			return amg.Stats{}, 0, err
		}
		masks[k] = mk.Pix
	}
	ov, err := imgproc.Overlay(img, masks, 0.45)
	if err != nil {
		return amg.Stats{}, 0, err
	}
	if err := imgproc.SavePNG(filepath.Join(j.outDir, "overlay.png"), ov); err != nil {
		return amg.Stats{}, 0, err
	}
	// One record per line; '<' and '>' in COCO strings stay as they are.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteString("[")
	for i, r := range recs {
		if i > 0 {
			buf.WriteString(",")
		}
		buf.WriteString("\n")
		if err := enc.Encode(r); err != nil {
			return amg.Stats{}, 0, err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
	}
	buf.WriteString("\n]\n")
	final := filepath.Join(j.outDir, "masks.json")
	tmp := final + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return amg.Stats{}, 0, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return amg.Stats{}, 0, err
	}
	return g.Stats(), len(recs), nil
}

func stageTimings(s amg.Stats) map[string]float64 {
	return map[string]float64{
		"generate": ms(s.Total), "encode": ms(s.Encode), "decode": ms(s.Decode), "masks": ms(s.Postprocess),
		"nms": ms(s.NMS), "small_regions": ms(s.SmallRegions), "output": ms(s.Output),
	}
}

func addStats(t *amg.Stats, s amg.Stats) {
	t.Total += s.Total
	t.Encode += s.Encode
	t.Decode += s.Decode
	t.Postprocess += s.Postprocess
	t.NMS += s.NMS
	t.SmallRegions += s.SmallRegions
	t.Output += s.Output
}

// optionsJSON lists the options under the official argument names.
func optionsJSON(o amg.Options) map[string]any {
	return map[string]any{
		"points_per_side": o.PointsPerSide, "points_per_batch": o.PointsPerBatch,
		"pred_iou_thresh": o.PredIoUThresh, "stability_score_thresh": o.StabilityScoreThresh,
		"stability_score_offset": o.StabilityScoreOffset, "box_nms_thresh": o.BoxNMSThresh,
		"crop_n_layers": o.CropNLayers, "crop_nms_thresh": o.CropNMSThresh,
		"crop_overlap_ratio": o.CropOverlapRatio, "crop_n_points_downscale_factor": o.CropNPointsDownscaleFactor,
		"min_mask_region_area": o.MinMaskRegionArea, "output_mode": o.OutputMode,
	}
}

// progressBar draws one status line on stderr: images done (directory
// mode) and the current image's batches.
type progressBar struct {
	w          io.Writer
	total, cur int
	dir        bool
	name       string
	drawn      bool
}

func (p *progressBar) image(i int, name string) {
	p.cur, p.name = i, name
	if p.dir {
		p.draw(fmt.Sprintf("%s %d/%d images", bar(i, p.total), i, p.total))
	}
}

func (p *progressBar) batch(pr amg.Progress) {
	line := fmt.Sprintf("%s batch %d/%d, crop %d/%d, %d masks, %s", bar(pr.Batch, pr.Batches), pr.Batch, pr.Batches,
		min(pr.Crop+1, pr.Crops), pr.Crops, pr.Masks, pr.Elapsed.Round(100*time.Millisecond))
	if p.dir {
		line = fmt.Sprintf("%s %d/%d images | %s: %s", bar(p.cur, p.total), p.cur, p.total, p.name, line)
	}
	p.draw(line)
}

func (p *progressBar) draw(line string) {
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.drawn = true
}

func (p *progressBar) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// bar renders done/total as [#####.....].
func bar(done, total int) string {
	const width = 20
	n := 0
	if total > 0 {
		n = min(width, done*width/total)
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
