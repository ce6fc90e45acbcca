package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// checkPlotFile accepts an empty name (no chart) or one ending in .svg or
// .png, the formats the chart is drawn in.
func checkPlotFile(name string) error {
	if name == "" {
		return nil
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".svg", ".png":
		return nil
	}
	return usagef("--plot %s: want a file ending in .svg or .png", name)
}

// writeValidationPlot draws the calibration-versus-holdout comparison:
// for each number of repeat purchases in calibration, the mean purchases
// in the holdout period, actual and predicted, as two lines over the same
// bins. The format follows the file's extension.
func writeValidationPlot(name string, v validationView) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Calibration to %s, holdout to %s", v.CalibrationEnd, v.HoldoutEnd)
	p.X.Label.Text = "Repeat purchases in calibration"
	p.Y.Label.Text = "Mean purchases in holdout"
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true

	actual := make(plotter.XYs, len(v.Bins))
	predicted := make(plotter.XYs, len(v.Bins))
	ticks := make([]plot.Tick, len(v.Bins))
	for i, b := range v.Bins {
		actual[i] = plotter.XY{X: float64(i), Y: b.Actual}
		predicted[i] = plotter.XY{X: float64(i), Y: b.Predicted}
		ticks[i] = plot.Tick{Value: float64(i), Label: b.Label}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)

	for _, s := range []struct {
		name  string
		xys   plotter.XYs
		color color.Color
		shape draw.GlyphDrawer
		dash  []vg.Length
	}{
		{"Actual", actual, color.RGBA{R: 0x22, G: 0x22, B: 0x22, A: 0xff}, draw.CircleGlyph{}, nil},
		{"BG/NBD", predicted, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, draw.SquareGlyph{}, []vg.Length{vg.Points(4), vg.Points(3)}},
	} {
		line, points, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
		line.Color, line.Width, line.Dashes = s.color, vg.Points(1.5), s.dash
		points.Color, points.Shape, points.Radius = s.color, s.shape, vg.Points(3)
		p.Add(line, points)
		p.Legend.Add(s.name, line, points)
	}
	p.Add(plotter.NewGrid())
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, name); err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	return nil
}
