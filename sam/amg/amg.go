// Package amg is SAM's automatic mask generator ("segment everything"),
// segment_anything/automatic_mask_generator.py with utils/amg.py, number
// for number: prompt the model with a grid of points over the image (and
// optionally over overlapping crops of it), keep the masks the model is
// confident about and that are stable under a shift of the threshold,
// remove duplicates with box NMS, and return the masks as RLE records.
//
// Files: amg.go (Options, Generator, Record), grid.go (point grids, crop
// boxes), nms.go (torchvision's batched_nms), rle.go (uncompressed and
// COCO-compressed RLE), regions.go (remove_small_regions).
package amg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/imgproc"
)

// OutputMode is the form Record.Segmentation takes.
type OutputMode string

const (
	BinaryMask      OutputMode = "binary_mask"      // sam.Mask
	UncompressedRLE OutputMode = "uncompressed_rle" // RLE
	CocoRLE         OutputMode = "coco_rle"         // COCORLE
)

// ErrOptions marks invalid generator options.
var ErrOptions = errors.New("invalid automatic mask generator options")

// Options are SamAutomaticMaskGenerator's arguments (same names in Go
// case, same meaning); DefaultOptions has the official defaults. Since a
// zero threshold is meaningful (it turns a filter off), start from
// DefaultOptions rather than a zero Options.
type Options struct {
	// PointsPerSide is the grid size n (n² points on the image); 0 when
	// PointGrids is given. Exactly one of the two must be set.
	PointsPerSide int
	// PointGrids are explicit point grids, normalised to [0,1]² (x, y),
	// one per crop layer 0..CropNLayers.
	PointGrids [][][2]float64
	// PointsPerBatch points go through the decoder together.
	PointsPerBatch int
	// PredIoUThresh keeps masks with predicted IoU > it (off when ≤ 0).
	PredIoUThresh float64
	// StabilityScoreThresh keeps masks with stability score ≥ it (off
	// when ≤ 0); the score is the IoU of the masks thresholded at
	// mask_threshold ± StabilityScoreOffset.
	StabilityScoreThresh float64
	StabilityScoreOffset float64
	// BoxNMSThresh is the box IoU above which NMS drops a duplicate
	// within a crop.
	BoxNMSThresh float64
	// CropNLayers > 0 also runs layer i = 1..CropNLayers of 2^i × 2^i
	// overlapping crops.
	CropNLayers int
	// CropNMSThresh is the box IoU above which NMS drops a duplicate
	// between crops.
	CropNMSThresh float64
	// CropOverlapRatio is the overlap of layer-1 crops as a fraction of
	// the image's short side (halved with each further layer).
	CropOverlapRatio float64
	// CropNPointsDownscaleFactor divides PointsPerSide by its i-th power
	// in layer i.
	CropNPointsDownscaleFactor int
	// MinMaskRegionArea > 0 fills holes and removes islands smaller than
	// this many pixels from every mask, then runs NMS again.
	MinMaskRegionArea int
	// OutputMode is the form of Record.Segmentation.
	OutputMode OutputMode

	// Progress, when set, is called (on the Generate goroutine) after
	// every batch of points.
	Progress func(Progress)
	// MaxLogitBytes bounds the full-resolution logits held at once: the
	// masks of a batch that pass the predicted-IoU filter are upscaled in
	// chunks of this many bytes of float32 logits (but at least
	// min(GOMAXPROCS, 4) masks, so that large images still use the cores);
	// 0 means 16 MiB. Larger chunks do not run faster: the upscaled planes
	// are processed once and then dropped.
	MaxLogitBytes int
}

// DefaultOptions returns SamAutomaticMaskGenerator's defaults.
func DefaultOptions() Options {
	return Options{
		PointsPerSide:              32,
		PointsPerBatch:             64,
		PredIoUThresh:              0.88,
		StabilityScoreThresh:       0.95,
		StabilityScoreOffset:       1.0,
		BoxNMSThresh:               0.7,
		CropNLayers:                0,
		CropNMSThresh:              0.7,
		CropOverlapRatio:           512.0 / 1500.0,
		CropNPointsDownscaleFactor: 1,
		MinMaskRegionArea:          0,
		OutputMode:                 BinaryMask,
	}
}

// Progress reports how far Generate is.
type Progress struct {
	Crop, Crops     int           // crops finished, of all crops
	Batch, Batches  int           // batches of points finished, of all batches over all crops
	Masks           int           // masks kept so far (after the per-batch filters, before NMS)
	Elapsed         time.Duration // since Generate started
	CurrentCropSize [2]int        // W, H of the crop being processed
}

// Record is one mask as SamAutomaticMaskGenerator.generate returns it.
type Record struct {
	// Segmentation is the mask in Options.OutputMode's form: RLE,
	// COCORLE, or sam.Mask.
	Segmentation any
	// RLE is the mask as uncompressed RLE, whatever the output mode.
	RLE RLE
	// Area is the number of mask pixels.
	Area int
	// BBox is the mask's box [x, y, w, h] with SAM's inclusive corners
	// (w = x1 − x0, so a one-pixel mask has w = 0).
	BBox [4]int
	// PredictedIoU is the model's quality estimate for the mask.
	PredictedIoU float32
	// PointCoords is the prompt point (original-image pixels).
	PointCoords [][2]float64
	// StabilityScore is the mask's stability score.
	StabilityScore float32
	// CropBox is the crop [x, y, w, h] the mask came from.
	CropBox [4]int
}

// Mask returns the record's mask.
func (r *Record) Mask() (sam.Mask, error) {
	pix, err := r.RLE.Decode()
	if err != nil {
		return sam.Mask{}, err
	}
	return sam.Mask{W: r.RLE.Size[1], H: r.RLE.Size[0], Pix: pix}, nil
}

// MarshalJSON writes the record with the official keys, in the official
// order; float32 scores are written as the float64 of the same value, as
// Python's json writes tensor.item(). A binary mask is written as rows of
// booleans (ndarray.tolist()). It does not escape '<' and '>' (which COCO
// strings contain); an encoder that embeds it must not either
// (json.Encoder.SetEscapeHTML(false)), or the strings come out as \u003c.
func (r Record) MarshalJSON() ([]byte, error) {
	seg := r.Segmentation
	if m, ok := seg.(sam.Mask); ok {
		seg = maskRows(m)
	}
	if seg == nil {
		seg = r.RLE
	}
	pts := make([][2]pyFloat, len(r.PointCoords))
	for i, p := range r.PointCoords {
		pts[i] = [2]pyFloat{pyFloat(p[0]), pyFloat(p[1])}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // COCO strings hold '<' and '>': keep them as Python's json writes them
	err := enc.Encode(struct {
		Segmentation   any          `json:"segmentation"`
		Area           int          `json:"area"`
		BBox           [4]int       `json:"bbox"`
		PredictedIoU   jsonFloat32  `json:"predicted_iou"`
		PointCoords    [][2]pyFloat `json:"point_coords"`
		StabilityScore jsonFloat32  `json:"stability_score"`
		CropBox        [4]int       `json:"crop_box"`
	}{seg, r.Area, r.BBox, jsonFloat32(r.PredictedIoU), pts, jsonFloat32(r.StabilityScore), r.CropBox})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

type jsonFloat32 float32

func (f jsonFloat32) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// pyFloat is a float64 written as Python's repr writes it: integral
// values keep a ".0" (580.0, not 580).
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e16 {
		return append(strconv.AppendFloat(nil, v, 'f', -1, 64), ".0"...), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

type maskRows sam.Mask

func (m maskRows) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, m.H*(m.W*6+2)+2)
	b = append(b, '[')
	for y := range m.H {
		if y > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for x := range m.W {
			if x > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendBool(b, m.Pix[y*m.W+x])
		}
		b = append(b, ']')
	}
	return append(b, ']'), nil
}

// Stats are the last Generate call's counts and timings.
type Stats struct {
	Crops, Points   int
	DecoderMasks    int // masks out of the decoder (points × 3)
	FilteredMasks   int // after the predicted-IoU, stability and crop-edge filters
	CropNMSMasks    int // after NMS within each crop
	Masks           int // records returned
	Encode          time.Duration
	Decode          time.Duration
	Postprocess     time.Duration // upscaling, stability, boxes, RLE
	NMS             time.Duration
	SmallRegions    time.Duration
	Output          time.Duration // segmentation encoding
	Total           time.Duration
	ImageW, ImageH  int
	UpscaleChunkMax int // most masks upscaled at once
}

// Generator is SamAutomaticMaskGenerator. It holds a Predictor and is
// not safe for concurrent use; create one per goroutine (they can share
// the Model).
type Generator struct {
	pred  *sam.Predictor
	opts  Options
	grids [][][2]float64
	stats Stats
}

// New validates opts and returns a generator for m.
func New(m *sam.Model, opts Options) (*Generator, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: no model", ErrOptions)
	}
	if !m.HasImageEncoder() {
		return nil, fmt.Errorf("automatic mask generation needs an image encoder: %w", sam.ErrNoEncoder)
	}
	grids, err := opts.grids()
	if err != nil {
		return nil, err
	}
	return &Generator{pred: sam.NewPredictor(m), opts: opts, grids: grids}, nil
}

// Options returns the generator's options.
func (g *Generator) Options() Options { return g.opts }

// Stats returns the last Generate call's counts and timings.
func (g *Generator) Stats() Stats { return g.stats }

// Validate checks the options as New does (without a model).
func (o Options) Validate() error {
	_, err := o.grids()
	return err
}

// grids validates the options and returns the per-layer point grids.
func (o *Options) grids() ([][][2]float64, error) {
	switch {
	case (o.PointsPerSide > 0) == (o.PointGrids != nil):
		return nil, fmt.Errorf("%w: exactly one of points_per_side and point_grids must be given", ErrOptions)
	case o.PointsPerSide < 0:
		return nil, fmt.Errorf("%w: points_per_side %d", ErrOptions, o.PointsPerSide)
	case o.PointsPerBatch < 1:
		return nil, fmt.Errorf("%w: points_per_batch %d < 1", ErrOptions, o.PointsPerBatch)
	case o.CropNLayers < 0:
		return nil, fmt.Errorf("%w: crop_n_layers %d < 0", ErrOptions, o.CropNLayers)
	case o.MinMaskRegionArea < 0:
		return nil, fmt.Errorf("%w: min_mask_region_area %d < 0", ErrOptions, o.MinMaskRegionArea)
	case o.MaxLogitBytes < 0:
		return nil, fmt.Errorf("%w: max logit bytes %d < 0", ErrOptions, o.MaxLogitBytes)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"pred_iou_thresh", o.PredIoUThresh}, {"stability_score_thresh", o.StabilityScoreThresh},
		{"stability_score_offset", o.StabilityScoreOffset}, {"box_nms_thresh", o.BoxNMSThresh},
		{"crop_nms_thresh", o.CropNMSThresh}, {"crop_overlap_ratio", o.CropOverlapRatio},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return nil, fmt.Errorf("%w: %s is %v", ErrOptions, f.name, f.v)
		}
	}
	switch o.OutputMode {
	case BinaryMask, UncompressedRLE, CocoRLE:
	default:
		return nil, fmt.Errorf("%w: unknown output_mode %q (binary_mask, uncompressed_rle or coco_rle)", ErrOptions, o.OutputMode)
	}
	if o.PointGrids == nil {
		return BuildAllLayerPointGrids(o.PointsPerSide, o.CropNLayers, o.CropNPointsDownscaleFactor)
	}
	if len(o.PointGrids) < o.CropNLayers+1 {
		return nil, fmt.Errorf("%w: %d point grids for %d crop layers", ErrOptions, len(o.PointGrids), o.CropNLayers+1)
	}
	for i, gr := range o.PointGrids[:o.CropNLayers+1] {
		if len(gr) == 0 {
			return nil, fmt.Errorf("%w: point grid %d is empty", ErrOptions, i)
		}
		for _, p := range gr {
			if !(p[0] >= 0 && p[0] <= 1 && p[1] >= 0 && p[1] <= 1) {
				return nil, fmt.Errorf("%w: point grid %d has point (%g, %g) outside [0,1]²", ErrOptions, i, p[0], p[1])
			}
		}
	}
	return o.PointGrids, nil
}

// defaultMaxLogitBytes is Options.MaxLogitBytes' default. Measured on the
// demo scene (640×480, 16² points, 2 cores): 256 MiB chunks peak at 740 MB
// RSS, 8 MiB chunks at 130 MB, at the same speed.
const defaultMaxLogitBytes = 16 << 20

// maskData is one mask on its way through the generator (a row of
// MaskData), in original-image coordinates.
type maskData struct {
	rle   RLE
	box   [4]int // inclusive x0, y0, x1, y1
	iou   float32
	stab  float32
	point [2]float64
	crop  [4]int // x0, y0, x1, y1 (exclusive)
}

// Generate segments everything in img (RGB) and returns the records in the
// official order (the order after the last NMS). Where the official
// generator raises because no mask survives in any crop (crop_n_layers ≥ 1:
// an IndexError), it returns no records and no error.
func (g *Generator) Generate(ctx context.Context, img *imgproc.RGB) ([]Record, error) {
	if img == nil || img.W <= 0 || img.H <= 0 || len(img.Pix) != img.W*img.H*3 {
		return nil, fmt.Errorf("amg: empty or malformed image")
	}
	t0 := time.Now()
	g.stats = Stats{ImageW: img.W, ImageH: img.H}
	st := &g.stats
	crops := GenerateCropBoxes(img.H, img.W, g.opts.CropNLayers, g.opts.CropOverlapRatio)
	st.Crops = len(crops)
	for _, c := range crops {
		if c.Box[2] <= c.Box[0] || c.Box[3] <= c.Box[1] {
			// The official generator fails on it too (an empty crop).
			return nil, fmt.Errorf("%w: crop layer %d of a %d×%d image has an empty crop %v; use fewer crop layers",
				ErrOptions, c.Layer, img.W, img.H, c.Box)
		}
	}
	pr := Progress{Crops: len(crops)}
	for _, c := range crops {
		n := len(g.grids[c.Layer])
		pr.Batches += (n + g.opts.PointsPerBatch - 1) / g.opts.PointsPerBatch
	}
	defer g.pred.Reset()

	var data []maskData
	for ci, c := range crops {
		cd, err := g.processCrop(ctx, img, c, &pr, t0)
		if err != nil {
			return nil, err
		}
		data = append(data, cd...)
		pr.Crop = ci + 1
	}
	st.CropNMSMasks = len(data)

	// Remove duplicates between crops, preferring masks from smaller crops.
	if len(crops) > 1 {
		if len(data) == 0 {
			st.Total = time.Since(t0)
			return []Record{}, nil // the official generator raises IndexError here
		}
		t := time.Now()
		boxes, scores := make([][4]int, len(data)), make([]float32, len(data))
		for i, d := range data {
			boxes[i], scores[i] = d.box, cropScore(d.crop)
		}
		data = pick(data, NMS(boxes, scores, g.opts.CropNMSThresh))
		st.NMS += time.Since(t)
	}

	if g.opts.MinMaskRegionArea > 0 && len(data) > 0 {
		t := time.Now()
		var err error
		data, err = postprocessSmallRegions(ctx, data, float64(g.opts.MinMaskRegionArea), max(g.opts.BoxNMSThresh, g.opts.CropNMSThresh))
		if err != nil {
			return nil, err
		}
		st.SmallRegions = time.Since(t)
	}

	t := time.Now()
	recs := make([]Record, len(data))
	parallelFor(len(data), func(_, i int) {
		d := &data[i]
		r := Record{
			RLE:            d.rle,
			Area:           d.rle.Area(),
			BBox:           xywh(d.box),
			PredictedIoU:   d.iou,
			PointCoords:    [][2]float64{d.point},
			StabilityScore: d.stab,
			CropBox:        xywh(d.crop),
		}
		switch g.opts.OutputMode {
		case CocoRLE:
			r.Segmentation = d.rle.COCO()
		case BinaryMask:
			pix := make([]bool, img.W*img.H)
			d.rle.decodeInto(pix)
			r.Segmentation = sam.Mask{W: img.W, H: img.H, Pix: pix}
		default:
			r.Segmentation = d.rle
		}
		recs[i] = r
	})
	st.Output = time.Since(t)
	st.Masks = len(recs)
	st.Total = time.Since(t0)
	return recs, nil
}

// xywh is box_xyxy_to_xywh.
func xywh(b [4]int) [4]int { return [4]int{b[0], b[1], b[2] - b[0], b[3] - b[1]} }

// pick returns data[keep[0]], data[keep[1]], ...
func pick(data []maskData, keep []int) []maskData {
	out := make([]maskData, len(keep))
	for i, k := range keep {
		out[i] = data[k]
	}
	return out
}

// cropRGB returns the pixels of img inside b = [x0, y0, x1, y1).
func cropRGB(img *imgproc.RGB, b [4]int) *imgproc.RGB {
	if b == [4]int{0, 0, img.W, img.H} {
		return img
	}
	w, h := b[2]-b[0], b[3]-b[1]
	out := imgproc.NewRGB(w, h)
	for y := range h {
		src := ((b[1]+y)*img.W + b[0]) * 3
		copy(out.Pix[y*w*3:(y+1)*w*3], img.Pix[src:src+w*3])
	}
	return out
}

// processCrop is _process_crop: encode the crop, run its point grid in
// batches, NMS within the crop; the masks come back in image coordinates.
func (g *Generator) processCrop(ctx context.Context, img *imgproc.RGB, c CropBox, pr *Progress, t0 time.Time) ([]maskData, error) {
	st := &g.stats
	x0, y0, x1, y1 := c.Box[0], c.Box[1], c.Box[2], c.Box[3]
	cw, ch := x1-x0, y1-y0
	t := time.Now()
	if err := g.pred.SetImage(ctx, cropRGB(img, c.Box)); err != nil {
		return nil, fmt.Errorf("crop %v: %w", c.Box, err)
	}
	st.Encode += time.Since(t)
	pr.CurrentCropSize = [2]int{cw, ch}

	// points_for_image = grid · (crop W, crop H), float64.
	grid := g.grids[c.Layer]
	pts := make([][2]float64, len(grid))
	for i, p := range grid {
		pts[i] = [2]float64{p[0] * float64(cw), p[1] * float64(ch)}
	}
	st.Points += len(pts)
	var data []maskData
	for start := 0; start < len(pts); start += g.opts.PointsPerBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		bd, err := g.processBatch(ctx, pts[start:min(start+g.opts.PointsPerBatch, len(pts))], c.Box, img.W, img.H)
		if err != nil {
			return nil, fmt.Errorf("crop %v: %w", c.Box, err)
		}
		data = append(data, bd...)
		pr.Batch++
		pr.Masks += len(bd)
		if g.opts.Progress != nil {
			pr.Elapsed = time.Since(t0)
			g.opts.Progress(*pr)
		}
	}
	g.pred.Reset()

	// Remove duplicates within this crop.
	t = time.Now()
	boxes, scores := make([][4]int, len(data)), make([]float32, len(data))
	for i, d := range data {
		boxes[i], scores[i] = d.box, d.iou
	}
	data = pick(data, NMS(boxes, scores, g.opts.BoxNMSThresh))
	st.NMS += time.Since(t)
	return data, nil
}

// processBatch is _process_batch: decode one batch of points (multimask),
// filter by predicted IoU, upscale the survivors' logits to the crop in
// chunks of bounded size, and turn each into a mask (stability filter, box,
// crop-edge filter, RLE) in parallel.
func (g *Generator) processBatch(ctx context.Context, pts [][2]float64, crop [4]int, W, H int) ([]maskData, error) {
	st := &g.stats
	t := time.Now()
	res, err := g.pred.PredictPoints(ctx, pts, true)
	if err != nil {
		return nil, err
	}
	st.Decode += time.Since(t)
	t = time.Now()
	defer func() { st.Postprocess += time.Since(t) }()
	M, lr := res.M, res.LowRes
	st.DecoderMasks += res.B * M

	// Filter by predicted IoU (strict >, in float32 as torch compares a
	// float32 tensor with a Python float).
	var idx []int
	predT := float32(g.opts.PredIoUThresh)
	for k := range res.B * M {
		if g.opts.PredIoUThresh <= 0 || res.IoU[k] > predT {
			idx = append(idx, k)
		}
	}
	cw, ch := crop[2]-crop[0], crop[3]-crop[1]
	budget := g.opts.MaxLogitBytes
	if budget == 0 {
		budget = defaultMaxLogitBytes
	}
	chunk := max(budget/(cw*ch*4), min(runtime.GOMAXPROCS(0), 4), 1)
	mthr := g.pred.Model().Config.MaskThreshold
	th := maskThresholds{
		mask:     mthr,
		hi:       float32(float64(mthr) + g.opts.StabilityScoreOffset),
		lo:       float32(float64(mthr) - g.opts.StabilityScoreOffset),
		stab:     float32(g.opts.StabilityScoreThresh),
		stabSkip: g.opts.StabilityScoreThresh <= 0,
	}
	var out []maskData
	for s := 0; s < len(idx); s += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sel := idx[s:min(s+chunk, len(idx))]
		st.UpscaleChunkMax = max(st.UpscaleChunkMax, len(sel))
		low := make([]float32, len(sel)*lr*lr)
		for j, k := range sel {
			copy(low[j*lr*lr:(j+1)*lr*lr], res.Logits[k*lr*lr:(k+1)*lr*lr])
		}
		up, err := g.pred.UpscaleLogits(low, len(sel)) // (n, ch, cw)
		if err != nil {
			return nil, err
		}
		masks := make([]maskData, len(sel))
		ok := make([]bool, len(sel))
		parallelFor(len(sel), func(_, j int) {
			k := sel[j]
			p := pts[k/M]
			masks[j], ok[j] = th.toMask(up[j*cw*ch:(j+1)*cw*ch], crop, W, H)
			masks[j].iou = res.IoU[k]
			masks[j].point = [2]float64{p[0] + float64(crop[0]), p[1] + float64(crop[1])}
			masks[j].crop = crop
		})
		for j := range sel {
			if ok[j] {
				out = append(out, masks[j])
			}
		}
	}
	st.FilteredMasks += len(out)
	return out, nil
}

// maskThresholds are the per-mask filters' thresholds, as float32 values
// (torch compares float32 tensors with Python floats in float32).
type maskThresholds struct {
	mask, hi, lo, stab float32
	stabSkip           bool
}

// toMask turns one crop-resolution logit plane (ch×cw, row-major) into a
// mask: stability score (count(logits > hi) / count(logits > lo) in
// float32, NaN for 0/0, which fails the filter), the stability filter,
// the inclusive box of logits > mask threshold, the crop-edge filter, and
// the RLE of the mask placed in the W×H image. ok is false when a filter
// drops the mask.
func (th *maskThresholds) toMask(logits []float32, crop [4]int, W, H int) (d maskData, ok bool) {
	var inter, union int32
	for _, v := range logits {
		if v > th.hi {
			inter++
		}
		if v > th.lo {
			union++
		}
	}
	d.stab = float32(inter) / float32(union)
	if !th.stabSkip && !(d.stab >= th.stab) {
		return d, false
	}
	cw, ch := crop[2]-crop[0], crop[3]-crop[1]
	bin := make([]bool, cw*ch)
	xmin, ymin, xmax, ymax := cw, ch, -1, -1
	for y := range ch {
		row := logits[y*cw : (y+1)*cw]
		brow := bin[y*cw : (y+1)*cw]
		for x, v := range row {
			if v > th.mask {
				brow[x] = true
				xmin, xmax = min(xmin, x), max(xmax, x)
				ymin, ymax = min(ymin, y), max(ymax, y)
			}
		}
	}
	var box [4]int
	if xmax >= 0 {
		box = [4]int{xmin, ymin, xmax, ymax}
	}
	box = [4]int{box[0] + crop[0], box[1] + crop[1], box[2] + crop[0], box[3] + crop[1]}
	if nearCropEdge(box, crop, [4]int{0, 0, W, H}) {
		return d, false
	}
	d.box = box
	d.rle = encodeCrop(bin, cw, ch, crop[0], crop[1], W, H)
	return d, true
}

// nearCropEdge is is_box_near_crop_edge (atol 20): some side of the box
// (image coordinates) lies within 20 px of the crop's side but not within
// 20 px of the image's.
func nearCropEdge(box, crop, img [4]int) bool {
	near := func(a, b int) bool { return abs(a-b) <= 20 }
	for k := range 4 {
		if near(box[k], crop[k]) && !near(box[k], img[k]) {
			return true
		}
	}
	return false
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// maskBox is batched_mask_to_box for one row-major w×h mask: the inclusive
// box [x0, y0, x1, y1], [0,0,0,0] when empty.
func maskBox(m []bool, w, h int) [4]int {
	xmin, ymin, xmax, ymax := w, h, -1, -1
	for y := range h {
		row := m[y*w : (y+1)*w]
		for x, v := range row {
			if v {
				xmin, xmax = min(xmin, x), max(xmax, x)
				ymin, ymax = min(ymin, y), max(ymax, y)
			}
		}
	}
	if xmax < 0 {
		return [4]int{}
	}
	return [4]int{xmin, ymin, xmax, ymax}
}

// postprocessSmallRegions is postprocess_small_regions: per mask fill
// small holes, then remove small islands; boxes of the new masks; NMS
// with score 1 for unchanged and 0 for changed masks; the kept changed
// masks get their new RLE and box. The masks are processed in parallel,
// one decoded mask per worker at a time.
func postprocessSmallRegions(ctx context.Context, data []maskData, minArea, nmsThresh float64) ([]maskData, error) {
	n := len(data)
	boxes := make([][4]int, n)
	scores := make([]float32, n)
	newRLE := make([]RLE, n)
	workers := runtime.GOMAXPROCS(0)
	scratch := make([]regionScratch, workers)
	bufs := make([][]bool, workers)
	var cancelled atomic.Bool
	parallelFor(n, func(w, i int) {
		if cancelled.Load() || ctx.Err() != nil {
			cancelled.Store(true)
			return
		}
		r := data[i].rle
		W, H := r.Size[1], r.Size[0]
		if len(bufs[w]) != W*H {
			bufs[w] = make([]bool, W*H)
		}
		m := bufs[w]
		r.decodeInto(m)
		m1, changedH := scratch[w].remove(m, W, H, minArea, Holes)
		m2, changedI := scratch[w].remove(m1, W, H, minArea, Islands)
		boxes[i] = maskBox(m2, W, H)
		if changedH || changedI {
			newRLE[i] = EncodeRLE(m2, W, H)
		} else {
			scores[i] = 1
		}
	})
	if cancelled.Load() {
		return nil, ctx.Err()
	}
	keep := NMS(boxes, scores, nmsThresh)
	for _, i := range keep {
		if scores[i] == 0 {
			data[i].rle = newRLE[i]
			data[i].box = boxes[i]
		}
	}
	return pick(data, keep), nil
}

// parallelFor calls f(worker, i) for i in [0, n) on up to GOMAXPROCS
// goroutines; worker (< GOMAXPROCS) identifies the goroutine, for
// per-worker scratch. Results must go to per-index slots, so the outcome
// does not depend on scheduling.
func parallelFor(n int, f func(worker, i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			f(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(w, i)
			}
		}()
	}
	wg.Wait()
}
