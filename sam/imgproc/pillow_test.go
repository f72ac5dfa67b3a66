package imgproc

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// jpegTolerance bounds |Go − Pillow| per sample for JPEG files: Go's IDCT
// is not libjpeg's islow IDCT, everything after it is reproduced.
const jpegTolerance = 3

// TestPillowReference decodes every file in testdata/pillow and compares it
// with what Pillow 9.4.0's Image.open(f).convert("RGB") gave (written by
// testdata/pillow/gen.py as X.expected.png): bit for bit, JPEG within
// jpegTolerance.
func TestPillowReference(t *testing.T) {
	dir := filepath.Join("testdata", "pillow")
	var manifest struct {
		Files map[string]struct {
			Mode string `json:"mode"`
			Size [2]int `json:"size"`
		} `json:"files"`
	}
	readJSON(t, filepath.Join(dir, "manifest.json"), &manifest)
	require.NotEmpty(t, manifest.Files)
	names := make([]string, 0, len(manifest.Files))
	for n := range manifest.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	worst := 0
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, err := Load(filepath.Join(dir, name+".expected.png"))
			require.NoError(t, err)
			got, err := Load(filepath.Join(dir, name))
			require.NoError(t, err)
			require.Equal(t, manifest.Files[name].Size, [2]int{got.W, got.H}, "size (W, H)")
			require.Equal(t, [2]int{want.W, want.H}, [2]int{got.W, got.H})
			tol := 0
			if strings.HasPrefix(name, "jpeg_") {
				tol = jpegTolerance
			}
			maxDiff, at := 0, -1
			for i := range got.Pix {
				d := int(got.Pix[i]) - int(want.Pix[i])
				if d < 0 {
					d = -d
				}
				if d > maxDiff {
					maxDiff, at = d, i
				}
			}
			if tol > 0 {
				worst = max(worst, maxDiff)
				t.Logf("%s (%s): max |Δ| %d", name, manifest.Files[name].Mode, maxDiff)
			}
			if maxDiff > tol {
				p := at / 3
				t.Fatalf("%s (Pillow mode %s): max |Δ| %d > %d at x=%d y=%d c=%d: got %d want %d",
					name, manifest.Files[name].Mode, maxDiff, tol, p%got.W, p/got.W, at%3, got.Pix[at], want.Pix[at])
			}
		})
	}
	t.Logf("worst JPEG difference: %d", worst)
}
