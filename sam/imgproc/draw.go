package imgproc

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
)

// ToImage returns m as an opaque *image.NRGBA (a copy).
func (m *RGB) ToImage() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+3, j+4 {
		img.Pix[j], img.Pix[j+1], img.Pix[j+2], img.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 0xff
	}
	return img
}

// WritePNG encodes m as an 8-bit RGB PNG.
func WritePNG(w io.Writer, m *RGB) error {
	if err := png.Encode(w, m.ToImage()); err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	return nil
}

// SavePNG writes m to path as an 8-bit RGB PNG.
func SavePNG(path string, m *RGB) error {
	return saveWith(path, func(w io.Writer) error { return WritePNG(w, m) })
}

func saveWith(path string, write func(io.Writer) error) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("save %s: %w", path, cerr)
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// Mask is a binary mask of an image: W·H values, row-major, true inside.
type Mask []bool

// ErrMaskSize: a mask's length is not the image's W·H.
var ErrMaskSize = errors.New("mask size does not match the image")

// MaskImage returns the mask as an 8-bit grayscale image: 255 inside, 0
// outside.
func MaskImage(mask Mask, w, h int) (*image.Gray, error) {
	if w < 0 || h < 0 || len(mask) != w*h {
		return nil, fmt.Errorf("%w: %d values for %dx%d", ErrMaskSize, len(mask), w, h)
	}
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i, v := range mask {
		if v {
			img.Pix[i] = 255
		}
	}
	return img, nil
}

// MaskPNG writes the mask as a black (outside) and white (inside) 8-bit
// grayscale PNG.
func MaskPNG(wr io.Writer, mask Mask, w, h int) error {
	img, err := MaskImage(mask, w, h)
	if err != nil {
		return err
	}
	if err := png.Encode(wr, img); err != nil {
		return fmt.Errorf("write mask png: %w", err)
	}
	return nil
}

// SaveMaskPNG writes the mask to path (see MaskPNG).
func SaveMaskPNG(path string, mask Mask, w, h int) error {
	return saveWith(path, func(wr io.Writer) error { return MaskPNG(wr, mask, w, h) })
}

// distinctColors is Sasha Trubetskoy's list of 20 simple, distinct colours,
// ordered so that the first few are the most distinct.
var distinctColors = [][3]uint8{
	{230, 25, 75}, {60, 180, 75}, {255, 225, 25}, {0, 130, 200}, {245, 130, 48},
	{145, 30, 180}, {70, 240, 240}, {240, 50, 230}, {210, 245, 60}, {250, 190, 212},
	{0, 128, 128}, {220, 190, 255}, {170, 110, 40}, {255, 250, 200}, {128, 0, 0},
	{170, 255, 195}, {128, 128, 0}, {255, 215, 180}, {0, 0, 128}, {128, 128, 128},
}

// MaskColor is the fill colour Overlay gives mask i: the 20 colours of a
// fixed palette of distinct colours, then hues spaced by the golden angle.
func MaskColor(i int) [3]uint8 {
	if i >= 0 && i < len(distinctColors) {
		return distinctColors[i]
	}
	h := math.Mod(float64(i)*0.618033988749895, 1) * 6 // golden-ratio hue steps
	s, v := 0.75, 0.95
	f := h - math.Floor(h)
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	var r, g, b float64
	switch int(h) % 6 {
	case 0:
		r, g, b = v, t, p
	case 1:
		r, g, b = q, v, p
	case 2:
		r, g, b = p, v, t
	case 3:
		r, g, b = p, q, v
	case 4:
		r, g, b = t, p, v
	default:
		r, g, b = v, p, q
	}
	return [3]uint8{uint8(r*255 + 0.5), uint8(g*255 + 0.5), uint8(b*255 + 0.5)}
}

// outlineColor is the opaque outline drawn around a mask of fill colour c:
// the same hue at 55% brightness.
func outlineColor(c [3]uint8) [3]uint8 {
	return [3]uint8{uint8(uint32(c[0]) * 141 >> 8), uint8(uint32(c[1]) * 141 >> 8), uint8(uint32(c[2]) * 141 >> 8)}
}

// Overlay returns a copy of img with mask i blended in MaskColor(i) at
// opacity alpha (0..1, clamped), later masks over earlier ones, then every
// mask outlined, opaque, in a darker shade of its colour. The outline is 2 px
// wide, straddling the mask's edge: mask pixels with a 4-neighbour outside
// the mask (or on the image border), and non-mask pixels with a 4-neighbour
// inside. Each mask must hold img.W·img.H values (ErrMaskSize otherwise).
func Overlay(img *RGB, masks []Mask, alpha float64) (*RGB, error) {
	n := img.W * img.H
	for i, m := range masks {
		if len(m) != n {
			return nil, fmt.Errorf("overlay: mask %d: %w: %d values for %dx%d", i, ErrMaskSize, len(m), img.W, img.H)
		}
	}
	out := &RGB{W: img.W, H: img.H, Pix: append([]uint8(nil), img.Pix...)}
	if math.IsNaN(alpha) {
		alpha = 0
	}
	a := uint32(math.Round(min(max(alpha, 0), 1) * 256))
	w, h := img.W, img.H
	boxes := make([]image.Rectangle, len(masks)) // bounding boxes, for the outline pass
	for i, m := range masks {
		c := MaskColor(i)
		for p, in := range m {
			if !in {
				continue
			}
			boxes[i] = boxes[i].Union(image.Rect(p%w, p/w, p%w+1, p/w+1))
			px := out.Pix[3*p : 3*p+3 : 3*p+3]
			for ch := range 3 {
				px[ch] = uint8((uint32(px[ch])*(256-a) + uint32(c[ch])*a + 128) >> 8)
			}
		}
	}
	for i, m := range masks {
		oc := outlineColor(MaskColor(i))
		r := boxes[i].Inset(-1).Intersect(image.Rect(0, 0, w, h))
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				p := y*w + x
				in := m[p]
				edge := false
				// Neighbours outside the image count as outside the mask.
				for _, d := range [4][2]int{{-1, 0}, {1, 0}, {0, -1}, {0, 1}} {
					nx, ny := x+d[0], y+d[1]
					nin := nx >= 0 && nx < w && ny >= 0 && ny < h && m[ny*w+nx]
					if nin != in && (in || nx >= 0 && nx < w && ny >= 0 && ny < h) {
						edge = true
						break
					}
				}
				if edge {
					out.Pix[3*p], out.Pix[3*p+1], out.Pix[3*p+2] = oc[0], oc[1], oc[2]
				}
			}
		}
	}
	return out, nil
}
