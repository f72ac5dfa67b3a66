package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
)

// tinyAutoArgs are the tiny fixture's run-0 options (image_0.amg.json).
var tinyAutoArgs = []string{
	"-checkpoint", filepath.Join(testdata, "tiny", "model.safetensors"),
	"-points-per-side", "8", "-points-per-batch", "16", "-pred-iou-thresh", "0.721", "-stability-score-thresh", "0.855",
	"-crop-n-layers", "1", "-crop-n-points-downscale-factor", "2",
}

type autoSummary struct {
	Images []struct {
		Image, Out string
		Masks      int
		Skipped    bool
		Error      string
		Width      int
		Height     int
	}
	Options   map[string]any
	TimingsMS map[string]float64 `json:"timings_ms"`
}

type fixtureRecord struct {
	Segmentation amg.RLE
	Area         int
	BBox         [4]float64
	PointCoords  [][2]float64 `json:"point_coords"`
	CropBox      [4]float64   `json:"crop_box"`
}

func TestAutoMatchesFixture(t *testing.T) {
	var fx struct {
		Runs []struct {
			Records []fixtureRecord
		}
	}
	data, err := os.ReadFile(filepath.Join(testdata, "tiny", "image_0.amg.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &fx))
	want := fx.Runs[0].Records

	for _, mode := range []string{"coco_rle", "uncompressed_rle"} {
		out := filepath.Join(t.TempDir(), "out")
		args := append([]string{"auto", "-image", filepath.Join(testdata, "tiny", "image_0.png"), "-out", out}, tinyAutoArgs...)
		if mode != "coco_rle" {
			args = append(args, "-output-mode", mode)
		}
		code, stdout, stderr := samCLI(args...)
		require.Equal(t, 0, code, stderr)
		var sum autoSummary
		require.NoError(t, json.Unmarshal([]byte(stdout), &sum))
		require.Len(t, sum.Images, 1)
		require.Equal(t, len(want), sum.Images[0].Masks)
		require.Equal(t, 161, sum.Images[0].Width)
		require.Equal(t, mode, sum.Options["output_mode"])
		require.Contains(t, sum.TimingsMS, "generate")

		data, err := os.ReadFile(filepath.Join(out, "masks.json"))
		require.NoError(t, err)
		var got []struct {
			Segmentation json.RawMessage
			fixtureRecord
		}
		require.NoError(t, json.Unmarshal(data, &got))
		recs := make([]fixtureRecord, len(got))
		for i, g := range got {
			recs[i] = g.fixtureRecord
			if mode == "coco_rle" {
				var c amg.COCORLE
				require.NoError(t, json.Unmarshal(g.Segmentation, &c))
				recs[i].Segmentation, err = c.RLE()
				require.NoError(t, err)
			} else {
				require.NoError(t, json.Unmarshal(g.Segmentation, &recs[i].Segmentation))
			}
		}
		if diff := cmp.Diff(want, recs); diff != "" {
			t.Errorf("%s: masks.json (-fixture +got):\n%s", mode, diff)
		}
		ov, err := imgproc.Load(filepath.Join(out, "overlay.png"))
		require.NoError(t, err)
		require.Equal(t, [2]int{161, 119}, [2]int{ov.W, ov.H})
	}
}

func TestAutoDirectoryResumes(t *testing.T) {
	in := t.TempDir()
	for _, name := range []string{"image_0.png", "image_1.png"} {
		data, err := os.ReadFile(filepath.Join(testdata, "tiny", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(in, name), data, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(in, "notes.txt"), []byte("not an image"), 0o644))
	out := filepath.Join(t.TempDir(), "out")
	args := append([]string{"auto", "-image", in, "-out", out, "-min-mask-region-area", "10"}, tinyAutoArgs...)

	code, stdout, stderr := samCLI(args...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "1/2 "+filepath.Join(in, "image_0.png")+": 12 masks")
	require.Contains(t, stderr, "2/2 "+filepath.Join(in, "image_1.png")+": ")
	var sum autoSummary
	require.NoError(t, json.Unmarshal([]byte(stdout), &sum))
	require.Len(t, sum.Images, 2)
	for i, name := range []string{"image_0", "image_1"} {
		require.Equal(t, filepath.Join(out, name), sum.Images[i].Out)
		require.False(t, sum.Images[i].Skipped)
		require.FileExists(t, filepath.Join(out, name, "masks.json"))
		require.FileExists(t, filepath.Join(out, name, "overlay.png"))
	}
	require.Equal(t, 12, sum.Images[0].Masks) // as the fixture's run 1

	// A second run skips what is done; a removed result is redone.
	require.NoError(t, os.Remove(filepath.Join(out, "image_1", "masks.json")))
	code, stdout, stderr = samCLI(args...)
	require.Equal(t, 0, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), &sum))
	require.True(t, sum.Images[0].Skipped)
	require.False(t, sum.Images[1].Skipped)
	require.FileExists(t, filepath.Join(out, "image_1", "masks.json"))
}

func TestAutoUsageErrors(t *testing.T) {
	img := filepath.Join(testdata, "tiny", "image_0.png")
	ck := filepath.Join(testdata, "tiny", "model.safetensors")
	for _, args := range [][]string{
		{"auto", "-checkpoint", ck, "-out", "d"},   // no -image
		{"auto", "-checkpoint", ck, "-image", img}, // no -out
		{"auto", "-checkpoint", ck, "-image", img, "-out", "d", "-output-mode", "png"},
		{"auto", "-checkpoint", ck, "-image", img, "-out", "d", "-points-per-batch", "0"},
		{"auto", "-checkpoint", ck, "-image", img, "-out", "d", "-points-per-side", "x"},
	} {
		code, _, stderr := samCLI(args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
	}
	code, _, stderr := samCLI("auto", "-checkpoint", ck, "-image", filepath.Join(t.TempDir(), "missing.png"), "-out", t.TempDir())
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "missing.png")
}
