package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/imgproc"
)

// smallPNG is a distinct w×h PNG per seed (another image, another id).
func smallPNG(t testing.TB, w, h int, seed uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x) ^ seed, uint8(y) + seed, seed, 255})
		}
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

// bombPNG is a valid PNG signature and IHDR claiming w×h RGBA pixels,
// then a few bytes of IDAT: what a decompression bomb looks like before
// its (highly compressible) data.
func bombPNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x01, 0x00, 0x00, 0xff, 0xff})
	chunk("IEND", nil)
	return b.Bytes()
}

// TestErrors checks every error status of the API: the JSON {error, code}
// body and the status for each kind of bad request.
func TestErrors(t *testing.T) {
	s := newTestServer(t, nil, Options{MaxBodyBytes: 600 << 10, MaxPixels: 1 << 20, MaxPoints: 4, MaxPrompts: 3})
	sc := loadScene(t, 2)
	id := s.upload(t, sc.png).ID
	unknown := strings.Repeat("ab", 32)
	pred := "/v1/images/" + id + "/predict"
	for _, tc := range []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		status      int
		code        string
	}{
		{"empty upload", "POST", "/v1/images", "image/png", "", 400, "empty_body"},
		{"not an image", "POST", "/v1/images", "image/png", "GIF? no, plain text", 415, "not_an_image"},
		{"truncated PNG", "POST", "/v1/images", "image/png", string(sc.png[:200]), 415, "not_an_image"},
		{"body over -max-body", "POST", "/v1/images", "application/octet-stream", strings.Repeat("x", 700<<10), 413, "too_large"},
		{"pixels over -max-pixels", "POST", "/v1/images", "image/png", string(bombPNG(2000, 1000)), 413, "too_many_pixels"},
		{"multipart without a file", "POST", "/v1/images", "multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XX--\r\n", 400, "empty_body"},
		{"unknown id", "POST", "/v1/images/" + unknown + "/predict", "application/json", `{"points": [[1, 1]]}`, 404, "unknown_image"},
		{"not an id", "POST", "/v1/images/..%2f..%2fetc/predict", "application/json", `{"points": [[1, 1]]}`, 404, ""},
		{"unknown id, GET", "GET", "/v1/images/" + unknown, "", "", 404, "unknown_image"},
		{"unknown id, auto", "POST", "/v1/images/" + unknown + "/auto", "application/json", `{}`, 404, "unknown_image"},
		{"bad JSON", "POST", pred, "application/json", `{"points": [[1, 1]`, 400, "bad_json"},
		{"misspelt field", "POST", pred, "application/json", `{"point": [[1, 1]]}`, 400, "bad_json"},
		{"two JSON values", "POST", pred, "application/json", `{} {}`, 400, "bad_json"},
		{"label 2", "POST", pred, "application/json", `{"points": [[1, 1]], "labels": [2]}`, 400, "bad_prompt"},
		{"labels without points", "POST", pred, "application/json", `{"labels": [1]}`, 400, "bad_prompt"},
		{"too many points", "POST", pred, "application/json", `{"points": [[1,1],[2,2],[3,3],[4,4],[5,5]]}`, 400, "bad_prompt"},
		{"too many boxes", "POST", pred, "application/json", `{"boxes": [[0,0,9,9],[0,0,9,9],[0,0,9,9],[0,0,9,9]]}`, 400, "bad_prompt"},
		{"box and boxes", "POST", pred, "application/json", `{"box": [0,0,9,9], "boxes": [[0,0,9,9]]}`, 400, "bad_prompt"},
		{"no prompt", "POST", pred, "application/json", `{}`, 400, "bad_prompt"},
		// Points outside the image are allowed (as SamPredictor allows them); beyond float32, not.
		{"point far outside the image", "POST", pred, "application/json", `{"points": [[1e300, 5]]}`, 400, "bad_prompt"},
		{"inverted box", "POST", pred, "application/json", `{"box": [50, 50, 10, 10]}`, 400, "bad_prompt"},
		{"unknown mask_input", "POST", pred, "application/json", `{"points": [[1, 1]], "mask_input": "lr_nope"}`, 400, "unknown_mask_input"},
		{"bad format", "POST", pred + "?format=jpeg", "application/json", `{"points": [[1, 1]]}`, 400, "bad_format"},
		{"formats disagree", "POST", pred + "?format=rle", "application/json", `{"points": [[1, 1]], "format": "png"}`, 400, "bad_format"},
		{"JSON body over 1 MiB", "POST", pred, "application/json", `{"points": [` + strings.Repeat("[1, 1],", 200000) + `[1, 1]]}`, 413, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := do(t, tc.method, s.url+tc.path, tc.contentType, []byte(tc.body))
			require.Equal(t, tc.status, code, "%s", b)
			if tc.code == "" {
				return // the mux's own 404 for a path that matches no route
			}
			_, c := errorBody(t, b)
			require.Equal(t, tc.code, c)
		})
	}
	// Nothing but the first upload reached the encoder.
	require.EqualValues(t, 1, s.encoderRuns(t))
	// Client errors are counted by status.
	mfs := s.scrape(t)
	for _, code := range []string{"400", "404", "413", "415"} {
		require.Positive(t, metricValue(mfs, "sam_http_request_duration_seconds", "code", code), "requests answered %s", code)
	}
}

// TestDecompressionBomb sends a 2 KB PNG whose header claims 100000 ×
// 100000 pixels (40 GB as RGBA): it is refused from the header (413),
// before any pixel is decoded or allocated, and the encoder never runs.
func TestDecompressionBomb(t *testing.T) {
	s := newTestServer(t, nil, Options{})
	bomb := bombPNG(100000, 100000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	code, b := do(t, "POST", s.url+"/v1/images", "image/png", bomb)
	took := time.Since(t0)
	runtime.ReadMemStats(&after)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "%s", b)
	msg, c := errorBody(t, b)
	require.Equal(t, "too_many_pixels", c)
	require.Contains(t, msg, "100000x100000")
	alloc := after.TotalAlloc - before.TotalAlloc
	require.Less(t, alloc, uint64(64<<20), "bytes allocated while refusing the bomb")
	require.EqualValues(t, 0, s.encoderRuns(t))
	t.Logf("bomb refused in %v, %d KiB allocated (the whole process)", took.Round(time.Microsecond), alloc>>10)
}

// holdEncoder makes the server's encoder wait in the worker until release
// is closed (or its job is cancelled); started receives one value per job
// that reached the encoder, cancelled one per job whose context ended
// while it waited.
type holdEncoder struct {
	release   chan struct{}
	started   chan struct{}
	cancelled chan error
	once      sync.Once
}

func hold(s *testServer) *holdEncoder {
	h := &holdEncoder{release: make(chan struct{}), started: make(chan struct{}, 64), cancelled: make(chan error, 64)}
	s.encodeHook = func(ctx context.Context) error {
		h.started <- struct{}{}
		select {
		case <-h.release:
			return nil
		case <-ctx.Done():
			h.cancelled <- ctx.Err()
			return ctx.Err()
		}
	}
	return h
}

func (h *holdEncoder) letGo() { h.once.Do(func() { close(h.release) }) }

func wait[T any](t testing.TB, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// TestSingleFlight uploads one image from 8 clients at once while the
// encoder is held: all get the same answer, the encoder runs once, and
// /metrics says so.
func TestSingleFlight(t *testing.T) {
	s := newTestServer(t, nil, Options{})
	h := hold(s)
	defer h.letGo()
	data := smallPNG(t, 96, 64, 1)
	const n = 8
	infos := make([]imageResponse, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { infos[i] = s.upload(t, data) })
	}
	wait(t, h.started, "the encoder to start")
	// Every client has joined the flight before the encoder may finish.
	require.Eventually(t, func() bool {
		s.embeds.mu.Lock()
		defer s.embeds.mu.Unlock()
		for _, f := range s.embeds.m {
			return f.waiters == n
		}
		return false
	}, 10*time.Second, time.Millisecond)
	h.letGo()
	wg.Wait()
	sources := map[string]int{}
	for _, info := range infos {
		require.Equal(t, infos[0].ID, info.ID)
		require.Equal(t, [2]int{96, 64}, [2]int{info.Width, info.Height})
		sources[info.Source]++
	}
	require.Equal(t, map[string]int{"encoded": 1, "shared": n - 1}, sources)
	mfs := s.scrape(t)
	require.EqualValues(t, 1, metricValue(mfs, "sam_encoder_runs_total"))
	require.EqualValues(t, 1, metricValue(mfs, "sam_uploads_total", "result", "encoded"))
	require.EqualValues(t, n-1, metricValue(mfs, "sam_uploads_total", "result", "shared"))
	require.Len(t, h.started, 0, "no second encoder run")
}

// TestQueueFull holds the only encoder worker with one job and fills the
// one-job backlog with another: a third image is refused at once with
// 503 and Retry-After, while prompts on an image already encoded are
// answered (the decoder never waits behind the encoder queue).
func TestQueueFull(t *testing.T) {
	s := newTestServer(t, nil, Options{Encoders: 1, QueueSize: 1})
	sc := loadScene(t, 2)
	id := s.upload(t, sc.png).ID
	h := hold(s)
	defer h.letGo()
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Go(func() {
			codes[i], _ = do(t, "POST", s.url+"/v1/images", "image/png", smallPNG(t, 64, 64, uint8(10+i)))
		})
		if i == 0 {
			wait(t, h.started, "the first job to reach the encoder")
		}
	}
	require.Eventually(t, func() bool { return metricValue(s.scrape(t), "sam_encoder_queue_depth") == 1 }, 10*time.Second, time.Millisecond)

	req, _ := http.NewRequest("POST", s.url+"/v1/images", bytes.NewReader(smallPNG(t, 64, 64, 99)))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var e map[string]string
	require.NoError(t, json.NewDecoder(res.Body).Decode(&e))
	res.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.Equal(t, "queue_full", e["code"])
	require.Equal(t, "1", res.Header.Get("Retry-After"))

	// The decoder answers meanwhile, in well under the encoder's hold.
	t0 := time.Now()
	s.predict(t, id, map[string]any{"points": [][2]float64{{178, 204}}, "format": "rle"})
	t.Logf("predict with a full encoder queue: %v", time.Since(t0).Round(time.Microsecond))

	h.letGo()
	wg.Wait()
	require.Equal(t, []int{200, 200}, codes)
	mfs := s.scrape(t)
	require.EqualValues(t, 1, metricValue(mfs, "sam_encoder_queue_rejected_total"))
	require.EqualValues(t, 3, metricValue(mfs, "sam_encoder_runs_total"))
	require.EqualValues(t, 0, metricValue(mfs, "sam_encoder_queue_depth"))
}

// TestCancelStopsWork: a client that goes away while its image is being
// encoded gets its request recorded as 499, and the encoding is cancelled
// (the encoder sees its context end and the embedding is never made).
// Another client of the same image keeps the work alive until it too
// leaves.
func TestCancelStopsWork(t *testing.T) {
	s := newTestServer(t, nil, Options{})
	h := hold(s)
	defer h.letGo()
	data := smallPNG(t, 80, 80, 3)

	send := func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", s.url+"/v1/images", bytes.NewReader(data))
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		return err
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { errs <- send(ctx1) }()
	wait(t, h.started, "the encoder to start")
	go func() { errs <- send(ctx2) }()
	require.Eventually(t, func() bool {
		s.embeds.mu.Lock()
		defer s.embeds.mu.Unlock()
		for _, f := range s.embeds.m {
			return f.waiters == 2
		}
		return false
	}, 10*time.Second, time.Millisecond)

	cancel1()
	require.ErrorIs(t, wait(t, errs, "the first client to give up"), context.Canceled)
	select {
	case err := <-h.cancelled:
		t.Fatalf("the encoding was cancelled (%v) while a client still waited for it", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel2()
	require.ErrorIs(t, wait(t, errs, "the second client to give up"), context.Canceled)
	require.ErrorIs(t, wait(t, h.cancelled, "the encoder to see the cancellation"), context.Canceled)

	require.Eventually(t, func() bool {
		return metricValue(s.scrape(t), "sam_http_request_duration_seconds", "route", "POST /v1/images", "code", "499") == 2
	}, 10*time.Second, 5*time.Millisecond)
	require.EqualValues(t, 0, s.encoderRuns(t))
	e, _, err := s.cache.embedding(context.Background(), s.modelID, sha(data))
	require.NoError(t, err)
	require.Nil(t, e, "no embedding from a cancelled encoding")

	// The next upload starts afresh (no cancelled flight to join).
	h.letGo()
	require.Equal(t, "encoded", s.upload(t, data).Source)
}

// TestTimeout: a request past -timeout is answered 504 and its work stops.
func TestTimeout(t *testing.T) {
	s := newTestServer(t, nil, Options{Timeout: 200 * time.Millisecond})
	h := hold(s)
	defer h.letGo()
	code, b := do(t, "POST", s.url+"/v1/images", "image/png", smallPNG(t, 32, 32, 5))
	require.Equal(t, http.StatusGatewayTimeout, code, "%s", b)
	_, c := errorBody(t, b)
	require.Equal(t, "timeout", c)
	require.True(t, errors.Is(wait(t, h.cancelled, "the encoder to be cancelled"), context.Canceled))
}

// TestAuthAndCORS: with a token, /v1/ and /metrics need it and the probes
// and the web app do not; CORS headers only for the configured origin.
func TestAuthAndCORS(t *testing.T) {
	s := newTestServer(t, nil, Options{Token: "s3cret", CORSOrigin: "https://app.example"})
	for _, tc := range []struct {
		path   string
		header []string
		status int
	}{
		{"/v1/models", nil, 401},
		{"/v1/models", []string{"Authorization", "Bearer wrong"}, 401},
		{"/v1/models", []string{"Authorization", "Bearer s3cret"}, 200},
		{"/metrics", nil, 401},
		{"/metrics", []string{"Authorization", "Bearer s3cret"}, 200},
		{"/healthz", nil, 200},
		{"/readyz", nil, 200},
		{"/", nil, 200},
	} {
		code, b := do(t, "GET", s.url+tc.path, "", nil, tc.header...)
		require.Equal(t, tc.status, code, "%s %v: %s", tc.path, tc.header, b)
		if code == 401 {
			_, c := errorBody(t, b)
			require.Equal(t, "unauthorized", c)
		}
	}
	pre := func(origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", s.url+"/v1/images", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	res := pre("https://app.example")
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.Equal(t, "https://app.example", res.Header.Get("Access-Control-Allow-Origin"))
	res = pre("https://evil.example")
	require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"))

	// Without -cors, no CORS header at all.
	s2 := newTestServer(t, nil, Options{})
	req, _ := http.NewRequest("GET", s2.url+"/v1/models", nil)
	req.Header.Set("Origin", "https://app.example")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"))
}

// TestShutdownDrains: Shutdown makes /readyz answer 503, lets the request
// in flight (an upload whose encoder is running) finish with 200, then
// closes the model; work arriving meanwhile is refused.
func TestShutdownDrains(t *testing.T) {
	m := loadDemo(t)
	s, err := New(context.Background(), m, Options{Logger: testLogger(t)})
	require.NoError(t, err)
	ts := &testServer{Server: s}
	h := hold(ts)
	defer h.letGo()
	ln := newListener(t)
	ts.url = "http://" + ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	done := make(chan int, 1)
	go func() {
		code, _ := do(t, "POST", ts.url+"/v1/images", "image/png", smallPNG(t, 48, 48, 7))
		done <- code
	}()
	wait(t, h.started, "the upload to reach the encoder")
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	require.Eventually(t, s.draining.Load, 5*time.Second, time.Millisecond)
	rec := newRecorder()
	s.Handler().ServeHTTP(rec, httpRequest("GET", "/readyz"))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	rec = newRecorder()
	s.Handler().ServeHTTP(rec, httpRequest("POST", "/v1/images"))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the request in flight finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	h.letGo()
	require.Equal(t, http.StatusOK, wait(t, done, "the upload in flight"))
	require.NoError(t, wait(t, shut, "Shutdown"))
	require.ErrorIs(t, wait(t, served, "Serve"), http.ErrServerClosed)
	_, err = m.EncodeImage(context.Background(), imgproc.NewRGB(8, 8))
	require.ErrorIs(t, err, sam.ErrClosed, "the model is closed after Shutdown")
}

// TestConcurrentClients: 8 clients at once upload (the same and distinct
// images), predict in every format, refine with each other's handles and
// look images up; everything answers 200 (and -race finds nothing).
func TestConcurrentClients(t *testing.T) {
	s := newTestServer(t, nil, Options{Decoders: 3})
	imgs := [][]byte{loadScene(t, 2).png, smallPNG(t, 120, 90, 21), smallPNG(t, 90, 120, 22)}
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for i := range 6 {
				data := imgs[(c+i)%len(imgs)]
				info := s.upload(t, data)
				format := []string{formatPNG, formatRLE, formatPolygon}[(c+i)%3]
				res := s.predict(t, info.ID, map[string]any{"points": [][2]float64{{float64(info.Width) / 2, float64(info.Height) / 2}}, "format": format})
				handle := res.Predictions[0].Masks[res.Predictions[0].Best].Logits
				s.predict(t, info.ID, map[string]any{"points": [][2]float64{{1, 1}}, "labels": []int{0}, "mask_input": handle,
					"multimask_output": false, "format": formatRLE})
				code, b := do(t, "GET", s.url+"/v1/images/"+info.ID, "", nil)
				require.Equal(t, http.StatusOK, code, "%s", b)
			}
		})
	}
	wg.Wait()
	mfs := s.scrape(t)
	require.EqualValues(t, len(imgs), metricValue(mfs, "sam_encoder_runs_total"), "each image encoded once")
	require.EqualValues(t, 8*6*2, metricValue(mfs, "sam_http_request_duration_seconds", "route", "POST /v1/images/{id}/predict", "code", "200"))
}

// TestWebApp: the page and its files come from the binary, load nothing
// from elsewhere (no CDN: the Content-Security-Policy allows 'self' only),
// and the page names only files that are there.
func TestWebApp(t *testing.T) {
	s := newTestServer(t, nil, Options{})
	res, err := http.Get(s.url + "/")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'self'")
	entries, err := webFiles.ReadDir("web")
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		b, err := webFiles.ReadFile("web/" + e.Name())
		require.NoError(t, err)
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			require.NotContains(t, string(b), bad, "web/%s", e.Name())
		}
		code, body := do(t, "GET", s.url+"/"+e.Name(), "", nil)
		require.Equal(t, http.StatusOK, code, e.Name())
		require.Equal(t, b, body)
	}
	require.ElementsMatch(t, []string{"index.html", "app.js", "style.css"}, names)
	code, _ := do(t, "GET", s.url+"/../serve.go", "", nil)
	require.NotEqual(t, http.StatusOK, code)
}
