package sam

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/samgo/samgo/sam/nn"
)

// NewRandom builds a model with the given config and random weights (no
// checkpoint): for benchmarks and for testing backends on full-size shapes
// (ViT-B/L/H) without the official weights. Values are deterministic for a
// seed and scaled like a trained network's (LayerNorm weights near 1,
// Linear/Conv weights N(0, 1/fan_in), small biases and position tables), so
// activations stay in a realistic range through every block.
func NewRandom(cfg Config, b nn.Backend, seed uint64) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return build(&cfg, b, "random", randomSource{shapes: cfg.StateDictShapes(), seed: seed})
}

type randomSource struct {
	shapes map[string][]int
	seed   uint64
}

func (r randomSource) shape(name string) ([]int, bool) {
	s, ok := r.shapes[name]
	return s, ok
}

func (r randomSource) values(name string) ([]float32, error) {
	shape := r.shapes[name]
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(r.seed, h.Sum64()))
	v := make([]float32, nn.Numel(shape))
	std, mean := 0.02, 0.0
	switch {
	case strings.HasSuffix(name, ".bias"):
		std = 0.02
	case strings.HasSuffix(name, ".bn.running_var"):
		// BatchNorm variances must be positive: uniform in [0.5, 1.5).
		for i := range v {
			v[i] = float32(0.5 + rng.Float64())
		}
		return v, nil
	case strings.HasSuffix(name, ".bn.running_mean"):
		std = 0.1
	case strings.HasSuffix(name, ".bn.weight"):
		mean, std = 1, 0.1
	case isNormWeight(name):
		mean, std = 1, 0.1
	case strings.HasSuffix(name, "pos_embed"), strings.Contains(name, "rel_pos"):
		std = 0.1
	case strings.Contains(name, "positional_encoding_gaussian_matrix"):
		std = 1 // the official init: scale·randn with scale 1
	case len(shape) >= 2:
		fanIn := nn.Numel(shape[1:])
		if strings.Contains(name, "output_upscaling") && len(shape) == 4 {
			fanIn = shape[0] // ConvTranspose2d weights are (in, out, k, k)
		}
		std = 1 / math.Sqrt(float64(fanIn))
	default:
		std = 0.5 // embeddings (1, C)
	}
	for i := range v {
		v[i] = float32(mean + std*rng.NormFloat64())
	}
	return v, nil
}

// isNormWeight reports LayerNorm / LayerNorm2d weights by their module names.
func isNormWeight(name string) bool {
	if !strings.HasSuffix(name, ".weight") {
		return false
	}
	for _, s := range []string{".norm", "neck.1.", "neck.3.", "mask_downscaling.1.", "mask_downscaling.4.", "output_upscaling.1."} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}
