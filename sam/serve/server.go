package serve

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
)

// Options configure a Server. The zero value of a field takes its default
// (DefaultOptions states them); Token, CORSOrigin, CacheDir and Redis are
// off unless set.
type Options struct {
	// CacheBytes bounds the in-memory embedding and image cache (LRU).
	CacheBytes int64
	// LogitsBytes bounds the low-res logits kept for refinement
	// (default CacheBytes/8, at least 16 MiB).
	LogitsBytes int64
	// CacheDir, when set, keeps embeddings (as `sam embed` writes them)
	// and uploaded images on disk, bounded by CacheDirBytes, across
	// restarts.
	CacheDir      string
	CacheDirBytes int64
	// Redis, when set (redis://host:6379/0), shares embeddings, images
	// and logits with every replica that names the same Redis, with
	// CacheTTL (refreshed on each read).
	Redis    string
	CacheTTL time.Duration

	// Token, when set, is the bearer token every /v1/ and /metrics
	// request must carry (Authorization: Bearer TOKEN).
	Token string
	// CORSOrigin, when set, is the origin allowed to call the API from a
	// browser ("*" for any); no CORS headers are sent otherwise.
	CORSOrigin string

	// MaxBodyBytes bounds an upload (413 past it); MaxPixels a decoded
	// image (W·H, checked from the header before decoding: 413).
	MaxBodyBytes int64
	MaxPixels    int
	// MaxPrompts bounds the prompts (boxes) of one predict request,
	// MaxPoints the points of one prompt.
	MaxPrompts, MaxPoints int

	// Encoders is the number of encoder workers, QueueSize the encoder
	// jobs that may wait for one (a full queue answers 503).
	Encoders, QueueSize int
	// EncoderThreads, when > 0, runs the encoder workers on a fork of the
	// model's backend with that many threads, leaving the other cores to
	// the decoder (CPU backend).
	EncoderThreads int
	// Decoders bounds the predict requests decoding at once (default
	// GOMAXPROCS); more wait for a slot (or their timeout).
	Decoders int

	// Timeout bounds each request but the automatic mask generator's,
	// which AutoTimeout bounds.
	Timeout, AutoTimeout time.Duration
	// AutoDefaults are the automatic mask generator's options for what a
	// request leaves out (default: amg.DefaultOptions, the official ones).
	AutoDefaults *amg.Options
	// AutoMaxMemory refuses automatic mask generation whose estimated
	// peak memory is larger (amg.Options.MaxMemory; 413).
	AutoMaxMemory int64

	// Logger receives the request log and warnings (default: slog's).
	Logger *slog.Logger
}

// DefaultOptions returns the defaults that zero fields take.
func DefaultOptions() Options {
	return Options{
		CacheBytes:    1 << 30,
		CacheDirBytes: 10 << 30,
		CacheTTL:      24 * time.Hour,
		MaxBodyBytes:  32 << 20,
		MaxPixels:     1 << 25,
		MaxPrompts:    64,
		MaxPoints:     64,
		Encoders:      1,
		QueueSize:     16,
		Decoders:      runtime.GOMAXPROCS(0),
		Timeout:       2 * time.Minute,
		AutoTimeout:   10 * time.Minute,
		AutoMaxMemory: 4 << 30,
	}
}

// withDefaults fills the zero fields.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	set := func(v *int64, def int64) {
		if *v == 0 {
			*v = def
		}
	}
	seti := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&o.CacheBytes, d.CacheBytes)
	set(&o.CacheDirBytes, d.CacheDirBytes)
	set(&o.MaxBodyBytes, d.MaxBodyBytes)
	set(&o.AutoMaxMemory, d.AutoMaxMemory)
	if o.LogitsBytes == 0 {
		o.LogitsBytes = max(o.CacheBytes/8, 16<<20)
	}
	seti(&o.MaxPixels, d.MaxPixels)
	seti(&o.MaxPrompts, d.MaxPrompts)
	seti(&o.MaxPoints, d.MaxPoints)
	seti(&o.Encoders, d.Encoders)
	seti(&o.QueueSize, d.QueueSize)
	seti(&o.Decoders, d.Decoders)
	if o.CacheTTL == 0 {
		o.CacheTTL = d.CacheTTL
	}
	if o.Timeout == 0 {
		o.Timeout = d.Timeout
	}
	if o.AutoTimeout == 0 {
		o.AutoTimeout = d.AutoTimeout
	}
	if o.AutoDefaults == nil {
		a := amg.DefaultOptions()
		o.AutoDefaults = &a
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (o *Options) validate() error {
	switch {
	case o.CacheBytes < 0 || o.CacheDirBytes < 0 || o.LogitsBytes < 0 || o.MaxBodyBytes < 0 || o.AutoMaxMemory < 0:
		return errors.New("serve: negative size")
	case o.MaxPixels < 0 || o.MaxPixels > sam.MaxEmbeddingPixels:
		return fmt.Errorf("serve: max pixels %d outside 1…%d", o.MaxPixels, sam.MaxEmbeddingPixels)
	case o.MaxPrompts < 0 || o.MaxPrompts > sam.MaxPrompts:
		return fmt.Errorf("serve: max prompts %d outside 1…%d", o.MaxPrompts, sam.MaxPrompts)
	case o.MaxPoints < 0 || o.MaxPoints > sam.MaxPoints:
		return fmt.Errorf("serve: max points %d outside 1…%d", o.MaxPoints, sam.MaxPoints)
	case o.Encoders < 0 || o.Encoders > 64 || o.QueueSize < 0 || o.QueueSize > 1<<16 || o.Decoders < 0 || o.Decoders > 1024:
		return errors.New("serve: encoders 1…64, queue size 1…65536, decoders 1…1024")
	case o.Timeout < 0 || o.AutoTimeout < 0 || o.CacheTTL < 0:
		return errors.New("serve: negative duration")
	}
	return o.AutoDefaults.Validate()
}

// Server answers the API and serves the web app for one model. It owns
// the model: Shutdown closes it.
type Server struct {
	opts     Options
	model    *sam.Model // decoder work, and the identity
	encModel *sam.Model // encoder work: model, or a fork of it (EncoderThreads)
	modelID  string     // the cache key's model part: the encoder identity
	cache    *cache
	queue    *queue
	embeds   flights[*sam.Embedding]
	// predictors are idle decoders with an embedding set (see predictorPool).
	predictors *predictorPool
	decoders   chan struct{}
	met        *metrics
	log        *slog.Logger
	handler    http.Handler

	// base is the life of work that outlives a request (an encoding that
	// several uploads wait for); cancelled when Shutdown runs out of time.
	base       context.Context
	cancelBase context.CancelFunc
	draining   atomic.Bool

	mu       sync.Mutex
	http     *http.Server
	shutdown sync.Once
	shutErr  error

	// encodeHook, when set (by tests), runs in the encoder worker before
	// the encoder, with the job's context; an error ends the job. It is how
	// a test holds the encoder busy or watches a cancellation arrive.
	encodeHook func(ctx context.Context) error
}

//go:embed web
var webFiles embed.FS

//go:embed openapi.yaml
var openAPI []byte

// New returns a server for m (which it owns from now on: Shutdown closes
// it, also when New fails).
func New(ctx context.Context, m *sam.Model, opts Options) (s *Server, err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s = &Server{opts: opts, model: m, encModel: m, log: opts.Logger, met: newMetrics(),
		decoders: make(chan struct{}, opts.Decoders)}
	s.modelID = m.EncoderIdentity()
	if s.modelID == "" {
		// A decoder-only model: embeddings come from elsewhere, and are
		// keyed by the whole model's identity.
		s.modelID = "decoder-" + m.Identity()
	}
	if opts.EncoderThreads > 0 && m.HasImageEncoder() {
		f, err := m.Fork(opts.EncoderThreads)
		if err != nil {
			return nil, fmt.Errorf("serve: encoder threads: %w", err)
		}
		s.encModel = f
	}
	s.cache = &cache{mem: newLRU(opts.CacheBytes), logits: newLRU(opts.LogitsBytes), met: s.met, log: s.log}
	if opts.CacheDir != "" {
		if s.cache.disk, err = openDiskTier(opts.CacheDir, opts.CacheDirBytes); err != nil {
			return nil, err
		}
	}
	if opts.Redis != "" {
		if s.cache.redis, err = openRedis(ctx, opts.Redis, opts.CacheTTL); err != nil {
			return nil, err
		}
	}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.queue = newQueue(opts.Encoders, opts.QueueSize, s.met)
	s.predictors = &predictorPool{max: opts.Decoders}
	s.registerGauges()
	s.handler = s.routes()
	return s, nil
}

// registerGauges adds the series read at scrape time.
func (s *Server) registerGauges() {
	for _, t := range []struct {
		tier string
		c    *lru
	}{{tierMemory, s.cache.mem}, {"logits", s.cache.logits}} {
		c := t.c
		s.met.gaugeFunc("sam_cache_bytes", "Bytes held by a cache tier.", prometheus.Labels{"tier": t.tier},
			func() float64 { _, b := c.stats(); return float64(b) })
		s.met.gaugeFunc("sam_cache_entries", "Entries held by a cache tier.", prometheus.Labels{"tier": t.tier},
			func() float64 { n, _ := c.stats(); return float64(n) })
	}
	if d := s.cache.disk; d != nil {
		s.met.gaugeFunc("sam_cache_bytes", "Bytes held by a cache tier.", prometheus.Labels{"tier": tierDisk},
			func() float64 { _, b := d.index.stats(); return float64(b) })
		s.met.gaugeFunc("sam_cache_entries", "Entries held by a cache tier.", prometheus.Labels{"tier": tierDisk},
			func() float64 { n, _ := d.index.stats(); return float64(n) })
	}
	// A GPU backend reports its memory pool; on the CPU the Go and process
	// collectors' heap and RSS series are the backend's memory.
	if b, ok := s.model.Backend().(interface {
		MemoryInUse() int64
		PeakMemory() int64
	}); ok {
		labels := prometheus.Labels{"backend": s.model.Backend().Name()}
		s.met.gaugeFunc("sam_backend_memory_bytes", "Device memory in use by the backend's pool.", labels, func() float64 { return float64(b.MemoryInUse()) })
		s.met.gaugeFunc("sam_backend_memory_peak_bytes", "Peak device memory of the backend's pool.", labels, func() float64 { return float64(b.PeakMemory()) })
	}
}

// Handler returns the server's HTTP handler (API, web app, probes, metrics).
func (s *Server) Handler() http.Handler { return s.handler }

// Registry returns the server's Prometheus registry (what /metrics serves).
func (s *Server) Registry() *prometheus.Registry { return s.met.reg }

// ModelID is the key under which the server caches embeddings: the
// model's encoder identity.
func (s *Server) ModelID() string { return s.modelID }

// route is one entry of the API: its ServeMux pattern, the timeout of its
// requests (0: none, for the probes and the metrics, which must answer
// even when everything else is slow) and its handler. The table is what
// the mux serves and what the test comparing it with openapi.yaml reads.
type route struct {
	pattern string
	timeout time.Duration
	h       http.HandlerFunc
}

func (s *Server) routeTable() []route {
	metricsHandler := promhttp.HandlerFor(s.met.reg, promhttp.HandlerOpts{})
	return []route{
		{"POST /v1/images", s.opts.Timeout, s.handleUpload},
		{"GET /v1/images/{id}", s.opts.Timeout, s.handleImage},
		{"POST /v1/images/{id}/predict", s.opts.Timeout, s.handlePredict},
		{"POST /v1/images/{id}/auto", s.opts.AutoTimeout, s.handleAuto},
		{"GET /v1/models", s.opts.Timeout, s.handleModels},
		{"GET /v1/openapi.yaml", s.opts.Timeout, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/yaml")
			w.Write(openAPI)
		}},
		{"GET /healthz", 0, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}},
		{"GET /readyz", 0, s.handleReady},
		{"GET /metrics", 0, metricsHandler.ServeHTTP},
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		var h http.Handler = rt.h
		if rt.timeout > 0 {
			h = s.withTimeout(rt.timeout, rt.h)
		}
		mux.Handle(rt.pattern, s.instrument(rt.pattern, h))
	}
	web, _ := fs.Sub(webFiles, "web")
	static := http.FileServerFS(web)
	mux.Handle("GET /", s.instrument("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Everything the page loads comes from here: no CDN, no inline script.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		static.ServeHTTP(w, r)
	})))
	return s.cors(s.auth(mux))
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument times the handler into the latency histogram under route and
// logs the request.
func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				// A bug must not take the server (and every other
				// request) down: answer 500 and log it.
				s.log.Error("panic in handler", "route", route, "panic", p)
				if sw.status == 0 {
					writeJSON(sw, http.StatusInternalServerError, map[string]string{"error": "internal error", "code": "internal"})
				}
			}
			code := sw.status
			if code == 0 {
				code = http.StatusOK
			}
			d := time.Since(t0)
			s.met.requests.WithLabelValues(route, r.Method, fmt.Sprint(code)).Observe(d.Seconds())
			if route != "GET /metrics" && route != "GET /healthz" && route != "GET /readyz" {
				s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", code, "ms", float64(d.Microseconds())/1000)
			}
		}()
		h.ServeHTTP(sw, r)
	})
}

// withTimeout bounds the request's context.
func (s *Server) withTimeout(d time.Duration, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h(w, r.WithContext(ctx))
	})
}

// auth requires the bearer token on the API and the metrics when one is set.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.opts.Token == "" {
		return next
	}
	want := []byte("Bearer " + s.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/metrics" {
			if got := []byte(r.Header.Get("Authorization")); subtle.ConstantTimeCompare(got, want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sam"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token", "code": "unauthorized"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// cors answers preflights and marks responses for the one allowed origin;
// with no CORSOrigin it does nothing (browsers then refuse cross-origin
// calls, the safe default for a server on a network).
func (s *Server) cors(next http.Handler) http.Handler {
	allowed := s.opts.CORSOrigin
	if allowed == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && (allowed == "*" || origin == allowed) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", map[bool]string{true: "*", false: origin}[allowed == "*"])
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Serve answers on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.opts.Timeout,
		WriteTimeout:      max(s.opts.Timeout, s.opts.AutoTimeout) + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.http = hs
	s.mu.Unlock()
	return hs.Serve(ln)
}

// Shutdown drains the server: /readyz answers 503, the listener closes,
// requests in flight finish (and the encodings they wait for), then the
// encoder workers stop, Redis is disconnected and the model is closed.
// When ctx ends first, the remaining work is cancelled and connections
// are closed; Shutdown then still closes the model, after the calls in
// flight return. Later calls return the first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Do(func() {
		s.mu.Lock()
		s.draining.Store(true)
		hs := s.http
		s.mu.Unlock()
		var err error
		if hs != nil {
			if err = hs.Shutdown(ctx); err != nil {
				s.cancelBase()
				hs.Close()
			}
		}
		s.cancelBase()
		s.queue.close()
		if s.cache.redis != nil {
			s.cache.redis.close()
		}
		s.predictors.close()
		if s.encModel != s.model {
			s.encModel.Close()
		}
		if cerr := s.model.Close(); err == nil {
			err = cerr
		}
		s.shutErr = err
	})
	return s.shutErr
}

// checkpointName is the model's checkpoint file name (no folders: the
// server's paths are its own business).
func (s *Server) checkpointName() string { return filepath.Base(s.model.Path) }

// predictorPool keeps up to max idle Predictors with their embedding set,
// most recently used last. A person clicking on one image sends prompt
// after prompt for one embedding, and the pool mostly hands back a
// predictor that holds it already: SetEmbedding checks every value of the
// embedding, transposes it and uploads it to the backend (several
// milliseconds for ViT-B on the CPU, a tenth of a prompt's decoding).
// Idle predictors keep their embedding (and its tokens on the backend)
// alive past its eviction from the cache: at most max of them.
type predictorPool struct {
	mu   sync.Mutex
	idle []*sam.Predictor
	max  int
}

// get returns a predictor with e set: an idle one that holds e (the same
// cached value), else the least recently used one, or a new one, set to e.
func (pp *predictorPool) get(m *sam.Model, e *sam.Embedding) (*sam.Predictor, error) {
	pp.mu.Lock()
	var p *sam.Predictor
	for i := len(pp.idle) - 1; i >= 0; i-- {
		if pp.idle[i].Embedding() == e {
			p = pp.idle[i]
			pp.idle = slices.Delete(pp.idle, i, i+1)
			pp.mu.Unlock()
			return p, nil
		}
	}
	if len(pp.idle) > 0 && len(pp.idle) >= pp.max {
		p = pp.idle[0]
		pp.idle = slices.Delete(pp.idle, 0, 1)
	}
	pp.mu.Unlock()
	if p == nil {
		p = sam.NewPredictor(m)
	}
	if err := p.SetEmbedding(e); err != nil {
		p.Reset()
		return nil, err
	}
	return p, nil
}

// put returns p to the pool; past max, the least recently used one lets
// its embedding go.
func (pp *predictorPool) put(p *sam.Predictor) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.idle = append(pp.idle, p)
	for len(pp.idle) > pp.max {
		pp.idle[0].Reset()
		pp.idle = slices.Delete(pp.idle, 0, 1)
	}
}

// close hands every idle predictor's tokens back to the backend.
func (pp *predictorPool) close() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for _, p := range pp.idle {
		p.Reset()
	}
	pp.idle = nil
}
