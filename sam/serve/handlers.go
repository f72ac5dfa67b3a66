package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
)

// maxJSONBody bounds a predict or auto request's JSON (prompts and
// handles, not pixels).
const maxJSONBody = 1 << 20

// imageInfo is what POST /v1/images and GET /v1/images/{id} answer.
type imageInfo struct {
	// ID is the sha256 of the image bytes (hex).
	ID     string `json:"id"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	// Model is the encoder identity the embedding belongs to.
	Model string `json:"model"`
	// Source says where the embedding came from: "encoded" (this
	// request ran the encoder), "shared" (it joined a concurrent upload
	// of the same image) or the cache tier that had it.
	Source   string  `json:"source"`
	EncodeMS float64 `json:"encode_ms,omitempty"`
}

// readImageBody reads an upload: the raw bytes (any Content-Type), or the
// first file part of a multipart/form-data body (field "image" or any
// part with a file name). Both are bounded by limit.
func readImageBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		b, err := io.ReadAll(r.Body)
		if err == nil && len(b) == 0 {
			return nil, errorf(http.StatusBadRequest, "empty_body", "no image in the request body")
		}
		return b, err
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "bad_multipart", "%v", err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, errorf(http.StatusBadRequest, "empty_body", "no file part in the multipart body (send the image as field \"image\")")
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, err
			}
			return nil, errorf(http.StatusBadRequest, "bad_multipart", "%v", err)
		}
		if p.FormName() == "image" || p.FileName() != "" {
			// The file name is never used: no client path reaches the
			// file system.
			b, err := io.ReadAll(p)
			p.Close()
			return b, err
		}
		p.Close()
	}
}

// validID reports whether id is a sha256 in lower-case hex.
func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if s.draining.Load() {
		writeError(w, r, errShuttingDown)
		return
	}
	data, err := readImageBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		writeError(w, r, err)
		return
	}
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	e, source, err := s.cache.embedding(ctx, s.modelID, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	info := imageInfo{ID: id, Model: s.modelID, Source: source}
	if e == nil {
		if !s.encModel.HasImageEncoder() {
			writeError(w, r, sam.ErrNoEncoder)
			return
		}
		var took time.Duration
		var shared bool
		t0 := time.Now()
		e, shared, err = s.embeds.do(ctx, s.base, id, func(fctx context.Context) (*sam.Embedding, error) {
			return s.encode(fctx, id, data)
		})
		took = time.Since(t0)
		if err != nil {
			writeError(w, r, err)
			return
		}
		info.Source, info.EncodeMS = "encoded", float64(took.Microseconds())/1000
		if shared {
			info.Source = "shared"
		}
	} else if !s.cache.hasImage(id) {
		s.cache.putImage(ctx, id, data)
	}
	s.met.uploads.WithLabelValues(map[bool]string{true: "cached", false: info.Source}[source != ""]).Inc()
	info.Width, info.Height = e.OriginalW, e.OriginalH
	writeJSON(w, http.StatusOK, info)
}

// encode decodes and encodes an uploaded image in the encoder queue and
// caches the embedding and the bytes.
func (s *Server) encode(ctx context.Context, id string, data []byte) (*sam.Embedding, error) {
	var e *sam.Embedding
	err := s.queue.do(ctx, func(ctx context.Context) error {
		t0 := time.Now()
		img, err := imgproc.DecodeLimit(bytes.NewReader(data), s.opts.MaxPixels)
		if err != nil {
			return err
		}
		if s.encodeHook != nil {
			if err := s.encodeHook(ctx); err != nil {
				return err
			}
		}
		e, err = s.encModel.EncodeImage(ctx, img)
		if err != nil {
			return err
		}
		s.met.encoderRuns.Inc()
		s.met.encodeSeconds.Observe(time.Since(t0).Seconds())
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cache.putEmbedding(ctx, s.modelID, id, e)
	s.cache.putImage(ctx, id, data)
	return e, nil
}

// embeddingFor returns the cached embedding of image id, or a 404.
func (s *Server) embeddingFor(ctx context.Context, id string) (*sam.Embedding, string, error) {
	if !validID(id) {
		return nil, "", errorf(http.StatusNotFound, "unknown_image", "%q is not an image id (the sha256 of the image bytes, lower-case hex)", id)
	}
	e, tier, err := s.cache.embedding(ctx, s.modelID, id)
	if err != nil {
		return nil, "", err
	}
	if e == nil {
		return nil, "", errorf(http.StatusNotFound, "unknown_image", "image %s is not in the cache (never uploaded, or evicted): upload it again", id)
	}
	return e, tier, nil
}

func (s *Server) handleImage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	e, tier, err := s.embeddingFor(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, imageInfo{ID: id, Width: e.OriginalW, Height: e.OriginalH, Model: s.modelID, Source: tier})
}

// predictRequest is SamPredictor.predict's arguments as JSON.
type predictRequest struct {
	// Points are point_coords [[x, y], ...] in original-image pixels,
	// Labels their point_labels (1 foreground, 0 background; default 1).
	Points [][2]float64 `json:"points"`
	Labels []int        `json:"labels"`
	// Box is one box [x0, y0, x1, y1]; Boxes a batch, one prompt per box,
	// each with the points and the mask input.
	Box   *[4]float64  `json:"box"`
	Boxes [][4]float64 `json:"boxes"`
	// MaskInput is the handle of an earlier answer's mask (its "logits").
	MaskInput string `json:"mask_input"`
	// MultimaskOutput (default true, as the official predict) returns 3
	// masks per prompt, false the single-mask output.
	MultimaskOutput *bool `json:"multimask_output"`
	// Format of the masks: png (default), rle or polygon; ?format= too.
	Format string `json:"format"`
}

type predictResponse struct {
	ID          string       `json:"id"`
	Model       string       `json:"model"`
	Width       int          `json:"width"`
	Height      int          `json:"height"`
	Format      string       `json:"format"`
	Predictions []prediction `json:"predictions"`
	// Source is the cache tier the embedding came from.
	Source    string             `json:"source"`
	TimingsMS map[string]float64 `json:"timings_ms"`
}

// prediction is one prompt's answer.
type prediction struct {
	Masks []maskOut `json:"masks"`
	// Best is the index of the mask with the highest score.
	Best int `json:"best"`
}

// decodeJSON reads a request's JSON body into v, refusing unknown fields
// (a misspelt "point" must not silently mean no points).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return nil // an empty body: the defaults
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errorf(http.StatusBadRequest, "bad_json", "request body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "bad_json", "request body: more than one JSON value")
	}
	return nil
}

// prompts turns a request into sam prompts.
func (s *Server) prompts(ctx context.Context, id string, req *predictRequest) ([]sam.Prompt, error) {
	bad := func(format string, args ...any) error {
		return errorf(http.StatusBadRequest, "bad_prompt", format, args...)
	}
	if len(req.Points) > s.opts.MaxPoints {
		return nil, bad("%d points: at most %d", len(req.Points), s.opts.MaxPoints)
	}
	if req.Labels != nil && len(req.Labels) != len(req.Points) {
		return nil, bad("%d labels for %d points", len(req.Labels), len(req.Points))
	}
	pts := make([]sam.Point, len(req.Points))
	for i, p := range req.Points {
		label := 1
		if req.Labels != nil {
			label = req.Labels[i]
		}
		if label != 0 && label != 1 {
			return nil, bad("label %d of point %d: want 1 (foreground) or 0 (background)", label, i)
		}
		pts[i] = sam.Point{X: p[0], Y: p[1], Label: label}
	}
	if req.Box != nil && req.Boxes != nil {
		return nil, bad("give box or boxes, not both")
	}
	boxes := req.Boxes
	if req.Box != nil {
		boxes = [][4]float64{*req.Box}
	}
	if len(boxes) > s.opts.MaxPrompts {
		return nil, bad("%d boxes: at most %d in one request", len(boxes), s.opts.MaxPrompts)
	}
	var mask []float32
	if req.MaskInput != "" {
		l, err := s.cache.lowRes(ctx, req.MaskInput)
		if err != nil {
			return nil, err
		}
		switch {
		case l == nil:
			return nil, errorf(http.StatusBadRequest, "unknown_mask_input", "mask_input %q is not (or no longer) known: send the prompt without it", req.MaskInput)
		case l.image != id || l.model != s.modelID:
			return nil, bad("mask_input %q belongs to another image or model", req.MaskInput)
		case l.size != s.model.Config.LowResSize():
			return nil, bad("mask_input %q is %d×%d, the model's low-res masks are %d×%d", req.MaskInput, l.size, l.size, s.model.Config.LowResSize(), s.model.Config.LowResSize())
		}
		mask = l.logits
	}
	single := req.MultimaskOutput != nil && !*req.MultimaskOutput
	if len(boxes) == 0 {
		return []sam.Prompt{{Points: pts, MaskInput: mask, SingleMask: single}}, nil
	}
	out := make([]sam.Prompt, len(boxes))
	for i, b := range boxes {
		out[i] = sam.Prompt{Points: pts, Box: &sam.Box{X0: b[0], Y0: b[1], X1: b[2], Y1: b[3]}, MaskInput: mask, SingleMask: single}
	}
	return out, nil
}

// format reads the mask format from the query or the body.
func maskFormat(r *http.Request, body string) (string, error) {
	f := r.URL.Query().Get("format")
	if f == "" {
		f = body
	} else if body != "" && body != f {
		return "", errorf(http.StatusBadRequest, "bad_format", "format %q in the query and %q in the body", f, body)
	}
	switch f {
	case "":
		return formatPNG, nil
	case formatPNG, formatRLE, formatPolygon:
		return f, nil
	}
	return "", errorf(http.StatusBadRequest, "bad_format", "format %q: want png, rle or polygon", f)
}

func (s *Server) handlePredict(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	var req predictRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	format, err := maskFormat(r, req.Format)
	if err != nil {
		writeError(w, r, err)
		return
	}
	e, tier, err := s.embeddingFor(ctx, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	prompts, err := s.prompts(ctx, id, &req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	res, decodeTook, err := s.decode(ctx, e, prompts)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t1 := time.Now()
	out := predictResponse{ID: id, Model: s.modelID, Width: e.OriginalW, Height: e.OriginalH, Format: format, Source: tier}
	var handles []string
	var planes []*lowRes
	out.Predictions, handles, planes, err = s.encodePredictions(res, format, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.cache.putLogits(ctx, handles, planes)
	out.TimingsMS = map[string]float64{"decoder": ms(decodeTook), "encode_masks": ms(time.Since(t1))}
	writeJSON(w, http.StatusOK, out)
}

// encodePredictions writes the masks of res in format with their
// scores, boxes and logits handles; it returns the low-res planes and
// their handles too, for the cache. The masks are encoded (and their
// logits hashed into handles) in parallel: at 1024² a mask takes
// milliseconds, a noticeable part of a prompt's answer.
func (s *Server) encodePredictions(res []*sam.Prediction, format, id string) ([]prediction, []string, []*lowRes, error) {
	n := 0
	for _, p := range res {
		n += len(p.Masks)
	}
	out := make([]prediction, len(res))
	planes := make([]*lowRes, 0, n)
	handles := make([]string, n) // each written by one goroutine
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, p := range res {
		out[i] = prediction{Best: p.Best(), Masks: make([]maskOut, len(p.Masks))}
		for k, m := range p.Masks {
			j := len(planes)
			plane := &lowRes{model: s.modelID, image: id, size: p.LowRes, logits: p.LowResLogits[k]}
			planes = append(planes, plane)
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				mo, err := encodeMask(m, format)
				mo.Score = p.IoU[k]
				mo.Logits = logitsHandle(plane)
				out[i].Masks[k], handles[j], errs[j] = mo, mo.Logits, err
			})
		}
	}
	wg.Wait()
	return out, handles, planes, errors.Join(errs...)
}

// decode answers prompts on e with a Predictor of its own, in one of the
// decoder slots.
func (s *Server) decode(ctx context.Context, e *sam.Embedding, prompts []sam.Prompt) ([]*sam.Prediction, time.Duration, error) {
	select {
	case s.decoders <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	defer func() { <-s.decoders }()
	t0 := time.Now()
	p, err := s.predictors.get(s.model, e)
	if err != nil {
		return nil, 0, err
	}
	defer s.predictors.put(p)
	res, err := p.PredictBatch(ctx, prompts)
	if err != nil {
		return nil, 0, err
	}
	took := time.Since(t0)
	s.met.decodeSeconds.Observe(took.Seconds())
	s.met.prompts.Add(float64(len(prompts)))
	return res, took, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// autoRequest is SamAutomaticMaskGenerator's arguments (the official
// names); what is left out takes the server's defaults.
type autoRequest struct {
	PointsPerSide              *int     `json:"points_per_side"`
	PointsPerBatch             *int     `json:"points_per_batch"`
	PredIoUThresh              *float64 `json:"pred_iou_thresh"`
	StabilityScoreThresh       *float64 `json:"stability_score_thresh"`
	StabilityScoreOffset       *float64 `json:"stability_score_offset"`
	BoxNMSThresh               *float64 `json:"box_nms_thresh"`
	CropNLayers                *int     `json:"crop_n_layers"`
	CropNMSThresh              *float64 `json:"crop_nms_thresh"`
	CropOverlapRatio           *float64 `json:"crop_overlap_ratio"`
	CropNPointsDownscaleFactor *int     `json:"crop_n_points_downscale_factor"`
	MinMaskRegionArea          *int     `json:"min_mask_region_area"`
	OutputMode                 *string  `json:"output_mode"`
}

// options applies the request to the defaults.
func (a *autoRequest) options(def amg.Options) (amg.Options, error) {
	o := def
	o.PointGrids = nil
	seti := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setf := func(dst *float64, v *float64) {
		if v != nil {
			*dst = *v
		}
	}
	seti(&o.PointsPerSide, a.PointsPerSide)
	seti(&o.PointsPerBatch, a.PointsPerBatch)
	setf(&o.PredIoUThresh, a.PredIoUThresh)
	setf(&o.StabilityScoreThresh, a.StabilityScoreThresh)
	setf(&o.StabilityScoreOffset, a.StabilityScoreOffset)
	setf(&o.BoxNMSThresh, a.BoxNMSThresh)
	seti(&o.CropNLayers, a.CropNLayers)
	setf(&o.CropNMSThresh, a.CropNMSThresh)
	setf(&o.CropOverlapRatio, a.CropOverlapRatio)
	seti(&o.CropNPointsDownscaleFactor, a.CropNPointsDownscaleFactor)
	seti(&o.MinMaskRegionArea, a.MinMaskRegionArea)
	o.OutputMode = amg.CocoRLE
	if a.OutputMode != nil {
		switch m := amg.OutputMode(*a.OutputMode); m {
		case amg.CocoRLE, amg.UncompressedRLE:
			o.OutputMode = m
		default:
			return o, fmt.Errorf("%w: output_mode %q: want coco_rle or uncompressed_rle", amg.ErrOptions, *a.OutputMode)
		}
	}
	return o, o.Validate()
}

// ParseAutoOptions reads automatic mask generator options as JSON with
// the official names (points_per_side, pred_iou_thresh, ...) over def,
// refusing unknown names and values outside amg's ranges. The output
// mode is coco_rle unless the JSON says uncompressed_rle.
func ParseAutoOptions(b []byte, def amg.Options) (amg.Options, error) {
	var a autoRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return def, fmt.Errorf("%w: %v", amg.ErrOptions, err)
	}
	return a.options(def)
}

type autoResponse struct {
	ID          string       `json:"id"`
	Model       string       `json:"model"`
	Width       int          `json:"width"`
	Height      int          `json:"height"`
	Annotations []amg.Record `json:"annotations"`
	// Options are the generator's options as run (official names).
	Options map[string]any `json:"options"`
	// EmbeddingSource is the cache tier that held the whole image's
	// embedding (used for the first crop layer), or "encoded".
	EmbeddingSource string             `json:"embedding_source"`
	TimingsMS       map[string]float64 `json:"timings_ms"`
}

func (s *Server) handleAuto(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	var req autoRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	opts, err := req.options(*s.opts.AutoDefaults)
	if err != nil {
		writeError(w, r, err)
		return
	}
	opts.MaxMemory = s.opts.AutoMaxMemory
	if !validID(id) {
		writeError(w, r, errorf(http.StatusNotFound, "unknown_image", "%q is not an image id", id))
		return
	}
	data, err := s.cache.image(ctx, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if data == nil {
		writeError(w, r, errorf(http.StatusNotFound, "unknown_image", "image %s is not in the cache (never uploaded, or evicted): upload it again", id))
		return
	}
	// The whole image's embedding, if a tier holds it, saves the first
	// crop layer's encoder run (the generator encodes later crops itself).
	emb, source, err := s.cache.embedding(ctx, s.modelID, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if emb == nil {
		source = "encoded"
	}
	var recs []amg.Record
	var st amg.Stats
	var img *imgproc.RGB
	err = s.queue.do(ctx, func(ctx context.Context) error {
		var err error
		if img, err = imgproc.DecodeLimit(bytes.NewReader(data), s.opts.MaxPixels); err != nil {
			return err
		}
		g, err := amg.New(s.encModel, opts)
		if err != nil {
			return err
		}
		if emb != nil {
			recs, err = g.GenerateFrom(ctx, img, emb)
		} else {
			recs, err = g.Generate(ctx, img)
		}
		st = g.Stats()
		return err
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.met.autoSeconds.Observe(st.Total.Seconds())
	if recs == nil {
		recs = []amg.Record{}
	}
	writeJSON(w, http.StatusOK, autoResponse{ID: id, Model: s.modelID, Width: img.W, Height: img.H, Annotations: recs,
		Options: optionsJSON(opts), EmbeddingSource: source,
		TimingsMS: map[string]float64{"total": ms(st.Total), "encode": ms(st.Encode), "decoder": ms(st.Decode),
			"postprocess": ms(st.Postprocess), "nms": ms(st.NMS)}})
}

// optionsJSON writes generator options under the official names.
func optionsJSON(o amg.Options) map[string]any {
	return map[string]any{
		"points_per_side": o.PointsPerSide, "points_per_batch": o.PointsPerBatch,
		"pred_iou_thresh": o.PredIoUThresh, "stability_score_thresh": o.StabilityScoreThresh,
		"stability_score_offset": o.StabilityScoreOffset, "box_nms_thresh": o.BoxNMSThresh,
		"crop_n_layers": o.CropNLayers, "crop_nms_thresh": o.CropNMSThresh, "crop_overlap_ratio": o.CropOverlapRatio,
		"crop_n_points_downscale_factor": o.CropNPointsDownscaleFactor, "min_mask_region_area": o.MinMaskRegionArea,
		"output_mode": string(o.OutputMode),
	}
}

// modelInfo is one entry of GET /v1/models.
type modelInfo struct {
	Name            string `json:"name"`
	Identity        string `json:"identity"`
	EncoderIdentity string `json:"encoder_identity"`
	// ImageSize is the encoder's input side; LowResSize the side of the
	// low-res masks (mask_input).
	ImageSize  int    `json:"image_size"`
	LowResSize int    `json:"low_res_size"`
	Checkpoint string `json:"checkpoint"`
	Backend    string `json:"backend"`
	HasEncoder bool   `json:"has_image_encoder"`
	// AutoDefaults are the options /auto uses for what a request leaves out.
	AutoDefaults map[string]any `json:"auto_defaults"`
	Limits       map[string]any `json:"limits"`
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	c := &s.model.Config
	writeJSON(w, http.StatusOK, map[string]any{"models": []modelInfo{{
		Name: c.Name, Identity: s.model.Identity(), EncoderIdentity: s.modelID, ImageSize: c.ImgSize, LowResSize: c.LowResSize(),
		Checkpoint: s.checkpointName(), Backend: s.model.Backend().Name(), HasEncoder: s.model.HasImageEncoder(),
		AutoDefaults: optionsJSON(*s.opts.AutoDefaults),
		Limits: map[string]any{"max_body_bytes": s.opts.MaxBodyBytes, "max_pixels": s.opts.MaxPixels,
			"max_prompts": s.opts.MaxPrompts, "max_points": s.opts.MaxPoints},
	}}})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	out := map[string]string{"status": "ready"}
	if s.cache.redis != nil {
		// Redis down does not make the replica unready: it still answers,
		// encoding what it cannot find.
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		out["redis"] = "ok"
		if err := s.cache.redis.ping(ctx); err != nil {
			out["redis"] = err.Error()
		}
	}
	writeJSON(w, http.StatusOK, out)
}
