package imgproc

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// refResamplePass restates one pass of Pillow's bilinear resample for a
// single line of samples, computing each output's weights from scratch in
// float64 (Resample.c precompute_coeffs + normalize_coeffs_8bpc + the 8-bit
// inner loop), with nothing precomputed or shared.
func refResamplePass(line []uint8, outN int) []uint8 {
	inN := len(line)
	scale := float64(inN) / float64(outN)
	filterScale := math.Max(scale, 1) // stretch the triangle when shrinking
	support := filterScale            // bilinear support is 1
	out := make([]uint8, outN)
	for i := range outN {
		center := (float64(i) + 0.5) * scale
		lo := int(math.Trunc(center - support + 0.5)) // C's (int) cast
		hi := int(math.Trunc(center + support + 0.5))
		lo, hi = max(lo, 0), min(hi, inN)
		weights := []float64{}
		total := 0.0
		for x := lo; x < hi; x++ {
			d := math.Abs((float64(x) - center + 0.5) / filterScale)
			wt := math.Max(0, 1-d)
			weights = append(weights, wt)
			total += wt
		}
		acc := int64(1) << 21 // rounding: half of 2^22
		for j, wt := range weights {
			if total != 0 {
				wt /= total
			}
			q := int64(math.Floor(wt*(1<<22) + 0.5)) // weights are ≥ 0: half away from zero
			acc += q * int64(line[lo+j])
		}
		v := acc >> 22
		out[i] = uint8(max(0, min(255, v)))
	}
	return out
}

// refResize applies the passes as Pillow does: horizontal first (skipped if
// the width is unchanged), into an 8-bit image, then vertical.
func refResize(src *RGB, w, h int) *RGB {
	cur := &RGB{W: src.W, H: src.H, Pix: append([]uint8(nil), src.Pix...)}
	if w != cur.W {
		next := NewRGB(w, cur.H)
		for y := range cur.H {
			for c := range 3 {
				line := make([]uint8, cur.W)
				for x := range cur.W {
					line[x] = cur.Pix[(y*cur.W+x)*3+c]
				}
				for x, v := range refResamplePass(line, w) {
					next.Pix[(y*w+x)*3+c] = v
				}
			}
		}
		cur = next
	}
	if h != cur.H {
		next := NewRGB(cur.W, h)
		for x := range cur.W {
			for c := range 3 {
				line := make([]uint8, cur.H)
				for y := range cur.H {
					line[y] = cur.Pix[(y*cur.W+x)*3+c]
				}
				for y, v := range refResamplePass(line, h) {
					next.Pix[(y*cur.W+x)*3+c] = v
				}
			}
		}
		cur = next
	}
	return cur
}

func randomRGB(r *rand.Rand, w, h int) *RGB {
	m := NewRGB(w, h)
	for i := range m.Pix {
		m.Pix[i] = uint8(r.IntN(256))
	}
	return m
}

func TestResizeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct{ sw, sh, w, h int }{
		{37, 23, 17, 11}, // shrink both, odd
		{37, 23, 80, 51}, // enlarge both
		{37, 23, 37, 9},  // width unchanged: horizontal pass skipped
		{37, 23, 5, 23},  // height unchanged: vertical pass skipped
		{37, 23, 60, 7},  // enlarge one, shrink the other
		{1, 1, 7, 5},     // 1-pixel source
		{1, 9, 3, 4},     // 1-pixel wide source
		{9, 1, 4, 3},     // 1-pixel high source
		{37, 23, 1, 1},   // to 1 pixel
		{37, 23, 1, 40},  // to 1 pixel wide
		{300, 7, 299, 7}, // shrink by one
		{300, 7, 301, 8}, // grow by one
		{1000, 3, 7, 3},  // strong shrink, wide filter
		{263, 101, 256, 98},
		{161, 119, 128, 95},
		{70, 45, 128, 82},
		{64, 100, 164, 256},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%dx%d_to_%dx%d", c.sw, c.sh, c.w, c.h), func(t *testing.T) {
			src := randomRGB(r, c.sw, c.sh)
			got := Resize(src, c.w, c.h)
			want := refResize(src, c.w, c.h)
			require.Equal(t, c.w, got.W)
			require.Equal(t, c.h, got.H)
			if d := firstDiff(got.Pix, want.Pix); d >= 0 {
				t.Fatalf("differs at byte %d: got %d want %d", d, got.Pix[d], want.Pix[d])
			}
		})
	}
}

func TestResizeProperties(t *testing.T) {
	// [0, 255] shrunk to one pixel: both weights are 1/2 → (2^21 + 2^21·255) >> 22 = 128.
	src := &RGB{W: 2, H: 1, Pix: []uint8{0, 0, 0, 255, 255, 255}}
	require.Equal(t, []uint8{128, 128, 128}, Resize(src, 1, 1).Pix)

	// A constant image stays constant at any size.
	c := NewRGB(13, 7)
	for i := range c.Pix {
		c.Pix[i] = []uint8{17, 200, 255}[i%3]
	}
	for _, sz := range [][2]int{{1, 1}, {26, 14}, {5, 30}, {100, 3}} {
		out := Resize(c, sz[0], sz[1])
		for i, v := range out.Pix {
			require.Equal(t, []uint8{17, 200, 255}[i%3], v, "size %v", sz)
		}
	}

	// Same size: a copy, not the same backing array.
	same := Resize(c, 13, 7)
	require.Equal(t, c.Pix, same.Pix)
	same.Pix[0]++
	require.NotEqual(t, c.Pix[0], same.Pix[0])

	require.Panics(t, func() { Resize(c, 0, 5) })
}

// TestResizePillowGolden compares with Image.resize(size, BILINEAR) outputs
// written by Pillow 9.4.0 (testdata/pillow/gen.py).
func TestResizePillowGolden(t *testing.T) {
	dir := filepath.Join("testdata", "pillow")
	var manifest struct {
		Resize map[string]struct {
			Src  string `json:"src"`
			Size [2]int `json:"size"`
		} `json:"resize"`
	}
	readJSON(t, filepath.Join(dir, "manifest.json"), &manifest)
	require.NotEmpty(t, manifest.Resize)
	for name, c := range manifest.Resize {
		t.Run(name, func(t *testing.T) {
			src, err := Load(filepath.Join(dir, c.Src))
			require.NoError(t, err)
			want, err := Load(filepath.Join(dir, name))
			require.NoError(t, err)
			got := Resize(src, c.Size[0], c.Size[1])
			require.Equal(t, [2]int{want.W, want.H}, [2]int{got.W, got.H})
			if d := firstDiff(got.Pix, want.Pix); d >= 0 {
				t.Fatalf("differs at byte %d: got %d want %d", d, got.Pix[d], want.Pix[d])
			}
		})
	}
}

func TestPreprocessShape(t *testing.T) {
	cases := []struct{ h, w, s, nh, nw int }{
		{119, 161, 128, 95, 128},
		{45, 70, 128, 82, 128},
		{101, 263, 256, 98, 256},
		{100, 64, 256, 256, 164},
		{480, 640, 256, 192, 256},
		{420, 300, 256, 256, 183},
		{256, 256, 256, 256, 256},
		{1365, 1024, 1024, 1024, 768},
		{2250, 1500, 1024, 1024, 683},
		{1, 10000, 1024, 1, 1024}, // would be 0 in the reference
	}
	for _, c := range cases {
		nh, nw := PreprocessShape(c.h, c.w, c.s)
		require.Equal(t, [2]int{c.nh, c.nw}, [2]int{nh, nw}, "%dx%d → %d", c.h, c.w, c.s)
	}
	// Same size: ResizeLongestSide copies.
	m := randomRGB(rand.New(rand.NewPCG(3, 4)), 256, 100)
	require.Equal(t, m.Pix, ResizeLongestSide(m, 256).Pix)
}

func BenchmarkResizePhoto(b *testing.B) {
	// A 1500×2250 photo (portrait) to SAM's 1024 long side: 683×1024.
	src := randomRGB(rand.New(rand.NewPCG(5, 6)), 1500, 2250)
	b.SetBytes(int64(len(src.Pix)))
	for b.Loop() {
		ResizeLongestSide(src, 1024)
	}
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(7, 8)) }

// BenchmarkPipelineJPEG is Decode → ResizeLongestSide(1024) → Normalize for
// a 3000×2000 4:2:0 JPEG (the decode itself dominates).
func BenchmarkPipelineJPEG(b *testing.B) {
	data := photoJPEG(b, 3000, 2000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m, err := Decode(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Normalize(ResizeLongestSide(m, 1024), 1024, PixelMean, PixelStd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFromImageYCbCr is the libjpeg-style chroma upsampling and colour
// conversion of a 3000×2000 4:2:0 image.
func BenchmarkFromImageYCbCr(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(photoJPEG(b, 3000, 2000)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		FromImage(img)
	}
}

func photoJPEG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	src := image.NewRGBA(image.Rect(0, 0, w, h))
	r := newRand()
	for y := range h {
		for x := range w {
			i := src.PixOffset(x, y)
			src.Pix[i] = uint8(x * 255 / w)
			src.Pix[i+1] = uint8(y * 255 / h)
			src.Pix[i+2] = uint8((x+y)%256) ^ uint8(r.IntN(16))
			src.Pix[i+3] = 255
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
