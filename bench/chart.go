package main

import (
	"fmt"
	"image/color"
	"os"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The charts are drawn with gonum.org/v1/plot: its axes put ticks at round numbers,
// and its error bars and log scales are ones we would otherwise draw by hand.

var (
	colEipgw  = color.RGBA{30, 110, 200, 255}
	colKernel = color.RGBA{150, 160, 175, 255}
	colFloor  = color.RGBA{215, 220, 228, 255}
)

// rateRow is one bar of the rates chart.
type rateRow struct {
	label     string
	value     stat
	fill      color.Color
	separator bool // an empty row before it
}

// rateRows groups the measured cases: each eipgw case beside its kernel counterpart
// and the XDP floor of its direction, then every other case.
func rateRows(cases []*caseResult, value func(*caseResult) stat) []rateRow {
	by := map[string]*caseResult{}
	for _, c := range cases {
		if c.Unavailable == "" {
			by[c.Name] = c
		}
	}
	var rows []rateRow
	shown := map[string]bool{}
	add := func(name string, fill color.Color, sep bool) {
		c, ok := by[name]
		if !ok {
			return
		}
		rows = append(rows, rateRow{label: name, value: value(c), fill: fill, separator: sep})
		shown[name] = true
	}
	var eipgw []string
	for _, c := range cases {
		if strings.HasPrefix(c.Name, "eipgw") && by[c.Name] != nil {
			eipgw = append(eipgw, c.Name)
		}
	}
	for i, name := range eipgw {
		add(name, colEipgw, i > 0)
		if k := counterparts[name]; k != "" {
			add(k, colKernel, false)
		}
		add("xdp-floor"+by[name].direction(), colFloor, false)
	}
	var rest []string
	for name := range by {
		if !shown[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for i, name := range rest {
		add(name, colKernel, i == 0)
	}
	return rows
}

// barPlot draws rows as horizontal bars with IQR whiskers, the first row on top.
func barPlot(title, xlabel string, rows []rateRow) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.X.Min = 0
	p.Add(plotter.NewGrid())
	y := 0.0
	positions := make([]float64, len(rows))
	for i := len(rows) - 1; i >= 0; i-- {
		positions[i] = y
		y++
		if rows[i].separator {
			y += 0.6
		}
	}
	for i, r := range rows {
		bars, err := plotter.NewBarChart(plotter.Values{r.value.Median}, vg.Points(11))
		if err != nil {
			return nil, fmt.Errorf("chart %q: %w", title, err)
		}
		bars.Horizontal = true
		bars.XMin = positions[i]
		bars.Color = r.fill
		bars.LineStyle.Width = 0
		p.Add(bars)
		if r.value.Q3 > r.value.Q1 {
			pts := plotter.XYs{{X: r.value.Median, Y: positions[i]}}
			errs := plotter.XErrors{{Low: r.value.Median - r.value.Q1, High: r.value.Q3 - r.value.Median}}
			eb, err := plotter.NewXErrorBars(struct {
				plotter.XYer
				plotter.XErrorer
			}{pts, errs})
			if err != nil {
				return nil, fmt.Errorf("chart %q: %w", title, err)
			}
			p.Add(eb)
		}
	}
	ticks := make([]plot.Tick, len(rows))
	for i, r := range rows {
		ticks[i] = plot.Tick{Value: positions[i], Label: r.label}
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min, p.Y.Max = -0.8, y-0.2
	return p, nil
}

// writeRatesChart draws the delivered rates and the ratios to kernel forwarding.
func writeRatesChart(path string, cases []*caseResult) error {
	rates, err := barPlot("Delivered rate, 64-byte UDP: eipgw (blue), its kernel counterpart, the XDP floor",
		"Mpps", rateRows(cases, func(c *caseResult) stat { return c.Mpps }))
	if err != nil {
		return err
	}
	ratios, err := barPlot("Ratio to kernel IP forwarding in the same round",
		"x kernel forwarding", rateRows(cases, func(c *caseResult) stat { return c.VsForwarding }))
	if err != nil {
		return err
	}
	n := len(rateRows(cases, func(c *caseResult) stat { return c.Mpps }))
	return savePlots(path, vg.Length(n)*vg.Points(16)+vg.Points(90), rates, ratios)
}

// savePlots writes the plots one under the other as a PNG, each h high.
func savePlots(path string, h vg.Length, plots ...*plot.Plot) error {
	w := 9 * vg.Inch
	img := vgimg.New(w, h*vg.Length(len(plots)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1}
	canvases := plot.Align(columnOf(plots), tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[i][0])
	}
	return saveImage(path, img)
}

func columnOf(plots []*plot.Plot) [][]*plot.Plot {
	out := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		out[i] = []*plot.Plot{p}
	}
	return out
}

// scaleSeries is one line of a log-x chart.
type scaleSeries struct {
	name  string
	pts   plotter.XYs
	color color.Color
}

// linePlot draws series against a logarithmic x axis.
func linePlot(title, xlabel, ylabel string, series []scaleSeries) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	for _, s := range series {
		line, points, err := plotter.NewLinePoints(s.pts)
		if err != nil {
			return nil, fmt.Errorf("chart %q: %w", title, err)
		}
		line.Color, points.Color = s.color, s.color
		p.Add(line, points)
		p.Legend.Add(s.name, line, points)
	}
	p.Legend.Top = true
	return p, nil
}

func saveImage(path string, img *vgimg.Canvas) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
