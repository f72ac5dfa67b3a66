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
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
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

// Validate reports an image that the pipeline cannot take: nil, no pixels
// or a Pix of the wrong length (ErrEmpty), or more than DefaultMaxPixels
// pixels (ErrTooLarge), the bound decoded images get.
func (m *RGB) Validate() error {
	switch {
	case m == nil:
		return fmt.Errorf("%w: nil image", ErrEmpty)
	case m.W <= 0 || m.H <= 0:
		return fmt.Errorf("%w: %dx%d", ErrEmpty, m.W, m.H)
	case m.H > DefaultMaxPixels/m.W:
		return fmt.Errorf("%w: %dx%d is over the limit of %d pixels", ErrTooLarge, m.W, m.H, DefaultMaxPixels)
	case len(m.Pix) != 3*m.W*m.H:
		return fmt.Errorf("%w: %dx%d image holds %d bytes, want %d", ErrEmpty, m.W, m.H, len(m.Pix), 3*m.W*m.H)
	}
	return nil
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
// converts it as Pillow 9.4's Image.open(f).convert("RGB") would. The rules
// for each Go image type are listed at FromImage; on top of them Decode
// applies what only the file itself tells, where Pillow reads the same bytes
// differently from Go's decoders:
//
//   - PNG, 16-bit grayscale (with or without tRNS): Pillow opens it as mode
//     "I" and convert("RGB") clips each value to 0..255 (300 → 255, 200 →
//     200); it does not scale. Go gives *image.Gray16 (clipped the same way by
//     FromImage) or, with tRNS, *image.NRGBA64, clipped here too.
//   - PNG, palette index beyond the PLTE entries: Pillow's palette is padded
//     with a grey ramp, so index i gives (i, i, i); Go pads with black.
//   - GIF: Pillow's image is the logical screen; outside the first frame's
//     rectangle it holds the transparent index (if the frame has one) or
//     else index 0, and the transparent index keeps its stored palette
//     colour. Go returns the frame's rectangle only, with the transparent
//     palette entry blanked.
//   - WebP (lossy): libwebp converts Y'CbCr as BT.601 studio range with its
//     own "fancy" chroma upsampling, not as JPEG's full-range Y'CbCr; done
//     here as libwebp does it (see webpYCbCrToRGB).
//
// EXIF orientation is not applied (Image.open does not apply it either;
// note that cv2.imread, used by the official amg.py script, does). Every
// file in testdata/pillow decodes to Pillow's result bit for bit, JPEG
// within a few levels (see FromImage).
//
// Images above DefaultMaxPixels are refused with ErrTooLarge, checked from
// the header before any pixel is decoded; ErrFormat reports data that is not
// a supported image or is corrupt or truncated, ErrEmpty an image without
// pixels.
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

// decodeBytes decodes a whole file with the rules of Decode.
func decodeBytes(data []byte, maxPixels int) (img *RGB, err error) {
	c := sniff(data)
	if c == nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, image.ErrFormat)
	}
	format := c.name
	// The decoders are meant never to panic on bad input; should one do so,
	// it is reported as a corrupt file rather than taking the caller down.
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("%w: %s decoder panicked: %v", ErrFormat, format, p)
		}
	}()
	// Each decoder gets its own *bytes.Reader. Going through image.Decode
	// would hand them a bufio.Reader instead, and x/image/tiff, given a
	// reader without ReadAt, buffers up to whatever offset the header names:
	// a 166-byte file can make it allocate gigabytes.
	cfg, err := c.config(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, format, err)
	}
	if err := checkSize(format, cfg.Width, cfg.Height, maxPixels); err != nil {
		return nil, err
	}
	var gifInfo *gifFirstFrame
	if format == "gif" {
		if gifInfo, err = parseGIF(data); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFormat, err)
		}
	}
	src, err := c.decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, format, err)
	}
	b := src.Bounds()
	if err := checkSize(format, b.Dx(), b.Dy(), maxPixels); err != nil {
		return nil, err
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

func checkSize(format string, w, h, maxPixels int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: %s %dx%d", ErrEmpty, format, w, h)
	}
	if int64(w)*int64(h) > int64(maxPixels) {
		return fmt.Errorf("%w: %s %dx%d is over the limit of %d pixels", ErrTooLarge, format, w, h, maxPixels)
	}
	return nil
}

// codec is one supported format: how to recognise it and its decoder.
type codec struct {
	name   string
	magic  func([]byte) bool
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

func prefix(p string) func([]byte) bool {
	return func(b []byte) bool { return bytes.HasPrefix(b, []byte(p)) }
}

var codecs = []codec{
	{"png", prefix("\x89PNG\r\n\x1a\n"), png.DecodeConfig, png.Decode},
	{"jpeg", prefix("\xff\xd8"), jpeg.DecodeConfig, jpeg.Decode},
	{"gif", func(b []byte) bool { return prefix("GIF87a")(b) || prefix("GIF89a")(b) }, gif.DecodeConfig, gif.Decode},
	{"bmp", prefix("BM"), bmp.DecodeConfig, bmp.Decode},
	{"tiff", func(b []byte) bool { return prefix("II*\x00")(b) || prefix("MM\x00*")(b) }, tiff.DecodeConfig, tiff.Decode},
	{"webp", func(b []byte) bool { return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" }, webp.DecodeConfig, webp.Decode},
}

// sniff returns the codec whose signature data starts with (the same
// signatures the packages register with image.RegisterFormat).
func sniff(data []byte) *codec {
	for i := range codecs {
		if codecs[i].magic(data) {
			return &codecs[i]
		}
	}
	return nil
}
