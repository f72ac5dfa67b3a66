package amg

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNMS(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name   string
		boxes  [][4]int
		scores []float32
		thresh float64
		keep   []int
	}{
		{"empty", nil, nil, 0.7, []int{}},
		{"descending score order", [][4]int{{0, 0, 1, 1}, {10, 10, 11, 11}, {20, 20, 21, 21}}, []float32{0.1, 0.9, 0.5}, 0.7, []int{1, 2, 0}},
		{"duplicate suppressed by the better one", [][4]int{{0, 0, 10, 10}, {0, 0, 10, 10}}, []float32{0.5, 0.9}, 0.7, []int{1}},
		// Ties: a stable sort, so the lower index comes first and wins.
		{"tie keeps the first", [][4]int{{0, 0, 10, 10}, {0, 0, 10, 10}}, []float32{0.5, 0.5}, 0.7, []int{0}},
		{"ties keep index order", [][4]int{{0, 0, 1, 1}, {5, 5, 6, 6}, {9, 9, 10, 10}}, []float32{0.5, 0.9, 0.5}, 0.7, []int{1, 0, 2}},
		// IoU 80/100 = 0.8 > 0.7.
		{"above threshold", [][4]int{{0, 0, 10, 10}, {0, 0, 10, 8}}, []float32{0.9, 0.8}, 0.7, []int{0}},
		// IoU 70/100: float32(0.7) = 0.69999999 is not > 0.7 (a float64 threshold).
		{"at threshold (float32 IoU vs float64 threshold)", [][4]int{{0, 0, 10, 10}, {0, 0, 10, 7}}, []float32{0.9, 0.8}, 0.7, []int{0, 1}},
		// Inclusive boxes used as they are (no +1): area (2−0)·(2−0) = 4,
		// inter 1, IoU 1/7.
		{"no +1 in areas", [][4]int{{0, 0, 2, 2}, {1, 1, 3, 3}}, []float32{0.9, 0.8}, 0.14, []int{0}},
		{"no +1 in areas, below", [][4]int{{0, 0, 2, 2}, {1, 1, 3, 3}}, []float32{0.9, 0.8}, 0.15, []int{0, 1}},
		// Touching boxes have zero intersection.
		{"touching", [][4]int{{0, 0, 1, 1}, {1, 1, 2, 2}}, []float32{0.9, 0.8}, 0, []int{0, 1}},
		// Degenerate boxes (one-pixel masks): 0/0 = NaN suppresses nothing.
		{"zero-area boxes", [][4]int{{5, 5, 5, 5}, {5, 5, 5, 5}}, []float32{0.9, 0.8}, 0.7, []int{0, 1}},
		// Suppressed boxes do not suppress others: 0 suppresses 1, and 2 overlaps only 1.
		{"chain", [][4]int{{0, 0, 10, 10}, {1, 0, 11, 10}, {2, 0, 12, 10}}, []float32{0.9, 0.8, 0.7}, 0.7, []int{0, 2}},
		{"NaN first", [][4]int{{0, 0, 1, 1}, {5, 5, 6, 6}}, []float32{0.9, nan}, 0.7, []int{1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.keep, NMS(tc.boxes, tc.scores, tc.thresh))
		})
	}
}

// nmsFloat64 is the textbook greedy NMS in float64, for random boxes far
// from the threshold it must agree with NMS.
func nmsFloat64(boxes [][4]int, scores []float32, thresh float64) []int {
	order := make([]int, len(boxes))
	for i := range order {
		order[i] = i
	}
	for a := 1; a < len(order); a++ { // insertion sort: stable
		for b := a; b > 0 && scores[order[b]] > scores[order[b-1]]; b-- {
			order[b], order[b-1] = order[b-1], order[b]
		}
	}
	area := func(b [4]int) float64 { return float64((b[2] - b[0]) * (b[3] - b[1])) }
	var keep []int
	for _, i := range order {
		ok := true
		for _, k := range keep {
			a, b := boxes[i], boxes[k]
			w := max(0, min(a[2], b[2])-max(a[0], b[0]))
			h := max(0, min(a[3], b[3])-max(a[1], b[1]))
			inter := float64(w * h)
			if inter/(area(a)+area(b)-inter) > thresh {
				ok = false
				break
			}
		}
		if ok {
			keep = append(keep, i)
		}
	}
	return keep
}

func TestNMSRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200 {
		n := 1 + rng.IntN(40)
		boxes := make([][4]int, n)
		scores := make([]float32, n)
		for i := range boxes {
			x, y := rng.IntN(50), rng.IntN(50)
			boxes[i] = [4]int{x, y, x + 1 + rng.IntN(30), y + 1 + rng.IntN(30)}
			scores[i] = float32(rng.IntN(10)) / 10 // many ties
		}
		require.Equal(t, nmsFloat64(boxes, scores, 0.5), NMS(boxes, scores, 0.5))
	}
}

func TestCropScore(t *testing.T) {
	// 1/box_area in float32: smaller crops score higher.
	require.Equal(t, float32(1)/float32(161*119), cropScore([4]int{0, 0, 161, 119}))
	require.Greater(t, cropScore([4]int{61, 0, 161, 80}), cropScore([4]int{0, 0, 161, 119}))
}
