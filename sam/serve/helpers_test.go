package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn"
	_ "github.com/samgo/samgo/sam/nn/cpu" // registers the "cpu" device
	"github.com/samgo/samgo/tests/demoscene"
)

// demoDir is the bundled demo model and its scenes (tests/testdata/demo,
// README.md there): a small SAM trained on synthetic shapes, 256-px input.
var demoDir = demoscene.Dir

// loadDemo loads the demo model on the CPU backend.
func loadDemo(t testing.TB) *sam.Model {
	t.Helper()
	b, err := nn.Open("cpu", nn.Options{})
	require.NoError(t, err)
	m, err := sam.Load(filepath.Join(demoDir, "model.safetensors"), b, sam.LoadOptions{})
	require.NoError(t, err)
	return m
}

// otherModel is a model with the demo's config and random weights: another
// encoder identity, the same embedding shape (so only the cache key tells
// their embeddings apart).
func otherModel(t testing.TB) *sam.Model {
	t.Helper()
	cfg, err := sam.ReadConfig(filepath.Join(demoDir, "config.json"))
	require.NoError(t, err)
	b, err := nn.Open("cpu", nn.Options{})
	require.NoError(t, err)
	m, err := sam.NewRandom(cfg, b, 7)
	require.NoError(t, err)
	return m
}

// testServer is a Server behind an httptest.Server.
type testServer struct {
	*Server
	ts  *httptest.Server
	url string
}

// testLogger sends the server's warnings to the test log (requests are
// logged at info and left out).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// newTestServer starts a server for m (nil: the demo model) with opts; the
// test's cleanup stops it (HTTP first, then Shutdown, which closes m).
func newTestServer(t testing.TB, m *sam.Model, opts Options) *testServer {
	t.Helper()
	if m == nil {
		m = loadDemo(t)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := New(context.Background(), m, opts)
	require.NoError(t, err)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
	})
	return &testServer{Server: s, ts: ts, url: ts.URL}
}

// scene is one demo scene: the PNG bytes, the label image (pixel value =
// object id) and the objects with the official predictor's results
// (reference.json).
type scene struct {
	name    string
	png     []byte
	labels  *imgproc.RGB
	w, h    int
	objects []demoscene.Object
}

func loadScene(t testing.TB, k int) *scene {
	t.Helper()
	name := demoscene.Name(k)
	data, err := os.ReadFile(filepath.Join(demoDir, name+".png"))
	require.NoError(t, err)
	labels, err := demoscene.Labels(k)
	require.NoError(t, err)
	ref, err := demoscene.ReadReference()
	require.NoError(t, err)
	return &scene{name: name, png: data, labels: labels, w: labels.W, h: labels.H, objects: ref.Scenes[name].Objects}
}

// object returns the scene's object id.
func (s *scene) object(t testing.TB, id int) demoscene.Object {
	for _, o := range s.objects {
		if o.ID == id {
			return o
		}
	}
	t.Fatalf("%s has no object %d", s.name, id)
	return demoscene.Object{}
}

// mask is the ground truth of object id.
func (s *scene) mask(id int) []bool { return demoscene.ObjectMask(s.labels, id) }

// do sends a request and returns the status and the body.
func do(t testing.TB, method, url, contentType string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, b
}

// upload posts image bytes and decodes the answer (requiring 200).
func (s *testServer) upload(t testing.TB, data []byte) imageResponse {
	t.Helper()
	code, b := do(t, "POST", s.url+"/v1/images", "image/png", data)
	require.Equal(t, http.StatusOK, code, "upload: %s", b)
	var info imageResponse
	require.NoError(t, json.Unmarshal(b, &info))
	return info
}

// imageResponse is what a client reads of POST /v1/images.
type imageResponse = imageInfo

// predict posts a predict request (requiring 200).
func (s *testServer) predict(t testing.TB, id string, req any) predictResponse {
	t.Helper()
	code, b := s.post(t, "/v1/images/"+id+"/predict", req)
	require.Equal(t, http.StatusOK, code, "predict: %s", b)
	var res predictResponse
	require.NoError(t, json.Unmarshal(b, &res))
	return res
}

// post sends v as JSON.
func (s *testServer) post(t testing.TB, path string, v any) (int, []byte) {
	t.Helper()
	body, ok := v.([]byte)
	if !ok {
		var err error
		body, err = json.Marshal(v)
		require.NoError(t, err)
	}
	return do(t, "POST", s.url+path, "application/json", body)
}

// errorBody decodes an error answer and checks its shape.
func errorBody(t testing.TB, b []byte) (msg, code string) {
	t.Helper()
	var e map[string]string
	require.NoError(t, json.Unmarshal(b, &e), "error body %q", b)
	require.NotEmpty(t, e["error"], "error body %q", b)
	require.NotEmpty(t, e["code"], "error body %q", b)
	require.Len(t, e, 2, "error body %q", b)
	return e["error"], e["code"]
}

// scrape reads /metrics and parses the Prometheus text exposition.
func (s *testServer) scrape(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	code, b := do(t, "GET", s.url+"/metrics", "", nil)
	require.Equal(t, http.StatusOK, code)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	require.NoError(t, err)
	return mfs
}

// metricValue is the value of the series of name with labels (name=value
// pairs; a series matches when it has them all): a counter's or gauge's
// value, a histogram's sample count. 0 when there is none.
func metricValue(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf, ok := mfs[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// encoderRuns is sam_encoder_runs_total as /metrics reports it.
func (s *testServer) encoderRuns(t testing.TB) float64 {
	return metricValue(s.scrape(t), "sam_encoder_runs_total")
}

// sha is the image id of data.
func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// newListener listens on a free loopback port (closed by the test's end
// if nothing else closed it).
func newListener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func httpRequest(method, path string) *http.Request { return httptest.NewRequest(method, path, nil) }

// decodePNG decodes image bytes as the server does.
func decodePNG(t testing.TB, data []byte) *imgproc.RGB {
	t.Helper()
	img, err := imgproc.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	return img
}
