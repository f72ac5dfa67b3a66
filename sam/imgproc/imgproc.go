// Package imgproc turns an image file into exactly what the official
// SamPredictor.set_image feeds SAM's image encoder, and draws results.
//
// The reference pipeline (segment-anything, Pillow 9.4) is
//
//	image = np.array(Image.open(path).convert("RGB"))        // Decode / Load
//	h, w = ResizeLongestSide.get_preprocess_shape(H, W, S)   // PreprocessShape
//	resized = Image.resize((w, h), BILINEAR)                 // ResizeLongestSide / Resize
//	input = pad((resized - pixel_mean) / pixel_std, S×S)     // Normalize / NormalizeCHW
//
// and every step here reproduces it bit for bit, except JPEG decoding, whose
// IDCT differs from libjpeg's (see FromImage). The fixtures in
// tests/testdata/{tiny,small} (resized_uint8, input) are matched exactly.
//
// An RGB image is H×W×3 interleaved uint8, row-major (HWC), the layout of the
// numpy array the official code works on.
package imgproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"os"

	// Decoders Decode understands. Registration is global (image.RegisterFormat).
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// RGB is an 8-bit RGB image: Pix holds H rows of W pixels of 3 bytes (R, G,
// B), no padding, so len(Pix) == W*H*3 and pixel (x, y) starts at
// (y*W+x)*3.
type RGB struct {
	W, H int
	Pix  []uint8
}

// NewRGB returns a black w×h image.
func NewRGB(w, h int) *RGB {
	if w < 0 || h < 0 {
		panic(fmt.Sprintf("imgproc: negative image size %dx%d", w, h))
	}
	return &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
}

// At returns the pixel at (x, y), which must lie inside the image.
func (m *RGB) At(x, y int) (r, g, b uint8) {
	i := (y*m.W + x) * 3
	return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
}

// DefaultMaxPixels is the largest image (W·H) Decode and Load accept: 2^28
// pixels (16384×16384), about 0.8 GB as RGB and 1 GB in the decoder's own
// buffer. Use DecodeLimit for another bound.
const DefaultMaxPixels = 1 << 28

// Sentinel errors (always wrapped with context).
var (
	// ErrFormat: the data is not an image in a supported format, or is
	// corrupt or truncated.
	ErrFormat = errors.New("unsupported or corrupt image")
	// ErrTooLarge: the header declares more pixels than the limit allows
	// (a guard against decompression bombs; checked before decoding).
	ErrTooLarge = errors.New("image too large")
	// ErrEmpty: the image has no pixels.
	ErrEmpty = errors.New("empty image")
)

// Load reads and decodes the image file at path (see Decode). Errors name the
// file.
func Load(path string) (*RGB, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load image: %w", err) // *PathError names the file
	}
	img, err := decodeBytes(data, DefaultMaxPixels)
	if err != nil {
		return nil, fmt.Errorf("load image %s: %w", path, err)
	}
	return img, nil
}

// Decode reads a PNG, JPEG, GIF (first frame), BMP, TIFF or WebP image and
// converts it as Pillow's Image.open(f).convert("RGB") would (the rules are
// listed at FromImage, the format-specific ones at decodeBytes). Images above
// DefaultMaxPixels are refused with ErrTooLarge before any pixel is decoded.
func Decode(r io.Reader) (*RGB, error) {
	return DecodeLimit(r, DefaultMaxPixels)
}

// DecodeLimit is Decode with maxPixels (W·H) in place of DefaultMaxPixels.
func DecodeLimit(r io.Reader, maxPixels int) (*RGB, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decode image: %w", err)
	}
	img, err := decodeBytes(data, maxPixels)
	if err != nil {
		return nil, fmt.Errorf("decode image: %w", err)
	}
	return img, nil
}

// decodeBytes decodes a whole file. On top of FromImage's type rules it
// applies what only the file itself tells (what Pillow does differently
// from Go's decoders for the same bytes):
//
//   - PNG, 16-bit grayscale (colour type 0, with or without tRNS): Pillow opens
//     it as mode "I" and convert("RGB") clips each value to 0..255 (it does not
//     scale: 300 → 255, 200 → 200). Go gives *image.Gray16 (clipped the same
//     way by FromImage) or, with tRNS, *image.NRGBA64, clipped here.
//   - PNG, palette index beyond the PLTE entries: Pillow's palette is padded
//     with a grey ramp, so index i gives (i, i, i); Go pads with black.
//   - GIF: Pillow's image is the logical screen; outside the first frame's
//     rectangle it holds the transparent index (if the frame has one) else 0;
//     the transparent index keeps its palette colour. Go returns the frame
//     rectangle only and blanks the transparent palette entry.
//   - WebP (lossy): libwebp converts Y'CbCr as BT.601 studio range with its
//     "fancy" chroma upsampling; Go's *image.YCbCr would be read as full
//     range JPEG Y'CbCr. Done as libwebp does it, bit for bit.
func decodeBytes(data []byte, maxPixels int) (img *RGB, err error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%w: %s %dx%d", ErrEmpty, format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return nil, fmt.Errorf("%w: %s %dx%d is over the limit of %d pixels", ErrTooLarge, format, cfg.Width, cfg.Height, maxPixels)
	}
	// The decoders are meant never to panic on bad input; should one do so,
	// it is reported as a corrupt file rather than taking the caller down.
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("%w: %s decoder panicked: %v", ErrFormat, format, p)
		}
	}()
	var gifInfo *gifFirstFrame
	if format == "gif" {
		if gifInfo, err = parseGIF(data); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFormat, err)
		}
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, format, err)
	}
	b := src.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, fmt.Errorf("%w: %s %dx%d", ErrEmpty, format, b.Dx(), b.Dy())
	}
	if int64(b.Dx())*int64(b.Dy()) > int64(maxPixels) {
		return nil, fmt.Errorf("%w: %s %dx%d is over the limit of %d pixels", ErrTooLarge, format, b.Dx(), b.Dy(), maxPixels)
	}
	switch format {
	case "png":
		return fromPNG(src, data), nil
	case "gif":
		if p, ok := src.(*image.Paletted); ok {
			return gifInfo.compose(p, cfg.Width, cfg.Height), nil
		}
	case "webp":
		switch m := src.(type) {
		case *image.YCbCr:
			return webpYCbCrToRGB(m), nil
		case *image.NYCbCrA:
			return webpYCbCrToRGB(&m.YCbCr), nil
		}
	}
	return FromImage(src), nil
}
