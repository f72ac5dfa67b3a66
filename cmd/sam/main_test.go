package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/npy"
)

const testdata = "../../tests/testdata"

// samCLI runs the CLI in-process and returns exit code, stdout, stderr.
func samCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"info"},
		{"predict", "-checkpoint", "x", "-out", "d"},                               // neither -image nor -embedding
		{"predict", "-checkpoint", "x", "-image", "i", "-out", "d", "-point", "1"}, // bad point
		{"predict", "-checkpoint", "x", "-image", "i", "-out", "d", "-box", "1,2,3"},
		{"predict", "-checkpoint", "x", "-image", "i", "-out", "d", "-point", "1,2,5"},
		{"embed", "-nope"},
		{"embed", "-checkpoint", "x", "-image", "i", "-out", "o", "stray"},
	} {
		code, _, stderr := samCLI(args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
		require.NotEmpty(t, stderr, args)
	}
	code, _, _ := samCLI("help")
	require.Equal(t, 0, code)
}

func TestRuntimeErrorsExitOne(t *testing.T) {
	code, stdout, stderr := samCLI("info", "-checkpoint", filepath.Join(t.TempDir(), "missing.pth"))
	require.Equal(t, 1, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "missing.pth")
	code, _, stderr = samCLI("predict", "-checkpoint", filepath.Join(testdata, "tiny", "model.safetensors"),
		"-image", filepath.Join(testdata, "tiny", "image_0.png"), "-point", "NaN,1", "-out", t.TempDir())
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "NaN")
}

func TestInfo(t *testing.T) {
	code, stdout, stderr := samCLI("info", "-checkpoint", filepath.Join(testdata, "tiny", "model.pth"))
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "config.json") // picked up beside the checkpoint
	type infoConfig struct {
		EncoderEmbedDim int   `json:"encoder_embed_dim"`
		DecoderNumHeads int   `json:"decoder_num_heads"`
		Global          []int `json:"encoder_global_attn_indexes"`
	}
	type infoOutput struct {
		Format, Layout string
		Tensors        int
		Config         infoConfig
		NameCheck      *nameCheck `json:"name_check"`
	}
	var info infoOutput
	require.NoError(t, json.Unmarshal([]byte(stdout), &info))
	want := infoOutput{Format: "pth", Layout: "official", Tensors: 202,
		Config: infoConfig{EncoderEmbedDim: 64, DecoderNumHeads: 4, Global: []int{1, 3}}}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}

	// A name in the official style is checked against the file's sha256.
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(testdata, "tiny", "model.safetensors"))
	require.NoError(t, err)
	bad := filepath.Join(dir, "sam_vit_t_abcdef.safetensors")
	require.NoError(t, os.WriteFile(bad, data, 0o644))
	code, stdout, stderr = samCLI("info", "-checkpoint", bad, "-config", filepath.Join(testdata, "tiny", "config.json"))
	require.Equal(t, 1, code, "a sha256 that contradicts an official file name is an error: %s", stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), &info))
	require.NotNil(t, info.NameCheck)
	require.False(t, info.NameCheck.OK)
	require.Contains(t, stderr, "does not start with abcdef")
	code, _, _ = samCLI("info", "-checkpoint", bad, "-config", filepath.Join(testdata, "tiny", "config.json"), "-verify=false")
	require.Equal(t, 0, code)
	good := filepath.Join(dir, "sam_vit_t_"+info.NameCheck.SHA256[:6]+".safetensors")
	require.NoError(t, os.Rename(bad, good))
	code, stdout, _ = samCLI("info", "-checkpoint", good, "-config", filepath.Join(testdata, "tiny", "config.json"))
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(stdout), &info))
	require.True(t, info.NameCheck.OK)
}

func TestEmbedThenPredict(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(testdata, "small", "model.safetensors")
	img := filepath.Join(testdata, "small", "image_0.png") // 263×101
	code, _, stderr := samCLI("embed", "-checkpoint", ck, "-image", img, "-out", filepath.Join(dir, "e.npy"))
	require.Equal(t, 0, code, stderr)
	e, shape, err := npy.ReadFile(filepath.Join(dir, "e.npy"))
	require.NoError(t, err)
	require.Equal(t, []int{1, 64, 16, 16}, shape)
	code, _, stderr = samCLI("embed", "-checkpoint", ck, "-image", img, "-out", filepath.Join(dir, "e.safetensors"))
	require.Equal(t, 0, code, stderr)

	// Single prompt from the image, multimask.
	out1 := filepath.Join(dir, "p1")
	code, stdout, stderr := samCLI("predict", "-checkpoint", ck, "-image", img, "-point", "120,50", "-point", "30,20,0", "-multimask", "-logits", "-out", out1)
	require.Equal(t, 0, code, stderr)
	var res struct {
		Masks []struct {
			File string
			IoU  float32
		}
		Shapes map[string][]int
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	wantShapes := map[string][]int{"logits": {3, 101, 263}, "low_res_logits": {3, 64, 64}, "iou": {3}}
	if diff := cmp.Diff(wantShapes, res.Shapes); diff != "" {
		t.Errorf("one prompt: shapes (-want +got):\n%s", diff)
	}
	require.Len(t, res.Masks, 3)
	logits, shape, err := npy.ReadFile(filepath.Join(out1, "logits.npy"))
	require.NoError(t, err)
	require.Equal(t, []int{3, 101, 263}, shape)
	_, shape, err = npy.ReadFile(filepath.Join(out1, "low_res_logits.npy"))
	require.NoError(t, err)
	require.Equal(t, []int{3, 64, 64}, shape)
	iou, shape, err := npy.ReadFile(filepath.Join(out1, "iou.npy"))
	require.NoError(t, err)
	require.Equal(t, []int{3}, shape)
	for i, m := range res.Masks {
		require.Equal(t, iou[i], m.IoU)
		// The PNG is exactly logits > 0.
		png, err := imgproc.Load(filepath.Join(out1, m.File))
		require.NoError(t, err)
		for q := range 101 * 263 {
			require.Equal(t, logits[i*101*263+q] > 0, png.Pix[3*q] == 255, "mask %d pixel %d", i, q)
		}
	}
	for _, f := range []string{"overlay.png", "result.json"} {
		_, err := os.Stat(filepath.Join(out1, f))
		require.NoError(t, err, f)
	}

	// The same prompt from the saved embedding gives the same logits.
	out2 := filepath.Join(dir, "p2")
	code, _, stderr = samCLI("predict", "-checkpoint", ck, "-embedding", filepath.Join(dir, "e.safetensors"), "-point", "120,50", "-point", "30,20,0", "-multimask", "-logits", "-out", out2)
	require.Equal(t, 0, code, stderr)
	logits2, _, err := npy.ReadFile(filepath.Join(out2, "logits.npy"))
	require.NoError(t, err)
	require.Equal(t, logits, logits2)

	// Several boxes: a leading batch dim; a mask input from the first run.
	low, _, err := npy.ReadFile(filepath.Join(out1, "low_res_logits.npy"))
	require.NoError(t, err)
	require.NoError(t, npy.WriteFile(filepath.Join(dir, "m.npy"), low[:64*64], 1, 64, 64))
	out3 := filepath.Join(dir, "p3")
	code, stdout, stderr = samCLI("predict", "-checkpoint", ck, "-image", img, "-box", "10,10,100,90", "-box", "150,20,250,100",
		"-mask-input", filepath.Join(dir, "m.npy"), "-multimask=false", "-logits", "-out", out3)
	require.Equal(t, 0, code, stderr)
	res.Shapes = nil // Unmarshal would merge into the first run's map
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	wantShapes = map[string][]int{"logits": {2, 1, 101, 263}, "low_res_logits": {2, 1, 64, 64}, "iou": {2, 1}}
	if diff := cmp.Diff(wantShapes, res.Shapes); diff != "" {
		t.Errorf("two boxes: shapes (-want +got):\n%s", diff)
	}
	_, shape, err = npy.ReadFile(filepath.Join(out3, "iou.npy"))
	require.NoError(t, err)
	require.Equal(t, []int{2, 1}, shape)
	require.FileExists(t, filepath.Join(out3, "mask_1.png"))
	require.True(t, strings.HasPrefix(res.Masks[1].File, "mask_1"))
	_ = e
}

func TestEmbedManyMatchesOne(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(testdata, "tiny", "model.safetensors")
	imgs := filepath.Join(dir, "imgs")
	require.NoError(t, os.MkdirAll(imgs, 0o755))
	for _, f := range []string{"image_0.png", "image_1.png"} {
		data, err := os.ReadFile(filepath.Join(testdata, "tiny", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(imgs, f), data, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(imgs, "notes.txt"), []byte("not an image"), 0o644))

	out := filepath.Join(dir, "out")
	code, stdout, stderr := samCLI("embed", "-checkpoint", ck, "-image", imgs, "-out", out, "-devices", "cpu:2")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "images/s")
	var res struct {
		Images []struct{ Image, Out, Worker string }
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	require.Len(t, res.Images, 2)
	for _, f := range []string{"image_0", "image_1"} {
		one := filepath.Join(dir, f+".safetensors")
		code, _, stderr := samCLI("embed", "-checkpoint", ck, "-image", filepath.Join(imgs, f+".png"), "-out", one)
		require.Equal(t, 0, code, stderr)
		a, err := sam.LoadEmbedding(one)
		require.NoError(t, err)
		b, err := sam.LoadEmbedding(filepath.Join(out, f+".safetensors"))
		require.NoError(t, err)
		require.NotEmpty(t, b.Model)
		require.Equal(t, a, b, f)
	}

	// Two inputs with one base name would overwrite each other.
	code, _, stderr = samCLI("embed", "-checkpoint", ck, "-image", filepath.Join(imgs, "image_0.png"), "-image", filepath.Join(testdata, "small", "image_0.png"), "-out", filepath.Join(dir, "o2"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "both be written")
}

func TestDevices(t *testing.T) {
	code, stdout, stderr := samCLI("devices")
	require.Equal(t, 0, code, stderr)
	var out struct {
		CPU  struct{ Cores int }
		CUDA []any
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &out))
	require.Positive(t, out.CPU.Cores)
}
