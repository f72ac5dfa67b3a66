package amg

import (
	"errors"
	"fmt"
	"strings"
)

// RLE is an uncompressed run-length encoding of a binary mask, the format
// segment-anything's mask_to_rle_pytorch returns and pycocotools reads:
// the mask is read in column-major (Fortran) order, x outer, y inner, and
// Counts alternates runs of 0s and 1s, starting with 0s (so the first count
// is 0 when the top-left pixel is set). Size is [H, W].
type RLE struct {
	Size   [2]int   `json:"size"`
	Counts []uint32 `json:"counts"`
}

// COCORLE is pycocotools' compressed RLE: the same counts written by
// rleToString (maskApi.c) as a string, what frPyObjects/encode return with
// the bytes decoded as UTF-8. Size is [H, W].
type COCORLE struct {
	Size   [2]int `json:"size"`
	Counts string `json:"counts"`
}

// ErrRLE marks a malformed RLE: counts that do not add up to H·W, or a
// compressed string that does not decode.
var ErrRLE = errors.New("invalid RLE")

// rleBuilder accumulates runs in column-major order.
type rleBuilder struct {
	counts []uint32
	cur    bool // value of the current run
	run    uint32
}

// add appends n pixels of value v.
func (b *rleBuilder) add(v bool, n int) {
	if n <= 0 {
		return
	}
	if v != b.cur {
		b.counts = append(b.counts, b.run)
		b.cur, b.run = v, 0
	}
	b.run += uint32(n)
}

func (b *rleBuilder) finish() []uint32 { return append(b.counts, b.run) }

// rleBlock is how many columns EncodeRLE follows at once: 64 bytes of a
// row, one cache line.
const rleBlock = 64

// EncodeRLE encodes a row-major w×h mask (mask_to_rle_pytorch: COCO's
// column-major runs, starting with 0s), reading the mask row by row.
// COCO's order walks down each column,
// a stride of a whole row per pixel, which for a 1024² mask misses the
// cache at nearly every pixel and made encoding the masks a large part of
// a prompt's answer in sam serve. Here the runs of rleBlock columns are followed at
// once, reading each row's rleBlock bytes in one go, and the columns' runs
// are joined in column order afterwards (a run that reaches the bottom of
// one column goes on at the top of the next when the values agree).
func EncodeRLE(mask []bool, w, h int) RLE {
	if len(mask) != w*h {
		panic(fmt.Sprintf("amg: EncodeRLE: %d values for %d×%d", len(mask), w, h))
	}
	counts := make([]uint32, 0, 64)
	// The run in progress of the whole mask (column-major), and its value.
	var cur uint32
	curV := false
	emit := func(v bool, n uint32) {
		if n == 0 {
			return
		}
		if v == curV {
			cur += n
			return
		}
		counts = append(counts, cur)
		cur, curV = n, v
	}
	type col struct {
		runs []uint32 // the column's runs after its first: alternate values
		v    bool     // the value of the run in progress
		n    uint32   // its length
		v0   bool     // the value of the column's first run
		n0   uint32   // its length (while runs is empty: the one in progress)
	}
	cols := make([]col, rleBlock)
	for x0 := 0; x0 < w; x0 += rleBlock {
		nb := min(rleBlock, w-x0)
		for c := range cols[:nb] {
			cols[c] = col{runs: cols[c].runs[:0], v: mask[x0+c], v0: mask[x0+c]}
		}
		for y := range h {
			row := mask[y*w+x0 : y*w+x0+nb]
			for c, v := range row {
				k := &cols[c]
				if v == k.v {
					k.n++
					continue
				}
				k.runs = append(k.runs, k.n)
				k.v, k.n = v, 1
			}
		}
		for c := range cols[:nb] {
			k := &cols[c]
			// The runs of column c in order: runs[0] (value v0), runs[1]
			// (!v0), ..., then the one in progress (value v).
			v := k.v0
			for _, n := range k.runs {
				emit(v, n)
				v = !v
			}
			emit(k.v, k.n)
		}
	}
	counts = append(counts, cur)
	return RLE{Size: [2]int{h, w}, Counts: counts}
}

// encodeCrop encodes the W×H image mask that is bin (row-major cw×ch)
// placed at (x0, y0) and zero elsewhere: uncrop_masks, then
// mask_to_rle_pytorch, without materialising the padded mask (column by
// column, as the official code reads it: the tests' reference for
// EncodeRLE too).
func encodeCrop(bin []bool, cw, ch, x0, y0, W, H int) RLE {
	var b rleBuilder
	for x := range W {
		c := x - x0
		if c < 0 || c >= cw {
			b.add(false, H)
			continue
		}
		b.add(false, y0)
		for r := range ch {
			b.add(bin[r*cw+c], 1)
		}
		b.add(false, H-y0-ch)
	}
	return RLE{Size: [2]int{H, W}, Counts: b.finish()}
}

// Area is the number of set pixels (area_from_rle: the sum of the odd
// counts).
func (r RLE) Area() int {
	n := 0
	for i := 1; i < len(r.Counts); i += 2 {
		n += int(r.Counts[i])
	}
	return n
}

// Validate checks that the counts cover exactly H·W pixels.
func (r RLE) Validate() error {
	h, w := r.Size[0], r.Size[1]
	if h < 0 || w < 0 {
		return fmt.Errorf("%w: size %v", ErrRLE, r.Size)
	}
	total := 0
	for _, c := range r.Counts {
		total += int(c)
	}
	if total != h*w {
		return fmt.Errorf("%w: counts add up to %d, want %d×%d = %d", ErrRLE, total, h, w, h*w)
	}
	return nil
}

// Decode returns the mask row-major (W·H values; rle_to_mask).
func (r RLE) Decode() ([]bool, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	h, w := r.Size[0], r.Size[1]
	out := make([]bool, h*w)
	r.decodeInto(out)
	return out, nil
}

// decodeInto writes the (valid) mask row-major into out (len H·W).
func (r RLE) decodeInto(out []bool) {
	clear(out)
	h, w := r.Size[0], r.Size[1]
	x, y := 0, 0 // column-major position
	for i, c := range r.Counts {
		n := int(c)
		for n > 0 {
			take := min(n, h-y)
			if i%2 == 1 {
				for k := range take {
					out[(y+k)*w+x] = true
				}
			}
			n -= take
			if y += take; y == h {
				x, y = x+1, 0
			}
		}
	}
}

// Box returns the mask's inclusive bounding box [x0, y0, x1, y1] from the
// runs ([0,0,0,0] when empty), as batched_mask_to_box.
func (r RLE) Box() [4]int {
	h := r.Size[0]
	first := true
	var box [4]int
	idx := 0
	for i, c := range r.Counts {
		if i%2 == 1 && c > 0 {
			a, b := idx, idx+int(c)-1 // first and last pixel of the run
			xa, xb := a/h, b/h
			ya, yb := a%h, b%h
			if xb > xa {
				// The run ends column xa at row h-1 and starts column xb at
				// row 0.
				ya, yb = 0, h-1
			}
			if first {
				box = [4]int{xa, ya, xb, yb}
				first = false
			} else {
				box = [4]int{min(box[0], xa), min(box[1], ya), max(box[2], xb), max(box[3], yb)}
			}
		}
		idx += int(c)
	}
	return box
}

// COCO compresses the counts as pycocotools' rleToString: each count, from
// the fourth on as the difference to the count two before (a run of 0s
// minus the previous run of 0s, 1s minus 1s), in signed groups of 5 bits,
// least significant first, each written as '0' + bits, with 0x20 set on
// every group but the last.
func (r RLE) COCO() COCORLE {
	var s strings.Builder
	s.Grow(len(r.Counts) * 2)
	for i, c := range r.Counts {
		x := int64(c)
		if i > 2 {
			x -= int64(r.Counts[i-2])
		}
		for more := true; more; {
			ch := byte(x & 0x1f)
			x >>= 5 // arithmetic shift: sign preserving
			if ch&0x10 != 0 {
				more = x != -1
			} else {
				more = x != 0
			}
			if more {
				ch |= 0x20
			}
			s.WriteByte(ch + 48)
		}
	}
	return COCORLE{Size: r.Size, Counts: s.String()}
}

// RLE decompresses the string as pycocotools' rleFrString and checks that
// the counts cover H·W pixels.
func (c COCORLE) RLE() (RLE, error) {
	var counts []uint32
	s := c.Counts
	for p := 0; p < len(s); {
		var x int64
		k := 0
		for more := true; more; {
			if p >= len(s) {
				return RLE{}, fmt.Errorf("%w: compressed counts end inside a number", ErrRLE)
			}
			ch := int64(s[p]) - 48
			if ch < 0 || ch > 63 {
				return RLE{}, fmt.Errorf("%w: byte %q at %d outside '0'..'o'", ErrRLE, s[p], p)
			}
			if k > 12 {
				return RLE{}, fmt.Errorf("%w: number too long at %d", ErrRLE, p)
			}
			x |= (ch & 0x1f) << (5 * k)
			more = ch&0x20 != 0
			p++
			k++
			if !more && ch&0x10 != 0 {
				x |= -1 << (5 * k) // sign-extend
			}
		}
		if m := len(counts); m > 2 {
			x += int64(counts[m-2])
		}
		if x < 0 || x > 1<<32-1 {
			return RLE{}, fmt.Errorf("%w: count %d out of range", ErrRLE, x)
		}
		counts = append(counts, uint32(x))
	}
	r := RLE{Size: c.Size, Counts: counts}
	return r, r.Validate()
}
