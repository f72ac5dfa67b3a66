package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/nn"
)

// The benchmarks answer a 1-point prompt on a cached embedding, directly
// (sam.Predictor.Predict) and through the server (HTTP on loopback, JSON,
// the masks encoded), so the difference is the server's overhead. They
// use the demo model unless SAMGO_SERVE_BENCH=vit_b, which serves a ViT-B
// with random weights and a 1024×1024 image's embedding of random values
// (decoder work does not depend on the values):
//
//	SAMGO_SERVE_BENCH=vit_b go test -run '^$' -bench . -benchtime 20x ./sam/serve/

// benchModel returns the model, an embedding for it and the image side.
func benchModel(b *testing.B) (*sam.Model, *sam.Embedding) {
	b.Helper()
	if os.Getenv("SAMGO_SERVE_BENCH") != "vit_b" {
		m := loadDemo(b)
		sc := loadScene(b, 2)
		p := sam.NewPredictor(m)
		img := decodePNG(b, sc.png)
		require.NoError(b, p.SetImage(context.Background(), img))
		e := p.Embedding()
		p.Reset()
		return m, e
	}
	cfg, ok := sam.Preset("vit_b")
	require.True(b, ok)
	be, err := nn.Open("cpu", nn.Options{})
	require.NoError(b, err)
	m, err := sam.NewRandom(cfg, be, 1)
	require.NoError(b, err)
	return m, randomEmbedding(m, 1024, 1024, 1)
}

// randomEmbedding is an embedding of the model's shape for a w×h image.
func randomEmbedding(m *sam.Model, w, h int, seed uint64) *sam.Embedding {
	c := &m.Config
	g := c.GridSize()
	r := rand.New(rand.NewPCG(seed, 0))
	f := make([]float32, c.PromptEmbedDim*g*g)
	for i := range f {
		f[i] = float32(r.NormFloat64())
	}
	ih, iw := sam.PreprocessShape(h, w, c.ImgSize)
	return &sam.Embedding{Features: f, C: c.PromptEmbedDim, G: g, ImgSize: c.ImgSize,
		OriginalH: h, OriginalW: w, InputH: ih, InputW: iw, Model: m.EncoderIdentity()}
}

// benchServer serves m with e cached under a made-up id.
func benchServer(b *testing.B, m *sam.Model, e *sam.Embedding) (*testServer, string) {
	s := newTestServer(b, m, Options{})
	id := fmt.Sprintf("%064x", 1)
	s.cache.putEmbedding(context.Background(), s.modelID, id, e)
	return s, id
}

func BenchmarkPredict(b *testing.B) {
	m, e := benchModel(b)
	s, id := benchServer(b, m, e)
	pt := [2]float64{float64(e.OriginalW) * 0.4, float64(e.OriginalH) * 0.6}
	b.Run("direct", func(b *testing.B) {
		p := sam.NewPredictor(m)
		require.NoError(b, p.SetEmbedding(e))
		defer p.Reset()
		for b.Loop() {
			_, err := p.Predict(context.Background(), sam.Prompt{Points: []sam.Point{{X: pt[0], Y: pt[1], Label: 1}}})
			require.NoError(b, err)
		}
	})
	for _, format := range []string{formatRLE, formatPNG, formatPolygon} {
		body, _ := json.Marshal(map[string]any{"points": [][2]float64{pt}, "format": format})
		b.Run("http/"+format, func(b *testing.B) {
			for b.Loop() {
				res, err := http.Post(s.url+"/v1/images/"+id+"/predict", "application/json", bytes.NewReader(body))
				require.NoError(b, err)
				var out predictResponse
				require.NoError(b, json.NewDecoder(res.Body).Decode(&out))
				res.Body.Close()
				require.Equal(b, http.StatusOK, res.StatusCode)
			}
		})
	}
}

// BenchmarkLoad sends 1-point prompts (format=rle, as the web app) from 8
// concurrent clients and reports the latency percentiles and throughput.
func BenchmarkLoad(b *testing.B) {
	m, e := benchModel(b)
	s, id := benchServer(b, m, e)
	const clients = 8
	body, _ := json.Marshal(map[string]any{"points": [][2]float64{{float64(e.OriginalW) / 2, float64(e.OriginalH) / 2}}, "format": "rle"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	for range clients {
		wg.Go(func() {
			for range next {
				t := time.Now()
				res, err := client.Post(s.url+"/v1/images/"+id+"/predict", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				var out predictResponse
				json.NewDecoder(res.Body).Decode(&out)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Errorf("status %d", res.StatusCode)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(t))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	wall := time.Since(t0)
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat))/wall.Seconds(), "prompts/s")
}

// BenchmarkCacheMemory fills the memory cache with 100 embeddings of the
// benchmark model's shape and reports the Go heap they hold (ViT-B: 4 MiB
// of features each).
func BenchmarkCacheMemory(b *testing.B) {
	m, _ := benchModel(b)
	defer m.Close()
	for b.Loop() {
		c := &cache{mem: newLRU(8 << 30), met: newMetrics()}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range 100 {
			c.putEmbedding(context.Background(), m.EncoderIdentity(), fmt.Sprintf("%064x", i), randomEmbedding(m, 1024, 1024, uint64(i)))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		_, held := c.mem.stats()
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(held)/(1<<20), "counted-MiB")
		runtime.KeepAlive(c)
	}
}
