package amg

import "sort"

// NMS is torchvision.ops.batched_nms with a single category, as the
// automatic mask generator calls it, on integer boxes [x0, y0, x1, y1]
// (SAM's inclusive mask boxes, used as they are). It returns the indices
// of the kept boxes in decreasing score order.
//
// It equals torchvision's CPU nms kernel in float32: boxes are visited in
// descending score order (a stable sort: equal scores keep index order,
// NaN first as torch sorts it); each kept box suppresses every later box j
// with IoU > thresh, where IoU = inter / (area_i + area_j − inter),
// area = (x1−x0)·(y1−y0) and inter = max(0, min x1 − max x0)·max(0, min y1
// − max y0), each rounded to float32, and the comparison widens the
// float32 IoU to float64 (the threshold is a C++ double there). Two empty
// boxes give 0/0 = NaN, which suppresses nothing.
func NMS(boxes [][4]int, scores []float32, thresh float64) []int {
	n := len(boxes)
	if len(scores) != n {
		panic("amg: NMS: boxes and scores differ in length")
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		sa, sb := scores[order[a]], scores[order[b]]
		if na, nb := isNaN32(sa), isNaN32(sb); na || nb {
			return na && !nb
		}
		return sa > sb
	})
	type fbox struct{ x0, y0, x1, y1, area float32 }
	fb := make([]fbox, n)
	for i, b := range boxes {
		x0, y0, x1, y1 := float32(b[0]), float32(b[1]), float32(b[2]), float32(b[3])
		fb[i] = fbox{x0, y0, x1, y1, float32((x1 - x0) * (y1 - y0))}
	}
	suppressed := make([]bool, n)
	keep := make([]int, 0, n)
	for oi, i := range order {
		if suppressed[i] {
			continue
		}
		keep = append(keep, i)
		bi := fb[i]
		for _, j := range order[oi+1:] {
			if suppressed[j] {
				continue
			}
			bj := fb[j]
			w := max(0, min(bi.x1, bj.x1)-max(bi.x0, bj.x0))
			h := max(0, min(bi.y1, bj.y1)-max(bi.y0, bj.y0))
			inter := float32(w * h) // explicit rounding: no fused multiply-add below
			union := float32(bi.area+bj.area) - inter
			if float64(inter/union) > thresh {
				suppressed[j] = true
			}
		}
	}
	return keep
}

func isNaN32(v float32) bool { return v != v }

// cropScore is the cross-crop NMS score, 1 / box_area(crop box) in float32
// (smaller crops win).
func cropScore(b [4]int) float32 {
	return float32(1) / float32((b[2]-b[0])*(b[3]-b[1]))
}
