package serve

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image/png"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
)

// Mask formats of a prediction (format=).
const (
	formatPNG     = "png"
	formatRLE     = "rle"
	formatPolygon = "polygon"
)

// maskOut is one mask of an answer.
type maskOut struct {
	// Score is the predicted IoU.
	Score float32 `json:"score"`
	Area  int     `json:"area"`
	// BBox is [x, y, w, h] of the mask's pixels with SAM's inclusive
	// corners (w = x1 − x0), as the CLI's result.json and the automatic
	// mask generator's records; omitted for an empty mask.
	BBox *[4]int `json:"bbox,omitempty"`
	// PNG is a grayscale PNG (255 inside), base64 (format=png).
	PNG string `json:"png,omitempty"`
	// RLE is COCO's compressed RLE, {size: [h, w], counts} (format=rle).
	RLE *amg.COCORLE `json:"rle,omitempty"`
	// Polygons are the outer boundaries of the mask's 4-connected parts
	// as COCO polygons [x0, y0, x1, y1, ...] on pixel corners (format=polygon).
	Polygons [][]int `json:"polygons,omitempty"`
	// Logits is the handle of the mask's low-res logits, to pass back as
	// mask_input.
	Logits string `json:"logits,omitempty"`
}

// encodeMask fills the mask's area, box and the chosen encoding.
func encodeMask(m sam.Mask, format string) (maskOut, error) {
	var out maskOut
	setBox := func(box [4]int, area int) {
		if area > 0 {
			out.Area = area
			out.BBox = &[4]int{box[0], box[1], box[2] - box[0], box[3] - box[1]}
		}
	}
	if format == formatRLE {
		// The area and the box follow from the runs, without another
		// pass over the pixels (a megapixel for a 1024² image).
		r := amg.EncodeRLE(m.Pix, m.W, m.H)
		setBox(r.Box(), r.Area())
		c := r.COCO()
		out.RLE = &c
		return out, nil
	}
	box, area, _ := m.Box()
	setBox(box, area)
	switch format {
	case formatPNG:
		var b bytes.Buffer
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		if err := enc.Encode(&b, m.Image()); err != nil {
			return out, fmt.Errorf("mask png: %w", err)
		}
		out.PNG = base64.StdEncoding.EncodeToString(b.Bytes())
	case formatPolygon:
		out.Polygons = Polygons(m.Pix, m.W, m.H)
		if out.Polygons == nil {
			out.Polygons = [][]int{}
		}
	default:
		return out, fmt.Errorf("format %q", format)
	}
	return out, nil
}

// Polygons traces the outer boundary of every 4-connected part of a
// row-major w×h mask along the pixel edges, as COCO polygons: flat
// [x0, y0, x1, y1, ...] of the corners where the boundary turns, in pixel
// corner coordinates (pixel (x, y) is the square from (x, y) to
// (x+1, y+1)), clockwise on screen, parts in raster order of their first
// pixel. Filled, each polygon covers exactly its part's pixels plus any
// holes in it: COCO polygons cannot subtract, so holes are not traced.
func Polygons(mask []bool, w, h int) [][]int {
	in := func(x, y int) bool { return x >= 0 && y >= 0 && x < w && y < h && mask[y*w+x] }
	seen := make([]bool, w*h)
	var out [][]int
	var stack []int
	for i, v := range mask[:w*h] {
		if !v || seen[i] {
			continue
		}
		// Mark the part (4-connected flood fill).
		seen[i] = true
		stack = append(stack[:0], i)
		for len(stack) > 0 {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := j%w, j/w
			for _, d := range [4][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}} {
				nx, ny := x+d[0], y+d[1]
				if in(nx, ny) && !seen[ny*w+nx] {
					seen[ny*w+nx] = true
					stack = append(stack, ny*w+nx)
				}
			}
		}
		out = append(out, traceOuter(in, i%w, i/w))
	}
	return out
}

// traceOuter walks the boundary of the part whose first pixel in raster
// order is (px, py), on the lattice of pixel corners, keeping the part on
// its right (clockwise on screen, y down). Starting at that pixel's
// top-left corner heading east, at each corner it looks at the two pixels
// ahead: the one ahead on the right inside and the one ahead on the left
// outside, it goes straight; the right one outside, it turns right (which
// keeps diagonal neighbours apart: 4-connectivity); both inside, it turns
// left. It ends back at the start heading east.
func traceOuter(in func(x, y int) bool, px, py int) []int {
	// Directions E, S, W, N; turning right is +1.
	dx := [4]int{1, 0, -1, 0}
	dy := [4]int{0, 1, 0, -1}
	// The pixels ahead of corner (cx, cy) in direction d: on the right
	// (cx+rx, cy+ry) and on the left (cx+lx, cy+ly).
	rx := [4]int{0, -1, -1, 0}
	ry := [4]int{0, 0, -1, -1}
	lx := [4]int{0, 0, -1, -1}
	ly := [4]int{-1, 0, 0, -1}
	cx, cy, d := px, py, 0
	var pts []int
	for {
		// Choose the direction out of (cx, cy).
		nd := d
		switch {
		case !in(cx+rx[d], cy+ry[d]):
			nd = (d + 1) % 4
		case in(cx+lx[d], cy+ly[d]):
			nd = (d + 3) % 4
		}
		if nd != d || len(pts) == 0 {
			pts = append(pts, cx, cy)
		}
		d = nd
		cx, cy = cx+dx[d], cy+dy[d]
		if cx == px && cy == py {
			break
		}
	}
	return pts
}
