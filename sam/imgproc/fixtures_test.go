package imgproc

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/checkpoint"
)

const testdata = "../../tests/testdata"

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

// TestFixturePreprocessing checks Load → ResizeLongestSide → Normalize
// against the official SamPredictor.set_image tensors, bit for bit.
func TestFixturePreprocessing(t *testing.T) {
	for _, set := range []string{"tiny", "small"} {
		var cfg struct {
			ImgSize int `json:"img_size"`
		}
		readJSON(t, filepath.Join(testdata, set, "config.json"), &cfg)
		S := cfg.ImgSize
		for k := range 2 {
			t.Run(fmt.Sprintf("%s/image_%d", set, k), func(t *testing.T) {
				img, err := Load(filepath.Join(testdata, set, fmt.Sprintf("image_%d.png", k)))
				require.NoError(t, err)

				var pred struct {
					OriginalSize [2]int `json:"original_size"`
					InputSize    [2]int `json:"input_size"`
				}
				readJSON(t, filepath.Join(testdata, set, fmt.Sprintf("image_%d.predict.json", k)), &pred)
				require.Equal(t, pred.OriginalSize, [2]int{img.H, img.W})
				nh, nw := PreprocessShape(img.H, img.W, S)
				require.Equal(t, pred.InputSize, [2]int{nh, nw})

				f, err := checkpoint.Open(filepath.Join(testdata, set, fmt.Sprintf("image_%d.encoder.safetensors", k)))
				require.NoError(t, err)
				defer f.Close()

				want, ok := f.Tensor("resized_uint8")
				require.True(t, ok)
				require.Equal(t, checkpoint.U8, want.DType)
				require.Equal(t, []int{nh, nw, 3}, want.Shape)
				resized := ResizeLongestSide(img, S)
				require.Equal(t, nw, resized.W)
				require.Equal(t, nh, resized.H)
				if d := firstDiff(resized.Pix, want.Raw()); d >= 0 {
					t.Fatalf("resized_uint8 differs at byte %d (y=%d x=%d c=%d): got %d want %d",
						d, d/3/nw, d/3%nw, d%3, resized.Pix[d], want.Raw()[d])
				}

				in, ok := f.Tensor("input")
				require.True(t, ok)
				require.Equal(t, []int{1, 3, S, S}, in.Shape)
				ref, err := in.Float32()
				require.NoError(t, err)
				hwc, err := Normalize(resized, S, PixelMean, PixelStd)
				require.NoError(t, err)
				chw, err := NormalizeCHW(resized, S, PixelMean, PixelStd)
				require.NoError(t, err)
				require.Len(t, hwc, S*S*3)
				for c := range 3 {
					for y := range S {
						for x := range S {
							r := ref[(c*S+y)*S+x]
							g := hwc[(y*S+x)*3+c]
							if math.Float32bits(r) != math.Float32bits(g) || math.Float32bits(chw[(c*S+y)*S+x]) != math.Float32bits(r) {
								t.Fatalf("input[c=%d y=%d x=%d]: HWC %v CHW %v want %v", c, y, x, g, chw[(c*S+y)*S+x], r)
							}
						}
					}
				}
			})
		}
	}
}

func firstDiff(a, b []uint8) int {
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestDemoScenesShape checks the demo scenes' input_size (long side 256).
func TestDemoScenesShape(t *testing.T) {
	var ref struct {
		Scenes map[string]struct {
			Width     int    `json:"width"`
			Height    int    `json:"height"`
			InputSize [2]int `json:"input_size"`
		} `json:"scenes"`
	}
	readJSON(t, filepath.Join(testdata, "demo", "reference.json"), &ref)
	require.NotEmpty(t, ref.Scenes)
	for name, sc := range ref.Scenes {
		img, err := Load(filepath.Join(testdata, "demo", name+".png"))
		require.NoError(t, err, name)
		require.Equal(t, [2]int{sc.Width, sc.Height}, [2]int{img.W, img.H}, name)
		r := ResizeLongestSide(img, 256)
		require.Equal(t, sc.InputSize, [2]int{r.H, r.W}, name)
		x, err := Normalize(r, 256, PixelMean, PixelStd)
		require.NoError(t, err, name)
		require.Len(t, x, 256*256*3)
	}
}
