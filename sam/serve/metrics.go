package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series, on a registry of its own
// (two servers in one process, as in the tests, do not collide).
type metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.HistogramVec // route, method, code
	encodeSeconds prometheus.Histogram
	decodeSeconds prometheus.Histogram
	autoSeconds   prometheus.Histogram
	encoderRuns   prometheus.Counter
	prompts       prometheus.Counter
	uploads       *prometheus.CounterVec // result: encoded, cached, shared
	cacheHits     *prometheus.CounterVec // tier
	cacheMisses   *prometheus.CounterVec // tier
	cacheErrors   *prometheus.CounterVec // tier
	queueDepth    prometheus.Gauge
	encoderBusy   prometheus.Gauge
	queueRejected prometheus.Counter
}

// latencyBuckets span a decoder answer on a GPU (a millisecond) to an
// automatic mask generation on a CPU (minutes).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sam_http_request_duration_seconds", Help: "HTTP request latency by route (the matched pattern), method and status code.",
		Buckets: latencyBuckets,
	}, []string{"route", "method", "code"})
	m.encodeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sam_encoder_duration_seconds", Help: "Image encoder time per image (decoding the upload included).", Buckets: latencyBuckets,
	})
	m.decodeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sam_decoder_duration_seconds", Help: "Prompt encoder + mask decoder + upscaling time per predict request.", Buckets: latencyBuckets,
	})
	m.autoSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sam_auto_duration_seconds", Help: "Automatic mask generator time per request.", Buckets: latencyBuckets,
	})
	m.encoderRuns = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sam_encoder_runs_total", Help: "Images this replica ran the image encoder on (for uploads; the automatic mask generator's own runs are not counted).",
	})
	m.prompts = prometheus.NewCounter(prometheus.CounterOpts{Name: "sam_prompts_total", Help: "Prompts answered by the mask decoder."})
	m.uploads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sam_uploads_total", Help: "Image uploads by result: encoded here, cached (found in a cache tier), shared (joined a concurrent upload of the same image).",
	}, []string{"result"})
	m.cacheHits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sam_cache_hits_total", Help: "Embedding cache hits by tier."}, []string{"tier"})
	m.cacheMisses = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sam_cache_misses_total", Help: "Embedding cache misses by tier."}, []string{"tier"})
	m.cacheErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sam_cache_errors_total", Help: "Disk or Redis errors by tier (the lookup goes on as a miss)."}, []string{"tier"})
	m.queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sam_encoder_queue_depth", Help: "Encoder jobs waiting for a worker."})
	m.encoderBusy = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sam_encoder_busy_workers", Help: "Encoder workers running a job."})
	m.queueRejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "sam_encoder_queue_rejected_total", Help: "Encoder jobs refused because the queue was full (503)."})
	m.reg.MustRegister(m.requests, m.encodeSeconds, m.decodeSeconds, m.autoSeconds, m.encoderRuns, m.prompts, m.uploads,
		m.cacheHits, m.cacheMisses, m.cacheErrors, m.queueDepth, m.encoderBusy, m.queueRejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) cacheHit(tier string)  { m.cacheHits.WithLabelValues(tier).Inc() }
func (m *metrics) cacheMiss(tier string) { m.cacheMisses.WithLabelValues(tier).Inc() }

// gaugeFunc registers a gauge read at scrape time.
func (m *metrics) gaugeFunc(name, help string, labels prometheus.Labels, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f))
}
