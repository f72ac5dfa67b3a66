// Package tests holds the end-to-end parity tests: the Go model against the
// official PyTorch implementation's stored outputs (testdata/, copied from
// the shared fixtures; FIXTURES.md describes them and the tolerances used).
package tests

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/checkpoint"
	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu"
)

const testdata = "testdata"

func fixturePath(parts ...string) string {
	return filepath.Join(append([]string{testdata}, parts...)...)
}

// backend is the backend the parity tests run on; a CUDA build's tests
// may swap it (see gpu_test.go).
var newBackend = func(t testing.TB) nn.Backend { return cpu.New() }

// parityScope is what the parity tests cover: every fixture set (tinyvit
// is the reduced MobileSAM / TinyViT one, testdata/tinyvit/README.md) and
// the real-size vitb_decoder on the CPU and on a GPU; under the GPU
// simulator (tests/gpu_test.go, make test-sim) the tiny and tinyvit sets,
// which take the same code paths in minutes instead of hours.
type parityScope struct {
	sets        []string // encoder, predict, end-to-end and AMG fixture sets
	images      []int    // the images of each set (image_K)
	vitbDecoder bool     // TestPredictParity on vitb_decoder too
	stored      bool     // the predict cases from the stored embedding too (the end-to-end ones use ours)
	// setImages, when it names a set, replaces images for it; bf16EndToEnd,
	// when not nil, lists the sets of the bf16 end-to-end cases (the GPU
	// simulator's time budget: tests/gpu_test.go simScope).
	setImages    map[string][]int
	bf16EndToEnd []string
}

// imagesOf is the images of set the parity tests cover.
func (p parityScope) imagesOf(set string) []int {
	if im, ok := p.setImages[set]; ok {
		return im
	}
	return p.images
}

var parity = parityScope{sets: []string{"tiny", "small", "tinyvit"}, images: []int{0, 1}, vitbDecoder: true, stored: true}

// loadModel loads a fixture set's model with its config.json.
func loadModel(t testing.TB, set, file string) *sam.Model {
	t.Helper()
	return loadCheckpointOn(t, newBackend(t), set, fixturePath(set, file))
}

// loadCheckpointOn loads the checkpoint at path on b with set's config.json.
func loadCheckpointOn(t testing.TB, b nn.Backend, set, path string) *sam.Model {
	t.Helper()
	cfg, err := sam.ReadConfig(fixturePath(set, "config.json"))
	require.NoError(t, err)
	m, err := sam.Load(path, b, sam.LoadOptions{Config: &cfg})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// predictInputs are what a predict fixture runs on: its model, loaded on
// each of backends, and its stored embedding. vitb_decoder's weights and
// embedding are regenerated (vitbDecoderFiles); the other sets' are their
// model.safetensors and embeddingFile's "embedding".
func predictInputs(t testing.TB, set, embeddingFile string, backends ...nn.Backend) ([]*sam.Model, []float32) {
	t.Helper()
	ck := fixturePath(set, "model.safetensors")
	var feat []float32
	if set == "vitb_decoder" {
		ck, feat = vitbDecoderFiles(t)
	} else {
		feat, _ = openTensors(t, fixturePath(set, embeddingFile)).get(t, "embedding")
	}
	ms := make([]*sam.Model, len(backends))
	for i, b := range backends {
		ms[i] = loadCheckpointOn(t, b, set, ck)
	}
	return ms, feat
}

// tensors is a reference safetensors file.
type tensors struct {
	f *checkpoint.File
}

func openTensors(t testing.TB, path string) tensors {
	t.Helper()
	f, err := checkpoint.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return tensors{f}
}

func (ts tensors) has(name string) bool {
	_, ok := ts.f.Tensor(name)
	return ok
}

// get returns a stored tensor's values (widened to float32) and shape.
func (ts tensors) get(t testing.TB, name string) ([]float32, []int) {
	t.Helper()
	x, ok := ts.f.Tensor(name)
	require.True(t, ok, "reference tensor %q missing from %s", name, ts.f.Path)
	v, err := x.Float32()
	require.NoError(t, err)
	return v, x.Shape
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

// diff summarises got against ref: max |Δ|, max |Δ| / max |ref| and
// max |Δ| / std(ref), the fixtures README's measures.
type diff struct{ maxAbs, rel, maxStd float64 }

func compare(got, ref []float32) diff {
	var mean, maxRef, maxAbs float64
	for _, r := range ref {
		mean += float64(r)
		maxRef = math.Max(maxRef, math.Abs(float64(r)))
	}
	mean /= float64(len(ref))
	var v float64
	for i, r := range ref {
		d := float64(r) - mean
		v += d * d
		maxAbs = math.Max(maxAbs, math.Abs(float64(got[i])-float64(r)))
		if math.IsNaN(float64(got[i])) {
			maxAbs = math.Inf(1)
		}
	}
	std := math.Sqrt(v / float64(len(ref)))
	return diff{maxAbs, maxAbs / maxRef, maxAbs / std}
}

// requireClose asserts max|Δ|/std(ref) ≤ tol.
func requireClose(t testing.TB, name string, got, ref []float32, tol float64) {
	t.Helper()
	require.Equal(t, len(ref), len(got), "%s: length", name)
	d := compare(got, ref)
	require.LessOrEqual(t, d.maxStd, tol, "%s: max|Δ| %.3g, rel %.3g, max/std %.3g", name, d.maxAbs, d.rel, d.maxStd)
	t.Logf("%-28s max|Δ| %.2e  rel %.2e  max/std %.2e", name, d.maxAbs, d.rel, d.maxStd)
}

// requireAbs asserts max|Δ| ≤ tol.
func requireAbs(t testing.TB, name string, got, ref []float32, tol float64) {
	t.Helper()
	require.Equal(t, len(ref), len(got), "%s: length", name)
	d := compare(got, ref)
	require.LessOrEqual(t, d.maxAbs, tol, "%s: max|Δ| %.3g", name, d.maxAbs)
	t.Logf("%-28s max|Δ| %.2e", name, d.maxAbs)
}

// nhwcToNCHW transposes (B, H, W, C) to (B, C, H, W).
func nhwcToNCHW(x []float32, B, H, W, C int) []float32 {
	out := make([]float32, len(x))
	for b := range B {
		for i := range H * W {
			for c := range C {
				out[(b*C+c)*H*W+i] = x[(b*H*W+i)*C+c]
			}
		}
	}
	return out
}
