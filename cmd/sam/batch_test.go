package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
)

var smallCk = filepath.Join(testdata, "small", "model.safetensors") // another model

// imageDir copies the tiny fixture's two images (and extra files) into a
// new directory.
func imageDir(t *testing.T, extra map[string][]byte) string {
	t.Helper()
	in := t.TempDir()
	for _, name := range []string{"image_0.png", "image_1.png"} {
		data, err := os.ReadFile(filepath.Join(testdata, "tiny", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(in, name), data, 0o644))
	}
	for name, data := range extra {
		require.NoError(t, os.WriteFile(filepath.Join(in, name), data, 0o644))
	}
	return in
}

// autoArgs are auto's arguments with the tiny fixture's options; a
// -checkpoint in extra replaces the tiny model.
func autoArgs(in, out string, extra ...string) []string {
	opts := append([]string(nil), tinyAutoArgs...)
	for i := 0; i+1 < len(extra); i++ {
		if extra[i] == "-checkpoint" {
			opts[1] = extra[i+1]
			extra = append(append([]string(nil), extra[:i]...), extra[i+2:]...)
			break
		}
	}
	args := append([]string{"auto", "-image", in, "-out", out}, opts...)
	return append(args, extra...)
}

// Item 5: a resumed auto skips what this model and these options made, and
// refuses (before any work) what another model or other options made,
// until -overwrite.
func TestAutoResumeChecksModelAndOptions(t *testing.T) {
	in := imageDir(t, nil)
	out := filepath.Join(t.TempDir(), "out")
	code, _, stderr := samCLI(autoArgs(in, out)...)
	require.Equal(t, 0, code, stderr)
	var rec runRecord
	data, err := os.ReadFile(filepath.Join(out, "image_0", "run.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &rec))
	require.NotEmpty(t, rec.Model)
	require.NotEmpty(t, rec.ImageSHA256)
	require.Equal(t, 0.721, rec.Options["pred_iou_thresh"])
	require.NotContains(t, rec.Options, "points_per_batch", "does not shape the masks")
	before, err := os.Stat(filepath.Join(out, "image_0", "masks.json"))
	require.NoError(t, err)

	// Same model and options (another batch size): skipped.
	code, stdout, stderr := samCLI(autoArgs(in, out, "-points-per-batch", "7")...)
	require.Equal(t, 0, code, stderr)
	var sum autoSummary
	require.NoError(t, json.Unmarshal([]byte(stdout), &sum))
	require.True(t, sum.Images[0].Skipped)
	require.True(t, sum.Images[1].Skipped)

	// Other options, another model: refused, nothing touched.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-pred-iou-thresh", "0.5"}, "pred_iou_thresh 0.721 (this run: 0.5)"},
		{[]string{"-output-mode", "binary_mask"}, "output_mode"},
		{[]string{"-checkpoint", smallCk}, "model " + rec.Model},
	} {
		code, stdout, stderr := samCLI(autoArgs(in, out, tc.args...)...)
		require.Equal(t, 1, code, "%v: %s", tc.args, stderr)
		require.Empty(t, stdout)
		require.Contains(t, stderr, tc.want)
		require.Contains(t, stderr, "-overwrite")
		after, err := os.Stat(filepath.Join(out, "image_0", "masks.json"))
		require.NoError(t, err)
		require.Equal(t, before.ModTime(), after.ModTime())
	}

	// -overwrite redoes them; a later run with the same options skips.
	args := autoArgs(in, out, "-pred-iou-thresh", "0.5", "-output-mode", "binary_mask", "-overwrite")
	code, stdout, stderr = samCLI(args...)
	require.Equal(t, 0, code, stderr)
	sum = autoSummary{} // (omitempty: a false Skipped would not overwrite)
	require.NoError(t, json.Unmarshal([]byte(stdout), &sum))
	require.False(t, sum.Images[0].Skipped)
	require.NoFileExists(t, filepath.Join(out, "image_0", "masks.json"), "the coco_rle run's file is gone")
	require.FileExists(t, filepath.Join(out, "image_0", "metadata.csv"))
	code, stdout, stderr = samCLI(autoArgs(in, out, "-pred-iou-thresh", "0.5", "-output-mode", "binary_mask")...)
	require.Equal(t, 0, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), &sum))
	require.True(t, sum.Images[0].Skipped)

	// Outputs without a run.json (an older sam) are not taken as done.
	require.NoError(t, os.Remove(filepath.Join(out, "image_1", "run.json")))
	require.NoError(t, os.WriteFile(filepath.Join(out, "image_1", "masks.json"), []byte("[]"), 0o644))
	code, _, stderr = samCLI(autoArgs(in, out, "-pred-iou-thresh", "0.5", "-output-mode", "binary_mask")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "without a run.json")
}

// Item 6: several -image flags are processed like a directory.
func TestAutoSeveralImages(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := samCLI(append([]string{"auto", "-image", tinyImg, "-image", filepath.Join(testdata, "tiny", "image_1.png"), "-out", out}, tinyAutoArgs...)...)
	require.Equal(t, 0, code, stderr)
	var sum autoSummary
	require.NoError(t, json.Unmarshal([]byte(stdout), &sum))
	require.Len(t, sum.Images, 2)
	require.FileExists(t, filepath.Join(out, "image_0", "masks.json"))
	require.FileExists(t, filepath.Join(out, "image_1", "masks.json"))
	code, _, stderr = samCLI(append([]string{"auto", "-image", tinyImg, "-image", tinyImg, "-out", out}, tinyAutoArgs...)...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "would both be written")
}

// Item 16: binary_mask writes <i>.png per mask and the official
// metadata.csv, not JSON arrays of booleans; the PNGs are the masks of the
// RLE records.
func TestAutoBinaryMask(t *testing.T) {
	dir := t.TempDir()
	rle, bin := filepath.Join(dir, "rle"), filepath.Join(dir, "bin")
	code, _, stderr := samCLI(append([]string{"auto", "-image", tinyImg, "-out", rle, "-output-mode", "uncompressed_rle"}, tinyAutoArgs...)...)
	require.Equal(t, 0, code, stderr)
	code, _, stderr = samCLI(append([]string{"auto", "-image", tinyImg, "-out", bin, "-output-mode", "binary_mask"}, tinyAutoArgs...)...)
	require.Equal(t, 0, code, stderr)
	require.NoFileExists(t, filepath.Join(bin, "masks.json"))
	var recs []struct {
		Segmentation amg.RLE
		Area         int
	}
	data, err := os.ReadFile(filepath.Join(rle, "masks.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &recs))
	require.NotEmpty(t, recs)
	csv, err := os.ReadFile(filepath.Join(bin, "metadata.csv"))
	require.NoError(t, err)
	lines := strings.Split(string(csv), "\n")
	require.Equal(t, amg.MetadataCSVHeader, lines[0])
	require.Len(t, lines, len(recs)+1, "no trailing newline, as \"\\n\".join")
	for i, r := range recs {
		png, err := imgproc.Load(filepath.Join(bin, strings.Split(lines[i+1], ",")[0]+".png"))
		require.NoError(t, err)
		want, err := r.Segmentation.Decode()
		require.NoError(t, err)
		for q := range want {
			require.Equal(t, want[q], png.Pix[3*q] == 255, "mask %d pixel %d", i, q)
		}
		require.True(t, strings.HasPrefix(lines[i+1], strings.Join([]string{itoa(i), itoa(r.Area)}, ",")+","))
	}
	require.NoFileExists(t, filepath.Join(bin, itoa(len(recs))+".png"))
}

func itoa(i int) string { return strconv.Itoa(i) }

// Item 16: the auto overlay leaves a background-sized mask unfilled,
// draws smaller masks over larger ones without mixing their tints, and
// outlines every mask.
func TestAutoOverlay(t *testing.T) {
	const W, H = 40, 30
	img := imgproc.NewRGB(W, H)
	for i := range img.Pix {
		img.Pix[i] = 100
	}
	rect := func(x0, y0, x1, y1 int) amg.Record {
		m := make([]bool, W*H)
		for y := y0; y <= y1; y++ {
			for x := x0; x <= x1; x++ {
				m[y*W+x] = true
			}
		}
		r := amg.EncodeRLE(m, W, H)
		return amg.Record{RLE: r, Area: r.Area(), BBox: [4]int{x0, y0, x1 - x0, y1 - y0}}
	}
	// Listed small first: the overlay sorts by area.
	recs := []amg.Record{rect(10, 10, 14, 14), rect(5, 5, 25, 20), rect(0, 0, 37, 27)}
	var buf strings.Builder
	require.NoError(t, autoOverlay(&buf, img, recs))
	ov, err := imgproc.Decode(strings.NewReader(buf.String()))
	require.NoError(t, err)
	at := func(x, y int) [3]uint8 { r, g, b := ov.At(x, y); return [3]uint8{r, g, b} }
	blend := func(c [3]uint8) [3]uint8 {
		a := uint32(115) // round(0.45·256)
		var o [3]uint8
		for k := range 3 {
			o[k] = uint8((100*(256-a) + uint32(c[k])*a + 128) >> 8)
		}
		return o
	}
	require.Equal(t, [3]uint8{100, 100, 100}, at(30, 25), "inside only the background-sized mask: untinted")
	require.Equal(t, darker(imgproc.MaskColor(0)), at(37, 10), "but outlined")
	require.Equal(t, blend(imgproc.MaskColor(1)), at(20, 17), "the middle mask")
	require.Equal(t, blend(imgproc.MaskColor(2)), at(12, 12), "the small mask on top, its tint not mixed with the middle one's")
	require.Equal(t, darker(imgproc.MaskColor(2)), at(10, 12), "and outlined")
}

// Item 17: off a terminal progress is one plain line per image (no '\r',
// no ESC); on one it redraws a line. A failed image's reason is printed.
func TestProgressLines(t *testing.T) {
	in := imageDir(t, map[string][]byte{"bad.png": []byte("\x89PNG\r\n\x1a\nnot really")})
	out := filepath.Join(t.TempDir(), "out")
	code, _, stderr := samCLI(autoArgs(in, out)...)
	require.Equal(t, 1, code)
	require.NotContains(t, stderr, "\r")
	require.NotContains(t, stderr, "\x1b")
	require.Contains(t, stderr, "1/3 "+filepath.Join(in, "bad.png")+": failed: ")
	require.Contains(t, stderr, "2/3 "+filepath.Join(in, "image_0.png")+": ")
	require.Contains(t, stderr, "1 of 3 images failed")

	emb := filepath.Join(t.TempDir(), "emb")
	code, _, stderr = samCLI("embed", "-checkpoint", tinyCk, "-image", in, "-out", emb)
	require.Equal(t, 1, code)
	require.NotContains(t, stderr, "\r")
	require.NotContains(t, stderr, "\x1b")
	require.Contains(t, stderr, filepath.Join(in, "bad.png")+": failed: ")
	require.Contains(t, stderr, "2/3") // one line per image

	old := isTerminal
	isTerminal = func(io.Writer) bool { return true }
	defer func() { isTerminal = old }()
	code, _, stderr = samCLI(autoArgs(in, filepath.Join(t.TempDir(), "o2"))...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "\r\x1b[K")
	require.Contains(t, stderr, "bad.png: failed: ")
}

// interruptAfter makes the CLI's Ctrl-C context cancel after n images.
func interruptAfter(t *testing.T, n int) {
	var cancel context.CancelFunc
	oldN, oldA := notifyContext, afterItem
	notifyContext = func(parent context.Context) (context.Context, context.CancelFunc) {
		var ctx context.Context
		ctx, cancel = context.WithCancel(parent)
		return ctx, cancel
	}
	afterItem = func(done int) {
		if done == n {
			cancel()
		}
	}
	t.Cleanup(func() { notifyContext, afterItem = oldN, oldA })
}

// Item 17: Ctrl-C exits 130 after a summary; the next run resumes.
// Item 12: the same for embed, which writes .safetensors that predict
// reads, records them, and refuses another model's.
func TestInterruptAndResume(t *testing.T) {
	in := imageDir(t, nil)
	out := filepath.Join(t.TempDir(), "out")
	interruptAfter(t, 1)
	code, stdout, stderr := samCLI(autoArgs(in, out)...)
	require.Equal(t, 130, code, stderr)
	require.Contains(t, stderr, "interrupted: 1 of 2 image(s) done")
	var sum struct {
		Interrupted bool
		Images      []struct{ Image string }
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &sum))
	require.True(t, sum.Interrupted)

	emb := filepath.Join(t.TempDir(), "emb")
	code, stdout, stderr = samCLI("embed", "-checkpoint", tinyCk, "-image", in, "-out", emb)
	require.Equal(t, 130, code, stderr)
	require.Contains(t, stderr, "interrupted: ")
	var es struct {
		Interrupted bool
		Images      []struct {
			Out     string
			Skipped bool
		}
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &es))
	require.True(t, es.Interrupted)
	encoded := 0 // 1, or 2 when the second image finished while the first was reported
	for _, im := range es.Images {
		if im.Out != "" {
			encoded++
		}
	}
	require.Positive(t, encoded)

	notifyContext, afterItem = func(p context.Context) (context.Context, context.CancelFunc) { return context.WithCancel(p) }, nil
	code, stdout, stderr = samCLI(autoArgs(in, out)...)
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, stderr, "interrupted")
	var as autoSummary
	require.NoError(t, json.Unmarshal([]byte(stdout), &as))
	require.True(t, as.Images[0].Skipped)
	require.False(t, as.Images[1].Skipped)

	code, stdout, stderr = samCLI("embed", "-checkpoint", tinyCk, "-image", in, "-out", emb)
	require.Equal(t, 0, code, stderr)
	es.Images = nil
	require.NoError(t, json.Unmarshal([]byte(stdout), &es))
	require.Len(t, es.Images, 2)
	require.Equal(t, encoded, btoi(es.Images[0].Skipped)+btoi(es.Images[1].Skipped))
	for _, im := range es.Images {
		e, err := sam.LoadEmbedding(im.Out)
		require.NoError(t, err)
		require.NotEmpty(t, e.Model)
	}
	predictOK(t, "-embedding", es.Images[1].Out, "-point", "50,50", "-out", filepath.Join(t.TempDir(), "p"))

	code, _, stderr = samCLI("embed", "-checkpoint", smallCk, "-image", in, "-out", emb)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "-overwrite")
	require.Contains(t, stderr, "model ")
	code, stdout, stderr = samCLI("embed", "-checkpoint", smallCk, "-image", in, "-out", emb, "-overwrite")
	require.Equal(t, 0, code, stderr)
	es.Images = nil
	require.NoError(t, json.Unmarshal([]byte(stdout), &es))
	require.False(t, es.Images[0].Skipped)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Item 7: every option has a range, checked before any work; work over the
// memory budget is refused before it starts.
func TestRangesAndBudget(t *testing.T) {
	out := t.TempDir()
	for _, args := range [][]string{
		{"-crop-overlap-ratio", "1.5"},
		{"-crop-overlap-ratio", "-0.1"},
		{"-points-per-side", "100000"},
		{"-crop-n-layers", "20"},
		{"-crop-n-layers", "8"},
		{"-pred-iou-thresh", "-1"},
		{"-points-per-batch", "100000"},
	} {
		code, _, stderr := samCLI(append([]string{"auto", "-checkpoint", tinyCk, "-image", tinyImg, "-out", out}, args...)...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
		require.Contains(t, stderr, "outside", args)
	}
	code, _, stderr := samCLI("auto", "-h")
	require.Equal(t, 0, code)
	require.Contains(t, stderr, "1…1024")
	require.Contains(t, stderr, "0 ≤ r < 1")

	code, _, stderr = samCLI(append([]string{"auto", "-image", tinyImg, "-out", out, "-max-memory", "1M"}, tinyAutoArgs...)...)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "over the memory budget of 1.0 MiB")
	require.NoFileExists(t, filepath.Join(out, "masks.json"))

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "-batch", "100000"}, 2, "1…1024"},
		{[]string{"bench", "-batch", "0"}, 2, "1…1024"},
		{[]string{"bench", "-prompts", "100000"}, 2, "1…1024"},
		{[]string{"bench", "-batch", "1000", "-max-memory", "8G"}, 1, "memory budget"},
		{[]string{"bench", "-iters", "0"}, 2, "-iters 0"},
		{[]string{"embed", "-checkpoint", tinyCk, "-image", tinyImg, "-out", out, "-workers", "0"}, 2, "-workers 0"},
		{[]string{"embed", "-checkpoint", tinyCk, "-image", tinyImg, "-out", out, "-batch", "0"}, 2, "-batch 0"},
		{[]string{"embed", "-checkpoint", tinyCk, "-image", tinyImg, "-out", out, "-batch", "-3"}, 2, "-batch -3"},
		{[]string{"embed", "-checkpoint", tinyCk, "-image", tinyImg, "-out", out, "-threads", "0"}, 2, "-threads 0"},
		{[]string{"embed", "-checkpoint", tinyCk, "-image", tinyImg, "-out", out, "-batch", "1000", "-max-memory", "100M"}, 1, "memory budget"},
	} {
		code, _, stderr := samCLI(tc.args...)
		require.Equal(t, tc.code, code, "%v: %s", tc.args, stderr)
		require.Contains(t, stderr, tc.want, tc.args)
	}
}
