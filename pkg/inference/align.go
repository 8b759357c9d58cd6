package inference

import (
	"fmt"
	"math"
)

// Face crops from the detector's eye points in integer arithmetic only: veid_ml.alignment, line for line (its module
// docstring states the rule). Coordinates can be negative, so Python's floor division is floorDiv here; >> on int64
// is an arithmetic (floor) shift in both languages. Arithmetic wraps at 64 bits like numpy's int64.

// canonicalEyesBP is alignment.CANONICAL_EYES_BP: (x, y) of the image-left and image-right eyes in 1/10000 of the side.
var canonicalEyesBP = [2][2]int64{{3960, 4930}, {6100, 4930}}

// MinEyeDistanceQ4 is alignment.MIN_EYE_DISTANCE_Q4: eyes closer than 10 px hold too few pixels for the models.
const MinEyeDistanceQ4 = 10 * 16

// Eyes are two (x, y) points in 1/16 px, the image-left eye first.
type Eyes [2][2]int64

// floorDiv is Python's // for int64 (d != 0).
func floorDiv(n, d int64) int64 {
	q := n / d
	if (n%d != 0) && ((n < 0) != (d < 0)) {
		q--
	}
	return q
}

// numpyInt64 is numpy's float64 -> int64 cast on x86-64 (cvttsd2si): NaN and values outside int64 give MinInt64.
func numpyInt64(v float64) int64 {
	if math.IsNaN(v) || v >= 9223372036854775807.0 || v < -9223372036854775808.0 {
		return math.MinInt64
	}
	return int64(v)
}

// eyesQ4 is alignment.eyes_q4: the first two landmarks rounded half to even to 1/16 px, the smaller x first (on a
// tie, the detector's first eye).
func eyesQ4(landmarks [][2]float32) Eyes {
	var e Eyes
	for i := 0; i < 2; i++ {
		for j := 0; j < 2; j++ {
			e[i][j] = numpyInt64(math.RoundToEven(float64(landmarks[i][j]) * 16))
		}
	}
	if e[1][0] < e[0][0] {
		e[0], e[1] = e[1], e[0]
	}
	return e
}

// canonicalQ4 is alignment.canonical_q4.
func canonicalQ4(size int) [2][2]int64 {
	var c [2][2]int64
	for i := range c {
		for j := range c[i] {
			c[i][j] = floorDiv(canonicalEyesBP[i][j]*int64(size)*16, 10000)
		}
	}
	return c
}

// eyeDistanceSqQ4 is alignment.eye_distance_sq_q4.
func eyeDistanceSqQ4(e Eyes) int64 {
	ux, uy := e[1][0]-e[0][0], e[1][1]-e[0][1]
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

// shrinkFactor is alignment.shrink_factor.
func shrinkFactor(e Eyes, size int) (int64, error) {
	c := canonicalQ4(size)
	span := c[1][0] - c[0][0]
	q := floorDiv(eyeDistanceSqQ4(e), 4*span*span)
	if q < 0 {
		return 0, fmt.Errorf("eye distance overflows: eyes %v", e) // math.isqrt raises ValueError on it
	}
	if k := isqrt(q); k > 1 {
		return k, nil
	}
	return 1, nil
}

// capShrink is alignment's cap: k at most the photo's shorter side (eyes far outside a tiny photo).
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
func sourcePointsQ16(e Eyes, size int) (sx, sy []int64) {
	c := canonicalQ4(size)
	ux, uy := e[1][0]-e[0][0], e[1][1]-e[0][1]
	span := c[1][0] - c[0][0]
	sx, sy = make([]int64, size*size), make([]int64, size*size)
	for oy := 0; oy < size; oy++ {
		for ox := 0; ox < size; ox++ {
			tx, ty := 16*int64(ox)-c[0][0], 16*int64(oy)-c[0][1]
			sx[oy*size+ox] = 4096*e[0][0] + roundDiv(4096*(ux*tx-uy*ty), span)
			sy[oy*size+ox] = 4096*e[0][1] + roundDiv(4096*(uy*tx+ux*ty), span)
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

// bilinearQ16 is alignment.bilinear_q16: Q8 weights, a replicated border, per channel.
func bilinearQ16(pix []byte, width, height int, sx, sy []int64) []byte {
	w, h := int64(width), int64(height)
	out := make([]byte, 3*len(sx))
	for i := range sx {
		fx, fy := int32((sx[i]>>8)&255), int32((sy[i]>>8)&255)
		x0, y0 := sx[i]>>16, sy[i]>>16
		xa, xb := clip(x0, 0, w-1), clip(x0+1, 0, w-1)
		ya, yb := clip(y0, 0, h-1)*w, clip(y0+1, 0, h-1)*w
		index := [4]int64{ya + xa, ya + xb, yb + xa, yb + xb}
		weight := [4]int32{(256 - fx) * (256 - fy), fx * (256 - fy), (256 - fx) * fy, fx * fy} // Q16, sum 65536
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

// cropFace is alignment.crop: size x size x 3 bytes with the eyes moved to the canonical eye points. Only the
// window the samples reach is shrunk and read (the same bytes as cropWhole).
func cropFace(img *RGB, e Eyes, size int) ([]byte, error) {
	sx, sy := sourcePointsQ16(e, size)
	k, err := shrinkFactor(e, size)
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
	return bilinearQ16(window, ww, wh, sx, sy), nil
}

// cropWhole is alignment.crop_whole, the reference cropFace must equal: the whole photo shrunk, then sampled.
func cropWhole(img *RGB, e Eyes, size int) ([]byte, error) {
	sx, sy := sourcePointsQ16(e, size)
	k, err := shrinkFactor(e, size)
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
	return bilinearQ16(pix, w, h, sx, sy), nil
}
