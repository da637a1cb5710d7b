// Package roofline draws a report as an SVG roofline with gonum/plot: the
// compute roofs (FP32, FP64, tensor), the memory roof, and each workload at
// its arithmetic intensity and achieved GFLOP/s.
package roofline

import (
	"fmt"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"vhpc/hpcbench"
)

// copyIntensity is where a workload with no flops (STREAM copy) is drawn:
// at this intensity, with its bandwidth's share of the memory roof.
const copyIntensity = 1.0 / 32

// Write draws rep as an SVG to w.
func Write(w io.Writer, rep *hpcbench.Report) error {
	d := rep.Device
	p := plot.New()
	p.Title.Text = fmt.Sprintf("roofline: %s (%s)", d.Name, d.Kind)
	p.X.Label.Text = "arithmetic intensity (flop/byte)"
	p.Y.Label.Text = "GFLOP/s"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true

	xmin, xmax := 1.0/64, 256.0
	bw := d.PeakMemGBs
	if bw == 0 {
		bw = measuredBandwidth(rep)
	}
	roofs := []struct {
		name string
		peak float64
	}{{"fp32", d.PeakFP32GFLOPS}, {"fp64", d.PeakFP64GFLOPS}, {"tensor", d.PeakTensorGFLOPS}}
	for i, r := range roofs {
		if r.peak <= 0 || (i == 2 && r.peak == d.PeakFP32GFLOPS) {
			continue
		}
		var pts plotter.XYs
		for x := xmin; x <= xmax*1.0001; x *= 1.25 {
			y := r.peak
			if bw > 0 {
				y = math.Min(r.peak, x*bw)
			}
			pts = append(pts, plotter.XY{X: x, Y: y})
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("roofline: %w", err)
		}
		line.Color = plotter.DefaultLineStyle.Color
		line.Dashes = [][]vg.Length{{}, {vg.Points(4), vg.Points(2)}, {vg.Points(1), vg.Points(2)}}[i]
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s roof %.0f GFLOP/s, memory %.0f GB/s", r.name, r.peak, bw), line)
	}
	for i, r := range rep.Workloads {
		if r.Error != "" || r.Seconds <= 0 {
			continue
		}
		x, y := r.Intensity, r.Flops/r.Seconds/1e9
		if r.Flops == 0 && r.Bytes > 0 {
			x, y = copyIntensity, copyIntensity*r.Bytes/r.Seconds/1e9
		}
		if x <= 0 || y <= 0 {
			continue
		}
		sc, err := plotter.NewScatter(plotter.XYs{{X: x, Y: y}})
		if err != nil {
			return fmt.Errorf("roofline: %w", err)
		}
		sc.GlyphStyle.Color = plotutilColor(i)
		sc.GlyphStyle.Radius = vg.Points(4)
		p.Add(sc)
		p.Legend.Add(fmt.Sprintf("%s %.1f %s", r.Name, r.Value, r.Unit), sc)
		labels, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: x, Y: y}}, Labels: []string{r.Name}})
		if err == nil {
			p.Add(labels)
		}
	}
	p.X.Min, p.X.Max = xmin, xmax
	wt, err := p.WriterTo(9*vg.Inch, 6*vg.Inch, "svg")
	if err != nil {
		return fmt.Errorf("roofline: %w", err)
	}
	if _, err := wt.WriteTo(w); err != nil {
		return fmt.Errorf("roofline: %w", err)
	}
	return nil
}

// measuredBandwidth is the best GB/s of the report, the memory roof's
// stand-in when the device's peak is unknown (CPU without --mem-gbs).
func measuredBandwidth(rep *hpcbench.Report) float64 {
	var best float64
	for _, r := range rep.Workloads {
		if r.Unit == hpcbench.UnitGBs {
			best = max(best, r.Value, r.VendorValue)
		}
	}
	return best
}
