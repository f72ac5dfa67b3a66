package tests

import (
	"context"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
)

// amgFixture is testdata/<set>/image_0.amg.json (FIXTURES.md): the official
// SamAutomaticMaskGenerator's records for two runs.
type amgFixture struct {
	Image         string   `json:"image"`
	ImageSize     [2]int   `json:"image_size"`
	CropBoxes     [][4]int `json:"crop_boxes_xyxy"`
	CropLayerIdxs []int    `json:"crop_layer_idxs"`
	Runs          []struct {
		Params struct {
			PointsPerSide              int     `json:"points_per_side"`
			PointsPerBatch             int     `json:"points_per_batch"`
			PredIoUThresh              float64 `json:"pred_iou_thresh"`
			StabilityScoreThresh       float64 `json:"stability_score_thresh"`
			StabilityScoreOffset       float64 `json:"stability_score_offset"`
			BoxNMSThresh               float64 `json:"box_nms_thresh"`
			CropNLayers                int     `json:"crop_n_layers"`
			CropNMSThresh              float64 `json:"crop_nms_thresh"`
			CropOverlapRatio           float64 `json:"crop_overlap_ratio"`
			CropNPointsDownscaleFactor int     `json:"crop_n_points_downscale_factor"`
			MinMaskRegionArea          int     `json:"min_mask_region_area"`
			OutputMode                 string  `json:"output_mode"`
			PointGrids                 any     `json:"point_grids"`
		} `json:"params"`
		NumRecords int         `json:"num_records"`
		Records    []amgRecord `json:"records"`
	} `json:"runs"`
}

type amgRecord struct {
	Segmentation   amg.RLE      `json:"segmentation"`
	Area           int          `json:"area"`
	BBox           [4]float64   `json:"bbox"` // integral, sometimes written as floats
	PredictedIoU   float64      `json:"predicted_iou"`
	PointCoords    [][2]float64 `json:"point_coords"`
	StabilityScore float64      `json:"stability_score"`
	CropBox        [4]float64   `json:"crop_box"`
}

func intBox(b [4]float64) [4]int {
	return [4]int{int(b[0]), int(b[1]), int(b[2]), int(b[3])}
}

// rleIoU compares two masks given as RLE.
func rleIoU(t *testing.T, a, b amg.RLE) float64 {
	ma, err := a.Decode()
	require.NoError(t, err)
	mb, err := b.Decode()
	require.NoError(t, err)
	return maskIoU(ma, mb)
}

// TestAMGParity runs both fixture runs of the tiny and small models
// (points_per_side 8, crop_n_layers 1, min_mask_region_area 0 and 10) and
// compares every record with the official generator's: same count and
// order, identical RLE, area, bbox, point and crop box, scores within 1e-5.
func TestAMGParity(t *testing.T) {
	for _, set := range []string{"tiny", "small"} {
		t.Run(set, func(t *testing.T) {
			var fx amgFixture
			readJSON(t, fixturePath(set, "image_0.amg.json"), &fx)
			img, err := imgproc.Load(fixturePath(set, fx.Image))
			require.NoError(t, err)
			require.Equal(t, fx.ImageSize, [2]int{img.H, img.W})
			m := loadModel(t, set, "model.safetensors")

			for ri, run := range fx.Runs {
				p := run.Params
				require.Nil(t, p.PointGrids)
				opts := amg.DefaultOptions()
				opts.PointsPerSide = p.PointsPerSide
				opts.PointsPerBatch = p.PointsPerBatch
				opts.PredIoUThresh = p.PredIoUThresh
				opts.StabilityScoreThresh = p.StabilityScoreThresh
				opts.StabilityScoreOffset = p.StabilityScoreOffset
				opts.BoxNMSThresh = p.BoxNMSThresh
				opts.CropNLayers = p.CropNLayers
				opts.CropNMSThresh = p.CropNMSThresh
				opts.CropOverlapRatio = p.CropOverlapRatio
				opts.CropNPointsDownscaleFactor = p.CropNPointsDownscaleFactor
				opts.MinMaskRegionArea = p.MinMaskRegionArea
				opts.OutputMode = amg.OutputMode(p.OutputMode)

				if ri == 0 {
					crops := amg.GenerateCropBoxes(img.H, img.W, p.CropNLayers, p.CropOverlapRatio)
					require.Len(t, crops, len(fx.CropBoxes))
					for i, c := range crops {
						require.Equal(t, fx.CropBoxes[i], c.Box, "crop %d", i)
						require.Equal(t, fx.CropLayerIdxs[i], c.Layer, "crop %d layer", i)
					}
				}

				g, err := amg.New(m, opts)
				require.NoError(t, err)
				recs, err := g.Generate(context.Background(), img)
				require.NoError(t, err)
				st := g.Stats()
				t.Logf("run %d (min_mask_region_area %d): %d records; %d crops, %d points, %d decoder masks, %d after filters, %d after crop NMS; %v",
					ri, p.MinMaskRegionArea, len(recs), st.Crops, st.Points, st.DecoderMasks, st.FilteredMasks, st.CropNMSMasks, st.Total)
				require.Len(t, recs, run.NumRecords)
				require.Len(t, run.Records, run.NumRecords)
				var dIoU, dStab float64
				for i, want := range run.Records {
					got := recs[i]
					where := fmt.Sprintf("run %d record %d", ri, i)
					require.Equal(t, intBox(want.CropBox), got.CropBox, where)
					require.Equal(t, want.PointCoords, got.PointCoords, where)
					require.Equal(t, intBox(want.BBox), got.BBox, where)
					require.Equal(t, want.Area, got.Area, where)
					require.InDelta(t, want.PredictedIoU, float64(got.PredictedIoU), 1e-5, where)
					require.InDelta(t, want.StabilityScore, float64(got.StabilityScore), 1e-5, where)
					dIoU = math.Max(dIoU, math.Abs(want.PredictedIoU-float64(got.PredictedIoU)))
					dStab = math.Max(dStab, math.Abs(want.StabilityScore-float64(got.StabilityScore)))
					seg, ok := got.Segmentation.(amg.RLE)
					require.True(t, ok, "%s: segmentation %T", where, got.Segmentation)
					require.Equal(t, want.Segmentation.Size, seg.Size, where)
					if !slices.Equal(want.Segmentation.Counts, seg.Counts) {
						iou := rleIoU(t, want.Segmentation, seg)
						t.Logf("%s: RLE differs, mask IoU %.5f", where, iou)
						require.GreaterOrEqual(t, iou, 0.98, where)
					}
				}
				t.Logf("run %d: max |Δ predicted_iou| %.2e, max |Δ stability_score| %.2e", ri, dIoU, dStab)
			}
		})
	}
}

// demoAMGReference is the "amg" part of testdata/demo/reference.json.
type demoAMGReference struct {
	Scenes map[string]struct {
		AMG []struct {
			PointsPerSide        int     `json:"points_per_side"`
			PredIoUThresh        float64 `json:"pred_iou_thresh"`
			StabilityScoreThresh float64 `json:"stability_score_thresh"`
			NumMasks             int     `json:"num_masks"`
			Masks                []struct {
				BBox           [4]int  `json:"bbox"`
				Area           int     `json:"area"`
				PredictedIoU   float64 `json:"predicted_iou"`
				StabilityScore float64 `json:"stability_score"`
			} `json:"masks"`
		} `json:"amg"`
	} `json:"scenes"`
}

// raceEnabled reports a -race build (the test binary records its build
// flags).
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// TestAMGDemoModel runs the automatic mask generator with the demo model
// on its three scenes at both threshold settings of its reference
// (points_per_side 16, other options default) and compares every mask:
// same count and order, bbox equal, area within a few pixels, scores
// within 1e-4 (the reference rounds them to 6 decimals). Under the race
// detector (10× slower) it runs scene_2 only, the smallest; the parity
// test above runs the same code paths.
func TestAMGDemoModel(t *testing.T) {
	m, err := sam.Load(fixturePath("demo", "model.safetensors"), newBackend(t), sam.LoadOptions{Config: demoConfig(t)})
	require.NoError(t, err)
	defer m.Close()
	var ref demoAMGReference
	readJSON(t, fixturePath("demo", "reference.json"), &ref)
	scenes := []int{0, 1, 2}
	if raceEnabled() {
		scenes = []int{2}
	}
	for _, k := range scenes {
		name, img, _ := demoScene(t, k)
		sc := ref.Scenes[name]
		require.NotEmpty(t, sc.AMG, name)
		for _, want := range sc.AMG {
			opts := amg.DefaultOptions()
			opts.PointsPerSide = want.PointsPerSide
			opts.PredIoUThresh = want.PredIoUThresh
			opts.StabilityScoreThresh = want.StabilityScoreThresh
			opts.OutputMode = amg.UncompressedRLE
			g, err := amg.New(m, opts)
			require.NoError(t, err)
			recs, err := g.Generate(context.Background(), img)
			require.NoError(t, err)
			where := fmt.Sprintf("%s pred_iou %.2f stability %.2f", name, want.PredIoUThresh, want.StabilityScoreThresh)
			t.Logf("%s: %d masks (reference %d), %v", where, len(recs), want.NumMasks, g.Stats().Total)
			require.Len(t, recs, want.NumMasks, where)
			var dArea int
			var dIoU, dStab float64
			for i, w := range want.Masks {
				got := recs[i]
				require.Equal(t, w.BBox, got.BBox, "%s mask %d", where, i)
				require.LessOrEqual(t, abs(got.Area-w.Area), 3, "%s mask %d area %d, want %d", where, i, got.Area, w.Area)
				require.InDelta(t, w.PredictedIoU, float64(got.PredictedIoU), 1e-4, "%s mask %d", where, i)
				require.InDelta(t, w.StabilityScore, float64(got.StabilityScore), 1e-4, "%s mask %d", where, i)
				dArea = max(dArea, abs(got.Area-w.Area))
				dIoU = math.Max(dIoU, math.Abs(w.PredictedIoU-float64(got.PredictedIoU)))
				dStab = math.Max(dStab, math.Abs(w.StabilityScore-float64(got.StabilityScore)))
			}
			t.Logf("%s: max |Δ area| %d px, max |Δ predicted_iou| %.2e, max |Δ stability_score| %.2e", where, dArea, dIoU, dStab)
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
