package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// bar is one row of a horizontal bar chart: a value with an optional range (IQR).
type bar struct {
	Label     string
	Value     float64
	Low, High float64 // whisker; both 0 for none
	Highlight bool    // an eipgw case
}

type panel struct {
	Title string
	Unit  string
	Bars  []bar
}

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colText       = color.RGBA{20, 20, 20, 255}
	colBar        = color.RGBA{150, 160, 175, 255}
	colHighlight  = color.RGBA{30, 110, 200, 255}
	colWhisker    = color.RGBA{0, 0, 0, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
)

const (
	chartWidth  = 900
	labelWidth  = 230
	rowHeight   = 22
	panelHeader = 34
	rightMargin = 90
)

// renderPanels draws the panels one under the other and writes a PNG.
func renderPanels(path string, panels []panel) error {
	height := 10
	for _, p := range panels {
		height += panelHeader + rowHeight*len(p.Bars) + 16
	}
	img := image.NewRGBA(image.Rect(0, 0, chartWidth, height))
	draw.Draw(img, img.Bounds(), &image.Uniform{colBackground}, image.Point{}, draw.Src)
	y := 10
	for _, p := range panels {
		y = drawPanel(img, y, p)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func text(img *image.RGBA, x, y int, s string) {
	d := &font.Drawer{Dst: img, Src: &image.Uniform{colText}, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r.Intersect(img.Bounds()), &image.Uniform{c}, image.Point{}, draw.Src)
}

func drawPanel(img *image.RGBA, y int, p panel) int {
	text(img, 10, y+14, p.Title)
	y += panelHeader
	max := 0.0
	for _, b := range p.Bars {
		max = maxf(max, maxf(b.Value, b.High))
	}
	if max == 0 {
		max = 1
	}
	plotW := chartWidth - labelWidth - rightMargin
	scale := func(v float64) int { return labelWidth + int(v/max*float64(plotW)) }
	// Grid at quarters of the range.
	for q := 0; q <= 4; q++ {
		x := labelWidth + q*plotW/4
		fill(img, image.Rect(x, y-4, x+1, y+rowHeight*len(p.Bars)), colGrid)
		text(img, x-10, y-6, fmt.Sprintf("%.3g", max*float64(q)/4))
	}
	for i, b := range p.Bars {
		top := y + i*rowHeight
		text(img, 10, top+15, b.Label)
		c := colBar
		if b.Highlight {
			c = colHighlight
		}
		fill(img, image.Rect(labelWidth, top+4, scale(b.Value), top+rowHeight-4), c)
		if b.High > 0 {
			mid := top + rowHeight/2
			fill(img, image.Rect(scale(b.Low), mid, scale(b.High)+1, mid+1), colWhisker)
			fill(img, image.Rect(scale(b.Low), mid-4, scale(b.Low)+1, mid+5), colWhisker)
			fill(img, image.Rect(scale(b.High), mid-4, scale(b.High)+1, mid+5), colWhisker)
		}
		text(img, scale(maxf(b.Value, b.High))+6, top+15, fmt.Sprintf("%.2f %s", b.Value, p.Unit))
	}
	return y + rowHeight*len(p.Bars) + 16
}

func maxf(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}
