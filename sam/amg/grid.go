package amg

import (
	"fmt"
	"math"
)

// BuildPointGrid is build_point_grid: n×n points evenly spaced in
// [0,1]², x varying fastest. The coordinates are np.linspace(1/(2n),
// 1−1/(2n), n) in float64: start + i·step with step = (stop−start)/(n−1),
// and the last value exactly stop (a single point is 0.5).
func BuildPointGrid(n int) [][2]float64 {
	if n <= 0 {
		return nil
	}
	side := linspace(1/(2*float64(n)), 1-1/(2*float64(n)), n)
	pts := make([][2]float64, 0, n*n)
	for _, y := range side {
		for _, x := range side {
			pts = append(pts, [2]float64{x, y})
		}
	}
	return pts
}

// linspace is np.linspace(start, stop, n) with endpoint=True.
func linspace(start, stop float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (stop - start) / float64(n-1)
	for i := range out {
		out[i] = float64(i)*step + start
	}
	out[n-1] = stop
	return out
}

// LayerPointsPerSide is the number of points per side build_all_layer_
// point_grids uses in crop layer i: int(n / scale^i).
func LayerPointsPerSide(n, layer, scale int) int {
	d := 1
	for range layer {
		d *= scale
	}
	return n / d
}

// BuildAllLayerPointGrids is build_all_layer_point_grids: one grid per
// crop layer 0..nLayers, layer i with LayerPointsPerSide(n, i, scale)
// points per side.
func BuildAllLayerPointGrids(n, nLayers, scale int) ([][][2]float64, error) {
	if scale < 1 {
		return nil, fmt.Errorf("%w: crop_n_points_downscale_factor %d < 1", ErrOptions, scale)
	}
	var grids [][][2]float64
	for i := range nLayers + 1 {
		k := LayerPointsPerSide(n, i, scale)
		if k < 1 {
			return nil, fmt.Errorf("%w: crop layer %d would have %d points per side (points_per_side %d / %d^%d)", ErrOptions, i, k, n, scale, i)
		}
		grids = append(grids, BuildPointGrid(k))
	}
	return grids, nil
}

// CropBox is a crop [X0, Y0, X1, Y1] of the image in pixels (X1, Y1
// exclusive) and the crop layer it belongs to.
type CropBox struct {
	Box   [4]int
	Layer int
}

// GenerateCropBoxes is generate_crop_boxes for an h×w image: the whole
// image (layer 0), then for layer i = 1..nLayers a grid of 2^i × 2^i
// overlapping crops, with overlap = int(ratio·min(h,w)·(2/2^i)), crop
// length ceil((overlap·(2^i−1) + len)/2^i), crop k starting at
// (crop length − overlap)·k and clipped to the image; crops in the order of
// product(x0s, y0s) (x outer). Arithmetic in float64 as in Python.
func GenerateCropBoxes(h, w, nLayers int, overlapRatio float64) []CropBox {
	crops := []CropBox{{Box: [4]int{0, 0, w, h}}}
	short := min(h, w)
	cropLen := func(orig, n, overlap int) int {
		return int(math.Ceil(float64(overlap*(n-1)+orig) / float64(n)))
	}
	for layer := range nLayers {
		n := 1 << (layer + 1)
		overlap := int(overlapRatio * float64(short) * (2 / float64(n)))
		cw, ch := cropLen(w, n, overlap), cropLen(h, n, overlap)
		for i := range n {
			x0 := (cw - overlap) * i
			for j := range n {
				y0 := (ch - overlap) * j
				crops = append(crops, CropBox{Box: [4]int{x0, y0, min(x0+cw, w), min(y0+ch, h)}, Layer: layer + 1})
			}
		}
	}
	return crops
}
