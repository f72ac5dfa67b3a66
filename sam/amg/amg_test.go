package amg

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn/cpu"
)

const testdata = "../../tests/testdata"

func TestDefaultOptions(t *testing.T) {
	o := DefaultOptions()
	// SamAutomaticMaskGenerator.__init__'s defaults (point_grids None,
	// output_mode "binary_mask"); no progress callback, the default
	// upscaling chunk.
	want := Options{
		PointsPerSide:              32,
		PointsPerBatch:             64,
		PredIoUThresh:              0.88,
		StabilityScoreThresh:       0.95,
		StabilityScoreOffset:       1.0,
		BoxNMSThresh:               0.7,
		CropNLayers:                0,
		CropNMSThresh:              0.7,
		CropOverlapRatio:           512.0 / 1500,
		CropNPointsDownscaleFactor: 1,
		MinMaskRegionArea:          0,
		OutputMode:                 BinaryMask,
	}
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("DefaultOptions (-want +got):\n%s", diff)
	}
	_, err := o.grids()
	require.NoError(t, err)
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"neither grid", func(o *Options) { o.PointsPerSide = 0 }},
		{"both grids", func(o *Options) { o.PointGrids = [][][2]float64{{{0.5, 0.5}}} }},
		{"batch", func(o *Options) { o.PointsPerBatch = 0 }},
		{"layers", func(o *Options) { o.CropNLayers = -1 }},
		{"output mode", func(o *Options) { o.OutputMode = "png" }},
		{"NaN threshold", func(o *Options) { o.PredIoUThresh = math.NaN() }},
		{"too few grids", func(o *Options) {
			o.PointsPerSide, o.CropNLayers, o.PointGrids = 0, 1, [][][2]float64{{{0.5, 0.5}}}
		}},
		{"point outside", func(o *Options) { o.PointsPerSide, o.PointGrids = 0, [][][2]float64{{{1.5, 0.5}}} }},
		{"zero points in a layer", func(o *Options) { o.PointsPerSide, o.CropNLayers, o.CropNPointsDownscaleFactor = 2, 2, 2 }},
		{"min area", func(o *Options) { o.MinMaskRegionArea = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.edit(&o)
			_, err := o.grids()
			require.ErrorIs(t, err, ErrOptions)
		})
	}
}

// toMask: stability = count(logits > thr+offset) / count(logits > thr−offset)
// in float32, ≥ the threshold; box of logits > thr; crop-edge filter; RLE in
// the image frame.
func TestToMask(t *testing.T) {
	th := maskThresholds{mask: 0, hi: 1, lo: -1, stab: 0.5}
	// A 4×3 crop at (2, 1) of a 10×10 image (far from the crop's and
	// the image's edges doesn't matter: the filter uses 20 px).
	crop := [4]int{2, 1, 6, 4}
	logits := []float32{
		-2, -0.5, 0.5, -2,
		-2, 2, 3, -2,
		-2, -2, -2, -2,
	}
	d, ok := th.toMask(logits, crop, 10, 10)
	require.True(t, ok)
	// > 1: 2 values; > −1: 4 values (−0.5 counts, 1 is not > 1).
	require.Equal(t, float32(2)/float32(4), d.stab)
	// logits > 0 at (2,0), (1,1), (2,1) → crop box [1,0,2,1] → image [3,1,4,2].
	require.Equal(t, [4]int{3, 1, 4, 2}, d.box)
	m, err := d.rle.Decode()
	require.NoError(t, err)
	want := make([]bool, 100)
	want[1*10+4], want[2*10+3], want[2*10+4] = true, true, true
	require.Equal(t, want, m)

	// Stability below the threshold.
	th.stab = 0.51
	_, ok = th.toMask(logits, crop, 10, 10)
	require.False(t, ok)
	// 0/0 = NaN fails even a tiny threshold, and passes when the filter is off.
	low := []float32{-5, -5, -5, -5}
	th.stab = 1e-9
	_, ok = th.toMask(low, [4]int{0, 0, 2, 2}, 2, 2)
	require.False(t, ok)
	th.stabSkip = true
	d, ok = th.toMask(low, [4]int{0, 0, 2, 2}, 2, 2)
	require.True(t, ok)
	require.True(t, math.IsNaN(float64(d.stab)))
	require.Equal(t, [4]int{}, d.box) // an empty mask's box is [0,0,0,0]
	require.Equal(t, []uint32{4}, d.rle.Counts)
}

func TestNearCropEdge(t *testing.T) {
	img := [4]int{0, 0, 200, 100}
	crop := [4]int{60, 0, 200, 70}
	// x0 = 75 is within 20 of the crop's x0 = 60 but not of the image's 0.
	require.True(t, nearCropEdge([4]int{75, 30, 120, 40}, crop, img))
	// 81 is 21 away: fine; y0 = 5 is near both the crop's and the image's 0.
	require.False(t, nearCropEdge([4]int{81, 5, 120, 40}, crop, img))
	// y1 = 50 within 20 of the crop's 70, not of the image's 100.
	require.True(t, nearCropEdge([4]int{81, 5, 120, 50}, crop, img))
	// The whole image as the crop: nothing is near "only the crop".
	require.False(t, nearCropEdge([4]int{0, 0, 199, 99}, img, img))
}

func TestRecordJSON(t *testing.T) {
	r := EncodeRLE([]bool{true, false, false, true}, 2, 2)
	rec := Record{
		Segmentation:   r.COCO(),
		RLE:            r,
		Area:           2,
		BBox:           [4]int{0, 0, 1, 1},
		PredictedIoU:   0.8200249,
		PointCoords:    [][2]float64{{148.5, 10}},
		StabilityScore: 0.85882354,
		CropBox:        [4]int{61, 0, 100, 80},
	}
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	// Official key order; float32 scores as their float64 value (Python's
	// json of tensor.item()); integral floats with ".0".
	require.Equal(t, `{"segmentation":{"size":[2,2],"counts":"0120"},"area":2,"bbox":[0,0,1,1],`+
		`"predicted_iou":0.8200249075889587,"point_coords":[[148.5,10.0]],"stability_score":0.8588235378265381,"crop_box":[61,0,100,80]}`, string(b))

	// '<' stays as it is (no \u003c) in a COCO string.
	rec.Segmentation = COCORLE{Size: [2]int{1, 12}, Counts: "<"}
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(rec))
	require.Contains(t, sb.String(), `"counts":"<"`)

	rec.Segmentation = sam.Mask{W: 2, H: 2, Pix: []bool{true, false, false, true}}
	b, err = json.Marshal(rec)
	require.NoError(t, err)
	require.Contains(t, string(b), `"segmentation":[[true,false],[false,true]]`)
}

func loadTiny(t testing.TB) (*sam.Model, *imgproc.RGB) {
	t.Helper()
	cfg, err := sam.ReadConfig(testdata + "/tiny/config.json")
	require.NoError(t, err)
	m, err := sam.Load(testdata+"/tiny/model.safetensors", cpu.New(), sam.LoadOptions{Config: &cfg})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	img, err := imgproc.Load(testdata + "/tiny/image_0.png")
	require.NoError(t, err)
	return m, img
}

// tinyOptions are the tiny fixture's run-0 options (tests/amg_test.go
// checks them against the official records).
func tinyOptions() Options {
	o := DefaultOptions()
	o.PointsPerSide, o.PointsPerBatch = 8, 16
	o.PredIoUThresh, o.StabilityScoreThresh = 0.721, 0.855
	o.CropNLayers, o.CropNPointsDownscaleFactor = 1, 2
	return o
}

// The output modes carry the same mask; chunking the upscaling (down to
// one mask at a time) changes nothing; progress reaches every batch.
func TestGenerateModesAndChunks(t *testing.T) {
	m, img := loadTiny(t)
	ctx := context.Background()
	var ref []Record
	for _, tc := range []struct {
		mode  OutputMode
		chunk int
	}{{UncompressedRLE, 0}, {CocoRLE, 1}, {BinaryMask, 3 * 161 * 119 * 4}} {
		o := tinyOptions()
		o.OutputMode, o.MaxLogitBytes = tc.mode, tc.chunk
		var last Progress
		calls := 0
		o.Progress = func(p Progress) { last = p; calls++ }
		g, err := New(m, o)
		require.NoError(t, err)
		recs, err := g.Generate(ctx, img)
		require.NoError(t, err)
		require.NotEmpty(t, recs)
		// 64 points in 4 batches of 16 on the image, 16 in one batch per crop.
		require.Equal(t, 8, calls)
		wantLast := Progress{Crop: 4, Crops: 5, Batch: 8, Batches: 8, CurrentCropSize: [2]int{100, 79}}
		if diff := cmp.Diff(wantLast, last, cmpopts.IgnoreFields(Progress{}, "Masks", "Elapsed")); diff != "" {
			t.Errorf("%s: last progress (-want +got):\n%s", tc.mode, diff)
		}
		for i, r := range recs {
			switch s := r.Segmentation.(type) {
			case RLE:
				require.Equal(t, r.RLE, s)
			case COCORLE:
				back, err := s.RLE()
				require.NoError(t, err)
				require.Equal(t, r.RLE, back)
			case sam.Mask:
				mk, err := r.Mask()
				require.NoError(t, err)
				require.Equal(t, mk, s)
			default:
				t.Fatalf("segmentation %T", s)
			}
			require.Equal(t, r.RLE.Area(), r.Area)
			if ref != nil {
				r.Segmentation = nil
				ref[i].Segmentation = nil
				if diff := cmp.Diff(ref[i], r); diff != "" {
					t.Errorf("%s, chunk %d: record %d (-%s +got):\n%s", tc.mode, tc.chunk, i, UncompressedRLE, diff)
				}
			}
		}
		if ref == nil {
			ref = recs
		} else {
			require.Len(t, recs, len(ref))
		}
	}
}

func TestGenerateExplicitGridAndErrors(t *testing.T) {
	m, img := loadTiny(t)
	ctx := context.Background()

	// point_grids = [build_point_grid(8), build_point_grid(4)] is what
	// points_per_side 8 with downscale 2 builds.
	o := tinyOptions()
	ref, err := New(m, o)
	require.NoError(t, err)
	want, err := ref.Generate(ctx, img)
	require.NoError(t, err)
	o.PointsPerSide, o.PointGrids = 0, [][][2]float64{BuildPointGrid(8), BuildPointGrid(4)}
	g, err := New(m, o)
	require.NoError(t, err)
	got, err := g.Generate(ctx, img)
	require.NoError(t, err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records with explicit point grids (-points_per_side +point_grids):\n%s", diff)
	}

	// Cancellation.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = g.Generate(cctx, img)
	require.ErrorIs(t, err, context.Canceled)

	// Nothing survives with crops: the official generator raises
	// IndexError; we return no records.
	o = tinyOptions()
	o.PredIoUThresh = 1 // the largest in range: the tiny model never predicts IoU > 1
	g, err = New(m, o)
	require.NoError(t, err)
	recs, err := g.Generate(ctx, img)
	require.NoError(t, err)
	require.Empty(t, recs)

	// An image too small for the crop layers.
	o = tinyOptions()
	o.CropNLayers, o.CropNPointsDownscaleFactor = 3, 1
	g, err = New(m, o)
	require.NoError(t, err)
	_, err = g.Generate(ctx, &imgproc.RGB{W: 5, H: 7, Pix: make([]uint8, 5*7*3)})
	require.ErrorIs(t, err, ErrOptions)
	_, err = g.Generate(ctx, &imgproc.RGB{})
	require.Error(t, err)
}

// Every option has a range; what lies outside is refused by Validate
// before anything is allocated (100000 points per side was a 10¹⁰-point
// grid, 20 crop layers 4²⁰ crops, a crop overlap ratio of 1.5 panicked in
// cropRGB).
func TestOptionsRanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
		ok   bool
	}{
		{"points_per_side 100000", func(o *Options) { o.PointsPerSide = 100000 }, false},
		{"points_per_side 1024", func(o *Options) { o.PointsPerSide = 1024 }, true},
		{"points_per_batch 100000", func(o *Options) { o.PointsPerBatch = 100000 }, false},
		{"points_per_batch 1024", func(o *Options) { o.PointsPerBatch = 1024 }, true},
		{"points_per_batch 1025", func(o *Options) { o.PointsPerBatch = 1025 }, false},
		{"crop_n_layers 20", func(o *Options) { o.CropNLayers = 20 }, false},
		{"crop_n_layers 8", func(o *Options) { o.CropNLayers = 8 }, false},
		{"crop_n_layers 4", func(o *Options) { o.CropNLayers = 4 }, true},
		{"crop_overlap_ratio 1.5", func(o *Options) { o.CropOverlapRatio = 1.5 }, false},
		{"crop_overlap_ratio 1", func(o *Options) { o.CropOverlapRatio = 1 }, false},
		{"crop_overlap_ratio -0.1", func(o *Options) { o.CropOverlapRatio = -0.1 }, false},
		{"crop_overlap_ratio 0", func(o *Options) { o.CropOverlapRatio = 0 }, true},
		{"pred_iou_thresh -1", func(o *Options) { o.PredIoUThresh = -1 }, false},
		{"pred_iou_thresh 1.5", func(o *Options) { o.PredIoUThresh = 1.5 }, false},
		{"pred_iou_thresh 0", func(o *Options) { o.PredIoUThresh = 0 }, true},
		{"stability_score_thresh 2", func(o *Options) { o.StabilityScoreThresh = 2 }, false},
		{"stability_score_offset -1", func(o *Options) { o.StabilityScoreOffset = -1 }, false},
		{"stability_score_offset +Inf", func(o *Options) { o.StabilityScoreOffset = math.Inf(1) }, false},
		{"box_nms_thresh 1.1", func(o *Options) { o.BoxNMSThresh = 1.1 }, false},
		{"crop_nms_thresh -0.5", func(o *Options) { o.CropNMSThresh = -0.5 }, false},
		{"downscale 0", func(o *Options) { o.CropNPointsDownscaleFactor = 0 }, false},
		{"downscale 100000", func(o *Options) { o.CropNPointsDownscaleFactor = 100000 }, false},
		{"min area 2^40", func(o *Options) { o.MinMaskRegionArea = 1 << 40 }, false},
		{"max memory -1", func(o *Options) { o.MaxMemory = -1 }, false},
		{"huge explicit grid", func(o *Options) { o.PointsPerSide, o.PointGrids = 0, [][][2]float64{make([][2]float64, 1<<21)} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.edit(&o)
			err := o.Validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrOptions)
			require.Contains(t, err.Error(), "outside")
		})
	}
}

// Plan counts crops, points and batches as Generate does, and a budget
// below its estimate refuses the image before any work.
func TestPlanAndMemoryBudget(t *testing.T) {
	m, img := loadTiny(t)
	o := tinyOptions() // 8 points per side, 1 crop layer, downscale 2
	g, err := New(m, o)
	require.NoError(t, err)
	p, err := g.Plan(img.W, img.H)
	require.NoError(t, err)
	require.Equal(t, 5, p.Crops)
	require.Equal(t, 64+4*16, p.Points)
	require.Equal(t, 4+4, p.Batches)
	require.Positive(t, p.PeakBytes)
	_, err = g.Generate(context.Background(), img)
	require.NoError(t, err)
	require.Equal(t, p.Crops, g.Stats().Crops)
	require.Equal(t, p.Points, g.Stats().Points)

	// Larger images and more points cost more.
	big, err := g.Plan(4000, 3000)
	require.NoError(t, err)
	require.Greater(t, big.PeakBytes, p.PeakBytes)

	o.MaxMemory = p.PeakBytes - 1
	g, err = New(m, o)
	require.NoError(t, err)
	calls := 0
	g.opts.Progress = func(Progress) { calls++ }
	_, err = g.Generate(context.Background(), img)
	require.ErrorIs(t, err, ErrTooLarge)
	require.Contains(t, err.Error(), "budget")
	require.Zero(t, calls, "refused before the first batch")

	// Crops that do not fit the image are an error, not a panic.
	_, err = cropRGB(img, [4]int{-5, 0, 10, 10})
	require.ErrorIs(t, err, ErrOptions)
	_, err = cropRGB(img, [4]int{0, 0, img.W + 1, 10})
	require.ErrorIs(t, err, ErrOptions)
}

// pyRepr is Python's repr of a float.
func TestPyRepr(t *testing.T) {
	for v, want := range map[float64]string{
		580: "580.0", 0: "0.0", 0.5: "0.5", 1234567.5: "1234567.5", 1e16: "1e+16", 1.5e-5: "1.5e-05",
		0.0001: "0.0001", 123456789012345.6: "123456789012345.6", -2: "-2.0",
		float64(float32(0.9123)): "0.9122999906539917",
	} {
		require.Equal(t, want, pyRepr(v), "%v", v)
	}
}

// metadata.csv as scripts/amg.py writes it: the official header, Python's
// str() of each value, "\n".join without a final newline.
func TestWriteMetadataCSV(t *testing.T) {
	recs := []Record{
		{Area: 12, BBox: [4]int{1, 2, 3, 4}, PointCoords: [][2]float64{{580, 20.5}}, PredictedIoU: 0.9123, StabilityScore: 1, CropBox: [4]int{0, 0, 640, 480}},
		{Area: 1, PointCoords: [][2]float64{{0, 0}}, PredictedIoU: 0.5, StabilityScore: 0.96875, CropBox: [4]int{0, 0, 320, 240}},
	}
	var b strings.Builder
	require.NoError(t, WriteMetadataCSV(&b, recs))
	want := "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h\n" +
		"0,12,1,2,3,4,580.0,20.5,0.9122999906539917,1.0,0,0,640,480\n" +
		"1,1,0,0,0,0,0.0,0.0,0.5,0.96875,0,0,320,240"
	require.Equal(t, want, b.String())
}

// GenerateFrom with the image's embedding gives Generate's records (crops
// included: layer 1 is still encoded), with one encoder run fewer, and
// refuses embeddings that cannot be this image's.
func TestGenerateFrom(t *testing.T) {
	m, img := loadTiny(t)
	ctx := context.Background()
	g, err := New(m, tinyOptions())
	require.NoError(t, err)
	want, err := g.Generate(ctx, img)
	require.NoError(t, err)
	require.NotEmpty(t, want)
	encAll := g.Stats().Encode

	p := sam.NewPredictor(m)
	require.NoError(t, p.SetImage(ctx, img))
	emb := p.Embedding()
	got, err := g.GenerateFrom(ctx, img, emb)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, 5, g.Stats().Crops)
	t.Logf("encoder time: Generate %v, GenerateFrom %v (5 crops, the first from the embedding)", encAll, g.Stats().Encode)

	other := *emb
	other.OriginalW++
	_, err = g.GenerateFrom(ctx, img, &other)
	require.ErrorIs(t, err, sam.ErrEmbedding)
	require.ErrorContains(t, err, "image is")
	other = *emb
	other.Model = ""
	_, err = g.GenerateFrom(ctx, img, &other)
	require.ErrorIs(t, err, sam.ErrEmbedding)
	_, err = g.GenerateFrom(ctx, img, nil)
	require.ErrorIs(t, err, sam.ErrEmbedding)
	// A failed GenerateFrom leaves Generate as it was.
	again, err := g.Generate(ctx, img)
	require.NoError(t, err)
	require.Equal(t, want, again)
}
