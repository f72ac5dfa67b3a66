package tests

import (
	"context"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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

// floatBox is b as the fixtures write boxes (integral float64s).
func floatBox(b [4]int) [4]float64 {
	return [4]float64{float64(b[0]), float64(b[1]), float64(b[2]), float64(b[3])}
}

// onFields restricts opt to the struct fields with the given names.
func onFields(opt cmp.Option, names ...string) cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool {
		f, ok := p.Last().(cmp.StructField)
		return ok && slices.Contains(names, f.Name())
	}, opt)
}

// TestAMGParity runs both fixture runs of the tiny and small models
// (points_per_side 8, crop_n_layers 1, min_mask_region_area 0 and 10) and
// compares every record with the official generator's: same count and
// order, RLE counts identical to pycocotools' (the README's "byte for
// byte"), same area, bbox, point and crop box, scores within 1e-5.
func TestAMGParity(t *testing.T) {
	for _, set := range parity.sets {
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
					var boxes [][4]int
					var layers []int
					for _, c := range crops {
						boxes = append(boxes, c.Box)
						layers = append(layers, c.Layer)
					}
					if diff := cmp.Diff(fx.CropBoxes, boxes); diff != "" {
						t.Errorf("crop boxes (-want +got):\n%s", diff)
					}
					if diff := cmp.Diff(fx.CropLayerIdxs, layers); diff != "" {
						t.Errorf("crop layers (-want +got):\n%s", diff)
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
				got := make([]amgRecord, len(recs))
				for i, r := range recs {
					seg, ok := r.Segmentation.(amg.RLE)
					require.True(t, ok, "run %d record %d: segmentation %T", ri, i, r.Segmentation)
					got[i] = amgRecord{Segmentation: seg, Area: r.Area, BBox: floatBox(r.BBox),
						PredictedIoU: float64(r.PredictedIoU), PointCoords: r.PointCoords,
						StabilityScore: float64(r.StabilityScore), CropBox: floatBox(r.CropBox)}
					want := run.Records[i]
					dIoU = math.Max(dIoU, math.Abs(want.PredictedIoU-got[i].PredictedIoU))
					dStab = math.Max(dStab, math.Abs(want.StabilityScore-got[i].StabilityScore))
				}
				// Everything exact (RLE counts included) but the scores.
				scores := onFields(cmpopts.EquateApprox(0, 1e-5), "PredictedIoU", "StabilityScore")
				if diff := cmp.Diff(run.Records, got, scores); diff != "" {
					t.Errorf("run %d records (-want +got):\n%s", ri, diff)
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
			PointsPerSide        int           `json:"points_per_side"`
			PredIoUThresh        float64       `json:"pred_iou_thresh"`
			StabilityScoreThresh float64       `json:"stability_score_thresh"`
			NumMasks             int           `json:"num_masks"`
			Masks                []demoAMGMask `json:"masks"`
		} `json:"amg"`
	} `json:"scenes"`
}

type demoAMGMask struct {
	BBox           [4]int  `json:"bbox"`
	Area           int     `json:"area"`
	PredictedIoU   float64 `json:"predicted_iou"`
	StabilityScore float64 `json:"stability_score"`
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
// within 1e-4 (the reference rounds them to 6 decimals).
//
// Under -race (about 10× slower; the CPU suite of make test) it drops
// scene_0 and scene_1 and runs scene_2 only, the smallest; the parity test
// above runs the same code paths. CI's non-race pass (.ci/run runs it
// without -race or -short) runs all three scenes.
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
	// bbox exact, area within 3 pixels, scores within 1e-4.
	tol := []cmp.Option{
		cmpopts.EquateEmpty(),
		onFields(cmp.Comparer(func(a, b int) bool { return abs(a-b) <= 3 }), "Area"),
		onFields(cmpopts.EquateApprox(0, 1e-4), "PredictedIoU", "StabilityScore"),
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
			require.Len(t, want.Masks, want.NumMasks, "%s: reference", where)
			var dArea int
			var dIoU, dStab float64
			got := make([]demoAMGMask, len(recs))
			for i, r := range recs {
				got[i] = demoAMGMask{BBox: r.BBox, Area: r.Area, PredictedIoU: float64(r.PredictedIoU), StabilityScore: float64(r.StabilityScore)}
				w := want.Masks[i]
				dArea = max(dArea, abs(got[i].Area-w.Area))
				dIoU = math.Max(dIoU, math.Abs(w.PredictedIoU-got[i].PredictedIoU))
				dStab = math.Max(dStab, math.Abs(w.StabilityScore-got[i].StabilityScore))
			}
			if diff := cmp.Diff(want.Masks, got, tol...); diff != "" {
				t.Errorf("%s masks (-want +got):\n%s", where, diff)
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
