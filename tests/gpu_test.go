//go:build cuda

package tests

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/cuda/cudatest"
	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu"
	_ "github.com/samgo/samgo/sam/nn/gpu" // registers "cuda"
	"github.com/samgo/samgo/tests/demoscene"
)

// The parity suite on the GPU (CUDA builds: go test -tags cuda ./tests).
//
//   - TestGPUParityFP32 reruns TestEncoderParity, TestPredictParity,
//     TestEndToEnd and TestDemoModelSegmentsScenes with every model on the
//     GPU in fp32, against the same references and tolerances.
//   - TestGPUParityBF16 runs the same fixtures in bf16 with FIXTURES.md's
//     bf16 tolerances (embedding max/std ≤ 0.1, logits ≤ 0.8, IoU abs ≤
//     0.02) and requires ≥ 99% of mask pixels to agree with the CPU's.
//   - Under the GPU simulator (make test-sim) both run the tiny fixture set
//     alone (parityScope); TestGPUParityFP32's AMG is one small run on it
//     against the CPU backend's (checkAMGAgainstCPU: the fixture runs have
//     128 points over 5 crops, an hour there), and the demo model (a
//     256-pixel encoder, many prompts) is left to GPUs.
//   - SAM_TEST_DEVICE=cuda[:N] switches every test of the package (the
//     CPU ones, amg_test.go's included) to that GPU in fp32, e.g.
//     SAM_TEST_DEVICE=cuda go test -tags cuda ./tests
//     (SAM_TEST_PRECISION=bf16 as well only makes sense for tests with
//     bf16 tolerances).
//
// Without a device every GPU test skips with CUDA's reason.

func init() {
	if spec := os.Getenv("SAM_TEST_DEVICE"); strings.HasPrefix(spec, "cuda") {
		prec := os.Getenv("SAM_TEST_PRECISION")
		if prec == "" {
			prec = "fp32"
		}
		newBackend = gpuBackend(spec, prec)
	}
}

// testDevice is the GPU the GPU tests use: SAM_TEST_DEVICE if it names one,
// else cuda:0.
func testDevice() string {
	if spec := os.Getenv("SAM_TEST_DEVICE"); strings.HasPrefix(spec, "cuda") {
		return spec
	}
	return "cuda:0"
}

// skipWithoutGPU skips on machines without a usable CUDA device (fails
// with SAMGO_REQUIRE_GPU=1).
func skipWithoutGPU(t testing.TB) {
	t.Helper()
	cudatest.SkipWithoutDevice(t)
}

// gpuBackend returns a newBackend that opens spec in prec and closes it
// when the test ends.
func gpuBackend(spec, prec string) func(t testing.TB) nn.Backend {
	return func(t testing.TB) nn.Backend {
		t.Helper()
		skipWithoutGPU(t)
		b, err := nn.Open(spec, nn.Options{Precision: prec})
		require.NoError(t, err)
		t.Cleanup(func() {
			if c, ok := b.(io.Closer); ok {
				require.NoError(t, c.Close())
			}
		})
		return b
	}
}

// withBackend runs f with newBackend swapped (the package's tests do not
// run in parallel, so the swap is seen by f alone).
func withBackend(nb func(testing.TB) nn.Backend, f func()) {
	saved := newBackend
	newBackend = nb
	defer func() { newBackend = saved }()
	f()
}

// simScope narrows the parity tests to what the GPU simulator runs in
// minutes (parityScope) until the test ends: the tiny and tinyvit (reduced
// MobileSAM) sets, the given
// images, and the predict cases end to end only (on our embedding, which
// the encoder cases check), not again from the stored embedding.
func simScope(t *testing.T, images ...int) {
	if !cudatest.Simulated() {
		return
	}
	saved := parity
	// tinyvit: image 0 only, and in bf16 its encoder only (its decoder is
	// tiny's code at another width; the bf16 end-to-end cases on it take
	// six minutes there), to keep CI under its 45 minutes.
	parity = parityScope{sets: []string{"tiny", "tinyvit"}, images: images,
		setImages: map[string][]int{"tinyvit": {0}}, bf16EndToEnd: []string{"tiny"}}
	t.Cleanup(func() { parity = saved })
	t.Logf("GPU simulator: tiny (images %v) and tinyvit (image 0; bf16: the encoder) fixture sets, predict cases end to end, a small AMG run against the CPU's, no vitb_decoder, no demo model", images)
}

func TestGPUParityFP32(t *testing.T) {
	skipWithoutGPU(t)
	simScope(t, 0, 1)
	withBackend(gpuBackend(testDevice(), "fp32"), func() {
		t.Run("Encoder", TestEncoderParity)
		t.Run("Predict", func(t *testing.T) {
			if !parity.stored {
				t.Skip("GPU simulator: the predict cases run end to end")
			}
			TestPredictParity(t)
		})
		t.Run("EndToEnd", TestEndToEnd)
		t.Run("AMG", func(t *testing.T) {
			if cudatest.Simulated() {
				checkAMGAgainstCPU(t, gpuBackend(testDevice(), "fp32")(t))
				return
			}
			TestAMGParity(t)
		})
		t.Run("Demo", func(t *testing.T) {
			cudatest.SkipOnSimulator(t, "the demo model's scenes take hours there")
			TestDemoModelSegmentsScenes(t)
		})
	})
}

// bf16 tolerances: see bf16_test.go.

func TestGPUParityBF16(t *testing.T) {
	skipWithoutGPU(t)
	simScope(t, 0) // bf16 runs 2.5 times slower than fp32 there (integer conversions)
	parityBF16(t, gpuBackend(testDevice(), "bf16"), func(t *testing.T) {
		cudatest.SkipOnSimulator(t, "the demo model's scenes take hours there")
	})
}

// checkAMGAgainstCPU runs the automatic mask generator on the tiny
// fixture's image_0 with a 2×2 grid, no crops and no score filter, on b and
// on the CPU backend (whose records TestAMGParity holds to the official
// generator's), and requires the same records: count, order, points and
// crop boxes exactly; boxes within a pixel, areas within 0.5%, masks with
// IoU ≥ 0.995 and scores within 1e-4 (fp32 pixels at a logit of ±1e-6 may
// fall either side of the threshold).
func checkAMGAgainstCPU(t *testing.T, b nn.Backend) {
	img, err := imgproc.Load(fixturePath("tiny", "image_0.png"))
	require.NoError(t, err)
	opts := amg.DefaultOptions()
	opts.PointsPerSide, opts.PointsPerBatch = 2, 4
	opts.PredIoUThresh, opts.StabilityScoreThresh = 0, 0
	opts.OutputMode = amg.OutputMode("uncompressed_rle")
	run := func(b nn.Backend) []amg.Record {
		g, err := amg.New(loadModelOn(t, b, "tiny"), opts)
		require.NoError(t, err)
		recs, err := g.Generate(context.Background(), img)
		require.NoError(t, err)
		return recs
	}
	want, got := run(cpu.New()), run(b)
	t.Logf("AMG, 2×2 points, no crops: %d records on the CPU, %d on %s", len(want), len(got), b.Name())
	require.NotEmpty(t, want)
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(t, w.PointCoords, g.PointCoords, "record %d point", i)
		require.Equal(t, w.CropBox, g.CropBox, "record %d crop box", i)
		for k := range 4 {
			require.InDelta(t, w.BBox[k], g.BBox[k], 1, "record %d bbox", i)
		}
		require.InDelta(t, float64(w.Area), float64(g.Area), 0.005*float64(w.Area)+1, "record %d area", i)
		require.InDelta(t, float64(w.PredictedIoU), float64(g.PredictedIoU), 1e-4, "record %d predicted_iou", i)
		require.InDelta(t, float64(w.StabilityScore), float64(g.StabilityScore), 1e-4, "record %d stability_score", i)
		wm, err := w.Mask()
		require.NoError(t, err)
		gm, err := g.Mask()
		require.NoError(t, err)
		if w.Area > 0 {
			require.GreaterOrEqual(t, demoscene.MaskIoU(wm.Pix, gm.Pix), 0.995, "record %d mask IoU", i)
		}
	}
}
