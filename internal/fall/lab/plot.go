package lab

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"slices"
)

// Plot axes: false-alarm file rate (1 − specificity) against sensitivity.
const (
	plotW, plotH       = 720, 540
	marginL, marginB   = 60, 50
	marginR, marginT   = 20, 36
	plotXMax           = 0.20
	plotYMin, plotYMax = 0.70, 1.00
)

var (
	colGrid     = color.RGBA{225, 225, 225, 255}
	colAxis     = color.RGBA{0, 0, 0, 255}
	colModel    = color.RGBA{0, 90, 200, 255}
	colBaseline = color.RGBA{220, 110, 0, 255}
	colPoint    = color.RGBA{200, 0, 0, 255}
)

// Plot draws the ROC curve of r as a PNG: x is the share of daily-activity
// files with a false alarm (1 − specificity, 0–20 %), y the sensitivity
// (70–100 %). The blue curve is the detector over every sensitivity offset,
// the red disc its operating point (offset 0), the orange curve the peak-SMV
// baseline. Tick labels are percentages; grid lines every 2 % (x) and 5 % (y).
func (r *Report) Plot(w io.Writer) error {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	px := func(x float64) int { return marginL + int(math.Round(x/plotXMax*float64(plotW-marginL-marginR))) }
	py := func(y float64) int {
		return plotH - marginB - int(math.Round((y-plotYMin)/(plotYMax-plotYMin)*float64(plotH-marginB-marginT)))
	}
	for k := 0; k <= 10; k++ {
		x := plotXMax * float64(k) / 10
		line(img, px(x), py(plotYMin), px(x), py(plotYMax), colGrid)
		text(img, px(x)-6, py(plotYMin)+8, fmt.Sprintf("%d", int(math.Round(100*x))), colAxis)
	}
	for k := 0; k <= 6; k++ {
		y := plotYMin + (plotYMax-plotYMin)*float64(k)/6
		line(img, px(0), py(y), px(plotXMax), py(y), colGrid)
		text(img, marginL-24, py(y)-5, fmt.Sprintf("%d", int(math.Round(100*y))), colAxis)
	}
	line(img, px(0), py(plotYMin), px(plotXMax), py(plotYMin), colAxis)
	line(img, px(0), py(plotYMin), px(0), py(plotYMax), colAxis)
	text(img, px(plotXMax/2)-40, plotH-18, "FA% (1-SPEC)", colAxis)
	text(img, 8, 8, "SENS%", colAxis)

	curve := func(margins []float64, falls []bool, c color.Color) {
		type pt struct{ x, y float64 }
		ts := slices.Clone(margins)
		slices.Sort(ts)
		ts = slices.Compact(ts)
		var pts []pt
		pts = append(pts, pt{0, 0})
		for i := len(ts) - 1; i >= 0; i-- {
			var tp, p, fp, n float64
			for k, m := range margins {
				if falls[k] {
					p++
					if m >= ts[i] {
						tp++
					}
				} else {
					n++
					if m >= ts[i] {
						fp++
					}
				}
			}
			pts = append(pts, pt{fp / max(n, 1), tp / max(p, 1)})
		}
		for i := 1; i < len(pts); i++ {
			a, b := pts[i-1], pts[i]
			if a.x > plotXMax {
				break
			}
			if a.y < plotYMin && b.y < plotYMin {
				continue
			}
			x1, y1 := px(a.x), py(max(a.y, plotYMin))
			x2, y2 := px(min(b.x, plotXMax)), py(max(b.y, plotYMin))
			line(img, x1, y1, x2, y1, c) // step: first right, then up
			line(img, x2, y1, x2, y2, c)
		}
	}
	var ms, bs []float64
	var falls []bool
	for _, x := range r.reps {
		ms = append(ms, x.Margin)
		falls = append(falls, x.Rec.Fall())
	}
	if r.Baseline != nil && len(r.Baseline.reps) == len(r.reps) {
		for _, x := range r.Baseline.reps {
			bs = append(bs, x.Margin)
		}
		curve(bs, falls, colBaseline)
	}
	curve(ms, falls, colModel)
	op := r.At(0)
	disc(img, px(min(1-op.Specificity, plotXMax)), py(max(op.Sensitivity, plotYMin)), 5, colPoint)
	// Legend.
	lx, ly := px(plotXMax*0.55), py(plotYMin)-60
	line(img, lx, ly, lx+20, ly, colModel)
	text(img, lx+26, ly-3, "DETECTOR", colAxis)
	line(img, lx, ly+14, lx+20, ly+14, colBaseline)
	text(img, lx+26, ly+11, "PEAK SMV BASELINE", colAxis)
	disc(img, lx+10, ly+28, 4, colPoint)
	text(img, lx+26, ly+25, "OPERATING POINT", colAxis)
	return png.Encode(w, img)
}

func line(img *image.RGBA, x1, y1, x2, y2 int, c color.Color) {
	dx, dy := abs(int64(x2-x1)), abs(int64(y2-y1))
	steps := int(max(dx, dy))
	for s := 0; s <= steps; s++ {
		t := 0.0
		if steps > 0 {
			t = float64(s) / float64(steps)
		}
		x := x1 + int(math.Round(t*float64(x2-x1)))
		y := y1 + int(math.Round(t*float64(y2-y1)))
		img.Set(x, y, c)
		img.Set(x, y+1, c)
	}
}

func disc(img *image.RGBA, cx, cy, r int, c color.Color) {
	for y := -r; y <= r; y++ {
		for x := -r; x <= r; x++ {
			if x*x+y*y <= r*r {
				img.Set(cx+x, cy+y, c)
			}
		}
	}
}

// glyphs is a 3×5 pixel font: each row is 3 bits, top row first.
var glyphs = map[rune][5]uint8{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7}, '3': {7, 1, 7, 1, 7},
	'4': {5, 5, 7, 1, 1}, '5': {7, 4, 7, 1, 7}, '6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 1, 1},
	'8': {7, 5, 7, 5, 7}, '9': {7, 5, 7, 1, 7}, '%': {5, 1, 2, 4, 5}, '-': {0, 0, 7, 0, 0},
	'(': {1, 2, 2, 2, 1}, ')': {4, 2, 2, 2, 4}, '.': {0, 0, 0, 0, 2},
	'A': {2, 5, 7, 5, 5}, 'B': {6, 5, 6, 5, 6}, 'C': {7, 4, 4, 4, 7}, 'D': {6, 5, 5, 5, 6},
	'E': {7, 4, 6, 4, 7}, 'F': {7, 4, 6, 4, 4}, 'G': {7, 4, 5, 5, 7}, 'I': {7, 2, 2, 2, 7},
	'K': {5, 5, 6, 5, 5}, 'L': {4, 4, 4, 4, 7}, 'M': {5, 7, 7, 5, 5}, 'N': {6, 5, 5, 5, 5},
	'O': {7, 5, 5, 5, 7}, 'P': {7, 5, 7, 4, 4}, 'R': {6, 5, 6, 5, 5}, 'S': {7, 4, 7, 1, 7},
	'T': {7, 2, 2, 2, 2}, 'V': {5, 5, 5, 5, 2}, 'Y': {5, 5, 2, 2, 2},
}

// text draws s at (x, y) at twice the glyph size.
func text(img *image.RGBA, x, y int, s string, c color.Color) {
	for _, ch := range s {
		g, ok := glyphs[ch]
		if ok {
			for row, bits := range g {
				for col := range 3 {
					if bits&(4>>col) != 0 {
						for dy := range 2 {
							for dx := range 2 {
								img.Set(x+2*col+dx, y+2*row+dy, c)
							}
						}
					}
				}
			}
		}
		x += 8
	}
}
