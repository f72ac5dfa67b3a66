package sam

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu"
)

// testImages makes n random images of varied sizes.
func testImages(n int) []*imgproc.RGB {
	rng := rand.New(rand.NewPCG(5, 6))
	imgs := make([]*imgproc.RGB, n)
	for i := range imgs {
		img := imgproc.NewRGB(40+rng.IntN(200), 30+rng.IntN(150))
		for j := range img.Pix {
			img.Pix[j] = uint8(rng.IntN(256))
		}
		imgs[i] = img
	}
	return imgs
}

// faultyBackend wraps the CPU backend: it runs out of memory for encoder
// inputs of more than oomOver images, or fails every encoder input after
// failAfter calls (as a device that stops working).
type faultyBackend struct {
	nn.Backend
	name      string
	oomOver   int
	failAfter int
	calls     atomic.Int32
}

func (f *faultyBackend) Name() string { return f.name }

func (f *faultyBackend) Upload(data []float32, shape ...int) nn.Tensor {
	if len(shape) == 4 && shape[3] == 3 { // an encoder input (B, S, S, 3)
		if f.oomOver > 0 && shape[0] > f.oomOver {
			nn.Fail("Upload", nn.ErrOutOfMemory, "%d images do not fit", shape[0])
		}
		if f.failAfter > 0 && int(f.calls.Add(1)) > f.failAfter {
			nn.Fail("Upload", errors.New("device lost"), "")
		}
	}
	return f.Backend.Upload(data, shape...)
}

func tinyModel(t testing.TB, b nn.Backend) *Model {
	t.Helper()
	cfg := fixtureConfig(t, "tiny")
	m, err := Load(fixture("tiny", "model.safetensors"), b, LoadOptions{Config: &cfg})
	require.NoError(t, err)
	return m
}

// reference encodes each image alone with a plain predictor.
func reference(t testing.TB, imgs []*imgproc.RGB) []*Embedding {
	m := tinyModel(t, cpu.New())
	defer m.Close()
	var out []*Embedding
	for _, img := range imgs {
		e, err := m.EncodeImage(context.Background(), img)
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

func TestEngineShardsInOrder(t *testing.T) {
	imgs := testImages(11)
	want := reference(t, imgs)
	for _, c := range []struct {
		name    string
		devices int
		per     int
		batch   int
	}{{"1 device", 1, 1, 1}, {"3 virtual devices", 3, 1, 1}, {"2 devices × 2 workers, batches of 3", 2, 2, 3}} {
		t.Run(c.name, func(t *testing.T) {
			var models []*Model
			for range c.devices {
				models = append(models, tinyModel(t, cpu.New(cpu.WithThreads(1))))
			}
			e, err := NewEngineFromModels(models, EngineOptions{WorkersPerDevice: c.per, MaxBatch: c.batch})
			require.NoError(t, err)
			defer e.Close()
			got, err := e.Encode(context.Background(), imgs)
			require.NoError(t, err)
			require.Equal(t, len(want), len(got))
			for i := range want {
				require.Equal(t, want[i], got[i], "image %d", i)
			}
			total := 0
			for _, s := range e.Stats() {
				total += s.Images
			}
			require.Equal(t, len(imgs), total)
			require.Len(t, e.Stats(), c.devices*c.per)
		})
	}
}

func TestEngineSplitsBatchesOnOutOfMemory(t *testing.T) {
	imgs := testImages(9)
	want := reference(t, imgs)
	fb := &faultyBackend{Backend: cpu.New(), name: "cpu-small", oomOver: 2}
	e, err := NewEngineFromModels([]*Model{tinyModel(t, fb)}, EngineOptions{MaxBatch: 8})
	require.NoError(t, err)
	defer e.Close()
	got, err := e.Encode(context.Background(), imgs)
	require.NoError(t, err)
	for i := range want {
		require.Equal(t, want[i], got[i], "image %d", i)
	}

	// A batch of 8 that does not fit: halves until it does, and the
	// worker's batch limit drops to what fits.
	var items []*item
	for i, img := range imgs[:8] {
		it, err := e.prepare(context.Background(), func(context.Context, int) (*imgproc.RGB, error) { return img, nil }, i)
		require.NoError(t, err)
		items = append(items, it)
	}
	w := e.workers[0]
	w.maxBatch = 8
	var got8 []EncodeResult
	require.NoError(t, e.encodeBatch(context.Background(), w, items, func(r EncodeResult) { got8 = append(got8, r) }))
	require.Len(t, got8, 8)
	for _, r := range got8 {
		require.NoError(t, r.Err)
		require.Equal(t, want[r.Index], r.Embedding)
	}
	require.Equal(t, 2, w.maxBatch)
}

// TestEngineOutOfMemoryForOneImage: an image that fits nowhere is an error
// the caller gets back, not a crash.
func TestEngineOutOfMemoryForOneImage(t *testing.T) {
	e, err := NewEngineFromModels([]*Model{tinyModel(t, &oomAlways{Backend: cpu.New()})}, EngineOptions{})
	require.NoError(t, err)
	defer e.Close()
	_, err = e.Encode(context.Background(), testImages(2))
	require.ErrorIs(t, err, nn.ErrOutOfMemory)
}

// oomAlways runs out of memory for every encoder input.
type oomAlways struct{ nn.Backend }

func (o *oomAlways) Upload(data []float32, shape ...int) nn.Tensor {
	if len(shape) == 4 && shape[3] == 3 {
		nn.Fail("Upload", nn.ErrOutOfMemory, "")
	}
	return o.Backend.Upload(data, shape...)
}

func TestEngineRedistributesAFailingDevicesWork(t *testing.T) {
	imgs := testImages(10)
	want := reference(t, imgs)
	// The flaky device works twice, then fails; the good one is slow to
	// start, so the flaky one certainly takes work before it fails.
	bad := &faultyBackend{Backend: cpu.New(cpu.WithThreads(1)), name: "cpu-flaky", failAfter: 2}
	good := &slowBackend{Backend: cpu.New(cpu.WithThreads(1)), delay: 40 * time.Millisecond}
	e, err := NewEngineFromModels([]*Model{tinyModel(t, bad), tinyModel(t, good)}, EngineOptions{MaxBatch: 2})
	require.NoError(t, err)
	defer e.Close()
	got, err := e.Encode(context.Background(), imgs)
	require.NoError(t, err)
	for i := range want {
		require.Equal(t, want[i], got[i], "image %d", i)
	}
	st := e.Stats()
	require.Contains(t, st[0].Retired, "device lost")
	require.Equal(t, len(imgs), st[0].Images+st[1].Images)

	// With every device failing, each image gets an error and Encode ends.
	e2, err := NewEngineFromModels([]*Model{tinyModel(t, &deadBackend{Backend: cpu.New()})}, EngineOptions{})
	require.NoError(t, err)
	defer e2.Close()
	var results []EncodeResult
	require.NoError(t, e2.EncodeStream(context.Background(), 3, func(_ context.Context, i int) (*imgproc.RGB, error) { return imgs[i], nil },
		func(r EncodeResult) { results = append(results, r) }))
	require.Len(t, results, 3)
	for _, r := range results {
		require.ErrorContains(t, r.Err, "no device left")
	}
}

// slowBackend delays every encoder input.
type slowBackend struct {
	nn.Backend
	delay time.Duration
}

func (s *slowBackend) Upload(data []float32, shape ...int) nn.Tensor {
	if len(shape) == 4 && shape[3] == 3 {
		time.Sleep(s.delay)
	}
	return s.Backend.Upload(data, shape...)
}

// deadBackend fails every encoder input.
type deadBackend struct{ nn.Backend }

func (d *deadBackend) Upload(data []float32, shape ...int) nn.Tensor {
	if len(shape) == 4 && shape[3] == 3 {
		nn.Fail("Upload", errors.New("device lost"), "")
	}
	return d.Backend.Upload(data, shape...)
}

func TestEngineCancellation(t *testing.T) {
	e, err := NewEngineFromModels([]*Model{tinyModel(t, cpu.New()), tinyModel(t, cpu.New())}, EngineOptions{})
	require.NoError(t, err)
	defer e.Close()
	imgs := testImages(4)
	ctx, cancel := context.WithCancel(context.Background())
	var served atomic.Int32
	var results atomic.Int32
	start := time.Now()
	err = e.EncodeStream(ctx, 1000, func(_ context.Context, i int) (*imgproc.RGB, error) {
		if served.Add(1) == 6 {
			cancel()
		}
		return imgs[i%len(imgs)], nil
	}, func(EncodeResult) { results.Add(1) })
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, int(results.Load()), 100, "work stops soon after the cancel")
	require.Less(t, time.Since(start), 10*time.Second)
}

func TestEngineSourceErrorsAreReported(t *testing.T) {
	e, err := NewEngineFromModels([]*Model{tinyModel(t, cpu.New())}, EngineOptions{})
	require.NoError(t, err)
	defer e.Close()
	imgs := testImages(3)
	errs := map[int]error{}
	require.NoError(t, e.EncodeStream(context.Background(), 3, func(_ context.Context, i int) (*imgproc.RGB, error) {
		if i == 1 {
			return nil, fmt.Errorf("cannot decode image 1")
		}
		return imgs[i], nil
	}, func(r EncodeResult) { errs[r.Index] = r.Err }))
	require.Len(t, errs, 3)
	require.NoError(t, errs[0])
	require.ErrorContains(t, errs[1], "cannot decode")
	require.NoError(t, errs[2])
}

func TestEngineMemoryReturnsToBaseline(t *testing.T) {
	b := cpu.New()
	m := tinyModel(t, b)
	e, err := NewEngineFromModels([]*Model{m}, EngineOptions{MaxBatch: 3})
	require.NoError(t, err)
	defer e.Close()
	base := b.MemoryInUse()
	for range 2 {
		_, err := e.Encode(context.Background(), testImages(5))
		require.NoError(t, err)
		require.Equal(t, base, b.MemoryInUse(), "every tensor of the batch is released")
	}
	require.Greater(t, b.PeakMemory(), base)
}

func TestParseDevices(t *testing.T) {
	for in, want := range map[string][]string{
		"":              {"cpu"},
		"cpu":           {"cpu"},
		"cpu:3":         {"cpu", "cpu", "cpu"},
		"0,1":           {"cuda:0", "cuda:1"},
		"cuda:2":        {"cuda:2"},
		"cuda:0,cuda:1": {"cuda:0", "cuda:1"},
	} {
		got, err := ParseDevices(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"cpu:0", "cpu:x", "a:b:c", "cuda:-1"} {
		_, err := ParseDevices(bad)
		require.Error(t, err, bad)
	}
	_, err := ParseDevices("all") // no CUDA devices in this build
	require.Error(t, err)
}

// forkFailing is a backend whose Fork fails as the CUDA backend's does when
// the device cannot give a second stream (an *nn.Error panic).
type forkFailing struct{ nn.Backend }

func (forkFailing) Fork(int) nn.Backend {
	nn.Fail("Fork", nn.ErrOutOfMemory, "no memory for the fork's workspace")
	return nil
}

// TestModelForkReturnsBackendErrors: a failing Fork is an error, not a
// panic that escapes to the caller.
func TestModelForkReturnsBackendErrors(t *testing.T) {
	m := tinyModel(t, forkFailing{cpu.New()})
	var f *Model
	var err error
	require.NotPanics(t, func() { f, err = m.Fork(0) })
	require.Nil(t, f)
	require.ErrorIs(t, err, nn.ErrOutOfMemory)
	require.ErrorContains(t, err, "Fork")
}
