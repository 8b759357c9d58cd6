package inference

import (
	"fmt"
	"math"
)

// Face crops from the detector's landmarks in integer arithmetic only: veid_ml.alignment, line for line (its module
// docstring states the rule). Coordinates can be negative, so Python's floor division is floorDiv here; >> on int64
// is an arithmetic (floor) shift in both languages. Arithmetic wraps at 64 bits like numpy's int64.

// Chip is alignment.Chip: a model's face crop, its side, (x, y) in 1/10000 of the side of the landmarks it aligns
// (the first len(PointsBP) in Points' order), and whether the photo lies on black (ZeroBorder) or its edge repeats.
type Chip struct {
	Size       int
	PointsBP   [][2]int64
	ZeroBorder bool
}

// LivenessChip is alignment.LIVENESS_CHIP; FaceChip is alignment.FACE_CHIP (dlib's 150 px five-point chip).
var (
	LivenessChip = Chip{128, [][2]int64{{3960, 4930}, {6100, 4930}}, false}
	FaceChip     = Chip{150, [][2]int64{{3182, 3142}, {6685, 3142}, {4934, 5104}, {3361, 6868}, {6507, 6868}}, true}
)

// MinEyeDistanceQ4 is alignment.MIN_EYE_DISTANCE_Q4: eyes closer than 10 px hold too few pixels for the models.
const MinEyeDistanceQ4 = 10 * 16

// Points are the detector's five landmarks in 1/16 px: image-left eye, image-right eye, nose tip, image-left and
// image-right mouth corner.
type Points [5][2]int64

// floorDiv is Python's // for int64 (d != 0).
func floorDiv(n, d int64) int64 {
	q := n / d
	if (n%d != 0) && ((n < 0) != (d < 0)) {
		q--
	}
	return q
}

// orderedQ4 is alignment.ordered_q4: the detector's five landmarks in 1/16 px, the eyes and the mouth corners each
// ordered by x (on a tie, the detector's order).
func orderedQ4(p Points) Points {
	for _, i := range []int{0, 3} {
		if p[i+1][0] < p[i][0] {
			p[i], p[i+1] = p[i+1], p[i]
		}
	}
	return p
}

// chipQ4 is alignment.chip_q4.
func chipQ4(chip Chip) [][2]int64 {
	c := make([][2]int64, len(chip.PointsBP))
	for i := range c {
		for j := 0; j < 2; j++ {
			c[i][j] = floorDiv(chip.PointsBP[i][j]*int64(chip.Size)*16, 10000)
		}
	}
	return c
}

// eyeDistanceSqQ4 is alignment.eye_distance_sq_q4.
func eyeDistanceSqQ4(p Points) int64 {
	ux, uy := p[1][0]-p[0][0], p[1][1]-p[0][1]
	return ux*ux + uy*uy
}

// roundDiv is alignment.round_div: n / d rounded half up (d > 0), by floor division.
func roundDiv(n, d int64) int64 {
	return floorDiv(2*n+d, 2*d)
}

// isqrt is math.isqrt for n >= 0.
func isqrt(n int64) int64 {
	r := int64(math.Sqrt(float64(n)))
	for r > 0 && (r > n/r || r*r > n) { // too large (r*r may overflow: compare by division first)
		r--
	}
	for (r+1) <= n/(r+1) && (r+1)*(r+1) <= n {
		r++
	}
	return r
}

// fitQ16 is alignment.fit_q16: the Q16 complex ratio (ax, ay) of the least-squares map and the photo points' sum.
func fitQ16(p Points, chip Chip) (ax, ay, px, py int64) {
	c := chipQ4(chip)
	n := int64(len(c))
	var cx, cy int64
	for i := range c {
		cx, cy, px, py = cx+c[i][0], cy+c[i][1], px+p[i][0], py+p[i][1]
	}
	var numX, numY, den int64
	for i := range c {
		ccx, ccy := n*c[i][0]-cx, n*c[i][1]-cy
		pcx, pcy := n*p[i][0]-px, n*p[i][1]-py
		numX += pcx*ccx + pcy*ccy
		numY += pcy*ccx - pcx*ccy
		den += ccx*ccx + ccy*ccy
	}
	return roundDiv(65536*numX, den), roundDiv(65536*numY, den), px, py
}

// shrinkFactor is alignment.shrink_factor.
func shrinkFactor(p Points, chip Chip) (int64, error) {
	ax, ay, _, _ := fitQ16(p, chip)
	q := floorDiv(ax*ax+ay*ay, 4*65536*65536)
	if q < 0 {
		return 0, fmt.Errorf("landmark scale overflows: landmarks %v", p) // math.isqrt raises ValueError on it
	}
	if k := isqrt(q); k > 1 {
		return k, nil
	}
	return 1, nil
}

// capShrink is alignment's cap: k at most the photo's shorter side (landmarks far outside a tiny photo).
func capShrink(k int64, img *RGB) int64 {
	m := int64(img.Height)
	if int64(img.Width) < m {
		m = int64(img.Width)
	}
	if k > m {
		return m
	}
	return k
}

// blockAverage is alignment.block_average on an H x W x 3 image given as rows: the image reduced k times, each
// output pixel the rounded mean of a k x k block (whole blocks only).
func blockAverage(pix []byte, width, height int, k int64) ([]byte, int, int) {
	kk := int(k)
	h, w := height/kk, width/kk
	out := make([]byte, 3*h*w)
	for oy := 0; oy < h; oy++ {
		for ox := 0; ox < w; ox++ {
			for ch := 0; ch < 3; ch++ {
				total := int64(kk * kk / 2)
				for dy := 0; dy < kk; dy++ {
					row := (oy*kk + dy) * width
					for dx := 0; dx < kk; dx++ {
						total += int64(pix[3*(row+ox*kk+dx)+ch])
					}
				}
				out[3*(oy*w+ox)+ch] = byte(total / int64(kk*kk))
			}
		}
	}
	return out, w, h
}

// sourcePointsQ16 is alignment.source_points_q16: where each crop pixel centre lies in the photo, in 1/65536 px.
func sourcePointsQ16(p Points, chip Chip) (sx, sy []int64) {
	size := chip.Size
	c := chipQ4(chip)
	n := int64(len(c))
	var cx, cy int64
	for i := range c {
		cx, cy = cx+c[i][0], cy+c[i][1]
	}
	ax, ay, px, py := fitQ16(p, chip)
	sx, sy = make([]int64, size*size), make([]int64, size*size)
	for oy := 0; oy < size; oy++ {
		for ox := 0; ox < size; ox++ {
			tx, ty := 16*n*int64(ox)-cx, 16*n*int64(oy)-cy
			sx[oy*size+ox] = roundDiv(65536*px+ax*tx-ay*ty, 16*n)
			sy[oy*size+ox] = roundDiv(65536*py+ay*tx+ax*ty, 16*n)
		}
	}
	return sx, sy
}

func clip(v, lo, hi int64) int64 { // np.clip: hi wins when hi < lo
	if v < lo {
		v = lo
	}
	if v > hi {
		v = hi
	}
	return v
}

func inside(v, n int64) int32 { // 1 when 0 <= v < n
	if v >= 0 && v < n {
		return 1
	}
	return 0
}

// bilinearQ16 is alignment.bilinear_q16: Q8 weights, per channel; outside the image the edge repeats or (zeroBorder)
// a neighbour counts as 0.
func bilinearQ16(pix []byte, width, height int, sx, sy []int64, zeroBorder bool) []byte {
	w, h := int64(width), int64(height)
	out := make([]byte, 3*len(sx))
	for i := range sx {
		fx, fy := int32((sx[i]>>8)&255), int32((sy[i]>>8)&255)
		x0, y0 := sx[i]>>16, sy[i]>>16
		xa, xb := clip(x0, 0, w-1), clip(x0+1, 0, w-1)
		ya, yb := clip(y0, 0, h-1)*w, clip(y0+1, 0, h-1)*w
		index := [4]int64{ya + xa, ya + xb, yb + xa, yb + xb}
		left, right, top, bottom := 256-fx, fx, 256-fy, fy
		if zeroBorder {
			left, right = left*inside(x0, w), right*inside(x0+1, w)
			top, bottom = top*inside(y0, h), bottom*inside(y0+1, h)
		}
		weight := [4]int32{left * top, right * top, left * bottom, right * bottom} // Q16, sum 65536 inside
		for ch := 0; ch < 3; ch++ {
			value := int32(32768)
			for j := range index {
				value += int32(pix[3*index[j]+int64(ch)]) * weight[j]
			}
			out[3*i+ch] = byte(value >> 16)
		}
	}
	return out
}

// shrunkPoints moves Q16 points onto the k-times reduced image (block centres): s' = floor((s - (k-1)*32768) / k).
func shrunkPoints(sx, sy []int64, k int64) {
	for i := range sx {
		sx[i] = floorDiv(sx[i]-(k-1)*32768, k)
		sy[i] = floorDiv(sy[i]-(k-1)*32768, k)
	}
}

func minMax(v []int64) (int64, int64) {
	lo, hi := v[0], v[0]
	for _, x := range v[1:] {
		if x < lo {
			lo = x
		}
		if x > hi {
			hi = x
		}
	}
	return lo, hi
}

// cropFace is alignment.crop: size x size x 3 bytes with the landmarks fitted onto the chip's points. Only the
// window the samples reach is shrunk and read (the same bytes as cropWhole).
func cropFace(img *RGB, e Points, chip Chip) ([]byte, error) {
	sx, sy := sourcePointsQ16(e, chip)
	k, err := shrinkFactor(e, chip)
	if err != nil {
		return nil, err
	}
	k = capShrink(k, img)
	if k >= 2 {
		shrunkPoints(sx, sy, k)
	}
	h, w := int64(img.Height)/k, int64(img.Width)/k
	xmin, xmax := minMax(sx)
	ymin, ymax := minMax(sy)
	xLo, xHi := clip(xmin>>16, 0, w-1), clip((xmax>>16)+1, 0, w-1)
	yLo, yHi := clip(ymin>>16, 0, h-1), clip((ymax>>16)+1, 0, h-1)
	// window = image[y_lo*k:(y_hi+1)*k, x_lo*k:(x_hi+1)*k]
	ww, wh := int((xHi-xLo+1)*k), int((yHi-yLo+1)*k)
	window := make([]byte, 3*ww*wh)
	for y := 0; y < wh; y++ {
		src := 3 * ((int(yLo*k)+y)*img.Width + int(xLo*k))
		copy(window[3*y*ww:3*(y+1)*ww], img.Pix[src:src+3*ww])
	}
	if k >= 2 {
		window, ww, wh = blockAverage(window, ww, wh, k)
	}
	for i := range sx {
		sx[i] -= xLo << 16
		sy[i] -= yLo << 16
	}
	return bilinearQ16(window, ww, wh, sx, sy, chip.ZeroBorder), nil
}

// cropWhole is alignment.crop_whole, the reference cropFace must equal: the whole photo shrunk, then sampled.
func cropWhole(img *RGB, e Points, chip Chip) ([]byte, error) {
	sx, sy := sourcePointsQ16(e, chip)
	k, err := shrinkFactor(e, chip)
	if err != nil {
		return nil, err
	}
	k = capShrink(k, img)
	pix, w, h := img.Pix, img.Width, img.Height
	if k >= 2 {
		pix, w, h = blockAverage(pix, w, h, k)
		shrunkPoints(sx, sy, k)
	}
	if w == 0 || h == 0 {
		return nil, fmt.Errorf("a %dx%d image is smaller than its %d-times reduction", img.Width, img.Height, k)
	}
	return bilinearQ16(pix, w, h, sx, sy, chip.ZeroBorder), nil
}
