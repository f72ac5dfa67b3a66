package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
)

func init() {
	register(&command{
		name: "auto",
		args: "-checkpoint F [-config C] -image I|DIR [-image ...] [-points-per-side 32] [-pred-iou-thresh 0.88] [-stability-score-thresh 0.95] [...] [-overwrite] -out DIR",
		summary: "segment everything (SamAutomaticMaskGenerator): writes masks.json (records in the official order, COCO RLE by default) or, with " +
			"-output-mode binary_mask, <i>.png per mask and metadata.csv (as scripts/amg.py), plus overlay.png and run.json (what made them). " +
			"A directory or several -image flags write one folder per image and resume: an image whose folder holds the outputs of the same model, " +
			"options and image is skipped; outputs of another model, other options or another image are refused unless -overwrite",
		run: runAuto,
	})
}

// autoFlags registers SamAutomaticMaskGenerator's arguments under their
// official names ('-' for '_') with the official defaults and the ranges
// amg.Options checks.
func autoFlags(fs *flag.FlagSet) (*amg.Options, *string) {
	o := amg.DefaultOptions()
	fs.IntVar(&o.PointsPerSide, "points-per-side", o.PointsPerSide, fmt.Sprintf("points sampled along one side of the image (n² points in all), 1…%d", amg.MaxPointsPerSide))
	fs.IntVar(&o.PointsPerBatch, "points-per-batch", o.PointsPerBatch, fmt.Sprintf("points run through the mask decoder together, 1…%d", amg.MaxPointsPerBatch))
	fs.Float64Var(&o.PredIoUThresh, "pred-iou-thresh", o.PredIoUThresh, "keep masks whose predicted IoU is above this, 0…1 (0: off)")
	fs.Float64Var(&o.StabilityScoreThresh, "stability-score-thresh", o.StabilityScoreThresh, "keep masks whose stability score is at least this, 0…1 (0: off)")
	fs.Float64Var(&o.StabilityScoreOffset, "stability-score-offset", o.StabilityScoreOffset, "shift of the mask threshold for the stability score, 0…100")
	fs.Float64Var(&o.BoxNMSThresh, "box-nms-thresh", o.BoxNMSThresh, "box IoU above which NMS drops duplicate masks within a crop, 0…1")
	fs.IntVar(&o.CropNLayers, "crop-n-layers", o.CropNLayers, fmt.Sprintf("also run on layers 1..n of 2^i×2^i overlapping crops, 0…%d (4: 341 crops)", amg.MaxCropNLayers))
	fs.Float64Var(&o.CropNMSThresh, "crop-nms-thresh", o.CropNMSThresh, "box IoU above which NMS drops duplicate masks between crops, 0…1")
	fs.Float64Var(&o.CropOverlapRatio, "crop-overlap-ratio", o.CropOverlapRatio, "overlap of the layer-1 crops, as a fraction of the image's short side, 0 ≤ r < 1")
	fs.IntVar(&o.CropNPointsDownscaleFactor, "crop-n-points-downscale-factor", o.CropNPointsDownscaleFactor, "points per side in crop layer i = points-per-side / factor^i, 1…1024 (each layer keeps ≥ 1)")
	fs.IntVar(&o.MinMaskRegionArea, "min-mask-region-area", o.MinMaskRegionArea, "fill holes and remove islands smaller than this many pixels, 0…2^28 (0: off)")
	mode := fs.String("output-mode", string(amg.CocoRLE), "coco_rle or uncompressed_rle (masks.json), or binary_mask (<i>.png per mask and metadata.csv, as scripts/amg.py)")
	return &o, mode
}

// autoJob is one image to segment and where its outputs go.
type autoJob struct{ image, outDir string }

// autoJobs lists the images (files, and the images of directories; see
// expandImages). One image writes to out; several (a directory, or -image
// given more than once) write each to out/<base name> (the full file name
// where two images share a base name). batch reports the latter.
func autoJobs(images []string, out string) (jobs []autoJob, batch bool, err error) {
	files, fromDir, err := expandImages(images)
	if err != nil {
		return nil, false, err
	}
	if !fromDir && len(files) == 1 {
		return []autoJob{{files[0], out}}, false, nil
	}
	stem := func(p string) string { b := filepath.Base(p); return strings.TrimSuffix(b, filepath.Ext(b)) }
	stems := map[string]int{}
	for _, f := range files {
		stems[stem(f)]++
	}
	seen := map[string]string{}
	jobs = make([]autoJob, len(files))
	for i, f := range files {
		name := stem(f)
		if stems[name] > 1 {
			name = filepath.Base(f)
		}
		if prev, dup := seen[name]; dup {
			return nil, true, fmt.Errorf("%s and %s would both be written to %s", prev, f, filepath.Join(out, name))
		}
		seen[name] = f
		jobs[i] = autoJob{f, filepath.Join(out, name)}
	}
	return jobs, true, nil
}

// autoImageResult is one image's line in the summary.
type autoImageResult struct {
	Image       string             `json:"image"`
	Out         string             `json:"out"`
	Width       int                `json:"width,omitempty"`
	Height      int                `json:"height,omitempty"`
	Masks       int                `json:"masks"`
	Skipped     bool               `json:"skipped,omitempty"`
	Error       string             `json:"error,omitempty"`
	Interrupted bool               `json:"interrupted,omitempty"`
	TimeMS      float64            `json:"time_ms"`
	TimingsMS   map[string]float64 `json:"timings_ms,omitempty"`
}

// autoFixed are the files of an image's output folder with fixed names
// (besides the masks <i>.png of binary_mask).
var autoFixed = map[string]bool{"masks.json": true, "metadata.csv": true, "overlay.png": true, "run.json": true}

func runAuto(args []string, stdout, stderr io.Writer) error {
	c := commands["auto"]
	fs := newFlags(c, stderr)
	var mf modelFlags
	mf.register(fs)
	var images listFlag
	var outDir string
	fs.Var(&images, "image", "input image `FILE`, or a directory of images; repeatable (several images are processed like a directory)")
	onceVar(fs, &outDir, "out", "", "output `DIR` (created); per image DIR/<name>/ for a directory or several images")
	overwrite := fs.Bool("overwrite", false, "redo images whose output folder holds outputs of another model, other options or another image (otherwise refused); "+
		"also redoes those already done with this model and these options")
	var budget budgetFlag
	budget.register(fs)
	opts, mode := autoFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(images) == 0 || outDir == "" {
		return usageErr(fs, "-image and -out are required")
	}
	opts.OutputMode = amg.OutputMode(*mode)
	if *mode != string(amg.CocoRLE) && *mode != string(amg.UncompressedRLE) && *mode != string(amg.BinaryMask) {
		return usageErr(fs, "-output-mode %q: want coco_rle, uncompressed_rle or binary_mask", *mode)
	}
	if err := opts.Validate(); err != nil {
		return usageErr(fs, "%v", err)
	}
	if err := budget.resolve(fs); err != nil {
		return err
	}
	lopts, err := mf.loadOptions()
	if err != nil {
		return err
	}
	jobs, batch, err := autoJobs(images, outDir)
	if err != nil {
		return err
	}
	if err := checkWritable(outDir); err != nil {
		return err
	}

	ctx, stop := notifyContext(context.Background())
	defer stop()
	t0 := time.Now()
	m, err := mf.loadWith(lopts, mf.device, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	status := newStatusLine(stderr)
	o := *opts
	if o.OutputMode == amg.BinaryMask {
		// The PNGs are written from the RLE one mask at a time; the
		// generator need not hold every mask at full size.
		o.OutputMode = amg.UncompressedRLE
	}
	cur, total := 0, len(jobs)
	name := ""
	o.Progress = func(pr amg.Progress) {
		line := fmt.Sprintf("%s batch %d/%d, crop %d/%d, %d masks, %s", bar(pr.Batch, pr.Batches), pr.Batch, pr.Batches,
			min(pr.Crop+1, pr.Crops), pr.Crops, pr.Masks, pr.Elapsed.Round(100*time.Millisecond))
		if batch {
			line = fmt.Sprintf("%s %d/%d images | %s: %s", bar(cur, total), cur, total, name, line)
		}
		status.draw(line)
	}
	gen, err := amg.New(m, o)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	tLoad := time.Since(t0)
	rec := runRecord{Command: "auto", Model: m.Identity(), Options: recordOptions(*opts), Checkpoint: mf.checkpoint, Version: versionString()}

	// Resume: what is done with this model and these options is skipped;
	// outputs of another run are refused (before any work) unless
	// -overwrite.
	skip := make([]bool, len(jobs))
	if batch && !*overwrite {
		var conflicts []conflict
		for i, j := range jobs {
			done, why, err := autoDone(j, &rec)
			if err != nil {
				return err
			}
			if why != "" {
				conflicts = append(conflicts, conflict{j.outDir, why})
			}
			skip[i] = done
		}
		if len(conflicts) > 0 {
			return conflictError(conflicts, "image folder(s)")
		}
	}

	results := make([]autoImageResult, 0, len(jobs))
	var stats amg.Stats
	failed, skipped, doneN := 0, 0, 0
	tRun := time.Now()
	var stopErr error
	for i, j := range jobs {
		cur, name = i, filepath.Base(j.image)
		res := autoImageResult{Image: j.image, Out: j.outDir}
		if skip[i] {
			res.Skipped = true
			skipped++
			results = append(results, res)
			if !status.term {
				status.println("sam auto: %d/%d %s: skipped (done earlier with this model and these options)", i+1, total, j.image)
			}
			if afterItem != nil {
				afterItem(i + 1)
			}
			continue
		}
		if batch {
			status.draw(fmt.Sprintf("%s %d/%d images | %s", bar(i, total), i, total, name))
		}
		t := time.Now()
		st, n, err := autoOne(ctx, gen, m, j, *opts, rec, &budget)
		res.TimeMS = ms(time.Since(t))
		if err != nil {
			if ctx.Err() != nil {
				res.Interrupted = true
				results = append(results, res)
				stopErr = errInterrupted
				break
			}
			if !batch {
				status.done()
				return fmt.Errorf("%s: %w", j.image, err)
			}
			failed++
			res.Error = err.Error()
			status.println("sam auto: %d/%d %s: failed: %v", i+1, total, j.image, err)
		} else {
			doneN++
			res.Width, res.Height, res.Masks = st.ImageW, st.ImageH, n
			res.TimingsMS = stageTimings(st)
			addStats(&stats, st)
			if !status.term {
				status.println("sam auto: %d/%d %s: %d masks in %s → %s", i+1, total, j.image, n, time.Since(t).Round(time.Millisecond), j.outDir)
			}
		}
		results = append(results, res)
		if afterItem != nil {
			afterItem(i + 1)
		}
	}
	if batch && stopErr == nil {
		status.draw(fmt.Sprintf("%s %d/%d images", bar(total, total), total, total))
	}
	status.done()
	tGen := time.Since(tRun)

	timings := stageTimings(stats)
	timings["load"] = ms(tLoad)
	timings["run"] = ms(tGen)
	summary := map[string]any{
		"device":     m.Backend().Name(),
		"checkpoint": mf.checkpoint,
		"model":      m.Identity(),
		"options":    optionsJSON(*opts),
		"images":     results,
		"timings_ms": timings,
	}
	if stopErr != nil {
		summary["interrupted"] = true
		fmt.Fprintf(stderr, "sam auto: interrupted: %d of %d image(s) done, %d skipped, %d failed, %d not started; the same command resumes\n",
			doneN, total, skipped, failed, total-len(results))
	} else {
		fmt.Fprintf(stderr, "sam auto: %d image(s) (%d done, %d skipped, %d failed) in %s (load %s; encode %s, decode %s, masks %s, nms %s, small regions %s)\n",
			total, doneN, skipped, failed, tGen.Round(time.Millisecond), tLoad.Round(time.Millisecond), stats.Encode.Round(time.Millisecond),
			stats.Decode.Round(time.Millisecond), stats.Postprocess.Round(time.Millisecond), stats.NMS.Round(time.Millisecond),
			stats.SmallRegions.Round(time.Millisecond))
	}
	if err := writeJSON(stdout, summary); err != nil {
		return err
	}
	if stopErr != nil {
		return stopErr
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, total)
	}
	return nil
}

// autoDone reports whether job j's folder holds a complete result that
// rec's run would write (done), or what makes it another run's (why);
// neither for a folder without outputs.
func autoDone(j autoJob, rec *runRecord) (done bool, why string, err error) {
	old, err := readRecord(filepath.Join(j.outDir, "run.json"))
	if err != nil {
		return false, fmt.Sprintf("unreadable run.json (%v)", err), nil
	}
	if old == nil {
		for n := range autoFixed {
			if _, err := os.Stat(filepath.Join(j.outDir, n)); err == nil {
				return false, fmt.Sprintf("%s without a run.json (made by an older sam, or by a run that did not finish)", n), nil
			}
		}
		return false, "", nil
	}
	sum, err := fileSHA256(j.image)
	if err != nil {
		return false, "", err
	}
	r := *rec
	r.ImageSHA256 = sum
	if d := old.differs(&r); len(d) > 0 {
		return false, strings.Join(d, "; "), nil
	}
	for _, n := range old.Outputs {
		if _, err := os.Stat(filepath.Join(j.outDir, n)); err != nil {
			return false, "", nil // ours, but incomplete: redo
		}
	}
	return true, "", nil
}

// autoOne segments one image and writes its outputs: the masks
// (masks.json, or <i>.png and metadata.csv), overlay.png, then run.json
// last, whose presence means done. Every file goes through a temporary
// name; the earlier run.json is removed first, and files it listed that
// this run does not write are removed at the end.
func autoOne(ctx context.Context, g *amg.Generator, m *sam.Model, j autoJob, opts amg.Options, rec runRecord, budget *budgetFlag) (amg.Stats, int, error) {
	if err := os.MkdirAll(j.outDir, 0o755); err != nil {
		return amg.Stats{}, 0, err
	}
	marker := filepath.Join(j.outDir, "run.json")
	old, _ := readRecord(marker)
	if err := os.Remove(marker); err != nil && !os.IsNotExist(err) {
		return amg.Stats{}, 0, err
	}
	sum, err := fileSHA256(j.image)
	if err != nil {
		return amg.Stats{}, 0, err
	}
	img, err := imgproc.Load(j.image)
	if err != nil {
		return amg.Stats{}, 0, err
	}
	plan, err := g.Plan(img.W, img.H)
	if err != nil {
		return amg.Stats{}, 0, err
	}
	// Beyond the generator's own estimate: the weights, the image, the
	// overlay and one decoded mask.
	px := int64(img.W) * int64(img.H)
	need := plan.PeakBytes + m.Config.WeightBytes(4) + 7*px
	if err := budget.check(need, fmt.Sprintf("a %d×%d image with %d crops and %d points", img.W, img.H, plan.Crops, plan.Points),
		"use fewer -points-per-side, -crop-n-layers or -points-per-batch"); err != nil {
		return amg.Stats{}, 0, err
	}
	recs, err := g.Generate(ctx, img)
	if err != nil {
		return amg.Stats{}, 0, err
	}
	if err := ctx.Err(); err != nil {
		return amg.Stats{}, 0, err
	}
	written := map[string]bool{"run.json": true}
	write := func(name string, f func(io.Writer) error) error {
		written[name] = true
		return writeAtomic(filepath.Join(j.outDir, name), f)
	}
	if opts.OutputMode == amg.BinaryMask {
		for i := range recs {
			mk, err := recs[i].Mask()
			if err != nil {
				return amg.Stats{}, 0, err
			}
			if err := write(fmt.Sprintf("%d.png", i), func(w io.Writer) error { return imgproc.MaskPNG(w, mk.Pix, mk.W, mk.H) }); err != nil {
				return amg.Stats{}, 0, err
			}
		}
		if err := write("metadata.csv", func(w io.Writer) error { return amg.WriteMetadataCSV(w, recs) }); err != nil {
			return amg.Stats{}, 0, err
		}
	} else if err := write("masks.json", func(w io.Writer) error { return writeRecords(w, recs) }); err != nil {
		return amg.Stats{}, 0, err
	}
	if err := write("overlay.png", func(w io.Writer) error { return autoOverlay(w, img, recs) }); err != nil {
		return amg.Stats{}, 0, err
	}
	if old != nil {
		// What the earlier run wrote and this one did not (its 7.png when
		// this run has 5 masks, its masks.json after a switch to
		// binary_mask). Files the earlier run.json does not list are left
		// alone: -out may be a folder that holds other files too.
		for _, n := range old.Outputs {
			if !written[n] && n == filepath.Base(n) && (autoFixed[n] || numberedName(n, "", ".png")) {
				os.Remove(filepath.Join(j.outDir, n))
			}
		}
	}
	rec.Image, rec.ImageSHA256 = j.image, sum
	n := len(recs)
	rec.Masks = &n
	for name := range written {
		rec.Outputs = append(rec.Outputs, name)
	}
	sort.Strings(rec.Outputs)
	if err := writeJSONFile(marker, rec); err != nil {
		return amg.Stats{}, 0, err
	}
	return g.Stats(), len(recs), nil
}

// writeRecords writes the records as a JSON array, one record per line;
// '<' and '>' in COCO strings stay as they are.
func writeRecords(w io.Writer, recs []amg.Record) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	for i, r := range recs {
		if i > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n")
		b, err := r.MarshalJSON()
		if err != nil {
			return err
		}
		bw.Write(b)
	}
	bw.WriteString("\n]\n")
	return bw.Flush()
}

// backgroundShare is the share of the image above which a mask counts as
// background-sized in the overlay: outlined, not filled, so that it does
// not tint the whole picture.
const backgroundShare = 0.5

// autoOverlay draws the masks, largest first so that smaller ones lie on
// top, each filled at 45% (a smaller mask replaces the tint of a larger
// one under it rather than mixing with it) and outlined; a mask covering
// more than half the image is only outlined. One mask is decoded at a
// time.
func autoOverlay(w io.Writer, img *imgproc.RGB, recs []amg.Record) error {
	order := make([]int, len(recs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return recs[order[a]].Area > recs[order[b]].Area })
	p := newPainter(img, 0.45)
	big := int(backgroundShare * float64(img.W) * float64(img.H))
	for k, i := range order {
		r := &recs[i]
		mk, err := r.Mask()
		if err != nil {
			return err
		}
		if mk.W != img.W || mk.H != img.H {
			return errors.New("overlay: mask and image sizes differ")
		}
		b := r.BBox // x, y, w, h with inclusive corners
		p.mask(mk.Pix, imgproc.MaskColor(k), r.Area <= big, [4]int{b[0], b[1], b[0] + b[2], b[1] + b[3]})
	}
	return imgproc.WritePNG(w, p.out)
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

// recordOptions are the options that shape the masks, as run.json records
// them: all but points_per_batch, which only groups the decoder's work.
func recordOptions(o amg.Options) map[string]any {
	m := optionsJSON(o)
	delete(m, "points_per_batch")
	return m
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
