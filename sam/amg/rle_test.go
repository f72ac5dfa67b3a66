package amg

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// maskFrom parses rows of '#' (set) and '.' into a row-major mask.
func maskFrom(rows ...string) ([]bool, int, int) {
	h, w := len(rows), len(rows[0])
	m := make([]bool, w*h)
	for y, r := range rows {
		for x, c := range r {
			m[y*w+x] = c == '#'
		}
	}
	return m, w, h
}

func randomMask(r *rand.Rand, w, h int, p float64) []bool {
	m := make([]bool, w*h)
	for i := range m {
		m[i] = r.Float64() < p
	}
	return m
}

func TestEncodeRLE(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rows   []string
		counts []uint32
	}{
		// Column-major: col 0 = 1,1; col 1 = 0,1; col 2 = 0,0.
		{"column major", []string{"#..", "##."}, []uint32{0, 2, 1, 1, 2}},
		{"empty", []string{"...", "..."}, []uint32{6}},
		{"full", []string{"###", "###"}, []uint32{0, 6}},
		{"leading zeros", []string{"..", ".#"}, []uint32{3, 1}},
		{"trailing zeros", []string{"#.", ".."}, []uint32{0, 1, 3}},
		{"single column", []string{"#", ".", "#"}, []uint32{0, 1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, w, h := maskFrom(tc.rows...)
			r := EncodeRLE(m, w, h)
			require.Equal(t, [2]int{h, w}, r.Size)
			require.Equal(t, tc.counts, r.Counts)
			back, err := r.Decode()
			require.NoError(t, err)
			require.Equal(t, m, back)
		})
	}
}

func TestRLERoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		w, h := 1+rng.IntN(40), 1+rng.IntN(40)
		m := randomMask(rng, w, h, rng.Float64())
		r := EncodeRLE(m, w, h)
		require.NoError(t, r.Validate())
		back, err := r.Decode()
		require.NoError(t, err)
		require.Equal(t, m, back)
		n := 0
		for _, v := range m {
			if v {
				n++
			}
		}
		require.Equal(t, n, r.Area())
		require.Equal(t, maskBox(m, w, h), r.Box())

		// COCO string round trip.
		c := r.COCO()
		require.Equal(t, r.Size, c.Size)
		r2, err := c.RLE()
		require.NoError(t, err)
		require.Equal(t, r, r2)
	}
}

// encodeCrop equals uncrop_masks (zero padding) followed by mask_to_rle.
func TestEncodeCropMatchesPadded(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100 {
		W, H := 1+rng.IntN(30), 1+rng.IntN(30)
		x0, y0 := rng.IntN(W), rng.IntN(H)
		cw, ch := 1+rng.IntN(W-x0), 1+rng.IntN(H-y0)
		bin := randomMask(rng, cw, ch, 0.5)
		full := make([]bool, W*H)
		for y := range ch {
			for x := range cw {
				full[(y0+y)*W+x0+x] = bin[y*cw+x]
			}
		}
		require.Equal(t, EncodeRLE(full, W, H), encodeCrop(bin, cw, ch, x0, y0, W, H))
	}
}

// The COCO strings are worked out by hand from rleToString (maskApi.c):
// counts from the fourth on are differences to the count two before,
// written in 5-bit groups (least significant first), 0x20 marking "more",
// the last group's bit 0x10 being the sign, each group + '0'.
func TestCOCOStrings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   [2]int
		counts []uint32
		want   string
	}{
		{"one run", [2]int{1, 5}, []uint32{5}, "5"},
		{"leading zero count", [2]int{1, 5}, []uint32{0, 4, 1}, "041"},
		// 100 = 4 + 3·32: group 4 with "more" (4|0x20 = 36 → 'T'), then 3.
		{"two groups", [2]int{1, 100}, []uint32{100}, "T3"},
		// 16 has the sign bit of its group set, so a 0 group follows: 16|0x20 = 48 → '`'.
		{"sign bit needs another group", [2]int{1, 16}, []uint32{16}, "`0"},
		// 10 → ':'; 4 − 10 = −6 → low 5 bits 26 ('J'), x>>5 = −1 and the sign bit is set: done.
		{"negative delta", [2]int{1, 19}, []uint32{3, 10, 2, 4}, "3:2J"},
		// 120 = 24 + 3·32 → 'h' (24|0x20 = 56), '3'; 20 − 120 = −100 → groups 28 (+more → 'l'), 28 ('L').
		{"long negative delta", [2]int{5, 29}, []uint32{3, 120, 2, 20}, "3h32lL"},
		// 1000000 = 0 + 18·32 + 16·32² + 30·32³: 'P', 'b', '`', then 30 has the sign bit → 'n', '0'.
		{"long run", [2]int{1000, 1000}, []uint32{1000000}, "Pb`n0"},
		// Deltas of equal runs are 0; 2 − 3 = −1 is one group of 31 ('O').
		{"repeated runs", [2]int{1, 14}, []uint32{2, 3, 2, 3, 2, 2}, "23200O"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := RLE{Size: tc.size, Counts: tc.counts}
			require.NoError(t, r.Validate())
			c := r.COCO()
			require.Equal(t, tc.want, c.Counts)
			back, err := c.RLE()
			require.NoError(t, err)
			require.Equal(t, r, back)
		})
	}
}

func TestRLEErrors(t *testing.T) {
	_, err := RLE{Size: [2]int{2, 2}, Counts: []uint32{1, 2}}.Decode()
	require.ErrorIs(t, err, ErrRLE)
	for _, s := range []string{"T", "5~", "5 "} { // truncated number; bytes outside '0'..'o'
		_, err := COCORLE{Size: [2]int{1, 5}, Counts: s}.RLE()
		require.ErrorIs(t, err, ErrRLE, s)
	}
	_, err = COCORLE{Size: [2]int{1, 6}, Counts: "5"}.RLE() // 5 pixels for 6
	require.ErrorIs(t, err, ErrRLE)
	_, err = COCORLE{Size: [2]int{1, 5}, Counts: "J"}.RLE() // −6: a negative count
	require.ErrorIs(t, err, ErrRLE)
}

func TestRLEBox(t *testing.T) {
	// A run wrapping from the bottom of column 0 to the top of column 1.
	m, w, h := maskFrom(".#.", "##.", "#..")
	r := EncodeRLE(m, w, h)
	require.Equal(t, [4]int{0, 0, 1, 2}, r.Box())
	require.Equal(t, [4]int{}, EncodeRLE(make([]bool, 6), 3, 2).Box())
}

// TestEncodeRLERowOrder: the row-order encoder (EncodeRLE) equals the
// column-order one (encodeCrop of the whole image, the official reading
// order) on masks of every kind: empty, full, noise, blobs, sizes that are
// not multiples of its block.
func TestEncodeRLERowOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][2]int{{1, 1}, {1, 7}, {7, 1}, {64, 64}, {65, 3}, {130, 97}, {256, 256}} {
		w, h := sz[0], sz[1]
		for kind := range 5 {
			m := make([]bool, w*h)
			for i := range m {
				switch kind {
				case 1:
					m[i] = true
				case 2:
					m[i] = r.IntN(2) == 0
				case 3:
					x, y := i%w-w/2, i/w-h/3
					m[i] = x*x+y*y < w*h/8
				case 4:
					m[i] = i == w*h-1 || i == 0
				}
			}
			require.Equal(t, encodeCrop(m, w, h, 0, 0, w, h), EncodeRLE(m, w, h), "%dx%d kind %d", w, h, kind)
		}
	}
}

func BenchmarkEncodeRLE(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	m := make([]bool, 1024*768)
	for y := 200; y < 500; y++ {
		for x := 100 + rng.IntN(5); x < 700; x++ {
			m[y*1024+x] = true
		}
	}
	for b.Loop() {
		EncodeRLE(m, 1024, 768)
	}
}

// A string pycocotools wrote (the example mask of the COCOtoolsFORK
// README, github.com/armengot/COCOtoolsFORK): it decodes to counts that
// cover its 50×70 pixels exactly and re-encodes to the same bytes.
func TestCOCOStringFromPycocotools(t *testing.T) {
	s := "0g05b08J4M2N2NA^O1`0OCO=0E090H080IO68DH;>@C>a0_O_O`0j0OWOF<:CM72I24NL43JM92FN;1ENKO72L0LO91J0MO92INO0NO122OO0M031O000NO31OO11MO40N011MO41MO21L06OL021L06OL021L06OL021L060J040L060J040L060J040L060J040L060J040L060J040L060KO31L060KO31L06OL021L06OL021L06OL021MO41MO21MO40N100NO310O00M0310O00NO1220NO92IONO91KOMO72M0<1EO:2GN63KM34OLM73JF<;=1G_O_Ob0=AC`07EH=1IO71H090F0:1DO>1_O1b0>2N2N3L6H]O"
	r, err := COCORLE{Size: [2]int{50, 70}, Counts: s}.RLE()
	require.NoError(t, err)
	require.Len(t, r.Counts, 366)
	require.Equal(t, 2346, r.Area())
	require.Equal(t, s, r.COCO().Counts)
}
