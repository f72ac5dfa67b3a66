package imgproc

import (
	"errors"
	"fmt"
)

// PixelMean and PixelStd are SAM's normalisation constants (Sam.pixel_mean /
// pixel_std, RGB order, 0..255 scale).
var (
	PixelMean = [3]float32{123.675, 116.28, 103.53}
	PixelStd  = [3]float32{58.395, 57.12, 57.375}
)

// ErrSize: an image does not fit the encoder's input square.
var ErrSize = errors.New("image does not fit the input size")

// Normalize is the rest of Sam.preprocess after the resize: per channel
// float32((float32(u8) − mean_c) / std_c), the image in the top-left
// corner of a size×size square, zero elsewhere (the padding is 0 after
// normalisation, not the mean colour). The result is channels-last,
// (size, size, 3): element (y, x, c) at (y·size + x)·3 + c. Both operations
// are rounded to float32 as torch does, so the values are bit-identical
// to the reference's `input` tensor (transposed from NCHW).
//
// It fails with ErrSize if the image is empty or larger than size in either
// dimension.
func Normalize(src *RGB, size int, mean, std [3]float32) ([]float32, error) {
	if err := checkFits(src, size); err != nil {
		return nil, err
	}
	lut := normLUT(mean, std)
	out := make([]float32, size*size*3)
	for y := range src.H {
		in := src.Pix[y*src.W*3:][:src.W*3]
		row := out[y*size*3:][:src.W*3]
		for i, v := range in {
			row[i] = lut[i%3][v]
		}
	}
	return out, nil
}

// NormalizeCHW is Normalize with the layout the official encoder takes,
// (3, size, size): element (c, y, x) at (c·size + y)·size + x.
func NormalizeCHW(src *RGB, size int, mean, std [3]float32) ([]float32, error) {
	if err := checkFits(src, size); err != nil {
		return nil, err
	}
	lut := normLUT(mean, std)
	out := make([]float32, 3*size*size)
	for y := range src.H {
		in := src.Pix[y*src.W*3:][:src.W*3]
		for c := range 3 {
			row := out[(c*size+y)*size:][:src.W]
			for x := range row {
				row[x] = lut[c][in[3*x+c]]
			}
		}
	}
	return out, nil
}

func checkFits(src *RGB, size int) error {
	if src == nil || src.W < 1 || src.H < 1 || len(src.Pix) != src.W*src.H*3 {
		return fmt.Errorf("normalize: %w: empty or malformed image", ErrSize)
	}
	if src.W > size || src.H > size {
		return fmt.Errorf("normalize: %w: %dx%d image, input %dx%d", ErrSize, src.W, src.H, size, size)
	}
	return nil
}

// normLUT tabulates the 256 possible values per channel. The explicit
// float32 conversions keep each step rounded to float32 (no fused or wider
// evaluation).
func normLUT(mean, std [3]float32) *[3][256]float32 {
	var lut [3][256]float32
	for c := range 3 {
		for v := range 256 {
			d := float32(float32(v) - mean[c])
			lut[c][v] = float32(d / std[c])
		}
	}
	return &lut
}
