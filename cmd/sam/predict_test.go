package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	npyio "codeberg.org/sbinet/npyio/npy"
	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/npy"
)

var (
	tinyCk  = filepath.Join(testdata, "tiny", "model.safetensors")
	tinyImg = filepath.Join(testdata, "tiny", "image_0.png") // 161×119
)

type predictResult struct {
	Masks []struct {
		File   string
		Prompt int
		Index  int
		IoU    float32
		Area   int
		BBox   [4]int
		Best   bool
	}
	Best   []int
	IoU    [][]float32
	Shapes map[string][]int
}

func predictOK(t *testing.T, args ...string) predictResult {
	t.Helper()
	code, stdout, stderr := samCLI(append([]string{"predict", "-checkpoint", tinyCk}, args...)...)
	require.Equal(t, 0, code, stderr)
	var r predictResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &r))
	return r
}

// Item 15: multimask is on by default, as the official multimask_output.
// Item 11: logits.npy only with -logits.
func TestPredictDefaults(t *testing.T) {
	out := filepath.Join(t.TempDir(), "p")
	r := predictOK(t, "-image", tinyImg, "-point", "80,60", "-out", out)
	require.Len(t, r.Masks, 3)
	require.Equal(t, []int{3}, r.Shapes["iou"])
	require.NotContains(t, r.Shapes, "logits")
	require.NoFileExists(t, filepath.Join(out, "logits.npy"))

	r = predictOK(t, "-image", tinyImg, "-point", "80,60", "-multimask=false", "-logits", "-out", out)
	require.Len(t, r.Masks, 1)
	_, shape, err := npy.ReadFile(filepath.Join(out, "logits.npy"))
	require.NoError(t, err)
	require.Equal(t, []int{1, 119, 161}, shape)

	// Item 16: the second run removed the first run's mask_1/2.png.
	require.FileExists(t, filepath.Join(out, "mask_0.png"))
	require.NoFileExists(t, filepath.Join(out, "mask_1.png"))
	require.NoFileExists(t, filepath.Join(out, "mask_2.png"))
	// … and a run without -logits removes the earlier logits.npy.
	predictOK(t, "-image", tinyImg, "-point", "80,60", "-out", out)
	require.NoFileExists(t, filepath.Join(out, "logits.npy"))
}

// Item 16: result.json names each prompt's best mask and gives each mask's
// area and bbox; the overlay shows the points and boxes.
func TestPredictResultAndOverlay(t *testing.T) {
	out := filepath.Join(t.TempDir(), "p")
	r := predictOK(t, "-image", tinyImg, "-point", "80,60", "-point", "20,20,0", "-box", "60,40,120,100", "-box", "5,5,40,50", "-out", out)
	require.Len(t, r.Best, 2)
	data, err := os.ReadFile(filepath.Join(out, "result.json"))
	require.NoError(t, err)
	var saved predictResult
	require.NoError(t, json.Unmarshal(data, &saved))
	require.Equal(t, r.Best, saved.Best)
	for _, m := range r.Masks {
		best := 0
		for i, v := range r.IoU[m.Prompt] {
			if v > r.IoU[m.Prompt][best] {
				best = i
			}
		}
		require.Equal(t, best, r.Best[m.Prompt])
		require.Equal(t, m.Index == best, m.Best)
		png, err := imgproc.Load(filepath.Join(out, m.File))
		require.NoError(t, err)
		pix := make([]bool, png.W*png.H)
		for q := range pix {
			pix[q] = png.Pix[3*q] == 255
		}
		box, area, ok := sam.Mask{W: png.W, H: png.H, Pix: pix}.Box()
		require.Equal(t, area, m.Area, m.File)
		if ok {
			require.Equal(t, [4]int{box[0], box[1], box[2] - box[0], box[3] - box[1]}, m.BBox, m.File)
		}
	}
	ov, err := imgproc.Load(filepath.Join(out, "overlay.png"))
	require.NoError(t, err)
	at := func(x, y int) [3]uint8 { r, g, b := ov.At(x, y); return [3]uint8{r, g, b} }
	require.Equal(t, positiveColor, at(80, 60))
	require.Equal(t, negativeColor, at(20, 20))
	require.Equal(t, imgproc.MaskColor(0), at(90, 40), "top edge of box 0")
	require.Equal(t, imgproc.MaskColor(1), at(5, 30), "left edge of box 1")
}

// Item 11: outputs are written per group of prompts; groups of one give
// the same files as one group.
func TestPredictStreamsInGroups(t *testing.T) {
	args := []string{"-image", tinyImg, "-box", "60,40,120,100", "-box", "5,5,40,50", "-box", "10,60,150,110", "-logits"}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	predictOK(t, append(args, "-out", a)...)
	old := maxHeldOutputs
	maxHeldOutputs = 1
	defer func() { maxHeldOutputs = old }()
	predictOK(t, append(args, "-out", b)...)
	for _, f := range []string{"logits.npy", "low_res_logits.npy", "iou.npy", "mask_0.png", "mask_8.png", "overlay.png"} {
		x, err := os.ReadFile(filepath.Join(a, f))
		require.NoError(t, err)
		y, err := os.ReadFile(filepath.Join(b, f))
		require.NoError(t, err)
		require.True(t, bytes.Equal(x, y), f)
	}
}

// Item 14: -mask-input FILE:INDEX picks a mask of a multimask output;
// several masks without an index, an index out of range and other dtypes
// are refused.
func TestPredictMaskInputIndex(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "first")
	predictOK(t, "-image", tinyImg, "-point", "80,60", "-box", "60,40,120,100", "-box", "5,5,40,50", "-out", first)
	low := filepath.Join(first, "low_res_logits.npy") // (2, 3, 32, 32)
	v, shape, err := npy.ReadFile(low)
	require.NoError(t, err)
	require.Equal(t, []int{2, 3, 32, 32}, shape)
	one := filepath.Join(dir, "one.npy")
	require.NoError(t, npy.WriteFile(one, v[4*32*32:5*32*32], 1, 32, 32))

	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	predictOK(t, "-image", tinyImg, "-point", "80,60", "-mask-input", low+":4", "-out", a)
	predictOK(t, "-image", tinyImg, "-point", "80,60", "-mask-input", one, "-out", b)
	x, err := os.ReadFile(filepath.Join(a, "low_res_logits.npy"))
	require.NoError(t, err)
	y, err := os.ReadFile(filepath.Join(b, "low_res_logits.npy"))
	require.NoError(t, err)
	require.Equal(t, x, y, "index 4 is prompt 1's mask 1")

	var u8 bytes.Buffer
	require.NoError(t, npyio.Write(&u8, make([]uint8, 32*32)))
	bad := filepath.Join(dir, "u8.npy")
	require.NoError(t, os.WriteFile(bad, u8.Bytes(), 0o644))
	for _, tc := range []struct{ spec, want string }{
		{low, "pick one with -mask-input " + low + ":INDEX (0…5"},
		{low + ":6", "index 6"},
		{bad, "float32"},
	} {
		code, _, stderr := samCLI("predict", "-checkpoint", tinyCk, "-image", tinyImg, "-point", "80,60", "-mask-input", tc.spec, "-out", filepath.Join(dir, "x"))
		require.Equal(t, 1, code, stderr)
		require.Contains(t, stderr, tc.want)
		require.NotContains(t, stderr, " npy: npy:")
	}
}

// Item 6: predict takes one -image (and one of -embedding, -out, ...).
// Item 18: bad flags say what they want.
func TestPredictFlagHygiene(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-image", tinyImg, "-image", tinyImg, "-point", "1,1"}, "given twice"},
		{[]string{"-image", tinyImg, "-point", "10"}, "X,Y[,LABEL]"},
		{[]string{"-image", tinyImg, "-box", "1,2,3"}, "X0,Y0,X1,Y1"},
		{[]string{"-image", tinyImg, "-point", "1,1", "-threads", "0"}, "-threads 0"},
		{[]string{"-image", tinyImg, "-point", "1,1", "-threads", "-2"}, "-threads -2"},
		{[]string{"-image", tinyImg, "-point", "1,1", "-config", "vit_q"}, "vit_b, vit_l, vit_h, vit_t"},
	} {
		code, _, stderr := samCLI(append([]string{"predict", "-checkpoint", tinyCk, "-out", filepath.Join(dir, "o")}, tc.args...)...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		require.Contains(t, stderr, tc.want, tc.args)
	}
	// A .npy from 'embed -out E.npy' is not an embedding predict reads: say so.
	e := filepath.Join(dir, "e.npy")
	code, _, stderr := samCLI("embed", "-checkpoint", tinyCk, "-image", tinyImg, "-out", e)
	require.Equal(t, 0, code, stderr)
	code, _, stderr = samCLI("predict", "-checkpoint", tinyCk, "-embedding", e, "-point", "1,1", "-out", filepath.Join(dir, "o"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "E.safetensors")
}

// Item 16: an output folder that cannot be written is found before the
// model is loaded (here the checkpoint does not even exist).
func TestUnwritableOutputFoundFirst(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	missing := filepath.Join(dir, "missing.safetensors")
	for _, args := range [][]string{
		{"predict", "-checkpoint", missing, "-image", tinyImg, "-point", "1,1", "-out", filepath.Join(file, "out")},
		{"auto", "-checkpoint", missing, "-image", tinyImg, "-out", filepath.Join(file, "out")},
		{"embed", "-checkpoint", missing, "-image", tinyImg, "-out", filepath.Join(file, "out")},
		{"embed", "-checkpoint", missing, "-image", tinyImg, "-out", filepath.Join(file, "out", "e.safetensors")},
	} {
		code, _, stderr := samCLI(args...)
		require.Equal(t, 1, code, "%v: %s", args, stderr)
		require.Contains(t, stderr, "output folder", args)
		require.NotContains(t, stderr, "missing.safetensors", args)
	}
}

// Item 16: a failed write leaves neither a partial file under the final
// name nor a temporary file; an earlier file stays as it was.
