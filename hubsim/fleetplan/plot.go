package fleetplan

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// palette colours the scenarios, in order.
var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
}

func colorOf(i int) color.Color { return palette[i%len(palette)] }

// PlotFiles are the plots WritePlots writes (each as .png and .svg).
var PlotFiles = []string{"fleet-registrations-per-minute", "fleet-converged", "fleet-retries"}

// WritePlots writes the three plots, every scenario on the same axes, as
// PNG and SVG into dir, and returns the paths written.
func WritePlots(dir string, rs []*Result) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	plots := []*plot.Plot{ratePlot(rs), convergedPlot(rs), retriesPlot(rs)}
	var out []string
	for i, p := range plots {
		for _, ext := range []string{".png", ".svg"} {
			path := filepath.Join(dir, PlotFiles[i]+ext)
			if err := p.Save(18*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
				return out, fmt.Errorf("plot %s: %w", path, err)
			}
			out = append(out, path)
		}
	}
	return out, nil
}

// minutes sums a per-second series into minutes.
func minutes(perSecond []int) []int {
	out := make([]int, (len(perSecond)+59)/60)
	for i, v := range perSecond {
		out[i/60] += v
	}
	return out
}

func line(p *plot.Plot, xys plotter.XYs, name string, c color.Color, dashed bool) {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return // an empty series: nothing to draw
	}
	l.Color = c
	l.Width = vg.Points(1.2)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	return p
}

// ratePlot: DPS requests admitted per minute against each scenario's quota.
func ratePlot(rs []*Result) *plot.Plot {
	p := newPlot("DPS registrations admitted per minute vs quota", "minutes since start", "admitted per minute")
	for i, r := range rs {
		m := minutes(r.AdmittedPerSecond)
		xys := make(plotter.XYs, len(m))
		for j, v := range m {
			xys[j] = plotter.XY{X: float64(j) + 0.5, Y: float64(v)}
		}
		line(p, xys, r.Scenario.Name, colorOf(i), false)
		// The quota, a step function over the same minutes.
		q := plotter.XYs{}
		cur := float64(r.Scenario.Quota.PerMinute)
		changes := slices.Clone(r.Scenario.QuotaChanges)
		slices.SortFunc(changes, func(a, b QuotaChange) int { return int(a.At - b.At) })
		q = append(q, plotter.XY{X: 0, Y: cur})
		for _, c := range changes {
			at := c.At.Minutes()
			q = append(q, plotter.XY{X: at, Y: cur}, plotter.XY{X: at, Y: float64(c.PerMinute)})
			cur = float64(c.PerMinute)
		}
		q = append(q, plotter.XY{X: float64(max(len(m), 1)), Y: cur})
		line(p, q, r.Scenario.Name+" quota", colorOf(i), true)
	}
	p.Y.Min = 0
	p.Legend.Top = false // the first minutes' burst is at the top left
	return p
}

// convergedPlot: share of the fleet converged over time.
func convergedPlot(rs []*Result) *plot.Plot {
	p := newPlot("Devices converged over time", "minutes since start", "% of the fleet converged")
	for i, r := range rs {
		xys := plotter.XYs{{X: 0, Y: 0}}
		sum := 0
		n := float64(r.Scenario.Devices)
		for s, v := range r.ConvergedPerSecond {
			if v == 0 {
				continue
			}
			sum += v
			xys = append(xys, plotter.XY{X: float64(s+1) / 60, Y: 100 * float64(sum) / n})
		}
		line(p, xys, r.Scenario.Name, colorOf(i), false)
	}
	p.Y.Min, p.Y.Max = 0, 100
	p.Legend.Left = true // the curves rise to the top right
	return p
}

// retriesPlot: how many devices needed how many retries, bars side by side.
func retriesPlot(rs []*Result) *plot.Plot {
	p := newPlot("Retries per device", "retries (failed attempts) per device", "devices")
	top := 0
	for _, r := range rs {
		for _, v := range r.Retries {
			top = max(top, v)
		}
	}
	w := vg.Points(max(4, 40/float64(len(rs))))
	for i, r := range rs {
		counts := make(plotter.Values, top+1)
		for _, v := range r.Retries {
			counts[v]++
		}
		b, err := plotter.NewBarChart(counts, w)
		if err != nil {
			continue
		}
		b.Color = colorOf(i)
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(len(rs)-1)/2)
		p.Add(b)
		p.Legend.Add(r.Scenario.Name, b)
	}
	p.Legend.ThumbnailWidth = vg.Points(10)
	return p
}
