package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/png"
	"mime/multipart"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/tests/demoscene"
)

// decodeMaskOut reads a mask of an answer back into pixels, whatever its
// format, and checks its area and box against the pixels.
func decodeMaskOut(t testing.TB, m maskOut, format string, w, h int) []bool {
	t.Helper()
	var pix []bool
	switch format {
	case formatPNG:
		b, err := base64.StdEncoding.DecodeString(m.PNG)
		require.NoError(t, err)
		img, err := png.Decode(bytes.NewReader(b))
		require.NoError(t, err)
		require.Equal(t, image.Rect(0, 0, w, h), img.Bounds())
		g, ok := img.(*image.Gray)
		require.True(t, ok, "mask PNG is %T, want grayscale", img)
		pix = make([]bool, w*h)
		for y := range h {
			for x := range w {
				v := g.GrayAt(x, y).Y
				require.True(t, v == 0 || v == 255, "mask PNG value %d", v)
				pix[y*w+x] = v == 255
			}
		}
	case formatRLE:
		require.NotNil(t, m.RLE)
		require.Equal(t, [2]int{h, w}, m.RLE.Size)
		r, err := m.RLE.RLE()
		require.NoError(t, err)
		pix, err = r.Decode()
		require.NoError(t, err)
		// Decode gives row-major pixels of the [H, W] mask.
		require.Len(t, pix, w*h)
	case formatPolygon:
		require.NotNil(t, m.Polygons)
		pix = rasterPolygons(m.Polygons, w, h)
	default:
		t.Fatalf("format %q", format)
	}
	if format != formatPolygon {
		box, area, ok := sam.Mask{W: w, H: h, Pix: pix}.Box()
		require.Equal(t, area, m.Area)
		if ok {
			require.Equal(t, &[4]int{box[0], box[1], box[2] - box[0], box[3] - box[1]}, m.BBox)
		} else {
			require.Nil(t, m.BBox)
		}
	}
	require.NotEmpty(t, m.Logits, "a mask's low-res logits handle")
	return pix
}

// rasterPolygons fills COCO polygons (pixel-corner coordinates) by the
// even-odd rule at pixel centres.
func rasterPolygons(polys [][]int, w, h int) []bool {
	pix := make([]bool, w*h)
	for _, p := range polys {
		n := len(p) / 2
		for y := range h {
			cy := float64(y) + 0.5
			for x := range w {
				cx := float64(x) + 0.5
				in := false
				for i, j := 0, n-1; i < n; j, i = i, i+1 {
					xi, yi := float64(p[2*i]), float64(p[2*i+1])
					xj, yj := float64(p[2*j]), float64(p[2*j+1])
					if (yi > cy) != (yj > cy) && cx < (xj-xi)*(cy-yi)/(yj-yi)+xi {
						in = !in
					}
				}
				if in {
					pix[y*w+x] = true
				}
			}
		}
	}
	return pix
}

// fillHoles is the mask with every background region that does not reach
// the border (8-connected, the complement of 4-connected parts) filled:
// what a COCO polygon of each part's outer boundary covers.
func fillHoles(m []bool, w, h int) []bool {
	outside := make([]bool, w*h)
	var stack []int
	push := func(x, y int) {
		if x >= 0 && y >= 0 && x < w && y < h && !m[y*w+x] && !outside[y*w+x] {
			outside[y*w+x] = true
			stack = append(stack, y*w+x)
		}
	}
	for x := range w {
		push(x, 0)
		push(x, h-1)
	}
	for y := range h {
		push(0, y)
		push(w-1, y)
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x, y := i%w, i/w
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				push(x+dx, y+dy)
			}
		}
	}
	out := make([]bool, w*h)
	for i := range out {
		out[i] = !outside[i]
	}
	return out
}

// TestUploadAndPredict uploads a demo scene (raw and multipart), then
// checks every kind of prompt and every mask format against a direct
// sam.Predictor call on the same model: the same masks, scores and
// low-res logits for refinement.
func TestUploadAndPredict(t *testing.T) {
	s := newTestServer(t, nil, Options{})
	sc := loadScene(t, 2)
	sum := sha256.Sum256(sc.png)
	id := hex.EncodeToString(sum[:])

	info := s.upload(t, sc.png)
	require.Equal(t, id, info.ID, "the id is the sha256 of the bytes")
	require.Equal(t, [2]int{sc.w, sc.h}, [2]int{info.Width, info.Height})
	require.Equal(t, s.model.EncoderIdentity(), info.Model)
	require.Equal(t, "encoded", info.Source)
	require.Positive(t, info.EncodeMS)
	t.Logf("first upload of %s (%dx%d): encoder %.1f ms", sc.name, sc.w, sc.h, info.EncodeMS)

	// The same bytes again, as multipart/form-data: cached, no encoder run.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("image", "/etc/passwd") // the file name is never used
	require.NoError(t, err)
	fw.Write(sc.png)
	require.NoError(t, mw.Close())
	code, b := do(t, "POST", s.url+"/v1/images", mw.FormDataContentType(), body.Bytes())
	require.Equal(t, http.StatusOK, code, "%s", b)
	var again imageResponse
	require.NoError(t, json.Unmarshal(b, &again))
	require.Equal(t, id, again.ID)
	require.Equal(t, tierMemory, again.Source)
	require.EqualValues(t, 1, s.encoderRuns(t))

	code, b = do(t, "GET", s.url+"/v1/images/"+id, "", nil)
	require.Equal(t, http.StatusOK, code, "%s", b)

	// The reference: a Predictor of our own on the same model.
	img, err := imgproc.Decode(bytes.NewReader(sc.png))
	require.NoError(t, err)
	p := sam.NewPredictor(s.model)
	require.NoError(t, p.SetImage(context.Background(), img))
	defer p.Reset()
	direct := func(pr sam.Prompt) *sam.Prediction {
		t.Helper()
		res, err := p.Predict(context.Background(), pr)
		require.NoError(t, err)
		return res
	}
	// check compares one prediction of the server's with the direct one.
	check := func(t *testing.T, got prediction, want *sam.Prediction, format string) {
		t.Helper()
		require.Len(t, got.Masks, len(want.Masks))
		require.Equal(t, want.Best(), got.Best)
		for k, m := range got.Masks {
			require.Equal(t, want.IoU[k], m.Score, "mask %d score", k)
			pix := decodeMaskOut(t, m, format, sc.w, sc.h)
			if format == formatPolygon {
				// A polygon covers its part's pixels and its holes.
				require.Equal(t, fillHoles(want.Masks[k].Pix, sc.w, sc.h), pix, "mask %d polygon fill", k)
				continue
			}
			require.Equal(t, want.Masks[k].Pix, pix, "mask %d pixels", k)
		}
	}

	o3, o5 := sc.object(t, 3), sc.object(t, 5)
	pt := func(o demoscene.Object, label int) sam.Point {
		return sam.Point{X: o.Point[0], Y: o.Point[1], Label: label}
	}
	box := func(o demoscene.Object) *sam.Box {
		return &sam.Box{X0: o.BoxXYXY[0], Y0: o.BoxXYXY[1], X1: o.BoxXYXY[2], Y1: o.BoxXYXY[3]}
	}
	no := false
	for _, tc := range []struct {
		name string
		req  map[string]any
		want []sam.Prompt
	}{
		{"one point, multimask (png)", map[string]any{"points": [][2]float64{o3.Point}},
			[]sam.Prompt{{Points: []sam.Point{pt(o3, 1)}}}},
		{"one point (rle)", map[string]any{"points": [][2]float64{o3.Point}, "labels": []int{1}, "format": "rle"},
			[]sam.Prompt{{Points: []sam.Point{pt(o3, 1)}}}},
		{"one point (polygon)", map[string]any{"points": [][2]float64{o5.Point}, "format": "polygon"},
			[]sam.Prompt{{Points: []sam.Point{pt(o5, 1)}}}},
		{"positive and negative points, single mask", map[string]any{"points": [][2]float64{o5.Point, o3.Point}, "labels": []int{1, 0},
			"multimask_output": no, "format": "rle"},
			[]sam.Prompt{{Points: []sam.Point{pt(o5, 1), pt(o3, 0)}, SingleMask: true}}},
		{"box, single mask", map[string]any{"box": o5.BoxXYXY, "multimask_output": no, "format": "rle"},
			[]sam.Prompt{{Box: box(o5), SingleMask: true}}},
		{"box and point", map[string]any{"box": o5.BoxXYXY, "points": [][2]float64{o5.Point}, "format": "rle"},
			[]sam.Prompt{{Box: box(o5), Points: []sam.Point{pt(o5, 1)}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			format, _ := tc.req["format"].(string)
			if format == "" {
				format = formatPNG
			}
			res := s.predict(t, id, tc.req)
			require.Equal(t, format, res.Format)
			require.Equal(t, tierMemory, res.Source)
			require.Len(t, res.Predictions, len(tc.want))
			for i, pr := range tc.want {
				check(t, res.Predictions[i], direct(pr), format)
			}
		})
	}

	t.Run("batched boxes", func(t *testing.T) {
		var boxes [][4]float64
		var want []sam.Prompt
		for _, o := range sc.objects {
			boxes = append(boxes, o.BoxXYXY)
			want = append(want, sam.Prompt{Box: box(o), SingleMask: true})
		}
		res := s.predict(t, id, map[string]any{"boxes": boxes, "multimask_output": false})
		require.Len(t, res.Predictions, len(sc.objects))
		var sumIoU float64
		for i, o := range sc.objects {
			d := direct(want[i])
			check(t, res.Predictions[i], d, formatPNG)
			sumIoU += demoscene.MaskIoU(d.Masks[0].Pix, sc.mask(o.ID))
			require.InDelta(t, o.BoxMaskIoU, demoscene.MaskIoU(d.Masks[0].Pix, sc.mask(o.ID)), 2e-3, "object %d box IoU as the reference", o.ID)
		}
		t.Logf("%s: %d boxes in one request, mean IoU with the ground truth %.3f", sc.name, len(boxes), sumIoU/float64(len(boxes)))
	})

	t.Run("refinement with mask_input", func(t *testing.T) {
		first := s.predict(t, id, map[string]any{"points": [][2]float64{o5.Point}, "format": "rle"})
		best := first.Predictions[0].Best
		handle := first.Predictions[0].Masks[best].Logits
		d0 := direct(sam.Prompt{Points: []sam.Point{pt(o5, 1)}})
		// A second click: a negative point on another object, with the
		// first answer's logits.
		pts := [][2]float64{o5.Point, o3.Point}
		res := s.predict(t, id, map[string]any{"points": pts, "labels": []int{1, 0}, "mask_input": handle,
			"multimask_output": false, "format": "rle"})
		want := direct(sam.Prompt{Points: []sam.Point{pt(o5, 1), pt(o3, 0)}, MaskInput: d0.LowResLogits[best], SingleMask: true})
		check(t, res.Predictions[0], want, formatRLE)
		without := direct(sam.Prompt{Points: []sam.Point{pt(o5, 1), pt(o3, 0)}, SingleMask: true})
		require.NotEqual(t, without.IoU[0], want.IoU[0], "the mask input changes the answer")
	})

	// The predictions went to the decoder, and the encoder ran once.
	mfs := s.scrape(t)
	require.EqualValues(t, 1, metricValue(mfs, "sam_encoder_runs_total"))
	require.GreaterOrEqual(t, metricValue(mfs, "sam_prompts_total"), float64(8+len(sc.objects)))
	require.GreaterOrEqual(t, metricValue(mfs, "sam_http_request_duration_seconds", "route", "POST /v1/images/{id}/predict", "code", "200"), 9.0)
}

// TestAuto runs the automatic mask generator through the API and checks
// its COCO RLE records against a direct amg.Generator run.
func TestAuto(t *testing.T) {
	s := newTestServer(t, nil, Options{})
	sc := loadScene(t, 2)
	info := s.upload(t, sc.png)
	req := map[string]any{"points_per_side": 8, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.7}
	code, b := s.post(t, "/v1/images/"+info.ID+"/auto", req)
	require.Equal(t, http.StatusOK, code, "%s", b)
	var res struct {
		ID          string `json:"id"`
		Width       int    `json:"width"`
		Height      int    `json:"height"`
		Annotations []struct {
			Segmentation   amg.COCORLE  `json:"segmentation"`
			Area           int          `json:"area"`
			BBox           [4]int       `json:"bbox"`
			PredictedIoU   float64      `json:"predicted_iou"`
			StabilityScore float64      `json:"stability_score"`
			PointCoords    [][2]float64 `json:"point_coords"`
		} `json:"annotations"`
		Options         map[string]any     `json:"options"`
		EmbeddingSource string             `json:"embedding_source"`
		TimingsMS       map[string]float64 `json:"timings_ms"`
	}
	require.NoError(t, json.Unmarshal(b, &res))
	require.Equal(t, "memory", res.EmbeddingSource, "the upload's embedding serves the first crop layer")
	require.Equal(t, [2]int{sc.w, sc.h}, [2]int{res.Width, res.Height})
	require.EqualValues(t, 8, res.Options["points_per_side"])
	require.Equal(t, "coco_rle", res.Options["output_mode"])

	opts := amg.DefaultOptions()
	opts.PointsPerSide, opts.PredIoUThresh, opts.StabilityScoreThresh = 8, 0.5, 0.7
	opts.OutputMode = amg.CocoRLE
	g, err := amg.New(s.model, opts)
	require.NoError(t, err)
	img, err := imgproc.Decode(bytes.NewReader(sc.png))
	require.NoError(t, err)
	want, err := g.Generate(context.Background(), img)
	require.NoError(t, err)
	require.NotEmpty(t, want)
	require.Len(t, res.Annotations, len(want))
	for i, a := range res.Annotations {
		r, err := a.Segmentation.RLE()
		require.NoError(t, err)
		require.Equal(t, [2]int{sc.h, sc.w}, r.Size)
		require.Equal(t, a.Area, r.Area())
		require.Equal(t, want[i].Area, a.Area)
		require.Equal(t, want[i].BBox, a.BBox)
		require.Equal(t, want[i].RLE, r)
	}
	t.Logf("auto on %s: %d masks in %.0f ms (points_per_side 8)", sc.name, len(res.Annotations), res.TimingsMS["total"])

	// Options outside amg's ranges, or unknown: 400.
	for _, bad := range []string{`{"points_per_side": 0}`, `{"pred_iou_thresh": 2}`, `{"points_per_sid": 8}`, `{"output_mode": "binary_mask"}`} {
		code, b := s.post(t, "/v1/images/"+info.ID+"/auto", []byte(bad))
		require.Equal(t, http.StatusBadRequest, code, "%s: %s", bad, b)
		errorBody(t, b)
	}
}

// TestPolygons checks the boundary tracer on shapes whose polygons are
// known, holes and diagonal neighbours included.
func TestPolygons(t *testing.T) {
	parse := func(rows ...string) ([]bool, int, int) {
		w, h := len(rows[0]), len(rows)
		m := make([]bool, w*h)
		for y, r := range rows {
			for x, c := range r {
				m[y*w+x] = c == '#'
			}
		}
		return m, w, h
	}
	for _, tc := range []struct {
		name string
		rows []string
		want [][]int
	}{
		{"one pixel", []string{"...", ".#.", "..."}, [][]int{{1, 1, 2, 1, 2, 2, 1, 2}}},
		{"square at the corner", []string{"##.", "##.", "..."}, [][]int{{0, 0, 2, 0, 2, 2, 0, 2}}},
		{"L", []string{"#..", "#..", "###"}, [][]int{{0, 0, 1, 0, 1, 2, 3, 2, 3, 3, 0, 3}}},
		{"diagonal pixels are two parts", []string{"#.", ".#"}, [][]int{{0, 0, 1, 0, 1, 1, 0, 1}, {1, 1, 2, 1, 2, 2, 1, 2}}},
		{"ring: the outer boundary only", []string{"###", "#.#", "###"}, [][]int{{0, 0, 3, 0, 3, 3, 0, 3}}},
		{"empty", []string{"...", "..."}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, w, h := parse(tc.rows...)
			got := Polygons(m, w, h)
			require.Equal(t, tc.want, got)
			require.Equal(t, fillHoles(m, w, h), rasterPolygons(got, w, h))
		})
	}
}
