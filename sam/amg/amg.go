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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
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

// ErrOptions marks invalid generator options; ErrTooLarge work whose
// estimated memory exceeds Options.MaxMemory.
var (
	ErrOptions  = errors.New("invalid automatic mask generator options")
	ErrTooLarge = errors.New("automatic mask generation would exceed the memory budget")
)

// Options are SamAutomaticMaskGenerator's arguments (same names in Go
// case, same meaning); DefaultOptions has the official defaults. Since a
// zero threshold is meaningful (it turns a filter off), start from
// DefaultOptions rather than a zero Options.
//
// Every option has a checked range (Validate and New refuse the rest with
// ErrOptions). The official generator accepts any number; the ranges keep
// out what is never useful and what crashes or exhausts memory before any
// work is done (a crop overlap ratio of 1.5 makes crops reach outside the
// image, 100000 points per side is a 10¹⁰-point grid, 20 crop layers are
// 4²⁰ crops):
//
//	points_per_side                 1 … 1024 (MaxPointsPerSide; 1024² points per crop)
//	point_grids                     each grid 1 … 1024² points in [0,1]²
//	points_per_batch                1 … 1024 (MaxPointsPerBatch, sam.MaxPrompts)
//	pred_iou_thresh                 0 … 1 (0: off)
//	stability_score_thresh          0 … 1 (0: off)
//	stability_score_offset          0 … 100 (past the logits' range, tens, every score is 0)
//	box_nms_thresh, crop_nms_thresh 0 … 1
//	crop_n_layers                   0 … 4 (MaxCropNLayers; 1+4+16+64+256 = 341 crops; a
//	                                layer-4 crop of a 1024-px image is ~100 px, upsampled 10× by the encoder)
//	crop_overlap_ratio              0 ≤ r < 1 (at r ≥ 1 a layer-1 crop is the whole image
//	                                or reaches past it)
//	crop_n_points_downscale_factor  1 … 1024, and every layer keeps ≥ 1 point per side
//	min_mask_region_area            0 … 2²⁸ (the largest image imgproc loads)
//
// Beyond the ranges, MaxMemory refuses an image whose estimated peak
// memory (see Generator.Plan) is larger, before any work on it starts.
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
	// MaxMemory, when > 0, is a budget in bytes: Generate refuses (with
	// ErrTooLarge) an image whose estimated peak memory (Generator.Plan)
	// exceeds it, before it starts. 0: no budget.
	MaxMemory int64
}

// The ranges of the options (see Options).
const (
	MaxPointsPerSide  = 1024
	MaxPointsPerBatch = sam.MaxPrompts // what one decoder call takes
	MaxCropNLayers    = 4
	maxGridPoints     = MaxPointsPerSide * MaxPointsPerSide
	maxDownscale      = 1024
	maxStabilityOff   = 100
	maxMinRegionArea  = 1 << 28
)

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
	return []byte(pyRepr(v)), nil
}

// pyRepr is Python's repr (and str) of a float: the shortest digits that
// read back as v, positional for decimal exponents −4 ≤ e < 16 with ".0"
// on integral values (580.0), else scientific with a two-digit exponent
// at least (1e-05, 1.5e+16).
func pyRepr(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(v, 'e', -1, 64) // d.ddde±XX
	exp, _ := strconv.Atoi(e[strings.LastIndexByte(e, 'e')+1:])
	if v != 0 && (exp < -4 || exp >= 16) {
		return e
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// MetadataCSVHeader is the header of scripts/amg.py's metadata.csv.
const MetadataCSVHeader = "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h"

// WriteMetadataCSV writes the metadata.csv that segment-anything's
// scripts/amg.py writes beside the masks <i>.png (write_masks_to_folder):
// the header, then per record i, area, bbox, the first point, predicted
// IoU, stability score and crop box, with Python's str() of each value
// (ints as ints, floats as repr), lines joined by "\n" with no newline at
// the end, as "\n".join does.
func WriteMetadataCSV(w io.Writer, recs []Record) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(MetadataCSVHeader)
	for i, r := range recs {
		var pt [2]float64
		if len(r.PointCoords) > 0 {
			pt = r.PointCoords[0]
		}
		fields := []string{strconv.Itoa(i), strconv.Itoa(r.Area)}
		for _, v := range r.BBox {
			fields = append(fields, strconv.Itoa(v))
		}
		fields = append(fields, pyRepr(pt[0]), pyRepr(pt[1]),
			pyRepr(float64(r.PredictedIoU)), pyRepr(float64(r.StabilityScore)))
		for _, v := range r.CropBox {
			fields = append(fields, strconv.Itoa(v))
		}
		bw.WriteString("\n")
		bw.WriteString(strings.Join(fields, ","))
	}
	return bw.Flush()
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
	// first, during GenerateFrom, is the whole image's embedding: the
	// first crop layer's, used instead of encoding it again.
	first *sam.Embedding
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

// grids validates the options and returns the per-layer point grids. The
// ranges are checked before anything is allocated.
func (o *Options) grids() ([][][2]float64, error) {
	switch {
	case (o.PointsPerSide > 0) == (o.PointGrids != nil):
		return nil, fmt.Errorf("%w: exactly one of points_per_side and point_grids must be given", ErrOptions)
	case o.PointsPerSide < 0 || o.PointsPerSide > MaxPointsPerSide:
		return nil, fmt.Errorf("%w: points_per_side %d outside 1…%d", ErrOptions, o.PointsPerSide, MaxPointsPerSide)
	case o.PointsPerBatch < 1 || o.PointsPerBatch > MaxPointsPerBatch:
		return nil, fmt.Errorf("%w: points_per_batch %d outside 1…%d", ErrOptions, o.PointsPerBatch, MaxPointsPerBatch)
	case o.CropNLayers < 0 || o.CropNLayers > MaxCropNLayers:
		return nil, fmt.Errorf("%w: crop_n_layers %d outside 0…%d (%d layers would be %d crops)",
			ErrOptions, o.CropNLayers, MaxCropNLayers, max(o.CropNLayers, 0), cropCount(max(o.CropNLayers, 0)))
	case o.CropNPointsDownscaleFactor < 1 || o.CropNPointsDownscaleFactor > maxDownscale:
		return nil, fmt.Errorf("%w: crop_n_points_downscale_factor %d outside 1…%d", ErrOptions, o.CropNPointsDownscaleFactor, maxDownscale)
	case o.MinMaskRegionArea < 0 || o.MinMaskRegionArea > maxMinRegionArea:
		return nil, fmt.Errorf("%w: min_mask_region_area %d outside 0…%d", ErrOptions, o.MinMaskRegionArea, maxMinRegionArea)
	case o.MaxLogitBytes < 0:
		return nil, fmt.Errorf("%w: max logit bytes %d < 0", ErrOptions, o.MaxLogitBytes)
	case o.MaxMemory < 0:
		return nil, fmt.Errorf("%w: max memory %d outside 0…", ErrOptions, o.MaxMemory)
	}
	for _, f := range []struct {
		name   string
		v      float64
		lo, hi float64
		open   bool // hi excluded
	}{
		{"pred_iou_thresh", o.PredIoUThresh, 0, 1, false},
		{"stability_score_thresh", o.StabilityScoreThresh, 0, 1, false},
		{"stability_score_offset", o.StabilityScoreOffset, 0, maxStabilityOff, false},
		{"box_nms_thresh", o.BoxNMSThresh, 0, 1, false},
		{"crop_nms_thresh", o.CropNMSThresh, 0, 1, false},
		{"crop_overlap_ratio", o.CropOverlapRatio, 0, 1, true},
	} {
		if math.IsNaN(f.v) || f.v < f.lo || f.v > f.hi || (f.open && f.v == f.hi) {
			r := "…"
			if f.open {
				r = " ≤ x <"
			}
			return nil, fmt.Errorf("%w: %s %v outside %g%s%g", ErrOptions, f.name, f.v, f.lo, r, f.hi)
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
		if len(gr) == 0 || len(gr) > maxGridPoints {
			return nil, fmt.Errorf("%w: point grid %d has %d points, outside 1…%d", ErrOptions, i, len(gr), maxGridPoints)
		}
		for _, p := range gr {
			if !(p[0] >= 0 && p[0] <= 1 && p[1] >= 0 && p[1] <= 1) {
				return nil, fmt.Errorf("%w: point grid %d has point (%g, %g) outside [0,1]²", ErrOptions, i, p[0], p[1])
			}
		}
	}
	return o.PointGrids, nil
}

// cropCount is the number of crops of layers 0..n: 1 + 4 + … + 4ⁿ.
func cropCount(n int) int {
	if n > 15 {
		return math.MaxInt
	}
	return ((1 << (2 * (n + 1))) - 1) / 3
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
	plan, err := g.Plan(img.W, img.H)
	if err != nil {
		return nil, err
	}
	if g.opts.MaxMemory > 0 && plan.PeakBytes > g.opts.MaxMemory {
		return nil, fmt.Errorf("%w: a %d×%d image with %d crops and %d points needs about %s (estimated), the budget is %s: "+
			"use fewer points_per_side, crop_n_layers or points_per_batch, or a larger budget",
			ErrTooLarge, img.W, img.H, plan.Crops, plan.Points, FormatBytes(plan.PeakBytes), FormatBytes(g.opts.MaxMemory))
	}
	crops := plan.crops
	st.Crops = len(crops)
	pr := Progress{Crops: len(crops), Batches: plan.Batches}
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

// cropRGB returns the pixels of img inside b = [x0, y0, x1, y1), which
// must be a non-empty box inside the image.
func cropRGB(img *imgproc.RGB, b [4]int) (*imgproc.RGB, error) {
	if b == [4]int{0, 0, img.W, img.H} {
		return img, nil
	}
	if b[0] < 0 || b[1] < 0 || b[2] > img.W || b[3] > img.H || b[2] <= b[0] || b[3] <= b[1] {
		return nil, fmt.Errorf("%w: crop %v is empty or outside the %d×%d image", ErrOptions, b, img.W, img.H)
	}
	w, h := b[2]-b[0], b[3]-b[1]
	out := imgproc.NewRGB(w, h)
	for y := range h {
		src := ((b[1]+y)*img.W + b[0]) * 3
		copy(out.Pix[y*w*3:(y+1)*w*3], img.Pix[src:src+w*3])
	}
	return out, nil
}

// Plan is what Generate does on one image and how much memory it needs.
type Plan struct {
	Crops   int // crop boxes, the whole image included
	Points  int // prompt points over all crops
	Batches int // decoder passes
	// PeakBytes estimates Generate's peak memory, host and device together,
	// beyond the model's weights and the caller's image: the crop copy and
	// its encoder pass, one decoder batch, one upscaling chunk, the masks
	// held until the last NMS as RLE (every candidate counted, as if every
	// mask passed the filters: an upper bound), binary masks for
	// OutputMode BinaryMask, and the small-region buffers.
	PeakBytes int64

	crops []CropBox
}

// Plan returns what Generate would do on a w×h image, or ErrOptions when
// the crop layers do not fit the image (an empty crop: the official
// generator fails on it too).
func (g *Generator) Plan(w, h int) (Plan, error) {
	if w <= 0 || h <= 0 {
		return Plan{}, fmt.Errorf("amg: image size %d×%d", w, h)
	}
	crops := GenerateCropBoxes(h, w, g.opts.CropNLayers, g.opts.CropOverlapRatio)
	p := Plan{Crops: len(crops), crops: crops}
	cfg := &g.pred.Model().Config
	W, H := int64(w), int64(h)
	lr := int64(cfg.LowResSize())
	var maxCrop, maxBatch int64
	var held int64 // RLE bytes of every candidate mask
	for _, c := range crops {
		if c.Box[0] < 0 || c.Box[1] < 0 || c.Box[2] > w || c.Box[3] > h || c.Box[2] <= c.Box[0] || c.Box[3] <= c.Box[1] {
			return Plan{}, fmt.Errorf("%w: crop layer %d of a %d×%d image has an empty crop %v; use fewer crop layers or a smaller crop_overlap_ratio",
				ErrOptions, c.Layer, w, h, c.Box)
		}
		n := len(g.grids[c.Layer])
		p.Points += n
		p.Batches += (n + g.opts.PointsPerBatch - 1) / g.opts.PointsPerBatch
		cw, ch := int64(c.Box[2]-c.Box[0]), int64(c.Box[3]-c.Box[1])
		maxCrop = max(maxCrop, cw*ch)
		maxBatch = max(maxBatch, int64(min(n, g.opts.PointsPerBatch)))
		held += int64(n) * 3 * rleBytes(cw)
	}
	masks := int64(p.Points) * 3
	budget := int64(g.opts.MaxLogitBytes)
	if budget == 0 {
		budget = defaultMaxLogitBytes
	}
	chunk := min(max(budget/max(maxCrop*4, 1), int64(min(runtime.GOMAXPROCS(0), 4)), 1), 3*maxBatch)
	workers := int64(runtime.GOMAXPROCS(0))
	encode := maxCrop*3 + cfg.EncoderBytesPerImage(4)
	decode := maxBatch*(DecoderBytesPerPrompt(cfg)+3*lr*lr*4) + chunk*maxCrop*(4+1)
	rest := 2*int64(cfg.PromptEmbedDim)*int64(cfg.GridSize()*cfg.GridSize())*4 + held
	if g.opts.OutputMode == BinaryMask {
		rest += masks * W * H
	}
	if g.opts.MinMaskRegionArea > 0 {
		rest += workers * W * H * 16
	}
	p.PeakBytes = max(encode, decode) + rest
	return p, nil
}

// rleBytes estimates an RLE of a mask in a crop cw pixels wide: two runs
// per column of a compact shape, 4 bytes each, and the slice's header.
func rleBytes(cw int64) int64 { return 8*cw + 64 }

// DecoderBytesPerPrompt estimates the memory one prompt needs in a
// decoder pass (elements of 4 bytes): the two-way transformer keeps about
// a dozen token maps of the image embedding's size per prompt (the
// embedding plus dense prompt, the positional encoding, the keys and their
// projections), and the upscaled mask features and masks at 4g×4g.
func DecoderBytesPerPrompt(cfg *sam.Config) int64 {
	g, C := int64(cfg.GridSize()), int64(cfg.PromptEmbedDim)
	lr := 4 * g
	return (12*g*g*C + lr*lr*(int64(cfg.NumMaskTokens())+C/8)) * 4
}

// FormatBytes writes n as a size in KiB, MiB, GiB or TiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), 0
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, "BKMGT"[u])
}

// GenerateFrom is Generate for an image whose embedding is already known
// (a server's cache, sam embed's files): the first crop layer is the whole
// image, so emb stands in for its encoder run (7–9 s for ViT-B on a 2-core
// CPU); crops of later layers are encoded as Generate does, and the
// records are the same. emb must be this image's embedding by this model:
// its size must be the image's and its Model the generator's model's
// EncoderIdentity (an embedding without one is refused: nothing would show
// that it belongs to this image).
func (g *Generator) GenerateFrom(ctx context.Context, img *imgproc.RGB, emb *sam.Embedding) ([]Record, error) {
	if emb == nil {
		return nil, fmt.Errorf("amg: GenerateFrom: %w: nil embedding", sam.ErrEmbedding)
	}
	if img != nil && (emb.OriginalW != img.W || emb.OriginalH != img.H) {
		return nil, fmt.Errorf("amg: GenerateFrom: %w: the embedding is of a %d×%d image, the image is %d×%d",
			sam.ErrEmbedding, emb.OriginalW, emb.OriginalH, img.W, img.H)
	}
	if id := g.pred.Model().EncoderIdentity(); emb.Model != id {
		return nil, fmt.Errorf("amg: GenerateFrom: %w: the embedding names encoder %q, the generator's model is %q",
			sam.ErrEmbedding, emb.Model, id)
	}
	g.first = emb
	defer func() { g.first = nil }()
	return g.Generate(ctx, img)
}

// processCrop is _process_crop: encode the crop, run its point grid in
// batches, NMS within the crop; the masks come back in image coordinates.
func (g *Generator) processCrop(ctx context.Context, img *imgproc.RGB, c CropBox, pr *Progress, t0 time.Time) ([]maskData, error) {
	st := &g.stats
	x0, y0, x1, y1 := c.Box[0], c.Box[1], c.Box[2], c.Box[3]
	cw, ch := x1-x0, y1-y0
	t := time.Now()
	if g.first != nil && c.Layer == 0 { // the whole image, already encoded (GenerateFrom)
		if err := g.pred.SetEmbedding(g.first); err != nil {
			return nil, fmt.Errorf("crop %v: %w", c.Box, err)
		}
	} else {
		crop, err := cropRGB(img, c.Box)
		if err != nil {
			return nil, err
		}
		if err := g.pred.SetImage(ctx, crop); err != nil {
			return nil, fmt.Errorf("crop %v: %w", c.Box, err)
		}
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
	box, _, _ := sam.Mask{W: w, H: h, Pix: m}.Box()
	return box
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
