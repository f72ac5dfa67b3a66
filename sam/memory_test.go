package sam

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn/cpu"
)

// peakSampler samples the Go heap every few milliseconds: runtime.MemStats
// only tells the present, and the process's peak RSS includes whatever ran
// before.
type peakSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	peak uint64
}

func samplePeak() *peakSampler {
	s := &peakSampler{stop: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			s.peak = max(s.peak, sample[0].Value.Uint64()+sample[1].Value.Uint64())
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *peakSampler) done() uint64 {
	close(s.stop)
	s.wg.Wait()
	return s.peak
}

func maxRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

// randomVitBDecoder is a decoder-only ViT-B with random weights on its own
// CPU backend (closed when the test ends), a random (C, g, g) embedding
// 0.5·N(0, 1) for it, and the generator, which the callers draw their
// prompts from next.
func randomVitBDecoder(t *testing.T) (*Model, *cpu.Backend, []float32, *rand.Rand) {
	cfg := VitB
	cfg.HasImageEncoder = false
	b := cpu.New()
	m, err := NewRandom(cfg, b, 1)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	g, C := cfg.GridSize(), cfg.PromptEmbedDim
	rng := rand.New(rand.NewPCG(5, 5))
	f := make([]float32, C*g*g)
	for i := range f {
		f[i] = float32(rng.NormFloat64() * 0.5)
	}
	return m, b, f, rng
}

// randomPointPrompts is n one-point positive prompts (multimask) spread
// over an S×S image.
func randomPointPrompts(rng *rand.Rand, n, S int) []Prompt {
	ps := make([]Prompt, n)
	for i := range ps {
		ps[i] = Prompt{Points: []Point{{X: rng.Float64() * float64(S), Y: rng.Float64() * float64(S), Label: 1}}}
	}
	return ps
}

// TestPeakMemory measures the two cases: SAM_MEMORY=decoder is 64
// point prompts, multimask, on a ViT-B-size embedding of a 1024×1024
// image; SAM_MEMORY=large:N is two boxes, multimask, on an N×N image. Run
// one alone, in its own process, for the peak RSS to mean something:
//
//	SAM_MEMORY=decoder go test -count=1 -run TestPeakMemory -v ./sam
//	SAM_MEMORY=large:16000 go test -count=1 -run TestPeakMemory -v ./sam
func TestPeakMemory(t *testing.T) {
	which := os.Getenv("SAM_MEMORY")
	if which == "" {
		t.Skip("set SAM_MEMORY=decoder or SAM_MEMORY=large:N to measure (alone, in its own process)")
	}
	m, b, f, rng := randomVitBDecoder(t)
	g, C, S := m.Config.GridSize(), m.Config.PromptEmbedDim, m.Config.ImgSize
	H, W := S, S
	var ps []Prompt
	var err error
	if n, ok := strings.CutPrefix(which, "large:"); ok {
		H, err = strconv.Atoi(n)
		require.NoError(t, err)
		W = H
		ps = []Prompt{{Box: &Box{X0: 10, Y0: 10, X1: float64(W) / 2, Y1: float64(H) / 3}}, {Box: &Box{X0: float64(W) / 4, Y0: 0, X1: float64(W), Y1: float64(H)}}}
	} else {
		ps = randomPointPrompts(rng, 64, S)
	}
	ih, iw := PreprocessShape(H, W, S)
	p := NewPredictor(m)
	require.NoError(t, p.SetEmbedding(&Embedding{Features: f, C: C, G: g, ImgSize: S, OriginalH: H, OriginalW: W, InputH: ih, InputW: iw}))
	runtime.GC()
	rss0 := maxRSS()
	b.ResetPeakMemory()
	s := samplePeak()
	t0 := time.Now()
	res, err := p.PredictBatch(context.Background(), ps)
	el := time.Since(t0)
	heap := s.done()
	require.NoError(t, err)
	require.Len(t, res, len(ps))
	out := 0
	for _, r := range res {
		out += len(r.Masks) * len(r.Masks[0].Pix)
	}
	t.Logf("%d prompts multimask at %d×%d: %v; outputs %d MiB; peak heap %d MiB; backend tensors peak %d MiB; peak RSS %d MiB (before the call %d MiB)",
		len(ps), W, H, el.Round(time.Millisecond), out>>20, heap>>20, b.PeakMemory()>>20, maxRSS()>>20, rss0>>20)
}
